/* it_payouts — balance.get and the payout.* job types end to end below the
 * worker: the balance per currency, payout rules (min_payout_amount, routes,
 * insufficient funds), status moves and what they do to the balance, lists,
 * tenant isolation; concurrent payouts against one balance (never
 * overdrawn); and a cross-check of the incrementally kept balances against
 * the contract's formula over the raw tables after a random mix of payment
 * and payout requests from concurrent threads. */
#include "it_handlers.h"

#include "common/clock.h"

#include <pthread.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* payment.record, succeeded, in currency. */
static void fund(const it_fixture_t *f, const char *account, const char *external_id,
                 int64_t amount, const char *currency)
{
    json_decref(it_ok(f->pool, account, "payment.record",
                      "{\"external_id\": \"%s\", \"amount\": %lld, \"currency\": \"%s\"}",
                      external_id, (long long)amount, currency));
}

/* Asserts the balance of account in currency through balance.get. */
static void assert_balance(const it_fixture_t *f, const char *account, const char *currency,
                           int64_t available, int64_t pending, int64_t paid)
{
    json_t *r = it_ok(f->pool, account, "balance.get", "{\"currency\": \"%s\"}", currency);
    json_t *data = json_object_get(r, "data");
    assert_int_equal(json_array_size(data), 1);
    json_t *b = json_array_get(data, 0);
    assert_int_equal(json_object_size(b), 4);
    assert_string_equal(it_str(b, "currency"), currency);
    if (it_int(b, "available") != available || it_int(b, "pending_payouts") != pending ||
        it_int(b, "paid_out") != paid)
        fail_msg("%s %s: balance %lld/%lld/%lld, wanted %lld/%lld/%lld", account, currency,
                 (long long)it_int(b, "available"), (long long)it_int(b, "pending_payouts"),
                 (long long)it_int(b, "paid_out"), (long long)available, (long long)pending,
                 (long long)paid);
    json_decref(r);
}

/* payout.create that must succeed; its id goes to out. */
static void payout(const it_fixture_t *f, const char *account, const char *payload, char *out,
                   size_t size)
{
    json_t *r = it_ok(f->pool, account, "payout.create", "%s", payload);
    snprintf(out, size, "%s", it_str(r, "payout.id"));
    json_decref(r);
}

static void test_balance_get(void **state)
{
    it_fixture_t *f = *state;
    /* Nothing yet: one zero row in the default currency. */
    json_t *r = it_ok(f->pool, "acct_bal", "balance.get", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.currency"), "usd");
    assert_int_equal(it_int(r, "data.0.available"), 0);
    json_decref(r);
    assert_balance(f, "acct_bal", "eur", 0, 0, 0);

    fund(f, "acct_bal", "pi_b1", 1999, "usd");
    fund(f, "acct_bal", "pi_b2", 1, "usd");
    fund(f, "acct_bal", "pi_b3", 700, "eur");
    json_decref(it_ok(f->pool, "acct_bal", "payment.record",
                      "{\"external_id\": \"pi_b4\", \"amount\": 5000, \"currency\": \"usd\","
                      " \"status\": \"pending\"}"));
    r = it_ok(f->pool, "acct_bal", "balance.get", "{}");
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_string_equal(it_str(r, "data.0.currency"), "eur"); /* ordered by currency */
    assert_int_equal(it_int(r, "data.0.available"), 700);
    assert_string_equal(it_str(r, "data.1.currency"), "usd");
    assert_int_equal(it_int(r, "data.1.available"), 2000);
    assert_int_equal(it_int(r, "data.1.pending_payouts"), 0);
    assert_int_equal(it_int(r, "data.1.paid_out"), 0);
    json_decref(r);
    assert_balance(f, "acct_bal", "gbp", 0, 0, 0);

    /* A fresh account's zero row follows its default_currency. */
    json_decref(it_ok(f->pool, "acct_bal2", "settings.update", "{\"default_currency\": \"gbp\"}"));
    r = it_ok(f->pool, "acct_bal2", "balance.get", "{}");
    assert_string_equal(it_str(r, "data.0.currency"), "gbp");
    json_decref(r);

    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_bal", "balance.get",
              "{\"currency\": \"USD\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "account", f->pool, "acct_bal", "balance.get",
              "{\"account\": \"x\"}");
}

static void test_create_and_status(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_po", "pi_po1", 10000, "usd");

    json_t *r = it_ok(f->pool, "acct_po", "payout.create",
                      "{\"amount\": 3000, \"currency\": \"usd\", \"description\": \"June\"}");
    json_t *po = json_object_get(r, "payout");
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(json_object_size(po), 7); /* exactly the contract's payout */
    char a[64];
    snprintf(a, sizeof(a), "%s", it_str(po, "id"));
    assert_memory_equal(a, "po_", 3);
    assert_int_equal(it_int(po, "amount"), 3000);
    assert_string_equal(it_str(po, "currency"), "usd");
    assert_string_equal(it_str(po, "status"), "pending");
    assert_true(json_is_null(json_object_get(po, "route_id"))); /* no default route */
    assert_string_equal(it_str(po, "description"), "June");
    assert_int_equal(strlen(it_str(po, "created_at")), CLOCK_RFC3339_LEN);
    json_t *g = it_ok(f->pool, "acct_po", "payout.get", "{\"payout_id\": \"%s\"}", a);
    assert_true(json_equal(g, r));
    json_decref(g);
    json_decref(r);
    assert_balance(f, "acct_po", "usd", 7000, 3000, 0);

    /* pending → paid; paid again is a no-op that moves nothing. */
    for (int i = 0; i < 2; i++) {
        r = it_ok(f->pool, "acct_po", "payout.update_status",
                  "{\"payout_id\": \"%s\", \"status\": \"paid\"}", a);
        assert_string_equal(it_str(r, "payout.status"), "paid");
        json_decref(r);
        assert_balance(f, "acct_po", "usd", 7000, 0, 3000);
    }
    handler_error_t e =
        it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_po", "payout.update_status",
                  "{\"payout_id\": \"%s\", \"status\": \"failed\"}", a);
    assert_non_null(strstr(e.message, "paid"));

    /* pending → failed gives the amount back, once. */
    char b[64];
    payout(f, "acct_po", "{\"amount\": 2000, \"currency\": \"usd\"}", b, sizeof(b));
    assert_balance(f, "acct_po", "usd", 5000, 2000, 3000);
    for (int i = 0; i < 2; i++) {
        r = it_ok(f->pool, "acct_po", "payout.update_status",
                  "{\"payout_id\": \"%s\", \"status\": \"failed\"}", b);
        assert_string_equal(it_str(r, "payout.status"), "failed");
        json_decref(r);
        assert_balance(f, "acct_po", "usd", 7000, 0, 3000);
    }
    it_reject(TALLY_ERR_CONFLICT, "status", f->pool, "acct_po", "payout.update_status",
              "{\"payout_id\": \"%s\", \"status\": \"paid\"}", b);

    it_reject(TALLY_ERR_INVALID_REQUEST, "status", f->pool, "acct_po", "payout.update_status",
              "{\"payout_id\": \"%s\", \"status\": \"pending\"}", b);
    it_reject(TALLY_ERR_NOT_FOUND, "payout_id", f->pool, "acct_po", "payout.update_status",
              "{\"payout_id\": \"po_nope\", \"status\": \"paid\"}");
    it_reject(TALLY_ERR_NOT_FOUND, "payout_id", f->pool, "acct_po", "payout.get",
              "{\"payout_id\": \"po_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "payout_id", f->pool, "acct_po", "payout.get", "{}");
    assert_balance(f, "acct_po", "usd", 7000, 0, 3000);
}

static void test_create_rules(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_pr", "pi_pr1", 5000, "usd");

    /* Above available: insufficient_funds, and nothing moved. */
    handler_error_t e = it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_pr",
                                  "payout.create", "{\"amount\": 5001, \"currency\": \"usd\"}");
    assert_non_null(strstr(e.message, "available"));
    it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 1000, \"currency\": \"eur\"}"); /* no eur at all */
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM pay_out WHERE account_id = 'acct_pr'"), 0);
    assert_balance(f, "acct_pr", "usd", 5000, 0, 0);

    /* Below min_payout_amount (default 100): invalid_request on amount. */
    e = it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_pr", "payout.create",
                  "{\"amount\": 99, \"currency\": \"usd\"}");
    assert_non_null(strstr(e.message, "100"));
    /* min comes before funds. */
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 99, \"currency\": \"eur\"}");
    json_decref(it_ok(f->pool, "acct_pr", "settings.update", "{\"min_payout_amount\": 10}"));
    char id[64];
    payout(f, "acct_pr", "{\"amount\": 10, \"currency\": \"usd\"}", id, sizeof(id));
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 9, \"currency\": \"usd\"}");

    /* Routes: unknown → not_found; the default is used when none is given. */
    it_reject(TALLY_ERR_NOT_FOUND, "route_id", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 100, \"currency\": \"usd\", \"route_id\": \"rt_nope\"}");
    json_t *r =
        it_ok(f->pool, "acct_pr", "route.upsert",
              "{\"kind\": \"bank_account\", \"destination\": \"ba\", \"is_default\": true}");
    char dflt[64];
    snprintf(dflt, sizeof(dflt), "%s", it_str(r, "route.id"));
    json_decref(r);
    r = it_ok(
        f->pool, "acct_pr", "route.upsert",
        "{\"kind\": \"stripe_connect\", \"destination\": \"acct_eu\", \"currency\": \"eur\"}");
    char eur_route[64];
    snprintf(eur_route, sizeof(eur_route), "%s", it_str(r, "route.id"));
    json_decref(r);

    r = it_ok(f->pool, "acct_pr", "payout.create", "{\"amount\": 100, \"currency\": \"usd\"}");
    assert_string_equal(it_str(r, "payout.route_id"), dflt);
    json_decref(r);
    /* A route bound to another currency: conflict. */
    e = it_reject(TALLY_ERR_CONFLICT, "route_id", f->pool, "acct_pr", "payout.create",
                  "{\"amount\": 100, \"currency\": \"usd\", \"route_id\": \"%s\"}", eur_route);
    assert_non_null(strstr(e.message, "eur"));
    fund(f, "acct_pr", "pi_pr2", 300, "eur");
    r = it_ok(f->pool, "acct_pr", "payout.create",
              "{\"amount\": 300, \"currency\": \"eur\", \"route_id\": \"%s\"}", eur_route);
    assert_string_equal(it_str(r, "payout.route_id"), eur_route);
    json_decref(r);
    assert_balance(f, "acct_pr", "eur", 0, 300, 0);

    /* Without route_id, a default route bound to another currency: conflict
     * naming the default route, and no field (the request named none). */
    json_decref(it_ok(f->pool, "acct_pr", "route.upsert",
                      "{\"route_id\": \"%s\", \"kind\": \"stripe_connect\","
                      " \"destination\": \"acct_eu\", \"is_default\": true}",
                      eur_route));
    fund(f, "acct_pr", "pi_pr3", 100, "eur");
    e = it_reject(TALLY_ERR_CONFLICT, NULL, f->pool, "acct_pr", "payout.create",
                  "{\"amount\": 100, \"currency\": \"usd\"}");
    assert_string_equal(e.field, "");
    if (strstr(e.message, eur_route) == NULL || strstr(e.message, "default") == NULL ||
        strstr(e.message, "eur") == NULL)
        fail_msg("the conflict does not name the default route %s: %s", eur_route, e.message);
    json_decref(it_ok(f->pool, "acct_pr", "payout.create",
                      "{\"amount\": 100, \"currency\": \"eur\"}")); /* it takes eur */
    json_decref(it_ok(f->pool, "acct_pr", "route.upsert",
                      "{\"route_id\": \"%s\", \"kind\": \"bank_account\", \"destination\": \"ba\","
                      " \"is_default\": true}",
                      dflt));

    /* Exactly the available rest is fine; one more unit is not. */
    assert_balance(f, "acct_pr", "usd", 4890, 110, 0);
    it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 4891, \"currency\": \"usd\"}");
    payout(f, "acct_pr", "{\"amount\": 4890, \"currency\": \"usd\"}", id, sizeof(id));
    assert_balance(f, "acct_pr", "usd", 0, 5000, 0);
    it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 10, \"currency\": \"usd\"}");

    /* Validation. */
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 0, \"currency\": \"usd\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 100.0, \"currency\": \"usd\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 100}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 100, \"currency\": \"uds\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "status", f->pool, "acct_pr", "payout.create",
              "{\"amount\": 100, \"currency\": \"usd\", \"status\": \"paid\"}");
}

/* A refund after a payout can take available below zero (CONTRACT's
 * formula); no payout is possible then, and a failed payout brings it back. */
static void test_refund_after_payout(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_prf", "payment.record",
                      "{\"external_id\": \"pi_prf\", \"amount\": 1000, \"currency\": \"usd\"}");
    char pay[64];
    snprintf(pay, sizeof(pay), "%s", it_str(r, "payment.id"));
    json_decref(r);
    char po[64];
    payout(f, "acct_prf", "{\"amount\": 800, \"currency\": \"usd\"}", po, sizeof(po));
    json_decref(it_ok(f->pool, "acct_prf", "payment.refund",
                      "{\"payment_id\": \"%s\", \"amount\": 500}", pay));
    assert_balance(f, "acct_prf", "usd", -300, 800, 0);
    it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_prf", "payout.create",
              "{\"amount\": 100, \"currency\": \"usd\"}");
    json_decref(it_ok(f->pool, "acct_prf", "payout.update_status",
                      "{\"payout_id\": \"%s\", \"status\": \"failed\"}", po));
    assert_balance(f, "acct_prf", "usd", 500, 0, 0);
    payout(f, "acct_prf", "{\"amount\": 500, \"currency\": \"usd\"}", po, sizeof(po));
    assert_balance(f, "acct_prf", "usd", 0, 500, 0);
}

/* The table's trigger refuses the worker's raw SQL too. */
static void test_walls(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_pw", "pi_pw", 1000, "usd");
    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    PQclear(PQexec(w, "SELECT set_config('app.account_id', 'acct_pw', false)"));
    static const struct {
        const char *sql, *constraint;
    } refused[] = {
        {"INSERT INTO pay_out (account_id, id, amount, currency, status)"
         " VALUES ('acct_pw', 'po_raw1', 1001, 'usd', 'pending')",
         "pay_out_funds"},
        {"INSERT INTO pay_out (account_id, id, amount, currency, status)"
         " VALUES ('acct_pw', 'po_raw2', 10, 'usd', 'paid')",
         "pay_out_transition"},
        {"INSERT INTO pay_out (account_id, id, amount, currency, status)"
         " VALUES ('acct_pw', 'po_raw3', 10, 'eur', 'pending')",
         "pay_out_funds"},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        PGresult *r = PQexec(w, refused[i].sql);
        const char *c = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
        if (c == NULL || strcmp(c, refused[i].constraint) != 0)
            fail_msg("%s: wanted %s, got %s", refused[i].sql, refused[i].constraint,
                     PQresultErrorMessage(r));
        PQclear(r);
    }
    /* paid → failed would give paid money back: refused. */
    PQclear(PQexec(w, "INSERT INTO pay_out (account_id, id, amount, currency, status)"
                      " VALUES ('acct_pw', 'po_raw4', 100, 'usd', 'pending')"));
    PQclear(PQexec(w, "UPDATE pay_out SET status = 'paid' WHERE id = 'po_raw4'"));
    PGresult *r = PQexec(w, "UPDATE pay_out SET status = 'failed' WHERE id = 'po_raw4'");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME), "pay_out_transition");
    PQclear(r);
    r = PQexec(w, "UPDATE pay_out SET amount = 1 WHERE id = 'po_raw4'");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQfinish(w);
    assert_balance(f, "acct_pw", "usd", 900, 0, 100);
}

static void test_list(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_pl", "pi_pl", 100000, "usd");
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        char payload[96];
        snprintf(payload, sizeof(payload), "{\"amount\": %d, \"currency\": \"usd\"}", 100 + i);
        payout(f, "acct_pl", payload, ids[i], sizeof(ids[i]));
    }
    json_decref(it_ok(f->pool, "acct_pl", "payout.update_status",
                      "{\"payout_id\": \"%s\", \"status\": \"paid\"}", ids[1]));
    json_decref(it_ok(f->pool, "acct_pl", "payout.update_status",
                      "{\"payout_id\": \"%s\", \"status\": \"failed\"}", ids[3]));

    json_t *r = it_ok(f->pool, "acct_pl", "payout.list", "{}");
    json_t *data = json_object_get(r, "data");
    assert_int_equal(json_array_size(data), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(data, i), "id")),
                            ids[4 - i]);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);

    r = it_ok(f->pool, "acct_pl", "payout.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[4]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_string_equal(it_str(r, "data.0.id"), ids[3]);
    assert_string_equal(it_str(r, "data.1.id"), ids[2]);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    json_decref(r);

    r = it_ok(f->pool, "acct_pl", "payout.list", "{\"status\": \"pending\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 3);
    assert_string_equal(it_str(r, "data.0.id"), ids[4]);
    assert_string_equal(it_str(r, "data.1.id"), ids[2]);
    assert_string_equal(it_str(r, "data.2.id"), ids[0]);
    json_decref(r);
    r = it_ok(f->pool, "acct_pl", "payout.list", "{\"status\": \"failed\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.id"), ids[3]);
    assert_string_equal(it_str(r, "data.0.status"), "failed");
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_pl", "payout.list",
              "{\"starting_after\": \"po_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "status", f->pool, "acct_pl", "payout.list",
              "{\"status\": \"succeeded\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "limit", f->pool, "acct_pl", "payout.list",
              "{\"limit\": 101}");
}

static void test_isolation(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_pi_a", "pi_a", 5000, "usd");
    char a[64];
    payout(f, "acct_pi_a", "{\"amount\": 1000, \"currency\": \"usd\"}", a, sizeof(a));

    it_reject(TALLY_ERR_NOT_FOUND, "payout_id", f->pool, "acct_pi_b", "payout.get",
              "{\"payout_id\": \"%s\"}", a);
    it_reject(TALLY_ERR_NOT_FOUND, "payout_id", f->pool, "acct_pi_b", "payout.update_status",
              "{\"payout_id\": \"%s\", \"status\": \"failed\"}", a);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_pi_b", "payout.list",
              "{\"starting_after\": \"%s\"}", a);
    /* B has no money: A's balance is not B's. */
    it_reject(TALLY_ERR_INSUFFICIENT_FUNDS, "amount", f->pool, "acct_pi_b", "payout.create",
              "{\"amount\": 100, \"currency\": \"usd\"}");
    assert_balance(f, "acct_pi_b", "usd", 0, 0, 0);
    json_t *r = it_ok(f->pool, "acct_pi_b", "payout.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    /* A's payout is untouched. */
    r = it_ok(f->pool, "acct_pi_a", "payout.get", "{\"payout_id\": \"%s\"}", a);
    assert_string_equal(it_str(r, "payout.status"), "pending");
    json_decref(r);
    assert_balance(f, "acct_pi_a", "usd", 4000, 1000, 0);
}

/* ---- Concurrency ----------------------------------------------------------- */

/* A small deterministic generator (xorshift64*), one per thread. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

#define RETRIES 5 /* attempts per request, for HANDLER_RETRY */

/* it_run_text with retries on HANDLER_RETRY, as the worker would. */
static it_answer_t run_retrying(pool_t *pool, const char *account, const char *type,
                                const char *payload, int *retries)
{
    it_answer_t a = {.status = HANDLER_RETRY};
    for (int i = 0; i < RETRIES && a.status == HANDLER_RETRY; i++) {
        if (i > 0)
            (*retries)++;
        a = it_run_text(pool, account, type, payload);
    }
    return a;
}

#define PAYOUT_THREADS 8
#define PAYOUTS_EACH   30
#define PAYOUT_FUNDS   100000

typedef struct payout_worker {
    pool_t *pool; /* this thread's own connection */
    int index;
    int ok, insufficient, released, retries, bad;
    int64_t taken;    /* Σ amounts of payouts answered ok */
    int64_t returned; /* Σ amounts of those this thread then failed */
    char bad_msg[300];
} payout_worker_t;

static void *payout_thread(void *arg)
{
    payout_worker_t *w = arg;
    uint64_t seed = UINT64_C(0x9E3779B97F4A7C15) * (uint64_t)(w->index + 1);
    char payload[256];
    for (int i = 0; i < PAYOUTS_EACH; i++) {
        int64_t amount = 100 + (int64_t)(next_rand(&seed) % 4900);
        snprintf(payload, sizeof(payload), "{\"amount\": %lld, \"currency\": \"usd\"}",
                 (long long)amount);
        it_answer_t a = run_retrying(w->pool, "acct_pc", "payout.create", payload, &w->retries);
        if (a.status == HANDLER_REJECTED && a.err.code == TALLY_ERR_INSUFFICIENT_FUNDS) {
            w->insufficient++;
            continue;
        }
        if (a.status != HANDLER_OK) {
            w->bad++;
            snprintf(w->bad_msg, sizeof(w->bad_msg), "create: %s %s", it_status_str(a.status),
                     a.err.message);
            continue;
        }
        w->ok++;
        w->taken += amount;
        /* Every third payout fails (its money comes back), every third is paid. */
        const char *status = i % 3 == 0 ? "failed" : i % 3 == 1 ? "paid" : NULL;
        if (status != NULL) {
            snprintf(payload, sizeof(payload), "{\"payout_id\": \"%s\", \"status\": \"%s\"}",
                     json_string_value(it_get(a.result, "payout.id")), status);
            it_answer_t u =
                run_retrying(w->pool, "acct_pc", "payout.update_status", payload, &w->retries);
            if (u.status != HANDLER_OK) {
                w->bad++;
                snprintf(w->bad_msg, sizeof(w->bad_msg), "update: %s %s", it_status_str(u.status),
                         u.err.message);
            } else if (i % 3 == 0) {
                w->released++;
                w->returned += amount;
            }
            json_decref(u.result);
        }
        json_decref(a.result);
    }
    return NULL;
}

typedef struct sampler {
    const th_pg_t *pg;
    volatile int stop; /* set by the main thread once the workers are done */
    int samples;
    int64_t min_available;
} sampler_t;

/* Reads the balance as the superuser while the payouts run (bounded count). */
static void *sampler_thread(void *arg)
{
    sampler_t *s = arg;
    PGconn *c = th_pg_connect(s->pg, "postgres");
    s->min_available = INT64_MAX;
    while (!__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) && s->samples < 100000) {
        PGresult *r = PQexec(c, "SELECT available FROM account_balances"
                                " WHERE account_id = 'acct_pc' AND currency = 'usd'");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
            int64_t v = atoll(PQgetvalue(r, 0, 0));
            if (v < s->min_available)
                s->min_available = v;
            s->samples++;
        }
        PQclear(r);
    }
    PQfinish(c);
    return NULL;
}

static void test_concurrent_payouts(void **state)
{
    it_fixture_t *f = *state;
    fund(f, "acct_pc", "pi_pc", PAYOUT_FUNDS, "usd");
    json_decref(it_ok(f->pool, "acct_pc", "settings.update", "{\"min_payout_amount\": 1}"));

    sampler_t sampler = {.pg = f->pg};
    pthread_t st;
    assert_int_equal(pthread_create(&st, NULL, sampler_thread, &sampler), 0);
    payout_worker_t w[PAYOUT_THREADS];
    pthread_t t[PAYOUT_THREADS];
    for (int i = 0; i < PAYOUT_THREADS; i++) {
        w[i] = (payout_worker_t){.pool = it_pool(f->pg, 1), .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, payout_thread, &w[i]), 0);
    }
    for (int i = 0; i < PAYOUT_THREADS; i++) {
        pthread_join(t[i], NULL);
        pool_free(w[i].pool);
    }
    __atomic_store_n(&sampler.stop, 1, __ATOMIC_RELEASE);
    pthread_join(st, NULL);

    int ok = 0, insufficient = 0, retries = 0;
    int64_t taken = 0, returned = 0;
    for (int i = 0; i < PAYOUT_THREADS; i++) {
        if (w[i].bad != 0)
            fail_msg("thread %d: %d unexpected answers, last: %s", i, w[i].bad, w[i].bad_msg);
        ok += w[i].ok;
        insufficient += w[i].insufficient;
        retries += w[i].retries;
        taken += w[i].taken;
        returned += w[i].returned;
    }
    print_message("concurrent payouts: %d ok, %d insufficient_funds, %d retries, %lld of %d "
                  "out, %lld returned; %d balance samples, lowest available %lld\n",
                  ok, insufficient, retries, (long long)taken, PAYOUT_FUNDS, (long long)returned,
                  sampler.samples, (long long)sampler.min_available);

    /* Σ payouts that kept their money ≤ funds; the balance never went negative. */
    int64_t kept = taken - returned;
    assert_true(ok > 0);
    assert_true(insufficient > 0); /* 240 requests of 100–4999 cannot all fit in 100000 */
    assert_true(kept <= PAYOUT_FUNDS);
    assert_true(sampler.samples > 0);
    assert_true(sampler.min_available >= 0);
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM pay_out WHERE account_id = 'acct_pc'"),
                     ok);
    assert_int_equal(it_sql_i64(f, "SELECT coalesce(sum(amount), 0) FROM pay_out"
                                   " WHERE account_id = 'acct_pc' AND status <> 'failed'"),
                     kept);
    int64_t paid = it_sql_i64(f, "SELECT coalesce(sum(amount), 0) FROM pay_out"
                                 " WHERE account_id = 'acct_pc' AND status = 'paid'");
    assert_balance(f, "acct_pc", "usd", PAYOUT_FUNDS - kept, kept - paid, paid);
}

/* ---- The balance formula, after a random mix ---------------------------------- */

#define MIX_THREADS 4 /* two per account */
#define MIX_STEPS   120
#define MIX_IDS     MIX_STEPS

typedef struct mix_worker {
    pool_t *pool;
    const char *account;
    int index;
    char payments[MIX_IDS][64];
    char payouts[MIX_IDS][64];
    int npayments, npayouts;
    int ok, rejected, retries, bad;
    char bad_msg[800];
} mix_worker_t;

/* Remembers the id at path of an ok result in list. */
static void remember(const json_t *result, const char *path, char (*list)[64], int *n)
{
    const char *id = json_string_value(it_get(result, path));
    if (id != NULL && *n < MIX_IDS)
        snprintf(list[(*n)++], 64, "%s", id);
}

static void *mix_thread(void *arg)
{
    mix_worker_t *w = arg;
    uint64_t seed = UINT64_C(0xD1B54A32D192ED03) * (uint64_t)(w->index + 7);
    char payload[256];
    for (int step = 0; step < MIX_STEPS; step++) {
        uint64_t r = next_rand(&seed);
        unsigned op = (unsigned)(r % 100);
        const char *currency = (r >> 8) % 3 == 0 ? "eur" : "usd";
        int64_t amount = 100 + (int64_t)((r >> 16) % 15000);
        const char *type;
        if (op < 25 || w->npayments == 0) {
            static const char *const statuses[] = {
                "succeeded", "succeeded", "succeeded", "succeeded", "succeeded",
                "succeeded", "succeeded", "pending",   "pending",   "failed"};
            type = "payment.record";
            snprintf(payload, sizeof(payload),
                     "{\"external_id\": \"mix-%d-%d\", \"amount\": %lld, \"currency\": \"%s\","
                     " \"status\": \"%s\"}",
                     w->index, step, (long long)amount, currency, statuses[(r >> 32) % 10]);
        } else if (op < 35) {
            type = "payment.update_status";
            snprintf(payload, sizeof(payload), "{\"payment_id\": \"%s\", \"status\": \"%s\"}",
                     w->payments[(r >> 24) % (uint64_t)w->npayments],
                     (r >> 40) % 4 == 0 ? "failed" : "succeeded");
        } else if (op < 50) {
            type = "payment.refund";
            if ((r >> 40) % 3 == 0)
                snprintf(payload, sizeof(payload), "{\"payment_id\": \"%s\"}",
                         w->payments[(r >> 24) % (uint64_t)w->npayments]);
            else
                snprintf(payload, sizeof(payload), "{\"payment_id\": \"%s\", \"amount\": %lld}",
                         w->payments[(r >> 24) % (uint64_t)w->npayments],
                         (long long)(1 + amount / 3));
        } else if (op < 80 || w->npayouts == 0) {
            type = "payout.create";
            snprintf(payload, sizeof(payload), "{\"amount\": %lld, \"currency\": \"%s\"}",
                     (long long)amount, currency);
        } else {
            type = "payout.update_status";
            snprintf(payload, sizeof(payload), "{\"payout_id\": \"%s\", \"status\": \"%s\"}",
                     w->payouts[(r >> 24) % (uint64_t)w->npayouts],
                     (r >> 40) % 2 == 0 ? "failed" : "paid");
        }
        it_answer_t a = run_retrying(w->pool, w->account, type, payload, &w->retries);
        if (a.status == HANDLER_OK) {
            w->ok++;
            if (strcmp(type, "payment.record") == 0)
                remember(a.result, "payment.id", w->payments, &w->npayments);
            else if (strcmp(type, "payout.create") == 0)
                remember(a.result, "payout.id", w->payouts, &w->npayouts);
        } else if (a.status == HANDLER_REJECTED && (a.err.code == TALLY_ERR_CONFLICT ||
                                                    a.err.code == TALLY_ERR_INSUFFICIENT_FUNDS)) {
            w->rejected++;
        } else {
            w->bad++;
            snprintf(w->bad_msg, sizeof(w->bad_msg), "%s %s: %s %s", type, payload,
                     it_status_str(a.status), a.err.message);
        }
        json_decref(a.result);
    }
    return NULL;
}

/* The contract's formula over the raw tables, per account and currency:
 * available = Σ net of succeeded/refunded payments − Σ pending and paid
 * payouts; pending_payouts = Σ pending; paid_out = Σ paid. */
#define FORMULA_SQL                                                                                \
    "WITH pay AS ("                                                                                \
    "  SELECT account_id, currency, coalesce(sum(amount - amount_refunded)"                        \
    "         FILTER (WHERE status IN ('succeeded', 'refunded')), 0) AS net"                       \
    "  FROM stripe_payments GROUP BY 1, 2),"                                                       \
    " po AS ("                                                                                     \
    "  SELECT account_id, currency,"                                                               \
    "   coalesce(sum(amount) FILTER (WHERE status IN ('pending', 'paid')), 0) AS out,"             \
    "   coalesce(sum(amount) FILTER (WHERE status = 'pending'), 0) AS pending,"                    \
    "   coalesce(sum(amount) FILTER (WHERE status = 'paid'), 0) AS paid"                           \
    "  FROM pay_out GROUP BY 1, 2),"                                                               \
    " want AS ("                                                                                   \
    "  SELECT account_id, currency, coalesce(net, 0) - coalesce(out, 0) AS available,"             \
    "   coalesce(pending, 0) AS pending, coalesce(paid, 0) AS paid"                                \
    "  FROM pay FULL JOIN po USING (account_id, currency)),"                                       \
    " cmp AS ("                                                                                    \
    "  SELECT account_id, currency,"                                                               \
    "   coalesce(w.available, 0) AS want_available, coalesce(b.available, 0) AS available,"        \
    "   coalesce(w.pending, 0) AS want_pending, coalesce(b.pending_payouts, 0) AS pending,"        \
    "   coalesce(w.paid, 0) AS want_paid, coalesce(b.paid_out, 0) AS paid"                         \
    "  FROM want w FULL JOIN account_balances b USING (account_id, currency)"                      \
    "  WHERE account_id LIKE 'acct_mix%%')"

static void test_balance_formula(void **state)
{
    it_fixture_t *f = *state;
    mix_worker_t *w = calloc(MIX_THREADS, sizeof(*w));
    pthread_t t[MIX_THREADS];
    for (int i = 0; i < MIX_THREADS; i++) {
        w[i].pool = it_pool(f->pg, 1);
        w[i].account = i % 2 == 0 ? "acct_mix0" : "acct_mix1";
        w[i].index = i;
        assert_int_equal(pthread_create(&t[i], NULL, mix_thread, &w[i]), 0);
    }
    for (int i = 0; i < MIX_THREADS; i++) {
        pthread_join(t[i], NULL);
        pool_free(w[i].pool);
    }
    int ok = 0, rejected = 0, retries = 0;
    for (int i = 0; i < MIX_THREADS; i++) {
        if (w[i].bad != 0) {
            char msg[800];
            snprintf(msg, sizeof(msg), "%s", w[i].bad_msg);
            int bad = w[i].bad;
            free(w);
            fail_msg("thread %d: %d unexpected answers, last: %s", i, bad, msg);
        }
        ok += w[i].ok;
        rejected += w[i].rejected;
        retries += w[i].retries;
    }
    free(w);

    int64_t rows = it_sql_i64(f, FORMULA_SQL " SELECT count(*) FROM cmp");
    int64_t wrong =
        it_sql_i64(f, FORMULA_SQL " SELECT count(*) FROM cmp"
                                  " WHERE want_available <> available"
                                  "    OR want_pending <> pending OR want_paid <> paid");
    int64_t negative = it_sql_i64(f, FORMULA_SQL " SELECT count(*) FROM cmp WHERE available < 0");
    print_message("random mix: %d ok, %d rejected, %d retries; %lld balances checked, %lld "
                  "negative after refunds\n",
                  ok, rejected, retries, (long long)rows, (long long)negative);
    assert_true(ok > MIX_THREADS * MIX_STEPS / 2);
    assert_true(rejected > 0);
    assert_int_equal(rows, 4); /* two accounts, two currencies */
    if (wrong != 0) {
        char *dump = th_pg_text(f->pg, "postgres",
                                FORMULA_SQL " SELECT string_agg(cmp::text, E'\\n') FROM cmp");
        fail_msg("%lld balances differ from the formula:\n%s", (long long)wrong, dump);
    }
    /* balance.get answers the same numbers. */
    static const char *const accounts[] = {"acct_mix0", "acct_mix1"};
    for (int i = 0; i < 2; i++) {
        json_t *r = it_ok(f->pool, accounts[i], "balance.get", "{}");
        json_t *data = json_object_get(r, "data");
        assert_int_equal(json_array_size(data), 2);
        for (size_t k = 0; k < 2; k++) {
            json_t *b = json_array_get(data, k);
            assert_int_equal(
                it_sql_i64(f,
                           FORMULA_SQL " SELECT count(*) FROM cmp"
                                       " WHERE account_id = '%s' AND currency = '%s'"
                                       "   AND want_available = %lld"
                                       "   AND want_pending = %lld AND want_paid = %lld",
                           accounts[i], it_str(b, "currency"), (long long)it_int(b, "available"),
                           (long long)it_int(b, "pending_payouts"),
                           (long long)it_int(b, "paid_out")),
                1);
        }
        json_decref(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balance_get),     cmocka_unit_test(test_create_and_status),
        cmocka_unit_test(test_create_rules),    cmocka_unit_test(test_refund_after_payout),
        cmocka_unit_test(test_walls),           cmocka_unit_test(test_list),
        cmocka_unit_test(test_isolation),       cmocka_unit_test(test_concurrent_payouts),
        cmocka_unit_test(test_balance_formula),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
