/* exec — see worker/exec.h. */
#include "worker/exec.h"

#include "common/log.h"
#include "common/mem.h"

#include <assert.h>
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
    task_t *task; /* mailbox: the task to run, NULL when none */
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
    holds_t *holds;
    uv_async_t *wake;
    int n;
    executor_t *ex;
    pthread_mutex_t done_lock;
    task_t *done_head, *done_tail;
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

static bool cancelled(void *arg)
{
    return atomic_load(&((executor_t *)arg)->owner->cancelled);
}

static void hold(void *arg, pool_conn_t *conn)
{
    set_cancel(arg, conn);
}

static void complete(exec_t *e, task_t *t)
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
    task_env_t env = {.pool = e->pool,
                      .worker = e->worker_name,
                      .holds = e->holds,
                      .cancelled = cancelled,
                      .hold = hold,
                      .arg = x};
    for (;;) {
        pthread_mutex_lock(&x->lock);
        while (x->task == NULL && !x->stop)
            pthread_cond_wait(&x->cond, &x->lock);
        task_t *t = x->task;
        x->task = NULL;
        bool stop = x->stop;
        pthread_mutex_unlock(&x->lock);
        if (t == NULL && stop)
            break;
        t->executor = x->index;
        task_run(t, &env);
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
    exec_t *e = mem_calloc(1, sizeof(*e));
    e->pool = cfg->pool;
    e->worker_name = mem_strdup(cfg->worker_name);
    e->holds = cfg->holds;
    e->wake = cfg->wake;
    e->ex = mem_calloc((size_t)cfg->threads, sizeof(*e->ex));
    atomic_init(&e->cancelled, false);
    pthread_mutex_init(&e->done_lock, NULL);
    pthread_mutex_init(&e->life_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->life_cond, &ca);
    pthread_condattr_destroy(&ca);
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

task_t *exec_stop(exec_t *e, int timeout_ms, bool *abandoned)
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
    task_t *left = e->done_head;
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

void exec_post(exec_t *e, int i, task_t *task)
{
    assert(i >= 0 && i < e->n && !e->ex[i].busy);
    executor_t *x = &e->ex[i];
    x->busy = true;
    pthread_mutex_lock(&x->lock);
    x->task = task;
    pthread_cond_signal(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

task_t *exec_take_completions(exec_t *e)
{
    pthread_mutex_lock(&e->done_lock);
    task_t *t = e->done_head;
    e->done_head = e->done_tail = NULL;
    pthread_mutex_unlock(&e->done_lock);
    for (task_t *p = t; p != NULL; p = p->next)
        e->ex[p->executor].busy = false;
    return t;
}
