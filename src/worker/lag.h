/* lag — tally_consumer_lag, computed when /metrics is scraped: for every
 * assigned partition, its high watermark minus the first offset this
 * worker has not finished (offsets_first_open: what is committed, or about
 * to be, counts as done), never negative.
 *
 * The high watermark is librdkafka's cached one
 * (rd_kafka_get_watermark_offsets: a lock, no request), which every fetch
 * response refreshes. Two things the cache cannot tell are asked of the
 * broker off the loop, on libuv's thread pool (uv_queue_work), at most
 * once a second and never while draining: the high watermark of a
 * partition that is not being fetched (paused, or not fetched yet), with
 * rd_kafka_query_watermark_offsets, and the committed offset of a
 * partition from which nothing was taken since it was assigned, with
 * rd_kafka_committed — each with a short timeout, the whole round bounded
 * (LAG_ROUND_MS). The loop never waits for the broker here: it reads the
 * cache and the answers of the last round, and a round that is still
 * running is simply not started again. A partition whose figures are not
 * known yet (in the first moments after its assignment) has no series
 * until they are.
 *
 * Loop thread, every function. */
#ifndef TALLY_WORKER_LAG_H
#define TALLY_WORKER_LAG_H

#include "runtime_internal.h"

/* The longest a round of queries takes (then it stops asking). */
#define LAG_ROUND_MS 1500

/* Sets the lag series of metrics from the assignment as it is now; starts
 * a round of queries for what is not known (lag_tick).
 * @thread loop */
void lag_render(runtime_t *rt);

/* Starts a round of queries when one is due, wanted and none runs.
 * @thread loop */
void lag_tick(runtime_t *rt);

/* Cancels a round that has not started yet (at the loop's end; one that
 * runs ends within LAG_ROUND_MS).
 * @thread loop */
void lag_cancel(runtime_t *rt);

#endif
