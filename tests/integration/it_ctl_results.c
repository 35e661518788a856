/* tallyctl results against the embedded broker: filters by account,
 * correlation id and request id, --count and --timeout bounds, following new
 * results, and its exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"

typedef struct fx {
    th_broker_t *broker;
    const char *brokers;
} fx_t;

static void publish(fx_t *f, const char *id, const char *account, const char *corr,
                    const char *status)
{
    th_producer_t *p = th_producer_new(f->broker);
    json_t *r = json_pack("{s:i, s:s, s:s, s:s, s:s, s:b, s:s}", "v", 1, "id", id, "account_id",
                          account, "type", "payment.get", "status", status, "replayed", 0,
                          "processed_at", "2026-11-22T10:00:00.123Z");
    if (corr != NULL)
        json_object_set_new(r, "correlation_id", json_string(corr));
    if (strcmp(status, "ok") == 0)
        json_object_set_new(r, "result", json_pack("{s:{s:s}}", "payment", "id", "pay_1"));
    else
        json_object_set_new(r, "error",
                            json_pack("{s:s, s:s, s:s}", "code", "invalid_request", "message",
                                      "amount must be positive", "field", "amount"));
    char *s = json_dumps(r, JSON_COMPACT);
    th_produce(p, "tally.results", -1, account, s, strlen(s));
    th_producer_flush(p);
    th_producer_free(p);
    free(s);
    json_decref(r);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->broker = th_broker_start(3);
    f->brokers = th_broker_bootstrap(f->broker);
    publish(f, "r1", "acct_a", "c-1", "ok");
    publish(f, "r2", "acct_b", "c-2", "ok");
    publish(f, "r3", "acct_a", NULL, "error");
    publish(f, "r4", "acct_c", "c-2", "ok");
    /* Not a result at all: reported, skipped. */
    th_producer_t *p = th_producer_new(f->broker);
    th_produce(p, "tally.results", -1, "acct_a", "garbage", 7);
    th_producer_flush(p);
    th_producer_free(p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    th_broker_stop(f->broker);
    free(f);
    return 0;
}

/* The ids printed by a --json run, in order, space-separated. */
static void ids_of(const char *out, char *ids, size_t size)
{
    ids[0] = '\0';
    const char *line = out;
    while (*line != '\0') {
        const char *nl = strchr(line, '\n');
        json_t *r = json_loadb(line, (size_t)(nl - line), 0, NULL);
        assert_non_null(r); /* every line is one JSON result */
        size_t len = strlen(ids);
        snprintf(ids + len, size - len, "%s%s", len ? " " : "",
                 json_string_value(json_object_get(r, "id")));
        json_decref(r);
        line = nl + 1;
    }
}

static void test_filters(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    char ids[256];
    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--brokers", f->brokers, "--from-beginning",
                                  "--account", "acct_a", "--count", "2", "--timeout", "20s",
                                  "--json", NULL},
            &o);
    assert_int_equal(o.code, 0);
    ids_of(o.out, ids, sizeof(ids));
    assert_string_equal(ids, "r1 r3"); /* one account: one partition, in order */
    ctl_out_free(&o);

    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--brokers", f->brokers, "--from-beginning",
                                  "--correlation-id", "c-2", "--count", "2", "--timeout", "20s",
                                  "--json", NULL},
            &o);
    assert_int_equal(o.code, 0);
    ids_of(o.out, ids, sizeof(ids));
    assert_true(strcmp(ids, "r2 r4") == 0 || strcmp(ids, "r4 r2") == 0);
    ctl_out_free(&o);

    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--brokers", f->brokers, "--from-beginning", "--id",
                                  "r3", "--account", "acct_a", "--count", "1", "--timeout", "20s",
                                  NULL},
            &o);
    assert_int_equal(o.code, 0);
    /* Readable form: status, id, account, type, then the error with its field. */
    assert_non_null(strstr(o.out, "error  r3  acct_a  payment.get"));
    assert_non_null(strstr(o.out, "invalid_request: amount must be positive (field amount)"));
    assert_int_equal(ctl_lines(o.out), 2);
    ctl_out_free(&o);

    /* Without --count, --timeout ends a listing normally. */
    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--brokers", f->brokers, "--from-beginning",
                                  "--timeout", "2s", "--json", NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), 4);
    assert_non_null(strstr(o.err, "is not a JSON result"));
    ctl_out_free(&o);

    /* --count not reached before --timeout: exit 1. */
    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--brokers", f->brokers, "--from-beginning",
                                  "--account", "nobody", "--count", "1", "--timeout", "1s", NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "0 of 1 results arrived"));
    ctl_out_free(&o);
}

static void test_follow_new_results(void **state)
{
    fx_t *f = *state;
    ctl_proc_t *p =
        ctl_start(NULL, NULL,
                  (const char *const[]){"results", "--brokers", f->brokers, "--account", "acct_a",
                                        "--count", "1", "--timeout", "30s", NULL});
    /* It says so once it has its starting point; what comes later is seen. */
    assert_true(ctl_wait_stderr(p, "following tally.results", 20000));
    publish(f, "r5", "acct_b", NULL, "ok");
    publish(f, "r6", "acct_a", "c-6", "ok");
    ctl_out_t o;
    ctl_finish(p, 30000, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "ok     r6  acct_a  payment.get  correlation_id=c-6"));
    assert_non_null(strstr(o.out, "{\"payment\":{\"id\":\"pay_1\"}}"));
    assert_null(strstr(o.out, "r1")); /* older ones are not replayed without --from-beginning */
    assert_null(strstr(o.out, "r5"));
    ctl_out_free(&o);
}

static void test_usage(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    ctl_run(NULL, NULL, (const char *const[]){"results", "--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "Usage: tallyctl results"));
    ctl_out_free(&o);
    const char *const bad[][6] = {
        {"results", "--count", "0", NULL},
        {"results", "--timeout", "later", NULL},
        {"results", "extra", NULL},
        {"results", "--brokers", f->brokers, "-X", "nope=1", NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ctl_run(NULL, NULL, bad[i], &o);
        assert_int_equal(o.code, 2);
        assert_non_null(strstr(o.err, "tallyctl results: "));
        ctl_out_free(&o);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_follow_new_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
