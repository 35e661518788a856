/* it_routes — the route.* job types end to end below the worker: create,
 * update, get, list and delete; one default per account (also under
 * concurrent upserts); routes with pending payouts not deletable (also when
 * the delete races a payout.create); tenant isolation. */
#include "it_handlers.h"

#include <pthread.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* route.upsert with the payload given; the new route's id goes to out. */
static void upsert(const it_fixture_t *f, const char *account, const char *payload, char *out,
                   size_t size)
{
    json_t *r = it_ok(f->pool, account, "route.upsert", "%s", payload);
    snprintf(out, size, "%s", it_str(r, "route.id"));
    json_decref(r);
}

static int64_t defaults_of(const it_fixture_t *f, const char *account)
{
    return it_sql_i64(f,
                      "SELECT count(*) FROM account_payout_routes"
                      " WHERE account_id = '%s' AND is_default",
                      account);
}

static bool is_default(const it_fixture_t *f, const char *account, const char *id)
{
    json_t *r = it_ok(f->pool, account, "route.get", "{\"route_id\": \"%s\"}", id);
    bool d = json_is_true(it_get(r, "route.is_default"));
    json_decref(r);
    return d;
}

static void test_create_get_list(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_rt", "route.upsert",
                      "{\"kind\": \"bank_account\", \"destination\": \"ba_1\"}");
    json_t *rt = json_object_get(r, "route");
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(json_object_size(rt), 7);
    const char *id = it_str(rt, "id");
    assert_memory_equal(id, "rt_", 3);
    assert_string_equal(it_str(rt, "kind"), "bank_account");
    assert_string_equal(it_str(rt, "destination"), "ba_1");
    assert_true(json_is_null(json_object_get(rt, "currency")));
    assert_true(json_is_false(json_object_get(rt, "is_default")));
    assert_string_equal(it_str(rt, "created_at"), it_str(rt, "updated_at"));

    json_t *g = it_ok(f->pool, "acct_rt", "route.get", "{\"route_id\": \"%s\"}", id);
    assert_true(json_equal(g, r));
    json_decref(g);

    char ids[4][64];
    snprintf(ids[0], sizeof(ids[0]), "%s", id);
    json_decref(r);
    for (int i = 1; i < 4; i++)
        upsert(f, "acct_rt",
               "{\"kind\": \"stripe_connect\", \"destination\": \"acct_x\", \"currency\": \"eur\"}",
               ids[i], sizeof(ids[i]));

    /* Newest first, two per page. */
    r = it_ok(f->pool, "acct_rt", "route.list", "{\"limit\": 2}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_string_equal(it_str(r, "data.0.id"), ids[3]);
    assert_string_equal(it_str(r, "data.1.id"), ids[2]);
    assert_string_equal(it_str(r, "data.0.currency"), "eur");
    assert_true(json_is_true(json_object_get(r, "has_more")));
    json_decref(r);
    r = it_ok(f->pool, "acct_rt", "route.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[2]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_string_equal(it_str(r, "data.0.id"), ids[1]);
    assert_string_equal(it_str(r, "data.1.id"), ids[0]);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);
    r = it_ok(f->pool, "acct_rt", "route.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 4);
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_rt", "route.list",
              "{\"starting_after\": \"rt_nope\"}");
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rt", "route.get",
              "{\"route_id\": \"rt_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "kind", f->pool, "acct_rt", "route.upsert",
              "{\"kind\": \"card\", \"destination\": \"x\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "destination", f->pool, "acct_rt", "route.upsert",
              "{\"kind\": \"bank_account\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "destination", f->pool, "acct_rt", "route.upsert",
              "{\"kind\": \"bank_account\", \"destination\": \"\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "nickname", f->pool, "acct_rt", "route.upsert",
              "{\"kind\": \"bank_account\", \"destination\": \"x\", \"nickname\": \"n\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "route_id", f->pool, "acct_rt", "route.get", "{}");
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM account_payout_routes WHERE account_id = 'acct_rt'"),
        4);
}

static void test_update(void **state)
{
    it_fixture_t *f = *state;
    char id[64];
    upsert(f, "acct_rtu",
           "{\"kind\": \"bank_account\", \"destination\": \"ba_1\", \"currency\": \"usd\"}", id,
           sizeof(id));

    /* Absent currency and is_default: unchanged. */
    json_t *r = it_ok(f->pool, "acct_rtu", "route.upsert",
                      "{\"route_id\": \"%s\", \"kind\": \"stripe_connect\","
                      " \"destination\": \"acct_9\"}",
                      id);
    assert_string_equal(it_str(r, "route.id"), id);
    assert_string_equal(it_str(r, "route.kind"), "stripe_connect");
    assert_string_equal(it_str(r, "route.destination"), "acct_9");
    assert_string_equal(it_str(r, "route.currency"), "usd");
    assert_true(json_is_false(it_get(r, "route.is_default")));
    json_decref(r);

    /* Null clears the currency; is_default true promotes it. */
    r = it_ok(f->pool, "acct_rtu", "route.upsert",
              "{\"route_id\": \"%s\", \"kind\": \"stripe_connect\", \"destination\": \"acct_9\","
              " \"currency\": null, \"is_default\": true}",
              id);
    assert_true(json_is_null(it_get(r, "route.currency")));
    assert_true(json_is_true(it_get(r, "route.is_default")));
    json_decref(r);
    /* Updated again without is_default: still the default. */
    r = it_ok(f->pool, "acct_rtu", "route.upsert",
              "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\": \"ba_2\","
              " \"currency\": \"gbp\"}",
              id);
    assert_true(json_is_true(it_get(r, "route.is_default")));
    assert_string_equal(it_str(r, "route.currency"), "gbp");
    json_decref(r);
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM account_payout_routes WHERE account_id = 'acct_rtu'"),
        1);

    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtu", "route.upsert",
              "{\"route_id\": \"rt_nope\", \"kind\": \"bank_account\", \"destination\": \"x\"}");
    /* The rejected promotion of an unknown route demoted nothing. */
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtu", "route.upsert",
              "{\"route_id\": \"rt_nope\", \"kind\": \"bank_account\", \"destination\": \"x\","
              " \"is_default\": true}");
    assert_true(is_default(f, "acct_rtu", id));
}

static void test_one_default(void **state)
{
    it_fixture_t *f = *state;
    char a[64], b[64], c[64];
    upsert(f, "acct_rtd",
           "{\"kind\": \"bank_account\", \"destination\": \"a\", \"is_default\": true}", a,
           sizeof(a));
    upsert(f, "acct_rtd", "{\"kind\": \"bank_account\", \"destination\": \"b\"}", b, sizeof(b));
    assert_true(is_default(f, "acct_rtd", a));
    assert_false(is_default(f, "acct_rtd", b));

    /* A new default demotes the previous one. */
    upsert(f, "acct_rtd",
           "{\"kind\": \"bank_account\", \"destination\": \"c\", \"is_default\": true}", c,
           sizeof(c));
    assert_false(is_default(f, "acct_rtd", a));
    assert_true(is_default(f, "acct_rtd", c));
    assert_int_equal(defaults_of(f, "acct_rtd"), 1);

    /* So does promoting an existing route; promoting it again changes nothing. */
    for (int i = 0; i < 2; i++) {
        json_decref(it_ok(f->pool, "acct_rtd", "route.upsert",
                          "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\":"
                          " \"b\", \"is_default\": true}",
                          b));
        assert_true(is_default(f, "acct_rtd", b));
        assert_false(is_default(f, "acct_rtd", c));
        assert_int_equal(defaults_of(f, "acct_rtd"), 1);
    }

    /* false on the default leaves the account without one. */
    json_decref(it_ok(f->pool, "acct_rtd", "route.upsert",
                      "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\": \"b\","
                      " \"is_default\": false}",
                      b));
    assert_int_equal(defaults_of(f, "acct_rtd"), 0);

    /* Defaults are per account. */
    char other[64];
    upsert(f, "acct_rtd2",
           "{\"kind\": \"bank_account\", \"destination\": \"z\", \"is_default\": true}", other,
           sizeof(other));
    upsert(f, "acct_rtd",
           "{\"kind\": \"bank_account\", \"destination\": \"d\", \"is_default\": true}", a,
           sizeof(a));
    assert_true(is_default(f, "acct_rtd2", other));
    assert_int_equal(defaults_of(f, "acct_rtd"), 1);
    assert_int_equal(defaults_of(f, "acct_rtd2"), 1);

    /* The partial unique index is the last wall: raw SQL cannot add a second. */
    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    PQclear(PQexec(w, "SELECT set_config('app.account_id', 'acct_rtd', false)"));
    PGresult *r =
        PQexec(w, "INSERT INTO account_payout_routes (account_id, id, kind, destination,"
                  " is_default) VALUES ('acct_rtd', 'rt_raw', 'bank_account', 'x', true)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    PQclear(r);
    PQfinish(w);
}

static void test_delete(void **state)
{
    it_fixture_t *f = *state;
    char pay[64], a[64], b[64];
    it_record_payment(f, "acct_rtx", "pi_rtx", 100000, "succeeded", pay, sizeof(pay));
    upsert(f, "acct_rtx",
           "{\"kind\": \"bank_account\", \"destination\": \"a\", \"is_default\": true}", a,
           sizeof(a));
    upsert(f, "acct_rtx", "{\"kind\": \"bank_account\", \"destination\": \"b\"}", b, sizeof(b));

    /* A pending payout through b keeps it. */
    json_t *r = it_ok(f->pool, "acct_rtx", "payout.create",
                      "{\"amount\": 1000, \"currency\": \"usd\", \"route_id\": \"%s\"}", b);
    char po[64];
    snprintf(po, sizeof(po), "%s", it_str(r, "payout.id"));
    json_decref(r);
    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, "route_id", f->pool, "acct_rtx",
                                  "route.delete", "{\"route_id\": \"%s\"}", b);
    assert_non_null(strstr(e.message, "pending"));
    json_decref(it_ok(f->pool, "acct_rtx", "route.get", "{\"route_id\": \"%s\"}", b));

    /* Once paid, b can go; the answer is the route as it was. */
    json_decref(it_ok(f->pool, "acct_rtx", "payout.update_status",
                      "{\"payout_id\": \"%s\", \"status\": \"paid\"}", po));
    r = it_ok(f->pool, "acct_rtx", "route.delete", "{\"route_id\": \"%s\"}", b);
    assert_true(json_is_true(json_object_get(r, "deleted")));
    assert_string_equal(it_str(r, "route.id"), b);
    assert_string_equal(it_str(r, "route.destination"), "b");
    json_decref(r);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtx", "route.get",
              "{\"route_id\": \"%s\"}", b);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtx", "route.delete",
              "{\"route_id\": \"%s\"}", b);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtx", "route.upsert",
              "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\": \"b\"}", b);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_rtx", "route.list",
              "{\"starting_after\": \"%s\"}", b);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_rtx", "payout.create",
              "{\"amount\": 1000, \"currency\": \"usd\", \"route_id\": \"%s\"}", b);
    /* The paid payout still names its route. */
    r = it_ok(f->pool, "acct_rtx", "payout.get", "{\"payout_id\": \"%s\"}", po);
    assert_string_equal(it_str(r, "payout.route_id"), b);
    json_decref(r);

    /* Deleting the default leaves the account without one. */
    r = it_ok(f->pool, "acct_rtx", "route.delete", "{\"route_id\": \"%s\"}", a);
    assert_true(json_is_true(it_get(r, "route.is_default")));
    json_decref(r);
    assert_int_equal(defaults_of(f, "acct_rtx"), 0);
    r = it_ok(f->pool, "acct_rtx", "route.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    r = it_ok(f->pool, "acct_rtx", "payout.create", "{\"amount\": 1000, \"currency\": \"usd\"}");
    assert_true(json_is_null(it_get(r, "payout.route_id")));
    json_decref(r);
    it_reject(TALLY_ERR_INVALID_REQUEST, "route_id", f->pool, "acct_rtx", "route.delete",
              "{\"route_id\": 5}");
}

static void test_isolation(void **state)
{
    it_fixture_t *f = *state;
    char a[64], pay[64];
    upsert(f, "acct_iso_a",
           "{\"kind\": \"bank_account\", \"destination\": \"a\", \"is_default\": true}", a,
           sizeof(a));
    it_record_payment(f, "acct_iso_b", "pi_iso_b", 10000, "succeeded", pay, sizeof(pay));
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_iso_b", "route.get",
              "{\"route_id\": \"%s\"}", a);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_iso_b", "route.upsert",
              "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\": \"stolen\","
              " \"is_default\": true}",
              a);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_iso_b", "route.delete",
              "{\"route_id\": \"%s\"}", a);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_iso_b", "route.list",
              "{\"starting_after\": \"%s\"}", a);
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_iso_b", "payout.create",
              "{\"amount\": 500, \"currency\": \"usd\", \"route_id\": \"%s\"}", a);
    /* B's payout without route_id does not find A's default. */
    json_t *r =
        it_ok(f->pool, "acct_iso_b", "payout.create", "{\"amount\": 500, \"currency\": \"usd\"}");
    assert_true(json_is_null(it_get(r, "payout.route_id")));
    json_decref(r);
    r = it_ok(f->pool, "acct_iso_b", "route.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    /* A's route is untouched. */
    r = it_ok(f->pool, "acct_iso_a", "route.get", "{\"route_id\": \"%s\"}", a);
    assert_string_equal(it_str(r, "route.destination"), "a");
    assert_true(json_is_true(it_get(r, "route.is_default")));
    json_decref(r);
}

/* ---- Concurrency ----------------------------------------------------------- */

#define DEFAULT_THREADS 8
#define DEFAULT_EACH    12

typedef struct default_worker {
    const it_fixture_t *f;
    pool_t *pool; /* this thread's own connection */
    int index;
    const char (*existing)[64]; /* routes to promote */
    int ok, bad;
    char bad_msg[300];
} default_worker_t;

/* Half the requests create a new default, half promote an existing route. */
static void *default_thread(void *arg)
{
    default_worker_t *w = arg;
    for (int i = 0; i < DEFAULT_EACH; i++) {
        it_answer_t a = (w->index + i) % 2 == 0
                            ? it_run(w->pool, "acct_rtc", "route.upsert",
                                     "{\"kind\": \"bank_account\", \"destination\": \"t%d-%d\","
                                     " \"is_default\": true}",
                                     w->index, i)
                            : it_run(w->pool, "acct_rtc", "route.upsert",
                                     "{\"route_id\": \"%s\", \"kind\": \"bank_account\","
                                     " \"destination\": \"e\", \"is_default\": true}",
                                     w->existing[(w->index + i) % DEFAULT_THREADS]);
        if (a.status == HANDLER_OK && json_is_true(it_get(a.result, "route.is_default"))) {
            w->ok++;
        } else {
            w->bad++;
            snprintf(w->bad_msg, sizeof(w->bad_msg), "%s: %s", it_status_str(a.status),
                     a.err.message);
        }
        json_decref(a.result);
    }
    return NULL;
}

static void test_concurrent_defaults(void **state)
{
    it_fixture_t *f = *state;
    char existing[DEFAULT_THREADS][64];
    for (int i = 0; i < DEFAULT_THREADS; i++)
        upsert(f, "acct_rtc", "{\"kind\": \"bank_account\", \"destination\": \"e\"}", existing[i],
               sizeof(existing[i]));

    default_worker_t w[DEFAULT_THREADS];
    pthread_t t[DEFAULT_THREADS];
    for (int i = 0; i < DEFAULT_THREADS; i++) {
        w[i] =
            (default_worker_t){.f = f, .pool = it_pool(f->pg, 1), .index = i, .existing = existing};
        assert_int_equal(pthread_create(&t[i], NULL, default_thread, &w[i]), 0);
    }
    int ok = 0;
    for (int i = 0; i < DEFAULT_THREADS; i++) {
        pthread_join(t[i], NULL);
        pool_free(w[i].pool);
    }
    for (int i = 0; i < DEFAULT_THREADS; i++) {
        /* Not even a retry: the per-account lock serializes, nothing races. */
        if (w[i].bad != 0)
            fail_msg("thread %d: %d failed upserts, last: %s", i, w[i].bad, w[i].bad_msg);
        ok += w[i].ok;
    }
    print_message("concurrent default upserts: %d ok\n", ok);
    assert_int_equal(ok, DEFAULT_THREADS * DEFAULT_EACH);
    assert_int_equal(defaults_of(f, "acct_rtc"), 1);
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM account_payout_routes WHERE account_id = 'acct_rtc'"),
        DEFAULT_THREADS + DEFAULT_THREADS * DEFAULT_EACH / 2);
}

#define RACE_ROUNDS 24

typedef struct race_side {
    pool_t *pool;
    pthread_barrier_t *start;
    const char *route_id;
    bool payout; /* payout.create through the route, else route.delete */
    it_answer_t answer;
} race_side_t;

static void *race_thread(void *arg)
{
    race_side_t *s = arg;
    pthread_barrier_wait(s->start);
    s->answer =
        s->payout
            ? it_run(s->pool, "acct_rtr", "payout.create",
                     "{\"amount\": 100, \"currency\": \"usd\", \"route_id\": \"%s\"}", s->route_id)
            : it_run(s->pool, "acct_rtr", "route.delete", "{\"route_id\": \"%s\"}", s->route_id);
    return NULL;
}

/* route.delete racing payout.create on one route: either the payout wins
 * (the delete is a conflict) or the delete wins (the payout finds no route);
 * never a pending payout on a deleted route. */
static void test_delete_races_payout(void **state)
{
    it_fixture_t *f = *state;
    char pay[64];
    it_record_payment(f, "acct_rtr", "pi_rtr", 1000000, "succeeded", pay, sizeof(pay));
    pool_t *pools[2] = {it_pool(f->pg, 1), it_pool(f->pg, 1)};
    int payout_won = 0, delete_won = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char id[64];
        upsert(f, "acct_rtr", "{\"kind\": \"bank_account\", \"destination\": \"r\"}", id,
               sizeof(id));
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, 2);
        race_side_t sides[2] = {
            {.pool = pools[0], .start = &start, .route_id = id, .payout = true},
            {.pool = pools[1], .start = &start, .route_id = id, .payout = false},
        };
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, race_thread, &sides[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&start);
        it_answer_t *p = &sides[0].answer, *d = &sides[1].answer;
        if (p->status == HANDLER_OK && d->status == HANDLER_REJECTED &&
            d->err.code == TALLY_ERR_CONFLICT)
            payout_won++;
        else if (d->status == HANDLER_OK && p->status == HANDLER_REJECTED &&
                 p->err.code == TALLY_ERR_NOT_FOUND)
            delete_won++;
        else
            fail_msg("round %d: payout %s (%s), delete %s (%s)", round, it_status_str(p->status),
                     p->err.message, it_status_str(d->status), d->err.message);
        json_decref(p->result);
        json_decref(d->result);
    }
    pool_free(pools[0]);
    pool_free(pools[1]);
    print_message("delete vs payout: payout first %d, delete first %d\n", payout_won, delete_won);
    assert_int_equal(payout_won + delete_won, RACE_ROUNDS);
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM pay_out p JOIN account_payout_routes r"
                                   " ON r.account_id = p.account_id AND r.id = p.route_id"
                                   " WHERE p.account_id = 'acct_rtr' AND p.status = 'pending'"
                                   "   AND r.deleted_at IS NOT NULL"),
                     0);
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM pay_out WHERE account_id = 'acct_rtr'"),
                     payout_won);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_get_list),     cmocka_unit_test(test_update),
        cmocka_unit_test(test_one_default),         cmocka_unit_test(test_delete),
        cmocka_unit_test(test_isolation),           cmocka_unit_test(test_concurrent_defaults),
        cmocka_unit_test(test_delete_races_payout),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
