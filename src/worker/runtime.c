#include "worker/runtime.h"

#include "dbwatch.h"
#include "deliver.h"
#include "holdwatch.h"
#include "lag.h"
#include "parts.h"
#include "runtime_internal.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "envelope/envelope.h"
#include "worker/health.h"
#include "worker/settle.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- consuming ---------------------------------------------------------- */

static void begin_drain(runtime_t *rt, int exit_code, const char *why);

static void consume_message(runtime_t *rt, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (kafka_classify(rt->kafka.consumer, m->err) == KAFKA_ERR_FATAL)
            begin_drain(rt, 1, "the consumer failed fatally");
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consumer error", LOG_S("error", rd_kafka_message_errstr(m)));
        return;
    }
    part_t *pt = parts_get(rt, m->partition);
    if (pt == NULL || !pt->assigned || pt->revoking || runtime_draining(rt))
        return; /* not ours to start any more: the next owner reads it again */
    rd_kafka_headers_t *headers = NULL;
    if (rd_kafka_message_headers(m, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR)
        headers = NULL;
    if (offsets_track(pt->offsets, m->offset) != 0) {
        trace_t trace;
        trace_from_headers(headers, &trace);
        log_debug("message already seen", LOG_SOPT("trace_id", trace.id),
                  LOG_I("partition", m->partition), LOG_I("offset", m->offset));
        return;
    }
    rd_kafka_timestamp_type_t ts_type;
    job_source_t src = {.partition = m->partition,
                        .offset = m->offset,
                        .generation = pt->generation,
                        .key = m->key,
                        .key_len = m->key_len,
                        .value = m->payload,
                        .value_len = m->len,
                        .timestamp_ms = rd_kafka_message_timestamp(m, &ts_type),
                        .headers = headers};
    job_t *job = job_new(&src, &rt->policy);
    parts_job_add(rt, job);
    if (job->unanswerable) {
        log_warn("unanswerable message sent to the DLQ", LOG_SOPT("trace_id", job->trace.id),
                 LOG_I("partition", job->partition), LOG_I("offset", job->offset),
                 LOG_S("error", job->dlq_reason));
        parts_job_state(rt, job, JOB_PUBLISHING);
        metrics_dlq(rt->metrics, "invalid_request");
        deliver_publish(rt, job, DELIVERY_DLQ);
        return;
    }
    parts_job_state(rt, job, JOB_QUEUED);
    sched_push(rt->sched, &job->item, job->env.account.id);
}

static void consume_drain(runtime_t *rt)
{
    if (runtime_stopped(rt) || rt->kafka.consumer == NULL)
        return;
    rd_kafka_message_t *m;
    int since_flow = 0;
    while ((m = rd_kafka_consumer_poll(rt->kafka.consumer, 0)) != NULL) {
        consume_message(rt, m);
        rd_kafka_message_destroy(m);
        if (runtime_stopped(rt))
            return;
        /* Apply flow control while draining, not only after: the local
         * queue (queued.max.messages.kbytes) may hold many more messages
         * than the window, and the window counts every offset not yet
         * committed (one stuck offset holds those after it), which the
         * live requests alone do not show. */
        if (++since_flow >= 64) {
            parts_flow_apply(rt);
            since_flow = 0;
        }
    }
    runtime_mark_dirty(rt);
}

static void consumer_readable(uv_poll_t *h, int status, int events)
{
    runtime_t *rt = h->data;
    kafka_drain_pipe(rt->kafka.consumer_fds[0]);
    consume_drain(rt);
}

static void producer_readable(uv_poll_t *h, int status, int events)
{
    runtime_t *rt = h->data;
    kafka_drain_pipe(rt->kafka.producer_fds[0]);
    kafka_serve_producer(&rt->kafka);
    runtime_mark_dirty(rt);
}

/* ---- executors ---------------------------------------------------------- */

static void sched_timer_cb(uv_timer_t *t)
{
    runtime_mark_dirty(t->data);
}

/* A job's first start: how long it waited since its Kafka timestamp
 * (tally_request_age_seconds). The timestamp is the producer's clock
 * (CreateTime) or the broker's (LogAppendTime); a clock ahead of ours gives
 * a negative age, counted as 0. A message without one is not counted. */
static void observe_age(runtime_t *rt, job_t *job)
{
    if (job->started_once)
        return;
    job->started_once = true;
    if (job->timestamp_ms >= 0)
        metrics_request_age(rt->metrics, (double)(clock_wall_ms() - job->timestamp_ms) / 1000.0);
}

/* Hands ready accounts' jobs to idle executors (or probes a database that
 * is down), and arms the timer of the next backoff's end. */
static void dispatch(runtime_t *rt)
{
    if (runtime_draining(rt))
        return;
    if (rt->db_down) {
        dbwatch_probe_down(rt);
        return;
    }
    int64_t now = runtime_now_ms();
    /* The holds first: no batch runs against holds that are not current. */
    bool holds_current = holdwatch_dispatch(rt, now);
    sched_poll(rt->sched, now);
    int idle;
    size_t ready;
    while (holds_current && (idle = exec_idle_count(rt->exec)) > 0 &&
           (ready = sched_ready(rt->sched)) > 0) {
        /* Spread ready accounts over idle executors: batches grow only when
         * there are more ready accounts than executors (group commit under
         * load, batches of one when quiet). */
        size_t size = (ready + (size_t)idle - 1) / (size_t)idle;
        if (size > (size_t)rt->cfg->batch_max)
            size = (size_t)rt->cfg->batch_max;
        sched_item_t **items = mem_calloc(size, sizeof(*items));
        size_t n = sched_next_batch(rt->sched, now, items, size);
        task_t *t = task_new_batch((job_t **)items, n); /* job_t begins with its sched_item_t */
        for (size_t k = 0; k < t->njobs; k++) {
            parts_job_state(rt, t->jobs[k], JOB_RUNNING);
            observe_age(rt, t->jobs[k]);
        }
        exec_post(rt->exec, exec_idle(rt->exec), t);
    }
    /* Wake up for the next account leaving its backoff, unless every
     * executor is busy (a completion calls dispatch anyway). At least 1 ms:
     * a timer re-armed with 0 inside a timer callback would spin libuv's
     * timer phase forever. */
    int64_t deadline = sched_next_deadline(rt->sched);
    if (deadline >= 0 && exec_idle_count(rt->exec) > 0) {
        int64_t wait = deadline - now;
        uv_timer_start(&rt->sched_timer, sched_timer_cb, (uint64_t)(wait > 1 ? wait : 1), 0);
    } else {
        uv_timer_stop(&rt->sched_timer);
    }
}

static void on_completion(uv_async_t *h)
{
    runtime_t *rt = h->data;
    task_t *list = exec_take_completions(rt->exec);
    while (list != NULL) {
        task_t *t = list;
        list = t->next;
        if (t->kind == TASK_BATCH) {
            for (size_t i = 0; i < t->njobs; i++)
                settle_job(rt, t->jobs[i]);
        }
        dbwatch_task_done(rt, t);
        if (t->kind == TASK_HOLDS)
            holdwatch_task_done(rt, t);
        task_free(t);
    }
    runtime_mark_dirty(rt);
}

/* ---- client errors --------------------------------------------------------- */

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    runtime_t *rt = opaque;
    if (kafka_classify(rk, (rd_kafka_resp_err_t)err) == KAFKA_ERR_FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error("Kafka client failed fatally", LOG_S("client", rd_kafka_name(rk)),
                  LOG_S("error", why));
        begin_drain(rt, 1, "fatal Kafka error");
        return;
    }
    log_warn("Kafka client error", LOG_S("client", rd_kafka_name(rk)),
             LOG_S("error", rd_kafka_err2str((rd_kafka_resp_err_t)err)), LOG_S("reason", reason));
}

/* ---- drain and stop ------------------------------------------------------ */

/* Moves the worker's life forward (never back). */
static void set_phase(runtime_t *rt, runtime_phase_t to)
{
    assert(to > rt->phase);
    rt->phase = to;
}

/* Starts the drain (a signal or a fatal error); the exit code only grows. */
static void begin_drain(runtime_t *rt, int exit_code, const char *why)
{
    if (exit_code > rt->exit_code)
        rt->exit_code = exit_code;
    rt->drain_asked = false;
    if (runtime_draining(rt))
        return;
    set_phase(rt, RT_DRAINING);
    rt->drain_deadline = runtime_now_ms() + rt->cfg->shutdown_timeout_ms;
    size_t dropped = parts_drop_queued(rt, true, 0);
    log_info("draining: finishing started requests", LOG_S("reason", why),
             LOG_I("dropped_queued", (int64_t)dropped), LOG_I("in_flight", rt->in_flight),
             LOG_I("timeout_ms", rt->cfg->shutdown_timeout_ms));
    runtime_mark_dirty(rt);
}

static void close_walk_cb(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Closes the loop's handles so that uv_run returns. */
static void close_handles(runtime_t *rt)
{
    uv_handle_t *own[] = {(uv_handle_t *)&rt->consumer_poll, (uv_handle_t *)&rt->producer_poll,
                          (uv_handle_t *)&rt->wake,          (uv_handle_t *)&rt->sched_timer,
                          (uv_handle_t *)&rt->tick_timer,    (uv_handle_t *)&rt->redeliver_timer,
                          (uv_handle_t *)&rt->probe_timer,   (uv_handle_t *)&rt->sigterm,
                          (uv_handle_t *)&rt->sigint,        (uv_handle_t *)&rt->turn};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (own[i]->loop != NULL && !uv_is_closing(own[i]))
            uv_close(own[i], NULL);
    }
    if (rt->http != NULL) {
        http_server_close(rt->http, NULL, NULL);
        rt->http = NULL;
    }
    lag_cancel(rt);
    holdwatch_close(rt);
}

/* Stops the loop once the drain finished or timed out: flush, commit,
 * close the handles. */
static void check_drain(runtime_t *rt)
{
    if (!runtime_draining(rt) || runtime_stopped(rt))
        return;
    bool busy = (exec_busy_count(rt->exec) > 0 && rt->in_flight > 0) || rt->started > 0;
    if (busy && runtime_now_ms() < rt->drain_deadline)
        return;
    if (busy) {
        /* Statements still running (a lock wait, say) are cancelled so that
         * the executors come back now; their requests go to the next owner. */
        log_warn("drain timed out: cancelling running statements; unfinished requests are left "
                 "for redelivery",
                 LOG_I("in_flight", rt->in_flight));
        exec_cancel(rt->exec);
    }
    set_phase(rt, RT_STOPPED);
    /* Acknowledgements first (they store offsets), then the final commit. */
    int64_t left = rt->drain_deadline - runtime_now_ms();
    rd_kafka_flush(rt->kafka.producer, (int)(left > 1000 ? left : 1000));
    kafka_serve_producer(&rt->kafka);
    if (rt->revoke != NULL) {
        rd_kafka_topic_partition_list_t *l = rt->revoke;
        rt->revoke = NULL;
        parts_finish_revoke(rt, l, true);
        rd_kafka_topic_partition_list_destroy(l);
    }
    rd_kafka_resp_err_t err = rd_kafka_commit(rt->kafka.consumer, NULL, 0 /* sync */);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("final offset commit failed", LOG_S("error", rd_kafka_err2str(err)));
    close_handles(rt);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    runtime_t *rt = h->data;
    if (runtime_draining(rt)) {
        log_warn("second signal: stopping now", LOG_I("signal", signum));
        rt->drain_deadline = 0;
        runtime_mark_dirty(rt);
        return;
    }
    begin_drain(rt, 0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void tick_cb(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t now = runtime_now_ms();
    /* Safety net: the pipes wake us, but the consumer must be polled within
     * max.poll.interval.ms even when nothing arrives. */
    consume_drain(rt);
    kafka_serve_producer(&rt->kafka);
    runtime_mark_dirty(rt); /* deadlines of a drain or a revocation may have passed */
    if (runtime_stopped(rt))
        return;
    pool_reap_idle(rt->pool);
    dbwatch_tick(rt, now);
    deliver_reap_stuck(rt);
    lag_tick(rt);
}

/* ---- one place per loop turn -------------------------------------------
 *
 * turn_cb is the loop's per-iteration step (Redis's beforeSleep): a
 * uv_prepare_t that libuv runs on every turn before it waits for I/O, and
 * that acts only when something marked the runtime dirty since
 * (runtime_mark_dirty: a message consumed, an executor's completion, a
 * delivery report, a rebalance, the database going down or coming back, a
 * drain begun or asked for, a signal, the tick, a backoff's end). Its
 * duties, in order:
 *
 *   1. begin a drain asked for where it could not begin at once
 *      (runtime_ask_drain: a fatal producer error met while publishing);
 *   2. dispatch: ready accounts' jobs to idle executors, or a probe while
 *      the database is down; arm the timer of the next backoff's end;
 *   3. flow control: pause and resume partitions (parts_flow_apply);
 *   4. finish a deferred revocation once its started jobs are done or its
 *      deadline passed (parts_check_revoke);
 *   5. finish a drain once nothing is started or its deadline passed:
 *      flush, commit, close the handles (check_drain).
 *
 * Nothing else runs them, but flow control, which consume_drain also
 * applies every 64 messages. A duty that marks the runtime dirty again (a
 * revocation finishing frees its jobs) gets another round at once. */
static void turn_cb(uv_prepare_t *h)
{
    runtime_t *rt = h->data;
    assert(runtime_on_loop(rt));
    for (int round = 0; rt->dirty && round < 4 && !runtime_stopped(rt); round++) {
        rt->dirty = false;
        if (rt->drain_asked)
            begin_drain(rt, rt->drain_exit_code, rt->drain_why);
        dispatch(rt);
        parts_flow_apply(rt);
        parts_check_revoke(rt);
        check_drain(rt);
        assert(rt->in_flight >= 0 && rt->in_flight_bytes >= 0 && rt->n_stuck >= 0);
        assert(rt->started >= 0 && rt->started <= rt->in_flight);
    }
}

/* ---- HTTP ---------------------------------------------------------------- */

/* What /readyz and /metrics report (health.h). */
static void snapshot(void *ctx, health_snapshot_t *out)
{
    runtime_t *rt = ctx;
    out->db_down = rt->db_down;
    out->pooler_fault = rt->pooler_fault;
    out->db_stale = runtime_now_ms() - rt->db_ok_ms > HEALTH_STALE_MS;
    out->draining = runtime_draining(rt);
    out->partitions = rt->assigned;
    out->paused = 0;
    for (int32_t p = 0; p < rt->nparts; p++)
        out->paused += rt->parts[p].assigned && rt->parts[p].paused;
    out->in_flight = rt->in_flight;
    out->stuck_deliveries = rt->n_stuck;
    out->held_accounts = (int64_t)holds_count(rt->holds);
    pool_stats(rt->pool, &out->pool);
    if (!out->for_metrics)
        return;
    int64_t now = clock_mono_ns(), oldest = now;
    for (const job_t *j = rt->jobs; j != NULL; j = j->all_next)
        oldest = j->received_ns < oldest ? j->received_ns : oldest;
    out->oldest_in_flight_s = (double)(now - oldest) / 1e9;
    lag_render(rt);
}

static void http_cb(void *ctx, const char *method, const char *path, http_response_t *resp)
{
    runtime_t *rt = ctx;
    health_answer(path, snapshot, rt, rt->metrics, resp);
}

/* ---- run ----------------------------------------------------------------- */

static runtime_t *runtime_new(const config_t *cfg, pool_t *pool, const char *worker_name)
{
    runtime_t *rt = mem_calloc(1, sizeof(*rt));
    rt->cfg = cfg;
    rt->pool = pool;
    rt->policy =
        (envelope_policy_t){.own_topics = {cfg->request_topic, cfg->audit_topic, cfg->dlq_topic},
                            .pattern = cfg->has_reply_to_regex ? &cfg->reply_to_regex : NULL};
    snprintf(rt->worker_name, sizeof(rt->worker_name), "%s", worker_name);
    rt->rng = (uint64_t)clock_mono_ns() ^ ((uint64_t)clock_wall_ms() << 20);
    rt->db_ok_ms = runtime_now_ms();
    rt->prune_ms = runtime_now_ms() + PRUNE_FIRST_MS;
    rt->sched = sched_new();
    rt->metrics = metrics_new();
    rt->holds = holds_new();
    rt->loop_thread = uv_thread_self();
    uv_loop_init(&rt->loop);
    uv_async_init(&rt->loop, &rt->wake, on_completion);
    rt->wake.data = rt;
    uv_prepare_init(&rt->loop, &rt->turn);
    rt->turn.data = rt;
    uv_prepare_start(&rt->turn, turn_cb);
    return rt;
}

/* Wires the pipes, timers and signals into the loop. */
static void start_handles(runtime_t *rt)
{
    uv_poll_init(&rt->loop, &rt->consumer_poll, rt->kafka.consumer_fds[0]);
    uv_poll_init(&rt->loop, &rt->producer_poll, rt->kafka.producer_fds[0]);
    rt->consumer_poll.data = rt->producer_poll.data = rt;
    uv_poll_start(&rt->consumer_poll, UV_READABLE, consumer_readable);
    uv_poll_start(&rt->producer_poll, UV_READABLE, producer_readable);
    uv_timer_t *timers[] = {&rt->sched_timer, &rt->tick_timer, &rt->redeliver_timer,
                            &rt->probe_timer};
    for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
        uv_timer_init(&rt->loop, timers[i]);
        timers[i]->data = rt;
    }
    uv_timer_start(&rt->tick_timer, tick_cb, TICK_MS, TICK_MS);
    uv_signal_init(&rt->loop, &rt->sigterm);
    uv_signal_init(&rt->loop, &rt->sigint);
    rt->sigterm.data = rt->sigint.data = rt;
    uv_signal_start(&rt->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&rt->sigint, signal_cb, SIGINT);
}

/* Starts the Kafka clients, the executors and HTTP. Returns 0, or -1 after
 * logging why. */
static int start(runtime_t *rt)
{
    const config_t *cfg = rt->cfg;
    char err[512];
    kafka_callbacks_t cb = {.opaque = rt,
                            .rebalance = parts_rebalance_cb,
                            .delivery = deliver_report_cb,
                            .error = error_cb};
    if (kafka_open(&rt->kafka, cfg, &cb, err, sizeof(err)) != 0) {
        log_error("cannot start Kafka clients", LOG_S("error", err));
        return -1;
    }
    exec_config_t ec = {.pool = rt->pool,
                        .threads = cfg->pool_max,
                        .worker_name = rt->worker_name,
                        .holds = rt->holds,
                        .wake = &rt->wake};
    rt->exec = exec_start(&ec);
    if (rt->exec == NULL) {
        log_error("cannot start executor threads");
        return -1;
    }
    if (http_server_start(&rt->loop, cfg->http_addr, http_cb, rt, &rt->http, err, sizeof(err)) !=
        0) {
        log_error("cannot start the HTTP server", LOG_S("http_addr", cfg->http_addr),
                  LOG_S("error", err));
        return -1;
    }
    start_handles(rt);
    holdwatch_start(rt);
    return 0;
}

/* Subscribes to the requests topic. */
static void subscribe(runtime_t *rt)
{
    const config_t *cfg = rt->cfg;
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->request_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rt->kafka.consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("cannot subscribe", LOG_S("topic", cfg->request_topic),
                  LOG_S("error", rd_kafka_err2str(kerr)));
        set_phase(rt, RT_DRAINING); /* nothing started: stop at once */
        rt->exit_code = 1;
        runtime_mark_dirty(rt);
        return;
    }
    log_info("worker started", LOG_S("worker", rt->worker_name), LOG_S("group_id", cfg->group_id),
             LOG_S("topic", cfg->request_topic), LOG_I("executors", cfg->pool_max),
             LOG_I("max_in_flight", cfg->max_in_flight), LOG_I("batch_max", cfg->batch_max));
}

/* Stops the executors; false when one is stuck (then nothing of theirs may
 * be freed: see exec_stop). */
static bool stop_executors(runtime_t *rt)
{
    if (rt->exec == NULL)
        return true;
    bool abandoned = false;
    task_t *left = exec_stop(rt->exec, EXEC_STOP_GRACE_MS, &abandoned);
    if (abandoned) {
        /* An executor is stuck beyond the cancel (a database host that
         * vanished): its jobs, the pool and the loop stay as they are for
         * the process's exit; nothing was committed for them. */
        log_warn("an executor did not stop in time: exiting without it",
                 LOG_I("grace_ms", EXEC_STOP_GRACE_MS));
        return false;
    }
    while (left != NULL) {
        task_t *t = left;
        left = t->next;
        task_free(t); /* their jobs are in rt->jobs */
    }
    return true;
}

/* Frees everything after the loop ran; returns rc, or 1 when the loop does
 * not close cleanly. */
static int runtime_free(runtime_t *rt, int rc)
{
    deliver_free_all(rt);
    kafka_destroy(&rt->kafka);
    while (rt->jobs != NULL)
        parts_job_forget(rt, rt->jobs);
    parts_free(rt);
    sched_free(rt->sched);
    if (rt->http != NULL)
        http_server_close(rt->http, NULL, NULL);
    uv_walk(&rt->loop, close_walk_cb, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&rt->loop) != 0) {
        log_error("event loop did not close cleanly");
        rc = 1;
    }
    holdwatch_free(rt);
    holds_free(rt->holds);
    metrics_free(rt->metrics);
    free(rt);
    return rc;
}

int runtime_run(const config_t *cfg, pool_t *pool, const char *worker_name, bool *pool_in_use)
{
    *pool_in_use = false;
    runtime_t *rt = runtime_new(cfg, pool, worker_name);
    int rc = 1;
    if (start(rt) == 0) {
        subscribe(rt);
        consume_drain(rt);
        uv_run(&rt->loop, UV_RUN_DEFAULT);
        rc = rt->exit_code;
    }
    if (rt->kafka.consumer != NULL) {
        set_phase(rt, RT_CLOSING);
        rd_kafka_consumer_close(rt->kafka.consumer); /* leaves the group */
    }
    if (!stop_executors(rt)) {
        kafka_destroy(&rt->kafka);
        *pool_in_use = true;
    } else {
        rc = runtime_free(rt, rc);
    }
    log_info("worker stopped", LOG_I("exit_code", rc));
    return rc;
}
