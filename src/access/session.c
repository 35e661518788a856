/* session — see access/session.h.
 *
 * Round trips. Control statements are prepared once per connection and wait
 * in the session's queue (query.c) for the next message to the server, which
 * carries them in one libpq pipeline together with whatever has to go:
 *
 *                          eager session                 pipelined session
 *   access_session_begin   nothing sent (BEGIN queued)   the same
 *   access_tx_begin        [BEGIN|RELEASE] SAVEPOINT;    nothing sent: they go with
 *                          set_config: 1 round trip      the tx's first statement
 *   access_exec_write      1 round trip                  queued
 *   access_exec_deferred   1 round trip                  queued (a read; its result
 *                                                        waits for access_take_deferred)
 *   access_tx_rollback     ROLLBACK TO SAVEPOINT;        queued
 *                          set_config: 1 round trip
 *   access_tx_end          nothing sent (RELEASE         nothing sent: the tx's writes
 *                          queued)                       and RELEASE go with the next
 *                                                        tx's first statement
 *   access_session_commit  COMMIT (it releases the last savepoint): 1 round trip;
 *                          in a pipelined session the last tx's writes first: 1 more
 *
 * so a session of k tenant transactions costs k + 1 round trips of its own
 * (eager), and a worker request one (pipelined): its handler's statement,
 * with the previous request's outcome, audit row and RELEASE, its own
 * SAVEPOINT, tenant setting and outcome probe in front. set_config takes the account as a bound parameter, which the
 * simple query protocol (the only one that accepts several statements in one
 * message) cannot do; pipelining the extended protocol gets the single round
 * trip without ever splicing the account into SQL text.
 *
 * Carrying a tx's writes into the next message means their failure surfaces
 * after access_tx_end returned, and after the server already ran what came
 * behind them. The session then fails as a whole (the caller redoes it) and
 * access_session_failed_tx names the tx to blame. Writes are never carried
 * into COMMIT, so an unchecked write is never committed.
 *
 * set_config runs after SAVEPOINT, inside the subtransaction: ROLLBACK TO
 * SAVEPOINT therefore restores the value from before it (the previous
 * tenant's, or none), and access_tx_rollback sets it again. */
#include "access_internal.h"
#include "common/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void queue(access_session_t *s, access_ctl_t ctl)
{
    access_queue_ctl(s, ctl, s->ntx, s->tx.account.id);
}

/* Drops the last queued item if it is ctl of the current tx. */
static bool pop_if(access_session_t *s, access_ctl_t ctl)
{
    if (s->nqueue > 0 && s->queue[s->nqueue - 1].ctl == (int)ctl &&
        s->queue[s->nqueue - 1].owner == s->ntx) {
        s->nqueue--;
        return true;
    }
    return false;
}

/* Whether writes of an earlier tx than the current one wait in the queue. */
static bool carrying(const access_session_t *s)
{
    for (int i = 0; i < s->nqueue; i++)
        if (s->queue[i].ctl < 0 && s->queue[i].owner != s->ntx)
            return true;
    return false;
}

static access_status_t begin(struct pool_conn *conn, bool pipelined, access_session_t **out,
                             access_error_t *err)
{
    *out = NULL;
    access_error_clear(err);
    PGconn *pg = pool_conn_pg(conn);
    if (PQstatus(pg) != CONNECTION_OK) {
        access_error_from_pg(pg, NULL, "session", NULL, err);
        pool_conn_mark_broken(conn);
        return err->status;
    }
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        return access_fail(err, ACCESS_FAILED, NULL,
                           "session: the connection is inside a transaction");
    access_session_t *s = mem_calloc(1, sizeof(*s));
    s->conn = conn;
    s->pg = pg;
    s->tx.session = s;
    s->pipelined = pipelined;
    pool_limits_t lim = pool_conn_limits(conn);
    const int ms[3] = {lim.statement_timeout_ms, lim.lock_timeout_ms,
                       lim.idle_in_transaction_timeout_ms};
    for (int i = 0; i < 3; i++)
        snprintf(s->limits[i], sizeof(s->limits[i]), "%d", ms[i]);
    access_queue_ctl(s, ACCESS_CTL_BEGIN, 0, NULL);
    *out = s;
    return ACCESS_OK;
}

access_status_t access_session_begin(struct pool_conn *conn, access_session_t **out,
                                     access_error_t *err)
{
    return begin(conn, false, out, err);
}

access_status_t access_session_begin_pipelined(struct pool_conn *conn, access_session_t **out,
                                               access_error_t *err)
{
    return begin(conn, true, out, err);
}

bool access_session_failed(const access_session_t *s)
{
    return s->broken;
}

bool access_session_pooler_fault(const access_session_t *s)
{
    return s->pooler;
}

unsigned access_session_tx_count(const access_session_t *s)
{
    return s->ntx;
}

unsigned access_session_round_trips(const access_session_t *s)
{
    return s->round_trips;
}

unsigned access_session_failed_tx(const access_session_t *s)
{
    return s->failed;
}

bool access_session_failed_permanently(const access_session_t *s)
{
    return s->failed != 0 && s->failed_permanently;
}

access_status_t access_tx_begin(access_session_t *s, const access_account_t *account,
                                access_tx_t **out, access_error_t *err)
{
    *out = NULL;
    access_error_clear(err);
    if (!access_account_valid(account))
        return access_fail(err, ACCESS_FAILED, "account_id", "tx: invalid account id");
    if (s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: the session has failed");
    if (s->tx.open)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: another tenant transaction is open");

    access_deferred_clear(s); /* an earlier tx's read nobody took */
    s->ntx++;
    s->tx.account = *account;
    s->tx.open = true;
    s->tx.in_error = false;
    queue(s, ACCESS_CTL_SAVEPOINT);
    queue(s, ACCESS_CTL_SET_TENANT);
    s->tx_pending = true;
    if (!s->pipelined) {
        access_status_t st = access_flush(s, -1, err);
        if (st != ACCESS_OK) {
            /* Whatever was queued is now in an unknown state: the session is
             * over, and abort rolls back whatever BEGIN started. */
            s->tx.open = false;
            s->broken = true;
            return st;
        }
    }
    *out = &s->tx;
    return ACCESS_OK;
}

const access_account_t *access_tx_account(const access_tx_t *tx)
{
    return &tx->account;
}

access_status_t access_tx_rollback(access_tx_t *tx, access_error_t *err)
{
    access_error_clear(err);
    access_session_t *s = tx->session;
    if (!tx->open || s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: %s",
                           s->broken ? "the session has failed" : "not open");
    access_queue_drop_writes(s, s->ntx); /* never sent: nothing to undo */
    if (s->tx_pending) {
        /* Nothing of this tx reached the server yet. */
        tx->in_error = false;
        return ACCESS_OK;
    }
    queue(s, ACCESS_CTL_ROLLBACK_TO);
    queue(s, ACCESS_CTL_SET_TENANT);
    if (!s->pipelined) {
        access_status_t st = access_flush(s, -1, err);
        if (st != ACCESS_OK) {
            s->broken = true;
            return st;
        }
    }
    tx->in_error = false;
    return ACCESS_OK;
}

access_status_t access_tx_end(access_tx_t *tx, access_error_t *err)
{
    access_error_clear(err);
    access_session_t *s = tx->session;
    if (!tx->open)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: not open");
    if (s->broken) {
        tx->open = false;
        return access_fail(err, ACCESS_FAILED, NULL, "tx: the session has failed");
    }
    /* A deferred read nobody took has nothing to travel for. */
    if (s->deferred.owner == s->ntx)
        access_deferred_clear(s);
    if (tx->in_error) {
        /* Keeping the effects of a failed statement is a caller bug; RELEASE
         * would fail later, far from the cause. */
        tx->open = false;
        s->broken = true;
        return access_fail(err, ACCESS_FAILED, NULL,
                           "tx: ended after a failed statement without access_tx_rollback");
    }
    if (access_queue_has_writes(s, s->ntx) && carrying(s)) {
        /* Only one tx's writes are carried at a time: this one sent nothing
         * that could have taken the earlier ones along. Send both now. */
        access_status_t st = access_flush(s, -1, err);
        if (st != ACCESS_OK) {
            tx->open = false;
            if (s->broken)
                return st;
            /* This tx's own write failed: undo it, the session goes on. */
            queue(s, ACCESS_CTL_ROLLBACK_TO);
            queue(s, ACCESS_CTL_RELEASE);
            tx->in_error = false;
            return st;
        }
    }
    tx->open = false;
    if (s->tx_pending && !access_queue_has_writes(s, s->ntx)) {
        /* The tx never reached the server: it need not begin at all. */
        pop_if(s, ACCESS_CTL_SET_TENANT);
        pop_if(s, ACCESS_CTL_SAVEPOINT);
        s->tx_pending = false;
        return ACCESS_OK;
    }
    /* A rollback's tenant setting has nothing left to serve. */
    pop_if(s, ACCESS_CTL_SET_TENANT);
    queue(s, ACCESS_CTL_RELEASE);
    return ACCESS_OK;
}

access_status_t access_tx_flush(access_tx_t *tx, access_error_t *err)
{
    access_error_clear(err);
    access_session_t *s = tx->session;
    if (!tx->open || s->broken || tx->in_error)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: %s",
                           !tx->open   ? "not open"
                           : s->broken ? "the session has failed"
                                       : "a statement failed: access_tx_rollback first");
    if (!access_queue_has_writes(s, s->ntx) && !carrying(s))
        return ACCESS_OK;
    return access_flush(s, -1, err);
}

access_status_t access_session_flush(access_session_t *s, access_error_t *err)
{
    access_error_clear(err);
    if (s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "flush: the session has failed");
    if (!carrying(s) && !access_queue_has_writes(s, s->ntx))
        return ACCESS_OK;
    if (s->tx.open)
        return access_fail(err, ACCESS_FAILED, NULL, "flush: a tenant transaction is open");
    /* The writes of ended txs only: their failure breaks the session. */
    access_status_t st = access_flush(s, -1, err);
    if (st != ACCESS_OK)
        s->broken = true;
    return st;
}

access_status_t access_session_commit(access_session_t *s, access_error_t *err)
{
    access_error_clear(err);
    access_status_t st = ACCESS_OK;
    if (s->broken || s->tx.open) {
        st = access_fail(err, ACCESS_FAILED, NULL, "commit: %s",
                         s->broken ? "the session has failed"
                                   : "a tenant transaction is still open");
        access_session_abort(s);
        return st;
    }
    /* COMMIT releases the last savepoint along with everything else. */
    pop_if(s, ACCESS_CTL_RELEASE);
    /* Writes go out before COMMIT, never with it: a row count that is wrong
     * is no SQL error, and COMMIT would keep the write. */
    if (access_session_flush(s, err) != ACCESS_OK) {
        st = err->status;
        access_session_abort(s);
        return st;
    }
    if (s->sent) {
        st = access_flush(s, ACCESS_CTL_COMMIT, err);
        if (st != ACCESS_OK) {
            access_session_abort(s);
            return st;
        }
    }
    access_deferred_clear(s);
    free(s);
    return ACCESS_OK;
}

void access_session_abort(access_session_t *s)
{
    if (s == NULL)
        return;
    access_queue_drop_writes(s, 0);
    access_deferred_clear(s);
    PGconn *pg = s->pg;
    if (s->sent && PQstatus(pg) == CONNECTION_OK) {
        if (PQpipelineStatus(pg) != PQ_PIPELINE_OFF || PQtransactionStatus(pg) == PQTRANS_ACTIVE) {
            /* Stuck mid-protocol: closing is cheaper than recovering. */
            pool_conn_mark_broken(s->conn);
        } else if (PQtransactionStatus(pg) != PQTRANS_IDLE) {
            PGresult *r = PQexec(pg, "ROLLBACK");
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                pool_conn_mark_broken(s->conn);
            PQclear(r);
        }
    }
    free(s);
}
