/* audit — the audit.list job type (CONTRACT.md §6, payment_system_logs): the
 * account's own audit rows, newest first. */
#include "handler_internal.h"

#include "access/logs.h"

#include <stdlib.h>

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

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    access_page_t page;
    handler_page(p, &page);
    access_log_row_t *rows = calloc((size_t)page.limit, sizeof(*rows));
    if (rows == NULL)
        return handler_oom(err);
    int n = 0;
    bool has_more = false;
    access_error_t aerr;
    if (access_logs_list(tx, handler_arg_str(p, "type"), &page, rows, &n, &has_more, &aerr) !=
        ACCESS_OK) {
        free(rows);
        return handler_access_error(&aerr, err);
    }
    json_t *data = json_array();
    for (int i = 0; data != NULL && i < n; i++) {
        if (json_array_append_new(data, row_json(&rows[i])) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    free(rows);
    *result = handler_list_result(data, has_more);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

const handler_t handlers_audit[] = {
    {.name = "audit.list",
     .summary = "The account's own audit rows (one per answered request, replays included), "
                "newest first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
