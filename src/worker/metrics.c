#include "worker/metrics.h"

#include "common/errcode.h"
#include "common/mem.h"
#include "handlers/handler.h"
#include "worker/procstat.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds in seconds. Requests are a few database round trips (about a
 * millisecond) up to retries with backoff (seconds). */
static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static const char *const bucket_le_str[] = {"0.0005", "0.001", "0.0025", "0.005", "0.01",
                                            "0.025",  "0.05",  "0.1",    "0.25",  "0.5",
                                            "1",      "2.5",   "5",      "10"};
#define N_BUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))

/* A request's age at start: from a few milliseconds (no backlog) to an hour
 * (a long outage); the request-age alert is at a minute. */
static const double age_le[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
                                5,     10,   30,    60,   120, 300,  600, 1800, 3600};
static const char *const age_le_str[] = {"0.005", "0.01", "0.025", "0.05", "0.1",  "0.25",
                                         "0.5",   "1",    "2.5",   "5",    "10",   "30",
                                         "60",    "120",  "300",   "600",  "1800", "3600"};
#define N_AGE_BUCKETS (sizeof(age_le) / sizeof(age_le[0]))

/* Error-code slots: the contract's codes (every one but TALLY_ERR_NONE) at
 * code - 1, then "other". */
#define N_CODES      (TALLY_ERRCODE_COUNT - 1)
#define CODE_OTHER   N_CODES
#define N_CODE_SLOTS (N_CODES + 1)

enum { ST_OK, ST_ERROR, N_STATUS };
static const char *const status_names[N_STATUS] = {"ok", "error"};

typedef struct type_series {
    const char *name; /* the registry's static string, or "unknown" */
    uint64_t requests[N_STATUS];
    uint64_t errors[N_CODE_SLOTS];
    uint64_t buckets[N_BUCKETS]; /* non-cumulative here; summed when rendered */
    uint64_t count;
    double sum;
} type_series_t;

typedef struct lag_series {
    char *topic;
    int32_t partition;
    int64_t lag;
} lag_series_t;

struct metrics {
    pthread_mutex_t mu;
    size_t n_types; /* the last one is "unknown" */
    type_series_t *types;
    uint64_t replays;
    uint64_t retries;
    uint64_t dlq[N_CODE_SLOTS];
    int64_t in_flight;
    int64_t paused;
    int64_t stuck;
    int64_t pool_idle, pool_active, pool_connecting;
    bool database_up;
    lag_series_t *lags;
    size_t n_lags;
    uint64_t age_buckets[N_AGE_BUCKETS]; /* non-cumulative */
    uint64_t age_count;
    double age_sum;
    double oldest_in_flight;
    int64_t assigned;
    int64_t held;
    bool have_process;
    procstat_t process;
};

metrics_t *metrics_new(void)
{
    metrics_t *m = mem_calloc(1, sizeof(*m));
    m->n_types = handler_count() + 1;
    m->types = mem_calloc(m->n_types, sizeof(*m->types));
    m->lags = mem_calloc(METRICS_MAX_LAG_SERIES, sizeof(*m->lags));
    for (size_t i = 0; i + 1 < m->n_types; i++)
        m->types[i].name = handler_name(handler_at(i));
    m->types[m->n_types - 1].name = "unknown";
    pthread_mutex_init(&m->mu, NULL);
    return m;
}

void metrics_free(metrics_t *m)
{
    if (m == NULL)
        return;
    metrics_clear_consumer_lag(m);
    pthread_mutex_destroy(&m->mu);
    free(m->lags);
    free(m->types);
    free(m);
}

/* The series of a job type; "unknown" for anything outside the registry so
 * that a flood of made-up types cannot grow the label set. */
static type_series_t *type_slot(metrics_t *m, const char *type)
{
    if (type != NULL) {
        for (size_t i = 0; i + 1 < m->n_types; i++) {
            if (strcmp(m->types[i].name, type) == 0)
                return &m->types[i];
        }
    }
    return &m->types[m->n_types - 1];
}

static int code_slot(const char *error_code)
{
    tally_errcode_t c;
    if (error_code != NULL && tally_errcode_parse(error_code, &c) && c != TALLY_ERR_NONE)
        return (int)c - 1;
    return CODE_OTHER;
}

static const char *code_name(int slot)
{
    return slot == CODE_OTHER ? "other" : tally_errcode_str((tally_errcode_t)(slot + 1));
}

void metrics_request_done(metrics_t *m, const char *type, const char *status,
                          const char *error_code, double seconds, bool replayed)
{
    int st = status != NULL && strcmp(status, "ok") == 0 ? ST_OK : ST_ERROR;
    int code = st == ST_ERROR ? code_slot(error_code) : -1;
    if (!(seconds >= 0)) /* negative or NaN: a clock hiccup, not a duration */
        seconds = 0;
    size_t b = 0;
    while (b < N_BUCKETS && seconds > bucket_le[b])
        b++;

    pthread_mutex_lock(&m->mu);
    type_series_t *t = type_slot(m, type);
    t->requests[st]++;
    if (code >= 0)
        t->errors[code]++;
    if (b < N_BUCKETS)
        t->buckets[b]++;
    t->count++;
    t->sum += seconds;
    if (replayed)
        m->replays++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_dlq(metrics_t *m, const char *error_code)
{
    int code = code_slot(error_code);
    pthread_mutex_lock(&m->mu);
    m->dlq[code]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_retry(metrics_t *m)
{
    pthread_mutex_lock(&m->mu);
    m->retries++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_in_flight(metrics_t *m, int64_t n)
{
    pthread_mutex_lock(&m->mu);
    m->in_flight = n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_stuck_deliveries(metrics_t *m, int64_t n)
{
    pthread_mutex_lock(&m->mu);
    m->stuck = n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_paused_partitions(metrics_t *m, int64_t n)
{
    pthread_mutex_lock(&m->mu);
    m->paused = n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_pool(metrics_t *m, int idle, int active, int connecting)
{
    pthread_mutex_lock(&m->mu);
    m->pool_idle = idle;
    m->pool_active = active;
    m->pool_connecting = connecting;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_database_up(metrics_t *m, bool up)
{
    pthread_mutex_lock(&m->mu);
    m->database_up = up;
    pthread_mutex_unlock(&m->mu);
}

void metrics_request_age(metrics_t *m, double seconds)
{
    if (!(seconds >= 0)) /* a producer clock ahead of ours, or NaN */
        seconds = 0;
    size_t b = 0;
    while (b < N_AGE_BUCKETS && seconds > age_le[b])
        b++;
    pthread_mutex_lock(&m->mu);
    if (b < N_AGE_BUCKETS)
        m->age_buckets[b]++;
    m->age_count++;
    m->age_sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_oldest_in_flight(metrics_t *m, double seconds)
{
    pthread_mutex_lock(&m->mu);
    m->oldest_in_flight = seconds > 0 ? seconds : 0;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_assigned_partitions(metrics_t *m, int64_t n)
{
    pthread_mutex_lock(&m->mu);
    m->assigned = n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_held_accounts(metrics_t *m, int64_t n)
{
    pthread_mutex_lock(&m->mu);
    m->held = n;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_process(metrics_t *m, const procstat_t *ps)
{
    pthread_mutex_lock(&m->mu);
    m->have_process = ps != NULL;
    if (ps != NULL)
        m->process = *ps;
    pthread_mutex_unlock(&m->mu);
}

void metrics_set_consumer_lag(metrics_t *m, const char *topic, int32_t partition, int64_t lag)
{
    if (topic == NULL)
        return;
    pthread_mutex_lock(&m->mu);
    lag_series_t *s = NULL;
    for (size_t i = 0; i < m->n_lags; i++) {
        if (m->lags[i].partition == partition && strcmp(m->lags[i].topic, topic) == 0) {
            s = &m->lags[i];
            break;
        }
    }
    if (s == NULL && m->n_lags < METRICS_MAX_LAG_SERIES) {
        s = &m->lags[m->n_lags++];
        s->topic = mem_strdup(topic);
        s->partition = partition;
    }
    if (s != NULL)
        s->lag = lag;
    pthread_mutex_unlock(&m->mu);
}

void metrics_clear_consumer_lag(metrics_t *m)
{
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_lags; i++)
        free(m->lags[i].topic);
    m->n_lags = 0;
    pthread_mutex_unlock(&m->mu);
}

/* ---- rendering ---------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool failed; /* a format error (vsnprintf < 0) */
} buf_t;

__attribute__((format(printf, 2, 3))) static void put(buf_t *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n;
        b->p = mem_realloc(b->p, b->cap);
    }
}

static void header(buf_t *b, const char *name, const char *type, const char *help)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped as the exposition format asks. */
static void put_label_value(buf_t *b, const char *v)
{
    for (; *v != '\0'; v++) {
        if (*v == '\\')
            put(b, "\\\\");
        else if (*v == '"')
            put(b, "\\\"");
        else if (*v == '\n')
            put(b, "\\n");
        else
            put(b, "%c", *v);
    }
}

static void render_requests(buf_t *b, const metrics_t *m)
{
    header(b, "tally_requests_total", "counter", "Requests answered, by job type and status.");
    for (size_t i = 0; i < m->n_types; i++) {
        for (int s = 0; s < N_STATUS; s++)
            put(b, "tally_requests_total{type=\"%s\",status=\"%s\"} %llu\n", m->types[i].name,
                status_names[s], (unsigned long long)m->types[i].requests[s]);
    }
    header(b, "tally_request_errors_total", "counter",
           "Error answers, by job type and contract error code.");
    for (size_t i = 0; i < m->n_types; i++) {
        for (int c = 0; c < N_CODE_SLOTS; c++) {
            if (m->types[i].errors[c] > 0)
                put(b, "tally_request_errors_total{type=\"%s\",error_code=\"%s\"} %llu\n",
                    m->types[i].name, code_name(c), (unsigned long long)m->types[i].errors[c]);
        }
    }
    header(b, "tally_replays_total", "counter",
           "Requests answered again from their stored outcome (redeliveries, resends).");
    put(b, "tally_replays_total %llu\n", (unsigned long long)m->replays);
}

static void render_histogram(buf_t *b, const metrics_t *m)
{
    const char *h = "tally_request_duration_seconds";
    header(b, h, "histogram", "Time from dequeue to answer, by job type.");
    for (size_t i = 0; i < m->n_types; i++) {
        const type_series_t *t = &m->types[i];
        if (t->count == 0)
            continue;
        uint64_t cum = 0;
        for (size_t k = 0; k < N_BUCKETS; k++) {
            cum += t->buckets[k];
            put(b, "%s_bucket{type=\"%s\",le=\"%s\"} %llu\n", h, t->name, bucket_le_str[k],
                (unsigned long long)cum);
        }
        put(b, "%s_bucket{type=\"%s\",le=\"+Inf\"} %llu\n", h, t->name,
            (unsigned long long)t->count);
        put(b, "%s_sum{type=\"%s\"} %.9g\n", h, t->name, t->sum);
        put(b, "%s_count{type=\"%s\"} %llu\n", h, t->name, (unsigned long long)t->count);
    }
}

/* tally_request_age_seconds: one series, there from the first scrape. */
static void render_age(buf_t *b, const metrics_t *m)
{
    const char *h = "tally_request_age_seconds";
    header(b, h, "histogram",
           "Age of a request when its processing starts: from its Kafka message timestamp "
           "(CreateTime: the producer's clock; LogAppendTime: the broker's) to its first "
           "dispatch.");
    uint64_t cum = 0;
    for (size_t k = 0; k < N_AGE_BUCKETS; k++) {
        cum += m->age_buckets[k];
        put(b, "%s_bucket{le=\"%s\"} %llu\n", h, age_le_str[k], (unsigned long long)cum);
    }
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n", h, (unsigned long long)m->age_count);
    put(b, "%s_sum %.9g\n", h, m->age_sum);
    put(b, "%s_count %llu\n", h, (unsigned long long)m->age_count);
}

/* The standard process metrics, named and explained as the Prometheus
 * client libraries do. */
static void render_process(buf_t *b, const metrics_t *m)
{
    if (!m->have_process)
        return;
    const procstat_t *p = &m->process;
    header(b, "process_start_time_seconds", "gauge",
           "Start time of the process since unix epoch in seconds.");
    put(b, "process_start_time_seconds %.3f\n", p->start_time_seconds);
    header(b, "process_cpu_seconds_total", "counter",
           "Total user and system CPU time spent in seconds.");
    put(b, "process_cpu_seconds_total %.2f\n", p->cpu_seconds);
    header(b, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    put(b, "process_resident_memory_bytes %lld\n", (long long)p->resident_bytes);
    header(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    put(b, "process_virtual_memory_bytes %lld\n", (long long)p->virtual_bytes);
    header(b, "process_open_fds", "gauge", "Number of open file descriptors.");
    put(b, "process_open_fds %lld\n", (long long)p->open_fds);
    header(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
    put(b, "process_max_fds %lld\n", (long long)p->max_fds);
}

/* The gauges the scrape sets from the runtime's state. */
static void render_gauges(buf_t *b, const metrics_t *m)
{
    header(b, "tally_oldest_in_flight_seconds", "gauge",
           "Age of the oldest request this worker read and has not finished (0 when none).");
    put(b, "tally_oldest_in_flight_seconds %.3f\n", m->oldest_in_flight);
    header(b, "tally_assigned_partitions", "gauge",
           "Request partitions assigned to this worker (0 beyond the partition count).");
    put(b, "tally_assigned_partitions %lld\n", (long long)m->assigned);
    header(b, "tally_held_accounts", "gauge",
           "Accounts an operator holds (tallyctl hold), as this worker last read them.");
    put(b, "tally_held_accounts %lld\n", (long long)m->held);
}

static void render_rest(buf_t *b, const metrics_t *m)
{
    header(b, "tally_dlq_messages_total", "counter",
           "Messages copied to the dead-letter topic, by tally-error-code.");
    for (int c = 0; c < N_CODE_SLOTS; c++)
        put(b, "tally_dlq_messages_total{error_code=\"%s\"} %llu\n", code_name(c),
            (unsigned long long)m->dlq[c]);
    header(b, "tally_retries_total", "counter", "Transient failures retried with backoff.");
    put(b, "tally_retries_total %llu\n", (unsigned long long)m->retries);
    header(b, "tally_in_flight_requests", "gauge", "Requests read from Kafka and not yet done.");
    put(b, "tally_in_flight_requests %lld\n", (long long)m->in_flight);
    header(b, "tally_pool_connections", "gauge", "Database pool connections, by state.");
    put(b, "tally_pool_connections{state=\"idle\"} %lld\n", (long long)m->pool_idle);
    put(b, "tally_pool_connections{state=\"active\"} %lld\n", (long long)m->pool_active);
    put(b, "tally_pool_connections{state=\"connecting\"} %lld\n", (long long)m->pool_connecting);
    header(b, "tally_paused_partitions", "gauge",
           "Assigned partitions paused because in-flight work is at its bound.");
    put(b, "tally_paused_partitions %lld\n", (long long)m->paused);
    header(b, "tally_database_up", "gauge",
           "1 while the database answers the worker's health checks and no connection pooler "
           "fault stands (the same as /readyz's database); 0 while consumption is paused for "
           "it.");
    put(b, "tally_database_up %d\n", m->database_up ? 1 : 0);
    header(b, "tally_stuck_deliveries", "gauge",
           "Deliveries (results, audit events, DLQ copies) that failed for good and hold "
           "their request's offset uncommitted.");
    put(b, "tally_stuck_deliveries %lld\n", (long long)m->stuck);
    header(b, "tally_consumer_lag", "gauge",
           "Messages behind the high watermark, per assigned partition: the high watermark "
           "minus the first offset this worker has not finished, at scrape time.");
    for (size_t i = 0; i < m->n_lags; i++) {
        put(b, "tally_consumer_lag{topic=\"");
        put_label_value(b, m->lags[i].topic);
        put(b, "\",partition=\"%d\"} %lld\n", (int)m->lags[i].partition, (long long)m->lags[i].lag);
    }
    header(b, "tally_build_info", "gauge", "The running build; always 1.");
    put(b, "tally_build_info{version=\"%s\"} 1\n", TALLY_VERSION);
}

int metrics_render(metrics_t *m, char **out, size_t *len)
{
    buf_t b = {.p = mem_alloc(8192), .cap = 8192};
    b.p[0] = '\0';
    pthread_mutex_lock(&m->mu);
    render_requests(&b, m);
    render_histogram(&b, m);
    render_age(&b, m);
    render_gauges(&b, m);
    render_rest(&b, m);
    render_process(&b, m);
    pthread_mutex_unlock(&m->mu);
    if (b.failed) {
        free(b.p);
        return -1;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
