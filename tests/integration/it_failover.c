/* it_failover — a failover that loses nothing. A primary with a
 * synchronous streaming standby (pg_basebackup -R, synchronous_standby_names,
 * synchronous_commit on for the worker's role), the worker on a multi-host
 * DATABASE_URL with target_session_attrs=read-write, and a steady stream of
 * money requests (payments, refunds of one seed payment per account,
 * payouts). Midway the primary stops at once (immediate shutdown, as when
 * its machine fails) and the standby is promoted (pg_ctl promote) while the
 * stream goes on.
 *
 * Checked afterwards on the new primary: every request answered, none
 * `internal`, the DLQ empty, tally_retries_total 0 (an outage spends no
 * attempts); every object an `ok` answer names exists (an acknowledged
 * commit that vanished would leave a published result without its effect —
 * what an asynchronous standby allows); nothing applied twice (one payment
 * per external id, one refund and one payout per request, each seed
 * payment's amount_refunded the sum of its refunds); and every balance
 * equals its recomputation from the rows. The servers run with fsync off for
 * speed: the primary is stopped, not the machine. */
#include "it_db_common.h"

#define PARTITIONS  4
#define ACCOUNTS    8
#define ROUNDS      40 /* per account: a payment, a refund and a payout each */
#define SEED_AMOUNT 1000000
#define ANSWER_WAIT 180000

typedef struct fo {
    th_pg_t *primary, *standby;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results;
    char seed[ACCOUNTS][64]; /* each account's seed payment id */
} fo_t;

static int setup(void **state)
{
    fo_t *f = calloc(1, sizeof(*f));
    f->primary = th_pg_start();
    th_pg_migrate(f->primary);
    /* The worker's commits wait for the standby's flush (the harness runs
     * servers with synchronous_commit off; a role setting wins over it). */
    th_pg_exec(f->primary, "postgres", "ALTER ROLE tally_worker SET synchronous_commit = on");
    f->standby = th_standby_start(f->primary, true);
    f->b = th_broker_start(PARTITIONS);
    char url[300];
    snprintf(url, sizeof(url),
             "DATABASE_URL=postgresql://tally_worker@127.0.0.1:%d,127.0.0.1:%d/tally"
             "?target_session_attrs=read-write",
             th_pg_port(f->primary), th_pg_port(f->standby));
    const char *env[] = {url, "TALLY_POOL_MAX=4", "TALLY_MAX_RETRIES=2", NULL};
    f->w = th_worker_start(f->primary, f->b, env);
    if (!th_worker_wait_ready(f->w, 60000))
        fail_msg("worker not ready");
    f->p = th_producer_new(f->b);
    f->results = collector_new(f->b, RESULT_TOPIC);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fo_t *f = *state;
    if (f == NULL)
        return 0;
    collector_free(f->results);
    th_producer_free(f->p);
    th_worker_stop(f->w);
    th_broker_stop(f->b);
    th_pg_stop(f->standby);
    th_pg_stop(f->primary);
    free(f);
    return 0;
}

static void acct_of(int a, char *out, size_t size)
{
    snprintf(out, size, "fo_%d", a);
}

static void send_req(fo_t *f, int a, const char *id, const char *type, const char *payload)
{
    char acct[32];
    acct_of(a, acct, sizeof(acct));
    send_request(f->p, -1, acct,
                 "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"%s\",\"payload\":%s}", id, acct,
                 type, payload);
}

/* The ok result of (acct, id), waiting up to timeout_ms; fails otherwise. */
static const json_t *ok_result(fo_t *f, const char *acct, const char *id, int timeout_ms)
{
    const th_msg_t *m = collector_find(f->results, "id", id, acct, timeout_ms);
    if (m == NULL)
        fail_msg("no answer to %s", id);
    if (strcmp(msg_str(m, "status"), "ok") != 0)
        fail_msg("%s answered %.300s", id, m->value);
    return json_object_get(m->json, "result");
}

/* Round r of account a: "fo-<a>-<r>-{pay,ref,po}". */
static void send_round(fo_t *f, int a, int r)
{
    char id[64], payload[256];
    snprintf(id, sizeof(id), "fo-%d-%d-pay", a, r);
    snprintf(payload, sizeof(payload),
             "{\"external_id\":\"%s\",\"amount\":100,\"currency\":\"usd\"}", id);
    send_req(f, a, id, "payment.record", payload);
    snprintf(id, sizeof(id), "fo-%d-%d-ref", a, r);
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":1}", f->seed[a]);
    send_req(f, a, id, "payment.refund", payload);
    snprintf(id, sizeof(id), "fo-%d-%d-po", a, r);
    send_req(f, a, id, "payout.create", "{\"amount\":100,\"currency\":\"usd\"}");
}

/* Distinct request ids of the stream answered so far; fails on an answer
 * that is not ok. */
static int answered(fo_t *f)
{
    int n = 0;
    static char seen[ACCOUNTS][ROUNDS][3];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < f->results->n; i++) {
        const th_msg_t *m = &f->results->msgs[i];
        const char *id = msg_str(m, "id");
        int a, r;
        char kind[8];
        if (id == NULL || sscanf(id, "fo-%d-%d-%7s", &a, &r, kind) != 3 || a < 0 || a >= ACCOUNTS ||
            r < 0 || r >= ROUNDS)
            continue;
        if (strcmp(msg_str(m, "status"), "ok") != 0)
            fail_msg("%s answered %.300s", id, m->value);
        int k = strcmp(kind, "pay") == 0 ? 0 : strcmp(kind, "ref") == 0 ? 1 : 2;
        if (!seen[a][r][k]) {
            seen[a][r][k] = 1;
            n++;
        }
    }
    return n;
}

/* Every ok answer's object exists on pg: counts the ids that do not. */
static int vanished(fo_t *f, const th_pg_t *pg)
{
    int missing = 0;
    for (int i = 0; i < f->results->n; i++) {
        const th_msg_t *m = &f->results->msgs[i];
        const char *id = msg_str(m, "id");
        if (id == NULL || strncmp(id, "fo-", 3) != 0 || strcmp(msg_str(m, "status"), "ok") != 0)
            continue;
        const json_t *res = json_object_get(m->json, "result");
        const char *table = NULL, *oid = NULL;
        if (json_object_get(res, "refund") != NULL) {
            table = "stripe_payment_refunds";
            oid = json_string_value(json_object_get(json_object_get(res, "refund"), "id"));
        } else if (json_object_get(res, "payout") != NULL) {
            table = "pay_out";
            oid = json_string_value(json_object_get(json_object_get(res, "payout"), "id"));
        } else {
            table = "stripe_payments";
            oid = json_string_value(json_object_get(json_object_get(res, "payment"), "id"));
        }
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE account_id = '%s' AND id = '%s'",
                 table, msg_str(m, "account_id"), oid != NULL ? oid : "");
        missing += th_pg_i64(pg, "postgres", sql) != 1;
    }
    return missing;
}

/* Prints the lines of the log at path that contain needle. */
static void print_lines(const char *path, const char *needle)
{
    FILE *in = fopen(path, "r");
    char line[2048];
    while (in != NULL && fgets(line, sizeof(line), in) != NULL) {
        if (strstr(line, needle) != NULL)
            printf("  %s", line);
    }
    if (in != NULL)
        fclose(in);
}

static void test_primary_fails_over_to_synchronous_standby(void **state)
{
    fo_t *f = *state;
    assert_int_equal(
        th_pg_i64(f->primary, "postgres",
                  "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'"),
        1);
    PGconn *c = th_pg_connect(f->primary, "tally_worker");
    PGresult *r = PQexec(c, "SHOW synchronous_commit");
    assert_string_equal(PQgetvalue(r, 0, 0), "on");
    PQclear(r);
    PQfinish(c);

    /* A seed payment per account, to refund from. */
    char acct[32], id[64], payload[128];
    for (int a = 0; a < ACCOUNTS; a++) {
        acct_of(a, acct, sizeof(acct));
        snprintf(id, sizeof(id), "seed-%d", a);
        snprintf(payload, sizeof(payload),
                 "{\"external_id\":\"%s\",\"amount\":%d,\"currency\":\"usd\"}", id, SEED_AMOUNT);
        send_req(f, a, id, "payment.record", payload);
    }
    th_producer_flush(f->p);
    for (int a = 0; a < ACCOUNTS; a++) {
        acct_of(a, acct, sizeof(acct));
        snprintf(id, sizeof(id), "seed-%d", a);
        const json_t *res = ok_result(f, acct, id, 60000);
        snprintf(f->seed[a], sizeof(f->seed[a]), "%s",
                 json_string_value(json_object_get(json_object_get(res, "payment"), "id")));
    }

    /* The stream: a round of every account at a time. A third of the way,
     * ten rounds go at once and the primary stops right behind them,
     * while they run; the stream goes on through the outage, which the
     * worker must notice (/readyz 503), and the standby's promotion. */
    const int total = ACCOUNTS * ROUNDS * 3, burst = 10;
    int crash_round = ROUNDS / 3, promote_round = crash_round + burst + 5;
    int at_crash = 0, at_promotion = 0;
    for (int round = 0; round < ROUNDS; round++) {
        for (int a = 0; a < ACCOUNTS; a++)
            send_round(f, a, round);
        th_producer_flush(f->p);
        if (round == crash_round + burst - 1) {
            at_crash = answered(f);
            th_pg_crash(f->primary);
        } else if (round == promote_round) {
            if (!db_wait_readyz(f->w, 503, "database unavailable", 60000))
                fail_msg("the worker did not notice the primary stopped");
            at_promotion = answered(f);
            th_standby_promote(f->standby);
        }
        if (round < crash_round || round >= crash_round + burst)
            collector_poll(f->results, 1024, 50);
    }
    int64_t end = it_now_ms() + ANSWER_WAIT;
    int have;
    while ((have = answered(f)) < total && it_now_ms() < end)
        collector_poll(f->results, 1024, 200);
    printf("failover: %d of %d requests answered when the primary stopped, %d when the "
           "standby was promoted, %d at the end\n",
           at_crash, total, at_promotion, have);
    if (have < total)
        fail_msg("%d of %d requests answered after the failover", have, total);
    assert_true(db_metric(f->w, "tally_retries_total") == 0);

    /* Nothing lost, nothing twice, on the new primary. */
    th_pg_t *pg = f->standby;
    assert_int_equal(vanished(f, pg), 0);
    assert_int_equal(
        th_pg_i64(pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE external_id LIKE 'fo-%'"),
        ACCOUNTS * ROUNDS);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(DISTINCT (account_id, external_id)) FROM "
                               "stripe_payments WHERE external_id LIKE 'fo-%'"),
                     ACCOUNTS * ROUNDS);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM stripe_payment_refunds WHERE account_id LIKE "
                               "'fo\\_%'"),
                     ACCOUNTS * ROUNDS);
    assert_int_equal(
        th_pg_i64(pg, "postgres",
                  "SELECT count(*) FROM stripe_payments WHERE external_id LIKE "
                  "'seed-%' AND amount_refunded <> " /* one unit per refund */
                  "(SELECT count(*) FROM stripe_payment_refunds r WHERE r.account_id "
                  "= stripe_payments.account_id AND r.payment_id = stripe_payments.id)"),
        0);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT sum(amount_refunded) FROM stripe_payments WHERE external_id "
                               "LIKE 'seed-%'"),
                     ACCOUNTS * ROUNDS);
    assert_int_equal(
        th_pg_i64(pg, "postgres", "SELECT count(*) FROM pay_out WHERE account_id LIKE 'fo\\_%'"),
        ACCOUNTS * ROUNDS);
    /* Each stored outcome once, so a replay answered every redelivery. */
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes WHERE request_id LIKE "
                               "'fo-%'"),
                     total);
    assert_int_equal(db_balance_mismatches(pg, "fo_"), 0);
    db_expect_dlq_empty(f->b, 3000);
    assert_true(db_wait_readyz(f->w, 200, NULL, 60000));
    assert_true(db_metric(f->w, "tally_database_up") == 1);
    /* The outage as the worker saw it. */
    print_lines(th_worker_log_path(f->w), "\"database ");
    stop_worker_checked(f->w, NULL);
    f->w = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_primary_fails_over_to_synchronous_standby),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
