/* Unit tests for the one place that classifies database failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/access/sqlstate.h"

static void test_retry(void **state)
{
    (void)state;
    const char *codes[] = {"40001", "40P01", "55P03", "57014"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_int_equal(access_classify(codes[i], false), ACCESS_RETRY);
}

static void test_unavailable(void **state)
{
    (void)state;
    const char *codes[] = {"08000", "08003", "08006", "08001", "08P01", "57P01",
                           "57P02", "57P03", "57P04", "57P05", "53000", "53100",
                           "53200", "53300", "25006", "26000", "42P05"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_int_equal(access_classify(codes[i], false), ACCESS_UNAVAILABLE);
    /* No server diagnosis at all: the failure happened on our side of the wire. */
    assert_int_equal(access_classify(NULL, false), ACCESS_UNAVAILABLE);
    assert_int_equal(access_classify("", false), ACCESS_UNAVAILABLE);
    assert_int_equal(access_classify("0800", false), ACCESS_UNAVAILABLE);
    /* A lost connection wins over any code, even a retryable one. */
    assert_int_equal(access_classify("40001", true), ACCESS_UNAVAILABLE);
    assert_int_equal(access_classify("23505", true), ACCESS_UNAVAILABLE);
}

static void test_failed(void **state)
{
    (void)state;
    const char *codes[] = {"42601", "42501", "42P01", "25P02", "40002",
                           "40003", "57000", "55000", "P0001", "XX000"};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_int_equal(access_classify(codes[i], false), ACCESS_FAILED);
}

/* Data exceptions and constraint violations fail the same way on every
 * attempt: answered at once, never retried (CONTRACT.md §3). */
static void test_permanent(void **state)
{
    (void)state;
    const char *invalid[] = {"22003", "22P02", "22001", "22008", "22012", "22021", "22P05"};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_int_equal(access_classify(invalid[i], false), ACCESS_INVALID);
    const char *conflict[] = {"23505", "23514", "23503", "23502", "23P01", "23000"};
    for (size_t i = 0; i < sizeof(conflict) / sizeof(conflict[0]); i++)
        assert_int_equal(access_classify(conflict[i], false), ACCESS_CONFLICT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_permanent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
