/* admin — see access/admin.h. */
#include "access/admin.h"

#include "access_internal.h"

#include <stdio.h>
#include <string.h>

/* One row describing current_user; every column is a reason to refuse.
 * CREATEROLE counts as much as BYPASSRLS: on PostgreSQL 15 such a role may
 * grant itself membership in any non-superuser role, the tables' owner
 * included. */
static const char ROLE_SQL[] =
    "WITH me AS (SELECT oid, rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles"
    "            WHERE rolname = current_user),"
    " tenant AS (SELECT DISTINCT c.oid, c.relname, c.relowner FROM pg_class c"
    "            JOIN pg_namespace n ON n.oid = c.relnamespace"
    "            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'account_id'"
    "                                AND NOT a.attisdropped"
    "            WHERE c.relkind IN ('r', 'p')"
    "              AND n.nspname NOT IN ('pg_catalog', 'information_schema'))"
    " SELECT me.rolname, me.rolsuper, me.rolbypassrls, me.rolcreaterole,"
    "  (SELECT string_agg(r.rolname, ', ' ORDER BY r.rolname) FROM pg_roles r"
    "    WHERE (r.rolsuper OR r.rolbypassrls OR r.rolcreaterole) AND r.oid <> me.oid"
    "      AND pg_has_role(me.oid, r.oid, 'MEMBER')) AS powerful_roles,"
    "  (SELECT string_agg(t.relname, ', ' ORDER BY t.relname) FROM tenant t"
    "    WHERE pg_has_role(me.oid, t.relowner, 'MEMBER')) AS owned_tables,"
    "  (SELECT pg_has_role(me.oid, r.oid, 'MEMBER') FROM pg_roles r"
    "    WHERE r.rolname = 'tally_app') AS app_member"
    " FROM me";

access_status_t access_admin_check_worker_role(struct pool_conn *conn, char *problem,
                                               size_t problem_size, access_error_t *err)
{
    access_error_clear(err);
    if (problem_size > 0)
        problem[0] = '\0';
    PGconn *pg = pool_conn_pg(conn);
    PGresult *r = PQexec(pg, ROLE_SQL);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        access_error_from_pg(pg, r, "check_worker_role", NULL, err);
        PQclear(r);
        if (err->status == ACCESS_UNAVAILABLE)
            pool_conn_mark_broken(conn);
        return err->status;
    }
    if (PQntuples(r) != 1) {
        PQclear(r);
        return access_fail(err, ACCESS_FAILED, NULL, "check_worker_role: current_user not found");
    }
    const char *role = PQgetvalue(r, 0, 0);
    if (access_get_bool(r, 0, 1)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" is a superuser, which bypasses row-level security; "
                 "run the worker as a plain member of tally_app",
                 role);
    } else if (access_get_bool(r, 0, 2)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" has BYPASSRLS; run the worker as a plain member of "
                 "tally_app",
                 role);
    } else if (!access_get_null(r, 0, 5)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" owns (or is a member of the owner of) the tenant tables "
                 "%s, and an owner can switch row-level security off; run the worker as a "
                 "plain member of tally_app",
                 role, PQgetvalue(r, 0, 5));
    } else if (access_get_bool(r, 0, 3)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" has CREATEROLE, which can grant itself the tables' owner "
                 "and so get around row-level security; run the worker as a plain member of "
                 "tally_app",
                 role);
    } else if (!access_get_null(r, 0, 4)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" is a member of %s, which bypass(es) row-level security "
                 "or may create roles; run the worker as a plain member of tally_app",
                 role, PQgetvalue(r, 0, 4));
    } else if (!access_get_bool(r, 0, 6)) {
        snprintf(problem, problem_size,
                 "database role \"%s\" is not a member of tally_app (run tallyctl migrate, "
                 "then GRANT tally_app TO \"%s\")",
                 role, role);
    }
    PQclear(r);
    if (problem_size > 0 && problem[0] != '\0')
        return access_fail(err, ACCESS_INVALID, NULL, "%s", problem);
    return ACCESS_OK;
}

access_status_t access_admin_prune_outcomes(struct pool_conn *conn, int days, int64_t *deleted,
                                            access_error_t *err)
{
    access_error_clear(err);
    *deleted = 0;
    if (days < 1)
        return access_fail(err, ACCESS_INVALID, NULL, "retention must be at least 1 day");
    PGconn *pg = pool_conn_pg(conn);
    /* A long delete is legitimate (an hour of outcomes), so no statement
     * timeout; but it never waits on a lock, nor idles, without limit. */
    pool_limits_t lim = pool_conn_limits(conn);
    char d[ACCESS_I64_LEN], lock_ms[ACCESS_I64_LEN], idle_ms[ACCESS_I64_LEN];
    const char *const limits[] = {access_fmt_i64(lock_ms, lim.lock_timeout_ms),
                                  access_fmt_i64(idle_ms, lim.idle_in_transaction_timeout_ms)};
    const char *const params[] = {access_fmt_i64(d, days)};
    const char *step = "prune_outcomes";
    PGresult *r = PQexec(pg, "BEGIN");
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
        PQclear(r);
        r = PQexecParams(pg,
                         "SELECT set_config('lock_timeout', $1, true),"
                         " set_config('idle_in_transaction_session_timeout', $2, true)",
                         2, NULL, limits, NULL, NULL, 0);
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        PQclear(r);
        r = PQexecParams(pg, "SELECT tally_prune_outcomes($1::integer)", 1, NULL, params, NULL,
                         NULL, 0);
    }
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        *deleted = access_get_i64(r, 0, 0);
        PQclear(r);
        step = "prune_outcomes commit";
        r = PQexec(pg, "COMMIT");
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            /* COMMIT of a transaction in error answers ROLLBACK. */
            bool committed = strcmp(PQcmdStatus(r), "COMMIT") == 0;
            PQclear(r);
            if (committed)
                return ACCESS_OK;
            *deleted = 0;
            return access_fail(err, ACCESS_FAILED, NULL, "prune_outcomes: rolled back");
        }
    }
    *deleted = 0;
    access_error_from_pg(pg, r, step, NULL, err);
    PQclear(r);
    if (PQtransactionStatus(pg) != PQTRANS_IDLE)
        PQclear(PQexec(pg, "ROLLBACK"));
    if (err->status == ACCESS_UNAVAILABLE || PQtransactionStatus(pg) != PQTRANS_IDLE)
        pool_conn_mark_broken(conn);
    return err->status;
}
