/* deliver — a job's deliveries (its result, audit event and DLQ copy) from
 * the producer to the broker's acknowledgement, and its offset once every
 * one of them is acknowledged (parts_job_done).
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
 * holding its offset uncommitted (the job JOB_STUCK) until its partition
 * moves on, which neither a drain nor a revocation waits for.
 *
 * Loop thread, every function. */
#ifndef TALLY_WORKER_DELIVER_H
#define TALLY_WORKER_DELIVER_H

#include "runtime_internal.h"

/* Produces one delivery of job (it counts in job->pending_acks).
 * @thread loop */
void deliver_publish(runtime_t *rt, job_t *job, delivery_kind_t kind);

/* The producer's delivery report callback (from rd_kafka_poll).
 * @thread loop */
void deliver_report_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);

/* Lets go of stuck deliveries whose partition moved on (every tick).
 * @thread loop */
void deliver_reap_stuck(runtime_t *rt);

/* Frees the deliveries waiting for a retry and the stuck ones (at exit).
 * @thread loop */
void deliver_free_all(runtime_t *rt);

#endif
