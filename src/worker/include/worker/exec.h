/* exec — the executor threads: database work as straight-line code.
 *
 * N threads (N = TALLY_POOL_MAX), each holding at most one pooled connection
 * at a time. The loop hands an idle executor a task through its mailbox
 * (mutex + condvar); the executor runs it and appends it to the completion
 * list (mutex) and wakes the loop with uv_async_send. Tasks:
 *
 *   EXEC_BATCH  jobs of different accounts in one transaction (group commit),
 *               a savepoint per job; each job ends JOB_ANSWERED, JOB_RETRY or
 *               JOB_REQUEUE (see job.h). db_unavailable says the database
 *               could not be reached or the connection was lost (then no
 *               job counts an attempt: see EXEC_LOSSES_FREE), pooler_fault
 *               that a connection pooler lost a prepared statement.
 *   EXEC_PROBE  pool_health_check, or with pooler_check pool_pooler_check:
 *               is the database back, and does the pooler keep prepared
 *               statements?
 *   EXEC_PRUNE  access_admin_prune_outcomes.
 *
 * Every job of a batch that reaches the database gets an audit row in the
 * same transaction as its effects and stored outcome; run.h runs one job,
 * exec.c the batch around it (one session, the culprit of a failed carried
 * write, COMMIT). */
#ifndef TALLY_WORKER_EXEC_H
#define TALLY_WORKER_EXEC_H

#include "worker/job.h"
#include "pool/pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

typedef enum exec_kind { EXEC_BATCH, EXEC_PROBE, EXEC_PRUNE } exec_kind_t;

typedef struct exec_task {
    exec_kind_t kind;
    job_t **jobs; /* EXEC_BATCH: the batch (owned by the task) */
    size_t njobs;
    int prune_days; /* EXEC_PRUNE */
    /* EXEC_PROBE: run pool_pooler_check instead of SELECT 1. */
    bool pooler_check;
    /* Results. */
    bool db_unavailable; /* EXEC_BATCH, EXEC_PROBE: the database is unreachable */
    bool pooler_fault;   /* EXEC_BATCH, EXEC_PROBE: ...because a pooler lost prepared statements */
    bool ok;             /* EXEC_PROBE, EXEC_PRUNE: it worked */
    int64_t pruned;      /* EXEC_PRUNE */
    double latency_ms;   /* EXEC_PROBE */
    char error[256];     /* why it failed, for the log (no secrets) */
    int executor;        /* which executor ran it */
    struct exec_task *next;
} exec_task_t;

typedef struct exec exec_t;

/* A lost connection is the database's failure, not the request's, and
 * counts no attempt; only a request that was running at more than this many
 * connection losses counts its further ones (a request that kills its
 * backend must end). A pooler fault never counts. */
#define EXEC_LOSSES_FREE 3

typedef struct exec_config {
    pool_t *pool;
    int threads;
    const char *worker_name; /* for audit rows and events; copied */
    uv_async_t *wake;        /* sent after each completion */
} exec_config_t;

/* Starts the executor threads. Returns NULL when a thread cannot be started. */
exec_t *exec_start(const exec_config_t *cfg);

/* The shutdown deadline: cancels the statement every busy executor runs
 * (PQcancel, sent from a helper thread so the caller never waits on the
 * server) and makes running batches stop at the next request: every job of
 * a cancelled batch ends JOB_REQUEUE and nothing of it commits. Tasks
 * posted later end at once, JOB_REQUEUE. Loop thread; idempotent. */
void exec_cancel(exec_t *e);

/* Stops every thread after its current task, waiting at most timeout_ms
 * (negative: without limit), frees the executors and returns the
 * completions not yet taken (a list linked by next; the caller frees the
 * tasks and their jobs). When a thread is still running at the deadline,
 * *abandoned (may be NULL) becomes true, NULL is returned and nothing is
 * freed: the stuck thread may still touch its task, its jobs, the pool and
 * the wake handle, so the caller must leave those alone and exit. */
exec_task_t *exec_stop(exec_t *e, int timeout_ms, bool *abandoned);

/* Index of an idle executor, or -1. Loop thread only. */
int exec_idle(const exec_t *e);
int exec_idle_count(const exec_t *e);
int exec_busy_count(const exec_t *e);

/* Hands task to the idle executor i (which then is busy until its
 * completion is taken). Loop thread only. */
void exec_post(exec_t *e, int i, exec_task_t *task);

/* Takes every finished task (a list linked by next), marking their
 * executors idle. Loop thread only. */
exec_task_t *exec_take_completions(exec_t *e);

/* Frees a task and its job array (not the jobs). */
void exec_task_free(exec_task_t *t);

#endif
