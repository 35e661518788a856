/* exec — the executor threads and their mailboxes: database work as
 * straight-line code, off the loop.
 *
 * N threads (N = TALLY_POOL_MAX), each holding at most one pooled connection
 * at a time. The loop hands an idle executor a task (task.h) through its
 * mailbox (mutex + condvar); the executor runs it (task_run), appends it to
 * the completion list (mutex) and wakes the loop with uv_async_send. At the
 * shutdown deadline exec_cancel cancels the statements still running. */
#ifndef TALLY_WORKER_EXEC_H
#define TALLY_WORKER_EXEC_H

#include "pool/pool.h"
#include "worker/holds.h"
#include "worker/task.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef struct exec exec_t;

typedef struct exec_config {
    pool_t *pool;
    int threads;
    const char *worker_name; /* for audit rows and events; copied */
    holds_t *holds;          /* the held accounts (task_env_t); NULL: none */
    uv_async_t *wake;        /* sent after each completion */
} exec_config_t;

/* Starts the executor threads. Returns NULL when a thread cannot be started.
 * @thread loop */
exec_t *exec_start(const exec_config_t *cfg);

/* The shutdown deadline: cancels the statement every busy executor runs
 * (PQcancel, sent from a helper thread so the caller never waits on the
 * server) and makes running batches stop at the next request: every job of
 * a cancelled batch ends JOB_REQUEUE and nothing of it commits. Tasks
 * posted later end at once, JOB_REQUEUE. Idempotent.
 * @thread loop */
void exec_cancel(exec_t *e);

/* Stops every thread after its current task, waiting at most timeout_ms
 * (negative: without limit), frees the executors and returns the
 * completions not yet taken (a list linked by next; the caller frees the
 * tasks and their jobs). When a thread is still running at the deadline,
 * *abandoned (may be NULL) becomes true, NULL is returned and nothing is
 * freed: the stuck thread may still touch its task, its jobs, the pool and
 * the wake handle, so the caller must leave those alone and exit.
 * @thread loop */
task_t *exec_stop(exec_t *e, int timeout_ms, bool *abandoned);

/* Index of an idle executor, or -1; how many are idle, busy.
 * @thread loop */
int exec_idle(const exec_t *e);
int exec_idle_count(const exec_t *e);
int exec_busy_count(const exec_t *e);

/* Hands task to the idle executor i (which then is busy until its
 * completion is taken).
 * @thread loop */
void exec_post(exec_t *e, int i, task_t *task);

/* Takes every finished task (a list linked by next), marking their
 * executors idle.
 * @thread loop */
task_t *exec_take_completions(exec_t *e);

#endif
