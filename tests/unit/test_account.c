/* Unit tests for the tenant type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "access/account.h"

#include <string.h>

static void test_account_rules(void **state)
{
    (void)state;
    access_account_t a;
    assert_true(access_account_parse("acct_42", 7, &a));
    assert_string_equal(a.id, "acct_42");
    assert_true(access_account_valid(&a));

    char max[65];
    memset(max, 'A', 64);
    max[64] = '\0';
    assert_true(access_account_parse(max, 64, &a));
    assert_false(access_account_parse(max, 65, &a)); /* 65 chars */
    assert_false(access_account_parse("", 0, &a));
    assert_false(access_account_parse("acct 42", 7, &a));
    assert_false(access_account_parse("acct/42", 7, &a));
    assert_false(access_account_parse("ac\0ct", 5, &a)); /* embedded NUL */
    assert_false(access_account_parse("акк", strlen("акк"), &a));
    assert_string_equal(a.id, ""); /* left zeroed on failure */

    access_account_t forged;
    memset(&forged, 0, sizeof(forged));
    strcpy(forged.id, "x'; drop");
    assert_false(access_account_valid(&forged));
    assert_false(access_account_valid(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
