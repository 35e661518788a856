#include "kafka_client.h"

#include "common/clock.h"
#include "common/kafka_env.h"
#include "common/mem.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

extern char **environ;

int kc_opts_add_prop(kc_opts_t *o, const char *kv, char *err, size_t errlen)
{
    const char *eq = strchr(kv, '=');
    if (eq == NULL || eq == kv) {
        snprintf(err, errlen, "-X expects key=value, got \"%.64s\"", kv);
        return -1;
    }
    o->props = mem_realloc(o->props, (o->n_props + 1) * sizeof(*o->props));
    o->props[o->n_props++] = kv;
    return 0;
}

void kc_opts_free(kc_opts_t *o)
{
    free(o->props);
    o->props = NULL;
    o->n_props = 0;
}

int kc_handle_opt(kc_opts_t *o, int c, const char *arg, char *err, size_t errlen)
{
    switch (c) {
    case 'X':
        return kc_opts_add_prop(o, arg, err, errlen) == 0 ? 1 : -1;
    case KC_OPT_BROKERS:
        o->brokers = arg;
        return 1;
    case KC_OPT_VERBOSE:
        o->verbose = true;
        return 1;
    default:
        return 0;
    }
}

const char *kc_topic_default(const char *role)
{
    static const struct {
        const char *role, *env, *def;
    } topics[] = {
        {"request", "TALLY_REQUEST_TOPIC", "tally.requests"},
        {"result", "TALLY_RESULT_TOPIC", "tally.results"},
        {"audit", "TALLY_AUDIT_TOPIC", "tally.audit"},
        {"dlq", "TALLY_DLQ_TOPIC", "tally.dlq"},
    };
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        if (strcmp(topics[i].role, role) == 0) {
            const char *v = getenv(topics[i].env);
            return v != NULL && *v != '\0' ? v : topics[i].def;
        }
    }
    return NULL;
}

/* A property whose value must never be echoed. */
static bool is_secret(const char *key)
{
    return strstr(key, "password") != NULL || strstr(key, "secret") != NULL ||
           strstr(key, ".key") != NULL || strstr(key, "token") != NULL;
}

static int set_prop(rd_kafka_conf_t *conf, const char *key, const char *value, const char *origin,
                    char *err, size_t errlen)
{
    char kerr[512];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof(kerr)) == RD_KAFKA_CONF_OK)
        return 0;
    if (is_secret(key))
        snprintf(err, errlen, "%s: invalid value for %s", origin, key);
    else
        snprintf(err, errlen, "%s: %s", origin, kerr);
    return -1;
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    (void)level;
    fprintf(stderr, "tallyctl: kafka %s: %s\n", fac, buf);
}

static void on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    (void)rk;
    (void)opaque;
    /* Transient broker trouble is retried by librdkafka; say so once per event. */
    if (code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || code == RD_KAFKA_RESP_ERR__FATAL)
        fprintf(stderr, "tallyctl: kafka: %s\n", reason);
}

/* The common configuration: KAFKA_* environment first (unknown properties
 * there are skipped with a warning: shells of Kafka users often carry
 * KAFKA_HOME or KAFKA_OPTS), then --brokers, then -X (errors there are fatal). */
static rd_kafka_conf_t *base_conf(const kc_opts_t *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char kerr[512];
    for (char **e = environ; *e != NULL; e++) {
        char key[KAFKA_ENV_PROPERTY_MAX];
        const char *value;
        size_t name_len;
        if (!kafka_env_property(*e, key, sizeof(key), &value, &name_len))
            continue;
        if (rd_kafka_conf_set(conf, key, value, kerr, sizeof(kerr)) != RD_KAFKA_CONF_OK &&
            o->verbose)
            fprintf(stderr, "tallyctl: ignoring %.*s: not a usable librdkafka property\n",
                    (int)name_len, *e);
    }
    if (o->brokers != NULL &&
        set_prop(conf, "bootstrap.servers", o->brokers, "--brokers", err, errlen) != 0)
        goto fail;
    for (size_t i = 0; i < o->n_props; i++) {
        const char *kv = o->props[i];
        const char *eq = strchr(kv, '=');
        char key[128];
        size_t n = (size_t)(eq - kv);
        if (n >= sizeof(key)) {
            snprintf(err, errlen, "-X: property name too long");
            goto fail;
        }
        memcpy(key, kv, n);
        key[n] = '\0';
        if (set_prop(conf, key, eq + 1, "-X", err, errlen) != 0)
            goto fail;
    }
    size_t sz = 0;
    if (rd_kafka_conf_get(conf, "bootstrap.servers", NULL, &sz) != RD_KAFKA_CONF_OK || sz <= 1) {
        snprintf(err, errlen,
                 "no brokers: set KAFKA_BOOTSTRAP_SERVERS or pass --brokers host:port");
        goto fail;
    }
    rd_kafka_conf_set(conf, "client.id", "tallyctl", kerr, sizeof(kerr));
    rd_kafka_conf_set_error_cb(conf, on_error);
    if (!o->verbose) /* librdkafka logs connection churn at warning level */
        rd_kafka_conf_set(conf, "log_level", "3", kerr, sizeof(kerr));
    rd_kafka_conf_set_log_cb(conf, on_log);
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

int kc_opts_check(const kc_opts_t *o, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(o, err, errlen);
    if (conf == NULL)
        return -1;
    rd_kafka_conf_destroy(conf);
    return 0;
}

/* Sets key only when neither the environment nor -X did. */
static void set_default(rd_kafka_conf_t *conf, const kc_opts_t *o, const char *key,
                        const char *value)
{
    for (size_t i = 0; i < o->n_props; i++) {
        size_t n = strlen(key);
        if (strncmp(o->props[i], key, n) == 0 && o->props[i][n] == '=')
            return;
    }
    char env[KAFKA_ENV_PROPERTY_MAX + sizeof(KAFKA_ENV_PREFIX)];
    if (!kafka_env_name(key, env, sizeof(env)) || getenv(env) != NULL)
        return;
    char kerr[256];
    rd_kafka_conf_set(conf, key, value, kerr, sizeof(kerr));
}

rd_kafka_t *kc_producer_new(const kc_opts_t *o, kc_dr_cb *dr_cb, void *opaque, char *err,
                            size_t errlen)
{
    rd_kafka_conf_t *conf = base_conf(o, err, errlen);
    if (conf == NULL)
        return NULL;
    /* Idempotence keeps one account's requests in order across retries. */
    set_default(conf, o, "enable.idempotence", "true");
    set_default(conf, o, "message.timeout.ms", "30000");
    set_default(conf, o, "linger.ms", "5");
    /* The Java client's and kafkajs's (clients/typescript) partitioner: one
     * account's requests land in one partition whichever tool sends them,
     * and per-account order holds only within a partition. */
    set_default(conf, o, "partitioner", "murmur2_random");
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_opaque(conf, opaque);
    char kerr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof(kerr));
    if (rk == NULL) { /* rd_kafka_new takes conf only on success */
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot create producer: %s", kerr);
    }
    return rk;
}

rd_kafka_resp_err_t kc_produce(rd_kafka_t *rk, const char *topic, const char *key,
                               const void *value, size_t len, void *opaque)
{
    size_t key_len = key != NULL ? strlen(key) : 0;
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rd_kafka_poll(rk, 0);
            return e;
        }
        rd_kafka_poll(rk, 100); /* deliveries free room */
    }
}

/* ---- reader --------------------------------------------------------------- */

static int add_partitions(kc_reader_t *r, const char *topic, char *err, size_t errlen)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(r->rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 0, t, &md, KC_META_TIMEOUT_MS);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "cannot read metadata of %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    int rc = -1;
    if (md->topic_cnt != 1 || md->topics[0].err != RD_KAFKA_RESP_ERR_NO_ERROR ||
        md->topics[0].partition_cnt == 0) {
        rd_kafka_resp_err_t te =
            md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR_NO_ERROR;
        snprintf(err, errlen, "topic %s: %s", topic,
                 te == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || te == RD_KAFKA_RESP_ERR_NO_ERROR
                     ? "does not exist"
                     : rd_kafka_err2str(te));
        goto out;
    }
    int cnt = md->topics[0].partition_cnt;
    r->parts = mem_realloc(r->parts, (r->n_parts + (size_t)cnt) * sizeof(*r->parts));
    for (int i = 0; i < cnt; i++) {
        kc_part_t *kp = &r->parts[r->n_parts];
        kp->topic = topic;
        kp->partition = md->topics[0].partitions[i].id;
        e = rd_kafka_query_watermark_offsets(r->rk, topic, kp->partition, &kp->low, &kp->high,
                                             KC_META_TIMEOUT_MS);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(err, errlen, "cannot read offsets of %s [%d]: %s", topic, kp->partition,
                     rd_kafka_err2str(e));
            goto out;
        }
        r->n_parts++;
    }
    rc = 0;
out:
    rd_kafka_metadata_destroy(md);
    return rc;
}

int kc_reader_open(kc_reader_t *r, const kc_opts_t *o, const char *const *topics, size_t n,
                   kc_start_t start, char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    rd_kafka_conf_t *conf = base_conf(o, err, errlen);
    if (conf == NULL)
        return -1;
    char kerr[512];
    /* No group membership and no commits: the reader only assigns partitions. */
    set_default(conf, o, "enable.auto.commit", "false");
    /* librdkafka's assign() wants a group id even when nothing joins it. */
    set_default(conf, o, "group.id", "tallyctl-reader");
    set_default(conf, o, "enable.partition.eof", "true");
    set_default(conf, o, "fetch.wait.max.ms", "100");
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", kerr, sizeof(kerr));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, kerr, sizeof(kerr));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "cannot create consumer: %s", kerr);
        return -1;
    }
    r->rk = rk;
    rd_kafka_poll_set_consumer(rk);
    r->topics = mem_calloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        r->topics[i] = mem_strdup(topics[i]);
        r->n_topics++;
        if (add_partitions(r, r->topics[i], err, errlen) != 0)
            goto fail;
    }
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)r->n_parts);
    for (size_t i = 0; i < r->n_parts; i++) {
        kc_part_t *p = &r->parts[i];
        p->next = start == KC_FROM_BEGINNING ? p->low : p->high;
        rd_kafka_topic_partition_list_add(list, p->topic, p->partition)->offset = p->next;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(err, errlen, "cannot assign partitions: %s", rd_kafka_err2str(e));
        goto fail;
    }
    return 0;
fail:
    kc_reader_close(r);
    return -1;
}

static kc_part_t *find_part(kc_reader_t *r, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < r->n_parts; i++) {
        if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0)
            return &r->parts[i];
    }
    return NULL;
}

rd_kafka_message_t *kc_reader_poll(kc_reader_t *r, int timeout_ms, bool *fatal, char *err,
                                   size_t errlen)
{
    *fatal = false;
    int64_t deadline = kc_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - kc_now_ms();
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->rk, left > 0 ? (int)left : 0);
        if (m == NULL)
            return NULL;
        kc_part_t *p =
            m->rkt != NULL ? find_part(r, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (p != NULL && m->offset + 1 > p->next)
                p->next = m->offset + 1;
            return m;
        }
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            if (p != NULL && m->offset > p->next)
                p->next = m->offset;
            if (p != NULL && p->next < p->high) /* the log ends earlier (retention, gaps) */
                p->next = p->high;
        } else if (m->err == RD_KAFKA_RESP_ERR__FATAL ||
                   m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                   m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                   m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
            snprintf(err, errlen, "%s", rd_kafka_message_errstr(m));
            *fatal = true;
            rd_kafka_message_destroy(m);
            return NULL;
        }
        rd_kafka_message_destroy(m);
        if (deadline - kc_now_ms() <= 0)
            return NULL;
    }
}

bool kc_reader_caught_up(const kc_reader_t *r)
{
    for (size_t i = 0; i < r->n_parts; i++) {
        if (r->parts[i].next < r->parts[i].high)
            return false;
    }
    return true;
}

void kc_reader_close(kc_reader_t *r)
{
    if (r->rk != NULL) {
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    for (size_t i = 0; i < r->n_topics; i++)
        free(r->topics[i]);
    free(r->topics);
    free(r->parts);
    memset(r, 0, sizeof(*r));
}

/* ---- message helpers ------------------------------------------------------ */

char *kc_header(const rd_kafka_message_t *m, const char *name)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v;
    size_t n;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || v == NULL)
        return NULL;
    return mem_strndup(v, n);
}

json_t *kc_headers_json(const rd_kafka_message_t *m)
{
    json_t *o = json_object();
    rd_kafka_headers_t *hdrs = NULL;
    if (rd_kafka_message_headers(m, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return o;
    const char *name;
    const void *v;
    size_t n;
    for (size_t i = 0;
         rd_kafka_header_get_all(hdrs, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
        json_t *s = v != NULL ? json_stringn(v, n) : NULL;
        json_object_set_new(o, name, s != NULL ? s : json_null());
    }
    return o;
}

static char *base64(const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = mem_alloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = tbl[(v >> 18) & 63];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

json_t *kc_bytes_json(const void *p, size_t len)
{
    if (p == NULL)
        return json_null();
    json_t *s = json_stringn(p, len);
    if (s != NULL)
        return s;
    char *b = base64(p, len);
    json_t *o = json_pack("{s:s}", "base64", b);
    free(b);
    return o;
}

int kc_parse_duration_ms(const char *s, int64_t *ms)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno != 0 || !(v >= 0) || v > 1e9)
        return -1;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return -1;
    *ms = (int64_t)(v * mult);
    return 0;
}

int64_t kc_now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

void kc_print_json(FILE *out, const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (s != NULL) {
        fputs(s, out);
        fputc('\n', out);
        free(s);
    }
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

void kc_install_sigint(void)
{
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool kc_interrupted(void)
{
    return interrupted != 0;
}
