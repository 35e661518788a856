/* schedule — what `tallyctl payouts due` reads: the payouts that a payout
 * schedule makes due in one period, across accounts.
 *
 * It is not tenant work: it opens its own connection (not the pool) as a
 * login role granted tally_scheduler, which may call only the SECURITY
 * DEFINER functions tally_payouts_due and tally_payouts_unrouted
 * (0005_money.sql); they return account, currency and amount, nothing else.
 * For tallyctl; the worker never calls it. */
#ifndef TALLY_ACCESS_SCHEDULE_H
#define TALLY_ACCESS_SCHEDULE_H

#include "access/account.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct access_due_payout {
    char account_id[ACCESS_ACCOUNT_ID_MAX + 1];
    char currency[8]; /* as stored: three lower-case letters */
    int64_t amount;   /* the whole available balance, or the period's payout again */
    bool routed;      /* false: no default route takes the currency (skip it) */
} access_due_payout_t;

/* The payouts due for schedule ("daily", "weekly", "monthly") in period (its
 * key: 2026-12-02, 2026-W49, 2026-12), routed and unrouted, read in one
 * statement (one snapshot) and sorted by account and currency. On success
 * returns 0 and *rows (malloc'd; the caller frees it, NULL when *n is 0);
 * otherwise -1 with one line in err that never holds a password. */
int access_schedule_due(const char *conninfo, const char *schedule, const char *period,
                        access_due_payout_t **rows, size_t *n, char *err, size_t errlen);

#endif
