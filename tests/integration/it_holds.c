/* it_holds — an operator's holds through the real stack (CONTRACT.md §3,
 * §7): two workers in one group, `tallyctl hold` and `release`.
 *
 * - While one account is held, its requests are answered account_held
 *   (audit event and row, no stored outcome, nothing applied) and another
 *   account's are applied; after the release both are: the held request
 *   sent again is applied, not replayed.
 * - A hold that lands while the account's requests wait in its queue (one
 *   blocked on a row lock, one behind it) stops both.
 * - Every worker sees a hold within 5 s: through NOTIFY; with the
 *   notifying trigger disabled, through the periodic read alone; with the
 *   LISTEN connections killed (they come back, and NOTIFY with them).
 * - Holds that cannot be read stop every request (fail closed) until they
 *   can be again. */
#include "it_e2e_common.h"

#include "ctl_run.h"

#define HOLD_BOUND_MS 5000 /* CONTRACT.md §7 */

typedef struct hstack {
    e2e_t *e;
    collector_t *audit;
    char env_url[300]; /* MIGRATION_DATABASE_URL=… (the owner) */
} hstack_t;

static int setup(void **state)
{
    const char *env[] = {"TALLY_LOCK_TIMEOUT_MS=500", NULL};
    hstack_t *s = calloc(1, sizeof(*s));
    s->e = e2e_start(4, 2, env);
    s->audit = collector_new(s->e->b, AUDIT_TOPIC);
    char url[256];
    th_pg_url(s->e->pg, "tally_owner", url, sizeof(url));
    snprintf(s->env_url, sizeof(s->env_url), "MIGRATION_DATABASE_URL=%s", url);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    hstack_t *s = *state;
    if (s == NULL)
        return 0;
    collector_free(s->audit);
    e2e_stop(s->e);
    free(s);
    return 0;
}

/* `tallyctl hold ACCOUNT --reason …` (reason NULL: release); returns the
 * time it exited, after its commit. */
static int64_t ctl_hold(hstack_t *s, const char *acct, const char *reason)
{
    const char *const env[] = {s->env_url, NULL};
    ctl_out_t o;
    if (reason != NULL)
        ctl_run(NULL, env, (const char *[]){"hold", acct, "--reason", reason, NULL}, &o);
    else
        ctl_run(NULL, env, (const char *[]){"release", acct, NULL}, &o);
    int64_t at = it_now_ms();
    if (o.code != 0)
        fail_msg("tallyctl %s %s: exit %d: %s", reason ? "hold" : "release", acct, o.code, o.err);
    ctl_out_free(&o);
    return at;
}

/* A worker's tally_held_accounts, or -1. */
static int64_t held_gauge(th_worker_t *w)
{
    char *body = NULL;
    int64_t v = -1;
    if (th_worker_http_get(w, "/metrics", &body, 5000) == 200 && body != NULL) {
        const char *p = strstr(body, "\ntally_held_accounts ");
        if (p != NULL)
            v = strtoll(p + strlen("\ntally_held_accounts "), NULL, 10);
    }
    free(body);
    return v;
}

/* Waits until every worker says want accounts are held; returns the
 * milliseconds since t0, failing the test past the contract's bound. */
static int64_t wait_seen(hstack_t *s, int64_t want, int64_t t0, const char *how)
{
    int64_t end = t0 + 30000; /* generous: the bound is asserted below */
    for (;;) {
        bool all = true;
        for (int i = 0; i < s->e->nworkers; i++)
            all = all && held_gauge(s->e->w[i]) == want;
        int64_t ms = it_now_ms() - t0;
        if (all) {
            printf("every worker saw %lld held (%s) %lld ms after the commit\n", (long long)want,
                   how, (long long)ms);
            if (ms > HOLD_BOUND_MS)
                fail_msg("the workers saw the change %lld ms after it, more than %d ms",
                         (long long)ms, HOLD_BOUND_MS);
            return ms;
        }
        if (it_now_ms() > end)
            fail_msg("the workers did not see %lld held within 30 s", (long long)want);
        usleep(20 * 1000);
    }
}

static int64_t count(hstack_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t count(hstack_t *s, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return th_pg_i64(s->e->pg, "postgres", sql);
}

static void test_held_account_answered_others_applied(void **state)
{
    hstack_t *s = *state;
    e2e_t *e = s->e;
    wait_seen(s, 1, ctl_hold(s, "acct_held", "floods the others"), "NOTIFY");

    const char *pay = "{\"external_id\":\"h-1\",\"amount\":500,\"currency\":\"usd\"}";
    const json_t *r = e2e_call_id(e, "acct_held", "held-1", 0, false, "payment.record", pay);
    e2e_err(r, "account_held", NULL);
    e2e_ok(e2e_call_id(e, "acct_free", "free-1", 0, false, "payment.record", pay));

    /* Audited (the event and the row), not stored, nothing applied. */
    const th_msg_t *a = collector_find(s->audit, "request_id", "held-1", "acct_held", 30000);
    assert_non_null(a);
    assert_string_equal(msg_str(a, "error_code"), "account_held");
    assert_int_equal(count(s,
                           "SELECT count(*) FROM payment_system_logs WHERE account_id = '%s'"
                           " AND request_id = 'held-1' AND error_code = 'account_held'",
                           "acct_held"),
                     1);
    assert_int_equal(count(s, "SELECT count(*) FROM tally_request_outcomes WHERE account_id = '%s'",
                           "acct_held"),
                     0);
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_held"), 0);

    /* Released: the same request is applied now (not a replay), and the
     * other account's is a replay of what was applied before. */
    wait_seen(s, 0, ctl_hold(s, "acct_held", NULL), "NOTIFY");
    e2e_ok(e2e_call_id(e, "acct_held", "held-1", 1, false, "payment.record", pay));
    e2e_ok(e2e_call_id(e, "acct_free", "free-1", 1, true, "payment.record", pay));
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_held"), 1);
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_free"), 1);
}

/* Whether either worker's log has needle, waiting up to timeout_ms. */
static bool some_log(e2e_t *e, const char *needle, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    do {
        for (int i = 0; i < e->nworkers; i++) {
            if (th_worker_wait_log(e->w[i], needle, 100))
                return true;
        }
    } while (it_now_ms() < end);
    return false;
}

static void test_hold_lands_while_queued(void **state)
{
    hstack_t *s = *state;
    e2e_t *e = s->e;
    const json_t *r = e2e_call_id(e, "acct_q", "q-pay", 0, false, "payment.record",
                                  "{\"external_id\":\"q-1\",\"amount\":900,\"currency\":\"usd\"}");
    char pay_id[64];
    snprintf(pay_id, sizeof(pay_id), "%s", e2e_str(e2e_ok(r), "payment", "id"));

    /* An outside session holds the payment's row: the refund waits on it
     * (lock timeouts, retries) and the next request waits behind it. */
    PGconn *lock = th_pg_connect(e->pg, "postgres");
    PQclear(PQexec(lock, "BEGIN"));
    PGresult *l = PQexec(lock, "SELECT 1 FROM stripe_payments WHERE account_id = 'acct_q'"
                               " FOR UPDATE");
    assert_int_equal(PQresultStatus(l), PGRES_TUPLES_OK);
    PQclear(l);
    char refund[128];
    snprintf(refund, sizeof(refund), "{\"payment_id\":\"%s\",\"amount\":100}", pay_id);
    e2e_send_raw(e, -1, "acct_q", "acct_q", "q-refund", "payment.refund", NULL, refund);
    e2e_send_raw(e, -1, "acct_q", "acct_q", "q-rec", "payment.record", NULL,
                 "{\"external_id\":\"q-2\",\"amount\":50,\"currency\":\"usd\"}");
    th_producer_flush(e->p);
    if (!some_log(e,
                  "\"msg\":\"request will be retried\",\"account_id\":\"acct_q\","
                  "\"request_id\":\"q-refund\"",
                  30000))
        fail_msg("the refund never waited on the lock");

    /* The hold lands while both wait; then the row is free again. */
    wait_seen(s, 1, ctl_hold(s, "acct_q", "stop it"), "NOTIFY");
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    const json_t *a = e2e_await_nth(e, "acct_q", "q-refund", 0, E2E_WAIT_MS);
    const json_t *b = e2e_await_nth(e, "acct_q", "q-rec", 0, E2E_WAIT_MS);
    assert_true(a != NULL && b != NULL);
    e2e_err(a, "account_held", NULL);
    e2e_err(b, "account_held", NULL);
    assert_int_equal(count(s,
                           "SELECT amount_refunded FROM stripe_payments WHERE account_id = "
                           "'acct_q' AND id = '%s'",
                           pay_id),
                     0);
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_q"), 1);

    wait_seen(s, 0, ctl_hold(s, "acct_q", NULL), "NOTIFY");
    e2e_ok(e2e_call_id(e, "acct_q", "q-refund", 1, false, "payment.refund", refund));
    assert_int_equal(count(s,
                           "SELECT amount_refunded FROM stripe_payments WHERE account_id = "
                           "'acct_q' AND id = '%s'",
                           pay_id),
                     100);
}

static const char LISTENERS[] = "SELECT count(*) FROM pg_stat_activity"
                                " WHERE application_name = 'tally-worker-listen'";

/* Waits until every worker has its LISTEN connection. */
static void await_listeners(e2e_t *e)
{
    int64_t end = it_now_ms() + 30000;
    while (th_pg_i64(e->pg, "postgres", LISTENERS) != e->nworkers && it_now_ms() < end)
        usleep(100 * 1000);
    assert_int_equal(th_pg_i64(e->pg, "postgres", LISTENERS), e->nworkers);
}

/* No notification: the LISTEN connections are up but the trigger that
 * notifies is off, so the periodic read alone brings the hold and the
 * release to every worker within the bound. */
static void test_hold_seen_without_notifications(void **state)
{
    hstack_t *s = *state;
    e2e_t *e = s->e;
    await_listeners(e);
    th_pg_exec(e->pg, "tally_owner",
               "ALTER TABLE tally_account_holds DISABLE TRIGGER tally_account_holds_changed");
    wait_seen(s, 1, ctl_hold(s, "acct_quiet", "no notifications"), "periodic read");
    e2e_err(e2e_call_id(e, "acct_quiet", "quiet-1", 0, false, "settings.get", "{}"), "account_held",
            NULL);
    wait_seen(s, 0, ctl_hold(s, "acct_quiet", NULL), "periodic read");
    e2e_ok(e2e_call_id(e, "acct_quiet", "quiet-1", 1, false, "settings.get", "{}"));
    th_pg_exec(e->pg, "tally_owner",
               "ALTER TABLE tally_account_holds ENABLE TRIGGER tally_account_holds_changed");
}

/* The LISTEN connections killed: the hold still reaches every worker
 * within the bound (the periodic read, or the read a reconnect makes), the
 * connections come back, and notifications work again. */
static void test_hold_seen_with_listen_killed(void **state)
{
    hstack_t *s = *state;
    e2e_t *e = s->e;
    await_listeners(e);
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                               " WHERE application_name = 'tally-worker-listen'"),
                     e->nworkers);
    wait_seen(s, 1, ctl_hold(s, "acct_cut", "listen killed"), "listen killed");
    e2e_err(e2e_call_id(e, "acct_cut", "cut-1", 0, false, "settings.get", "{}"), "account_held",
            NULL);
    for (int i = 0; i < e->nworkers; i++) {
        assert_true(th_worker_wait_log(e->w[i], "the holds' LISTEN connection is down", 10000));
        assert_true(th_worker_wait_log(e->w[i], "the holds' LISTEN connection is back", 30000));
    }
    await_listeners(e);
    wait_seen(s, 0, ctl_hold(s, "acct_cut", NULL), "NOTIFY after the reconnect");
    e2e_ok(e2e_call_id(e, "acct_cut", "cut-1", 1, false, "settings.get", "{}"));
}

/* The holds cannot be read (the worker's role lost its right to them):
 * past the bound no worker starts a request, any account's, since a hold
 * may exist that it cannot see; with the right back, the request waiting
 * meanwhile is applied once. */
static void test_unreadable_holds_stop_every_request(void **state)
{
    hstack_t *s = *state;
    e2e_t *e = s->e;
    th_pg_exec(e->pg, "tally_owner",
               "REVOKE EXECUTE ON FUNCTION tally_held_accounts() FROM tally_app");
    for (int i = 0; i < e->nworkers; i++)
        assert_true(th_worker_wait_log(e->w[i], "reading the holds failed", 30000));
    /* Every worker's last good read is older than the bound from here. */
    usleep(HOLD_BOUND_MS * 1000);
    e2e_send_raw(e, -1, "acct_blind", "acct_blind", "blind-1", "payment.record", NULL,
                 "{\"external_id\":\"b-1\",\"amount\":70,\"currency\":\"usd\"}");
    th_producer_flush(e->p);
    assert_null(e2e_await_nth(e, "acct_blind", "blind-1", 0, 5000));
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_blind"), 0);

    th_pg_exec(e->pg, "tally_owner",
               "GRANT EXECUTE ON FUNCTION tally_held_accounts() TO tally_app");
    e2e_ok(e2e_await_nth(e, "acct_blind", "blind-1", 0, E2E_WAIT_MS));
    assert_int_equal(
        count(s, "SELECT count(*) FROM stripe_payments WHERE account_id = '%s'", "acct_blind"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_held_account_answered_others_applied),
        cmocka_unit_test(test_hold_lands_while_queued),
        cmocka_unit_test(test_hold_seen_without_notifications),
        cmocka_unit_test(test_hold_seen_with_listen_killed),
        cmocka_unit_test(test_unreadable_holds_stop_every_request),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
