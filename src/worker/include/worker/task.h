/* task — one unit of database work that the loop hands to an executor
 * (exec.h), and what the executor reports back in it:
 *
 *   TASK_BATCH  jobs of different accounts in one transaction (batch.h): each
 *               job ends JOB_ANSWERED, JOB_RETRY or JOB_REQUEUE (job.h);
 *               db_unavailable says the database could not be reached or the
 *               connection was lost, pooler_fault that a connection pooler
 *               lost a prepared statement.
 *   TASK_PROBE  pool_health_check (SELECT 1), or with pooler_check
 *               pool_pooler_check: is the database back, and does the pooler
 *               keep prepared statements?
 *   TASK_PRUNE  access_admin_prune_outcomes: stored outcomes past retention.
 *   TASK_HOLDS  access_holds_read: the accounts an operator holds
 *               (holdwatch.h).
 *
 * The loop makes and frees tasks; between exec_post and
 * exec_take_completions only the executor touches one. */
#ifndef TALLY_WORKER_TASK_H
#define TALLY_WORKER_TASK_H

#include "pool/pool.h"
#include "worker/holds.h"
#include "worker/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum task_kind { TASK_BATCH, TASK_PROBE, TASK_PRUNE, TASK_HOLDS } task_kind_t;

typedef struct task {
    task_kind_t kind;
    job_t **jobs; /* TASK_BATCH: the batch (the array is the task's, the jobs are not) */
    size_t njobs;
    int prune_days;    /* TASK_PRUNE */
    bool pooler_check; /* TASK_PROBE: pool_pooler_check instead of SELECT 1 */
    /* Results. */
    bool db_unavailable; /* TASK_BATCH, TASK_PROBE, TASK_HOLDS: the database is unreachable */
    bool pooler_fault;   /* TASK_BATCH, TASK_PROBE: ...because a pooler lost prepared statements */
    bool ok;             /* TASK_PROBE, TASK_PRUNE, TASK_HOLDS: it worked */
    int64_t pruned;      /* TASK_PRUNE */
    char **held;         /* TASK_HOLDS, ok: the held accounts (the task's until taken) */
    size_t nheld;
    bool no_holds;     /* TASK_HOLDS: the schema has no holds or the role may not read them */
    double latency_ms; /* TASK_PROBE */
    char error[256];   /* why it failed, for the log (no secrets) */
    int executor;      /* which executor ran it */
    struct task *next; /* in exec's completion list */
} task_t;

/* What a task needs from the executor that runs it. */
typedef struct task_env {
    pool_t *pool;
    const char *worker; /* the worker's name, for audit rows and events */
    holds_t *holds;     /* the held accounts, checked as each job runs (NULL: none) */
    /* Whether the shutdown deadline passed (exec_cancel): stop at the next
     * request. NULL: never. */
    bool (*cancelled)(void *arg);
    /* The connection the task holds now (NULL: none), whose statement
     * exec_cancel may cancel. NULL: nobody cancels. */
    void (*hold)(void *arg, pool_conn_t *conn);
    void *arg;
} task_env_t;

/* New tasks. task_new_batch takes jobs (mem_alloc'd, n entries) as its own.
 * @thread loop */
task_t *task_new_batch(job_t **jobs, size_t n);
task_t *task_new_probe(bool pooler_check);
task_t *task_new_prune(int days);
task_t *task_new_holds(void);

/* Runs t and fills in its results (blocking: database work).
 * @thread executor */
void task_run(task_t *t, const task_env_t *env);

/* The longest a TASK_HOLDS read may take (statement and lock timeouts). */
#define TASK_HOLDS_TIMEOUT_MS 2000

/* Frees t and its job array, not the jobs. NULL is ignored.
 * @thread loop */
void task_free(task_t *t);

/* The hooks of env, NULL ones doing nothing.
 * @thread executor */
bool task_cancelled(const task_env_t *env);
void task_hold(const task_env_t *env, pool_conn_t *conn);

/* Whether an operator holds account, as env's holds say now.
 * @thread executor */
bool task_held(const task_env_t *env, const char *account);

/* Whether env's holds are current enough to run a request against
 * (holds_current).
 * @thread executor */
bool task_holds_current(const task_env_t *env);

#endif
