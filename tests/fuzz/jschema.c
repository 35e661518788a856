#include "jschema.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATTERN_END_PCRE "$(?!\\n)"
#define NO_NUL_PATTERN   "^[^\\u0000]*$(?!\\n)"

typedef struct ctx {
    char *why;
    size_t size;
    char *unknown;
    size_t unknown_size;
} ctx_t;

static bool no(ctx_t *c, const char *path, const char *keyword)
{
    snprintf(c->why, c->size, "%s: fails \"%s\"", path[0] != '\0' ? path : "(top)", keyword);
    return false;
}

/* ---- Patterns --------------------------------------------------------------- */

#define REGEX_CACHE 32

static struct {
    char *pattern;
    regex_t re;
    bool ok;
} cache[REGEX_CACHE];
static size_t cached;

/* The compiled pattern, or NULL when POSIX cannot express it. */
static const regex_t *regex_for(const char *pattern)
{
    for (size_t i = 0; i < cached; i++) {
        if (strcmp(cache[i].pattern, pattern) == 0)
            return cache[i].ok ? &cache[i].re : NULL;
    }
    if (cached == REGEX_CACHE)
        abort(); /* more distinct patterns than the generator can emit: a bug here */
    size_t len = strlen(pattern);
    char *ere = malloc(len + 1);
    if (ere == NULL)
        abort();
    memcpy(ere, pattern, len + 1);
    size_t end = strlen(PATTERN_END_PCRE);
    if (len >= end && strcmp(ere + len - end, PATTERN_END_PCRE) == 0)
        strcpy(ere + len - end, "$");
    size_t i = cached++;
    cache[i].pattern = strdup(pattern);
    cache[i].ok = regcomp(&cache[i].re, ere, REG_EXTENDED | REG_NOSUB) == 0;
    free(ere);
    return cache[i].ok ? &cache[i].re : NULL;
}

static bool pattern_ok(const char *pattern, const char *s, size_t len, ctx_t *c)
{
    if (strcmp(pattern, NO_NUL_PATTERN) == 0)
        return memchr(s, '\0', len) == NULL;
    /* A leading negative lookahead, "^(?!A)B": not "^A", and "^B". */
    const char *close = strncmp(pattern, "^(?!", 4) == 0 ? strchr(pattern + 4, ')') : NULL;
    if (close != NULL) {
        char not [256], rest[512];
        snprintf(not, sizeof(not ), "^%.*s", (int)(close - pattern - 4), pattern + 4);
        snprintf(rest, sizeof(rest), "^%s", close + 1);
        return !pattern_ok(not, s, len, c) && pattern_ok(rest, s, len, c);
    }
    const regex_t *re = regex_for(pattern);
    if (re == NULL) {
        if (c->unknown[0] == '\0')
            snprintf(c->unknown, c->unknown_size, "pattern %s", pattern);
        return true;
    }
    /* regexec reads a C string: an embedded NUL would hide the rest. */
    if (memchr(s, '\0', len) != NULL)
        return false;
    return regexec(re, s, 0, NULL, 0) == 0;
}

/* ---- Keywords --------------------------------------------------------------- */

static size_t code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    }
    return n;
}

static bool type_is(const char *t, const json_t *v)
{
    if (strcmp(t, "null") == 0)
        return json_is_null(v);
    if (strcmp(t, "boolean") == 0)
        return json_is_boolean(v);
    if (strcmp(t, "integer") == 0)
        return json_is_integer(v);
    if (strcmp(t, "number") == 0)
        return json_is_number(v);
    if (strcmp(t, "string") == 0)
        return json_is_string(v);
    if (strcmp(t, "array") == 0)
        return json_is_array(v);
    if (strcmp(t, "object") == 0)
        return json_is_object(v);
    return false;
}

static bool check(const json_t *schema, const json_t *v, const char *path, ctx_t *c);

static bool check_object(const json_t *schema, const json_t *v, const char *path, ctx_t *c)
{
    const json_t *props = json_object_get(schema, "properties");
    const json_t *addl = json_object_get(schema, "additionalProperties");
    const json_t *names = json_object_get(schema, "propertyNames");
    const json_t *maxp = json_object_get(schema, "maxProperties");
    if (maxp != NULL && (json_int_t)json_object_size(v) > json_integer_value(maxp))
        return no(c, path, "maxProperties");
    const json_t *req = json_object_get(schema, "required");
    for (size_t i = 0; i < json_array_size(req); i++) {
        if (json_object_get(v, json_string_value(json_array_get(req, i))) == NULL)
            return no(c, path, "required");
    }
    const char *key;
    size_t klen;
    json_t *val;
    json_object_keylen_foreach((json_t *)v, key, klen, val)
    {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s%s%.*s", path, path[0] != '\0' ? "." : "", (int)klen, key);
        if (names != NULL) {
            json_t *k = json_stringn(key, klen);
            bool ok = check(names, k, sub, c);
            json_decref(k);
            if (!ok)
                return false;
        }
        const json_t *ps = json_object_getn(props, key, klen);
        if (ps != NULL) {
            if (!check(ps, val, sub, c))
                return false;
        } else if (json_is_false(addl)) {
            return no(c, sub, "additionalProperties");
        } else if (json_is_object(addl) && !check(addl, val, sub, c)) {
            return false;
        }
    }
    return true;
}

static bool check(const json_t *schema, const json_t *v, const char *path, ctx_t *c)
{
    const char *kw;
    json_t *arg;
    json_object_foreach((json_t *)schema, kw, arg)
    {
        if (strcmp(kw, "type") == 0) {
            bool any = false;
            if (json_is_string(arg))
                any = type_is(json_string_value(arg), v);
            for (size_t i = 0; !any && i < json_array_size(arg); i++)
                any = type_is(json_string_value(json_array_get(arg, i)), v);
            if (!any)
                return no(c, path, "type");
        } else if (strcmp(kw, "enum") == 0) {
            bool any = false;
            for (size_t i = 0; !any && i < json_array_size(arg); i++)
                any = json_equal(json_array_get(arg, i), v);
            if (!any)
                return no(c, path, "enum");
        } else if (strcmp(kw, "const") == 0) {
            if (!json_equal(arg, v))
                return no(c, path, "const");
        } else if (strcmp(kw, "anyOf") == 0) {
            bool any = false;
            for (size_t i = 0; !any && i < json_array_size(arg); i++) {
                char ignored[8], *saved = c->why;
                size_t saved_size = c->size;
                c->why = ignored, c->size = sizeof(ignored);
                any = check(json_array_get(arg, i), v, path, c);
                c->why = saved, c->size = saved_size;
            }
            if (!any)
                return no(c, path, "anyOf");
        } else if (strcmp(kw, "minLength") == 0 || strcmp(kw, "maxLength") == 0) {
            if (!json_is_string(v))
                continue;
            json_int_t n = (json_int_t)code_points(json_string_value(v), json_string_length(v));
            if (kw[1] == 'i' ? n < json_integer_value(arg) : n > json_integer_value(arg))
                return no(c, path, kw);
        } else if (strcmp(kw, "pattern") == 0) {
            if (json_is_string(v) &&
                !pattern_ok(json_string_value(arg), json_string_value(v), json_string_length(v), c))
                return no(c, path, "pattern");
        } else if (strcmp(kw, "minimum") == 0 || strcmp(kw, "maximum") == 0) {
            if (!json_is_integer(v))
                continue;
            json_int_t n = json_integer_value(v), b = json_integer_value(arg);
            if (kw[1] == 'i' ? n < b : n > b)
                return no(c, path, kw);
        } else if (strcmp(kw, "minItems") == 0 || strcmp(kw, "maxItems") == 0) {
            if (!json_is_array(v))
                continue;
            json_int_t n = (json_int_t)json_array_size(v), b = json_integer_value(arg);
            if (kw[1] == 'i' ? n < b : n > b)
                return no(c, path, kw);
        } else if (strcmp(kw, "items") == 0) {
            for (size_t i = 0; i < json_array_size(v); i++) {
                char sub[512];
                snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
                if (!check(arg, json_array_get(v, i), sub, c))
                    return false;
            }
        } else if (strcmp(kw, "properties") == 0 || strcmp(kw, "additionalProperties") == 0 ||
                   strcmp(kw, "propertyNames") == 0 || strcmp(kw, "maxProperties") == 0 ||
                   strcmp(kw, "required") == 0) {
            continue; /* check_object, once, below */
        } else if (strcmp(kw, "$schema") == 0 || strcmp(kw, "title") == 0 ||
                   strcmp(kw, "description") == 0 || strcmp(kw, "default") == 0 ||
                   strcmp(kw, "format") == 0) {
            continue;
        } else if (c->unknown[0] == '\0') {
            snprintf(c->unknown, c->unknown_size, "keyword %s", kw);
        }
    }
    return !json_is_object(v) || check_object(schema, v, path, c);
}

bool jschema_accepts(const json_t *schema, const json_t *instance, char *why, size_t size,
                     char *unknown, size_t unknown_size)
{
    ctx_t c = {why, size, unknown, unknown_size};
    why[0] = '\0';
    unknown[0] = '\0';
    return check(schema, instance, "", &c);
}
