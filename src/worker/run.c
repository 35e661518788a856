/* run — see run.h. */
#include "worker/run.h"

#include "access/logs.h"
#include "access/outcome.h"
#include "worker/answer.h"
#include "common/clock.h"
#include "common/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* When a job was answered and how long it took: the same in the audit row,
 * the audit event and the result. */
typedef struct stamp {
    int64_t at_ms;
    double duration_ms;
} stamp_t;

static stamp_t stamp_now(int64_t t0)
{
    return (stamp_t){clock_wall_ms(), (double)(clock_mono_ns() - t0) / 1e6};
}

/* Builds the texts to publish from the stored response. */
static run_result_t finish(job_t *job, const char *stored, bool ok, tally_errcode_t code,
                           bool replayed, const char *worker, stamp_t st)
{
    answer_audit_t a = {.env = &job->env,
                        .ok = ok,
                        .error_code = code,
                        .replayed = replayed,
                        .at_ms = st.at_ms,
                        .duration_ms = st.duration_ms,
                        .worker = worker,
                        .partition = job->partition,
                        .offset = job->offset};
    job->result_text = answer_result(&job->env, stored, replayed, st.at_ms);
    job->audit_text = answer_audit_event(&a);
    job->ok = ok;
    job->error_code = code;
    job->replayed = replayed;
    if (job->result_text == NULL || job->audit_text == NULL) {
        run_reset_outcome(job);
        snprintf(job->fail_reason, sizeof(job->fail_reason), "building the answer failed");
        return RUN_RETRY;
    }
    return RUN_ANSWERED;
}

static access_status_t audit_row(access_tx_t *tx, const job_t *job, bool ok, tally_errcode_t code,
                                 bool replayed, const char *worker, stamp_t st, access_error_t *err)
{
    access_log_entry_t e = {.request_id = job->env.id,
                            .type = job->env.type,
                            .status = ok ? "ok" : "error",
                            .error_code = ok ? NULL : tally_errcode_str(code),
                            .replayed = replayed,
                            .at_ms = st.at_ms,
                            .duration_ms = st.duration_ms,
                            .worker = worker,
                            .partition = job->partition,
                            .offset = job->offset};
    return access_logs_insert(tx, &e, err);
}

/* access_tx_end failed, and the tx is over either way. In a pipelined
 * session a queued write (outcome, audit row) may have failed: the tx was
 * undone and the session goes on, so only this job runs again. Otherwise the
 * session is unusable. */
static run_result_t ended_badly(const access_session_t *s, job_t *job, const access_error_t *err)
{
    run_result_t rr = infra(job, "tx end", err);
    return rr == RUN_LOST || !access_session_failed(s) ? rr : RUN_BROKEN;
}

/* The `internal` answer after the last attempt, built even without its audit row. */
static run_result_t answer_internal(job_t *job, const char *worker, int64_t t0, bool lost)
{
    char *stored = answer_stored_error(TALLY_ERR_INTERNAL, job->env.error_message, "");
    run_result_t rr = stored != NULL ? finish(job, stored, false, TALLY_ERR_INTERNAL, false, worker,
                                              stamp_now(t0))
                                     : RUN_RETRY;
    free(stored);
    if (rr == RUN_ANSWERED && lost)
        rr = RUN_ANSWERED_LOST;
    return rr;
}

run_result_t run_job(access_session_t *s, job_t *job, const char *worker)
{
    int64_t t0 = clock_mono_ns();
    access_error_t err;
    access_tx_t *tx = NULL;
    char *stored = NULL;
    char *canonical = NULL;
    json_t *result = NULL;
    run_result_t rr;
    run_reset_outcome(job);

    if (access_tx_begin(s, &job->env.account, &tx, &err) != ACCESS_OK) {
        if (job->final_internal)
            return answer_internal(job, worker, t0, true);
        /* A session whose savepoint could not be set is not to be trusted
         * with the rest of the batch. */
        return infra(job, "tx begin", &err) == RUN_LOST ? RUN_LOST : RUN_BROKEN;
    }

    tally_errcode_t code = job->env.error;
    const char *message = job->env.error_message;
    const char *field = job->env.error_field;
    handler_error_t herr = {0};
    if (code == TALLY_ERR_NONE && !handler_validate(job->env.handler, job->env.payload, &herr)) {
        code = TALLY_ERR_INVALID_REQUEST;
        message = herr.message;
        field = herr.field;
    }
    if (code != TALLY_ERR_NONE) {
        /* Decided without running the job: only the audit row is written. */
        stored = answer_stored_error(code, message, field);
        stamp_t at = stamp_now(t0);
        bool ended = false;
        access_status_t st = audit_row(tx, job, false, code, false, worker, at, &err);
        /* The `internal` answer goes out whatever becomes of its row: learn
         * its fate now, while the tx can still be rolled back alone. */
        if (st == ACCESS_OK && job->final_internal)
            st = access_tx_flush(tx, &err);
        if (st == ACCESS_OK) {
            st = access_tx_end(tx, &err);
            ended = true;
        }
        if (st != ACCESS_OK) {
            if (job->final_internal) {
                /* `internal` is answered even when its best-effort row fails. */
                log_warn("audit row of an internal answer failed",
                         LOG_S("account_id", job->env.account.id), LOG_S("request_id", job->env.id),
                         LOG_S("error", err.message));
                access_error_t e2;
                bool gone = ended ? access_session_failed(s)
                                  : access_tx_rollback(tx, &e2) != ACCESS_OK ||
                                        access_tx_end(tx, &e2) != ACCESS_OK;
                free(stored);
                return answer_internal(job, worker, t0, gone);
            }
            if (ended) {
                rr = ended_badly(s, job, &err);
                goto out;
            }
            rr = infra(job, "audit row", &err);
            goto rollback;
        }
        tx = NULL;
        rr = finish(job, stored, false, code, false, worker, at);
        goto out;
    }

    canonical = json_dumps(job->env.payload, JSON_SORT_KEYS | JSON_COMPACT);
    access_outcome_kind_t kind;
    char *prior = NULL;
    if (access_outcome_claim(tx, job->env.id, job->env.type, canonical, &kind, &prior, &err) !=
        ACCESS_OK) {
        rr = infra(job, "outcome claim", &err);
        goto rollback;
    }
    bool ok = false, replayed = false;
    if (kind == ACCESS_OUTCOME_STORED) {
        stored = prior;
        replayed = true;
        if (!answer_stored_status(stored, &ok, &code)) {
            snprintf(job->fail_reason, sizeof(job->fail_reason), "stored outcome is unreadable");
            rr = RUN_RETRY;
            goto rollback;
        }
    } else if (kind == ACCESS_OUTCOME_MISMATCH) {
        code = TALLY_ERR_IDEMPOTENCY_CONFLICT;
        stored = answer_stored_error(code,
                                     "this id was already used in this account with another "
                                     "type or payload",
                                     "id");
    } else {
        handler_status_t hs =
            handler_execute(job->env.handler, tx, job->env.payload, &result, &herr);
        switch (hs) {
        case HANDLER_OK:
            ok = true;
            stored = answer_stored_ok(result);
            break;
        case HANDLER_REJECTED:
            code = herr.code;
            stored = answer_stored_error(code, herr.message, herr.field);
            if (access_tx_rollback(tx, &err) != ACCESS_OK) {
                rr = infra(job, "rollback", &err);
                goto rollback;
            }
            break;
        case HANDLER_RETRY:
        case HANDLER_FAILED:
            snprintf(job->fail_reason, sizeof(job->fail_reason), "%s: %.200s",
                     hs == HANDLER_RETRY ? "transient" : "failed", herr.message);
            rr = RUN_RETRY;
            goto rollback;
        case HANDLER_UNAVAILABLE:
            snprintf(job->fail_reason, sizeof(job->fail_reason), "connection lost: %.200s",
                     herr.message);
            rr = RUN_LOST;
            goto rollback;
        }
        if (stored == NULL) {
            snprintf(job->fail_reason, sizeof(job->fail_reason), "out of memory");
            rr = RUN_RETRY;
            goto rollback;
        }
        if ((ok || tally_errcode_is_stored(code)) &&
            access_outcome_store(tx, job->env.id, job->env.type, canonical, stored, &err) !=
                ACCESS_OK) {
            rr = infra(job, "outcome store", &err);
            goto rollback;
        }
    }
    stamp_t at = stamp_now(t0);
    if (audit_row(tx, job, ok, code, replayed, worker, at, &err) != ACCESS_OK) {
        rr = infra(job, "audit row", &err);
        goto rollback;
    }
    if (access_tx_end(tx, &err) != ACCESS_OK) {
        tx = NULL;
        rr = ended_badly(s, job, &err);
        goto out;
    }
    tx = NULL;
    rr = finish(job, stored, ok, code, replayed, worker, at);
    goto out;

rollback:
    if (tx != NULL && rr != RUN_LOST) {
        access_error_t e2;
        access_status_t st = access_tx_rollback(tx, &e2);
        if (st == ACCESS_OK)
            st = access_tx_end(tx, &e2);
        if (st != ACCESS_OK)
            rr = st == ACCESS_UNAVAILABLE ? RUN_LOST : RUN_BROKEN;
        tx = NULL;
    }
    goto out;

out:
    json_decref(result);
    free(canonical);
    free(stored);
    return rr;
}

void run_make_internal(job_t *job)
{
    log_error("request failed in a way no retry can change: answering internal",
              LOG_S("account_id", job->env.account.id), LOG_S("request_id", job->env.id),
              LOG_S("error", job->fail_reason), LOG_I("partition", job->partition),
              LOG_I("offset", job->offset));
    job->final_internal = true;
    job->env.error = TALLY_ERR_INTERNAL;
    job->env.error_field[0] = '\0';
    snprintf(job->env.error_message, sizeof(job->env.error_message),
             "processing failed for a reason that a retry cannot change");
}
