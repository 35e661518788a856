/* query — access_exec, row readers and error helpers (access_internal.h). */
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

/* Records a failure on tx: the transaction is in error until rolled back,
 * and a lost connection ends the session. */
static void tx_failed(access_tx_t *tx, const access_error_t *err)
{
    tx->in_error = true;
    if (err->status == ACCESS_UNAVAILABLE) {
        tx->session->broken = true;
        pool_conn_mark_broken(tx->session->conn);
    }
}

PGresult *access_exec(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                      access_error_t *err)
{
    access_session_t *s = tx->session;
    if (!tx->open || s->broken || tx->in_error) {
        access_fail(err, ACCESS_FAILED, NULL, "%s: %s", st->name,
                    !tx->open   ? "the tenant transaction is not open"
                    : s->broken ? "the session has failed"
                                : "a statement failed: access_tx_rollback first");
        return NULL;
    }
    if (st->nargs < 0 || st->nargs + 1 > ACCESS_MAX_ARGS) {
        access_fail(err, ACCESS_FAILED, NULL, "%s: bad argument count", st->name);
        return NULL;
    }

    const char *values[ACCESS_MAX_ARGS];
    values[0] = tx->account.id;
    for (int i = 0; i < st->nargs; i++)
        values[i + 1] = args[i];
    int n = st->nargs + 1;

    if (!pool_conn_prepared(s->conn, st->name)) {
        PGresult *p = PQprepare(s->pg, st->name, st->sql, n, NULL);
        if (PQresultStatus(p) != PGRES_COMMAND_OK) {
            access_error_from_pg(s->pg, p, st->name, NULL, err);
            PQclear(p);
            tx_failed(tx, err);
            return NULL;
        }
        PQclear(p);
        /* Prepared statements are not transactional: this one survives a
         * rollback of the transaction that prepared it. */
        pool_conn_set_prepared(s->conn, st->name);
    }

    PGresult *r = PQexecPrepared(s->pg, st->name, n, values, NULL, NULL, 0);
    ExecStatusType rs = PQresultStatus(r);
    if (rs == PGRES_TUPLES_OK || rs == PGRES_COMMAND_OK)
        return r;
    access_error_from_pg(s->pg, r, st->name, st->errors, err);
    PQclear(r);
    tx_failed(tx, err);
    return NULL;
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
