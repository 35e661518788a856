#include "envelope/envelope.h"

#include "common/mem.h"
#include "common/topic.h"
#include "common/utf8.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps a message that goes into a header, a result and a JSON log line
 * valid UTF-8 (jansson's "near '…'" and truncation can cut a character). */
static void repair_utf8(char *m)
{
    size_t len = strlen(m), bad = 0;
    while (!utf8_valid(m, len, &bad))
        m[bad] = '?';
}

static envelope_kind_t dlq(envelope_t *env, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static envelope_kind_t dlq(envelope_t *env, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(env->error_message, sizeof(env->error_message), fmt, ap);
    va_end(ap);
    repair_utf8(env->error_message);
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
    repair_utf8(env->error_message);
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

static bool own_topic(const envelope_policy_t *policy, const char *topic)
{
    for (size_t i = 0; i < sizeof(policy->own_topics) / sizeof(policy->own_topics[0]); i++) {
        if (policy->own_topics[i] != NULL && strcmp(policy->own_topics[i], topic) == 0)
            return true;
    }
    return false;
}

bool envelope_reply_to_allowed(const envelope_policy_t *policy, const char *topic)
{
    if (policy == NULL)
        return true;
    if (own_topic(policy, topic))
        return false;
    /* POSIX matching is leftmost-longest: a match of the whole name, if one
     * exists, is the one regexec reports. */
    regmatch_t m;
    return policy->pattern == NULL || (regexec(policy->pattern, topic, 1, &m, 0) == 0 &&
                                       m.rm_so == 0 && (size_t)m.rm_eo == strlen(topic));
}

static const char *const member_names[ENVELOPE_M_COUNT] = {"id",       "account_id",     "type",
                                                           "reply_to", "correlation_id", "payload"};

bool envelope_parse(const void *value, size_t len, envelope_text_t *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof(*t));
    for (int i = 0; i < ENVELOPE_M_COUNT; i++)
        t->members[i].name = member_names[i];
    json_error_t jerr;
    t->root = json_loadb(value, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (t->root != NULL)
        return true;
    enum json_error_code code = json_error_code(&jerr);
    if (code != json_error_duplicate_key && code != json_error_null_character &&
        code != json_error_null_byte_in_key && code != json_error_numeric_overflow) {
        snprintf(why, whylen, "not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return false;
    }
    /* Perhaps valid JSON that jansson will not take as it is: read it
     * leniently. jansson's verdict stands whenever the two disagree. */
    char original[sizeof(jerr.text)];
    int line = jerr.line, column = jerr.column;
    snprintf(original, sizeof(original), "%s", jerr.text);
    char *copy = mem_alloc(len);
    jscan_run(value, len, copy, t->members, ENVELOPE_M_COUNT, &t->scan);
    if (t->scan.valid && t->scan.problem != JSCAN_NONE)
        t->root = json_loadb(copy, len, JSON_DECODE_ANY, &jerr);
    free(copy);
    if (t->root != NULL)
        return true;
    if (!t->scan.valid)
        snprintf(why, whylen, "not JSON: invalid at byte %zu", t->scan.error_offset);
    else
        snprintf(why, whylen, "not JSON: %s (line %d, column %d)", original, line, column);
    t->scan.problem = JSCAN_NONE;
    return false;
}

bool envelope_member_trusted(const envelope_text_t *t, int m)
{
    return t->scan.problem == JSCAN_NONE || (t->members[m].count <= 1 && !t->members[m].tainted);
}

/* Whether the problem the lenient reading of t found lies inside the payload. */
static bool problem_in_payload(const envelope_text_t *t)
{
    return t->scan.member == ENVELOPE_M_PAYLOAD && strncmp(t->scan.path, "payload.", 8) == 0;
}

void envelope_problem_field(const envelope_text_t *t, char *out, size_t size)
{
    utf8_copy(out, size, problem_in_payload(t) ? t->scan.path + 8 : t->scan.path);
}

/* The invalid_request for what the lenient reading found. */
static envelope_kind_t reject_problem(envelope_t *env, const envelope_text_t *t)
{
    const jscan_t *scan = &t->scan;
    char field[JSCAN_PATH_MAX], message[sizeof(env->error_message)];
    envelope_problem_field(t, field, sizeof(field));
    if (field[0] != '\0')
        snprintf(message, sizeof(message), "%s %s", field, jscan_problem_predicate(scan->problem));
    else
        snprintf(message, sizeof(message), "the request holds %s",
                 jscan_problem_str(scan->problem));
    envelope_kind_t kind = reject(env, TALLY_ERR_INVALID_REQUEST, field, message);
    env->error_in_payload = problem_in_payload(t);
    return kind;
}

envelope_kind_t envelope_decode(const envelope_policy_t *policy, const void *key, size_t key_len,
                                const void *value, size_t value_len, envelope_t *env)
{
    memset(env, 0, sizeof(*env));
    if (value == NULL || value_len == 0)
        return dlq(env, "empty message value");
    if (value_len > ENVELOPE_MAX_VALUE)
        return dlq(env, "message value of %zu bytes exceeds the 1 MiB limit", value_len);
    size_t bad = 0;
    if (!utf8_valid(value, value_len, &bad))
        return dlq(env, "message value is not valid UTF-8 (byte %zu)", bad);

    envelope_text_t t;
    char why[sizeof(env->error_message)];
    if (!envelope_parse(value, value_len, &t, why, sizeof(why)))
        return dlq(env, "%s", why);
    json_t *root = t.root;
    bool lenient = t.scan.problem != JSCAN_NONE;
    envelope_kind_t kind = ENVELOPE_ANSWER;
    if (!json_is_object(root)) {
        kind = dlq(env, "not a JSON object");
        goto done;
    }

    json_t *id = json_object_get(root, "id");
    if (!envelope_member_trusted(&t, ENVELOPE_M_ID) && t.members[ENVELOPE_M_ID].count > 1) {
        kind = dlq(env, "id is given more than once");
        goto done;
    }
    if (!json_is_string(id) || !id_valid(json_string_value(id), json_string_length(id))) {
        kind = dlq(env, id == NULL ? "id is missing" : "id is not 1-128 printable ASCII chars");
        goto done;
    }
    memcpy(env->id, json_string_value(id), json_string_length(id) + 1);

    json_t *acct = json_object_get(root, "account_id");
    if (!envelope_member_trusted(&t, ENVELOPE_M_ACCOUNT) &&
        t.members[ENVELOPE_M_ACCOUNT].count > 1) {
        kind = dlq(env, "account_id is given more than once");
        goto done;
    }
    if (!json_is_string(acct) ||
        !access_account_parse(json_string_value(acct), json_string_length(acct), &env->account)) {
        kind = dlq(env, acct == NULL ? "account_id is missing"
                                     : "account_id is not 1-64 chars of [A-Za-z0-9_-]");
        goto done;
    }

    /* From here on the request can be answered. Record what the result echoes
     * first, so that an error answer still carries it (only what the lenient
     * reading did not find a problem in). */
    json_t *type =
        envelope_member_trusted(&t, ENVELOPE_M_TYPE) ? json_object_get(root, "type") : NULL;
    if (json_is_string(type) && json_string_length(type) <= ENVELOPE_TYPE_MAX)
        memcpy(env->type, json_string_value(type), json_string_length(type) + 1);
    json_t *corr =
        envelope_member_trusted(&t, ENVELOPE_M_CORR) ? optional(root, "correlation_id") : NULL;
    bool corr_ok =
        corr == NULL ||
        (json_is_string(corr) && json_string_length(corr) < ENVELOPE_CORR_SIZE &&
         strlen(json_string_value(corr)) == json_string_length(corr) &&
         utf8_chars(json_string_value(corr), json_string_length(corr)) <= ENVELOPE_CORR_MAX);
    if (corr != NULL && corr_ok) {
        memcpy(env->correlation_id, json_string_value(corr), json_string_length(corr) + 1);
        env->has_correlation_id = true;
    }
    json_t *reply_to =
        envelope_member_trusted(&t, ENVELOPE_M_REPLY_TO) ? optional(root, "reply_to") : NULL;
    bool reply_ok = reply_to == NULL ||
                    (json_is_string(reply_to) &&
                     topic_name_valid(json_string_value(reply_to), json_string_length(reply_to)));
    bool reply_allowed = reply_to == NULL || !reply_ok ||
                         envelope_reply_to_allowed(policy, json_string_value(reply_to));
    if (reply_to != NULL && reply_ok && reply_allowed)
        memcpy(env->reply_to, json_string_value(reply_to), json_string_length(reply_to) + 1);

    if (lenient) {
        kind = reject_problem(env, &t);
        goto done;
    }
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
                      "reply_to must be a Kafka topic name (" TOPIC_NAME_RULE ")");
        goto done;
    }
    if (!reply_allowed) {
        kind = reject(env, TALLY_ERR_INVALID_REQUEST, "reply_to",
                      own_topic(policy, json_string_value(reply_to))
                          ? "reply_to must not name Tally's own request, audit or dead-letter "
                            "topic"
                          : "reply_to is not one of the reply topics the operator allows");
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
