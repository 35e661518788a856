/* kafka_client — what tallyctl's Kafka commands share: the common options
 * (--brokers, -X key=value, KAFKA_* environment), the contract's topic
 * settings, producer construction, and a reader that follows topics outside
 * any consumer group (it never commits offsets, so it cannot disturb the
 * workers' group). Also the small CLI helpers every command uses. */
#ifndef TALLY_CTL_KAFKA_CLIENT_H
#define TALLY_CTL_KAFKA_CLIENT_H

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#define KC_META_TIMEOUT_MS 10000

typedef struct kc_opts {
    const char *brokers; /* --brokers, else KAFKA_BOOTSTRAP_SERVERS */
    const char **props;  /* "key=value" from -X, in order */
    size_t n_props;
    bool verbose; /* show librdkafka's warnings too */
} kc_opts_t;

/* Records one -X argument (not copied: argv outlives the command). Returns 0,
 * or -1 with a message in err when it is not key=value. */
int kc_opts_add_prop(kc_opts_t *o, const char *kv, char *err, size_t errlen);
void kc_opts_free(kc_opts_t *o);

/* Checks the Kafka settings (environment, --brokers, -X) without connecting.
 * Returns 0, or -1 with one line in err; commands treat that as a usage error. */
int kc_opts_check(const kc_opts_t *o, char *err, size_t errlen);

/* The contract's topic settings (CONTRACT.md §1): the environment variable's
 * value, else the default name. role is "request", "result", "audit" or "dlq". */
const char *kc_topic_default(const char *role);

/* A producer (acks=all, idempotent, message.timeout.ms 30 s unless -X says
 * otherwise) whose delivery reports go to dr_cb with opaque as the
 * rd_kafka_t's opaque. NULL with a message in err (never a secret). */
typedef void kc_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
rd_kafka_t *kc_producer_new(const kc_opts_t *o, kc_dr_cb *dr_cb, void *opaque, char *err,
                            size_t errlen);

/* Produces one message (key and value copied; key may be NULL) whose
 * delivery report carries opaque as m->_private, waiting while the
 * producer's local queue is full (delivery reports free room). Returns the
 * first error that is not a full queue, or RD_KAFKA_RESP_ERR_NO_ERROR. */
rd_kafka_resp_err_t kc_produce(rd_kafka_t *rk, const char *topic, const char *key,
                               const void *value, size_t len, void *opaque);

/* A reader over every partition of some topics, outside any group. */
typedef struct kc_part {
    const char *topic; /* points into the reader's topic list */
    int32_t partition;
    int64_t low, high; /* watermarks when the reader opened */
    int64_t next;      /* the offset after the last one seen */
} kc_part_t;

typedef struct kc_reader {
    rd_kafka_t *rk;
    char **topics;
    size_t n_topics;
    kc_part_t *parts;
    size_t n_parts;
} kc_reader_t;

typedef enum kc_start {
    KC_FROM_BEGINNING, /* the oldest message still kept */
    KC_FROM_END,       /* only messages produced after the reader opened */
} kc_start_t;

/* Opens a reader on topics (copied). Fails (-1, err) when a topic does not
 * exist or the brokers cannot be reached within KC_META_TIMEOUT_MS. */
int kc_reader_open(kc_reader_t *r, const kc_opts_t *o, const char *const *topics, size_t n,
                   kc_start_t start, char *err, size_t errlen);

/* The next message, or NULL after timeout_ms (the caller destroys it with
 * rd_kafka_message_destroy). Partition-EOF and transient errors are consumed
 * here; a fatal error is reported in err and returned as NULL with *fatal. */
rd_kafka_message_t *kc_reader_poll(kc_reader_t *r, int timeout_ms, bool *fatal, char *err,
                                   size_t errlen);

/* Whether every partition has been read up to its watermark at open time. */
bool kc_reader_caught_up(const kc_reader_t *r);
void kc_reader_close(kc_reader_t *r);

/* The value of header name as a malloc'd NUL-terminated string, or NULL. */
char *kc_header(const rd_kafka_message_t *m, const char *name);

/* Every header as a JSON object of name → string (values that are not UTF-8
 * are replaced by null). A new reference. */
json_t *kc_headers_json(const rd_kafka_message_t *m);

/* The key or value as a JSON string, or, when it is not UTF-8, an object
 * {"base64": "…"}; JSON null when absent. A new reference. */
json_t *kc_bytes_json(const void *p, size_t len);

/* Parses a duration ("500ms", "10s", "2m", or a number of seconds) into
 * milliseconds. Returns 0 or -1. */
int kc_parse_duration_ms(const char *s, int64_t *ms);

/* Milliseconds on the monotonic clock. */
int64_t kc_now_ms(void);

/* Prints one JSON value compactly on a line of out. */
void kc_print_json(FILE *out, const json_t *v);

/* Options every Kafka command takes: --brokers, -X, --verbose. Put
 * KC_LONG_OPTIONS in the getopt_long table and KC_SHORT_OPTIONS ("X:") in
 * the short string; kc_handle_opt returns 1 when it consumed option c, 0 when
 * c is not a common option, -1 with a message in err on a bad value. */
#define KC_OPT_BROKERS 0x1001
#define KC_OPT_VERBOSE 0x1002
#define KC_LONG_OPTIONS                                                                            \
    {"brokers", required_argument, NULL, KC_OPT_BROKERS},                                          \
    {                                                                                              \
        "verbose", no_argument, NULL, KC_OPT_VERBOSE                                               \
    }
#define KC_SHORT_OPTIONS "X:"
int kc_handle_opt(kc_opts_t *o, int c, const char *arg, char *err, size_t errlen);

/* The help text of the common options, for each command's --help. */
#define KC_HELP_COMMON                                                                             \
    "  --brokers HOST:PORT[,…]  Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS)\n"   \
    "  -X KEY=VALUE             any librdkafka property (also KAFKA_<PROPERTY> variables,\n"       \
    "                           dots as underscores); -X wins\n"                                   \
    "  --verbose                show librdkafka's warnings\n"

/* Installed by the following commands so Ctrl-C ends them cleanly. */
void kc_install_sigint(void);
bool kc_interrupted(void);

#endif
