/* it_pool — the connection pool against a real PostgreSQL: the bound on
 * connections under many threads, reuse, idle reaping, killed connections,
 * outages, the connect deadline, health checks and secrets in errors. */
#include "harness.h"

#include "common/clock.h"
#include "pool/pool.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct fixture {
    th_pg_t *pg;
    char url[256];
} fixture_t;

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_url(f->pg, "tally_worker", f->url, sizeof(f->url));
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

static pool_t *new_pool(const char *url, int max, int idle_ms, int connect_ms, const char *app)
{
    pool_config_t cfg = {.conninfo = url,
                         .max = max,
                         .idle_timeout_ms = idle_ms,
                         .connect_timeout_ms = connect_ms,
                         .application_name = app};
    pool_t *p;
    char err[256];
    if (pool_new(&cfg, &p, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    return p;
}

static pool_conn_t *borrow(pool_t *p)
{
    pool_conn_t *c;
    char err[256];
    if (pool_acquire(p, &c, err, sizeof(err)) != 0)
        fail_msg("pool_acquire: %s", err);
    return c;
}

static int backend_pid(pool_conn_t *c)
{
    PGresult *r = PQexec(pool_conn_pg(c), "SELECT pg_backend_pid()");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return pid;
}

static int64_t backends_named(fixture_t *f, const char *app)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s'", app);
    return th_pg_i64(f->pg, "postgres", sql);
}

/* Waits (bounded) until the server has n backends of app; returns the last count. */
static int64_t wait_backends(fixture_t *f, const char *app, int64_t n)
{
    int64_t got = -1;
    for (int i = 0; i < 500; i++) {
        got = backends_named(f, app);
        if (got == n)
            break;
        usleep(10000);
    }
    return got;
}

typedef struct hammer {
    pool_t *pool;
    atomic_int held;
    atomic_int max_held;
    atomic_int failures;
} hammer_t;

static void *hammer_thread(void *arg)
{
    hammer_t *h = arg;
    for (int i = 0; i < 25; i++) {
        pool_conn_t *c;
        char err[256];
        if (pool_acquire(h->pool, &c, err, sizeof(err)) != 0) {
            atomic_fetch_add(&h->failures, 1);
            continue;
        }
        int now = atomic_fetch_add(&h->held, 1) + 1;
        int seen = atomic_load(&h->max_held);
        while (now > seen && !atomic_compare_exchange_weak(&h->max_held, &seen, now))
            ;
        PGresult *r = PQexec(pool_conn_pg(c), "SELECT pg_sleep(0.001)");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            atomic_fetch_add(&h->failures, 1);
        PQclear(r);
        atomic_fetch_sub(&h->held, 1);
        pool_release(h->pool, c);
    }
    return NULL;
}

static void test_max_under_many_threads(void **state)
{
    fixture_t *f = *state;
    enum { THREADS = 12 };
    hammer_t h = {.pool = new_pool(f->url, 3, 0, 10000, "it_pool_max")};
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer_thread, &h);
    /* While they run, the server never sees more than 3 of our backends. */
    int64_t most = 0;
    for (int i = 0; i < 20; i++) {
        int64_t n = backends_named(f, "it_pool_max");
        most = n > most ? n : most;
        usleep(5000);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);

    assert_int_equal(atomic_load(&h.failures), 0);
    assert_true(atomic_load(&h.max_held) <= 3);
    assert_true(atomic_load(&h.max_held) >= 2); /* they did overlap */
    assert_true(most <= 3);
    pool_stats_t st;
    pool_stats(h.pool, &st);
    assert_true(st.opened <= 3);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.idle, (int)st.opened);
    assert_int_equal(st.failures, 0);
    printf("max test: %d threads x 25 borrows over 3 connections, %d held at most, "
           "%d backends seen\n",
           THREADS, atomic_load(&h.max_held), (int)most);
    pool_free(h.pool);
    assert_int_equal(wait_backends(f, "it_pool_max", 0), 0);
}

static void test_reuse_and_prepared_bookkeeping(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 2, 0, 10000, "it_pool_reuse");
    pool_conn_t *c = borrow(p);
    int pid = backend_pid(c);
    assert_false(pool_conn_prepared(c, "s1"));
    PGresult *r = PQprepare(pool_conn_pg(c), "s1", "SELECT $1::int + 1", 1, NULL);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    pool_conn_set_prepared(c, "s1");
    pool_conn_set_prepared(c, "s1"); /* idempotent */
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        pool_conn_set_prepared(c, name);
    }
    pool_release(p, c);

    c = borrow(p);
    assert_int_equal(backend_pid(c), pid);
    assert_true(pool_conn_prepared(c, "s1"));
    assert_true(pool_conn_prepared(c, "n39"));
    assert_false(pool_conn_prepared(c, "n40"));
    const char *v[] = {"41"};
    r = PQexecPrepared(pool_conn_pg(c), "s1", 1, v, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
    pool_release(p, c);

    pool_stats_t st;
    pool_stats(p, &st);
    assert_int_equal(st.opened, 1);
    assert_int_equal(st.idle, 1);
    pool_free(p);
}

static void test_broken_or_in_transaction_is_closed(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 2, 0, 10000, "it_pool_broken");
    pool_stats_t st;

    pool_conn_t *c = borrow(p);
    int pid1 = backend_pid(c);
    pool_conn_mark_broken(c);
    pool_release(p, c);
    pool_stats(p, &st);
    assert_int_equal(st.closed, 1);
    assert_int_equal(st.idle, 0);

    c = borrow(p);
    int pid2 = backend_pid(c);
    assert_int_not_equal(pid1, pid2);
    PQclear(PQexec(pool_conn_pg(c), "BEGIN")); /* left inside a transaction */
    pool_release(p, c);
    pool_stats(p, &st);
    assert_int_equal(st.closed, 2);

    c = borrow(p);
    assert_int_not_equal(backend_pid(c), pid2);
    assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_IDLE);
    pool_release(p, c);
    pool_free(p);
}

static void test_idle_reaping(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 3, 50, 10000, "it_pool_idle");
    pool_conn_t *a = borrow(p), *b = borrow(p);
    pool_release(p, a);
    pool_release(p, b);
    assert_int_equal(backends_named(f, "it_pool_idle"), 2);

    pool_reap_idle(p); /* nothing idle for 50 ms yet, most likely; either way bounded below */
    usleep(120 * 1000);
    pool_reap_idle(p);
    pool_stats_t st;
    pool_stats(p, &st);
    assert_int_equal(st.idle, 0);
    assert_int_equal(st.closed, 2);
    assert_int_equal(wait_backends(f, "it_pool_idle", 0), 0);

    /* A borrowed connection is never reaped. */
    a = borrow(p);
    usleep(120 * 1000);
    pool_reap_idle(p);
    pool_stats(p, &st);
    assert_int_equal(st.active, 1);
    assert_int_equal(backend_pid(a) > 0, 1);
    pool_release(p, a);
    pool_free(p);
}

static void test_killed_connection_is_replaced(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 2, 0, 10000, "it_pool_kill");
    char sql[64];

    /* Killed while idle: noticed on acquire, before anyone uses it, once the
     * server's goodbye has reached the socket. pg_stat_activity can drop the
     * backend before that, so wait for the socket itself (bounded). */
    pool_conn_t *c = borrow(p);
    int pid = backend_pid(c);
    int fd = PQsocket(pool_conn_pg(c));
    pool_release(p, c);
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    th_pg_exec(f->pg, "postgres", sql);
    assert_int_equal(wait_backends(f, "it_pool_kill", 0), 0);
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, 5000), 1);
    c = borrow(p);
    int pid2 = backend_pid(c);
    assert_int_not_equal(pid2, pid);

    /* Killed while borrowed: the statement fails, the release closes it. */
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid2);
    th_pg_exec(f->pg, "postgres", sql);
    PGresult *r = PQexec(pool_conn_pg(c), "SELECT 1");
    assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    pool_release(p, c);
    c = borrow(p);
    assert_int_not_equal(backend_pid(c), pid2);
    pool_release(p, c);

    pool_stats_t st;
    pool_stats(p, &st);
    assert_int_equal(st.opened, 3);
    assert_int_equal(st.closed, 2);
    pool_free(p);
}

static void test_outage_and_recovery(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 2, 0, 2000, "it_pool_outage");
    double ms = -1;
    char err[256];
    assert_int_equal(pool_health_check(p, &ms, err, sizeof(err)), 0);
    assert_true(ms > 0);
    printf("health check latency: %.3f ms\n", ms);

    th_pg_halt(f->pg);
    int64_t t0 = clock_mono_ns();
    pool_conn_t *c;
    assert_int_equal(pool_acquire(p, &c, err, sizeof(err)), -1);
    int64_t t1 = clock_mono_ns();
    assert_non_null(strstr(err, "cannot connect to the database"));
    assert_int_equal(pool_health_check(p, &ms, err, sizeof(err)), -1);
    printf("acquire with the server down failed after %.1f ms: %s\n", (double)(t1 - t0) / 1e6, err);
    pool_stats_t st;
    pool_stats(p, &st);
    assert_true(st.failures >= 2);
    assert_int_equal(st.active + st.connecting, 0);

    th_pg_resume(f->pg);
    assert_int_equal(pool_health_check(p, &ms, err, sizeof(err)), 0);
    c = borrow(p);
    assert_true(backend_pid(c) > 0);
    pool_release(p, c);
    pool_free(p);
}

static void test_health_check_survives_a_restart(void **state)
{
    fixture_t *f = *state;
    pool_t *p = new_pool(f->url, 1, 0, 5000, "it_pool_restart");
    double ms;
    char err[256];
    assert_int_equal(pool_health_check(p, &ms, err, sizeof(err)), 0);
    /* The idle connection dies with the server; the next check must not
     * report the database down because of it. */
    th_pg_halt(f->pg);
    th_pg_resume(f->pg);
    assert_int_equal(pool_health_check(p, &ms, err, sizeof(err)), 0);
    pool_stats_t st;
    pool_stats(p, &st);
    assert_int_equal(st.opened, 2);
    pool_free(p);
}

/* A listener that accepts TCP connections and never answers: the connect
 * can only end by our deadline. */
static void test_connect_deadline(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 8), 0);
    socklen_t len = sizeof(a);
    getsockname(ls, (struct sockaddr *)&a, &len);
    char url[160];
    snprintf(url, sizeof(url), "postgresql://tally_worker:hunter2-secret@127.0.0.1:%d/tally",
             ntohs(a.sin_port));

    pool_t *p = new_pool(url, 1, 0, 300, "it_pool_deadline");
    pool_conn_t *c;
    char err[256];
    int64_t t0 = clock_mono_ns();
    assert_int_equal(pool_acquire(p, &c, err, sizeof(err)), -1);
    int64_t t1 = clock_mono_ns();
    assert_non_null(strstr(err, "timed out"));
    assert_null(strstr(err, "hunter2"));
    printf("connect deadline 300 ms: gave up after %.1f ms: %s\n", (double)(t1 - t0) / 1e6, err);
    pool_free(p);
    close(ls);
}

static void test_no_password_in_errors(void **state)
{
    (void)state;
    int port = th_free_port(); /* nothing listens there */
    char url[3][256], err[512];
    snprintf(url[0], sizeof(url[0]), "postgresql://tally_worker:s3cr3t-pw@127.0.0.1:%d/tally",
             port);
    snprintf(url[1], sizeof(url[1]),
             "host=127.0.0.1 port=%d dbname=tally user=tally_worker password=s3cr3t-pw", port);
    snprintf(url[2], sizeof(url[2]),
             "host=127.0.0.1 port=%d dbname=tally user=tally_worker password='s3cr3t-pw'", port);
    for (size_t i = 0; i < 3; i++) {
        pool_t *p = new_pool(url[i], 1, 0, 2000, "it_pool_secret");
        pool_conn_t *c;
        err[0] = '\0';
        assert_int_equal(pool_acquire(p, &c, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        assert_null(strstr(err, "s3cr3t"));
        assert_int_equal(pool_health_check(p, NULL, err, sizeof(err)), -1);
        assert_null(strstr(err, "s3cr3t"));
        pool_free(p);

        char red[256];
        pool_redact_conninfo(url[i], red, sizeof(red));
        assert_null(strstr(red, "s3cr3t"));
        assert_non_null(strstr(red, "xxxxx"));
    }

    /* A malformed string is refused at pool_new, without echoing it. */
    pool_config_t cfg = {.conninfo = "host=127.0.0.1 password=s3cr3t-pw bogus_option=1"};
    pool_t *p = NULL;
    assert_int_equal(pool_new(&cfg, &p, err, sizeof(err)), -1);
    assert_null(p);
    assert_null(strstr(err, "s3cr3t"));
    assert_non_null(strstr(err, "invalid connection string"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_under_many_threads),
        cmocka_unit_test(test_reuse_and_prepared_bookkeeping),
        cmocka_unit_test(test_broken_or_in_transaction_is_closed),
        cmocka_unit_test(test_idle_reaping),
        cmocka_unit_test(test_killed_connection_is_replaced),
        cmocka_unit_test(test_outage_and_recovery),
        cmocka_unit_test(test_health_check_survives_a_restart),
        cmocka_unit_test(test_connect_deadline),
        cmocka_unit_test(test_no_password_in_errors),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
