/* shares — the share.* job types (CONTRACT.md §6, payment_share_tracking). */
#include "handler_internal.h"

#include "access/shares.h"
#include "alloc.h"

#include <inttypes.h>

/* ---- Payload schemas ---------------------------------------------------- */

static const schema_field_t share_fields[] = {
    {.name = "party",
     .type = SCHEMA_STRING,
     .required = true,
     .min_len = 1,
     .max_len = 64,
     .doc = "Who receives the share."},
    {.name = "basis_points",
     .type = SCHEMA_INTEGER,
     .required = true,
     .min = 1,
     .max = ALLOC_BP_TOTAL,
     .doc = "The share in 1/10000 of the net amount."},
    {0},
};
static const schema_object_t share_schema = {.fields = share_fields};

/* The shares' basis points sum to exactly 10000. */
static bool shares_sum_check(const json_t *obj, const char *path, handler_error_t *err)
{
    const json_t *shares = json_object_get(obj, "shares");
    int64_t sum = 0;
    for (size_t i = 0; i < json_array_size(shares); i++)
        sum += json_integer_value(json_object_get(json_array_get(shares, i), "basis_points"));
    if (sum != ALLOC_BP_TOTAL)
        return schema_fail(err, path, "shares",
                           "must have basis_points summing to exactly 10000, not %" PRId64, sum);
    return true;
}

static const schema_field_t allocate_fields[] = {
    {.name = "payment_id",
     .type = SCHEMA_ID,
     .required = true,
     .doc = "The payment to allocate (pay_…)."},
    {.name = "shares",
     .type = SCHEMA_ARRAY,
     .required = true,
     .min_items = 1,
     .max_items = ALLOC_MAX_SHARES,
     .items = &share_schema,
     .unique = "party",
     .doc = "How the net amount is split."},
    {0},
};
static const schema_object_t allocate_schema = {
    .fields = allocate_fields,
    .check = shares_sum_check,
    .check_doc = "the basis_points of all shares sum to exactly 10000.",
};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {.name = "payment_id", .type = SCHEMA_ID, .doc = "Only this payment's allocations."},
    {.name = "party",
     .type = SCHEMA_STRING,
     .min_len = 1,
     .max_len = 64,
     .doc = "Only this party's allocations."},
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t allocate(access_tx_t *tx, const json_t *p, json_t **result,
                                 handler_error_t *err)
{
    const char *payment_id = handler_arg_str(p, "payment_id");
    const json_t *shares = json_object_get(p, "shares");
    size_t n = json_array_size(shares);
    int32_t bp[ALLOC_MAX_SHARES];
    int64_t parts[ALLOC_MAX_SHARES];
    access_share_new_t rows[ALLOC_MAX_SHARES];
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(shares, i);
        bp[i] = (int32_t)handler_arg_int(s, "basis_points", 0);
        rows[i].position = (int)i;
        rows[i].party = handler_arg_str(s, "party");
        rows[i].basis_points = bp[i];
    }

    access_share_claim_t claim;
    access_error_t aerr;
    if (access_shares_claim(tx, payment_id, &claim, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    /* The schema already checked count, bounds and sum: a failure here is a bug. */
    if (alloc_split(claim.net_amount, bp, n, parts) != 0) {
        handler_reject(err, TALLY_ERR_INTERNAL, NULL, "allocation rules broken after validation");
        return HANDLER_FAILED;
    }
    for (size_t i = 0; i < n; i++)
        rows[i].amount = parts[i];
    if (access_shares_insert(tx, payment_id, NULL, rows, n, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);

    json_t *allocations = json_array();
    for (size_t i = 0; i < n && allocations != NULL; i++) {
        if (json_array_append_new(allocations, json_pack("{s:s, s:i, s:I}", "party", rows[i].party,
                                                         "basis_points", (int)bp[i], "amount",
                                                         (json_int_t)parts[i])) != 0) {
            json_decref(allocations);
            allocations = NULL;
        }
    }
    *result =
        json_pack("{s:s, s:s, s:I, s:o}", "payment_id", payment_id, "currency", claim.currency,
                  "net_amount", (json_int_t)claim.net_amount, "allocations", allocations);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* One row of payment_share_tracking as share.list shows it. */
static json_t *share_json(const access_share_row_t *r)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:s, s:i, s:I, s:s, s:s}", "id", r->id, "payment_id",
                     r->payment_id, "kind", access_share_kind_str(r->kind), "refund_id",
                     handler_nonempty(r->refund_id), "party", r->party, "basis_points",
                     (int)r->basis_points, "amount", (json_int_t)r->amount, "currency", r->currency,
                     "created_at", handler_time(r->created_at_ms).s);
}

static json_t *share_item(const void *row)
{
    return share_json(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_share_row_t));
    access_status_t st =
        access_shares_list(tx, handler_arg_str(p, "payment_id"), handler_arg_str(p, "party"),
                           &l.page, l.rows, &l.n, &l.has_more, &l.aerr);
    return handler_list_end(&l, st, share_item, NULL, result, err);
}

const handler_t handlers_shares[] = {
    {.name = "share.allocate",
     .summary = "Splits a succeeded payment's net amount among parties by basis points.",
     .schema = &allocate_schema,
     .execute = allocate},
    {.name = "share.list",
     .summary = "The account's allocations and refund reversals, newest first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
