/* th_pgbouncer — Debian's PgBouncer in front of a test's PostgreSQL.
 *
 * PgBouncer refuses to run as root, so it runs as the postgres OS user like
 * the server (its files in a directory that user can reach). It is our
 * direct child, in the foreground, logging to stderr (the harness log), and
 * is stopped by PID. */
#include "harness.h"
#include "th_internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define DEFAULT_BIN      "/usr/sbin/pgbouncer"
#define READY_TIMEOUT_MS 30000
#define STOP_TIMEOUT_MS  15000
#define SHARED_BASE      "/tmp"

struct th_pgbouncer {
    char *dir; /* pgbouncer.ini, userlist.txt */
    char *logpath;
    int logfd;
    int port;
    pid_t pid;
};

static const char *bin(void)
{
    const char *b = getenv("TALLY_PGBOUNCER_BIN");
    return b != NULL && *b != '\0' ? b : DEFAULT_BIN;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        fail_msg("harness: cannot write %s: %s", path, strerror(errno));
    uid_t uid;
    gid_t gid;
    if (th_postgres_ids(&uid, &gid) && chown(path, uid, gid) != 0)
        fail_msg("harness: chown %s: %s", path, strerror(errno));
}

/* pgbouncer.ini for pb->port in front of pg (see harness.h for the settings). */
static void write_config(th_pgbouncer_t *pb, const th_pg_t *pg, const th_pgbouncer_config_t *cfg)
{
    char *ini = th_strdupf("%s/pgbouncer.ini", pb->dir);
    char *users = th_strdupf("%s/userlist.txt", pb->dir);
    char *text = th_strdupf("[databases]\n"
                            "tally = host=127.0.0.1 port=%d dbname=tally\n"
                            "[pgbouncer]\n"
                            "listen_addr = 127.0.0.1\n"
                            "listen_port = %d\n"
                            "unix_socket_dir =\n"
                            "auth_type = trust\n"
                            "auth_file = %s\n"
                            "pool_mode = %s\n"
                            "default_pool_size = %d\n"
                            "min_pool_size = 0\n"
                            "reserve_pool_size = 0\n"
                            "max_client_conn = %d\n"
                            "server_login_retry = 1\n"
                            "log_connections = 0\n"
                            "log_disconnections = 0\n",
                            th_pg_port(pg), pb->port, users,
                            cfg->pool_mode != NULL ? cfg->pool_mode : "transaction",
                            cfg->default_pool_size > 0 ? cfg->default_pool_size : 4,
                            cfg->max_client_conn > 0 ? cfg->max_client_conn : 200);
    write_file(ini, text);
    /* Trust authentication still wants every role listed. */
    write_file(users, "\"postgres\" \"\"\n\"tally_owner\" \"\"\n\"tally_worker\" \"\"\n");
    free(text);
    free(users);
    free(ini);
}

/* Starts pgbouncer on pb->port; false if it exited before answering
 * (typically: the port was taken). */
static bool try_start(th_pgbouncer_t *pb)
{
    char *ini = th_strdupf("%s/pgbouncer.ini", pb->dir);
    char *argv[] = {(char *)bin(), ini, NULL};
    th_spawn_t s = {.path = argv[0],
                    .argv = argv,
                    .cwd = pb->dir,
                    .stdin_fd = -1,
                    .stdout_fd = pb->logfd,
                    .stderr_fd = pb->logfd,
                    .as_postgres = true};
    char err[256];
    pb->pid = th_spawn(&s, err, sizeof(err));
    free(ini);
    if (pb->pid < 0)
        fail_msg("harness: %s (install pgbouncer: scripts/install-deps.sh)", err);
    char conninfo[160];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=tally connect_timeout=2", pb->port);
    int64_t deadline = th_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int status;
        if (waitpid(pb->pid, &status, WNOHANG) == pb->pid) {
            pb->pid = 0;
            return false;
        }
        if (PQping(conninfo) == PQPING_OK)
            return true;
        if (th_now_ms() >= deadline) {
            th_proc_stop(pb->pid, SIGKILL, 1000);
            pb->pid = 0;
            th_print_tail("pgbouncer log", pb->logpath, 40);
            fail_msg("harness: pgbouncer did not answer in time (log: %s)", pb->logpath);
        }
        th_sleep_ms(20);
    }
}

static void stop_cb(void *obj)
{
    th_pgbouncer_stop(obj);
}

th_pgbouncer_t *th_pgbouncer_start(const th_pg_t *pg, const th_pgbouncer_config_t *cfg)
{
    th_pgbouncer_config_t none = {0};
    if (cfg == NULL)
        cfg = &none;
    th_pgbouncer_t *pb = calloc(1, sizeof(*pb));
    if (pb == NULL)
        fail_msg("harness: out of memory");
    const char *base = th_postgres_can_use(th_tmpdir()) ? th_tmpdir() : SHARED_BASE;
    pb->dir = th_strdupf("%s/tally-pgb-%d-XXXXXX", base, (int)getpid());
    if (mkdtemp(pb->dir) == NULL)
        fail_msg("harness: mkdtemp %s: %s", pb->dir, strerror(errno));
    uid_t uid;
    gid_t gid;
    if (th_postgres_ids(&uid, &gid) && chown(pb->dir, uid, gid) != 0)
        fail_msg("harness: chown %s: %s", pb->dir, strerror(errno));
    pb->logfd = th_open_log("pgbouncer", &pb->logpath);
    th_register(pb, stop_cb);
    for (int attempt = 1;; attempt++) {
        pb->port = th_free_port();
        write_config(pb, pg, cfg);
        if (try_start(pb))
            break;
        if (attempt == 3) {
            th_print_tail("pgbouncer log", pb->logpath, 40);
            fail_msg("harness: pgbouncer exited during start-up (log: %s)", pb->logpath);
        }
    }
    th_hold_point("pgbouncer");
    return pb;
}

void th_pgbouncer_stop(th_pgbouncer_t *pb)
{
    if (pb == NULL)
        return;
    th_unregister(pb);
    if (pb->pid > 0)
        th_proc_stop(pb->pid, SIGTERM, STOP_TIMEOUT_MS); /* immediate shutdown */
    th_rmtree(pb->dir);
    close(pb->logfd);
    free(pb->dir);
    free(pb->logpath);
    free(pb);
}

int th_pgbouncer_port(const th_pgbouncer_t *pb)
{
    return pb->port;
}

pid_t th_pgbouncer_pid(const th_pgbouncer_t *pb)
{
    return pb->pid;
}

void th_pgbouncer_url(const th_pgbouncer_t *pb, const char *role, char *out, size_t size)
{
    snprintf(out, size, "postgresql://%s@127.0.0.1:%d/tally", role, pb->port);
}

PGconn *th_pgbouncer_connect(const th_pgbouncer_t *pb, const char *role)
{
    return th_pg_connect_port(pb->port, role);
}
