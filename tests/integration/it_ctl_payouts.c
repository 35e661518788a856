/* it_ctl_payouts — `tallyctl payouts due` against the real stack (private
 * PostgreSQL, embedded broker, one tally-worker): scheduled payouts
 * (CONTRACT.md §6, payment settings).
 *
 * Accounts on several schedules, with and without a default route, with a
 * balance below the minimum and one in a currency that is not ISO 4217.
 * --dry-run lists what is due and sends nothing; a run enqueues one
 * payout.create per account and currency, answered ok; a second run in the
 * same period sends the same requests, all answered as replays, and no
 * second payout exists; after the outcomes are pruned a third run sends
 * nothing for the period's payouts. Accounts without a usable default
 * route are listed and skipped. tallyctl connects as a login role granted
 * only tally_scheduler, which can read no table. */
#include "it_e2e_common.h"

#include "ctl_run.h"

#define DAY "2026-12-02"

static int setup(void **state)
{
    e2e_t *e = e2e_start(3, 1, NULL);
    /* The scheduler's login role, made by the owner as an operator would. */
    th_pg_exec(e->pg, "tally_owner", "CREATE ROLE tally_cron LOGIN");
    th_pg_exec(e->pg, "tally_owner", "GRANT tally_scheduler TO tally_cron");
    *state = e;
    return 0;
}

static int teardown(void **state)
{
    e2e_stop(*state);
    return 0;
}

/* `tallyctl payouts due --schedule S --at DAY --json [extra]` as tally_cron. */
static void payouts_due(e2e_t *e, const char *schedule, const char *day, const char *extra,
                        ctl_out_t *o)
{
    char url[256], env_url[300];
    th_pg_url(e->pg, "tally_cron", url, sizeof(url));
    snprintf(env_url, sizeof(env_url), "PAYOUTS_DATABASE_URL=%s", url);
    const char *const env[] = {env_url, NULL};
    const char *args[16] = {"payouts", "due",       "--schedule",
                            schedule,  "--at",      day,
                            "--json",  "--brokers", th_broker_bootstrap(e->b)};
    int n = 9;
    if (extra != NULL)
        args[n++] = extra;
    args[n] = NULL;
    ctl_run(NULL, env, args, o);
}

/* The line of o's JSON output for (account, currency), parsed (decref it);
 * NULL when there is none. */
static json_t *line_of(const ctl_out_t *o, const char *acct, const char *currency)
{
    char *copy = strdup(o->out), *save = NULL;
    json_t *found = NULL;
    for (char *l = strtok_r(copy, "\n", &save); l != NULL && found == NULL;
         l = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(l, 0, NULL);
        if (j == NULL)
            fail_msg("not a JSON line: %s", l);
        if (strcmp(json_string_value(json_object_get(j, "account_id")), acct) == 0 &&
            strcmp(json_string_value(json_object_get(j, "currency")), currency) == 0)
            found = j;
        else
            json_decref(j);
    }
    free(copy);
    return found;
}

/* Asserts o's line for (acct, currency): status, amount and, unless NULL, id. */
static void expect_line(const ctl_out_t *o, const char *acct, const char *currency,
                        const char *status, int64_t amount, const char *id)
{
    json_t *j = line_of(o, acct, currency);
    if (j == NULL)
        fail_msg("no line for %s %s in:\n%s", acct, currency, o->out);
    assert_string_equal(json_string_value(json_object_get(j, "status")), status);
    assert_int_equal(json_integer_value(json_object_get(j, "amount")), amount);
    if (id != NULL)
        assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
}

static void pay(e2e_t *e, const char *acct, const char *ext, int64_t amount, const char *currency)
{
    e2e_ok(e2e_call(e, acct, "payment.record", "{'external_id':'%s','amount':%lld,'currency':'%s'}",
                    ext, (long long)amount, currency));
}

static int64_t count(e2e_t *e, const char *sql)
{
    return th_pg_i64(e->pg, "postgres", sql);
}

static void test_scheduled_payouts(void **state)
{
    e2e_t *e = *state;
    /* d1: daily, a default route for any currency, usd and eur due, and a
     * balance in "xyz" written before currencies were checked. */
    e2e_ok(e2e_call(e, "acct_d1", "settings.update", "{'payout_schedule':'daily'}"));
    e2e_ok(e2e_call(e, "acct_d1", "route.upsert",
                    "{'kind':'bank_account','destination':'ba_d1','is_default':true}"));
    pay(e, "acct_d1", "p1", 5000, "usd");
    pay(e, "acct_d1", "p2", 300, "eur");
    th_pg_exec(e->pg, "postgres",
               "INSERT INTO account_balances (account_id, currency, available)"
               " VALUES ('acct_d1', 'xyz', 700)");
    /* d2: daily, its default route takes only usd; usd below its minimum. */
    e2e_ok(e2e_call(e, "acct_d2", "settings.update",
                    "{'payout_schedule':'daily','min_payout_amount':100}"));
    e2e_ok(e2e_call(e, "acct_d2", "route.upsert",
                    "{'kind':'bank_account','destination':'ba_d2','currency':'usd',"
                    "'is_default':true}"));
    pay(e, "acct_d2", "p1", 99, "usd");
    pay(e, "acct_d2", "p2", 1000, "gbp");
    /* d3: daily, no default route. w1: weekly. m0: manual (never set). */
    e2e_ok(e2e_call(e, "acct_d3", "settings.update", "{'payout_schedule':'daily'}"));
    pay(e, "acct_d3", "p1", 700, "usd");
    e2e_ok(e2e_call(e, "acct_w1", "settings.update", "{'payout_schedule':'weekly'}"));
    e2e_ok(e2e_call(e, "acct_w1", "route.upsert",
                    "{'kind':'stripe_connect','destination':'acct_x','is_default':true}"));
    pay(e, "acct_w1", "p1", 900, "usd");
    pay(e, "acct_m0", "p1", 1000, "usd");

    /* --dry-run: the same list, nothing sent. */
    ctl_out_t o;
    payouts_due(e, "daily", DAY, "--dry-run", &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_d1", "usd", "due", 5000, "auto_daily_" DAY "_usd");
    expect_line(&o, "acct_d1", "eur", "due", 300, "auto_daily_" DAY "_eur");
    expect_line(&o, "acct_d1", "xyz", "skipped", 700, NULL);
    expect_line(&o, "acct_d2", "gbp", "skipped", 1000, NULL);
    expect_line(&o, "acct_d3", "usd", "skipped", 700, NULL);
    assert_int_equal(ctl_lines(o.out), 5); /* not d2's usd (below 100), nor w1, nor m0 */
    assert_non_null(strstr(o.err, "2 due, 2 not sent (--dry-run), 3 skipped"));
    ctl_out_free(&o);

    /* The first run: two payouts, answered ok. */
    payouts_due(e, "daily", DAY, NULL, &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_d1", "usd", "enqueued", 5000, "auto_daily_" DAY "_usd");
    expect_line(&o, "acct_d1", "eur", "enqueued", 300, "auto_daily_" DAY "_eur");
    json_t *skip = line_of(&o, "acct_d3", "usd");
    assert_non_null(strstr(json_string_value(json_object_get(skip, "reason")), "default route"));
    json_decref(skip);
    ctl_out_free(&o);
    const char *ids[] = {"auto_daily_" DAY "_usd", "auto_daily_" DAY "_eur"};
    const json_t *first[2];
    for (int i = 0; i < 2; i++) {
        first[i] = e2e_await_nth(e, "acct_d1", ids[i], 0, E2E_WAIT_MS);
        if (first[i] == NULL)
            fail_msg("no answer to %s", ids[i]);
        const json_t *po = json_object_get(e2e_ok(first[i]), "payout");
        assert_string_equal(e2e_str(po, "status", NULL), "pending");
        assert_string_equal(e2e_str(po, "description", NULL), ids[i]);
        assert_non_null(e2e_str(po, "route_id", NULL));
        assert_true(json_is_false(json_object_get(first[i], "replayed")));
    }
    /* The dry run sent nothing: each id was processed exactly once so far. */
    assert_int_equal(count(e, "SELECT count(*) FROM payment_system_logs"
                              " WHERE request_id LIKE 'auto\\_%'"),
                     2);
    assert_int_equal(count(e, "SELECT count(*) FROM pay_out WHERE account_id = 'acct_d1'"), 2);
    assert_int_equal(count(e, "SELECT count(*) FROM pay_out WHERE account_id <> 'acct_d1'"), 0);
    assert_int_equal(count(e, "SELECT available FROM account_balances"
                              " WHERE account_id = 'acct_d1' AND currency = 'usd'"),
                     0);

    /* A second run in the same period: the same requests, all replays. */
    payouts_due(e, "daily", DAY, NULL, &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_d1", "usd", "enqueued", 5000, ids[0]);
    expect_line(&o, "acct_d1", "eur", "enqueued", 300, ids[1]);
    ctl_out_free(&o);
    for (int i = 0; i < 2; i++) {
        const json_t *again = e2e_await_nth(e, "acct_d1", ids[i], 1, E2E_WAIT_MS);
        if (again == NULL)
            fail_msg("no second answer to %s", ids[i]);
        assert_true(json_is_true(json_object_get(again, "replayed")));
        assert_true(
            json_equal(json_object_get(first[i], "result"), json_object_get(again, "result")));
    }
    assert_int_equal(count(e, "SELECT count(*) FROM pay_out"), 2);

    /* Outcomes pruned (TALLY_OUTCOME_RETENTION_DAYS): the period's payouts
     * are still found, by their description, and not sent again. */
    th_pg_exec(e->pg, "postgres",
               "DELETE FROM tally_request_outcomes WHERE request_id LIKE 'auto\\_%'");
    pay(e, "acct_d1", "p3", 250, "usd"); /* new money in the same period */
    payouts_due(e, "daily", DAY, NULL, &o);
    assert_int_equal(o.code, 0);
    json_t *none = line_of(&o, "acct_d1", "usd");
    assert_null(none);
    ctl_out_free(&o);
    /* The next day is another period: the new money goes. */
    payouts_due(e, "daily", "2026-12-03", NULL, &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_d1", "usd", "enqueued", 250, "auto_daily_2026-12-03_usd");
    ctl_out_free(&o);
    assert_non_null(e2e_await_nth(e, "acct_d1", "auto_daily_2026-12-03_usd", 0, E2E_WAIT_MS));
    assert_int_equal(count(e, "SELECT count(*) FROM pay_out"), 3);
}

/* The period keys: the ISO 8601 week (2027-01-01 is in 2026's week 53) and
 * the month. */
static void test_period_keys(void **state)
{
    e2e_t *e = *state;
    e2e_ok(e2e_call(e, "acct_mo", "settings.update", "{'payout_schedule':'monthly'}"));
    e2e_ok(e2e_call(e, "acct_mo", "route.upsert",
                    "{'kind':'bank_account','destination':'ba_mo','is_default':true}"));
    pay(e, "acct_mo", "p1", 400, "chf");
    ctl_out_t o;
    payouts_due(e, "weekly", "2027-01-01", "--dry-run", &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_w1", "usd", "due", 900, "auto_weekly_2026-W53_usd");
    assert_null(line_of(&o, "acct_mo", "chf"));
    ctl_out_free(&o);
    payouts_due(e, "weekly", DAY, "--dry-run", &o);
    expect_line(&o, "acct_w1", "usd", "due", 900, "auto_weekly_2026-W49_usd");
    ctl_out_free(&o);
    payouts_due(e, "monthly", "2026-12-31", "--dry-run", &o);
    assert_int_equal(o.code, 0);
    expect_line(&o, "acct_mo", "chf", "due", 400, "auto_monthly_2026-12_chf");
    assert_int_equal(ctl_lines(o.out), 1);
    ctl_out_free(&o);
}

/* tally_scheduler reads nothing but what the two functions return, which
 * refuse anything but the three schedules and their periods; the worker's
 * role cannot call them at all. */
static void test_scheduler_role(void **state)
{
    e2e_t *e = *state;
    const char *refused[] = {
        "SELECT count(*) FROM account_balances",
        "SELECT count(*) FROM account_payment_settings",
        "SELECT count(*) FROM tally_request_outcomes",
        "SELECT count(*) FROM tally_payouts_scan('daily', '2026-12-02')",
        "SELECT count(*) FROM tally_payouts_due('manual', '2026-12-02')",
        "SELECT count(*) FROM tally_payouts_due('daily', '2026-W49')",
        "SELECT count(*) FROM tally_payouts_unrouted(NULL, '2026-12')",
    };
    PGconn *c = th_pg_connect(e->pg, "tally_cron");
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        PGresult *r = PQexec(c, refused[i]);
        if (PQresultStatus(r) != PGRES_FATAL_ERROR)
            fail_msg("tally_cron ran: %s", refused[i]);
        PQclear(r);
    }
    PGresult *r = PQexec(c, "SELECT count(*) FROM tally_payouts_unrouted('daily', '2026-12-02')");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQnfields(r), 1);
    PQclear(r);
    PQfinish(c);
    c = th_pg_connect(e->pg, "tally_worker");
    r = PQexec(c, "SELECT count(*) FROM tally_payouts_due('daily', '2026-12-02')");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQfinish(c);

    /* tallyctl as the worker's role: a clear failure, exit 1. */
    char url[256], env_url[300];
    th_pg_url(e->pg, "tally_worker", url, sizeof(url));
    snprintf(env_url, sizeof(env_url), "PAYOUTS_DATABASE_URL=%s", url);
    ctl_out_t o;
    ctl_run(NULL, (const char *const[]){env_url, NULL},
            (const char *const[]){"payouts", "due", "--schedule", "daily", "--dry-run", NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "permission denied"));
    ctl_out_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scheduled_payouts),
        cmocka_unit_test(test_period_keys),
        cmocka_unit_test(test_scheduler_role),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
