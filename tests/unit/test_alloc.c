/* Unit tests for the share allocation arithmetic (src/handlers/alloc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/handlers/alloc.h"

#include <stdbool.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* An independent reference: exact products in 128 bits, then the leftover
 * units by a full ranking (remainder descending, index ascending). */
static void reference(int64_t amount, const int32_t *bp, size_t n, int64_t *out)
{
    bool neg = amount < 0;
    __int128 a = neg ? -(__int128)amount : amount;
    __int128 rem[ALLOC_MAX_SHARES];
    __int128 given = 0;
    for (size_t i = 0; i < n; i++) {
        __int128 p = a * bp[i];
        out[i] = (int64_t)(p / 10000);
        rem[i] = p % 10000;
        given += out[i];
    }
    size_t order[ALLOC_MAX_SHARES];
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) { /* insertion sort: stable, so ties keep list order */
        size_t k = order[i];
        size_t j = i;
        while (j > 0 && rem[order[j - 1]] < rem[k]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = k;
    }
    for (__int128 k = 0; k < a - given; k++)
        out[order[k]] += 1;
    if (neg) {
        for (size_t i = 0; i < n; i++)
            out[i] = -out[i];
    }
}

static int64_t sum(const int64_t *v, size_t n)
{
    int64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return s;
}

static void check_against_reference(int64_t amount, const int32_t *bp, size_t n)
{
    int64_t got[ALLOC_MAX_SHARES], want[ALLOC_MAX_SHARES];
    assert_int_equal(alloc_split(amount, bp, n, got), 0);
    reference(amount, bp, n, want);
    for (size_t i = 0; i < n; i++) {
        if (got[i] != want[i])
            fail_msg("amount %lld share %zu (bp %d): got %lld, want %lld", (long long)amount, i,
                     bp[i], (long long)got[i], (long long)want[i]);
    }
    assert_int_equal(sum(got, n), amount);
}

static void test_contract_examples(void **state)
{
    (void)state;
    int64_t out[3];

    const int32_t half[] = {5000, 5000};
    assert_int_equal(alloc_split(1, half, 2, out), 0);
    assert_int_equal(out[0], 1); /* the tie goes to the earlier share */
    assert_int_equal(out[1], 0);

    const int32_t thirds[] = {3333, 3333, 3334};
    assert_int_equal(alloc_split(100, thirds, 3, out), 0);
    assert_int_equal(out[0], 33);
    assert_int_equal(out[1], 33);
    assert_int_equal(out[2], 34);

    const int32_t all[] = {10000};
    assert_int_equal(alloc_split(1999, all, 1, out), 0);
    assert_int_equal(out[0], 1999);
}

static void test_ties_and_remainders(void **state)
{
    (void)state;
    int64_t out[3];

    /* Remainders .6668, .6666, .6666 and two leftover units: the largest,
     * then the earlier of the tied ones. */
    const int32_t a[] = {3334, 3333, 3333};
    assert_int_equal(alloc_split(2, a, 3, out), 0);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 1);
    assert_int_equal(out[2], 0);

    /* A larger remainder later in the list beats an earlier smaller one. */
    const int32_t b[] = {2500, 2500, 5000};
    assert_int_equal(alloc_split(1, b, 3, out), 0);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], 0);
    assert_int_equal(out[2], 1);

    /* Three-way tie, one unit: the first. */
    const int32_t c[] = {2000, 2000, 2000, 2000, 2000};
    int64_t five[5];
    assert_int_equal(alloc_split(3, c, 5, five), 0);
    assert_int_equal(five[0], 1);
    assert_int_equal(five[1], 1);
    assert_int_equal(five[2], 1);
    assert_int_equal(five[3], 0);
    assert_int_equal(five[4], 0);

    /* Zero splits into zeros. */
    assert_int_equal(alloc_split(0, a, 3, out), 0);
    assert_int_equal(sum(out, 3), 0);
}

static void test_large_amounts(void **state)
{
    (void)state;
    int64_t out[2];
    const int64_t max = INT64_C(1000000000000000); /* 10^15: × 10000 exceeds int64 */

    const int32_t a[] = {1, 9999};
    assert_int_equal(alloc_split(max - 1, a, 2, out), 0);
    assert_int_equal(out[0], INT64_C(100000000000)); /* 99999999999.9999 rounded up */
    assert_int_equal(out[1], INT64_C(999899999999999));

    const int32_t thirds[] = {3333, 3333, 3334};
    check_against_reference(max, thirds, 3);
    check_against_reference(max - 1, thirds, 3);
    check_against_reference(-max, thirds, 3);
    check_against_reference(INT64_MAX, thirds, 3);
    check_against_reference(INT64_MAX, a, 2);
    check_against_reference(-INT64_MAX, a, 2);
}

static void test_invalid_inputs(void **state)
{
    (void)state;
    int64_t out[ALLOC_MAX_SHARES + 1];
    out[0] = 77;
    const int32_t ok[] = {10000};
    assert_int_equal(alloc_split(10, ok, 0, out), -1);
    assert_int_equal(alloc_split(INT64_MIN, ok, 1, out), -1);
    assert_int_equal(out[0], 77); /* untouched */

    const int32_t short_sum[] = {5000, 4999};
    assert_int_equal(alloc_split(10, short_sum, 2, out), -1);
    const int32_t long_sum[] = {5000, 5001};
    assert_int_equal(alloc_split(10, long_sum, 2, out), -1);
    const int32_t zero[] = {10000, 0};
    assert_int_equal(alloc_split(10, zero, 2, out), -1);
    const int32_t negative[] = {10001, -1};
    assert_int_equal(alloc_split(10, negative, 2, out), -1);

    int32_t many[ALLOC_MAX_SHARES + 1];
    for (size_t i = 0; i < N_OF(many); i++)
        many[i] = 1;
    many[0] = 10000 - ALLOC_MAX_SHARES; /* 51 shares summing to 10000 */
    assert_int_equal(alloc_split(10, many, N_OF(many), out), -1);
    many[0] = 10000 - (ALLOC_MAX_SHARES - 1); /* 50 shares: fine */
    assert_int_equal(alloc_split(10, many, ALLOC_MAX_SHARES, out), 0);
    assert_int_equal(sum(out, ALLOC_MAX_SHARES), 10);
}

/* Every two- and three-way split on a 50-bp grid, every amount 0–200. */
static void test_exhaustive_small(void **state)
{
    (void)state;
    int cases = 0;
    for (int32_t x = 50; x < 10000; x += 50) {
        const int32_t two[] = {x, 10000 - x};
        for (int64_t amount = 0; amount <= 200; amount++) {
            check_against_reference(amount, two, 2);
            cases++;
        }
        for (int32_t y = 50; x + y < 10000; y += 250) {
            const int32_t three[] = {x, y, 10000 - x - y};
            for (int64_t amount = 0; amount <= 200; amount += 7) {
                check_against_reference(amount, three, 3);
                check_against_reference(-amount, three, 3);
                cases += 2;
            }
        }
    }
    assert_true(cases > 10000);
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random share lists (1–50 shares) and amounts up to 10^15: a bounded count. */
static void test_randomized(void **state)
{
    (void)state;
    for (int round = 0; round < 20000; round++) {
        size_t n = 1 + rng() % ALLOC_MAX_SHARES;
        int32_t bp[ALLOC_MAX_SHARES];
        int32_t left = 10000;
        for (size_t i = 0; i < n; i++) {
            int32_t room = left - (int32_t)(n - 1 - i); /* leave 1 bp for each later share */
            bp[i] = i == n - 1 ? left : 1 + (int32_t)(rng() % (uint64_t)(room > 1 ? room / 2 : 1));
            left -= bp[i];
        }
        int64_t amount;
        switch (round % 3) {
        case 0:
            amount = (int64_t)(rng() % 1000);
            break;
        case 1:
            amount = (int64_t)(rng() % INT64_C(1000000000000001));
            break;
        default:
            amount = INT64_C(1000000000000000) - (int64_t)(rng() % 100);
            break;
        }
        check_against_reference(amount, bp, n);
    }
}

/* A payment allocated, then refunded in parts: the allocation plus the
 * reversals always sum to the current net amount, and no reversal is
 * positive. Per party the running total may drift from a fresh split of the
 * net by a unit per refund (each refund is split on its own, as the contract
 * says); here 3 one-unit refunds of a 2/1 split leave -1/+1. */
static void test_reversals_track_net(void **state)
{
    (void)state;
    const int32_t bp[] = {3333, 3333, 3334};
    int64_t net = 1001;
    int64_t total[3], part[3];
    assert_int_equal(alloc_split(net, bp, 3, total), 0);
    const int64_t refunds[] = {1, 2, 333, 10, 655};
    for (size_t r = 0; r < N_OF(refunds); r++) {
        assert_int_equal(alloc_split(-refunds[r], bp, 3, part), 0);
        net -= refunds[r];
        for (size_t i = 0; i < 3; i++) {
            assert_true(part[i] <= 0);
            total[i] += part[i];
        }
        assert_int_equal(sum(total, 3), net);
    }
    assert_int_equal(net, 0);

    const int32_t half[] = {5000, 5000};
    int64_t two[2], rev[2];
    assert_int_equal(alloc_split(3, half, 2, two), 0);
    assert_int_equal(two[0], 2);
    assert_int_equal(two[1], 1);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(alloc_split(-1, half, 2, rev), 0);
        assert_int_equal(rev[0], -1); /* the tie goes to the earlier share each time */
        assert_int_equal(rev[1], 0);
        two[0] += rev[0];
        two[1] += rev[1];
    }
    assert_int_equal(two[0] + two[1], 0);
    assert_int_equal(two[0], -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_examples),   cmocka_unit_test(test_ties_and_remainders),
        cmocka_unit_test(test_large_amounts),       cmocka_unit_test(test_invalid_inputs),
        cmocka_unit_test(test_exhaustive_small),    cmocka_unit_test(test_randomized),
        cmocka_unit_test(test_reversals_track_net),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
