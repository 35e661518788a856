#include "alloc.h"

#include <stdbool.h>

int alloc_split(int64_t amount, const int32_t *bp, size_t n, int64_t *out)
{
    if (n < 1 || n > ALLOC_MAX_SHARES || amount == INT64_MIN)
        return -1;
    int32_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (bp[i] < 1 || bp[i] > ALLOC_BP_TOTAL)
            return -1;
        total += bp[i];
    }
    if (total != ALLOC_BP_TOTAL)
        return -1;

    /* Split |amount| and negate at the end: the rule is symmetric, so a
     * reversal takes back exactly what allocating the refund would give. */
    bool negative = amount < 0;
    int64_t a = negative ? -amount : amount;
    int64_t q = a / ALLOC_BP_TOTAL, r = a % ALLOC_BP_TOTAL;

    int64_t floors[ALLOC_MAX_SHARES];
    int32_t rem[ALLOC_MAX_SHARES]; /* fractional remainder, in 1/10000 units */
    int64_t given = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t scaled = r * bp[i]; /* < 10^8 */
        floors[i] = q * bp[i] + scaled / ALLOC_BP_TOTAL;
        rem[i] = (int32_t)(scaled % ALLOC_BP_TOTAL);
        given += floors[i];
    }

    /* Σ rem = 10000 × leftover, so leftover < n: hand out one unit at a time
     * to the largest remaining remainder, the earliest on ties (strict '>'). */
    int64_t leftover = a - given;
    bool bumped[ALLOC_MAX_SHARES] = {false};
    for (int64_t k = 0; k < leftover; k++) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (!bumped[i] && (best == n || rem[i] > rem[best]))
                best = i;
        }
        bumped[best] = true;
        floors[best] += 1;
    }

    for (size_t i = 0; i < n; i++)
        out[i] = negative ? -floors[i] : floors[i];
    return 0;
}

int alloc_rebalance(int64_t net, const int32_t *bp, const int64_t *totals, size_t n,
                    int64_t *change)
{
    int64_t target[ALLOC_MAX_SHARES];
    if (net < 0 || alloc_split(net, bp, n, target) != 0)
        return -1;
    int64_t diff[ALLOC_MAX_SHARES];
    for (size_t i = 0; i < n; i++) {
        if (__builtin_sub_overflow(target[i], totals[i], &diff[i]))
            return -1;
    }
    for (size_t i = 0; i < n; i++)
        change[i] = diff[i];
    return 0;
}
