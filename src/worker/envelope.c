#include "envelope.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

bool envelope_utf8_valid(const unsigned char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            n = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            n = 4, cp = c & 0x07, min = 0x10000;
        } else {
            goto fail;
        }
        if (len - i < n)
            goto fail;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                goto fail;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            goto fail;
        i += n;
    }
    return true;
fail:
    if (bad != NULL)
        *bad = i;
    return false;
}

/* Characters (code points) of valid UTF-8. */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

bool envelope_topic_valid(const char *s, size_t len)
{
    if (len == 0 || len > ENVELOPE_TOPIC_MAX || (len == 1 && s[0] == '.') ||
        (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static envelope_kind_t dlq(envelope_t *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static envelope_kind_t dlq(envelope_t *env, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env->error_message, sizeof(env->error_message), fmt, ap);
    va_end(ap);
    /* jansson's "near '…'" and the truncation can cut a character in two; the
     * reason goes into a header and a JSON log line, so keep it UTF-8. */
    unsigned char *m = (unsigned char *)env->error_message;
    size_t len = strlen(env->error_message), bad = 0;
    while (!envelope_utf8_valid(m, len, &bad))
        m[bad] = '?';
    env->error = TALLY_ERR_INVALID_REQUEST;
    env->error_field[0] = '\0';
    return ENVELOPE_DLQ;
}

static envelope_kind_t reject(envelope_t *env, tally_errcode_t code, const char *field,
                              const char *message)
{
    env->error = code;
    snprintf(env->error_field, sizeof(env->error_field), "%s", field);
    snprintf(env->error_message, sizeof(env->error_message), "%s", message);
    env->handler = NULL;
    if (env->payload != NULL) {
        json_decref(env->payload);
        env->payload = NULL;
    }
    return ENVELOPE_ANSWER;
}

static bool id_valid(const char *s, size_t len)
{
    if (len == 0 || len > ENVELOPE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E)
            return false;
    }
    return true;
}

/* The member, or NULL when absent or JSON null (optional fields). */
static json_t *optional(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

envelope_kind_t envelope_decode(const void *key, size_t key_len, const void *value,
                                size_t value_len, envelope_t *env)
{
    memset(env, 0, sizeof(*env));
    if (value == NULL || value_len == 0)
        return dlq(env, "empty message value");
    if (value_len > ENVELOPE_MAX_VALUE)
        return dlq(env, "message value of %zu bytes exceeds the 1 MiB limit", value_len);
    size_t bad = 0;
    if (!envelope_utf8_valid(value, value_len, &bad))
        return dlq(env, "message value is not valid UTF-8 (byte %zu)", bad);

    json_error_t jerr;
    json_t *root = json_loadb(value, value_len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (root == NULL)
        return dlq(env, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    envelope_kind_t kind = ENVELOPE_ANSWER;
    if (!json_is_object(root)) {
        kind = dlq(env, "not a JSON object");
        goto done;
    }

    json_t *id = json_object_get(root, "id");
    if (!json_is_string(id) || !id_valid(json_string_value(id), json_string_length(id))) {
        kind = dlq(env, id == NULL ? "id is missing" : "id is not 1-128 printable ASCII chars");
        goto done;
    }
    memcpy(env->id, json_string_value(id), json_string_length(id) + 1);

    json_t *acct = json_object_get(root, "account_id");
    if (!json_is_string(acct) ||
        !access_account_parse(json_string_value(acct), json_string_length(acct), &env->account)) {
        kind = dlq(env, acct == NULL ? "account_id is missing"
                                     : "account_id is not 1-64 chars of [A-Za-z0-9_-]");
        goto done;
    }

    /* From here on the request can be answered. Record what the result echoes
     * first, so that an error answer still carries it. */
    json_t *type = json_object_get(root, "type");
    if (json_is_string(type) && json_string_length(type) <= ENVELOPE_TYPE_MAX)
        memcpy(env->type, json_string_value(type), json_string_length(type) + 1);
    json_t *corr = optional(root, "correlation_id");
    bool corr_ok =
        corr == NULL || (json_is_string(corr) && json_string_length(corr) < ENVELOPE_CORR_SIZE &&
                         strlen(json_string_value(corr)) == json_string_length(corr) &&
                         utf8_chars(json_string_value(corr)) <= ENVELOPE_CORR_MAX);
    if (corr != NULL && corr_ok) {
        memcpy(env->correlation_id, json_string_value(corr), json_string_length(corr) + 1);
        env->has_correlation_id = true;
    }
    json_t *reply_to = optional(root, "reply_to");
    bool reply_ok = reply_to == NULL || (json_is_string(reply_to) &&
                                         envelope_topic_valid(json_string_value(reply_to),
                                                              json_string_length(reply_to)));
    if (reply_to != NULL && reply_ok)
        memcpy(env->reply_to, json_string_value(reply_to), json_string_length(reply_to) + 1);

    json_t *v = optional(root, "v");
    if (v != NULL && !(json_is_integer(v) && json_integer_value(v) == 1)) {
        kind =
            reject(env, TALLY_ERR_UNSUPPORTED_VERSION, "v", "only envelope version 1 is supported");
        goto done;
    }
    if (key != NULL &&
        (key_len != strlen(env->account.id) || memcmp(key, env->account.id, key_len) != 0)) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "account_id",
                      "the message key must equal account_id");
        goto done;
    }
    if (!json_is_string(type)) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "type",
                      type == NULL ? "type is required" : "type must be a string");
        goto done;
    }
    env->handler = env->type[0] != '\0' ? handler_find(env->type) : NULL;
    if (env->handler == NULL) {
        kind = reject(env, TALLY_ERR_UNKNOWN_TYPE, "type", "type is not a known job type");
        goto done;
    }
    json_t *payload = json_object_get(root, "payload");
    if (!json_is_object(payload)) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "payload",
                      payload == NULL ? "payload is required" : "payload must be an object");
        goto done;
    }
    if (!reply_ok) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "reply_to",
                      "reply_to must be a Kafka topic name (1-249 chars of [A-Za-z0-9._-])");
        goto done;
    }
    if (!corr_ok) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "correlation_id",
                      "correlation_id must be a string of at most 128 chars");
        goto done;
    }
    env->payload = json_incref(payload);
done:
    json_decref(root);
    return kind;
}

void envelope_clear(envelope_t *env)
{
    if (env->payload != NULL) {
        json_decref(env->payload);
        env->payload = NULL;
    }
}
