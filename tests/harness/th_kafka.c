/* th_kafka — small librdkafka producer and consumer for tests. */
#include "harness.h"
#include "th_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRODUCE_TIMEOUT_MS  30000 /* message.timeout.ms unless overridden */
#define METADATA_TIMEOUT_MS 10000

struct th_producer {
    rd_kafka_t *rk;
    int failures;
    char last_error[256];
};

struct th_consumer {
    rd_kafka_t *rk;
};

static void set_or_fail(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        fail_msg("harness: librdkafka property %s=%s: %s", key, value, err);
    }
}

static void set_kv_or_fail(rd_kafka_conf_t *conf, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        rd_kafka_conf_destroy(conf);
        fail_msg("harness: librdkafka property '%s' is not key=value", kv);
    }
    char key[256];
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    set_or_fail(conf, key, eq + 1);
}

/* rd_kafka_new takes ownership of conf on success only. */
static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf)
{
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        fail_msg("harness: rd_kafka_new: %s", err);
    }
    return rk;
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    th_producer_t *p = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    p->failures++;
    snprintf(p->last_error, sizeof(p->last_error), "%s [%d]: %s", rd_kafka_topic_name(m->rkt),
             (int)m->partition, rd_kafka_err2str(m->err));
}

th_producer_t *th_producer_new_with(const th_broker_t *b, const char *const *props)
{
    th_producer_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        fail_msg("harness: out of memory");
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set_or_fail(conf, "bootstrap.servers", th_broker_bootstrap(b));
    set_or_fail(conf, "client.id", "tally-test-producer");
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", PRODUCE_TIMEOUT_MS);
    set_or_fail(conf, "message.timeout.ms", timeout);
    for (int i = 0; props != NULL && props[i] != NULL; i++)
        set_kv_or_fail(conf, props[i]);
    rd_kafka_conf_set_dr_msg_cb(conf, delivery_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = new_client(RD_KAFKA_PRODUCER, conf);
    return p;
}

th_producer_t *th_producer_new(const th_broker_t *b)
{
    return th_producer_new_with(b, NULL);
}

rd_kafka_t *th_producer_handle(th_producer_t *p)
{
    return p->rk;
}

void th_producer_free(th_producer_t *p)
{
    if (p == NULL)
        return;
    rd_kafka_flush(p->rk, 1000);
    rd_kafka_destroy(p->rk);
    free(p);
}

void th_produce(th_producer_t *p, const char *topic, int32_t partition, const char *key,
                const void *value, size_t len)
{
    int64_t deadline = th_now_ms() + PRODUCE_TIMEOUT_MS;
    size_t keylen = key != NULL ? strlen(key) : 0; /* the macro does not parenthesise */
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition < 0 ? RD_KAFKA_PARTITION_UA : partition),
            RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || th_now_ms() >= deadline)
            fail_msg("harness: produce to %s: %s", topic, rd_kafka_err2str(err));
        rd_kafka_poll(p->rk, 50);
    }
}

int th_producer_flush_failures(th_producer_t *p, char *err, size_t size)
{
    /* Every message either is delivered or fails within message.timeout.ms;
     * the margin covers the last retry in flight. */
    char timeout[32];
    size_t tlen = sizeof(timeout);
    long ms = PRODUCE_TIMEOUT_MS;
    if (rd_kafka_conf_get(rd_kafka_conf(p->rk), "message.timeout.ms", timeout, &tlen) ==
        RD_KAFKA_CONF_OK)
        ms = strtol(timeout, NULL, 10);
    rd_kafka_flush(p->rk, (int)ms + 10000);
    int undelivered = rd_kafka_outq_len(p->rk);
    if (undelivered > 0) {
        p->failures += undelivered;
        snprintf(p->last_error, sizeof(p->last_error), "%d messages still undelivered after %ld ms",
                 undelivered, ms + 10000);
    }
    int failures = p->failures;
    if (err != NULL)
        snprintf(err, size, "%s", failures > 0 ? p->last_error : "");
    p->failures = 0;
    p->last_error[0] = '\0';
    return failures;
}

void th_producer_flush(th_producer_t *p)
{
    char err[256];
    int failures = th_producer_flush_failures(p, err, sizeof(err));
    if (failures > 0)
        fail_msg("harness: %d deliveries failed; last: %s", failures, err);
}

/* Fresh metadata for one topic (creating it on the embedded broker if it does
 * not exist); the caller destroys it. Retries while the cluster is unsettled. */
static const struct rd_kafka_metadata *topic_metadata(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    if (t == NULL)
        fail_msg("harness: rd_kafka_topic_new %s failed", topic);
    int64_t deadline = th_now_ms() + METADATA_TIMEOUT_MS;
    rd_kafka_resp_err_t err;
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        err = rd_kafka_metadata(rk, 0, t, &md, 2000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                md->topics[0].partition_cnt > 0) {
                rd_kafka_topic_destroy(t);
                return md;
            }
            if (md->topic_cnt == 1)
                err = md->topics[0].err;
            rd_kafka_metadata_destroy(md);
        }
        if (th_now_ms() >= deadline)
            break;
        th_sleep_ms(100);
    }
    rd_kafka_topic_destroy(t);
    fail_msg("harness: no metadata for topic %s: %s", topic, rd_kafka_err2str(err));
    return NULL;
}

int32_t th_partition_leader(th_producer_t *p, const char *topic, int32_t partition)
{
    const struct rd_kafka_metadata *md = topic_metadata(p->rk, topic);
    int32_t leader = -1;
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        if (md->topics[0].partitions[i].id == partition)
            leader = md->topics[0].partitions[i].leader;
    rd_kafka_metadata_destroy(md);
    return leader;
}

th_consumer_t *th_consumer_new(const th_broker_t *b, const char *topic)
{
    static int seq;
    char group[64];
    snprintf(group, sizeof(group), "tally-test-%d-%d", (int)getpid(), ++seq);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set_or_fail(conf, "bootstrap.servers", th_broker_bootstrap(b));
    set_or_fail(conf, "client.id", "tally-test-consumer");
    /* Needed by the consumer API; partitions are assigned, never committed. */
    set_or_fail(conf, "group.id", group);
    set_or_fail(conf, "enable.auto.commit", "false");
    set_or_fail(conf, "enable.auto.offset.store", "false");
    set_or_fail(conf, "enable.partition.eof", "false");
    set_or_fail(conf, "fetch.wait.max.ms", "10");
    th_consumer_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        fail_msg("harness: out of memory");
    c->rk = new_client(RD_KAFKA_CONSUMER, conf);
    rd_kafka_poll_set_consumer(c->rk);

    const struct rd_kafka_metadata *md = topic_metadata(c->rk, topic);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int i = 0; i < md->topics[0].partition_cnt; i++)
        rd_kafka_topic_partition_list_add(parts, topic, md->topics[0].partitions[i].id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_metadata_destroy(md);
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("harness: assign %s: %s", topic, rd_kafka_err2str(err));
    return c;
}

void th_consumer_free(th_consumer_t *c)
{
    if (c == NULL)
        return;
    rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
    free(c);
}

static void store(const rd_kafka_message_t *m, th_msg_t *out)
{
    memset(out, 0, sizeof(*out));
    if (m->key != NULL) {
        out->key = strndup(m->key, m->key_len);
    }
    out->value = malloc(m->len + 1);
    if (out->value == NULL)
        fail_msg("harness: out of memory");
    if (m->len > 0)
        memcpy(out->value, m->payload, m->len);
    out->value[m->len] = '\0';
    out->value_len = m->len;
    out->json = json_loadb(out->value, out->value_len, 0, NULL);
    out->headers = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *val;
        size_t size;
        for (size_t i = 0;
             rd_kafka_header_get_all(hdrs, i, &name, &val, &size) == RD_KAFKA_RESP_ERR_NO_ERROR;
             i++) {
            /* Not UTF-8 (or no value): null, so that a test can still see the name. */
            json_t *v = val != NULL ? json_stringn(val, size) : NULL;
            json_object_set_new(out->headers, name, v != NULL ? v : json_null());
        }
    }
    out->partition = m->partition;
    out->offset = m->offset;
}

int th_consume(th_consumer_t *c, th_msg_t *out, int n, int timeout_ms)
{
    int got = 0;
    int64_t deadline = th_now_ms() + timeout_ms;
    while (got < n) {
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, left < 100 ? left : 100);
        if (m == NULL)
            continue;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
            fprintf(stderr, "harness: consumer: %s\n", rd_kafka_message_errstr(m));
        else
            store(m, &out[got++]);
        rd_kafka_message_destroy(m);
    }
    return got;
}

void th_msg_clear(th_msg_t *m)
{
    free(m->key);
    free(m->value);
    json_decref(m->json);
    json_decref(m->headers);
    memset(m, 0, sizeof(*m));
}
