/* it_worker_db_bounds — what one account's requests can do to the database side
 * of the worker, and what they cannot (issue 11, CONTRACT.md §3, §4, §7):
 * a balance at its bound is answered conflict at once, never retried; a
 * list of huge payments comes back in pages within 1 MiB; rows locked by
 * an outside session hold no executor beyond the lock timeout, so other
 * accounts are served meanwhile and a stuck request ends; SIGTERM during a
 * lock wait exits within the shutdown timeout and the request is processed
 * after restart exactly once; a CREATEROLE role is refused. Timings are
 * never asserted tightly: every wait is bounded generously. */
#include "it_worker_common.h"

#include "it_big_payments.h"

#include <unistd.h>

typedef struct bstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results, *dlq;
} bstack_t;

/* Short lock waits (so a stuck request ends within seconds), the default
 * retry budget (5 attempts). */
static const char *const worker_env[] = {"TALLY_LOCK_TIMEOUT_MS=500",
                                         "TALLY_STATEMENT_TIMEOUT_MS=3000", NULL};

static int setup(void **state)
{
    bstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(3);
    s->w = th_worker_start(s->pg, s->b, worker_env);
    if (th_worker_wait_partitions(s->w, 3, 60000) < 0)
        fail_msg("worker not ready");
    s->p = th_producer_new(s->b);
    s->results = collector_new(s->b, RESULT_TOPIC);
    s->dlq = collector_new(s->b, DLQ_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    bstack_t *s = *state;
    if (s == NULL)
        return 0; /* setup failed before the stack existed */
    collector_free(s->results);
    collector_free(s->dlq);
    th_producer_free(s->p);
    th_worker_stop(s->w);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

static void record(bstack_t *s, const char *acct, const char *id, const char *currency,
                   long long amount, const char *status)
{
    send_request(s->p, -1, acct,
                 "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"%s\",\"amount\":%lld,\"currency\":\"%s\","
                 "\"status\":\"%s\"}}",
                 id, acct, id, amount, currency, status);
    th_producer_flush(s->p);
}

/* The result of id in acct (waits up to 60 s). */
static const th_msg_t *answer(bstack_t *s, const char *acct, const char *id)
{
    const th_msg_t *r = collector_find(s->results, "id", id, acct, 60000);
    if (r == NULL)
        fail_msg("no result for %s/%s", acct, id);
    return r;
}

static const char *error_code(const th_msg_t *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

static void expect_ok(bstack_t *s, const char *acct, const char *id)
{
    const th_msg_t *r = answer(s, acct, id);
    if (strcmp(msg_str(r, "status"), "ok") != 0)
        fail_msg("%s/%s: expected ok, got %s", acct, id, r->value);
}

static void expect_conflict_amount(bstack_t *s, const char *acct, const char *id)
{
    const th_msg_t *r = answer(s, acct, id);
    json_t *e = json_object_get(r->json, "error");
    if (error_code(r) == NULL || strcmp(error_code(r), "conflict") != 0 ||
        strcmp(json_string_value(json_object_get(e, "field")), "amount") != 0)
        fail_msg("%s/%s: expected conflict on amount, got %s", acct, id, r->value);
}

/* tally_retries_total from /metrics. */
static long long retries(bstack_t *s)
{
    char *body = NULL;
    assert_int_equal(th_worker_http_get(s->w, "/metrics", &body, 10000), 200);
    const char *at = strstr(body, "\ntally_retries_total ");
    assert_non_null(at);
    long long n = atoll(at + strlen("\ntally_retries_total "));
    free(body);
    return n;
}

/* Lines of the worker's log that hold both needles. */
static int log_lines_with(th_worker_t *w, const char *a, const char *b)
{
    FILE *f = fopen(th_worker_log_path(w), "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) != -1)
        n += strstr(line, a) != NULL && strstr(line, b) != NULL;
    free(line);
    fclose(f);
    return n;
}

/* A balance at 2^53 − 1: the next payment that would pass it is answered
 * conflict (field amount) at once — no retry — and the account goes on in
 * every way that keeps within the bound. The same for a row at the top of
 * bigint (a database migrated from before 0006), where the sum overflows. */
static void test_balance_bound_answered_at_once(void **state)
{
    bstack_t *s = *state;
    th_pg_exec(s->pg, "postgres",
               "INSERT INTO account_balances (account_id, currency, available)"
               " VALUES ('acct_top', 'usd', 9007199254740991)");
    long long before = retries(s);
    record(s, "acct_top", "top-1", "usd", 1, "succeeded");
    expect_conflict_amount(s, "acct_top", "top-1");
    assert_int_equal(retries(s), before);
    assert_int_equal(log_lines_with(s->w, "\"top-1\"", "retried"), 0);

    record(s, "acct_top", "top-eur", "eur", 5, "succeeded");
    expect_ok(s, "acct_top", "top-eur");
    record(s, "acct_top", "top-pending", "usd", 5, "pending");
    expect_ok(s, "acct_top", "top-pending");
    send_request(s->p, -1, "acct_top",
                 "{\"id\":\"top-payout\",\"account_id\":\"acct_top\",\"type\":\"payout.create\","
                 "\"payload\":{\"amount\":1000,\"currency\":\"usd\"}}");
    th_producer_flush(s->p);
    expect_ok(s, "acct_top", "top-payout");
    record(s, "acct_top", "top-2", "usd", 1000, "succeeded");
    expect_ok(s, "acct_top", "top-2");

    th_pg_exec(s->pg, "postgres",
               "ALTER TABLE account_balances DROP CONSTRAINT account_balances_bounds;"
               "UPDATE account_balances SET available = 9223372036854775807"
               " WHERE account_id = 'acct_top' AND currency = 'usd';"
               "ALTER TABLE account_balances ADD CONSTRAINT account_balances_bounds"
               " CHECK (available BETWEEN -9007199254740991 AND 9007199254740991"
               "  AND pending_payouts <= 9007199254740991 AND paid_out <= 9007199254740991)"
               " NOT VALID");
    record(s, "acct_top", "top-3", "usd", 1, "succeeded");
    expect_conflict_amount(s, "acct_top", "top-3");
    assert_int_equal(retries(s), before);
    th_pg_exec(s->pg, "postgres",
               "UPDATE account_balances SET available = 0"
               " WHERE account_id = 'acct_top' AND currency = 'usd';"
               "ALTER TABLE account_balances VALIDATE CONSTRAINT account_balances_bounds");
    assert_int_equal(
        th_pg_i64(s->pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE account_id = 'acct_top'"),
        3);
}

/* A failure of the worker's own bookkeeping that no retry changes (here a
 * constraint added by hand) is answered `internal` at once, with its DLQ
 * copy, not after every attempt: once in the claim (the request's own
 * statement), once in the audit row that travels with the next message
 * (a carried write, found after the request's transaction ended). Nothing
 * of either request stays applied. */
static void test_permanent_bookkeeping_failure_answered_at_once(void **state)
{
    bstack_t *s = *state;
    th_pg_exec(s->pg, "postgres",
               "ALTER TABLE tally_request_outcomes ADD CONSTRAINT it_refuse_claim"
               " CHECK (request_id <> 'perm-claim') NOT VALID;"
               "ALTER TABLE payment_system_logs ADD CONSTRAINT it_refuse_audit"
               " CHECK (request_id <> 'perm-audit') NOT VALID");
    long long before = retries(s);
    record(s, "acct_perm", "perm-claim", "usd", 100, "succeeded");
    record(s, "acct_perm", "perm-audit", "usd", 100, "succeeded");
    for (int k = 0; k < 2; k++) {
        const char *id = k == 0 ? "perm-claim" : "perm-audit";
        const th_msg_t *r = answer(s, "acct_perm", id);
        if (error_code(r) == NULL || strcmp(error_code(r), "internal") != 0)
            fail_msg("%s: expected internal, got %s", id, r->value);
    }
    assert_int_equal(retries(s), before);
    assert_int_equal(collector_wait_count(s->dlq, "@key", "acct_perm", NULL, 2, 60000), 2);
    th_pg_exec(s->pg, "postgres",
               "ALTER TABLE tally_request_outcomes DROP CONSTRAINT it_refuse_claim;"
               "ALTER TABLE payment_system_logs DROP CONSTRAINT it_refuse_audit");
    assert_int_equal(
        th_pg_i64(s->pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE account_id = 'acct_perm'"),
        0);
    record(s, "acct_perm", "perm-ok", "usd", 100, "succeeded");
    expect_ok(s, "acct_perm", "perm-ok");
}

/* 100 payments with the largest description and metadata: payment.list
 * {"limit":100} answers within 1 MiB, has_more, and the next page goes on
 * exactly after the last payment given. */
static void test_list_result_within_1_mib(void **state)
{
    bstack_t *s = *state;
    char *order = it_insert_big_payments(s->pg, "acct_big");
    char after[64] = "";
    size_t given = 0;
    for (int page = 0; page < 2; page++) {
        char id[32];
        snprintf(id, sizeof(id), "big-list-%d", page);
        if (page == 0)
            send_request(s->p, -1, "acct_big",
                         "{\"id\":\"%s\",\"account_id\":\"acct_big\",\"type\":\"payment.list\","
                         "\"payload\":{\"limit\":100}}",
                         id);
        else
            send_request(s->p, -1, "acct_big",
                         "{\"id\":\"%s\",\"account_id\":\"acct_big\",\"type\":\"payment.list\","
                         "\"payload\":{\"limit\":100,\"starting_after\":\"%s\"}}",
                         id, after);
        th_producer_flush(s->p);
        const th_msg_t *r = answer(s, "acct_big", id);
        json_t *data = json_object_get(json_object_get(r->json, "result"), "data");
        size_t n = json_array_size(data);
        printf("page %d: %zu payments, result %zu bytes\n", page, n, r->value_len);
        assert_string_equal(msg_str(r, "status"), "ok");
        assert_true(r->value_len <= 1024 * 1024);
        assert_true(n >= 1 && n < 100);
        assert_true(json_is_true(json_object_get(json_object_get(r->json, "result"), "has_more")));
        for (size_t i = 0; i < n; i++) {
            const char *pid = json_string_value(json_object_get(json_array_get(data, i), "id"));
            /* The i-th payment of this page is the (given + i)-th overall. */
            const char *at = order;
            for (size_t k = 0; k < given + i; k++)
                at = strchr(at, ',') + 1;
            assert_int_equal(strncmp(at, pid, strlen(pid)), 0);
            snprintf(after, sizeof(after), "%s", pid);
        }
        given += n;
    }
    free(order);
}

/* Holds a row lock on each of n accounts' usd balance rows from its own
 * connection, as an outside session would. */
static PGconn **lock_balances(bstack_t *s, const char *prefix, int n)
{
    PGconn **c = calloc((size_t)n, sizeof(*c));
    char sql[256];
    for (int k = 0; k < n; k++) {
        snprintf(sql, sizeof(sql),
                 "INSERT INTO account_balances (account_id, currency) VALUES ('%s_%d', 'usd')",
                 prefix, k);
        th_pg_exec(s->pg, "postgres", sql);
        c[k] = th_pg_connect(s->pg, "postgres");
        PQclear(PQexec(c[k], "BEGIN"));
        snprintf(sql, sizeof(sql),
                 "SELECT 1 FROM account_balances WHERE account_id = '%s_%d' FOR UPDATE", prefix, k);
        PGresult *r = PQexec(c[k], sql);
        assert_int_equal(PQntuples(r), 1);
        PQclear(r);
    }
    return c;
}

static void unlock_balances(PGconn **c, int n)
{
    for (int k = 0; k < n; k++) {
        PQclear(PQexec(c[k], "ROLLBACK"));
        PQfinish(c[k]);
    }
    free(c);
}

/* Worker backends now waiting for a lock. */
static int64_t waiting_on_locks(bstack_t *s)
{
    return th_pg_i64(s->pg, "postgres",
                     "SELECT count(*) FROM pg_stat_activity"
                     " WHERE application_name = 'tally-worker' AND wait_event_type = 'Lock'");
}

/* Five outside locks, one per executor (TALLY_POOL_MAX 5): the locked
 * accounts' requests wait at most the lock timeout per attempt, so 20 other
 * accounts are all served while the locks are still held, and the locked
 * requests end (`internal`, with a DLQ copy) after their retry budget
 * instead of hanging. After the locks go, the locked accounts work again. */
static void test_locks_do_not_stall_other_accounts(void **state)
{
    bstack_t *s = *state;
    enum { LOCKED = 5, OTHERS = 20 };
    PGconn **locks = lock_balances(s, "acct_lk", LOCKED);
    long long before = retries(s);
    int64_t sent = it_now_ms();
    char acct[64], id[64];
    for (int k = 0; k < LOCKED; k++) {
        snprintf(acct, sizeof(acct), "acct_lk_%d", k);
        snprintf(id, sizeof(id), "lk-%d", k);
        record(s, acct, id, "usd", 100, "succeeded");
    }
    int64_t end = it_now_ms() + 60000;
    while (waiting_on_locks(s) == 0 && it_now_ms() < end)
        usleep(50 * 1000);
    for (int k = 0; k < OTHERS; k++) {
        snprintf(acct, sizeof(acct), "acct_free_%d", k);
        snprintf(id, sizeof(id), "free-%d", k);
        record(s, acct, id, "usd", 100, "succeeded");
    }
    int64_t t0 = it_now_ms();
    int served = wait_answered(s->results, "free", OTHERS, 120000);
    printf("%d other accounts served in %lld ms while %d accounts' rows were locked\n", served,
           (long long)(it_now_ms() - t0), LOCKED);
    assert_int_equal(served, OTHERS);
    int internal = 0;
    answered_distinct(s->results, "free", OTHERS, &internal);
    assert_int_equal(internal, 0);

    /* The locks are still held: the locked requests end on their own. */
    int ended = wait_answered(s->results, "lk", LOCKED, 120000);
    int64_t budget = it_now_ms() - sent;
    printf("%d locked requests ended %lld ms after they were sent, %lld retries\n", ended,
           (long long)budget, retries(s) - before);
    assert_int_equal(ended, LOCKED);
    /* The retry budget outlasts an ordinary lock wait: 5 attempts of at least
     * the lock timeout (0.5 s) and backoffs of at least 0.5 + 1 + 2 + 4 s,
     * so no earlier than 10 s. A floor the worker's own timers guarantee: a
     * slow machine only makes it later. (It was about 4 s at most.) */
    assert_true(budget >= 9500);
    answered_distinct(s->results, "lk", LOCKED, &internal);
    assert_int_equal(internal, LOCKED);
    assert_true(retries(s) - before >= LOCKED * 4);
    assert_int_equal(collector_wait_count(s->dlq, "@key", "acct_lk_0", NULL, 1, 60000), 1);
    unlock_balances(locks, LOCKED);

    for (int k = 0; k < LOCKED; k++) {
        snprintf(acct, sizeof(acct), "acct_lk_%d", k);
        snprintf(id, sizeof(id), "relock-%d", k);
        record(s, acct, id, "usd", 100, "succeeded");
        expect_ok(s, acct, id);
    }
}

/* An ordinary lock wait (longer than one lock timeout, shorter than the
 * retry budget) costs retries, never the request: it is answered ok once
 * the lock goes, applied once. */
static void test_lock_wait_within_the_budget(void **state)
{
    bstack_t *s = *state;
    PGconn **lock = lock_balances(s, "acct_wait", 1);
    long long before = retries(s);
    record(s, "acct_wait_0", "wait-1", "usd", 100, "succeeded");
    int64_t end = it_now_ms() + 60000;
    while (retries(s) == before && it_now_ms() < end)
        usleep(50 * 1000);
    assert_true(retries(s) > before); /* the first attempt timed out on the lock */
    unlock_balances(lock, 1);
    expect_ok(s, "acct_wait_0", "wait-1");
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM stripe_payments"
                               " WHERE account_id = 'acct_wait_0' AND external_id = 'wait-1'"),
                     1);
}

/* SIGTERM while a statement waits on a lock (lock timeout far beyond the
 * shutdown timeout): the worker cancels it at the deadline and exits within
 * TALLY_SHUTDOWN_TIMEOUT_MS (3 s) plus a margin, without answering it; its
 * backend does not keep waiting. The next worker processes it exactly once. */
static void test_sigterm_during_a_lock_wait(void **state)
{
    bstack_t *s = *state;
    th_worker_stop(s->w);
    const char *env[] = {"TALLY_SHUTDOWN_TIMEOUT_MS=3000", "TALLY_LOCK_TIMEOUT_MS=600000",
                         "TALLY_STATEMENT_TIMEOUT_MS=600000", NULL};
    s->w = th_worker_start(s->pg, s->b, env);
    if (th_worker_wait_partitions(s->w, 3, 60000) < 0)
        fail_msg("worker not ready");
    PGconn **lock = lock_balances(s, "acct_sig", 1);
    record(s, "acct_sig_0", "sig-1", "usd", 100, "succeeded");
    int64_t end = it_now_ms() + 60000;
    while (waiting_on_locks(s) == 0 && it_now_ms() < end)
        usleep(50 * 1000);
    assert_true(waiting_on_locks(s) > 0);

    int64_t t0 = it_now_ms();
    th_worker_signal(s->w, SIGTERM);
    int st = th_worker_wait(s->w, 60000);
    int64_t took = it_now_ms() - t0;
    printf("SIGTERM during a lock wait: exited after %lld ms (shutdown timeout 3000 ms)\n",
           (long long)took);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(took < 10000);
    assert_true(th_worker_wait_log(s->w, "cancelling running statements", 1000));
    /* The cancelled statement's backend is not left waiting on the lock. */
    end = it_now_ms() + 10000;
    while (waiting_on_locks(s) > 0 && it_now_ms() < end)
        usleep(50 * 1000);
    assert_int_equal(waiting_on_locks(s), 0);
    assert_null(collector_find(s->results, "id", "sig-1", "acct_sig_0", 1000));
    th_worker_stop(s->w);

    s->w = th_worker_start(s->pg, s->b, worker_env);
    if (th_worker_wait_partitions(s->w, 3, 60000) < 0)
        fail_msg("worker not ready");
    unlock_balances(lock, 1);
    expect_ok(s, "acct_sig_0", "sig-1");
    record(s, "acct_sig_0", "sig-2", "usd", 1, "succeeded");
    expect_ok(s, "acct_sig_0", "sig-2"); /* everything before it was answered */
    assert_int_equal(collector_count(s->results, "id", "sig-1", "acct_sig_0"), 1);
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM stripe_payments"
                               " WHERE account_id = 'acct_sig_0' AND external_id = 'sig-1'"),
                     1);
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs"
                               " WHERE account_id = 'acct_sig_0' AND request_id = 'sig-1'"),
                     1);
}

/* A login role with CREATEROLE (it could grant itself the tables' owner)
 * makes the worker refuse to start: exit 1, one clear line. */
static void test_createrole_role_refused(void **state)
{
    bstack_t *s = *state;
    th_pg_exec(s->pg, "postgres", "CREATE ROLE it_cr LOGIN CREATEROLE IN ROLE tally_app");
    char url[256], env_url[300];
    th_pg_url(s->pg, "it_cr", url, sizeof(url));
    snprintf(env_url, sizeof(env_url), "DATABASE_URL=%s", url);
    const char *env[] = {env_url, NULL};
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    int st = th_worker_wait(w, 60000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(th_worker_wait_log(w, "refusing to run with this database role", 1000));
    assert_true(th_worker_wait_log(w, "CREATEROLE", 1000));
    th_worker_stop(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance_bound_answered_at_once),
        cmocka_unit_test(test_permanent_bookkeeping_failure_answered_at_once),
        cmocka_unit_test(test_list_result_within_1_mib),
        cmocka_unit_test(test_locks_do_not_stall_other_accounts),
        cmocka_unit_test(test_lock_wait_within_the_budget),
        cmocka_unit_test(test_createrole_role_refused),
        cmocka_unit_test(test_sigterm_during_a_lock_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
