/* config — tally-worker's settings, filled once at start-up from flags and
 * the environment (flags win), validated, then read-only.
 *
 * Every setting has an environment variable (DATABASE_URL, TALLY_POOL_MAX, …)
 * and a long flag (--database-url, --pool-max, …). Kafka properties come from
 * `-X key=value` or KAFKA_<PROPERTY> (dots as underscores, any case) and are
 * checked against librdkafka's property table. A bad value yields one line
 * naming the setting and what is wrong; DATABASE_URL's password never appears
 * in it. */
#ifndef TALLY_WORKER_CONFIG_H
#define TALLY_WORKER_CONFIG_H

#include "common/log.h"

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct config_kv {
    char *key; /* librdkafka property name, e.g. "session.timeout.ms" */
    char *value;
} config_kv_t;

typedef struct config {
    char *database_url;
    char *bootstrap_servers;
    char *group_id;
    char *request_topic;
    char *result_topic;
    char *audit_topic;
    char *dlq_topic;
    char *reply_to_pattern; /* TALLY_REPLY_TO_PATTERN as given; "" for none */
    regex_t reply_to_regex; /* compiled (REG_EXTENDED) when has_reply_to_regex */
    bool has_reply_to_regex;
    int pool_max;
    int max_in_flight;
    int max_retries;
    int shutdown_timeout_ms;
    int outcome_retention_days;
    int batch_max;
    int statement_timeout_ms;
    int lock_timeout_ms;
    /* TALLY_PREPARED_STATEMENTS: on, or off behind a transaction pooler. */
    bool prepared_statements;
    char *http_addr; /* "host:port" */
    log_level_t log_level;
    bool log_text;
    config_kv_t *kafka; /* in the order given; later entries override earlier ones */
    size_t n_kafka;
} config_t;

typedef enum config_result {
    CONFIG_RUN,   /* *cfg is filled: start the worker */
    CONFIG_EXIT,  /* --help or --version was printed on out: exit 0 */
    CONFIG_ERROR, /* err holds one line: exit 2 */
} config_result_t;

/* Parses argv (getopt_long; resets optind) over the environment envp (a
 * NULL-terminated "KEY=VALUE" array, usually `environ`). On CONFIG_RUN the
 * caller owns *cfg and frees it with config_free; otherwise *cfg holds
 * nothing to free. Not reentrant (getopt).
 * @thread main */
config_result_t config_load(int argc, char **argv, char **envp, FILE *out, config_t *cfg, char *err,
                            size_t errlen);

/* Frees what config_load filled.
 * @thread main */
void config_free(config_t *cfg);

/* Splits "host:port" (host may be "[v6]"); returns 0 or -1. host has room for hostlen.
 * @thread any */
int config_split_addr(const char *addr, char *host, size_t hostlen, int *port);

#endif
