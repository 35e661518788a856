/* audit — the audit.list job type (CONTRACT.md §6, payment_system_logs): the
 * account's own audit rows, newest first. */
#include "handler_internal.h"

#include "access/logs.h"

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {.name = "type",
     .type = SCHEMA_STRING,
     .min_len = 1,
     .max_len = 128,
     .doc = "Only rows of requests of this type (\"payment.record\")."},
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* One audit row; error_code is null for an ok answer. */
static json_t *row_json(const access_log_row_t *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s?, s:b, s:s}", "id", r->id, "request_id",
                     r->request_id, "type", r->type, "status", r->status, "error_code",
                     handler_nonempty(r->error_code), "replayed", r->replayed, "at",
                     handler_time(r->at_ms).s);
}

static json_t *row_item(const void *row)
{
    return row_json(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_log_row_t));
    access_status_t st = access_logs_list(tx, handler_arg_str(p, "type"), &l.page, l.rows, &l.n,
                                          &l.has_more, &l.aerr);
    return handler_list_end(&l, st, row_item, NULL, result, err);
}

const handler_t handlers_audit[] = {
    {.name = "audit.list",
     .summary = "The account's own audit rows (one per answered request, replays included), "
                "newest first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
