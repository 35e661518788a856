#include "schema_lint.h"

#include <stdio.h>

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
        LINT(f->unique == NULL || schema_field_find(f->items, f->unique) != NULL,
             "%s%s: unique names no item field", path, f->name);
        char sub[SCHEMA_PATH_MAX];
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
        bool valid = d != NULL && schema_validate_value(f, d, &err);
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
        if (schema_field_find(s, f->name) != f) {
            snprintf(why, size, "%s%s: declared twice", path, f->name);
            return false;
        }
        if (!lint_field(f, path, why, size))
            return false;
    }
    return true;
}

bool schema_lint_check(const schema_object_t *s, char *why, size_t size)
{
    return lint_object(s, "", why, size);
}
