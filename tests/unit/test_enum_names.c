/* Unit tests for the enum-to-string tables written once as X-macro lists
 * (common/enumstr.h): each name is the contract's or the database's word,
 * each parses back to its value, and a value outside a list gets the
 * documented fallback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "access/codes.h"
#include "access/payments.h"
#include "access/payouts.h"
#include "access/shares.h"
#include "access/status.h"
#include "common/enumstr.h"
#include "common/errcode.h"
#include "common/log.h"
#include "envelope/jscan.h"

#include <string.h>

static void test_enumstr_helpers(void **state)
{
    (void)state;
    static const char *const names[] = {[0] = "zero", [2] = "two"};
    assert_int_equal(ENUMSTR_COUNT(names), 3);
    assert_string_equal(enumstr_name(names, 3, 0, "?"), "zero");
    assert_string_equal(enumstr_name(names, 3, 1, "?"), "?"); /* a hole */
    assert_string_equal(enumstr_name(names, 3, 2, "?"), "two");
    assert_string_equal(enumstr_name(names, 3, 3, "?"), "?");
    assert_string_equal(enumstr_name(names, 3, -1, "?"), "?");
    int v = -1;
    assert_true(enumstr_parse(names, 3, "two", &v));
    assert_int_equal(v, 2);
    assert_false(enumstr_parse(names, 3, "Two", &v)); /* case-sensitive */
    assert_false(enumstr_parse(names, 3, "", &v));
    assert_false(enumstr_parse(names, 3, NULL, &v));
    assert_int_equal(v, 2); /* untouched on failure */
}

static void test_errcodes(void **state)
{
    (void)state;
    static const char *const wire[] = {
        "none",         "invalid_request",      "unsupported_version",
        "unknown_type", "idempotency_conflict", "not_found",
        "conflict",     "insufficient_funds",   "internal",
        "account_held"};
    static const bool stored[] = {true, false, false, false, false, true, true, true, false, false};
    assert_int_equal(ENUMSTR_COUNT(wire), TALLY_ERRCODE_COUNT);
    for (int i = 0; i < (int)ENUMSTR_COUNT(wire); i++) {
        assert_string_equal(tally_errcode_str((tally_errcode_t)i), wire[i]);
        assert_int_equal(tally_errcode_is_stored((tally_errcode_t)i), stored[i]);
        tally_errcode_t c = TALLY_ERR_INTERNAL;
        assert_int_equal(tally_errcode_parse(wire[i], &c), i != TALLY_ERR_NONE);
        if (i != TALLY_ERR_NONE)
            assert_int_equal(c, i);
    }
    assert_string_equal(tally_errcode_str((tally_errcode_t)99), "internal");
    assert_false(tally_errcode_is_stored((tally_errcode_t)99));
}

static void test_log_levels(void **state)
{
    (void)state;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        log_level_t l = LOG_ERROR;
        assert_true(log_level_parse(names[i], &l));
        assert_int_equal(l, i);
    }
    log_level_t l = LOG_DEBUG;
    assert_true(log_level_parse("WARNING", &l)); /* the alias, any case */
    assert_int_equal(l, LOG_WARN);
    assert_true(log_level_parse("Error", &l));
    assert_int_equal(l, LOG_ERROR);
    assert_false(log_level_parse("trace", &l));
}

static void test_access_statuses(void **state)
{
    (void)state;
    static const char *const names[] = {"ok",      "not_found", "conflict",    "insufficient_funds",
                                        "invalid", "retry",     "unavailable", "failed"};
    for (int i = 0; i < (int)ENUMSTR_COUNT(names); i++)
        assert_string_equal(access_status_str((access_status_t)i), names[i]);
    assert_int_equal(ACCESS_OK, 0);
    assert_string_equal(access_status_str((access_status_t)99), "failed");
    assert_true(access_status_is_infra(ACCESS_RETRY));
    assert_false(access_status_is_infra(ACCESS_CONFLICT));
}

static void test_access_row_states(void **state)
{
    (void)state;
    static const char *const pay[] = {"pending", "succeeded", "failed", "refunded"};
    for (int i = 0; i < 4; i++) {
        assert_string_equal(access_payment_status_str((access_payment_status_t)i), pay[i]);
        access_payment_status_t s = (access_payment_status_t)-1;
        assert_true(access_payment_status_parse(pay[i], &s));
        assert_int_equal(s, i);
    }
    access_payment_status_t ps;
    assert_false(access_payment_status_parse("paid", &ps));
    assert_false(access_payment_status_parse(NULL, &ps));
    assert_string_equal(access_payment_status_str((access_payment_status_t)4), "?");

    static const char *const po[] = {"pending", "paid", "failed"};
    for (int i = 0; i < 3; i++) {
        assert_string_equal(access_payout_status_str((access_payout_status_t)i), po[i]);
        access_payout_status_t s = (access_payout_status_t)-1;
        assert_true(access_payout_status_parse(po[i], &s));
        assert_int_equal(s, i);
    }
    access_payout_status_t pos;
    assert_false(access_payout_status_parse("succeeded", &pos));
    assert_string_equal(access_payout_status_str((access_payout_status_t)3), "?");

    static const char *const code[] = {"active", "revoked", "expired", "exhausted"};
    for (int i = 0; i < 4; i++)
        assert_string_equal(access_code_state_str((access_code_state_t)i), code[i]);
    assert_string_equal(access_code_state_str((access_code_state_t)4), "?");

    assert_string_equal(access_share_kind_str(ACCESS_SHARE_ALLOCATION), "allocation");
    assert_string_equal(access_share_kind_str(ACCESS_SHARE_REVERSAL), "reversal");
    assert_string_equal(access_share_kind_str((access_share_kind_t)2), "allocation");
}

static void test_jscan_problems(void **state)
{
    (void)state;
    assert_string_equal(jscan_problem_str(JSCAN_NONE), "nothing");
    assert_string_equal(jscan_problem_str(JSCAN_DUPLICATE_KEY), "a duplicate key");
    assert_string_equal(jscan_problem_str(JSCAN_NUMBER_RANGE), "a number out of range");
    assert_string_equal(jscan_problem_str(JSCAN_NUL), "\\u0000 (NUL)");
    assert_string_equal(jscan_problem_str((jscan_problem_t)9), "nothing");
    assert_string_equal(jscan_problem_predicate(JSCAN_DUPLICATE_KEY),
                        "appears twice in its object");
    assert_string_equal(jscan_problem_predicate(JSCAN_NUMBER_RANGE), "is a number out of range");
    assert_string_equal(jscan_problem_predicate(JSCAN_NUL), "contains \\u0000 (NUL)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enumstr_helpers),   cmocka_unit_test(test_errcodes),
        cmocka_unit_test(test_log_levels),        cmocka_unit_test(test_access_statuses),
        cmocka_unit_test(test_access_row_states), cmocka_unit_test(test_jscan_problems),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
