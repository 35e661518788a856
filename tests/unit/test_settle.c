/* test_settle — the settle decision (settle_decide): a job back from its
 * executor, its status, attempts and partition against TALLY_MAX_RETRIES,
 * give one action each. */
#include "worker/settle.h"

#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

/* A job as an executor hands it back. */
static job_t back(job_exec_status_t status, int attempts)
{
    job_t job;
    memset(&job, 0, sizeof(job));
    job.state = JOB_RUNNING;
    job.status = status;
    job.attempts = attempts;
    return job;
}

static void test_answered_is_published_whatever_else(void **state)
{
    for (int attempts = 0; attempts < 6; attempts++) {
        job_t job = back(JOB_ANSWERED, attempts);
        assert_int_equal(settle_decide(&job, true, 5), SETTLE_PUBLISH);
        /* Its partition going away does not withhold an answer. */
        assert_int_equal(settle_decide(&job, false, 5), SETTLE_PUBLISH);
        job.verdict = JOB_VERDICT_INTERNAL_AFTER_RETRIES;
        assert_int_equal(settle_decide(&job, true, 5), SETTLE_PUBLISH);
    }
}

static void test_requeue_never_counts(void **state)
{
    for (int attempts = 0; attempts < 10; attempts++) {
        job_t job = back(JOB_REQUEUE, attempts);
        assert_int_equal(settle_decide(&job, true, 5), SETTLE_REQUEUE);
        assert_int_equal(settle_decide(&job, false, 5), SETTLE_DROP);
    }
}

static void test_retry_backs_off_until_the_last_attempt(void **state)
{
    /* TALLY_MAX_RETRIES 5: attempts 1 to 4 back off, the 5th gives up. */
    for (int attempts = 0; attempts < 4; attempts++) {
        job_t job = back(JOB_RETRY, attempts);
        assert_int_equal(settle_decide(&job, true, 5), SETTLE_BACKOFF);
    }
    job_t job = back(JOB_RETRY, 4);
    assert_int_equal(settle_decide(&job, true, 5), SETTLE_GIVE_UP);
    /* Blamed again after its verdict (a carried write): still no more attempts. */
    job = back(JOB_RETRY, 5);
    job.verdict = JOB_VERDICT_INTERNAL_PERMANENT;
    assert_int_equal(settle_decide(&job, true, 5), SETTLE_GIVE_UP);
}

static void test_one_attempt_gives_up_at_once(void **state)
{
    job_t job = back(JOB_RETRY, 0);
    assert_int_equal(settle_decide(&job, true, 1), SETTLE_GIVE_UP);
}

static void test_a_partition_going_away_drops_a_retry(void **state)
{
    for (int attempts = 0; attempts < 6; attempts++) {
        job_t job = back(JOB_RETRY, attempts);
        assert_int_equal(settle_decide(&job, false, 5), SETTLE_DROP);
    }
}

static void test_names(void **state)
{
    assert_string_equal(settle_action_str(SETTLE_PUBLISH), "publish");
    assert_string_equal(settle_action_str(SETTLE_GIVE_UP), "give_up");
    assert_string_equal(settle_action_str((settle_action_t)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answered_is_published_whatever_else),
        cmocka_unit_test(test_requeue_never_counts),
        cmocka_unit_test(test_retry_backs_off_until_the_last_attempt),
        cmocka_unit_test(test_one_attempt_gives_up_at_once),
        cmocka_unit_test(test_a_partition_going_away_drops_a_retry),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
