/* Unit tests for src/worker/metrics: the exposition text is parsed back and
 * checked (format, HELP/TYPE, counters that grow, cumulative histogram
 * buckets, label escaping, bounded label sets, concurrent updates). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "handlers/handler.h"
#include "worker/metrics.h"
#include "worker/procstat.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a small parser for the text exposition format --------------------- */

#define MAX_SAMPLES 4096

typedef struct sample {
    char series[256]; /* name{labels} exactly as rendered */
    char name[96];
    double value;
} sample_t;

typedef struct parsed {
    sample_t samples[MAX_SAMPLES];
    int n;
    char typed[64][96]; /* families with a TYPE line */
    char helped[64][96];
    int n_typed, n_helped;
} parsed_t;

static bool valid_name(const char *s, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    }
    return true;
}

/* The family of a sample: histograms' _bucket/_sum/_count belong to the base. */
static bool family_declared(const parsed_t *p, const char *name, bool typed)
{
    char base[96];
    snprintf(base, sizeof(base), "%s", name);
    const char *suffixes[] = {"_bucket", "_sum", "_count"};
    int n = typed ? p->n_typed : p->n_helped;
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < n; i++) {
            if (strcmp(typed ? p->typed[i] : p->helped[i], base) == 0)
                return true;
        }
        size_t bl = strlen(base);
        bool cut = false;
        for (int k = 0; k < 3 && !cut; k++) {
            size_t sl = strlen(suffixes[k]);
            if (bl > sl && strcmp(base + bl - sl, suffixes[k]) == 0) {
                base[bl - sl] = '\0';
                cut = true;
            }
        }
        if (!cut)
            return false;
    }
    return false;
}

/* Parses text strictly; fails the test on any malformed line. */
static void parse(const char *text, size_t len, parsed_t *p)
{
    memset(p, 0, sizeof(*p));
    assert_true(len > 0);
    assert_int_equal(text[len - 1], '\n');
    assert_int_equal(strlen(text), len);
    const char *line = text;
    while (line < text + len) {
        const char *nl = strchr(line, '\n');
        size_t n = (size_t)(nl - line);
        char buf[512];
        assert_true(n < sizeof(buf));
        memcpy(buf, line, n);
        buf[n] = '\0';
        line = nl + 1;
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            bool is_type = buf[2] == 'T';
            char *name = buf + 7;
            char *sp = strchr(name, ' ');
            assert_non_null(sp);
            assert_true(valid_name(name, (size_t)(sp - name)));
            *sp = '\0';
            if (is_type) {
                const char *t = sp + 1;
                assert_true(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 ||
                            strcmp(t, "histogram") == 0);
                for (int i = 0; i < p->n_typed; i++)
                    assert_string_not_equal(p->typed[i], name); /* one TYPE per family */
                snprintf(p->typed[p->n_typed++], 96, "%.95s", name);
            } else {
                assert_true(strlen(sp + 1) > 0);
                snprintf(p->helped[p->n_helped++], 96, "%.95s", name);
            }
            continue;
        }
        assert_int_not_equal(buf[0], '#');
        sample_t *s = &p->samples[p->n];
        char *cur = buf;
        size_t nl_len = strcspn(cur, "{ ");
        assert_true(valid_name(cur, nl_len));
        snprintf(s->name, sizeof(s->name), "%.*s", (int)nl_len, cur);
        cur += nl_len;
        if (*cur == '{') {
            cur++;
            while (*cur != '}') {
                size_t ln = strcspn(cur, "=");
                assert_true(valid_name(cur, ln));
                cur += ln;
                assert_int_equal(*cur++, '=');
                assert_int_equal(*cur++, '"');
                while (*cur != '"') {
                    assert_int_not_equal(*cur, '\0');
                    if (*cur == '\\') {
                        cur++;
                        assert_true(*cur == '\\' || *cur == '"' || *cur == 'n');
                    }
                    cur++;
                }
                cur++;
                if (*cur == ',')
                    cur++;
                else
                    assert_int_equal(*cur, '}');
            }
            cur++;
        }
        snprintf(s->series, sizeof(s->series), "%.*s", (int)(cur - buf), buf);
        assert_int_equal(*cur++, ' ');
        char *end;
        s->value = strtod(cur, &end);
        assert_true(end != cur && *end == '\0');
        assert_true(family_declared(p, s->name, true));
        assert_true(family_declared(p, s->name, false));
        for (int i = 0; i < p->n; i++)
            assert_string_not_equal(p->samples[i].series, s->series); /* no duplicate series */
        p->n++;
        assert_true(p->n < MAX_SAMPLES);
    }
}

/* The value of a series, or -1 when absent. */
static double value_of(const parsed_t *p, const char *series)
{
    for (int i = 0; i < p->n; i++) {
        if (strcmp(p->samples[i].series, series) == 0)
            return p->samples[i].value;
    }
    return -1;
}

static void render_parse(metrics_t *m, parsed_t *p)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(metrics_render(m, &text, &len), 0);
    parse(text, len, p);
    free(text);
}

/* ---- tests -------------------------------------------------------------- */

static parsed_t P; /* large; one per process is enough */

static void test_fresh_registry_is_valid_and_zero(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    assert_non_null(m);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_requests_total{type=\"unknown\",status=\"ok\"}") == 0);
    assert_true(value_of(&P, "tally_replays_total") == 0);
    assert_true(value_of(&P, "tally_retries_total") == 0);
    assert_true(value_of(&P, "tally_dlq_messages_total{error_code=\"internal\"}") == 0);
    assert_true(value_of(&P, "tally_in_flight_requests") == 0);
    assert_true(value_of(&P, "tally_pool_connections{state=\"connecting\"}") == 0);
    assert_true(value_of(&P, "tally_paused_partitions") == 0);
    assert_true(value_of(&P, "tally_database_up") == 0); /* not known up until told */
    assert_true(value_of(&P, "tally_stuck_deliveries") == 0);
    char build[128];
    snprintf(build, sizeof(build), "tally_build_info{version=\"%s\"}", TALLY_VERSION);
    assert_true(value_of(&P, build) == 1);
    /* Every job type of the registry has its zero series from the start. */
    for (size_t i = 0; i < handler_count(); i++) {
        char s[256];
        snprintf(s, sizeof(s), "tally_requests_total{type=\"%s\",status=\"error\"}",
                 handler_name(handler_at(i)));
        assert_true(value_of(&P, s) == 0);
    }
    /* Every family named in the issue is declared. */
    const char *families[] = {"tally_requests_total",
                              "tally_replays_total",
                              "tally_dlq_messages_total",
                              "tally_retries_total",
                              "tally_request_duration_seconds",
                              "tally_in_flight_requests",
                              "tally_pool_connections",
                              "tally_paused_partitions",
                              "tally_database_up",
                              "tally_stuck_deliveries",
                              "tally_consumer_lag",
                              "tally_request_age_seconds",
                              "tally_oldest_in_flight_seconds",
                              "tally_assigned_partitions",
                              "tally_held_accounts"};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++)
        assert_true(family_declared(&P, families[i], true));
    /* The request-age histogram is there, empty, from the first scrape; the
     * process figures once the scrape sets them. */
    assert_true(value_of(&P, "tally_request_age_seconds_bucket{le=\"+Inf\"}") == 0);
    assert_true(value_of(&P, "tally_request_age_seconds_count") == 0);
    assert_true(value_of(&P, "tally_held_accounts") == 0);
    assert_true(value_of(&P, "process_open_fds") == -1);
    metrics_free(m);
    metrics_free(NULL);
}

/* The histogram of a request's age at start, the gauges the scrape sets,
 * the standard process_* set, and an account_held answer's code. */
static void test_age_gauges_and_process(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const double ages[] = {0.003, 0.2, 0.2, 45, 61, 4000, -2 /* a clock ahead: 0 */};
    for (size_t i = 0; i < sizeof(ages) / sizeof(ages[0]); i++)
        metrics_request_age(m, ages[i]);
    metrics_set_oldest_in_flight(m, 12.5);
    metrics_set_assigned_partitions(m, 3);
    metrics_set_held_accounts(m, 2);
    procstat_t ps = {.start_time_seconds = 1796194647.25,
                     .cpu_seconds = 1.5,
                     .resident_bytes = 4096,
                     .virtual_bytes = 8192,
                     .open_fds = 9,
                     .max_fds = 1024};
    metrics_set_process(m, &ps);
    metrics_request_done(m, "payment.get", "error", "account_held", 0.001, false);
    render_parse(m, &P);
    const char *h = "tally_request_age_seconds";
    const struct {
        const char *le;
        double want;
    } cum[] = {{"0.005", 2}, {"0.25", 4}, {"30", 4},  {"60", 5},
               {"120", 6},   {"3600", 6}, {"+Inf", 7}};
    for (size_t i = 0; i < sizeof(cum) / sizeof(cum[0]); i++) {
        char s[128];
        snprintf(s, sizeof(s), "%s_bucket{le=\"%s\"}", h, cum[i].le);
        if (value_of(&P, s) != cum[i].want)
            fail_msg("%s is %g, not %g", s, value_of(&P, s), cum[i].want);
    }
    assert_true(value_of(&P, "tally_request_age_seconds_count") == 7);
    double d = value_of(&P, "tally_request_age_seconds_sum") - 4106.403;
    assert_true(d < 1e-6 && d > -1e-6);
    assert_true(value_of(&P, "tally_oldest_in_flight_seconds") == 12.5);
    assert_true(value_of(&P, "tally_assigned_partitions") == 3);
    assert_true(value_of(&P, "tally_held_accounts") == 2);
    assert_true(value_of(&P, "process_start_time_seconds") == 1796194647.25);
    assert_true(value_of(&P, "process_cpu_seconds_total") == 1.5);
    assert_true(value_of(&P, "process_resident_memory_bytes") == 4096);
    assert_true(value_of(&P, "process_virtual_memory_bytes") == 8192);
    assert_true(value_of(&P, "process_open_fds") == 9);
    assert_true(value_of(&P, "process_max_fds") == 1024);
    assert_true(value_of(&P, "tally_request_errors_total{type=\"payment.get\","
                             "error_code=\"account_held\"}") == 1);
    metrics_set_process(m, NULL); /* /proc unreadable: left out, not zero */
    render_parse(m, &P);
    assert_true(value_of(&P, "process_open_fds") == -1);
    metrics_free(m);
}

static void test_counter_grows_with_calls(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const char *ok = "tally_requests_total{type=\"unknown\",status=\"ok\"}";
    metrics_request_done(m, "no.such.type", "ok", NULL, 0.002, false);
    render_parse(m, &P);
    assert_true(value_of(&P, ok) == 1);
    metrics_request_done(m, "no.such.type", "ok", NULL, 0.002, true);
    metrics_request_done(m, NULL, "ok", "", 0.002, false);
    metrics_request_done(m, "no.such.type", "error", "conflict", 0.002, true);
    metrics_request_done(m, "no.such.type", "weird", "bogus_code", 0.002, false);
    render_parse(m, &P);
    assert_true(value_of(&P, ok) == 3);
    assert_true(value_of(&P, "tally_requests_total{type=\"unknown\",status=\"error\"}") == 2);
    assert_true(value_of(&P, "tally_replays_total") == 2);
    assert_true(
        value_of(&P, "tally_request_errors_total{type=\"unknown\",error_code=\"conflict\"}") == 1);
    /* A code outside the contract cannot create a new series. */
    assert_true(value_of(&P, "tally_request_errors_total{type=\"unknown\",error_code=\"other\"}") ==
                1);
    for (int i = 0; i < P.n; i++) {
        assert_null(strstr(P.samples[i].series, "bogus"));
        assert_null(strstr(P.samples[i].series, "no.such.type"));
        assert_null(strstr(P.samples[i].series, "weird"));
    }
    metrics_free(m);
}

static void test_known_type_keeps_its_name(void **state)
{
    (void)state;
    assert_true(handler_count() > 0);
    metrics_t *m = metrics_new();
    const char *type = handler_name(handler_at(0));
    metrics_request_done(m, type, "ok", NULL, 0.001, false);
    render_parse(m, &P);
    char s[256];
    snprintf(s, sizeof(s), "tally_requests_total{type=\"%s\",status=\"ok\"}", type);
    assert_true(value_of(&P, s) == 1);
    assert_true(value_of(&P, "tally_requests_total{type=\"unknown\",status=\"ok\"}") == 0);
    metrics_free(m);
}

static void test_histogram_buckets_cumulative(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    const double obs[] = {0.0003, 0.003, 0.003, 0.3, 30, -1};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics_request_done(m, "x", "ok", NULL, obs[i], false);
    render_parse(m, &P);
    double prev = -1, prev_le = -1;
    int buckets = 0;
    for (int i = 0; i < P.n; i++) {
        if (strcmp(P.samples[i].name, "tally_request_duration_seconds_bucket") != 0)
            continue;
        const char *le = strstr(P.samples[i].series, "le=\"") + 4;
        double bound = strncmp(le, "+Inf", 4) == 0 ? INFINITY : strtod(le, NULL);
        assert_true(bound > prev_le); /* rendered in increasing order */
        assert_true(P.samples[i].value >= prev);
        prev = P.samples[i].value;
        prev_le = bound;
        buckets++;
    }
    assert_true(buckets >= 10);
    assert_true(isinf(prev_le));
    const char *h = "tally_request_duration_seconds";
    char s[256];
    snprintf(s, sizeof(s), "%s_bucket{type=\"unknown\",le=\"+Inf\"}", h);
    assert_true(value_of(&P, s) == 6);
    snprintf(s, sizeof(s), "%s_count{type=\"unknown\"}", h);
    assert_true(value_of(&P, s) == 6);
    snprintf(s, sizeof(s), "%s_bucket{type=\"unknown\",le=\"0.0005\"}", h);
    assert_true(value_of(&P, s) == 2); /* 0.0003 and the negative one, clamped to 0 */
    snprintf(s, sizeof(s), "%s_bucket{type=\"unknown\",le=\"0.005\"}", h);
    assert_true(value_of(&P, s) == 4);
    snprintf(s, sizeof(s), "%s_bucket{type=\"unknown\",le=\"10\"}", h);
    assert_true(value_of(&P, s) == 5); /* 30 s is only in +Inf */
    snprintf(s, sizeof(s), "%s_sum{type=\"unknown\"}", h);
    double d = value_of(&P, s) - 30.3063;
    assert_true(d < 1e-9 && d > -1e-9);
    metrics_free(m);
}

static void test_dlq_retries_and_gauges(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_dlq(m, "internal");
    metrics_dlq(m, "internal");
    metrics_dlq(m, "invalid_request");
    metrics_dlq(m, NULL);
    metrics_retry(m);
    metrics_retry(m);
    metrics_retry(m);
    metrics_set_in_flight(m, 42);
    metrics_set_paused_partitions(m, 2);
    metrics_set_stuck_deliveries(m, 3);
    metrics_set_stuck_deliveries(m, 1);
    metrics_set_pool(m, 3, 1, 1);
    metrics_set_pool(m, 2, 3, 0);
    metrics_set_database_up(m, true);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_database_up") == 1);
    metrics_set_database_up(m, false);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_database_up") == 0);
    assert_true(value_of(&P, "tally_dlq_messages_total{error_code=\"internal\"}") == 2);
    assert_true(value_of(&P, "tally_dlq_messages_total{error_code=\"invalid_request\"}") == 1);
    assert_true(value_of(&P, "tally_dlq_messages_total{error_code=\"other\"}") == 1);
    assert_true(value_of(&P, "tally_retries_total") == 3);
    assert_true(value_of(&P, "tally_in_flight_requests") == 42);
    assert_true(value_of(&P, "tally_paused_partitions") == 2);
    assert_true(value_of(&P, "tally_stuck_deliveries") == 1); /* a gauge: the last value */
    assert_true(value_of(&P, "tally_pool_connections{state=\"idle\"}") == 2);
    assert_true(value_of(&P, "tally_pool_connections{state=\"active\"}") == 3);
    assert_true(value_of(&P, "tally_pool_connections{state=\"connecting\"}") == 0);
    metrics_free(m);
}

static void test_consumer_lag_set_replace_clear(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    metrics_set_consumer_lag(m, "tally.requests", 0, 10);
    metrics_set_consumer_lag(m, "tally.requests", 1, 5);
    metrics_set_consumer_lag(m, "tally.requests", 0, 7); /* replaces */
    metrics_set_consumer_lag(m, "we\"ird\\topic\n", 3, 1);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_consumer_lag{topic=\"tally.requests\",partition=\"0\"}") == 7);
    assert_true(value_of(&P, "tally_consumer_lag{topic=\"tally.requests\",partition=\"1\"}") == 5);
    assert_true(
        value_of(&P, "tally_consumer_lag{topic=\"we\\\"ird\\\\topic\\n\",partition=\"3\"}") == 1);
    metrics_clear_consumer_lag(m);
    metrics_set_consumer_lag(m, "tally.requests", 2, 0);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_consumer_lag{topic=\"tally.requests\",partition=\"0\"}") == -1);
    assert_true(value_of(&P, "tally_consumer_lag{topic=\"tally.requests\",partition=\"2\"}") == 0);
    /* Bounded: partitions past the cap are ignored, not grown without limit. */
    for (int i = 0; i < METRICS_MAX_LAG_SERIES + 50; i++)
        metrics_set_consumer_lag(m, "t", i, i);
    char *text;
    size_t len;
    assert_int_equal(metrics_render(m, &text, &len), 0);
    int lines = 0;
    for (const char *q = text; (q = strstr(q, "\ntally_consumer_lag{")) != NULL; q++)
        lines++;
    assert_int_equal(lines, METRICS_MAX_LAG_SERIES);
    free(text);
    metrics_free(m);
}

#define THREADS    4
#define PER_THREAD 20000

static void *hammer(void *arg)
{
    metrics_t *m = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_request_done(m, "t", (i & 1) ? "ok" : "error", "internal", 0.001, i % 4 == 0);
        metrics_retry(m);
        metrics_set_consumer_lag(m, "tally.requests", i % 8, i);
    }
    return NULL;
}

static void test_concurrent_updates_are_not_lost(void **state)
{
    (void)state;
    metrics_t *m = metrics_new();
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, m), 0);
    for (int i = 0; i < 50; i++) { /* scrapes while the counters move */
        char *text;
        size_t len;
        assert_int_equal(metrics_render(m, &text, &len), 0);
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    render_parse(m, &P);
    assert_true(value_of(&P, "tally_requests_total{type=\"unknown\",status=\"ok\"}") ==
                THREADS * PER_THREAD / 2);
    assert_true(value_of(&P, "tally_requests_total{type=\"unknown\",status=\"error\"}") ==
                THREADS * PER_THREAD / 2);
    assert_true(value_of(&P, "tally_retries_total") == THREADS * PER_THREAD);
    assert_true(value_of(&P, "tally_replays_total") == THREADS * PER_THREAD / 4);
    assert_true(value_of(&P, "tally_request_duration_seconds_count{type=\"unknown\"}") ==
                THREADS * PER_THREAD);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_registry_is_valid_and_zero),
        cmocka_unit_test(test_age_gauges_and_process),
        cmocka_unit_test(test_counter_grows_with_calls),
        cmocka_unit_test(test_known_type_keeps_its_name),
        cmocka_unit_test(test_histogram_buckets_cumulative),
        cmocka_unit_test(test_dlq_retries_and_gauges),
        cmocka_unit_test(test_consumer_lag_set_replace_clear),
        cmocka_unit_test(test_concurrent_updates_are_not_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
