/* it_shares — the share.* job types end to end below the worker: allocation
 * arithmetic as stored, reversals on refunds, listing, tenant isolation, and
 * concurrent allocations of one payment (exactly one wins). */
#include "it_handlers.h"

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

/* Refunds before and after the allocation: the rows always sum to the net. */
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
    assert_int_equal(payment_shares_sum(f, id), 989);

    /* The reversal rows, newest first: the negated refund split by the same rule. */
    r = it_ok(f->pool, "acct_rev", "share.list", "{\"payment_id\": \"%s\", \"limit\": 3}", id);
    json_t *d = json_object_get(r, "data");
    assert_int_equal(json_array_size(d), 3);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    assert_string_equal(it_str(d, "0.kind"), "reversal");
    assert_string_equal(it_str(d, "0.refund_id"), refund_id);
    assert_string_equal(it_str(d, "0.party"), "c");
    assert_int_equal(it_int(d, "0.amount"), -4);
    assert_int_equal(it_int(d, "1.amount"), -3);
    assert_int_equal(it_int(d, "2.amount"), -3);
    assert_string_equal(it_str(d, "2.party"), "a");
    assert_memory_equal(it_str(d, "0.id"), "sh_", 3);
    assert_string_equal(it_str(d, "0.currency"), "usd");
    json_decref(r);

    /* The rest: everything reversed, the rows sum to 0. */
    json_decref(it_ok(f->pool, "acct_rev", "payment.refund", "{\"payment_id\": \"%s\"}", id));
    assert_int_equal(payment_shares_sum(f, id), 0);
    r = it_ok(f->pool, "acct_rev", "share.list", "{\"payment_id\": \"%s\"}", id);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 9);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    assert_string_equal(it_str(r, "data.8.kind"), "allocation");
    assert_true(json_is_null(it_get(r, "data.8.refund_id")));
    json_decref(r);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allocate),
        cmocka_unit_test(test_allocate_rejections),
        cmocka_unit_test(test_refund_reversals),
        cmocka_unit_test(test_list_filters),
        cmocka_unit_test(test_concurrent_allocate),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
