/* holds — see access/holds.h. */
#include "access/holds.h"

#include "access_internal.h"
#include "errline.h"
#include "common/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOLD_COLUMNS "account, reason, held_by, db_role, tally_epoch_ms(held_at)"

static const char SELECT_ONE_SQL[] =
    "SELECT " HOLD_COLUMNS " FROM tally_account_holds WHERE account = $1 FOR UPDATE";
/* Held again: the new reason and who, held since the first time. */
static const char PUT_SQL[] =
    "INSERT INTO tally_account_holds (account, reason, held_by) VALUES ($1, $2, $3)"
    " ON CONFLICT (account) DO UPDATE SET reason = EXCLUDED.reason,"
    " held_by = EXCLUDED.held_by, db_role = session_user";
static const char REMOVE_SQL[] =
    "DELETE FROM tally_account_holds WHERE account = $1 RETURNING " HOLD_COLUMNS;
static const char LIST_SQL[] = "SELECT " HOLD_COLUMNS " FROM tally_account_holds ORDER BY account";

static PGconn *open_conn(const char *conninfo, char *err, size_t errlen)
{
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", "tallyctl-holds", conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        access_errline(err, errlen, "cannot connect to the database: %s",
                       pg != NULL ? PQerrorMessage(pg) : "out of memory");
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

static void row_of(const PGresult *r, int i, access_hold_t *h)
{
    memset(h, 0, sizeof(*h));
    access_get_text(r, i, 0, h->account, sizeof(h->account));
    access_get_text(r, i, 1, h->reason, sizeof(h->reason));
    access_get_text(r, i, 2, h->held_by, sizeof(h->held_by));
    access_get_text(r, i, 3, h->db_role, sizeof(h->db_role));
    h->held_at_ms = access_get_i64(r, i, 4);
}

/* Runs sql with params; fails unless it answers want (TUPLES_OK or
 * COMMAND_OK). The caller PQclear()s the result. */
static PGresult *run(PGconn *pg, const char *what, const char *sql, int n,
                     const char *const *params, ExecStatusType want, char *err, size_t errlen)
{
    PGresult *r = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != want) {
        access_errline(err, errlen, "%s: %s", what, PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Runs a statement without parameters that answers nothing. */
static bool command(PGconn *pg, const char *sql, char *err, size_t errlen)
{
    PGresult *r = run(pg, sql, sql, 0, NULL, PGRES_COMMAND_OK, err, errlen);
    /* COMMIT of a transaction in error answers ROLLBACK. */
    bool ok = r != NULL && (strcmp(sql, "COMMIT") != 0 || strcmp(PQcmdStatus(r), "COMMIT") == 0);
    if (r != NULL && !ok)
        access_errline(err, errlen, "%s: rolled back", sql);
    PQclear(r);
    return ok;
}

int access_holds_put(const char *conninfo, const char *account, const char *reason,
                     const char *held_by, bool *was_held, access_hold_t *prev, char *err,
                     size_t errlen)
{
    *was_held = false;
    PGconn *pg = open_conn(conninfo, err, errlen);
    if (pg == NULL)
        return -1;
    const char *const params[] = {account, reason, held_by};
    int rc = -1;
    PGresult *r = NULL;
    if (command(pg, "BEGIN", err, errlen) &&
        (r = run(pg, "reading the hold", SELECT_ONE_SQL, 1, params, PGRES_TUPLES_OK, err,
                 errlen)) != NULL) {
        *was_held = PQntuples(r) == 1;
        if (*was_held && prev != NULL)
            row_of(r, 0, prev);
        PQclear(r);
        r = run(pg, "holding", PUT_SQL, 3, params, PGRES_COMMAND_OK, err, errlen);
        if (r != NULL && command(pg, "COMMIT", err, errlen))
            rc = 0;
        PQclear(r);
    }
    PQfinish(pg); /* an open transaction ends with the connection */
    return rc;
}

int access_holds_remove(const char *conninfo, const char *account, bool *was_held,
                        access_hold_t *gone, char *err, size_t errlen)
{
    *was_held = false;
    PGconn *pg = open_conn(conninfo, err, errlen);
    if (pg == NULL)
        return -1;
    const char *const params[] = {account};
    PGresult *r = run(pg, "releasing", REMOVE_SQL, 1, params, PGRES_TUPLES_OK, err, errlen);
    int rc = r != NULL ? 0 : -1;
    if (r != NULL && PQntuples(r) == 1) {
        *was_held = true;
        if (gone != NULL)
            row_of(r, 0, gone);
    }
    PQclear(r);
    PQfinish(pg);
    return rc;
}

int access_holds_list(const char *conninfo, access_hold_t **rows, size_t *n, char *err,
                      size_t errlen)
{
    *rows = NULL;
    *n = 0;
    PGconn *pg = open_conn(conninfo, err, errlen);
    if (pg == NULL)
        return -1;
    PGresult *r = run(pg, "listing the holds", LIST_SQL, 0, NULL, PGRES_TUPLES_OK, err, errlen);
    int rc = r != NULL ? 0 : -1;
    int count = r != NULL ? PQntuples(r) : 0;
    if (count > 0)
        *rows = mem_calloc((size_t)count, sizeof(**rows));
    for (int i = 0; i < count; i++)
        row_of(r, i, &(*rows)[i]);
    *n = (size_t)count;
    PQclear(r);
    PQfinish(pg);
    return rc;
}

/* ---- the worker's side --------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One round trip: a multi-statement query is one implicit transaction, in
 * which SET LOCAL holds (and behind a transaction pooler it is one
 * transaction on one server connection). */
access_status_t access_holds_read(struct pool_conn *conn, int timeout_ms, char ***accounts,
                                  size_t *n, access_error_t *err)
{
    access_error_clear(err);
    *accounts = NULL;
    *n = 0;
    PGconn *pg = pool_conn_pg(conn);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SET LOCAL statement_timeout = %d; SET LOCAL lock_timeout = %d;"
             " SELECT account FROM tally_held_accounts() AS held(account)",
             timeout_ms, timeout_ms);
    PGresult *rows = NULL, *failed = NULL;
    if (PQsendQuery(pg, sql)) {
        PGresult *r;
        while ((r = PQgetResult(pg)) != NULL) {
            if (PQresultStatus(r) == PGRES_TUPLES_OK && rows == NULL)
                rows = r;
            else if (PQresultStatus(r) != PGRES_COMMAND_OK && failed == NULL)
                failed = r;
            else
                PQclear(r);
        }
    }
    access_status_t st = ACCESS_OK;
    if (rows == NULL || failed != NULL) {
        st = access_error_from_pg(pg, failed, "holds_read", NULL, err);
        const char *state = err->sqlstate;
        /* No function (a schema before 0007): there can be no holds, and
         * trying again will not change that. A right revoked from an
         * existing function is a failure like any other (the worker fails
         * closed): holds may exist that it cannot see. */
        if (strcmp(state, "42883") == 0 || strcmp(state, "3F000") == 0)
            st = err->status = ACCESS_NOT_FOUND;
        if (st == ACCESS_OK)
            st = access_fail(err, ACCESS_FAILED, NULL, "holds_read: no rows");
        if (st == ACCESS_UNAVAILABLE)
            pool_conn_mark_broken(conn);
    } else {
        int count = PQntuples(rows);
        if (count > 0)
            *accounts = mem_calloc((size_t)count, sizeof(**accounts));
        for (int i = 0; i < count; i++)
            (*accounts)[i] = mem_strdup(PQgetvalue(rows, i, 0));
        /* Sorted byte-wise here, whatever the database's collation. */
        if (count > 1)
            qsort(*accounts, (size_t)count, sizeof(**accounts), cmp_str);
        *n = (size_t)count;
    }
    PQclear(rows);
    PQclear(failed);
    return st;
}

int access_holds_send_listen(struct pg_conn *pg)
{
    return PQsendQuery(pg, "LISTEN " ACCESS_HOLDS_CHANNEL);
}
