/* Unit tests for the currency table (src/handlers/currency.c): the compiled
 * table and Debian's iso-codes JSON, which scripts/gen-currencies.py
 * generates it from, must agree code for code. This fails when iso-codes
 * was upgraded (or the table edited) without regenerating. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "handlers/currency.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISO_4217_JSON "/usr/share/iso-codes/json/iso_4217.json"

static void test_table_matches_iso_codes(void **state)
{
    (void)state;
    const char *path = getenv("TALLY_ISO_4217_JSON");
    if (path == NULL)
        path = ISO_4217_JSON;
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (doc == NULL)
        fail_msg("%s: %s (install iso-codes: scripts/install-deps.sh)", path, je.text);
    json_t *list = json_object_get(doc, "4217");
    assert_true(json_is_array(list));

    size_t n = json_array_size(list);
    for (size_t i = 0; i < n; i++) {
        const char *alpha = json_string_value(json_object_get(json_array_get(list, i), "alpha_3"));
        assert_non_null(alpha);
        char lower[4] = "";
        for (size_t k = 0; k < 3 && alpha[k] != '\0'; k++)
            lower[k] = (char)tolower((unsigned char)alpha[k]);
        if (!currency_known(lower))
            fail_msg("%s is in %s but not in the table: run scripts/gen-currencies.py", lower,
                     path);
    }
    /* Same count, and every code known: the two sets are equal (the JSON has no duplicates). */
    if (currency_count() != n)
        fail_msg("the table has %zu codes, %s has %zu: run scripts/gen-currencies.py",
                 currency_count(), path, n);
    printf("currency table: %zu codes, as in %s\n", n, path);
    json_decref(doc);
}

static void test_lookup(void **state)
{
    (void)state;
    assert_true(currency_known("usd"));
    assert_true(currency_known("eur"));
    assert_true(currency_known("jpy"));
    assert_false(currency_known("uds")); /* the typo */
    assert_false(currency_known("xyz"));
    assert_false(currency_known("USD")); /* lower case only */
    assert_false(currency_known("usdx"));
    assert_false(currency_known("us"));
    assert_false(currency_known(""));
    assert_false(currency_known(NULL));
    /* Sorted and distinct, as bsearch needs. */
    for (size_t i = 1; i < currency_count(); i++)
        assert_true(strcmp(currency_code(i - 1), currency_code(i)) < 0);
    assert_null(currency_code(currency_count()));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_iso_codes),
        cmocka_unit_test(test_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
