/* Unit tests for src/worker/answer: result (§3), stored response and audit
 * event (§5) shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/answer.h"

#include "answer_ref.h"

#include <stdlib.h>
#include <string.h>

static envelope_t sample(bool with_corr)
{
    envelope_t env;
    memset(&env, 0, sizeof(env));
    strcpy(env.id, "req_1");
    strcpy(env.account.id, "acct_42");
    strcpy(env.type, "payment.record");
    if (with_corr) {
        strcpy(env.correlation_id, "c-77");
        env.has_correlation_id = true;
    }
    return env;
}

static void test_ok_result_shape_and_order(void **state)
{
    (void)state;
    json_t *res = json_pack("{s:{s:s,s:I}}", "payment", "id", "pay_1", "amount", (json_int_t)1999);
    char *stored = answer_stored_ok(res);
    json_decref(res);
    assert_string_equal(stored, "{\"status\":\"ok\",\"result\":{\"payment\":{\"id\":\"pay_1\","
                                "\"amount\":1999}}}");
    envelope_t env = sample(true);
    char *r = answer_result(&env, stored, false, 1795341600123);
    assert_string_equal(r, "{\"v\":1,\"id\":\"req_1\",\"account_id\":\"acct_42\","
                           "\"type\":\"payment.record\",\"correlation_id\":\"c-77\","
                           "\"status\":\"ok\",\"result\":{\"payment\":{\"id\":\"pay_1\","
                           "\"amount\":1999}},\"replayed\":false,"
                           "\"processed_at\":\"2026-11-22T10:00:00.123Z\"}");
    bool ok;
    tally_errcode_t code;
    assert_true(answer_stored_status(stored, &ok, &code));
    assert_true(ok);
    free(r);
    free(stored);
}

static void test_error_result_and_replay(void **state)
{
    (void)state;
    char *stored = answer_stored_error(TALLY_ERR_CONFLICT, "duplicate external_id", "external_id");
    envelope_t env = sample(false);
    char *r = answer_result(&env, stored, true, 0);
    json_t *j = json_loads(r, 0, NULL);
    assert_non_null(j);
    assert_null(json_object_get(j, "correlation_id")); /* iff the request had one */
    assert_null(json_object_get(j, "result"));
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    assert_true(json_is_true(json_object_get(j, "replayed")));
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "conflict");
    assert_string_equal(json_string_value(json_object_get(e, "field")), "external_id");
    assert_string_equal(json_string_value(json_object_get(j, "processed_at")),
                        "1970-01-01T00:00:00.000Z");
    bool ok;
    tally_errcode_t code;
    assert_true(answer_stored_status(stored, &ok, &code));
    assert_false(ok);
    assert_int_equal(code, TALLY_ERR_CONFLICT);
    json_decref(j);
    free(r);
    free(stored);

    /* No field: the key is left out. A missing type is echoed as null. */
    stored = answer_stored_error(TALLY_ERR_INTERNAL, "failed", "");
    env.type[0] = '\0';
    r = answer_result(&env, stored, false, 0);
    j = json_loads(r, 0, NULL);
    assert_null(json_object_get(json_object_get(j, "error"), "field"));
    assert_true(json_is_null(json_object_get(j, "type")));
    json_decref(j);
    free(r);
    free(stored);

    assert_null(answer_result(&env, "{\"status\":\"weird\"}", false, 0));
    assert_null(answer_result(&env, "not json", false, 0));
    assert_false(answer_stored_status("{}", &ok, &code));
}

/* A result that cannot be published gives way to a short `internal` one
 * (CONTRACT.md §3): the request's identity, why, and nothing of the body. */
static void test_unpublishable_result(void **state)
{
    (void)state;
    envelope_t env = sample(true);
    char *r = answer_unpublishable(&env, 1500000, "Broker: Message size too large", true, 0);
    assert_non_null(r);
    assert_true(strlen(r) < 1024);
    json_t *j = json_loads(r, JSON_REJECT_DUPLICATES, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "req_1");
    assert_string_equal(json_string_value(json_object_get(j, "account_id")), "acct_42");
    assert_string_equal(json_string_value(json_object_get(j, "type")), "payment.record");
    assert_string_equal(json_string_value(json_object_get(j, "correlation_id")), "c-77");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    assert_true(json_is_true(json_object_get(j, "replayed")));
    json_t *e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "internal");
    assert_null(json_object_get(e, "field"));
    const char *msg = json_string_value(json_object_get(e, "message"));
    assert_non_null(strstr(msg, "1500000 bytes"));
    assert_non_null(strstr(msg, "Message size too large"));
    json_decref(j);
    free(r);
}

static void test_audit_event(void **state)
{
    (void)state;
    envelope_t env = sample(true);
    answer_audit_t a = {.env = &env,
                        .ok = true,
                        .replayed = false,
                        .at_ms = 1795341600123,
                        .duration_ms = 1.7004,
                        .worker = "host-1234",
                        .partition = 3,
                        .offset = 1042};
    char *s = answer_audit_event(&a);
    assert_string_equal(s, "{\"v\":1,\"account_id\":\"acct_42\",\"request_id\":\"req_1\","
                           "\"type\":\"payment.record\",\"status\":\"ok\",\"error_code\":null,"
                           "\"replayed\":false,\"at\":\"2026-11-22T10:00:00.123Z\","
                           "\"duration_ms\":1.7,\"worker\":\"host-1234\",\"partition\":3,"
                           "\"offset\":1042}");
    free(s);
    a.ok = false;
    a.error_code = TALLY_ERR_UNKNOWN_TYPE;
    a.replayed = true;
    s = answer_audit_event(&a);
    json_t *j = json_loads(s, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(j, "error_code")), "unknown_type");
    assert_true(json_is_true(json_object_get(j, "replayed")));
    json_decref(j);
    free(s);
}

/* ---- Byte-for-byte comparisons ------------------------------------------ */

/* Both NULL, or the same text; frees both. */
static void assert_same(char *got, char *want)
{
    if (want == NULL || got == NULL) {
        assert_ptr_equal(got, want);
        return;
    }
    assert_string_equal(got, want);
    free(got);
    free(want);
}

/* Strings that stress the escaper: quotes, backslashes, every control
 * character, '/', DEL, multi-byte UTF-8 of every length, U+2028, and the
 * invalid UTF-8 jansson refuses (then the member is left out). */
static const char *const TRICKY[] = {
    "",
    "plain",
    "say \"hi\"",
    "back\\slash\\",
    "\\\"",
    "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f",
    "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
    "\b\f\n\r\t",
    "a/b</script>",
    "del\x7f",
    "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf",
    "line\xe2\x80\xa8sep\xe2\x80\xa9",
    "\xef\xbb\xbf"
    "bom",
    "bad \xff byte",
    "overlong \xc0\x80",
    "cut \xe6\x97",
    "surrogate \xed\xa0\x80",
    "too high \xf4\x90\x80\x80",
    "lone \x80",
};
#define N_TRICKY (sizeof(TRICKY) / sizeof(TRICKY[0]))

/* A long string, "\u0000"-free, of every kind of character above. */
static char *long_string(size_t n)
{
    static const char *const parts[] = {
        "abc", "\"", "\\", "\n", "\x01", "\xc3\xa9", "\xf0\x9f\x98\x80", "/", "\x1f", " "};
    char *s = malloc(n + 8);
    size_t len = 0;
    for (size_t i = 0; len < n; i++) {
        const char *p = parts[(i * 7) % (sizeof(parts) / sizeof(parts[0]))];
        memcpy(s + len, p, strlen(p));
        len += strlen(p);
    }
    s[len] = '\0';
    return s;
}

/* Copies src into a fixed field, cut to fit (bytes, so invalid UTF-8 may
 * stay invalid: that is one of the cases). */
static void put_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static envelope_t tricky_env(size_t i, bool with_corr)
{
    envelope_t env = sample(with_corr);
    put_field(env.id, sizeof(env.id), TRICKY[i % N_TRICKY]);
    put_field(env.account.id, sizeof(env.account.id), TRICKY[(i + 3) % N_TRICKY]);
    put_field(env.type, sizeof(env.type), TRICKY[(i + 5) % N_TRICKY]);
    if (with_corr)
        put_field(env.correlation_id, sizeof(env.correlation_id), TRICKY[(i + 7) % N_TRICKY]);
    return env;
}

/* Results of every JSON kind, in insertion order, with tricky keys. */
static json_t *tricky_result(size_t i)
{
    json_t *o = json_object();
    json_t *payment =
        json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:n,s:{},s:s,s:s}", "id", "pay_01HF", "external_id",
                  "pi_123", "amount", (json_int_t)1999, "currency", "usd", "status", "succeeded",
                  "amount_refunded", (json_int_t)0, "description", "metadata", "created_at",
                  "2026-11-22T10:00:00.123Z", "updated_at", "2026-11-22T10:00:00.123Z");
    json_object_set_new(o, "payment", payment);
    json_object_set_new(o, "n", json_true());
    json_t *meta = json_object_get(payment, "metadata");
    for (size_t k = 0; k < 6; k++) {
        json_t *v = json_string(TRICKY[(i + k) % N_TRICKY]);
        if (v != NULL)
            json_object_set_new(meta, TRICKY[(i + 2 * k + 1) % N_TRICKY], v);
    }
    json_t *arr = json_array();
    json_array_append_new(arr, json_integer(0));
    json_array_append_new(arr, json_integer(-1));
    json_array_append_new(arr, json_integer(INT64_MAX));
    json_array_append_new(arr, json_integer(INT64_MIN));
    json_array_append_new(arr, json_integer(9007199254740991));
    json_array_append_new(arr, json_real(0.1));
    json_array_append_new(arr, json_real(-0.0));
    json_array_append_new(arr, json_real(1e300));
    json_array_append_new(arr, json_real(5e-324));
    json_array_append_new(arr, json_real(123456.789));
    json_array_append_new(arr, json_true());
    json_array_append_new(arr, json_false());
    json_array_append_new(arr, json_null());
    json_array_append_new(arr, json_array());
    json_array_append_new(arr, json_object());
    json_array_append_new(arr, json_pack("[[[{s:[]}]]]", "deep"));
    json_object_set_new(o, "kinds", arr);
    /* Strings and keys may hold NUL (dumped "\u0000"). */
    json_object_setn_new(o, "nul", 3, json_stringn("a\0b", 3));
    if (i % 3 == 0) /* the old deep copy cut such a key at its NUL */
        json_object_setn_new(o, "n\0ul", 4, json_integer(1));
    if (i % 3 == 1) /* ... and then it replaced the member "n" */
        json_object_setn_new(o, "n\0two", 5, json_integer(2));
    char *l = long_string(3000 + i);
    json_object_set_new(o, "long", json_string(l));
    free(l);
    return o;
}

static void test_stored_error_is_the_jansson_text(void **state)
{
    (void)state;
    char *l = long_string(10000);
    for (int code = 0; code < TALLY_ERRCODE_COUNT; code++) {
        for (size_t m = 0; m <= N_TRICKY + 1; m++) {
            const char *message = m < N_TRICKY ? TRICKY[m] : m == N_TRICKY ? l : NULL;
            for (size_t f = 0; f <= N_TRICKY; f++) {
                const char *field = f < N_TRICKY ? TRICKY[f] : NULL;
                assert_same(answer_stored_error((tally_errcode_t)code, message, field),
                            ref_stored_error((tally_errcode_t)code, message, field));
            }
        }
    }
    free(l);
}

static void test_stored_ok_is_the_jansson_text(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2 * N_TRICKY; i++) {
        json_t *r = tricky_result(i);
        assert_same(answer_stored_ok(r), ref_stored_ok(r));
        json_decref(r);
    }
    /* Not only objects: whatever a handler hands over. */
    json_t *others[] = {json_integer(42), json_string("x"), json_null(),
                        json_real(1.5),   json_array(),     json_object()};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        assert_same(answer_stored_ok(others[i]), ref_stored_ok(others[i]));
        json_decref(others[i]);
    }
    assert_same(answer_stored_ok(NULL), ref_stored_ok(NULL));
    /* A string jansson cannot dump (made without its check): both NULL. */
    json_t *bad = json_pack("{s:o}", "s", json_stringn_nocheck("\xff", 1));
    assert_same(answer_stored_ok(bad), ref_stored_ok(bad));
    json_decref(bad);
    /* A cycle: the copy fails, so the member is left out. */
    json_t *loop = json_array();
    json_array_append(loop, loop);
    assert_same(answer_stored_ok(loop), ref_stored_ok(loop));
    json_array_clear(loop);
    json_decref(loop);
}

static void test_result_is_the_jansson_text(void **state)
{
    (void)state;
    static const int64_t ats[] = {0, 1795341600123, -1, 253402300799999};
    for (size_t i = 0; i < 2 * N_TRICKY; i++) {
        json_t *r = tricky_result(i);
        char *stored[] = {
            answer_stored_ok(r),
            answer_stored_error(TALLY_ERR_CONFLICT, TRICKY[i % N_TRICKY],
                                TRICKY[(i + 1) % N_TRICKY]),
            answer_stored_error(TALLY_ERR_NOT_FOUND, TRICKY[(i + 4) % N_TRICKY], NULL),
        };
        json_decref(r);
        for (size_t k = 0; k < sizeof(stored) / sizeof(stored[0]); k++) {
            assert_non_null(stored[k]);
            for (int corr = 0; corr < 2; corr++) {
                envelope_t env = tricky_env(i + k, corr);
                if (i % 5 == 0)
                    env.type[0] = '\0';
                bool replayed = (i + k) % 2;
                int64_t at = ats[(i + k) % 4];
                assert_same(answer_result(&env, stored[k], replayed, at),
                            ref_result(&env, stored[k], replayed, at));
            }
            free(stored[k]);
        }
    }
}

/* Stored texts of other shapes (older writers, hand-made rows) take the
 * parse path and answer exactly what they answered before; the canonical
 * ones take the splice and must agree too. */
static void test_result_of_any_stored_text(void **state)
{
    (void)state;
    static const char *const texts[] = {
        /* the writers' shape */
        "{\"status\":\"ok\",\"result\":{\"payment\":{\"id\":\"pay_1\",\"amount\":1999}}}",
        "{\"status\":\"ok\",\"result\":1}",
        "{\"status\":\"ok\",\"result\":[]}",
        "{\"status\":\"ok\",\"result\":{}}",
        "{\"status\":\"ok\",\"result\":{\"data\":[{\"a\":1,\"b\":{\"a\":[]}},{\"a\":1,\"b\":2}],"
        "\"has_more\":false}}",
        "{\"status\":\"ok\",\"result\":null}",
        "{\"status\":\"ok\",\"result\":\"\\u001F\\b\\\"\\\\\"}",
        "{\"status\":\"ok\",\"result\":[-1,0,123456789012345678,true,false,null,\"\xc3\xa9\"]}",
        "{\"status\":\"error\",\"error\":{\"code\":\"conflict\",\"message\":\"m\"}}",
        "{\"status\":\"error\",\"error\":{\"code\":\"conflict\",\"message\":\"m\",\"field\":\"f\"}"
        "}",
        /* another key order, whitespace, a trailing newline */
        "{\"result\":{\"a\":1},\"status\":\"ok\"}",
        "{ \"status\": \"ok\", \"result\": { \"a\": 1, \"b\": [1, 2] } }",
        "{\"status\":\"ok\",\"result\":{\"a\":1}}\n",
        "{\"status\":\"ok\",\"result\":{\"a\" :1}}",
        "{\"error\":{\"message\":\"m\",\"code\":\"not_found\"},\"status\":\"error\"}",
        /* escapes and numbers a dump would write otherwise */
        "{\"status\":\"ok\",\"result\":\"\\u00e9\\/\\u0041\"}",
        "{\"status\":\"ok\",\"result\":\"\\u001f\"}",
        "{\"status\":\"ok\",\"result\":\"\\u000A\"}",
        "{\"status\":\"ok\",\"result\":\"\\ud83d\\ude00\"}",
        "{\"status\":\"ok\",\"result\":[0.1,1.5,1e2,1E2,-0.0,100000000000000000000]}",
        "{\"status\":\"ok\",\"result\":[-0,1234567890123456789,-9223372036854775808]}",
        "{\"status\":\"ok\",\"result\":[9223372036854775808]}",
        /* what json_loads refuses: NULL as before */
        "{\"status\":\"ok\",\"result\":\"a\\u0000b\"}",
        "{\"status\":\"ok\",\"result\":[01]}",
        "{\"status\":\"ok\",\"result\":\"raw\ttab\"}",
        "{\"status\":\"ok\",\"result\":\"bad \xff\"}",
        "{\"status\":\"ok\",\"result\":{\"a\":1}",
        "{\"status\":\"ok\",\"result\":{\"a\":1}}}",
        "{\"status\":\"ok\",\"result\":{\"a\":1,}}",
        "{\"status\":\"ok\",\"result\":[1,]}",
        "{\"status\":\"ok\",\"result\":tru}",
        "{\"status\":\"ok\",\"result\":}",
        "{\"status\":\"ok\",\"result\":{\"a\"}}",
        "{\"status\":\"ok\",\"result\":\"\\",
        /* duplicates and other statuses */
        "{\"status\":\"ok\",\"result\":1,\"status\":\"error\"}",
        "{\"status\":\"ok\",\"result\":1,\"extra\":2}",
        "{\"status\":\"ok\",\"result\":{\"a\":1,\"a\":2}}",
        "{\"status\":\"ok\"}",
        "{\"status\":\"error\"}",
        "{\"status\":\"weird\",\"result\":1}",
        "{}",
        "[]",
        "",
        "not json",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        for (int corr = 0; corr < 2; corr++) {
            envelope_t env = sample(corr);
            assert_same(answer_result(&env, texts[i], corr, 1795341600123),
                        ref_result(&env, texts[i], corr, 1795341600123));
        }
    }

    /* Nesting: shallow enough to splice, deeper than the scanner goes, and
     * deeper than json_loads goes (2048). */
    static const size_t depths[] = {100, 300, 3000};
    for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
        size_t n = depths[d];
        char *text = malloc(2 * n + 64);
        size_t len = (size_t)sprintf(text, "{\"status\":\"ok\",\"result\":");
        memset(text + len, '[', n);
        memset(text + len + n, ']', n);
        strcpy(text + len + 2 * n, "}");
        envelope_t env = sample(false);
        assert_same(answer_result(&env, text, false, 0), ref_result(&env, text, false, 0));
        free(text);
    }

    /* More keys than the scanner remembers (256): the parse path. */
    char *wide = malloc(16 * 300 + 64);
    size_t len = (size_t)sprintf(wide, "{\"status\":\"ok\",\"result\":{");
    for (int k = 0; k < 300; k++)
        len += (size_t)sprintf(wide + len, "%s\"k%d\":%d", k ? "," : "", k, k);
    strcpy(wide + len, "}}");
    envelope_t env = sample(false);
    assert_same(answer_result(&env, wide, false, 0), ref_result(&env, wide, false, 0));
    free(wide);
}

static void test_audit_event_is_the_jansson_text(void **state)
{
    (void)state;
    static const double durations[] = {0,
                                       0.0,
                                       0.0004,
                                       0.0005,
                                       0.0006,
                                       0.001,
                                       0.1,
                                       1.5,
                                       1.7004,
                                       2.675,
                                       1e-9,
                                       -0.0004,
                                       -0.0006,
                                       -1.25,
                                       123456.789,
                                       1e6,
                                       1e9 + 0.5,
                                       4503599627370.496,
                                       1e12,
                                       9.2e15,
                                       -9.2e15,
                                       86400000.0,
                                       0.30000000000000004};
    static const char *const workers[] = {"host-1234", "", NULL, "w\"\\\n\xc3\xa9", "bad \xff"};
    static const int32_t partitions[] = {0, 3, -1, INT32_MAX, INT32_MIN};
    static const int64_t offsets[] = {0, 1042, -1001, INT64_MAX, INT64_MIN};
    size_t nd = sizeof(durations) / sizeof(durations[0]);
    for (size_t i = 0; i < 4 * nd; i++) {
        envelope_t env = tricky_env(i, i % 2);
        if (i % 7 == 0)
            env.type[0] = '\0';
        answer_audit_t a = {.env = &env,
                            .ok = i % 3 != 0,
                            .error_code = i % 3 != 0 ? TALLY_ERR_NONE
                                                     : (tally_errcode_t)(i % TALLY_ERRCODE_COUNT),
                            .replayed = i % 4 == 1,
                            .at_ms = i % 2 ? 1795341600123 : (int64_t)i,
                            .duration_ms = durations[i % nd],
                            .worker = workers[i % 5],
                            .partition = partitions[i % 5],
                            .offset = offsets[(i / 5) % 5]};
        assert_same(answer_audit_event(&a), ref_audit_event(&a));
    }
}

/* Random strings of tricky bytes through every writer. */
static void test_random_strings(void **state)
{
    (void)state;
    static const char alphabet[] = "a\"\\/\b\f\n\r\t\x01\x1f\x7f\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98"
                                   "\x80\xff\xc0\xed\xa0";
    uint32_t seed = 14;
    for (int round = 0; round < 3000; round++) {
        char s[4][64];
        for (int k = 0; k < 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t len = (seed >> 16) % 40;
            for (size_t j = 0; j < len; j++) {
                seed = seed * 1103515245u + 12345u;
                s[k][j] = alphabet[(seed >> 16) % (sizeof(alphabet) - 1)];
            }
            s[k][len] = '\0';
        }
        assert_same(answer_stored_error(TALLY_ERR_INVALID_REQUEST, s[0], s[1]),
                    ref_stored_error(TALLY_ERR_INVALID_REQUEST, s[0], s[1]));
        json_t *r = json_object();
        json_object_set_new(r, "k", json_string(s[2]));
        json_object_set_new(r, "v", json_string(s[3]));
        char *stored = answer_stored_ok(r);
        assert_same(answer_stored_ok(r), ref_stored_ok(r));
        json_decref(r);
        envelope_t env = sample(true);
        put_field(env.type, sizeof(env.type), s[0]);
        put_field(env.correlation_id, sizeof(env.correlation_id), s[1]);
        assert_same(answer_result(&env, stored, round % 2, round),
                    ref_result(&env, stored, round % 2, round));
        answer_audit_t a = {.env = &env, .ok = true, .duration_ms = round / 7.0, .worker = s[3]};
        assert_same(answer_audit_event(&a), ref_audit_event(&a));
        free(stored);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_result_shape_and_order),
        cmocka_unit_test(test_error_result_and_replay),
        cmocka_unit_test(test_unpublishable_result),
        cmocka_unit_test(test_audit_event),
        cmocka_unit_test(test_stored_error_is_the_jansson_text),
        cmocka_unit_test(test_stored_ok_is_the_jansson_text),
        cmocka_unit_test(test_result_is_the_jansson_text),
        cmocka_unit_test(test_result_of_any_stored_text),
        cmocka_unit_test(test_audit_event_is_the_jansson_text),
        cmocka_unit_test(test_random_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
