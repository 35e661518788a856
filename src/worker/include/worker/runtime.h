/* runtime — the worker's event loop: Kafka in and out, scheduling, flow
 * control, rebalances, database outages, shutdown.
 *
 * One libuv loop thread owns everything here and never blocks (except in
 * the final shutdown steps: flush, commit, close); database work runs on
 * the executors (exec.h). Partitions, flow control and rebalances are in
 * parts.h; settle.h is the one place that turns a job's outcome into
 * publish / retry / dead-letter / offset commit. */
#ifndef TALLY_WORKER_RUNTIME_H
#define TALLY_WORKER_RUNTIME_H

#include "worker/config.h"
#include "pool/pool.h"

/* Runs the worker until SIGTERM/SIGINT (returns 0 after a clean drain) or a
 * fatal error (returns 1). pool is borrowed. At the drain's deadline running
 * statements are cancelled; an executor that still does not stop within
 * EXEC_STOP_GRACE_MS is left behind, and then *pool_in_use is true: the
 * caller must not free the pool, only exit. The calling thread becomes
 * the loop's.
 * @thread main */
int runtime_run(const config_t *cfg, pool_t *pool, const char *worker_name, bool *pool_in_use);

#endif
