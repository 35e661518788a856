#include "schema_doc.h"

#include "common/enumstr.h"
#include "common/mem.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define DOC_WORD(constant, noun, json_type, doc) [constant] = doc,
static const char *const doc_words[] = {SCHEMA_TYPE_LIST(DOC_WORD)};
#undef DOC_WORD

/* A growing string. */
typedef struct text {
    char *s;
    size_t len, cap;
} text_t;

static void add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (t->len + (size_t)n + 1 > t->cap) {
        t->cap = (t->len + (size_t)n + 1) * 2;
        t->s = mem_realloc(t->s, t->cap);
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* s inside a table cell: '|' escaped. */
static void add_cell(text_t *t, const char *s)
{
    for (const char *bar; (bar = strchr(s, '|')) != NULL; s = bar + 1)
        add(t, "%.*s\\|", (int)(bar - s), s);
    add(t, "%s", s);
}

void schema_doc_int(int64_t v, char *out, size_t size)
{
    int k = 0;
    int64_t p = v;
    while (p >= 10 && p % 10 == 0) {
        p /= 10;
        k++;
    }
    if (p == 1 && k >= 6)
        snprintf(out, size, "10^%d", k);
    else
        snprintf(out, size, "%" PRId64, v);
}

/* "1–255 characters", "at most 1000 characters", "exactly 3 characters". */
static void add_length(text_t *t, size_t min, size_t max, const char *unit)
{
    if (min == max)
        add(t, "exactly %zu %s", max, unit);
    else if (min == 0)
        add(t, "at most %zu %s", max, unit);
    else
        add(t, "%zu–%zu %s", min, max, unit);
}

/* The "bounds" cell of f. */
static void add_bounds(text_t *t, const schema_field_t *f)
{
    char lo[32], hi[32];
    switch (f->type) {
    case SCHEMA_STRING:
        add_length(t, f->min_len, f->max_len, "characters");
        if (f->charset != NULL)
            add(t, " of `[%s]`", f->charset);
        break;
    case SCHEMA_INTEGER:
        schema_doc_int(f->min, lo, sizeof(lo));
        schema_doc_int(f->max, hi, sizeof(hi));
        add(t, "%s–%s", lo, hi);
        break;
    case SCHEMA_BOOLEAN:
        add(t, "`true` or `false`");
        break;
    case SCHEMA_ENUM:
        for (size_t i = 0; f->values[i] != NULL; i++)
            add(t, "%s`%s`", i == 0 ? "" : f->values[i + 1] == NULL ? " or " : ", ", f->values[i]);
        break;
    case SCHEMA_TIMESTAMP:
        add(t, "RFC 3339 with `Z` or an offset");
        break;
    case SCHEMA_CURRENCY:
        add(t, "an active ISO 4217 code in lower case");
        break;
    case SCHEMA_ID:
        add(t, "1–%d printable ASCII characters, no spaces", SCHEMA_ID_MAX);
        break;
    case SCHEMA_MAP:
        add(t, "at most %zu keys of 1–%zu characters; values ", f->max_items, f->key_max_len);
        add_length(t, 0, f->max_len, "characters");
        break;
    case SCHEMA_ARRAY:
        add_length(t, f->min_items, f->max_items, "items");
        if (f->unique != NULL)
            add(t, "; each item's `%s` unique", f->unique);
        break;
    }
}

/* "`succeeded`" for the JSON text "\"succeeded\"", "`20`" for "20". */
static void add_default(text_t *t, const char *json)
{
    size_t n = strlen(json);
    if (n >= 2 && json[0] == '"' && json[n - 1] == '"')
        add(t, "`%.*s`", (int)(n - 2), json + 1);
    else
        add(t, "`%s`", json);
}

static void add_rows(text_t *t, const schema_object_t *s, const char *prefix)
{
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        add(t, "| `%s%s` | %s | %s%s | ", prefix, f->name, f->required ? "yes" : "",
            enumstr_name(doc_words, ENUMSTR_COUNT(doc_words), (int)f->type, "?"),
            f->nullable ? " or `null`" : "");
        add_bounds(t, f);
        add(t, " | ");
        if (f->default_json != NULL)
            add_default(t, f->default_json);
        add(t, " | ");
        add_cell(t, f->doc != NULL ? f->doc : "");
        add(t, " |\n");
        if (f->type == SCHEMA_ARRAY) {
            char sub[SCHEMA_PATH_MAX];
            snprintf(sub, sizeof(sub), "%s%s[].", prefix, f->name);
            add_rows(t, f->items, sub);
        }
    }
}

/* A line for the check hook of s and of every array's items. */
static void add_checks(text_t *t, const schema_object_t *s, const char *where)
{
    if (s->check_doc != NULL)
        add(t, "\nAlso checked%s: %s\n", where, s->check_doc);
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        if (f->type == SCHEMA_ARRAY) {
            char sub[SCHEMA_PATH_MAX];
            snprintf(sub, sizeof(sub), " in each item of `%s`", f->name);
            add_checks(t, f->items, sub);
        }
    }
}

char *schema_doc_markdown(const schema_object_t *s)
{
    text_t t = {0};
    if (s->fields[0].name == NULL) {
        add(&t, "No fields: the payload is `{}`.\n");
    } else {
        add(&t, "| field | required | type | bounds | default | about |\n"
                "|---|---|---|---|---|---|\n");
        add_rows(&t, s, "");
    }
    add_checks(&t, s, "");
    return t.s;
}
