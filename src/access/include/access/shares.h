/* shares — the payment_share_tracking table: how a payment's net amount is
 * split among parties (share.allocate) and the reversals its later refunds
 * append, so that a payment's rows always sum to its current net amount and
 * each party's rows to its share of it.
 *
 * The arithmetic lives in the handlers (alloc.c); this module claims the
 * payment and stores rows. An allocation runs in one tenant transaction:
 *
 *   access_shares_claim(tx, payment_id, &claim)   locks the payment, marks it allocated
 *   …split claim.net_amount…
 *   access_shares_insert(tx, payment_id, NULL, shares, n)
 *
 * and a refund of an allocated payment, after access_payments_refund (whose
 * UPDATE holds the payment's row lock to the end of tx, so refunds of one
 * payment run one after the other and each reads the totals the previous
 * one committed):
 *
 *   access_shares_totals(tx, payment_id, totals, &n)   each party's total so far
 *   …rebalance to the new net…
 *   access_shares_insert(tx, payment_id, refund_id, changes, m)   the nonzero changes
 *
 * Behind both, a statement trigger (0005_money.sql) refuses rows after
 * which a payment's rows do not sum to its net amount or a party's total is
 * negative. */
#ifndef TALLY_ACCESS_SHARES_H
#define TALLY_ACCESS_SHARES_H

#include "access/tx.h"
#include "common/enumstr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACCESS_SHARES_MAX      50  /* shares of one allocation */
#define ACCESS_SHARE_PARTY_MAX 257 /* 64 characters of UTF-8, NUL-terminated */
#define ACCESS_SHARE_ID_MAX    48

// clang-format off
#define ACCESS_SHARE_KIND_LIST(X)                                                                  \
    X(ACCESS_SHARE_ALLOCATION, "allocation") /* share.allocate */                                  \
    X(ACCESS_SHARE_REVERSAL, "reversal")     /* a later refund's share, amount ≤ 0 */
// clang-format on

typedef enum access_share_kind { ACCESS_SHARE_KIND_LIST(ENUMSTR_CONST) } access_share_kind_t;

/* "allocation" or "reversal" ("allocation" outside the list). */
const char *access_share_kind_str(access_share_kind_t k);

typedef struct access_share_row {
    char id[ACCESS_SHARE_ID_MAX];
    char payment_id[ACCESS_SHARE_ID_MAX];
    access_share_kind_t kind;
    char refund_id[ACCESS_SHARE_ID_MAX]; /* "" for an allocation */
    int position;                        /* index in the allocation's share list */
    char party[ACCESS_SHARE_PARTY_MAX];
    int32_t basis_points;
    int64_t amount;
    char currency[4];
    int64_t created_at_ms;
} access_share_row_t;

typedef struct access_share_claim {
    int64_t net_amount; /* amount − amount_refunded at the moment of the claim */
    char currency[4];
} access_share_claim_t;

/* Marks a succeeded, not yet allocated payment as allocated and locks it for
 * the rest of tx, so no refund changes its net amount before the rows are
 * inserted. No such payment → ACCESS_NOT_FOUND; not succeeded or already
 * allocated → ACCESS_CONFLICT. Of concurrent claims on one payment exactly one
 * succeeds. */
access_status_t access_shares_claim(access_tx_t *tx, const char *payment_id,
                                    access_share_claim_t *out, access_error_t *err);

typedef struct access_share_new {
    int position; /* the share's index in the allocation, 0–49 */
    const char *party;
    int32_t basis_points;
    int64_t amount;
} access_share_new_t;

/* Inserts n (1–50) rows for payment_id in one statement: the allocation when
 * refund_id is NULL, else the reversal of that refund. The currency is the
 * payment's. */
access_status_t access_shares_insert(access_tx_t *tx, const char *payment_id, const char *refund_id,
                                     const access_share_new_t *shares, size_t n,
                                     access_error_t *err);

typedef struct access_share_total {
    char party[ACCESS_SHARE_PARTY_MAX];
    int32_t basis_points;
    int64_t total; /* the allocation plus every reversal of this share */
} access_share_total_t;

/* One entry per share of payment_id's allocation, in position order (entry i
 * is position i); rows has room for ACCESS_SHARES_MAX. *n is 0 when the
 * payment was never allocated. */
access_status_t access_shares_totals(access_tx_t *tx, const char *payment_id,
                                     access_share_total_t *rows, size_t *n, access_error_t *err);

/* share.list: allocations and reversals, newest first, optionally of one
 * payment and/or one party (NULL for any). rows has room for page->limit
 * entries. An unknown starting_after → ACCESS_NOT_FOUND (field
 * "starting_after"). */
access_status_t access_shares_list(access_tx_t *tx, const char *payment_id, const char *party,
                                   const access_page_t *page, access_share_row_t *rows, int *n,
                                   bool *has_more, access_error_t *err);

#endif
