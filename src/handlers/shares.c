/* shares — the share.* job types (CONTRACT.md §6, payment_share_tracking). */
#include "handler_internal.h"

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
    size_t i;
    const json_t *s;
    json_array_foreach(shares, i, s) sum += json_integer_value(json_object_get(s, "basis_points"));
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

/* Execution lands with the access layer's shares module. */
static handler_status_t not_yet(access_tx_t *tx, const json_t *payload, json_t **result,
                                handler_error_t *err)
{
    handler_reject(err, TALLY_ERR_INTERNAL, NULL, "%s", "not implemented yet");
    return HANDLER_FAILED;
}

const handler_t handlers_shares[] = {
    {.name = "share.allocate",
     .summary = "Splits a succeeded payment's net amount among parties by basis points.",
     .schema = &allocate_schema,
     .execute = not_yet},
    {.name = "share.list",
     .summary = "The account's allocations and refund reversals, newest first.",
     .schema = &list_schema,
     .execute = not_yet},
    {0},
};
