#include "worker/kafka.h"

#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct prop {
    const char *key, *value;
} prop_t;

/* Defaults the user may override. The local fetch queue: with one consumer
 * queue (rd_kafka_poll_set_consumer) librdkafka 2.0 measures
 * queued.min.messages and queued.max.messages.kbytes on that shared queue,
 * and a partition found over either limit stops fetching until its next
 * periodic check, up to a second later. A single fetch response must
 * therefore stay well below both, or one account's backlog arriving in one
 * fetch stalls every partition (bench/ fairness row: other accounts waited
 * 1 s with queued.min.messages=100 or 1000, 80 ms with 10000). One fetch
 * carries at most fetch.max.bytes (~4 500 requests of 230 bytes), each
 * partition at most fetch.message.max.bytes of it; larger messages are still
 * fetched (librdkafka grows the request), so 1 MiB requests arrive. Memory:
 * with 8 MB fetches a worker on 128 partitions of backlog held 79 MB, with
 * these 46 MB (bench/ backlog row, 3 brokers). */
static const prop_t consumer_defaults[] = {
    {"client.id", "tally-worker"},          {"queued.min.messages", "10000"},
    {"queued.max.messages.kbytes", "4096"}, {"fetch.message.max.bytes", "65536"},
    {"fetch.max.bytes", "1048576"},
};
/* What correctness depends on: the user cannot change these. */
static const prop_t consumer_required[] = {
    {"partition.assignment.strategy", "cooperative-sticky"},
    {"enable.auto.offset.store", "false"}, /* stored by hand after the acks */
    {"enable.auto.commit", "true"},        /* commits what was stored */
    {"auto.offset.reset", "earliest"},     /* a new group misses nothing */
    {"enable.partition.eof", "false"},
};
static const prop_t producer_defaults[] = {
    {"client.id", "tally-worker"},
    {"linger.ms", "5"},
    /* Room for a 1 MiB request copied to the DLQ with its headers. */
    {"message.max.bytes", "2097152"},
};
static const prop_t producer_required[] = {
    {"enable.idempotence", "true"},
};

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    log_level_t l = level <= 3   ? LOG_ERROR
                    : level == 4 ? LOG_WARN
                    : level <= 6 ? LOG_INFO
                                 : LOG_DEBUG;
    /* The same user properties go to both clients; the producer's note that
     * it ignores consumer properties is expected. */
    if (strcmp(fac, "CONFWARN") == 0 && strstr(buf, "consumer property") != NULL)
        l = LOG_DEBUG;
    log_emit(l, "librdkafka", LOG_S("client", rd_kafka_name(rk)), LOG_S("facility", fac),
             LOG_S("detail", buf), LOG_END);
}

static int set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err, size_t errlen)
{
    char why[512];
    if (rd_kafka_conf_set(conf, key, value, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "Kafka property %s: %s", key, why);
        return -1;
    }
    return 0;
}

static bool is_required(const prop_t *req, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(req[i].key, key) == 0)
            return true;
    }
    return false;
}

static rd_kafka_conf_t *build_conf(const config_t *cfg, const prop_t *defs, size_t ndefs,
                                   const prop_t *req, size_t nreq, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Every line librdkafka logs goes through our logger: its default one
     * writes raw text to stderr. */
    rd_kafka_conf_set_log_cb(conf, log_cb);
    for (size_t i = 0; i < ndefs; i++) {
        if (set(conf, defs[i].key, defs[i].value, err, errlen) != 0)
            goto fail;
    }
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        const config_kv_t *kv = &cfg->kafka[i];
        if (is_required(req, nreq, kv->key)) {
            log_warn("Kafka property ignored: Tally requires its own value",
                     LOG_S("property", kv->key));
            continue;
        }
        if (set(conf, kv->key, kv->value, err, errlen) != 0)
            goto fail;
    }
    for (size_t i = 0; i < nreq; i++) {
        if (set(conf, req[i].key, req[i].value, err, errlen) != 0)
            goto fail;
    }
    if (set(conf, "bootstrap.servers", cfg->bootstrap_servers, err, errlen) != 0)
        goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

static int make_pipe(int fds[2], char *err, size_t errlen)
{
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        fds[0] = fds[1] = -1;
        return -1;
    }
    return 0;
}

/* rd_kafka_new, which takes ownership of conf on success only. */
static rd_kafka_t *new_client(rd_kafka_type_t type, rd_kafka_conf_t *conf, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof(why));
    if (rk == NULL) {
        snprintf(err, errlen, "Kafka %s: %s", type == RD_KAFKA_CONSUMER ? "consumer" : "producer",
                 why);
        rd_kafka_conf_destroy(conf);
    }
    return rk;
}

/* The consumer (group TALLY_GROUP_ID), its queue fed by the main queue. */
static int open_consumer(kafka_t *k, const config_t *cfg, const kafka_callbacks_t *cb, char *err,
                         size_t errlen)
{
    rd_kafka_conf_t *conf =
        build_conf(cfg, consumer_defaults, sizeof(consumer_defaults) / sizeof(prop_t),
                   consumer_required, sizeof(consumer_required) / sizeof(prop_t), err, errlen);
    if (conf == NULL)
        return -1;
    if (set(conf, "group.id", cfg->group_id, err, errlen) != 0) {
        rd_kafka_conf_destroy(conf);
        return -1;
    }
    rd_kafka_conf_set_opaque(conf, cb->opaque);
    rd_kafka_conf_set_rebalance_cb(conf, cb->rebalance);
    rd_kafka_conf_set_error_cb(conf, cb->error);
    k->consumer = new_client(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (k->consumer == NULL)
        return -1;
    rd_kafka_poll_set_consumer(k->consumer);
    k->consumer_queue = rd_kafka_queue_get_consumer(k->consumer);
    return 0;
}

/* The idempotent producer, and the message.max.bytes it ended up with. */
static int open_producer(kafka_t *k, const config_t *cfg, const kafka_callbacks_t *cb, char *err,
                         size_t errlen)
{
    rd_kafka_conf_t *conf =
        build_conf(cfg, producer_defaults, sizeof(producer_defaults) / sizeof(prop_t),
                   producer_required, sizeof(producer_required) / sizeof(prop_t), err, errlen);
    if (conf == NULL)
        return -1;
    rd_kafka_conf_set_opaque(conf, cb->opaque);
    rd_kafka_conf_set_dr_msg_cb(conf, cb->delivery);
    rd_kafka_conf_set_error_cb(conf, cb->error);
    k->producer = new_client(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (k->producer == NULL)
        return -1;
    k->producer_queue = rd_kafka_queue_get_main(k->producer);
    char num[32];
    size_t num_size = sizeof(num);
    k->max_message_bytes = 1000000; /* librdkafka's default, should the read fail */
    if (rd_kafka_conf_get(rd_kafka_conf(k->producer), "message.max.bytes", num, &num_size) ==
        RD_KAFKA_CONF_OK)
        k->max_message_bytes = (size_t)strtoul(num, NULL, 10);
    return 0;
}

int kafka_open(kafka_t *k, const config_t *cfg, const kafka_callbacks_t *cb, char *err,
               size_t errlen)
{
    memset(k, 0, sizeof(*k));
    k->consumer_fds[0] = k->consumer_fds[1] = k->producer_fds[0] = k->producer_fds[1] = -1;
    if (open_consumer(k, cfg, cb, err, errlen) != 0 ||
        open_producer(k, cfg, cb, err, errlen) != 0 ||
        make_pipe(k->consumer_fds, err, errlen) != 0 ||
        make_pipe(k->producer_fds, err, errlen) != 0) {
        kafka_destroy(k);
        return -1;
    }
    static const char one = 1;
    rd_kafka_queue_io_event_enable(k->consumer_queue, k->consumer_fds[1], &one, 1);
    rd_kafka_queue_io_event_enable(k->producer_queue, k->producer_fds[1], &one, 1);
    return 0;
}

void kafka_destroy(kafka_t *k)
{
    if (k->consumer_queue != NULL) {
        rd_kafka_queue_io_event_enable(k->consumer_queue, -1, NULL, 0);
        rd_kafka_queue_destroy(k->consumer_queue);
    }
    if (k->producer_queue != NULL) {
        rd_kafka_queue_io_event_enable(k->producer_queue, -1, NULL, 0);
        rd_kafka_queue_destroy(k->producer_queue);
    }
    if (k->consumer != NULL)
        rd_kafka_destroy(k->consumer);
    if (k->producer != NULL)
        rd_kafka_destroy(k->producer);
    for (int i = 0; i < 2; i++) {
        if (k->consumer_fds[i] >= 0)
            close(k->consumer_fds[i]);
        if (k->producer_fds[i] >= 0)
            close(k->producer_fds[i]);
    }
    memset(k, 0, sizeof(*k));
    k->consumer_fds[0] = k->consumer_fds[1] = k->producer_fds[0] = k->producer_fds[1] = -1;
}

void kafka_drain_pipe(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

void kafka_serve_producer(kafka_t *k)
{
    if (k->producer == NULL)
        return;
    while (rd_kafka_poll(k->producer, 0) > 0)
        ;
}

kafka_err_class_t kafka_classify(rd_kafka_t *rk, rd_kafka_resp_err_t err)
{
    if (err == RD_KAFKA_RESP_ERR__FATAL ||
        (rk != NULL && rd_kafka_fatal_error(rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR))
        return KAFKA_ERR_FATAL;
    switch (err) {
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_POLICY_VIOLATION:
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT:
        return KAFKA_ERR_TOPIC;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return KAFKA_ERR_QUEUE_FULL;
    default:
        return KAFKA_ERR_RETRIABLE;
    }
}
