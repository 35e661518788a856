/* alloc — the arithmetic of share.allocate (CONTRACT.md §6), pure.
 *
 * An amount is split among shares given in basis points (summing to 10000):
 * each share gets floor(amount × bp / 10000), and the leftover units go one
 * each to the shares with the largest fractional remainders, ties to the
 * share earlier in the list. The parts always sum exactly to the amount.
 *
 * A refund of an allocated payment is reversed by running total
 * (alloc_rebalance): after it, each party's total (its allocation plus its
 * reversals) is again alloc_split of the payment's current net amount, so no
 * party drifts however many refunds there are, and a full refund leaves
 * every party at 0. Splitting each refund on its own would not do: the
 * leftover unit of every split goes the same way (100 at 50/50 refunded one
 * unit at a time would end at −50/+50). */
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

/* The reversal of a refund: net is the payment's net amount after the refund
 * (≥ 0) and totals[i] party i's total before it. Writes to change[i] how much
 * party i's total moves so that it becomes alloc_split(net, bp)[i]; 0 means
 * no reversal row for that party. The changes sum to net − Σ totals. A change
 * is ≤ 0, except that rounding may move one unit to a party whose quota
 * shrank least (+1, largest remainder's known paradox), and that totals
 * which drifted under the old per-refund rule are corrected in full. Returns
 * 0, or -1 (change untouched) on the inputs alloc_split refuses, a negative
 * net, or a total so large that the change would overflow. */
int alloc_rebalance(int64_t net, const int32_t *bp, const int64_t *totals, size_t n,
                    int64_t *change);

#endif
