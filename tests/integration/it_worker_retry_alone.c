/* it_worker_retry_alone — a request being retried runs in a batch of its
 * own (issue 14): its next attempt may wait out a whole lock timeout again,
 * and no other account's request waits with it.
 *
 * Two executors (TALLY_POOL_MAX=2), an 8 s lock timeout. Outside sessions
 * lock the balance rows of accounts X, Y and Z. X's first attempt fails on
 * its lock; Y and Z then keep both executors busy while X's backoff ends
 * and ten requests of other accounts queue up. Y's lock is released, so one
 * executor takes every ready request at once: before the rule, X's second
 * attempt and the ten as one batch, all of them waiting out X's lock. X's
 * lock is released only once the ten are answered, so X is retried exactly
 * once when they did not wait with it, and twice when they did. Every wait
 * is bounded generously; no time is asserted. */
#include "it_worker_common.h"

#include <libpq-fe.h>
#include <unistd.h>

#define MATES 10

typedef struct rstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results;
} rstack_t;

static int setup(void **state)
{
    rstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(4);
    const char *env[] = {"TALLY_POOL_MAX=2", "TALLY_LOCK_TIMEOUT_MS=8000",
                         "TALLY_STATEMENT_TIMEOUT_MS=60000", NULL};
    s->w = th_worker_start(s->pg, s->b, env);
    if (!th_worker_wait_ready(s->w, 60000))
        fail_msg("worker not ready");
    s->p = th_producer_new(s->b);
    s->results = collector_new(s->b, RESULT_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    rstack_t *s = *state;
    if (s == NULL)
        return 0; /* setup failed before the stack existed */
    collector_free(s->results);
    th_producer_free(s->p);
    if (s->w != NULL)
        th_worker_stop(s->w);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

static void send_record(rstack_t *s, const char *acct, const char *id)
{
    send_request(s->p, -1, acct,
                 "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"%s\",\"amount\":100,\"currency\":\"usd\"}}",
                 id, acct, id);
    th_producer_flush(s->p);
}

/* An outside session holding acct's usd balance row. */
static PGconn *lock_balance(rstack_t *s, const char *acct)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO account_balances (account_id, currency) VALUES ('%s', 'usd')", acct);
    th_pg_exec(s->pg, "postgres", sql);
    PGconn *c = th_pg_connect(s->pg, "postgres");
    PQclear(PQexec(c, "BEGIN"));
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM account_balances WHERE account_id = '%s' AND currency = 'usd' "
             "FOR UPDATE",
             acct);
    PGresult *r = PQexec(c, sql);
    assert_int_equal(PQntuples(r), 1);
    PQclear(r);
    return c;
}

static void unlock(PGconn *c)
{
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
}

/* Waits (up to 60 s) until a backend waits for a lock the session holds. */
static void wait_blocked_by(rstack_t *s, PGconn *locker, const char *what)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE %d = ANY (pg_blocking_pids(pid))",
             PQbackendPID(locker));
    for (int i = 0; i < 600; i++) {
        if (th_pg_i64(s->pg, "postgres", sql) > 0)
            return;
        usleep(100 * 1000);
    }
    fail_msg("%s never waited for its lock", what);
}

static void expect_ok(rstack_t *s, const char *id, const char *acct)
{
    const th_msg_t *r = collector_find(s->results, "id", id, acct, 120000);
    if (r == NULL)
        fail_msg("no result for %s", id);
    assert_string_equal(msg_str(r, "status"), "ok");
}

/* Log lines saying the request was retried (its failed attempts). */
static int retries_logged(const char *log, const char *id)
{
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char needle[96], *line = NULL;
    snprintf(needle, sizeof(needle), "\"request_id\":\"%s\"", id);
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) != -1)
        n += strstr(line, "request will be retried") != NULL && strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return n;
}

static void test_retried_request_holds_no_batch_mate(void **state)
{
    rstack_t *s = *state;
    PGconn *lx = lock_balance(s, "acct_ra_x");
    PGconn *ly = lock_balance(s, "acct_ra_y");
    PGconn *lz = lock_balance(s, "acct_ra_z");

    /* X's first attempt waits (alone: nothing else is ready). */
    send_record(s, "acct_ra_x", "ra-x");
    wait_blocked_by(s, lx, "ra-x");
    /* Y starts well after X, so that it still waits when X's first backoff
     * (at most 1 s after its lock timeout) has ended. */
    sleep(3);
    send_record(s, "acct_ra_y", "ra-y");
    wait_blocked_by(s, ly, "ra-y");
    /* Z queues behind the busy executors and takes X's when X fails. */
    send_record(s, "acct_ra_z", "ra-z");
    wait_blocked_by(s, lz, "ra-z");
    char acct[32], id[32];
    for (int i = 0; i < MATES; i++) {
        snprintf(acct, sizeof(acct), "acct_ra_%d", i);
        snprintf(id, sizeof(id), "ra-%d", i);
        send_record(s, acct, id);
    }
    sleep(2); /* X's backoff ends; the worker reads the ten */

    unlock(ly); /* one executor free: X (retried) and the ten are ready */
    for (int i = 0; i < MATES; i++) {
        snprintf(acct, sizeof(acct), "acct_ra_%d", i);
        snprintf(id, sizeof(id), "ra-%d", i);
        expect_ok(s, id, acct);
    }
    unlock(lx);
    unlock(lz);
    expect_ok(s, "ra-x", "acct_ra_x");
    expect_ok(s, "ra-y", "acct_ra_y");
    expect_ok(s, "ra-z", "acct_ra_z");
    char log[512];
    snprintf(log, sizeof(log), "%s", th_worker_log_path(s->w));
    th_worker_stop(s->w);
    s->w = NULL;
    /* Stopped first: the log is whole. Retried once: its second attempt
     * waited alone and got the lock once the ten were answered. */
    assert_int_equal(retries_logged(log, "ra-x"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retried_request_holds_no_batch_mate, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
