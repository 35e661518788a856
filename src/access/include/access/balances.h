/* balances — reading the account_balances table (balance.get).
 *
 * One row per account and currency, kept up to date by triggers: payments
 * (0002_payments.sql) add their net amount while succeeded or refunded,
 * payouts (0003_payouts.sql) move theirs between available, pending_payouts
 * and paid_out. So at any commit
 *   available = Σ net of succeeded/refunded payments − Σ pending and paid payouts.
 * available goes below zero only when a refund follows a payout. */
#ifndef TALLY_ACCESS_BALANCES_H
#define TALLY_ACCESS_BALANCES_H

#include "access/tx.h"

#include <stdint.h>

typedef struct access_balance {
    char currency[4];
    int64_t available;
    int64_t pending_payouts;
    int64_t paid_out;
} access_balance_t;

/* balance.get: the balance in currency, or (currency NULL) in every currency
 * the account has one, ordered by currency. A currency without a row reads as
 * zeros; an account without any row gets one zero row in its
 * default_currency. *rows is malloc'd (the caller frees it), *n ≥ 1. */
access_status_t access_balances_get(access_tx_t *tx, const char *currency, access_balance_t **rows,
                                    int *n, access_error_t *err);

#endif
