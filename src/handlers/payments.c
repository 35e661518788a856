/* payments — the payment.* job types (CONTRACT.md §6, stripe_payments). */
#include "handler_internal.h"

#include "access/payments.h"
#include "access/shares.h"
#include "alloc.h"
#include "common/mem.h"

#include <stdlib.h>

/* ---- Payload schemas ---------------------------------------------------- */

/* A payment is recorded or moved to any status but refunded (a refund's). */
static const char *const record_statuses[] = {"pending", "succeeded", "failed", NULL};
static const char *const any_status[] = {ACCESS_PAYMENT_STATUS_LIST(ENUMSTR_STRING) NULL};

static const schema_field_t record_fields[] = {
    {.name = "external_id",
     .type = SCHEMA_STRING,
     .required = true,
     .min_len = 1,
     .max_len = 255,
     .doc = "Your id of the payment (e.g. Stripe's pi_…); unique in the account."},
    {.name = "amount",
     .type = SCHEMA_INTEGER,
     .required = true,
     SCHEMA_AMOUNT_BOUNDS,
     .doc = "Minor units (cents)."},
    {.name = "currency", .type = SCHEMA_CURRENCY, .required = true},
    {.name = "status",
     .type = SCHEMA_ENUM,
     .values = record_statuses,
     .default_json = "\"succeeded\""},
    {.name = "description", .type = SCHEMA_STRING, .max_len = 1000},
    SCHEMA_METADATA_FIELD("metadata"),
    {0},
};
static const schema_object_t record_schema = {.fields = record_fields};

static const schema_field_t update_status_fields[] = {
    {.name = "payment_id", .type = SCHEMA_ID, .required = true, .doc = "The payment's id (pay_…)."},
    {.name = "status",
     .type = SCHEMA_ENUM,
     .required = true,
     .values = record_statuses,
     .doc = "pending → succeeded or failed; the current status again is a no-op."},
    {0},
};
static const schema_object_t update_status_schema = {.fields = update_status_fields};

static const schema_field_t refund_fields[] = {
    {.name = "payment_id", .type = SCHEMA_ID, .required = true, .doc = "The payment's id (pay_…)."},
    {.name = "amount",
     .type = SCHEMA_INTEGER,
     SCHEMA_AMOUNT_BOUNDS,
     .doc = "Minor units to refund; default: the whole unrefunded rest."},
    {0},
};
static const schema_object_t refund_schema = {.fields = refund_fields};

static const schema_field_t get_fields[] = {
    {.name = "payment_id", .type = SCHEMA_ID, .required = true, .doc = "The payment's id (pay_…)."},
    {0},
};
static const schema_object_t get_schema = {.fields = get_fields};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {.name = "status",
     .type = SCHEMA_ENUM,
     .values = any_status,
     .doc = "Only payments in this status."},
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Results ------------------------------------------------------------- */

/* The contract's Payment object. */
static json_t *payment_json(const access_payment_t *p)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:s?, s:O, s:s, s:s}", "id", p->id,
                     "external_id", p->external_id, "amount", (json_int_t)p->amount, "currency",
                     p->currency, "status", access_payment_status_str(p->status), "amount_refunded",
                     (json_int_t)p->amount_refunded, "description", p->description, "metadata",
                     p->metadata, "created_at", handler_time(p->created_at_ms).s, "updated_at",
                     handler_time(p->updated_at_ms).s);
}

/* {"payment": Payment}; clears *p. */
static handler_status_t answer_payment(access_payment_t *p, json_t **result, handler_error_t *err)
{
    *result = json_pack("{s:o}", "payment", payment_json(p));
    access_payment_clear(p);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t record(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_payment_new_t in = {
        .external_id = handler_arg_str(p, "external_id"),
        .amount = handler_arg_int(p, "amount", 0),
        .currency = handler_arg_str(p, "currency"),
        .description = handler_arg_str(p, "description"),
        .metadata = json_object_get(p, "metadata"),
    };
    access_payment_status_parse(handler_arg_str(p, "status"), &in.status);
    access_payment_t pay;
    access_error_t aerr;
    if (access_payments_record(tx, &in, &pay, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payment(&pay, result, err);
}

static handler_status_t update_status(access_tx_t *tx, const json_t *p, json_t **result,
                                      handler_error_t *err)
{
    access_payment_status_t status;
    access_payment_status_parse(handler_arg_str(p, "status"), &status);
    access_payment_t pay;
    access_error_t aerr;
    if (access_payments_update_status(tx, handler_arg_str(p, "payment_id"), status, &pay, &aerr) !=
        ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payment(&pay, result, err);
}

/* Appends the reversal of a refund to an allocated payment's shares: one row
 * per party whose total changes, by the change that brings its total back to
 * its share of the payment's new net amount (alloc_rebalance). The payment's
 * row lock, taken by the refund, keeps the totals still until tx ends. */
static handler_status_t reverse_allocation(access_tx_t *tx, const access_payment_t *pay,
                                           const access_refund_t *refund, handler_error_t *err)
{
    handler_status_t st = HANDLER_OK;
    access_error_t aerr;
    access_share_total_t *shares = mem_calloc(ACCESS_SHARES_MAX, sizeof(*shares));
    size_t n = 0;
    if (access_shares_totals(tx, refund->payment_id, shares, &n, &aerr) != ACCESS_OK) {
        st = handler_access_error(&aerr, err);
        goto out;
    }
    int32_t bp[ACCESS_SHARES_MAX];
    int64_t totals[ACCESS_SHARES_MAX], change[ACCESS_SHARES_MAX];
    for (size_t i = 0; i < n; i++) {
        bp[i] = shares[i].basis_points;
        totals[i] = shares[i].total;
    }
    if (alloc_rebalance(pay->amount - pay->amount_refunded, bp, totals, n, change) != 0) {
        /* Stored shares that break the rules: data damage, not the caller's fault. */
        handler_reject(err, TALLY_ERR_INTERNAL, NULL, "payment %s has an unusable allocation",
                       refund->payment_id);
        st = HANDLER_FAILED;
        goto out;
    }
    access_share_new_t rows[ACCESS_SHARES_MAX];
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (change[i] != 0)
            rows[m++] = (access_share_new_t){(int)i, shares[i].party, bp[i], change[i]};
    }
    /* The changes sum to −refund, so at least one row is due. */
    if (m > 0 &&
        access_shares_insert(tx, refund->payment_id, refund->id, rows, m, &aerr) != ACCESS_OK)
        st = handler_access_error(&aerr, err);
out:
    free(shares);
    return st;
}

static handler_status_t refund(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_payment_t pay;
    access_refund_t re;
    access_error_t aerr;
    /* amount absent: 0 asks for the whole unrefunded rest. */
    if (access_payments_refund(tx, handler_arg_str(p, "payment_id"),
                               handler_arg_int(p, "amount", 0), &pay, &re, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    if (pay.allocated) {
        handler_status_t st = reverse_allocation(tx, &pay, &re, err);
        if (st != HANDLER_OK) {
            access_payment_clear(&pay);
            return st;
        }
    }
    *result = json_pack("{s:o, s:{s:s, s:s, s:I, s:s}}", "payment", payment_json(&pay), "refund",
                        "id", re.id, "payment_id", re.payment_id, "amount", (json_int_t)re.amount,
                        "created_at", handler_time(re.created_at_ms).s);
    access_payment_clear(&pay);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

static handler_status_t get(access_tx_t *tx, const json_t *p, json_t **result, handler_error_t *err)
{
    access_payment_t pay;
    access_error_t aerr;
    if (access_payments_get(tx, handler_arg_str(p, "payment_id"), &pay, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_payment(&pay, result, err);
}

static json_t *payment_item(const void *row)
{
    return payment_json(row);
}

static void payment_clear(void *row)
{
    access_payment_clear(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    access_payment_status_t status;
    bool filter = access_payment_status_parse(handler_arg_str(p, "status"), &status);
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_payment_t));
    access_status_t st = access_payments_list(tx, filter ? &status : NULL, &l.page, l.rows, &l.n,
                                              &l.has_more, &l.aerr);
    return handler_list_end(&l, st, payment_item, payment_clear, result, err);
}

const handler_t handlers_payments[] = {
    {.name = "payment.record",
     .summary = "Records a payment; a second one with the same external_id is a conflict.",
     .schema = &record_schema,
     .execute = record},
    {.name = "payment.update_status",
     .summary = "Moves a pending payment to succeeded or failed.",
     .schema = &update_status_schema,
     .execute = update_status},
    {.name = "payment.refund",
     .summary = "Refunds part or all of a succeeded payment; never beyond its unrefunded amount.",
     .schema = &refund_schema,
     .execute = refund},
    {.name = "payment.get",
     .summary = "One payment of the account.",
     .schema = &get_schema,
     .execute = get},
    {.name = "payment.list",
     .summary = "The account's payments, newest first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
