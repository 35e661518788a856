/* metrics — the worker's Prometheus metrics, rendered in the text exposition
 * format (version 0.0.4) for GET /metrics.
 *
 * Every function is thread-safe: counters are updated from executor threads,
 * gauges from the loop thread, and the scrape renders a consistent snapshot
 * under one mutex. Every name but the standard process_* ones carries the
 * `tally_` prefix, and no label holds
 * an account id; label values come from bounded sets (job types, the
 * contract's error codes, pool states, the consumer's own topic partitions),
 * so the number of series stays bounded whatever the traffic:
 *
 *   tally_requests_total{type,status}        counter (type: a job type or "unknown";
 *                                             status: "ok" | "error")
 *   tally_request_errors_total{type,error_code} counter (error answers by code)
 *   tally_replays_total                      counter
 *   tally_dlq_messages_total{error_code}     counter
 *   tally_retries_total                      counter
 *   tally_request_duration_seconds{type}     histogram (_bucket{le}, _sum, _count)
 *   tally_in_flight_requests                 gauge
 *   tally_pool_connections{state}            gauge (idle | active | connecting)
 *   tally_paused_partitions                  gauge
 *   tally_database_up                        gauge (1: the database answers and no
 *                                             pooler fault stands; 0 otherwise)
 *   tally_stuck_deliveries                   gauge (failed for good, offset held)
 *   tally_consumer_lag{topic,partition}      gauge (messages)
 *   tally_request_age_seconds                histogram: the message's Kafka timestamp
 *                                             to the start of its processing
 *   tally_oldest_in_flight_seconds           gauge
 *   tally_assigned_partitions                gauge
 *   tally_held_accounts                      gauge (accounts an operator holds)
 *   tally_build_info{version}                gauge, always 1
 *   process_start_time_seconds, process_cpu_seconds_total,
 *   process_resident_memory_bytes, process_virtual_memory_bytes,
 *   process_open_fds, process_max_fds        the standard process metrics
 *                                             (procstat.h), once set */
#ifndef TALLY_WORKER_METRICS_H
#define TALLY_WORKER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct metrics metrics_t;

/* A new registry with every series at zero (never NULL: common/mem.h).
 * metrics_free(NULL) is a no-op.
 * @thread any
 * @thread any */
metrics_t *metrics_new(void);
void metrics_free(metrics_t *m);

/* One answered request. type outside the job-type registry (or NULL) counts
 * as "unknown"; status is "ok" or "error" (anything else counts as "error");
 * error_code (NULL or "" for ok answers) outside the contract's codes counts
 * as "other". seconds is the processing duration; replayed answers also
 * count in tally_replays_total.
 * @thread any */
void metrics_request_done(metrics_t *m, const char *type, const char *status,
                          const char *error_code, double seconds, bool replayed);

/* One message copied to the DLQ, by its tally-error-code. error_code outside
 * the contract's codes counts as "other".
 * @thread any */
void metrics_dlq(metrics_t *m, const char *error_code);

/* One transient failure that will be retried.
 * @thread any */
void metrics_retry(metrics_t *m);

/* @thread any */
void metrics_set_in_flight(metrics_t *m, int64_t n);
/* @thread any */
void metrics_set_paused_partitions(metrics_t *m, int64_t n);
/* @thread any */
void metrics_set_stuck_deliveries(metrics_t *m, int64_t n);
/* @thread any */
void metrics_set_pool(metrics_t *m, int idle, int active, int connecting);
/* @thread any */
void metrics_set_database_up(metrics_t *m, bool up);

/* How old a request was when its processing started: from its Kafka
 * timestamp to its first dispatch, in seconds (negative, from a producer
 * whose clock runs ahead, counts as 0).
 * @thread any */
void metrics_request_age(metrics_t *m, double seconds);

/* @thread any */
void metrics_set_oldest_in_flight(metrics_t *m, double seconds);
/* @thread any */
void metrics_set_assigned_partitions(metrics_t *m, int64_t n);
/* @thread any */
void metrics_set_held_accounts(metrics_t *m, int64_t n);

struct procstat;
/* The process_* figures (procstat.h); NULL leaves them out (/proc could
 * not be read).
 * @thread any */
void metrics_set_process(metrics_t *m, const struct procstat *ps);

/* Consumer lag of one assigned partition, as the scrape computes it;
 * metrics_clear_consumer_lag forgets every partition (before each scrape's
 * new values).
 * At most METRICS_MAX_LAG_SERIES partitions are kept; further ones are
 * ignored. */
#define METRICS_MAX_LAG_SERIES 1024
/* @thread any */
void metrics_set_consumer_lag(metrics_t *m, const char *topic, int32_t partition, int64_t lag);
/* @thread any */
void metrics_clear_consumer_lag(metrics_t *m);

/* Renders the exposition text into a malloc'd, NUL-terminated *out (the
 * caller frees it) of *len bytes. Returns 0, or -1 when the text cannot be
 * formatted (never for want of memory).
 * @thread any */
int metrics_render(metrics_t *m, char **out, size_t *len);

/* The Content-Type of metrics_render's text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
