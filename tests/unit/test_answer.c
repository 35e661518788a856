/* Unit tests for src/worker/answer: result (§3), stored response and audit
 * event (§5) shapes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/answer.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_result_shape_and_order),
        cmocka_unit_test(test_error_result_and_replay),
        cmocka_unit_test(test_unpublishable_result),
        cmocka_unit_test(test_audit_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
