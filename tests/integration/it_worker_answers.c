/* it_worker_answers — the shape of what tally-worker publishes (CONTRACT.md
 * §3, §5): results with their headers and key, audit events and audit rows,
 * pre-decided error answers, every DLQ case, and `internal` after the last
 * retry. One stack (PostgreSQL, broker, one worker) for every case. */
#include "it_worker_common.h"

#include <unistd.h>

typedef struct stack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results, *audit, *dlq;
} wstack_t;

/* In the worker's DATABASE_URL; no log line may show it. */
#define DB_PASSWORD "Answers-t3st-pw"

static int setup(void **state)
{
    wstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(3);
    char url[256];
    worker_role_for_log_checks(s->pg, DB_PASSWORD, url, sizeof(url));
    const char *env[] = {url, "TALLY_MAX_RETRIES=3", NULL};
    s->w = th_worker_start(s->pg, s->b, env);
    if (th_worker_wait_partitions(s->w, 1, 60000) < 0)
        fail_msg("worker not ready");
    const char *conf[] = {"message.max.bytes=2000000", NULL};
    s->p = th_producer_new_with(s->b, conf);
    s->results = collector_new(s->b, RESULT_TOPIC);
    s->audit = collector_new(s->b, AUDIT_TOPIC);
    s->dlq = collector_new(s->b, DLQ_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    wstack_t *s = *state;
    if (s == NULL)
        return 0; /* setup failed before the stack existed */
    collector_free(s->results);
    collector_free(s->audit);
    collector_free(s->dlq);
    th_producer_free(s->p);
    th_worker_stop(s->w);
    th_broker_stop(s->b);
    th_pg_stop(s->pg);
    free(s);
    return 0;
}

/* The answer to request id of account acct, with its audit event. */
static const th_msg_t *answer_of(wstack_t *s, const char *id, const char *acct,
                                 const th_msg_t **audit)
{
    const th_msg_t *r = collector_find(s->results, "id", id, acct, 30000);
    if (r == NULL)
        fail_msg("no result for %s/%s", acct, id);
    if (audit != NULL) {
        *audit = collector_find(s->audit, "request_id", id, acct, 30000);
        if (*audit == NULL)
            fail_msg("no audit event for %s/%s", acct, id);
    }
    return r;
}

/* W3C trace context (CONTRACT.md §7): valid traceparents, one for each
 * case that checks a copy, and a tracestate to go with them. */
#define TP_OK     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TP_INT    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
#define TP_INT_ID "0af7651916cd43dd8448eb211c80319c"
#define TP_DLQ    "00-ffffffffffffffffffffffffffff0001-0000000000000001-01"
#define TSTATE    "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"

#define TRACED_REQ                                                                                 \
    "{\"id\":\"%s\",\"account_id\":\"acct_tr\",\"type\":\"settings.get\",\"payload\":{}}"

/* Produces value with a traceparent and a tracestate header (each NULL:
 * none). */
static void produce_traced(wstack_t *s, int32_t partition, const char *key, const char *value,
                           const char *traceparent, const char *tracestate)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    if (traceparent != NULL)
        rd_kafka_header_add(h, "traceparent", -1, traceparent, -1);
    if (tracestate != NULL)
        rd_kafka_header_add(h, "tracestate", -1, tracestate, -1);
    size_t klen = key != NULL ? strlen(key) : 0;
    rd_kafka_resp_err_t err = rd_kafka_producev(
        th_producer_handle(s->p), RD_KAFKA_V_TOPIC(REQ_TOPIC), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_KEY(key, klen), RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(h);
        fail_msg("produce: %s", rd_kafka_err2str(err));
    }
    th_producer_flush(s->p);
}

/* m carries exactly traceparent and tracestate (NULL: the header is absent). */
static void expect_trace(const th_msg_t *m, const char *what, const char *traceparent,
                         const char *tracestate)
{
    const char *tp = msg_header(m, "traceparent"), *ts = msg_header(m, "tracestate");
    bool ok = (traceparent == NULL ? tp == NULL : tp != NULL && strcmp(tp, traceparent) == 0) &&
              (tracestate == NULL ? ts == NULL : ts != NULL && strcmp(ts, tracestate) == 0);
    if (!ok)
        fail_msg("%s: traceparent %s, tracestate %s; wanted %s, %s", what, tp ? tp : "(none)",
                 ts ? ts : "(none)", traceparent ? traceparent : "(none)",
                 tracestate ? tracestate : "(none)");
}

/* The first DLQ copy whose value is value (waits up to 30 s), or NULL. */
static const th_msg_t *dlq_copy_of(wstack_t *s, const char *value)
{
    int64_t end = it_now_ms() + 30000;
    for (;;) {
        for (int k = 0; k < s->dlq->n; k++) {
            if (s->dlq->msgs[k].value_len == strlen(value) &&
                memcmp(s->dlq->msgs[k].value, value, strlen(value)) == 0)
                return &s->dlq->msgs[k];
        }
        if (it_now_ms() > end)
            return NULL;
        collector_poll(s->dlq, 64, 200);
    }
}

/* Every line of the worker's log that names request_id carries trace_id
 * (NULL: carries none); returns how many lines name it. */
static int log_lines_traced(wstack_t *s, const char *request_id, const char *trace_id)
{
    FILE *f = fopen(th_worker_log_path(s->w), "r");
    assert_non_null(f);
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    while (getline(&line, &cap, f) != -1) {
        json_t *j = json_loads(line, 0, NULL);
        const char *rid = json_string_value(json_object_get(j, "request_id"));
        if (rid != NULL && strcmp(rid, request_id) == 0) {
            n++;
            const char *tid = json_string_value(json_object_get(j, "trace_id"));
            if (trace_id == NULL ? tid != NULL : tid == NULL || strcmp(tid, trace_id) != 0)
                fail_msg("a log line about %s has trace_id %s, not %s: %s", request_id,
                         tid ? tid : "(none)", trace_id ? trace_id : "(none)", line);
        }
        json_decref(j);
    }
    free(line);
    fclose(f);
    return n;
}

static void expect_error(const th_msg_t *r, const char *code, const char *field)
{
    assert_string_equal(msg_str(r, "status"), "error");
    json_t *e = json_object_get(r->json, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), code);
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    if (field != NULL)
        assert_string_equal(json_string_value(json_object_get(e, "field")), field);
    assert_null(json_object_get(r->json, "result"));
    assert_string_equal(msg_header(r, "tally-status"), "error");
}

static void test_error_answer_shape_headers_and_audit(void **state)
{
    wstack_t *s = *state;
    send_request(s->p, -1, "acct_shape",
                 "{\"v\":1,\"id\":\"shape-1\",\"account_id\":\"acct_shape\",\"type\":\"no.such\","
                 "\"payload\":{},\"correlation_id\":\"c-77\",\"future_field\":[1,2]}");
    th_producer_flush(s->p);
    const th_msg_t *audit;
    const th_msg_t *r = answer_of(s, "shape-1", "acct_shape", &audit);
    expect_error(r, "unknown_type", "type");
    assert_string_equal(r->key, "acct_shape");
    assert_int_equal(json_integer_value(json_object_get(r->json, "v")), 1);
    assert_string_equal(msg_str(r, "type"), "no.such");
    assert_string_equal(msg_str(r, "correlation_id"), "c-77");
    assert_true(json_is_false(json_object_get(r->json, "replayed")));
    const char *at = msg_str(r, "processed_at");
    assert_non_null(at);
    assert_int_equal(strlen(at), 24);
    assert_int_equal(at[23], 'Z');
    assert_string_equal(msg_header(r, "tally-account-id"), "acct_shape");
    assert_string_equal(msg_header(r, "tally-request-id"), "shape-1");
    /* Exactly the contract's keys, in its order. */
    const char *keys[] = {"v",      "id",    "account_id", "type",        "correlation_id",
                          "status", "error", "replayed",   "processed_at"};
    assert_int_equal(json_object_size(r->json), sizeof(keys) / sizeof(keys[0]));
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(r->json, k, v) assert_string_equal(k, keys[i++]);

    /* The audit event (§5). */
    assert_string_equal(audit->key, "acct_shape");
    assert_string_equal(msg_str(audit, "status"), "error");
    assert_string_equal(msg_str(audit, "error_code"), "unknown_type");
    assert_string_equal(msg_str(audit, "type"), "no.such");
    assert_true(json_is_false(json_object_get(audit->json, "replayed")));
    assert_true(json_is_number(json_object_get(audit->json, "duration_ms")));
    assert_true(json_string_length(json_object_get(audit->json, "worker")) > 0);
    assert_true(json_is_integer(json_object_get(audit->json, "partition")));
    assert_true(json_is_integer(json_object_get(audit->json, "offset")));
    assert_string_equal(msg_str(audit, "at"), at);

    /* And the audit row, in the tenant's table. */
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE account_id = "
                               "'acct_shape' AND request_id = 'shape-1' AND status = 'error' "
                               "AND error_code = 'unknown_type' AND NOT replayed"),
                     1);
}

static void test_pre_decided_errors(void **state)
{
    wstack_t *s = *state;
    send_request(s->p, -1, "acct_pre",
                 "{\"v\":2,\"id\":\"pre-v\",\"account_id\":\"acct_pre\",\"type\":\"x\"}");
    send_request(s->p, -1, "someone_else",
                 "{\"id\":\"pre-key\",\"account_id\":\"acct_pre\",\"type\":\"payment.get\","
                 "\"payload\":{\"payment_id\":\"pay_1\"}}");
    send_request(s->p, -1, NULL,
                 "{\"id\":\"pre-type\",\"account_id\":\"acct_pre\",\"payload\":{}}");
    send_request(s->p, -1, NULL,
                 "{\"id\":\"pre-payload\",\"account_id\":\"acct_pre\",\"type\":\"payment.get\","
                 "\"payload\":[]}");
    send_request(s->p, -1, NULL,
                 "{\"id\":\"pre-field\",\"account_id\":\"acct_pre\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"e1\",\"amount\":1999,\"currency\":\"usd\","
                 "\"surprise\":1}}");
    send_request(s->p, -1, NULL,
                 "{\"id\":\"pre-amount\",\"account_id\":\"acct_pre\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"e1\",\"amount\":0,\"currency\":\"usd\"}}");
    th_producer_flush(s->p);
    expect_error(answer_of(s, "pre-v", "acct_pre", NULL), "unsupported_version", "v");
    expect_error(answer_of(s, "pre-key", "acct_pre", NULL), "invalid_request", "account_id");
    expect_error(answer_of(s, "pre-type", "acct_pre", NULL), "invalid_request", "type");
    expect_error(answer_of(s, "pre-payload", "acct_pre", NULL), "invalid_request", "payload");
    expect_error(answer_of(s, "pre-field", "acct_pre", NULL), "invalid_request", "surprise");
    expect_error(answer_of(s, "pre-amount", "acct_pre", NULL), "invalid_request", "amount");
    /* A result with a missing type echoes null. */
    assert_true(
        json_is_null(json_object_get(answer_of(s, "pre-type", "acct_pre", NULL)->json, "type")));
    /* None of them is stored for replay; each has its audit row. */
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE account_id = "
                               "'acct_pre'"),
                     6);
}

static void test_reply_to(void **state)
{
    wstack_t *s = *state;
    collector_t *replies = collector_new(s->b, "billing.replies");
    send_request(s->p, -1, "acct_reply",
                 "{\"id\":\"reply-1\",\"account_id\":\"acct_reply\",\"type\":\"nope\","
                 "\"payload\":{},\"reply_to\":\"billing.replies\"}");
    th_producer_flush(s->p);
    const th_msg_t *r = collector_find(replies, "id", "reply-1", "acct_reply", 30000);
    assert_non_null(r);
    assert_string_equal(r->key, "acct_reply");
    assert_null(json_object_get(r->json, "correlation_id"));
    assert_non_null(collector_find(s->audit, "request_id", "reply-1", "acct_reply", 30000));
    /* Not on the default results topic. */
    collector_poll(s->results, 64, 500);
    assert_int_equal(collector_count(s->results, "id", "reply-1", NULL), 0);
    collector_free(replies);
}

/* Each unanswerable message reaches the DLQ unchanged with its reason. */
static void test_dlq_cases(void **state)
{
    wstack_t *s = *state;
    struct {
        const char *key;
        const char *value;
        const char *reason;
    } cases[] = {
        {"k1", "this is not json", "not JSON"},
        {NULL, "[\"an\",\"array\"]", "not a JSON object"},
        {"k3", "{\"id\":\"x\",\"account_id\":\"a\",\"bad\":\"\xC3\x28\"}", "UTF-8"},
        {"k4", "{\"account_id\":\"acct_dlq\",\"type\":\"payment.get\",\"payload\":{}}",
         "id is missing"},
        {"k5", "{\"id\":\"dlq-5\",\"account_id\":\"not valid!\"}", "account_id"},
        {"k6", "{\"id\":\"\",\"account_id\":\"acct_dlq\"}", "id is not"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++)
        th_produce(s->p, REQ_TOPIC, 0, cases[i].key, cases[i].value, strlen(cases[i].value));
    /* Over 1 MiB: valid JSON padded with whitespace. */
    size_t big = 1024 * 1024 + 10;
    char *v = malloc(big);
    memset(v, ' ', big);
    const char *head = "{\"id\":\"big\",\"account_id\":\"acct_dlq\"}";
    memcpy(v, head, strlen(head));
    th_produce(s->p, REQ_TOPIC, 0, "kbig", v, big);
    th_producer_flush(s->p);

    for (size_t i = 0; i < n; i++) {
        const th_msg_t *m = NULL;
        int64_t end = it_now_ms() + 30000;
        while (m == NULL && it_now_ms() < end) {
            for (int k = 0; k < s->dlq->n && m == NULL; k++) {
                if (s->dlq->msgs[k].value_len == strlen(cases[i].value) &&
                    memcmp(s->dlq->msgs[k].value, cases[i].value, strlen(cases[i].value)) == 0)
                    m = &s->dlq->msgs[k];
            }
            if (m == NULL)
                collector_poll(s->dlq, 64, 200);
        }
        if (m == NULL)
            fail_msg("case %zu (%s) not in the DLQ", i, cases[i].reason);
        if (cases[i].key == NULL)
            assert_null(m->key);
        else
            assert_string_equal(m->key, cases[i].key);
        assert_string_equal(msg_header(m, "tally-error-code"), "invalid_request");
        if (strstr(msg_header(m, "tally-error-message"), cases[i].reason) == NULL)
            fail_msg("reason \"%s\" lacks \"%s\"", msg_header(m, "tally-error-message"),
                     cases[i].reason);
        assert_string_equal(msg_header(m, "tally-source-topic"), REQ_TOPIC);
        assert_string_equal(msg_header(m, "tally-source-partition"), "0");
        assert_non_null(msg_header(m, "tally-source-offset"));
    }
    const th_msg_t *m = NULL;
    int64_t end = it_now_ms() + 30000;
    while (m == NULL && it_now_ms() < end) {
        for (int k = 0; k < s->dlq->n && m == NULL; k++) {
            if (s->dlq->msgs[k].value_len == big)
                m = &s->dlq->msgs[k];
        }
        if (m == NULL)
            collector_poll(s->dlq, 64, 200);
    }
    assert_non_null(m);
    assert_memory_equal(m->value, v, big);
    assert_non_null(strstr(msg_header(m, "tally-error-message"), "1 MiB"));
    free(v);
    /* Nothing unanswerable got a result or an audit row. */
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE account_id = "
                               "'acct_dlq'"),
                     0);
}

/* With audit rows refused by the database, every attempt fails: after
 * TALLY_MAX_RETRIES (3 here) the request is answered `internal`, with an
 * audit event and a DLQ copy of the original message. */
static void test_internal_after_retries(void **state)
{
    wstack_t *s = *state;
    th_pg_exec(s->pg, "postgres", "REVOKE INSERT ON payment_system_logs FROM tally_app");
    const char *req = "{\"id\":\"int-1\",\"account_id\":\"acct_int\",\"type\":\"payment.get\","
                      "\"payload\":{\"payment_id\":\"pay_x\"}}";
    produce_traced(s, 1, "acct_int", req, TP_INT, TSTATE);
    const th_msg_t *audit;
    const th_msg_t *r = answer_of(s, "int-1", "acct_int", &audit);
    th_pg_exec(s->pg, "postgres", "GRANT INSERT ON payment_system_logs TO tally_app");
    expect_error(r, "internal", NULL);
    assert_string_equal(msg_str(audit, "error_code"), "internal");
    const th_msg_t *d = dlq_copy_of(s, req);
    assert_non_null(d);
    assert_string_equal(d->key, "acct_int");
    assert_string_equal(msg_header(d, "tally-error-code"), "internal");
    assert_string_equal(msg_header(d, "tally-source-partition"), "1");
    /* Its trace context on all three, and its trace id in every log line
     * about it (the retries' warnings, the answer's). */
    expect_trace(r, "result of an internal answer", TP_INT, TSTATE);
    expect_trace(audit, "audit event of an internal answer", TP_INT, TSTATE);
    expect_trace(d, "DLQ copy of an internal answer", TP_INT, TSTATE);
    assert_true(log_lines_traced(s, "int-1", TP_INT_ID) >= 3);
    /* The worker keeps serving afterwards. */
    send_request(s->p, -1, "acct_int",
                 "{\"id\":\"int-2\",\"account_id\":\"acct_int\",\"type\":\"zz\",\"payload\":{}}");
    th_producer_flush(s->p);
    expect_error(answer_of(s, "int-2", "acct_int", NULL), "unknown_type", "type");
}

/* A request's valid traceparent and tracestate go onto its result and
 * audit event; an invalid traceparent is copied nowhere (nor its
 * tracestate), a tracestate alone neither; an unanswerable message's DLQ
 * copy carries its trace context. */
static void test_trace_context(void **state)
{
    wstack_t *s = *state;
    struct {
        const char *id, *tp, *ts, *want_tp, *want_ts;
    } cases[] = {
        {"tr-ok", TP_OK, TSTATE, TP_OK, TSTATE},
        {"tr-upper", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01", TSTATE, NULL, NULL},
        {"tr-zero", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", NULL, NULL, NULL},
        {"tr-ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL, NULL, NULL},
        {"tr-long", TP_OK "-00", NULL, NULL, NULL}, /* version 00 is exactly 55 characters */
        {"tr-state", NULL, TSTATE, NULL, NULL},
        {"tr-none", NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char v[256];
        snprintf(v, sizeof(v), TRACED_REQ, cases[i].id);
        produce_traced(s, -1, "acct_tr", v, cases[i].tp, cases[i].ts);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const th_msg_t *audit;
        const th_msg_t *r = answer_of(s, cases[i].id, "acct_tr", &audit);
        assert_string_equal(msg_str(r, "status"), "ok"); /* never answered for it */
        expect_trace(r, cases[i].id, cases[i].want_tp, cases[i].want_ts);
        expect_trace(audit, cases[i].id, cases[i].want_tp, cases[i].want_ts);
    }
    const char *bad = "{\"id\":\"tr-dlq\",\"account_id\":\"acct_tr\" not json";
    produce_traced(s, 0, "k-tr", bad, TP_DLQ, TSTATE);
    const th_msg_t *d = dlq_copy_of(s, bad);
    assert_non_null(d);
    expect_trace(d, "DLQ copy of an unanswerable message", TP_DLQ, TSTATE);
    assert_true(
        th_worker_wait_log(s->w, "\"trace_id\":\"ffffffffffffffffffffffffffff0001\"", 10000));
}

/* The same request again is not applied again: its stored result comes
 * back with replayed=true; the same id with another payload is an
 * idempotency_conflict; a stored error answer replays too. */
static void test_replay_and_idempotency(void **state)
{
    wstack_t *s = *state;
    const char *rec = "{\"id\":\"rp-1\",\"account_id\":\"acct_rp\",\"type\":\"payment.record\","
                      "\"payload\":{\"external_id\":\"ext-rp\",\"amount\":1999,"
                      "\"currency\":\"usd\"},\"correlation_id\":\"first\"}";
    th_produce(s->p, REQ_TOPIC, -1, "acct_rp", rec, strlen(rec));
    th_producer_flush(s->p);
    const th_msg_t *first = answer_of(s, "rp-1", "acct_rp", NULL);
    assert_string_equal(msg_str(first, "status"), "ok");
    assert_true(json_is_false(json_object_get(first->json, "replayed")));
    /* Collected messages move when more arrive: keep what is compared later. */
    json_t *first_result = json_incref(json_object_get(first->json, "result"));
    json_t *payment = json_object_get(first_result, "payment");
    assert_int_equal(json_integer_value(json_object_get(payment, "amount")), 1999);
    char *pay_id = strdup(json_string_value(json_object_get(payment, "id")));

    /* Again, with another correlation_id (per delivery, echoed as sent) and
     * the payload's keys in another order (same canonical payload). */
    send_request(s->p, -1, "acct_rp",
                 "{\"id\":\"rp-1\",\"account_id\":\"acct_rp\",\"type\":\"payment.record\","
                 "\"payload\":{\"currency\":\"usd\",\"amount\":1999,\"external_id\":\"ext-rp\"},"
                 "\"correlation_id\":\"second\"}");
    th_producer_flush(s->p);
    assert_int_equal(collector_wait_count(s->results, "id", "rp-1", "acct_rp", 2, 30000), 2);
    const th_msg_t *again = NULL;
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        if (msg_str(m, "id") && strcmp(msg_str(m, "id"), "rp-1") == 0 &&
            json_is_true(json_object_get(m->json, "replayed")))
            again = m;
    }
    assert_non_null(again);
    assert_string_equal(msg_str(again, "status"), "ok");
    assert_string_equal(msg_str(again, "correlation_id"), "second");
    json_t *p2 = json_object_get(json_object_get(again->json, "result"), "payment");
    assert_string_equal(json_string_value(json_object_get(p2, "id")), pay_id);
    assert_true(json_equal(first_result, json_object_get(again->json, "result")));
    json_decref(first_result);
    assert_int_equal(collector_wait_count(s->audit, "request_id", "rp-1", "acct_rp", 2, 30000), 2);
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM stripe_payments WHERE account_id = 'acct_rp'"),
                     1);
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM payment_system_logs WHERE account_id = "
                               "'acct_rp' AND request_id = 'rp-1' AND replayed"),
                     1);

    /* The same id with another amount: idempotency_conflict, nothing applied. */
    send_request(s->p, -1, "acct_rp",
                 "{\"id\":\"rp-1\",\"account_id\":\"acct_rp\",\"type\":\"payment.record\","
                 "\"payload\":{\"external_id\":\"ext-rp\",\"amount\":5,\"currency\":\"usd\"}}");
    th_producer_flush(s->p);
    assert_int_equal(collector_wait_count(s->results, "id", "rp-1", "acct_rp", 3, 30000), 3);
    const th_msg_t *conflict = &s->results->msgs[0];
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        if (msg_str(m, "id") && strcmp(msg_str(m, "id"), "rp-1") == 0 &&
            strcmp(msg_str(m, "status"), "error") == 0)
            conflict = m;
    }
    expect_error(conflict, "idempotency_conflict", NULL);
    assert_true(json_is_false(json_object_get(conflict->json, "replayed")));

    /* A stored error (conflict: duplicate external_id) replays as well. */
    for (int k = 0; k < 2; k++)
        send_request(s->p, -1, "acct_rp",
                     "{\"id\":\"rp-2\",\"account_id\":\"acct_rp\",\"type\":\"payment.record\","
                     "\"payload\":{\"external_id\":\"ext-rp\",\"amount\":7,\"currency\":\"usd\"}}");
    th_producer_flush(s->p);
    assert_int_equal(collector_wait_count(s->results, "id", "rp-2", "acct_rp", 2, 30000), 2);
    int replayed = 0;
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        if (msg_str(m, "id") && strcmp(msg_str(m, "id"), "rp-2") == 0) {
            expect_error(m, "conflict", NULL);
            replayed += json_is_true(json_object_get(m->json, "replayed"));
        }
    }
    assert_int_equal(replayed, 1);
    assert_int_equal(th_pg_i64(s->pg, "postgres",
                               "SELECT count(*) FROM stripe_payments WHERE account_id = 'acct_rp'"),
                     1);
    free(pay_id);
}

/* The probe travels with the handler's first statement, so a replayed or
 * reused id runs its handler too: what that run did must be undone. A
 * settings.update replayed after a later update would otherwise put the
 * old schedule back. */
#define SET_REQ(id, schedule)                                                                      \
    "{\"id\":\"" id "\",\"account_id\":\"acct_ru\",\"type\":\"settings.update\","       \
    "\"payload\":{\"payout_schedule\":\"" schedule "\"}}"

static void test_replay_undoes_its_handler_run(void **state)
{
    wstack_t *s = *state;
    const char *schedule_sql =
        "SELECT payout_schedule FROM account_payment_settings WHERE account_id = 'acct_ru'";
    send_request(s->p, -1, "acct_ru", SET_REQ("ru-1", "weekly"));
    th_producer_flush(s->p);
    assert_string_equal(msg_str(answer_of(s, "ru-1", "acct_ru", NULL), "status"), "ok");
    send_request(s->p, -1, "acct_ru", SET_REQ("ru-2", "monthly"));
    th_producer_flush(s->p);
    assert_string_equal(msg_str(answer_of(s, "ru-2", "acct_ru", NULL), "status"), "ok");

    /* ru-1 again: its stored answer (weekly), and the schedule stays monthly. */
    send_request(s->p, -1, "acct_ru", SET_REQ("ru-1", "weekly"));
    th_producer_flush(s->p);
    assert_int_equal(collector_wait_count(s->results, "id", "ru-1", "acct_ru", 2, 30000), 2);
    int replayed = 0;
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        if (msg_str(m, "id") && strcmp(msg_str(m, "id"), "ru-1") == 0 &&
            json_is_true(json_object_get(m->json, "replayed"))) {
            replayed++;
            json_t *set = json_object_get(json_object_get(m->json, "result"), "settings");
            assert_string_equal(json_string_value(json_object_get(set, "payout_schedule")),
                                "weekly");
        }
    }
    assert_int_equal(replayed, 1);
    char *now = th_pg_text(s->pg, "postgres", schedule_sql);
    assert_string_equal(now, "monthly");
    free(now);

    /* ru-1 with another payload: idempotency_conflict, nothing applied. */
    send_request(s->p, -1, "acct_ru", SET_REQ("ru-1", "daily"));
    th_producer_flush(s->p);
    assert_int_equal(collector_wait_count(s->results, "id", "ru-1", "acct_ru", 3, 30000), 3);
    int conflicts = 0;
    for (int i = 0; i < s->results->n; i++) {
        const th_msg_t *m = &s->results->msgs[i];
        if (msg_str(m, "id") && strcmp(msg_str(m, "id"), "ru-1") == 0 &&
            strcmp(msg_str(m, "status"), "error") == 0) {
            expect_error(m, "idempotency_conflict", NULL);
            conflicts++;
        }
    }
    assert_int_equal(conflicts, 1);
    now = th_pg_text(s->pg, "postgres", schedule_sql);
    assert_string_equal(now, "monthly");
    free(now);
}

static void test_health_endpoints(void **state)
{
    wstack_t *s = *state;
    char *body = NULL;
    assert_int_equal(th_worker_http_get(s->w, "/livez", &body, 5000), 200);
    free(body);
    assert_int_equal(th_worker_http_get(s->w, "/healthz", &body, 5000), 200);
    free(body);
    assert_int_equal(th_worker_http_get(s->w, "/readyz", &body, 5000), 200);
    json_t *j = json_loads(body, 0, NULL);
    assert_true(json_is_true(json_object_get(j, "ready")));
    assert_true(json_integer_value(json_object_get(j, "partitions")) > 0);
    json_decref(j);
    free(body);
    assert_int_equal(th_worker_http_get(s->w, "/metrics", &body, 5000), 200);
    assert_null(strstr(body, "acct_")); /* no per-account labels */
    const char *names[] = {
        "tally_requests_total{",
        "tally_dlq_messages_total{",
        "tally_request_age_seconds_bucket{le=",
        "tally_request_age_seconds_count ",
        "tally_oldest_in_flight_seconds ",
        "tally_assigned_partitions 3\n",
        "tally_held_accounts 0\n",
        "process_start_time_seconds ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_virtual_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        /* Computed at scrape time, not from librdkafka's statistics (off
         * here): one series per assigned partition. */
        "tally_consumer_lag{topic=\"" REQ_TOPIC "\",partition=\"0\"} ",
        "tally_consumer_lag{topic=\"" REQ_TOPIC "\",partition=\"1\"} ",
        "tally_consumer_lag{topic=\"" REQ_TOPIC "\",partition=\"2\"} ",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strstr(body, names[i]) == NULL)
            fail_msg("/metrics lacks %s", names[i]);
    }
    /* The whole text passes promtool check metrics (Debian's prometheus,
     * scripts/install-deps.sh): exit 0 and nothing said. */
    char path[] = "/tmp/it_metrics_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
    close(fd);
    free(body);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", path);
    FILE *pt = popen(cmd, "r");
    assert_non_null(pt);
    char said[4096];
    size_t n = fread(said, 1, sizeof(said) - 1, pt);
    said[n] = '\0';
    int st = pclose(pt);
    unlink(path);
    if (st != 0 || n != 0)
        fail_msg("promtool check metrics: status %d: %s", st, said);
}

/* A role that could get around row-level security is refused at start-up
 * with one clear line and exit status 1; a bad setting exits 2. */
static void test_refuses_bad_role_and_settings(void **state)
{
    wstack_t *s = *state;
    char url[256], env_url[300];
    th_pg_url(s->pg, "postgres", url, sizeof(url));
    snprintf(env_url, sizeof(env_url), "DATABASE_URL=%s", url);
    const char *env[] = {env_url, NULL};
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    int st = th_worker_wait(w, 30000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_true(th_worker_wait_log(w, "refusing to run with this database role", 1000));
    stop_worker_checked(w, NULL);

    const char *bad[] = {"TALLY_POOL_MAX=zero", NULL};
    w = th_worker_start(s->pg, s->b, bad);
    st = th_worker_wait(w, 30000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_true(th_worker_wait_log(w, "TALLY_POOL_MAX: \\\"zero\\\" is not an integer", 1000));
    stop_worker_checked(w, NULL);
}

static void test_sigterm_exits_zero(void **state)
{
    wstack_t *s = *state;
    th_worker_signal(s->w, SIGTERM);
    int st = th_worker_wait(s->w, 30000);
    assert_true(st >= 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_true(th_worker_wait_log(s->w, "worker stopped", 1000));
    /* Everything it wrote, errors of the cases above included, is one JSON
     * log object per line, and the password never appears. */
    expect_log_json(th_worker_log_path(s->w), DB_PASSWORD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_answer_shape_headers_and_audit),
        cmocka_unit_test(test_pre_decided_errors),
        cmocka_unit_test(test_reply_to),
        cmocka_unit_test(test_dlq_cases),
        cmocka_unit_test(test_internal_after_retries),
        cmocka_unit_test(test_trace_context),
        cmocka_unit_test(test_replay_and_idempotency),
        cmocka_unit_test(test_replay_undoes_its_handler_run),
        cmocka_unit_test(test_health_endpoints),
        cmocka_unit_test(test_refuses_bad_role_and_settings),
        cmocka_unit_test(test_sigterm_exits_zero),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER")); /* e.g. IT_FILTER='*terminated*' */
    return cmocka_run_group_tests(tests, setup, teardown);
}
