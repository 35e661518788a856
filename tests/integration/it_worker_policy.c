/* it_worker_policy — what one account's requests can do to the worker
 * itself (issue 11; CONTRACT.md §2, §7):
 *
 * - `reply_to` never names Tally's own topics (requests, audit, DLQ) and
 *   must match TALLY_REPLY_TO_PATTERN: a refused one is answered
 *   invalid_request, field reply_to, on the results topic; an invalid
 *   pattern stops the worker at start-up naming the setting;
 * - a readable request (valid JSON, readable id and account_id) is always
 *   answered, never dead-lettered: numbers out of range, duplicate keys and
 *   \u0000 are invalid_request naming the place;
 * - /livez answers while 300 idle connections are open.
 *
 * One stack (PostgreSQL, broker, one worker with a reply_to pattern). */
#include "it_worker_common.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pstack {
    th_pg_t *pg;
    th_broker_t *b;
    th_worker_t *w;
    th_producer_t *p;
    collector_t *results, *audit, *dlq;
} pstack_t;

/* The worker's own topics are allowed by the pattern on purpose: they are
 * refused whatever the pattern says. */
#define PATTERN                                                                                    \
    "TALLY_REPLY_TO_PATTERN=(billing|policy)\\.[a-z]+|tally\\.(requests|results|audit|dlq)"

static int setup(void **state)
{
    pstack_t *s = calloc(1, sizeof(*s));
    s->pg = th_pg_start();
    th_pg_migrate(s->pg);
    s->b = th_broker_start(3);
    const char *env[] = {PATTERN, NULL};
    s->w = th_worker_start(s->pg, s->b, env);
    if (!th_worker_wait_ready(s->w, 60000))
        fail_msg("worker not ready");
    s->p = th_producer_new(s->b);
    s->results = collector_new(s->b, RESULT_TOPIC);
    s->audit = collector_new(s->b, AUDIT_TOPIC);
    s->dlq = collector_new(s->b, DLQ_TOPIC);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    pstack_t *s = *state;
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

static const th_msg_t *result_of(pstack_t *s, const char *id, const char *acct)
{
    const th_msg_t *r = collector_find(s->results, "id", id, acct, 30000);
    if (r == NULL)
        fail_msg("no result for %s/%s", acct, id);
    return r;
}

static void expect_invalid(const th_msg_t *r, const char *field)
{
    assert_string_equal(msg_str(r, "status"), "error");
    json_t *e = json_object_get(r->json, "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_request");
    const char *f = json_string_value(json_object_get(e, "field"));
    if (f == NULL || strcmp(f, field) != 0)
        fail_msg("%s: field %s, expected %s (message: %s)", msg_str(r, "id"), f ? f : "(none)",
                 field, json_string_value(json_object_get(e, "message")));
}

static int64_t audit_rows(pstack_t *s, const char *acct, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM payment_system_logs WHERE account_id = '%s' AND "
             "request_id = '%s'",
             acct, id);
    return th_pg_i64(s->pg, "postgres", sql);
}

/* Messages of a collector whose value mentions "id":"<id>". */
static int mentions(collector_t *c, const char *id)
{
    char needle[160];
    snprintf(needle, sizeof(needle), "\"id\":\"%s\"", id);
    int n = 0;
    for (int i = 0; i < c->n; i++)
        n += c->msgs[i].value != NULL && strstr(c->msgs[i].value, needle) != NULL;
    return n;
}

/* ---- reply_to ------------------------------------------------------------ */

static void test_reply_to_policy(void **state)
{
    pstack_t *s = *state;
    collector_t *requests = collector_new(s->b, REQ_TOPIC);
    collector_t *billing = collector_new(s->b, "billing.replies");
    const char *refused[][2] = {
        {"rt-requests", "tally.requests"},  /* came back as a request */
        {"rt-dlq", "tally.dlq"},            /* a fake dead letter for redrive --all */
        {"rt-audit", "tally.audit"},        /* a result in the audit stream */
        {"rt-pattern", "other.replies"},    /* outside TALLY_REPLY_TO_PATTERN */
        {"rt-partial", "xbilling.replies"}, /* the pattern must match the whole name */
    };
    size_t n = sizeof(refused) / sizeof(refused[0]);
    for (size_t i = 0; i < n; i++)
        send_request(s->p, -1, "acct_rt",
                     "{\"id\":\"%s\",\"account_id\":\"acct_rt\",\"type\":\"payment.get\","
                     "\"payload\":{\"payment_id\":\"pay_x\"},\"reply_to\":\"%s\"}",
                     refused[i][0], refused[i][1]);
    /* Even when the request has another error, the answer avoids the topic. */
    send_request(s->p, -1, "acct_rt",
                 "{\"id\":\"rt-unknown-type\",\"account_id\":\"acct_rt\",\"type\":\"no.such\","
                 "\"payload\":{},\"reply_to\":\"tally.requests\"}");
    send_request(s->p, -1, "acct_rt",
                 "{\"id\":\"rt-ok\",\"account_id\":\"acct_rt\",\"type\":\"payment.get\","
                 "\"payload\":{\"payment_id\":\"pay_x\"},\"reply_to\":\"billing.replies\"}");
    th_producer_flush(s->p);
    for (size_t i = 0; i < n; i++)
        expect_invalid(result_of(s, refused[i][0], "acct_rt"), "reply_to");
    const th_msg_t *r = result_of(s, "rt-unknown-type", "acct_rt");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r->json, "error"), "code")),
        "unknown_type");
    assert_non_null(collector_find(billing, "id", "rt-ok", "acct_rt", 30000));
    assert_int_equal(collector_count(s->results, "id", "rt-ok", NULL), 0);

    /* Nothing reached Tally's own topics: a marker sent after the answers
     * arrived is answered once, and by then no result sits in the requests
     * topic, the DLQ or the audit stream. */
    send_request(s->p, -1, "acct_rt",
                 "{\"id\":\"rt-marker\",\"account_id\":\"acct_rt\",\"type\":\"payment.get\","
                 "\"payload\":{\"payment_id\":\"pay_x\"}}");
    th_producer_flush(s->p);
    result_of(s, "rt-marker", "acct_rt");
    assert_non_null(collector_find(s->audit, "request_id", "rt-marker", "acct_rt", 30000));
    collector_poll(requests, 1024, 1000);
    collector_poll(s->dlq, 1024, 500);
    for (int i = 0; i < requests->n; i++)
        assert_null(json_object_get(requests->msgs[i].json, "status"));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(mentions(s->dlq, refused[i][0]), 0);
        assert_int_equal(collector_count(s->audit, "id", refused[i][0], NULL), 0);
        assert_int_equal(collector_count(s->results, "id", refused[i][0], NULL), 1);
        assert_int_equal(audit_rows(s, "acct_rt", refused[i][0]), 1);
    }
    collector_free(requests);
    collector_free(billing);
}

static void test_bad_pattern_stops_the_worker(void **state)
{
    pstack_t *s = *state;
    const char *env[] = {"TALLY_REPLY_TO_PATTERN=billing\\.(", NULL};
    th_worker_t *w = th_worker_start(s->pg, s->b, env);
    int st = th_worker_wait(w, 60000);
    assert_true(st >= 0 && WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_true(th_worker_wait_log(w, "TALLY_REPLY_TO_PATTERN", 1000));
    th_worker_stop(w);
}

/* ---- readable requests are answered -------------------------------------- */

static void test_readable_requests_are_answered(void **state)
{
    pstack_t *s = *state;
    struct {
        const char *id;
        const char *type;
        const char *payload; /* the text after "payload": */
        const char *field;
    } cases[] = {
        {"rd-2p63", "payment.record",
         "{\"external_id\":\"e\",\"amount\":9223372036854775808,\"currency\":\"usd\"}", "amount"},
        {"rd-2p64", "payment.record",
         "{\"external_id\":\"e\",\"amount\":18446744073709551616,\"currency\":\"usd\"}", "amount"},
        {"rd-1e400", "payment.record",
         "{\"external_id\":\"e\",\"amount\":1e400,\"currency\":\"usd\"}", "amount"},
        {"rd-neg", "payout.create", "{\"amount\":-1E+400,\"currency\":\"usd\"}", "amount"},
        {"rd-nul", "payment.record",
         "{\"external_id\":\"e\",\"amount\":5,\"currency\":\"usd\",\"description\":\"a\\u0000b\"}",
         "description"},
        {"rd-dup", "payment.record",
         "{\"external_id\":\"e\",\"amount\":5,\"amount\":6,\"currency\":\"usd\"}", "amount"},
        {"rd-dup-meta", "payment.record",
         "{\"external_id\":\"e\",\"amount\":5,\"currency\":\"usd\",\"metadata\":{\"k\":\"a\","
         "\"k\":\"b\"}}",
         "metadata.k"},
        {"rd-share", "share.allocate",
         "{\"payment_id\":\"pay_1\",\"shares\":[{\"party\":\"a\",\"basis_points\":5000},"
         "{\"party\":\"b\",\"basis_points\":1e999}]}",
         "shares[1].basis_points"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++)
        send_request(s->p, -1, "acct_rd",
                     "{\"id\":\"%s\",\"account_id\":\"acct_rd\",\"type\":\"%s\",\"payload\":%s,"
                     "\"correlation_id\":\"c-%zu\"}",
                     cases[i].id, cases[i].type, cases[i].payload, i);
    /* Envelope fields: a duplicate type, \u0000 in an unknown top-level
     * field; and a duplicate id, which is not readable: dead-lettered. */
    send_request(s->p, -1, "acct_rd",
                 "{\"id\":\"rd-type\",\"account_id\":\"acct_rd\",\"type\":\"payment.get\","
                 "\"type\":\"payment.list\",\"payload\":{}}");
    send_request(s->p, -1, "acct_rd",
                 "{\"id\":\"rd-extra\",\"account_id\":\"acct_rd\",\"type\":\"payment.list\","
                 "\"payload\":{},\"note\":\"\\u0000\"}");
    const char *dup_id = "{\"id\":\"rd-id-1\",\"id\":\"rd-id-2\",\"account_id\":\"acct_rd\","
                         "\"type\":\"payment.list\",\"payload\":{}}";
    th_produce(s->p, REQ_TOPIC, -1, "acct_rd", dup_id, strlen(dup_id));
    th_producer_flush(s->p);

    for (size_t i = 0; i < n; i++) {
        const th_msg_t *r = result_of(s, cases[i].id, "acct_rd");
        expect_invalid(r, cases[i].field);
        char corr[16];
        snprintf(corr, sizeof(corr), "c-%zu", i);
        assert_string_equal(msg_str(r, "correlation_id"), corr);
        assert_string_equal(msg_str(r, "type"), cases[i].type);
        assert_int_equal(audit_rows(s, "acct_rd", cases[i].id), 1);
    }
    const th_msg_t *r = result_of(s, "rd-type", "acct_rd");
    expect_invalid(r, "type");
    assert_true(json_is_null(json_object_get(r->json, "type"))); /* ambiguous: not echoed */
    expect_invalid(result_of(s, "rd-extra", "acct_rd"), "note");

    /* Only the duplicate id went to the DLQ. */
    const th_msg_t *d = NULL;
    int64_t end = it_now_ms() + 30000;
    while (d == NULL && it_now_ms() < end) {
        collector_poll(s->dlq, 64, 200);
        for (int i = 0; i < s->dlq->n && d == NULL; i++)
            if (strcmp(s->dlq->msgs[i].value, dup_id) == 0)
                d = &s->dlq->msgs[i];
    }
    assert_non_null(d);
    assert_non_null(strstr(msg_header(d, "tally-error-message"), "id"));
    for (size_t i = 0; i < n; i++)
        assert_int_equal(mentions(s->dlq, cases[i].id), 0);
    assert_int_equal(mentions(s->dlq, "rd-type") + mentions(s->dlq, "rd-extra"), 0);
}

/* ---- /livez under idle connections ----------------------------------------- */

static void test_livez_with_idle_connections(void **state)
{
    pstack_t *s = *state;
    enum { IDLE = 300 };
    int fds[IDLE];
    int open = 0;
    for (int i = 0; i < IDLE; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)th_worker_http_port(s->w))};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            fail_msg("connection %d refused", i);
        fds[open++] = fd;
    }
    /* Each of them idle: nothing sent. /livez still answers (the timeout is
     * only a bound for a broken server, not a speed requirement). */
    char *body = NULL;
    int status = th_worker_http_get(s->w, "/livez", &body, 20000);
    assert_int_equal(status, 200);
    assert_string_equal(body, "ok\n");
    free(body);
    assert_int_equal(th_worker_http_get(s->w, "/healthz", NULL, 20000), 200);
    for (int i = 0; i < open; i++)
        close(fds[i]);
    /* /readyz says how many deliveries are stuck. */
    body = NULL;
    int64_t end = it_now_ms() + 30000;
    while (th_worker_http_get(s->w, "/readyz", &body, 10000) != 200 && it_now_ms() < end) {
        free(body);
        body = NULL;
        usleep(200 * 1000);
    }
    json_t *j = json_loads(body != NULL ? body : "", 0, NULL);
    assert_true(json_is_integer(json_object_get(j, "stuck_deliveries")));
    assert_int_equal(json_integer_value(json_object_get(j, "stuck_deliveries")), 0);
    json_decref(j);
    free(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_to_policy),
        cmocka_unit_test(test_bad_pattern_stops_the_worker),
        cmocka_unit_test(test_readable_requests_are_answered),
        cmocka_unit_test(test_livez_with_idle_connections),
    };
    if (getenv("IT_FILTER") != NULL)
        cmocka_set_test_filter(getenv("IT_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
