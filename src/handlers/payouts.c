/* payouts — the balance.get and payout.* job types (CONTRACT.md §6, pay_out). */
#include "handler_internal.h"

#include "access/balances.h"
#include "access/payouts.h"

#include <stdlib.h>

/* ---- Payload schemas ---------------------------------------------------- */

static const char *const final_statuses[] = {"paid", "failed", NULL};
static const char *const any_status[] = {ACCESS_PAYOUT_STATUS_LIST(ENUMSTR_STRING) NULL};

static const schema_field_t balance_fields[] = {
    {.name = "currency",
     .type = SCHEMA_CURRENCY,
     .doc = "Only this currency (zeros when the account has no balance in it)."},
    {0},
};
static const schema_object_t balance_schema = {.fields = balance_fields};

static const schema_field_t create_fields[] = {
    {.name = "amount",
     .type = SCHEMA_INTEGER,
     .required = true,
     SCHEMA_AMOUNT_BOUNDS,
     .doc = "Minor units; at least the account's min_payout_amount and at most its available "
            "balance in the currency."},
    {.name = "currency", .type = SCHEMA_CURRENCY, .required = true},
    {.name = "route_id",
     .type = SCHEMA_ID,
     .doc = "The payout route (rt_…); default: the account's default route, if it has one."},
    {.name = "description", .type = SCHEMA_STRING, .max_len = 1000},
    {0},
};
static const schema_object_t create_schema = {.fields = create_fields};

static const schema_field_t update_status_fields[] = {
    {.name = "payout_id", .type = SCHEMA_ID, .required = true, .doc = "The payout's id (po_…)."},
    {.name = "status",
     .type = SCHEMA_ENUM,
     .required = true,
     .values = final_statuses,
     .doc = "pending → paid or failed (failed gives the amount back to the available balance); "
            "the current status again is a no-op."},
    {0},
};
static const schema_object_t update_status_schema = {.fields = update_status_fields};

static const schema_field_t get_fields[] = {
    {.name = "payout_id", .type = SCHEMA_ID, .required = true, .doc = "The payout's id (po_…)."},
    {0},
};
static const schema_object_t get_schema = {.fields = get_fields};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {.name = "status",
     .type = SCHEMA_ENUM,
     .values = any_status,
     .doc = "Only payouts in this status."},
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Results ------------------------------------------------------------- */

/* The contract's payout object. */
static json_t *payout_json(const access_payout_t *po)
{
    return json_pack("{s:s, s:I, s:s, s:s, s:s?, s:s?, s:s}", "id", po->id, "amount",
                     (json_int_t)po->amount, "currency", po->currency, "status",
                     access_payout_status_str(po->status), "route_id",
                     handler_nonempty(po->route_id), "description", po->description, "created_at",
                     handler_time(po->created_at_ms).s);
}

/* {"payout": payout}; clears *po. */
static handler_status_t answer_payout(access_payout_t *po, json_t **result, handler_error_t *err)
{
    *result = json_pack("{s:o}", "payout", payout_json(po));
    access_payout_clear(po);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t balance_get(access_tx_t *tx, const json_t *p, json_t **result,
                                    handler_error_t *err)
{
    access_balance_t *rows;
    int n;
    access_error_t aerr;
    if (access_balances_get(tx, handler_arg_str(p, "currency"), &rows, &n, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    json_t *data = json_array();
    for (int i = 0; i < n && data != NULL; i++) {
        json_t *b = json_pack("{s:s, s:I, s:I, s:I}", "currency", rows[i].currency, "available",
                              (json_int_t)rows[i].available, "pending_payouts",
                              (json_int_t)rows[i].pending_payouts, "paid_out",
                              (json_int_t)rows[i].paid_out);
        if (json_array_append_new(data, b) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    free(rows);
    *result = data != NULL ? json_pack("{s:o}", "data", data) : NULL;
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

static handler_status_t create(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_payout_new_t in = {
        .amount = handler_arg_int(p, "amount", 0),
        .currency = handler_arg_str(p, "currency"),
        .route_id = handler_arg_str(p, "route_id"),
        .description = handler_arg_str(p, "description"),
    };
    access_payout_t po;
    access_error_t aerr;
    if (access_payouts_create(tx, &in, &po, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payout(&po, result, err);
}

static handler_status_t update_status(access_tx_t *tx, const json_t *p, json_t **result,
                                      handler_error_t *err)
{
    access_payout_status_t status;
    access_payout_status_parse(handler_arg_str(p, "status"), &status);
    access_payout_t po;
    access_error_t aerr;
    if (access_payouts_update_status(tx, handler_arg_str(p, "payout_id"), status, &po, &aerr) !=
        ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payout(&po, result, err);
}

static handler_status_t get(access_tx_t *tx, const json_t *p, json_t **result, handler_error_t *err)
{
    access_payout_t po;
    access_error_t aerr;
    if (access_payouts_get(tx, handler_arg_str(p, "payout_id"), &po, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payout(&po, result, err);
}

static json_t *payout_item(const void *row)
{
    return payout_json(row);
}

static void payout_clear(void *row)
{
    access_payout_clear(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    access_payout_status_t status;
    bool filter = access_payout_status_parse(handler_arg_str(p, "status"), &status);
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_payout_t));
    access_status_t st = access_payouts_list(tx, filter ? &status : NULL, &l.page, l.rows, &l.n,
                                             &l.has_more, &l.aerr);
    return handler_list_end(&l, st, payout_item, payout_clear, result, err);
}

const handler_t handlers_payouts[] = {
    {.name = "balance.get",
     .summary = "The account's balance per currency: available, pending_payouts and paid_out.",
     .schema = &balance_schema,
     .execute = balance_get},
    {.name = "payout.create",
     .summary = "Pays out part of the available balance through a payout route; never beyond "
                "the available balance.",
     .schema = &create_schema,
     .execute = create},
    {.name = "payout.update_status",
     .summary = "Moves a pending payout to paid or failed.",
     .schema = &update_status_schema,
     .execute = update_status},
    {.name = "payout.get",
     .summary = "One payout of the account.",
     .schema = &get_schema,
     .execute = get},
    {.name = "payout.list",
     .summary = "The account's payouts, newest first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
