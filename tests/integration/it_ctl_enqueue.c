/* tallyctl enqueue against the embedded broker: requests from a file, from
 * standard input and from flags land on the request topic with the right key
 * and value; bad lines are reported by number and not sent; delivery failures
 * are reported; --wait prints the results a worker publishes (here the test
 * plays the worker). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"

typedef struct fx {
    th_broker_t *broker;
    th_consumer_t *requests; /* reads tally.requests incrementally */
    char brokers_flag[512];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->broker = th_broker_start(3);
    f->requests = th_consumer_new(f->broker, "tally.requests");
    snprintf(f->brokers_flag, sizeof(f->brokers_flag), "%s", th_broker_bootstrap(f->broker));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    th_consumer_free(f->requests);
    th_broker_stop(f->broker);
    free(f);
    return 0;
}

/* Reads exactly n new request messages, and checks that no more follow. */
static void take_requests(fx_t *f, th_msg_t *out, int n)
{
    assert_int_equal(th_consume(f->requests, out, n, 15000), n);
    th_msg_t extra;
    assert_int_equal(th_consume(f->requests, &extra, 1, 300), 0);
}

static char *write_file(const char *name, const char *text)
{
    char *path = malloc(512);
    snprintf(path, 512, "%s/%s", th_tmpdir(), name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return path;
}

static const char *const lines[] = {
    "{\"id\":\"r1\",\"account_id\":\"acct_a\",\"type\":\"payment.get\","
    "\"payload\":{\"payment_id\":\"pay_1\"}}",
    "{\"id\":\"r2\",\"account_id\":\"acct_b\",\"type\":\"payment.get\",\"payload\":{},"
    "\"correlation_id\":\"c-2\"}",
    "  {\"v\": 1, \"id\": \"r3\", \"account_id\": \"acct_a\", \"type\": \"balance.get\", "
    "\"payload\": {}}",
};

static void test_from_file_with_bad_lines(void **state)
{
    fx_t *f = *state;
    char text[2048];
    snprintf(text, sizeof(text),
             "%s\n%s\n{\"id\":\"r9\",\"account_id\":\"bad acct\"}\n\n%s\r\n"
             "not json\n{\"id\":\"r8\",\"account_id\":\"a\",\"type\":\"payment.get\","
             "\"payload\":[]}\n",
             lines[0], lines[1], lines[2]);
    char *path = write_file("requests.jsonl", text);
    ctl_out_t o;
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--file", path, "--brokers", f->brokers_flag, NULL},
            &o);
    assert_int_equal(o.code, 1); /* some lines were invalid */
    assert_non_null(strstr(o.err, "line 3: account_id"));
    assert_non_null(strstr(o.err, "line 6: not JSON"));
    assert_non_null(strstr(o.err, "line 7: payload"));
    assert_null(strstr(o.err, "line 5")); /* the CRLF line is fine */
    assert_null(strstr(o.err, "line 4")); /* blank lines are skipped */
    assert_non_null(strstr(o.out, "3 acknowledged, 0 failed; 3 invalid lines not sent"));
    ctl_out_free(&o);

    th_msg_t m[3];
    take_requests(f, m, 3);
    const char *want_key[] = {"acct_a", "acct_b", "acct_a"};
    for (int i = 0; i < 3; i++) { /* the same bytes as the line, keyed by account_id */
        int j = strstr(m[i].value, "\"r1\"") ? 0 : strstr(m[i].value, "\"r2\"") ? 1 : 2;
        assert_string_equal(m[i].value, lines[j]);
        assert_string_equal(m[i].key, want_key[j]);
    }
    /* acct_a's two requests share a partition, in line order. */
    int a1 = -1, a3 = -1;
    for (int i = 0; i < 3; i++) {
        if (strstr(m[i].value, "\"r1\""))
            a1 = i;
        if (strstr(m[i].value, "\"r3\""))
            a3 = i;
    }
    assert_int_equal(m[a1].partition, m[a3].partition);
    assert_true(m[a1].offset < m[a3].offset);
    for (int i = 0; i < 3; i++)
        th_msg_clear(&m[i]);
    free(path);
}

static void test_from_stdin_and_env(void **state)
{
    fx_t *f = *state;
    char text[1024];
    snprintf(text, sizeof(text), "%s\n%s\n", lines[0], lines[1]);
    char env_brokers[600];
    snprintf(env_brokers, sizeof(env_brokers), "KAFKA_BOOTSTRAP_SERVERS=%s", f->brokers_flag);
    ctl_out_t o;
    ctl_run(text, (const char *const[]){env_brokers, NULL},
            (const char *const[]){"enqueue", "--json", NULL}, &o);
    assert_int_equal(o.code, 0);
    json_t *sum = json_loads(o.out, 0, NULL);
    assert_non_null(sum);
    assert_int_equal(json_integer_value(json_object_get(sum, "acknowledged")), 2);
    assert_int_equal(json_integer_value(json_object_get(sum, "invalid")), 0);
    json_decref(sum);
    ctl_out_free(&o);
    th_msg_t m[2];
    take_requests(f, m, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(strcmp(m[i].value, lines[0]) == 0 || strcmp(m[i].value, lines[1]) == 0);
        th_msg_clear(&m[i]);
    }
}

static void test_from_flags(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--brokers", f->brokers_flag, "--account", "acct_f",
                                  "--type", "payment.record", "--payload",
                                  "{\"external_id\":\"pi_1\",\"amount\":1999,\"currency\":\"usd\"}",
                                  "--correlation-id", "c-77", "--reply-to", "billing.replies",
                                  "--json", NULL},
            &o);
    assert_int_equal(o.code, 0);
    json_t *sum = json_loads(o.out, 0, NULL);
    const char *id = json_string_value(json_object_get(sum, "id"));
    assert_non_null(id);
    assert_int_equal(strncmp(id, "req_", 4), 0); /* generated */
    ctl_out_free(&o);

    th_msg_t m;
    take_requests(f, &m, 1);
    assert_string_equal(m.key, "acct_f");
    assert_non_null(m.json);
    assert_int_equal(json_integer_value(json_object_get(m.json, "v")), 1);
    assert_string_equal(json_string_value(json_object_get(m.json, "id")), id);
    assert_string_equal(json_string_value(json_object_get(m.json, "account_id")), "acct_f");
    assert_string_equal(json_string_value(json_object_get(m.json, "type")), "payment.record");
    assert_string_equal(json_string_value(json_object_get(m.json, "correlation_id")), "c-77");
    assert_string_equal(json_string_value(json_object_get(m.json, "reply_to")), "billing.replies");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(m.json, "payload"), "amount")), 1999);
    assert_int_equal(json_integer_value(json_object_get(sum, "partition")), m.partition);
    assert_int_equal(json_integer_value(json_object_get(sum, "offset")), m.offset);
    json_decref(sum);
    th_msg_clear(&m);

    /* A given id is kept; the human summary names it. */
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--brokers", f->brokers_flag, "--account", "acct_f",
                                  "--type", "payment.get", "--id", "my-id-1", NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "enqueued my-id-1 for acct_f (payment.get) on tally.requests"));
    ctl_out_free(&o);
    take_requests(f, &m, 1);
    assert_string_equal(json_string_value(json_object_get(m.json, "id")), "my-id-1");
    assert_int_equal(json_object_size(json_object_get(m.json, "payload")), 0);
    th_msg_clear(&m);
}

static void test_usage_raw_and_dry_run(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    ctl_run(NULL, NULL, (const char *const[]){"enqueue", "--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "Usage: tallyctl enqueue"));
    ctl_out_free(&o);
    const char *const usage_errors[][8] = {
        {"enqueue", "--account", "a", NULL}, /* no --type */
        {"enqueue", "--account", "a", "--type", "t", "--payload", "[]", NULL},
        {"enqueue", "--account", "not ok", "--type", "t", NULL},
        {"enqueue", "--timeout", "soon", NULL},
        {"enqueue", "--bogus", NULL},
        {"enqueue", "-X", "novalue", NULL},
        {"enqueue", "-X", "no.such.property=1", "--account", "a", "--type", "t", NULL},
    };
    for (size_t i = 0; i < sizeof(usage_errors) / sizeof(usage_errors[0]); i++) {
        ctl_run(NULL, NULL, usage_errors[i], &o);
        assert_int_equal(o.code, 2);
        assert_non_null(strstr(o.err, "tallyctl enqueue: "));
        ctl_out_free(&o);
    }
    /* No brokers anywhere: one clear line. */
    ctl_run(NULL, (const char *const[]){"KAFKA_BOOTSTRAP_SERVERS=", NULL},
            (const char *const[]){"enqueue", "--account", "a", "--type", "t", NULL}, &o);
    assert_int_equal(o.code, 2);
    assert_non_null(strstr(o.err, "KAFKA_BOOTSTRAP_SERVERS"));
    ctl_out_free(&o);

    /* --dry-run checks and sends nothing. */
    char text[1024];
    snprintf(text, sizeof(text), "%s\nnope\n", lines[0]);
    ctl_run(text, NULL,
            (const char *const[]){"enqueue", "--dry-run", "--brokers", f->brokers_flag, NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "1 valid, 1 invalid"));
    ctl_out_free(&o);
    /* correlation_id's limit counts characters, as the worker does: 128
     * two-byte characters pass, 129 do not. */
    for (int n = 128; n <= 129; n++) {
        char corr[2 * 129 + 1] = "";
        for (int i = 0; i < n; i++)
            strcat(corr, "\xc3\xa9");
        char env[600];
        snprintf(env, sizeof(env),
                 "{\"id\":\"r-utf8\",\"account_id\":\"a\",\"type\":\"payment.get\",\"payload\":{},"
                 "\"correlation_id\":\"%s\"}\n",
                 corr);
        ctl_run(env, NULL,
                (const char *const[]){"enqueue", "--dry-run", "--brokers", f->brokers_flag, NULL},
                &o);
        assert_int_equal(o.code, n == 128 ? 0 : 1);
        ctl_out_free(&o);
    }
    /* What the worker answers rather than dead-letters is sent: a duplicate
     * key, a number out of range or a \u0000 inside the payload (the worker
     * answers invalid_request naming it); in an envelope field it is not. */
    ctl_run("{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.record\","
            "\"payload\":{\"amount\":1e400}}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\","
            "\"payload\":{\"k\":1,\"k\":2}}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\","
            "\"payload\":{\"d\":\"\\u0000\"}}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"t\",\"type\":\"u\",\"payload\":{}}\n"
            "{\"id\":\"r\",\"id\":\"s\",\"account_id\":\"a\",\"type\":\"t\",\"payload\":{}}\n",
            NULL, (const char *const[]){"enqueue", "--dry-run", "--brokers", f->brokers_flag, NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "3 valid, 2 invalid"));
    /* The reasons are the worker's own (envelope_decode's). */
    assert_non_null(strstr(o.err, "line 4: type appears twice in its object"));
    assert_non_null(strstr(o.err, "line 5: id is given more than once"));
    ctl_out_free(&o);
    /* Judged by the worker's decoder, so as strict as the worker: v other
     * than 1 and a reply_to naming one of Tally's own topics are refused,
     * with the worker's reason. A job type this tallyctl does not know is
     * sent with a warning: the worker judges types, and may be newer. */
    ctl_run("{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.recrod\",\"payload\":{}}\n"
            "{\"v\":2,\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\",\"payload\":{}}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\",\"payload\":{},"
            "\"reply_to\":\"tally.requests\"}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\",\"payload\":{},"
            "\"reply_to\":\"tally.dlq\"}\n"
            "{\"id\":\"r\",\"account_id\":\"a\",\"type\":\"payment.get\",\"payload\":{},"
            "\"reply_to\":\"billing.replies\"}\n",
            NULL, (const char *const[]){"enqueue", "--dry-run", "--brokers", f->brokers_flag, NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "2 valid, 3 invalid"));
    assert_non_null(strstr(o.err, "line 1: type \"payment.recrod\" is not a job type this "
                                  "tallyctl knows; sent anyway"));
    assert_non_null(strstr(o.err, "line 2: v: only envelope version 1 is supported"));
    assert_non_null(strstr(o.err, "line 3: reply_to must not name Tally's own"));
    assert_non_null(strstr(o.err, "line 4: reply_to must not name Tally's own"));
    assert_null(strstr(o.err, "line 5"));
    ctl_out_free(&o);
    /* --raw sends even what the worker must dead-letter, byte for byte. */
    ctl_run("not json at all\n", NULL,
            (const char *const[]){"enqueue", "--raw", "--brokers", f->brokers_flag, NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    th_msg_t m;
    take_requests(f, &m, 1); /* and only that one: the dry run sent nothing */
    assert_string_equal(m.value, "not json at all");
    assert_null(m.key);
    th_msg_clear(&m);
}

static void test_large_input_progress(void **state)
{
    fx_t *f = *state;
    enum { N = 25000 };
    size_t cap = (size_t)N * 120;
    char *text = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "{\"id\":\"bulk-%d\",\"account_id\":\"acct_%d\",\"type\":"
                                "\"payment.get\",\"payload\":{}}\n",
                                i, i % 50);
    ctl_out_t o;
    ctl_run(text, NULL, (const char *const[]){"enqueue", "--brokers", f->brokers_flag, NULL}, &o);
    free(text);
    assert_int_equal(o.code, 0);
    /* Not a terminal: one progress line every 10 000 requests. */
    assert_non_null(strstr(o.err, "enqueue: 10000 sent"));
    assert_non_null(strstr(o.err, "enqueue: 20000 sent"));
    assert_non_null(strstr(o.out, "25000 acknowledged, 0 failed"));
    ctl_out_free(&o);
    int got = 0;
    th_msg_t m[500];
    for (int round = 0; round < 200 && got < N; round++) {
        int n = th_consume(f->requests, m, 500, 5000);
        for (int i = 0; i < n; i++)
            th_msg_clear(&m[i]);
        got += n;
    }
    assert_int_equal(got, N);
}

static void test_delivery_failure_is_reported(void **state)
{
    fx_t *f = *state;
    th_broker_command(f->broker, "broker-down all");
    char text[1024];
    snprintf(text, sizeof(text), "%s\n%s\n", lines[0], lines[1]);
    ctl_out_t o;
    ctl_run(text, NULL,
            (const char *const[]){"enqueue", "--brokers", f->brokers_flag, "-X",
                                  "message.timeout.ms=1500", "--json", NULL},
            &o);
    th_broker_command(f->broker, "broker-up all");
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "line 1: not delivered"));
    assert_non_null(strstr(o.err, "line 2: not delivered"));
    json_t *sum = json_loads(o.out, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(sum, "failed")), 2);
    assert_int_equal(json_integer_value(json_object_get(sum, "acknowledged")), 0);
    json_decref(sum);
    ctl_out_free(&o);
}

/* The test answers like a worker would: a result per request, keyed by account. */
static void answer(fx_t *f, th_msg_t *req, const char *status, const char *topic)
{
    th_producer_t *p = th_producer_new(f->broker);
    json_t *r = json_pack("{s:i, s:O, s:O, s:O, s:s, s:b, s:s}", "v", 1, "id",
                          json_object_get(req->json, "id"), "account_id",
                          json_object_get(req->json, "account_id"), "type",
                          json_object_get(req->json, "type"), "status", status, "replayed", 0,
                          "processed_at", "2026-11-22T10:00:00.123Z");
    if (strcmp(status, "ok") == 0)
        json_object_set_new(r, "result", json_pack("{s:s}", "payment", "pay_1"));
    else
        json_object_set_new(
            r, "error", json_pack("{s:s, s:s}", "code", "not_found", "message", "no such payment"));
    char *s = json_dumps(r, JSON_COMPACT);
    th_produce(p, topic, -1, req->key, s, strlen(s));
    /* A result for a request this enqueue did not send is ignored. */
    const char *other = "{\"id\":\"other\",\"account_id\":\"x\"}";
    th_produce(p, topic, -1, req->key, other, strlen(other));
    th_producer_flush(p);
    th_producer_free(p);
    free(s);
    json_decref(r);
}

static void test_wait_prints_results(void **state)
{
    fx_t *f = *state;
    char text[1024];
    snprintf(text, sizeof(text), "%s\n%s\n", lines[0], lines[1]);
    ctl_proc_t *p = ctl_start(text, NULL,
                              (const char *const[]){"enqueue", "--wait", "--timeout", "30s",
                                                    "--brokers", f->brokers_flag, NULL});
    th_msg_t m[2];
    assert_int_equal(th_consume(f->requests, m, 2, 15000), 2);
    answer(f, &m[0], "ok", "tally.results");
    answer(f, &m[1], "ok", "tally.results");
    ctl_out_t o;
    ctl_finish(p, 30000, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "ok     r1  acct_a  payment.get"));
    assert_non_null(strstr(o.out, "ok     r2  acct_b  payment.get"));
    assert_null(strstr(o.out, "other"));
    assert_non_null(strstr(o.err, "2 of 2 results arrived (2 ok, 0 error)"));
    ctl_out_free(&o);
    th_msg_clear(&m[0]);
    th_msg_clear(&m[1]);

    /* An error answer makes the exit status 1; --json prints the result itself. */
    p = ctl_start(NULL, NULL,
                  (const char *const[]){"enqueue", "--wait", "--json", "--brokers", f->brokers_flag,
                                        "--account", "acct_w", "--type", "payment.get",
                                        "--reply-to", "my.replies", NULL});
    assert_int_equal(th_consume(f->requests, m, 1, 15000), 1);
    answer(f, &m[0], "error", "my.replies");
    ctl_finish(p, 30000, &o);
    assert_int_equal(o.code, 1);
    json_t *r = json_loads(o.out, 0, NULL);
    assert_non_null(r);
    assert_string_equal(json_string_value(json_object_get(r, "status")), "error");
    assert_string_equal(json_string_value(json_object_get(r, "id")),
                        json_string_value(json_object_get(m[0].json, "id")));
    json_decref(r);
    ctl_out_free(&o);
    th_msg_clear(&m[0]);

    /* Nobody answers: bounded by --timeout, then exit 1. */
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--wait", "--timeout", "1s", "--brokers",
                                  f->brokers_flag, "--account", "acct_w", "--type", "payment.get",
                                  NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "0 of 1 results arrived"));
    ctl_out_free(&o);
    assert_int_equal(th_consume(f->requests, m, 1, 15000), 1);
    th_msg_clear(&m[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_from_file_with_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_stdin_and_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_from_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage_raw_and_dry_run, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_input_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delivery_failure_is_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_prints_results, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
