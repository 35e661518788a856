/* tallyctl against a real tally-worker on the embedded stack: health follows
 * /readyz; `enqueue --wait` prints the worker's results (replays marked) and
 * exits by their status; `results` sees them; /metrics counts them; an unanswerable message
 * shows up in `dlq list` with the worker's reason and source headers and is redriven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"

/* Polls `dlq list --json` with extra args until it shows want lines (bounded:
 * 60 tries, about 30 s). Returns the last output (caller frees). */
static char *dlq_until(const char *brokers, const char *code, int want)
{
    char *out = NULL;
    for (int i = 0; i < 60; i++) {
        ctl_out_t o;
        ctl_run(NULL, NULL,
                (const char *const[]){"dlq", "list", "--json", "--brokers", brokers, "--error-code",
                                      code, NULL},
                &o);
        free(out);
        out = strdup(o.out);
        ctl_out_free(&o);
        if (ctl_lines(out) >= want)
            break;
        usleep(500000);
    }
    return out;
}

static void test_tallyctl_with_worker(void **state)
{
    (void)state;
    th_pg_t *pg = th_pg_start();
    th_pg_migrate(pg);
    th_broker_t *b = th_broker_start(3);
    const char *brokers = th_broker_bootstrap(b);
    th_worker_t *w = th_worker_start(pg, b, NULL);
    assert_true(th_worker_wait_ready(w, 60000));
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_worker_http_port(w));

    ctl_out_t o;
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", addr, NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "ready (HTTP 200)"));
    ctl_out_free(&o);

    /* enqueue --wait prints the worker's answer. */
    const char *const record[] = {"enqueue",
                                  "--wait",
                                  "--timeout",
                                  "60s",
                                  "--brokers",
                                  brokers,
                                  "--account",
                                  "acct_ops",
                                  "--id",
                                  "req-ops-1",
                                  "--type",
                                  "payment.record",
                                  "--payload",
                                  "{\"external_id\":\"pi_ops\",\"amount\":1999,"
                                  "\"currency\":\"usd\"}",
                                  NULL};
    /* Whatever the answer (payment.record may not be implemented in every
     * build), it is printed, and the exit status follows its status. */
    ctl_run(NULL, NULL, record, &o);
    assert_non_null(strstr(o.out, "  req-ops-1  acct_ops  payment.record"));
    assert_non_null(strstr(o.err, "1 of 1 results arrived"));
    bool ok = strncmp(o.out, "ok ", 3) == 0;
    assert_int_equal(o.code, ok ? 0 : 1);
    assert_null(strstr(o.out, "(replayed)"));
    ctl_out_free(&o);
    int runs = 1;
    if (ok) { /* the same request again is a replay, and says so */
        ctl_run(NULL, NULL, record, &o);
        assert_int_equal(o.code, 0);
        assert_non_null(strstr(o.out, "(replayed)"));
        ctl_out_free(&o);
        runs = 2;
    }
    /* An error answer: exit 1, the code shown. */
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--wait", "--timeout", "60s", "--brokers", brokers,
                                  "--account", "acct_ops", "--type", "payment.get", "--payload",
                                  "{\"payment_id\":\"pay_missing\"}", NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "not_found"));
    ctl_out_free(&o);
    /* A type this tallyctl does not know is sent anyway (a newer worker may
     * know it), with a warning; this worker answers unknown_type: exit 1. */
    ctl_run(NULL, NULL,
            (const char *const[]){"enqueue", "--wait", "--timeout", "60s", "--brokers", brokers,
                                  "--account", "acct_ops", "--type", "no.such.type", NULL},
            &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "is not a job type this tallyctl knows; sent anyway"));
    assert_non_null(strstr(o.out, "unknown_type"));
    ctl_out_free(&o);

    /* results sees every answer. */
    ctl_run(NULL, NULL,
            (const char *const[]){"results", "--from-beginning", "--account", "acct_ops", "--count",
                                  runs == 2 ? "4" : "3", "--timeout", "30s", "--json", "--brokers",
                                  brokers, NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), runs + 2);
    assert_non_null(strstr(o.out, "unknown_type"));
    ctl_out_free(&o);

    /* /metrics counts what happened. */
    char *body = NULL;
    assert_int_equal(th_worker_http_get(w, "/metrics", &body, 10000), 200);
    char want[128];
    snprintf(want, sizeof(want), "tally_requests_total{type=\"payment.record\",status=\"%s\"} %d\n",
             ok ? "ok" : "error", runs);
    assert_non_null(strstr(body, want));
    snprintf(want, sizeof(want), "tally_replays_total %d\n", runs - 1);
    assert_non_null(strstr(body, want));
    assert_non_null(strstr(body, "tally_requests_total{type=\"unknown\",status=\"error\"} 1\n"));
    free(body);

    /* An unanswerable message: dead-lettered with the worker's reason. */
    ctl_run("this is not json\n", NULL,
            (const char *const[]){"enqueue", "--raw", "--brokers", brokers, NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    char *dl = dlq_until(brokers, "invalid_request", 1);
    assert_int_equal(ctl_lines(dl), 1);
    json_t *d = json_loads(dl, 0, NULL);
    free(dl);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "value")), "this is not json");
    assert_true(strlen(json_string_value(json_object_get(d, "error_message"))) > 0);
    json_t *src = json_object_get(d, "source");
    assert_string_equal(json_string_value(json_object_get(src, "topic")), "tally.requests");
    assert_true(json_integer_value(json_object_get(src, "offset")) >= 0);
    json_decref(d);
    /* Redriven as it is, it is dead-lettered again: a second copy appears. */
    ctl_run(NULL, NULL,
            (const char *const[]){"dlq", "redrive", "--error-code", "invalid_request", "--brokers",
                                  brokers, NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.err, "redrove 1 of ")); /* the DLQ may hold internal copies too */
    ctl_out_free(&o);
    dl = dlq_until(brokers, "invalid_request", 2);
    assert_int_equal(ctl_lines(dl), 2);
    free(dl);

    /* A stopped worker is unreachable: exit 1. */
    th_worker_stop(w);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", addr, "--timeout", "2s", NULL},
            &o);
    assert_int_equal(o.code, 1);
    ctl_out_free(&o);
    th_broker_stop(b);
    th_pg_stop(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tallyctl_with_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
