#include "exec.h"

#include "access/admin.h"
#include "access/logs.h"
#include "access/outcome.h"
#include "access/session.h"
#include "answer.h"
#include "common/clock.h"
#include "common/log.h"
#include "pool/pooler.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct executor {
    exec_t *owner;
    int index;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    exec_task_t *task; /* mailbox: the task to run, NULL when none */
    bool stop;
    bool busy; /* loop thread's view: posted and not yet taken back */
} executor_t;

struct exec {
    pool_t *pool;
    char *worker_name;
    uv_async_t *wake;
    int n;
    executor_t *ex;
    pthread_mutex_t done_lock;
    exec_task_t *done_head, *done_tail;
};

/* ---- one job ---------------------------------------------------------- */

typedef enum run_result {
    RUN_ANSWERED,
    RUN_RETRY,
    RUN_LOST,          /* the connection is gone (or a pooler fault): see lost() */
    RUN_BROKEN,        /* the session is unusable (a failed rollback): counts an attempt */
    RUN_ANSWERED_LOST, /* an `internal` answer whose best-effort row went with the session */
} run_result_t;

static void job_reset_outcome(job_t *job)
{
    free(job->result_text);
    free(job->audit_text);
    job->result_text = job->audit_text = NULL;
    job->ok = false;
    job->error_code = TALLY_ERR_NONE;
    job->replayed = false;
    job->fail_reason[0] = '\0';
}

static run_result_t infra(job_t *job, const char *step, const access_error_t *err)
{
    snprintf(job->fail_reason, sizeof(job->fail_reason), "%s: %.200s (%s%s%s)", step, err->message,
             access_status_str(err->status), err->sqlstate[0] ? " " : "", err->sqlstate);
    return err->status == ACCESS_UNAVAILABLE ? RUN_LOST : RUN_RETRY;
}

/* Builds the texts to publish from the stored response. */
/* When a job was answered and how long it took: the same in the audit row,
 * the audit event and the result. */
typedef struct stamp {
    int64_t at_ms;
    double duration_ms;
} stamp_t;

static stamp_t stamp_now(int64_t t0)
{
    return (stamp_t){clock_wall_ms(), (double)(clock_mono_ns() - t0) / 1e6};
}

static run_result_t finish(job_t *job, const char *stored, bool ok, tally_errcode_t code,
                           bool replayed, const char *worker, stamp_t st)
{
    answer_audit_t a = {.env = &job->env,
                        .ok = ok,
                        .error_code = code,
                        .replayed = replayed,
                        .at_ms = st.at_ms,
                        .duration_ms = st.duration_ms,
                        .worker = worker,
                        .partition = job->partition,
                        .offset = job->offset};
    job->result_text = answer_result(&job->env, stored, replayed, st.at_ms);
    job->audit_text = answer_audit_event(&a);
    job->ok = ok;
    job->error_code = code;
    job->replayed = replayed;
    if (job->result_text == NULL || job->audit_text == NULL) {
        job_reset_outcome(job);
        snprintf(job->fail_reason, sizeof(job->fail_reason), "building the answer failed");
        return RUN_RETRY;
    }
    return RUN_ANSWERED;
}

static access_status_t audit_row(access_tx_t *tx, const job_t *job, bool ok, tally_errcode_t code,
                                 bool replayed, const char *worker, stamp_t st, access_error_t *err)
{
    access_log_entry_t e = {.request_id = job->env.id,
                            .type = job->env.type,
                            .status = ok ? "ok" : "error",
                            .error_code = ok ? NULL : tally_errcode_str(code),
                            .replayed = replayed,
                            .at_ms = st.at_ms,
                            .duration_ms = st.duration_ms,
                            .worker = worker,
                            .partition = job->partition,
                            .offset = job->offset};
    return access_logs_insert(tx, &e, err);
}

/* access_tx_end failed, and the tx is over either way. In a pipelined
 * session a queued write (outcome, audit row) may have failed: the tx was
 * undone and the session goes on, so only this job runs again. Otherwise the
 * session is unusable. */
static run_result_t ended_badly(const access_session_t *s, job_t *job, const access_error_t *err)
{
    run_result_t rr = infra(job, "tx end", err);
    return rr == RUN_LOST || !access_session_failed(s) ? rr : RUN_BROKEN;
}

/* The `internal` answer after the last attempt, built even without its audit row. */
static run_result_t answer_internal(job_t *job, const char *worker, int64_t t0, bool lost)
{
    char *stored = answer_stored_error(TALLY_ERR_INTERNAL, job->env.error_message, "");
    run_result_t rr = stored != NULL ? finish(job, stored, false, TALLY_ERR_INTERNAL, false, worker,
                                              stamp_now(t0))
                                     : RUN_RETRY;
    free(stored);
    if (rr == RUN_ANSWERED && lost)
        rr = RUN_ANSWERED_LOST;
    return rr;
}

/* Runs one job inside the session as its own tenant transaction. */
static run_result_t run_job(access_session_t *s, job_t *job, const char *worker)
{
    int64_t t0 = clock_mono_ns();
    access_error_t err;
    access_tx_t *tx = NULL;
    char *stored = NULL;
    char *canonical = NULL;
    json_t *result = NULL;
    run_result_t rr;
    job_reset_outcome(job);

    if (access_tx_begin(s, &job->env.account, &tx, &err) != ACCESS_OK) {
        if (job->final_internal)
            return answer_internal(job, worker, t0, true);
        /* A session whose savepoint could not be set is not to be trusted
         * with the rest of the batch. */
        return infra(job, "tx begin", &err) == RUN_LOST ? RUN_LOST : RUN_BROKEN;
    }

    tally_errcode_t code = job->env.error;
    const char *message = job->env.error_message;
    const char *field = job->env.error_field;
    handler_error_t herr = {0};
    if (code == TALLY_ERR_NONE && !handler_validate(job->env.handler, job->env.payload, &herr)) {
        code = TALLY_ERR_INVALID_REQUEST;
        message = herr.message;
        field = herr.field;
    }
    if (code != TALLY_ERR_NONE) {
        /* Decided without running the job: only the audit row is written. */
        stored = answer_stored_error(code, message, field);
        stamp_t at = stamp_now(t0);
        bool ended = false;
        access_status_t st = audit_row(tx, job, false, code, false, worker, at, &err);
        /* The `internal` answer goes out whatever becomes of its row: learn
         * its fate now, while the tx can still be rolled back alone. */
        if (st == ACCESS_OK && job->final_internal)
            st = access_tx_flush(tx, &err);
        if (st == ACCESS_OK) {
            st = access_tx_end(tx, &err);
            ended = true;
        }
        if (st != ACCESS_OK) {
            if (job->final_internal) {
                /* `internal` is answered even when its best-effort row fails. */
                log_warn("audit row of an internal answer failed",
                         LOG_S("account_id", job->env.account.id), LOG_S("request_id", job->env.id),
                         LOG_S("error", err.message));
                access_error_t e2;
                bool gone = ended ? access_session_failed(s)
                                  : access_tx_rollback(tx, &e2) != ACCESS_OK ||
                                        access_tx_end(tx, &e2) != ACCESS_OK;
                free(stored);
                return answer_internal(job, worker, t0, gone);
            }
            if (ended) {
                rr = ended_badly(s, job, &err);
                goto out;
            }
            rr = infra(job, "audit row", &err);
            goto rollback;
        }
        tx = NULL;
        rr = finish(job, stored, false, code, false, worker, at);
        goto out;
    }

    canonical = json_dumps(job->env.payload, JSON_SORT_KEYS | JSON_COMPACT);
    access_outcome_kind_t kind;
    char *prior = NULL;
    if (access_outcome_claim(tx, job->env.id, job->env.type, canonical, &kind, &prior, &err) !=
        ACCESS_OK) {
        rr = infra(job, "outcome claim", &err);
        goto rollback;
    }
    bool ok = false, replayed = false;
    if (kind == ACCESS_OUTCOME_STORED) {
        stored = prior;
        replayed = true;
        if (!answer_stored_status(stored, &ok, &code)) {
            snprintf(job->fail_reason, sizeof(job->fail_reason), "stored outcome is unreadable");
            rr = RUN_RETRY;
            goto rollback;
        }
    } else if (kind == ACCESS_OUTCOME_MISMATCH) {
        code = TALLY_ERR_IDEMPOTENCY_CONFLICT;
        stored = answer_stored_error(code,
                                     "this id was already used in this account with another "
                                     "type or payload",
                                     "id");
    } else {
        handler_status_t hs =
            handler_execute(job->env.handler, tx, job->env.payload, &result, &herr);
        switch (hs) {
        case HANDLER_OK:
            ok = true;
            stored = answer_stored_ok(result);
            break;
        case HANDLER_REJECTED:
            code = herr.code;
            stored = answer_stored_error(code, herr.message, herr.field);
            if (access_tx_rollback(tx, &err) != ACCESS_OK) {
                rr = infra(job, "rollback", &err);
                goto rollback;
            }
            break;
        case HANDLER_RETRY:
        case HANDLER_FAILED:
            snprintf(job->fail_reason, sizeof(job->fail_reason), "%s: %.200s",
                     hs == HANDLER_RETRY ? "transient" : "failed", herr.message);
            rr = RUN_RETRY;
            goto rollback;
        case HANDLER_UNAVAILABLE:
            snprintf(job->fail_reason, sizeof(job->fail_reason), "connection lost: %.200s",
                     herr.message);
            rr = RUN_LOST;
            goto rollback;
        }
        if (stored == NULL) {
            snprintf(job->fail_reason, sizeof(job->fail_reason), "out of memory");
            rr = RUN_RETRY;
            goto rollback;
        }
        if ((ok || tally_errcode_is_stored(code)) &&
            access_outcome_store(tx, job->env.id, job->env.type, canonical, stored, &err) !=
                ACCESS_OK) {
            rr = infra(job, "outcome store", &err);
            goto rollback;
        }
    }
    stamp_t at = stamp_now(t0);
    if (audit_row(tx, job, ok, code, replayed, worker, at, &err) != ACCESS_OK) {
        rr = infra(job, "audit row", &err);
        goto rollback;
    }
    if (access_tx_end(tx, &err) != ACCESS_OK) {
        tx = NULL;
        rr = ended_badly(s, job, &err);
        goto out;
    }
    tx = NULL;
    rr = finish(job, stored, ok, code, replayed, worker, at);
    goto out;

rollback:
    if (tx != NULL && rr != RUN_LOST) {
        access_error_t e2;
        access_status_t st = access_tx_rollback(tx, &e2);
        if (st == ACCESS_OK)
            st = access_tx_end(tx, &e2);
        if (st != ACCESS_OK)
            rr = st == ACCESS_UNAVAILABLE ? RUN_LOST : RUN_BROKEN;
        tx = NULL;
    }
    goto out;

out:
    json_decref(result);
    free(canonical);
    free(stored);
    return rr;
}

/* ---- tasks ------------------------------------------------------------ */

static void set_all(exec_task_t *t, size_t from, job_exec_status_t st)
{
    for (size_t i = from; i < t->njobs; i++) {
        job_reset_outcome(t->jobs[i]);
        t->jobs[i]->status = st;
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

static void run_batch(exec_t *e, exec_task_t *t)
{
    char err[256];
    pool_conn_t *conn = NULL;
    access_session_t *s = NULL;
    access_error_t aerr;
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
    size_t answered = 0;
    for (size_t i = 0; i < t->njobs; i++) {
        job_t *job = t->jobs[i];
        unsigned before = access_session_tx_count(s);
        run_result_t rr = run_job(s, job, e->worker_name);
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
                job_reset_outcome(t->jobs[k]);
                t->jobs[k]->status = JOB_REQUEUE;
            }
            if (culprit == i) {
                job->status = rr == RUN_ANSWERED_LOST ? JOB_ANSWERED
                              : rr == RUN_LOST        ? lost(job, t->pooler_fault)
                                                      : JOB_RETRY;
            } else {
                t->jobs[culprit]->status = JOB_RETRY;
                snprintf(t->jobs[culprit]->fail_reason, sizeof(t->jobs[culprit]->fail_reason), "%s",
                         t->error);
            }
            goto abort;
        }
        job->status = rr == RUN_ANSWERED ? JOB_ANSWERED : JOB_RETRY;
        if (rr == RUN_ANSWERED)
            answered++;
    }
    if (answered == 0) {
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
        if (culprit < t->njobs) {
            t->jobs[culprit]->status = JOB_RETRY;
            snprintf(t->jobs[culprit]->fail_reason, sizeof(t->jobs[culprit]->fail_reason), "%s",
                     t->error);
        }
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
            job_reset_outcome(job);
            job->status = lost ? JOB_REQUEUE : JOB_RETRY;
            snprintf(job->fail_reason, sizeof(job->fail_reason), "%s", t->error);
        }
        if (lost)
            pool_conn_mark_broken(conn);
    }
    pool_release(e->pool, conn);
    return;

abort:
    free(tx_of);
    access_session_abort(s);
    pool_conn_mark_broken(conn);
    pool_release(e->pool, conn);
}

static void run_prune(exec_t *e, exec_task_t *t)
{
    char err[256];
    pool_conn_t *conn = NULL;
    if (pool_acquire(e->pool, &conn, err, sizeof(err)) != 0) {
        snprintf(t->error, sizeof(t->error), "%s", err);
        return;
    }
    access_error_t aerr;
    if (access_admin_prune_outcomes(conn, t->prune_days, &t->pruned, &aerr) == ACCESS_OK)
        t->ok = true;
    else
        snprintf(t->error, sizeof(t->error), "%s", aerr.message);
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
            run_batch(e, t);
            break;
        case EXEC_PROBE:
            run_probe(e, t);
            break;
        case EXEC_PRUNE:
            run_prune(e, t);
            break;
        }
        complete(e, t);
    }
    return NULL;
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
    pthread_mutex_init(&e->done_lock, NULL);
    if (e->ex == NULL || e->worker_name == NULL) {
        (void)exec_stop(e);
        return NULL;
    }
    for (int i = 0; i < cfg->threads; i++) {
        executor_t *x = &e->ex[i];
        x->owner = e;
        x->index = i;
        pthread_mutex_init(&x->lock, NULL);
        pthread_cond_init(&x->cond, NULL);
        if (pthread_create(&x->thread, NULL, executor_main, x) != 0) {
            pthread_mutex_destroy(&x->lock);
            pthread_cond_destroy(&x->cond);
            (void)exec_stop(e);
            return NULL;
        }
        e->n++;
    }
    return e;
}

exec_task_t *exec_stop(exec_t *e)
{
    if (e == NULL)
        return NULL;
    for (int i = 0; i < e->n; i++) {
        executor_t *x = &e->ex[i];
        pthread_mutex_lock(&x->lock);
        x->stop = true;
        pthread_cond_signal(&x->cond);
        pthread_mutex_unlock(&x->lock);
    }
    for (int i = 0; i < e->n; i++) {
        pthread_join(e->ex[i].thread, NULL);
        pthread_mutex_destroy(&e->ex[i].lock);
        pthread_cond_destroy(&e->ex[i].cond);
    }
    exec_task_t *left = e->done_head;
    pthread_mutex_destroy(&e->done_lock);
    free(e->ex);
    free(e->worker_name);
    free(e);
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
