/* alloc — the arithmetic of share.allocate (CONTRACT.md §6), pure.
 *
 * An amount is split among shares given in basis points (summing to 10000):
 * each share gets floor(amount × bp / 10000), and the leftover units go one
 * each to the shares with the largest fractional remainders, ties to the
 * share earlier in the list. The parts always sum exactly to the amount.
 *
 * A refund of an allocated payment is reversed with the same rule applied to
 * the negated refund (alloc_split(-refund, …)): every part is ≤ 0 and the
 * parts sum to -refund, so a payment's allocations always sum to its current
 * net amount. Each refund is split on its own, so a party's running total can
 * differ by a unit per refund from a fresh split of the current net (3 one-unit
 * refunds of 3 split 50/50 = 2/1 leave -1/+1); the sum is always exact. */
#ifndef TALLY_HANDLERS_ALLOC_H
#define TALLY_HANDLERS_ALLOC_H

#include <stddef.h>
#include <stdint.h>

#define ALLOC_MAX_SHARES 50
#define ALLOC_BP_TOTAL   10000

/* Splits amount (any int64 except INT64_MIN; negative for reversals) among
 * the n shares bp[0..n), writing part i to out[i]. Returns 0, or -1 (out
 * untouched) when n is not 1–ALLOC_MAX_SHARES, a share is not 1–10000 or the
 * shares do not sum to 10000. Never overflows: amount × bp is computed as
 * (amount / 10000) × bp + (amount % 10000) × bp / 10000. */
int alloc_split(int64_t amount, const int32_t *bp, size_t n, int64_t *out);

#endif
