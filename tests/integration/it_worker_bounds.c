/* it_worker_bounds — what one account's results and dead letters can do to
 * everyone else's deliveries (issue 11; CONTRACT.md §3, §4, §5):
 *
 * - a result the broker refuses as too large is answered `internal` with a
 *   short result and a DLQ copy, and its partition goes on (offsets commit:
 *   a restarted worker replays nothing);
 * - no result over 1 MiB is ever published;
 * - a dead letter too large for the DLQ (a 2.3 MB key, a 1.5 MB value) is cut
 *   to fit, its original sizes in headers, and its partition goes on;
 * - a delivery that keeps failing stops being retried after its budget, shows
 *   in /readyz and tally_stuck_deliveries, holds back at most the
 *   flow-control window of its partition, lets the other partitions flow and
 *   does not hold up shutdown; the next worker answers everything.
 *
 * One PostgreSQL and one broker; each test runs its own worker on its own
 * request topic and group. */
#include "it_worker_common.h"

#include <unistd.h>

typedef struct bstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_producer_t *p;
    collector_t *results, *dlq;
} bstack_t;

#define MIB (1024 * 1024)

static int setup(void **state)
{
    bstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(3);
    th_broker_command(s->b, "topic small.requests 2");
    th_broker_command(s->b, "topic stuck.requests 2");
    /* Room for the 2.3 MB key and the 1.5 MB value this test sends. */
    const char *conf[] = {"message.max.bytes=4000000", NULL};
    s->p = th_producer_new_with(s->b, conf);
    s->results = collector_new(s->b, RESULT_TOPIC);
    s->dlq = collector_new(s->b, DLQ_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    bstack_t *s = *state;
    if (s == NULL)
        return 0; /* setup failed before the stack existed */
    collector_free(s->results);
    collector_free(s->dlq);
    th_producer_free(s->p);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

static th_worker_t *start_worker(bstack_t *s, const char *const *env)
{
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    if (!th_worker_wait_ready(w, 60000))
        fail_msg("worker not ready");
    return w;
}

/* A payment.record of about 28 KB: the allowed maximum of metadata (50 keys
 * of 40 characters, values of 500) and description (1000). */
static void send_big_payment(bstack_t *s, const char *topic, int32_t partition, const char *acct,
                             const char *id)
{
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    n += (size_t)snprintf(buf + n, cap - n,
                          "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.record\","
                          "\"payload\":{\"external_id\":\"%s\",\"amount\":1000,\"currency\":"
                          "\"usd\",\"description\":\"%01000d\",\"metadata\":{",
                          id, acct, id, 0);
    for (int k = 0; k < 50; k++)
        n += (size_t)snprintf(buf + n, cap - n, "%s\"%040d\":\"%0500d\"", k ? "," : "", k, k);
    n += (size_t)snprintf(buf + n, cap - n, "}}}");
    assert_true(n < cap);
    th_produce(s->p, topic, partition, acct, buf, n);
    free(buf);
}

static void send_small(bstack_t *s, const char *topic, int32_t partition, const char *acct,
                       const char *id, const char *extra)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "{\"id\":\"%s\",\"account_id\":\"%s\",\"type\":\"payment.get\","
                     "\"payload\":{\"payment_id\":\"pay_none\"}%s}",
                     id, acct, extra != NULL ? extra : "");
    th_produce(s->p, topic, partition, acct, buf, (size_t)n);
}

static const th_msg_t *result_of(bstack_t *s, const char *id, const char *acct)
{
    const th_msg_t *r = collector_find(s->results, "id", id, acct, 60000);
    if (r == NULL)
        fail_msg("no result for %s/%s", acct, id);
    return r;
}

static const char *error_code(const th_msg_t *r)
{
    return json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
}

/* The DLQ copy whose tally-source-topic and -offset are those given, waiting
 * up to 60 s; NULL when none arrived. */
static const th_msg_t *dlq_copy(bstack_t *s, const char *topic, int32_t partition, int64_t offset)
{
    char part[16], off[32];
    snprintf(part, sizeof(part), "%d", (int)partition);
    snprintf(off, sizeof(off), "%lld", (long long)offset);
    int64_t end = it_now_ms() + 60000;
    for (;;) {
        for (int i = 0; i < s->dlq->n; i++) {
            const th_msg_t *m = &s->dlq->msgs[i];
            const char *t = msg_header(m, "tally-source-topic");
            const char *p = msg_header(m, "tally-source-partition");
            const char *o = msg_header(m, "tally-source-offset");
            if (t && p && o && strcmp(t, topic) == 0 && strcmp(p, part) == 0 && strcmp(o, off) == 0)
                return m;
        }
        if (it_now_ms() > end)
            return NULL;
        collector_poll(s->dlq, 64, 200);
    }
}

/* The offset of the result-bearing request: the audit event is not read here,
 * so the DLQ copy is found by the request id in its value. */
static const th_msg_t *dlq_copy_of_id(bstack_t *s, const char *id)
{
    char needle[160];
    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
    int64_t end = it_now_ms() + 60000;
    for (;;) {
        for (int i = 0; i < s->dlq->n; i++) {
            if (s->dlq->msgs[i].value != NULL && strstr(s->dlq->msgs[i].value, needle) != NULL)
                return &s->dlq->msgs[i];
        }
        if (it_now_ms() > end)
            return NULL;
        collector_poll(s->dlq, 64, 200);
    }
}

/* Results with "replayed": true among the ids "<prefix>-<n>". */
static int replays_of(const collector_t *col, const char *prefix)
{
    int n = 0;
    size_t plen = strlen(prefix);
    for (int i = 0; i < col->n; i++) {
        const char *id = msg_str(&col->msgs[i], "id");
        if (id != NULL && strncmp(id, prefix, plen) == 0 &&
            json_is_true(json_object_get(col->msgs[i].json, "replayed")))
            n++;
    }
    return n;
}

/* The integer member name of a JSON body (/readyz), or -1. */
static int64_t json_body_int(const char *body, const char *name)
{
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    int64_t v = json_is_integer(json_object_get(j, name))
                    ? json_integer_value(json_object_get(j, name))
                    : -1;
    json_decref(j);
    return v;
}

/* The value of an unlabelled metric line "name value" in /metrics, or -1. */
static int64_t metric_value(th_worker_t *w, const char *name)
{
    char *body = NULL;
    int64_t v = -1;
    if (th_worker_http_get(w, "/metrics", &body, 10000) == 200 && body != NULL) {
        char needle[128];
        snprintf(needle, sizeof(needle), "\n%s ", name);
        const char *at = strstr(body, needle);
        if (at != NULL)
            v = strtoll(at + strlen(needle), NULL, 10);
    }
    free(body);
    return v;
}

static int64_t stuck_in_readyz(th_worker_t *w)
{
    char *body = NULL;
    th_worker_http_get(w, "/readyz", &body, 10000);
    int64_t v = json_body_int(body, "stuck_deliveries");
    free(body);
    return v;
}

/* ---- a result the broker refuses ----------------------------------------- */

/* The worker's producer takes at most 64 KiB a message (as a topic's
 * max.message.bytes would): five ~28 KB payments listed make a result of
 * ~140 KB. Before issue 11 that delivery was retried without end, its
 * partition's offsets never committed again and /readyz stayed ready. */
static void test_refused_result_is_answered_internal(void **state)
{
    bstack_t *s = *state;
    const char *env[] = {"TALLY_REQUEST_TOPIC=small.requests", "TALLY_GROUP_ID=small",
                         "KAFKA_MESSAGE_MAX_BYTES=65536", "TALLY_MAX_RETRIES=2", NULL};
    th_worker_t *w = start_worker(s, env);
    char id[64];
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "refused-pay-%d", i);
        send_big_payment(s, "small.requests", 0, "acct_refused", id);
    }
    th_producer_flush(s->p);
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "refused-pay-%d", i);
        assert_string_equal(msg_str(result_of(s, id, "acct_refused"), "status"), "ok");
    }
    /* The list, once to the results topic and once to a reply_to topic; then
     * another account's request behind them on the same partition. */
    const char *list = "{\"id\":\"refused-list\",\"account_id\":\"acct_refused\","
                       "\"type\":\"payment.list\",\"payload\":{\"limit\":100}}";
    const char *list_rt = "{\"id\":\"refused-list-rt\",\"account_id\":\"acct_refused\","
                          "\"type\":\"payment.list\",\"payload\":{\"limit\":100},"
                          "\"reply_to\":\"bounds.replies\"}";
    th_produce(s->p, "small.requests", 0, "acct_refused", list, strlen(list));
    th_produce(s->p, "small.requests", 0, "acct_refused", list_rt, strlen(list_rt));
    send_small(s, "small.requests", 0, "acct_after", "refused-after-1", NULL);
    th_producer_flush(s->p);

    const th_msg_t *r = result_of(s, "refused-list", "acct_refused");
    assert_string_equal(msg_str(r, "status"), "error");
    assert_string_equal(error_code(r), "internal");
    assert_string_equal(msg_header(r, "tally-status"), "error");
    assert_true(r->value_len < 4096);
    assert_non_null(
        strstr(json_string_value(json_object_get(json_object_get(r->json, "error"), "message")),
               "could not be published"));
    /* The reply_to topic refused it too: the short answer is on the results
     * topic, saying where it was meant to go. */
    r = result_of(s, "refused-list-rt", "acct_refused");
    assert_string_equal(error_code(r), "internal");
    assert_string_equal(msg_header(r, "tally-reply-to"), "bounds.replies");
    /* A DLQ copy of each request, which redrive would send back. */
    const th_msg_t *d = dlq_copy_of_id(s, "refused-list");
    assert_non_null(d);
    assert_string_equal(d->value, list);
    assert_string_equal(msg_header(d, "tally-error-code"), "internal");
    assert_non_null(dlq_copy_of_id(s, "refused-list-rt"));
    /* The partition goes on. */
    assert_non_null(result_of(s, "refused-after-1", "acct_after"));

    /* Everything was committed: a new worker in the group replays nothing. */
    th_worker_stop(w);
    w = start_worker(s, env);
    send_small(s, "small.requests", 0, "acct_after", "refused-after-2", NULL);
    th_producer_flush(s->p);
    assert_non_null(result_of(s, "refused-after-2", "acct_after"));
    collector_poll(s->results, 256, 1000);
    assert_int_equal(replays_of(s->results, "refused-"), 0);
    th_worker_stop(w);
}

/* ---- no result over 1 MiB -------------------------------------------------- */

/* 45 payments of ~28 KB listed make ~1.25 MB: more than a result may be
 * (§3), though less than the producer's 2 MiB limit. Whatever the list
 * does about it (stop early with has_more, or be answered internal), no
 * result over 1 MiB is published. */
static void test_no_result_over_1mib(void **state)
{
    bstack_t *s = *state;
    th_worker_t *w = start_worker(s, NULL);
    char id[64];
    for (int i = 0; i < 45; i++) {
        snprintf(id, sizeof(id), "huge-pay-%d", i);
        send_big_payment(s, REQ_TOPIC, -1, "acct_huge", id);
    }
    th_producer_flush(s->p);
    for (int i = 0; i < 45; i++) {
        snprintf(id, sizeof(id), "huge-pay-%d", i);
        assert_string_equal(msg_str(result_of(s, id, "acct_huge"), "status"), "ok");
    }
    send_request(s->p, -1, "acct_huge",
                 "{\"id\":\"huge-list\",\"account_id\":\"acct_huge\",\"type\":\"payment.list\","
                 "\"payload\":{\"limit\":100}}");
    th_producer_flush(s->p);
    const th_msg_t *r = result_of(s, "huge-list", "acct_huge");
    if (r->value_len > MIB)
        fail_msg("a result of %zu bytes was published (the limit is 1 MiB)", r->value_len);
    if (strcmp(msg_str(r, "status"), "ok") == 0) {
        json_t *res = json_object_get(r->json, "result");
        assert_true(json_is_true(json_object_get(res, "has_more")));
        assert_true(json_array_size(json_object_get(res, "data")) < 45);
    } else {
        assert_string_equal(error_code(r), "internal");
        assert_non_null(dlq_copy_of_id(s, "huge-list"));
    }
    for (int i = 0; i < s->results->n; i++)
        assert_true(s->results->msgs[i].value_len <= MIB);
    th_worker_stop(w);
}

/* ---- dead letters too large for the DLQ ------------------------------------ */

static void test_oversized_dead_letters_are_cut(void **state)
{
    bstack_t *s = *state;
    const char *env[] = {"TALLY_REQUEST_TOPIC=small.requests", "TALLY_GROUP_ID=small-dlq",
                         "KAFKA_MESSAGE_MAX_BYTES=65536", NULL};
    th_worker_t *w = start_worker(s, env);
    /* A 2.3 MB key (the value is not JSON, so the message is unanswerable and
     * dead-lettered as it is), then a 1.5 MB value (over the 1 MiB limit). */
    size_t klen = 2300000, vlen = 1500000;
    char *key = malloc(klen + 1);
    memset(key, 'k', klen);
    key[klen] = '\0';
    rd_kafka_t *rk = th_producer_handle(s->p);
    assert_int_equal(rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("small.requests"),
                                       RD_KAFKA_V_PARTITION(1), RD_KAFKA_V_KEY(key, klen),
                                       RD_KAFKA_V_VALUE("not json", 8),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    char *value = malloc(vlen);
    memset(value, ' ', vlen);
    const char *head = "{\"id\":\"cut-big\",\"account_id\":\"acct_cut\"}";
    memcpy(value, head, strlen(head));
    th_produce(s->p, "small.requests", 1, "acct_cut", value, vlen);
    th_producer_flush(s->p);
    /* Both are the first messages of partition 1 of small.requests. */
    const th_msg_t *k = dlq_copy(s, "small.requests", 1, 0);
    if (k == NULL)
        fail_msg("the dead letter with a 2.3 MB key never reached the DLQ");
    assert_string_equal(msg_header(k, "tally-dlq-key-size"), "2300000");
    assert_true(strlen(k->key) > 0 && strlen(k->key) <= 1024);
    assert_int_equal(memcmp(k->key, key, strlen(k->key)), 0);
    assert_string_equal(k->value, "not json"); /* not oversized: kept */
    assert_null(msg_header(k, "tally-dlq-value-size"));
    assert_non_null(msg_header(k, "tally-dlq-cut-reason"));
    assert_string_equal(msg_header(k, "tally-error-code"), "invalid_request");

    const th_msg_t *v = dlq_copy(s, "small.requests", 1, 1);
    if (v == NULL)
        fail_msg("the dead letter with a 1.5 MB value never reached the DLQ");
    assert_string_equal(msg_header(v, "tally-dlq-value-size"), "1500000");
    assert_string_equal(v->key, "acct_cut");
    assert_true(v->value_len > 0 && v->value_len < 65536);
    assert_memory_equal(v->value, value, v->value_len);
    assert_non_null(strstr(msg_header(v, "tally-error-message"), "1 MiB"));
    free(key);
    free(value);

    /* The partition goes on. */
    send_small(s, "small.requests", 1, "acct_cut", "cut-after", NULL);
    th_producer_flush(s->p);
    assert_non_null(result_of(s, "cut-after", "acct_cut"));
    th_worker_stop(w);
}

/* ---- a delivery that keeps failing ----------------------------------------- */

/* Every Produce request fails ("Unknown broker error", which the worker
 * treats as transient) until the deliveries of one request used their
 * budget (TALLY_MAX_RETRIES=2). The request is sent first and the worker
 * started after the errors were queued, so that they hit its deliveries. */
static void test_stuck_delivery_is_bounded_and_visible(void **state)
{
    bstack_t *s = *state;
    const char *env[] = {"TALLY_REQUEST_TOPIC=stuck.requests",
                         "TALLY_GROUP_ID=stuck",
                         "TALLY_MAX_RETRIES=2",
                         "TALLY_MAX_IN_FLIGHT=40",
                         "TALLY_SHUTDOWN_TIMEOUT_MS=5000",
                         NULL};
    send_small(s, "stuck.requests", 0, "acct_stuck", "stuck-0", NULL);
    th_producer_flush(s->p);
    char cmd[1024] = "request-errors Produce";
    for (int i = 0; i < 60; i++)
        strcat(cmd, " UNKNOWN");
    th_broker_command(s->b, "%s", cmd);
    th_broker_command(s->b, "%s", cmd);
    th_worker_t *w = start_worker(s, env);

    int64_t end = it_now_ms() + 90000;
    while (stuck_in_readyz(w) < 1 && it_now_ms() < end)
        usleep(200 * 1000);
    th_broker_command(s->b, "clear-errors Produce");
    assert_true(stuck_in_readyz(w) >= 1);
    assert_true(metric_value(w, "tally_stuck_deliveries") >= 1);

    /* Behind the stuck request, partition 0 holds at most the window: 600
     * requests arrive, about 40 are answered, then the partition pauses.
     * Partition 1 keeps flowing meanwhile. */
    enum { N = 600, M = 100 };
    char id[64], acct[64];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "stuck-behind-%d", i);
        snprintf(acct, sizeof(acct), "acct_behind_%d", i % 20);
        send_small(s, "stuck.requests", 0, acct, id, NULL);
    }
    for (int i = 0; i < M; i++) {
        snprintf(id, sizeof(id), "stuck-other-%d", i);
        snprintf(acct, sizeof(acct), "acct_other_%d", i % 20);
        send_small(s, "stuck.requests", 1, acct, id, NULL);
    }
    th_producer_flush(s->p);
    assert_int_equal(wait_answered(s->results, "stuck-other", M, 120000), M);
    end = it_now_ms() + 60000;
    while (metric_value(w, "tally_paused_partitions") < 1 && it_now_ms() < end)
        usleep(200 * 1000);
    assert_true(metric_value(w, "tally_paused_partitions") >= 1);
    collector_poll(s->results, 2048, 2000);
    int behind = answered_distinct(s->results, "stuck-behind", N, NULL);
    print_message("answered behind the stuck offset: %d of %d\n", behind, N);
    /* The window (40) plus one flow-control check's worth (64). */
    if (behind > 40 + 64)
        fail_msg("%d requests were answered behind a stuck offset (window 40)", behind);
    /* Not retried without end: the Produce errors were cleared seconds ago,
     * and what got stuck (which of stuck-0's deliveries depends on which
     * Produce requests met the errors) stays stuck. */
    assert_true(stuck_in_readyz(w) >= 1);

    /* SIGTERM: the drain does not wait for the stuck delivery. */
    th_worker_signal(w, SIGTERM);
    int st = th_worker_wait(w, 60000);
    assert_true(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    th_worker_stop(w);

    /* The next worker gets everything from the stuck offset on: each request
     * is answered (stuck-0's stored outcome is replayed). */
    w = start_worker(s, env);
    assert_non_null(result_of(s, "stuck-0", "acct_stuck"));
    assert_int_equal(wait_answered(s->results, "stuck-behind", N, 120000), N);
    assert_int_equal(stuck_in_readyz(w), 0);
    th_worker_stop(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_result_is_answered_internal),
        cmocka_unit_test(test_no_result_over_1mib),
        cmocka_unit_test(test_oversized_dead_letters_are_cut),
        cmocka_unit_test(test_stuck_delivery_is_bounded_and_visible),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
