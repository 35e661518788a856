/* deliver — see deliver.h. */
#include "deliver.h"

#include "parts.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/answer.h"
#include "worker/scheduler.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A cut DLQ copy keeps at most this much of the key and of the value, and
 * leaves this much of the producer's message.max.bytes to headers. */
#define DLQ_CUT_KEY   1024
#define DLQ_CUT_VALUE (64 * 1024)
#define HEADER_ROOM   4096

static const char *const kind_names[] = {"result", "audit event", "DLQ copy"};

static void add_header(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_header_add(h, name, -1, value, -1);
}

static void add_size_header(rd_kafka_headers_t *h, const char *name, size_t n)
{
    char num[32];
    snprintf(num, sizeof(num), "%zu", n);
    add_header(h, name, num);
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

static void redeliver_cb(uv_timer_t *t);
static void produce(runtime_t *rt, delivery_t *d);
static void delivery_failed(runtime_t *rt, delivery_t *d, rd_kafka_resp_err_t err);

/* Arms the redelivery timer for the earliest due delivery. */
static void arm_redeliver(runtime_t *rt)
{
    if (rt->redeliver == NULL || runtime_stopped(rt))
        return;
    int64_t due = INT64_MAX;
    for (delivery_t *d = rt->redeliver; d != NULL; d = d->next)
        due = d->due_ms < due ? d->due_ms : due;
    int64_t wait = due - runtime_now_ms();
    uv_timer_start(&rt->redeliver_timer, redeliver_cb, (uint64_t)(wait > 1 ? wait : 1), 0);
}

static void redeliver_later(runtime_t *rt, delivery_t *d, const char *why)
{
    d->due_ms = runtime_now_ms() + sched_backoff_ms(d->attempts > 0 ? d->attempts : 1,
                                                    RETRY_BASE_MS, RETRY_CAP_MS, &rt->rng);
    log_warn("delivery failed, will retry", JOB_LOG_FIELDS(d->job),
             LOG_S("delivery", kind_names[d->kind]), LOG_I("attempt", d->attempts),
             LOG_S("error", why));
    d->next = rt->redeliver;
    rt->redeliver = d;
    arm_redeliver(rt);
}

static void redeliver_cb(uv_timer_t *t)
{
    runtime_t *rt = t->data;
    int64_t now = runtime_now_ms();
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

/* What one delivery sends. */
typedef struct message {
    const char *topic;
    const void *key, *value;
    size_t key_len, value_len;
} message_t;

/* The result: to reply_to (else the results topic), keyed by account. */
static message_t result_message(const runtime_t *rt, const delivery_t *d, rd_kafka_headers_t *h)
{
    const job_t *job = d->job;
    const char *reply_to = job->env.reply_to;
    add_header(h, "tally-account-id", job->env.account.id);
    add_header(h, "tally-request-id", job->env.id);
    add_header(h, "tally-status", job->ok && !d->shortened ? "ok" : "error");
    if (d->redirected) {
        add_header(h, "tally-reply-to", reply_to);
        add_header(h, "tally-reply-to-error", d->reason);
    }
    return (message_t){.topic =
                           reply_to[0] != '\0' && !d->redirected ? reply_to : rt->cfg->result_topic,
                       .key = job->env.account.id,
                       .key_len = strlen(job->env.account.id),
                       .value = job->result_text,
                       .value_len = strlen(job->result_text)};
}

/* The DLQ copy: the original key and value (a prefix of each when cut),
 * with the reason and the source in headers. */
static message_t dlq_message(const runtime_t *rt, const delivery_t *d, rd_kafka_headers_t *h)
{
    const job_t *job = d->job;
    message_t m = {.topic = rt->cfg->dlq_topic,
                   .key = job->key,
                   .key_len = job->key_len,
                   .value = job->value,
                   .value_len = job->value_len};
    if (d->cut > 0) {
        /* What fits: a prefix of each, the original sizes in headers. */
        size_t room = rt->kafka.max_message_bytes > HEADER_ROOM
                          ? rt->kafka.max_message_bytes - HEADER_ROOM
                          : 0;
        m.key_len = min_size(m.key_len, min_size(DLQ_CUT_KEY, room));
        m.value_len =
            d->cut == 1 ? min_size(m.value_len, min_size(DLQ_CUT_VALUE, room - m.key_len)) : 0;
        if (m.key_len < job->key_len)
            add_size_header(h, "tally-dlq-key-size", job->key_len);
        if (m.value_len < job->value_len)
            add_size_header(h, "tally-dlq-value-size", job->value_len);
        add_header(h, "tally-dlq-cut-reason", d->reason);
    }
    add_header(
        h, "tally-error-code",
        tally_errcode_str(job->unanswerable ? TALLY_ERR_INVALID_REQUEST : TALLY_ERR_INTERNAL));
    add_header(h, "tally-error-message", job->dlq_reason);
    add_header(h, "tally-source-topic", rt->cfg->request_topic);
    char num[32];
    snprintf(num, sizeof(num), "%" PRId32, job->partition);
    add_header(h, "tally-source-partition", num);
    snprintf(num, sizeof(num), "%" PRId64, job->offset);
    add_header(h, "tally-source-offset", num);
    return m;
}

static void produce(runtime_t *rt, delivery_t *d)
{
    job_t *job = d->job;
    rd_kafka_headers_t *h = rd_kafka_headers_new(12);
    trace_to_headers(&job->trace, h); /* every delivery carries the request's trace */
    message_t m;
    switch (d->kind) {
    case DELIVERY_RESULT:
        m = result_message(rt, d, h);
        break;
    case DELIVERY_AUDIT:
        m = (message_t){.topic = rt->cfg->audit_topic,
                        .key = job->env.account.id,
                        .key_len = strlen(job->env.account.id),
                        .value = job->audit_text,
                        .value_len = strlen(job->audit_text)};
        break;
    case DELIVERY_DLQ:
    default:
        m = dlq_message(rt, d, h);
        break;
    }
    /* No copy: the texts live in the job until every delivery is acknowledged. */
    rd_kafka_resp_err_t err = rd_kafka_producev(
        rt->kafka.producer, RD_KAFKA_V_TOPIC(m.topic), RD_KAFKA_V_KEY(m.key, m.key_len),
        RD_KAFKA_V_VALUE((void *)m.value, m.value_len), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(d),
        RD_KAFKA_V_MSGFLAGS(0), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_headers_destroy(h); /* still ours when producev fails */
    delivery_failed(rt, d, err);
}

static delivery_t *delivery_new(job_t *job, delivery_kind_t kind)
{
    delivery_t *d = mem_calloc(1, sizeof(*d));
    d->job = job;
    d->kind = kind;
    job->pending_acks++;
    return d;
}

/* The result d carries cannot be published (why): a short `internal`
 * answer replaces it, and a copy of the request goes to the DLQ (an
 * `internal` answer after the last attempt has one already). */
static void shorten(runtime_t *rt, delivery_t *d, const char *why)
{
    job_t *job = d->job;
    size_t size = strlen(job->result_text);
    char *text = answer_unpublishable(&job->env, size, why, job->replayed, clock_wall_ms());
    assert(text != NULL); /* it parses its own text; jansson allocates through mem.h */
    free(job->result_text);
    job->result_text = text;
    d->shortened = true;
    d->attempts = 0;
    log_error("the result cannot be published: answering internal", JOB_LOG_FIELDS(job),
              LOG_I("bytes", (int64_t)size), LOG_S("error", why));
    if (job->dlq_reason[0] != '\0')
        return; /* it has a DLQ copy already */
    snprintf(job->dlq_reason, sizeof(job->dlq_reason),
             "the result (%zu bytes) could not be published: %.160s", size, why);
    metrics_dlq(rt->metrics, "internal");
    produce(rt, delivery_new(job, DELIVERY_DLQ));
}

/* d failed for good: it stays unacknowledged, so its offset is never
 * committed here (the next owner of the partition runs the request again
 * and replays its stored outcome), but nothing waits for it: not a drain,
 * not a revocation. Counted in /readyz and tally_stuck_deliveries. */
static void park(runtime_t *rt, delivery_t *d, const char *why)
{
    job_t *job = d->job;
    d->next = rt->stuck;
    rt->stuck = d;
    rt->n_stuck++;
    log_error("delivery failed for good: holding its offset until the partition moves on",
              JOB_LOG_FIELDS(job), LOG_S("delivery", kind_names[d->kind]),
              LOG_I("attempts", d->attempts), LOG_S("error", why));
    if (job->state != JOB_STUCK)
        parts_job_state(rt, job, JOB_STUCK);
}

/* A delivery failed (synchronously or in its report): decide how to go on.
 * A transient failure is produced again after a backoff, at most
 * TALLY_MAX_RETRIES times (a full local queue does not count). Then, or at
 * once for a failure that will not pass (too large, a topic refused): a
 * result refused by its reply_to topic goes to the results topic (headers
 * tally-reply-to*); a result refused there is answered `internal` instead
 * (shorten); a DLQ copy is cut to fit, then sent without its value; what
 * still fails is parked (park). */
static void delivery_failed(runtime_t *rt, delivery_t *d, rd_kafka_resp_err_t err)
{
    kafka_err_class_t cls = kafka_classify(rt->kafka.producer, err);
    const char *why = rd_kafka_err2str(err);
    job_t *job = d->job;
    if (cls == KAFKA_ERR_FATAL)
        runtime_ask_drain(rt, 1, "the producer failed fatally");
    if (cls == KAFKA_ERR_QUEUE_FULL) {
        redeliver_later(rt, d, why);
        return;
    }
    bool lasting = cls == KAFKA_ERR_TOPIC;
    if (!lasting && ++d->attempts < rt->cfg->max_retries) {
        redeliver_later(rt, d, why);
        return;
    }
    switch (d->kind) {
    case DELIVERY_RESULT:
        if (!d->redirected && job->env.reply_to[0] != '\0' &&
            strcmp(job->env.reply_to, rt->cfg->result_topic) != 0) {
            d->redirected = true;
            d->attempts = 0;
            snprintf(d->reason, sizeof(d->reason), "%s", why);
            log_warn("reply_to cannot take the result: sent to the results topic",
                     JOB_LOG_FIELDS(job), LOG_S("reply_to", job->env.reply_to),
                     LOG_S("error", why));
            produce(rt, d);
            return;
        }
        if (!d->shortened) {
            shorten(rt, d, why);
            produce(rt, d);
            return;
        }
        break;
    case DELIVERY_DLQ:
        if (lasting && d->cut < 2) {
            d->cut++;
            d->attempts = 0;
            snprintf(d->reason, sizeof(d->reason), "%s", why);
            log_error("the DLQ refused a message: sending it cut to fit",
                      LOG_SOPT("trace_id", job->trace.id), LOG_I("partition", job->partition),
                      LOG_I("offset", job->offset), LOG_I("key_bytes", (int64_t)job->key_len),
                      LOG_I("value_bytes", (int64_t)job->value_len), LOG_I("cut", d->cut),
                      LOG_S("error", why));
            produce(rt, d);
            return;
        }
        break;
    case DELIVERY_AUDIT:
        break;
    }
    park(rt, d, why);
}

void deliver_publish(runtime_t *rt, job_t *job, delivery_kind_t kind)
{
    assert(runtime_on_loop(rt));
    delivery_t *d = delivery_new(job, kind);
    if (kind == DELIVERY_RESULT && strlen(job->result_text) > ANSWER_MAX_RESULT)
        shorten(rt, d, "it is larger than the 1 MiB a result may be");
    produce(rt, d);
}

/* Producer delivery report (loop thread, from rd_kafka_poll on the producer). */
void deliver_report_cb(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
    runtime_t *rt = opaque;
    delivery_t *d = msg->_private;
    runtime_mark_dirty(rt); /* an acknowledgement may end a job: the window moves */
    if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        delivery_failed(rt, d, msg->err);
        return;
    }
    job_t *job = d->job;
    free(d);
    if (--job->pending_acks == 0)
        parts_job_done(rt, job);
}

void deliver_reap_stuck(runtime_t *rt)
{
    for (delivery_t **pp = &rt->stuck; *pp != NULL;) {
        delivery_t *d = *pp;
        if (parts_job_current(rt, d->job)) {
            pp = &d->next;
            continue;
        }
        /* Its partition moved on (revoked, lost): the next owner answers it. */
        *pp = d->next;
        rt->n_stuck--;
        job_t *job = d->job;
        free(d);
        if (--job->pending_acks == 0)
            parts_job_done(rt, job);
    }
}

void deliver_free_all(runtime_t *rt)
{
    delivery_t *lists[] = {rt->redeliver, rt->stuck};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        while (lists[i] != NULL) {
            delivery_t *d = lists[i];
            lists[i] = d->next;
            free(d);
        }
    }
    rt->redeliver = rt->stuck = NULL;
    rt->n_stuck = 0;
}
