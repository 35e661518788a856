/* pool — see pool/pool.h.
 *
 * One mutex guards the idle list and the counters; a condition variable wakes
 * callers waiting for a release or for a free connection slot. Connecting and
 * closing happen outside the lock, so a slow server stalls only the threads
 * that need a new connection. A borrowed connection belongs to its borrower
 * alone: its flags and prepared-statement names are touched without the lock. */
#include "pool/pool.h"

#include "pool_internal.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pool_conn {
    PGconn *pg;
    const struct pool *pool;
    bool broken;
    bool goodbye;          /* the server sent FATAL while idle (notice_cb): it is ending */
    bool named;            /* statements are prepared by name (pool_conn_prepares) */
    int64_t idle_since_ns; /* monotonic; set on release */
    char **prepared;       /* names of statements prepared on this connection */
    size_t nprepared;
    size_t capprepared;
    pool_conn_t *next; /* idle list link */
};

struct pool {
    char *conninfo;
    char *application_name;
    bool unnamed_statements;
    int max;
    int idle_timeout_ms;
    int connect_timeout_ms;
    pool_limits_t limits;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a connection was released or a slot became free */
    pool_conn_t *idle; /* most recently released first */
    int nidle;
    int nactive;
    int nconnecting;
    uint64_t opened;
    uint64_t closed;
    uint64_t failures;
};

#define DEFAULT_MAX                  5
#define DEFAULT_IDLE_TIMEOUT_MS      20000
#define DEFAULT_CONNECT_TIMEOUT_MS   10000
#define DEFAULT_STATEMENT_TIMEOUT_MS 5000
#define DEFAULT_LOCK_TIMEOUT_MS      2000
#define DEFAULT_IDLE_IN_TX_MS        10000

/* Writes "what: detail" (or just what) into err, detail cleaned up. */
static void set_err(char *err, size_t errlen, const char *what, const char *detail)
{
    if (err == NULL || errlen == 0)
        return;
    char clean[512];
    /* libpq messages end with a newline and may span lines; keep one line and
     * mask anything that looks like a password, as a last line of defence. */
    log_redact(detail != NULL ? detail : "", clean, sizeof(clean));
    for (char *p = clean; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    }
    size_t n = strlen(clean);
    while (n > 0 && clean[n - 1] == ' ')
        clean[--n] = '\0';
    snprintf(err, errlen, "%s%s%s", what, clean[0] != '\0' ? ": " : "", clean);
}

static void conn_free(pool_conn_t *c)
{
    if (c == NULL)
        return;
    if (c->pg != NULL)
        PQfinish(c->pg);
    for (size_t i = 0; i < c->nprepared; i++)
        free(c->prepared[i]);
    free(c->prepared);
    free(c);
}

int pool_new(const pool_config_t *cfg, pool_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || cfg->conninfo == NULL || cfg->conninfo[0] == '\0') {
        set_err(err, errlen, "pool: no connection string", NULL);
        return -1;
    }
    if (cfg->max < 0 || cfg->idle_timeout_ms < 0 || cfg->connect_timeout_ms < 0 ||
        cfg->statement_timeout_ms < 0 || cfg->lock_timeout_ms < 0 ||
        cfg->idle_in_transaction_timeout_ms < 0) {
        set_err(err, errlen, "pool: negative size or timeout", NULL);
        return -1;
    }
    /* Validate the connection string now, so a typo fails at start-up rather
     * than on the first request. */
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(cfg->conninfo, &perr);
    if (opts == NULL) {
        set_err(err, errlen, "pool: invalid connection string",
                perr != NULL ? perr : "out of memory");
        PQfreemem(perr);
        return -1;
    }
    PQconninfoFree(opts);

    pool_t *p = mem_calloc(1, sizeof(*p));
    p->conninfo = mem_strdup(cfg->conninfo);
    p->application_name =
        mem_strdup(cfg->application_name != NULL ? cfg->application_name : "tally");
    p->unnamed_statements = cfg->unnamed_statements;
    p->max = cfg->max > 0 ? cfg->max : DEFAULT_MAX;
    p->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS;
    p->connect_timeout_ms =
        cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    p->limits = (pool_limits_t){
        .statement_timeout_ms = cfg->statement_timeout_ms > 0 ? cfg->statement_timeout_ms
                                                              : DEFAULT_STATEMENT_TIMEOUT_MS,
        .lock_timeout_ms =
            cfg->lock_timeout_ms > 0 ? cfg->lock_timeout_ms : DEFAULT_LOCK_TIMEOUT_MS,
        .idle_in_transaction_timeout_ms = cfg->idle_in_transaction_timeout_ms > 0
                                              ? cfg->idle_in_transaction_timeout_ms
                                              : DEFAULT_IDLE_IN_TX_MS,
    };
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0 || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(p->conninfo);
        free(p->application_name);
        free(p);
        set_err(err, errlen, "pool: cannot make its lock", NULL);
        return -1;
    }
    *out = p;
    return 0;
}

void pool_free(pool_t *pool)
{
    if (pool == NULL)
        return;
    pthread_mutex_lock(&pool->mu);
    pool_conn_t *list = pool->idle;
    pool->idle = NULL;
    pool->nidle = 0;
    pthread_mutex_unlock(&pool->mu);
    while (list != NULL) {
        pool_conn_t *next = list->next;
        conn_free(list);
        list = next;
    }
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->conninfo);
    free(pool->application_name);
    free(pool);
}

/* Server notices (and the FATAL of a terminated idle backend, which libpq
 * reports as a notice) go to our log instead of libpq's default, raw stderr.
 * arg is the connection's goodbye flag (NULL for none), set by a FATAL or
 * PANIC. */
static void notice_cb(void *arg, const PGresult *r)
{
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    bool loud = sev != NULL && (strcmp(sev, "WARNING") == 0 || strcmp(sev, "FATAL") == 0 ||
                                strcmp(sev, "PANIC") == 0);
    log_emit(loud ? LOG_WARN : LOG_DEBUG, "database notice", LOG_S("severity", sev ? sev : ""),
             LOG_S("sqlstate", state ? state : ""), LOG_S("message", msg ? msg : ""), LOG_END);
    if (arg != NULL && sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0))
        *(bool *)arg = true;
}

/* Opens a connection, giving up at the deadline. PQconnectStartParams +
 * PQconnectPoll rather than connect_timeout, which libpq applies per host and
 * per attempt, not to the whole call. */
static PGconn *connect_with_deadline(const pool_t *p, const char *appname, bool *goodbye,
                                     int64_t deadline, int timeout_ms, char *err, size_t errlen)
{
    /* Keywords before "dbname" are defaults that the operator's connection
     * string (expanded from dbname) may override. Keepalives and
     * tcp_user_timeout notice a database host that vanished (no FIN, no RST)
     * within seconds, also while a statement runs: about 5 + 3 × 2 s idle,
     * 10 s for unacknowledged data. */
    const char *const keys[] = {
        "application_name", "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *app = appname != NULL ? appname : p->application_name;
    const char *const vals[] = {app, "1", "5", "2", "3", "10000", p->conninfo, NULL};

    PGconn *pg = PQconnectStartParams(keys, vals, 1);
    if (pg == NULL) {
        set_err(err, errlen, "cannot connect to the database", "out of memory");
        return NULL;
    }
    /* Before the first poll: the server may send warnings during start-up
     * (a role setting it cannot apply, for one). */
    PQsetNoticeReceiver(pg, notice_cb, goodbye);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(pg) != CONNECTION_BAD) {
        if (st == PGRES_POLLING_OK)
            return pg;
        if (st == PGRES_POLLING_FAILED)
            break;
        int64_t left_ms = (deadline - clock_mono_ns()) / 1000000;
        if (left_ms <= 0) {
            char msg[64];
            snprintf(msg, sizeof(msg), "timed out after %d ms", timeout_ms);
            set_err(err, errlen, "cannot connect to the database", msg);
            PQfinish(pg);
            return NULL;
        }
        /* The socket may change between polls (another host or address). */
        struct pollfd pfd = {.fd = PQsocket(pg),
                             .events = st == PGRES_POLLING_READING ? POLLIN : POLLOUT};
        if (pfd.fd < 0)
            break;
        int n = poll(&pfd, 1, left_ms > 1000 ? 1000 : (int)left_ms);
        if (n < 0 && errno != EINTR) {
            set_err(err, errlen, "cannot connect to the database", strerror(errno));
            PQfinish(pg);
            return NULL;
        }
        if (n > 0)
            st = PQconnectPoll(pg);
    }
    set_err(err, errlen, "cannot connect to the database", PQerrorMessage(pg));
    PQfinish(pg);
    return NULL;
}

/* Whether an idle connection still looks alive. A backend ended by
 * pg_terminate_backend or a server shutdown has sent a FATAL message and
 * closed the socket. Non-blocking reads notice that without a round trip:
 * the first consumes the message (which libpq, idle, treats as a notice, and
 * notice_cb flags), the second meets the end of the stream — unless the
 * server has not closed it yet, which the flag covers. */
static bool idle_conn_alive(pool_conn_t *c)
{
    for (int i = 0; i < 2; i++) {
        if (PQstatus(c->pg) != CONNECTION_OK || PQconsumeInput(c->pg) == 0)
            return false;
        (void)PQisBusy(c->pg); /* parses what arrived */
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL)
        PQfreemem(n);
    return !c->goodbye && PQstatus(c->pg) == CONNECTION_OK &&
           PQtransactionStatus(c->pg) == PQTRANS_IDLE;
}

static struct timespec deadline_ts(int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
    return ts;
}

int pool_acquire(pool_t *pool, pool_conn_t **out, char *err, size_t errlen)
{
    *out = NULL;
    /* One deadline for waiting and connecting: a caller never hangs longer
     * than the connect timeout. */
    int64_t deadline = clock_mono_ns() + (int64_t)pool->connect_timeout_ms * 1000000;
    struct timespec dl = deadline_ts(deadline);

    pthread_mutex_lock(&pool->mu);
    for (;;) {
        if (pool->idle != NULL) {
            pool_conn_t *c = pool->idle;
            pool->idle = c->next;
            pool->nidle--;
            c->next = NULL;
            pool->nactive++;
            pthread_mutex_unlock(&pool->mu);
            if (idle_conn_alive(c)) {
                c->broken = false;
                *out = c;
                return 0;
            }
            conn_free(c);
            pthread_mutex_lock(&pool->mu);
            pool->nactive--;
            pool->closed++;
            continue;
        }
        if (pool->nactive + pool->nconnecting < pool->max)
            break;
        if (pthread_cond_timedwait(&pool->cv, &pool->mu, &dl) == ETIMEDOUT && pool->idle == NULL &&
            pool->nactive + pool->nconnecting >= pool->max) {
            pthread_mutex_unlock(&pool->mu);
            char msg[96];
            snprintf(msg, sizeof(msg), "all %d connections busy for %d ms", pool->max,
                     pool->connect_timeout_ms);
            set_err(err, errlen, "pool exhausted", msg);
            return -1;
        }
    }
    pool->nconnecting++;
    pthread_mutex_unlock(&pool->mu);

    pool_conn_t *c = mem_calloc(1, sizeof(*c));
    PGconn *pg = connect_with_deadline(pool, NULL, &c->goodbye, deadline, pool->connect_timeout_ms,
                                       err, errlen);

    pthread_mutex_lock(&pool->mu);
    pool->nconnecting--;
    if (pg == NULL) {
        pool->failures++;
        /* The slot is free again: let a waiter try. */
        pthread_cond_signal(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
        free(c);
        return -1;
    }
    pool->opened++;
    pool->nactive++;
    pthread_mutex_unlock(&pool->mu);
    c->pg = pg;
    c->pool = pool;
    c->named = !pool->unnamed_statements;
    *out = c;
    return 0;
}

void pool_release(pool_t *pool, pool_conn_t *conn)
{
    if (conn == NULL)
        return;
    bool reusable = !conn->broken && PQstatus(conn->pg) == CONNECTION_OK &&
                    PQtransactionStatus(conn->pg) == PQTRANS_IDLE;
    pthread_mutex_lock(&pool->mu);
    pool->nactive--;
    if (reusable) {
        conn->idle_since_ns = clock_mono_ns();
        conn->next = pool->idle;
        pool->idle = conn;
        pool->nidle++;
    } else {
        pool->closed++;
    }
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    if (!reusable)
        conn_free(conn);
}

pool_limits_t pool_conn_limits(const pool_conn_t *conn)
{
    return conn->pool->limits;
}

void pool_conn_mark_broken(pool_conn_t *conn)
{
    conn->broken = true;
}

PGconn *pool_conn_pg(pool_conn_t *conn)
{
    return conn->pg;
}

bool pool_conn_prepares(const pool_conn_t *conn)
{
    return conn->named;
}

bool pool_conn_prepared(const pool_conn_t *conn, const char *name)
{
    /* A linear scan: a connection holds a few dozen statements, and the cost
     * is nothing next to the round trip that follows. */
    for (size_t i = 0; i < conn->nprepared; i++) {
        if (strcmp(conn->prepared[i], name) == 0)
            return true;
    }
    return false;
}

void pool_conn_set_prepared(pool_conn_t *conn, const char *name)
{
    if (!conn->named || pool_conn_prepared(conn, name))
        return;
    if (conn->nprepared == conn->capprepared) {
        size_t cap = conn->capprepared ? conn->capprepared * 2 : 16;
        conn->prepared = mem_realloc(conn->prepared, cap * sizeof(*conn->prepared));
        conn->capprepared = cap;
    }
    conn->prepared[conn->nprepared++] = mem_strdup(name);
}

void pool_reap_idle(pool_t *pool)
{
    int64_t cutoff = clock_mono_ns() - (int64_t)pool->idle_timeout_ms * 1000000;
    pool_conn_t *expired = NULL;
    pthread_mutex_lock(&pool->mu);
    for (pool_conn_t **pp = &pool->idle; *pp != NULL;) {
        pool_conn_t *c = *pp;
        if (c->idle_since_ns <= cutoff) {
            *pp = c->next;
            c->next = expired;
            expired = c;
            pool->nidle--;
            pool->closed++;
        } else {
            pp = &c->next;
        }
    }
    if (expired != NULL)
        pthread_cond_broadcast(&pool->cv); /* slots became free */
    pthread_mutex_unlock(&pool->mu);
    while (expired != NULL) {
        pool_conn_t *next = expired->next;
        conn_free(expired);
        expired = next;
    }
}

/* One SELECT 1 on c; returns 0 and the latency, or -1 (c is then broken). */
static int ping(pool_conn_t *c, double *latency_ms, char *err, size_t errlen)
{
    int64_t t0 = clock_mono_ns();
    PGresult *r = PQexec(c->pg, "SELECT 1");
    int64_t t1 = clock_mono_ns();
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(err, errlen, "health check failed",
                r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c->pg));
        c->broken = true;
        rc = -1;
    } else if (latency_ms != NULL) {
        *latency_ms = (double)(t1 - t0) / 1e6;
    }
    PQclear(r);
    return rc;
}

int pool_health_check(pool_t *pool, double *latency_ms, char *err, size_t errlen)
{
    /* A failure on a reused connection may only mean that this connection
     * died (server restart, idle kill); one fresh attempt tells whether the
     * database itself is reachable. */
    for (int attempt = 0; attempt < 2; attempt++) {
        pool_conn_t *c;
        if (pool_acquire(pool, &c, err, errlen) != 0)
            return -1;
        int rc = ping(c, latency_ms, err, errlen);
        pool_release(pool, c);
        if (rc == 0)
            return 0;
    }
    return -1;
}

void pool_stats(pool_t *pool, pool_stats_t *out)
{
    pthread_mutex_lock(&pool->mu);
    out->idle = pool->nidle;
    out->active = pool->nactive;
    out->connecting = pool->nconnecting;
    out->opened = pool->opened;
    out->closed = pool->closed;
    out->failures = pool->failures;
    pthread_mutex_unlock(&pool->mu);
}

void pool_set_err(char *err, size_t errlen, const char *what, const char *detail)
{
    set_err(err, errlen, what, detail);
}

PGconn *pool_open_unpooled(pool_t *pool, char *err, size_t errlen)
{
    return pool_connect_aside(pool, NULL, 0, err, errlen);
}

PGconn *pool_connect_aside(pool_t *pool, const char *application_name, int timeout_ms, char *err,
                           size_t errlen)
{
    if (timeout_ms <= 0)
        timeout_ms = pool->connect_timeout_ms;
    return connect_with_deadline(pool, application_name, NULL,
                                 clock_mono_ns() + (int64_t)timeout_ms * 1000000, timeout_ms, err,
                                 errlen);
}

int pool_connect_timeout_ms(const pool_t *pool)
{
    return pool->connect_timeout_ms;
}

void pool_redact_conninfo(const char *conninfo, char *out, size_t size)
{
    log_redact(conninfo, out, size);
}
