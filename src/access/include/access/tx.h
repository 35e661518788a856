/* tx — the tenant transaction: the only handle through which tenant data is
 * read or written.
 *
 * An access_tx_t is bound to exactly one account for its whole life. It is
 * opaque: it can be neither declared nor forged outside src/access/, only
 * opened by access_tx_begin (session.h) from a validated account. Every
 * access function that touches tenant data takes one as its first argument
 * and filters by its account; PostgreSQL's row-level security, keyed on the
 * same account through set_config('app.account_id', …, true), checks again. */
#ifndef TALLY_ACCESS_TX_H
#define TALLY_ACCESS_TX_H

#include "access/account.h"
#include "access/status.h"

typedef struct access_tx access_tx_t;

/* The account this transaction is bound to. Never NULL. */
const access_account_t *access_tx_account(const access_tx_t *tx);

/* Stripe-style paging shared by every list function. */
typedef struct access_page {
    int limit;                  /* 1–100, validated by the caller */
    const char *starting_after; /* an object id, or NULL */
} access_page_t;

#endif
