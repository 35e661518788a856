#include "runtime.h"

#include "envelope/envelope.h"
#include "parts.h"
#include "runtime_internal.h"
#include "settle.h"

#include "common/clock.h"
#include "common/log.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t runtime_now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

/* ---- consuming ---------------------------------------------------------- */

static void consume_message(runtime_t *rt, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (kafka_classify(rt->kafka.consumer, m->err) == KAFKA_ERR_FATAL)
            runtime_begin_drain(rt, 1, "the consumer failed fatally");
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consumer error", LOG_S("error", rd_kafka_message_errstr(m)));
        return;
    }
    part_t *pt = parts_get(rt, m->partition);
    if (pt == NULL || !pt->assigned || pt->revoking || runtime_draining(rt))
        return; /* not ours to start any more: the next owner reads it again */
    if (offsets_track(pt->offsets, m->offset) != 0) {
        log_debug("message already seen", LOG_I("partition", m->partition),
                  LOG_I("offset", m->offset));
        return;
    }
    job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        abort();
    job->partition = m->partition;
    job->offset = m->offset;
    job->generation = pt->generation;
    job->received_ns = clock_mono_ns();
    if (m->key != NULL) {
        job->key = malloc(m->key_len + 1);
        memcpy(job->key, m->key, m->key_len);
        job->key[m->key_len] = '\0';
        job->key_len = m->key_len;
    }
    job->value = malloc(m->len + 1);
    if (m->len > 0)
        memcpy(job->value, m->payload, m->len);
    job->value[m->len] = '\0';
    job->value_len = m->len;
    job->all_next = rt->jobs;
    if (rt->jobs != NULL)
        rt->jobs->all_prev = job;
    rt->jobs = job;
    rt->in_flight++;
    rt->in_flight_bytes += (int64_t)job->value_len;
    pt->bytes += (int64_t)job->value_len;

    if (envelope_decode(&rt->policy, job->key, m->key != NULL ? m->key_len : 0, job->value,
                        job->value_len, &job->env) == ENVELOPE_DLQ) {
        job->unanswerable = true;
        log_warn("unanswerable message sent to the DLQ", LOG_I("partition", job->partition),
                 LOG_I("offset", job->offset), LOG_S("error", job->env.error_message));
        settle_job_started(rt, job, true);
        metrics_dlq(rt->metrics, "invalid_request");
        settle_publish(rt, job, DELIVERY_DLQ);
        return;
    }
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
    parts_flow_apply(rt);
    runtime_dispatch(rt);
}

void runtime_producer_drain(runtime_t *rt)
{
    if (rt->kafka.producer == NULL)
        return;
    while (rd_kafka_poll(rt->kafka.producer, 0) > 0)
        ;
}

static void consumer_readable(uv_poll_t *h, int status, int events)
{
    runtime_t *rt = h->data;
    kafka_drain_pipe(rt->kafka.consumer_fds[0]);
    consume_drain(rt);
    parts_check_revoke(rt);
    runtime_check_drain(rt);
}

static void producer_readable(uv_poll_t *h, int status, int events)
{
    runtime_t *rt = h->data;
    kafka_drain_pipe(rt->kafka.producer_fds[0]);
    runtime_producer_drain(rt);
    parts_flow_apply(rt);
    parts_check_revoke(rt);
    runtime_check_drain(rt);
}

/* ---- executors ---------------------------------------------------------- */

static void post_probe(runtime_t *rt)
{
    int i = exec_idle(rt->exec);
    if (i < 0 || rt->probe_running)
        return;
    exec_task_t *t = calloc(1, sizeof(*t));
    t->kind = EXEC_PROBE;
    /* SELECT 1 passes through a pooler that loses prepared statements. */
    t->pooler_check = rt->pooler_fault;
    rt->probe_running = true;
    exec_post(rt->exec, i, t);
}

static void sched_timer_cb(uv_timer_t *t)
{
    runtime_dispatch(t->data);
}

static void probe_timer_cb(uv_timer_t *t)
{
    post_probe(t->data);
}

void runtime_dispatch(runtime_t *rt)
{
    if (runtime_draining(rt))
        return;
    if (rt->db_down) {
        if (!uv_is_active((uv_handle_t *)&rt->probe_timer))
            post_probe(rt);
        return;
    }
    int64_t now = runtime_now_ms();
    sched_poll(rt->sched, now);
    int idle;
    size_t ready;
    while ((idle = exec_idle_count(rt->exec)) > 0 && (ready = sched_ready(rt->sched)) > 0) {
        /* Spread ready accounts over idle executors: batches grow only when
         * there are more ready accounts than executors (group commit under
         * load, batches of one when quiet). */
        size_t size = (ready + (size_t)idle - 1) / (size_t)idle;
        if (size > (size_t)rt->cfg->batch_max)
            size = (size_t)rt->cfg->batch_max;
        exec_task_t *t = calloc(1, sizeof(*t));
        sched_item_t **items = calloc(size, sizeof(*items));
        if (t == NULL || items == NULL)
            abort();
        t->kind = EXEC_BATCH;
        t->njobs = sched_next_batch(rt->sched, now, items, size);
        t->jobs = (job_t **)items; /* job_t begins with its sched_item_t */
        for (size_t k = 0; k < t->njobs; k++)
            settle_job_started(rt, t->jobs[k], true);
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

/* The database failed (pooler: a pooler lost prepared statements): pause
 * consumption until a probe succeeds — after a pooler fault, only a pooler
 * check (pool/pooler.h) will do. One error line per outage, and one when it
 * turns out to be the pooler's, naming the fix. */
static void set_db_down(runtime_t *rt, const char *why, bool pooler)
{
    if (pooler && !rt->pooler_fault) {
        rt->pooler_fault = true;
        log_error("a connection pooler lost prepared statements: consumption paused until it "
                  "keeps them. Fix: PgBouncer 1.21 or later with max_prepared_statements set, "
                  "or TALLY_PREPARED_STATEMENTS=off",
                  LOG_S("error", why));
    }
    if (rt->db_down)
        return;
    rt->db_down = true;
    rt->probe_attempt = 0;
    if (!pooler)
        log_error("database unavailable: pausing consumption", LOG_S("error", why));
    parts_flow_apply(rt);
}

/* What /readyz and tally_database_up report. */
static bool db_up(const runtime_t *rt)
{
    return !rt->db_down && runtime_now_ms() - rt->db_ok_ms <= HEALTH_STALE_MS;
}

static void on_completion(uv_async_t *h)
{
    runtime_t *rt = h->data;
    exec_task_t *list = exec_take_completions(rt->exec);
    while (list != NULL) {
        exec_task_t *t = list;
        list = t->next;
        switch (t->kind) {
        case EXEC_BATCH:
            for (size_t i = 0; i < t->njobs; i++)
                settle_job(rt, t->jobs[i]);
            if (t->db_unavailable)
                set_db_down(rt, t->error, t->pooler_fault);
            else
                rt->db_ok_ms = runtime_now_ms();
            break;
        case EXEC_PROBE:
            rt->probe_running = false;
            /* A SELECT 1 posted before a pooler fault proves nothing about it. */
            if (t->ok && (!rt->pooler_fault || t->pooler_check)) {
                rt->db_ok_ms = runtime_now_ms();
                if (rt->db_down) {
                    rt->db_down = false;
                    rt->pooler_fault = false;
                    log_info("database is back: resuming", LOG_D("latency_ms", t->latency_ms),
                             LOG_B("pooler_checked", t->pooler_check));
                    parts_flow_apply(rt);
                }
            } else if (rt->db_down) {
                rt->probe_attempt++;
                int64_t delay = RETRY_BASE_MS + sched_backoff_ms(rt->probe_attempt, RETRY_BASE_MS,
                                                                 PROBE_CAP_MS, &rt->rng);
                log_debug("database still unavailable", LOG_I("attempt", rt->probe_attempt),
                          LOG_S("error", t->error));
                if (!runtime_stopped(rt))
                    uv_timer_start(&rt->probe_timer, probe_timer_cb, (uint64_t)delay, 0);
            } else {
                set_db_down(rt, t->error, t->pooler_fault);
            }
            break;
        case EXEC_PRUNE:
            rt->prune_running = false;
            if (t->ok)
                log_info("stored outcomes pruned", LOG_I("deleted", t->pruned),
                         LOG_I("retention_days", rt->cfg->outcome_retention_days));
            else
                log_warn("outcome pruning failed", LOG_S("error", t->error));
            break;
        }
        exec_task_free(t);
    }
    runtime_dispatch(rt);
    parts_flow_apply(rt);
    parts_check_revoke(rt);
    runtime_check_drain(rt);
}

/* ---- statistics, errors ------------------------------------------------- */

static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    runtime_t *rt = opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    json_t *parts = json_object_get(
        json_object_get(json_object_get(root, "topics"), rt->cfg->request_topic), "partitions");
    const char *key;
    json_t *v;
    metrics_clear_consumer_lag(rt->metrics);
    json_object_foreach(parts, key, v)
    {
        char *end;
        long p = strtol(key, &end, 10);
        if (*end != '\0' || p < 0 || p >= rt->nparts || !rt->parts[p].assigned)
            continue;
        json_t *lag = json_object_get(v, "consumer_lag");
        rt->parts[p].lag = json_is_integer(lag) ? json_integer_value(lag) : -1;
        if (rt->parts[p].lag >= 0)
            metrics_set_consumer_lag(rt->metrics, rt->cfg->request_topic, (int32_t)p,
                                     rt->parts[p].lag);
    }
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    runtime_t *rt = opaque;
    if (kafka_classify(rk, (rd_kafka_resp_err_t)err) == KAFKA_ERR_FATAL) {
        char why[512];
        rd_kafka_fatal_error(rk, why, sizeof(why));
        log_error("Kafka client failed fatally", LOG_S("client", rd_kafka_name(rk)),
                  LOG_S("error", why));
        runtime_begin_drain(rt, 1, "fatal Kafka error");
        return;
    }
    log_warn("Kafka client error", LOG_S("client", rd_kafka_name(rk)),
             LOG_S("error", rd_kafka_err2str((rd_kafka_resp_err_t)err)), LOG_S("reason", reason));
}

/* ---- drain and stop ------------------------------------------------------ */

void runtime_begin_drain(runtime_t *rt, int exit_code, const char *why)
{
    if (exit_code > rt->exit_code)
        rt->exit_code = exit_code;
    if (runtime_draining(rt))
        return;
    rt->phase = RT_DRAINING;
    rt->drain_deadline = runtime_now_ms() + rt->cfg->shutdown_timeout_ms;
    size_t dropped = parts_drop_queued(rt, true, 0);
    log_info("draining: finishing started requests", LOG_S("reason", why),
             LOG_I("dropped_queued", (int64_t)dropped), LOG_I("in_flight", rt->in_flight),
             LOG_I("timeout_ms", rt->cfg->shutdown_timeout_ms));
    parts_flow_apply(rt);
    runtime_check_drain(rt);
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
                          (uv_handle_t *)&rt->sigint};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++) {
        if (own[i]->loop != NULL && !uv_is_closing(own[i]))
            uv_close(own[i], NULL);
    }
    if (rt->http != NULL) {
        http_server_close(rt->http, NULL, NULL);
        rt->http = NULL;
    }
}

void runtime_check_drain(runtime_t *rt)
{
    if (!runtime_draining(rt) || runtime_stopped(rt))
        return;
    bool busy = exec_busy_count(rt->exec) > 0 && rt->in_flight > 0;
    for (job_t *j = rt->jobs; j != NULL && !busy; j = j->all_next)
        busy = j->started;
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
    rt->phase = RT_STOPPED;
    /* Acknowledgements first (they store offsets), then the final commit. */
    int64_t left = rt->drain_deadline - runtime_now_ms();
    rd_kafka_flush(rt->kafka.producer, (int)(left > 1000 ? left : 1000));
    runtime_producer_drain(rt);
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
        runtime_check_drain(rt);
        return;
    }
    runtime_begin_drain(rt, 0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void tick_cb(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t now = runtime_now_ms();
    /* Safety net: the pipes wake us, but the consumer must be polled within
     * max.poll.interval.ms even when nothing arrives. */
    consume_drain(rt);
    runtime_producer_drain(rt);
    if (runtime_stopped(rt))
        return;
    pool_reap_idle(rt->pool);
    if (!rt->db_down && !runtime_draining(rt) && now - rt->db_ok_ms > HEALTH_EVERY_MS &&
        now - rt->health_ms > HEALTH_EVERY_MS) {
        rt->health_ms = now;
        post_probe(rt);
    }
    if (!rt->db_down && !runtime_draining(rt) && !rt->prune_running && now >= rt->prune_ms) {
        int i = exec_idle(rt->exec);
        if (i >= 0) {
            exec_task_t *task = calloc(1, sizeof(*task));
            task->kind = EXEC_PRUNE;
            task->prune_days = rt->cfg->outcome_retention_days;
            rt->prune_running = true;
            rt->prune_ms = now + PRUNE_EVERY_MS;
            exec_post(rt->exec, i, task);
        }
    }
    settle_reap_stuck(rt);
    parts_check_revoke(rt);
    runtime_check_drain(rt);
}

/* ---- HTTP ---------------------------------------------------------------- */

#define POOLER_FAULT_REASON                                                                        \
    "database unavailable: a connection pooler lost prepared statements (PgBouncer 1.21 or "       \
    "later with max_prepared_statements, or TALLY_PREPARED_STATEMENTS=off)"

static int paused_count(const runtime_t *rt)
{
    int n = 0;
    for (int32_t p = 0; p < rt->nparts; p++)
        n += rt->parts[p].assigned && rt->parts[p].paused;
    return n;
}

static void set_body(http_response_t *resp, int status, const char *type, char *body)
{
    resp->status = status;
    resp->content_type = type;
    resp->body = body;
    resp->len = body != NULL ? strlen(body) : 0;
}

static void http_cb(void *ctx, const char *method, const char *path, http_response_t *resp)
{
    runtime_t *rt = ctx;
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/healthz") == 0) {
        set_body(resp, 200, "text/plain; charset=utf-8", strdup("ok\n"));
    } else if (strcmp(path, "/readyz") == 0) {
        bool db = db_up(rt);
        /* Not gated on partitions (CONTRACT §7): a replica beyond the
         * partition count is ready and says partitions: 0, so a rollout that
         * surges one pod, or an autoscaler at the partition count, never
         * waits for a partition that will not come. */
        bool ready = db && !runtime_draining(rt);
        json_t *reasons = json_array();
        if (rt->pooler_fault)
            json_array_append_new(reasons, json_string(POOLER_FAULT_REASON));
        else if (rt->db_down)
            json_array_append_new(reasons, json_string("database unavailable"));
        else if (!db)
            json_array_append_new(reasons, json_string("database not checked recently"));
        if (runtime_draining(rt))
            json_array_append_new(reasons, json_string("draining"));
        json_t *o = json_pack("{s:b,s:b,s:i,s:b,s:I,s:I,s:o}", "ready", ready, "database", db,
                              "partitions", rt->assigned, "draining", runtime_draining(rt),
                              "in_flight", (json_int_t)rt->in_flight, "stuck_deliveries",
                              (json_int_t)rt->n_stuck, "reasons", reasons);
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        set_body(resp, ready ? 200 : 503, "application/json", text);
    } else if (strcmp(path, "/metrics") == 0) {
        pool_stats_t ps;
        pool_stats(rt->pool, &ps);
        metrics_set_pool(rt->metrics, ps.idle, ps.active, ps.connecting);
        metrics_set_in_flight(rt->metrics, rt->in_flight);
        metrics_set_paused_partitions(rt->metrics, paused_count(rt));
        metrics_set_database_up(rt->metrics, db_up(rt));
        metrics_set_stuck_deliveries(rt->metrics, rt->n_stuck);
        char *text = NULL;
        size_t len = 0;
        if (metrics_render(rt->metrics, &text, &len) == 0) {
            resp->status = 200;
            resp->content_type = METRICS_CONTENT_TYPE;
            resp->body = text;
            resp->len = len;
        } else {
            set_body(resp, 500, "text/plain; charset=utf-8", strdup("out of memory\n"));
        }
    }
}

/* ---- run ----------------------------------------------------------------- */

int runtime_run(const config_t *cfg, pool_t *pool, const char *worker_name, bool *pool_in_use)
{
    *pool_in_use = false;
    runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return 1;
    int rc = 1;
    char err[512];
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
    uv_loop_init(&rt->loop);
    uv_async_init(&rt->loop, &rt->wake, on_completion);
    rt->wake.data = rt;

    kafka_callbacks_t cb = {.opaque = rt,
                            .rebalance = parts_rebalance_cb,
                            .delivery = settle_delivery_cb,
                            .stats = stats_cb,
                            .error = error_cb};
    if (kafka_open(&rt->kafka, cfg, &cb, err, sizeof(err)) != 0) {
        log_error("cannot start Kafka clients", LOG_S("error", err));
        goto out;
    }
    exec_config_t ec = {
        .pool = pool, .threads = cfg->pool_max, .worker_name = rt->worker_name, .wake = &rt->wake};
    rt->exec = exec_start(&ec);
    if (rt->exec == NULL) {
        log_error("cannot start executor threads");
        goto out;
    }

    if (http_server_start(&rt->loop, cfg->http_addr, http_cb, rt, &rt->http, err, sizeof(err)) !=
        0) {
        log_error("cannot start the HTTP server", LOG_S("http_addr", cfg->http_addr),
                  LOG_S("error", err));
        goto out;
    }
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

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, cfg->request_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rt->kafka.consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (kerr != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_error("cannot subscribe", LOG_S("topic", cfg->request_topic),
                  LOG_S("error", rd_kafka_err2str(kerr)));
        rt->phase = RT_DRAINING; /* nothing started: stop at once */
        rt->exit_code = 1;
        runtime_check_drain(rt);
    } else {
        log_info("worker started", LOG_S("worker", rt->worker_name),
                 LOG_S("group_id", cfg->group_id), LOG_S("topic", cfg->request_topic),
                 LOG_I("executors", cfg->pool_max), LOG_I("max_in_flight", cfg->max_in_flight),
                 LOG_I("batch_max", cfg->batch_max));
    }
    consume_drain(rt);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    rc = rt->exit_code;

out:
    if (rt->kafka.consumer != NULL) {
        rt->phase = RT_CLOSING;
        rd_kafka_consumer_close(rt->kafka.consumer); /* leaves the group */
    }
    if (rt->exec != NULL) {
        bool abandoned = false;
        exec_task_t *left = exec_stop(rt->exec, EXEC_STOP_GRACE_MS, &abandoned);
        if (abandoned) {
            /* An executor is stuck beyond the cancel (a database host that
             * vanished): its jobs, the pool and the loop stay as they are
             * for the process's exit; nothing was committed for them. */
            log_warn("an executor did not stop in time: exiting without it",
                     LOG_I("grace_ms", EXEC_STOP_GRACE_MS));
            kafka_destroy(&rt->kafka);
            *pool_in_use = true;
            log_info("worker stopped", LOG_I("exit_code", rc));
            return rc;
        }
        while (left != NULL) {
            exec_task_t *t = left;
            left = t->next;
            exec_task_free(t); /* their jobs are in rt->jobs */
        }
    }
    settle_free_deliveries(rt);
    kafka_destroy(&rt->kafka);
    while (rt->jobs != NULL)
        settle_job_free(rt, rt->jobs);
    for (int32_t p = 0; p < rt->nparts; p++)
        offsets_free(rt->parts[p].offsets);
    free(rt->parts);
    sched_free(rt->sched);
    if (rt->http != NULL)
        http_server_close(rt->http, NULL, NULL);
    uv_walk(&rt->loop, close_walk_cb, NULL);
    uv_run(&rt->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&rt->loop) != 0) {
        log_error("event loop did not close cleanly");
        rc = 1;
    }
    metrics_free(rt->metrics);
    free(rt);
    log_info("worker stopped", LOG_I("exit_code", rc));
    return rc;
}
