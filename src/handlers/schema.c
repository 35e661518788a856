#include "schema.h"

#include "common/clock.h"
#include "common/enumstr.h"
#include "common/utf8.h"
#include "handlers/currency.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---- Paths ----------------------------------------------------------------- */

static void join_path(char *out, size_t size, const char *prefix, const char *name)
{
    char tmp[SCHEMA_PATH_MAX * 2];
    if (prefix[0] == '\0')
        snprintf(tmp, sizeof(tmp), "%s", name);
    else if (name[0] == '\0')
        snprintf(tmp, sizeof(tmp), "%s", prefix);
    else
        snprintf(tmp, sizeof(tmp), "%s.%s", prefix, name);
    utf8_copy(out, size, tmp);
}

bool schema_fail(handler_error_t *err, const char *prefix, const char *name, const char *fmt, ...)
{
    char path[SCHEMA_PATH_MAX];
    join_path(path, sizeof(path), prefix, name);
    char what[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char msg[SCHEMA_PATH_MAX + sizeof(what) + 2];
    snprintf(msg, sizeof(msg), "%s %s", path, what);

    err->code = TALLY_ERR_INVALID_REQUEST;
    utf8_copy(err->field, sizeof(err->field), path);
    utf8_copy(err->message, sizeof(err->message), msg);
    return false;
}

/* ---- Character classes ("A-Z0-9-") ------------------------------------------ */

static bool charset_has(const char *cls, unsigned char c)
{
    for (size_t i = 0; cls[i] != '\0'; i++) {
        unsigned char lo = (unsigned char)cls[i];
        if (cls[i + 1] == '-' && cls[i + 2] != '\0') {
            unsigned char hi = (unsigned char)cls[i + 2];
            if (c >= lo && c <= hi)
                return true;
            i += 2;
        } else if (c == lo) {
            return true;
        }
    }
    return false;
}

/* Whether every byte of s[0..len) is in cls (so ASCII only). */
static bool charset_all(const char *cls, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!charset_has(cls, (unsigned char)s[i]))
            return false;
    }
    return true;
}

/* ---- Validation ----------------------------------------------------------- */

static bool validate_object(const schema_object_t *s, const json_t *obj, const char *path,
                            handler_error_t *err);

static bool length_ok(const schema_field_t *f, size_t n, const char *prefix, const char *name,
                      handler_error_t *err)
{
    if (n >= f->min_len && n <= f->max_len)
        return true;
    if (f->min_len == f->max_len)
        return schema_fail(err, prefix, name, "must be exactly %zu characters long", f->max_len);
    if (f->min_len == 0)
        return schema_fail(err, prefix, name, "must be at most %zu characters long", f->max_len);
    return schema_fail(err, prefix, name, "must be %zu to %zu characters long", f->min_len,
                       f->max_len);
}

#define NOUN(constant, noun, json_type, doc) [constant] = noun,
static const char *const type_nouns[] = {SCHEMA_TYPE_LIST(NOUN)};
#undef NOUN

static const char *type_noun(schema_type_t t)
{
    return enumstr_name(type_nouns, ENUMSTR_COUNT(type_nouns), (int)t, "a string");
}

static bool validate_string(const schema_field_t *f, const json_t *v, const char *prefix,
                            const char *name, handler_error_t *err)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (memchr(s, '\0', len) != NULL)
        return schema_fail(err, prefix, name, "must not contain NUL characters");

    switch (f->type) {
    case SCHEMA_STRING:
        if (!length_ok(f, utf8_chars(s, len), prefix, name, err))
            return false;
        if (f->charset != NULL && !charset_all(f->charset, s, len))
            return schema_fail(err, prefix, name, "must contain only [%s]", f->charset);
        return true;
    case SCHEMA_ENUM:
        for (const char *const *e = f->values; *e != NULL; e++) {
            if (strcmp(*e, s) == 0)
                return true;
        }
        char list[160] = "";
        for (const char *const *e = f->values; *e != NULL; e++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", e == f->values ? "" : ", ", *e);
        }
        return schema_fail(err, prefix, name, "must be one of: %s", list);
    case SCHEMA_TIMESTAMP: {
        int64_t ms;
        if (clock_parse_rfc3339(s, &ms) != 0)
            return schema_fail(err, prefix, name,
                               "must be an RFC 3339 timestamp such as 2026-11-22T10:00:00Z");
        return true;
    }
    case SCHEMA_CURRENCY:
        if (len != 3 || !charset_all("a-z", s, len))
            return schema_fail(err, prefix, name,
                               "must be a three-letter ISO 4217 code in lower case, such as usd");
        if (!currency_known(s))
            return schema_fail(err, prefix, name,
                               "must be an active ISO 4217 currency code; %s is none", s);
        return true;
    case SCHEMA_ID:
        if (len < 1 || len > SCHEMA_ID_MAX || !charset_all(SCHEMA_ID_CHARSET, s, len))
            return schema_fail(err, prefix, name,
                               "must be an id: 1 to %d printable ASCII characters without spaces",
                               SCHEMA_ID_MAX);
        return true;
    default:
        return schema_fail(err, prefix, name, "has an unsupported schema type");
    }
}

static bool validate_map(const schema_field_t *f, const json_t *v, const char *prefix,
                         const char *name, handler_error_t *err)
{
    if (json_object_size(v) > f->max_items)
        return schema_fail(err, prefix, name, "must have at most %zu keys", f->max_items);
    char path[SCHEMA_PATH_MAX];
    join_path(path, sizeof(path), prefix, name);
    for (void *it = json_object_iter((json_t *)v); it != NULL;
         it = json_object_iter_next((json_t *)v, it)) {
        const char *key = json_object_iter_key(it);
        const json_t *val = json_object_iter_value(it);
        size_t klen = strlen(key);
        size_t kchars = utf8_chars(key, klen);
        if (kchars == 0)
            return schema_fail(err, path, "", "must not have an empty key");
        if (kchars > f->key_max_len)
            return schema_fail(err, path, key, "must be a key of 1 to %zu characters",
                               f->key_max_len);
        if (!json_is_string(val))
            return schema_fail(err, path, key, "must be a string");
        const char *s = json_string_value(val);
        size_t len = json_string_length(val);
        if (memchr(s, '\0', len) != NULL)
            return schema_fail(err, path, key, "must not contain NUL characters");
        if (utf8_chars(s, len) > f->max_len)
            return schema_fail(err, path, key, "must be at most %zu characters long", f->max_len);
    }
    return true;
}

static bool validate_array(const schema_field_t *f, const json_t *v, const char *prefix,
                           const char *name, handler_error_t *err)
{
    size_t n = json_array_size(v);
    if (n < f->min_items || n > f->max_items)
        return schema_fail(err, prefix, name, "must have %zu to %zu items", f->min_items,
                           f->max_items);
    char base[SCHEMA_PATH_MAX];
    join_path(base, sizeof(base), prefix, name);
    for (size_t i = 0; i < n; i++) {
        char item[SCHEMA_PATH_MAX + 24];
        snprintf(item, sizeof(item), "%s[%zu]", base, i);
        const json_t *it = json_array_get(v, i);
        if (!json_is_object(it))
            return schema_fail(err, item, "", "must be an object");
        if (!validate_object(f->items, it, item, err))
            return false;
    }
    if (f->unique == NULL)
        return true;
    for (size_t j = 1; j < n; j++) {
        const json_t *vj = json_object_get(json_array_get(v, j), f->unique);
        for (size_t i = 0; i < j && vj != NULL; i++) {
            const json_t *vi = json_object_get(json_array_get(v, i), f->unique);
            if (vi != NULL && json_equal(vi, vj)) {
                char item[SCHEMA_PATH_MAX + 24];
                snprintf(item, sizeof(item), "%s[%zu]", base, j);
                return schema_fail(err, item, f->unique,
                                   "repeats the %s of %s[%zu]; it must be unique", f->unique, base,
                                   i);
            }
        }
    }
    return true;
}

static bool validate_field(const schema_field_t *f, const json_t *v, const char *prefix,
                           handler_error_t *err)
{
    const char *name = f->name;
    if (json_is_null(v) && f->nullable)
        return true;
    switch (f->type) {
    case SCHEMA_STRING:
    case SCHEMA_ENUM:
    case SCHEMA_TIMESTAMP:
    case SCHEMA_CURRENCY:
    case SCHEMA_ID:
        if (!json_is_string(v))
            return schema_fail(err, prefix, name, "must be %s", type_noun(f->type));
        return validate_string(f, v, prefix, name, err);
    case SCHEMA_INTEGER: {
        /* jansson keeps 1999.0 and 1e3 as reals: only integer literals pass. */
        if (!json_is_integer(v))
            return schema_fail(err, prefix, name, "must be an integer");
        json_int_t n = json_integer_value(v);
        if (n < f->min || n > f->max)
            return schema_fail(err, prefix, name, "must be between %" PRId64 " and %" PRId64,
                               f->min, f->max);
        return true;
    }
    case SCHEMA_BOOLEAN:
        if (!json_is_boolean(v))
            return schema_fail(err, prefix, name, "must be a boolean");
        return true;
    case SCHEMA_MAP:
        if (!json_is_object(v))
            return schema_fail(err, prefix, name, "must be %s", type_noun(f->type));
        return validate_map(f, v, prefix, name, err);
    case SCHEMA_ARRAY:
        if (!json_is_array(v))
            return schema_fail(err, prefix, name, "must be %s", type_noun(f->type));
        return validate_array(f, v, prefix, name, err);
    }
    return schema_fail(err, prefix, name, "has an unsupported schema type");
}

const schema_field_t *schema_field_find(const schema_object_t *s, const char *name)
{
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static bool validate_object(const schema_object_t *s, const json_t *obj, const char *path,
                            handler_error_t *err)
{
    for (void *it = json_object_iter((json_t *)obj); it != NULL;
         it = json_object_iter_next((json_t *)obj, it)) {
        const char *key = json_object_iter_key(it);
        /* No path names a field called "": blame the object that holds it. */
        if (key[0] == '\0')
            return schema_fail(err, path[0] != '\0' ? path : "payload", "",
                               "must not have a field with an empty name");
        if (schema_field_find(s, key) == NULL)
            return schema_fail(err, path, key, "is not a known field");
    }
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        const json_t *v = json_object_get(obj, f->name);
        if (v == NULL) {
            if (f->required)
                return schema_fail(err, path, f->name, "is required");
            continue;
        }
        if (!validate_field(f, v, path, err))
            return false;
    }
    return s->check == NULL || s->check(obj, path, err);
}

bool schema_validate_value(const schema_field_t *f, const json_t *v, handler_error_t *err)
{
    memset(err, 0, sizeof(*err));
    return validate_field(f, v, "", err);
}

bool schema_validate(const schema_object_t *s, const json_t *obj, handler_error_t *err)
{
    memset(err, 0, sizeof(*err));
    if (!json_is_object(obj))
        return schema_fail(err, "", "payload", "must be a JSON object");
    return validate_object(s, obj, "", err);
}

/* ---- Defaults --------------------------------------------------------------- */

json_t *schema_apply_defaults(const schema_object_t *s, const json_t *payload)
{
    json_t *out = json_copy((json_t *)payload);
    if (out == NULL)
        return NULL;
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        if (f->default_json == NULL || json_object_get(out, f->name) != NULL)
            continue;
        json_t *d = json_loads(f->default_json, JSON_DECODE_ANY, NULL);
        if (d == NULL || json_object_set_new(out, f->name, d) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
