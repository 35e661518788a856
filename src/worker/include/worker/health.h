/* health — the answers of the worker's HTTP endpoints, from a snapshot of
 * the runtime's state that the loop takes per request:
 *
 *   /livez, /healthz  200 "ok": the process and its loop are alive (no
 *                     dependency checks; no snapshot taken)
 *   /readyz           200 or 503 with a JSON body: ready when the database
 *                     answers (not down, heard from recently) and the worker
 *                     does not drain; not gated on partitions (CONTRACT §7):
 *                     a replica beyond the partition count is ready and says
 *                     partitions: 0, so a rollout that surges one pod, or an
 *                     autoscaler at the partition count, never waits for a
 *                     partition that will not come
 *   /metrics          the snapshot's gauges and the process's own figures
 *                     (procstat.h) set in metrics_t, then the Prometheus
 *                     text (metrics.h); the snapshot taken for it also
 *                     sets the per-partition consumer lag (for_metrics)
 *
 * Any other path is left untouched (the server answers 404). */
#ifndef TALLY_WORKER_HEALTH_H
#define TALLY_WORKER_HEALTH_H

#include "pool/pool.h"
#include "worker/http.h"
#include "worker/metrics.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct health_snapshot {
    bool for_metrics;  /* in: taken for /metrics (the lag series are set too) */
    bool db_down;      /* an outage stands: consumption paused, probing */
    bool pooler_fault; /* ...because a pooler loses prepared statements */
    bool db_stale;     /* the database was not heard from recently */
    bool draining;
    int partitions; /* assigned */
    int paused;     /* assigned and paused */
    int64_t in_flight;
    int64_t stuck_deliveries;
    double oldest_in_flight_s; /* the oldest unfinished request's age; 0 when none */
    int64_t held_accounts;
    pool_stats_t pool;
} health_snapshot_t;

/* Fills out with the runtime's state (the ctx given to health_answer). */
typedef void (*health_snapshot_cb)(void *ctx, health_snapshot_t *out);

/* Whether the database counts as up: /readyz's "database",
 * tally_database_up.
 * @thread any */
bool health_db_up(const health_snapshot_t *s);

/* Answers GET or HEAD of path into resp, calling snapshot(ctx, …) when the
 * answer needs the runtime's state.
 * @thread loop (the HTTP server's handler) */
void health_answer(const char *path, health_snapshot_cb snapshot, void *ctx, metrics_t *m,
                   http_response_t *resp);

#endif
