/* dbwatch — the loop's view of the database.
 *
 * An outage (a batch or a probe that could not reach the database, or a
 * connection pooler that loses prepared statements) pauses consumption
 * (rt->db_down; flow control pauses every partition) until a probe
 * succeeds: SELECT 1 at a jittered backoff of at most about 5 s, or after
 * a pooler fault the pooler check (pool/pooler.h), since SELECT 1 passes
 * through such a pooler. While idle the database is probed every
 * HEALTH_EVERY_MS; one not heard from for HEALTH_STALE_MS is not ready
 * (health.h). Stored outcomes are pruned a minute after start, then
 * hourly, on an idle executor.
 *
 * Loop thread, every function. */
#ifndef TALLY_WORKER_DBWATCH_H
#define TALLY_WORKER_DBWATCH_H

#include "runtime_internal.h"

/* A task came back from its executor: a batch (did the database answer
 * it?), a probe or a pruning.
 * @thread loop */
void dbwatch_task_done(runtime_t *rt, const task_t *t);

/* While the database is down: probes now, unless a probe runs or waits
 * out its backoff.
 * @thread loop */
void dbwatch_probe_down(runtime_t *rt);

/* Every tick: the idle health probe and pruning, when due.
 * @thread loop */
void dbwatch_tick(runtime_t *rt, int64_t now);

#endif
