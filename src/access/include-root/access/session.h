/* session — one database transaction on one pooled connection, grouping one
 * or more tenant transactions (a savepoint each) so that several ready
 * requests of different accounts commit together.
 *
 * Used by the worker only; handlers never see a session or a connection.
 *
 *   access_session_begin        BEGIN
 *     access_tx_begin(acct)       SAVEPOINT; set_config('app.account_id', acct, true) and
 *                                 the pool's limits (pool_limits_t) as SET LOCAL
 *       …access calls…
 *       access_tx_rollback        ROLLBACK TO SAVEPOINT (effects undone, still bound)
 *     access_tx_end               RELEASE SAVEPOINT; frees the tx
 *   access_session_commit       COMMIT
 *
 * Every statement of a tenant transaction is bounded by those limits: a
 * statement or lock wait that passes them fails ACCESS_RETRY (a timeout is
 * transient), an idle transaction is ended by the server.
 *
 * A tenant transaction ends before the next one begins. Any function may
 * return ACCESS_UNAVAILABLE: the connection is gone, and the caller must
 * access_session_abort and redo the whole session elsewhere. */
#ifndef TALLY_ACCESS_SESSION_H
#define TALLY_ACCESS_SESSION_H

#include "access/tx.h"

#include <stdbool.h>

struct pool_conn;
typedef struct access_session access_session_t;

/* Starts a transaction on a borrowed connection. The session does not own
 * the connection; release it to the pool after commit or abort. */
access_status_t access_session_begin(struct pool_conn *conn, access_session_t **out,
                                     access_error_t *err);

/* The same, for throughput (the worker's sessions): nothing is sent before it
 * has to be. access_tx_begin sends nothing (its SAVEPOINT and tenant setting
 * travel with the tx's first statement, which reports their failure);
 * access_tx_rollback waits for the next message as well; and the writes whose
 * result is only checked (access_outcome_store, access_logs_insert) are
 * queued. access_tx_end sends nothing either: the tx's writes and RELEASE
 * travel with the next tx's first statement (or go out on their own when
 * that tx sends nothing, or before COMMIT). A queued write that fails before
 * its tx ended is reported by access_tx_end, which has then undone the
 * tenant transaction and leaves the session usable; one that fails later
 * fails the whole session (the server already ran what followed it), and
 * access_session_failed_tx names the tx it belonged to. */
access_status_t access_session_begin_pipelined(struct pool_conn *conn, access_session_t **out,
                                               access_error_t *err);

/* True once the session is unusable (a lost connection, a failed control
 * statement, a caller bug, a carried write that failed): only
 * access_session_abort is left. */
bool access_session_failed(const access_session_t *s);

/* True when the session failed (ACCESS_UNAVAILABLE) because a connection
 * pooler lost a prepared statement or handed over another client's (SQLSTATE
 * 26000 or 42P05, pool/pooler.h): no request is at fault, and the fix is the
 * pooler's (PgBouncer 1.21 or later with max_prepared_statements) or
 * TALLY_PREPARED_STATEMENTS=off. */
bool access_session_pooler_fault(const access_session_t *s);

/* Tenant transactions begun in this session so far; the n-th one begun is
 * number n. */
unsigned access_session_tx_count(const access_session_t *s);

/* Messages the session sent to the server so far (each a pipeline that
 * waits for its answer: one round trip). */
unsigned access_session_round_trips(const access_session_t *s);

/* The number of the ended tenant transaction whose carried writes failed
 * the session, or 0. */
unsigned access_session_failed_tx(const access_session_t *s);

/* Whether that write failed in a way no retry changes (SQLSTATE class 22 or
 * 23: ACCESS_INVALID or ACCESS_CONFLICT), so that its request should be
 * answered at once rather than run again. */
bool access_session_failed_permanently(const access_session_t *s);

/* Sends the writes the session still holds back for ended tenant
 * transactions (pipelined sessions; nothing to do otherwise). On failure the
 * session has failed and access_session_failed_tx names the culprit; call
 * it before access_session_commit, which flushes too but frees the session
 * on failure. */
access_status_t access_session_flush(access_session_t *s, access_error_t *err);

/* Opens a tenant transaction for *account (refused with ACCESS_FAILED if the
 * account is not valid). *out is owned by the session until access_tx_end. */
access_status_t access_tx_begin(access_session_t *s, const access_account_t *account,
                                access_tx_t **out, access_error_t *err);

/* Undoes everything done in tx since access_tx_begin; tx stays open and bound
 * to its account, so an error outcome and an audit row can still be written. */
access_status_t access_tx_rollback(access_tx_t *tx, access_error_t *err);

/* Sends tx's queued writes now (pipelined sessions; nothing to do
 * otherwise), so that their failure is reported here, with tx still open to
 * be rolled back, and not later. */
access_status_t access_tx_flush(access_tx_t *tx, access_error_t *err);

/* Keeps tx's effects (RELEASE SAVEPOINT) and frees tx. */
access_status_t access_tx_end(access_tx_t *tx, access_error_t *err);

/* COMMIT and free the session. On failure the session is freed as well, and
 * nothing of it was committed. */
access_status_t access_session_commit(access_session_t *s, access_error_t *err);

/* ROLLBACK (best effort) and free the session and any open tenant transaction. */
void access_session_abort(access_session_t *s);

#endif
