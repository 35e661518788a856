/* th_internal — what the harness modules share and tests do not see:
 * spawning children that cannot outlive the test process, stopping them by
 * PID, the per-process directory, the registry of live services that is
 * cleaned up at exit, and the service logs printed when the process fails.
 *
 * Registry and directory are process-wide state on purpose: the exit hook
 * must find every service a failing test left behind. */
#ifndef TALLY_TESTS_TH_INTERNAL_H
#define TALLY_TESTS_TH_INTERNAL_H

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* cmocka's headers need these first. */
#include <setjmp.h>
#include <cmocka.h>

typedef struct th_spawn {
    const char *path;  /* executable */
    char *const *argv; /* argv[0] included, NULL-terminated */
    char *const *envp; /* NULL: the current environment */
    const char *cwd;   /* NULL: unchanged */
    int stdin_fd;      /* -1: /dev/null */
    int stdout_fd;     /* -1: /dev/null */
    int stderr_fd;     /* -1: /dev/null */
    bool as_postgres;  /* drop to the postgres OS user when root */
} th_spawn_t;

/* Forks and execs. The child gets PR_SET_PDEATHSIG(SIGKILL) (after any
 * credential change, which would clear it) and exits at once if the parent
 * is already gone. Returns the PID, or -1 with a message in err. */
pid_t th_spawn(const th_spawn_t *s, char *err, size_t errsize);

/* Spawns and waits for the child to exit; fails the test if it cannot be
 * started or runs longer than timeout_ms (it is killed). Returns the waitpid
 * status. */
int th_run(const th_spawn_t *s, int timeout_ms);

/* Waits up to timeout_ms for pid to exit; true with *status set when it did. */
bool th_proc_wait(pid_t pid, int timeout_ms, int *status);

/* Sends sig, waits up to timeout_ms, then SIGKILLs and reaps. Returns the
 * waitpid status. Never fails the test. */
int th_proc_stop(pid_t pid, int sig, int timeout_ms);

/* Human text for a waitpid status ("exit 1", "signal 9"). */
const char *th_status_str(int status, char *buf, size_t size);

/* When root, the postgres user's uid/gid (fails the test if there is none).
 * Returns false when not root (services then run as the current user). */
bool th_postgres_ids(uid_t *uid, gid_t *gid);

/* Whether the postgres OS user can reach into dir (always true when not
 * root); what it needs inside is created for it and chowned. */
bool th_postgres_can_use(const char *dir);

/* Creates th_tmpdir()/<name>-<n>.log (n unique in the process), registers
 * it as a log whose tail is printed if the process exits non-zero, and
 * returns a write descriptor (cloexec) with the malloc'd path in *path.
 * Fails the test on error. */
int th_open_log(const char *name, char **path);

/* Prints the last lines of a file on stderr, framed with the label. */
void th_print_tail(const char *label, const char *path, int lines);

/* Registers obj for stopping at exit; the stop function must not fail the
 * test. Unregister before freeing obj. */
void th_register(void *obj, void (*stop)(void *obj));
void th_unregister(void *obj);

/* With TALLY_TEST_HOLD_MS set, sleeps that long after a service started, so
 * that the interrupt test (tests/scripts/interrupt.sh) can hit a run while
 * its services are up. No-op otherwise. */
void th_hold_point(const char *what);

/* mkdir -p (mode 0755); returns 0 or -1. */
int th_mkdir_p(const char *path);

/* rm -rf; returns 0 or -1. */
int th_rmtree(const char *path);

/* Milliseconds on the monotonic clock; sleep helper. */
int64_t th_now_ms(void);
void th_sleep_ms(int ms);

/* Getenv that fails the test when the variable is unset or empty. */
const char *th_env_required(const char *name);

/* Formats into a malloc'd string (never NULL: fails the test on OOM). */
char *th_strdupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A copy of the current environment with the entries of extra ("KEY=VALUE",
 * NULL-terminated, may be NULL) replacing those with the same key. Free with
 * th_env_free. */
char **th_env_with(const char *const *extra);
void th_env_free(char **env);

/* Builds the PostgreSQL template cluster if it is absent or stale (the CTest
 * fixture calls it once, before the tests that copy it). */
void th_pg_template_ensure(void);

/* For th_standby.c: a server instance with its directory (owned by the
 * postgres user), log and free port but no data directory yet, registered
 * for stopping at exit; its data directory's path; starting the server on
 * it (a hot standby counts as started once it takes connections); running a
 * PostgreSQL tool as the postgres user into its log (fails the test unless
 * it exits 0); a tool's path (malloc'd) in TALLY_PG_BINDIR. */
typedef struct th_pg th_pg_t;
th_pg_t *th_pg_instance(void);
/* A connection as role to the database "tally" on 127.0.0.1:port (a server
 * or a pooler in front of one); fails the test otherwise. */
PGconn *th_pg_connect_port(int port, const char *role);
const char *th_pg_datadir(const th_pg_t *pg);
void th_pg_launch(th_pg_t *pg);
void th_pg_run_tool(th_pg_t *pg, char *const *argv);
char *th_pg_bin(const char *tool);

#endif
