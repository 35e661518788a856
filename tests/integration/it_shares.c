/* it_shares — the share.* job types end to end below the worker: allocation
 * arithmetic as stored, reversals by running total on refunds (each party's
 * total is its share of the current net after every refund; totals that
 * drifted under the old per-refund rule are corrected by the next refund),
 * listing, tenant isolation, concurrent allocations of one payment (exactly
 * one wins) and concurrent refunds of an allocated one (exact throughout). */
#include "it_handlers.h"

#include "../share_model.h"

#include <pthread.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static int64_t payment_shares_sum(it_fixture_t *f, const char *payment_id)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(sum(amount), 0) FROM payment_share_tracking WHERE payment_id = '%s'",
             payment_id);
    return th_pg_i64(f->pg, "postgres", sql);
}

#define THIRDS                                                                                     \
    "[{\"party\": \"a\", \"basis_points\": 3333}, {\"party\": \"b\", \"basis_points\": 3333},"     \
    " {\"party\": \"c\", \"basis_points\": 3334}]"

static void test_allocate(void **state)
{
    it_fixture_t *f = *state;
    char id[64];
    it_record_payment(f, "acct_sh", "pi_sh1", 100, "succeeded", id, sizeof(id));
    json_t *r = it_ok(f->pool, "acct_sh", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", id);
    assert_int_equal(json_object_size(r), 4);
    assert_string_equal(it_str(r, "payment_id"), id);
    assert_string_equal(it_str(r, "currency"), "usd");
    assert_int_equal(it_int(r, "net_amount"), 100);
    json_t *al = json_object_get(r, "allocations");
    assert_int_equal(json_array_size(al), 3);
    assert_int_equal(json_object_size(json_array_get(al, 0)), 3);
    assert_string_equal(it_str(al, "0.party"), "a");
    assert_int_equal(it_int(al, "0.basis_points"), 3333);
    assert_int_equal(it_int(al, "0.amount"), 33);
    assert_int_equal(it_int(al, "1.amount"), 33);
    assert_int_equal(it_int(al, "2.amount"), 34);
    json_decref(r);
    assert_int_equal(payment_shares_sum(f, id), 100);

    /* Once only. */
    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_sh", "share.allocate",
                                  "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", id);
    assert_non_null(strstr(e.message, "already allocated"));

    /* 1 unit split 50/50: the tie goes to the earlier share. */
    char one[64];
    it_record_payment(f, "acct_sh", "pi_sh2", 1, "succeeded", one, sizeof(one));
    r = it_ok(f->pool, "acct_sh", "share.allocate",
              "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"x\", \"basis_points\": 5000},"
              " {\"party\": \"y\", \"basis_points\": 5000}]}",
              one);
    assert_int_equal(it_int(r, "allocations.0.amount"), 1);
    assert_int_equal(it_int(r, "allocations.1.amount"), 0);
    json_decref(r);

    /* 10^15 − 1 split 1/9999: the product exceeds int64, the answer is exact. */
    char big[64];
    it_record_payment(f, "acct_sh", "pi_sh3", INT64_C(999999999999999), "succeeded", big,
                      sizeof(big));
    r = it_ok(f->pool, "acct_sh", "share.allocate",
              "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"x\", \"basis_points\": 1},"
              " {\"party\": \"y\", \"basis_points\": 9999}]}",
              big);
    assert_int_equal(it_int(r, "allocations.0.amount"), INT64_C(100000000000));
    assert_int_equal(it_int(r, "allocations.1.amount"), INT64_C(999899999999999));
    json_decref(r);
    assert_int_equal(payment_shares_sum(f, big), INT64_C(999999999999999));
}

static void test_allocate_rejections(void **state)
{
    it_fixture_t *f = *state;
    char pending[64], failed[64], refunded[64];
    it_record_payment(f, "acct_shr", "pi_p", 100, "pending", pending, sizeof(pending));
    it_record_payment(f, "acct_shr", "pi_f", 100, "failed", failed, sizeof(failed));
    it_record_payment(f, "acct_shr", "pi_r", 100, "succeeded", refunded, sizeof(refunded));
    json_decref(it_ok(f->pool, "acct_shr", "payment.refund", "{\"payment_id\": \"%s\"}", refunded));
    const char *ids[] = {pending, failed, refunded};
    for (size_t i = 0; i < 3; i++) {
        it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_shr", "share.allocate",
                  "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", ids[i]);
    }
    it_reject(TALLY_ERR_NOT_FOUND, "payment_id", f->pool, "acct_shr", "share.allocate",
              "{\"payment_id\": \"pay_nope\", \"shares\": " THIRDS "}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "shares", f->pool, "acct_shr", "share.allocate",
              "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"a\", \"basis_points\": 5000},"
              " {\"party\": \"b\", \"basis_points\": 4999}]}",
              pending);
    it_reject(TALLY_ERR_INVALID_REQUEST, "shares[1].party", f->pool, "acct_shr", "share.allocate",
              "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"a\", \"basis_points\": 5000},"
              " {\"party\": \"a\", \"basis_points\": 5000}]}",
              pending);
    it_reject(
        TALLY_ERR_INVALID_REQUEST, "shares[0].basis_points", f->pool, "acct_shr", "share.allocate",
        "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"a\", \"basis_points\": 0}]}", pending);
    /* Nothing was stored by any of them. */
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM payment_share_tracking"
                               " WHERE account_id = 'acct_shr'"),
                     0);
    /* A pending payment that later succeeds can be allocated. */
    json_decref(it_ok(f->pool, "acct_shr", "payment.update_status",
                      "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", pending));
    json_decref(it_ok(f->pool, "acct_shr", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", pending));
}

/* A party's total in a payment (its allocation plus its reversals), summed
 * over the pages of share.list filtered on both. */
static int64_t party_total(it_fixture_t *f, const char *acct, const char *payment_id,
                           const char *party)
{
    int64_t total = 0;
    char after[64] = "";
    for (int pages = 0; pages < 100; pages++) {
        char cursor[96] = "";
        if (after[0] != '\0')
            snprintf(cursor, sizeof(cursor), ", \"starting_after\": \"%s\"", after);
        json_t *r = it_ok(f->pool, acct, "share.list",
                          "{\"payment_id\": \"%s\", \"party\": \"%s\", \"limit\": 100%s}",
                          payment_id, party, cursor);
        json_t *d = json_object_get(r, "data");
        for (size_t i = 0; i < json_array_size(d); i++)
            total += json_integer_value(json_object_get(json_array_get(d, i), "amount"));
        bool more = json_is_true(json_object_get(r, "has_more"));
        if (more)
            snprintf(after, sizeof(after), "%s",
                     json_string_value(json_object_get(json_array_get(d, 99), "id")));
        json_decref(r);
        if (!more)
            return total;
    }
    fail_msg("share.list of %s/%s did not end", payment_id, party);
    return total;
}

/* Asserts that every party's total is the model's split of net. */
static void expect_totals(it_fixture_t *f, const char *acct, const char *payment_id,
                          const char *const *parties, const int32_t *bp, size_t n, int64_t net)
{
    int64_t want[SHARE_MODEL_MAX];
    share_model_split(net, bp, n, want);
    for (size_t i = 0; i < n; i++) {
        int64_t got = party_total(f, acct, payment_id, parties[i]);
        if (got != want[i])
            fail_msg("net %lld: %s holds %lld, its share is %lld", (long long)net, parties[i],
                     (long long)got, (long long)want[i]);
    }
    assert_int_equal(payment_shares_sum(f, payment_id), net);
}

static const char *const abc[] = {"a", "b", "c"};
static const int32_t thirds_bp[] = {3333, 3333, 3334};

/* Refunds before and after the allocation: after each, every party holds
 * its share of the net; a reversal row carries the change of its party's
 * total, and none is written for a party whose total stays. */
static void test_refund_reversals(void **state)
{
    it_fixture_t *f = *state;
    char id[64];
    it_record_payment(f, "acct_rev", "pi_rev", 1000, "succeeded", id, sizeof(id));
    json_decref(it_ok(f->pool, "acct_rev", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 1}", id));
    json_t *r = it_ok(f->pool, "acct_rev", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", id);
    assert_int_equal(it_int(r, "net_amount"), 999);
    assert_int_equal(it_int(r, "allocations.0.amount"), 333);
    assert_int_equal(it_int(r, "allocations.1.amount"), 333);
    assert_int_equal(it_int(r, "allocations.2.amount"), 333);
    json_decref(r);

    r = it_ok(f->pool, "acct_rev", "payment.refund", "{\"payment_id\": \"%s\", \"amount\": 10}",
              id);
    char refund_id[64];
    snprintf(refund_id, sizeof(refund_id), "%s", it_str(r, "refund.id"));
    json_decref(r);
    expect_totals(f, "acct_rev", id, abc, thirds_bp, 3, 989); /* 330, 329, 330 */

    /* The reversal rows, newest first: each party's change, 333 → 330/329/330. */
    r = it_ok(f->pool, "acct_rev", "share.list", "{\"payment_id\": \"%s\", \"limit\": 3}", id);
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_array_size(d), 3);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    assert_string_equal(it_str(d, "0.kind"), "reversal");
    assert_string_equal(it_str(d, "0.refund_id"), refund_id);
    assert_string_equal(it_str(d, "0.party"), "c");
    assert_int_equal(it_int(d, "0.amount"), -3);
    assert_int_equal(it_int(d, "1.amount"), -4);
    assert_int_equal(it_int(d, "2.amount"), -3);
    assert_string_equal(it_str(d, "2.party"), "a");
    assert_memory_equal(it_str(d, "0.id"), "sh_", 3);
    assert_string_equal(it_str(d, "0.currency"), "usd");
    json_decref(r);

    /* One unit: only the party whose share moves gets a row (330 → 329 for c). */
    json_decref(it_ok(f->pool, "acct_rev", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 1}", id));
    expect_totals(f, "acct_rev", id, abc, thirds_bp, 3, 988);
    r = it_ok(f->pool, "acct_rev", "share.list", "{\"payment_id\": \"%s\", \"limit\": 1}", id);
    assert_int_equal(it_int(r, "data.0.amount"), -1);
    json_decref(r);
    assert_int_equal(it_sql_i64(f,
                                "SELECT count(*) FROM payment_share_tracking"
                                " WHERE payment_id = '%s'",
                                id),
                     3 + 3 + 1);

    /* The rest: everything reversed, every party at 0. */
    json_decref(it_ok(f->pool, "acct_rev", "payment.refund", "{\"payment_id\": \"%s\"}", id));
    expect_totals(f, "acct_rev", id, abc, thirds_bp, 3, 0);
    r = it_ok(f->pool, "acct_rev", "share.list", "{\"payment_id\": \"%s\"}", id);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 10);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    assert_string_equal(it_str(r, "data.9.kind"), "allocation");
    assert_true(json_is_null(it_get(r, "data.9.refund_id")));
    json_decref(r);
}

/* The second case below the worker: 100 at 50/50 refunded one unit
 * at a time ended at −50/+50; now the parties stay within a unit of each
 * other and end at 0, one reversal row per refund. */
static void test_refund_unit_by_unit(void **state)
{
    it_fixture_t *f = *state;
    static const char *const ab[] = {"seller", "platform"};
    static const int32_t half[] = {5000, 5000};
    char id[64];
    it_record_payment(f, "acct_unit", "pi_unit", 100, "succeeded", id, sizeof(id));
    json_decref(
        it_ok(f->pool, "acct_unit", "share.allocate",
              "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"seller\","
              " \"basis_points\": 5000}, {\"party\": \"platform\", \"basis_points\": 5000}]}",
              id));
    for (int64_t net = 99; net >= 0; net--) {
        json_decref(it_ok(f->pool, "acct_unit", "payment.refund",
                          "{\"payment_id\": \"%s\", \"amount\": 1}", id));
        if (net % 10 == 0 || net < 3)
            expect_totals(f, "acct_unit", id, ab, half, 2, net);
    }
    assert_int_equal(it_sql_i64(f,
                                "SELECT count(*) FROM payment_share_tracking"
                                " WHERE payment_id = '%s' AND kind = 'reversal'",
                                id),
                     100);
    /* No reversal row without a change. */
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM payment_share_tracking"
                                   " WHERE account_id = 'acct_unit' AND amount = 0"),
                     0);
}

/* Totals that drifted under the old per-refund rule (written here as the old
 * code did: ten one-unit refunds of 100 at 50/50, each taken from the
 * earlier party, 40/50) are corrected by the next refund, in full, with the
 * rare positive reversal that this needs. */
static void test_drift_corrected_by_next_refund(void **state)
{
    it_fixture_t *f = *state;
    static const char *const ab[] = {"a", "b"};
    static const int32_t half[] = {5000, 5000};
    char id[64];
    it_record_payment(f, "acct_drift", "pi_drift", 100, "succeeded", id, sizeof(id));
    json_decref(it_ok(f->pool, "acct_drift", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"a\","
                      " \"basis_points\": 5000}, {\"party\": \"b\", \"basis_points\": 5000}]}",
                      id));
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "UPDATE stripe_payments SET amount_refunded = 10 WHERE id = '%s';"
             "INSERT INTO stripe_payment_refunds (account_id, id, payment_id, amount)"
             " SELECT 'acct_drift', 're_old' || k, '%s', 1 FROM generate_series(1, 10) k;"
             "INSERT INTO payment_share_tracking (account_id, id, payment_id, kind, refund_id,"
             " position, party, basis_points, amount, currency)"
             " SELECT 'acct_drift', 'sh_old' || k, '%s', 'reversal', 're_old' || k, 0, 'a', 5000,"
             " -1, 'usd' FROM generate_series(1, 10) k",
             id, id, id);
    th_pg_exec(f->pg, "postgres", sql);
    assert_int_equal(party_total(f, "acct_drift", id, "a"), 40);
    assert_int_equal(party_total(f, "acct_drift", id, "b"), 50);

    json_t *r = it_ok(f->pool, "acct_drift", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 1}", id);
    json_decref(r);
    expect_totals(f, "acct_drift", id, ab, half, 2, 89); /* 45/44 */
    r = it_ok(f->pool, "acct_drift", "share.list", "{\"payment_id\": \"%s\", \"limit\": 2}", id);
    assert_string_equal(it_str(r, "data.0.party"), "b");
    assert_int_equal(it_int(r, "data.0.amount"), -6);
    assert_string_equal(it_str(r, "data.1.party"), "a");
    assert_int_equal(it_int(r, "data.1.amount"), 5);
    json_decref(r);
    json_decref(it_ok(f->pool, "acct_drift", "payment.refund", "{\"payment_id\": \"%s\"}", id));
    expect_totals(f, "acct_drift", id, ab, half, 2, 0);
}

/* The wall behind the arithmetic (0005_money.sql): share rows that would
 * not sum to the payment's net amount, or leave a party below zero, are
 * refused by the database, whoever writes them. */
static void test_balanced_wall(void **state)
{
    it_fixture_t *f = *state;
    char id[64];
    it_record_payment(f, "acct_wall", "pi_wall", 100, "succeeded", id, sizeof(id));
    json_decref(it_ok(f->pool, "acct_wall", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", id));
    PGconn *pg = th_pg_connect(f->pg, "postgres");
    char sql[512];
    snprintf(sql, sizeof(sql),
             "INSERT INTO payment_share_tracking (account_id, id, payment_id, kind, refund_id,"
             " position, party, basis_points, amount, currency) SELECT 'acct_wall', 'sh_x', '%s',"
             " 'allocation', NULL, 3, 'd', 1, 1, 'usd'",
             id);
    PGresult *res = PQexec(pg, sql);
    assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(res, PG_DIAG_SQLSTATE), "23514");
    assert_string_equal(PQresultErrorField(res, PG_DIAG_CONSTRAINT_NAME),
                        "payment_share_tracking_balanced");
    PQclear(res);
    PQfinish(pg);
    assert_int_equal(payment_shares_sum(f, id), 100);
}

static void test_list_filters(void **state)
{
    it_fixture_t *f = *state;
    char p1[64], p2[64];
    it_record_payment(f, "acct_sl", "pi_1", 500, "succeeded", p1, sizeof(p1));
    it_record_payment(f, "acct_sl", "pi_2", 700, "succeeded", p2, sizeof(p2));
    json_decref(it_ok(f->pool, "acct_sl", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"platform\","
                      " \"basis_points\": 2000}, {\"party\": \"seller\", \"basis_points\": 8000}]}",
                      p1));
    json_decref(it_ok(f->pool, "acct_sl", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"platform\","
                      " \"basis_points\": 10000}]}",
                      p2));

    json_t *r = it_ok(f->pool, "acct_sl", "share.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 3);
    assert_string_equal(it_str(r, "data.0.payment_id"), p2); /* newest first */
    json_decref(r);

    r = it_ok(f->pool, "acct_sl", "share.list", "{\"party\": \"platform\"}");
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_array_size(d), 2);
    assert_int_equal(it_int(d, "0.amount"), 700);
    assert_int_equal(it_int(d, "1.amount"), 100);
    char last[64];
    snprintf(last, sizeof(last), "%s", it_str(d, "0.id"));
    json_decref(r);

    r = it_ok(f->pool, "acct_sl", "share.list",
              "{\"party\": \"platform\", \"starting_after\": \"%s\"}", last);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.payment_id"), p1);
    json_decref(r);

    r = it_ok(f->pool, "acct_sl", "share.list", "{\"party\": \"seller\", \"payment_id\": \"%s\"}",
              p2);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_sl", "share.list",
              "{\"starting_after\": \"sh_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "party", f->pool, "acct_sl", "share.list",
              "{\"party\": \"\"}");

    /* Another tenant sees none of it, and its cursor is unknown here. */
    r = it_ok(f->pool, "acct_sl_other", "share.list", "{\"payment_id\": \"%s\"}", p1);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_sl_other", "share.list",
              "{\"starting_after\": \"%s\"}", last);
}

/* ---- Concurrency: many allocations of one payment, exactly one wins ---------- */

#define ALLOC_THREADS 8

typedef struct alloc_worker {
    pool_t *pool;
    const char *payment_id;
    int index;
    handler_status_t status;
    handler_error_t err;
} alloc_worker_t;

static void *alloc_thread(void *arg)
{
    alloc_worker_t *w = arg;
    /* Each thread its own split, so the stored rows tell who won. */
    it_answer_t a = it_run(w->pool, "acct_ca", "share.allocate",
                           "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"t%d\","
                           " \"basis_points\": %d}, {\"party\": \"rest\", \"basis_points\": %d}]}",
                           w->payment_id, w->index, 1000 + w->index, 9000 - w->index);
    w->status = a.status;
    w->err = a.err;
    json_decref(a.result);
    return NULL;
}

static void test_concurrent_allocate(void **state)
{
    it_fixture_t *f = *state;
    pool_t *pool = it_pool(f->pg, ALLOC_THREADS);
    for (int round = 0; round < 5; round++) {
        char ext[16], id[64];
        snprintf(ext, sizeof(ext), "pi_ca%d", round);
        it_record_payment(f, "acct_ca", ext, 777777, "succeeded", id, sizeof(id));
        alloc_worker_t w[ALLOC_THREADS];
        pthread_t t[ALLOC_THREADS];
        for (int i = 0; i < ALLOC_THREADS; i++) {
            w[i] = (alloc_worker_t){.pool = pool, .payment_id = id, .index = i};
            assert_int_equal(pthread_create(&t[i], NULL, alloc_thread, &w[i]), 0);
        }
        int wins = 0, winner = -1;
        for (int i = 0; i < ALLOC_THREADS; i++) {
            pthread_join(t[i], NULL);
            if (w[i].status == HANDLER_OK) {
                wins++;
                winner = i;
            } else if (w[i].status != HANDLER_REJECTED || w[i].err.code != TALLY_ERR_CONFLICT) {
                fail_msg("thread %d: %d %s", i, w[i].status, w[i].err.message);
            }
        }
        assert_int_equal(wins, 1);
        assert_int_equal(payment_shares_sum(f, id), 777777);
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM payment_share_tracking WHERE payment_id = '%s'"
                 " AND party = 't%d'",
                 id, winner);
        assert_int_equal(th_pg_i64(f->pg, "postgres", sql), 1);
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM payment_share_tracking WHERE payment_id = '%s'", id);
        assert_int_equal(th_pg_i64(f->pg, "postgres", sql), 2);
    }
    pool_free(pool);
}

/* ---- Concurrency: refunds of one allocated payment from many sessions ------- */

#define REFUND_THREADS 8
#define REFUNDS_EACH   12

typedef struct refund_worker {
    pool_t *pool;
    const char *payment_id;
    int ok, conflict;
    char failure[256];
} refund_worker_t;

static void *refund_thread(void *arg)
{
    refund_worker_t *w = arg;
    for (int k = 0; k < REFUNDS_EACH; k++) {
        it_answer_t a = it_run(w->pool, "acct_cr", "payment.refund",
                               "{\"payment_id\": \"%s\", \"amount\": 7}", w->payment_id);
        if (a.status == HANDLER_OK)
            w->ok++;
        else if (a.status == HANDLER_REJECTED && a.err.code == TALLY_ERR_CONFLICT)
            w->conflict++;
        else
            snprintf(w->failure, sizeof(w->failure), "%d %s", a.status, a.err.message);
        json_decref(a.result);
    }
    return NULL;
}

/* 96 refunds of 7 against 601 split three ways, from 8 sessions at once:
 * exactly 85 succeed (595), and replaying the committed reversals in refund
 * order, every party's total was its share of the net after each refund. */
static void test_concurrent_refunds(void **state)
{
    it_fixture_t *f = *state;
    pool_t *pool = it_pool(f->pg, REFUND_THREADS);
    char id[64];
    it_record_payment(f, "acct_cr", "pi_cr", 601, "succeeded", id, sizeof(id));
    json_decref(it_ok(f->pool, "acct_cr", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": " THIRDS "}", id));
    refund_worker_t w[REFUND_THREADS];
    pthread_t t[REFUND_THREADS];
    for (int i = 0; i < REFUND_THREADS; i++) {
        w[i] = (refund_worker_t){.pool = pool, .payment_id = id};
        assert_int_equal(pthread_create(&t[i], NULL, refund_thread, &w[i]), 0);
    }
    int ok = 0, conflict = 0;
    for (int i = 0; i < REFUND_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (w[i].failure[0] != '\0')
            fail_msg("thread %d: %s", i, w[i].failure);
        ok += w[i].ok;
        conflict += w[i].conflict;
    }
    pool_free(pool);
    assert_int_equal(ok, 601 / 7);
    assert_int_equal(conflict, REFUND_THREADS * REFUNDS_EACH - 601 / 7);
    expect_totals(f, "acct_cr", id, abc, thirds_bp, 3, 601 - 7 * (601 / 7));

    /* Each party's running total, refund by refund in commit order. */
    char sql[1024];
    share_model_running_sql(sql, sizeof(sql), id, 3);
    char *seq = th_pg_text(f->pg, "postgres", sql);
    int64_t nets[601 / 7];
    for (int k = 0; k < ok; k++)
        nets[k] = 601 - 7 * (k + 1);
    char *why = share_model_check_running(seq, nets, ok, thirds_bp, 3);
    if (why != NULL)
        fail_msg("%s", why);
    free(seq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocate),
        cmocka_unit_test(test_allocate_rejections),
        cmocka_unit_test(test_refund_reversals),
        cmocka_unit_test(test_refund_unit_by_unit),
        cmocka_unit_test(test_drift_corrected_by_next_refund),
        cmocka_unit_test(test_balanced_wall),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_concurrent_allocate),
        cmocka_unit_test(test_concurrent_refunds),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
