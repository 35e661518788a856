/* harness — real services for integration tests.
 *
 * A private PostgreSQL 15 (initdb in a temporary directory, as the postgres
 * OS user when run as root, on a free loopback port, fsync off), the embedded
 * Kafka broker (`tallyctl broker`), tally-worker processes, and small Kafka
 * and PostgreSQL client helpers.
 *
 * Every child process is started with PR_SET_PDEATHSIG(SIGKILL), so nothing
 * outlives a test that crashes or is interrupted, and is stopped by its PID.
 * The death signal follows the *thread* that started the child: start
 * services from the test's main thread, not from a thread that ends first.
 * Every function fails the running cmocka test (fail_msg) instead of
 * returning an error, and the services' logs are printed when a test fails.
 *
 * Paths come from the environment that CTest sets: TALLY_WORKER_BIN,
 * TALLYCTL_BIN, TALLY_MIGRATIONS_DIR, TALLY_TEST_TMPDIR, and
 * TALLY_PG_TEMPLATE (the template cluster that servers are copied from,
 * built once, under a lock, by the fixture test fixture.pg_template or the
 * first test that needs it; default $TALLY_TEST_TMPDIR/pg-template, and
 * without either variable each server runs initdb). TALLY_PG_BINDIR
 * overrides /usr/lib/postgresql/15/bin. TALLY_TEST_HOLD_MS makes every
 * service start pause that long (the interrupt test's hook).
 *
 * Running one test by hand: `ctest --test-dir build -R it_name -V`, or the
 * binary with those variables set. Logs of a failed run stay in its
 * th_tmpdir(). */
#ifndef TALLY_TESTS_HARNESS_H
#define TALLY_TESTS_HARNESS_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- PostgreSQL ------------------------------------------------------- */

typedef struct th_pg th_pg_t;

/* Starts a private server with a database "tally" and the login roles
 * "postgres" (superuser, for assertions), "tally_owner" (owns the database,
 * CREATEROLE, not a superuser: runs migrations) and "tally_worker" (no rights
 * until th_pg_migrate). Trust authentication on 127.0.0.1 only. */
th_pg_t *th_pg_start(void);

/* The same with PostgreSQL's durable defaults (fsync, synchronous_commit and
 * full_page_writes on), for the benchmark's durable runs. */
th_pg_t *th_pg_start_durable(void);

/* Fast shutdown, then removes the data directory. NULL is ignored. */
void th_pg_stop(th_pg_t *pg);

/* Stops the server keeping its data (outage tests), and starts it again on
 * the same port. */
void th_pg_halt(th_pg_t *pg);
void th_pg_resume(th_pg_t *pg);

/* Immediate shutdown (SIGQUIT: no checkpoint, every client cut off), as
 * when the machine under it fails; the data stays. */
void th_pg_crash(th_pg_t *pg);

int th_pg_port(const th_pg_t *pg);

/* ---- Streaming standby (th_standby.c) ---------------------------------- */

/* A hot standby of primary on its own free port: pg_basebackup -R from it
 * (so the same roles and database), started and streaming. With
 * synchronous, the primary then gets synchronous_standby_names = '*' (only
 * the primary: once promoted, the standby waits for no one) and the call
 * returns once the standby is its synchronous one; a commit of a session
 * with synchronous_commit = on is then acknowledged only after the standby
 * flushed it. Stop it with th_pg_stop; the th_pg_* helpers work on it. */
th_pg_t *th_standby_start(th_pg_t *primary, bool synchronous);

/* pg_ctl promote (waits until the standby accepts writes). */
void th_standby_promote(th_pg_t *standby);

/* Writes "postgresql://<role>@127.0.0.1:<port>/tally" into out. */
void th_pg_url(const th_pg_t *pg, const char *role, char *out, size_t size);

/* A new connection as role; the caller PQfinish()es it. */
PGconn *th_pg_connect(const th_pg_t *pg, const char *role);

/* Runs sql as role and fails the test on error. */
void th_pg_exec(const th_pg_t *pg, const char *role, const char *sql);

/* Runs sql as role; returns the first column of the first row as an integer
 * (0 when NULL) or as a malloc'd string (NULL when NULL). */
int64_t th_pg_i64(const th_pg_t *pg, const char *role, const char *sql);
char *th_pg_text(const th_pg_t *pg, const char *role, const char *sql);

/* Runs `tallyctl migrate` as tally_owner, then grants tally_app to tally_worker. */
void th_pg_migrate(th_pg_t *pg);

/* ---- PgBouncer (th_pgbouncer.c) ---------------------------------------- */

typedef struct th_pgbouncer th_pgbouncer_t;

/* Zeroes take the defaults. */
typedef struct th_pgbouncer_config {
    const char *pool_mode; /* "transaction" (default), "session" or "statement" */
    int default_pool_size; /* server connections per role; default 4 */
    int max_client_conn;   /* default 200 */
} th_pgbouncer_config_t;

/* Starts Debian's pgbouncer (TALLY_PGBOUNCER_BIN overrides
 * /usr/sbin/pgbouncer) on a free loopback port in front of pg's database
 * "tally", as the postgres OS user when run as root (PgBouncer refuses
 * root), with trust authentication for the roles postgres, tally_owner and
 * tally_worker, no reserve pool and its log in the harness logs. cfg may be
 * NULL. */
th_pgbouncer_t *th_pgbouncer_start(const th_pg_t *pg, const th_pgbouncer_config_t *cfg);

/* Immediate shutdown (SIGTERM); removes its files. NULL is ignored. */
void th_pgbouncer_stop(th_pgbouncer_t *pb);

int th_pgbouncer_port(const th_pgbouncer_t *pb);
pid_t th_pgbouncer_pid(const th_pgbouncer_t *pb);

/* Writes "postgresql://<role>@127.0.0.1:<port>/tally" (through the pooler). */
void th_pgbouncer_url(const th_pgbouncer_t *pb, const char *role, char *out, size_t size);

/* A new connection through the pooler; the caller PQfinish()es it. */
PGconn *th_pgbouncer_connect(const th_pgbouncer_t *pb, const char *role);

/* ---- Embedded Kafka broker ------------------------------------------- */

typedef struct th_broker th_broker_t;

/* Starts `tallyctl broker --partitions N` (3 mock brokers, the contract's four
 * topics). */
th_broker_t *th_broker_start(int partitions);
void th_broker_stop(th_broker_t *b);
const char *th_broker_bootstrap(const th_broker_t *b);

/* Sends one control line to the broker (see `tallyctl broker --help`, e.g.
 * "topic name 3", "broker-down 2", "broker-up 2", "request-errors Produce 6 6")
 * and waits for its "ok"; fails the test on "error: …". */
void th_broker_command(th_broker_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like th_broker_command, but returns whether the reply was "ok" instead of
 * failing the test, with the reply line copied into reply (may be NULL). Fails
 * the test only when the broker does not answer. */
bool th_broker_try_command(th_broker_t *b, char *reply, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* th_broker_start with extra command-line arguments for `tallyctl broker`
 * (NULL-terminated, may be NULL), e.g. {"--brokers", "1", NULL}. */
th_broker_t *th_broker_start_args(int partitions, const char *const *args);

pid_t th_broker_pid(const th_broker_t *b);

/* ---- tally-worker ----------------------------------------------------- */

typedef struct th_worker th_worker_t;

/* Starts tally-worker with DATABASE_URL (as tally_worker),
 * KAFKA_BOOTSTRAP_SERVERS, test timings (fetch.wait.max.ms=10,
 * session.timeout.ms=6000, heartbeat.interval.ms=1500), TALLY_HTTP_ADDR on a
 * free port and stderr to a log file; env holds extra "KEY=VALUE" entries and
 * ends with NULL (env itself may be NULL). */
th_worker_t *th_worker_start(const th_pg_t *pg, const th_broker_t *b, const char *const *env);

pid_t th_worker_pid(const th_worker_t *w);
int th_worker_http_port(const th_worker_t *w);
const char *th_worker_log_path(const th_worker_t *w);

/* Waits until the worker's log contains needle; false on timeout. */
bool th_worker_wait_log(th_worker_t *w, const char *needle, int timeout_ms);

/* Waits until GET /readyz answers 200; false on timeout. */
bool th_worker_wait_ready(th_worker_t *w, int timeout_ms);

/* Waits until the worker is ready and /readyz reports at least min
 * partitions assigned (readiness alone does not wait for partitions:
 * CONTRACT §7); returns that count, or -1 on timeout or exit. */
int th_worker_wait_partitions(th_worker_t *w, int min, int timeout_ms);

/* GET path from the worker's HTTP server (Connection: close). Returns the
 * status code, or -1 without a complete answer within timeout_ms; the body
 * (malloc'd, NUL-terminated; the caller frees it) goes to *body when body is
 * not NULL (NULL on failure). */
int th_worker_http_get(th_worker_t *w, const char *path, char **body, int timeout_ms);

void th_worker_signal(th_worker_t *w, int sig);

/* Waits for the process to exit; returns its waitpid status, or -1 on timeout
 * (the process is left running). */
int th_worker_wait(th_worker_t *w, int timeout_ms);

/* SIGTERM, wait up to 30 s, then SIGKILL; frees w. NULL is ignored. */
void th_worker_stop(th_worker_t *w);

/* ---- Kafka clients ---------------------------------------------------- */

typedef struct th_producer th_producer_t;
typedef struct th_consumer th_consumer_t;

typedef struct th_msg {
    char *key;   /* NULL when the message had none */
    char *value; /* NUL-terminated copy */
    size_t value_len;
    json_t *json;    /* value parsed as JSON, or NULL */
    json_t *headers; /* object of header name → string */
    int32_t partition;
    int64_t offset;
} th_msg_t;

th_producer_t *th_producer_new(const th_broker_t *b);
void th_producer_free(th_producer_t *p);

/* A producer with extra librdkafka properties ("key=value", NULL-terminated,
 * may be NULL), e.g. {"enable.idempotence=true", NULL}. */
th_producer_t *th_producer_new_with(const th_broker_t *b, const char *const *conf);

/* The producer's librdkafka handle, for calls the harness does not wrap;
 * owned by p. */
rd_kafka_t *th_producer_handle(th_producer_t *p);

/* Produces asynchronously; partition -1 lets the key choose. */
void th_produce(th_producer_t *p, const char *topic, int32_t partition, const char *key,
                const void *value, size_t len);

/* Waits for every delivery; fails the test if any failed. */
void th_producer_flush(th_producer_t *p);

/* Waits for every delivery (bounded by the producer's message.timeout.ms)
 * and returns how many deliveries failed since the last flush, instead of
 * failing the test; the last failure's text goes to err (may be NULL). */
int th_producer_flush_failures(th_producer_t *p, char *err, size_t size);

/* The broker id that leads topic's partition, from fresh metadata; -1 when
 * there is none. */
int32_t th_partition_leader(th_producer_t *p, const char *topic, int32_t partition);

/* Reads every partition of topic from the beginning, outside any group. A
 * topic that does not exist yet is created, with 4 partitions, by the
 * embedded broker (see `tallyctl broker --help`). */
th_consumer_t *th_consumer_new(const th_broker_t *b, const char *topic);
void th_consumer_free(th_consumer_t *c);

/* Waits until n messages arrived or timeout_ms passed; returns how many were
 * stored in out (the caller th_msg_clear()s each). */
int th_consume(th_consumer_t *c, th_msg_t *out, int n, int timeout_ms);
void th_msg_clear(th_msg_t *m);

/* ---- Misc ------------------------------------------------------------- */

/* A TCP port on 127.0.0.1 that was free a moment ago. */
int th_free_port(void);

/* This process's own fresh directory under TALLY_TEST_TMPDIR (service logs
 * live there). Removed at exit; kept, and the services' log tails printed,
 * when the process exits non-zero (a cmocka test failed). */
const char *th_tmpdir(void);

#endif
