/* Unit tests for src/envelope/envelope: every rule of CONTRACT.md §2, the
 * precedence of checks, every DLQ case, the lenient reading of a value
 * jansson refuses and the reply_to policy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/utf8.h"
#include "envelope/envelope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A known job type, or NULL while the registry is empty. */
static const char *known_type(void)
{
    return handler_count() > 0 ? handler_name(handler_at(0)) : NULL;
}

static envelope_kind_t decode(const char *key, const char *value, envelope_t *env)
{
    return envelope_decode(NULL, key, key ? strlen(key) : 0, value, strlen(value), env);
}

static void expect_dlq(const char *key, const char *value, const char *reason)
{
    envelope_t env;
    assert_int_equal(decode(key, value, &env), ENVELOPE_DLQ);
    assert_int_equal(env.error, TALLY_ERR_INVALID_REQUEST);
    if (strstr(env.error_message, reason) == NULL)
        fail_msg("DLQ reason \"%s\" does not contain \"%s\"", env.error_message, reason);
    assert_null(env.payload);
    envelope_clear(&env);
}

static void expect_error(const char *key, const char *value, tally_errcode_t code,
                         const char *field)
{
    envelope_t env;
    assert_int_equal(decode(key, value, &env), ENVELOPE_ANSWER);
    assert_int_equal(env.error, code);
    assert_string_equal(env.error_field, field);
    assert_true(env.error_message[0] != '\0');
    assert_null(env.payload);
    assert_null(env.handler);
    assert_false(env.error_in_payload); /* an envelope matter (tallyctl enqueue refuses it) */
    envelope_clear(&env);
}

static void test_dlq_cases(void **state)
{
    (void)state;
    expect_dlq(NULL, "", "empty");
    expect_dlq(NULL, "not json", "not JSON");
    expect_dlq(NULL, "[1,2]", "not a JSON object");
    expect_dlq(NULL, "\"x\"", "not a JSON object");
    expect_dlq(NULL, "{\"id\":\"a\",\"account_id\":\"acct\"} trailing", "not JSON");
    expect_dlq(NULL, "{\"account_id\":\"acct_1\",\"type\":\"t\"}", "id is missing");
    expect_dlq(NULL, "{\"id\":\"\",\"account_id\":\"acct_1\"}", "id is not");
    expect_dlq(NULL, "{\"id\":7,\"account_id\":\"acct_1\"}", "id is not");
    expect_dlq(NULL, "{\"id\":\"a\\tb\",\"account_id\":\"acct_1\"}", "id is not");
    expect_dlq(NULL, "{\"id\":\"caf\\u00e9\",\"account_id\":\"acct_1\"}", "id is not");
    expect_dlq(NULL, "{\"id\":\"r1\"}", "account_id is missing");
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"acct 1\"}", "account_id is not");
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"\"}", "account_id is not");
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":null}", "account_id is not");
    /* A duplicate id or account_id makes the request unreadable: which one
     * would the result be keyed and deduplicated by? */
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"account_id\":\"b\"}",
               "account_id is given more than once");
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"id\":\"r1\"}",
               "id is given more than once");
    expect_dlq(NULL, "{\"id\":\"r1\",\"\\u0069d\":\"r2\",\"account_id\":\"a\"}",
               "id is given more than once");
    /* Valid JSON with a problem is still not JSON when anything else is wrong. */
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"x\":1e400,}", "not JSON");
    expect_dlq(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"x\":\"\\ud800\\u0000\"}", "not JSON");

    char id129[200];
    memset(id129, 0, sizeof(id129));
    snprintf(id129, sizeof(id129), "{\"id\":\"%0129d\",\"account_id\":\"a\"}", 0);
    expect_dlq(NULL, id129, "id is not");
    char acct65[200];
    snprintf(acct65, sizeof(acct65), "{\"id\":\"r\",\"account_id\":\"%065d\"}", 0);
    expect_dlq(NULL, acct65, "account_id is not");
}

static void test_dlq_bad_utf8_and_size(void **state)
{
    (void)state;
    envelope_t env;
    const char bad[] = "{\"id\":\"r1\",\"account_id\":\"a\",\"x\":\"\xC3\x28\"}";
    assert_int_equal(envelope_decode(NULL, NULL, 0, bad, sizeof(bad) - 1, &env), ENVELOPE_DLQ);
    assert_non_null(strstr(env.error_message, "UTF-8"));

    size_t big = ENVELOPE_MAX_VALUE + 1;
    char *v = malloc(big);
    memset(v, ' ', big);
    memcpy(v, "{\"id\":\"r1\",\"account_id\":\"a\"}", 28);
    assert_int_equal(envelope_decode(NULL, NULL, 0, v, big, &env), ENVELOPE_DLQ);
    assert_non_null(strstr(env.error_message, "1 MiB"));
    /* Exactly 1 MiB is allowed (padding is JSON whitespace). */
    assert_int_equal(envelope_decode(NULL, NULL, 0, v, big - 1, &env), ENVELOPE_ANSWER);
    envelope_clear(&env);
    free(v);
}

/* Found by the fuzzer: jansson's "near '…'" cut a 4-byte character after
 * its first byte, and the DLQ reason (a header, a JSON log line) was no
 * longer UTF-8. */
static void test_dlq_reason_is_utf8(void **state)
{
    (void)state;
    const char *values[] = {
        "{\"id\":\"r1\",\"account_id\":\"a\",\"rep\\\xF0\x9F\x98\x80ud800\":1}",
        NULL, /* a long multi-byte token, cut by jansson's and our own buffers */
    };
    char long_token[1024] = "{\"id\":";
    for (int i = 0; i < 300; i++)
        strcat(long_token, "\xC3\xA9");
    values[1] = long_token;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        envelope_t env;
        assert_int_equal(envelope_decode(NULL, NULL, 0, values[i], strlen(values[i]), &env),
                         ENVELOPE_DLQ);
        assert_non_null(strstr(env.error_message, "not JSON"));
        size_t bad;
        if (!utf8_valid(env.error_message, strlen(env.error_message), &bad))
            fail_msg("DLQ reason is not UTF-8 at byte %zu: %s", bad, env.error_message);
    }
}

static void test_answered_errors(void **state)
{
    (void)state;
    expect_error(NULL, "{\"v\":2,\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}",
                 TALLY_ERR_UNSUPPORTED_VERSION, "v");
    expect_error(NULL, "{\"v\":\"1\",\"id\":\"r1\",\"account_id\":\"a\"}",
                 TALLY_ERR_UNSUPPORTED_VERSION, "v");
    expect_error(NULL, "{\"v\":1.0,\"id\":\"r1\",\"account_id\":\"a\"}",
                 TALLY_ERR_UNSUPPORTED_VERSION, "v");
    expect_error("b", "{\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}",
                 TALLY_ERR_INVALID_REQUEST, "account_id");
    expect_error("", "{\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}",
                 TALLY_ERR_INVALID_REQUEST, "account_id");
    expect_error(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"payload\":{}}",
                 TALLY_ERR_INVALID_REQUEST, "type");
    expect_error(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"type\":5,\"payload\":{}}",
                 TALLY_ERR_INVALID_REQUEST, "type");
    expect_error(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"no.such\",\"payload\":{}}",
                 TALLY_ERR_UNKNOWN_TYPE, "type");
    expect_error(NULL, "{\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"\",\"payload\":{}}",
                 TALLY_ERR_UNKNOWN_TYPE, "type");
}

static void test_precedence(void **state)
{
    (void)state;
    /* DLQ conditions win over everything answerable. */
    expect_dlq("other", "{\"v\":9,\"id\":\"\",\"account_id\":\"a\"}", "id is not");
    /* v wins over a wrong key and an unknown type. */
    expect_error("other", "{\"v\":9,\"id\":\"r\",\"account_id\":\"a\",\"type\":\"zz\"}",
                 TALLY_ERR_UNSUPPORTED_VERSION, "v");
    /* The key wins over the type. */
    expect_error("other", "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"zz\"}",
                 TALLY_ERR_INVALID_REQUEST, "account_id");
    /* An unknown type wins over a missing payload and a bad reply_to. */
    expect_error(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"zz\",\"reply_to\":\"a b\"}",
                 TALLY_ERR_UNKNOWN_TYPE, "type");
}

static void test_echoed_fields_survive_errors(void **state)
{
    (void)state;
    envelope_t env;
    assert_int_equal(decode("acct_9",
                            "{\"id\":\"req 1\",\"account_id\":\"acct_9\",\"type\":\"zz.top\","
                            "\"correlation_id\":\"c-77\",\"reply_to\":\"my.replies\",\"extra\":1}",
                            &env),
                     ENVELOPE_ANSWER);
    assert_int_equal(env.error, TALLY_ERR_UNKNOWN_TYPE);
    assert_string_equal(env.id, "req 1");
    assert_string_equal(env.account.id, "acct_9");
    assert_string_equal(env.type, "zz.top");
    assert_true(env.has_correlation_id);
    assert_string_equal(env.correlation_id, "c-77");
    assert_string_equal(env.reply_to, "my.replies");
    envelope_clear(&env);

    /* A bad correlation_id is not echoed; null counts as absent. */
    assert_int_equal(decode(NULL,
                            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"zz\","
                            "\"correlation_id\":5,\"reply_to\":null}",
                            &env),
                     ENVELOPE_ANSWER);
    assert_false(env.has_correlation_id);
    assert_string_equal(env.reply_to, "");
    envelope_clear(&env);
}

/* Found by the fuzzer: "≤ 128 chars" counted bytes, so 65 "é" (130 bytes)
 * were refused although envelope.json's maxLength (code points) allows them. */
static void test_correlation_id_counts_characters(void **state)
{
    (void)state;
    const char *units[] = {"c", "\\u00e9", "\\ud83d\\ude00"}; /* 1, 2 and 4 bytes in UTF-8 */
    const char *type = known_type();
    assert_non_null(type);
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        for (int n = 127; n <= 129; n++) {
            char corr[129 * 12 + 1] = "", msg[2048];
            for (int i = 0; i < n; i++)
                strcat(corr, units[u]);
            snprintf(msg, sizeof(msg),
                     "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\",\"payload\":{},"
                     "\"correlation_id\":\"%s\"}",
                     type, corr);
            if (n > ENVELOPE_CORR_MAX) {
                expect_error(NULL, msg, TALLY_ERR_INVALID_REQUEST, "correlation_id");
                continue;
            }
            envelope_t env;
            assert_int_equal(decode(NULL, msg, &env), ENVELOPE_ANSWER);
            assert_int_equal(env.error, TALLY_ERR_NONE);
            assert_true(env.has_correlation_id);
            size_t bytes = strlen(env.correlation_id);
            assert_int_equal(bytes, (size_t)n * (u == 0 ? 1 : u == 1 ? 2 : 4));
            envelope_clear(&env);
        }
    }
}

static void test_valid_request(void **state)
{
    (void)state;
    const char *type = known_type();
    assert_non_null(type);
    char msg[1024];
    envelope_t env;
    snprintf(msg, sizeof(msg),
             "{\"v\":1,\"id\":\"req_1\",\"account_id\":\"acct_42\",\"type\":\"%s\","
             "\"payload\":{\"amount\":1},\"reply_to\":\"billing.replies\","
             "\"correlation_id\":\"c-77\",\"unknown\":{\"ignored\":true}}",
             type);
    assert_int_equal(decode("acct_42", msg, &env), ENVELOPE_ANSWER);
    assert_int_equal(env.error, TALLY_ERR_NONE);
    assert_non_null(env.handler);
    assert_true(json_is_object(env.payload));
    assert_string_equal(env.reply_to, "billing.replies");
    envelope_clear(&env);

    snprintf(msg, sizeof(msg), "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\",\"payload\":[]}",
             type);
    expect_error(NULL, msg, TALLY_ERR_INVALID_REQUEST, "payload");
    snprintf(msg, sizeof(msg), "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\"}", type);
    expect_error(NULL, msg, TALLY_ERR_INVALID_REQUEST, "payload");
    snprintf(msg, sizeof(msg),
             "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\",\"payload\":{},"
             "\"reply_to\":\"no/slash\"}",
             type);
    expect_error(NULL, msg, TALLY_ERR_INVALID_REQUEST, "reply_to");
    snprintf(msg, sizeof(msg),
             "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\",\"payload\":{},"
             "\"correlation_id\":\"%0129d\"}",
             type, 0);
    expect_error(NULL, msg, TALLY_ERR_INVALID_REQUEST, "correlation_id");
}

/* Every prefix and every single-byte corruption of a valid message decodes
 * without crashing (ASan/UBSan watch) and yields a consistent outcome. */
/* CONTRACT.md §2: a value that is valid JSON with a readable id and
 * account_id is always answered; a number out of range, a duplicate key or
 * a \u0000 is invalid_request naming the place (issue 11, finding 5: each
 * of these went to the DLQ before). */
static void test_readable_requests_are_answered(void **state)
{
    (void)state;
    const char *type = known_type();
    assert_non_null(type);
    struct {
        const char *payload;
        const char *field;
    } cases[] = {
        {"{\"amount\":9223372036854775808}", "amount"},  /* 2^63 */
        {"{\"amount\":18446744073709551616}", "amount"}, /* 2^64 */
        {"{\"amount\":-9223372036854775809}", "amount"}, /* below int64 */
        {"{\"amount\":1e400}", "amount"},                /* beyond double */
        {"{\"amount\":-1.5E+309}", "amount"},
        {"{\"description\":\"a\\u0000b\"}", "description"},
        {"{\"amount\":1,\"amount\":2}", "amount"},
        {"{\"metadata\":{\"k\":\"a\",\"\\u006b\":\"b\"}}",
         "metadata.k"}, /* the same key, escaped */
        {"{\"shares\":[{\"party\":\"a\"},{\"basis_points\":1e999}]}", "shares[1].basis_points"},
        {"{\"metadata\":{\"a\\u0000b\":\"x\"}}", "metadata.a\xEF\xBF\xBD"
                                                 "b"}, /* NUL in a key */
        {"{\"\":1,\"\":2}", "payload"},                /* "" names nothing: its object is named */
        {"{\"a\":{\"\":1,\"\":2}}", "a"},
        {"{\"x\":1e400,\"amount\":1,\"amount\":2}", "x"}, /* the first one decides */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "{\"id\":\"r1\",\"account_id\":\"acct_1\",\"type\":\"%s\",\"payload\":%s,"
                 "\"correlation_id\":\"c-1\",\"reply_to\":\"billing.replies\"}",
                 type, cases[i].payload);
        envelope_t env;
        assert_int_equal(decode("acct_1", msg, &env), ENVELOPE_ANSWER);
        if (env.error != TALLY_ERR_INVALID_REQUEST || strcmp(env.error_field, cases[i].field) != 0)
            fail_msg("case %zu (%s): %s on \"%s\": %s", i, cases[i].payload,
                     tally_errcode_str(env.error), env.error_field, env.error_message);
        assert_non_null(strstr(env.error_message, cases[i].field));
        /* Inside the payload (a payload matter, which tallyctl enqueue
         * sends), unless it names the payload object itself. */
        assert_int_equal(env.error_in_payload, strcmp(cases[i].field, "payload") != 0);
        /* Everything the result echoes survives. */
        assert_string_equal(env.id, "r1");
        assert_string_equal(env.account.id, "acct_1");
        assert_string_equal(env.type, type);
        assert_string_equal(env.correlation_id, "c-1");
        assert_string_equal(env.reply_to, "billing.replies");
        assert_null(env.payload);
        envelope_clear(&env);
    }
}

static void test_lenient_envelope_fields(void **state)
{
    (void)state;
    /* A problem in an envelope field is answered on that field, which is
     * not echoed: its value is ambiguous or unreadable. */
    envelope_t env;
    assert_int_equal(
        decode(NULL,
               "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"x\",\"type\":\"y\","
               "\"correlation_id\":\"c\\u0000\",\"reply_to\":\"b.r\",\"reply_to\":\"b.r\"}",
               &env),
        ENVELOPE_ANSWER);
    assert_int_equal(env.error, TALLY_ERR_INVALID_REQUEST);
    assert_string_equal(env.error_field, "type");
    assert_string_equal(env.type, "");
    assert_false(env.has_correlation_id);
    assert_string_equal(env.reply_to, ""); /* a duplicate reply_to goes to the results topic */
    envelope_clear(&env);
    expect_error(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"v\":1e400}", TALLY_ERR_INVALID_REQUEST,
                 "v");
    expect_error(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"note\":{\"n\":[0,1e400]}}",
                 TALLY_ERR_INVALID_REQUEST, "note.n[1]");
    expect_error(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"payload\":{},\"payload\":{}}",
                 TALLY_ERR_INVALID_REQUEST, "payload");
    /* Found by the fuzzer: a top-level key "payload.m" is not the payload, so
     * its path keeps its prefix. */
    expect_error(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"payload.m\":{\"x\":1e400}}",
                 TALLY_ERR_INVALID_REQUEST, "payload.m.x");
    /* It comes before the version and the key: the text decides first. */
    expect_error("other", "{\"v\":2,\"id\":\"r\",\"account_id\":\"a\",\"x\":\"\\u0000\"}",
                 TALLY_ERR_INVALID_REQUEST, "x");
    /* An id or account_id holding the problem is unreadable. */
    expect_dlq(NULL, "{\"id\":\"r\\u0000\",\"account_id\":\"a\"}", "id is not");
    expect_dlq(NULL, "{\"id\":\"r\",\"account_id\":\"a\\u0000\"}", "account_id is not");
    expect_dlq(NULL, "{\"id\":1e400,\"account_id\":\"a\"}", "id is not");
    expect_dlq(NULL, "[1e400]", "not a JSON object");
}

/* Builds a policy with the default topic names and, when pattern is not
 * NULL, TALLY_REPLY_TO_PATTERN. */
static envelope_policy_t policy_with(regex_t *re, const char *pattern)
{
    envelope_policy_t p = {.own_topics = {"tally.requests", "tally.audit", "tally.dlq"}};
    if (pattern != NULL) {
        assert_int_equal(regcomp(re, pattern, REG_EXTENDED), 0);
        p.pattern = re;
    }
    return p;
}

/* CONTRACT.md §2 reply_to (issue 11, finding 4): never Tally's own topics,
 * and the operator's pattern must match the whole name. */
static void test_reply_to_policy(void **state)
{
    (void)state;
    const char *type = known_type();
    regex_t re;
    envelope_policy_t own = policy_with(NULL, NULL);
    envelope_policy_t narrow = policy_with(&re, "billing\\.[a-z]+|tally\\.(requests|dlq)");
    assert_true(envelope_reply_to_allowed(NULL, "tally.requests"));
    assert_true(envelope_reply_to_allowed(&own, "tally.results"));
    assert_true(envelope_reply_to_allowed(&own, "anything.else"));
    assert_false(envelope_reply_to_allowed(&own, "tally.requests"));
    assert_false(envelope_reply_to_allowed(&own, "tally.audit"));
    assert_false(envelope_reply_to_allowed(&own, "tally.dlq"));
    assert_true(envelope_reply_to_allowed(&narrow, "billing.replies"));
    assert_false(envelope_reply_to_allowed(&narrow, "tally.requests")); /* own, whatever it says */
    assert_false(envelope_reply_to_allowed(&narrow, "tally.results"));
    assert_false(envelope_reply_to_allowed(&narrow, "xbilling.replies")); /* whole name */
    assert_false(envelope_reply_to_allowed(&narrow, "billing.replies2"));
    assert_false(envelope_reply_to_allowed(&narrow, "billing.replies.x"));

    const char *refused[][2] = {{"tally.requests", "own"},
                                {"tally.dlq", "own"},
                                {"tally.audit", "own"},
                                {"tally.results", "operator"},
                                {"other.topic", "operator"}};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"%s\",\"payload\":{},"
                 "\"reply_to\":\"%s\"}",
                 type, refused[i][0]);
        envelope_t env;
        assert_int_equal(envelope_decode(&narrow, NULL, 0, msg, strlen(msg), &env),
                         ENVELOPE_ANSWER);
        assert_int_equal(env.error, TALLY_ERR_INVALID_REQUEST);
        assert_string_equal(env.error_field, "reply_to");
        assert_non_null(strstr(env.error_message, refused[i][1]));
        assert_string_equal(env.reply_to, ""); /* answered on the results topic */
        envelope_clear(&env);
        /* With another error, that one is answered, still not to reply_to. */
        snprintf(msg, sizeof(msg),
                 "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"no.such\",\"reply_to\":\"%s\"}",
                 refused[i][0]);
        assert_int_equal(envelope_decode(&narrow, NULL, 0, msg, strlen(msg), &env),
                         ENVELOPE_ANSWER);
        assert_int_equal(env.error, TALLY_ERR_UNKNOWN_TYPE);
        assert_string_equal(env.reply_to, "");
        envelope_clear(&env);
    }
    regfree(&re);
}

static void test_never_crashes(void **state)
{
    (void)state;
    const char *base = "{\"v\":1,\"id\":\"r1\",\"account_id\":\"a\",\"type\":\"payment.record\","
                       "\"payload\":{\"amount\":1,\"s\":\"\\u00e9\"},\"correlation_id\":\"c\"}";
    size_t n = strlen(base);
    char *buf = malloc(n);
    for (size_t len = 0; len <= n; len++) {
        envelope_t env;
        envelope_kind_t k = envelope_decode(NULL, "a", 1, base, len, &env);
        assert_true(k == ENVELOPE_ANSWER || k == ENVELOPE_DLQ);
        envelope_clear(&env);
    }
    const unsigned char probes[] = {0x00, 0x22, 0x5C, 0x7B, 0x7D, 0x80, 0xC3, 0xFF};
    for (size_t i = 0; i < n; i++) {
        for (size_t p = 0; p < sizeof(probes); p++) {
            memcpy(buf, base, n);
            buf[i] = (char)probes[p];
            envelope_t env;
            envelope_kind_t k = envelope_decode(NULL, NULL, 0, buf, n, &env);
            if (k == ENVELOPE_DLQ)
                assert_true(env.error_message[0] != '\0');
            else
                assert_true(env.account.id[0] != '\0' && env.id[0] != '\0');
            envelope_clear(&env);
        }
    }
    free(buf);
}

/* docs/schemas/examples/envelope.*.json: the C decoder agrees with the
 * published schema (ctest -L schemas checks the schema's side). */
static json_t *load_examples(const char *kind)
{
    char path[1024];
    const char *file = __FILE__;
    const char *slash = strstr(file, "tests/unit/");
    assert_non_null(slash);
    snprintf(path, sizeof(path), "%.*sdocs/schemas/examples/envelope.%s.json", (int)(slash - file),
             file, kind);
    json_error_t e;
    json_t *a = json_load_file(path, 0, &e);
    if (!json_is_array(a))
        fail_msg("%s: %s", path, e.text);
    return a;
}

static void test_schema_examples(void **state)
{
    (void)state;
    json_t *valid = load_examples("valid");
    size_t i;
    json_t *ex;
    json_array_foreach(valid, i, ex)
    {
        char *text = json_dumps(ex, JSON_COMPACT);
        envelope_t env;
        assert_int_equal(envelope_decode(NULL, NULL, 0, text, strlen(text), &env), ENVELOPE_ANSWER);
        if (handler_find(env.type) != NULL)
            assert_int_equal(env.error, TALLY_ERR_NONE);
        envelope_clear(&env);
        free(text);
    }
    json_decref(valid);
    json_t *invalid = load_examples("invalid");
    json_array_foreach(invalid, i, ex)
    {
        char *text = json_dumps(ex, JSON_COMPACT | JSON_ENCODE_ANY);
        envelope_t env;
        envelope_kind_t k = envelope_decode(NULL, NULL, 0, text, strlen(text), &env);
        if (k == ENVELOPE_ANSWER && env.error == TALLY_ERR_NONE)
            fail_msg("invalid example %zu accepted: %s", i, text);
        envelope_clear(&env);
        free(text);
    }
    json_decref(invalid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dlq_cases),
        cmocka_unit_test(test_dlq_bad_utf8_and_size),
        cmocka_unit_test(test_dlq_reason_is_utf8),
        cmocka_unit_test(test_answered_errors),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_echoed_fields_survive_errors),
        cmocka_unit_test(test_correlation_id_counts_characters),
        cmocka_unit_test(test_valid_request),
        cmocka_unit_test(test_readable_requests_are_answered),
        cmocka_unit_test(test_lenient_envelope_fields),
        cmocka_unit_test(test_reply_to_policy),
        cmocka_unit_test(test_never_crashes),
        cmocka_unit_test(test_schema_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
