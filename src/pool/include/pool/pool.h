/* pool — a small, thread-safe set of libpq connections to one database.
 *
 * Knows nothing of tenants, jobs or Kafka. Executor threads borrow a
 * connection with pool_acquire (which may block that thread while connecting,
 * never the event loop), run their statements, and hand it back with
 * pool_release. At most `max` connections exist at once; idle ones are closed
 * after `idle_timeout_ms`; a connection that failed is closed on release and
 * replaced by a fresh one on the next acquire.
 *
 * Prepared statements are tracked per connection: pool_conn_prepared tells
 * whether `name` was already prepared on this connection, so callers prepare
 * each statement once per connection and reuse it. A pool made with
 * unnamed_statements (TALLY_PREPARED_STATEMENTS=off) tracks nothing:
 * pool_conn_prepares is false and callers send every statement unnamed, which
 * a transaction-pooling connection pooler (each transaction on any server
 * connection) passes through. */
#ifndef TALLY_POOL_POOL_H
#define TALLY_POOL_POOL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pool pool_t;
typedef struct pool_conn pool_conn_t;

/* Sizes and timeouts left at 0 take the defaults (negative ones are refused). The
 * pool adds TCP keepalives (a dead host is noticed within about 11 s:
 * keepalives after 5 s idle, every 2 s, 3 lost; tcp_user_timeout 10 s) and
 * application_name as defaults that conninfo may override. */
typedef struct pool_config {
    const char *conninfo;         /* libpq URL or key=value string; copied */
    int max;                      /* TALLY_POOL_MAX, default 5 */
    int idle_timeout_ms;          /* default 20000 */
    int connect_timeout_ms;       /* default 10000 */
    const char *application_name; /* reported in pg_stat_activity; copied; may be NULL */
    bool unnamed_statements;      /* TALLY_PREPARED_STATEMENTS=off: prepare nothing by name */
    /* The bounds on every wait of a transaction on these connections
     * (pool_conn_limits): */
    int statement_timeout_ms;           /* TALLY_STATEMENT_TIMEOUT_MS, default 5000 */
    int lock_timeout_ms;                /* TALLY_LOCK_TIMEOUT_MS, default 2000 */
    int idle_in_transaction_timeout_ms; /* default 10000 */
} pool_config_t;

/* The server settings statement_timeout, lock_timeout and
 * idle_in_transaction_session_timeout, in milliseconds, that every
 * transaction on a pooled connection must set (SET LOCAL; see
 * access/session.h): per transaction rather than per connection, so that
 * they hold behind a transaction-pooling connection pooler too, which
 * neither forwards startup options nor keeps session settings. */
typedef struct pool_limits {
    int statement_timeout_ms;
    int lock_timeout_ms;
    int idle_in_transaction_timeout_ms;
} pool_limits_t;

typedef struct pool_stats {
    int idle;          /* connected, not borrowed */
    int active;        /* borrowed by a caller */
    int connecting;    /* being opened */
    uint64_t opened;   /* connections opened since start */
    uint64_t closed;   /* connections closed since start (idle, broken or shutdown) */
    uint64_t failures; /* failed connection attempts since start */
} pool_stats_t;

/* Creates a pool; opens no connection yet. Returns 0, or -1 with a message
 * in err (never containing a password). */
int pool_new(const pool_config_t *cfg, pool_t **out, char *err, size_t errlen);

/* Closes every idle connection and frees the pool. All borrowed connections
 * must have been released. */
void pool_free(pool_t *pool);

/* Borrows a connection, opening one if none is idle and fewer than max exist,
 * waiting for a release otherwise. An idle connection whose backend is gone
 * (terminated, server restarted) is noticed here and replaced. Blocks the
 * calling thread, waiting and connecting together at most connect_timeout_ms;
 * never call it on the event-loop thread. Returns 0, or -1 when no connection
 * could be had in time (err says why, without secrets). */
int pool_acquire(pool_t *pool, pool_conn_t **out, char *err, size_t errlen);

/* Returns a borrowed connection. A connection marked broken, not in
 * CONNECTION_OK state or left inside a transaction is closed instead. */
void pool_release(pool_t *pool, pool_conn_t *conn);

/* The limits the pool was configured with, for a borrowed connection. */
pool_limits_t pool_conn_limits(const pool_conn_t *conn);

/* Marks a borrowed connection as unusable (e.g. after a lost connection). */
void pool_conn_mark_broken(pool_conn_t *conn);

/* The libpq handle of a borrowed connection. Owned by the pool. */
PGconn *pool_conn_pg(pool_conn_t *conn);

/* Whether statements are prepared by name on this connection and reused
 * (false in a pool made with unnamed_statements: send each one unnamed). */
bool pool_conn_prepares(const pool_conn_t *conn);

/* Prepared-statement bookkeeping for this connection. Without
 * pool_conn_prepares, nothing is recorded and pool_conn_prepared is false. */
bool pool_conn_prepared(const pool_conn_t *conn, const char *name);
void pool_conn_set_prepared(pool_conn_t *conn, const char *name);

/* Closes connections idle for longer than the idle timeout. Cheap; call it
 * periodically from any thread. */
void pool_reap_idle(pool_t *pool);

/* Runs SELECT 1 on a borrowed-and-returned connection. Returns 0 and the
 * round-trip latency of the query, or -1 with err. A failure on a reused
 * connection is tried once more on a fresh one, so one dead connection does
 * not report the database down. Blocks the calling thread. */
int pool_health_check(pool_t *pool, double *latency_ms, char *err, size_t errlen);

void pool_stats(pool_t *pool, pool_stats_t *out);

/* Opens a connection with the pool's connection string and defaults
 * (keepalives, tcp_user_timeout) that the pool neither counts nor keeps —
 * for a connection with a job of its own, such as the worker's LISTEN
 * connection — named application_name (NULL: the pool's), within
 * timeout_ms (0 or less: the pool's connect timeout). Blocks the calling
 * thread; never call it on the event loop (a host name is resolved
 * blocking). Returns the connection, which the caller PQfinish()es, or
 * NULL with err (no secrets). */
PGconn *pool_connect_aside(pool_t *pool, const char *application_name, int timeout_ms, char *err,
                           size_t errlen);

/* Copies conninfo into out with any password replaced by "xxxxx", for logs. */
void pool_redact_conninfo(const char *conninfo, char *out, size_t size);

#endif
