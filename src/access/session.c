/* session — see access/session.h.
 *
 * Round trips. Control statements are prepared once per connection and
 * travel in libpq pipelines (query.c) together with whatever else has to go
 * to the server; BEGIN and RELEASE wait for the next message:
 *
 *                          eager session                 pipelined session
 *   access_session_begin   nothing sent (BEGIN pending)  the same
 *   access_tx_begin        [BEGIN|RELEASE] SAVEPOINT;    nothing sent: they go with
 *                          set_config: 1 round trip      the tx's first statement
 *   access_exec_write      1 round trip                  queued for access_tx_end
 *   access_tx_rollback     ROLLBACK TO SAVEPOINT;        queued for the next message
 *                          set_config: 1 round trip
 *   access_tx_end          nothing sent (RELEASE         the queued writes: 1 round
 *                          pending)                      trip when there are any
 *   access_session_commit  COMMIT (releases the last savepoint with it): 1 round trip
 *
 * so a session of k tenant transactions costs k + 1 round trips of its own
 * (eager) and a request of the worker — claim, its statement, outcome and
 * audit row — three (pipelined). set_config takes the account as a bound
 * parameter, which the simple query protocol (the only one that accepts
 * several statements in one message) cannot do; pipelining the extended
 * protocol gets the single round trip without ever splicing the account into
 * SQL text.
 *
 * set_config runs after SAVEPOINT, inside the subtransaction: ROLLBACK TO
 * SAVEPOINT therefore restores the value from before it (the previous
 * tenant's, or none), and access_tx_rollback sets it again. */
#include "access_internal.h"

#include <stdlib.h>
#include <string.h>

/* Queues a control statement for the next message. The queue never holds
 * more than a handful by construction; a full one means a bug, and the
 * session is not trusted any more. */
static void push(access_session_t *s, access_ctl_t ctl)
{
    if (s->npending == ACCESS_MAX_PENDING) {
        s->broken = true;
        return;
    }
    s->pending[s->npending++] = ctl;
}

/* Drops the last queued control statement if it is ctl. */
static bool pop_if(access_session_t *s, access_ctl_t ctl)
{
    if (s->npending > 0 && s->pending[s->npending - 1] == ctl) {
        s->npending--;
        return true;
    }
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
    access_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return access_fail(err, ACCESS_FAILED, NULL, "session: out of memory");
    s->conn = conn;
    s->pg = pg;
    s->tx.session = s;
    s->pipelined = pipelined;
    push(s, ACCESS_CTL_BEGIN);
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

    s->tx.account = *account;
    s->tx.open = true;
    s->tx.in_error = false;
    push(s, ACCESS_CTL_SAVEPOINT);
    push(s, ACCESS_CTL_SET_TENANT);
    s->tx_pending = true;
    if (!s->pipelined) {
        access_status_t st = access_pipe_ctl(s, -1, false, err);
        if (st != ACCESS_OK) {
            /* Whatever was pending is now in an unknown state: the session is
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
    access_deferred_clear(s); /* never sent: nothing to undo */
    if (s->tx_pending) {
        /* Nothing of this tx reached the server yet. */
        tx->in_error = false;
        return ACCESS_OK;
    }
    push(s, ACCESS_CTL_ROLLBACK_TO);
    push(s, ACCESS_CTL_SET_TENANT);
    if (!s->pipelined) {
        access_status_t st = access_pipe_ctl(s, -1, false, err);
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
    tx->open = false;
    if (s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "tx: the session has failed");
    if (tx->in_error) {
        /* Keeping the effects of a failed statement is a caller bug; RELEASE
         * would fail later, far from the cause. */
        s->broken = true;
        return access_fail(err, ACCESS_FAILED, NULL,
                           "tx: ended after a failed statement without access_tx_rollback");
    }
    if (s->ndeferred > 0) {
        access_status_t st = access_pipe_ctl(s, -1, true, err);
        if (st != ACCESS_OK) {
            if (s->broken)
                return st;
            /* A queued write failed: undo the whole tx, the session goes on. */
            tx->in_error = false;
            push(s, ACCESS_CTL_ROLLBACK_TO);
            push(s, ACCESS_CTL_RELEASE);
            return st;
        }
        push(s, ACCESS_CTL_RELEASE);
        return ACCESS_OK;
    }
    if (s->tx_pending) {
        /* The tx never reached the server: it need not begin at all. */
        pop_if(s, ACCESS_CTL_SET_TENANT);
        pop_if(s, ACCESS_CTL_SAVEPOINT);
        s->tx_pending = false;
        return ACCESS_OK;
    }
    /* A rollback's tenant setting has nothing left to serve. */
    pop_if(s, ACCESS_CTL_SET_TENANT);
    push(s, ACCESS_CTL_RELEASE);
    return ACCESS_OK;
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
    if (s->sent) {
        /* COMMIT releases the last savepoint along with everything else. */
        pop_if(s, ACCESS_CTL_RELEASE);
        st = access_pipe_ctl(s, ACCESS_CTL_COMMIT, false, err);
        if (st != ACCESS_OK) {
            access_session_abort(s);
            return st;
        }
    }
    free(s);
    return ACCESS_OK;
}

void access_session_abort(access_session_t *s)
{
    if (s == NULL)
        return;
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
