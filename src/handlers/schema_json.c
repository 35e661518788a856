#include "schema_json.h"

#include "common/enumstr.h"
#include "handlers/currency.h"

#include <stdio.h>
#include <string.h>

/* JSON Schema patterns follow ECMA-262, where '$' is the end of the input.
 * Python's re (used by the popular jsonschema package) also lets '$' match
 * before a final newline, so every pattern ends with "$(?!\n)", which means
 * the same in both dialects. */
#define PATTERN_END "$(?!\\n)"
#define NO_NUL      "^[^\\u0000]*" PATTERN_END
#define TS_PATTERN                                                                                 \
    "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:"         \
    "([0-5][0-9]|60)(\\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])" PATTERN_END

static json_t *object_schema(const schema_object_t *s, const char *description);

/* Adds "key": value (stolen) to obj; records a failure in *ok. */
static void put(json_t *obj, const char *key, json_t *value, bool *ok)
{
    if (value == NULL || json_object_set_new(obj, key, value) != 0)
        *ok = false;
}

#define JSON_TYPE(constant, noun, json_type, doc) [constant] = json_type,
static const char *const json_types[] = {SCHEMA_TYPE_LIST(JSON_TYPE)};
#undef JSON_TYPE

/* "type": the field's JSON type, or [it, "null"] when the field is nullable. */
static json_t *type_of(const schema_field_t *f)
{
    const char *type = enumstr_name(json_types, ENUMSTR_COUNT(json_types), (int)f->type, "string");
    return f->nullable ? json_pack("[s, s]", type, "null") : json_string(type);
}

/* "enum" of an enum field (its values) or a currency field (every code: an
 * enum rather than a pattern, so that a producer's validator, and a client
 * typed from the schema, refuses "uds" exactly as Tally does), with null
 * added when the field is nullable. */
static void put_enum(json_t *p, const schema_field_t *f, bool *ok)
{
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
    put(p, "type", type_of(f), &ok);

    switch (f->type) {
    case SCHEMA_STRING:
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
        put(p, "minimum", json_integer(f->min), &ok);
        put(p, "maximum", json_integer(f->max), &ok);
        break;
    case SCHEMA_BOOLEAN:
        break;
    case SCHEMA_ENUM:
    case SCHEMA_CURRENCY:
        put_enum(p, f, &ok);
        break;
    case SCHEMA_TIMESTAMP:
        put(p, "format", json_string("date-time"), &ok);
        put(p, "pattern", json_string(TS_PATTERN), &ok);
        break;
    case SCHEMA_ID:
        put(p, "minLength", json_integer(1), &ok);
        put(p, "maxLength", json_integer(SCHEMA_ID_MAX), &ok);
        put(p, "pattern", json_string("^[" SCHEMA_ID_CHARSET "]*" PATTERN_END), &ok);
        break;
    case SCHEMA_MAP:
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

json_t *schema_json_generate(const schema_object_t *s, const char *title, const char *description)
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
