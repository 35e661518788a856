#include "handler_internal.h"
#include "schema_doc.h"
#include "schema_json.h"

#include "common/mem.h"
#include "common/utf8.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The registry: every domain's table of job types, in listing order. A new
 * domain adds one line here and one HANDLER_DOMAIN line in handler_internal.h
 * (one per line, kept so by clang-format off, so that new domains merge cleanly). */
// clang-format off
static const handler_t *const domains[] = {
    handlers_payments,
    handlers_shares,
    handlers_payouts,
    handlers_routes,
    handlers_settings,
    handlers_codes,
    handlers_agents,
    handlers_audit,
};
// clang-format on

#define DOMAIN_COUNT (sizeof(domains) / sizeof(domains[0]))

size_t handler_count(void)
{
    size_t n = 0;
    for (size_t d = 0; d < DOMAIN_COUNT; d++) {
        for (const handler_t *h = domains[d]; h->name != NULL; h++)
            n++;
    }
    return n;
}

const handler_t *handler_at(size_t i)
{
    for (size_t d = 0; d < DOMAIN_COUNT; d++) {
        for (const handler_t *h = domains[d]; h->name != NULL; h++) {
            if (i-- == 0)
                return h;
        }
    }
    return NULL;
}

const handler_t *handler_find(const char *type)
{
    if (type == NULL)
        return NULL;
    for (size_t d = 0; d < DOMAIN_COUNT; d++) {
        for (const handler_t *h = domains[d]; h->name != NULL; h++) {
            if (strcmp(h->name, type) == 0)
                return h;
        }
    }
    return NULL;
}

const char *handler_name(const handler_t *h)
{
    return h->name;
}

bool handler_validate(const handler_t *h, const json_t *payload, handler_error_t *err)
{
    return schema_validate(h->schema, payload, err);
}

json_t *handler_json_schema(const handler_t *h)
{
    char title[96], doc[512];
    snprintf(title, sizeof(title), "%s payload", h->name);
    snprintf(doc, sizeof(doc),
             "%s Integers are JSON integers written without fraction or exponent "
             "(1999, not 1999.0 nor \"1999\"). Unknown fields are rejected.",
             h->summary);
    return schema_json_generate(h->schema, title, doc);
}

char *handler_doc_markdown(const handler_t *h)
{
    char *table = schema_doc_markdown(h->schema);
    size_t n = strlen(h->name) + strlen(h->summary) + strlen(table) + 32;
    char *out = mem_alloc(n);
    snprintf(out, n, "### `%s`\n\n%s\n\n%s", h->name, h->summary, table);
    free(table);
    return out;
}

handler_status_t handler_execute(const handler_t *h, access_tx_t *tx, const json_t *payload,
                                 json_t **result, handler_error_t *err)
{
    *result = NULL;
    /* Validating again is cheap and makes execute safe against a caller that
     * skipped handler_validate. */
    if (!schema_validate(h->schema, payload, err))
        return HANDLER_REJECTED;
    json_t *full = schema_apply_defaults(h->schema, payload);
    if (full == NULL)
        return handler_oom(err);
    handler_status_t st = h->execute(tx, full, result, err);
    json_decref(full);
    if (st == HANDLER_OK && *result == NULL)
        st = handler_oom(err);
    if (st != HANDLER_OK) {
        json_decref(*result);
        *result = NULL;
    }
    return st;
}

/* ---- Payload arguments ---------------------------------------------------- */

const char *handler_arg_str(const json_t *payload, const char *name)
{
    return json_string_value(json_object_get(payload, name));
}

int64_t handler_arg_int(const json_t *payload, const char *name, int64_t dflt)
{
    const json_t *v = json_object_get(payload, name);
    return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

bool handler_arg_bool(const json_t *payload, const char *name, bool dflt)
{
    const json_t *v = json_object_get(payload, name);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

bool handler_arg_has(const json_t *payload, const char *name)
{
    return json_object_get(payload, name) != NULL;
}

/* ---- Results ----------------------------------------------------------------- */

handler_time_t handler_time(int64_t epoch_ms)
{
    handler_time_t t;
    clock_format_rfc3339(epoch_ms, t.s, sizeof(t.s));
    return t;
}

const char *handler_nonempty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

json_t *handler_list_result(json_t *data, bool has_more)
{
    if (data == NULL)
        return NULL;
    return json_pack("{s:o, s:b}", "data", data, "has_more", has_more);
}

void handler_page(const json_t *payload, access_page_t *page)
{
    page->limit = (int)handler_arg_int(payload, "limit", HANDLER_LIST_LIMIT_DEFAULT);
    page->starting_after = handler_arg_str(payload, "starting_after");
}

void handler_list_begin(handler_list_t *l, const json_t *payload, size_t row_size)
{
    memset(l, 0, sizeof(*l));
    handler_page(payload, &l->page);
    l->row_size = row_size;
    l->rows = mem_calloc((size_t)l->page.limit, row_size);
}

handler_status_t handler_list_end(handler_list_t *l, access_status_t st,
                                  json_t *(*item)(const void *row), void (*clear)(void *row),
                                  json_t **result, handler_error_t *err)
{
    if (st != ACCESS_OK) {
        free(l->rows);
        return handler_access_error(&l->aerr, err);
    }
    json_t *data = json_array();
    /* {"data":[…],"has_more":false}: the frame, then each item and a comma. */
    size_t used = sizeof("{\"data\":[],\"has_more\":false}") - 1;
    bool full = false;
    char *row = l->rows;
    for (int i = 0; i < l->n; i++, row += l->row_size) {
        json_t *it = data != NULL && !full ? item(row) : NULL;
        size_t len = it != NULL ? json_dumpb(it, NULL, 0, JSON_COMPACT) + 1 : 0;
        if (it != NULL && i > 0 && used + len > HANDLER_LIST_PAGE_MAX_BYTES) {
            full = true; /* the rest waits for the next page */
            json_decref(it);
        } else if (data != NULL && !full) {
            used += len;
            if (json_array_append_new(data, it) != 0) {
                json_decref(data);
                data = NULL;
            }
        }
        if (clear != NULL)
            clear(row);
    }
    free(l->rows);
    *result = handler_list_result(data, l->has_more || full);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Answers ------------------------------------------------------------------- */

static void fill(handler_error_t *err, tally_errcode_t code, const char *field, const char *msg)
{
    err->code = code;
    utf8_copy(err->field, sizeof(err->field), field != NULL ? field : "");
    utf8_copy(err->message, sizeof(err->message), msg != NULL ? msg : "");
}

handler_status_t handler_access_error(const access_error_t *aerr, handler_error_t *err)
{
    switch (aerr->status) {
    case ACCESS_NOT_FOUND:
        fill(err, TALLY_ERR_NOT_FOUND, aerr->field, aerr->message);
        return HANDLER_REJECTED;
    case ACCESS_CONFLICT:
        fill(err, TALLY_ERR_CONFLICT, aerr->field, aerr->message);
        return HANDLER_REJECTED;
    case ACCESS_INSUFFICIENT_FUNDS:
        fill(err, TALLY_ERR_INSUFFICIENT_FUNDS, aerr->field, aerr->message);
        return HANDLER_REJECTED;
    case ACCESS_INVALID:
        fill(err, TALLY_ERR_INVALID_REQUEST, aerr->field, aerr->message);
        return HANDLER_REJECTED;
    case ACCESS_RETRY:
        fill(err, TALLY_ERR_INTERNAL, NULL, aerr->message);
        return HANDLER_RETRY;
    case ACCESS_UNAVAILABLE:
        fill(err, TALLY_ERR_INTERNAL, NULL, aerr->message);
        return HANDLER_UNAVAILABLE;
    case ACCESS_OK: /* a caller bug: treat as an unexpected failure */
    case ACCESS_FAILED:
        break;
    }
    fill(err, TALLY_ERR_INTERNAL, NULL, aerr->message);
    return HANDLER_FAILED;
}

handler_status_t handler_reject(handler_error_t *err, tally_errcode_t code, const char *field,
                                const char *fmt, ...)
{
    char msg[1024]; /* longer than err->message: fill truncates on a character boundary */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fill(err, code, field, msg);
    return HANDLER_REJECTED;
}

handler_status_t handler_oom(handler_error_t *err)
{
    fill(err, TALLY_ERR_INTERNAL, NULL, "could not build the result (out of memory)");
    return HANDLER_FAILED;
}
