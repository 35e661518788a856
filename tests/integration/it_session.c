/* it_session — sessions and tenant transactions, stored outcomes, the audit
 * log and outcome pruning, against a real PostgreSQL as the worker's role. */
#include "it_session_common.h"

#include "access/admin.h"
#include "access/logs.h"
#include "access/outcome.h"
#include "access/session.h"
#include "common/clock.h"
#include "pool/pool.h"

#include <pthread.h>
#include <stdatomic.h>
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
    return session_fixture_start(state, 4, "it_session");
}

static int backend_pid(pool_conn_t *c)
{
    PGresult *r = PQexec(pool_conn_pg(c), "SELECT pg_backend_pid()");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    int pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return pid;
}

/* The tenant setting as the connection sees it right now; malloc'd, NULL
 * when unset. */
static char *current_tenant(pool_conn_t *c)
{
    PGresult *r = PQexec(pool_conn_pg(c), "SELECT current_setting('app.account_id', true)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *v = PQgetisnull(r, 0, 0) ? NULL : strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void assert_tenant(pool_conn_t *c, const char *want)
{
    char *v = current_tenant(c);
    if (want == NULL) {
        /* Unset, or the empty string a transaction-local setting leaves. */
        assert_true(v == NULL || v[0] == '\0');
    } else {
        assert_non_null(v);
        assert_string_equal(v, want);
    }
    free(v);
}

static access_log_entry_t log_entry(const char *request_id, const char *type, const char *code)
{
    return (access_log_entry_t){.request_id = request_id,
                                .type = type,
                                .status = code == NULL ? "ok" : "error",
                                .error_code = code,
                                .replayed = false,
                                .at_ms = clock_wall_ms(),
                                .duration_ms = 1.5,
                                .worker = "it_session",
                                .partition = 3,
                                .offset = 1042};
}

/* Opens a session on c with one tenant transaction for *a. */
static access_tx_t *begin_one(pool_conn_t *c, access_session_t **s, const access_account_t *a)
{
    access_error_t err;
    access_tx_t *tx;
    OK(access_session_begin(c, s, &err));
    OK(access_tx_begin(*s, a, &tx, &err));
    return tx;
}

/* Ends tx and commits its session. */
static void end_one(access_session_t *s, access_tx_t *tx)
{
    access_error_t err;
    OK(access_tx_end(tx, &err));
    OK(access_session_commit(s, &err));
}

static int64_t count_logs(fixture_t *f, const char *account, const char *request_id)
{
    char sql[256];
    snprintf(
        sql, sizeof(sql),
        "SELECT count(*) FROM payment_system_logs WHERE account_id = '%s' AND request_id = '%s'",
        account, request_id);
    return th_pg_i64(f->pg, "postgres", sql);
}

static void test_tenants_in_one_session(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("sess_a"), b = tenant("sess_b");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;

    tx = begin_one(c, &s, &a);
    assert_string_equal(access_tx_account(tx)->id, "sess_a");
    assert_tenant(c, "sess_a");
    access_log_entry_t e = log_entry("req_multi_a", "payment.get", NULL);
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));

    OK(access_tx_begin(s, &b, &tx, &err));
    assert_tenant(c, "sess_b");
    e = log_entry("req_multi_b", "payment.get", "not_found");
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));

    /* Not committed yet: another connection sees nothing. */
    assert_int_equal(count_logs(f, "sess_a", "req_multi_a"), 0);
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);
    assert_int_equal(count_logs(f, "sess_a", "req_multi_a"), 1);
    assert_int_equal(count_logs(f, "sess_b", "req_multi_b"), 1);
    /* Each row went to its own tenant only. */
    assert_int_equal(count_logs(f, "sess_b", "req_multi_a"), 0);
    assert_int_equal(count_logs(f, "sess_a", "req_multi_b"), 0);
}

static void test_rollback_restores_the_right_tenant(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("rb_a"), b = tenant("rb_b");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;

    tx = begin_one(c, &s, &a);
    access_log_entry_t e = log_entry("req_rb_1", "payment.get", NULL);
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_end(tx, &err));

    OK(access_tx_begin(s, &b, &tx, &err));
    e = log_entry("req_rb_2", "payment.get", NULL);
    OK(access_logs_insert(tx, &e, &err));
    OK(access_tx_rollback(tx, &err));
    /* ROLLBACK TO SAVEPOINT alone would have restored rb_a here. */
    assert_tenant(c, "rb_b");
    e = log_entry("req_rb_3", "payment.get", NULL);
    OK(access_logs_insert(tx, &e, &err));
    /* A second rollback in the same tx works as well. */
    OK(access_tx_rollback(tx, &err));
    assert_tenant(c, "rb_b");
    e = log_entry("req_rb_4", "payment.get", "conflict");
    OK(access_logs_insert(tx, &e, &err));
    end_one(s, tx);
    pool_release(f->pool, c);

    assert_int_equal(count_logs(f, "rb_a", "req_rb_1"), 1); /* the earlier tx kept its work */
    assert_int_equal(count_logs(f, "rb_b", "req_rb_2"), 0);
    assert_int_equal(count_logs(f, "rb_b", "req_rb_3"), 0);
    assert_int_equal(count_logs(f, "rb_b", "req_rb_4"), 1);
}

static void test_setting_dies_with_the_transaction(void **state)
{
    fixture_t *f = *state;
    access_account_t a = tenant("die_a");
    pool_conn_t *c = borrow(f);
    int pid = backend_pid(c);

    access_session_t *s;
    access_tx_t *tx;
    tx = begin_one(c, &s, &a);
    assert_tenant(c, "die_a");
    end_one(s, tx);
    assert_tenant(c, NULL);
    pool_release(f->pool, c);

    /* The next borrower gets the same connection, still without a tenant. */
    c = borrow(f);
    assert_int_equal(backend_pid(c), pid);
    assert_tenant(c, NULL);

    /* Aborted sessions leave nothing behind either. */
    tx = begin_one(c, &s, &a);
    access_session_abort(s);
    assert_tenant(c, NULL);
    assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_IDLE);
    pool_release(f->pool, c);
}

static void test_misuse_is_refused(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("misuse_a");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx, *tx2;

    OK(access_session_begin(c, &s, &err));
    /* A forged account value. */
    access_account_t forged;
    memset(&forged, 0, sizeof(forged));
    strcpy(forged.id, "x' OR true --");
    assert_int_equal(access_tx_begin(s, &forged, &tx, &err), ACCESS_FAILED);
    assert_null(tx);
    access_account_t empty;
    memset(&empty, 0, sizeof(empty));
    assert_int_equal(access_tx_begin(s, &empty, &tx, &err), ACCESS_FAILED);

    OK(access_tx_begin(s, &a, &tx, &err));
    /* One tenant at a time. */
    assert_int_equal(access_tx_begin(s, &a, &tx2, &err), ACCESS_FAILED);

    /* A statement the database refuses (CHECK on status): classified, with
     * its SQLSTATE (a constraint: permanent, a conflict); the tx must be
     * rolled back before it can be used again. */
    access_log_entry_t e = log_entry("req_misuse", "payment.get", NULL);
    e.status = "maybe";
    assert_int_equal(access_logs_insert(tx, &e, &err), ACCESS_CONFLICT);
    assert_string_equal(err.sqlstate, "23514");
    assert_non_null(strstr(err.message, "payment_system_logs_check"));
    e = log_entry("req_misuse", "payment.get", NULL);
    assert_int_equal(access_logs_insert(tx, &e, &err), ACCESS_FAILED);
    OK(access_tx_rollback(tx, &err));
    OK(access_logs_insert(tx, &e, &err));
    end_one(s, tx);
    assert_int_equal(count_logs(f, "misuse_a", "req_misuse"), 1);

    /* Ending a tx whose statement failed, without rolling back, is a bug
     * that is reported at once and poisons the session. */
    tx = begin_one(c, &s, &a);
    e.status = "maybe";
    assert_int_equal(access_logs_insert(tx, &e, &err), ACCESS_CONFLICT);
    assert_int_equal(access_tx_end(tx, &err), ACCESS_FAILED);
    assert_int_equal(access_session_commit(s, &err), ACCESS_FAILED);
    assert_int_equal(PQtransactionStatus(pool_conn_pg(c)), PQTRANS_IDLE);

    /* Committing with a tx still open is refused and rolls back. */
    tx = begin_one(c, &s, &a);
    e = log_entry("req_misuse_open", "payment.get", NULL);
    OK(access_logs_insert(tx, &e, &err));
    assert_int_equal(access_session_commit(s, &err), ACCESS_FAILED);
    assert_int_equal(count_logs(f, "misuse_a", "req_misuse_open"), 0);

    /* An empty session commits without a round trip. */
    OK(access_session_begin(c, &s, &err));
    OK(access_session_commit(s, &err));
    pool_release(f->pool, c);
}

/* Runs claim in its own session and commits (after storing on NEW). */
static access_outcome_kind_t claim_and_store(fixture_t *f, const char *account, const char *id,
                                             const char *type, const char *payload,
                                             const char *response, char **stored)
{
    access_error_t err;
    access_account_t a = tenant(account);
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    tx = begin_one(c, &s, &a);
    OK(access_outcome_claim(tx, id, type, payload, &kind, stored, &err));
    if (kind == ACCESS_OUTCOME_NEW)
        OK(access_outcome_store(tx, id, type, payload, response, &err));
    end_one(s, tx);
    pool_release(f->pool, c);
    return kind;
}

static void test_outcome_claim(void **state)
{
    fixture_t *f = *state;
    char *stored = NULL;
    /* Exact bytes, including non-ASCII and JSON escapes, come back on replay. */
    const char *response =
        "{\"payment\":{\"id\":\"pay_1\",\"description\":\"caf\xc3\xa9 \\\"x\\\"\"}}";
    const char *payload = "{\"amount\":1999,\"currency\":\"usd\",\"external_id\":\"pi_1\"}";

    assert_int_equal(
        claim_and_store(f, "oc_a", "req_1", "payment.record", payload, response, &stored),
        ACCESS_OUTCOME_NEW);
    assert_null(stored);

    assert_int_equal(
        claim_and_store(f, "oc_a", "req_1", "payment.record", payload, "unused", &stored),
        ACCESS_OUTCOME_STORED);
    assert_non_null(stored);
    assert_string_equal(stored, response);
    free(stored);
    stored = NULL;

    /* Same id, other payload or other type. */
    assert_int_equal(
        claim_and_store(f, "oc_a", "req_1", "payment.record",
                        "{\"amount\":2000,\"currency\":\"usd\",\"external_id\":\"pi_1\"}", "unused",
                        &stored),
        ACCESS_OUTCOME_MISMATCH);
    assert_null(stored);
    assert_int_equal(claim_and_store(f, "oc_a", "req_1", "payment.get", payload, "unused", &stored),
                     ACCESS_OUTCOME_MISMATCH);

    /* Keys are per account. */
    assert_int_equal(
        claim_and_store(f, "oc_b", "req_1", "payment.record", payload, "for b", &stored),
        ACCESS_OUTCOME_NEW);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes WHERE request_id = "
                               "'req_1' AND response IS NOT NULL"),
                     2);
}

static void test_outcome_store_after_rollback(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("osr_a");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    tx = begin_one(c, &s, &a);
    OK(access_outcome_claim(tx, "req_rej", "payout.create", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_NEW);
    /* A rejected request: its effects (and the claim) are rolled back, the
     * error answer is stored anyway. */
    OK(access_tx_rollback(tx, &err));
    OK(access_outcome_store(tx, "req_rej", "payout.create", "{}", "{\"error\":1}", &err));
    /* Storing again never replaces a stored response. */
    assert_int_equal(
        access_outcome_store(tx, "req_rej", "payout.create", "{}", "{\"error\":2}", &err),
        ACCESS_CONFLICT);
    end_one(s, tx);
    pool_release(f->pool, c);

    assert_int_equal(claim_and_store(f, "osr_a", "req_rej", "payout.create", "{}", "x", &stored),
                     ACCESS_OUTCOME_STORED);
    assert_string_equal(stored, "{\"error\":1}");
    free(stored);
}

typedef struct claimer {
    fixture_t *f;
    atomic_int done;
    access_outcome_kind_t kind;
    char *stored;
    int backend_pid;
} claimer_t;

static void *claim_thread(void *arg)
{
    claimer_t *cl = arg;
    access_error_t err;
    access_account_t a = tenant("conc_a");
    pool_conn_t *c = borrow(cl->f);
    cl->backend_pid = backend_pid(c);
    access_session_t *s;
    access_tx_t *tx;
    if (access_session_begin(c, &s, &err) == ACCESS_OK &&
        access_tx_begin(s, &a, &tx, &err) == ACCESS_OK &&
        access_outcome_claim(tx, "req_conc", "payment.get", "{}", &cl->kind, &cl->stored, &err) ==
            ACCESS_OK &&
        access_tx_end(tx, &err) == ACCESS_OK && access_session_commit(s, &err) == ACCESS_OK) {
        atomic_store(&cl->done, 1);
    } else {
        atomic_store(&cl->done, 2);
    }
    pool_release(cl->f->pool, c);
    return NULL;
}

/* The value of a server setting on c's connection. */
static char *show(pool_conn_t *c, const char *setting)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "SHOW %s", setting);
    PGresult *r = PQexec(pool_conn_pg(c), sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    char *v = strdup(PQgetvalue(r, 0, 0));
    PQclear(r);
    return v;
}

static void expect_setting(pool_conn_t *c, const char *setting, const char *want)
{
    char *v = show(c, setting);
    if (strcmp(v, want) != 0)
        fail_msg("%s is %s, want %s", setting, v, want);
    free(v);
}

/* Every tenant transaction carries the pool's limits as SET LOCAL (so they
 * hold behind a transaction pooler as well), also after a rollback, and
 * they end with the transaction. A claim that waits on another session's
 * row lock longer than lock_timeout fails ACCESS_RETRY (55P03) instead of
 * waiting without end. */
static void test_limits_bound_every_transaction(void **state)
{
    fixture_t *f = *state;
    char url[256], why[256];
    th_pg_url(f->pg, "tally_worker", url, sizeof(url));
    pool_config_t cfg = {.conninfo = url,
                         .max = 1,
                         .application_name = "it_session_limits",
                         .statement_timeout_ms = 1500,
                         .lock_timeout_ms = 300,
                         .idle_in_transaction_timeout_ms = 7000};
    pool_t *pool;
    if (pool_new(&cfg, &pool, why, sizeof(why)) != 0)
        fail_msg("pool_new: %s", why);
    pool_conn_t *c;
    if (pool_acquire(pool, &c, why, sizeof(why)) != 0)
        fail_msg("pool_acquire: %s", why);
    access_error_t err;
    access_account_t a = tenant("limits_a");
    access_session_t *s;
    access_tx_t *tx = begin_one(c, &s, &a);
    expect_setting(c, "statement_timeout", "1500ms");
    expect_setting(c, "lock_timeout", "300ms");
    expect_setting(c, "idle_in_transaction_session_timeout", "7s");
    OK(access_tx_rollback(tx, &err));
    expect_setting(c, "lock_timeout", "300ms");

    /* Another session holds the claim's row: the claim gives up. */
    PGconn *holder = th_pg_connect(f->pg, "postgres");
    PQclear(PQexec(holder, "BEGIN"));
    PQclear(PQexec(holder, "INSERT INTO tally_request_outcomes (account_id, request_id, type,"
                           " payload_sha256) VALUES ('limits_a', 'req_locked', 'payment.get',"
                           " sha256('x'))"));
    access_outcome_kind_t kind;
    char *stored = NULL;
    assert_int_equal(
        access_outcome_claim(tx, "req_locked", "payment.get", "{}", &kind, &stored, &err),
        ACCESS_RETRY);
    assert_string_equal(err.sqlstate, "55P03");
    PQclear(PQexec(holder, "ROLLBACK"));
    PQfinish(holder);
    OK(access_tx_rollback(tx, &err));
    end_one(s, tx);
    expect_setting(c, "lock_timeout", "0"); /* gone with the transaction */
    pool_release(pool, c);
    pool_free(pool);
}

/* Waits (up to 10 s) until the backend whose pid another thread writes to
 * *pid waits for a lock. */
static bool lock_waiting(fixture_t *f, const volatile int *pid)
{
    for (int i = 0; i < 1000; i++) {
        if (*pid != 0) {
            char sql[160];
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM pg_stat_activity WHERE pid = %d AND "
                     "wait_event_type = 'Lock'",
                     *pid);
            if (th_pg_i64(f->pg, "postgres", sql) == 1)
                return true;
        }
        usleep(10000);
    }
    return false;
}

static void test_concurrent_claim_waits_for_the_first(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("conc_a");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    tx = begin_one(c, &s, &a);
    OK(access_outcome_claim(tx, "req_conc", "payment.get", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_NEW);

    claimer_t cl = {.f = f};
    pthread_t th;
    pthread_create(&th, NULL, claim_thread, &cl);

    /* Wait (bounded) until the second claim is blocked on our row lock. */
    assert_true(lock_waiting(f, &cl.backend_pid));
    assert_int_equal(atomic_load(&cl.done), 0);

    OK(access_outcome_store(tx, "req_conc", "payment.get", "{}", "{\"first\":true}", &err));
    end_one(s, tx);
    pool_release(f->pool, c);

    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&cl.done), 1);
    assert_int_equal(cl.kind, ACCESS_OUTCOME_STORED);
    assert_string_equal(cl.stored, "{\"first\":true}");
    free(cl.stored);
}

/* The second of two processors of one key in the one-write scheme (the
 * worker's: probe, effects, store): its effect and its store in one tenant
 * transaction; done records how its store ended. */
typedef struct storer {
    fixture_t *f;
    atomic_int done; /* 0 running, else 1 + the store's access_status_t */
    int backend_pid;
    access_outcome_kind_t probed;
} storer_t;

static void *store_thread(void *arg)
{
    storer_t *st = arg;
    access_error_t err;
    access_account_t a = tenant("race_a");
    pool_conn_t *c = borrow(st->f);
    st->backend_pid = backend_pid(c);
    access_session_t *s;
    access_tx_t *tx;
    char *stored = NULL;
    access_status_t rc = ACCESS_FAILED;
    access_log_entry_t effect = {.request_id = "race-effect-2", .type = "payment.get",
                                 .status = "ok", .worker = "it", .at_ms = clock_wall_ms()};
    if (access_session_begin(c, &s, &err) == ACCESS_OK &&
        access_tx_begin(s, &a, &tx, &err) == ACCESS_OK &&
        access_outcome_probe(tx, "req_race", "payment.get", "{}", &st->probed, &stored, &err) ==
            ACCESS_OK &&
        access_logs_insert(tx, &effect, &err) == ACCESS_OK) {
        rc = access_outcome_store(tx, "req_race", "payment.get", "{}", "{\"second\":true}", &err);
        /* As run.c: a failed store undoes the attempt, effect and all. */
        if (rc != ACCESS_OK)
            access_tx_rollback(tx, &err);
        access_tx_end(tx, &err);
        access_session_commit(s, &err);
    }
    free(stored);
    atomic_store(&st->done, 1 + (int)rc);
    pool_release(st->f->pool, c);
    return NULL;
}

/* One write per outcome: two processors of one key both probe NEW (the
 * first's row is not committed yet); the second's store waits on the
 * first's row, then stores nothing (ACCESS_CONFLICT) and its effect is
 * undone; its retry probes the first's outcome: a replay, never a second
 * application. */
static void test_probe_race_second_store_fails(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("race_a");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    tx = begin_one(c, &s, &a);
    OK(access_outcome_probe(tx, "req_race", "payment.get", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_NEW);
    access_log_entry_t effect = {.request_id = "race-effect-1", .type = "payment.get",
                                 .status = "ok", .worker = "it", .at_ms = clock_wall_ms()};
    OK(access_logs_insert(tx, &effect, &err));
    OK(access_outcome_store(tx, "req_race", "payment.get", "{}", "{\"first\":true}", &err));

    storer_t st = {.f = f};
    pthread_t th;
    pthread_create(&th, NULL, store_thread, &st);
    /* Wait (bounded) until the second store is blocked on our row. */
    assert_true(lock_waiting(f, &st.backend_pid));
    assert_int_equal(atomic_load(&st.done), 0);
    end_one(s, tx); /* the first commits */
    pool_release(f->pool, c);

    pthread_join(th, NULL);
    assert_int_equal(st.probed, ACCESS_OUTCOME_NEW);
    assert_int_equal(atomic_load(&st.done), 1 + (int)ACCESS_CONFLICT);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE request_id LIKE "
                               "'race-effect-%' AND account_id = 'race_a'"),
                     1);
    /* The retry replays the first's outcome. */
    c = borrow(f);
    tx = begin_one(c, &s, &a);
    OK(access_outcome_probe(tx, "req_race", "payment.get", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_STORED);
    assert_string_equal(stored, "{\"first\":true}");
    free(stored);
    stored = NULL;
    OK(access_outcome_probe(tx, "req_race", "payment.record", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_MISMATCH);
    assert_null(stored);
    end_one(s, tx);
    pool_release(f->pool, c);
}

static void test_concurrent_claim_after_abort_is_new(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("conc_a");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;
    access_outcome_kind_t kind;
    char *stored = NULL;

    tx = begin_one(c, &s, &a);
    OK(access_outcome_claim(tx, "req_conc2", "payment.get", "{}", &kind, &stored, &err));
    assert_int_equal(kind, ACCESS_OUTCOME_NEW);

    claimer_t cl = {.f = f};
    pthread_t th;
    pthread_create(&th, NULL, claim_thread, &cl); /* claims req_conc: not our key */
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&cl.done), 1); /* another key never waits */
    free(cl.stored);

    /* The first processor dies: its claim goes with it. */
    access_session_abort(s);
    pool_release(f->pool, c);
    assert_int_equal(claim_and_store(f, "conc_a", "req_conc2", "payment.get", "{}", "{}", &stored),
                     ACCESS_OUTCOME_NEW);
}

static void test_logs_list_pages(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("logs_a"), b = tenant("logs_b");
    pool_conn_t *c = borrow(f);
    access_session_t *s;
    access_tx_t *tx;

    tx = begin_one(c, &s, &a);
    for (int i = 0; i < 5; i++) {
        char rid[32];
        snprintf(rid, sizeof(rid), "req_l%d", i);
        access_log_entry_t e = log_entry(rid, i % 2 ? "payout.create" : "payment.record",
                                         i == 3 ? "insufficient_funds" : NULL);
        e.replayed = i == 4;
        OK(access_logs_insert(tx, &e, &err));
    }
    OK(access_tx_end(tx, &err));
    OK(access_tx_begin(s, &b, &tx, &err));
    access_log_entry_t eb = log_entry("req_lb", "payment.record", NULL);
    OK(access_logs_insert(tx, &eb, &err));
    end_one(s, tx);

    tx = begin_one(c, &s, &a);
    access_log_row_t rows[3];
    int n;
    bool more;
    access_page_t page = {.limit = 2};
    OK(access_logs_list(tx, NULL, &page, rows, &n, &more, &err));
    assert_int_equal(n, 2);
    assert_true(more);
    assert_string_equal(rows[0].request_id, "req_l4"); /* newest first */
    assert_true(rows[0].replayed);
    assert_string_equal(rows[1].request_id, "req_l3");
    assert_string_equal(rows[1].status, "error");
    assert_string_equal(rows[1].error_code, "insufficient_funds");
    assert_string_equal(rows[1].type, "payout.create");
    assert_true(rows[1].at_ms > 0 && llabs(rows[1].at_ms - clock_wall_ms()) < 3600 * 1000);
    assert_memory_equal(rows[1].id, "log_", 4);

    char cursor[48];
    strcpy(cursor, rows[1].id);
    page.starting_after = cursor;
    OK(access_logs_list(tx, NULL, &page, rows, &n, &more, &err));
    assert_int_equal(n, 2);
    assert_true(more);
    assert_string_equal(rows[0].request_id, "req_l2");
    assert_string_equal(rows[1].request_id, "req_l1");
    assert_string_equal(rows[0].error_code, "");
    strcpy(cursor, rows[1].id);
    OK(access_logs_list(tx, NULL, &page, rows, &n, &more, &err));
    assert_int_equal(n, 1);
    assert_false(more);
    assert_string_equal(rows[0].request_id, "req_l0");

    /* Type filter. */
    access_page_t all = {.limit = 3};
    OK(access_logs_list(tx, "payout.create", &all, rows, &n, &more, &err));
    assert_int_equal(n, 2);
    assert_false(more);
    assert_string_equal(rows[0].request_id, "req_l3");
    assert_string_equal(rows[1].request_id, "req_l1");
    OK(access_logs_list(tx, "code.redeem", &all, rows, &n, &more, &err));
    assert_int_equal(n, 0);
    assert_false(more);

    /* An unknown cursor, and another tenant's row as cursor, are NOT_FOUND. */
    access_page_t bad = {.limit = 3, .starting_after = "log_NOPE"};
    assert_int_equal(access_logs_list(tx, NULL, &bad, rows, &n, &more, &err), ACCESS_NOT_FOUND);
    assert_string_equal(err.field, "starting_after");
    char *bid = th_pg_text(f->pg, "postgres",
                           "SELECT id FROM payment_system_logs WHERE account_id = 'logs_b'");
    bad.starting_after = bid;
    assert_int_equal(access_logs_list(tx, NULL, &bad, rows, &n, &more, &err), ACCESS_NOT_FOUND);
    free(bid);
    OK(access_tx_end(tx, &err));

    /* Account B sees only its own row. */
    OK(access_tx_begin(s, &b, &tx, &err));
    OK(access_logs_list(tx, NULL, &all, rows, &n, &more, &err));
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].request_id, "req_lb");
    end_one(s, tx);
    pool_release(f->pool, c);
}

static void test_prune_outcomes(void **state)
{
    fixture_t *f = *state;
    char *stored = NULL;
    const char *ids[] = {"req_p1", "req_p2", "req_p3", "req_p4"};
    for (int i = 0; i < 4; i++)
        assert_int_equal(claim_and_store(f, i < 2 ? "prune_a" : "prune_b", ids[i], "payment.get",
                                         "{}", "{}", &stored),
                         ACCESS_OUTCOME_NEW);
    /* Age one outcome of each account past the retention, one just inside it. */
    th_pg_exec(f->pg, "postgres",
               "UPDATE tally_request_outcomes SET created_at = now() - interval '31 days' "
               "WHERE request_id IN ('req_p1', 'req_p3')");
    th_pg_exec(f->pg, "postgres",
               "UPDATE tally_request_outcomes SET created_at = now() - interval '29 days' "
               "WHERE request_id = 'req_p2'");
    int64_t before = th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_request_outcomes");

    access_error_t err;
    int64_t deleted = -1;
    pool_conn_t *c = borrow(f);
    OK(access_admin_prune_outcomes(c, 30, &deleted, &err));
    assert_int_equal(deleted, 2);
    OK(access_admin_prune_outcomes(c, 30, &deleted, &err));
    assert_int_equal(deleted, 0);
    assert_int_equal(access_admin_prune_outcomes(c, 0, &deleted, &err), ACCESS_INVALID);
    /* The function refuses it too, for callers that skip the C check. */
    PGresult *r = PQexec(pool_conn_pg(c), "SELECT tally_prune_outcomes(0)");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    PQclear(r);
    pool_release(f->pool, c);

    assert_int_equal(th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_request_outcomes"),
                     before - 2);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_request_outcomes WHERE request_id "
                               "IN ('req_p2', 'req_p4')"),
                     2);
    /* A pruned key is new again (beyond the retention window). */
    assert_int_equal(claim_and_store(f, "prune_a", "req_p1", "payment.get", "{}", "{}", &stored),
                     ACCESS_OUTCOME_NEW);
}

static void test_lost_connection_is_unavailable(void **state)
{
    fixture_t *f = *state;
    access_error_t err;
    access_account_t a = tenant("lost_a");
    pool_conn_t *c = borrow(f);
    int pid = backend_pid(c);
    access_session_t *s;
    access_tx_t *tx;
    tx = begin_one(c, &s, &a);

    char sql[64];
    snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%d)", pid);
    th_pg_exec(f->pg, "postgres", sql);

    access_log_entry_t e = log_entry("req_lost", "payment.get", NULL);
    assert_int_equal(access_logs_insert(tx, &e, &err), ACCESS_UNAVAILABLE);
    /* Everything after that is refused until the session is aborted. */
    assert_int_equal(access_tx_end(tx, &err), ACCESS_FAILED);
    access_session_abort(s);
    pool_stats_t before, after;
    pool_stats(f->pool, &before);
    pool_release(f->pool, c); /* closed, not kept */
    pool_stats(f->pool, &after);
    assert_int_equal(after.closed, before.closed + 1);

    /* The work is redone on a fresh connection. */
    c = borrow(f);
    tx = begin_one(c, &s, &a);
    OK(access_logs_insert(tx, &e, &err));
    end_one(s, tx);
    pool_release(f->pool, c);
    assert_int_equal(count_logs(f, "lost_a", "req_lost"), 1);
}

enum { BENCH_SESSIONS = 100, BENCH_TXS = 4, BENCH_ROUNDS = 7 };

/* Nanoseconds for BENCH_SESSIONS sessions of BENCH_TXS tenant txs through
 * the session API (pipelined control statements). */
static int64_t bench_pipelined(pool_conn_t *c, const access_account_t *a)
{
    access_error_t err;
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < BENCH_SESSIONS; i++) {
        access_session_t *s;
        access_tx_t *tx;
        OK(access_session_begin(c, &s, &err));
        for (int k = 0; k < BENCH_TXS; k++) {
            OK(access_tx_begin(s, a, &tx, &err));
            OK(access_tx_end(tx, &err));
        }
        OK(access_session_commit(s, &err));
    }
    return clock_mono_ns() - t0;
}

/* The same work with one statement per round trip. */
static int64_t bench_one_by_one(pool_conn_t *c, const access_account_t *a)
{
    PGconn *pg = pool_conn_pg(c);
    const char *v[] = {a->id};
    int64_t t0 = clock_mono_ns();
    for (int i = 0; i < BENCH_SESSIONS; i++) {
        PQclear(PQexec(pg, "BEGIN"));
        for (int k = 0; k < BENCH_TXS; k++) {
            PQclear(PQexec(pg, "SAVEPOINT t"));
            PQclear(PQexecParams(pg, "SELECT set_config('app.account_id', $1, true)", 1, NULL, v,
                                 NULL, NULL, 0));
            PQclear(PQexec(pg, "RELEASE SAVEPOINT t"));
        }
        PQclear(PQexec(pg, "COMMIT"));
    }
    return clock_mono_ns() - t0;
}

static int cmp_i64(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* Benchmark (prints numbers, asserts nothing about time): the session's
 * pipelined control statements against one round trip per statement, in
 * alternating rounds; best and median per session. */
static void test_bench_session_round_trips(void **state)
{
    fixture_t *f = *state;
    access_account_t a = tenant("bench_a");
    pool_conn_t *c = borrow(f);
    int64_t piped[BENCH_ROUNDS], single[BENCH_ROUNDS];
    for (int r = 0; r < BENCH_ROUNDS; r++) {
        piped[r] = bench_pipelined(c, &a);
        single[r] = bench_one_by_one(c, &a);
    }
    pool_release(f->pool, c);
    qsort(piped, BENCH_ROUNDS, sizeof(piped[0]), cmp_i64);
    qsort(single, BENCH_ROUNDS, sizeof(single[0]), cmp_i64);
    double per = 1e3 * BENCH_SESSIONS;
    printf("bench session control, %d tenant txs per session, us/session best/median: "
           "pipelined %.1f/%.1f (%d round trips), one statement per round trip %.1f/%.1f "
           "(%d round trips)\n",
           BENCH_TXS, (double)piped[0] / per, (double)piped[BENCH_ROUNDS / 2] / per, BENCH_TXS + 1,
           (double)single[0] / per, (double)single[BENCH_ROUNDS / 2] / per, 3 * BENCH_TXS + 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_in_one_session),
        cmocka_unit_test(test_rollback_restores_the_right_tenant),
        cmocka_unit_test(test_setting_dies_with_the_transaction),
        cmocka_unit_test(test_misuse_is_refused),
        cmocka_unit_test(test_outcome_claim),
        cmocka_unit_test(test_outcome_store_after_rollback),
        cmocka_unit_test(test_limits_bound_every_transaction),
        cmocka_unit_test(test_concurrent_claim_waits_for_the_first),
        cmocka_unit_test(test_concurrent_claim_after_abort_is_new),
        cmocka_unit_test(test_probe_race_second_store_fails),
        cmocka_unit_test(test_logs_list_pages),
        cmocka_unit_test(test_prune_outcomes),
        cmocka_unit_test(test_lost_connection_is_unavailable),
        cmocka_unit_test(test_bench_session_round_trips),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
