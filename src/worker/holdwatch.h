/* holdwatch — the loop's view of an operator's holds (holds.h;
 * CONTRACT.md §7): reading them, and hearing at once when they change.
 *
 * Reading: a TASK_HOLDS on an idle executor (access_holds_read through the
 * pool: one round trip) HOLDS_REFRESH_MS after the last one came back, at
 * the loop's next turn (the one-second tick at least: 1-2 s when idle),
 * and at once when the
 * LISTEN connection hears of a change or comes back. No batch is
 * dispatched while the set the executors check is older than
 * HOLDS_STALE_MS (at start: before the first read), and an executor stops
 * a batch at the first request it would run against an older set
 * (batch.c), so a request never runs against holds older than that,
 * whatever became of the LISTEN connection: that bounds how long after a
 * hold a worker may still apply a request of the held account
 * (docs/OPERATIONS.md › Holds).
 *
 * Hearing: a connection of its own (pool_connect_aside, application_name
 * tally-worker-listen), opened on libuv's thread pool (libpq resolves host
 * names blocking), then driven without blocking from the loop: uv_poll on
 * PQsocket, LISTEN, PQconsumeInput, PQnotifies. A lost one is opened again
 * after a backoff (250 ms doubling to 5 s); the periodic read carries the
 * holds meanwhile. Behind a transaction-pooling pooler notifications do not
 * arrive (LISTEN needs a session); the periodic read does.
 *
 * A schema without holds (migration 0007 not applied) or a role that may
 * not read them is logged once, as an error, and the worker runs without
 * holds.
 *
 * Loop thread, every function. */
#ifndef TALLY_WORKER_HOLDWATCH_H
#define TALLY_WORKER_HOLDWATCH_H

#include "runtime_internal.h"

#define HOLDS_REFRESH_MS 1000
#define HOLDS_RETRY_MS   500 /* after a failed read */

/* Starts listening and reading.
 * @thread loop */
void holdwatch_start(runtime_t *rt);

/* Posts a read when one is due and an executor is idle. Returns whether
 * batches may be dispatched: the holds are current (holds_current).
 * @thread loop */
bool holdwatch_dispatch(runtime_t *rt, int64_t now);

/* A TASK_HOLDS came back: the new set, or why not.
 * @thread loop */
void holdwatch_task_done(runtime_t *rt, task_t *t);

/* Closes the connection and the timer (the loop's end).
 * @thread loop */
void holdwatch_close(runtime_t *rt);

/* Frees what is left, after the loop ran.
 * @thread loop */
void holdwatch_free(runtime_t *rt);

#endif
