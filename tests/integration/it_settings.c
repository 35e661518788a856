/* it_settings — the settings.* job types end to end below the worker: the
 * defaults of an account that never set anything, partial updates, the
 * statement_descriptor rules (validator, access layer and the table's CHECK),
 * and tenant isolation. */
#include "it_handlers.h"

#include "access/settings.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

/* Asserts the four settings of a {"settings": …} result. descriptor NULL: null. */
static void assert_settings(json_t *r, const char *currency, const char *schedule, int64_t min,
                            const char *descriptor)
{
    json_t *s = json_object_get(r, "settings");
    assert_int_equal(json_object_size(r), 1);
    assert_int_equal(json_object_size(s), 4);
    assert_string_equal(it_str(s, "default_currency"), currency);
    assert_string_equal(it_str(s, "payout_schedule"), schedule);
    assert_int_equal(it_int(s, "min_payout_amount"), min);
    if (descriptor == NULL)
        assert_true(json_is_null(json_object_get(s, "statement_descriptor")));
    else
        assert_string_equal(it_str(s, "statement_descriptor"), descriptor);
    json_decref(r);
}

static void test_defaults(void **state)
{
    it_fixture_t *f = *state;
    assert_settings(it_ok(f->pool, "acct_set0", "settings.get", "{}"), "usd", "manual", 100, NULL);
    /* An empty update answers the defaults and stores nothing. */
    assert_settings(it_ok(f->pool, "acct_set0", "settings.update", "{}"), "usd", "manual", 100,
                    NULL);
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM account_payment_settings"
                                   " WHERE account_id = 'acct_set0'"),
                     0);
    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_set0", "settings.get",
              "{\"currency\": \"usd\"}");
}

static void test_update_subsets(void **state)
{
    it_fixture_t *f = *state;
    assert_settings(it_ok(f->pool, "acct_set1", "settings.update", "{\"min_payout_amount\": 500}"),
                    "usd", "manual", 500, NULL);
    assert_settings(it_ok(f->pool, "acct_set1", "settings.update",
                          "{\"payout_schedule\": \"weekly\", \"statement_descriptor\": \"ACME "
                          "Corp. #42\"}"),
                    "usd", "weekly", 500, "ACME Corp. #42");
    assert_settings(
        it_ok(f->pool, "acct_set1", "settings.update", "{\"default_currency\": \"eur\"}"), "eur",
        "weekly", 500, "ACME Corp. #42");
    assert_settings(it_ok(f->pool, "acct_set1", "settings.get", "{}"), "eur", "weekly", 500,
                    "ACME Corp. #42");
    /* Null clears the descriptor; the others stay. */
    assert_settings(
        it_ok(f->pool, "acct_set1", "settings.update", "{\"statement_descriptor\": null}"), "eur",
        "weekly", 500, NULL);
    assert_settings(it_ok(f->pool, "acct_set1", "settings.update",
                          "{\"default_currency\": \"gbp\", \"payout_schedule\": \"monthly\","
                          " \"min_payout_amount\": 1000000000000000, \"statement_descriptor\":"
                          " \"abcde\"}"),
                    "gbp", "monthly", INT64_C(1000000000000000), "abcde");
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM account_payment_settings"
                                   " WHERE account_id = 'acct_set1'"),
                     1);

    /* Another account still has the defaults. */
    assert_settings(it_ok(f->pool, "acct_set2", "settings.get", "{}"), "usd", "manual", 100, NULL);
}

static void test_validation(void **state)
{
    it_fixture_t *f = *state;
    static const char *const bad_descriptors[] = {
        "ACME",                     /* too short */
        "ACME CORPORATION LIMITED", /* 24 characters */
        "12345",                    /* no letter */
        "ACME*CORP",
        "ACME <CO>",
        "O'Reilly",
        "ACME \\\"Q\\\"",
        "back\\\\slash",
        "Caf\\u00e9 Shop", /* not ASCII */
        "tab\\there",
    };
    for (size_t i = 0; i < sizeof(bad_descriptors) / sizeof(bad_descriptors[0]); i++)
        it_reject(TALLY_ERR_INVALID_REQUEST, "statement_descriptor", f->pool, "acct_set3",
                  "settings.update", "{\"statement_descriptor\": \"%s\"}", bad_descriptors[i]);
    it_reject(TALLY_ERR_INVALID_REQUEST, "payout_schedule", f->pool, "acct_set3", "settings.update",
              "{\"payout_schedule\": \"hourly\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "min_payout_amount", f->pool, "acct_set3",
              "settings.update", "{\"min_payout_amount\": 0}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "default_currency", f->pool, "acct_set3",
              "settings.update", "{\"default_currency\": null}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "currency", f->pool, "acct_set3", "settings.update",
              "{\"currency\": \"usd\"}");
    /* A rejected update leaves nothing behind. */
    assert_int_equal(it_sql_i64(f, "SELECT count(*) FROM account_payment_settings"
                                   " WHERE account_id = 'acct_set3'"),
                     0);
}

/* Below the validator: the access layer turns the table's CHECK into
 * invalid_request on the field, and the table refuses the worker's raw SQL. */
static void test_walls(void **state)
{
    it_fixture_t *f = *state;
    char why[256];
    pool_conn_t *conn;
    assert_int_equal(pool_acquire(f->pool, &conn, why, sizeof(why)), 0);
    access_session_t *s;
    access_tx_t *tx;
    access_error_t err;
    access_account_t acct;
    assert_true(access_account_parse("acct_wall", 9, &acct));
    assert_int_equal(access_session_begin(conn, &s, &err), ACCESS_OK);
    assert_int_equal(access_tx_begin(s, &acct, &tx, &err), ACCESS_OK);
    access_settings_t out;
    access_settings_update_t in = {.set_statement_descriptor = true,
                                   .statement_descriptor = "12345"};
    assert_int_equal(access_settings_update(tx, &in, &out, &err), ACCESS_INVALID);
    assert_string_equal(err.field, "statement_descriptor");
    assert_int_equal(access_tx_rollback(tx, &err), ACCESS_OK);
    in = (access_settings_update_t){.payout_schedule = "hourly"};
    assert_int_equal(access_settings_update(tx, &in, &out, &err), ACCESS_INVALID);
    assert_string_equal(err.field, "payout_schedule");
    access_session_abort(s);
    pool_release(f->pool, conn);

    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    PQclear(PQexec(w, "SELECT set_config('app.account_id', 'acct_wall', false)"));
    static const char *const refused[] = {
        "'12345'",          "'ACME*CORP'",   "'ACME'", "'abcdefghijklmnopqrstuvw'",
        "'Caf\u00e9 Shop'", "E'tab\\there'",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO account_payment_settings (account_id, default_currency,"
                 " payout_schedule, min_payout_amount, statement_descriptor)"
                 " VALUES ('acct_wall', 'usd', 'manual', 100, %s)",
                 refused[i]);
        PGresult *r = PQexec(w, sql);
        const char *state_code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (state_code == NULL || strcmp(state_code, "23514") != 0)
            fail_msg("descriptor %s: wanted a check violation, got %s", refused[i],
                     PQresultErrorMessage(r));
        PQclear(r);
    }
    PGresult *r = PQexec(w, "INSERT INTO account_payment_settings (account_id, default_currency,"
                            " payout_schedule, min_payout_amount) VALUES"
                            " ('acct_wall', 'usd', 'manual', 0)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23514");
    PQclear(r);
    PQfinish(w);
}

static void test_isolation(void **state)
{
    it_fixture_t *f = *state;
    json_decref(it_ok(f->pool, "acct_iso_a", "settings.update",
                      "{\"min_payout_amount\": 7, \"statement_descriptor\": \"TENANT A\"}"));
    assert_settings(it_ok(f->pool, "acct_iso_b", "settings.get", "{}"), "usd", "manual", 100, NULL);
    assert_settings(it_ok(f->pool, "acct_iso_b", "settings.update", "{\"min_payout_amount\": 9}"),
                    "usd", "manual", 9, NULL);
    assert_settings(it_ok(f->pool, "acct_iso_a", "settings.get", "{}"), "usd", "manual", 7,
                    "TENANT A");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),   cmocka_unit_test(test_update_subsets),
        cmocka_unit_test(test_validation), cmocka_unit_test(test_walls),
        cmocka_unit_test(test_isolation),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
