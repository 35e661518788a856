/* job — see worker/job.h. */
#include "worker/job.h"

#include "common/clock.h"
#include "common/mem.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A NUL-terminated copy of n bytes. */
static char *copy(const void *p, size_t n)
{
    char *s = mem_alloc(n + 1);
    if (n > 0)
        memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

job_t *job_new(const job_source_t *src, const envelope_policy_t *policy)
{
    job_t *job = mem_calloc(1, sizeof(*job));
    job->state = JOB_RECEIVED;
    job->partition = src->partition;
    job->offset = src->offset;
    job->generation = src->generation;
    job->received_ns = clock_mono_ns();
    job->timestamp_ms = src->timestamp_ms;
    trace_from_headers(src->headers, &job->trace);
    if (src->key != NULL) {
        job->key = copy(src->key, src->key_len);
        job->key_len = src->key_len;
    }
    job->value = copy(src->value, src->value_len);
    job->value_len = src->value_len;
    if (envelope_decode(policy, job->key, job->key_len, job->value, job->value_len, &job->env) ==
        ENVELOPE_DLQ) {
        job->unanswerable = true;
        snprintf(job->dlq_reason, sizeof(job->dlq_reason), "%s", job->env.error_message);
    }
    return job;
}

void job_free(job_t *job)
{
    envelope_clear(&job->env);
    free(job->key);
    free(job->value);
    free(job->result_text);
    free(job->audit_text);
    free(job);
}

bool job_state_legal(job_state_t from, job_state_t to)
{
    switch (from) {
    case JOB_RECEIVED:
        return to == JOB_QUEUED || to == JOB_PUBLISHING;
    case JOB_QUEUED:
    case JOB_BACKOFF:
        return to == JOB_RUNNING;
    case JOB_RUNNING:
        return to == JOB_QUEUED || to == JOB_BACKOFF || to == JOB_PUBLISHING;
    case JOB_PUBLISHING:
        return to == JOB_STUCK || to == JOB_DONE;
    case JOB_STUCK:
        return to == JOB_DONE;
    case JOB_DONE:
        break;
    }
    return false;
}

bool job_started(const job_t *job)
{
    return job->state == JOB_RUNNING || job->state == JOB_PUBLISHING;
}

bool job_set_state(job_t *job, job_state_t to)
{
    assert(job_state_legal(job->state, to));
    bool was = job_started(job);
    job->state = to;
    return job_started(job) != was;
}

void job_verdict_answer(const job_t *job, job_verdict_answer_t *out)
{
    *out = (job_verdict_answer_t){.code = TALLY_ERR_INTERNAL, .dlq = true};
    switch (job->verdict) {
    case JOB_VERDICT_NONE:
        *out = (job_verdict_answer_t){.code = TALLY_ERR_NONE};
        break;
    case JOB_VERDICT_INTERNAL_AFTER_RETRIES:
        snprintf(out->message, sizeof(out->message), "processing failed after %d attempts",
                 job->attempts);
        break;
    case JOB_VERDICT_INTERNAL_PERMANENT:
        snprintf(out->message, sizeof(out->message),
                 "processing failed for a reason that a retry cannot change");
        break;
    case JOB_VERDICT_ACCOUNT_HELD:
        *out = (job_verdict_answer_t){.code = TALLY_ERR_ACCOUNT_HELD};
        snprintf(out->message, sizeof(out->message),
                 "an operator holds this account: nothing was applied; send the request again "
                 "after the hold is released");
        break;
    }
}

void job_set_held(job_t *job, bool held)
{
    if (held && job->verdict == JOB_VERDICT_NONE)
        job->verdict = JOB_VERDICT_ACCOUNT_HELD;
    else if (!held && job->verdict == JOB_VERDICT_ACCOUNT_HELD)
        job->verdict = JOB_VERDICT_NONE;
}

/* Names by value: the enums count from 0 in their lists' order. */
#define JOB_NAME(name, text) text,
static const char *const state_names[] = {JOB_STATE_MAP(JOB_NAME)};
static const char *const verdict_names[] = {JOB_VERDICT_MAP(JOB_NAME)};
#undef JOB_NAME

static const char *name_of(unsigned v, const char *const *names, size_t n)
{
    return v < n ? names[v] : "unknown";
}

const char *job_state_str(job_state_t s)
{
    return name_of((unsigned)s, state_names, sizeof(state_names) / sizeof(state_names[0]));
}

const char *job_verdict_str(job_verdict_t v)
{
    return name_of((unsigned)v, verdict_names, sizeof(verdict_names) / sizeof(verdict_names[0]));
}
