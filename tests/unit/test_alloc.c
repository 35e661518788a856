/* Unit tests for the share allocation arithmetic (src/handlers/alloc.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/handlers/alloc.h"
#include "../share_model.h"

#include <stdbool.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* The independent reference: the tests' own model of the rule. */
static void reference(int64_t amount, const int32_t *bp, size_t n, int64_t *out)
{
    share_model_split(amount, bp, n, out);
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

/* A refund by running total (alloc_rebalance), as the refund handler does
 * it: the changes move each total to the split of the new net. Returns how
 * many parties changed, and checks what the contract says of the changes. */
static int refund(int64_t *net, int64_t amount, const int32_t *bp, size_t n, int64_t *total,
                  int *plus_one)
{
    int64_t change[ALLOC_MAX_SHARES];
    *net -= amount;
    assert_int_equal(alloc_rebalance(*net, bp, total, n, change), 0);
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        /* Totals that were right before move down, or up by one unit at most. */
        if (change[i] > 1)
            fail_msg("net %lld: party %zu moves by %+lld", (long long)*net, i,
                     (long long)change[i]);
        *plus_one += change[i] == 1;
        changed += change[i] != 0;
        total[i] += change[i];
    }
    return changed;
}

/* After a refund: each total is the model's split of the net (reference(),
 * written apart from alloc.c), within one unit of its exact pro-rata share
 * net × bp / 10000 (compared exactly, in 128 bits), the totals sum to the
 * net, and a fully refunded payment leaves every party at 0. */
static void check_totals(int64_t net, const int32_t *bp, size_t n, const int64_t *total)
{
    int64_t want[ALLOC_MAX_SHARES];
    reference(net, bp, n, want);
    for (size_t i = 0; i < n; i++) {
        __int128 off = (__int128)total[i] * 10000 - (__int128)net * bp[i];
        if (total[i] != want[i] || off <= -10000 || off >= 10000)
            fail_msg("net %lld: party %zu (bp %d) holds %lld, the rule says %lld", (long long)net,
                     i, bp[i], (long long)total[i], (long long)want[i]);
        if (net == 0)
            assert_int_equal(total[i], 0);
    }
    assert_int_equal(sum(total, n), net);
}

/* The cases: 1001 at 50/50 refunded 333, 333, 333 and the rest ended
 * at −1/+1 under the per-refund rule; 100 at 50/50 refunded one unit at a
 * time ended at −50/+50. By running total they track the net throughout. */
static void test_reversals_by_running_total(void **state)
{
    (void)state;
    const int32_t half[] = {5000, 5000};
    int64_t total[2], net = 1001;
    int plus = 0;
    assert_int_equal(alloc_split(net, half, 2, total), 0);
    assert_int_equal(total[0], 501);
    const int64_t refunds[] = {333, 333, 333, 2};
    const int64_t seller[] = {334, 168, 1, 0}; /* the earlier party gets the odd unit */
    for (size_t r = 0; r < N_OF(refunds); r++) {
        refund(&net, refunds[r], half, 2, total, &plus);
        check_totals(net, half, 2, total);
        assert_int_equal(total[0], seller[r]);
    }
    assert_int_equal(total[0], 0);
    assert_int_equal(total[1], 0);

    net = 100;
    assert_int_equal(alloc_split(net, half, 2, total), 0);
    for (int k = 0; k < 100; k++) {
        /* Each unit comes off one party: the one the split of the new net says. */
        assert_int_equal(refund(&net, 1, half, 2, total, &plus), 1);
        check_totals(net, half, 2, total);
        assert_true(total[0] - total[1] == 0 || total[0] - total[1] == 1);
    }
    assert_int_equal(total[0], 0);
    assert_int_equal(total[1], 0);
    assert_int_equal(plus, 0);
}

/* Totals that drifted under the old per-refund rule (each one-unit refund of
 * 100 at 50/50 taken from the earlier party: 40/50 after ten) are corrected
 * by the next refund, in full and in one step. */
static void test_drift_corrected(void **state)
{
    (void)state;
    const int32_t half[] = {5000, 5000};
    int64_t total[2] = {40, 50}, change[2];
    assert_int_equal(alloc_rebalance(89, half, total, 2, change), 0);
    assert_int_equal(change[0], 5);  /* 40 → 45 */
    assert_int_equal(change[1], -6); /* 50 → 44 */
    total[0] += change[0];
    total[1] += change[1];
    check_totals(89, half, 2, total);

    /* What alloc_split refuses, and a net below zero or a change beyond int64. */
    assert_int_equal(alloc_rebalance(-1, half, total, 2, change), -1);
    const int32_t short_sum[] = {5000, 4999};
    assert_int_equal(alloc_rebalance(10, short_sum, total, 2, change), -1);
    const int64_t huge[] = {INT64_MIN, 0};
    change[0] = 77;
    assert_int_equal(alloc_rebalance(10, half, huge, 2, change), -1);
    assert_int_equal(change[0], 77); /* untouched */
}

/* The property, against the model, over random payments (amounts up to
 * 10^15), share lists of 1–50 parties and refund sequences (single units,
 * small and large parts, and in half the cases the rest at the end). The
 * number of cases is printed. */
static void test_running_total_property(void **state)
{
    (void)state;
    rng_state = 0x2545F4914F6CDD1Du; /* fixed: a failure reproduces */
    const int payments = 3000;
    long refunds = 0, checked = 0, full = 0;
    int plus = 0;
    for (int c = 0; c < payments; c++) {
        size_t n = 1 + rng() % ALLOC_MAX_SHARES;
        int32_t bp[ALLOC_MAX_SHARES];
        int32_t left = 10000;
        for (size_t i = 0; i < n; i++) {
            int32_t room = left - (int32_t)(n - 1 - i);
            bp[i] = i == n - 1 ? left : 1 + (int32_t)(rng() % (uint64_t)(room > 1 ? room / 2 : 1));
            left -= bp[i];
        }
        int64_t net = c % 3 == 0   ? 1 + (int64_t)(rng() % 200)
                      : c % 3 == 1 ? 1 + (int64_t)(rng() % 1000000)
                                   : 1 + (int64_t)(rng() % INT64_C(1000000000000000));
        int64_t total[ALLOC_MAX_SHARES];
        reference(net, bp, n, total); /* the allocation, as share.allocate stores it */
        int steps = 1 + (int)(rng() % 12);
        for (int k = 0; k < steps && net > 0; k++) {
            int64_t r;
            switch (rng() % 4) {
            case 0:
                r = 1;
                break;
            case 1:
                r = 1 + (int64_t)(rng() % (uint64_t)(net / 10 + 1));
                break;
            default:
                r = 1 + (int64_t)(rng() % (uint64_t)net);
                break;
            }
            refund(&net, r, bp, n, total, &plus);
            check_totals(net, bp, n, total);
            refunds++;
            checked += (long)n;
        }
        if (net > 0 && rng() % 2 == 0) {
            refund(&net, net, bp, n, total, &plus);
            check_totals(0, bp, n, total);
            refunds++;
            checked += (long)n;
        }
        full += net == 0;
    }
    print_message("share property: %d random payments, %ld refunds, %ld party totals checked, "
                  "%ld fully refunded, %d +1 changes\n",
                  payments, refunds, checked, full, plus);
    assert_true(full > payments / 4);
    assert_true(plus > 0); /* the +1 case was exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_examples),
        cmocka_unit_test(test_ties_and_remainders),
        cmocka_unit_test(test_large_amounts),
        cmocka_unit_test(test_invalid_inputs),
        cmocka_unit_test(test_exhaustive_small),
        cmocka_unit_test(test_randomized),
        cmocka_unit_test(test_reversals_by_running_total),
        cmocka_unit_test(test_drift_corrected),
        cmocka_unit_test(test_running_total_property),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
