/* run — one job of a batch as its own tenant transaction inside the batch's
 * session (batch.h), straight-line blocking code:
 *
 *   begin the tenant transaction (SAVEPOINT, the account)
 *   an answer decided before the job runs (its verdict, an envelope error,
 *     a payload its type's schema refuses):
 *       the audit row only
 *   otherwise probe the id (access_outcome_probe), then
 *       replay the stored outcome | refuse a reused id | run the handler
 *       and store its outcome (ok and the errors stored for replay; the
 *       store holds the key: a concurrent one fails this attempt)
 *     and write the audit row
 *   end the tenant transaction (RELEASE)
 *
 * Every failure leaves through one rollback (ROLLBACK TO SAVEPOINT, then
 * RELEASE), so a failed job's effects never stay behind in the session. A
 * verdict's answer (job.h) goes out even when its audit row cannot be
 * written. */
#ifndef TALLY_WORKER_RUN_H
#define TALLY_WORKER_RUN_H

#include "access/session.h"
#include "worker/job.h"

typedef enum run_result {
    RUN_ANSWERED,
    RUN_RETRY,
    RUN_PERMANENT,     /* a worker statement failed in a way no attempt would change */
    RUN_LOST,          /* the connection is gone (or a pooler fault): see batch.h */
    RUN_BROKEN,        /* the session is unusable (a failed rollback): counts an attempt */
    RUN_ANSWERED_LOST, /* a verdict's answer whose best-effort row went with the session */
} run_result_t;

/* Runs job in s. RUN_ANSWERED: result_text and audit_text are ready and its
 * tenant transaction ended (its writes may still travel with the session's
 * next message). Anything else: its transaction was rolled back (or the
 * session is gone) and fail_reason says why. A job with a verdict writes
 * only its audit row and is answered as its verdict says even without it.
 * @thread executor */
run_result_t run_job(access_session_t *s, job_t *job, const char *worker);

/* A worker statement of job failed in a way no retry changes (SQLSTATE
 * class 22 or 23): gives it the verdict JOB_VERDICT_INTERNAL_PERMANENT, so
 * that its next run answers `internal` (audit row, DLQ copy), as after its
 * last attempt, instead of failing every attempt first; logs why.
 * @thread executor */
void run_make_internal(job_t *job);

/* Drops what a previous run of job produced (answer texts, status).
 * @thread executor */
void run_reset_outcome(job_t *job);

#endif
