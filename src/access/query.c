/* query — access_exec, the pipeline every statement goes through, row readers
 * and error helpers (access_internal.h). */
#include "access_internal.h"

#include "common/mem.h"
#include "pool/pooler.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void access_error_clear(access_error_t *err)
{
    memset(err, 0, sizeof(*err));
    err->status = ACCESS_OK;
}

access_status_t access_fail(access_error_t *err, access_status_t status, const char *field,
                            const char *fmt, ...)
{
    access_error_clear(err);
    err->status = status;
    snprintf(err->field, sizeof(err->field), "%s", field != NULL ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return status;
}

static bool errmap_match(const access_errmap_t *m, const char *sqlstate, const char *constraint)
{
    if (strcmp(m->sqlstate, sqlstate) != 0)
        return false;
    return m->constraint == NULL || (constraint != NULL && strcmp(m->constraint, constraint) == 0);
}

access_status_t access_error_from_pg(PGconn *pg, const PGresult *r, const char *name,
                                     const access_errmap_t *errors, access_error_t *err)
{
    access_error_clear(err);
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *constraint = r != NULL ? PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME) : NULL;
    bool bad = PQstatus(pg) != CONNECTION_OK;

    if (state != NULL && !bad && errors != NULL) {
        for (const access_errmap_t *m = errors; m->sqlstate != NULL; m++) {
            if (errmap_match(m, state, constraint)) {
                access_fail(err, m->status, m->field, "%s", m->message);
                snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state);
                return err->status;
            }
        }
    }

    err->status = access_classify(state, bad);
    snprintf(err->sqlstate, sizeof(err->sqlstate), "%s", state != NULL ? state : "");
    /* The primary message only: DETAIL may quote row values. */
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL)
        msg = PQerrorMessage(pg);
    if (msg == NULL || msg[0] == '\0')
        msg = "no result from the server";
    /* A permanent failure (class 22, 23) is answered to the tenant: the
     * server's words, without the name of our statement. */
    if (access_status_is_infra(err->status))
        snprintf(err->message, sizeof(err->message), "%s: %s", name, msg);
    else
        snprintf(err->message, sizeof(err->message), "%s", msg);
    /* libpq's own messages end with a newline. */
    size_t n = strlen(err->message);
    while (n > 0 && (err->message[n - 1] == '\n' || err->message[n - 1] == ' '))
        err->message[--n] = '\0';
    return err->status;
}

/* ---- the pipeline ----------------------------------------------------------
 *
 * Every statement, control statement or not, goes through pipe_run: the
 * session's queue (control statements, queued writes), then the given
 * commands, in one libpq pipeline and so in one round trip, each prepared on
 * its first use on the connection (the Parse travels in the same pipeline),
 * or, with TALLY_PREPARED_STATEMENTS=off, each sent as the unnamed statement
 * (a Parse every time: what a transaction pooler passes through).
 * Results are read back in order; after the first failure the server skips
 * the rest (PGRES_PIPELINE_ABORTED), and that first failure is what is
 * reported. */

static const struct {
    const char *name;
    const char *sql;
    const char *tag; /* the command tag it must answer, or NULL */
} ctl_defs[] = {
    [ACCESS_CTL_BEGIN] = {"ctl_begin", "BEGIN", NULL},
    [ACCESS_CTL_SAVEPOINT] = {"ctl_savepoint", "SAVEPOINT tally_tx", NULL},
    [ACCESS_CTL_RELEASE] = {"ctl_release", "RELEASE SAVEPOINT tally_tx", NULL},
    [ACCESS_CTL_ROLLBACK_TO] = {"ctl_rollback_to", "ROLLBACK TO SAVEPOINT tally_tx", NULL},
    /* The tenant, and the bounds on every wait of the transaction (pool.h):
     * per transaction, so that they hold behind a transaction pooler too.
     * They run inside the savepoint: ROLLBACK TO undoes them, and the
     * rollback's SET_TENANT sets them again. Sequential scans are off: a
     * tenant statement reads one account's rows through an index led by
     * account_id, and a prepared statement's generic plan made while the
     * statistics say a table is empty (a fresh database, freshly vacuumed)
     * would otherwise scan the whole table on every call from then on (the
     * outcome probe: 600-800 us a call at 40 000 rows instead of ~10). */
    [ACCESS_CTL_SET_TENANT] = {"ctl_set_tenant",
                               "SELECT set_config('app.account_id', $1, true),"
                               " set_config('statement_timeout', $2, true),"
                               " set_config('lock_timeout', $3, true),"
                               " set_config('idle_in_transaction_session_timeout', $4, true),"
                               " set_config('enable_seqscan', 'off', true)",
                               NULL},
    /* COMMIT of a transaction in error answers ROLLBACK. */
    [ACCESS_CTL_COMMIT] = {"ctl_commit", "COMMIT", "COMMIT"},
};

#define KEEP_RESULT (-2) /* expect_rows: hand the result to the caller */

typedef struct pipe_cmd {
    access_item_t item;      /* queued, or the caller's command */
    const char *const *args; /* the values (item.args for queued writes) */
    bool prepare;            /* a Parse goes first */
    PGresult *result;        /* KEEP_RESULT: the result */
} pipe_cmd_t;

#define PIPE_MAX (ACCESS_MAX_QUEUE + 2)

static const char *cmd_name(const pipe_cmd_t *c)
{
    return c->item.ctl >= 0 ? ctl_defs[c->item.ctl].name : c->item.st->name;
}

/* The connection broke, or the protocol went astray: the session is over. */
static access_status_t pipe_lost(access_session_t *s, const char *what, access_error_t *err)
{
    if (err->status == ACCESS_OK || PQstatus(s->pg) != CONNECTION_OK)
        access_error_from_pg(s->pg, NULL, what, NULL, err);
    s->broken = true;
    pool_conn_mark_broken(s->conn);
    return err->status != ACCESS_OK ? err->status : ACCESS_UNAVAILABLE;
}

/* Whether cmds[0..n) already carry a Parse of name. */
static bool parsing(const pipe_cmd_t *cmds, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (cmds[i].prepare && strcmp(cmd_name(&cmds[i]), name) == 0)
            return true;
    return false;
}

/* Sends c; earlier[0..nearlier) went before it in the same pipeline. */
static bool pipe_send(access_session_t *s, pipe_cmd_t *c, const pipe_cmd_t *earlier, int nearlier)
{
    const char *values[ACCESS_MAX_ARGS];
    const char *name, *sql;
    int n;
    values[0] = c->item.account;
    if (c->item.ctl >= 0) {
        name = ctl_defs[c->item.ctl].name;
        sql = ctl_defs[c->item.ctl].sql;
        n = 0;
        if (c->item.ctl == ACCESS_CTL_SET_TENANT) {
            for (int i = 0; i < 3; i++)
                values[i + 1] = s->limits[i];
            n = 4;
        }
    } else {
        name = c->item.st->name;
        sql = c->item.st->sql;
        n = c->item.st->nargs + 1;
        for (int i = 0; i < c->item.st->nargs; i++)
            values[i + 1] = c->args[i];
    }
    if (!pool_conn_prepares(s->conn)) {
        /* TALLY_PREPARED_STATEMENTS=off: Parse, Bind and Execute of the
         * unnamed statement, in the same pipeline, the account still $1. */
        c->prepare = false;
        return PQsendQueryParams(s->pg, sql, n, NULL, n > 0 ? values : NULL, NULL, NULL, 0) != 0;
    }
    c->prepare = !pool_conn_prepared(s->conn, name) && !parsing(earlier, nearlier, name);
    if (c->prepare && !PQsendPrepare(s->pg, name, sql, n, NULL))
        return false;
    return PQsendQueryPrepared(s->pg, name, n, n > 0 ? values : NULL, NULL, NULL, 0) != 0;
}

/* Handles one result of command c (its Parse when parse is true). *failed
 * becomes the index of the first command that failed. */
static void pipe_result(access_session_t *s, pipe_cmd_t *c, int index, bool parse, PGresult *r,
                        int *failed, access_error_t *err)
{
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_PIPELINE_ABORTED) {
        PQclear(r);
        return;
    }
    bool good = rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK;
    if (!good) {
        if (err->status == ACCESS_OK) {
            access_error_from_pg(s->pg, r, cmd_name(c), c->item.ctl < 0 ? c->item.st->errors : NULL,
                                 err);
            *failed = index;
        }
        PQclear(r);
        return;
    }
    if (parse) {
        /* Prepared statements are not transactional: this one survives a
         * rollback of the transaction that prepared it. */
        pool_conn_set_prepared(s->conn, cmd_name(c));
        PQclear(r);
        return;
    }
    if (c->item.ctl >= 0) {
        const char *tag = ctl_defs[c->item.ctl].tag;
        if (tag != NULL && strcmp(PQcmdStatus(r), tag) != 0 && err->status == ACCESS_OK) {
            access_fail(err, ACCESS_FAILED, NULL, "%s: the server answered %s", cmd_name(c),
                        PQcmdStatus(r));
            *failed = index;
        }
        PQclear(r);
        return;
    }
    if (c->item.expect_rows == KEEP_RESULT && c->result == NULL) {
        c->result = r;
        return;
    }
    /* A row count that differs is not an SQL error: the transaction goes on. */
    if (c->item.expect_rows >= 0 && PQntuples(r) != c->item.expect_rows &&
        err->status == ACCESS_OK) {
        access_fail(err, c->item.mismatch->status, c->item.mismatch->field, "%s",
                    c->item.mismatch->message);
        *failed = index;
    }
    PQclear(r);
}

static void free_results(pipe_cmd_t *cmds, int n)
{
    for (int j = 0; j < n; j++) {
        PQclear(cmds[j].result);
        cmds[j].result = NULL;
    }
}

/* Sends all[0..total) in one pipeline and reads every result; *failed is the
 * index of the first command that failed (-1 when none did). */
static access_status_t pipe_exchange(access_session_t *s, pipe_cmd_t *all, int total, int *failed,
                                     access_error_t *err)
{
    access_error_clear(err);
    *failed = -1;
    s->sent = true;
    PGconn *pg = s->pg;
    if (!PQenterPipelineMode(pg))
        return pipe_lost(s, "pipeline", err);
    for (int i = 0; i < total; i++) {
        all[i].result = NULL;
        if (!pipe_send(s, &all[i], all, i))
            return pipe_lost(s, cmd_name(&all[i]), err);
    }
    if (!PQpipelineSync(pg))
        return pipe_lost(s, "pipeline", err);
    s->round_trips++;

    /* Each command's results end with a NULL; the sync ends the pipeline. */
    int i = 0, nulls = 0;
    bool parse = total > 0 && all[0].prepare, synced = false;
    while (!synced) {
        PGresult *r = PQgetResult(pg);
        if (r == NULL) {
            if (PQstatus(pg) != CONNECTION_OK || ++nulls > 2 * total + 1)
                break;
            if (parse)
                parse = false;
            else if (++i < total)
                parse = all[i].prepare;
            continue;
        }
        if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
            synced = true;
            PQclear(r);
        } else if (i < total) {
            pipe_result(s, &all[i], i, parse, r, failed, err);
        } else {
            PQclear(r);
        }
    }
    if (!synced || !PQexitPipelineMode(pg)) {
        free_results(all, total);
        return pipe_lost(s, "pipeline", err);
    }
    if (err->status == ACCESS_UNAVAILABLE) {
        s->broken = true;
        s->pooler = pool_pooler_sqlstate(err->sqlstate);
        pool_conn_mark_broken(s->conn);
    }
    return err->status;
}

static void item_free(access_item_t *it)
{
    free(it->args);
    it->args = NULL;
}

/* The deferred read c travelled: keeps its result, or the failure that
 * left it without one (its own, or the earlier one that aborted it). */
static void deferred_land(access_session_t *s, pipe_cmd_t *c, const access_error_t *err)
{
    PQclear(s->deferred.result);
    s->deferred.result = c->result;
    c->result = NULL;
    s->deferred.state = ACCESS_DEFERRED_DONE;
    s->deferred.owner = c->item.owner;
    access_error_clear(&s->deferred.err);
    if (s->deferred.result == NULL) {
        s->deferred.err = *err;
        if (err->status == ACCESS_OK)
            access_fail(&s->deferred.err, ACCESS_FAILED, NULL, "%s: no result", c->item.st->name);
    }
}

/* Sends the queue, then cmds, and reads everything back. A failed control
 * statement ends the session; so does a failure in writes carried from an
 * ended tx (the queue's older owners): the server already ran what followed
 * them (a row count is no SQL error), so only redoing the whole session is
 * safe, and s->failed names the tx to blame. A failed statement of the open
 * tx puts it in error (an SQL error; a row count that differs does not). */
static access_status_t pipe_run(access_session_t *s, pipe_cmd_t *cmds, int n, access_error_t *err)
{
    access_error_clear(err);
    if (s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "the session has failed");
    if (s->nqueue + n == 0)
        return ACCESS_OK;
    if (s->nqueue + n > PIPE_MAX) {
        s->broken = true; /* more than the queue ever holds: a bug */
        return access_fail(err, ACCESS_FAILED, NULL, "pipeline: %d commands", s->nqueue + n);
    }
    pipe_cmd_t all[PIPE_MAX];
    int q = s->nqueue, total = 0;
    for (int i = 0; i < q; i++)
        all[total++] =
            (pipe_cmd_t){.item = s->queue[i], .args = (const char *const *)s->queue[i].args};
    for (int i = 0; i < n; i++)
        all[total++] = cmds[i];
    s->nqueue = 0;
    s->tx_pending = false;

    int failed;
    access_status_t st = pipe_exchange(s, all, total, &failed, err);
    for (int j = 0; j < n; j++)
        cmds[j].result = all[q + j].result;
    if (failed >= 0 && !s->broken) {
        const access_item_t *culprit = &all[failed].item;
        bool own = s->tx.open && culprit->owner == s->ntx;
        if (culprit->ctl >= 0) {
            s->broken = true; /* a control statement failed: the state is unknown */
        } else if (!own) {
            /* Not the caller's failure: say whose it was. */
            s->broken = true;
            s->failed = culprit->owner;
            /* Permanent: classes 22 and 23 (an SQL error, not a row count). */
            s->failed_permanently =
                err->sqlstate[0] != '\0' && !access_status_is_infra(err->status);
            access_error_t carried = *err;
            access_fail(err,
                        carried.status == ACCESS_UNAVAILABLE ? ACCESS_UNAVAILABLE : ACCESS_FAILED,
                        NULL, "an earlier tenant transaction's write failed: %s", carried.message);
            memcpy(err->sqlstate, carried.sqlstate, sizeof(err->sqlstate));
            st = err->status;
        } else if (err->sqlstate[0] != '\0') {
            s->tx.in_error = true;
        }
    }
    for (int i = 0; i < q; i++) {
        if (all[i].item.ctl < 0 && all[i].item.expect_rows == KEEP_RESULT)
            deferred_land(s, &all[i], err);
        item_free(&all[i].item);
    }
    if (st != ACCESS_OK)
        free_results(cmds, n);
    return st;
}

bool access_queue_ctl(access_session_t *s, access_ctl_t ctl, unsigned owner, const char *account)
{
    if (s->nqueue == ACCESS_MAX_QUEUE) {
        s->broken = true;
        return false;
    }
    access_item_t *it = &s->queue[s->nqueue++];
    *it = (access_item_t){.ctl = (int)ctl, .owner = owner};
    snprintf(it->account, sizeof(it->account), "%s", account != NULL ? account : "");
    return true;
}

/* Drops, unsent, the queued writes and deferred read of tx owner (0: every
 * tx's), or only the deferred read. */
static void drop_queued(access_session_t *s, unsigned owner, bool deferred_only)
{
    int k = 0;
    for (int i = 0; i < s->nqueue; i++) {
        access_item_t *it = &s->queue[i];
        bool deferred = it->ctl < 0 && it->expect_rows == KEEP_RESULT;
        if (it->ctl < 0 && (owner == 0 || it->owner == owner) && (deferred || !deferred_only)) {
            if (deferred)
                s->deferred.state = ACCESS_DEFERRED_NONE;
            item_free(it);
        } else {
            s->queue[k++] = *it;
        }
    }
    s->nqueue = k;
}

void access_queue_drop_writes(access_session_t *s, unsigned owner)
{
    drop_queued(s, owner, false);
}

bool access_queue_has_writes(const access_session_t *s, unsigned owner)
{
    for (int i = 0; i < s->nqueue; i++)
        if (s->queue[i].ctl < 0 && s->queue[i].owner == owner)
            return true;
    return false;
}

access_status_t access_flush(access_session_t *s, int ctl, access_error_t *err)
{
    pipe_cmd_t c = {.item = {.ctl = ctl, .owner = s->ntx}};
    return pipe_run(s, &c, ctl >= 0 ? 1 : 0, err);
}

/* Refuses a statement on a tx that cannot take one. */
static bool tx_usable(access_tx_t *tx, const access_stmt_t *st, access_error_t *err)
{
    access_session_t *s = tx->session;
    if (!tx->open || s->broken || tx->in_error) {
        access_fail(err, ACCESS_FAILED, NULL, "%s: %s", st->name,
                    !tx->open   ? "the tenant transaction is not open"
                    : s->broken ? "the session has failed"
                                : "a statement failed: access_tx_rollback first");
        return false;
    }
    if (st->nargs < 0 || st->nargs + 1 > ACCESS_MAX_ARGS) {
        access_fail(err, ACCESS_FAILED, NULL, "%s: bad argument count", st->name);
        return false;
    }
    return true;
}

static pipe_cmd_t statement(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                            int expect_rows, const access_errmap_t *mismatch)
{
    pipe_cmd_t c = {.item = {.ctl = -1,
                             .st = st,
                             .expect_rows = expect_rows,
                             .mismatch = mismatch,
                             .owner = tx->session->ntx},
                    .args = args};
    memcpy(c.item.account, tx->account.id, sizeof(c.item.account));
    return c;
}

PGresult *access_exec(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                      access_error_t *err)
{
    access_error_clear(err);
    if (!tx_usable(tx, st, err))
        return NULL;
    /* Queued writes go first: a statement sees what its tx wrote before. */
    pipe_cmd_t c = statement(tx, st, args, KEEP_RESULT, NULL);
    if (pipe_run(tx->session, &c, 1, err) != ACCESS_OK)
        return NULL;
    return c.result;
}

/* Copies n values (NULL stays NULL) into one allocation. */
static char **copy_args(const char *const *args, int n)
{
    size_t size = (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++)
        size += args[i] != NULL ? strlen(args[i]) + 1 : 0;
    char **out = mem_alloc(size);
    char *p = (char *)(out + n);
    for (int i = 0; i < n; i++) {
        if (args[i] == NULL) {
            out[i] = NULL;
            continue;
        }
        size_t len = strlen(args[i]) + 1;
        memcpy(p, args[i], len);
        out[i] = p;
        p += len;
    }
    return out;
}

access_status_t access_exec_write(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                                  int expect_rows, const access_errmap_t *mismatch,
                                  access_error_t *err)
{
    access_error_clear(err);
    if (!tx_usable(tx, st, err))
        return err->status;
    access_session_t *s = tx->session;
    pipe_cmd_t c = statement(tx, st, args, expect_rows, mismatch);
    /* Eager sessions write at once; a full queue goes out now as well. */
    if (!s->pipelined || s->nqueue + 4 >= ACCESS_MAX_QUEUE)
        return pipe_run(s, &c, 1, err);
    c.item.args = copy_args(args, st->nargs);
    s->queue[s->nqueue++] = c.item;
    return ACCESS_OK;
}

void access_deferred_clear(access_session_t *s)
{
    /* NONE: nothing queued, no result (every request passes here twice). */
    if (s->deferred.state == ACCESS_DEFERRED_NONE)
        return;
    drop_queued(s, 0, true);
    PQclear(s->deferred.result);
    s->deferred.result = NULL;
    s->deferred.state = ACCESS_DEFERRED_NONE;
}

access_status_t access_exec_deferred(access_tx_t *tx, const access_stmt_t *st,
                                     const char *const *args, access_error_t *err)
{
    access_error_clear(err);
    if (!tx_usable(tx, st, err))
        return err->status;
    access_session_t *s = tx->session;
    access_deferred_clear(s);
    if (s->nqueue == ACCESS_MAX_QUEUE) {
        s->broken = true; /* never by construction: access_exec_write keeps room */
        return access_fail(err, ACCESS_FAILED, NULL, "%s: the queue is full", st->name);
    }
    pipe_cmd_t c = statement(tx, st, args, KEEP_RESULT, NULL);
    c.item.args = copy_args(args, st->nargs);
    s->queue[s->nqueue++] = c.item;
    s->deferred.state = ACCESS_DEFERRED_QUEUED;
    s->deferred.owner = s->ntx;
    access_error_clear(&s->deferred.err);
    /* Eager sessions read at once; a full queue goes out now as well. The
     * outcome lands in the session either way. */
    if (!s->pipelined || s->nqueue + 4 >= ACCESS_MAX_QUEUE) {
        access_error_t ignored;
        (void)access_flush(s, -1, &ignored);
    }
    return ACCESS_OK;
}

PGresult *access_take_deferred(access_tx_t *tx, access_error_t *err)
{
    access_error_clear(err);
    access_session_t *s = tx->session;
    if (s->deferred.owner != s->ntx || s->deferred.state == ACCESS_DEFERRED_NONE) {
        access_fail(err, ACCESS_FAILED, NULL, "no deferred read in this tenant transaction");
        return NULL;
    }
    if (s->deferred.state == ACCESS_DEFERRED_QUEUED) {
        if (s->broken) {
            access_fail(err, ACCESS_FAILED, NULL, "the session has failed");
            return NULL;
        }
        access_error_t ignored;
        (void)access_flush(s, -1, &ignored); /* it lands in s->deferred */
    }
    PGresult *r = s->deferred.result;
    s->deferred.result = NULL;
    s->deferred.state = ACCESS_DEFERRED_NONE;
    if (r == NULL)
        *err = s->deferred.err;
    if (r == NULL && err->status == ACCESS_OK)
        access_fail(err, ACCESS_FAILED, NULL, "the deferred read did not travel");
    return r;
}

bool access_get_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) != 0;
}

bool access_get_text(const PGresult *r, int row, int col, char *buf, size_t size)
{
    if (size == 0)
        return false;
    buf[0] = '\0';
    if (PQgetisnull(r, row, col))
        return true;
    const char *v = PQgetvalue(r, row, col);
    size_t len = (size_t)PQgetlength(r, row, col);
    bool fits = len < size;
    size_t n = fits ? len : size - 1;
    memcpy(buf, v, n);
    buf[n] = '\0';
    return fits;
}

char *access_get_dup(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return mem_strdup(PQgetvalue(r, row, col));
}

int64_t access_get_i64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

bool access_get_bool(const PGresult *r, int row, int col)
{
    return !PQgetisnull(r, row, col) && PQgetvalue(r, row, col)[0] == 't';
}

double access_get_double(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtod(PQgetvalue(r, row, col), NULL);
}

const char *access_fmt_i64(char buf[ACCESS_I64_LEN], int64_t v)
{
    snprintf(buf, ACCESS_I64_LEN, "%" PRId64, v);
    return buf;
}
