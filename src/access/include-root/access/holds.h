/* holds — an operator's holds on accounts (migrations/0007_holds.sql;
 * CONTRACT.md §7): while an account is held, the workers answer its
 * requests `account_held` and apply nothing.
 *
 * For tallyctl: access_holds_put, access_holds_remove and
 * access_holds_list, each over a connection of its own from a conninfo
 * (the operator's: the table's owner). For the worker:
 * access_holds_read on a borrowed pool connection, through
 * tally_held_accounts() — its only right there — and
 * access_holds_send_listen on its own LISTEN connection.
 *
 * Not tenant work: holds are by account id, across accounts. Every
 * function that takes err writes one line there that never holds a
 * password. */
#ifndef TALLY_ACCESS_HOLDS_H
#define TALLY_ACCESS_HOLDS_H

#include "access/account.h"
#include "access/status.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The channel a change of the holds is notified on (one notification per
 * statement, at commit; the payload is empty). */
#define ACCESS_HOLDS_CHANNEL "tally_holds"

#define ACCESS_HOLD_REASON_MAX 1000 /* characters (the table's CHECK) */
#define ACCESS_HOLD_BY_MAX     200

typedef struct access_hold {
    char account[ACCESS_ACCOUNT_ID_MAX + 1];
    char reason[ACCESS_HOLD_REASON_MAX * 4 + 1]; /* UTF-8 */
    char held_by[ACCESS_HOLD_BY_MAX * 4 + 1];    /* who, as tallyctl was told */
    char db_role[64];                            /* the database role that held it */
    int64_t held_at_ms;
} access_hold_t;

/* Holds account (its id's format checked by the table) for reason, by
 * held_by, in one transaction on its own connection. Holding a held account
 * again replaces its reason and who held it; it stays held since the
 * first time. *was_held says whether it was, and *prev (may be NULL) is the
 * hold it had. Returns 0, or -1 with err.
 * @thread any */
int access_holds_put(const char *conninfo, const char *account, const char *reason,
                     const char *held_by, bool *was_held, access_hold_t *prev, char *err,
                     size_t errlen);

/* Releases account. *was_held says whether it was held; *gone (may be NULL)
 * is the hold it had. Returns 0 (also when it was not held), or -1 with err.
 * @thread any */
int access_holds_remove(const char *conninfo, const char *account, bool *was_held,
                        access_hold_t *gone, char *err, size_t errlen);

/* Every hold, by account. *rows is malloc'd (NULL when *n is 0); the caller
 * frees it. Returns 0, or -1 with err.
 * @thread any */
int access_holds_list(const char *conninfo, access_hold_t **rows, size_t *n, char *err,
                      size_t errlen);

struct pool_conn;

/* The held accounts (*accounts: a malloc'd array of *n malloc'd ids, NULL
 * when none; the caller frees them), read in one round trip on a borrowed
 * pool connection, in a transaction of its own with statement and lock
 * timeouts of timeout_ms. ACCESS_NOT_FOUND: the schema has no holds (a
 * migration not applied yet); a role that may not read them is a failure.
 * @thread executor */
access_status_t access_holds_read(struct pool_conn *conn, int timeout_ms, char ***accounts,
                                  size_t *n, access_error_t *err);

struct pg_conn; /* libpq's PGconn */

/* Sends LISTEN on ACCESS_HOLDS_CHANNEL on pg without waiting (PQsendQuery;
 * pg may be non-blocking). Returns 1, or 0 when it could not be sent
 * (PQerrorMessage says why).
 * @thread loop */
int access_holds_send_listen(struct pg_conn *pg);

#endif
