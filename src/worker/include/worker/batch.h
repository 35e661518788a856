/* batch — a batch of jobs of different accounts as one database
 * transaction (group commit): one pipelined session on one pooled
 * connection, each job its own tenant transaction in it (run.h), one COMMIT.
 *
 * Every job ends JOB_ANSWERED, JOB_RETRY (a failed attempt: it counts) or
 * JOB_REQUEUE (not its fault: it runs again, uncounted). When the batch
 * fails, who is to blame is decided in one place:
 *
 *   what failed                         the job at fault             the others
 *   cancelled (shutdown deadline),      nobody                       JOB_REQUEUE
 *     the database unreachable,
 *     BEGIN
 *   the holds not read for              nobody: the jobs not run yet JOB_REQUEUE;
 *     HOLDS_STALE_MS (holds.h)          run again, uncounted         answered ones commit
 *   the connection lost (or a pooler    nobody; the job running      JOB_REQUEUE
 *     fault) while a job ran            then counts only past
 *                                       BATCH_LOSSES_FREE losses
 *   a carried write of an earlier job   that job: JOB_RETRY, or when JOB_REQUEUE
 *     (access_session_failed_tx)        no retry changes it, answered
 *                                       `internal` at once
 *   a job's own statement broke the     the job running: JOB_RETRY   JOB_REQUEUE
 *     session                           (an `internal` answer stays)
 *   COMMIT                              every answered job counts    —
 *                                       (a lost connection: none)
 *
 * A job whose own statement failed while the session went on is JOB_RETRY
 * (its tenant transaction was rolled back alone); one that failed in a way
 * no retry changes is answered `internal` in the same batch. The task's
 * db_unavailable and pooler_fault say whether the database (or a pooler) was
 * at fault, error why. */
#ifndef TALLY_WORKER_BATCH_H
#define TALLY_WORKER_BATCH_H

#include "worker/task.h"

/* A lost connection is the database's failure, not the request's, and
 * counts no attempt; only a request that was running at more than this many
 * connection losses counts its further ones (a request that kills its
 * backend must end). A pooler fault never counts. */
#define BATCH_LOSSES_FREE 3

/* Runs the TASK_BATCH t (its jobs are the executor's until it completes).
 * @thread executor */
void batch_run(task_t *t, const task_env_t *env);

#endif
