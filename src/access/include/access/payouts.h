/* payouts — the pay_out table: money leaving an account's available balance
 * (payout.*).
 *
 * Every payout moves account_balances through a trigger (0003_payouts.sql):
 * creating one takes its amount from available into pending_payouts in a
 * single conditional UPDATE (WHERE available >= amount) on the balance row, so
 * concurrent payouts queue on that row and never overdraw it; paid moves the
 * amount on to paid_out, failed gives it back to available. */
#ifndef TALLY_ACCESS_PAYOUTS_H
#define TALLY_ACCESS_PAYOUTS_H

#include "access/routes.h"
#include "access/tx.h"
#include "common/enumstr.h"

#include <stdbool.h>
#include <stdint.h>

#define ACCESS_PAYOUT_ID_MAX 48 /* buffer for a Tally id ("po_…") */

/* A payout's statuses as stored and answered (common/enumstr.h). */
#define ACCESS_PAYOUT_STATUS_LIST(X)                                                               \
    X(ACCESS_PAYOUT_PENDING, "pending")                                                            \
    X(ACCESS_PAYOUT_PAID, "paid")                                                                  \
    X(ACCESS_PAYOUT_FAILED, "failed")

typedef enum access_payout_status {
    ACCESS_PAYOUT_STATUS_LIST(ENUMSTR_CONST)
} access_payout_status_t;

/* The status's name; "?" for a value outside the list. */
const char *access_payout_status_str(access_payout_status_t s);

/* Parses one of those strings; false otherwise. */
bool access_payout_status_parse(const char *s, access_payout_status_t *out);

typedef struct access_payout {
    char id[ACCESS_PAYOUT_ID_MAX];
    int64_t amount;
    char currency[4];
    access_payout_status_t status;
    char route_id[ACCESS_ROUTE_ID_MAX]; /* "" when the payout has no route */
    char *description;                  /* malloc'd, NULL when none */
    int64_t created_at_ms;
    int64_t updated_at_ms;
} access_payout_t;

/* Frees description and zeroes *p. Safe on a zeroed struct. */
void access_payout_clear(access_payout_t *p);

typedef struct access_payout_new {
    int64_t amount;
    const char *currency;
    const char *route_id;    /* NULL: the account's default route, if it has one */
    const char *description; /* may be NULL */
} access_payout_new_t;

/* payout.create in one statement. In this order: an amount below the
 * account's min_payout_amount → ACCESS_INVALID (field "amount"); an unknown
 * route_id → ACCESS_NOT_FOUND (field "route_id"); a given route bound to
 * another currency → ACCESS_CONFLICT (field "route_id"), the default route
 * → ACCESS_CONFLICT without a field, naming the route; an amount
 * above the available balance in that currency → ACCESS_INSUFFICIENT_FUNDS
 * (field "amount"). The route stays share-locked for the rest of tx, so it
 * cannot be deleted under the new pending payout. On ACCESS_OK *out holds the
 * payout (clear it). */
access_status_t access_payouts_create(access_tx_t *tx, const access_payout_new_t *in,
                                      access_payout_t *out, access_error_t *err);

/* payout.update_status: pending → paid | failed. Asking for the current
 * status is a no-op that returns the row; anything else → ACCESS_CONFLICT
 * (field "status"); no such payout → ACCESS_NOT_FOUND (field "payout_id"). */
access_status_t access_payouts_update_status(access_tx_t *tx, const char *payout_id,
                                             access_payout_status_t status, access_payout_t *out,
                                             access_error_t *err);

/* payout.get; ACCESS_NOT_FOUND (field "payout_id") when the account has no
 * such payout. */
access_status_t access_payouts_get(access_tx_t *tx, const char *payout_id, access_payout_t *out,
                                   access_error_t *err);

/* payout.list: newest first, optionally of one status (NULL for any). rows
 * has room for page->limit entries; *n is how many were filled (clear each)
 * and *has_more whether older ones exist. An unknown starting_after →
 * ACCESS_NOT_FOUND (field "starting_after"). */
access_status_t access_payouts_list(access_tx_t *tx, const access_payout_status_t *status,
                                    const access_page_t *page, access_payout_t *rows, int *n,
                                    bool *has_more, access_error_t *err);

#endif
