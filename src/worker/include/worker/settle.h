/* settle — what becomes of a job when its executor hands it back: the one
 * place that turns the executor's outcome (job->status) into an action.
 *
 *   answered                    SETTLE_PUBLISH  result and audit event, and a
 *                                               DLQ copy when its verdict says
 *                                               so (deliver.h)
 *   partition going away, or    SETTLE_DROP     forgotten, uncommitted: the
 *     the worker drains                         partition's next owner runs it
 *   not its fault (requeue)     SETTLE_REQUEUE  back to the head of its
 *                                               account's queue, uncounted
 *   a failed attempt            SETTLE_BACKOFF  counted; its account waits out
 *                                               an equal-jitter backoff
 *   its last attempt failed     SETTLE_GIVE_UP  counted; verdict
 *                                               internal_after_retries, run
 *                                               again at once to be answered
 *
 * settle_decide is the decision, pure; settle_job carries it out. */
#ifndef TALLY_WORKER_SETTLE_H
#define TALLY_WORKER_SETTLE_H

#include "worker/job.h"

#include <stdbool.h>

typedef struct runtime runtime_t; /* the loop's state (runtime_internal.h) */

#define SETTLE_ACTION_MAP(X)                                                                       \
    X(PUBLISH, "publish")                                                                          \
    X(DROP, "drop")                                                                                \
    X(REQUEUE, "requeue")                                                                          \
    X(BACKOFF, "backoff")                                                                          \
    X(GIVE_UP, "give_up")

typedef enum settle_action {
#define SETTLE_ACTION_ENUM(name, text) SETTLE_##name,
    SETTLE_ACTION_MAP(SETTLE_ACTION_ENUM)
#undef SETTLE_ACTION_ENUM
} settle_action_t;

/* The action for a job back from its executor (state JOB_RUNNING): from its
 * status and attempts so far, whether its partition keeps it (kept: still
 * assigned in the generation it was consumed in, not being revoked, and the
 * worker not draining) and TALLY_MAX_RETRIES.
 * @thread any */
settle_action_t settle_decide(const job_t *job, bool kept, int max_retries);

/* Carries out settle_decide's action for job.
 * @thread loop */
void settle_job(runtime_t *rt, job_t *job);

/* Names for logs; never NULL.
 * @thread any */
const char *settle_action_str(settle_action_t a);

#endif
