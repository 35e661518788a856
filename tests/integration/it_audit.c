/* it_audit — the audit.list job type over rows written with
 * access_logs_insert (as the worker writes them), on a real PostgreSQL as the
 * worker's role: newest first, paging, the type filter, error codes and
 * replays, and tenant isolation. */
#include "it_handlers.h"

#include "access/logs.h"
#include "common/clock.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#define ROWS 7

/* Writes the n entries for account in one committed transaction, as the
 * worker's role. */
static void insert_logs(pool_t *pool, const char *account, const access_log_entry_t *e, int n)
{
    access_account_t acct;
    assert_true(access_account_parse(account, strlen(account), &acct));
    char why[256];
    pool_conn_t *conn;
    if (pool_acquire(pool, &conn, why, sizeof(why)) != 0)
        fail_msg("pool_acquire: %s", why);
    access_session_t *s;
    access_tx_t *tx;
    access_error_t err;
    assert_int_equal(access_session_begin(conn, &s, &err), ACCESS_OK);
    assert_int_equal(access_tx_begin(s, &acct, &tx, &err), ACCESS_OK);
    for (int i = 0; i < n; i++) {
        if (access_logs_insert(tx, &e[i], &err) != ACCESS_OK)
            fail_msg("access_logs_insert: %s", err.message);
    }
    assert_int_equal(access_tx_end(tx, &err), ACCESS_OK);
    assert_int_equal(access_session_commit(s, &err), ACCESS_OK);
    pool_release(pool, conn);
}

/* Row i of acct_log: request req_<i>, types alternate, every third an error,
 * the last a replay. */
static const char *const types[] = {"payment.record", "code.redeem"};
static char req_ids[ROWS][16];

static void write_rows(pool_t *pool, int64_t base_ms)
{
    access_log_entry_t e[ROWS];
    for (int i = 0; i < ROWS; i++) {
        snprintf(req_ids[i], sizeof(req_ids[i]), "req_%d", i);
        bool error = i % 3 == 2;
        e[i] = (access_log_entry_t){
            .request_id = req_ids[i],
            .type = types[i % 2],
            .status = error ? "error" : "ok",
            .error_code = error ? "conflict" : NULL,
            .replayed = i == ROWS - 1,
            .at_ms = base_ms + i,
            .duration_ms = 1.5,
            .worker = "it_audit",
            .partition = 0,
            .offset = i,
        };
    }
    insert_logs(pool, "acct_log", e, ROWS);
}

static void test_list_and_page(void **state)
{
    it_fixture_t *f = *state;
    const int64_t base = INT64_C(1795860000000); /* 2026-11-28T10:00:00.000Z */
    write_rows(f->pool, base);

    json_t *r = it_ok(f->pool, "acct_log", "audit.list", "{}");
    json_t *data = json_object_get(r, "data");
    assert_int_equal(json_array_size(data), ROWS);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    /* Newest first, with exactly the contract's fields. */
    for (int i = 0; i < ROWS; i++) {
        const json_t *row = json_array_get(data, (size_t)i);
        int k = ROWS - 1 - i;
        assert_int_equal(json_object_size(row), 7);
        assert_memory_equal(it_str(row, "id"), "log_", 4);
        assert_string_equal(it_str(row, "request_id"), req_ids[k]);
        assert_string_equal(it_str(row, "type"), types[k % 2]);
        int64_t at;
        assert_int_equal(clock_parse_rfc3339(it_str(row, "at"), &at), 0);
        assert_int_equal(at, base + k);
        if (k % 3 == 2) {
            assert_string_equal(it_str(row, "status"), "error");
            assert_string_equal(it_str(row, "error_code"), "conflict");
        } else {
            assert_string_equal(it_str(row, "status"), "ok");
            assert_true(json_is_null(json_object_get(row, "error_code")));
        }
        assert_true(json_is_boolean(json_object_get(row, "replayed")));
        assert_int_equal(json_is_true(json_object_get(row, "replayed")), k == ROWS - 1);
    }
    assert_string_equal(it_str(r, "data.0.at"), "2026-11-28T10:00:00.006Z");

    /* Pages of 3 walk the same rows in the same order. */
    char cursor[64] = "";
    size_t seen = 0;
    for (int page = 0; page < 5; page++) {
        json_t *p = cursor[0] == '\0' ? it_ok(f->pool, "acct_log", "audit.list", "{\"limit\": 3}")
                                      : it_ok(f->pool, "acct_log", "audit.list",
                                              "{\"limit\": 3, \"starting_after\": \"%s\"}", cursor);
        json_t *pd = json_object_get(p, "data");
        for (size_t i = 0; i < json_array_size(pd); i++, seen++)
            assert_true(json_equal(json_array_get(pd, i), json_array_get(data, seen)));
        bool more = json_is_true(json_object_get(p, "has_more"));
        assert_int_equal(more, seen < ROWS);
        if (json_array_size(pd) > 0)
            snprintf(cursor, sizeof(cursor), "%s",
                     it_str(json_array_get(pd, json_array_size(pd) - 1), "id"));
        json_decref(p);
        if (!more)
            break;
    }
    assert_int_equal(seen, ROWS);
    json_decref(r);

    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_log", "audit.list",
              "{\"starting_after\": \"log_nope\"}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "limit", f->pool, "acct_log", "audit.list",
              "{\"limit\": 0}");
    it_reject(TALLY_ERR_INVALID_REQUEST, "status", f->pool, "acct_log", "audit.list",
              "{\"status\": \"error\"}");
}

static void test_type_filter(void **state)
{
    it_fixture_t *f = *state;
    /* Rows 1, 3, 5 are code.redeem (written by test_list_and_page). */
    json_t *r = it_ok(f->pool, "acct_log", "audit.list", "{\"type\": \"code.redeem\"}");
    json_t *data = json_object_get(r, "data");
    assert_int_equal(json_array_size(data), 3);
    assert_string_equal(it_str(r, "data.0.request_id"), "req_5");
    assert_string_equal(it_str(r, "data.1.request_id"), "req_3");
    assert_string_equal(it_str(r, "data.2.request_id"), "req_1");
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(it_str(json_array_get(data, i), "type"), "code.redeem");
    char cursor[64];
    snprintf(cursor, sizeof(cursor), "%s", it_str(r, "data.0.id"));
    json_decref(r);

    r = it_ok(f->pool, "acct_log", "audit.list",
              "{\"type\": \"code.redeem\", \"limit\": 1, \"starting_after\": \"%s\"}", cursor);
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.request_id"), "req_3");
    assert_true(json_is_true(json_object_get(r, "has_more")));
    json_decref(r);

    r = it_ok(f->pool, "acct_log", "audit.list", "{\"type\": \"payout.create\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    assert_true(json_is_false(json_object_get(r, "has_more")));
    json_decref(r);
}

/* An account sees its own rows only; another's cursor is unknown. */
static void test_tenant_isolation(void **state)
{
    it_fixture_t *f = *state;
    access_log_entry_t e = {
        .request_id = "req_other", .type = "agent.link", .status = "ok", .at_ms = clock_wall_ms()};
    insert_logs(f->pool, "acct_log_other", &e, 1);

    json_t *r = it_ok(f->pool, "acct_log_other", "audit.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 1);
    assert_string_equal(it_str(r, "data.0.request_id"), "req_other");
    char theirs[64];
    snprintf(theirs, sizeof(theirs), "%s", it_str(r, "data.0.id"));
    json_decref(r);

    r = it_ok(f->pool, "acct_log", "audit.list", "{\"type\": \"agent.link\"}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
    it_reject(TALLY_ERR_NOT_FOUND, "starting_after", f->pool, "acct_log", "audit.list",
              "{\"starting_after\": \"%s\"}", theirs);
    r = it_ok(f->pool, "acct_log_none", "audit.list", "{}");
    assert_int_equal(json_array_size(json_object_get(r, "data")), 0);
    json_decref(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_page),
        cmocka_unit_test(test_type_filter),
        cmocka_unit_test(test_tenant_isolation),
    };
    return cmocka_run_group_tests(tests, it_setup, it_teardown);
}
