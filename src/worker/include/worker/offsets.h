/* offsets — the in-flight offsets of one partition and its commit point.
 *
 * Offsets are tracked in the order they were consumed (increasing, not
 * necessarily contiguous: compaction and transaction markers leave gaps).
 * A finished offset is marked done; the commit point is one past the end of
 * the contiguous done prefix, the offset to store with rd_kafka_offsets_store.
 * So an offset is committed only when it and everything before it finished.
 *
 * Pure and single-threaded (the loop thread owns it). */
#ifndef TALLY_WORKER_OFFSETS_H
#define TALLY_WORKER_OFFSETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct offsets offsets_t;

/* A new record; offsets_free(NULL) is a no-op.
 * @thread loop
 * @thread loop */
offsets_t *offsets_new(void);
void offsets_free(offsets_t *o);

/* Starts tracking offset. Returns 0, or -1 when offset is not greater than
 * every offset tracked so far (a redelivery the caller must not process
 * twice).
 * @thread loop */
int offsets_track(offsets_t *o, int64_t offset);

/* Marks a tracked offset done. Returns false when it is not tracked.
 * @thread loop */
bool offsets_done(offsets_t *o, int64_t offset);

/* Drops the contiguous done prefix. Returns true and sets *next to one past
 * the last dropped offset when the prefix was not empty.
 * @thread loop */
bool offsets_advance(offsets_t *o, int64_t *next);

/* Tracked offsets not yet dropped (done or not).
 * @thread loop */
size_t offsets_in_flight(const offsets_t *o);

/* The first offset not done: the oldest tracked one not done, else one past
 * the highest tracked (everything taken is done), else -1 (nothing taken).
 * The consumer lag counts from here.
 * @thread loop */
int64_t offsets_first_open(const offsets_t *o);

/* The highest offset ever tracked, or -1.
 * @thread loop */
int64_t offsets_last(const offsets_t *o);

#endif
