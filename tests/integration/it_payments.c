/* it_payments — the payment.* job types end to end below the worker: schema,
 * handler, access layer and a real PostgreSQL as the worker's role; tenant
 * isolation; the balance trigger; concurrent refunds of one payment. */
#include "it_handlers.h"

#include "it_big_payments.h"
#include "../share_model.h"

#include "common/clock.h"

#include <pthread.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void assert_time(const json_t *v, const char *path)
{
    int64_t ms;
    const char *s = it_str(v, path);
    assert_int_equal(strlen(s), CLOCK_RFC3339_LEN);
    assert_int_equal(clock_parse_rfc3339(s, &ms), 0);
    assert_true(ms > INT64_C(1600000000000));
}

static void test_record_and_get(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_rec", "payment.record",
                      "{\"external_id\": \"pi_123\", \"amount\": 1999, \"currency\": \"usd\"}");
    json_t *p = json_object_get(r, "payment");
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(json_object_size(p), 10); /* exactly the contract's Payment */
    const char *id = it_str(p, "id");
    assert_memory_equal(id, "pay_", 4);
    assert_string_equal(it_str(p, "external_id"), "pi_123");
    assert_int_equal(it_int(p, "amount"), 1999);
    assert_string_equal(it_str(p, "currency"), "usd");
    assert_string_equal(it_str(p, "status"), "succeeded"); /* the default */
    assert_int_equal(it_int(p, "amount_refunded"), 0);
    assert_true(json_is_null(json_object_get(p, "description")));
    assert_int_equal(json_object_size(json_object_get(p, "metadata")), 0);
    assert_time(p, "created_at");
    assert_time(p, "updated_at");

    json_t *g = it_ok(f->pool, "acct_rec", "payment.get", "{\"payment_id\": \"%s\"}", id);
    assert_true(json_equal(g, r));
    json_decref(g);
    json_decref(r);

    /* Description, metadata (keys keep their order), status pending, 10^15, UTF-8. */
    r = it_ok(f->pool, "acct_rec", "payment.record",
              "{\"external_id\": \"ünï-1\", \"amount\": 1000000000000000, \"currency\": \"eur\","
              " \"status\": \"pending\", \"description\": \"Order #1042 — two\","
              " \"metadata\": {\"zeta\": \"1\", \"alpha\": \"\", \"mid\": \"x\"}}");
    assert_string_equal(it_str(r, "payment.status"), "pending");
    assert_int_equal(it_int(r, "payment.amount"), INT64_C(1000000000000000));
    assert_string_equal(it_str(r, "payment.external_id"), "ünï-1");
    assert_string_equal(it_str(r, "payment.description"), "Order #1042 — two");
    char *meta = json_dumps(it_get(r, "payment.metadata"), JSON_COMPACT);
    assert_string_equal(meta, "{\"zeta\":\"1\",\"alpha\":\"\",\"mid\":\"x\"}");
    free(meta);
    json_decref(r);

    /* The same external_id again: conflict, and nothing was stored. */
    handler_error_t e =
        it_reject(TALLY_ERR_CONFLICT, "external_id", f->pool, "acct_rec", "payment.record",
                  "{\"external_id\": \"pi_123\", \"amount\": 5, \"currency\": \"usd\"}");
    assert_non_null(strstr(e.message, "external_id"));
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM stripe_payments WHERE account_id = 'acct_rec'"), 2);
    /* Another account may use the same external_id. */
    char other[64];
    it_record_payment(f, "acct_rec2", "pi_123", 5, "succeeded", other, sizeof(other));

    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_rec", "payment.record",
              "{\"external_id\": \"pi_9\", \"amount\": 1999.0, \"currency\": \"usd\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "metadata.k", f->pool, "acct_rec", "payment.record",
              "{\"external_id\": \"pi_9\", \"amount\": 1, \"currency\": \"usd\","
              " \"metadata\": {\"k\": 1}}");
    it_reject(TALLY_ERR_NOT_FOUND, "payment_id", f->pool, "acct_rec", "payment.get",
              "{\"payment_id\": \"pay_missing\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "payment_id", f->pool, "acct_rec", "payment.get", "{}");
}

static void test_update_status(void **state)
{
    it_fixture_t *f = *state;
    char id[64], id2[64];
    it_record_payment(f, "acct_st", "pi_st1", 500, "pending", id, sizeof(id));
    it_record_payment(f, "acct_st", "pi_st2", 500, "pending", id2, sizeof(id2));

    json_t *r = it_ok(f->pool, "acct_st", "payment.update_status",
                      "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", id);
    assert_string_equal(it_str(r, "payment.status"), "succeeded");
    const char *updated = it_str(r, "payment.updated_at");
    char first_update[32];
    snprintf(first_update, sizeof(first_update), "%s", updated);
    json_decref(r);

    /* The same status again: a no-op that answers the payment unchanged. */
    r = it_ok(f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", id);
    assert_string_equal(it_str(r, "payment.status"), "succeeded");
    assert_string_equal(it_str(r, "payment.updated_at"), first_update);
    json_decref(r);

    it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"failed\"}", id);
    it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"pending\"}", id);

    r = it_ok(f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"failed\"}", id2);
    assert_string_equal(it_str(r, "payment.status"), "failed");
    json_decref(r);
    it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", id2);

    it_reject(TALLY_ERR_NOT_FOUND, NULL, f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"pay_nope\", \"status\": \"failed\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "status", f->pool, "acct_st", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"refunded\"}", id);

    /* Only the succeeded one counts in the balance. */
    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_st' AND currency = 'usd'"),
                     500);
}

static void test_refunds(void **state)
{
    it_fixture_t *f = *state;
    char id[64];
    it_record_payment(f, "acct_re", "pi_re1", 1000, "succeeded", id, sizeof(id));

    json_t *r = it_ok(f->pool, "acct_re", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 300}", id);
    assert_int_equal(json_object_size(r), 2);
    assert_int_equal(it_int(r, "payment.amount_refunded"), 300);
    assert_string_equal(it_str(r, "payment.status"), "succeeded");
    json_t *re = json_object_get(r, "refund");
    assert_int_equal(json_object_size(re), 4);
    assert_memory_equal(it_str(re, "id"), "re_", 3);
    assert_string_equal(it_str(re, "payment_id"), id);
    assert_int_equal(it_int(re, "amount"), 300);
    assert_time(re, "created_at");
    json_decref(r);

    handler_error_t e =
        it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_re", "payment.refund",
                  "{\"payment_id\": \"%s\", \"amount\": 701}", id);
    assert_non_null(strstr(e.message, "700"));

    /* No amount: the rest; the payment becomes refunded. */
    r = it_ok(f->pool, "acct_re", "payment.refund", "{\"payment_id\": \"%s\"}", id);
    assert_int_equal(it_int(r, "refund.amount"), 700);
    assert_int_equal(it_int(r, "payment.amount_refunded"), 1000);
    assert_string_equal(it_str(r, "payment.status"), "refunded");
    json_decref(r);
    it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_re", "payment.refund",
              "{\"payment_id\": \"%s\", \"amount\": 1}", id);
    it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_re", "payment.refund",
              "{\"payment_id\": \"%s\"}", id);
    it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_re", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"failed\"}", id);

    /* Only succeeded payments. */
    char pending[64];
    it_record_payment(f, "acct_re", "pi_re2", 50, "pending", pending, sizeof(pending));
    e = it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_re", "payment.refund",
                  "{\"payment_id\": \"%s\"}", pending);
    assert_non_null(strstr(e.message, "pending"));
    it_reject(TALLY_ERR_NOT_FOUND, "payment_id", f->pool, "acct_re", "payment.refund",
              "{\"payment_id\": \"pay_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_re", "payment.refund",
              "{\"payment_id\": \"%s\", \"amount\": 0}", pending);

    assert_int_equal(it_sql_i64(f,
                                "SELECT count(*) FROM stripe_payment_refunds"
                                " WHERE account_id = 'acct_re' AND payment_id = '%s'",
                                id),
                     2);
    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_re' AND currency = 'usd'"),
                     0);
}

static void test_list_paging(void **state)
{
    it_fixture_t *f = *state;
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        char ext[16];
        snprintf(ext, sizeof(ext), "pi_l%d", i);
        it_record_payment(f, "acct_list", ext, 100 + i, i % 2 ? "pending" : "succeeded", ids[i],
                          sizeof(ids[i]));
    }
    json_t *r = it_ok(f->pool, "acct_list", "payment.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 5);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    for (int i = 0; i < 5; i++) { /* newest first */
        char path[32];
        snprintf(path, sizeof(path), "data.%d.id", i);
        assert_string_equal(it_str(r, path), ids[4 - i]);
    }
    json_decref(r);

    r = it_ok(f->pool, "acct_list", "payment.list", "{\"limit\": 2}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    assert_string_equal(it_str(r, "data.1.id"), ids[3]);
    json_decref(r);
    r = it_ok(f->pool, "acct_list", "payment.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[3]);
    assert_string_equal(it_str(r, "data.0.id"), ids[2]);
    assert_string_equal(it_str(r, "data.1.id"), ids[1]);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    json_decref(r);
    r = it_ok(f->pool, "acct_list", "payment.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[1]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);

    r = it_ok(f->pool, "acct_list", "payment.list", "{\"status\": \"pending\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_string_equal(it_str(r, "data.0.id"), ids[3]);
    assert_string_equal(it_str(r, "data.0.status"), "pending");
    json_decref(r);
    r = it_ok(f->pool, "acct_list", "payment.list", "{\"status\": \"refunded\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_list", "payment.list",
              "{\"starting_after\": \"pay_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "limit", f->pool, "acct_list", "payment.list",
              "{\"limit\": 101}");
}

/* Another tenant's payment answers exactly like a missing one. */
static void test_tenant_isolation(void **state)
{
    it_fixture_t *f = *state;
    char theirs[64];
    it_record_payment(f, "acct_a", "pi_iso", 900, "pending", theirs, sizeof(theirs));

    /* Each payload is head + id + tail. */
    const char *calls[][3] = {
        {"payment.get", "{\"payment_id\": \"", "\"}"},
        {"payment.refund", "{\"payment_id\": \"", "\"}"},
        {"payment.update_status", "{\"payment_id\": \"", "\", \"status\": \"succeeded\"}"},
        {"payment.list", "{\"starting_after\": \"", "\"}"},
        {"share.allocate", "{\"payment_id\": \"",
         "\", \"shares\": [{\"party\": \"x\", \"basis_points\": 10000}]}"},
    };
    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        it_answer_t foreign =
            it_run(f->pool, "acct_b", calls[i][0], "%s%s%s", calls[i][1], theirs, calls[i][2]);
        it_answer_t missing = it_run(f->pool, "acct_b", calls[i][0], "%s%s%s", calls[i][1],
                                     "pay_01JD3Z5T8Q9V7K2M4N6P8R0S2T", calls[i][2]);
        if (foreign.status != HANDLER_REJECTED || foreign.err.code != TALLY_ERR_NOT_FOUND)
            fail_msg("%s on another tenant's payment: %s %s", calls[i][0],
                     it_status_str(foreign.status), foreign.err.message);
        assert_int_equal(missing.status, HANDLER_REJECTED);
        assert_int_equal(missing.err.code, foreign.err.code);
        assert_string_equal(missing.err.field, foreign.err.field);
        assert_string_equal(missing.err.message, foreign.err.message);
    }
    json_t *r = it_ok(f->pool, "acct_b", "payment.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    /* Untouched. */
    r = it_ok(f->pool, "acct_a", "payment.get", "{\"payment_id\": \"%s\"}", theirs);
    assert_string_equal(it_str(r, "payment.status"), "pending");
    json_decref(r);
}

/* available = Σ net of succeeded/refunded payments, per currency, kept by the trigger. */
static void test_balance_follows_payments(void **state)
{
    it_fixture_t *f = *state;
    char a[64], b[64], c[64];
    it_record_payment(f, "acct_bal", "pi_b1", 1000, "succeeded", a, sizeof(a));
    it_record_payment(f, "acct_bal", "pi_b2", 300, "pending", b, sizeof(b));
    it_record_payment(f, "acct_bal", "pi_b3", 77, "failed", c, sizeof(c));
    json_decref(it_ok(f->pool, "acct_bal", "payment.record",
                      "{\"external_id\": \"pi_b4\", \"amount\": 5, \"currency\": \"eur\"}"));
    json_decref(it_ok(f->pool, "acct_bal", "payment.update_status",
                      "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", b));
    json_decref(
        it_ok(f->pool, "acct_bal", "payment.refund", "{\"payment_id\": \"%s\", \"amount\": 1}", a));
    json_decref(it_ok(f->pool, "acct_bal", "payment.refund", "{\"payment_id\": \"%s\"}", b));
    it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_bal", "payment.refund",
              "{\"payment_id\": \"%s\"}", c);

    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_bal' AND currency = 'usd'"),
                     999);
    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_bal' AND currency = 'eur'"),
                     5);
    /* The trigger agrees with the definition for every account in the database. */
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM (SELECT account_id, currency,"
                                   " sum(amount - amount_refunded) AS net FROM stripe_payments"
                                   " WHERE status IN ('succeeded', 'refunded') GROUP BY 1, 2) p"
                                   " FULL JOIN account_balances b USING (account_id, currency)"
                                   " WHERE coalesce(p.net, 0) <> coalesce(b.available, 0)"),
                     0);
}

/* ---- Concurrency: refunds of one payment from many connections ------------- */

#define REFUND_THREADS  8
#define REFUNDS_EACH    12
#define REFUND_AMOUNT   10000
#define REFUND_ATTEMPTS 5 /* per request, for HANDLER_RETRY */

typedef struct refund_worker {
    pool_t *pool;
    const char *payment_id;
    int index;
    int64_t refunded; /* sum of refunds answered ok */
    int ok, conflicts, other;
    char other_msg[300];
} refund_worker_t;

static void *refund_thread(void *arg)
{
    refund_worker_t *w = arg;
    for (int i = 0; i < REFUNDS_EACH; i++) {
        /* Odd amounts; half the threads end with "the rest". */
        bool rest = i == REFUNDS_EACH - 1 && w->index % 2 == 0;
        int64_t amount = 97 + 31 * ((w->index * REFUNDS_EACH + i) % 13);
        it_answer_t a = {.status = HANDLER_RETRY};
        for (int attempt = 0; attempt < REFUND_ATTEMPTS && a.status == HANDLER_RETRY; attempt++) {
            a = rest ? it_run(w->pool, "acct_conc", "payment.refund", "{\"payment_id\": \"%s\"}",
                              w->payment_id)
                     : it_run(w->pool, "acct_conc", "payment.refund",
                              "{\"payment_id\": \"%s\", \"amount\": %lld}", w->payment_id,
                              (long long)amount);
        }
        if (a.status == HANDLER_OK) {
            w->ok++;
            w->refunded += json_integer_value(it_get(a.result, "refund.amount"));
            json_decref(a.result);
        } else if (a.status == HANDLER_REJECTED && a.err.code == TALLY_ERR_CONFLICT) {
            w->conflicts++;
        } else {
            w->other++;
            snprintf(w->other_msg, sizeof(w->other_msg), "%s: %s", it_status_str(a.status),
                     a.err.message);
        }
    }
    return NULL;
}

static void test_concurrent_refunds(void **state)
{
    it_fixture_t *f = *state;
    pool_t *pool = it_pool(f->pg, REFUND_THREADS);
    char id[64];
    it_record_payment(f, "acct_conc", "pi_conc", REFUND_AMOUNT, "succeeded", id, sizeof(id));
    /* Allocated, so every refund also appends reversals in its transaction. */
    json_decref(it_ok(f->pool, "acct_conc", "share.allocate",
                      "{\"payment_id\": \"%s\", \"shares\": [{\"party\": \"a\", \"basis_points\":"
                      " 3333}, {\"party\": \"b\", \"basis_points\": 3333}, {\"party\": \"c\","
                      " \"basis_points\": 3334}]}",
                      id));

    refund_worker_t w[REFUND_THREADS];
    pthread_t t[REFUND_THREADS];
    for (int i = 0; i < REFUND_THREADS; i++) {
        w[i] = (refund_worker_t){.pool = pool, .payment_id = id, .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, refund_thread, &w[i]), 0);
    }
    int64_t refunded = 0;
    int ok = 0, conflicts = 0;
    for (int i = 0; i < REFUND_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (w[i].other != 0)
            fail_msg("thread %d: %d unexpected answers, last: %s", i, w[i].other, w[i].other_msg);
        refunded += w[i].refunded;
        ok += w[i].ok;
        conflicts += w[i].conflicts;
    }
    pool_free(pool);
    print_message("concurrent refunds: %d ok, %d conflicts, %lld of %d refunded\n", ok, conflicts,
                  (long long)refunded, REFUND_AMOUNT);

    /* Σ of the answers = the stored refunds = amount_refunded ≤ amount. */
    assert_true(refunded <= REFUND_AMOUNT);
    assert_true(ok > 0);
    assert_true(conflicts > 0); /* 96 requests of ≥ 97 units cannot all fit in 10000 */
    assert_int_equal(
        it_sql_i64(f, "SELECT amount_refunded FROM stripe_payments WHERE id = '%s'", id), refunded);
    assert_int_equal(it_sql_i64(f,
                                "SELECT coalesce(sum(amount), 0) FROM stripe_payment_refunds"
                                " WHERE payment_id = '%s'",
                                id),
                     refunded);
    assert_int_equal(it_sql_i64(f,
                                "SELECT count(*) FROM stripe_payment_refunds"
                                " WHERE payment_id = '%s'",
                                id),
                     ok);
    assert_int_equal(it_sql_i64(f,
                                "SELECT (status = 'refunded')::int FROM stripe_payments"
                                " WHERE id = '%s'",
                                id),
                     refunded == REFUND_AMOUNT);
    /* The allocations still sum to the net amount, and each party's running
     * total is its largest-remainder share of that net (the model in
     * share_model.h, not alloc.c), however the refunds interleaved; a
     * refund that moves no party's share writes no reversal, so at most 3
     * reversals per refund. */
    assert_int_equal(it_sql_i64(f,
                                "SELECT sum(amount) FROM payment_share_tracking"
                                " WHERE payment_id = '%s'",
                                id),
                     REFUND_AMOUNT - refunded);
    static const int32_t bp[] = {3333, 3333, 3334};
    static const char *const party[] = {"a", "b", "c"};
    int64_t want[3];
    share_model_split(REFUND_AMOUNT - refunded, bp, 3, want);
    for (int k = 0; k < 3; k++)
        assert_int_equal(it_sql_i64(f,
                                    "SELECT sum(amount) FROM payment_share_tracking"
                                    " WHERE payment_id = '%s' AND party = '%s'",
                                    id, party[k]),
                         want[k]);
    assert_true(it_sql_i64(f,
                           "SELECT count(*) FROM payment_share_tracking"
                           " WHERE payment_id = '%s' AND kind = 'reversal'",
                           id) <= 3 * ok);
    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_conc' AND currency = 'usd'"),
                     REFUND_AMOUNT - refunded);
}

/* A page never passes its size bound (CONTRACT.md §3): 100 payments with the
 * largest description and metadata (500 '"' per value, 1000 bytes once
 * escaped), listed 100 at a time, come in pages of fewer than 100 that each
 * fit, with has_more, and continue exactly where the last one stopped. */
static void test_list_page_size_bound(void **state)
{
    it_fixture_t *f = *state;
    char *want = it_insert_big_payments(f->pg, "acct_big");
    char got[8192] = "";
    char after[64] = "";
    int pages = 0, total = 0;
    for (bool more = true; more && pages < 100; pages++) {
        json_t *r = after[0] == '\0'
                        ? it_ok(f->pool, "acct_big", "payment.list", "{\"limit\": 100}")
                        : it_ok(f->pool, "acct_big", "payment.list",
                                "{\"limit\": 100, \"starting_after\": \"%s\"}", after);
        size_t bytes = json_dumpb(r, NULL, 0, JSON_COMPACT);
        json_t *data = json_object_get(r, "data");
        size_t n = json_array_size(data);
        more = json_is_true(json_object_get(r, "has_more"));
        printf("page %d: %zu payments, %zu bytes, has_more %d\n", pages, n, bytes, more);
        assert_true(bytes <= HANDLER_LIST_PAGE_MAX_BYTES);
        assert_true(n >= 1);
        if (pages == 0) {
            assert_true(n < 100);
            assert_true(more);
            /* Cut before the next item would not fit, not earlier. */
            assert_true(bytes + 2 * (bytes / n) > HANDLER_LIST_PAGE_MAX_BYTES);
        }
        for (size_t i = 0; i < n; i++) {
            const char *id = json_string_value(json_object_get(json_array_get(data, i), "id"));
            assert_non_null(id);
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", total ? "," : "", id);
            snprintf(after, sizeof(after), "%s", id);
            total++;
        }
        json_decref(r);
    }
    assert_int_equal(total, 100);
    assert_string_equal(got, want);
    free(want);
}

/* Balance totals stay within ±(2^53 − 1) (0006_bounds.sql): every way a
 * request moves a balance past it is answered conflict, field amount, and
 * the rest of the account's business goes on. */
static void test_balance_bounds(void **state)
{
    it_fixture_t *f = *state;
    th_pg_exec(f->pg, "postgres",
               "INSERT INTO account_balances (account_id, currency, available)"
               " VALUES ('acct_top', 'usd', 9007199254740991)");
    it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_top", "payment.record",
              "{\"external_id\": \"pi_over\", \"amount\": 1, \"currency\": \"usd\"}");
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM stripe_payments"
                                   " WHERE account_id = 'acct_top'"),
                     0);
    /* What does not move the balance past the bound still works. */
    char pending[64];
    it_record_payment(f, "acct_top", "pi_pending", 5, "pending", pending, sizeof(pending));
    it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_top", "payment.update_status",
              "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", pending);
    json_decref(it_ok(f->pool, "acct_top", "payment.record",
                      "{\"external_id\": \"pi_eur\", \"amount\": 7, \"currency\": \"eur\"}"));
    json_decref(it_ok(f->pool, "acct_top", "payout.create",
                      "{\"amount\": 1000000, \"currency\": \"usd\"}"));
    json_decref(it_ok(f->pool, "acct_top", "payment.update_status",
                      "{\"payment_id\": \"%s\", \"status\": \"succeeded\"}", pending));
    assert_int_equal(it_sql_i64(f, "SELECT available FROM account_balances"
                                   " WHERE account_id = 'acct_top' AND currency = 'usd'"),
                     INT64_C(9007199254740991) - 1000000 + 5);

    /* Pending payouts and refunds below −(2^53 − 1). */
    th_pg_exec(f->pg, "postgres",
               "UPDATE account_balances SET pending_payouts = 9007199254740991 - 10"
               " WHERE account_id = 'acct_top' AND currency = 'usd'");
    it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_top", "payout.create",
              "{\"amount\": 100, \"currency\": \"usd\"}");
    char pay[64];
    it_record_payment(f, "acct_top", "pi_refund", 100, "succeeded", pay, sizeof(pay));
    th_pg_exec(f->pg, "postgres",
               "UPDATE account_balances SET available = -9007199254740991 + 50"
               " WHERE account_id = 'acct_top' AND currency = 'usd'");
    it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_top", "payment.refund",
              "{\"payment_id\": \"%s\", \"amount\": 100}", pay);
    json_decref(it_ok(f->pool, "acct_top", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 50}", pay));

    /* A total already at the top of bigint (a database migrated from before
     * 0006, whose rows the check does not cover): bigint overflows, and that
     * too is a conflict at once. */
    th_pg_exec(f->pg, "postgres",
               "ALTER TABLE account_balances DROP CONSTRAINT account_balances_bounds;"
               "UPDATE account_balances SET available = 9223372036854775807, pending_payouts = 0"
               " WHERE account_id = 'acct_top' AND currency = 'usd';"
               "ALTER TABLE account_balances ADD CONSTRAINT account_balances_bounds"
               " CHECK (available BETWEEN -9007199254740991 AND 9007199254740991"
               "  AND pending_payouts <= 9007199254740991 AND paid_out <= 9007199254740991)"
               " NOT VALID");
    handler_error_t e =
        it_reject(TALLY_ERR_CONFLICT, "amount", f->pool, "acct_top", "payment.record",
                  "{\"external_id\": \"pi_top\", \"amount\": 1, \"currency\": \"usd\"}");
    assert_null(strstr(e.message, "payments_record")); /* the server's words, not ours */
    th_pg_exec(f->pg, "postgres",
               "UPDATE account_balances SET available = 0"
               " WHERE account_id = 'acct_top' AND currency = 'usd';"
               "ALTER TABLE account_balances VALIDATE CONSTRAINT account_balances_bounds");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_and_get),
        cmocka_unit_test(test_update_status),
        cmocka_unit_test(test_refunds),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_tenant_isolation),
        cmocka_unit_test(test_balance_follows_payments),
        cmocka_unit_test(test_concurrent_refunds),
        cmocka_unit_test(test_list_page_size_bound),
        cmocka_unit_test(test_balance_bounds),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
