/* it_codes — the code.* job types end to end below the worker: schema,
 * handler, access layer and a real PostgreSQL as the worker's role; limits,
 * expiry, revocation, paging, tenant isolation, and concurrent redemptions of
 * one code from many connections. */
#include "it_handlers.h"

#include "common/clock.h"

#include <pthread.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* A generated code: three groups of four of the code alphabet. */
static bool generated_shape(const char *s)
{
    if (strlen(s) != 14)
        return false;
    for (int i = 0; i < 14; i++) {
        bool dash = i == 4 || i == 9;
        if (dash != (s[i] == '-'))
            return false;
        if (!dash && strchr("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", s[i]) == NULL)
            return false;
    }
    return true;
}

/* The database's clock, in epoch milliseconds (expiry is judged by it). */
static int64_t db_now_ms(const it_fixture_t *f)
{
    return it_sql_i64(f, "SELECT tally_epoch_ms(clock_timestamp())");
}

static int64_t time_ms(const json_t *v, const char *path)
{
    int64_t ms;
    const char *s = it_str(v, path);
    assert_int_equal(strlen(s), CLOCK_RFC3339_LEN);
    assert_int_equal(clock_parse_rfc3339(s, &ms), 0);
    return ms;
}

static void test_create_and_get(void **state)
{
    it_fixture_t *f = *state;
    json_t *r = it_ok(f->pool, "acct_cc", "code.create",
                      "{\"code\": \"SPRING-2026\", \"amount\": 500, \"currency\": \"usd\","
                      " \"max_redemptions\": 3, \"expires_at\": \"2099-01-01T00:00:00+01:00\"}");
    assert_int_equal(json_object_size(r), 1);
    json_t *c = json_object_get(r, "code");
    assert_int_equal(json_object_size(c), 10);
    assert_memory_equal(it_str(c, "id"), "pc_", 3);
    assert_string_equal(it_str(c, "code"), "SPRING-2026");
    assert_int_equal(it_int(c, "amount"), 500);
    assert_string_equal(it_str(c, "currency"), "usd");
    assert_int_equal(it_int(c, "max_redemptions"), 3);
    assert_int_equal(it_int(c, "redeemed_count"), 0);
    assert_string_equal(it_str(c, "status"), "active");
    assert_string_equal(it_str(c, "expires_at"), "2098-12-31T23:00:00.000Z");
    assert_true(json_is_null(json_object_get(c, "revoked_at")));
    assert_true(time_ms(c, "created_at") > INT64_C(1600000000000));

    /* code.get: the same code, and no redemptions yet. */
    json_t *g = it_ok(f->pool, "acct_cc", "code.get", "{\"code\": \"SPRING-2026\"}");
    assert_true(json_equal(json_object_get(g, "code"), c));
    assert_int_equal(json_array_size(json_object_get(g, "redemptions")), 0);
    json_decref(g);
    json_decref(r);

    /* The same code again: conflict, and nothing was stored. */
    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_cc", "code.create",
                                  "{\"code\": \"SPRING-2026\"}");
    assert_non_null(strstr(e.message, "already exists"));
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM ppu WHERE account_id = 'acct_cc'"), 1);
    /* Another account may use the same code. */
    json_decref(it_ok(f->pool, "acct_cc2", "code.create", "{\"code\": \"SPRING-2026\"}"));

    /* Defaults: no value, one redemption, no expiry; the code is generated. */
    r = it_ok(f->pool, "acct_cc", "code.create", "{}");
    const char *gen = it_str(r, "code.code");
    if (!generated_shape(gen))
        fail_msg("generated code %s has the wrong shape", gen);
    assert_true(json_is_null(it_get(r, "code.amount")));
    assert_true(json_is_null(it_get(r, "code.currency")));
    assert_true(json_is_null(it_get(r, "code.expires_at")));
    assert_int_equal(it_int(r, "code.max_redemptions"), 1);
    json_t *r2 = it_ok(f->pool, "acct_cc", "code.create", "{\"max_redemptions\": 2}");
    assert_string_not_equal(it_str(r2, "code.code"), gen);
    /* A generated code is an ordinary code: get finds it. */
    json_decref(it_ok(f->pool, "acct_cc", "code.get", "{\"code\": \"%s\"}", gen));
    json_decref(r2);
    json_decref(r);

    /* Validation: a value needs both fields; codes are upper case. */
    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_cc", "code.create",
              "{\"amount\": 5}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "amount", f->pool, "acct_cc", "code.create",
              "{\"currency\": \"usd\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "code", f->pool, "acct_cc", "code.create",
              "{\"code\": \"spring-2026\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "max_redemptions", f->pool, "acct_cc", "code.create",
              "{\"max_redemptions\": 0}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "code", f->pool, "acct_cc", "code.get", "{}");
    e = it_reject(TALLY_ERR_NOT_FOUND, "code", f->pool, "acct_cc", "code.get",
                  "{\"code\": \"NO-SUCH-CODE\"}");
    assert_non_null(strstr(e.message, "no purchase code"));
}

static void test_redeem_until_exhausted(void **state)
{
    it_fixture_t *f = *state;
    json_decref(it_ok(f->pool, "acct_rd", "code.create",
                      "{\"code\": \"TWICE\", \"amount\": 250, \"currency\": \"eur\","
                      " \"max_redemptions\": 2}"));

    json_t *r =
        it_ok(f->pool, "acct_rd", "code.redeem", "{\"code\": \"TWICE\", \"redeemer\": \"cus_1\"}");
    assert_int_equal(json_object_size(r), 2);
    assert_int_equal(it_int(r, "code.redeemed_count"), 1);
    assert_string_equal(it_str(r, "code.status"), "active");
    assert_int_equal(it_int(r, "code.amount"), 250);
    json_t *red = json_object_get(r, "redemption");
    assert_int_equal(json_object_size(red), 3);
    assert_memory_equal(it_str(red, "id"), "red_", 4);
    assert_string_equal(it_str(red, "redeemer"), "cus_1");
    int64_t first_at = time_ms(red, "redeemed_at");
    char first_id[64];
    snprintf(first_id, sizeof(first_id), "%s", it_str(red, "id"));
    json_decref(r);

    r = it_ok(f->pool, "acct_rd", "code.redeem", "{\"code\": \"TWICE\"}");
    assert_int_equal(it_int(r, "code.redeemed_count"), 2);
    assert_string_equal(it_str(r, "code.status"), "exhausted");
    assert_true(json_is_null(it_get(r, "redemption.redeemer")));
    assert_true(time_ms(r, "redemption.redeemed_at") >= first_at);
    char second_id[64];
    snprintf(second_id, sizeof(second_id), "%s", it_str(r, "redemption.id"));
    json_decref(r);

    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_rd", "code.redeem",
                                  "{\"code\": \"TWICE\", \"redeemer\": \"cus_3\"}");
    if (strstr(e.message, "exhausted") == NULL)
        fail_msg("the conflict does not say exhausted: %s", e.message);
    assert_int_equal(it_sql_i64(f, "SELECT redeemed_count FROM ppu WHERE account_id = 'acct_rd'"),
                     2);
    assert_int_equal(
        it_sql_i64(f, "SELECT count(*) FROM ppu_redemptions WHERE account_id = 'acct_rd'"), 2);

    /* code.get: the count and the redemptions, newest first. */
    json_t *g = it_ok(f->pool, "acct_rd", "code.get", "{\"code\": \"TWICE\"}");
    assert_int_equal(it_int(g, "code.redeemed_count"), 2);
    assert_string_equal(it_str(g, "code.status"), "exhausted");
    assert_int_equal(json_array_size(json_object_get(g, "redemptions")), 2);
    assert_string_equal(it_str(g, "redemptions.0.id"), second_id);
    assert_string_equal(it_str(g, "redemptions.1.id"), first_id);
    assert_string_equal(it_str(g, "redemptions.1.redeemer"), "cus_1");
    json_decref(g);

    e = it_reject(TALLY_ERR_NOT_FOUND, "code", f->pool, "acct_rd", "code.redeem",
                  "{\"code\": \"NEVER-MADE\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "redeemer", f->pool, "acct_rd", "code.redeem",
              "{\"code\": \"TWICE\", \"redeemer\": \"\"}");
}

/* code.get shows at most 10 redemptions, the newest. */
static void test_get_recent_redemptions(void **state)
{
    it_fixture_t *f = *state;
    json_decref(it_ok(f->pool, "acct_many", "code.create",
                      "{\"code\": \"MANY\", \"max_redemptions\": 12}"));
    for (int i = 0; i < 12; i++)
        json_decref(it_ok(f->pool, "acct_many", "code.redeem",
                          "{\"code\": \"MANY\", \"redeemer\": \"r%02d\"}", i));
    json_t *g = it_ok(f->pool, "acct_many", "code.get", "{\"code\": \"MANY\"}");
    assert_int_equal(it_int(g, "code.redeemed_count"), 12);
    json_t *reds = json_object_get(g, "redemptions");
    assert_int_equal(json_array_size(reds), 10);
    for (int i = 0; i < 10; i++) {
        char want[8], path[32];
        snprintf(want, sizeof(want), "r%02d", 11 - i);
        snprintf(path, sizeof(path), "redemptions.%d.redeemer", i);
        assert_string_equal(it_str(g, path), want);
    }
    json_decref(g);
}

static void test_revoke(void **state)
{
    it_fixture_t *f = *state;
    json_decref(it_ok(f->pool, "acct_rv", "code.create",
                      "{\"code\": \"REVOKE-ME\", \"max_redemptions\": 5}"));
    json_decref(it_ok(f->pool, "acct_rv", "code.redeem", "{\"code\": \"REVOKE-ME\"}"));

    json_t *r = it_ok(f->pool, "acct_rv", "code.revoke", "{\"code\": \"REVOKE-ME\"}");
    assert_string_equal(it_str(r, "code.status"), "revoked");
    assert_int_equal(it_int(r, "code.redeemed_count"), 1);
    char revoked_at[32];
    snprintf(revoked_at, sizeof(revoked_at), "%s", it_str(r, "code.revoked_at"));
    json_decref(r);

    /* Revoking again: a no-op that answers the code unchanged. */
    r = it_ok(f->pool, "acct_rv", "code.revoke", "{\"code\": \"REVOKE-ME\"}");
    assert_string_equal(it_str(r, "code.status"), "revoked");
    assert_string_equal(it_str(r, "code.revoked_at"), revoked_at);
    json_decref(r);

    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_rv", "code.redeem",
                                  "{\"code\": \"REVOKE-ME\"}");
    if (strstr(e.message, "revoked") == NULL)
        fail_msg("the conflict does not say revoked: %s", e.message);
    assert_int_equal(it_sql_i64(f, "SELECT redeemed_count FROM ppu WHERE account_id = 'acct_rv'"),
                     1);

    it_reject(TALLY_ERR_NOT_FOUND, "code", f->pool, "acct_rv", "code.revoke",
              "{\"code\": \"NOT-THERE\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "reason", f->pool, "acct_rv", "code.revoke",
              "{\"code\": \"REVOKE-ME\", \"reason\": \"x\"}");
}

static void test_expiry(void **state)
{
    it_fixture_t *f = *state;
    /* A past expires_at is refused, and nothing is stored. */
    it_reject(TALLY_ERR_INVALID_REQUEST, "expires_at", f->pool, "acct_exp", "code.create",
              "{\"code\": \"OLD-CODE\", \"expires_at\": \"2020-01-01T00:00:00Z\"}");
    char past[CLOCK_RFC3339_LEN + 1];
    clock_format_rfc3339(db_now_ms(f) - 1, past, sizeof(past));
    it_reject(TALLY_ERR_INVALID_REQUEST, "expires_at", f->pool, "acct_exp", "code.create",
              "{\"code\": \"OLD-CODE\", \"expires_at\": \"%s\"}", past);
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM ppu WHERE account_id = 'acct_exp'"), 0);

    /* Expired since (the database moved it back, as time would): never redeemable. */
    json_t *r = it_ok(f->pool, "acct_exp", "code.create",
                      "{\"code\": \"OLD-CODE\", \"expires_at\": \"2099-01-01T00:00:00Z\"}");
    assert_string_equal(it_str(r, "code.status"), "active");
    json_decref(r);
    th_pg_exec(f->pg, "postgres",
               "UPDATE ppu SET expires_at = '2020-01-01T00:00:00Z' WHERE code = 'OLD-CODE'");
    r = it_ok(f->pool, "acct_exp", "code.get", "{\"code\": \"OLD-CODE\"}");
    assert_string_equal(it_str(r, "code.status"), "expired");
    json_decref(r);
    handler_error_t e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_exp", "code.redeem",
                                  "{\"code\": \"OLD-CODE\"}");
    if (strstr(e.message, "expired") == NULL)
        fail_msg("the conflict does not say expired: %s", e.message);

    /* Revoked and expired: revoked takes precedence in the message. */
    json_decref(it_ok(f->pool, "acct_exp", "code.revoke", "{\"code\": \"OLD-CODE\"}"));
    e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_exp", "code.redeem",
                  "{\"code\": \"OLD-CODE\"}");
    assert_non_null(strstr(e.message, "revoked"));

    /* About to pass: 1.5 s from the database's now. Whether the first
     * redemption makes it depends on the machine's speed, so the test only
     * checks that the answer agrees with the clock. */
    int64_t expires = db_now_ms(f) + 1500;
    char ts[CLOCK_RFC3339_LEN + 1];
    clock_format_rfc3339(expires, ts, sizeof(ts));
    json_decref(it_ok(f->pool, "acct_exp", "code.create",
                      "{\"code\": \"SOON\", \"max_redemptions\": 10, \"expires_at\": \"%s\"}", ts));
    it_answer_t a = it_run(f->pool, "acct_exp", "code.redeem", "{\"code\": \"SOON\"}");
    if (a.status == HANDLER_OK) {
        assert_true(time_ms(a.result, "redemption.redeemed_at") < expires);
        json_decref(a.result);
    } else {
        assert_int_equal(a.status, HANDLER_REJECTED);
        assert_int_equal(a.err.code, TALLY_ERR_CONFLICT);
        assert_non_null(strstr(a.err.message, "expired"));
        assert_true(db_now_ms(f) >= expires);
    }
    /* Wait (bounded) until the database's clock has passed it. */
    for (int i = 0; i < 100 && db_now_ms(f) < expires; i++)
        usleep(100 * 1000);
    assert_true(db_now_ms(f) >= expires);
    e = it_reject(TALLY_ERR_CONFLICT, "code", f->pool, "acct_exp", "code.redeem",
                  "{\"code\": \"SOON\"}");
    assert_non_null(strstr(e.message, "expired"));
    r = it_ok(f->pool, "acct_exp", "code.get", "{\"code\": \"SOON\"}");
    assert_string_equal(it_str(r, "code.status"), "expired");
    assert_true(it_int(r, "code.redeemed_count") <= 1);
    json_decref(r);
}

static void test_list_paging(void **state)
{
    it_fixture_t *f = *state;
    char ids[5][64];
    for (int i = 0; i < 5; i++) {
        json_t *r = it_ok(f->pool, "acct_cl", "code.create", "{\"code\": \"LIST-%d\"}", i);
        snprintf(ids[i], sizeof(ids[i]), "%s", it_str(r, "code.id"));
        json_decref(r);
    }
    json_t *r = it_ok(f->pool, "acct_cl", "code.list", "{\"limit\": 2}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 2);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    assert_string_equal(it_str(r, "data.0.id"), ids[4]);
    assert_string_equal(it_str(r, "data.1.id"), ids[3]);
    assert_string_equal(it_str(r, "data.1.code"), "LIST-3");
    json_decref(r);
    r = it_ok(f->pool, "acct_cl", "code.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[3]);
    assert_string_equal(it_str(r, "data.0.id"), ids[2]);
    assert_string_equal(it_str(r, "data.1.id"), ids[1]);
    assert_true(json_is_true(json_object_get(r, "has_more")));
    json_decref(r);
    r = it_ok(f->pool, "acct_cl", "code.list", "{\"limit\": 2, \"starting_after\": \"%s\"}",
              ids[1]);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.id"), ids[0]);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);
    /* The default limit covers them all. */
    r = it_ok(f->pool, "acct_cl", "code.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 5);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_cl", "code.list",
              "{\"starting_after\": \"pc_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "limit", f->pool, "acct_cl", "code.list",
              "{\"limit\": 0}");
    /* Another account's cursor is unknown here. */
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_cl_other", "code.list",
              "{\"starting_after\": \"%s\"}", ids[2]);
}

/* Another tenant's code answers exactly like a missing one, and is untouched. */
static void test_tenant_isolation(void **state)
{
    it_fixture_t *f = *state;
    json_decref(it_ok(f->pool, "acct_ca", "code.create",
                      "{\"code\": \"THEIRS-1\", \"max_redemptions\": 3}"));
    const char *types[] = {"code.get", "code.redeem", "code.revoke"};
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        it_answer_t foreign = it_run(f->pool, "acct_cb", types[i], "{\"code\": \"THEIRS-1\"}");
        it_answer_t missing = it_run(f->pool, "acct_cb", types[i], "{\"code\": \"MISSING-1\"}");
        if (foreign.status != HANDLER_REJECTED || foreign.err.code != TALLY_ERR_NOT_FOUND)
            fail_msg("%s on another tenant's code: %s %s", types[i], it_status_str(foreign.status),
                     foreign.err.message);
        assert_int_equal(missing.status, HANDLER_REJECTED);
        assert_int_equal(missing.err.code, foreign.err.code);
        assert_string_equal(missing.err.field, foreign.err.field);
        assert_string_equal(missing.err.message, foreign.err.message);
    }
    json_t *r = it_ok(f->pool, "acct_cb", "code.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    r = it_ok(f->pool, "acct_ca", "code.get", "{\"code\": \"THEIRS-1\"}");
    assert_string_equal(it_str(r, "code.status"), "active");
    assert_int_equal(it_int(r, "code.redeemed_count"), 0);
    json_decref(r);
}

/* ---- Concurrency: one code, many connections ------------------------------- */

#define REDEEM_THREADS  8
#define REDEEMS_EACH    6
#define REDEEM_LIMIT    20 /* < REDEEM_THREADS * REDEEMS_EACH, so some must fail */
#define REDEEM_ATTEMPTS 5  /* per request, for HANDLER_RETRY */

typedef struct redeem_worker {
    pool_t *pool; /* this thread's own: one connection */
    pthread_barrier_t *start;
    const char *code;
    int index;
    int ok, exhausted, other;
    char other_msg[300];
} redeem_worker_t;

static void *redeem_thread(void *arg)
{
    redeem_worker_t *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < REDEEMS_EACH; i++) {
        it_answer_t a = {.status = HANDLER_RETRY};
        for (int attempt = 0; attempt < REDEEM_ATTEMPTS && a.status == HANDLER_RETRY; attempt++)
            a = it_run(w->pool, "acct_race", "code.redeem",
                       "{\"code\": \"%s\", \"redeemer\": \"t%d-%d\"}", w->code, w->index, i);
        if (a.status == HANDLER_OK) {
            w->ok++;
            json_decref(a.result);
        } else if (a.status == HANDLER_REJECTED && a.err.code == TALLY_ERR_CONFLICT &&
                   strstr(a.err.message, "exhausted") != NULL) {
            w->exhausted++;
        } else {
            w->other++;
            snprintf(w->other_msg, sizeof(w->other_msg), "%s: %s %s", it_status_str(a.status),
                     tally_errcode_str(a.err.code), a.err.message);
        }
    }
    return NULL;
}

static void race(it_fixture_t *f, const char *code, int limit)
{
    json_decref(it_ok(f->pool, "acct_race", "code.create",
                      "{\"code\": \"%s\", \"max_redemptions\": %d}", code, limit));
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, REDEEM_THREADS);
    redeem_worker_t w[REDEEM_THREADS];
    pthread_t t[REDEEM_THREADS];
    for (int i = 0; i < REDEEM_THREADS; i++) {
        w[i] =
            (redeem_worker_t){.pool = it_pool(f->pg, 1), .start = &start, .code = code, .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, redeem_thread, &w[i]), 0);
    }
    int ok = 0, exhausted = 0;
    for (int i = 0; i < REDEEM_THREADS; i++) {
        pthread_join(t[i], NULL);
        pool_free(w[i].pool);
        if (w[i].other != 0)
            fail_msg("thread %d: %d unexpected answers, last: %s", i, w[i].other, w[i].other_msg);
        ok += w[i].ok;
        exhausted += w[i].exhausted;
    }
    pthread_barrier_destroy(&start);
    print_message("concurrent redemptions of %s (limit %d): %d ok, %d exhausted\n", code, limit, ok,
                  exhausted);

    /* Exactly the limit succeeded; every other request was told exhausted. */
    assert_int_equal(ok, limit);
    assert_int_equal(exhausted, REDEEM_THREADS * REDEEMS_EACH - limit);
    assert_int_equal(it_sql_i64(f,
                                "SELECT redeemed_count FROM ppu"
                                " WHERE account_id = 'acct_race' AND code = '%s'",
                                code),
                     limit);
    assert_int_equal(it_sql_i64(f,
                                "SELECT count(*) FROM ppu_redemptions r JOIN ppu c"
                                " ON c.account_id = r.account_id AND c.id = r.code_id"
                                " WHERE c.account_id = 'acct_race' AND c.code = '%s'",
                                code),
                     limit);
}

static void test_concurrent_redemptions(void **state)
{
    it_fixture_t *f = *state;
    race(f, "RACE-MANY", REDEEM_LIMIT);
    race(f, "RACE-ONE", 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_get),
        cmocka_unit_test(test_redeem_until_exhausted),
        cmocka_unit_test(test_get_recent_redemptions),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_expiry),
        cmocka_unit_test(test_list_paging),
        cmocka_unit_test(test_tenant_isolation),
        cmocka_unit_test(test_concurrent_redemptions),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
