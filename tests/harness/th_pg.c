/* th_pg — a private PostgreSQL 15 per test.
 *
 * initdb is the slow part (seconds), so the first caller builds a template
 * cluster (roles and database included) under a file lock and every server
 * after that starts from a copy of it. The postmaster is our direct child so
 * that it can be stopped by PID and dies with the test process. */
#include "harness.h"
#include "th_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* Bump when what the template contains changes: stale templates are rebuilt. */
#define TEMPLATE_STAMP   "tally pg-template 1: roles postgres tally_owner tally_worker, db tally\n"
#define DEFAULT_BINDIR   "/usr/lib/postgresql/15/bin"
#define READY_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS  60000
#define TOOL_TIMEOUT_MS  180000
#define SHARED_BASE      "/tmp"
#define INSTANCE_PREFIX  "tally-pg-" /* + "<test pid>-XXXXXX" */

struct th_pg {
    char *dir;     /* instance directory: data/ and the Unix socket */
    char *datadir; /* dir/data */
    char *logpath;
    int logfd;
    int port;
    pid_t pid;    /* 0 while halted */
    bool durable; /* th_pg_start_durable: PostgreSQL's own fsync settings */
};

static const char *bindir(void)
{
    const char *d = getenv("TALLY_PG_BINDIR");
    return d != NULL && *d != '\0' ? d : DEFAULT_BINDIR;
}

static char *bin(const char *tool)
{
    return th_strdupf("%s/%s", bindir(), tool);
}

/* Removes instance directories in /tmp whose test process is gone (it was
 * killed before it could clean up): they hold whole clusters. */
static void sweep_stale_instances(void)
{
    DIR *d = opendir(SHARED_BASE);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        char rest[64];
        if (sscanf(e->d_name, INSTANCE_PREFIX "%d-%63s", &pid, rest) != 2 || pid <= 0 ||
            kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        char *path = th_strdupf("%s/%s", SHARED_BASE, e->d_name);
        th_rmtree(path);
        free(path);
    }
    closedir(d);
}

/* Where instance directories go: the test directory if the postgres user can
 * reach it (a clone under a 0700 home cannot be), else /tmp. Decided once. */
static const char *instance_base(void)
{
    static const char *base;
    if (base == NULL) {
        const char *tmp = th_tmpdir();
        bool reachable = th_postgres_can_use(tmp);
        base = reachable ? tmp : SHARED_BASE;
        if (!reachable)
            sweep_stale_instances();
    }
    return base;
}

static void give_to_postgres(const char *path)
{
    uid_t uid;
    gid_t gid;
    if (th_postgres_ids(&uid, &gid) && chown(path, uid, gid) != 0)
        fail_msg("harness: chown %s to postgres: %s", path, strerror(errno));
}

static th_pg_t *instance_new(void)
{
    th_pg_t *pg = calloc(1, sizeof(*pg));
    if (pg == NULL)
        fail_msg("harness: out of memory");
    pg->dir = th_strdupf("%s/" INSTANCE_PREFIX "%d-XXXXXX", instance_base(), (int)getpid());
    if (mkdtemp(pg->dir) == NULL)
        fail_msg("harness: mkdtemp %s: %s", pg->dir, strerror(errno));
    give_to_postgres(pg->dir);
    pg->datadir = th_strdupf("%s/data", pg->dir);
    pg->logfd = th_open_log("postgres", &pg->logpath);
    pg->port = th_free_port();
    return pg;
}

static void instance_free(th_pg_t *pg)
{
    if (pg->logfd >= 0)
        close(pg->logfd);
    free(pg->dir);
    free(pg->datadir);
    free(pg->logpath);
    free(pg);
}

static void fail_with_log(const th_pg_t *pg, const char *what)
{
    th_print_tail("postgres log", pg->logpath, 40);
    fail_msg("harness: %s (log: %s)", what, pg->logpath);
}

static th_spawn_t as_postgres(th_pg_t *pg, char *const *argv)
{
    return (th_spawn_t){.path = argv[0],
                        .argv = argv,
                        .cwd = pg->dir,
                        .stdin_fd = -1,
                        .stdout_fd = pg->logfd,
                        .stderr_fd = pg->logfd,
                        .as_postgres = true};
}

/* Runs a PostgreSQL tool as the postgres user to completion. */
static void run_tool(th_pg_t *pg, char *const *argv)
{
    th_spawn_t s = as_postgres(pg, argv);
    int status = th_run(&s, TOOL_TIMEOUT_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char buf[64], msg[160];
        snprintf(msg, sizeof(msg), "%s failed: %s", argv[0],
                 th_status_str(status, buf, sizeof(buf)));
        fail_with_log(pg, msg);
    }
}

static void initdb(th_pg_t *pg)
{
    if (mkdir(pg->datadir, 0700) != 0)
        fail_msg("harness: mkdir %s: %s", pg->datadir, strerror(errno));
    give_to_postgres(pg->datadir);
    char *tool = bin("initdb");
    char *argv[] = {tool,       "-D", pg->datadir, "--nosync",    "--auth=trust",      "-U",
                    "postgres", "-E", "UTF8",      "--no-locale", "--no-instructions", NULL};
    run_tool(pg, argv);
    free(tool);
}

/* Reads postmaster.pid: the server is up once it names our child, our port and
 * the status "ready". Checking the file, not only PQping, guarantees we are
 * not talking to another test's server that took the port first. */
static bool pidfile_ready(const th_pg_t *pg)
{
    char *path = th_strdupf("%s/postmaster.pid", pg->datadir);
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL)
        return false;
    char line[1024];
    long fields[2] = {0, 0}; /* pid (line 1), port (line 4) */
    bool ready = false;
    for (int n = 1; fgets(line, sizeof(line), f) != NULL; n++) {
        if (n == 1)
            fields[0] = strtol(line, NULL, 10);
        else if (n == 4)
            fields[1] = strtol(line, NULL, 10);
        else if (n == 8) /* a hot standby says "standby" once it takes connections */
            ready = strncmp(line, "ready", 5) == 0 || strncmp(line, "standby", 7) == 0;
    }
    fclose(f);
    return ready && fields[0] == pg->pid && fields[1] == pg->port;
}

/* Starts the postmaster on pg->port. Returns false if it exited before it was
 * ready (typically: the port was taken), true when it accepts connections. */
static bool try_start(th_pg_t *pg)
{
    char *tool = bin("postgres");
    char port[16];
    snprintf(port, sizeof(port), "%d", pg->port);
    /* A Unix socket path must fit in sun_path; tests use TCP anyway. */
    struct sockaddr_un sun;
    const char *sockdir =
        strlen(pg->dir) + sizeof("/.s.PGSQL.65535") <= sizeof(sun.sun_path) ? pg->dir : "";
    char *argv[] = {tool,
                    "-D",
                    pg->datadir,
                    "-p",
                    port,
                    "-k",
                    (char *)sockdir,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    NULL};
    if (pg->durable)
        argv[9] = NULL; /* the server's defaults: fsync, synchronous_commit, full_page_writes on */
    char err[256];
    th_spawn_t s = as_postgres(pg, argv);
    pg->pid = th_spawn(&s, err, sizeof(err));
    free(tool);
    if (pg->pid < 0) {
        pg->pid = 0;
        fail_msg("harness: %s", err);
    }
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=2", pg->port);
    int64_t deadline = th_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(pg->pid, &status, WNOHANG) == pg->pid) {
            pg->pid = 0;
            return false;
        }
        if (pidfile_ready(pg) && PQping(conninfo) == PQPING_OK)
            return true;
        if (th_now_ms() >= deadline) {
            th_proc_stop(pg->pid, SIGKILL, 1000);
            pg->pid = 0;
            fail_with_log(pg, "PostgreSQL did not become ready in time");
        }
        th_sleep_ms(10);
    }
}

static void start_server(th_pg_t *pg, bool may_change_port)
{
    for (int attempt = 1; !try_start(pg); attempt++) {
        if (!may_change_port || attempt == 3)
            fail_with_log(pg, "PostgreSQL exited during start-up");
        pg->port = th_free_port();
    }
}

static void stop_server(th_pg_t *pg)
{
    if (pg->pid <= 0)
        return;
    /* SIGINT = fast shutdown: roll back sessions, checkpoint, exit. */
    int status = th_proc_stop(pg->pid, SIGINT, STOP_TIMEOUT_MS);
    pg->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char buf[64];
        fprintf(stderr, "harness: postgres on port %d stopped with %s\n", pg->port,
                th_status_str(status, buf, sizeof(buf)));
    }
}

static void exec_or_fail(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        fail_msg("harness: `%.200s` failed: %s", sql, msg);
    }
    PQclear(r);
}

/* Roles and database per harness.h; the server runs, as postgres. */
static void create_roles(th_pg_t *pg)
{
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=10", pg->port);
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("harness: connect as postgres: %s", msg);
    }
    exec_or_fail(c, "CREATE ROLE tally_owner LOGIN CREATEROLE NOSUPERUSER NOBYPASSRLS");
    exec_or_fail(c, "CREATE ROLE tally_worker LOGIN NOSUPERUSER NOBYPASSRLS");
    exec_or_fail(c, "CREATE DATABASE tally OWNER tally_owner");
    PQfinish(c);
}

/* cp -a as the current user: root's copy keeps the postgres ownership. */
static void copy_tree(const char *from, const char *to)
{
    char *argv[] = {"/bin/cp", "-a", (char *)from, (char *)to, NULL};
    th_spawn_t s = {.path = argv[0], .argv = argv, .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = 2};
    int status = th_run(&s, TOOL_TIMEOUT_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("harness: cp -a %s %s failed", from, to);
}

static char *template_path(void)
{
    const char *t = getenv("TALLY_PG_TEMPLATE");
    if (t != NULL && *t != '\0')
        return strdup(t);
    const char *base = getenv("TALLY_TEST_TMPDIR");
    if (base == NULL || *base == '\0')
        return NULL;
    return th_strdupf("%s/pg-template", base);
}

static bool template_current(const char *path)
{
    char *stamp = th_strdupf("%s/STAMP", path);
    FILE *f = fopen(stamp, "r");
    free(stamp);
    if (f == NULL)
        return false;
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strcmp(buf, TEMPLATE_STAMP) == 0;
}

/* Builds path from scratch: a fresh cluster with the roles, shut down
 * cleanly, copied next to path and renamed into place (readers never see a
 * half-made template). The caller holds the lock. */
static void template_build(const char *path)
{
    th_pg_t *pg = instance_new();
    initdb(pg);
    start_server(pg, true);
    create_roles(pg);
    stop_server(pg);
    char *tmp = th_strdupf("%s.tmp-%d", path, (int)getpid());
    th_rmtree(tmp);
    if (mkdir(tmp, 0755) != 0)
        fail_msg("harness: mkdir %s: %s", tmp, strerror(errno));
    char *tmpdata = th_strdupf("%s/data", tmp);
    copy_tree(pg->datadir, tmpdata);
    char *stamp = th_strdupf("%s/STAMP", tmp);
    FILE *f = fopen(stamp, "w");
    if (f == NULL || fputs(TEMPLATE_STAMP, f) < 0 || fclose(f) != 0)
        fail_msg("harness: cannot write %s", stamp);
    if (th_rmtree(path) != 0 || rename(tmp, path) != 0)
        fail_msg("harness: cannot move the template into %s: %s", path, strerror(errno));
    th_rmtree(pg->dir);
    free(stamp);
    free(tmpdata);
    free(tmp);
    instance_free(pg);
}

/* Returns the template's path (malloc'd), building it if absent or stale, or
 * NULL when no template location is configured. */
static char *template_ensure(void)
{
    char *path = template_path();
    if (path == NULL)
        return NULL;
    char *parent = strdup(path);
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        if (th_mkdir_p(parent) != 0)
            fail_msg("harness: cannot create %s: %s", parent, strerror(errno));
    }
    free(parent);
    char *lock = th_strdupf("%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("harness: open %s: %s", lock, strerror(errno));
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    if (!template_current(path))
        template_build(path);
    close(fd); /* releases the lock */
    free(lock);
    return path;
}

/* Used by the CTest fixture that builds the template before the tests. */
void th_pg_template_ensure(void)
{
    char *path = template_ensure();
    if (path == NULL)
        fail_msg("harness: neither TALLY_PG_TEMPLATE nor TALLY_TEST_TMPDIR is set");
    free(path);
}

static void stop_cb(void *obj)
{
    th_pg_stop(obj);
}

static th_pg_t *start(bool durable)
{
    char *template = template_ensure();
    th_pg_t *pg = instance_new();
    pg->durable = durable;
    if (template != NULL) {
        char *from = th_strdupf("%s/data", template);
        copy_tree(from, pg->datadir);
        give_to_postgres(pg->datadir);
        free(from);
        free(template);
    } else {
        initdb(pg);
    }
    th_register(pg, stop_cb);
    start_server(pg, true);
    if (template == NULL)
        create_roles(pg);
    th_hold_point("postgres");
    return pg;
}

th_pg_t *th_pg_start(void)
{
    return start(false);
}

th_pg_t *th_pg_start_durable(void)
{
    return start(true);
}

void th_pg_stop(th_pg_t *pg)
{
    if (pg == NULL)
        return;
    th_unregister(pg);
    stop_server(pg);
    if (th_rmtree(pg->dir) != 0)
        fprintf(stderr, "harness: could not remove %s\n", pg->dir);
    instance_free(pg);
}

void th_pg_halt(th_pg_t *pg)
{
    if (pg->pid <= 0)
        fail_msg("harness: th_pg_halt: the server is not running");
    stop_server(pg);
}

void th_pg_resume(th_pg_t *pg)
{
    if (pg->pid > 0)
        fail_msg("harness: th_pg_resume: the server is already running");
    start_server(pg, false);
}

int th_pg_port(const th_pg_t *pg)
{
    return pg->port;
}

void th_pg_url(const th_pg_t *pg, const char *role, char *out, size_t size)
{
    snprintf(out, size, "postgresql://%s@127.0.0.1:%d/tally", role, pg->port);
}

PGconn *th_pg_connect_port(int port, const char *role)
{
    char conninfo[256];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=%s dbname=tally connect_timeout=10", port, role);
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("harness: connect as %s to port %d: %s", role, port, msg);
    }
    return c;
}

PGconn *th_pg_connect(const th_pg_t *pg, const char *role)
{
    return th_pg_connect_port(pg->port, role);
}

void th_pg_exec(const th_pg_t *pg, const char *role, const char *sql)
{
    PGconn *c = th_pg_connect(pg, role);
    exec_or_fail(c, sql);
    PQfinish(c);
}

/* Runs sql, returns the first value as a malloc'd string or NULL. */
static char *first_value(const th_pg_t *pg, const char *role, const char *sql, bool *is_null)
{
    PGconn *c = th_pg_connect(pg, role);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) < 1 || PQnfields(r) < 1) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s",
                 PQresultStatus(r) == PGRES_TUPLES_OK ? "no row" : PQresultErrorMessage(r));
        PQclear(r);
        PQfinish(c);
        fail_msg("harness: `%.200s` as %s: %s", sql, role, msg);
    }
    *is_null = PQgetisnull(r, 0, 0);
    char *v = *is_null ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

int64_t th_pg_i64(const th_pg_t *pg, const char *role, const char *sql)
{
    bool is_null;
    char *v = first_value(pg, role, sql, &is_null);
    if (is_null)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    bool ok = errno == 0 && end != v && *end == '\0';
    char copy[64];
    snprintf(copy, sizeof(copy), "%s", v);
    free(v);
    if (!ok)
        fail_msg("harness: `%.200s` returned '%s', not an integer", sql, copy);
    return n;
}

char *th_pg_text(const th_pg_t *pg, const char *role, const char *sql)
{
    bool is_null;
    return first_value(pg, role, sql, &is_null);
}

void th_pg_migrate(th_pg_t *pg)
{
    const char *ctl = th_env_required("TALLYCTL_BIN");
    char url[256];
    th_pg_url(pg, "tally_owner", url, sizeof(url));
    char *kv = th_strdupf("MIGRATION_DATABASE_URL=%s", url);
    const char *extra[] = {kv, NULL};
    char **env = th_env_with(extra);
    char *logpath;
    int logfd = th_open_log("migrate", &logpath);
    char *argv[] = {(char *)ctl, "migrate", NULL};
    char err[256];
    th_spawn_t s = {.path = ctl,
                    .argv = argv,
                    .envp = env,
                    .stdin_fd = -1,
                    .stdout_fd = logfd,
                    .stderr_fd = logfd};
    pid_t pid = th_spawn(&s, err, sizeof(err));
    close(logfd);
    th_env_free(env);
    free(kv);
    if (pid < 0)
        fail_msg("harness: %s", err);
    int status;
    if (!th_proc_wait(pid, TOOL_TIMEOUT_MS, &status)) {
        th_proc_stop(pid, SIGKILL, 1000);
        fail_msg("harness: tallyctl migrate did not finish in time");
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char buf[64];
        th_print_tail("tallyctl migrate output", logpath, 40);
        free(logpath);
        fail_msg("harness: tallyctl migrate failed: %s", th_status_str(status, buf, sizeof(buf)));
    }
    free(logpath);
    th_pg_exec(pg, "tally_owner", "GRANT tally_app TO tally_worker");
}

void th_pg_crash(th_pg_t *pg)
{
    if (pg->pid <= 0)
        fail_msg("harness: th_pg_crash: the server is not running");
    /* SIGQUIT = immediate shutdown: no checkpoint, clients cut off. */
    th_proc_stop(pg->pid, SIGQUIT, STOP_TIMEOUT_MS);
    pg->pid = 0;
}

/* ---- for th_standby.c (th_internal.h) ------------------------------------ */

th_pg_t *th_pg_instance(void)
{
    th_pg_t *pg = instance_new();
    th_register(pg, stop_cb);
    return pg;
}

const char *th_pg_datadir(const th_pg_t *pg)
{
    return pg->datadir;
}

void th_pg_launch(th_pg_t *pg)
{
    start_server(pg, true);
}

void th_pg_run_tool(th_pg_t *pg, char *const *argv)
{
    run_tool(pg, argv);
}

char *th_pg_bin(const char *tool)
{
    return bin(tool);
}
