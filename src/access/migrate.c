/* migrate — see access/migrate.h. */
#include "access/migrate.h"

#include "access/sqlscan.h"
#include "errline.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The advisory lock key that serializes migrators ("tallymig" in ASCII). */
#define MIGRATE_LOCK_KEY "8386659049788271975"

#define CHECKSUM_LEN 64 /* hex SHA-256 */

typedef struct mfile {
    char *name;
    char *sql;
    char checksum[CHECKSUM_LEN + 1];
    bool applied;
    bool modified;
    char applied_checksum[CHECKSUM_LEN + 1];
    char applied_at[32];
} mfile_t;

typedef struct applied_row {
    char name[256];
    char checksum[CHECKSUM_LEN + 1];
    char applied_at[32];
    bool matched;
} applied_row_t;

typedef struct migrator {
    PGconn *pg;
    const char *dir;
    FILE *out;
    char *err;
    size_t errlen;
    mfile_t *files;
    size_t nfiles;
    applied_row_t *applied;
    size_t napplied;
} migrator_t;

static int fail(migrator_t *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(migrator_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    access_verrline(m->err, m->errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(((const mfile_t *)a)->name, ((const mfile_t *)b)->name);
}

static char *read_file(const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(why, whylen, "%s", strerror(errno));
        return NULL;
    }
    size_t cap = 8192, len = 0;
    char *buf = mem_alloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            buf = mem_realloc(buf, cap * 2);
            cap *= 2;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    bool ioerr = ferror(f) != 0;
    fclose(f);
    if (ioerr) {
        snprintf(why, whylen, "read error");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    if (strlen(buf) != len) {
        snprintf(why, whylen, "contains a NUL byte");
        free(buf);
        return NULL;
    }
    return buf;
}

/* Lists dir's *.sql files in name order and reads them. */
static int load_files(migrator_t *m)
{
    DIR *d = opendir(m->dir);
    if (d == NULL)
        return fail(m, "cannot open migrations directory %s: %s", m->dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 || e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", m->dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (m->nfiles == cap) {
            cap = cap ? cap * 2 : 16;
            m->files = mem_realloc(m->files, cap * sizeof(*m->files));
        }
        mfile_t *f = &m->files[m->nfiles];
        memset(f, 0, sizeof(*f));
        char why[128];
        f->sql = read_file(path, why, sizeof(why));
        if (f->sql == NULL) {
            rc = fail(m, "cannot read migration %s: %s", e->d_name, why);
            break;
        }
        f->name = mem_strdup(e->d_name);
        m->nfiles++;
    }
    closedir(d);
    if (rc == 0 && m->nfiles > 0)
        qsort(m->files, m->nfiles, sizeof(*m->files), name_cmp);
    return rc;
}

static int connect_db(migrator_t *m, const char *conninfo)
{
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", "tallyctl-migrate", conninfo, NULL};
    m->pg = PQconnectdbParams(keys, vals, 1);
    if (m->pg == NULL)
        return fail(m, "cannot connect to the database: out of memory");
    if (PQstatus(m->pg) != CONNECTION_OK)
        return fail(m, "cannot connect to the database: %s", PQerrorMessage(m->pg));
    return 0;
}

/* Runs sql (no parameters); fails with what in the message. */
static int exec_ok(migrator_t *m, const char *sql, const char *what)
{
    PGresult *r = PQexec(m->pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = fail(m, "%s: %s", what, PQresultErrorMessage(r));
    PQclear(r);
    return rc;
}

/* The server computes the checksums: sha256() is built in since PostgreSQL
 * 11, and the same function records them. */
static int compute_checksums(migrator_t *m)
{
    for (size_t i = 0; i < m->nfiles; i++) {
        const char *const params[] = {m->files[i].sql};
        const int lens[] = {(int)strlen(m->files[i].sql)};
        const int fmts[] = {1};
        const Oid types[] = {17}; /* bytea, sent as the file's raw bytes */
        PGresult *r = PQexecParams(m->pg, "SELECT encode(sha256($1), 'hex')", 1, types, params,
                                   lens, fmts, 0);
        int rc = 0;
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            rc = fail(m, "checksum of %s: %s", m->files[i].name, PQresultErrorMessage(r));
        else
            snprintf(m->files[i].checksum, sizeof(m->files[i].checksum), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int load_applied(migrator_t *m)
{
    PGresult *r = PQexec(m->pg, "SELECT to_regclass('tally_schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(m, "reading tally_schema_migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return 0;
    r = PQexec(m->pg, "SELECT name, checksum, "
                      "to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                      "FROM tally_schema_migrations ORDER BY name");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        int rc = fail(m, "reading tally_schema_migrations: %s", PQresultErrorMessage(r));
        PQclear(r);
        return rc;
    }
    int n = PQntuples(r);
    m->applied = mem_calloc(n > 0 ? (size_t)n : 1, sizeof(*m->applied));
    for (int i = 0; i < n; i++) {
        applied_row_t *a = &m->applied[i];
        snprintf(a->name, sizeof(a->name), "%s", PQgetvalue(r, i, 0));
        snprintf(a->checksum, sizeof(a->checksum), "%s", PQgetvalue(r, i, 1));
        snprintf(a->applied_at, sizeof(a->applied_at), "%s", PQgetvalue(r, i, 2));
    }
    m->napplied = (size_t)n;
    PQclear(r);
    return 0;
}

/* Matches applied rows to files; marks modified files. */
static void match(migrator_t *m)
{
    for (size_t i = 0; i < m->nfiles; i++) {
        mfile_t *f = &m->files[i];
        for (size_t j = 0; j < m->napplied; j++) {
            applied_row_t *a = &m->applied[j];
            if (strcmp(a->name, f->name) != 0)
                continue;
            a->matched = true;
            f->applied = true;
            f->modified = strcmp(a->checksum, f->checksum) != 0;
            snprintf(f->applied_checksum, sizeof(f->applied_checksum), "%s", a->checksum);
            snprintf(f->applied_at, sizeof(f->applied_at), "%s", a->applied_at);
        }
    }
}

/* Refuses edited applied files and out-of-order pending ones. */
static int verify(migrator_t *m)
{
    const char *last_applied = NULL;
    for (size_t i = 0; i < m->nfiles; i++) {
        mfile_t *f = &m->files[i];
        if (f->modified)
            return fail(m,
                        "migration %s was changed after it was applied (recorded checksum "
                        "%.12s…, file now %.12s…); never edit an applied migration, add a new "
                        "file instead",
                        f->name, f->applied_checksum, f->checksum);
    }
    for (size_t j = 0; j < m->napplied; j++) {
        if (last_applied == NULL || strcmp(m->applied[j].name, last_applied) > 0)
            last_applied = m->applied[j].name;
    }
    for (size_t i = 0; i < m->nfiles; i++) {
        mfile_t *f = &m->files[i];
        if (!f->applied && last_applied != NULL && strcmp(f->name, last_applied) < 0)
            return fail(m,
                        "pending migration %s sorts before the applied %s; migrations must be "
                        "applied in order (rename it to sort last)",
                        f->name, last_applied);
    }
    return 0;
}

/* Refuses a pending file that would end the transaction it runs in (a
 * COMMIT inside commits what came before it, whatever fails after), before
 * anything of this run is applied. */
static int refuse_txn_control(migrator_t *m)
{
    for (size_t i = 0; i < m->nfiles; i++) {
        access_sqlscan_hit_t hit;
        if (!m->files[i].applied && access_sqlscan_txn_control(m->files[i].sql, &hit))
            return fail(m,
                        "migration %s, line %d: %s is transaction control, which a migration "
                        "must not contain (each file runs in its own transaction, which migrate "
                        "commits); remove it. Nothing was applied",
                        m->files[i].name, hit.line, hit.what);
    }
    return 0;
}

/* 1-based line of the 1-based character position pos in sql (UTF-8). */
static int line_of(const char *sql, long pos)
{
    int line = 1;
    long chars = 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p != '\0'; p++) {
        if ((*p & 0xC0) != 0x80 && ++chars >= pos)
            break;
        if (*p == '\n')
            line++;
    }
    return line;
}

static int apply_one(migrator_t *m, const mfile_t *f)
{
    int64_t t0 = clock_mono_ns();
    if (exec_ok(m, "BEGIN", f->name) != 0)
        return -1;
    PGresult *r = PQexec(m->pg, f->sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
        const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        char where[32] = "";
        if (pos != NULL)
            snprintf(where, sizeof(where), " (line %d)", line_of(f->sql, atol(pos)));
        int rc =
            fail(m, "migration %s failed%s: %s [%s]; nothing of it was applied", f->name, where,
                 msg != NULL ? msg : PQresultErrorMessage(r), state != NULL ? state : "?");
        PQclear(r);
        PGresult *rb = PQexec(m->pg, "ROLLBACK");
        PQclear(rb);
        return rc;
    }
    PQclear(r);
    if (PQtransactionStatus(m->pg) != PQTRANS_INTRANS) {
        /* refuse_txn_control missed a way to end the transaction: what ran
         * before that point may be committed, unrecorded. */
        PGresult *rb = PQexec(m->pg, "ROLLBACK");
        PQclear(rb);
        return fail(m,
                    "migration %s ended its transaction itself: what it ran before that may "
                    "have been committed, and it is not recorded as applied; remove the "
                    "transaction control (each file already runs in its own transaction) and "
                    "check the database",
                    f->name);
    }
    const char *const params[] = {f->name, f->checksum};
    r = PQexecParams(m->pg, "INSERT INTO tally_schema_migrations (name, checksum) VALUES ($1, $2)",
                     2, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK) {
        int rc = fail(m, "recording %s: %s", f->name, PQresultErrorMessage(r));
        PQclear(r);
        PGresult *rb = PQexec(m->pg, "ROLLBACK");
        PQclear(rb);
        return rc;
    }
    PQclear(r);
    r = PQexec(m->pg, "COMMIT");
    bool committed = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    int rc = committed ? 0 : fail(m, "committing %s: %s", f->name, PQresultErrorMessage(r));
    PQclear(r);
    if (rc == 0)
        fprintf(m->out, "applied %s (%.0f ms)\n", f->name, (double)(clock_mono_ns() - t0) / 1e6);
    return rc;
}

static void migrator_free(migrator_t *m)
{
    for (size_t i = 0; i < m->nfiles; i++) {
        free(m->files[i].name);
        free(m->files[i].sql);
    }
    free(m->files);
    free(m->applied);
    if (m->pg != NULL)
        PQfinish(m->pg);
}

static int open_migrator(migrator_t *m, const char *conninfo, const char *dir, FILE *out, char *err,
                         size_t errlen)
{
    memset(m, 0, sizeof(*m));
    m->dir = dir;
    m->out = out != NULL ? out : stdout;
    m->err = err;
    m->errlen = errlen;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (conninfo == NULL || conninfo[0] == '\0')
        return fail(m, "no database connection string");
    if (load_files(m) != 0 || connect_db(m, conninfo) != 0)
        return -1;
    /* NOTICEs such as "relation already exists, skipping" are noise here. */
    return exec_ok(m, "SET client_min_messages = warning", "session setup");
}

int access_migrate_apply(const char *conninfo, const char *dir, FILE *out, char *err, size_t errlen)
{
    migrator_t m;
    int rc = open_migrator(&m, conninfo, dir, out, err, errlen);
    if (rc != 0)
        goto done;

    /* Serialize migrators. The lock is the session's and goes with the connection. */
    PGresult *r = PQexec(m.pg, "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ")");
    bool locked = PQresultStatus(r) == PGRES_TUPLES_OK && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!locked) {
        fprintf(m.out, "waiting for another migrator to finish\n");
        fflush(m.out);
        if ((rc = exec_ok(&m, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")",
                          "taking the migration lock")) != 0)
            goto done;
    }
    rc = exec_ok(&m,
                 "CREATE TABLE IF NOT EXISTS tally_schema_migrations ("
                 " name text PRIMARY KEY,"
                 " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
                 " applied_at timestamptz NOT NULL DEFAULT now())",
                 "creating tally_schema_migrations");
    if (rc != 0 || (rc = compute_checksums(&m)) != 0 || (rc = load_applied(&m)) != 0)
        goto done;
    match(&m);
    for (size_t j = 0; j < m.napplied; j++) {
        if (!m.applied[j].matched)
            fprintf(m.out, "warning: applied migration %s is not in %s\n", m.applied[j].name,
                    m.dir);
    }
    if ((rc = verify(&m)) != 0 || (rc = refuse_txn_control(&m)) != 0)
        goto done;

    size_t done_now = 0;
    for (size_t i = 0; i < m.nfiles; i++) {
        if (m.files[i].applied)
            continue;
        if ((rc = apply_one(&m, &m.files[i])) != 0)
            goto done;
        done_now++;
    }
    if (done_now == 0)
        fprintf(m.out, "nothing to apply: %zu migration(s) up to date\n", m.napplied);
    else
        fprintf(m.out, "%zu migration(s) applied, %zu already applied\n", done_now, m.napplied);
done:
    migrator_free(&m);
    return rc;
}

int access_migrate_status(const char *conninfo, const char *dir, FILE *out, char *err,
                          size_t errlen)
{
    migrator_t m;
    int rc = open_migrator(&m, conninfo, dir, out, err, errlen);
    if (rc != 0 || (rc = compute_checksums(&m)) != 0 || (rc = load_applied(&m)) != 0)
        goto done;
    match(&m);
    size_t pending = 0, modified = 0;
    const char *first_modified = NULL;
    for (size_t i = 0; i < m.nfiles; i++) {
        const mfile_t *f = &m.files[i];
        if (f->modified) {
            fprintf(m.out, "modified  %-40s applied %s, file changed since\n", f->name,
                    f->applied_at);
            if (first_modified == NULL)
                first_modified = f->name;
            modified++;
        } else if (f->applied) {
            fprintf(m.out, "applied   %-40s %s\n", f->name, f->applied_at);
        } else {
            fprintf(m.out, "pending   %s\n", f->name);
            pending++;
        }
    }
    for (size_t j = 0; j < m.napplied; j++) {
        if (!m.applied[j].matched)
            fprintf(m.out, "missing   %-40s applied %s, not in %s\n", m.applied[j].name,
                    m.applied[j].applied_at, m.dir);
    }
    fprintf(m.out, "%zu applied, %zu pending\n", m.napplied, pending);
    if (modified > 0)
        rc = fail(&m, "migration %s was changed after it was applied", first_modified);
done:
    migrator_free(&m);
    return rc;
}
