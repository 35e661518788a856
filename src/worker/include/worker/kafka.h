/* kafka — the worker's librdkafka handles and their wiring into libuv.
 *
 * One consumer (group TALLY_GROUP_ID, cooperative-sticky, offsets stored by
 * hand and auto-committed once stored) and one idempotent producer. Each
 * handle's queue (the consumer's, with rd_kafka_poll_set_consumer, and the
 * producer's main queue) writes a byte to a pipe when it turns non-empty
 * (rd_kafka_queue_io_event_enable); the loop watches the pipes with
 * uv_poll_t and drains the queues fully on each wake-up.
 *
 * Configuration order: Tally's defaults, then the user's properties (-X and
 * KAFKA_*), then the settings correctness depends on (they cannot be
 * overridden; a conflicting user value is logged and ignored). */
#ifndef TALLY_WORKER_KAFKA_H
#define TALLY_WORKER_KAFKA_H

#include "worker/config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct kafka_callbacks {
    void *opaque; /* passed to the callbacks through rd_kafka_opaque */
    void (*rebalance)(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *parts, void *opaque);
    void (*delivery)(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque);
    void (*error)(rd_kafka_t *rk, int err, const char *reason, void *opaque);
} kafka_callbacks_t;

typedef struct kafka {
    rd_kafka_t *consumer;
    rd_kafka_t *producer;
    rd_kafka_queue_t *consumer_queue; /* the consumer's queue (main queue forwarded to it) */
    rd_kafka_queue_t *producer_queue; /* the producer's main queue */
    int consumer_fds[2];              /* pipe: [0] read by the loop, [1] written by librdkafka */
    int producer_fds[2];
    size_t max_message_bytes; /* the producer's message.max.bytes */
} kafka_t;

/* Creates both handles and their wake-up pipes. Returns 0, or -1 with one
 * line in err.
 * @thread loop */
int kafka_open(kafka_t *k, const config_t *cfg, const kafka_callbacks_t *cb, char *err,
               size_t errlen);

/* Destroys what kafka_open created (the consumer must be closed first).
 * @thread loop */
void kafka_destroy(kafka_t *k);

/* Empties a wake-up pipe (non-blocking).
 * @thread loop */
void kafka_drain_pipe(int fd);

/* Serves the producer's queue: its delivery reports and errors (their
 * callbacks run here). Nothing to do before kafka_open.
 * @thread loop */
void kafka_serve_producer(kafka_t *k);

/* The kind of a delivery or client error. */
typedef enum kafka_err_class {
    KAFKA_ERR_RETRIABLE,  /* try again later */
    KAFKA_ERR_TOPIC,      /* the topic cannot take the message (unknown, invalid, not
                           * authorized, too large, a record it refuses): retrying the
                           * same message on the same topic will not help */
    KAFKA_ERR_QUEUE_FULL, /* the producer's local queue is full: try again shortly */
    KAFKA_ERR_FATAL,      /* the client instance is unusable */
} kafka_err_class_t;

/* @thread any */
kafka_err_class_t kafka_classify(rd_kafka_t *rk, rd_kafka_resp_err_t err);

#endif
