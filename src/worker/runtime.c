#include "runtime.h"

#include "answer.h"
#include "common/clock.h"
#include "common/log.h"
#include "envelope.h"
#include "exec.h"
#include "flow.h"
#include "http.h"
#include "job.h"
#include "kafka.h"
#include "metrics.h"
#include "offsets.h"
#include "scheduler.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define RETRY_BASE_MS   100
#define RETRY_CAP_MS    10000
#define PROBE_CAP_MS    5000
#define TICK_MS         1000
#define HEALTH_EVERY_MS 5000
#define HEALTH_STALE_MS 30000
#define PRUNE_EVERY_MS  (3600 * 1000)
#define PRUNE_FIRST_MS  (60 * 1000)

typedef struct part {
    bool assigned;
    bool revoking; /* in a pending revocation: nothing new starts */
    bool paused;
    uint64_t generation;
    offsets_t *offsets;
    int64_t started; /* jobs handed to executors or being published */
    int64_t stored;  /* last offset stored for commit, -1 when none */
    int64_t lag;     /* from librdkafka statistics, -1 unknown */
} part_t;

typedef enum delivery_kind { DELIVERY_RESULT, DELIVERY_AUDIT, DELIVERY_DLQ } delivery_kind_t;

typedef struct delivery {
    job_t *job;
    delivery_kind_t kind;
    bool redirected; /* reply_to failed: the result goes to the results topic */
    bool stub;       /* the DLQ refused the original: send its headers without the value */
    char redirect_reason[128];
    int attempts;
    int64_t due_ms;
    struct delivery *next;
} delivery_t;

typedef struct runtime {
    const config_t *cfg;
    pool_t *pool;
    char worker_name[128];
    uv_loop_t loop;
    uv_poll_t consumer_poll, producer_poll;
    uv_async_t wake;
    uv_timer_t sched_timer, tick_timer, redeliver_timer, probe_timer;
    uv_signal_t sigterm, sigint;
    kafka_t kafka;
    exec_t *exec;
    http_server_t *http;
    metrics_t *metrics;
    sched_t *sched;

    part_t *parts;
    int32_t nparts; /* capacity of parts */
    int assigned;
    int64_t in_flight;
    job_t *jobs; /* every live job */

    delivery_t *redeliver; /* waiting for their due time */

    bool db_down;
    bool probe_running;
    int probe_attempt;
    int64_t db_ok_ms;  /* last time the database answered */
    int64_t health_ms; /* last periodic health check started */
    int64_t prune_ms;  /* next prune due */
    bool prune_running;

    rd_kafka_topic_partition_list_t *revoke; /* a deferred revocation */
    int64_t revoke_deadline;
    bool closing; /* rd_kafka_consumer_close is running */

    bool draining;
    int64_t drain_deadline;
    bool stopped;
    int exit_code;
    uint64_t rng;
} runtime_t;

static void dispatch(runtime_t *rt);
static void flow_apply(runtime_t *rt);
static void check_revoke(runtime_t *rt);
static void check_drain(runtime_t *rt);
static void begin_drain(runtime_t *rt, int exit_code, const char *why);
static void produce(runtime_t *rt, delivery_t *d);
static void delivery_failed(runtime_t *rt, delivery_t *d, rd_kafka_resp_err_t err);

static int64_t now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

/* ---- partitions ------------------------------------------------------- */

static part_t *part_get(runtime_t *rt, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= rt->nparts) {
        int32_t n = rt->nparts ? rt->nparts : 16;
        while (n <= p)
            n *= 2;
        part_t *np = realloc(rt->parts, (size_t)n * sizeof(*np));
        if (np == NULL)
            return NULL;
        for (int32_t i = rt->nparts; i < n; i++)
            np[i] = (part_t){.stored = -1, .lag = -1};
        rt->parts = np;
        rt->nparts = n;
    }
    return &rt->parts[p];
}

static bool job_current(runtime_t *rt, const job_t *job)
{
    return job->partition < rt->nparts && rt->parts[job->partition].assigned &&
           rt->parts[job->partition].generation == job->generation;
}

static void part_release(runtime_t *rt, part_t *pt)
{
    if (pt->assigned)
        rt->assigned--;
    offsets_free(pt->offsets);
    uint64_t gen = pt->generation;
    *pt = (part_t){.stored = -1, .lag = -1, .generation = gen + 1};
}

/* ---- jobs ------------------------------------------------------------- */

static void job_free(runtime_t *rt, job_t *job)
{
    if (job->all_prev != NULL)
        job->all_prev->all_next = job->all_next;
    else
        rt->jobs = job->all_next;
    if (job->all_next != NULL)
        job->all_next->all_prev = job->all_prev;
    rt->in_flight--;
    envelope_clear(&job->env);
    free(job->key);
    free(job->value);
    free(job->result_text);
    free(job->audit_text);
    free(job);
}

static void job_set_started(runtime_t *rt, job_t *job, bool started)
{
    if (job->started == started)
        return;
    job->started = started;
    if (job_current(rt, job))
        rt->parts[job->partition].started += started ? 1 : -1;
}

/* The job is finished (answered and acknowledged, or dead-lettered and
 * acknowledged): its offset may be committed. */
static void job_done(runtime_t *rt, job_t *job)
{
    if (job_current(rt, job)) {
        part_t *pt = &rt->parts[job->partition];
        int64_t next;
        offsets_done(pt->offsets, job->offset);
        if (offsets_advance(pt->offsets, &next)) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rt->cfg->request_topic, job->partition)->offset =
                next;
            rd_kafka_resp_err_t err = rd_kafka_offsets_store(rt->kafka.consumer, l);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
                log_warn("offset store failed", LOG_I("partition", job->partition),
                         LOG_I("offset", next), LOG_S("error", rd_kafka_err2str(err)));
            else
                pt->stored = next;
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    job_set_started(rt, job, false);
    job_free(rt, job);
}

/* Which queued (not started) jobs to drop: all, or one partition's. */
typedef struct drop_ctx {
    runtime_t *rt;
    bool all;
    int32_t partition;
} drop_ctx_t;

static bool drop_pred(const sched_item_t *it, void *arg)
{
    const drop_ctx_t *c = arg;
    return c->all || ((const job_t *)it)->partition == c->partition;
}

static void drop_job(sched_item_t *it, void *arg)
{
    job_free(((drop_ctx_t *)arg)->rt, (job_t *)it);
}

static size_t drop_queued(runtime_t *rt, bool all, int32_t partition)
{
    drop_ctx_t c = {.rt = rt, .all = all, .partition = partition};
    return sched_drop(rt->sched, drop_pred, drop_job, &c);
}

/* ---- publishing --------------------------------------------------------- */

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static void redeliver_cb(uv_timer_t *t);

/* Arms the redelivery timer for the earliest due delivery. */
static void arm_redeliver(runtime_t *rt)
{
    if (rt->redeliver == NULL || rt->stopped)
        return;
    int64_t due = INT64_MAX;
    for (delivery_t *d = rt->redeliver; d != NULL; d = d->next)
        due = d->due_ms < due ? d->due_ms : due;
    int64_t wait = due - now_ms();
    uv_timer_start(&rt->redeliver_timer, redeliver_cb, (uint64_t)(wait > 1 ? wait : 1), 0);
}

static void redeliver_later(runtime_t *rt, delivery_t *d, const char *why)
{
    d->attempts++;
    d->due_ms = now_ms() + sched_backoff_ms(d->attempts, RETRY_BASE_MS, RETRY_CAP_MS, &rt->rng);
    log_warn("delivery failed, will retry", LOG_S("account_id", d->job->env.account.id),
             LOG_S("request_id", d->job->env.id), LOG_I("attempt", d->attempts),
             LOG_S("error", why));
    d->next = rt->redeliver;
    rt->redeliver = d;
    arm_redeliver(rt);
}

static void redeliver_cb(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t now = now_ms();
    delivery_t *due = NULL;
    for (delivery_t **pp = &rt->redeliver; *pp != NULL;) {
        delivery_t *d = *pp;
        if (d->due_ms <= now) {
            *pp = d->next;
            d->next = due;
            due = d;
        } else {
            pp = &d->next;
        }
    }
    while (due != NULL) {
        delivery_t *d = due;
        due = d->next;
        d->next = NULL;
        produce(rt, d);
    }
    arm_redeliver(rt);
}

static void produce(runtime_t *rt, delivery_t *d)
{
    const config_t *cfg = rt->cfg;
    job_t *job = d->job;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    const char *topic;
    const void *key, *value;
    size_t key_len, value_len;
    char num[32];
    switch (d->kind) {
    case DELIVERY_RESULT:
        topic =
            job->env.reply_to[0] != '\0' && !d->redirected ? job->env.reply_to : cfg->result_topic;
        key = job->env.account.id;
        key_len = strlen(job->env.account.id);
        value = job->result_text;
        value_len = strlen(job->result_text);
        add_header(h, "tally-account-id", job->env.account.id);
        add_header(h, "tally-request-id", job->env.id);
        add_header(h, "tally-status", job->ok ? "ok" : "error");
        if (d->redirected) {
            add_header(h, "tally-reply-to", job->env.reply_to);
            add_header(h, "tally-reply-to-error", d->redirect_reason);
        }
        break;
    case DELIVERY_AUDIT:
        topic = cfg->audit_topic;
        key = job->env.account.id;
        key_len = strlen(job->env.account.id);
        value = job->audit_text;
        value_len = strlen(job->audit_text);
        break;
    case DELIVERY_DLQ:
    default:
        topic = cfg->dlq_topic;
        key = job->key;
        key_len = job->key_len;
        value = d->stub ? NULL : job->value;
        value_len = d->stub ? 0 : job->value_len;
        if (d->stub) {
            snprintf(num, sizeof(num), "%zu", job->value_len);
            add_header(h, "tally-dlq-value-omitted", num);
            add_header(h, "tally-dlq-omitted-reason", d->redirect_reason);
        }
        add_header(
            h, "tally-error-code",
            tally_errcode_str(job->unanswerable ? TALLY_ERR_INVALID_REQUEST : TALLY_ERR_INTERNAL));
        add_header(h, "tally-error-message", job->env.error_message);
        add_header(h, "tally-source-topic", cfg->request_topic);
        snprintf(num, sizeof(num), "%" PRId32, job->partition);
        add_header(h, "tally-source-partition", num);
        snprintf(num, sizeof(num), "%" PRId64, job->offset);
        add_header(h, "tally-source-offset", num);
        break;
    }
    /* No copy: the texts live in the job until every delivery is acknowledged. */
    rd_kafka_resp_err_t err =
        rd_kafka_producev(rt->kafka.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                          RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_headers_destroy(h); /* still ours when producev fails */
    delivery_failed(rt, d, err);
}

/* A delivery failed (synchronously or in its report): decide how to go on.
 * Nothing is dropped: a retriable failure is produced again after a backoff
 * (the offset stays uncommitted meanwhile); a result whose reply_to topic
 * cannot take it goes to the results topic with tally-reply-to* headers; a
 * DLQ copy the DLQ cannot take (too large) goes there without its value,
 * with tally-dlq-value-omitted naming its size (the source headers still
 * locate the original). */
static void delivery_failed(runtime_t *rt, delivery_t *d, rd_kafka_resp_err_t err)
{
    kafka_err_class_t cls = kafka_classify(rt->kafka.producer, err);
    if (cls == KAFKA_ERR_FATAL)
        begin_drain(rt, 1, "the producer failed fatally");
    job_t *job = d->job;
    if (cls == KAFKA_ERR_TOPIC && d->kind == DELIVERY_RESULT && !d->redirected &&
        job->env.reply_to[0] != '\0' && strcmp(job->env.reply_to, rt->cfg->result_topic) != 0) {
        d->redirected = true;
        snprintf(d->redirect_reason, sizeof(d->redirect_reason), "%s", rd_kafka_err2str(err));
        log_warn("reply_to cannot take the result: sent to the results topic",
                 LOG_S("account_id", job->env.account.id), LOG_S("request_id", job->env.id),
                 LOG_S("reply_to", job->env.reply_to), LOG_S("error", d->redirect_reason));
        produce(rt, d);
        return;
    }
    if (cls == KAFKA_ERR_TOPIC && d->kind == DELIVERY_DLQ && !d->stub && job->value_len > 0) {
        d->stub = true;
        snprintf(d->redirect_reason, sizeof(d->redirect_reason), "%s", rd_kafka_err2str(err));
        log_error("the DLQ refused a message: sending it without its value",
                  LOG_I("partition", job->partition), LOG_I("offset", job->offset),
                  LOG_I("bytes", (int64_t)job->value_len), LOG_S("error", d->redirect_reason));
        produce(rt, d);
        return;
    }
    redeliver_later(rt, d, rd_kafka_err2str(err));
}

static void publish(runtime_t *rt, job_t *job, delivery_kind_t kind)
{
    delivery_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        abort(); /* losing a delivery silently is worse than a restart */
    d->job = job;
    d->kind = kind;
    job->pending_acks++;
    produce(rt, d);
}

/* Producer delivery report (loop thread, from rd_kafka_poll on the producer). */
static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    runtime_t *rt = opaque;
    delivery_t *d = msg->_private;
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        delivery_failed(rt, d, msg->err);
        return;
    }
    job_t *job = d->job;
    free(d);
    if (--job->pending_acks == 0)
        job_done(rt, job);
}

/* ---- settle: the one place that turns an outcome into actions ----------- */

static void settle(runtime_t *rt, job_t *job)
{
    int64_t now = now_ms();
    switch (job->status) {
    case JOB_ANSWERED:
        sched_finish(rt->sched, &job->item);
        if (job->final_internal)
            log_warn("request answered", LOG_S("account_id", job->env.account.id),
                     LOG_S("request_id", job->env.id), LOG_S("type", job->env.type),
                     LOG_S("error_code", tally_errcode_str(job->error_code)),
                     LOG_B("replayed", job->replayed), LOG_I("partition", job->partition),
                     LOG_I("offset", job->offset));
        else
            log_debug("request answered", LOG_S("account_id", job->env.account.id),
                      LOG_S("request_id", job->env.id), LOG_S("type", job->env.type),
                      LOG_B("replayed", job->replayed), LOG_I("partition", job->partition),
                      LOG_I("offset", job->offset));
        metrics_request_done(rt->metrics, job->env.type[0] ? job->env.type : NULL,
                             job->ok ? "ok" : "error",
                             job->ok ? NULL : tally_errcode_str(job->error_code),
                             (double)(clock_mono_ns() - job->received_ns) / 1e9, job->replayed);
        publish(rt, job, DELIVERY_RESULT);
        publish(rt, job, DELIVERY_AUDIT);
        if (job->final_internal) {
            metrics_dlq(rt->metrics, "internal");
            publish(rt, job, DELIVERY_DLQ);
        }
        return;
    case JOB_RETRY:
    case JOB_REQUEUE:
        if (!job_current(rt, job) || rt->parts[job->partition].revoking || rt->draining) {
            /* Its partition is going away: not finished, so not committed;
             * the next owner runs it. */
            sched_finish(rt->sched, &job->item);
            job_set_started(rt, job, false);
            job_free(rt, job);
            return;
        }
        job_set_started(rt, job, false);
        if (job->status == JOB_REQUEUE) {
            sched_retry(rt->sched, &job->item, now, 0);
            return;
        }
        job->attempts++;
        metrics_retry(rt->metrics);
        if (job->attempts >= rt->cfg->max_retries) {
            log_error("request failed after all attempts: answering internal",
                      LOG_S("account_id", job->env.account.id), LOG_S("request_id", job->env.id),
                      LOG_I("attempts", job->attempts), LOG_S("error", job->fail_reason),
                      LOG_I("partition", job->partition), LOG_I("offset", job->offset));
            job->final_internal = true;
            job->env.error = TALLY_ERR_INTERNAL;
            job->env.error_field[0] = '\0';
            snprintf(job->env.error_message, sizeof(job->env.error_message),
                     "processing failed after %d attempts", job->attempts);
            sched_retry(rt->sched, &job->item, now, 0);
            return;
        }
        int64_t delay = sched_backoff_ms(job->attempts, RETRY_BASE_MS, RETRY_CAP_MS, &rt->rng);
        log_warn("request will be retried", LOG_S("account_id", job->env.account.id),
                 LOG_S("request_id", job->env.id), LOG_I("attempt", job->attempts),
                 LOG_I("delay_ms", delay), LOG_S("error", job->fail_reason));
        sched_retry(rt->sched, &job->item, now, delay);
        return;
    }
}

/* ---- consuming ---------------------------------------------------------- */

static void consume_message(runtime_t *rt, rd_kafka_message_t *m)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (kafka_classify(rt->kafka.consumer, m->err) == KAFKA_ERR_FATAL)
            begin_drain(rt, 1, "the consumer failed fatally");
        else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            log_warn("consumer error", LOG_S("error", rd_kafka_message_errstr(m)));
        return;
    }
    part_t *pt = part_get(rt, m->partition);
    if (pt == NULL || !pt->assigned || pt->revoking || rt->draining)
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

    if (envelope_decode(job->key, m->key != NULL ? m->key_len : 0, job->value, job->value_len,
                        &job->env) == ENVELOPE_DLQ) {
        job->unanswerable = true;
        log_warn("unanswerable message sent to the DLQ", LOG_I("partition", job->partition),
                 LOG_I("offset", job->offset), LOG_S("error", job->env.error_message));
        job_set_started(rt, job, true);
        metrics_dlq(rt->metrics, "invalid_request");
        publish(rt, job, DELIVERY_DLQ);
        return;
    }
    sched_push(rt->sched, &job->item, job->env.account.id);
}

static void consume_drain(runtime_t *rt)
{
    if (rt->stopped || rt->kafka.consumer == NULL)
        return;
    rd_kafka_message_t *m;
    int since_flow = 0;
    while ((m = rd_kafka_consumer_poll(rt->kafka.consumer, 0)) != NULL) {
        consume_message(rt, m);
        rd_kafka_message_destroy(m);
        if (rt->stopped)
            return;
        /* Over the window, pause the heavy partitions while draining, not
         * only after: the local queue (queued.max.messages.kbytes) may hold
         * many more messages than the window. */
        if (rt->in_flight >= rt->cfg->max_in_flight && ++since_flow >= 64) {
            flow_apply(rt);
            since_flow = 0;
        }
    }
    flow_apply(rt);
    dispatch(rt);
}

static void producer_drain(runtime_t *rt)
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
    check_revoke(rt);
    check_drain(rt);
}

static void producer_readable(uv_poll_t *h, int status, int events)
{
    runtime_t *rt = h->data;
    kafka_drain_pipe(rt->kafka.producer_fds[0]);
    producer_drain(rt);
    flow_apply(rt);
    check_revoke(rt);
    check_drain(rt);
}

/* ---- flow control ------------------------------------------------------ */

static void flow_apply(runtime_t *rt)
{
    if (rt->stopped || rt->nparts == 0)
        return;
    size_t n = 0;
    int32_t *idx = calloc((size_t)rt->nparts, sizeof(*idx));
    int64_t *inf = calloc((size_t)rt->nparts, sizeof(*inf));
    bool *paused = calloc((size_t)rt->nparts, sizeof(*paused));
    bool *want = calloc((size_t)rt->nparts, sizeof(*want));
    if (idx == NULL || inf == NULL || paused == NULL || want == NULL)
        goto out;
    for (int32_t p = 0; p < rt->nparts; p++) {
        if (!rt->parts[p].assigned)
            continue;
        idx[n] = p;
        inf[n] = (int64_t)offsets_in_flight(rt->parts[p].offsets);
        paused[n] = rt->parts[p].paused;
        n++;
    }
    flow_decide(rt->cfg->max_in_flight, n, inf, paused, want);
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(4);
    rd_kafka_topic_partition_list_t *resume = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        part_t *pt = &rt->parts[idx[i]];
        bool w = want[i] || rt->db_down || rt->draining || pt->revoking;
        if (w == pt->paused)
            continue;
        rd_kafka_topic_partition_list_add(w ? pause : resume, rt->cfg->request_topic, idx[i]);
        pt->paused = w;
    }
    if (pause->cnt > 0)
        rd_kafka_pause_partitions(rt->kafka.consumer, pause);
    if (resume->cnt > 0)
        rd_kafka_resume_partitions(rt->kafka.consumer, resume);
    if (pause->cnt + resume->cnt > 0)
        log_debug("flow control", LOG_I("paused", pause->cnt), LOG_I("resumed", resume->cnt),
                  LOG_I("in_flight", rt->in_flight));
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
out:
    free(idx);
    free(inf);
    free(paused);
    free(want);
}

/* ---- executors ---------------------------------------------------------- */

static void post_probe(runtime_t *rt)
{
    int i = exec_idle(rt->exec);
    if (i < 0 || rt->probe_running)
        return;
    exec_task_t *t = calloc(1, sizeof(*t));
    t->kind = EXEC_PROBE;
    rt->probe_running = true;
    exec_post(rt->exec, i, t);
}

static void sched_timer_cb(uv_timer_t *t)
{
    dispatch(t->data);
}

static void probe_timer_cb(uv_timer_t *t)
{
    post_probe(t->data);
}

static void dispatch(runtime_t *rt)
{
    if (rt->stopped || rt->draining)
        return;
    if (rt->db_down) {
        if (!uv_is_active((uv_handle_t *)&rt->probe_timer))
            post_probe(rt);
        return;
    }
    int64_t now = now_ms();
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
            job_set_started(rt, t->jobs[k], true);
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

static void set_db_down(runtime_t *rt, const char *why)
{
    if (rt->db_down)
        return;
    rt->db_down = true;
    rt->probe_attempt = 0;
    log_error("database unavailable: pausing consumption", LOG_S("error", why));
    flow_apply(rt);
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
                settle(rt, t->jobs[i]);
            if (t->db_unavailable)
                set_db_down(rt, t->error);
            else
                rt->db_ok_ms = now_ms();
            break;
        case EXEC_PROBE:
            rt->probe_running = false;
            if (t->ok) {
                rt->db_ok_ms = now_ms();
                if (rt->db_down) {
                    rt->db_down = false;
                    log_info("database is back: resuming", LOG_D("latency_ms", t->latency_ms));
                    flow_apply(rt);
                }
            } else if (rt->db_down) {
                rt->probe_attempt++;
                int64_t delay = RETRY_BASE_MS + sched_backoff_ms(rt->probe_attempt, RETRY_BASE_MS,
                                                                 PROBE_CAP_MS, &rt->rng);
                log_debug("database still unavailable", LOG_I("attempt", rt->probe_attempt),
                          LOG_S("error", t->error));
                if (!rt->stopped)
                    uv_timer_start(&rt->probe_timer, probe_timer_cb, (uint64_t)delay, 0);
            } else {
                set_db_down(rt, t->error);
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
    dispatch(rt);
    flow_apply(rt);
    check_revoke(rt);
    check_drain(rt);
}

/* ---- rebalance ----------------------------------------------------------- */

static void commit_parts(runtime_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = part_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned && pt->stored >= 0)
            rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, parts->elems[i].partition)
                ->offset = pt->stored;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(rt->kafka.consumer, l, 0 /* sync */);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_warn("offset commit failed", LOG_S("error", rd_kafka_err2str(err)));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Ends a revocation: commit what finished, forget the partitions, unassign. */
static void finish_revoke(runtime_t *rt, rd_kafka_topic_partition_list_t *parts, bool commit)
{
    if (commit)
        commit_parts(rt, parts);
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = part_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned) {
            drop_queued(rt, false, parts->elems[i].partition);
            part_release(rt, pt);
        }
    }
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(rt->kafka.consumer, parts);
    if (e != NULL) {
        log_warn("incremental unassign failed", LOG_S("error", rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
    }
    log_info("partitions revoked", LOG_I("count", parts->cnt), LOG_B("committed", commit));
}

static void check_revoke(runtime_t *rt)
{
    if (rt->revoke == NULL)
        return;
    bool busy = false;
    for (int i = 0; i < rt->revoke->cnt; i++) {
        part_t *pt = part_get(rt, rt->revoke->elems[i].partition);
        if (pt != NULL && pt->assigned && pt->started > 0)
            busy = true;
    }
    if (busy && now_ms() < rt->revoke_deadline)
        return;
    if (busy)
        log_warn("revocation timed out: unfinished requests are left to the next owner");
    producer_drain(rt); /* acknowledgements that already arrived count */
    rd_kafka_topic_partition_list_t *l = rt->revoke;
    rt->revoke = NULL;
    finish_revoke(rt, l, true);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Rebalance callback (loop thread, from rd_kafka_consumer_poll, or from
 * rd_kafka_consumer_close at the very end). */
static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    runtime_t *rt = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int i = 0; i < parts->cnt; i++) {
            part_t *pt = part_get(rt, parts->elems[i].partition);
            if (pt == NULL)
                abort();
            if (pt->assigned)
                part_release(rt, pt);
            pt->assigned = true;
            pt->offsets = offsets_new();
            pt->stored = -1;
            pt->lag = -1;
            rt->assigned++;
        }
        rd_kafka_error_t *e = NULL;
        if (cooperative)
            e = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        /* A partition paused while it was ours before (flow control, a
         * revocation) keeps librdkafka's pause flag: start it flowing. */
        rd_kafka_resume_partitions(rk, parts);
        if (e != NULL) {
            log_error("incremental assign failed", LOG_S("error", rd_kafka_error_string(e)));
            rd_kafka_error_destroy(e);
        }
        log_info("partitions assigned", LOG_I("count", parts->cnt),
                 LOG_I("assigned", rt->assigned));
        flow_apply(rt);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_error("rebalance error", LOG_S("error", rd_kafka_err2str(err)));
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
        return;
    }
    /* A revocation supersedes any deferred one: finish that first. */
    if (rt->revoke != NULL) {
        rd_kafka_topic_partition_list_t *l = rt->revoke;
        rt->revoke = NULL;
        finish_revoke(rt, l, !rd_kafka_assignment_lost(rk));
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (rt->closing || rd_kafka_assignment_lost(rk) || !cooperative) {
        /* Lost partitions belong to someone else already: commit nothing.
         * At close, the drain has committed. */
        bool lost = rd_kafka_assignment_lost(rk);
        if (cooperative) {
            finish_revoke(rt, parts, !lost && !rt->closing);
        } else {
            if (!lost && !rt->closing)
                commit_parts(rt, parts);
            for (int i = 0; i < parts->cnt; i++) {
                part_t *pt = part_get(rt, parts->elems[i].partition);
                if (pt != NULL && pt->assigned) {
                    drop_queued(rt, false, parts->elems[i].partition);
                    part_release(rt, pt);
                }
            }
            rd_kafka_assign(rk, NULL);
        }
        return;
    }
    /* Stop starting work of these partitions; let started jobs finish (bounded
     * by the shutdown timeout), then commit and unassign (check_revoke). */
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = part_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned) {
            pt->revoking = true;
            drop_queued(rt, false, parts->elems[i].partition);
        }
    }
    rt->revoke = rd_kafka_topic_partition_list_copy(parts);
    rt->revoke_deadline = now_ms() + rt->cfg->shutdown_timeout_ms;
    log_info("partitions being revoked", LOG_I("count", parts->cnt));
    flow_apply(rt);
    check_revoke(rt);
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
        begin_drain(rt, 1, "fatal Kafka error");
        return;
    }
    log_warn("Kafka client error", LOG_S("client", rd_kafka_name(rk)),
             LOG_S("error", rd_kafka_err2str((rd_kafka_resp_err_t)err)), LOG_S("reason", reason));
}

/* ---- drain and stop ------------------------------------------------------ */

static void begin_drain(runtime_t *rt, int exit_code, const char *why)
{
    if (exit_code > rt->exit_code)
        rt->exit_code = exit_code;
    if (rt->draining)
        return;
    rt->draining = true;
    rt->drain_deadline = now_ms() + rt->cfg->shutdown_timeout_ms;
    size_t dropped = drop_queued(rt, true, 0);
    log_info("draining: finishing started requests", LOG_S("reason", why),
             LOG_I("dropped_queued", (int64_t)dropped), LOG_I("in_flight", rt->in_flight),
             LOG_I("timeout_ms", rt->cfg->shutdown_timeout_ms));
    flow_apply(rt);
    check_drain(rt);
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

static void check_drain(runtime_t *rt)
{
    if (!rt->draining || rt->stopped)
        return;
    bool busy = exec_busy_count(rt->exec) > 0 && rt->in_flight > 0;
    for (job_t *j = rt->jobs; j != NULL && !busy; j = j->all_next)
        busy = j->started;
    if (busy && now_ms() < rt->drain_deadline)
        return;
    if (busy)
        log_warn("drain timed out: unfinished requests are left for redelivery",
                 LOG_I("in_flight", rt->in_flight));
    rt->stopped = true;
    /* Acknowledgements first (they store offsets), then the final commit. */
    int64_t left = rt->drain_deadline - now_ms();
    rd_kafka_flush(rt->kafka.producer, (int)(left > 1000 ? left : 1000));
    producer_drain(rt);
    if (rt->revoke != NULL) {
        rd_kafka_topic_partition_list_t *l = rt->revoke;
        rt->revoke = NULL;
        finish_revoke(rt, l, true);
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
    if (rt->draining) {
        log_warn("second signal: stopping now", LOG_I("signal", signum));
        rt->drain_deadline = 0;
        check_drain(rt);
        return;
    }
    begin_drain(rt, 0, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void tick_cb(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t now = now_ms();
    /* Safety net: the pipes wake us, but the consumer must be polled within
     * max.poll.interval.ms even when nothing arrives. */
    consume_drain(rt);
    producer_drain(rt);
    if (rt->stopped)
        return;
    pool_reap_idle(rt->pool);
    if (!rt->db_down && !rt->draining && now - rt->db_ok_ms > HEALTH_EVERY_MS &&
        now - rt->health_ms > HEALTH_EVERY_MS) {
        rt->health_ms = now;
        post_probe(rt);
    }
    if (!rt->db_down && !rt->draining && !rt->prune_running && now >= rt->prune_ms) {
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
    check_revoke(rt);
    check_drain(rt);
}

/* ---- HTTP ---------------------------------------------------------------- */

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
        bool db = !rt->db_down && now_ms() - rt->db_ok_ms <= HEALTH_STALE_MS;
        bool ready = db && rt->assigned > 0 && !rt->draining;
        json_t *reasons = json_array();
        if (rt->db_down)
            json_array_append_new(reasons, json_string("database unavailable"));
        else if (!db)
            json_array_append_new(reasons, json_string("database not checked recently"));
        if (rt->assigned == 0)
            json_array_append_new(reasons, json_string("no partitions assigned"));
        if (rt->draining)
            json_array_append_new(reasons, json_string("draining"));
        json_t *o = json_pack("{s:b,s:b,s:i,s:b,s:I,s:o}", "ready", ready, "database", db,
                              "partitions_assigned", rt->assigned, "draining", rt->draining,
                              "in_flight", (json_int_t)rt->in_flight, "reasons", reasons);
        char *text = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        set_body(resp, ready ? 200 : 503, "application/json", text);
    } else if (strcmp(path, "/metrics") == 0) {
        pool_stats_t ps;
        pool_stats(rt->pool, &ps);
        metrics_set_pool(rt->metrics, ps.idle, ps.active, ps.connecting);
        metrics_set_in_flight(rt->metrics, rt->in_flight);
        metrics_set_paused_partitions(rt->metrics, paused_count(rt));
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

int runtime_run(const config_t *cfg, pool_t *pool, const char *worker_name)
{
    runtime_t *rt = calloc(1, sizeof(*rt));
    if (rt == NULL)
        return 1;
    int rc = 1;
    char err[512];
    rt->cfg = cfg;
    rt->pool = pool;
    snprintf(rt->worker_name, sizeof(rt->worker_name), "%s", worker_name);
    rt->rng = (uint64_t)clock_mono_ns() ^ ((uint64_t)clock_wall_ms() << 20);
    rt->db_ok_ms = now_ms();
    rt->prune_ms = now_ms() + PRUNE_FIRST_MS;
    rt->sched = sched_new();
    rt->metrics = metrics_new();
    uv_loop_init(&rt->loop);
    uv_async_init(&rt->loop, &rt->wake, on_completion);
    rt->wake.data = rt;

    kafka_callbacks_t cb = {.opaque = rt,
                            .rebalance = rebalance_cb,
                            .delivery = delivery_cb,
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
        log_error("cannot start the HTTP server", LOG_S("error", err));
        fprintf(stderr, "tally-worker: TALLY_HTTP_ADDR: %s\n", err);
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
        rt->draining = true; /* nothing started: stop at once */
        rt->exit_code = 1;
        check_drain(rt);
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
        rt->closing = true;
        rd_kafka_consumer_close(rt->kafka.consumer); /* leaves the group */
    }
    if (rt->exec != NULL) {
        exec_task_t *left = exec_stop(rt->exec);
        while (left != NULL) {
            exec_task_t *t = left;
            left = t->next;
            exec_task_free(t); /* their jobs are in rt->jobs */
        }
    }
    while (rt->redeliver != NULL) {
        delivery_t *d = rt->redeliver;
        rt->redeliver = d->next;
        free(d);
    }
    kafka_destroy(&rt->kafka);
    while (rt->jobs != NULL)
        job_free(rt, rt->jobs);
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
