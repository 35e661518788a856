/* settle — see worker/settle.h. */
#include "worker/settle.h"

#include "deliver.h"
#include "parts.h"
#include "runtime_internal.h"

#include "common/clock.h"
#include "common/log.h"

#include <assert.h>
#include <stdio.h>

settle_action_t settle_decide(const job_t *job, bool kept, int max_retries)
{
    assert(job->state == JOB_RUNNING);
    if (job->status == JOB_ANSWERED)
        return SETTLE_PUBLISH;
    if (!kept)
        return SETTLE_DROP;
    if (job->status == JOB_REQUEUE)
        return SETTLE_REQUEUE;
    return job->attempts + 1 >= max_retries ? SETTLE_GIVE_UP : SETTLE_BACKOFF;
}

#define SETTLE_NAME(name, text) text,
static const char *const action_names[] = {SETTLE_ACTION_MAP(SETTLE_NAME)};
#undef SETTLE_NAME

const char *settle_action_str(settle_action_t a)
{
    return (unsigned)a < sizeof(action_names) / sizeof(action_names[0]) ? action_names[(unsigned)a]
                                                                        : "unknown";
}

/* Answered: its result and audit event go out, with a DLQ copy when its
 * verdict says so. */
static void publish(runtime_t *rt, job_t *job)
{
    job_verdict_answer_t v;
    job_verdict_answer(job, &v);
    /* An `internal` answer is worth a warning; a held account's are not
     * (an operator asked for them, and a flood of them must not flood the
     * log). */
    log_emit(v.dlq ? LOG_WARN : LOG_DEBUG, "request answered", JOB_LOG_FIELDS(job),
             LOG_S("type", job->env.type),
             LOG_SOPT("error_code", job->ok ? NULL : tally_errcode_str(job->error_code)),
             LOG_SOPT("verdict",
                      job->verdict != JOB_VERDICT_NONE ? job_verdict_str(job->verdict) : NULL),
             LOG_B("replayed", job->replayed), LOG_END);
    metrics_request_done(rt->metrics, job->env.type[0] ? job->env.type : NULL,
                         job->ok ? "ok" : "error",
                         job->ok ? NULL : tally_errcode_str(job->error_code),
                         (double)(clock_mono_ns() - job->received_ns) / 1e9, job->replayed);
    parts_job_state(rt, job, JOB_PUBLISHING);
    if (v.dlq) /* before the result: a result that cannot go out needs no second copy */
        snprintf(job->dlq_reason, sizeof(job->dlq_reason), "%s", v.message);
    deliver_publish(rt, job, DELIVERY_RESULT);
    deliver_publish(rt, job, DELIVERY_AUDIT);
    if (v.dlq) {
        metrics_dlq(rt->metrics, tally_errcode_str(v.code));
        deliver_publish(rt, job, DELIVERY_DLQ);
    }
}

/* A failed attempt: counted; the last one gives the job its verdict. */
static void retry(runtime_t *rt, job_t *job, settle_action_t a, int64_t now)
{
    job->attempts++;
    metrics_retry(rt->metrics);
    if (a == SETTLE_GIVE_UP) {
        log_error("request failed after all attempts: answering internal", JOB_LOG_FIELDS(job),
                  LOG_I("attempts", job->attempts), LOG_S("error", job->fail_reason));
        job->verdict = JOB_VERDICT_INTERNAL_AFTER_RETRIES;
        parts_job_state(rt, job, JOB_QUEUED);
        sched_retry(rt->sched, &job->item, now, 0);
        return;
    }
    /* Its next attempt may wait a lock or statement timeout again: in a
     * batch of its own, no other account's request waits with it. */
    job->item.alone = true;
    int64_t delay = sched_backoff_equal_ms(job->attempts, ATTEMPT_BASE_MS, RETRY_CAP_MS, &rt->rng);
    log_warn("request will be retried", JOB_LOG_FIELDS(job), LOG_I("attempt", job->attempts),
             LOG_I("delay_ms", delay), LOG_S("error", job->fail_reason));
    parts_job_state(rt, job, JOB_BACKOFF);
    sched_retry(rt->sched, &job->item, now, delay);
}

void settle_job(runtime_t *rt, job_t *job)
{
    assert(runtime_on_loop(rt));
    bool kept =
        parts_job_current(rt, job) && !rt->parts[job->partition].revoking && !runtime_draining(rt);
    settle_action_t a = settle_decide(job, kept, rt->cfg->max_retries);
    switch (a) {
    case SETTLE_PUBLISH:
        sched_finish(rt->sched, &job->item);
        publish(rt, job);
        break;
    case SETTLE_DROP:
        /* Its partition is going away: not finished, so not committed; the
         * next owner runs it. */
        sched_finish(rt->sched, &job->item);
        parts_job_forget(rt, job);
        break;
    case SETTLE_REQUEUE:
        parts_job_state(rt, job, JOB_QUEUED);
        sched_retry(rt->sched, &job->item, runtime_now_ms(), 0);
        break;
    case SETTLE_BACKOFF:
    case SETTLE_GIVE_UP:
        retry(rt, job, a, runtime_now_ms());
        break;
    }
}
