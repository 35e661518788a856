/* it_worker_common — helpers shared by the it_worker_* integration tests:
 * a stack (PostgreSQL + embedded broker + one or more workers), request
 * producing, and collectors that gather the messages of an output topic and
 * find them by request id. Header-only (static functions) so that each test
 * binary stays one .c file plus this. */
#ifndef TALLY_IT_WORKER_COMMON_H
#define TALLY_IT_WORKER_COMMON_H

#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#define REQ_TOPIC    "tally.requests"
#define RESULT_TOPIC "tally.results"
#define AUDIT_TOPIC  "tally.audit"
#define DLQ_TOPIC    "tally.dlq"

typedef struct collector {
    th_consumer_t *c;
    th_msg_t *msgs;
    int n, cap;
} collector_t;

static inline int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline collector_t *collector_new(const th_broker_t *b, const char *topic)
{
    collector_t *col = calloc(1, sizeof(*col));
    col->c = th_consumer_new(b, topic);
    return col;
}

static inline void collector_free(collector_t *col)
{
    if (col == NULL)
        return;
    for (int i = 0; i < col->n; i++)
        th_msg_clear(&col->msgs[i]);
    free(col->msgs);
    th_consumer_free(col->c);
    free(col);
}

/* Reads whatever arrives within wait_ms into the collector. */
static inline int collector_poll(collector_t *col, int want, int wait_ms)
{
    if (col->n + want > col->cap) {
        col->cap = (col->n + want) * 2;
        col->msgs = realloc(col->msgs, (size_t)col->cap * sizeof(*col->msgs));
    }
    int got = th_consume(col->c, col->msgs + col->n, want, wait_ms);
    col->n += got;
    return got;
}

/* The string member `field` of a collected message's JSON or, with field
 * "@key", its key; NULL when absent. */
static inline const char *msg_str(const th_msg_t *m, const char *field)
{
    if (strcmp(field, "@key") == 0)
        return m->key;
    return m->json != NULL ? json_string_value(json_object_get(m->json, field)) : NULL;
}

static inline const char *msg_header(const th_msg_t *m, const char *name)
{
    return json_string_value(json_object_get(m->headers, name));
}

/* Counts collected messages whose `field` equals value (and, when acct is
 * not NULL, whose account_id equals acct). */
static inline int collector_count(const collector_t *col, const char *field, const char *value,
                                  const char *acct)
{
    int n = 0;
    for (int i = 0; i < col->n; i++) {
        const char *v = msg_str(&col->msgs[i], field);
        const char *a = msg_str(&col->msgs[i], "account_id");
        if (v != NULL && strcmp(v, value) == 0 && (acct == NULL || (a && strcmp(a, acct) == 0)))
            n++;
    }
    return n;
}

/* The first collected message with field == value (and account acct when
 * not NULL), waiting up to timeout_ms; NULL when none arrived. */
static inline const th_msg_t *collector_find(collector_t *col, const char *field, const char *value,
                                             const char *acct, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        for (int i = 0; i < col->n; i++) {
            const char *v = msg_str(&col->msgs[i], field);
            const char *a = msg_str(&col->msgs[i], "account_id");
            if (v != NULL && strcmp(v, value) == 0 &&
                (acct == NULL || (a != NULL && strcmp(a, acct) == 0)))
                return &col->msgs[i];
        }
        int64_t left = end - it_now_ms();
        if (left <= 0)
            return NULL;
        collector_poll(col, 256, left < 200 ? (int)left : 200);
    }
}

/* Waits until at least n messages with field == value are collected. */
static inline int collector_wait_count(collector_t *col, const char *field, const char *value,
                                       const char *acct, int n, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    int have;
    while ((have = collector_count(col, field, value, acct)) < n && it_now_ms() < end)
        collector_poll(col, 1024, 200);
    return have;
}

/* Produces a request built from a printf format to the requests topic. */
static inline void send_request(th_producer_t *p, int32_t partition, const char *key,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline void send_request(th_producer_t *p, int32_t partition, const char *key,
                                const char *fmt, ...)
{
    char buf[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    th_produce(p, REQ_TOPIC, partition, key, buf, (size_t)n);
}

/* Fails the test unless every line of the worker log at path is one JSON
 * object with the string members ts, level (debug, info, warn, error) and
 * msg, and no line contains secret (NULL: not checked). Call it once the
 * worker has exited, so that no line is half written. */
static inline void expect_log_json(const char *path, const char *secret)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        fail_msg("cannot open the worker log %s", path);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lineno = 0;
    while ((len = getline(&line, &cap, f)) != -1) {
        lineno++;
        if (secret != NULL && strstr(line, secret) != NULL)
            fail_msg("%s:%d: the database password appears in the log", path, lineno);
        json_t *j = json_loadb(line, (size_t)len, 0, NULL);
        const char *level = json_string_value(json_object_get(j, "level"));
        bool ok = line[len - 1] == '\n' && json_is_object(j) &&
                  json_is_string(json_object_get(j, "ts")) &&
                  json_is_string(json_object_get(j, "msg")) && level != NULL &&
                  (strcmp(level, "debug") == 0 || strcmp(level, "info") == 0 ||
                   strcmp(level, "warn") == 0 || strcmp(level, "error") == 0);
        json_decref(j);
        if (!ok)
            fail_msg("%s:%d: not one JSON log object: %.300s", path, lineno, line);
    }
    free(line);
    fclose(f);
    if (lineno == 0)
        fail_msg("the worker log %s is empty", path);
}

/* Gives tally_worker a password (trust authentication ignores it) and a
 * role setting the server cannot apply, so that every connection of the
 * worker starts with a WARNING from the server: libpq's default would print
 * it raw on stderr. Writes the DATABASE_URL=… entry for th_worker_start. */
static inline void worker_role_for_log_checks(th_pg_t *pg, const char *password, char *env,
                                              size_t size)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "ALTER ROLE tally_worker PASSWORD '%s'", password);
    th_pg_exec(pg, "postgres", sql);
    th_pg_exec(pg, "postgres",
               "ALTER ROLE tally_worker SET default_text_search_config = 'pg_catalog.none'");
    snprintf(env, size, "DATABASE_URL=postgresql://tally_worker:%s@127.0.0.1:%d/tally", password,
             th_pg_port(pg));
}

/* Stops w and checks its whole log with expect_log_json. */
static inline void stop_worker_checked(th_worker_t *w, const char *secret)
{
    char *path = strdup(th_worker_log_path(w));
    th_worker_stop(w);
    expect_log_json(path, secret);
    free(path);
}

/* Distinct answers collected so far for ids "<prefix>-<n>", n < count;
 * errors (status "error") with code `internal` are counted in *internal. */
static inline int answered_distinct(const collector_t *col, const char *prefix, int count,
                                    int *internal)
{
    char *seen = calloc((size_t)count, 1);
    size_t plen = strlen(prefix);
    int distinct = 0;
    if (internal != NULL)
        *internal = 0;
    for (int i = 0; i < col->n; i++) {
        const char *id = msg_str(&col->msgs[i], "id");
        if (id == NULL || strncmp(id, prefix, plen) != 0 || id[plen] != '-')
            continue;
        int n = atoi(id + plen + 1);
        if (n < 0 || n >= count)
            continue;
        json_t *e = json_object_get(col->msgs[i].json, "error");
        const char *code = json_string_value(json_object_get(e, "code"));
        if (internal != NULL && code != NULL && strcmp(code, "internal") == 0)
            (*internal)++;
        if (!seen[n]) {
            seen[n] = 1;
            distinct++;
        }
    }
    free(seen);
    return distinct;
}

/* Waits until every one of the count ids "<prefix>-<n>" was answered. */
static inline int wait_answered(collector_t *col, const char *prefix, int count, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    int have;
    while ((have = answered_distinct(col, prefix, count, NULL)) < count && it_now_ms() < end)
        collector_poll(col, 2048, 200);
    return have;
}

#endif
