/* load — see load.h. */
#include "load.h"

#include "common/clock.h"
#include "procstat.h"
#include "th_internal.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_WATCH      8
#define WATCH_EVERY_NS 100000000LL
#define POLL_MS        20
#define ENVELOPE_MAX   1024
#define ACCOUNT_MAX    72
#define PAYMENT_ID_MAX 72

enum { ST_NONE, ST_OK, ST_ERROR };

typedef struct slot {
    int64_t sent_ns;
    int64_t recv_ns;
    int64_t sent_wall_ms; /* CLOCK_REALTIME, to compare with processed_at */
    int64_t answered_ms;  /* the result's processed_at, epoch ms; 0 if unreadable */
    int64_t published_ms; /* the result message's CreateTime: when the worker produced it */
    uint8_t type;
    uint8_t status;
} slot_t;

struct load {
    load_config_t cfg;
    char *tag;
    rd_kafka_t *producer;
    rd_kafka_t *consumer;
    pthread_t thread;
    atomic_bool stop;

    pthread_mutex_t lock; /* everything below */
    slot_t *slots;
    char (*accounts)[ACCOUNT_MAX]; /* chain loads: each request's account */
    int64_t next_seq;
    int64_t answered, duplicates;
    int64_t delivery_failures;
    char delivery_error[200];
    char first_error[256];
    pid_t watch[MAX_WATCH];
    int nwatch;
    int64_t watch_peak[MAX_WATCH];
    int64_t watch_peak_sum;
    uint64_t rng;
    char count_key[ACCOUNT_MAX]; /* "" for none */
    int64_t key_results;
};

static const char *const type_names[LOAD_NTYPES] = {
    [LOAD_RECORD] = "payment.record",
    [LOAD_ALLOCATE] = "share.allocate",
    [LOAD_REFUND] = "payment.refund",
    [LOAD_PAYOUT] = "payout.create",
};

const char *load_type_name(load_type_t t)
{
    return (unsigned)t < LOAD_NTYPES ? type_names[t] : "?";
}

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        fail_msg("bench: librdkafka %s=%s: %s", key, value, err);
}

static void delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    load_t *l = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    pthread_mutex_lock(&l->lock);
    l->delivery_failures++;
    snprintf(l->delivery_error, sizeof(l->delivery_error), "%s", rd_kafka_err2str(m->err));
    pthread_mutex_unlock(&l->lock);
}

/* Takes the next sequence number for a request of type t for account. */
static int64_t take_seq(load_t *l, load_type_t t, const char *account, int64_t *sent_ns)
{
    pthread_mutex_lock(&l->lock);
    int64_t seq = l->next_seq;
    if (seq >= l->cfg.capacity) {
        pthread_mutex_unlock(&l->lock);
        fail_msg("bench: more than %lld requests in one load", (long long)l->cfg.capacity);
    }
    l->next_seq++;
    *sent_ns = mono_ns();
    l->slots[seq].sent_ns = *sent_ns;
    l->slots[seq].sent_wall_ms = clock_wall_ms();
    l->slots[seq].type = (uint8_t)t;
    if (l->accounts != NULL)
        snprintf(l->accounts[seq], ACCOUNT_MAX, "%s", account);
    pthread_mutex_unlock(&l->lock);
    return seq;
}

/* Builds the envelope of request seq and produces it, keyed by account. arg
 * is the payment id for the follow-ups. */
static int64_t send_request(load_t *l, load_type_t t, const char *account, const char *arg)
{
    int64_t sent_ns;
    int64_t seq = take_seq(l, t, account, &sent_ns);
    char payload[512];
    switch (t) {
    case LOAD_RECORD:
        snprintf(payload, sizeof(payload),
                 "{\"external_id\":\"pi_%s_%lld\",\"amount\":%lld,\"currency\":\"usd\"}", l->tag,
                 (long long)seq, 1000LL + seq % 9000);
        break;
    case LOAD_ALLOCATE:
        snprintf(payload, sizeof(payload),
                 "{\"payment_id\":\"%s\",\"shares\":[{\"party\":\"platform\",\"basis_points\":"
                 "2000},{\"party\":\"seller\",\"basis_points\":8000}]}",
                 arg);
        break;
    case LOAD_REFUND:
        snprintf(payload, sizeof(payload), "{\"payment_id\":\"%s\",\"amount\":500}", arg);
        break;
    case LOAD_PAYOUT:
    default:
        snprintf(payload, sizeof(payload), "{\"amount\":400,\"currency\":\"usd\"}");
        break;
    }
    char value[ENVELOPE_MAX];
    int len = snprintf(value, sizeof(value),
                       "{\"v\":1,\"id\":\"%s-%lld\",\"account_id\":\"%s\",\"type\":\"%s\","
                       "\"payload\":%s,\"correlation_id\":\"%lld.%lld\"}",
                       l->tag, (long long)seq, account, type_names[t], payload, (long long)seq,
                       (long long)sent_ns);
    size_t keylen = strlen(account);
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(l->producer, RD_KAFKA_V_TOPIC(l->cfg.request_topic),
                              RD_KAFKA_V_KEY(account, keylen), RD_KAFKA_V_VALUE(value, (size_t)len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            fail_msg("bench: produce: %s", rd_kafka_err2str(err));
        rd_kafka_poll(l->producer, 1); /* serves delivery reports, frees room */
    }
    return seq;
}

/* ---- the result reader -------------------------------------------------- */

static bool header_is(const rd_kafka_message_t *m, const char *name, const char *want)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    return n == strlen(want) && memcmp(v, want, n) == 0;
}

/* Copies the string value that follows needle in text (up to the closing
 * quote) into out; false when absent. */
static bool find_string(const char *text, size_t len, const char *needle, char *out, size_t size)
{
    const char *p = memmem(text, len, needle, strlen(needle));
    if (p == NULL)
        return false;
    p += strlen(needle);
    const char *end = memchr(p, '"', len - (size_t)(p - text));
    if (end == NULL || (size_t)(end - p) >= size)
        return false;
    memcpy(out, p, (size_t)(end - p));
    out[end - p] = '\0';
    return true;
}

/* Counts a result of the account load_count_key named; true if it was one. */
static bool count_key(load_t *l, const rd_kafka_message_t *m)
{
    pthread_mutex_lock(&l->lock);
    size_t n = strlen(l->count_key);
    bool hit = n > 0 && m->key_len == n && memcmp(m->key, l->count_key, n) == 0;
    l->key_results += hit;
    pthread_mutex_unlock(&l->lock);
    return hit;
}

static void on_result(load_t *l, const rd_kafka_message_t *m, int64_t now)
{
    char corr[64];
    const char *text = m->payload;
    if (count_key(l, m))
        return;
    if (text == NULL || !find_string(text, m->len, "\"correlation_id\":\"", corr, sizeof(corr)))
        return; /* not ours */
    char *dot;
    long long seq = strtoll(corr, &dot, 10);
    if (*dot != '.' || seq < 0)
        return;
    int64_t sent_ns = strtoll(dot + 1, NULL, 10);
    bool ok = header_is(m, "tally-status", "ok");
    char at[40];
    int64_t answered_ms = 0;
    if (find_string(text, m->len, "\"processed_at\":\"", at, sizeof(at)) &&
        clock_parse_rfc3339(at, &answered_ms) != 0)
        answered_ms = 0;

    pthread_mutex_lock(&l->lock);
    if (seq >= l->next_seq) {
        pthread_mutex_unlock(&l->lock);
        return; /* an earlier run's */
    }
    slot_t *s = &l->slots[seq];
    if (s->status != ST_NONE) {
        l->duplicates++;
        pthread_mutex_unlock(&l->lock);
        return;
    }
    s->recv_ns = now;
    s->sent_ns = sent_ns; /* the time the envelope itself carries */
    s->answered_ms = answered_ms;
    rd_kafka_timestamp_type_t tstype;
    int64_t ts = rd_kafka_message_timestamp(m, &tstype);
    s->published_ms = tstype == RD_KAFKA_TIMESTAMP_CREATE_TIME ? ts : 0;
    s->status = ok ? ST_OK : ST_ERROR;
    load_type_t type = (load_type_t)s->type;
    if (!ok && l->first_error[0] == '\0')
        snprintf(l->first_error, sizeof(l->first_error), "%.*s", (int)(m->len < 255 ? m->len : 255),
                 text);
    char account[ACCOUNT_MAX] = "";
    if (l->accounts != NULL)
        snprintf(account, sizeof(account), "%s", l->accounts[seq]);
    pthread_mutex_unlock(&l->lock);

    /* The follow-up is sent before this answer counts, so load_wait never
     * sees "all answered" between the two. */
    if (l->cfg.chain && ok && type + 1 < LOAD_NTYPES) {
        char payment_id[PAYMENT_ID_MAX] = "";
        if (type == LOAD_RECORD &&
            !find_string(text, m->len, "\"payment\":{\"id\":\"", payment_id, sizeof(payment_id)))
            fail_msg("bench: a payment.record result without a payment id: %.*s", (int)m->len,
                     text);
        if (type != LOAD_RECORD) {
            /* The id travels in the previous requests' payloads: read it back. */
            find_string(text, m->len, "\"payment_id\":\"", payment_id, sizeof(payment_id));
            if (payment_id[0] == '\0')
                find_string(text, m->len, "\"payment\":{\"id\":\"", payment_id, sizeof(payment_id));
        }
        send_request(l, type + 1, account, payment_id);
    }
    pthread_mutex_lock(&l->lock);
    l->answered++;
    pthread_mutex_unlock(&l->lock);
}

static void sample_watch(load_t *l)
{
    pthread_mutex_lock(&l->lock);
    int n = l->nwatch;
    pid_t pids[MAX_WATCH];
    memcpy(pids, l->watch, sizeof(pids));
    pthread_mutex_unlock(&l->lock);
    int64_t rss[MAX_WATCH], sum = 0;
    for (int i = 0; i < n; i++) {
        int64_t hwm;
        procstat_mem_kb(pids[i], &rss[i], &hwm);
        sum += rss[i] > 0 ? rss[i] : 0;
    }
    pthread_mutex_lock(&l->lock);
    if (l->nwatch == n && memcmp(pids, l->watch, (size_t)n * sizeof(pid_t)) == 0) {
        for (int i = 0; i < n; i++)
            if (rss[i] > l->watch_peak[i])
                l->watch_peak[i] = rss[i];
        if (sum > l->watch_peak_sum)
            l->watch_peak_sum = sum;
    }
    pthread_mutex_unlock(&l->lock);
}

static void *reader_main(void *arg)
{
    load_t *l = arg;
    int64_t next_sample = 0;
    while (!atomic_load(&l->stop)) {
        /* One message at a time: a batch call would wait to fill its batch
         * and so add up to its timeout to every latency. */
        rd_kafka_message_t *m = rd_kafka_consumer_poll(l->consumer, POLL_MS);
        int64_t now = mono_ns();
        if (m != NULL) {
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
                on_result(l, m, now);
            rd_kafka_message_destroy(m);
        }
        if (now >= next_sample) {
            sample_watch(l);
            next_sample = now + WATCH_EVERY_NS;
        }
    }
    return NULL;
}

/* ---- public --------------------------------------------------------------- */

load_t *load_new(const load_config_t *cfg)
{
    load_t *l = calloc(1, sizeof(*l));
    if (l == NULL)
        fail_msg("bench: out of memory");
    l->cfg = *cfg;
    l->tag = strdup(cfg->tag);
    l->slots = calloc((size_t)cfg->capacity, sizeof(*l->slots));
    if (cfg->chain)
        l->accounts = calloc((size_t)cfg->capacity, sizeof(*l->accounts));
    if (l->tag == NULL || l->slots == NULL || (cfg->chain && l->accounts == NULL))
        fail_msg("bench: out of memory for %lld requests", (long long)cfg->capacity);
    pthread_mutex_init(&l->lock, NULL);
    l->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)mono_ns();
    char num[32];

    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    conf_set(pc, "bootstrap.servers", cfg->bootstrap);
    conf_set(pc, "client.id", "tally-bench-producer");
    /* Idempotence keeps one account's requests in order through retries. */
    conf_set(pc, "enable.idempotence", "true");
    snprintf(num, sizeof(num), "%d", cfg->linger_ms);
    conf_set(pc, "linger.ms", num);
    conf_set(pc, "queue.buffering.max.messages", "500000");
    conf_set(pc, "batch.num.messages", "10000");
    conf_set(pc, "message.timeout.ms", "120000");
    rd_kafka_conf_set_dr_msg_cb(pc, delivery_cb);
    rd_kafka_conf_set_opaque(pc, l);
    char err[512];
    l->producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
    if (l->producer == NULL)
        fail_msg("bench: producer: %s", err);

    rd_kafka_conf_t *cc = rd_kafka_conf_new();
    conf_set(cc, "bootstrap.servers", cfg->bootstrap);
    conf_set(cc, "client.id", "tally-bench-results");
    conf_set(cc, "group.id", "tally-bench-unused"); /* required; nothing is committed */
    conf_set(cc, "enable.auto.commit", "false");
    conf_set(cc, "enable.partition.eof", "false");
    /* The embedded broker holds an empty fetch for the whole wait. */
    snprintf(num, sizeof(num), "%d", cfg->fetch_wait_ms);
    conf_set(cc, "fetch.wait.max.ms", num);
    conf_set(cc, "fetch.error.backoff.ms", "10");
    l->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
    if (l->consumer == NULL)
        fail_msg("bench: consumer: %s", err);
    rd_kafka_poll_set_consumer(l->consumer);
    rd_kafka_topic_partition_list_t *parts =
        rd_kafka_topic_partition_list_new(cfg->result_partitions);
    for (int p = 0; p < cfg->result_partitions; p++)
        rd_kafka_topic_partition_list_add(parts, cfg->result_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t aerr = rd_kafka_assign(l->consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (aerr != RD_KAFKA_RESP_ERR_NO_ERROR)
        fail_msg("bench: assign: %s", rd_kafka_err2str(aerr));
    if (pthread_create(&l->thread, NULL, reader_main, l) != 0)
        fail_msg("bench: cannot start the result reader");
    return l;
}

void load_free(load_t *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stop, true);
    pthread_join(l->thread, NULL);
    rd_kafka_consumer_close(l->consumer);
    rd_kafka_destroy(l->consumer);
    rd_kafka_flush(l->producer, 5000);
    rd_kafka_destroy(l->producer);
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    free(l->accounts);
    free(l->tag);
    free(l);
}

int64_t load_send_record(load_t *l, const char *account)
{
    int64_t seq = send_request(l, LOAD_RECORD, account, NULL);
    rd_kafka_poll(l->producer, 0);
    return seq;
}

int64_t load_send_records(load_t *l, int n, int accounts, const char *prefix, double rate)
{
    int64_t first = load_next_seq(l);
    int64_t t0 = mono_ns();
    char account[ACCOUNT_MAX];
    for (int i = 0; i < n; i++) {
        if (rate > 0) {
            int64_t due = t0 + (int64_t)((double)i * 1e9 / rate);
            struct timespec ts = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
                ;
        }
        uint64_t x = l->rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        l->rng = x;
        snprintf(account, sizeof(account), "%s_%d", prefix, (int)(x % (uint64_t)accounts));
        send_request(l, LOAD_RECORD, account, NULL);
        if ((i & 63) == 0)
            rd_kafka_poll(l->producer, 0);
    }
    rd_kafka_poll(l->producer, 0);
    return first;
}

bool load_flush(load_t *l, int timeout_ms)
{
    rd_kafka_resp_err_t err = rd_kafka_flush(l->producer, timeout_ms);
    pthread_mutex_lock(&l->lock);
    bool ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && l->delivery_failures == 0;
    if (l->delivery_failures > 0)
        fprintf(stderr, "bench: %lld deliveries failed: %s\n", (long long)l->delivery_failures,
                l->delivery_error);
    pthread_mutex_unlock(&l->lock);
    return ok;
}

bool load_wait(load_t *l, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        rd_kafka_poll(l->producer, POLL_MS);
        pthread_mutex_lock(&l->lock);
        bool done = l->answered >= l->next_seq;
        pthread_mutex_unlock(&l->lock);
        if (done)
            return true;
        if (th_now_ms() >= deadline)
            return false;
    }
}

bool load_wait_seq(load_t *l, int64_t seq, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        rd_kafka_poll(l->producer, POLL_MS);
        pthread_mutex_lock(&l->lock);
        bool done = seq < l->next_seq && l->slots[seq].status != ST_NONE;
        pthread_mutex_unlock(&l->lock);
        if (done)
            return true;
        if (th_now_ms() >= deadline)
            return false;
    }
}

int32_t load_partition(load_t *l, const char *key, int32_t partitions)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(l->producer, l->cfg.request_topic, NULL);
    if (t == NULL)
        fail_msg("bench: topic handle: %s", rd_kafka_err2str(rd_kafka_last_error()));
    int32_t p =
        rd_kafka_msg_partitioner_consistent_random(t, key, strlen(key), partitions, NULL, NULL);
    rd_kafka_topic_destroy(t);
    return p;
}

int64_t load_next_seq(load_t *l)
{
    pthread_mutex_lock(&l->lock);
    int64_t n = l->next_seq;
    pthread_mutex_unlock(&l->lock);
    return n;
}

int64_t load_answered(load_t *l)
{
    pthread_mutex_lock(&l->lock);
    int64_t n = l->answered;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void load_watch(load_t *l, const pid_t *pids, int n)
{
    if (n > MAX_WATCH)
        n = MAX_WATCH;
    pthread_mutex_lock(&l->lock);
    l->nwatch = n;
    memset(l->watch, 0, sizeof(l->watch));
    memcpy(l->watch, pids, (size_t)n * sizeof(pid_t));
    memset(l->watch_peak, 0, sizeof(l->watch_peak));
    l->watch_peak_sum = 0;
    pthread_mutex_unlock(&l->lock);
}

void load_watch_peak(load_t *l, int64_t *per_pid_kb, int64_t *sum_kb)
{
    pthread_mutex_lock(&l->lock);
    if (per_pid_kb != NULL)
        memcpy(per_pid_kb, l->watch_peak, (size_t)l->nwatch * sizeof(int64_t));
    if (sum_kb != NULL)
        *sum_kb = l->watch_peak_sum;
    pthread_mutex_unlock(&l->lock);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile of sorted values (nearest rank), in ms. */
static double quantile_ms(const int64_t *v, int64_t n, double q)
{
    if (n == 0)
        return 0;
    int64_t k = (int64_t)(q * (double)n + 0.999999) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return (double)v[k] / 1e6;
}

void load_count_key(load_t *l, const char *key)
{
    pthread_mutex_lock(&l->lock);
    snprintf(l->count_key, sizeof(l->count_key), "%s", key);
    l->key_results = 0;
    pthread_mutex_unlock(&l->lock);
}

int64_t load_key_results(load_t *l)
{
    pthread_mutex_lock(&l->lock);
    int64_t n = l->key_results;
    pthread_mutex_unlock(&l->lock);
    return n;
}

void load_stats(load_t *l, int64_t from, int64_t to, load_stats_t *out)
{
    load_stats_where(l, from, to, NULL, NULL, out);
}

void load_stats_where(load_t *l, int64_t from, int64_t to, load_keep_cb keep, void *arg,
                      load_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&l->lock);
    if (to > l->next_seq)
        to = l->next_seq;
    if (from < 0)
        from = 0;
    int64_t n = to > from ? to - from : 0;
    int64_t *lat = malloc((size_t)(n > 0 ? n : 1) * sizeof(*lat));
    if (lat == NULL) {
        pthread_mutex_unlock(&l->lock);
        fail_msg("bench: out of memory");
    }
    int64_t *ans = malloc((size_t)(n > 0 ? n : 1) * sizeof(*ans));
    if (ans == NULL) {
        pthread_mutex_unlock(&l->lock);
        fail_msg("bench: out of memory");
    }
    int64_t *pub = malloc((size_t)(n > 0 ? n : 1) * sizeof(*pub));
    if (pub == NULL) {
        pthread_mutex_unlock(&l->lock);
        fail_msg("bench: out of memory");
    }
    int64_t first_sent = INT64_MAX, last_recv = 0, k = 0, a = 0, p = 0;
    for (int64_t s = from; s < to; s++) {
        const slot_t *sl = &l->slots[s];
        if (keep != NULL && (l->accounts == NULL || !keep(l->accounts[s], arg)))
            continue;
        out->sent++;
        if (sl->sent_ns < first_sent)
            first_sent = sl->sent_ns;
        if (sl->status == ST_NONE)
            continue;
        out->answered++;
        if (sl->status == ST_OK) {
            out->ok++;
            out->ok_by_type[sl->type]++;
        } else {
            out->errors++;
            out->errors_by_type[sl->type]++;
        }
        if (sl->recv_ns > last_recv)
            last_recv = sl->recv_ns;
        lat[k++] = sl->recv_ns - sl->sent_ns;
        if (sl->answered_ms > 0)
            ans[a++] = (sl->answered_ms - sl->sent_wall_ms) * 1000000;
        if (sl->published_ms > 0)
            pub[p++] = (sl->published_ms - sl->sent_wall_ms) * 1000000;
    }
    out->duplicates = l->duplicates;
    snprintf(out->first_error, sizeof(out->first_error), "%s", l->first_error);
    pthread_mutex_unlock(&l->lock);
    qsort(lat, (size_t)k, sizeof(*lat), cmp_i64);
    out->p50_ms = quantile_ms(lat, k, 0.50);
    out->p95_ms = quantile_ms(lat, k, 0.95);
    out->p99_ms = quantile_ms(lat, k, 0.99);
    out->max_ms = k > 0 ? (double)lat[k - 1] / 1e6 : 0;
    qsort(ans, (size_t)a, sizeof(*ans), cmp_i64);
    out->answered_p50_ms = quantile_ms(ans, a, 0.50);
    out->answered_p99_ms = quantile_ms(ans, a, 0.99);
    free(ans);
    qsort(pub, (size_t)p, sizeof(*pub), cmp_i64);
    out->published_p50_ms = quantile_ms(pub, p, 0.50);
    out->published_p99_ms = quantile_ms(pub, p, 0.99);
    free(pub);
    if (k > 0 && last_recv > first_sent) {
        out->seconds = (double)(last_recv - first_sent) / 1e9;
        out->per_s = (double)out->answered / out->seconds;
    }
    free(lat);
}
