/* parts — the assigned partitions: their in-flight offsets, flow control
 * (pause/resume), and the cooperative rebalance protocol (assign at once;
 * on revoke, drop queued jobs, let started ones finish within the shutdown
 * timeout, commit, then unassign — deferred out of the callback, and
 * finished early when another revocation supersedes it).
 *
 * Loop thread only. */
#ifndef TALLY_WORKER_PARTS_H
#define TALLY_WORKER_PARTS_H

#include "runtime_internal.h"

/* The record of partition p (grown on demand); NULL when p < 0.
 * @thread loop */
part_t *parts_get(runtime_t *rt, int32_t p);

/* Whether job belongs to the current assignment of its partition.
 * @thread loop */
bool parts_job_current(runtime_t *rt, const job_t *job);

/* Forgets a partition (its generation moves on, so late completions of its
 * jobs no longer touch its offsets).
 * @thread loop */
void parts_release(runtime_t *rt, part_t *pt);

/* The jobs in flight: every live job is on the runtime's list and counts in
 * the read-ahead window (in_flight, in_flight_bytes, its partition's bytes)
 * from parts_job_add to parts_job_forget; a started one (job_started) also
 * counts in its partition's started. */

/* Puts a new job on the list.
 * @thread loop */
void parts_job_add(runtime_t *rt, job_t *job);

/* Moves job to a state (job_set_state), keeping the started counts.
 * @thread loop */
void parts_job_state(runtime_t *rt, job_t *job, job_state_t to);

/* Takes job off the list and frees it (not committed).
 * @thread loop */
void parts_job_forget(runtime_t *rt, job_t *job);

/* Every delivery of job was acknowledged: its offset is done (and the
 * partition's contiguous done prefix stored for commit); then forgets it.
 * @thread loop */
void parts_job_done(runtime_t *rt, job_t *job);

/* Drops queued (not started) jobs: all, or those of one partition.
 * @thread loop */
size_t parts_drop_queued(runtime_t *rt, bool all, int32_t partition);

/* Pauses and resumes partitions (flow.h), everything while the database is
 * down, draining, or a partition is being revoked.
 * @thread loop */
void parts_flow_apply(runtime_t *rt);

/* Commits the stored offsets of parts synchronously.
 * @thread loop */
void parts_commit(runtime_t *rt, const rd_kafka_topic_partition_list_t *parts);

/* Ends a revocation: commit (optionally), forget, unassign.
 * @thread loop */
void parts_finish_revoke(runtime_t *rt, rd_kafka_topic_partition_list_t *parts, bool commit);

/* Finishes a deferred revocation once its started jobs are done or its
 * deadline passed.
 * @thread loop */
void parts_check_revoke(runtime_t *rt);

/* Frees the partitions' records (at exit).
 * @thread loop */
void parts_free(runtime_t *rt);

/* The consumer's rebalance callback: assigned partitions start at once; a
 * revocation (cooperative) stops starting their jobs and is finished by the
 * step (parts_check_revoke); lost partitions, the eager protocol and the
 * last revocation at close are given up at once. From
 * rd_kafka_consumer_poll, or rd_kafka_consumer_close at the very end.
 * @thread loop */
void parts_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque);

#endif
