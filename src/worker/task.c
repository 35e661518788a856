/* task — see worker/task.h. */
#include "worker/task.h"

#include "access/admin.h"
#include "access/holds.h"
#include "common/clock.h"
#include "common/mem.h"
#include "pool/pooler.h"
#include "worker/batch.h"

#include <stdio.h>
#include <stdlib.h>

task_t *task_new_batch(job_t **jobs, size_t n)
{
    task_t *t = mem_calloc(1, sizeof(*t));
    t->kind = TASK_BATCH;
    t->jobs = jobs;
    t->njobs = n;
    return t;
}

task_t *task_new_probe(bool pooler_check)
{
    task_t *t = mem_calloc(1, sizeof(*t));
    t->kind = TASK_PROBE;
    t->pooler_check = pooler_check;
    return t;
}

task_t *task_new_prune(int days)
{
    task_t *t = mem_calloc(1, sizeof(*t));
    t->kind = TASK_PRUNE;
    t->prune_days = days;
    return t;
}

task_t *task_new_holds(void)
{
    task_t *t = mem_calloc(1, sizeof(*t));
    t->kind = TASK_HOLDS;
    return t;
}

void task_free(task_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nheld; i++)
        free(t->held[i]);
    free(t->held);
    free(t->jobs);
    free(t);
}

bool task_held(const task_env_t *env, const char *account)
{
    return holds_held(env->holds, account);
}

bool task_holds_current(const task_env_t *env)
{
    return holds_current(env->holds, clock_mono_ns() / 1000000);
}

bool task_cancelled(const task_env_t *env)
{
    return env->cancelled != NULL && env->cancelled(env->arg);
}

void task_hold(const task_env_t *env, pool_conn_t *conn)
{
    if (env->hold != NULL)
        env->hold(env->arg, conn);
}

static void probe(task_t *t, const task_env_t *env)
{
    char err[256] = "";
    if (t->pooler_check) {
        int64_t t0 = clock_mono_ns();
        pool_pooler_result_t r = pool_pooler_check(env->pool, err, sizeof(err));
        t->latency_ms = (double)(clock_mono_ns() - t0) / 1e6;
        t->ok = r == POOL_POOLER_OK;
        t->pooler_fault = r == POOL_POOLER_FAULT;
    } else {
        t->ok = pool_health_check(env->pool, &t->latency_ms, err, sizeof(err)) == 0;
    }
    t->db_unavailable = !t->ok;
    snprintf(t->error, sizeof(t->error), "%s", err);
}

static void prune(task_t *t, const task_env_t *env)
{
    char err[256];
    pool_conn_t *conn = NULL;
    if (pool_acquire(env->pool, &conn, err, sizeof(err)) != 0) {
        snprintf(t->error, sizeof(t->error), "%s", err);
        return;
    }
    task_hold(env, conn);
    access_error_t aerr;
    if (!task_cancelled(env) &&
        access_admin_prune_outcomes(conn, t->prune_days, &t->pruned, &aerr) == ACCESS_OK)
        t->ok = true;
    else
        snprintf(t->error, sizeof(t->error), "%s",
                 task_cancelled(env) ? "cancelled at the shutdown deadline" : aerr.message);
    task_hold(env, NULL);
    pool_release(env->pool, conn);
}

static void read_holds(task_t *t, const task_env_t *env)
{
    char err[256];
    pool_conn_t *conn = NULL;
    if (pool_acquire(env->pool, &conn, err, sizeof(err)) != 0) {
        t->db_unavailable = true;
        snprintf(t->error, sizeof(t->error), "%s", err);
        return;
    }
    access_error_t aerr;
    access_status_t st = access_holds_read(conn, TASK_HOLDS_TIMEOUT_MS, &t->held, &t->nheld, &aerr);
    pool_release(env->pool, conn);
    t->ok = st == ACCESS_OK;
    t->no_holds = st == ACCESS_NOT_FOUND;
    t->db_unavailable = st == ACCESS_UNAVAILABLE;
    if (!t->ok)
        snprintf(t->error, sizeof(t->error), "%s", aerr.message);
}

void task_run(task_t *t, const task_env_t *env)
{
    switch (t->kind) {
    case TASK_BATCH:
        batch_run(t, env);
        break;
    case TASK_PROBE:
        probe(t, env);
        break;
    case TASK_PRUNE:
        prune(t, env);
        break;
    case TASK_HOLDS:
        read_holds(t, env);
        break;
    }
}
