/* it_session_pipelined — the worker's pipelined sessions
 * (access_session_begin_pipelined) against a real PostgreSQL as the
 * worker's role: nothing goes to the server before it has to, queued writes
 * travel together at access_tx_end, and every failure still lands on the
 * right tenant transaction, which is undone while the session goes on. */
#include "it_session_common.h"

#include "access/logs.h"
#include "access/outcome.h"
#include "access/session.h"
#include "common/clock.h"
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static int group_setup(void **state)
{
    return session_fixture_start(state, 2, "it_session_pipelined");
}

static access_log_entry_t log_entry(const char *request_id, const char *status)
{
    return (access_log_entry_t){.request_id = request_id,
                                .type = "payment.record",
                                .status = status,
                                .error_code = strcmp(status, "error") == 0 ? "conflict" : NULL,
                                .at_ms = clock_wall_ms(),
                                .duration_ms = 0.5,
                                .worker = "it_session_pipelined",
                                .partition = 1,
                                .offset = 7};
}

/* Committed audit rows of request_id in account (as the superuser). */
static int64_t committed_logs(fixture_t *f, const char *account, const char *request_id)
{
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM payment_system_logs WHERE account_id = '%s' AND request_id = '%s'",
        account, request_id);
    return th_pg_i64(f->pg, "postgres", sql);
}

/* Rows of request_id the session's own connection sees right now (its
 * transaction, its tenant), read with a plain query between two calls. */
static int64_t own_logs(pool_conn_t *c, const char *request_id)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM payment_system_logs WHERE request_id = '%s'",
             request_id);
    PGresult *r = PQexec(pool_conn_pg(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int64_t n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

static void test_nothing_is_sent_before_it_must(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_a");
    pool_conn_t *c = borrow(f);
    PGconn *pg = pool_conn_pg(c);
    access_session_t *s;
    access_tx_t *tx;

    /* A tenant transaction without statements never reaches the server. */
    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);

    /* A queued write does not go with access_tx_end either, but with the
     * next tx's first statement; then it is there, in the session's
     * transaction, for its tenant only. */
    access_account_t b = tenant("pipe_b");
    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    access_log_entry_t e = log_entry("req_pipe_1", "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_IDLE);
    OK(access_tx_begin(s, &b, &tx, &err));
    access_outcome_kind_t kind;
    char *stored = NULL;
    OK(access_outcome_claim(tx, "req_pipe_b", "payment.record", "{}", &kind, &stored, &err));
    assert_int_equal(PQtransactionStatus(pg), PQTRANS_INTRANS);
    assert_int_equal(own_logs(c, "req_pipe_1"), 0); /* pipe_b's tenant sees no pipe_a rows */
    assert_int_equal(committed_logs(f, "pipe_a", "req_pipe_1"), 0);
    /* The last tx's writes go out on their own, before COMMIT. */
    e = log_entry("req_pipe_2", "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    OK(access_session_flush(s, &err));
    assert_int_equal(own_logs(c, "req_pipe_2"), 1);
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);
    assert_int_equal(committed_logs(f, "pipe_a", "req_pipe_1"), 1);
    assert_int_equal(committed_logs(f, "pipe_b", "req_pipe_2"), 1);
}

static void test_a_statement_sees_the_queued_writes(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_read");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;

    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    access_log_entry_t e = log_entry("req_read_1", "ok");
    OK(access_logs_insert(tx, &e, &err));
    access_log_row_t rows[2];
    int n;
    bool more;
    access_page_t page = {.limit = 2};
    OK(access_logs_list(tx, NULL, &page, rows, &n, &more, &err));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].request_id, "req_read_1");
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);
    assert_int_equal(committed_logs(f, "pipe_read", "req_read_1"), 1);
}

/* A tx that sends nothing of its own flushes its writes (and the earlier
 * tx's) at access_tx_end: its own failure is reported there and undoes it
 * alone. */
static void test_a_failed_write_at_tx_end_undoes_only_its_tx(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_fa"), b = tenant("pipe_fb"), d = tenant("pipe_fd");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    OK(access_session_begin_pipelined(c, &s, &err));
    /* a: fine, carried. */
    OK(access_tx_begin(s, &a, &tx, &err));
    access_log_entry_t e = log_entry("req_fa", "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));

    /* b: a write the CHECK on status refuses, queued without complaint and
     * reported by access_tx_end with its SQLSTATE. */
    OK(access_tx_begin(s, &b, &tx, &err));
    e = log_entry("req_fb", "maybe");
    OK(access_logs_insert(tx, &e, &err));
    assert_int_equal(access_tx_end(tx, &err), ACCESS_CONFLICT); /* a constraint: permanent */
    assert_string_equal(err.sqlstate, "23514");
    assert_non_null(strstr(err.message, "payment_system_logs_check"));
    assert_false(access_session_failed(s));

    /* d: the session goes on; a stored outcome cannot be stored again, which
     * is a conflict (a row count, not an SQL error). */
    OK(access_tx_begin(s, &d, &tx, &err));
    OK(access_outcome_claim(tx, "req_fd", "payment.record", "{}", &kind, &stored, &err));
    OK(access_outcome_store(tx, "req_fd", "payment.record", "{}", "{\"n\":1}", &err));
    OK(access_tx_end(tx, &err));
    OK(access_tx_begin(s, &d, &tx, &err));
    OK(access_outcome_store(tx, "req_fd", "payment.record", "{}", "{\"n\":2}", &err));
    e = log_entry("req_fd_2", "ok");
    OK(access_logs_insert(tx, &e, &err));
    assert_int_equal(access_tx_end(tx, &err), ACCESS_CONFLICT);
    assert_string_equal(err.field, "id");
    assert_false(access_session_failed(s));
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);

    assert_int_equal(committed_logs(f, "pipe_fa", "req_fa"), 1);
    assert_int_equal(committed_logs(f, "pipe_fb", "req_fb"), 0);
    char *resp = th_pg_text(f->pg, "postgres",
                            "SELECT response FROM tally_request_outcomes "
                            "WHERE account_id = 'pipe_fd' AND request_id = 'req_fd'");
    assert_string_equal(resp, "{\"n\":1}");
    free(resp);
    assert_int_equal(committed_logs(f, "pipe_fd", "req_fd_2"), 0);
}

/* Writes carried into the next tx's first statement that fail there (an SQL
 * error, or a row count: the server ran what followed either way) fail the
 * whole session and name their tx; nothing of it commits. */
static void carried_failure(fixture_t *f, bool sql_error)
{
    access_error_t err;
    access_account_t a = tenant("pipe_ca"), b = tenant("pipe_cb"), d = tenant("pipe_cd");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;
    const char *rid = sql_error ? "req_ca_sql" : "req_ca_count";

    if (!sql_error) {
        /* A stored outcome for b to collide with. */
        OK(access_session_begin_pipelined(c, &s, &err));
        OK(access_tx_begin(s, &b, &tx, &err));
        OK(access_outcome_store(tx, rid, "payment.record", "{}", "{\"first\":1}", &err));
        OK(access_tx_end(tx, &err));
        OK(access_session_commit(s, &err));
    }
    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    access_log_entry_t e = log_entry(rid, "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    OK(access_tx_begin(s, &b, &tx, &err));
    OK(access_outcome_claim(tx, "req_cb_claim", "payment.record", "{}", &kind, &stored, &err));
    if (sql_error) {
        e = log_entry(rid, "maybe");
        OK(access_logs_insert(tx, &e, &err));
    } else {
        OK(access_outcome_store(tx, rid, "payment.record", "{}", "{\"again\":1}", &err));
    }
    OK(access_tx_end(tx, &err)); /* nothing sent: b's writes are carried */
    assert_int_equal(access_session_tx_count(s), 2);
    OK(access_tx_begin(s, &d, &tx, &err));
    assert_int_equal(
        access_outcome_claim(tx, "req_cd_claim", "payment.record", "{}", &kind, &stored, &err),
        ACCESS_FAILED);
    assert_non_null(strstr(err.message, "earlier tenant transaction"));
    assert_true(access_session_failed(s));
    assert_int_equal(access_session_failed_tx(s), 2);
    access_session_abort(s);
    pool_release(f->pool, c);
    assert_int_equal(committed_logs(f, "pipe_ca", rid), 0);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes "
                               "WHERE request_id IN ('req_cb_claim', 'req_cd_claim')"),
                     0);
}

static void test_a_carried_write_that_fails_fails_the_session(void **state)
{
    carried_failure(*state, true);
    carried_failure(*state, false);
}

/* The last tx's writes fail in access_session_flush, before COMMIT. */
static void test_a_failed_last_write_never_commits(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_la"), b = tenant("pipe_lb");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    OK(access_outcome_claim(tx, "req_la", "payment.record", "{}", &kind, &stored, &err));
    OK(access_tx_end(tx, &err));
    OK(access_tx_begin(s, &b, &tx, &err));
    OK(access_outcome_claim(tx, "req_lb", "payment.record", "{}", &kind, &stored, &err));
    access_log_entry_t e = log_entry("req_lb", "maybe");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    assert_int_equal(access_session_flush(s, &err), ACCESS_FAILED);
    assert_int_equal(access_session_failed_tx(s), 2);
    assert_int_equal(access_session_commit(s, &err), ACCESS_FAILED);
    pool_release(f->pool, c);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes "
                               "WHERE account_id IN ('pipe_la', 'pipe_lb')"),
                     0);
}

/* The worker's probe costs no round trip of its own: it travels with the
 * tx's next statement, and _take finds its result there; with nothing in
 * between, _take sends it. A rollback forgets a probe not yet sent. */
static void test_the_probe_travels_with_the_next_statement(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_probe");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    OK(access_outcome_probe_send(tx, "req_pp", "payment.record", "{}", &err));
    assert_int_equal(access_session_round_trips(s), 0);
    access_log_row_t rows[1];
    int n;
    bool more;
    access_page_t page = {.limit = 1};
    OK(access_logs_list(tx, NULL, &page, rows, &n, &more, &err));
    assert_int_equal(access_session_round_trips(s), 1);
    OK(access_outcome_probe_take(tx, &kind, &stored, &err));
    assert_int_equal(access_session_round_trips(s), 1); /* it came back with the list */
    assert_int_equal(kind, ACCESS_OUTCOME_NEW);
    assert_null(stored);
    OK(access_outcome_store(tx, "req_pp", "payment.record", "{}", "{\"status\":\"ok\"}", &err));
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));

    /* Nothing in between: _take sends it. The stored row, then another
     * payload's, then a probe forgotten by a rollback. */
    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    OK(access_outcome_probe_send(tx, "req_pp", "payment.record", "{}", &err));
    OK(access_outcome_probe_take(tx, &kind, &stored, &err));
    assert_int_equal(access_session_round_trips(s), 1);
    assert_int_equal(kind, ACCESS_OUTCOME_STORED);
    assert_string_equal(stored, "{\"status\":\"ok\"}");
    free(stored);
    OK(access_outcome_probe_send(tx, "req_pp", "payment.record", "{\"a\":1}", &err));
    OK(access_outcome_probe_take(tx, &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_MISMATCH);
    assert_null(stored);
    OK(access_outcome_probe_send(tx, "req_pp", "payment.record", "{}", &err));
    OK(access_tx_rollback(tx, &err));
    assert_int_not_equal(access_outcome_probe_take(tx, &kind, &stored, &err), ACCESS_OK);
    assert_int_equal(access_session_round_trips(s), 2);
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);
}

static void test_rollback_discards_and_undoes(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_rb"), b = tenant("pipe_rb2");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    /* Sent (the claim needs its answer), then undone. */
    OK(access_outcome_claim(tx, "req_rb", "payment.record", "{}", &kind, &stored, &err));
    /* Queued, never sent. */
    access_log_entry_t e = log_entry("req_rb_queued", "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_rollback(tx, &err));
    /* What follows the rollback stays, under the same tenant. */
    e = log_entry("req_rb_after", "error");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    /* A statement that fails at once (a request id over 128 characters
     * breaks a CHECK) puts the tx in error until it is rolled back. */
    OK(access_tx_begin(s, &b, &tx, &err));
    OK(access_outcome_claim(tx, "req_rb2", "payment.record", "{}", &kind, &stored, &err));
    char long_id[200];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    assert_int_equal(
        access_outcome_claim(tx, long_id, "payment.record", "{}", &kind, &stored, &err),
        ACCESS_CONFLICT);
    assert_string_equal(err.sqlstate, "23514");
    e = log_entry("req_rb2_refused", "ok");
    assert_int_equal(access_logs_insert(tx, &e, &err), ACCESS_FAILED);
    OK(access_tx_rollback(tx, &err));
    e = log_entry("req_rb2", "ok");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);

    assert_int_equal(committed_logs(f, "pipe_rb", "req_rb_queued"), 0);
    assert_int_equal(committed_logs(f, "pipe_rb", "req_rb_after"), 1);
    assert_int_equal(committed_logs(f, "pipe_rb2", "req_rb2"), 1);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes "
                               "WHERE account_id IN ('pipe_rb', 'pipe_rb2')"),
                     0);
}

static void test_a_lost_connection_ends_the_session(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("pipe_lost");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    PGresult *r = PQexec(pool_conn_pg(c), "SELECT pg_backend_pid()");
    int pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    OK(access_session_begin_pipelined(c, &s, &err));
    OK(access_tx_begin(s, &a, &tx, &err));
    access_log_entry_t e = log_entry("req_lost", "ok");
    OK(access_logs_insert(tx, &e, &err));
    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    th_pg_exec(f->pg, "postgres", sql);
    /* Bounded wait until the backend is really gone. */
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE pid = %d", pid);
    for (int i = 0; i < 500 && th_pg_i64(f->pg, "postgres", sql) > 0; i++)
        usleep(10000);
    /* The first message after the loss fails, whichever call sends it. */
    access_status_t st =
        access_outcome_claim(tx, "req_lost", "payment.record", "{}", &kind, &stored, &err);
    assert_int_equal(st, ACCESS_UNAVAILABLE);
    assert_true(access_session_failed(s));
    access_session_abort(s);
    pool_release(f->pool, c);
    assert_int_equal(committed_logs(f, "pipe_lost", "req_lost"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_is_sent_before_it_must),
        cmocka_unit_test(test_a_statement_sees_the_queued_writes),
        cmocka_unit_test(test_a_failed_write_at_tx_end_undoes_only_its_tx),
        cmocka_unit_test(test_a_carried_write_that_fails_fails_the_session),
        cmocka_unit_test(test_a_failed_last_write_never_commits),
        cmocka_unit_test(test_the_probe_travels_with_the_next_statement),
        cmocka_unit_test(test_rollback_discards_and_undoes),
        cmocka_unit_test(test_a_lost_connection_ends_the_session),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
