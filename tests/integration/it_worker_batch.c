/* it_worker_batch — the per-request transaction script (worker/batch.h,
 * worker/run.h) against a real PostgreSQL, without Kafka: jobs built in the
 * test from request texts, run as one batch through task_run as an
 * executor runs them, and every job's outcome asserted together with what
 * the database committed: answered (new, replayed, refused), retried (a
 * lock wait past the lock timeout), requeued (cancelled, unreachable), and
 * the blame for a carried write that fails the session. */
#include "harness.h"

#include "common/mem.h"
#include "pool/pool.h"
#include "worker/task.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#define LOCK_TIMEOUT_MS 300

typedef struct fixture {
    th_pg_t *pg;
    pool_t *pool;
    int64_t next_offset;
} fixture_t;

static pool_t *new_pool(const char *url)
{
    pool_config_t cfg = {.conninfo = url,
                         .max = 2,
                         .connect_timeout_ms = 5000,
                         .application_name = "it_worker_batch",
                         .lock_timeout_ms = LOCK_TIMEOUT_MS};
    pool_t *p;
    char err[256];
    if (pool_new(&cfg, &p, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    return p;
}

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    char url[256];
    th_pg_url(f->pg, "tally_worker", url, sizeof(url));
    f->pool = new_pool(url);
    /* Audit rows that fail on purpose, by request id: a transient failure
     * (serialization) and one no retry changes (a check violation). */
    th_pg_exec(f->pg, "postgres",
               "CREATE FUNCTION it_refuse_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "IF NEW.request_id LIKE 'blame-transient%' THEN "
               "RAISE EXCEPTION 'refused on purpose' USING ERRCODE = '40001'; END IF; "
               "IF NEW.request_id LIKE 'blame-perm%' THEN "
               "RAISE EXCEPTION 'refused on purpose' USING ERRCODE = '23514'; END IF; "
               "RETURN NEW; END $$");
    th_pg_exec(f->pg, "postgres",
               "CREATE TRIGGER it_refuse_log BEFORE INSERT ON payment_system_logs "
               "FOR EACH ROW EXECUTE FUNCTION it_refuse_log()");
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    pool_free(f->pool);
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

/* A job as the loop makes it from a request message. */
static job_t *make_job(fixture_t *f, const char *account, const char *id, const char *type,
                       const char *payload)
{
    char value[1024];
    snprintf(value, sizeof(value),
             "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"%s\",\"payload\":%s}", id, account,
             type, payload);
    job_source_t src = {.offset = f->next_offset++, .value = value, .value_len = strlen(value)};
    job_t *job = job_new(&src, NULL);
    assert_false(job->unanswerable);
    assert_int_equal(job->state, JOB_RECEIVED);
    return job;
}

static job_t *make_record(fixture_t *f, const char *account, const char *id)
{
    char payload[256];
    snprintf(payload, sizeof(payload),
             "{\"external_id\":\"ext-%s\",\"amount\":1000,\"currency\":\"usd\"}", id);
    return make_job(f, account, id, "payment.record", payload);
}

static bool always(void *arg)
{
    return true;
}

/* Runs jobs[0..n) as one batch, as an executor does. The caller frees the
 * task (task_free) and the jobs. */
static task_t *run_batch(pool_t *pool, job_t **jobs, size_t n, bool cancelled)
{
    job_t **batch = mem_calloc(n, sizeof(*batch));
    memcpy(batch, jobs, n * sizeof(*batch));
    task_t *t = task_new_batch(batch, n);
    task_env_t env = {
        .pool = pool, .worker = "it_worker_batch", .cancelled = cancelled ? always : NULL};
    task_run(t, &env);
    return t;
}

static void free_jobs(job_t **jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        job_free(jobs[i]);
}

/* The string at o.a (b NULL) or o.a.b. */
static const char *result_str(json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b != NULL)
        v = json_object_get(v, b);
    return json_string_value(v);
}

static json_t *result_of(const job_t *job)
{
    assert_non_null(job->result_text);
    json_t *r = json_loads(job->result_text, 0, NULL);
    assert_non_null(r);
    return r;
}

static int64_t count(fixture_t *f, const char *table, const char *account)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE account_id = '%s'", table, account);
    return th_pg_i64(f->pg, "postgres", sql);
}

/* Answered: new requests, a refused payload and an unknown type in one
 * batch, all committed together with their audit rows; the same requests
 * again are replays that apply nothing. */
static void test_answered(void **state)
{
    fixture_t *f = *state;
    const char *accounts[] = {"bt_a1", "bt_a2", "bt_a3"};
    for (int round = 0; round < 2; round++) {
        job_t *jobs[5];
        for (int i = 0; i < 3; i++)
            jobs[i] = make_record(f, accounts[i], "ans-1");
        jobs[3] = make_job(f, "bt_a4", "ans-bad", "payment.record",
                           "{\"external_id\":\"x\",\"amount\":-5,\"currency\":\"usd\"}");
        jobs[4] = make_job(f, "bt_a5", "ans-unknown", "payment.nope", "{}");
        task_t *t = run_batch(f->pool, jobs, 5, false);
        assert_false(t->db_unavailable);
        for (int i = 0; i < 5; i++)
            assert_int_equal(jobs[i]->status, JOB_ANSWERED);
        for (int i = 0; i < 3; i++) {
            json_t *r = result_of(jobs[i]);
            assert_string_equal(result_str(r, "status", NULL), "ok");
            assert_int_equal(json_is_true(json_object_get(r, "replayed")), round == 1);
            assert_true(jobs[i]->ok);
            assert_int_equal(jobs[i]->replayed, round == 1);
            assert_non_null(strstr(jobs[i]->audit_text, "\"status\":\"ok\""));
            json_decref(r);
            assert_int_equal(count(f, "stripe_payments", accounts[i]), 1);
            assert_int_equal(count(f, "tally_request_outcomes", accounts[i]), 1);
            assert_int_equal(count(f, "payment_system_logs", accounts[i]), round + 1);
        }
        json_t *r = result_of(jobs[3]);
        assert_string_equal(result_str(r, "error", "code"), "invalid_request");
        assert_string_equal(result_str(r, "error", "field"), "amount");
        json_decref(r);
        r = result_of(jobs[4]);
        assert_string_equal(result_str(r, "error", "code"), "unknown_type");
        json_decref(r);
        /* Answers decided before the handler leave an audit row only. */
        assert_int_equal(count(f, "payment_system_logs", "bt_a4"), round + 1);
        assert_int_equal(count(f, "tally_request_outcomes", "bt_a4"), 0);
        assert_int_equal(count(f, "payment_system_logs", "bt_a5"), round + 1);
        task_free(t);
        free_jobs(jobs, 5);
    }
}

/* Retried: a statement waits on a row an outside session holds, past the
 * lock timeout. Only that job fails (one attempt, its effects undone); its
 * batch-mate commits. Once the lock is gone it is answered. */
static void test_retried(void **state)
{
    fixture_t *f = *state;
    job_t *setup = make_record(f, "bt_r1", "ret-pay");
    task_t *t = run_batch(f->pool, &setup, 1, false);
    assert_int_equal(setup->status, JOB_ANSWERED);
    json_t *r = result_of(setup);
    const char *pid = result_str(json_object_get(r, "result"), "payment", "id");
    assert_non_null(pid);
    char payment_id[64];
    snprintf(payment_id, sizeof(payment_id), "%s", pid);
    json_decref(r);
    task_free(t);
    job_free(setup);

    PGconn *locker = th_pg_connect(f->pg, "postgres");
    char sql[256];
    snprintf(sql, sizeof(sql), "BEGIN; SELECT 1 FROM stripe_payments WHERE id = '%s' FOR UPDATE",
             payment_id);
    PQclear(PQexec(locker, sql));
    assert_int_equal(PQtransactionStatus(locker), PQTRANS_INTRANS);

    char payload[128];
    snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":100}", payment_id);
    job_t *jobs[2] = {make_job(f, "bt_r1", "ret-refund", "payment.refund", payload),
                      make_record(f, "bt_r2", "ret-mate")};
    t = run_batch(f->pool, jobs, 2, false);
    assert_false(t->db_unavailable);
    assert_int_equal(jobs[0]->status, JOB_RETRY);
    assert_non_null(strstr(jobs[0]->fail_reason, "transient"));
    assert_null(jobs[0]->result_text);
    assert_int_equal(jobs[1]->status, JOB_ANSWERED);
    task_free(t);
    assert_int_equal(count(f, "stripe_payments", "bt_r2"), 1);
    assert_int_equal(count(f, "stripe_payment_refunds", "bt_r1"), 0);
    assert_int_equal(count(f, "payment_system_logs", "bt_r1"), 1); /* the setup's only */

    PQclear(PQexec(locker, "ROLLBACK"));
    PQfinish(locker);
    t = run_batch(f->pool, jobs, 1, false);
    assert_int_equal(jobs[0]->status, JOB_ANSWERED);
    assert_true(jobs[0]->ok);
    assert_int_equal(count(f, "stripe_payment_refunds", "bt_r1"), 1);
    task_free(t);
    free_jobs(jobs, 2);
}

/* Requeued: nobody's fault, nothing written, nothing counted. */
static void test_requeued(void **state)
{
    fixture_t *f = *state;
    job_t *jobs[2] = {make_record(f, "bt_q1", "req-1"), make_record(f, "bt_q2", "req-2")};

    /* The shutdown deadline passed: the batch does not start. */
    task_t *t = run_batch(f->pool, jobs, 2, true);
    assert_false(t->db_unavailable);
    assert_string_equal(t->error, "cancelled at the shutdown deadline");
    for (int i = 0; i < 2; i++)
        assert_int_equal(jobs[i]->status, JOB_REQUEUE);
    task_free(t);

    /* The database cannot be reached. */
    char url[128];
    snprintf(url, sizeof(url), "postgresql://tally_worker@127.0.0.1:%d/tally", th_free_port());
    pool_t *nowhere = new_pool(url);
    t = run_batch(nowhere, jobs, 2, false);
    assert_true(t->db_unavailable);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i]->status, JOB_REQUEUE);
        assert_int_equal(jobs[i]->losses, 0);
    }
    task_free(t);
    pool_free(nowhere);
    assert_int_equal(count(f, "payment_system_logs", "bt_q1"), 0);
    assert_int_equal(count(f, "payment_system_logs", "bt_q2"), 0);
    free_jobs(jobs, 2);
}

/* Blame: a job's audit row is carried with its batch-mate's first statement
 * (or goes out on its own before COMMIT, when it is last) and fails there:
 * the session is gone, nothing commits, and the job whose write failed is
 * the one to blame — one attempt for a transient failure, `internal` at
 * once for one no retry changes — while its batch-mate runs again,
 * uncounted. */
static void test_blame_on_a_carried_write(void **state)
{
    fixture_t *f = *state;
    job_t *carried[2] = {make_record(f, "bt_b1", "blame-transient-1"),
                         make_record(f, "bt_b2", "blame-mate-1")};
    task_t *t = run_batch(f->pool, carried, 2, false);
    assert_false(t->db_unavailable);
    assert_int_equal(carried[0]->status, JOB_RETRY);
    assert_non_null(strstr(carried[0]->fail_reason, "refused on purpose"));
    assert_int_equal(carried[1]->status, JOB_REQUEUE);
    assert_null(carried[1]->result_text);
    task_free(t);

    job_t *last[2] = {make_record(f, "bt_b3", "blame-mate-2"),
                      make_record(f, "bt_b4", "blame-transient-2")};
    t = run_batch(f->pool, last, 2, false);
    assert_int_equal(last[0]->status, JOB_REQUEUE);
    assert_int_equal(last[1]->status, JOB_RETRY);
    assert_non_null(strstr(last[1]->fail_reason, "refused on purpose"));
    task_free(t);
    const char *untouched[] = {"bt_b1", "bt_b2", "bt_b3", "bt_b4"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(count(f, "stripe_payments", untouched[i]), 0);
        assert_int_equal(count(f, "tally_request_outcomes", untouched[i]), 0);
    }

    /* No retry changes a check violation: run again uncounted, to be
     * answered `internal` (even though its audit row fails again). */
    job_t *perm[2] = {make_record(f, "bt_b5", "blame-perm-1"),
                      make_record(f, "bt_b6", "blame-mate-3")};
    t = run_batch(f->pool, perm, 2, false);
    assert_int_equal(perm[0]->status, JOB_REQUEUE);
    assert_int_equal(perm[0]->verdict, JOB_VERDICT_INTERNAL_PERMANENT);
    assert_int_equal(perm[1]->status, JOB_REQUEUE);
    assert_int_equal(perm[1]->verdict, JOB_VERDICT_NONE);
    task_free(t);
    t = run_batch(f->pool, perm, 2, false);
    assert_int_equal(perm[0]->status, JOB_ANSWERED);
    json_t *r = result_of(perm[0]);
    assert_string_equal(result_str(r, "error", "code"), "internal");
    json_decref(r);
    assert_int_equal(perm[1]->status, JOB_ANSWERED);
    assert_true(perm[1]->ok);
    task_free(t);
    assert_int_equal(count(f, "stripe_payments", "bt_b5"), 0);
    assert_int_equal(count(f, "payment_system_logs", "bt_b5"), 0);
    assert_int_equal(count(f, "stripe_payments", "bt_b6"), 1);

    free_jobs(carried, 2);
    free_jobs(last, 2);
    free_jobs(perm, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answered),
        cmocka_unit_test(test_retried),
        cmocka_unit_test(test_requeued),
        cmocka_unit_test(test_blame_on_a_carried_write),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
