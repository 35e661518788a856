/* it_migrate — `tallyctl migrate` as a process against a real PostgreSQL:
 * apply, no-op rerun, --status, checksums, edited and out-of-order files,
 * failing files, two migrators at once, usage and secrets; and what the
 * migrations grant: tally_app gets exactly the rights the worker needs. */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

extern char **environ;

typedef struct fixture {
    th_pg_t *pg;
    char owner_url[256];
} fixture_t;

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_url(f->pg, "tally_owner", f->owner_url, sizeof(f->owner_url));
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

/* ---- running tallyctl ------------------------------------------------- */

typedef struct ctl_run {
    pid_t pid;
    char out_path[512];
    char err_path[512];
    int status; /* exit code, or -1 when it did not exit normally */
    char *out;
    char *err;
} ctl_run_t;

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return strdup("");
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = calloc(1, (size_t)n + 1);
    if (n > 0 && fread(buf, 1, (size_t)n, fp) != (size_t)n)
        buf[0] = '\0';
    fclose(fp);
    return buf;
}

/* Starts tallyctl with args (NULL-terminated) and an environment without any
 * database URL but the given ones (either may be NULL). */
static void ctl_start(ctl_run_t *r, const char *migration_url, const char *database_url,
                      const char *const *args)
{
    static int seq;
    memset(r, 0, sizeof(*r));
    snprintf(r->out_path, sizeof(r->out_path), "%s/ctl-%d.out", th_tmpdir(), ++seq);
    snprintf(r->err_path, sizeof(r->err_path), "%s/ctl-%d.err", th_tmpdir(), seq);

    char *env[256];
    int n = 0;
    for (char **e = environ; *e != NULL && n < 250; e++) {
        if (strncmp(*e, "MIGRATION_DATABASE_URL=", 23) != 0 &&
            strncmp(*e, "DATABASE_URL=", 13) != 0)
            env[n++] = *e;
    }
    char mig[512], db[512];
    if (migration_url != NULL) {
        snprintf(mig, sizeof(mig), "MIGRATION_DATABASE_URL=%s", migration_url);
        env[n++] = mig;
    }
    if (database_url != NULL) {
        snprintf(db, sizeof(db), "DATABASE_URL=%s", database_url);
        env[n++] = db;
    }
    env[n] = NULL;

    const char *bin = getenv("TALLYCTL_BIN");
    assert_non_null(bin);
    char *argv[16];
    int a = 0;
    argv[a++] = (char *)bin;
    for (; args[a - 1] != NULL && a < 15; a++)
        argv[a] = (char *)args[a - 1];
    argv[a] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, r->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, r->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = posix_spawn(&r->pid, bin, &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        fail_msg("spawn %s: %s", bin, strerror(rc));
}

/* Waits (at most 60 s) for the process and reads its output. */
static void ctl_wait(ctl_run_t *r)
{
    int st = 0;
    pid_t got = 0;
    for (int i = 0; i < 6000 && got == 0; i++) {
        got = waitpid(r->pid, &st, WNOHANG);
        if (got == 0)
            usleep(10000);
    }
    if (got == 0) {
        kill(r->pid, SIGKILL);
        waitpid(r->pid, &st, 0);
        fail_msg("tallyctl did not finish within 60 s");
    }
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r->out = slurp(r->out_path);
    r->err = slurp(r->err_path);
}

static void ctl_clear(ctl_run_t *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static int ctl(ctl_run_t *r, const char *migration_url, const char *database_url,
               const char *const *args)
{
    ctl_start(r, migration_url, database_url, args);
    ctl_wait(r);
    return r->status;
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static const char *migrations_dir(void)
{
    const char *d = getenv("TALLY_MIGRATIONS_DIR");
    assert_non_null(d);
    return d;
}

static int count_sql_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".sql") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static void write_file(const char *dir, const char *name, const char *text, const char *mode)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, mode);
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* A fresh copy of the migrations directory. */
static char *copy_migrations(const char *label)
{
    static int seq;
    char *dir = malloc(1024);
    snprintf(dir, 1024, "%s/migrations-%s-%d", th_tmpdir(), label, ++seq);
    assert_int_equal(mkdir(dir, 0700), 0);
    DIR *d = opendir(migrations_dir());
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        char src[1024];
        snprintf(src, sizeof(src), "%s/%s", migrations_dir(), e->d_name);
        FILE *in = fopen(src, "rb");
        assert_non_null(in);
        char path[1100];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *out = fopen(path, "wb");
        assert_non_null(out);
        char buf[8192];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
            fwrite(buf, 1, n, out);
        fclose(in);
        fclose(out);
    }
    closedir(d);
    return dir;
}

static int64_t applied_count(fixture_t *f)
{
    return th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_schema_migrations");
}

/* Applies the real migrations once (idempotent across tests). */
static void ensure_migrated(fixture_t *f)
{
    ctl_run_t r;
    if (ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", migrations_dir())) != 0)
        fail_msg("migrate failed: %s", r.err);
    ctl_clear(&r);
    if (th_pg_i64(f->pg, "postgres",
                  "SELECT pg_has_role('tally_worker', 'tally_app', 'MEMBER')::int") == 0)
        th_pg_exec(f->pg, "tally_owner", "GRANT tally_app TO tally_worker");
}

/* ---- tests ------------------------------------------------------------ */

static void test_apply_then_noop(void **state)
{
    fixture_t *f = *state;
    ctl_run_t r;
    int files = count_sql_files(migrations_dir());
    assert_true(files >= 1);

    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", migrations_dir())), 0);
    assert_non_null(strstr(r.out, "applied 0001_core.sql"));
    assert_string_equal(r.err, "");
    ctl_clear(&r);
    assert_int_equal(applied_count(f), files);
    char *stamp = th_pg_text(f->pg, "postgres",
                             "SELECT string_agg(name || applied_at, ',' ORDER BY name) "
                             "FROM tally_schema_migrations");

    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", migrations_dir())), 0);
    assert_non_null(strstr(r.out, "nothing to apply"));
    assert_null(strstr(r.out, "applied 0001"));
    ctl_clear(&r);
    assert_int_equal(applied_count(f), files);
    char *stamp2 = th_pg_text(f->pg, "postgres",
                              "SELECT string_agg(name || applied_at, ',' ORDER BY name) "
                              "FROM tally_schema_migrations");
    assert_string_equal(stamp, stamp2);
    free(stamp);
    free(stamp2);
}

static void test_checksums_recorded(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    DIR *d = opendir(migrations_dir());
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue;
        /* An independent SHA-256: coreutils. */
        char cmd[1200], want[65] = "";
        snprintf(cmd, sizeof(cmd), "sha256sum '%s/%s'", migrations_dir(), e->d_name);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        assert_int_equal(fscanf(p, "%64s", want), 1);
        pclose(p);
        char sql[512];
        snprintf(sql, sizeof(sql), "SELECT checksum FROM tally_schema_migrations WHERE name = '%s'",
                 e->d_name);
        char *got = th_pg_text(f->pg, "postgres", sql);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(got);
        checked++;
    }
    closedir(d);
    assert_int_equal(checked, count_sql_files(migrations_dir()));
}

static void test_status(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    ctl_run_t r;
    assert_int_equal(
        ctl(&r, f->owner_url, NULL, ARGS("migrate", "--status", "--dir", migrations_dir())), 0);
    assert_non_null(strstr(r.out, "applied   0001_core.sql"));
    assert_null(strstr(r.out, "pending   "));
    assert_non_null(strstr(r.out, " 0 pending"));
    ctl_clear(&r);

    char *dir = copy_migrations("status");
    write_file(dir, "9999_extra.sql", "CREATE TABLE it_status_extra (x int);\n", "w");
    int64_t before = applied_count(f);
    char dirarg[1100];
    snprintf(dirarg, sizeof(dirarg), "--dir=%s", dir);
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--status", dirarg)), 0);
    assert_non_null(strstr(r.out, "pending   9999_extra.sql"));
    assert_non_null(strstr(r.out, " 1 pending"));
    ctl_clear(&r);
    /* --status changes nothing. */
    assert_int_equal(applied_count(f), before);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM pg_class WHERE relname = 'it_status_extra'"),
                     0);
    free(dir);
}

static void test_edited_applied_file_is_refused(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    char *dir = copy_migrations("edited");
    write_file(dir, "0001_core.sql", "-- an innocent edit\n", "a");
    write_file(dir, "9999_extra.sql", "CREATE TABLE it_edit_extra (x int);\n", "w");
    int64_t before = applied_count(f);

    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 1);
    assert_non_null(strstr(r.err, "0001_core.sql"));
    assert_non_null(strstr(r.err, "changed after it was applied"));
    ctl_clear(&r);
    /* Nothing else was applied either. */
    assert_int_equal(applied_count(f), before);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM pg_class WHERE relname = 'it_edit_extra'"),
                     0);

    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--status", "--dir", dir)), 1);
    assert_non_null(strstr(r.out, "modified  0001_core.sql"));
    assert_non_null(strstr(r.err, "0001_core.sql"));
    ctl_clear(&r);
    free(dir);
}

static void test_failing_file_is_rolled_back(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    char *dir = copy_migrations("bad");
    write_file(dir, "9998_bad.sql",
               "CREATE TABLE it_bad_a (x int);\n"
               "-- a comment\n"
               "SELEC 1;\n",
               "w");
    int64_t before = applied_count(f);
    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 1);
    assert_non_null(strstr(r.err, "9998_bad.sql"));
    assert_non_null(strstr(r.err, "line 3"));
    assert_non_null(strstr(r.err, "syntax error"));
    ctl_clear(&r);
    assert_int_equal(applied_count(f), before);
    assert_int_equal(
        th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM pg_class WHERE relname = 'it_bad_a'"),
        0);
    free(dir);
}

static void test_out_of_order_is_refused(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    char *dir = copy_migrations("order");
    write_file(dir, "0000_early.sql", "CREATE TABLE it_early (x int);\n", "w");
    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 1);
    assert_non_null(strstr(r.err, "0000_early.sql"));
    assert_non_null(strstr(r.err, "sorts before"));
    ctl_clear(&r);
    assert_int_equal(
        th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM pg_class WHERE relname = 'it_early'"),
        0);
    free(dir);
}

static void test_transaction_control_is_refused(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    char *dir = copy_migrations("txn");
    write_file(dir, "9997_commits.sql", "COMMIT;\n", "w");
    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 1);
    assert_non_null(strstr(r.err, "9997_commits.sql"));
    assert_non_null(strstr(r.err, "transaction"));
    ctl_clear(&r);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_schema_migrations "
                               "WHERE name = '9997_commits.sql'"),
                     0);
    free(dir);
}

/* A file that commits half of itself (`COMMIT; BEGIN;` in the middle) is
 * refused before anything runs, naming file, line and statement, and what
 * the message says is true: nothing was applied, not even an earlier
 * pending file of the same run. Transaction words in comments, strings,
 * dollar quotes and BEGIN ATOMIC bodies are no reason to refuse. */
static void test_half_commit_is_refused_and_the_message_true(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    char *dir = copy_migrations("half");
    write_file(dir, "9990_fine.sql", "CREATE TABLE it_half_fine (x int);\n", "w");
    write_file(dir, "9991_half.sql",
               "CREATE TABLE it_half_a (x int);\n"
               "COMMIT; BEGIN;\n"
               "SELEC 1;\n",
               "w");
    int64_t before = applied_count(f);
    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 1);
    assert_non_null(strstr(r.err, "9991_half.sql, line 2: COMMIT"));
    assert_non_null(strstr(r.err, "Nothing was applied"));
    assert_null(strstr(r.out, "applied 9990"));
    ctl_clear(&r);
    assert_int_equal(applied_count(f), before);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM pg_class"
                               " WHERE relname IN ('it_half_a', 'it_half_fine')"),
                     0);
    free(dir);

    dir = copy_migrations("notxn");
    write_file(dir, "9992_words.sql",
               "-- COMMIT; a comment\n"
               "/* BEGIN; */ CREATE TABLE it_words (note text DEFAULT 'COMMIT; BEGIN;');\n"
               "CREATE FUNCTION it_words_f() RETURNS int LANGUAGE plpgsql AS $$\n"
               "BEGIN\n  RETURN 1;\nEND\n$$;\n"
               "CREATE FUNCTION it_words_g(x int) RETURNS int LANGUAGE sql\n"
               "BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\nEND;\n",
               "w");
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", dir)), 0);
    assert_non_null(strstr(r.out, "applied 9992_words.sql"));
    ctl_clear(&r);
    assert_int_equal(th_pg_i64(f->pg, "postgres", "SELECT it_words_f() + it_words_g(5)"), 2);
    free(dir);
}

/* Two migrators on a fresh database: one applies, the other waits and then
 * finds nothing to do. A held lock makes the wait visible. */
static void test_two_migrators_are_serialized(void **state)
{
    (void)state;
    th_pg_t *pg = th_pg_start();
    char url[256];
    th_pg_url(pg, "tally_owner", url, sizeof(url));
    char *dir = copy_migrations("concurrent");
    write_file(dir, "9999_slow.sql",
               "CREATE TABLE it_slow (x int);\nSELECT pg_sleep(0.3);\nINSERT INTO it_slow "
               "VALUES (1);\n",
               "w");

    ctl_run_t a, b;
    ctl_start(&a, url, NULL, ARGS("migrate", "--dir", dir));
    ctl_start(&b, url, NULL, ARGS("migrate", "--dir", dir));
    ctl_wait(&a);
    ctl_wait(&b);
    if (a.status != 0 || b.status != 0)
        fail_msg("migrators failed: [%s] [%s]", a.err, b.err);
    int applied_core = (strstr(a.out, "applied 0001_core.sql") != NULL) +
                       (strstr(b.out, "applied 0001_core.sql") != NULL);
    int applied_slow = (strstr(a.out, "applied 9999_slow.sql") != NULL) +
                       (strstr(b.out, "applied 9999_slow.sql") != NULL);
    assert_int_equal(applied_core, 1);
    assert_int_equal(applied_slow, 1);
    printf("concurrent migrators:\n--- A\n%s--- B\n%s", a.out, b.out);
    ctl_clear(&a);
    ctl_clear(&b);
    assert_int_equal(th_pg_i64(pg, "postgres", "SELECT count(*) FROM it_slow"), 1);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT (count(*) = %d)::int FROM tally_schema_migrations",
             count_sql_files(dir));
    assert_int_equal(th_pg_i64(pg, "postgres", sql), 1);

    /* Hold the migrators' lock ourselves: a third one must wait for it. */
    PGconn *holder = th_pg_connect(pg, "tally_owner");
    PGresult *res = PQexec(holder, "SELECT pg_advisory_lock(8386659049788271975)");
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    PQclear(res);
    ctl_run_t c;
    ctl_start(&c, url, NULL, ARGS("migrate", "--dir", dir));
    bool waiting = false;
    for (int i = 0; i < 1000 && !waiting; i++) {
        char *out = slurp(c.out_path);
        waiting = strstr(out, "waiting for another migrator") != NULL;
        free(out);
        if (!waiting)
            usleep(10000);
    }
    assert_true(waiting);
    int st;
    assert_int_equal(waitpid(c.pid, &st, WNOHANG), 0); /* still blocked */
    PQfinish(holder);                                  /* releases the lock */
    ctl_wait(&c);
    assert_int_equal(c.status, 0);
    assert_non_null(strstr(c.out, "nothing to apply"));
    ctl_clear(&c);
    free(dir);
    th_pg_stop(pg);
}

static void test_usage_and_secrets(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    ctl_run_t r;
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--bogus")), 2);
    assert_non_null(strstr(r.err, "--bogus"));
    assert_non_null(strstr(r.err, "tallyctl migrate --help"));
    ctl_clear(&r);
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir")), 2);
    ctl_clear(&r);
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--help")), 0);
    assert_non_null(strstr(r.out, "usage: tallyctl migrate"));
    ctl_clear(&r);
    assert_int_equal(ctl(&r, NULL, NULL, ARGS("migrate", "--dir", migrations_dir())), 2);
    assert_non_null(strstr(r.err, "MIGRATION_DATABASE_URL"));
    ctl_clear(&r);

    /* DATABASE_URL is the fallback. */
    assert_int_equal(ctl(&r, NULL, f->owner_url, ARGS("migrate", "--dir", migrations_dir())), 0);
    assert_non_null(strstr(r.out, "nothing to apply"));
    ctl_clear(&r);

    /* MIGRATION_DATABASE_URL wins, and its password never shows. */
    char bad[256];
    snprintf(bad, sizeof(bad), "postgresql://tally_owner:pa55-w0rd-x@127.0.0.1:%d/tally",
             th_free_port());
    assert_int_equal(ctl(&r, bad, f->owner_url, ARGS("migrate", "--dir", migrations_dir())), 1);
    assert_non_null(strstr(r.err, "cannot connect"));
    assert_null(strstr(r.err, "pa55-w0rd-x"));
    assert_null(strstr(r.out, "pa55-w0rd-x"));
    ctl_clear(&r);
    assert_int_equal(ctl(&r, bad, NULL, ARGS("migrate", "--status", "--dir", migrations_dir())), 1);
    assert_null(strstr(r.err, "pa55-w0rd-x"));
    ctl_clear(&r);

    /* A directory that does not exist. */
    assert_int_equal(ctl(&r, f->owner_url, NULL, ARGS("migrate", "--dir", "/nonexistent/dir")), 1);
    assert_non_null(strstr(r.err, "/nonexistent/dir"));
    ctl_clear(&r);
}

/* Runs sql as role; returns its SQLSTATE ("" on success), malloc'd. */
static char *sqlstate_of(th_pg_t *pg, const char *role, const char *sql)
{
    PGconn *c = th_pg_connect(pg, role);
    PGresult *r = PQexec(c, sql);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    char *out = strdup(st != NULL ? st : "");
    PQclear(r);
    PQfinish(c);
    return out;
}

static void assert_denied(th_pg_t *pg, const char *sql)
{
    char *st = sqlstate_of(pg, "tally_worker", sql);
    if (strcmp(st, "42501") != 0)
        fail_msg("expected permission denied (42501) for [%s], got [%s]", sql, st);
    free(st);
}

static void test_tally_app_has_only_what_it_needs(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    th_pg_t *pg = f->pg;

    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM pg_roles WHERE rolname = 'tally_app' AND "
                               "NOT rolcanlogin AND NOT rolsuper AND NOT rolbypassrls AND NOT "
                               "rolcreaterole AND NOT rolcreatedb AND NOT rolreplication"),
                     1);
    /* No table-level rights beyond SELECT/INSERT/UPDATE/DELETE anywhere, and
     * no access to the bookkeeping of migrations. */
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                               "c.relnamespace WHERE n.nspname = 'public' AND c.relkind IN "
                               "('r','p','v','m','S') AND (has_table_privilege('tally_app', "
                               "c.oid, 'TRUNCATE') OR has_table_privilege('tally_app', c.oid, "
                               "'REFERENCES') OR has_table_privilege('tally_app', c.oid, "
                               "'TRIGGER'))"),
                     0);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT has_table_privilege('tally_app', "
                               "'tally_schema_migrations', 'SELECT')::int"),
                     0);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT has_schema_privilege('tally_app', 'public', 'CREATE')::int"),
                     0);
    /* The core tables: append-only audit, outcomes without DELETE and with
     * UPDATE on the response only. */
    assert_int_equal(
        th_pg_i64(pg, "postgres",
                  "SELECT (has_table_privilege('tally_app', 'payment_system_logs', 'SELECT') "
                  "AND has_table_privilege('tally_app', 'payment_system_logs', 'INSERT') "
                  "AND NOT has_table_privilege('tally_app', 'payment_system_logs', 'UPDATE') "
                  "AND NOT has_table_privilege('tally_app', 'payment_system_logs', 'DELETE') "
                  "AND has_table_privilege('tally_app', 'tally_request_outcomes', 'INSERT') "
                  "AND NOT has_table_privilege('tally_app', 'tally_request_outcomes', 'DELETE') "
                  "AND has_column_privilege('tally_app', 'tally_request_outcomes', 'response', "
                  "'UPDATE') AND NOT has_column_privilege('tally_app', "
                  "'tally_request_outcomes', 'account_id', 'UPDATE'))::int"),
        1);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT (has_function_privilege('tally_app', "
                               "'tally_prune_outcomes(integer)', 'EXECUTE') AND NOT "
                               "has_function_privilege('tally_app', "
                               "'tally_tenant_table(regclass, text)', 'EXECUTE'))::int"),
                     1);

    /* And the real thing, as the worker's login role. */
    assert_denied(pg, "TRUNCATE payment_system_logs");
    assert_denied(pg, "DELETE FROM payment_system_logs");
    assert_denied(pg, "UPDATE payment_system_logs SET type = type");
    assert_denied(pg, "DELETE FROM tally_request_outcomes");
    assert_denied(pg, "CREATE TABLE public.it_worker_table (x int)");
    assert_denied(pg, "ALTER TABLE payment_system_logs NO FORCE ROW LEVEL SECURITY");
    assert_denied(pg, "ALTER TABLE tally_request_outcomes DISABLE ROW LEVEL SECURITY");
    assert_denied(pg, "DROP POLICY tally_tenant ON payment_system_logs");
    assert_denied(pg, "SELECT * FROM tally_schema_migrations");
    assert_denied(pg, "SELECT tally_tenant_table('payment_system_logs', 'SELECT')");
    assert_denied(pg, "CREATE FUNCTION public.it_f() RETURNS int LANGUAGE sql RETURN 1");
    assert_denied(pg, "SET ROLE tally_owner");
}

/* Runs sql as tally_owner inside a transaction that is rolled back; returns
 * the error message ("" on success), malloc'd. */
static char *owner_try(th_pg_t *pg, const char *sql)
{
    PGconn *c = th_pg_connect(pg, "tally_owner");
    PQclear(PQexec(c, "BEGIN"));
    PGresult *r = PQexec(c, sql);
    char *msg = strdup(PQresultStatus(r) == PGRES_FATAL_ERROR
                           ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)
                           : "");
    PQclear(r);
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    return msg;
}

static void expect_refused(th_pg_t *pg, const char *sql, const char *needle)
{
    char *msg = owner_try(pg, sql);
    if (strstr(msg, needle) == NULL)
        fail_msg("expected an error with '%s' for [%s], got [%s]", needle, sql, msg);
    free(msg);
}

static void test_tenant_table_helper(void **state)
{
    fixture_t *f = *state;
    ensure_migrated(f);
    th_pg_t *pg = f->pg;
    expect_refused(pg,
                   "CREATE TABLE t (id text PRIMARY KEY);"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "account_id NOT NULL");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text, id text, PRIMARY KEY (id));"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "account_id NOT NULL");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text PRIMARY KEY);"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "must be part of constraint");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text, code text UNIQUE,"
                   " PRIMARY KEY (account_id, id));"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "must be part of constraint");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text, code text,"
                   " PRIMARY KEY (account_id, id)); CREATE UNIQUE INDEX ON t (code);"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "unique index");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text);"
                   "SELECT tally_tenant_table('t', 'SELECT')",
                   "primary key");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text,"
                   " PRIMARY KEY (account_id, id));"
                   "SELECT tally_tenant_table('t', 'SELECT, TRUNCATE')",
                   "privileges");
    expect_refused(pg,
                   "CREATE TABLE t (account_id text NOT NULL, id text,"
                   " PRIMARY KEY (account_id, id));"
                   "SELECT tally_tenant_table('t', 'SELECT ON t TO PUBLIC; --')",
                   "privileges");

    /* A good table comes out protected, with exactly the rights asked for. */
    char *msg = owner_try(
        pg,
        "CREATE TABLE t (account_id text NOT NULL, id text, status text,"
        " PRIMARY KEY (account_id, id));"
        "SELECT tally_tenant_table('t', 'select, UPDATE (status)');"
        "DO $$ BEGIN"
        "  IF NOT (SELECT relrowsecurity AND relforcerowsecurity FROM pg_class"
        "          WHERE oid = 't'::regclass) THEN RAISE EXCEPTION 'rls off'; END IF;"
        "  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = 't'::regclass"
        "                 AND polname = 'tally_tenant') THEN RAISE EXCEPTION 'no policy'; END IF;"
        "  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 't'::regclass"
        "                 AND conname = 'tally_account_id_format') THEN"
        "    RAISE EXCEPTION 'no format check'; END IF;"
        "  IF has_table_privilege('tally_app', 't', 'INSERT')"
        "     OR NOT has_table_privilege('tally_app', 't', 'SELECT')"
        "     OR NOT has_column_privilege('tally_app', 't', 'status', 'UPDATE')"
        "     OR has_column_privilege('tally_app', 't', 'id', 'UPDATE') THEN"
        "    RAISE EXCEPTION 'wrong privileges'; END IF;"
        "END $$;"
        "SELECT set_config('app.account_id', 'bad account!', true);"
        "INSERT INTO t VALUES ('bad account!', 'x')");
    if (strstr(msg, "tally_account_id_format") == NULL)
        fail_msg("expected the format check to refuse the row, got [%s]", msg);
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_then_noop),
        cmocka_unit_test(test_checksums_recorded),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_edited_applied_file_is_refused),
        cmocka_unit_test(test_failing_file_is_rolled_back),
        cmocka_unit_test(test_out_of_order_is_refused),
        cmocka_unit_test(test_transaction_control_is_refused),
        cmocka_unit_test(test_half_commit_is_refused_and_the_message_true),
        cmocka_unit_test(test_two_migrators_are_serialized),
        cmocka_unit_test(test_usage_and_secrets),
        cmocka_unit_test(test_tally_app_has_only_what_it_needs),
        cmocka_unit_test(test_tenant_table_helper),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
