/* query — access_exec, the pipeline every statement goes through, row readers
 * and error helpers (access_internal.h). */
#include "access_internal.h"

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
    snprintf(err->message, sizeof(err->message), "%s: %s", name, msg);
    /* libpq's own messages end with a newline. */
    size_t n = strlen(err->message);
    while (n > 0 && (err->message[n - 1] == '\n' || err->message[n - 1] == ' '))
        err->message[--n] = '\0';
    return err->status;
}

/* ---- the pipeline ----------------------------------------------------------
 *
 * Every statement, control statement or not, goes through pipe_run: the
 * session's pending control statements, then the given commands, in one
 * libpq pipeline and so in one round trip, each prepared on its first use on
 * the connection (the Parse travels in the same pipeline). Results are read
 * back in order; after the first failure the server skips the rest
 * (PGRES_PIPELINE_ABORTED), and that first failure is what is reported. */

static const struct {
    const char *name;
    const char *sql;
    const char *tag; /* the command tag it must answer, or NULL */
} ctl_defs[] = {
    [ACCESS_CTL_BEGIN] = {"ctl_begin", "BEGIN", NULL},
    [ACCESS_CTL_SAVEPOINT] = {"ctl_savepoint", "SAVEPOINT tally_tx", NULL},
    [ACCESS_CTL_RELEASE] = {"ctl_release", "RELEASE SAVEPOINT tally_tx", NULL},
    [ACCESS_CTL_ROLLBACK_TO] = {"ctl_rollback_to", "ROLLBACK TO SAVEPOINT tally_tx", NULL},
    [ACCESS_CTL_SET_TENANT] = {"ctl_set_tenant", "SELECT set_config('app.account_id', $1, true)",
                               NULL},
    /* COMMIT of a transaction in error answers ROLLBACK. */
    [ACCESS_CTL_COMMIT] = {"ctl_commit", "COMMIT", "COMMIT"},
};

#define KEEP_RESULT (-2) /* pipe_cmd_t.expect_rows: hand the result to the caller */

typedef struct pipe_cmd {
    int ctl;                 /* an access_ctl_t, or -1 for st */
    const access_stmt_t *st; /* with args: its values without the account */
    const char *const *args;
    int expect_rows; /* KEEP_RESULT, -1 (any) or the exact row count */
    const access_errmap_t *mismatch;
    bool prepare;     /* a Parse goes first */
    PGresult *result; /* KEEP_RESULT: the result */
} pipe_cmd_t;

#define PIPE_MAX (ACCESS_MAX_PENDING + ACCESS_MAX_DEFERRED + 2)

static const char *cmd_name(const pipe_cmd_t *c)
{
    return c->ctl >= 0 ? ctl_defs[c->ctl].name : c->st->name;
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

static bool pipe_send(access_session_t *s, pipe_cmd_t *c)
{
    const char *values[ACCESS_MAX_ARGS];
    const char *name, *sql;
    int n;
    if (c->ctl >= 0) {
        name = ctl_defs[c->ctl].name;
        sql = ctl_defs[c->ctl].sql;
        n = c->ctl == ACCESS_CTL_SET_TENANT ? 1 : 0;
        values[0] = s->tx.account.id;
    } else {
        name = c->st->name;
        sql = c->st->sql;
        n = c->st->nargs + 1;
        values[0] = s->tx.account.id;
        for (int i = 0; i < c->st->nargs; i++)
            values[i + 1] = c->args[i];
    }
    c->prepare = !pool_conn_prepared(s->conn, name);
    if (c->prepare && !PQsendPrepare(s->pg, name, sql, n, NULL))
        return false;
    return PQsendQueryPrepared(s->pg, name, n, n > 0 ? values : NULL, NULL, NULL, 0) != 0;
}

/* Handles one result of command c (its Parse when parse is true). */
static void pipe_result(access_session_t *s, pipe_cmd_t *c, bool parse, PGresult *r,
                        access_error_t *err)
{
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_PIPELINE_ABORTED) {
        PQclear(r);
        return;
    }
    bool good = rs == PGRES_COMMAND_OK || rs == PGRES_TUPLES_OK;
    if (!good) {
        if (err->status == ACCESS_OK)
            access_error_from_pg(s->pg, r, cmd_name(c), c->ctl < 0 ? c->st->errors : NULL, err);
        if (c->ctl >= 0)
            s->broken = true; /* a control statement failed: the state is unknown */
        else
            s->tx.in_error = true;
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
    if (c->ctl >= 0) {
        const char *tag = ctl_defs[c->ctl].tag;
        if (tag != NULL && strcmp(PQcmdStatus(r), tag) != 0 && err->status == ACCESS_OK)
            access_fail(err, ACCESS_FAILED, NULL, "%s: the server answered %s", cmd_name(c),
                        PQcmdStatus(r));
        PQclear(r);
        return;
    }
    if (c->expect_rows == KEEP_RESULT && c->result == NULL) {
        c->result = r;
        return;
    }
    /* Not an SQL error: the transaction goes on (the caller decides). */
    if (c->expect_rows >= 0 && PQntuples(r) != c->expect_rows && err->status == ACCESS_OK)
        access_fail(err, c->mismatch->status, c->mismatch->field, "%s", c->mismatch->message);
    PQclear(r);
}

/* Sends the pending control statements and cmds in one pipeline and reads
 * every result. Returns ACCESS_OK or the first failure, classified; a failed
 * control statement or a lost connection marks the session broken, a failed
 * statement puts the open tx in error. */
static access_status_t pipe_run(access_session_t *s, pipe_cmd_t *cmds, int n, access_error_t *err)
{
    access_error_clear(err);
    if (s->broken)
        return access_fail(err, ACCESS_FAILED, NULL, "the session has failed");
    if (s->npending + n == 0)
        return ACCESS_OK;
    if (s->npending + n > PIPE_MAX) {
        s->broken = true; /* more than the queues ever hold: a bug */
        return access_fail(err, ACCESS_FAILED, NULL, "pipeline: %d commands", s->npending + n);
    }
    pipe_cmd_t all[PIPE_MAX];
    int total = 0;
    for (int i = 0; i < s->npending; i++)
        all[total++] = (pipe_cmd_t){.ctl = (int)s->pending[i]};
    s->npending = 0;
    s->tx_pending = false;
    s->sent = true;
    for (int i = 0; i < n; i++)
        all[total++] = cmds[i];

    PGconn *pg = s->pg;
    if (!PQenterPipelineMode(pg))
        return pipe_lost(s, "pipeline", err);
    for (int i = 0; i < total; i++) {
        all[i].result = NULL;
        if (!pipe_send(s, &all[i]))
            return pipe_lost(s, cmd_name(&all[i]), err);
    }
    if (!PQpipelineSync(pg))
        return pipe_lost(s, "pipeline", err);

    /* Each command's results end with a NULL; the sync ends the pipeline. */
    int i = 0;
    bool parse = total > 0 && all[0].prepare, synced = false;
    int nulls = 0;
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
            pipe_result(s, &all[i], parse, r, err);
        } else {
            PQclear(r);
        }
    }
    for (int k = total - n, j = 0; j < n; k++, j++)
        cmds[j].result = all[k].result;
    if (!synced || !PQexitPipelineMode(pg)) {
        for (int j = 0; j < n; j++) {
            PQclear(cmds[j].result);
            cmds[j].result = NULL;
        }
        return pipe_lost(s, "pipeline", err);
    }
    if (err->status == ACCESS_UNAVAILABLE) {
        s->broken = true;
        pool_conn_mark_broken(s->conn);
    }
    if (err->status != ACCESS_OK) {
        for (int j = 0; j < n; j++) {
            PQclear(cmds[j].result);
            cmds[j].result = NULL;
        }
    }
    return err->status;
}

/* The queued writes as commands (appended to cmds at *n). */
static void deferred_cmds(access_session_t *s, pipe_cmd_t *cmds, int *n)
{
    for (int i = 0; i < s->ndeferred; i++) {
        const access_deferred_t *d = &s->deferred[i];
        cmds[(*n)++] = (pipe_cmd_t){.ctl = -1,
                                    .st = d->st,
                                    .args = (const char *const *)d->args,
                                    .expect_rows = d->expect_rows,
                                    .mismatch = d->mismatch};
    }
}

void access_deferred_clear(access_session_t *s)
{
    for (int i = 0; i < s->ndeferred; i++)
        free(s->deferred[i].args);
    s->ndeferred = 0;
}

access_status_t access_pipe_ctl(access_session_t *s, int ctl, bool flush_deferred,
                                access_error_t *err)
{
    pipe_cmd_t cmds[ACCESS_MAX_DEFERRED + 1];
    int n = 0;
    if (flush_deferred)
        deferred_cmds(s, cmds, &n);
    if (ctl >= 0)
        cmds[n++] = (pipe_cmd_t){.ctl = ctl};
    access_status_t st = pipe_run(s, cmds, n, err);
    if (flush_deferred)
        access_deferred_clear(s);
    return st;
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

PGresult *access_exec(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                      access_error_t *err)
{
    access_error_clear(err);
    if (!tx_usable(tx, st, err))
        return NULL;
    access_session_t *s = tx->session;
    /* Queued writes go first: a statement sees what its tx wrote before. */
    pipe_cmd_t cmds[ACCESS_MAX_DEFERRED + 1];
    int n = 0;
    deferred_cmds(s, cmds, &n);
    cmds[n++] = (pipe_cmd_t){.ctl = -1, .st = st, .args = args, .expect_rows = KEEP_RESULT};
    access_status_t rc = pipe_run(s, cmds, n, err);
    access_deferred_clear(s);
    if (rc != ACCESS_OK)
        return NULL;
    return cmds[n - 1].result;
}

/* Copies n values (NULL stays NULL) into one allocation. */
static char **copy_args(const char *const *args, int n)
{
    size_t size = (size_t)n * sizeof(char *);
    for (int i = 0; i < n; i++)
        size += args[i] != NULL ? strlen(args[i]) + 1 : 0;
    char **out = malloc(size > 0 ? size : 1);
    if (out == NULL)
        return NULL;
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
    if (!s->pipelined || s->ndeferred == ACCESS_MAX_DEFERRED) {
        pipe_cmd_t cmds[ACCESS_MAX_DEFERRED + 1];
        int n = 0;
        deferred_cmds(s, cmds, &n);
        cmds[n++] = (pipe_cmd_t){
            .ctl = -1, .st = st, .args = args, .expect_rows = expect_rows, .mismatch = mismatch};
        access_status_t rc = pipe_run(s, cmds, n, err);
        access_deferred_clear(s);
        return rc;
    }
    char **copy = copy_args(args, st->nargs);
    if (copy == NULL)
        return access_fail(err, ACCESS_FAILED, NULL, "%s: out of memory", st->name);
    s->deferred[s->ndeferred++] = (access_deferred_t){
        .st = st, .args = copy, .expect_rows = expect_rows, .mismatch = mismatch};
    return ACCESS_OK;
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
    return strdup(PQgetvalue(r, row, col));
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
