/* Unit tests for src/worker/holds: the held accounts as a set replaced
 * whole, looked up by executors while the loop replaces it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/mem.h"
#include "worker/holds.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A malloc'd array of malloc'd copies of the n ids. */
static char **ids(size_t n, const char *const *v)
{
    char **out = mem_calloc(n > 0 ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = mem_strdup(v[i]);
    return out;
}

static void test_replace_and_lookup(void **state)
{
    (void)state;
    holds_t *h = holds_new();
    assert_false(holds_held(h, "acct_1"));
    assert_int_equal(holds_count(h), 0);
    assert_false(holds_held(NULL, "acct_1")); /* no set: nothing held */
    assert_false(holds_held(h, NULL));

    const char *const two[] = {"zeta", "acct_1", "acct_1", "Acct_1"};
    assert_true(holds_replace(h, ids(4, two), 4));
    assert_int_equal(holds_count(h), 3); /* the repeat counts once */
    assert_true(holds_held(h, "acct_1"));
    assert_true(holds_held(h, "Acct_1")); /* ids are case-sensitive */
    assert_true(holds_held(h, "zeta"));
    assert_false(holds_held(h, "acct_"));
    assert_false(holds_held(h, "acct_10"));
    assert_false(holds_held(h, ""));

    /* The same set again, in another order: no change. */
    const char *const same[] = {"Acct_1", "zeta", "acct_1"};
    assert_false(holds_replace(h, ids(3, same), 3));
    const char *const one[] = {"zeta"};
    assert_true(holds_replace(h, ids(1, one), 1));
    assert_false(holds_held(h, "acct_1"));
    assert_true(holds_replace(h, NULL, 0)); /* released: empty */
    assert_int_equal(holds_count(h), 0);
    assert_false(holds_held(h, "zeta"));
    assert_false(holds_replace(h, NULL, 0));
    holds_free(h);
    holds_free(NULL);
}

/* Requests run only against a set read within HOLDS_STALE_MS: never
 * before the first read, and not once the reads stop. */
static void test_current(void **state)
{
    (void)state;
    assert_true(holds_current(NULL, 0)); /* no holds kept: nothing to wait for */
    holds_t *h = holds_new();
    assert_false(holds_current(h, 0));
    assert_false(holds_current(h, 100000));
    holds_mark_read(h, 10000);
    assert_true(holds_current(h, 10000));
    assert_true(holds_current(h, 10000 + HOLDS_STALE_MS));
    assert_false(holds_current(h, 10000 + HOLDS_STALE_MS + 1));
    /* A read that started earlier than the one recorded, finishing late,
     * does not make the set look older. */
    holds_mark_read(h, 9000);
    assert_true(holds_current(h, 10000 + HOLDS_STALE_MS));
    holds_mark_read(h, 20000);
    assert_true(holds_current(h, 20000 + HOLDS_STALE_MS));
    holds_free(h);
}

#define LOOKUPS 200000

static void *lookups(void *arg)
{
    holds_t *h = arg;
    size_t seen = 0;
    for (int i = 0; i < LOOKUPS; i++)
        seen += holds_held(h, "steady");
    return (void *)seen;
}

/* An account held throughout stays held for the executors while the set
 * around it is replaced again and again. */
static void test_replaced_while_read(void **state)
{
    (void)state;
    holds_t *h = holds_new();
    const char *const first[] = {"steady"};
    holds_replace(h, ids(1, first), 1);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, lookups, h), 0);
    for (int round = 0; round < 2000; round++) {
        char other[32];
        snprintf(other, sizeof(other), "acct_%d", round);
        const char *const v[] = {other, "steady", "zz"};
        holds_replace(h, ids(3, v), 3);
    }
    for (int i = 0; i < 2; i++) {
        void *seen;
        pthread_join(th[i], &seen);
        assert_int_equal((size_t)seen, LOOKUPS);
    }
    holds_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_and_lookup),
        cmocka_unit_test(test_current),
        cmocka_unit_test(test_replaced_while_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
