/* test_job — the job module: creation from a message, the state map
 * (every move on it legal, every other one not), started-ness, verdicts and
 * their answers, names. */
#include "worker/job.h"

#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

static job_t *make(const char *key, const char *value)
{
    job_source_t src = {.partition = 3,
                        .offset = 42,
                        .generation = 7,
                        .key = key,
                        .key_len = key != NULL ? strlen(key) : 0,
                        .value = value,
                        .value_len = strlen(value)};
    return job_new(&src, NULL);
}

static void test_new_copies_and_decodes(void **state)
{
    char value[] = "{\"id\":\"r1\",\"account_id\":\"acct_1\",\"type\":\"payment.get\","
                   "\"payload\":{\"payment_id\":\"pay_1\"}}";
    char key[] = "acct_1";
    job_t *job = make(key, value);
    memset(value, 'x', sizeof(value) - 1); /* the job holds copies */
    memset(key, 'x', sizeof(key) - 1);
    assert_int_equal(job->state, JOB_RECEIVED);
    assert_int_equal(job->partition, 3);
    assert_int_equal(job->offset, 42);
    assert_int_equal(job->generation, 7);
    assert_string_equal(job->key, "acct_1");
    assert_int_equal(job->key_len, 6);
    assert_non_null(strstr(job->value, "\"account_id\":\"acct_1\""));
    assert_false(job->unanswerable);
    assert_string_equal(job->env.account.id, "acct_1");
    assert_string_equal(job->env.id, "r1");
    assert_int_equal(job->verdict, JOB_VERDICT_NONE);
    assert_string_equal(job->dlq_reason, "");
    assert_string_equal(job->trace.parent, ""); /* no headers: no trace */
    assert_false(job_started(job));
    job_free(job);
}

/* The message's timestamp and trace context come along, for an
 * unanswerable message too (its DLQ copy carries the trace). */
static void test_new_keeps_timestamp_and_trace(void **state)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "traceparent", -1,
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", -1);
    rd_kafka_header_add(h, "tracestate", -1, "a=1", -1);
    const char *value = "not json";
    job_source_t src = {
        .value = value, .value_len = strlen(value), .timestamp_ms = 1796194647123, .headers = h};
    job_t *job = job_new(&src, NULL);
    rd_kafka_headers_destroy(h); /* the job holds copies */
    assert_true(job->unanswerable);
    assert_int_equal(job->timestamp_ms, 1796194647123);
    assert_string_equal(job->trace.id, "0af7651916cd43dd8448eb211c80319c");
    assert_string_equal(job->trace.state, "a=1");
    job_free(job);
}

static void test_unanswerable_has_its_dlq_reason(void **state)
{
    job_t *job = make(NULL, "not json");
    assert_true(job->unanswerable);
    assert_null(job->key);
    assert_non_null(strstr(job->dlq_reason, "JSON"));
    job_free(job);
}

/* The map of job.h, move by move. */
static const job_state_t moves[][2] = {
    {JOB_RECEIVED, JOB_QUEUED},    {JOB_RECEIVED, JOB_PUBLISHING}, {JOB_QUEUED, JOB_RUNNING},
    {JOB_BACKOFF, JOB_RUNNING},    {JOB_RUNNING, JOB_QUEUED},      {JOB_RUNNING, JOB_BACKOFF},
    {JOB_RUNNING, JOB_PUBLISHING}, {JOB_PUBLISHING, JOB_STUCK},    {JOB_PUBLISHING, JOB_DONE},
    {JOB_STUCK, JOB_DONE},
};

static bool on_map(job_state_t from, job_state_t to)
{
    for (size_t i = 0; i < sizeof(moves) / sizeof(moves[0]); i++) {
        if (moves[i][0] == from && moves[i][1] == to)
            return true;
    }
    return false;
}

static void test_only_the_map_is_legal(void **state)
{
    int legal = 0;
    for (int from = JOB_RECEIVED; from <= JOB_DONE; from++) {
        for (int to = JOB_RECEIVED; to <= JOB_DONE; to++) {
            bool want = on_map((job_state_t)from, (job_state_t)to);
            if (job_state_legal((job_state_t)from, (job_state_t)to) != want)
                fail_msg("%s -> %s: legal should be %d", job_state_str((job_state_t)from),
                         job_state_str((job_state_t)to), want);
            legal += want;
        }
    }
    assert_int_equal(legal, 10);
}

static void test_set_state_reports_started_changes(void **state)
{
    job_t *job = make(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}");
    assert_true(job_set_state(job, JOB_QUEUED) == false);
    assert_true(job_set_state(job, JOB_RUNNING)); /* started */
    assert_true(job_started(job));
    assert_true(job_set_state(job, JOB_BACKOFF)); /* no more */
    assert_false(job_started(job));
    assert_true(job_set_state(job, JOB_RUNNING));
    assert_false(job_set_state(job, JOB_PUBLISHING)); /* still started */
    assert_true(job_started(job));
    assert_true(job_set_state(job, JOB_STUCK));
    assert_false(job_set_state(job, JOB_DONE));
    assert_int_equal(job->state, JOB_DONE);
    job_free(job);
}

static void test_verdict_answers(void **state)
{
    job_t *job = make(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}");
    job_verdict_answer_t a;
    job_verdict_answer(job, &a);
    assert_int_equal(a.code, TALLY_ERR_NONE);
    assert_false(a.dlq);

    job->attempts = 5;
    job->verdict = JOB_VERDICT_INTERNAL_AFTER_RETRIES;
    job_verdict_answer(job, &a);
    assert_int_equal(a.code, TALLY_ERR_INTERNAL);
    assert_string_equal(a.message, "processing failed after 5 attempts");
    assert_true(a.dlq);

    job->verdict = JOB_VERDICT_INTERNAL_PERMANENT;
    job_verdict_answer(job, &a);
    assert_int_equal(a.code, TALLY_ERR_INTERNAL);
    assert_string_equal(a.message, "processing failed for a reason that a retry cannot change");
    assert_true(a.dlq);
    /* The envelope stays what the request said. */
    assert_int_equal(job->env.error, TALLY_ERR_UNKNOWN_TYPE);

    job->verdict = JOB_VERDICT_ACCOUNT_HELD;
    job_verdict_answer(job, &a);
    assert_int_equal(a.code, TALLY_ERR_ACCOUNT_HELD);
    assert_non_null(strstr(a.message, "holds this account"));
    assert_false(a.dlq); /* answered, audited, not dead-lettered */
    job_free(job);
}

/* A hold is judged each time the job runs: it gives a job without a
 * verdict account_held, a release takes that back, and an `internal`
 * verdict stays what it is. */
static void test_set_held(void **state)
{
    job_t *job = make(NULL, "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"x\",\"payload\":{}}");
    job_set_held(job, false);
    assert_int_equal(job->verdict, JOB_VERDICT_NONE);
    job_set_held(job, true);
    assert_int_equal(job->verdict, JOB_VERDICT_ACCOUNT_HELD);
    job_set_held(job, true);
    assert_int_equal(job->verdict, JOB_VERDICT_ACCOUNT_HELD);
    job_set_held(job, false);
    assert_int_equal(job->verdict, JOB_VERDICT_NONE);
    job->verdict = JOB_VERDICT_INTERNAL_AFTER_RETRIES;
    job_set_held(job, true);
    assert_int_equal(job->verdict, JOB_VERDICT_INTERNAL_AFTER_RETRIES);
    job_set_held(job, false);
    assert_int_equal(job->verdict, JOB_VERDICT_INTERNAL_AFTER_RETRIES);
    job_free(job);
}

static void test_names(void **state)
{
    assert_string_equal(job_state_str(JOB_RECEIVED), "received");
    assert_string_equal(job_state_str(JOB_BACKOFF), "backoff");
    assert_string_equal(job_state_str(JOB_DONE), "done");
    assert_string_equal(job_state_str((job_state_t)99), "unknown");
    assert_string_equal(job_verdict_str(JOB_VERDICT_NONE), "none");
    assert_string_equal(job_verdict_str(JOB_VERDICT_INTERNAL_AFTER_RETRIES),
                        "internal_after_retries");
    assert_string_equal(job_verdict_str(JOB_VERDICT_ACCOUNT_HELD), "account_held");
    assert_string_equal(job_verdict_str((job_verdict_t)99), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copies_and_decodes),
        cmocka_unit_test(test_new_keeps_timestamp_and_trace),
        cmocka_unit_test(test_set_held),
        cmocka_unit_test(test_unanswerable_has_its_dlq_reason),
        cmocka_unit_test(test_only_the_map_is_legal),
        cmocka_unit_test(test_set_state_reports_started_changes),
        cmocka_unit_test(test_verdict_answers),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
