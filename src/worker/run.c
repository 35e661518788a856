/* run — see worker/run.h. */
#include "worker/run.h"

#include "access/logs.h"
#include "access/outcome.h"
#include "common/clock.h"
#include "common/log.h"
#include "worker/answer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One run of a job: what its steps share. */
typedef struct run {
    access_session_t *s;
    job_t *job;
    const char *worker;
    int64_t t0;
    access_tx_t *tx; /* open until ended (NULL then) */
    access_error_t err;
    handler_error_t herr;
    /* The answer: a stored response text (malloc'd) and what it says. */
    char *stored;
    bool ok, replayed;
    tally_errcode_t code;
    const char *message, *field; /* of an answer decided before the job runs */
    job_verdict_answer_t verdict;
    /* When it was answered and how long it took: the same in the audit
     * row, the audit event and the result. */
    int64_t at_ms;
    double duration_ms;
} run_t;

void run_reset_outcome(job_t *job)
{
    free(job->result_text);
    free(job->audit_text);
    job->result_text = job->audit_text = NULL;
    job->ok = false;
    job->error_code = TALLY_ERR_NONE;
    job->replayed = false;
    job->fail_reason[0] = '\0';
}

static run_result_t infra(job_t *job, const char *step, const access_error_t *err)
{
    snprintf(job->fail_reason, sizeof(job->fail_reason), "%s: %.200s (%s%s%s)", step, err->message,
             access_status_str(err->status), err->sqlstate[0] ? " " : "", err->sqlstate);
    if (err->status == ACCESS_UNAVAILABLE)
        return RUN_LOST;
    /* A business status with an SQLSTATE is a class 22 or 23 failure
     * (sqlstate.h) of the worker's own bookkeeping: every attempt would fail
     * the same way. Without one it is a row count that differs (an outcome
     * another transaction stored first): a retry replays it. */
    if (!access_status_is_infra(err->status) && err->sqlstate[0] != '\0')
        return RUN_PERMANENT;
    return RUN_RETRY;
}

static void stamp(run_t *r)
{
    r->at_ms = clock_wall_ms();
    r->duration_ms = (double)(clock_mono_ns() - r->t0) / 1e6;
}

/* The audit event's fields, and the audit row's. */
static answer_audit_t audit_of(const run_t *r)
{
    return (answer_audit_t){.env = &r->job->env,
                            .ok = r->ok,
                            .error_code = r->code,
                            .replayed = r->replayed,
                            .at_ms = r->at_ms,
                            .duration_ms = r->duration_ms,
                            .worker = r->worker,
                            .partition = r->job->partition,
                            .offset = r->job->offset};
}

static access_status_t audit_row(run_t *r)
{
    answer_audit_t a = audit_of(r);
    access_log_entry_t e = {.request_id = a.env->id,
                            .type = a.env->type,
                            .status = a.ok ? "ok" : "error",
                            .error_code = a.ok ? NULL : tally_errcode_str(a.error_code),
                            .replayed = a.replayed,
                            .at_ms = a.at_ms,
                            .duration_ms = a.duration_ms,
                            .worker = a.worker,
                            .partition = a.partition,
                            .offset = a.offset};
    return access_logs_insert(r->tx, &e, &r->err);
}

/* Builds the texts to publish from the stored response. */
static run_result_t finish(run_t *r)
{
    job_t *job = r->job;
    answer_audit_t a = audit_of(r);
    job->result_text =
        r->stored != NULL ? answer_result(&job->env, r->stored, r->replayed, r->at_ms) : NULL;
    job->audit_text = answer_audit_event(&a);
    job->ok = r->ok;
    job->error_code = r->code;
    job->replayed = r->replayed;
    if (job->result_text == NULL || job->audit_text == NULL) {
        run_reset_outcome(job);
        snprintf(job->fail_reason, sizeof(job->fail_reason), "building the answer failed");
        return RUN_RETRY;
    }
    return RUN_ANSWERED;
}

/* Ends the tenant transaction (RELEASE; its writes may still travel with
 * the session's next message). When that fails the tx is over either way:
 * in a pipelined session a queued write (outcome, audit row) may have
 * failed, the tx was undone and the session goes on, so only this job runs
 * again; otherwise the session is unusable. */
static run_result_t end_tx(run_t *r)
{
    access_status_t st = access_tx_end(r->tx, &r->err);
    r->tx = NULL;
    if (st == ACCESS_OK)
        return RUN_ANSWERED;
    run_result_t rr = infra(r->job, "tx end", &r->err);
    return rr == RUN_LOST || !access_session_failed(r->s) ? rr : RUN_BROKEN;
}

/* The one rollback exit: undoes the open tenant transaction of a failed run
 * and ends it (not on a lost connection: the session is gone anyway). */
static run_result_t rollback(run_t *r, run_result_t rr)
{
    if (r->tx == NULL)
        return rr;
    if (rr != RUN_LOST) {
        access_error_t e2;
        access_status_t st = access_tx_rollback(r->tx, &e2);
        if (st == ACCESS_OK)
            st = access_tx_end(r->tx, &e2);
        if (st != ACCESS_OK)
            rr = st == ACCESS_UNAVAILABLE ? RUN_LOST : RUN_BROKEN;
    }
    r->tx = NULL;
    return rr;
}

/* Whether the answer is decided before the job runs: its verdict, an
 * envelope error, or a payload its type's schema refuses, in that order. */
static bool predecided(run_t *r)
{
    job_t *job = r->job;
    r->code = job->env.error;
    r->message = job->env.error_message;
    r->field = job->env.error_field;
    if (job->verdict != JOB_VERDICT_NONE) {
        r->code = r->verdict.code;
        r->message = r->verdict.message;
        r->field = "";
    } else if (r->code == TALLY_ERR_NONE &&
               !handler_validate(job->env.handler, job->env.payload, &r->herr)) {
        r->code = TALLY_ERR_INVALID_REQUEST;
        r->message = r->herr.message;
        r->field = r->herr.field;
    }
    return r->code != TALLY_ERR_NONE;
}

/* A decided answer: only its audit row is written. */
static run_result_t audit_only(run_t *r)
{
    r->stored = answer_stored_error(r->code, r->message, r->field);
    stamp(r);
    access_status_t st = audit_row(r);
    /* A verdict's answer goes out whatever becomes of its row: learn its
     * fate now, while the tx can still be rolled back alone. */
    if (st == ACCESS_OK && r->job->verdict != JOB_VERDICT_NONE)
        st = access_tx_flush(r->tx, &r->err);
    if (st != ACCESS_OK)
        return infra(r->job, "audit row", &r->err);
    return end_tx(r);
}

/* Settles what the handler did (hs, result) for an id the probe found
 * new; on an answer to keep, stores the outcome. */
static run_result_t execute(run_t *r, const char *canonical, handler_status_t hs,
                            const json_t *result)
{
    job_t *job = r->job;
    switch (hs) {
    case HANDLER_OK:
        r->ok = true;
        r->stored = answer_stored_ok(result);
        break;
    case HANDLER_REJECTED:
        r->code = r->herr.code;
        r->stored = answer_stored_error(r->code, r->herr.message, r->herr.field);
        if (access_tx_rollback(r->tx, &r->err) != ACCESS_OK)
            return infra(job, "rollback", &r->err);
        break;
    case HANDLER_RETRY:
    case HANDLER_FAILED:
        snprintf(job->fail_reason, sizeof(job->fail_reason), "%s: %.200s",
                 hs == HANDLER_RETRY ? "transient" : "failed", r->herr.message);
        return RUN_RETRY;
    case HANDLER_UNAVAILABLE:
        snprintf(job->fail_reason, sizeof(job->fail_reason), "connection lost: %.200s",
                 r->herr.message);
        return RUN_LOST;
    }
    if (r->stored == NULL) {
        snprintf(job->fail_reason, sizeof(job->fail_reason), "out of memory");
        return RUN_RETRY;
    }
    if ((r->ok || tally_errcode_is_stored(r->code)) &&
        access_outcome_store(r->tx, job->env.id, job->env.type, canonical, r->stored, &r->err) !=
            ACCESS_OK)
        return infra(job, "outcome store", &r->err);
    return RUN_ANSWERED;
}

/* The id was used before (the probe found prior, or another type or
 * payload): whatever the handler did is undone, and the stored outcome is
 * replayed or the reuse refused. Takes prior. */
static run_result_t answer_used_id(run_t *r, access_outcome_kind_t kind, char *prior)
{
    job_t *job = r->job;
    if (access_tx_rollback(r->tx, &r->err) != ACCESS_OK) {
        free(prior);
        return infra(job, "rollback", &r->err);
    }
    if (kind == ACCESS_OUTCOME_MISMATCH) {
        free(prior);
        r->code = TALLY_ERR_IDEMPOTENCY_CONFLICT;
        r->stored = answer_stored_error(r->code,
                                        "this id was already used in this account with another "
                                        "type or payload",
                                        "id");
        return RUN_ANSWERED;
    }
    r->stored = prior;
    r->replayed = true;
    if (!answer_stored_status(r->stored, &r->ok, &r->code)) {
        snprintf(job->fail_reason, sizeof(job->fail_reason), "stored outcome is unreadable");
        return RUN_RETRY;
    }
    return RUN_ANSWERED;
}

/* Probes the id and runs the handler in the same round trip (the probe
 * travels with the handler's first statement), then replays its stored
 * outcome or refuses a reused id — undoing what the handler did — or keeps
 * the handler's answer, whose stored outcome holds the key; writes the
 * audit row. A replay thus costs a handler run that is rolled back; a new
 * request, the common case, one round trip less. */
static run_result_t claim_and_run(run_t *r)
{
    job_t *job = r->job;
    char *canonical = json_dumps(job->env.payload, JSON_SORT_KEYS | JSON_COMPACT);
    run_result_t rr;
    /* One write per outcome: a probe, then the store after the handler; a
     * concurrent processor of the same key makes the store fail, which
     * undoes this attempt, and the retry replays (access/outcome.h). */
    if (access_outcome_probe_send(r->tx, job->env.id, job->env.type, canonical, &r->err) !=
        ACCESS_OK) {
        rr = infra(job, "outcome probe", &r->err);
    } else {
        json_t *result = NULL;
        handler_status_t hs =
            handler_execute(job->env.handler, r->tx, job->env.payload, &result, &r->herr);
        access_outcome_kind_t kind;
        char *prior = NULL;
        if (access_outcome_probe_take(r->tx, &kind, &prior, &r->err) != ACCESS_OK) {
            rr = infra(job, "outcome probe", &r->err);
        } else if (kind != ACCESS_OUTCOME_NEW && hs != HANDLER_UNAVAILABLE) {
            rr = answer_used_id(r, kind, prior);
        } else {
            free(prior);
            rr = execute(r, canonical, hs, result);
        }
        json_decref(result);
    }
    free(canonical);
    if (rr != RUN_ANSWERED)
        return rr;
    stamp(r);
    if (audit_row(r) != ACCESS_OK)
        return infra(job, "audit row", &r->err);
    return end_tx(r);
}

/* A verdict's answer, built even when its audit row failed (gone: the
 * session went with it). */
static run_result_t answer_anyway(run_t *r, bool gone)
{
    job_t *job = r->job;
    log_warn("audit row of a decided answer failed", JOB_LOG_FIELDS(job),
             LOG_S("verdict", job_verdict_str(job->verdict)), LOG_S("error", job->fail_reason));
    free(r->stored);
    r->stored = answer_stored_error(r->verdict.code, r->verdict.message, "");
    r->ok = r->replayed = false;
    r->code = r->verdict.code;
    stamp(r);
    run_result_t rr = finish(r);
    return rr == RUN_ANSWERED && gone ? RUN_ANSWERED_LOST : rr;
}

run_result_t run_job(access_session_t *s, job_t *job, const char *worker)
{
    run_t r = {.s = s, .job = job, .worker = worker, .t0 = clock_mono_ns()};
    run_result_t rr;
    run_reset_outcome(job);
    job_verdict_answer(job, &r.verdict);
    if (access_tx_begin(s, &job->env.account, &r.tx, &r.err) != ACCESS_OK) {
        r.tx = NULL;
        /* A session whose savepoint could not be set is not to be trusted
         * with the rest of the batch. */
        rr = infra(job, "tx begin", &r.err) == RUN_LOST ? RUN_LOST : RUN_BROKEN;
    } else {
        rr = predecided(&r) ? audit_only(&r) : claim_and_run(&r);
    }
    if (rr != RUN_ANSWERED)
        rr = rollback(&r, rr);
    if (rr != RUN_ANSWERED && job->verdict != JOB_VERDICT_NONE)
        rr = answer_anyway(&r, rr == RUN_LOST || rr == RUN_BROKEN);
    else if (rr == RUN_ANSWERED)
        rr = finish(&r);
    free(r.stored);
    return rr;
}

void run_make_internal(job_t *job)
{
    log_error("request failed in a way no retry can change: answering internal",
              JOB_LOG_FIELDS(job), LOG_S("error", job->fail_reason));
    job->verdict = JOB_VERDICT_INTERNAL_PERMANENT;
}
