/* session — see access/session.h.
 *
 * Round trips. The control statements travel in libpq pipeline mode, several
 * per round trip, and BEGIN / RELEASE are deferred until something else has to
 * go to the server anyway:
 *
 *   access_session_begin    nothing sent (BEGIN is pending)
 *   access_tx_begin         [BEGIN | RELEASE SAVEPOINT] SAVEPOINT; set_config  1 round trip
 *   access_tx_rollback      ROLLBACK TO SAVEPOINT; set_config                 1 round trip
 *   access_tx_end           nothing sent (RELEASE is pending)
 *   access_session_commit   COMMIT (releases the last savepoint with it)       1 round trip
 *
 * so a session of k tenant transactions costs k + 1 round trips of its own
 * instead of 4k + 2. set_config takes the account as a bound parameter, which
 * the simple query protocol (the only one that accepts several statements in
 * one message) cannot do; pipelining the extended protocol gets the single
 * round trip without ever splicing the account into SQL text.
 *
 * set_config runs after SAVEPOINT, inside the subtransaction: ROLLBACK TO
 * SAVEPOINT therefore restores the value from before it (the previous
 * tenant's, or none), and access_tx_rollback sets it again. */
#include "access_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct ctl_cmd {
    const char *sql;
    const char *arg;        /* one text parameter, or NULL */
    const char *expect_tag; /* command tag that must come back, or NULL */
} ctl_cmd_t;

#define SQL_SET_TENANT "SELECT set_config('app.account_id', $1, true)"

static access_status_t lost(access_session_t *s, access_error_t *err)
{
    s->broken = true;
    pool_conn_mark_broken(s->conn);
    return err->status;
}

/* Sends cmds in one pipeline and reads every result. Returns ACCESS_OK, or
 * the classified failure of the first command that failed. */
static access_status_t run_ctl(access_session_t *s, const ctl_cmd_t *cmds, int n,
                               access_error_t *err)
{
    PGconn *pg = s->pg;
    if (!PQenterPipelineMode(pg)) {
        access_error_from_pg(pg, NULL, "session", NULL, err);
        return lost(s, err);
    }
    for (int i = 0; i < n; i++) {
        const char *const *params = cmds[i].arg != NULL ? &cmds[i].arg : NULL;
        if (!PQsendQueryParams(pg, cmds[i].sql, params != NULL ? 1 : 0, NULL, params, NULL, NULL,
                               0)) {
            access_error_from_pg(pg, NULL, cmds[i].sql, NULL, err);
            return lost(s, err);
        }
    }
    if (!PQpipelineSync(pg)) {
        access_error_from_pg(pg, NULL, "session", NULL, err);
        return lost(s, err);
    }

    access_error_clear(err);
    int i = 0;     /* the command whose results are being read */
    int nulls = 0; /* NULLs mark the end of one command's results */
    bool synced = false;
    while (!synced) {
        PGresult *r = PQgetResult(pg);
        if (r == NULL) {
            if (PQstatus(pg) != CONNECTION_OK || ++nulls > n + 1)
                break;
            i++;
            continue;
        }
        const char *what = cmds[i < n ? i : n - 1].sql;
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            synced = true;
            break;
        case PGRES_PIPELINE_ABORTED:
            break; /* skipped after an earlier failure, already recorded */
        case PGRES_COMMAND_OK:
        case PGRES_TUPLES_OK:
            if (i < n && cmds[i].expect_tag != NULL && err->status == ACCESS_OK &&
                strcmp(PQcmdStatus(r), cmds[i].expect_tag) != 0) {
                /* COMMIT of a transaction in error answers ROLLBACK. */
                access_fail(err, ACCESS_FAILED, NULL, "%s: the server answered %s", what,
                            PQcmdStatus(r));
            }
            break;
        default:
            if (err->status == ACCESS_OK)
                access_error_from_pg(pg, r, what, NULL, err);
            break;
        }
        PQclear(r);
    }
    if (!synced || !PQexitPipelineMode(pg)) {
        if (err->status == ACCESS_OK || PQstatus(pg) != CONNECTION_OK)
            access_error_from_pg(pg, NULL, "session", NULL, err);
        return lost(s, err);
    }
    if (err->status == ACCESS_UNAVAILABLE)
        return lost(s, err);
    return err->status;
}

access_status_t access_session_begin(struct pool_conn *conn, access_session_t **out,
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
    s->begin_pending = true;
    *out = s;
    return ACCESS_OK;
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

    ctl_cmd_t cmds[4];
    int n = 0;
    if (s->begin_pending)
        cmds[n++] = (ctl_cmd_t){.sql = "BEGIN"};
    if (s->release_pending)
        cmds[n++] = (ctl_cmd_t){.sql = "RELEASE SAVEPOINT tally_tx"};
    cmds[n++] = (ctl_cmd_t){.sql = "SAVEPOINT tally_tx"};
    cmds[n++] = (ctl_cmd_t){.sql = SQL_SET_TENANT, .arg = account->id};
    access_status_t st = run_ctl(s, cmds, n, err);
    if (st != ACCESS_OK) {
        /* Whatever was pending is now in an unknown state: the session is
         * over, and abort rolls back whatever BEGIN started. */
        s->begin_pending = false;
        s->broken = true;
        return st;
    }
    s->begin_pending = false;
    s->release_pending = false;
    s->tx.account = *account;
    s->tx.open = true;
    s->tx.in_error = false;
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
    const ctl_cmd_t cmds[] = {
        {.sql = "ROLLBACK TO SAVEPOINT tally_tx"},
        {.sql = SQL_SET_TENANT, .arg = tx->account.id},
    };
    access_status_t st = run_ctl(s, cmds, 2, err);
    if (st != ACCESS_OK) {
        s->broken = true;
        return st;
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
    s->release_pending = true;
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
    if (!s->begin_pending) {
        /* COMMIT releases the last savepoint along with everything else. */
        const ctl_cmd_t commit = {.sql = "COMMIT", .expect_tag = "COMMIT"};
        st = run_ctl(s, &commit, 1, err);
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
    PGconn *pg = s->pg;
    if (!s->begin_pending && PQstatus(pg) == CONNECTION_OK) {
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
