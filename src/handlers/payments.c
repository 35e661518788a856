/* payments — the payment.* job types (CONTRACT.md §6, stripe_payments). */
#include "handler_internal.h"

/* ---- Payload schemas ---------------------------------------------------- */

static const char *const record_statuses[] = {"pending", "succeeded", "failed", NULL};
static const char *const any_status[] = {"pending", "succeeded", "failed", "refunded", NULL};

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

/* ---- Job types ------------------------------------------------------------ */

/* Execution lands with the access layer's payments module. */
static handler_status_t not_yet(access_tx_t *tx, const json_t *payload, json_t **result,
                                handler_error_t *err)
{
    handler_reject(err, TALLY_ERR_INTERNAL, NULL, "%s", "not implemented yet");
    return HANDLER_FAILED;
}

const handler_t handlers_payments[] = {
    {.name = "payment.record",
     .summary = "Records a payment; a second one with the same external_id is a conflict.",
     .schema = &record_schema,
     .execute = not_yet},
    {.name = "payment.update_status",
     .summary = "Moves a pending payment to succeeded or failed.",
     .schema = &update_status_schema,
     .execute = not_yet},
    {.name = "payment.refund",
     .summary = "Refunds part or all of a succeeded payment; never beyond its unrefunded amount.",
     .schema = &refund_schema,
     .execute = not_yet},
    {.name = "payment.get",
     .summary = "One payment of the account.",
     .schema = &get_schema,
     .execute = not_yet},
    {.name = "payment.list",
     .summary = "The account's payments, newest first.",
     .schema = &list_schema,
     .execute = not_yet},
    {0},
};
