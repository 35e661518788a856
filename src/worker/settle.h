/* settle — what happens to a job after an executor ran it, and to its
 * deliveries: the one place that turns an outcome into publish (result,
 * audit event, DLQ copy), retry with backoff, `internal` after the last
 * attempt, and the offset commit once the broker acknowledged everything.
 *
 * Every delivery is bounded (CONTRACT.md §3, §4): a transient failure is
 * produced again after a backoff at most TALLY_MAX_RETRIES times; a result
 * over 1 MiB is never produced; a result whose reply_to topic cannot take it
 * goes to the results topic (tally-reply-to, tally-reply-to-error headers);
 * a result the results topic refuses too is answered `internal` with a
 * short result and a DLQ copy of the request; a DLQ copy the DLQ refuses is
 * cut to fit (tally-dlq-key-size, tally-dlq-value-size, tally-dlq-cut-reason),
 * then sent without its value. A delivery that still fails is stuck: never
 * retried, counted (runtime_t.n_stuck: /readyz, tally_stuck_deliveries),
 * holding its offset uncommitted until its partition moves on, which
 * neither a drain nor a revocation waits for.
 *
 * Loop thread only. */
#ifndef TALLY_WORKER_SETTLE_H
#define TALLY_WORKER_SETTLE_H

#include "runtime_internal.h"

/* Acts on the executor's verdict (job->status). */
void settle_job(runtime_t *rt, job_t *job);

/* Produces one delivery of job (it counts in job->pending_acks). */
void settle_publish(runtime_t *rt, job_t *job, delivery_kind_t kind);

/* The producer's delivery report callback. */
void settle_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/* Lets go of stuck deliveries whose partition moved on (every tick). */
void settle_reap_stuck(runtime_t *rt);

/* Frees the deliveries waiting for a retry and the stuck ones (at exit). */
void settle_free_deliveries(runtime_t *rt);

#endif
