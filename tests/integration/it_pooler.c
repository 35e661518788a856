/* it_pooler — tally-worker behind a real PgBouncer (Debian 12's 1.18) in
 * transaction pooling, which runs each transaction of a client connection
 * on whichever server connection is free and keeps no prepared statements.
 *
 * - TALLY_PREPARED_STATEMENTS=off: two workers whose pools (4 each) share 3
 *   server connections, 520 requests of ten job types with known answers,
 *   one worker restarted midway. Every request is answered as expected,
 *   nothing `internal`, the DLQ stays empty, PostgreSQL never sees more
 *   than 3 worker connections, and a client of the same pooler, run between
 *   the workers' transactions on the same server connections, never sees a
 *   tenant setting or a tenant's row.
 * - on (the default), which such a pooler breaks (SQLSTATE 26000 and
 *   42P05): consumption pauses instead of spending attempts (no answer
 *   `internal`, tally_retries_total 0), /readyz answers 503 with the
 *   reason, tally_database_up is 0, and the log line names the fix. A worker
 *   started with the setting off then answers every request, each applied
 *   once.
 * - pool_pooler_check, the probe that decides when such a worker resumes:
 *   a fault behind transaction pooling, none directly or behind session
 *   pooling. */
#include "it_db_common.h"

#include "pool/pooler.h"

#define PARTITIONS  4
#define SERVER_POOL 3
#define ACCOUNTS    40
#define ANSWER_WAIT 180000

typedef struct stack {
    th_pg_t *pg;
    th_broker_t *b;
    th_pgbouncer_t *pb;
    th_producer_t *p;
    collector_t *results;
    char url_env[256]; /* DATABASE_URL through the pooler */
} pstack_t;

static int setup(void **state)
{
    pstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(PARTITIONS);
    th_pgbouncer_config_t pc = {.pool_mode = "transaction", .default_pool_size = SERVER_POOL};
    s->pb = th_pgbouncer_start(s->pg, &pc);
    char url[200];
    th_pgbouncer_url(s->pb, "tally_worker", url, sizeof(url));
    snprintf(s->url_env, sizeof(s->url_env), "DATABASE_URL=%s", url);
    s->p = th_producer_new(s->b);
    s->results = collector_new(s->b, RESULT_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    pstack_t *s = *state;
    if (s == NULL)
        return 0;
    collector_free(s->results);
    th_producer_free(s->p);
    th_pgbouncer_stop(s->pb);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

static th_worker_t *start_worker(pstack_t *s, const char *prepared)
{
    const char *env[] = {s->url_env,
                         prepared,
                         "TALLY_POOL_MAX=4",
                         "TALLY_MAX_RETRIES=2",
                         "TALLY_SHUTDOWN_TIMEOUT_MS=10000",
                         NULL};
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    if (!th_worker_wait_ready(w, 60000))
        fail_msg("worker behind pgbouncer not ready");
    return w;
}

/* One account's requests, in order, with the answer each must get. */
static const struct step {
    const char *type;
    const char *payload;
    const char *expect; /* "ok" or an error code */
} STEPS[] = {
    {"settings.update", "{\"min_payout_amount\":500}", "ok"},
    {"payment.record", "{\"external_id\":\"x1\",\"amount\":1000,\"currency\":\"usd\"}", "ok"},
    {"payment.record", "{\"external_id\":\"x1\",\"amount\":1000,\"currency\":\"usd\"}", "conflict"},
    {"payout.create", "{\"amount\":5000,\"currency\":\"usd\"}", "insufficient_funds"},
    {"payout.create", "{\"amount\":100,\"currency\":\"usd\"}", "invalid_request"},
    {"payout.create", "{\"amount\":600,\"currency\":\"usd\"}", "ok"},
    {"code.create", "{\"code\":\"ONCE-1\",\"max_redemptions\":1}", "ok"},
    {"code.redeem", "{\"code\":\"ONCE-1\"}", "ok"},
    {"code.redeem", "{\"code\":\"ONCE-1\"}", "conflict"},
    {"agent.link", "{\"agent_id\":\"ag1\"}", "ok"},
    {"payment.get", "{\"payment_id\":\"pay_none\"}", "not_found"},
    {"balance.get", "{\"currency\":\"usd\"}", "ok"},
    {"audit.list", "{\"limit\":5}", "ok"},
};
#define NSTEPS ((int)(sizeof(STEPS) / sizeof(STEPS[0])))

/* "<prefix>_<a>" and "<prefix>-<a * NSTEPS + k>". */
static void ids_of(const char *prefix, int a, int k, char *acct, size_t asize, char *id,
                   size_t isize)
{
    snprintf(acct, asize, "%s_%d", prefix, a);
    snprintf(id, isize, "%s-%d", prefix, a * NSTEPS + k);
}

/* Sends every account's steps from..to-1, keyed by the account (so they
 * run in order). */
static void send_mix(pstack_t *s, const char *prefix, int from, int to)
{
    char acct[64], id[64];
    for (int k = from; k < to; k++) {
        for (int a = 0; a < ACCOUNTS; a++) {
            ids_of(prefix, a, k, acct, sizeof(acct), id, sizeof(id));
            send_request(s->p, -1, acct,
                         "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"%s\",\"payload\":%s}", id,
                         acct, STEPS[k].type, STEPS[k].payload);
        }
    }
    th_producer_flush(s->p);
}

/* A client of the same pooler, as the workers' role: whichever server
 * connection its transaction gets, no tenant setting and so no tenant row
 * is visible. Returns how many checks ran. */
static int check_no_tenant_leaks(pstack_t *s, int rounds)
{
    PGconn *c = th_pgbouncer_connect(s->pb, "tally_worker");
    for (int i = 0; i < rounds; i++) {
        PGresult *r = PQexec(c, "SELECT coalesce(current_setting('app.account_id', true), ''),"
                                " (SELECT count(*) FROM stripe_payments),"
                                " (SELECT count(*) FROM tally_request_outcomes)");
        if (PQresultStatus(r) != PGRES_TUPLES_OK)
            fail_msg("leak check: %s", PQresultErrorMessage(r));
        if (PQgetvalue(r, 0, 0)[0] != '\0' || strcmp(PQgetvalue(r, 0, 1), "0") != 0 ||
            strcmp(PQgetvalue(r, 0, 2), "0") != 0)
            fail_msg("a pooled transaction saw tenant %s with %s payments, %s outcomes",
                     PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
        PQclear(r);
    }
    PQfinish(c);
    return rounds;
}

/* The most worker connections PostgreSQL serves at once, sampled. */
static int64_t worker_backends(pstack_t *s)
{
    return th_pg_i64(s->pg, "postgres",
                     "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tally_worker'");
}

/* Answers to the mix so far: distinct ids answered; fails the test on an
 * answer that is not the expected one or an `internal`. */
static int check_answers(pstack_t *s, const char *prefix)
{
    char acct[64], id[64];
    int answered = 0;
    for (int a = 0; a < ACCOUNTS; a++) {
        for (int k = 0; k < NSTEPS; k++) {
            ids_of(prefix, a, k, acct, sizeof(acct), id, sizeof(id));
            bool seen = false;
            for (int i = 0; i < s->results->n; i++) {
                const th_msg_t *m = &s->results->msgs[i];
                const char *mid = msg_str(m, "id"), *ma = msg_str(m, "account_id");
                if (mid == NULL || ma == NULL || strcmp(mid, id) != 0 || strcmp(ma, acct) != 0)
                    continue;
                const char *status = msg_str(m, "status");
                const char *code =
                    json_string_value(json_object_get(json_object_get(m->json, "error"), "code"));
                const char *got = status != NULL && strcmp(status, "ok") == 0 ? "ok" : code;
                if (got == NULL || strcmp(got, STEPS[k].expect) != 0)
                    fail_msg("%s (%s, %s): answered %s, expected %s", id, acct, STEPS[k].type,
                             got ? got : "?", STEPS[k].expect);
                if (strcmp(STEPS[k].type, "balance.get") == 0) {
                    json_t *row = json_array_get(
                        json_object_get(json_object_get(m->json, "result"), "data"), 0);
                    assert_int_equal(json_integer_value(json_object_get(row, "available")), 400);
                    assert_int_equal(json_integer_value(json_object_get(row, "pending_payouts")),
                                     600);
                }
                seen = true;
            }
            answered += seen;
        }
    }
    return answered;
}

/* Waits until want requests of the mix are answered (as expected), running
 * leak checks and sampling PostgreSQL's worker connections meanwhile. */
static void await_mix(pstack_t *s, int want, int *checks, int64_t *most)
{
    int64_t end = it_now_ms() + ANSWER_WAIT;
    int answered;
    while ((answered = check_answers(s, "pool")) < want && it_now_ms() < end) {
        *checks += check_no_tenant_leaks(s, 20);
        int64_t n = worker_backends(s);
        *most = n > *most ? n : *most;
        collector_poll(s->results, 1024, 200);
    }
    if (answered < want)
        fail_msg("%d of %d requests answered", answered, want);
}

static void test_transaction_pooling_unnamed_statements(void **state)
{
    pstack_t *s = *state;
    const char *off = "TALLY_PREPARED_STATEMENTS=off";
    th_worker_t *w[2] = {start_worker(s, off), start_worker(s, off)};
    db_wait_shared(w, 2, PARTITIONS);
    const int total = ACCOUNTS * NSTEPS, half = NSTEPS / 2;
    int checks = 0;
    int64_t most = 0;
    send_mix(s, "pool", 0, half);
    await_mix(s, ACCOUNTS * half, &checks, &most);

    /* A worker restarts; its new connections get server connections the
     * old ones used (with named statements, they would collide there). */
    th_worker_signal(w[0], SIGTERM);
    int st = th_worker_wait(w[0], 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    stop_worker_checked(w[0], NULL);
    w[0] = start_worker(s, off);
    db_wait_shared(w, 2, PARTITIONS);
    send_mix(s, "pool", half, NSTEPS);
    await_mix(s, total, &checks, &most);
    checks += check_no_tenant_leaks(s, 20);
    printf("behind pgbouncer (transaction, %d servers), 2 workers x 4 connections, one "
           "restarted: %d requests answered as expected, %d leak checks, at most %lld worker "
           "backends\n",
           SERVER_POOL, total, checks, (long long)most);
    assert_true(most <= SERVER_POOL);
    /* Each account's payment once, its payout once: the balances add up. */
    assert_int_equal(
        th_pg_i64(s->pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE account_id LIKE 'pool_%'"),
        ACCOUNTS);
    assert_int_equal(
        th_pg_i64(s->pg, "postgres", "SELECT count(*) FROM pay_out WHERE account_id LIKE 'pool_%'"),
        ACCOUNTS);
    assert_int_equal(db_balance_mismatches(s->pg, "pool_"), 0);
    db_expect_dlq_empty(s->b, 3000);
    for (int i = 0; i < 2; i++) {
        assert_true(db_metric(w[i], "tally_database_up") == 1);
        stop_worker_checked(w[i], NULL);
    }
}

/* count requests "pon-<n>" over 20 accounts, payment.record each. */
static void send_payments(pstack_t *s, const char *prefix, int count)
{
    char acct[64], id[64];
    for (int n = 0; n < count; n++) {
        snprintf(acct, sizeof(acct), "%s_%d", prefix, n % 20);
        snprintf(id, sizeof(id), "%s-%d", prefix, n);
        send_request(s->p, -1, acct,
                     "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.record\","
                     "\"payload\":{\"external_id\":\"%s\",\"amount\":100,\"currency\":\"usd\"}}",
                     id, acct, id);
    }
    th_producer_flush(s->p);
}

static void test_prepared_statements_on_pause_instead_of_failing(void **state)
{
    pstack_t *s = *state;
    enum { N = 200 };
    th_worker_t *w = start_worker(s, "TALLY_PREPARED_STATEMENTS=on");
    send_payments(s, "pon", N);

    /* The pooler hands the worker's named statements to other connections:
     * the worker says so once, with the fix, and stops consuming. */
    if (!th_worker_wait_log(w, "a connection pooler lost prepared statements", 90000))
        fail_msg("no pooler fault reported");
    assert_true(th_worker_wait_log(w, "TALLY_PREPARED_STATEMENTS=off", 1000));
    assert_true(th_worker_wait_log(w, "max_prepared_statements", 1000));
    if (!db_wait_readyz(w, 503, "a connection pooler lost prepared statements", 60000))
        fail_msg("/readyz does not report the pooler fault");
    /* Still unready after probing again (a SELECT 1 would pass). */
    int64_t until = it_now_ms() + 8000;
    while (it_now_ms() < until) {
        assert_true(db_wait_readyz(w, 503, "TALLY_PREPARED_STATEMENTS=off", 5000));
        collector_poll(s->results, 1024, 500);
    }
    assert_true(db_metric(w, "tally_database_up") == 0);
    assert_true(db_metric(w, "tally_retries_total") == 0);
    int internal = 0, answered = answered_distinct(s->results, "pon", N, &internal);
    assert_int_equal(internal, 0);
    printf("prepared statements on behind pgbouncer: paused with %d of %d answered, "
           "0 retries, 0 internal\n",
           answered, N);
    th_worker_signal(w, SIGTERM);
    int st = th_worker_wait(w, 30000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    stop_worker_checked(w, NULL);

    /* Fixed as the log line says: every request answered, each once. */
    w = start_worker(s, "TALLY_PREPARED_STATEMENTS=off");
    int have = wait_answered(s->results, "pon", N, ANSWER_WAIT);
    if (have != N)
        fail_msg("%d of %d answered after the fix", have, N);
    answered_distinct(s->results, "pon", N, &internal);
    assert_int_equal(internal, 0);
    assert_int_equal(
        th_pg_i64(s->pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE account_id LIKE 'pon_%'"),
        N);
    assert_int_equal(db_balance_mismatches(s->pg, "pon_"), 0);
    db_expect_dlq_empty(s->b, 3000);
    stop_worker_checked(w, NULL);
}

/* pool_pooler_check finds the fault behind transaction pooling, and none
 * directly or behind session pooling (a false one would keep a worker
 * paused). */
static pool_pooler_result_t check_through(const char *url)
{
    pool_t *pool = NULL;
    char err[256];
    pool_config_t pc = {.conninfo = url, .max = 1, .connect_timeout_ms = 10000};
    if (pool_new(&pc, &pool, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    pool_pooler_result_t r = pool_pooler_check(pool, err, sizeof(err));
    pool_free(pool);
    return r;
}

static void test_pooler_check(void **state)
{
    pstack_t *s = *state;
    char direct[200], pooled[200], session[200];
    th_pg_url(s->pg, "tally_worker", direct, sizeof(direct));
    th_pgbouncer_url(s->pb, "tally_worker", pooled, sizeof(pooled));
    th_pgbouncer_config_t sc = {.pool_mode = "session", .default_pool_size = SERVER_POOL};
    th_pgbouncer_t *pbs = th_pgbouncer_start(s->pg, &sc);
    th_pgbouncer_url(pbs, "tally_worker", session, sizeof(session));
    int faults = 0;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(check_through(direct), POOL_POOLER_OK);
        assert_int_equal(check_through(session), POOL_POOLER_OK);
        pool_pooler_result_t r = check_through(pooled);
        assert_int_not_equal(r, POOL_POOLER_UNREACHABLE);
        faults += r == POOL_POOLER_FAULT;
    }
    th_pgbouncer_stop(pbs);
    printf("pooler check: 3 of 3 passed direct and behind session pooling, %d of 3 found the "
           "fault behind transaction pooling\n",
           faults);
    assert_true(faults > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pooler_check),
        cmocka_unit_test(test_transaction_pooling_unnamed_statements),
        cmocka_unit_test(test_prepared_statements_on_pause_instead_of_failing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
