#include "schema.h"

#include "common/clock.h"
#include "common/utf8.h"
#include "handlers/currency.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Paths are built in fixed buffers; err->field keeps at most 127 bytes. */
#define PATH_MAX_LEN 256

/* JSON Schema patterns follow ECMA-262, where '$' is the end of the input.
 * Python's re (used by the popular jsonschema package) also lets '$' match
 * before a final newline, so every pattern ends with "$(?!\n)", which means
 * the same in both dialects. */
#define PATTERN_END "$(?!\\n)"
#define NO_NUL      "^[^\\u0000]*" PATTERN_END
#define TS_PATTERN                                                                                 \
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:"         \
    "([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])" PATTERN_END
#define ID_CHARSET "!-~" /* printable ASCII without space */

/* ---- Paths ----------------------------------------------------------------- */

static void join_path(char *out, size_t size, const char *prefix, const char *name)
{
    char tmp[PATH_MAX_LEN * 2];
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
    char path[PATH_MAX_LEN];
    join_path(path, sizeof(path), prefix, name);
    char what[192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    char msg[PATH_MAX_LEN + sizeof(what) + 2];
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

static const char *type_noun(schema_type_t t)
{
    switch (t) {
    case SCHEMA_INTEGER:
        return "an integer";
    case SCHEMA_BOOLEAN:
        return "a boolean";
    case SCHEMA_MAP:
        return "an object of strings";
    case SCHEMA_ARRAY:
        return "an array";
    default:
        return "a string";
    }
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
        if (len < 1 || len > SCHEMA_ID_MAX || !charset_all(ID_CHARSET, s, len))
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
    char path[PATH_MAX_LEN];
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
    char base[PATH_MAX_LEN];
    join_path(base, sizeof(base), prefix, name);
    for (size_t i = 0; i < n; i++) {
        char item[PATH_MAX_LEN + 24];
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
                char item[PATH_MAX_LEN + 24];
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

static const schema_field_t *find_field(const schema_object_t *s, const char *name)
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
        if (find_field(s, key) == NULL)
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

/* ---- JSON Schema -------------------------------------------------------------- */

static json_t *object_schema(const schema_object_t *s, const char *description);

/* Adds "key": value (stolen) to obj; records a failure in *ok. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *ok = false;
}

static json_t *type_of(const char *type, bool nullable)
{
    return nullable ? json_pack("[s, s]", type, "null") : json_string(type);
}

/* "type" and "enum" of an enum field (its values) or a currency field (every
 * code: an enum rather than a pattern, so that a producer's validator, and a
 * client typed from the schema, refuses "uds" exactly as Tally does), with
 * null added when the field is nullable. */
static void put_enum(json_t *p, const schema_field_t *f, bool *ok)
{
    put(p, "type", type_of("string", f->nullable), ok);
    json_t *e = json_array();
    for (size_t i = 0; e != NULL; i++) {
        const char *v = f->type == SCHEMA_CURRENCY ? currency_code(i) : f->values[i];
        if (v == NULL)
            break;
        if (json_array_append_new(e, json_string(v)) != 0)
            *ok = false;
    }
    if (e != NULL && f->nullable && json_array_append_new(e, json_null()) != 0)
        *ok = false;
    put(p, "enum", e, ok);
}

static json_t *field_schema(const schema_field_t *f)
{
    json_t *p = json_object();
    if (p == NULL)
        return NULL;
    bool ok = true;
    char pattern[128];
    char doc[512];
    snprintf(doc, sizeof(doc), "%s", f->doc != NULL ? f->doc : "");
    const char *extra = NULL;
    char unique[160];
    if (f->type == SCHEMA_TIMESTAMP) {
        extra = "RFC 3339 with 'Z' or an offset; the date must exist in the calendar.";
    } else if (f->type == SCHEMA_CURRENCY && doc[0] == '\0') {
        extra = "An active ISO 4217 currency code in lower case.";
    } else if (f->type == SCHEMA_ARRAY && f->unique != NULL) {
        snprintf(unique, sizeof(unique),
                 "Each item's %s must be unique (checked by Tally; JSON Schema cannot express it).",
                 f->unique);
        extra = unique;
    }
    if (extra != NULL)
        snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc), "%s%s", doc[0] != '\0' ? " " : "",
                 extra);
    if (doc[0] != '\0')
        put(p, "description", json_string(doc), &ok);

    switch (f->type) {
    case SCHEMA_STRING:
        put(p, "type", type_of("string", f->nullable), &ok);
        if (f->min_len > 0)
            put(p, "minLength", json_integer((json_int_t)f->min_len), &ok);
        put(p, "maxLength", json_integer((json_int_t)f->max_len), &ok);
        if (f->charset != NULL)
            snprintf(pattern, sizeof(pattern), "^[%s]*" PATTERN_END, f->charset);
        else
            snprintf(pattern, sizeof(pattern), "%s", NO_NUL);
        put(p, "pattern", json_string(pattern), &ok);
        break;
    case SCHEMA_INTEGER:
        put(p, "type", type_of("integer", f->nullable), &ok);
        put(p, "minimum", json_integer(f->min), &ok);
        put(p, "maximum", json_integer(f->max), &ok);
        break;
    case SCHEMA_BOOLEAN:
        put(p, "type", type_of("boolean", f->nullable), &ok);
        break;
    case SCHEMA_ENUM:
    case SCHEMA_CURRENCY:
        put_enum(p, f, &ok);
        break;
    case SCHEMA_TIMESTAMP:
        put(p, "type", type_of("string", f->nullable), &ok);
        put(p, "format", json_string("date-time"), &ok);
        put(p, "pattern", json_string(TS_PATTERN), &ok);
        break;
    case SCHEMA_ID:
        put(p, "type", type_of("string", f->nullable), &ok);
        put(p, "minLength", json_integer(1), &ok);
        put(p, "maxLength", json_integer(SCHEMA_ID_MAX), &ok);
        put(p, "pattern", json_string("^[" ID_CHARSET "]*" PATTERN_END), &ok);
        break;
    case SCHEMA_MAP:
        put(p, "type", type_of("object", f->nullable), &ok);
        put(p, "maxProperties", json_integer((json_int_t)f->max_items), &ok);
        put(p, "propertyNames",
            json_pack("{s:i, s:I, s:s}", "minLength", 1, "maxLength", (json_int_t)f->key_max_len,
                      "pattern", NO_NUL),
            &ok);
        put(p, "additionalProperties",
            json_pack("{s:s, s:I, s:s}", "type", "string", "maxLength", (json_int_t)f->max_len,
                      "pattern", NO_NUL),
            &ok);
        break;
    case SCHEMA_ARRAY:
        put(p, "type", type_of("array", f->nullable), &ok);
        put(p, "minItems", json_integer((json_int_t)f->min_items), &ok);
        put(p, "maxItems", json_integer((json_int_t)f->max_items), &ok);
        put(p, "items", object_schema(f->items, NULL), &ok);
        break;
    }
    if (f->default_json != NULL)
        put(p, "default", json_loads(f->default_json, JSON_DECODE_ANY, NULL), &ok);
    if (!ok) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *object_schema(const schema_object_t *s, const char *description)
{
    json_t *o = json_object();
    json_t *props = json_object();
    json_t *required = json_array();
    bool ok = o != NULL && props != NULL && required != NULL;
    for (const schema_field_t *f = s->fields; ok && f->name != NULL; f++) {
        put(props, f->name, field_schema(f), &ok);
        if (f->required && json_array_append_new(required, json_string(f->name)) != 0)
            ok = false;
    }
    char doc[1024] = "";
    if (description != NULL)
        snprintf(doc, sizeof(doc), "%s", description);
    if (s->check_doc != NULL)
        snprintf(doc + strlen(doc), sizeof(doc) - strlen(doc),
                 "%sChecked by Tally, not expressible in JSON Schema: %s",
                 doc[0] != '\0' ? " " : "", s->check_doc);
    if (ok && doc[0] != '\0')
        put(o, "description", json_string(doc), &ok);
    if (ok)
        put(o, "type", json_string("object"), &ok);
    if (ok) {
        put(o, "properties", props, &ok);
        props = NULL;
    }
    if (ok && json_array_size(required) > 0) {
        put(o, "required", required, &ok);
        required = NULL;
    }
    if (ok)
        put(o, "additionalProperties", json_false(), &ok);
    json_decref(props);
    json_decref(required);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *schema_to_json_schema(const schema_object_t *s, const char *title, const char *description)
{
    json_t *top = json_pack("{s:s, s:s}", "$schema", "https://json-schema.org/draft/2020-12/schema",
                            "title", title);
    json_t *body = object_schema(s, description);
    if (top == NULL || body == NULL || json_object_update(top, body) != 0) {
        json_decref(top);
        json_decref(body);
        return NULL;
    }
    json_decref(body);
    return top;
}

/* ---- Lint --------------------------------------------------------------------- */

static bool charset_sound(const char *cls)
{
    if (cls[0] == '\0' || cls[0] == '^')
        return false;
    for (const char *c = cls; *c != '\0'; c++) {
        if (*c < '!' || *c > '~' || *c == '\\' || *c == ']' || *c == '[')
            return false;
    }
    return true;
}

static bool lint_object(const schema_object_t *s, const char *path, char *why, size_t size);

static bool lint_field(const schema_field_t *f, const char *path, char *why, size_t size)
{
#define LINT(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, size, __VA_ARGS__);                                                      \
            return false;                                                                          \
        }                                                                                          \
    } while (0)
    switch (f->type) {
    case SCHEMA_STRING:
        LINT(f->max_len > 0 && f->min_len <= f->max_len, "%s%s: bad length bounds", path, f->name);
        LINT(f->charset == NULL || charset_sound(f->charset), "%s%s: bad charset", path, f->name);
        break;
    case SCHEMA_INTEGER:
        LINT(f->min < f->max, "%s%s: integer needs min < max", path, f->name);
        break;
    case SCHEMA_ENUM:
        LINT(f->values != NULL && f->values[0] != NULL, "%s%s: empty enum", path, f->name);
        break;
    case SCHEMA_MAP:
        LINT(f->max_items > 0 && f->key_max_len > 0 && f->max_len > 0,
             "%s%s: map needs max_items, key_max_len, max_len", path, f->name);
        break;
    case SCHEMA_ARRAY:
        LINT(f->items != NULL && f->max_items > 0 && f->min_items <= f->max_items,
             "%s%s: array needs items and item bounds", path, f->name);
        LINT(f->unique == NULL || find_field(f->items, f->unique) != NULL,
             "%s%s: unique names no item field", path, f->name);
        char sub[PATH_MAX_LEN];
        snprintf(sub, sizeof(sub), "%s%s[].", path, f->name);
        if (!lint_object(f->items, sub, why, size))
            return false;
        break;
    default:
        break;
    }
    if (f->default_json != NULL) {
        json_t *d = json_loads(f->default_json, JSON_DECODE_ANY, NULL);
        handler_error_t err;
        bool valid = d != NULL && validate_field(f, d, "", &err);
        json_decref(d);
        LINT(valid, "%s%s: default does not validate", path, f->name);
        LINT(!f->required, "%s%s: a required field has no use for a default", path, f->name);
    }
    return true;
#undef LINT
}

static bool lint_object(const schema_object_t *s, const char *path, char *why, size_t size)
{
    if (s == NULL || s->fields == NULL) {
        snprintf(why, size, "%s: no field table", path);
        return false;
    }
    if (s->check != NULL && s->check_doc == NULL) {
        snprintf(why, size, "%s: check hook without check_doc", path);
        return false;
    }
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        if (find_field(s, f->name) != f) {
            snprintf(why, size, "%s%s: declared twice", path, f->name);
            return false;
        }
        if (!lint_field(f, path, why, size))
            return false;
    }
    return true;
}

bool schema_lint(const schema_object_t *s, char *why, size_t size)
{
    return lint_object(s, "", why, size);
}
