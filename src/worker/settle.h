/* settle — what happens to a job after an executor ran it, and to its
 * deliveries: the one place that turns an outcome into publish (result,
 * audit event, DLQ copy), retry with backoff, `internal` after the last
 * attempt, and the offset commit once the broker acknowledged everything.
 *
 * Nothing is dropped: a failed delivery is produced again after a backoff
 * (the offset stays uncommitted meanwhile); a result whose reply_to topic
 * cannot take it goes to the results topic with tally-reply-to and
 * tally-reply-to-error headers; a DLQ copy the DLQ refuses (too large) goes
 * there without its value, with tally-dlq-value-omitted giving its size.
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

/* Marks job as started (in an executor or being published) or not. */
void settle_job_started(runtime_t *rt, job_t *job, bool started);

/* Forgets job (it is no longer in flight) and frees it. */
void settle_job_free(runtime_t *rt, job_t *job);

#endif
