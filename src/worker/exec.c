#include "worker/exec.h"

#include "access/admin.h"
#include "access/session.h"
#include "common/clock.h"
#include "common/log.h"
#include "worker/run.h"
#include "pool/pooler.h"

#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct executor {
    exec_t *owner;
    int index;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    exec_task_t *task; /* mailbox: the task to run, NULL when none */
    bool stop;
    bool busy; /* loop thread's view: posted and not yet taken back */
    /* The cancel handle of the connection the task holds (NULL when none),
     * for exec_cancel. Its own lock: a PQcancel that hangs on a dead host
     * must not keep the executor's mailbox locked. */
    pthread_mutex_t cancel_lock;
    PGcancel *cancel;
} executor_t;

struct exec {
    pool_t *pool;
    char *worker_name;
    uv_async_t *wake;
    int n;
    executor_t *ex;
    pthread_mutex_t done_lock;
    exec_task_t *done_head, *done_tail;
    /* exec_cancel was called: batches stop at the next request. */
    atomic_bool cancelled;
    /* Threads still running (executors, and the canceller while it runs),
     * so that exec_stop can wait for them with a deadline. */
    pthread_mutex_t life_lock;
    pthread_cond_t life_cond;
    int alive;
    bool canceller;
    pthread_t canceller_thread;
};

/* ---- tasks ------------------------------------------------------------ */

/* The cancel handle of the connection an executor's task holds
 * (exec_cancel); NULL withdraws it. */
static void set_cancel(executor_t *x, pool_conn_t *conn)
{
    PGcancel *c = conn != NULL ? PQgetCancel(pool_conn_pg(conn)) : NULL;
    pthread_mutex_lock(&x->cancel_lock);
    PGcancel *old = x->cancel;
    x->cancel = c;
    pthread_mutex_unlock(&x->cancel_lock);
    PQfreeCancel(old);
}

static bool cancelled(const exec_t *e)
{
    return atomic_load(&e->cancelled);
}

static void set_all(exec_task_t *t, size_t from, job_exec_status_t st)
{
    for (size_t i = from; i < t->njobs; i++) {
        run_reset_outcome(t->jobs[i]);
        t->jobs[i]->status = st;
    }
}

/* The job of a carried write that failed the session (it ran earlier in the
 * batch): one attempt, or — when no retry changes the failure — run again,
 * not counted, to be answered `internal` at once. */
static void blame(const access_session_t *s, exec_task_t *t, size_t culprit)
{
    job_t *job = t->jobs[culprit];
    snprintf(job->fail_reason, sizeof(job->fail_reason), "%s", t->error);
    job->status = JOB_RETRY;
    if (access_session_failed_permanently(s)) {
        run_make_internal(job);
        job->status = JOB_REQUEUE;
    }
}

/* What becomes of the job that was running when its connection was lost
 * (pooler: a pooler fault). Nothing it did can be blamed, so it runs again
 * uncounted — unless it was running at more than EXEC_LOSSES_FREE losses,
 * which points at the job itself (it crashes its backend). */
static job_exec_status_t lost(job_t *job, bool pooler)
{
    if (pooler || ++job->losses <= EXEC_LOSSES_FREE)
        return JOB_REQUEUE;
    snprintf(job->fail_reason + strlen(job->fail_reason),
             sizeof(job->fail_reason) - strlen(job->fail_reason),
             " (connection lost while it ran, %d times)", job->losses);
    return JOB_RETRY;
}

/* The job whose carried writes failed the session (access_session_failed_tx),
 * or fallback when there is none. */
static size_t blamed(const access_session_t *s, const exec_task_t *t, const unsigned *tx_of,
                     size_t fallback)
{
    unsigned tx = access_session_failed_tx(s);
    for (size_t k = 0; tx != 0 && k < t->njobs; k++) {
        if (tx_of[k] == tx)
            return k;
    }
    return fallback;
}

static void run_batch(executor_t *x, exec_task_t *t)
{
    exec_t *e = x->owner;
    char err[256];
    pool_conn_t *conn = NULL;
    access_session_t *s = NULL;
    access_error_t aerr;
    if (cancelled(e)) {
        snprintf(t->error, sizeof(t->error), "cancelled at the shutdown deadline");
        set_all(t, 0, JOB_REQUEUE);
        return;
    }
    if (pool_acquire(e->pool, &conn, err, sizeof(err)) != 0) {
        /* Unreachable: nothing ran, nothing counts as an attempt. */
        snprintf(t->error, sizeof(t->error), "%s", err);
        t->db_unavailable = true;
        set_all(t, 0, JOB_REQUEUE);
        return;
    }
    /* Pipelined: a request costs two round trips (its claim, with the
     * previous request's outcome and audit row in front, and its
     * statement), the batch two more (the last writes, COMMIT). */
    if (access_session_begin_pipelined(conn, &s, &aerr) != ACCESS_OK) {
        snprintf(t->error, sizeof(t->error), "session: %.200s", aerr.message);
        t->db_unavailable = aerr.status == ACCESS_UNAVAILABLE;
        set_all(t, 0, JOB_REQUEUE);
        pool_conn_mark_broken(conn);
        pool_release(e->pool, conn);
        return;
    }
    /* tx_of[i]: the number of job i's tenant transaction in the session, to
     * find the job whose carried writes failed the session later. */
    unsigned *tx_of = calloc(t->njobs, sizeof(*tx_of));
    if (tx_of == NULL) {
        snprintf(t->error, sizeof(t->error), "out of memory");
        set_all(t, 0, JOB_REQUEUE);
        access_session_abort(s);
        pool_release(e->pool, conn);
        return;
    }
    set_cancel(x, conn);
    size_t answered = 0;
    for (size_t i = 0; i < t->njobs; i++) {
        job_t *job = t->jobs[i];
        if (cancelled(e))
            goto cancel;
        unsigned before = access_session_tx_count(s);
        run_result_t rr = run_job(s, job, e->worker_name);
        if (rr == RUN_PERMANENT) {
            /* Its tx was rolled back alone: answer it in this batch. */
            run_make_internal(job);
            rr = run_job(s, job, e->worker_name);
        }
        if (access_session_tx_count(s) > before)
            tx_of[i] = access_session_tx_count(s);
        if (rr == RUN_LOST || rr == RUN_BROKEN || rr == RUN_ANSWERED_LOST) {
            /* The session is gone. A lost connection or a pooler fault is
             * no request's doing: the running job goes by lost(). Otherwise
             * the running job counts an attempt or is answered (`internal`)
             * — unless an earlier job's carried writes broke the session:
             * then that one counts. The rest of the batch is redone without
             * counting. */
            snprintf(t->error, sizeof(t->error), "%s",
                     rr == RUN_ANSWERED_LOST ? "session lost" : job->fail_reason);
            t->db_unavailable = rr == RUN_LOST;
            t->pooler_fault = access_session_pooler_fault(s);
            size_t culprit = rr == RUN_LOST ? i : blamed(s, t, tx_of, i);
            for (size_t k = 0; k < t->njobs; k++) {
                if (k == i && culprit == i)
                    continue; /* keeps its reason, or its `internal` answer */
                run_reset_outcome(t->jobs[k]);
                t->jobs[k]->status = JOB_REQUEUE;
            }
            if (culprit == i)
                job->status = rr == RUN_ANSWERED_LOST ? JOB_ANSWERED
                              : rr == RUN_LOST        ? lost(job, t->pooler_fault)
                                                      : JOB_RETRY;
            else
                blame(s, t, culprit);
            goto abort;
        }
        job->status = rr == RUN_ANSWERED ? JOB_ANSWERED : JOB_RETRY;
        if (rr == RUN_ANSWERED)
            answered++;
    }
    if (cancelled(e))
        goto cancel;
    if (answered == 0) {
        set_cancel(x, NULL);
        access_session_abort(s);
        pool_release(e->pool, conn);
        free(tx_of);
        return;
    }
    /* The last job's writes travel on their own, before COMMIT. */
    if (access_session_flush(s, &aerr) != ACCESS_OK) {
        snprintf(t->error, sizeof(t->error), "%.200s", aerr.message);
        t->db_unavailable = aerr.status == ACCESS_UNAVAILABLE;
        t->pooler_fault = access_session_pooler_fault(s);
        /* A connection lost (or a pooler fault) blames nobody. */
        size_t culprit = t->db_unavailable ? t->njobs : blamed(s, t, tx_of, t->njobs);
        set_all(t, 0, JOB_REQUEUE);
        if (culprit < t->njobs)
            blame(s, t, culprit);
        goto abort;
    }
    free(tx_of);
    if (access_session_commit(s, &aerr) != ACCESS_OK) {
        /* Nothing of the batch committed: every answered job is redone; a
         * lost connection is not the jobs' fault (the commit may even have
         * happened: the redo then replays). */
        bool lost = aerr.status == ACCESS_UNAVAILABLE;
        snprintf(t->error, sizeof(t->error), "commit: %.200s", aerr.message);
        t->db_unavailable = lost;
        t->pooler_fault = lost && pool_pooler_sqlstate(aerr.sqlstate);
        for (size_t i = 0; i < t->njobs; i++) {
            job_t *job = t->jobs[i];
            if (job->status != JOB_ANSWERED)
                continue;
            run_reset_outcome(job);
            job->status = lost ? JOB_REQUEUE : JOB_RETRY;
            snprintf(job->fail_reason, sizeof(job->fail_reason), "%s", t->error);
        }
        if (lost)
            pool_conn_mark_broken(conn);
    }
    set_cancel(x, NULL);
    pool_release(e->pool, conn);
    return;

cancel:
    /* The shutdown deadline passed: nothing of the batch commits, and every
     * request goes to the partition's next owner (never `internal`). */
    snprintf(t->error, sizeof(t->error), "cancelled at the shutdown deadline");
    set_all(t, 0, JOB_REQUEUE);
abort:
    set_cancel(x, NULL);
    free(tx_of);
    access_session_abort(s);
    pool_conn_mark_broken(conn);
    pool_release(e->pool, conn);
}

static void run_prune(executor_t *x, exec_task_t *t)
{
    exec_t *e = x->owner;
    char err[256];
    pool_conn_t *conn = NULL;
    if (pool_acquire(e->pool, &conn, err, sizeof(err)) != 0) {
        snprintf(t->error, sizeof(t->error), "%s", err);
        return;
    }
    set_cancel(x, conn);
    access_error_t aerr;
    if (!cancelled(e) &&
        access_admin_prune_outcomes(conn, t->prune_days, &t->pruned, &aerr) == ACCESS_OK)
        t->ok = true;
    else
        snprintf(t->error, sizeof(t->error), "%s",
                 cancelled(e) ? "cancelled at the shutdown deadline" : aerr.message);
    set_cancel(x, NULL);
    pool_release(e->pool, conn);
}

static void run_probe(exec_t *e, exec_task_t *t)
{
    char err[256] = "";
    if (t->pooler_check) {
        int64_t t0 = clock_mono_ns();
        pool_pooler_result_t r = pool_pooler_check(e->pool, err, sizeof(err));
        t->latency_ms = (double)(clock_mono_ns() - t0) / 1e6;
        t->ok = r == POOL_POOLER_OK;
        t->pooler_fault = r == POOL_POOLER_FAULT;
    } else {
        t->ok = pool_health_check(e->pool, &t->latency_ms, err, sizeof(err)) == 0;
    }
    t->db_unavailable = !t->ok;
    snprintf(t->error, sizeof(t->error), "%s", err);
}

static void complete(exec_t *e, exec_task_t *t)
{
    t->next = NULL;
    pthread_mutex_lock(&e->done_lock);
    if (e->done_tail != NULL)
        e->done_tail->next = t;
    else
        e->done_head = t;
    e->done_tail = t;
    pthread_mutex_unlock(&e->done_lock);
    uv_async_send(e->wake);
}

static void *executor_main(void *arg)
{
    executor_t *x = arg;
    exec_t *e = x->owner;
    for (;;) {
        pthread_mutex_lock(&x->lock);
        while (x->task == NULL && !x->stop)
            pthread_cond_wait(&x->cond, &x->lock);
        exec_task_t *t = x->task;
        x->task = NULL;
        bool stop = x->stop;
        pthread_mutex_unlock(&x->lock);
        if (t == NULL && stop)
            break;
        t->executor = x->index;
        switch (t->kind) {
        case EXEC_BATCH:
            run_batch(x, t);
            break;
        case EXEC_PROBE:
            run_probe(e, t);
            break;
        case EXEC_PRUNE:
            run_prune(x, t);
            break;
        }
        complete(e, t);
    }
    pthread_mutex_lock(&e->life_lock);
    e->alive--;
    pthread_cond_broadcast(&e->life_cond);
    pthread_mutex_unlock(&e->life_lock);
    return NULL;
}

/* Frees what exec_start made; every thread has ended. */
static void exec_free(exec_t *e)
{
    for (int i = 0; i < e->n; i++) {
        pthread_mutex_destroy(&e->ex[i].lock);
        pthread_cond_destroy(&e->ex[i].cond);
        pthread_mutex_destroy(&e->ex[i].cancel_lock);
        PQfreeCancel(e->ex[i].cancel);
    }
    pthread_mutex_destroy(&e->done_lock);
    pthread_mutex_destroy(&e->life_lock);
    pthread_cond_destroy(&e->life_cond);
    free(e->ex);
    free(e->worker_name);
    free(e);
}

exec_t *exec_start(const exec_config_t *cfg)
{
    exec_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->pool = cfg->pool;
    e->worker_name = strdup(cfg->worker_name);
    e->wake = cfg->wake;
    e->ex = calloc((size_t)cfg->threads, sizeof(*e->ex));
    atomic_init(&e->cancelled, false);
    pthread_mutex_init(&e->done_lock, NULL);
    pthread_mutex_init(&e->life_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->life_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (e->ex == NULL || e->worker_name == NULL) {
        exec_free(e);
        return NULL;
    }
    for (int i = 0; i < cfg->threads; i++) {
        executor_t *x = &e->ex[i];
        x->owner = e;
        x->index = i;
        pthread_mutex_init(&x->lock, NULL);
        pthread_cond_init(&x->cond, NULL);
        pthread_mutex_init(&x->cancel_lock, NULL);
        e->n++;
        pthread_mutex_lock(&e->life_lock);
        e->alive++;
        pthread_mutex_unlock(&e->life_lock);
        if (pthread_create(&x->thread, NULL, executor_main, x) != 0) {
            pthread_mutex_lock(&e->life_lock);
            e->alive--;
            pthread_mutex_unlock(&e->life_lock);
            e->n--;
            pthread_mutex_destroy(&x->lock);
            pthread_cond_destroy(&x->cond);
            pthread_mutex_destroy(&x->cancel_lock);
            (void)exec_stop(e, -1, NULL);
            return NULL;
        }
    }
    return e;
}

/* Sends a cancel request for the statement each busy executor runs. PQcancel
 * opens a connection to the server and may wait for it, so it runs here, off
 * the loop thread. */
static void *canceller_main(void *arg)
{
    exec_t *e = arg;
    for (int i = 0; i < e->n; i++) {
        executor_t *x = &e->ex[i];
        char why[256];
        pthread_mutex_lock(&x->cancel_lock);
        if (x->cancel != NULL && !PQcancel(x->cancel, why, sizeof(why)))
            log_warn("cancelling a statement failed", LOG_I("executor", i), LOG_S("error", why));
        pthread_mutex_unlock(&x->cancel_lock);
    }
    pthread_mutex_lock(&e->life_lock);
    e->alive--;
    pthread_cond_broadcast(&e->life_cond);
    pthread_mutex_unlock(&e->life_lock);
    return NULL;
}

void exec_cancel(exec_t *e)
{
    if (atomic_exchange(&e->cancelled, true))
        return;
    pthread_mutex_lock(&e->life_lock);
    e->alive++;
    e->canceller = pthread_create(&e->canceller_thread, NULL, canceller_main, e) == 0;
    if (!e->canceller)
        e->alive--;
    pthread_mutex_unlock(&e->life_lock);
    if (!e->canceller)
        log_warn("cannot start the thread that cancels statements");
}

exec_task_t *exec_stop(exec_t *e, int timeout_ms, bool *abandoned)
{
    if (abandoned != NULL)
        *abandoned = false;
    if (e == NULL)
        return NULL;
    for (int i = 0; i < e->n; i++) {
        executor_t *x = &e->ex[i];
        pthread_mutex_lock(&x->lock);
        x->stop = true;
        pthread_cond_signal(&x->cond);
        pthread_mutex_unlock(&x->lock);
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&e->life_lock);
    while (e->alive > 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&e->life_cond, &e->life_lock);
        else if (pthread_cond_timedwait(&e->life_cond, &e->life_lock, &dl) == ETIMEDOUT)
            break;
    }
    int alive = e->alive;
    pthread_mutex_unlock(&e->life_lock);
    if (alive > 0) {
        /* A thread is stuck (a dead database host that TCP has not given up
         * on yet): leave it, and everything it may touch, to the process's
         * exit. */
        if (abandoned != NULL)
            *abandoned = true;
        return NULL;
    }
    for (int i = 0; i < e->n; i++)
        pthread_join(e->ex[i].thread, NULL);
    if (e->canceller)
        pthread_join(e->canceller_thread, NULL);
    exec_task_t *left = e->done_head;
    exec_free(e);
    return left;
}

int exec_idle(const exec_t *e)
{
    for (int i = 0; i < e->n; i++) {
        if (!e->ex[i].busy)
            return i;
    }
    return -1;
}

int exec_idle_count(const exec_t *e)
{
    int n = 0;
    for (int i = 0; i < e->n; i++)
        n += !e->ex[i].busy;
    return n;
}

int exec_busy_count(const exec_t *e)
{
    return e->n - exec_idle_count(e);
}

void exec_post(exec_t *e, int i, exec_task_t *task)
{
    executor_t *x = &e->ex[i];
    x->busy = true;
    pthread_mutex_lock(&x->lock);
    x->task = task;
    pthread_cond_signal(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

exec_task_t *exec_take_completions(exec_t *e)
{
    pthread_mutex_lock(&e->done_lock);
    exec_task_t *t = e->done_head;
    e->done_head = e->done_tail = NULL;
    pthread_mutex_unlock(&e->done_lock);
    for (exec_task_t *p = t; p != NULL; p = p->next)
        e->ex[p->executor].busy = false;
    return t;
}

void exec_task_free(exec_task_t *t)
{
    if (t == NULL)
        return;
    free(t->jobs);
    free(t);
}
