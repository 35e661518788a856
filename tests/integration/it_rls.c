/* it_rls — the database half of tenant isolation, for EVERY table in schema
 * public that has an account_id column (so tables added by later migrations
 * are covered without touching this file):
 *
 * - structure: RLS enabled and forced, the tenant policy on
 *   current_setting('app.account_id', true) for reads and writes, no other
 *   permissive policy that the worker's roles fall under, account_id NOT NULL
 *   with its format CHECK, and in the primary key and every unique
 *   constraint and index;
 * - behaviour: rows of accounts A and B are seeded generically (as the
 *   superuser, trying type-based values until the table's CHECKs accept
 *   them), then, connected as tally_worker with the setting on A, raw SQL that
 *   reads, updates, deletes or inserts B's rows sees nothing, changes nothing
 *   or is refused; with the setting unset or empty it sees nothing. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define ACCT_A "rls_a"
#define ACCT_B "rls_b"

typedef struct fixture {
    th_pg_t *pg;
    int ntables;
    char tables[64][64];
} fixture_t;

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    PGconn *c = th_pg_connect(f->pg, "postgres");
    PGresult *r = PQexec(c, "SELECT c.relname FROM pg_class c"
                            " JOIN pg_namespace n ON n.oid = c.relnamespace"
                            " JOIN pg_attribute a ON a.attrelid = c.oid"
                            "  AND a.attname = 'account_id' AND NOT a.attisdropped"
                            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')"
                            " ORDER BY c.relname");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r) && f->ntables < 64; i++)
        snprintf(f->tables[f->ntables++], sizeof(f->tables[0]), "%s", PQgetvalue(r, i, 0));
    PQclear(r);
    PQfinish(c);
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

static void test_discovery(void **state)
{
    fixture_t *f = *state;
    /* At least the core tables; every later domain table joins the list. */
    bool outcomes = false, logs = false;
    printf("tenant tables:");
    for (int i = 0; i < f->ntables; i++) {
        printf(" %s", f->tables[i]);
        outcomes |= strcmp(f->tables[i], "tally_request_outcomes") == 0;
        logs |= strcmp(f->tables[i], "payment_system_logs") == 0;
    }
    printf("\n");
    assert_true(outcomes && logs);
}

/* Every structural rule as one query; each row it returns is a violation. */
static const char STRUCTURE_SQL[] =
    "WITH t AS ("
    "  SELECT c.oid, c.relname, c.relrowsecurity, c.relforcerowsecurity, a.attnum, a.attnotnull"
    "  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    "  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'account_id'"
    "   AND NOT a.attisdropped"
    "  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')),"
    " worker_roles AS (SELECT 0::oid AS oid UNION SELECT r.oid FROM pg_roles r"
    "  WHERE pg_has_role('tally_worker', r.oid, 'MEMBER'))"
    " SELECT t.relname || ': row-level security not enabled' FROM t WHERE NOT t.relrowsecurity"
    " UNION ALL SELECT t.relname || ': row-level security not forced' FROM t"
    "  WHERE NOT t.relforcerowsecurity"
    " UNION ALL SELECT t.relname || ': account_id is nullable' FROM t WHERE NOT t.attnotnull"
    " UNION ALL SELECT t.relname || ': no tenant policy on app.account_id' FROM t"
    "  WHERE NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = t.oid"
    "   AND p.polname = 'tally_tenant' AND p.polcmd = '*' AND p.polpermissive"
    "   AND p.polroles = '{0}'"
    "   AND pg_get_expr(p.polqual, p.polrelid) ="
    "       '(account_id = current_setting(''app.account_id''::text, true))'"
    "   AND pg_get_expr(p.polwithcheck, p.polrelid) ="
    "       '(account_id = current_setting(''app.account_id''::text, true))')"
    " UNION ALL SELECT t.relname || ': permissive policy ' || p.polname ||"
    "  ' also applies to the worker'"
    "  FROM t JOIN pg_policy p ON p.polrelid = t.oid"
    "  WHERE p.polpermissive AND p.polname <> 'tally_tenant'"
    "   AND EXISTS (SELECT 1 FROM worker_roles w WHERE w.oid = ANY (p.polroles))"
    " UNION ALL SELECT t.relname || ': no account_id format CHECK' FROM t"
    "  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid"
    "   AND k.conname = 'tally_account_id_format' AND k.contype = 'c')"
    " UNION ALL SELECT t.relname || ': no primary key' FROM t"
    "  WHERE NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = t.oid"
    "   AND k.contype = 'p')"
    " UNION ALL SELECT t.relname || ': constraint ' || k.conname || ' lacks account_id'"
    "  FROM t JOIN pg_constraint k ON k.conrelid = t.oid"
    "  WHERE k.contype IN ('p', 'u', 'f', 'x') AND NOT (t.attnum = ANY (k.conkey))"
    " UNION ALL SELECT t.relname || ': unique index ' || i.indexrelid::regclass ||"
    "  ' lacks account_id'"
    "  FROM t JOIN pg_index i ON i.indrelid = t.oid"
    "  WHERE i.indisunique AND NOT (t.attnum = ANY (i.indkey::smallint[]))";

static void test_structure(void **state)
{
    fixture_t *f = *state;
    PGconn *c = th_pg_connect(f->pg, "postgres");
    PGresult *r = PQexec(c, STRUCTURE_SQL);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int i = 0; i < PQntuples(r); i++)
        print_error("tenant table rule broken: %s\n", PQgetvalue(r, i, 0));
    assert_int_equal(PQntuples(r), 0);
    PQclear(r);

    /* The check itself catches a table that breaks the rules. */
    PQclear(PQexec(c, "BEGIN"));
    PQclear(PQexec(c, "CREATE TABLE it_rls_bad (account_id text, id text UNIQUE)"));
    r = PQexec(c, STRUCTURE_SQL);
    assert_true(PQntuples(r) >= 5);
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
}

/* ---- generic seeding ---------------------------------------------------- */

#define MAX_COLS  48
#define MAX_CANDS 12

typedef struct column {
    char name[64];
    int attnum;
    int ncands;
    int pick; /* index into cands */
    char cands[MAX_CANDS][96];
} column_t;

static void add_cand(column_t *c, const char *sql)
{
    for (int i = 0; i < c->ncands; i++) {
        if (strcmp(c->cands[i], sql) == 0)
            return;
    }
    if (c->ncands < MAX_CANDS)
        snprintf(c->cands[c->ncands++], sizeof(c->cands[0]), "%s", sql);
}

/* SQL expressions worth trying for a column of this type. */
static void type_cands(column_t *c, const char *type)
{
    if (strstr(type, "int") != NULL || strcmp(type, "numeric") == 0 || strstr(type, "double") ||
        strcmp(type, "real") == 0) {
        add_cand(c, "1");
        add_cand(c, "100");
        add_cand(c, "10000");
        add_cand(c, "0");
    } else if (strcmp(type, "boolean") == 0) {
        add_cand(c, "false");
        add_cand(c, "true");
    } else if (strstr(type, "timestamp") != NULL || strcmp(type, "date") == 0) {
        add_cand(c, "now()");
        add_cand(c, "now() + interval '1 day'");
    } else if (strcmp(type, "bytea") == 0) {
        add_cand(c, "decode(repeat('00', 32), 'hex')");
    } else if (strcmp(type, "jsonb") == 0 || strcmp(type, "json") == 0) {
        add_cand(c, "'{}'");
    } else if (strcmp(type, "uuid") == 0) {
        add_cand(c, "gen_random_uuid()");
    } else if (strstr(type, "[]") != NULL) {
        add_cand(c, "'{}'");
    } else { /* text-like */
        add_cand(c, "'usd'");
        add_cand(c, "'seed-x'");
        add_cand(c, "'SEED-1234'");
        add_cand(c, "'x'");
    }
}

/* Loads the insertable columns of table with their candidate values: NULL
 * or DEFAULT first where allowed, then the literals named in the table's
 * CHECK constraints on that column (status IN (...)), then type-based values. */
static int load_columns(PGconn *c, const char *table, column_t *cols)
{
    const char *const p[] = {table};
    PGresult *r = PQexecParams(
        c,
        "SELECT a.attname, a.attnum, format_type(a.atttypid, NULL), a.attnotnull, a.atthasdef,"
        " (SELECT string_agg(m[1], E'\\n') FROM pg_constraint k,"
        "   regexp_matches(pg_get_constraintdef(k.oid), '''([^'']*)''', 'g') m"
        "  WHERE k.conrelid = a.attrelid AND k.contype = 'c' AND a.attnum = ANY (k.conkey)"
        "   AND k.conname <> 'tally_account_id_format')"
        " FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"
        "  AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a'"
        " ORDER BY a.attnum",
        1, NULL, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int n = PQntuples(r);
    assert_true(n <= MAX_COLS);
    for (int i = 0; i < n; i++) {
        column_t *col = &cols[i];
        memset(col, 0, sizeof(*col));
        snprintf(col->name, sizeof(col->name), "%s", PQgetvalue(r, i, 0));
        col->attnum = atoi(PQgetvalue(r, i, 1));
        const char *type = PQgetvalue(r, i, 2);
        bool notnull = PQgetvalue(r, i, 3)[0] == 't';
        bool hasdef = PQgetvalue(r, i, 4)[0] == 't';
        if (strcmp(col->name, "account_id") == 0) {
            add_cand(col, "$1");
            continue;
        }
        if (hasdef)
            add_cand(col, "DEFAULT");
        if (!notnull)
            add_cand(col, "NULL");
        /* A CHECK's literals fit text columns only: one over several columns
         * (status = 'refunded' … amount_refunded = amount) names values of
         * its text column, not of the others. */
        bool textual = strcmp(type, "text") == 0 || strstr(type, "char") != NULL;
        if (textual && !PQgetisnull(r, i, 5)) {
            char *lits = strdup(PQgetvalue(r, i, 5));
            for (char *save = NULL, *lit = strtok_r(lits, "\n", &save); lit != NULL;
                 lit = strtok_r(NULL, "\n", &save)) {
                if (strchr(lit, '\\') != NULL || strchr(lit, '^') != NULL)
                    continue; /* a regular expression, not a value */
                char q[96];
                snprintf(q, sizeof(q), "'%s'", lit);
                add_cand(col, q);
            }
            free(lits);
        }
        type_cands(col, type);
    }
    PQclear(r);
    return n;
}

/* Moves to the next combination of the columns in attnums (an odometer);
 * false when all were tried. */
static bool advance(column_t *cols, int ncols, const int *attnums, int nattnums)
{
    for (int k = 0; k < nattnums; k++) {
        for (int i = 0; i < ncols; i++) {
            if (cols[i].attnum != attnums[k] || cols[i].ncands <= 1)
                continue;
            if (++cols[i].pick < cols[i].ncands)
                return true;
            cols[i].pick = 0;
        }
    }
    return false;
}

/* Inserts one row of account into table; fails the test if no candidate
 * combination satisfies the table's constraints. */
static void seed_row(PGconn *c, const char *table, const char *account)
{
    column_t cols[MAX_COLS];
    int ncols = load_columns(c, table, cols);
    char last[512] = "";
    for (int attempt = 0; attempt < 400; attempt++) {
        char sql[8192];
        int off = snprintf(sql, sizeof(sql), "INSERT INTO %s (", table);
        for (int i = 0; i < ncols; i++)
            off += snprintf(sql + off, sizeof(sql) - (size_t)off, "%s\"%s\"", i ? ", " : "",
                            cols[i].name);
        off += snprintf(sql + off, sizeof(sql) - (size_t)off, ") VALUES (");
        for (int i = 0; i < ncols; i++)
            off += snprintf(sql + off, sizeof(sql) - (size_t)off, "%s%s", i ? ", " : "",
                            cols[i].cands[cols[i].pick]);
        snprintf(sql + off, sizeof(sql) - (size_t)off, ")");

        PQclear(PQexec(c, "SAVEPOINT seed"));
        const char *const p[] = {account};
        PGresult *r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
        if (PQresultStatus(r) == PGRES_COMMAND_OK) {
            PQclear(r);
            PQclear(PQexec(c, "RELEASE SAVEPOINT seed"));
            return;
        }
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        const char *cname = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        const char *colname = PQresultErrorField(r, PG_DIAG_COLUMN_NAME);
        snprintf(last, sizeof(last), "%s [%s]", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY),
                 state);
        char st[6];
        snprintf(st, sizeof(st), "%s", state != NULL ? state : "");
        char cn[128], coln[128];
        snprintf(cn, sizeof(cn), "%s", cname != NULL ? cname : "");
        snprintf(coln, sizeof(coln), "%s", colname != NULL ? colname : "");
        PQclear(r);
        PQclear(PQexec(c, "ROLLBACK TO SAVEPOINT seed"));

        int attnums[MAX_COLS], n = 0;
        if (strcmp(st, "23514") == 0 && cn[0] != '\0') {
            /* The columns of the CHECK that failed. */
            const char *const q[] = {table, cn};
            PGresult *k = PQexecParams(c,
                                       "SELECT unnest(conkey) FROM pg_constraint"
                                       " WHERE conrelid = $1::regclass AND conname = $2",
                                       2, NULL, q, NULL, NULL, 0);
            for (int i = 0; i < PQntuples(k) && n < MAX_COLS; i++)
                attnums[n++] = atoi(PQgetvalue(k, i, 0));
            PQclear(k);
        } else if (strcmp(st, "23502") == 0 && coln[0] != '\0') {
            for (int i = 0; i < ncols; i++) {
                if (strcmp(cols[i].name, coln) == 0)
                    attnums[n++] = cols[i].attnum;
            }
        }
        if (n == 0 || !advance(cols, ncols, attnums, n))
            break;
    }
    fail_msg("it_rls cannot seed a row of %s generically (last error: %s); give its columns "
             "defaults or teach type_cands() a value",
             table, last);
}

static int64_t rows_of(PGconn *c, const char *table, const char *account)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE account_id = '%s'", table, account);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int64_t n = atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* A fingerprint of all of account's rows in table, as the superuser sees them. */
static char *fingerprint(PGconn *c, const char *table, const char *account)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM %s t "
             "WHERE account_id = '%s'",
             table, account);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void seed_all(fixture_t *f)
{
    PGconn *c = th_pg_connect(f->pg, "postgres");
    PQclear(PQexec(c, "BEGIN"));
    /* Foreign keys and triggers off while seeding: rows stand alone. */
    PQclear(PQexec(c, "SET LOCAL session_replication_role = replica"));
    for (int i = 0; i < f->ntables; i++) {
        for (int k = 0; k < 2; k++) {
            const char *acct = k ? ACCT_B : ACCT_A;
            if (rows_of(c, f->tables[i], acct) == 0)
                seed_row(c, f->tables[i], acct);
        }
    }
    PGresult *r = PQexec(c, "COMMIT");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

/* ---- behaviour as the worker ------------------------------------------ */

typedef struct outcome {
    bool refused; /* 42501: permission or policy */
    long rows;    /* rows returned or affected otherwise */
    char state[6];
    char message[256];
} outcome_t;

static outcome_t run(PGconn *c, const char *sql)
{
    outcome_t o = {0};
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
        o.rows = PQntuples(r) == 1 && PQnfields(r) == 1 ? atol(PQgetvalue(r, 0, 0)) : PQntuples(r);
    } else if (st == PGRES_COMMAND_OK) {
        o.rows = atol(PQcmdTuples(r));
    } else {
        const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        snprintf(o.state, sizeof(o.state), "%s", s != NULL ? s : "");
        snprintf(o.message, sizeof(o.message), "%s", PQresultErrorMessage(r));
        o.refused = strcmp(o.state, "42501") == 0;
        o.rows = -1;
    }
    PQclear(r);
    return o;
}

static void set_tenant(PGconn *c, const char *account)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT set_config('app.account_id', '%s', false)", account);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
}

/* A column of table that tally_app may UPDATE, or "" when none. */
static void updatable_column(PGconn *su, const char *table, char *out, size_t size)
{
    const char *const p[] = {table};
    PGresult *r = PQexecParams(su,
                               "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass"
                               " AND attnum > 0 AND NOT attisdropped"
                               " AND has_column_privilege('tally_app', attrelid, attnum, 'UPDATE')"
                               " ORDER BY attnum LIMIT 1",
                               1, NULL, p, NULL, NULL, 0);
    out[0] = '\0';
    if (PQntuples(r) == 1)
        snprintf(out, size, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

#define EXPECT(cond, table, what, o)                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail_msg("%s: %s: rows=%ld state=%s %s", table, what, (o).rows, (o).state,             \
                     (o).message);                                                                 \
    } while (0)

static void test_cross_tenant_sql_as_worker(void **state)
{
    fixture_t *f = *state;
    seed_all(f);
    PGconn *su = th_pg_connect(f->pg, "postgres");
    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    char sql[1024];
    int checked = 0;

    for (int i = 0; i < f->ntables; i++) {
        const char *t = f->tables[i];
        int64_t own = rows_of(su, t, ACCT_A), other = rows_of(su, t, ACCT_B);
        assert_true(own > 0 && other > 0);
        char *before = fingerprint(su, t, ACCT_B);
        set_tenant(w, ACCT_A);

        /* Reads: its own rows, none of B's, whatever the WHERE says. */
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
        outcome_t o = run(w, sql);
        EXPECT(o.rows == own, t, "count(*) under tenant A", o);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE account_id = '" ACCT_B "'", t);
        o = run(w, sql);
        EXPECT(o.rows == 0, t, "select B's rows", o);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE account_id <> '" ACCT_A "'", t);
        o = run(w, sql);
        EXPECT(o.rows == 0, t, "select other tenants' rows", o);

        /* Updates of B's rows touch nothing (or are not allowed at all). */
        char col[64];
        updatable_column(su, t, col, sizeof(col));
        if (col[0] != '\0') {
            snprintf(sql, sizeof(sql),
                     "UPDATE %s SET \"%s\" = \"%s\" WHERE account_id = '" ACCT_B "'", t, col, col);
            o = run(w, sql);
            EXPECT(o.rows == 0, t, "update B's rows", o);
        }
        snprintf(sql, sizeof(sql), "UPDATE %s SET account_id = account_id", t);
        o = run(w, sql);
        EXPECT(o.refused || o.rows == own, t, "update all rows", o);
        /* Moving an own row into B is refused. */
        snprintf(sql, sizeof(sql), "UPDATE %s SET account_id = '" ACCT_B "'", t);
        o = run(w, sql);
        EXPECT(o.refused, t, "move own rows to B", o);

        /* Deletes of B's rows delete nothing (or are not allowed). */
        snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE account_id = '" ACCT_B "'", t);
        o = run(w, sql);
        EXPECT(o.refused || o.rows == 0, t, "delete B's rows", o);

        /* Inserting a row for B (a copy of an own row) is refused. */
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s SELECT (jsonb_populate_record(NULL::%s, to_jsonb(x) ||"
                 " '{\"account_id\": \"" ACCT_B "\"}')).* FROM %s x LIMIT 1",
                 t, t, t);
        o = run(w, sql);
        EXPECT(o.refused, t, "insert a row for B", o);

        /* Tenant B through the same connection sees exactly B's rows. */
        set_tenant(w, ACCT_B);
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", t);
        o = run(w, sql);
        EXPECT(o.rows == other, t, "count(*) under tenant B", o);

        /* Nothing of B changed. */
        char *after = fingerprint(su, t, ACCT_B);
        assert_string_equal(before, after);
        assert_int_equal(rows_of(su, t, ACCT_A), own);
        free(before);
        free(after);
        checked++;
    }
    PQfinish(w);

    /* No setting at all (a fresh connection), or an empty one: nothing. */
    PGconn *fresh = th_pg_connect(f->pg, "tally_worker");
    for (int i = 0; i < f->ntables; i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", f->tables[i]);
        outcome_t o = run(fresh, sql);
        EXPECT(o.rows == 0, f->tables[i], "count(*) with the setting unset", o);
    }
    set_tenant(fresh, "");
    for (int i = 0; i < f->ntables; i++) {
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s", f->tables[i]);
        outcome_t o = run(fresh, sql);
        EXPECT(o.rows == 0, f->tables[i], "count(*) with the setting empty", o);
        snprintf(
            sql, sizeof(sql),
            "INSERT INTO %s SELECT (jsonb_populate_record(NULL::%s, '{\"account_id\": \"" ACCT_B
            "\"}')).*",
            f->tables[i], f->tables[i]);
        o = run(fresh, sql);
        EXPECT(o.refused, f->tables[i], "insert with the setting empty", o);
    }
    PQfinish(fresh);
    PQfinish(su);
    printf("cross-tenant SQL checked on %d tables\n", checked);
    assert_int_equal(checked, f->ntables);
}

/* The pruning function runs as the owner, across tenants: it must neither
 * show the worker another tenant's row nor take an account to aim at. */
static void test_prune_function_leaks_nothing(void **state)
{
    fixture_t *f = *state;
    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    set_tenant(w, ACCT_A);
    outcome_t o =
        run(w, "SELECT count(*) FROM tally_request_outcomes WHERE account_id = '" ACCT_B "'");
    EXPECT(o.rows == 0, "tally_request_outcomes", "B's outcomes", o);
    /* Its only output is a count; it cannot be bent to list rows. */
    o = run(w, "SELECT * FROM tally_prune_outcomes(36500)");
    EXPECT(o.rows == 0, "tally_request_outcomes", "prune nothing recent", o);
    o = run(w, "SELECT tally_prune_outcomes(0)");
    EXPECT(o.rows == -1, "tally_request_outcomes", "prune everything", o);
    /* The owner's policies do not apply to the worker's roles. */
    o = run(w, "SET ROLE tally_owner");
    EXPECT(o.refused, "tally_request_outcomes", "become the owner", o);
    PQfinish(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_cross_tenant_sql_as_worker),
        cmocka_unit_test(test_prune_function_leaks_nothing),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
