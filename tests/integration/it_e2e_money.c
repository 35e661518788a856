/* it_e2e_money — the money invariants of CONTRACT.md §4 across two
 * tally-worker replicas in one group. Requests are keyless and spread over
 * all six request partitions, so one account's requests are processed by
 * both replicas at once; every request is also sent twice (same id and
 * payload, on partitions three apart), so the copies race each other too.
 *
 * Checked afterwards, in the database and through the worker: concurrent
 * payouts never overdraw, redemptions never pass a code's limit, refunds
 * never pass a payment's amount and its allocations keep every party at its
 * share of the net amount after each refund; every request id is answered, exactly one answer per
 * id is not a replay, all answers of one id agree, and no effect was applied twice. The counts are
 * printed. Bounded: a few hundred requests, 120 s at most for their answers. */
#include "it_e2e_common.h"

#include "../share_model.h"

#define PARTITIONS   6
#define COPIES       2
#define ANSWER_WAIT  120000
#define MAX_REQUESTS 512

static const char *const worker_env[] = {"TALLY_POOL_MAX=4", NULL};

static int setup(void **state)
{
    *state = e2e_start(PARTITIONS, 2, worker_env);
    return 0;
}

static int teardown(void **state)
{
    e2e_stop(*state);
    return 0;
}

/* What the answers to one burst said, per distinct request id. */
typedef struct outcome {
    int ok, conflict, insufficient, other;
    int answers;                       /* all answers, replays included */
    const json_t *first[MAX_REQUESTS]; /* the first answer to each id */
} outcome_t;

/* Sends n requests "<prefix>-<i>" of one type and payload, COPIES times each,
 * without a key, copy c of request i to partition (i + c * 3) % 6. */
static void burst(e2e_t *e, const char *acct, const char *prefix, int n, const char *type,
                  const char *payload)
{
    assert_true(n <= MAX_REQUESTS);
    char id[64];
    for (int c = 0; c < COPIES; c++) {
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof(id), "%s-%d", prefix, i);
            e2e_send_raw(e, (i + c * 3) % PARTITIONS, NULL, acct, id, type, NULL, payload);
        }
    }
    th_producer_flush(e->p);
}

/* Index i of a result for "<prefix>-<i>" in acct, or -1. */
static int index_of(const th_msg_t *m, const char *acct, const char *prefix, int n)
{
    const char *a = msg_str(m, "account_id"), *id = msg_str(m, "id");
    size_t pl = strlen(prefix);
    if (a == NULL || id == NULL || strcmp(a, acct) != 0 || strncmp(id, prefix, pl) != 0 ||
        id[pl] != '-')
        return -1;
    char *end;
    long i = strtol(id + pl + 1, &end, 10);
    return *end == '\0' && i >= 0 && i < n ? (int)i : -1;
}

/* Waits until every copy of the n requests was answered, then checks the
 * answers: each id answered, exactly one answer per id not replayed, every
 * answer of an id equal to the first (status and body). Counts outcomes. */
static void collect(e2e_t *e, const char *acct, const char *prefix, int n, outcome_t *out)
{
    memset(out, 0, sizeof(*out));
    int64_t end = it_now_ms() + ANSWER_WAIT;
    int have = 0;
    for (;;) {
        have = 0;
        for (int k = 0; k < e->results->n; k++)
            have += index_of(&e->results->msgs[k], acct, prefix, n) >= 0;
        if (have >= n * COPIES || it_now_ms() > end)
            break;
        collector_poll(e->results, 1024, 100);
    }
    if (have < n * COPIES)
        fail_msg("%s: %d of %d answers arrived", prefix, have, n * COPIES);

    int fresh[MAX_REQUESTS] = {0};
    for (int k = 0; k < e->results->n; k++) {
        const th_msg_t *m = &e->results->msgs[k];
        int i = index_of(m, acct, prefix, n);
        if (i < 0)
            continue;
        out->answers++;
        fresh[i] += json_is_false(json_object_get(m->json, "replayed"));
        if (out->first[i] == NULL) {
            out->first[i] = m->json;
            continue;
        }
        const json_t *f = out->first[i];
        assert_string_equal(e2e_str(f, "status", NULL), e2e_str(m->json, "status", NULL));
        const char *body = json_object_get(f, "result") != NULL ? "result" : "error";
        if (!json_equal(json_object_get(f, body), json_object_get(m->json, body)))
            fail_msg("%s-%d: answers disagree", prefix, i);
    }
    for (int i = 0; i < n; i++) {
        if (fresh[i] != 1)
            fail_msg("%s-%d: %d answers not marked replayed (want 1)", prefix, i, fresh[i]);
        const char *status = e2e_str(out->first[i], "status", NULL);
        const char *code = e2e_str(out->first[i], "error", "code");
        if (strcmp(status, "ok") == 0)
            out->ok++;
        else if (strcmp(code, "conflict") == 0)
            out->conflict++;
        else if (strcmp(code, "insufficient_funds") == 0)
            out->insufficient++;
        else
            out->other++;
    }
    printf("%s: %d requests, %d answers: %d ok, %d insufficient_funds, %d conflict, %d other\n",
           prefix, n, out->answers, out->ok, out->insufficient, out->conflict, out->other);
    fflush(stdout);
    assert_int_equal(out->other, 0);
}

/* "'id1','id2',…" of the ok answers' result.<obj>.id, for SQL. */
static char *ok_ids(const outcome_t *o, int n, const char *obj)
{
    size_t cap = (size_t)n * 72 + 1, len = 0;
    char *s = calloc(1, cap);
    for (int i = 0; i < n; i++) {
        const json_t *res = json_object_get(o->first[i], "result");
        const char *id = e2e_str(json_object_get(res, obj), "id", NULL);
        if (id != NULL)
            len += (size_t)snprintf(s + len, cap - len, "%s'%s'", len ? "," : "", id);
    }
    return s;
}

static int64_t sql_i64(e2e_t *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t sql_i64(e2e_t *e, const char *fmt, ...)
{
    char *sql = NULL;
    va_list ap;
    va_start(ap, fmt);
    assert_true(vasprintf(&sql, fmt, ap) > 0);
    va_end(ap);
    int64_t v = th_pg_i64(e->pg, "postgres", sql);
    free(sql);
    return v;
}

static const int32_t thirds[] = {3333, 3333, 3334};

/* "a=… b=… c=…": each party's total in acct, from the database. */
static const char *party_totals(e2e_t *e, const char *acct)
{
    static char out[128];
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT string_agg(party || '=' || s, ' ' ORDER BY party) FROM"
             " (SELECT party, sum(amount) s FROM payment_share_tracking"
             "  WHERE account_id = '%s' GROUP BY party) x",
             acct);
    char *t = th_pg_text(e->pg, "postgres", sql);
    snprintf(out, sizeof(out), "%s", t != NULL ? t : "");
    free(t);
    return out;
}

/* balance.get through the worker for usd: available and pending_payouts. */
static void balance(e2e_t *e, const char *acct, int64_t *available, int64_t *pending)
{
    const json_t *d =
        json_object_get(e2e_ok(e2e_call(e, acct, "balance.get", "{'currency':'usd'}")), "data");
    assert_int_equal(json_array_size(d), 1);
    *available = e2e_int(json_array_get(d, 0), "available", NULL);
    *pending = e2e_int(json_array_get(d, 0), "pending_payouts", NULL);
}

/* 150 payouts of 100 against 10 000: exactly 100 succeed. Then 30 of them
 * fail while 40 more payouts arrive: whatever interleaving the replicas
 * chose, the balance is the formula and never below zero. */
static void test_concurrent_payouts(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_money_po";
    for (int i = 0; i < 4; i++)
        e2e_ok(e2e_call(e, A, "payment.record",
                        "{'external_id':'funds-%d','amount':2500,'currency':'usd'}", i));
    const int64_t funds = 10000, amount = 100;

    outcome_t *o = calloc(1, sizeof(*o));
    burst(e, A, "po", 150, "payout.create", "{\"amount\":100,\"currency\":\"usd\"}");
    collect(e, A, "po", 150, o);
    assert_int_equal(o->ok, funds / amount);
    assert_int_equal(o->insufficient, 150 - funds / amount);
    for (int i = 0; i < 150; i++) {
        if (o->first[i] != NULL && json_object_get(o->first[i], "error") != NULL)
            assert_string_equal(e2e_str(o->first[i], "error", "field"), "amount");
    }
    /* Each ok answer is one row, and there are no others. */
    char *ids = ok_ids(o, 150, "payout");
    assert_int_equal(sql_i64(e, "SELECT count(*) FROM pay_out WHERE account_id = '%s'", A), o->ok);
    assert_int_equal(
        sql_i64(e, "SELECT count(*) FROM pay_out WHERE account_id = '%s' AND id IN (%s)", A, ids),
        o->ok);
    free(ids);
    int64_t available, pending;
    balance(e, A, &available, &pending);
    assert_int_equal(available, 0);
    assert_int_equal(pending, funds);

    /* Phase two: fail 30 of the pending payouts while 40 new ones come. */
    char *fail_payload[30];
    int nfail = 0;
    for (int i = 0; i < 150 && nfail < 30; i++) {
        const json_t *po = json_object_get(json_object_get(o->first[i], "result"), "payout");
        if (po != NULL)
            assert_true(asprintf(&fail_payload[nfail++],
                                 "{\"payout_id\":\"%s\",\"status\":\"failed\"}",
                                 e2e_str(po, "id", NULL)) > 0);
    }
    char fid[32];
    for (int c = 0; c < COPIES; c++) {
        for (int i = 0; i < 40; i++) {
            snprintf(fid, sizeof(fid), "po2-%d", i);
            e2e_send_raw(e, (i + c * 3) % PARTITIONS, NULL, A, fid, "payout.create", NULL,
                         "{\"amount\":100,\"currency\":\"usd\"}");
            if (i < nfail) {
                snprintf(fid, sizeof(fid), "fail-%d", i);
                e2e_send_raw(e, (i + 1 + c * 3) % PARTITIONS, NULL, A, fid, "payout.update_status",
                             NULL, fail_payload[i]);
            }
        }
    }
    th_producer_flush(e->p);
    outcome_t *o2 = calloc(1, sizeof(*o2)), *of = calloc(1, sizeof(*of));
    collect(e, A, "fail", nfail, of);
    collect(e, A, "po2", 40, o2);
    assert_int_equal(of->ok, nfail);
    assert_true(o2->ok <= nfail);
    assert_int_equal(o2->ok + o2->insufficient, 40);
    for (int i = 0; i < nfail; i++)
        free(fail_payload[i]);

    /* The database: available = funds − Σ(pending + paid) ≥ 0, as balance.get says. */
    int64_t held = sql_i64(e,
                           "SELECT coalesce(sum(amount), 0) FROM pay_out WHERE account_id = '%s'"
                           " AND status IN ('pending', 'paid')",
                           A);
    int64_t db_available =
        sql_i64(e, "SELECT available FROM account_balances WHERE account_id = '%s'", A);
    printf("payouts: %d + %d ok, %d failed back, held %lld of %lld, available %lld\n", o->ok,
           o2->ok, of->ok, (long long)held, (long long)funds, (long long)db_available);
    assert_true(held <= funds);
    assert_int_equal(held, (int64_t)(o->ok - nfail + o2->ok) * amount);
    assert_int_equal(db_available, funds - held);
    assert_true(db_available >= 0);
    balance(e, A, &available, &pending);
    assert_int_equal(available, db_available);
    assert_int_equal(pending, held);
    assert_int_equal(sql_i64(e, "SELECT count(*) FROM pay_out WHERE account_id = '%s'", A),
                     o->ok + o2->ok);
    free(o);
    free(o2);
    free(of);
}

/* 80 redemptions of a code with max_redemptions 25: exactly 25 succeed. */
static void test_concurrent_redemptions(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_money_code";
    e2e_ok(e2e_call(e, A, "code.create", "{'code':'LIMITED-25','max_redemptions':25}"));
    outcome_t *o = calloc(1, sizeof(*o));
    burst(e, A, "redeem", 80, "code.redeem", "{\"code\":\"LIMITED-25\",\"redeemer\":\"cust\"}");
    collect(e, A, "redeem", 80, o);
    assert_int_equal(o->ok, 25);
    assert_int_equal(o->conflict, 55);
    /* The ok answers counted 1..25, each count once. */
    bool seen[26] = {false};
    for (int i = 0; i < 80; i++) {
        const json_t *res = json_object_get(o->first[i], "result");
        if (res == NULL)
            continue;
        int64_t count = e2e_int(res, "code", "redeemed_count");
        assert_true(count >= 1 && count <= 25);
        assert_false(seen[count]);
        seen[count] = true;
    }
    char *ids = ok_ids(o, 80, "redemption");
    assert_int_equal(sql_i64(e, "SELECT count(*) FROM ppu_redemptions WHERE account_id = '%s'", A),
                     25);
    assert_int_equal(sql_i64(e,
                             "SELECT count(*) FROM ppu_redemptions WHERE account_id = '%s'"
                             " AND id IN (%s)",
                             A, ids),
                     25);
    free(ids);
    assert_int_equal(sql_i64(e, "SELECT redeemed_count FROM ppu WHERE account_id = '%s'", A), 25);
    const json_t *c =
        json_object_get(e2e_ok(e2e_call(e, A, "code.get", "{'code':'LIMITED-25'}")), "code");
    assert_int_equal(e2e_int(c, "redeemed_count", NULL), 25);
    assert_string_equal(e2e_str(c, "status", NULL), "exhausted");
    free(o);
}

/* 60 refunds of 250 against an allocated payment of 10 001: exactly 40
 * succeed, and after each of them, in the order they committed, every party
 * held its share of the net (by running total, CONTRACT.md §6); the unit
 * left goes to the largest remainder, and refunding it leaves all at 0. */
static void test_concurrent_refunds(void **state)
{
    e2e_t *e = *state;
    const char *A = "acct_money_re";
    const json_t *r =
        e2e_call(e, A, "payment.record", "{'external_id':'big','amount':10001,'currency':'usd'}");
    char pay[64];
    snprintf(pay, sizeof(pay), "%s", e2e_str(e2e_ok(r), "payment", "id"));
    e2e_ok(e2e_call(e, A, "share.allocate",
                    "{'payment_id':'%s','shares':[{'party':'a','basis_points':3333},"
                    "{'party':'b','basis_points':3333},{'party':'c','basis_points':3334}]}",
                    pay));
    char payload[128];
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":250}", pay);
    outcome_t *o = calloc(1, sizeof(*o));
    burst(e, A, "refund", 60, "payment.refund", payload);
    collect(e, A, "refund", 60, o);
    assert_int_equal(o->ok, 40);
    assert_int_equal(o->conflict, 20);

    /* The payment: refunded by exactly 40 refund rows, one unit left. */
    char *ids = ok_ids(o, 60, "refund");
    assert_int_equal(sql_i64(e,
                             "SELECT count(*) FROM stripe_payment_refunds WHERE account_id = '%s'"
                             " AND id IN (%s)",
                             A, ids),
                     40);
    free(ids);
    assert_int_equal(
        sql_i64(e, "SELECT count(*) FROM stripe_payment_refunds WHERE account_id = '%s'", A), 40);
    const json_t *p = json_object_get(
        e2e_ok(e2e_call(e, A, "payment.get", "{'payment_id':'%s'}", pay)), "payment");
    assert_int_equal(e2e_int(p, "amount_refunded", NULL), 10000);
    assert_string_equal(e2e_str(p, "status", NULL), "succeeded");

    /* Each refund's reversal rows sum to −250, and replayed in commit order
     * every party held its share of the net after each refund. */
    assert_int_equal(sql_i64(e,
                             "SELECT count(*) FROM (SELECT refund_id FROM payment_share_tracking"
                             " WHERE account_id = '%s' AND kind = 'reversal' GROUP BY refund_id"
                             " HAVING sum(amount) = -250) r",
                             A),
                     40);
    char sql[1024];
    share_model_running_sql(sql, sizeof(sql), pay, 3);
    char *running = th_pg_text(e->pg, "postgres", sql);
    int64_t nets[40];
    for (int k = 0; k < 40; k++)
        nets[k] = 10001 - 250 * (k + 1);
    char *why = share_model_check_running(running, nets, 40, thirds, 3);
    if (why != NULL)
        fail_msg("%s", why);
    free(running);
    assert_string_equal(party_totals(e, A), "a=0 b=0 c=1");

    /* The last unit: every party at 0. */
    e2e_ok(e2e_call(e, A, "payment.refund", "{'payment_id':'%s'}", pay));
    assert_string_equal(party_totals(e, A), "a=0 b=0 c=0");
    free(o);
}

/* Both replicas answered requests of each account above. */
static void test_both_replicas_worked(void **state)
{
    e2e_t *e = *state;
    char *w = th_pg_text(e->pg, "postgres",
                         "SELECT string_agg(account_id || ' ' || n, ', ' ORDER BY account_id)"
                         " FROM (SELECT account_id, string_agg(worker || ':' || c, ' '"
                         "       ORDER BY worker) n FROM (SELECT account_id, worker, count(*) c"
                         "  FROM payment_system_logs WHERE account_id LIKE 'acct_money_%'"
                         "  GROUP BY 1, 2) x GROUP BY 1) y");
    printf("answers per account and replica: %s\n", w);
    free(w);
    assert_int_equal(th_pg_i64(e->pg, "postgres",
                               "SELECT count(*) FROM (SELECT account_id FROM payment_system_logs"
                               " WHERE account_id LIKE 'acct_money_%' GROUP BY account_id"
                               " HAVING count(DISTINCT worker) = 2) x"),
                     3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_payouts),
        cmocka_unit_test(test_concurrent_redemptions),
        cmocka_unit_test(test_concurrent_refunds),
        cmocka_unit_test(test_both_replicas_worked),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
