/* tallyctl dlq against the embedded broker: list shows every dead letter with
 * its reason and source headers; redrive re-sends exactly the chosen ones
 * (by source partition/offset, by error code, all) with their original key
 * and value, and nothing for a dry run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"

typedef struct letter {
    const char *key; /* NULL: none */
    const char *value;
    size_t len;
    const char *code, *message;
    int src_partition;
    int src_offset;
} letter_t;

static const letter_t letters[] = {
    {"acct_a", "{\"id\":\"r1\",\"account_id\":\"acct_a\",\"type\":\"payment.get\",\"payload\":{}}",
     0, "internal", "processing failed after 5 attempts", 0, 5},
    {"acct_b", "{\"id\":\"r2\",\"account_id\":\"acct_b\",\"type\":\"payment.get\",\"payload\":{}}",
     0, "internal", "processing failed after 5 attempts", 1, 7},
    {"acct_c", "not json", 0, "invalid_request", "value is not a JSON object", 2, 9},
    {NULL, "\xff\xfe binary", 9, "invalid_request", "value is not UTF-8", 2, 10},
};
#define N_LETTERS 4

typedef struct fx {
    th_broker_t *broker;
    const char *brokers;
    th_consumer_t *requests;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->broker = th_broker_start(3);
    f->brokers = th_broker_bootstrap(f->broker);
    f->requests = th_consumer_new(f->broker, "tally.requests");
    th_producer_t *p = th_producer_new(f->broker);
    rd_kafka_t *rk = th_producer_handle(p);
    for (int i = 0; i < N_LETTERS; i++) {
        const letter_t *l = &letters[i];
        char part[16], off[16];
        snprintf(part, sizeof(part), "%d", l->src_partition);
        snprintf(off, sizeof(off), "%d", l->src_offset);
        size_t len = l->len ? l->len : strlen(l->value);
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC("tally.dlq"), RD_KAFKA_V_PARTITION(0),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_KEY(l->key, l->key ? strlen(l->key) : 0),
                              RD_KAFKA_V_VALUE((void *)l->value, len),
                              RD_KAFKA_V_HEADER("tally-error-code", l->code, -1),
                              RD_KAFKA_V_HEADER("tally-error-message", l->message, -1),
                              RD_KAFKA_V_HEADER("tally-source-topic", "tally.requests", -1),
                              RD_KAFKA_V_HEADER("tally-source-partition", part, -1),
                              RD_KAFKA_V_HEADER("tally-source-offset", off, -1), RD_KAFKA_V_END);
        assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    th_producer_flush(p);
    th_producer_free(p);
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

static void test_list(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    ctl_run(NULL, NULL, (const char *const[]){"dlq", "list", "--brokers", f->brokers, NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "tally.dlq [0] @ 0  from tally.requests [0] @ 5  key acct_a\n"
                                  "  internal: processing failed after 5 attempts\n"));
    assert_non_null(
        strstr(o.out, "invalid_request: value is not a JSON object\n  value: not json"));
    assert_non_null(strstr(o.out, "key (none)"));
    assert_non_null(strstr(o.out, "value: \\xff\\xfe binary"));
    assert_non_null(strstr(o.err, "4 of 4 dead letters in tally.dlq shown"));
    ctl_out_free(&o);

    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "list", "--brokers", f->brokers, "--json", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), N_LETTERS);
    const char *line = o.out;
    for (int i = 0; i < N_LETTERS; i++) {
        const char *nl = strchr(line, '\n');
        json_t *d = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(d);
        assert_int_equal(json_integer_value(json_object_get(d, "offset")), i);
        assert_string_equal(json_string_value(json_object_get(d, "error_code")), letters[i].code);
        assert_string_equal(json_string_value(json_object_get(d, "error_message")),
                            letters[i].message);
        json_t *src = json_object_get(d, "source");
        assert_string_equal(json_string_value(json_object_get(src, "topic")), "tally.requests");
        assert_int_equal(json_integer_value(json_object_get(src, "partition")),
                         letters[i].src_partition);
        assert_int_equal(json_integer_value(json_object_get(src, "offset")), letters[i].src_offset);
        json_t *hdrs = json_object_get(d, "headers");
        assert_string_equal(json_string_value(json_object_get(hdrs, "tally-error-code")),
                            letters[i].code);
        if (letters[i].key != NULL)
            assert_string_equal(json_string_value(json_object_get(d, "key")), letters[i].key);
        else
            assert_true(json_is_null(json_object_get(d, "key")));
        if (i < 3)
            assert_string_equal(json_string_value(json_object_get(d, "value")), letters[i].value);
        else /* not UTF-8: base64 */
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(d, "value"), "base64")),
                "//4gYmluYXJ5");
        json_decref(d);
        line = nl + 1;
    }
    ctl_out_free(&o);

    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "list", "--brokers", f->brokers, "--error-code",
                                  "internal", "--json", NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), 2);
    ctl_out_free(&o);
}

/* Takes exactly n new request messages, failing if more follow. */
static void take(fx_t *f, th_msg_t *out, int n)
{
    assert_int_equal(th_consume(f->requests, out, n, 15000), n);
    th_msg_t extra;
    assert_int_equal(th_consume(f->requests, &extra, 1, 500), 0);
}

static void assert_is_letter(const th_msg_t *m, int i)
{
    const letter_t *l = &letters[i];
    size_t len = l->len ? l->len : strlen(l->value);
    assert_int_equal(m->value_len, len);
    assert_memory_equal(m->value, l->value, len);
    if (l->key == NULL)
        assert_null(m->key);
    else
        assert_string_equal(m->key, l->key);
    char from[64];
    snprintf(from, sizeof(from), "tally.dlq/0/%d", i);
    assert_string_equal(json_string_value(json_object_get(m->headers, "tally-redriven-from")),
                        from);
}

static void test_redrive_exactly_the_chosen(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    th_msg_t m[N_LETTERS];

    /* A dry run sends nothing. */
    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "redrive", "--all", "--dry-run", "--brokers", f->brokers,
                                  NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "would redrive tally.dlq [0] @ 3 (invalid_request)"));
    ctl_out_free(&o);

    /* By source partition/offset: only that one. */
    ctl_run(
        NULL, NULL,
        (const char *const[]){"dlq", "redrive", "--source", "1:7", "--brokers", f->brokers, NULL},
        &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "redriven tally.dlq [0] @ 1 (internal) -> tally.requests ["));
    assert_non_null(strstr(o.err, "redrove 1 of 4 dead letters to tally.requests"));
    ctl_out_free(&o);
    take(f, m, 1);
    assert_is_letter(&m[0], 1);
    th_msg_clear(&m[0]);

    /* By error code. */
    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "redrive", "--error-code", "invalid_request", "--json",
                                  "--brokers", f->brokers, NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), 2);
    assert_non_null(strstr(o.out, "\"redriven_to\":{\"topic\":\"tally.requests\""));
    ctl_out_free(&o);
    take(f, m, 2);
    for (int i = 0; i < 2; i++) {
        assert_is_letter(&m[i], m[i].key != NULL ? 2 : 3);
        th_msg_clear(&m[i]);
    }

    /* A source that is not in the DLQ: reported, exit 1, nothing sent. */
    ctl_run(
        NULL, NULL,
        (const char *const[]){"dlq", "redrive", "--source", "9:9", "--brokers", f->brokers, NULL},
        &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "no dead letter from partition 9 offset 9"));
    ctl_out_free(&o);

    /* All of them. */
    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "redrive", "--all", "--brokers", f->brokers, NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    take(f, m, N_LETTERS);
    for (int i = 0; i < N_LETTERS; i++) {
        const char *from = json_string_value(json_object_get(m[i].headers, "tally-redriven-from"));
        assert_is_letter(&m[i], from[strlen(from) - 1] - '0');
        th_msg_clear(&m[i]);
    }
}

/* A DLQ copy the worker cut to fit is a prefix of the request, not the
 * request: redrive refuses it (exit 1, the reason shown) and sends nothing. */
static void test_cut_copy_is_not_redriven(void **state)
{
    fx_t *f = *state;
    th_producer_t *p = th_producer_new(f->broker);
    const char *value = "{\"id\":\"r9\",\"account_id\":\"acct_cut\",\"ty";
    rd_kafka_resp_err_t e = rd_kafka_producev(
        th_producer_handle(p), RD_KAFKA_V_TOPIC("cut.dlq"), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY("acct_cut", 8),
        RD_KAFKA_V_VALUE((void *)value, strlen(value)),
        RD_KAFKA_V_HEADER("tally-error-code", "internal", -1),
        RD_KAFKA_V_HEADER("tally-dlq-value-size", "2400000", -1),
        RD_KAFKA_V_HEADER("tally-source-topic", "tally.requests", -1),
        RD_KAFKA_V_HEADER("tally-source-partition", "1", -1),
        RD_KAFKA_V_HEADER("tally-source-offset", "3", -1), RD_KAFKA_V_END);
    assert_int_equal(e, RD_KAFKA_RESP_ERR_NO_ERROR);
    th_producer_flush(p);
    th_producer_free(p);

    ctl_out_t o;
    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "redrive", "--brokers", f->brokers, "--topic", "cut.dlq",
                                  "--all", NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "FAILED cut.dlq [0] @ 0"));
    assert_non_null(strstr(o.out, "value 2400000 bytes): not redriven"));
    ctl_out_free(&o);
    th_msg_t m;
    assert_int_equal(th_consume(f->requests, &m, 1, 2000), 0);
}

static void test_usage(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    ctl_run(NULL, NULL, (const char *const[]){"dlq", "--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "tallyctl dlq redrive"));
    ctl_out_free(&o);
    const char *const bad[][6] = {
        {"dlq", NULL},
        {"dlq", "purge", NULL},
        {"dlq", "redrive", "--brokers", f->brokers, NULL}, /* no selection */
        {"dlq", "redrive", "--source", "x", NULL},
        {"dlq", "redrive", "--all", "--error-code", "internal", NULL},
        {"dlq", "list", "--dry-run", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctl_run(NULL, NULL, bad[i], &o);
        assert_int_equal(o.code, 2);
        assert_non_null(strstr(o.err, "tallyctl dlq: "));
        ctl_out_free(&o);
    }
    th_msg_t m;
    assert_int_equal(th_consume(f->requests, &m, 1, 500), 0); /* nothing was sent */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redrive_exactly_the_chosen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cut_copy_is_not_redriven, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
