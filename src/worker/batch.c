/* batch — see worker/batch.h. */
#include "worker/batch.h"

#include "access/session.h"
#include "common/mem.h"
#include "pool/pooler.h"
#include "worker/run.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOBODY    SIZE_MAX
#define CANCELLED "cancelled at the shutdown deadline"

/* One batch on its way through its session. */
typedef struct batch {
    task_t *t;
    const task_env_t *env;
    pool_conn_t *conn;
    access_session_t *s; /* NULL once committed */
    /* tx_of[i]: the number of job i's tenant transaction in the session, to
     * find the job whose carried writes failed the session later. */
    unsigned *tx_of;
    size_t answered;
} batch_t;

static void requeue(job_t *job)
{
    run_reset_outcome(job);
    job->status = JOB_REQUEUE;
}

/* Nothing of the batch is any job's fault: all run again, uncounted. */
static void requeue_all(task_t *t, const char *why)
{
    snprintf(t->error, sizeof(t->error), "%s", why);
    for (size_t i = 0; i < t->njobs; i++)
        requeue(t->jobs[i]);
}

/* Borrows a connection and begins the session; false when the batch
 * cannot start. */
static bool open_session(batch_t *b)
{
    task_t *t = b->t;
    char why[256];
    access_error_t aerr;
    if (task_cancelled(b->env)) {
        requeue_all(t, CANCELLED);
        return false;
    }
    if (pool_acquire(b->env->pool, &b->conn, why, sizeof(why)) != 0) {
        t->db_unavailable = true; /* nothing ran, nothing counts as an attempt */
        requeue_all(t, why);
        return false;
    }
    /* Pipelined: a request costs one round trip (its statement, with the
     * previous request's outcome and audit row and its own probe in
     * front), the batch two more (the last writes, COMMIT). */
    if (access_session_begin_pipelined(b->conn, &b->s, &aerr) != ACCESS_OK) {
        snprintf(why, sizeof(why), "session: %.200s", aerr.message);
        t->db_unavailable = aerr.status == ACCESS_UNAVAILABLE;
        requeue_all(t, why);
        pool_conn_mark_broken(b->conn);
        pool_release(b->env->pool, b->conn);
        return false;
    }
    b->tx_of = mem_calloc(t->njobs, sizeof(*b->tx_of));
    task_hold(b->env, b->conn);
    return true;
}

/* The holds were not read for too long (holds.h): jobs from first on run
 * again, uncounted, once they are; those answered before commit. */
static void stale_holds(task_t *t, size_t first)
{
    snprintf(t->error, sizeof(t->error), "the holds were not read for %d ms", HOLDS_STALE_MS);
    for (size_t k = first; k < t->njobs; k++)
        requeue(t->jobs[k]);
}

/* Whether the session went with this result. */
static bool session_lost(run_result_t rr)
{
    return rr == RUN_LOST || rr == RUN_BROKEN || rr == RUN_ANSWERED_LOST;
}

/* Runs job i; while the session goes on, sets its status. */
static run_result_t run_one(batch_t *b, size_t i)
{
    job_t *job = b->t->jobs[i];
    /* An operator's hold as the worker knows it now (holds.h), judged at
     * each run: a hold that landed while the job waited stops it. */
    job_set_held(job, task_held(b->env, job->env.account.id));
    unsigned before = access_session_tx_count(b->s);
    run_result_t rr = run_job(b->s, job, b->env->worker);
    if (rr == RUN_PERMANENT) {
        /* Its tx was rolled back alone: answer it in this batch. */
        run_make_internal(job);
        rr = run_job(b->s, job, b->env->worker);
    }
    if (access_session_tx_count(b->s) > before)
        b->tx_of[i] = access_session_tx_count(b->s);
    if (!session_lost(rr)) {
        job->status = rr == RUN_ANSWERED ? JOB_ANSWERED : JOB_RETRY;
        b->answered += rr == RUN_ANSWERED;
    }
    return rr;
}

/* What becomes of the job that was running when its connection was lost
 * (pooler: a pooler fault). Nothing it did can be blamed, so it runs again
 * uncounted — unless it was running at more than BATCH_LOSSES_FREE losses,
 * which points at the job itself (it crashes its backend). */
static job_exec_status_t lost(job_t *job, bool pooler)
{
    if (pooler || ++job->losses <= BATCH_LOSSES_FREE)
        return JOB_REQUEUE;
    snprintf(job->fail_reason + strlen(job->fail_reason),
             sizeof(job->fail_reason) - strlen(job->fail_reason),
             " (connection lost while it ran, %d times)", job->losses);
    return JOB_RETRY;
}

/* The session is gone (rr; running: the job it went with, or NOBODY when
 * it went with the last writes). Who is to blame, decided once (batch.h):
 * the job of a failed carried write, else the running job unless the
 * connection was lost; every other job runs again, uncounted. */
static void session_gone(batch_t *b, size_t running, run_result_t rr, const char *why)
{
    task_t *t = b->t;
    snprintf(t->error, sizeof(t->error), "%s", why);
    t->db_unavailable = rr == RUN_LOST;
    t->pooler_fault = access_session_pooler_fault(b->s);
    size_t culprit = running;
    unsigned tx = rr == RUN_LOST ? 0 : access_session_failed_tx(b->s);
    for (size_t k = 0; tx != 0 && k < t->njobs; k++) {
        if (b->tx_of[k] == tx) {
            culprit = k;
            break;
        }
    }
    for (size_t k = 0; k < t->njobs; k++) {
        if (k != culprit || culprit != running)
            requeue(t->jobs[k]); /* the running culprit keeps its reason or answer */
    }
    if (culprit == NOBODY)
        return;
    job_t *job = t->jobs[culprit];
    if (culprit == running) {
        job->status = rr == RUN_ANSWERED_LOST ? JOB_ANSWERED
                      : rr == RUN_LOST        ? lost(job, t->pooler_fault)
                                              : JOB_RETRY;
        return;
    }
    /* A carried write: one attempt, or — when no retry changes the
     * failure — run again, not counted, to be answered `internal` at once. */
    snprintf(job->fail_reason, sizeof(job->fail_reason), "%s", t->error);
    job->status = JOB_RETRY;
    if (access_session_failed_permanently(b->s)) {
        run_make_internal(job);
        job->status = JOB_REQUEUE;
    }
}

/* COMMIT. Returns whether the connection is to be dropped. When it fails
 * nothing of the batch committed: every answered job is redone, counting an
 * attempt; a lost connection is not the jobs' fault (the commit may even
 * have happened: the redo then replays). */
static bool commit(batch_t *b)
{
    task_t *t = b->t;
    access_error_t aerr;
    access_status_t st = access_session_commit(b->s, &aerr);
    b->s = NULL; /* freed either way */
    if (st == ACCESS_OK)
        return false;
    bool lost_conn = aerr.status == ACCESS_UNAVAILABLE;
    snprintf(t->error, sizeof(t->error), "commit: %.200s", aerr.message);
    t->db_unavailable = lost_conn;
    t->pooler_fault = lost_conn && pool_pooler_sqlstate(aerr.sqlstate);
    for (size_t i = 0; i < t->njobs; i++) {
        job_t *job = t->jobs[i];
        if (job->status != JOB_ANSWERED)
            continue;
        run_reset_outcome(job);
        job->status = lost_conn ? JOB_REQUEUE : JOB_RETRY;
        snprintf(job->fail_reason, sizeof(job->fail_reason), "%s", t->error);
    }
    return lost_conn;
}

static void close_session(batch_t *b, bool drop_conn)
{
    task_hold(b->env, NULL);
    free(b->tx_of);
    if (b->s != NULL)
        access_session_abort(b->s);
    if (drop_conn)
        pool_conn_mark_broken(b->conn);
    pool_release(b->env->pool, b->conn);
}

void batch_run(task_t *t, const task_env_t *env)
{
    assert(t->kind == TASK_BATCH);
    batch_t b = {.t = t, .env = env};
    if (!open_session(&b))
        return;
    size_t i;
    run_result_t rr = RUN_ANSWERED;
    for (i = 0; i < t->njobs && !task_cancelled(env); i++) {
        if (!task_holds_current(env)) {
            stale_holds(t, i);
            break;
        }
        if (session_lost(rr = run_one(&b, i)))
            break;
    }
    bool drop_conn = true;
    access_error_t aerr;
    if (session_lost(rr)) {
        session_gone(&b, i, rr, rr == RUN_ANSWERED_LOST ? "session lost" : t->jobs[i]->fail_reason);
    } else if (task_cancelled(env)) {
        /* Nothing of the batch commits, and every request goes to the
         * partition's next owner (never `internal`). */
        requeue_all(t, CANCELLED);
    } else if (b.answered == 0) {
        drop_conn = false; /* nothing to commit */
    } else if (access_session_flush(b.s, &aerr) != ACCESS_OK) {
        /* The last job's writes travel on their own, before COMMIT. */
        char why[256];
        snprintf(why, sizeof(why), "%.200s", aerr.message);
        session_gone(&b, NOBODY, aerr.status == ACCESS_UNAVAILABLE ? RUN_LOST : RUN_BROKEN, why);
    } else {
        drop_conn = commit(&b);
    }
    close_session(&b, drop_conn);
}
