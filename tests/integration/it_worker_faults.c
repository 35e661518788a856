/* it_worker_faults — ordering, fairness and survival: per-account order,
 * one account's backlog against another's single request, two replicas in
 * one group, kill -9 and SIGTERM mid-stream, PostgreSQL restarted,
 * connections terminated, broker errors and a broker down. After each, every
 * request is answered and no payment was recorded twice (payment.record's
 * effects are the observable "applied once"). Through
 * all of it every line a worker writes is one JSON log object without the
 * database password (checked as each worker stops). */
#include "it_worker_common.h"

#include "common/clock.h"

#include <unistd.h>

typedef struct fstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results;
    char url_env[256];
    const char *env[3];
} fstack_t;

/* In every worker's DATABASE_URL; no log line may show it. */
#define DB_PASSWORD "Fault-t3st-pw"

static th_worker_t *start_worker(fstack_t *s)
{
    return th_worker_start(s->pg, s->b, s->env);
}

static void send_one(fstack_t *s, int32_t partition, const char *acct, const char *id)
{
    send_request(s->p, partition, acct,
                 "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"%s\",\"amount\":100,\"currency\":\"usd\"}}",
                 id, acct, id);
}

/* count requests "<prefix>-<n>" over naccounts accounts (keyed: the key picks
 * the partition). */
static void send_many(fstack_t *s, const char *prefix, int count, int naccounts)
{
    char acct[64], id[64];
    for (int n = 0; n < count; n++) {
        snprintf(acct, sizeof(acct), "acct_%s_%d", prefix, n % naccounts);
        snprintf(id, sizeof(id), "%s-%d", prefix, n);
        send_one(s, -1, acct, id);
    }
    th_producer_flush(s->p);
}

/* Every request answered, none `internal`, and each applied once. */
static void expect_all_answered_once(fstack_t *s, const char *prefix, int count)
{
    int have = wait_answered(s->results, prefix, count, 120000);
    if (have != count)
        fail_msg("%s: %d of %d requests answered", prefix, have, count);
    int internal = 0;
    answered_distinct(s->results, prefix, count, &internal);
    assert_int_equal(internal, 0);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) - count(DISTINCT (account_id, external_id)) FROM "
             "stripe_payments WHERE external_id LIKE '%s-%%'",
             prefix);
    assert_int_equal(th_pg_i64(s->pg, "postgres", sql), 0);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM stripe_payments WHERE external_id LIKE '%s-%%'", prefix);
    assert_int_equal(th_pg_i64(s->pg, "postgres", sql), count);
}

static int setup(void **state)
{
    fstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    worker_role_for_log_checks(s->pg, DB_PASSWORD, s->url_env, sizeof(s->url_env));
    s->env[0] = s->url_env;
    s->env[1] = "TALLY_SHUTDOWN_TIMEOUT_MS=10000";
    s->env[2] = NULL;
    s->b = th_broker_start(3);
    s->w = start_worker(s);
    if (th_worker_wait_partitions(s->w, 1, 60000) < 0)
        fail_msg("worker not ready");
    s->p = th_producer_new(s->b);
    s->results = collector_new(s->b, RESULT_TOPIC);
    /* The stack answers before any fault. */
    send_one(s, -1, "acct_probe", "probe-0");
    th_producer_flush(s->p);
    const th_msg_t *r = collector_find(s->results, "id", "probe-0", "acct_probe", 60000);
    if (r == NULL)
        fail_msg("no answer to the probe request");
    assert_string_equal(msg_str(r, "status"), "ok");
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    fstack_t *s = *state;
    collector_free(s->results);
    th_producer_free(s->p);
    th_worker_stop(s->w);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

/* The results of one account come out in the order its requests went in. */
static void test_per_account_order(void **state)
{
    fstack_t *s = *state;
    enum { N = 300 };
    char id[32];
    for (int n = 0; n < N; n++) {
        snprintf(id, sizeof(id), "ord-%d", n);
        send_one(s, -1, n % 2 ? "acct_ord_a" : "acct_ord_b", id);
    }
    th_producer_flush(s->p);
    expect_all_answered_once(s, "ord", N);
    int last_a = -1, last_b = -1;
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        const char *mid = msg_str(m, "id");
        if (mid == NULL || strncmp(mid, "ord-", 4) != 0)
            continue;
        int n = atoi(mid + 4);
        int *last = n % 2 ? &last_a : &last_b;
        if (n <= *last)
            fail_msg("%s answered after ord-%d", mid, *last);
        *last = n;
    }
}

/* One account with 5 000 queued requests on partition 0 does not hold back
 * another account's single request on partition 1. The delay is printed,
 * never asserted. */
static void test_fairness(void **state)
{
    fstack_t *s = *state;
    enum { BIG = 5000 };
    char id[32];
    for (int n = 0; n < BIG; n++) {
        snprintf(id, sizeof(id), "big-%d", n);
        send_one(s, 0, "acct_big", id);
    }
    th_producer_flush(s->p);
    /* Let the backlog build up inside the worker, then the small request. */
    collector_find(s->results, "id", "big-50", "acct_big", 60000);
    int64_t t0 = it_now_ms();
    int64_t sent_wall = clock_wall_ms();
    send_one(s, 1, "acct_small", "small-0");
    th_producer_flush(s->p);
    const th_msg_t *r = collector_find(s->results, "id", "small-0", "acct_small", 60000);
    int64_t delay = it_now_ms() - t0;
    assert_non_null(r);
    int64_t processed = 0;
    assert_int_equal(clock_parse_rfc3339(msg_str(r, "processed_at"), &processed), 0);
    int big_done = answered_distinct(s->results, "big", BIG, NULL);
    print_message("fairness: the small account's request was processed %lld ms after it was "
                  "sent (its result seen after %lld ms), while %d of %d of the big account's "
                  "were answered\n",
                  (long long)(processed - sent_wall), (long long)delay, big_done, BIG);
    /* Read-ahead is bounded: print the worker's window and peak memory. */
    char *body = NULL;
    if (th_worker_http_get(s->w, "/readyz", &body, 5000) > 0 && body != NULL) {
        json_t *j = json_loads(body, 0, NULL);
        print_message("fairness: %lld requests in flight in the worker (window 1000)\n",
                      (long long)json_integer_value(json_object_get(j, "in_flight")));
        json_decref(j);
    }
    free(body);
    int64_t t1 = it_now_ms();
    expect_all_answered_once(s, "big", BIG);
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)th_worker_pid(s->w));
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0)
            print_message("fairness: worker peak RSS %s", line + 6);
    }
    if (f != NULL)
        fclose(f);
    print_message("fairness: the big account's backlog took %lld ms more\n",
                  (long long)(it_now_ms() - t1));
}

/* Many accounts at once: batches of different accounts commit together
 * (group commit). Prints the throughput; asserts only the answers. */
static void test_throughput_many_accounts(void **state)
{
    fstack_t *s = *state;
    enum { N = 3000 };
    int64_t t0 = it_now_ms();
    send_many(s, "thr", N, 300);
    expect_all_answered_once(s, "thr", N);
    int64_t ms = it_now_ms() - t0;
    print_message("throughput: %d requests of 300 accounts answered in %lld ms (%.0f/s, "
                  "produce and consume included; %s build)\n",
                  N, (long long)ms, N * 1000.0 / (double)(ms > 0 ? ms : 1),
#if defined(__SANITIZE_ADDRESS__)
                  "ASan"
#else
                  "plain"
#endif
    );
}

/* Lines of a worker's log that contain needle. */
static int count_log_lines(th_worker_t *w, const char *needle)
{
    FILE *f = fopen(th_worker_log_path(w), "r");
    char line[4096];
    int n = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, needle) != NULL;
    if (f != NULL)
        fclose(f);
    return n;
}

/* A tiny read-ahead window: flow control pauses and resumes the partitions
 * hundreds of times, and every resume seeks to one past the last message
 * taken (librdkafka would otherwise sleep up to a second). A seek one too far
 * would lose a request, one too short would process one twice. */
static void test_small_window_pause_resume(void **state)
{
    fstack_t *s = *state;
    th_worker_stop(s->w);
    const char *env[] = {s->url_env, "TALLY_SHUTDOWN_TIMEOUT_MS=10000", "TALLY_MAX_IN_FLIGHT=16",
                         "TALLY_LOG_LEVEL=debug", NULL};
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    if (th_worker_wait_partitions(w, 1, 60000) < 0)
        fail_msg("worker with a small window not ready");
    enum { N = 1500 };
    send_many(s, "win", N, 150);
    expect_all_answered_once(s, "win", N);
    int resumes = count_log_lines(w, "\"resumed\":") - count_log_lines(w, "\"resumed\":0");
    print_message("small window: %d flow-control resumes for %d requests\n", resumes, N);
    assert_true(resumes >= 5);
    stop_worker_checked(w, DB_PASSWORD);
    s->w = start_worker(s);
    if (th_worker_wait_partitions(s->w, 1, 60000) < 0)
        fail_msg("worker not ready again");
}

/* Two replicas in one group share the partitions; nothing is lost or
 * applied twice while the second joins and leaves. */
static void test_two_replicas(void **state)
{
    fstack_t *s = *state;
    th_worker_t *w2 = start_worker(s);
    send_many(s, "two", 400, 40);
    assert_true(th_worker_wait_log(w2, "partitions assigned", 60000));
    send_many(s, "twob", 400, 40);
    expect_all_answered_once(s, "two", 400);
    expect_all_answered_once(s, "twob", 400);
    stop_worker_checked(w2, DB_PASSWORD);
    send_many(s, "twoc", 200, 20);
    expect_all_answered_once(s, "twoc", 200);
}

static int answered_now(fstack_t *s, const char *prefix, int count);
static void wait_some_answered(fstack_t *s, const char *prefix, int count, int some);

/* A replica frozen past the session timeout (a long GC pause, a stopped
 * VM) loses its partitions to the other; when it wakes up it must not
 * commit offsets it no longer owns, and nothing is applied twice. */
static void test_frozen_replica_loses_partitions(void **state)
{
    fstack_t *s = *state;
    enum { N = 900 };
    th_worker_t *w2 = start_worker(s);
    /* Freeze only once the group is stable, with partitions on both. */
    assert_true(th_worker_wait_log(w2, "\"msg\":\"partitions assigned\",\"count\":1", 60000));
    send_many(s, "frozen", N, 30);
    wait_some_answered(s, "frozen", N, 100);
    kill(th_worker_pid(s->w), SIGSTOP);
    sleep(10); /* > session.timeout.ms (6 s): the group moves on without it */
    kill(th_worker_pid(s->w), SIGCONT);
    expect_all_answered_once(s, "frozen", N);
    stop_worker_checked(w2, DB_PASSWORD);
    send_many(s, "frozenb", 100, 10);
    expect_all_answered_once(s, "frozenb", 100);
}

static int answered_now(fstack_t *s, const char *prefix, int count)
{
    collector_poll(s->results, 2048, 100);
    return answered_distinct(s->results, prefix, count, NULL);
}

static void wait_some_answered(fstack_t *s, const char *prefix, int count, int some)
{
    int64_t end = it_now_ms() + 60000;
    while (answered_now(s, prefix, count) < some && it_now_ms() < end)
        ;
}

static void test_kill9_then_restart(void **state)
{
    fstack_t *s = *state;
    enum { N = 1500 };
    send_many(s, "kill", N, 50);
    wait_some_answered(s, "kill", N, 100);
    kill(th_worker_pid(s->w), SIGKILL);
    int st = th_worker_wait(s->w, 10000);
    assert_true(st >= 0 && WIFSIGNALED(st));
    stop_worker_checked(s->w, DB_PASSWORD);
    s->w = start_worker(s);
    expect_all_answered_once(s, "kill", N);
}

static void test_sigterm_midstream(void **state)
{
    fstack_t *s = *state;
    enum { N = 1500 };
    send_many(s, "term", N, 50);
    wait_some_answered(s, "term", N, 100);
    th_worker_signal(s->w, SIGTERM);
    int st = th_worker_wait(s->w, 30000);
    assert_true(st >= 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    stop_worker_checked(s->w, DB_PASSWORD);
    s->w = start_worker(s);
    expect_all_answered_once(s, "term", N);
}

static void test_postgres_restart(void **state)
{
    fstack_t *s = *state;
    enum { N = 600 };
    send_many(s, "pgr", N, 30);
    wait_some_answered(s, "pgr", N, 50);
    th_pg_halt(s->pg);
    /* While it is down, readiness turns false (bounded wait, not a timing). */
    bool unready = false;
    for (int i = 0; i < 100 && !unready; i++) {
        char *body = NULL;
        unready = th_worker_http_get(s->w, "/readyz", &body, 2000) == 503;
        free(body);
        if (!unready)
            usleep(100 * 1000);
    }
    th_pg_resume(s->pg);
    assert_true(unready);
    expect_all_answered_once(s, "pgr", N);
    assert_true(th_worker_wait_partitions(s->w, 1, 60000) > 0);
}

static void test_connections_terminated(void **state)
{
    fstack_t *s = *state;
    enum { N = 600 };
    send_many(s, "term_be", N, 30);
    for (int round = 0; round < 5; round++) {
        wait_some_answered(s, "term_be", N, (round + 1) * 60);
        th_pg_i64(s->pg, "postgres",
                  "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE usename = 'tally_worker'");
    }
    expect_all_answered_once(s, "term_be", N);
}

static void test_broker_errors(void **state)
{
    fstack_t *s = *state;
    enum { N = 400 };
    /* Produce requests fail with retriable errors (NOT_LEADER_FOR_PARTITION
     * = 6, REQUEST_TIMED_OUT = 7) for a while: results and audit events are
     * produced again, never lost. */
    th_broker_command(s->b, "request-errors Produce 6 7 6 7 6 7 6 7");
    send_many(s, "berr", N, 20);
    expect_all_answered_once(s, "berr", N);
    th_broker_command(s->b, "clear-errors Produce");
    /* One broker down and up again mid-stream. */
    send_many(s, "bdown", N, 20);
    th_broker_command(s->b, "broker-down 2");
    wait_some_answered(s, "bdown", N, N / 4);
    th_broker_command(s->b, "broker-up 2");
    expect_all_answered_once(s, "bdown", N);
}

/* Every line the worker wrote, through restarts, outages, terminated
 * connections and broker errors, is one JSON log object, and none holds the
 * database password. The other workers' logs were checked as they stopped. */
static void test_log_lines_are_json(void **state)
{
    fstack_t *s = *state;
    stop_worker_checked(s->w, DB_PASSWORD);
    s->w = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_per_account_order),
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_throughput_many_accounts),
        cmocka_unit_test(test_small_window_pause_resume),
        cmocka_unit_test(test_two_replicas),
        cmocka_unit_test(test_frozen_replica_loses_partitions),
        cmocka_unit_test(test_kill9_then_restart),
        cmocka_unit_test(test_sigterm_midstream),
        cmocka_unit_test(test_postgres_restart),
        cmocka_unit_test(test_connections_terminated),
        cmocka_unit_test(test_broker_errors),
        cmocka_unit_test(test_log_lines_are_json),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER")); /* e.g. IT_FILTER='*terminated*' */
    return cmocka_run_group_tests(tests, setup, teardown);
}
