/* Unit tests for src/worker/trace: which traceparent and tracestate values
 * W3C Trace Context accepts, and what a message's headers give. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/trace.h"

#include <stdio.h>
#include <string.h>

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static bool parent_ok(const char *v)
{
    return trace_parent_valid(v, strlen(v));
}

static bool state_ok(const char *v)
{
    return trace_state_valid(v, strlen(v));
}

static void test_traceparent(void **state)
{
    (void)state;
    assert_true(parent_ok(TP));
    assert_true(parent_ok("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"));
    /* A later version: the same four fields, then more after a "-". */
    assert_true(parent_ok("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_true(parent_ok("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-next"));
    assert_false(parent_ok("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01what"));
    /* Version 00 is exactly 55 characters. */
    assert_false(parent_ok(TP "-"));
    assert_false(parent_ok(TP " "));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1"));
    assert_false(parent_ok(""));
    assert_false(trace_parent_valid(NULL, 0));
    /* Version ff, upper-case hex, all-zero ids, wrong separators. */
    assert_false(parent_ok("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01"));
    assert_false(parent_ok("00-00000000000000000000000000000000-b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"));
    assert_false(parent_ok("00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331_01"));
    assert_false(parent_ok("0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"));
    assert_false(parent_ok("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0x"));
    /* A NUL inside is not the string it looks like. */
    char nul[56];
    memcpy(nul, TP, 55);
    nul[40] = '\0';
    assert_false(trace_parent_valid(nul, 55));
    /* Longer than anything we keep. */
    char big[TRACE_PARENT_MAX + 8];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-", 56);
    assert_false(parent_ok(big));
}

static void test_tracestate(void **state)
{
    (void)state;
    assert_true(state_ok(""));
    assert_true(state_ok("congo=t61rcWkgMzE"));
    assert_true(state_ok("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    assert_true(state_ok(" rojo=00f067aa0ba902b7 ,\tcongo=t61rcWkgMzE\t"));
    assert_true(state_ok("a=1,,b=2,")); /* empty members are allowed */
    assert_true(state_ok("fw529a3039@dt=abc"));
    assert_true(state_ok("0tenant@sys-1=v a l"));
    assert_true(state_ok("k_-*/9=!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~"));
    assert_false(state_ok("Rojo=1"));              /* upper-case key */
    assert_false(state_ok("9key=1"));              /* a simple key starts with a letter */
    assert_false(state_ok("key"));                 /* no value */
    assert_false(state_ok("key="));                /* an empty value */
    assert_false(state_ok("key=a=b"));             /* "=" in a value */
    assert_true(state_ok("key=trailing , k2=x ")); /* spaces around a member are OWS */
    assert_true(state_ok("key= v"));               /* a value may begin with a space */
    assert_false(state_ok("key=\x01"));
    assert_false(state_ok("t@Sys=1"));
    assert_true(state_ok("t@sys45678901234=1"));   /* a system-id of 14 */
    assert_false(state_ok("t@sys456789012345=1")); /* but not 15 */
    assert_false(state_ok("@sys=1"));
    assert_false(state_ok("a=1,a=2")); /* a key given twice */
    char many[512] = "";
    for (int i = 0; i < 32; i++)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "%sk%d=v", i ? "," : "", i);
    assert_true(state_ok(many));
    strcat(many, ",k32=v");
    assert_false(state_ok(many)); /* 33 members */
    /* Two members of 257 characters each are valid, but not together:
     * 515 characters is over the 512 kept. */
    char pair[600];
    snprintf(pair, sizeof(pair), "k0=%0254d,k1=%0254d", 0, 0);
    assert_int_equal(strlen(pair), 515);
    assert_true(trace_state_valid(pair, 257));
    assert_false(state_ok(pair));
    char longv[300];
    snprintf(longv, sizeof(longv), "k=%0257d", 0); /* a value of 257 */
    assert_false(state_ok(longv));
}

static rd_kafka_headers_t *headers(const char *const *kv)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    for (size_t i = 0; kv[i] != NULL; i += 2)
        rd_kafka_header_add(h, kv[i], -1, kv[i + 1], kv[i + 1] != NULL ? -1 : 0);
    return h;
}

static void from(const char *const *kv, trace_t *t)
{
    rd_kafka_headers_t *h = headers(kv);
    trace_from_headers(h, t);
    rd_kafka_headers_destroy(h);
}

static void test_from_headers(void **state)
{
    (void)state;
    trace_t t;
    trace_from_headers(NULL, &t);
    assert_string_equal(t.parent, "");
    assert_string_equal(t.id, "");

    from((const char *[]){"tally-x", "1", "traceparent", TP, "tracestate", "a=1", NULL}, &t);
    assert_string_equal(t.parent, TP);
    assert_string_equal(t.state, "a=1");
    assert_string_equal(t.id, "0af7651916cd43dd8448eb211c80319c");

    /* Names in any case; several tracestate headers are one list. */
    from((const char *[]){"TraceParent", TP, "tracestate", "a=1", "TRACESTATE", "b=2", NULL}, &t);
    assert_string_equal(t.parent, TP);
    assert_string_equal(t.state, "a=1,b=2");

    /* No valid traceparent: nothing, not even a valid tracestate. */
    from((const char *[]){"tracestate", "a=1", NULL}, &t);
    assert_string_equal(t.parent, "");
    assert_string_equal(t.state, "");
    assert_string_equal(t.id, "");
    from((const char *[]){"traceparent", "00-bad", "tracestate", "a=1", NULL}, &t);
    assert_string_equal(t.parent, "");
    assert_string_equal(t.state, "");
    /* Two traceparents: which one would be the parent? Neither. */
    from((const char *[]){"traceparent", TP, "traceparent", TP, NULL}, &t);
    assert_string_equal(t.parent, "");
    /* A null header value. */
    from((const char *[]){"traceparent", NULL, NULL}, &t);
    assert_string_equal(t.parent, "");

    /* A bad tracestate is dropped; the traceparent stays. */
    from((const char *[]){"traceparent", TP, "tracestate", "A=1", NULL}, &t);
    assert_string_equal(t.parent, TP);
    assert_string_equal(t.state, "");
    static char big[400];
    memset(big, 'v', sizeof(big) - 1);
    memcpy(big, "k=", 2);
    big[250] = '\0';
    from((const char *[]){"traceparent", TP, "tracestate", big, "tracestate", big, "tracestate",
                          "b=1", NULL},
         &t);
    assert_string_equal(t.parent, TP);
    assert_string_equal(t.state, ""); /* the joined list would pass 512 */
}

static void test_to_headers(void **state)
{
    (void)state;
    trace_t t;
    from((const char *[]){"traceparent", TP, "tracestate", "a=1", NULL}, &t);
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    trace_to_headers(&t, h);
    const void *v;
    size_t n;
    assert_int_equal(rd_kafka_header_get_last(h, "traceparent", &v, &n), 0);
    assert_int_equal(n, strlen(TP));
    assert_memory_equal(v, TP, n);
    assert_int_equal(rd_kafka_header_get_last(h, "tracestate", &v, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "a=1", 3);
    rd_kafka_headers_destroy(h);

    /* Nothing to copy: no header at all. */
    from((const char *[]){"tracestate", "a=1", NULL}, &t);
    h = rd_kafka_headers_new(4);
    trace_to_headers(&t, h);
    assert_int_equal(rd_kafka_header_cnt(h), 0);
    rd_kafka_headers_destroy(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_tracestate),
        cmocka_unit_test(test_from_headers),
        cmocka_unit_test(test_to_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
