/* test_health — the answers of /livez, /readyz and /metrics from a
 * snapshot: readiness and its reasons in every state, the gauges /metrics
 * sets, and paths it leaves alone. */
#include "worker/health.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct probe {
    health_snapshot_t s;
    int calls;
    bool for_metrics; /* what the last call was asked for */
} probe_t;

static void snapshot(void *ctx, health_snapshot_t *out)
{
    probe_t *p = ctx;
    p->calls++;
    p->for_metrics = out->for_metrics;
    *out = p->s;
}

/* Answers path; the caller frees resp->body. */
static http_response_t answer(const char *path, probe_t *p, metrics_t *m)
{
    http_response_t resp = {.status = 404, .content_type = "text/plain; charset=utf-8"};
    health_answer(path, snapshot, p, m, &resp);
    return resp;
}

static probe_t healthy(void)
{
    return (probe_t){.s = {.partitions = 3, .paused = 1, .in_flight = 7, .stuck_deliveries = 2}};
}

/* /readyz's body, parsed; its status in *status. */
static json_t *readyz(probe_t *p, int *status)
{
    http_response_t r = answer("/readyz", p, NULL);
    *status = r.status;
    assert_string_equal(r.content_type, "application/json");
    assert_int_equal(r.len, strlen(r.body));
    json_t *o = json_loads(r.body, 0, NULL);
    assert_non_null(o);
    free(r.body);
    return o;
}

static const char *reason(json_t *o, size_t i)
{
    return json_string_value(json_array_get(json_object_get(o, "reasons"), i));
}

static void test_livez_takes_no_snapshot(void **state)
{
    probe_t p = healthy();
    p.s.db_down = true;
    p.s.draining = true;
    const char *paths[] = {"/livez", "/healthz"};
    for (int i = 0; i < 2; i++) {
        http_response_t r = answer(paths[i], &p, NULL);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "ok\n");
        assert_int_equal(r.len, 3);
        free(r.body);
    }
    assert_int_equal(p.calls, 0);
}

static void test_ready(void **state)
{
    probe_t p = healthy();
    int status;
    json_t *o = readyz(&p, &status);
    assert_int_equal(status, 200);
    assert_true(json_is_true(json_object_get(o, "ready")));
    assert_true(json_is_true(json_object_get(o, "database")));
    assert_true(json_is_false(json_object_get(o, "draining")));
    assert_int_equal(json_integer_value(json_object_get(o, "partitions")), 3);
    assert_int_equal(json_integer_value(json_object_get(o, "in_flight")), 7);
    assert_int_equal(json_integer_value(json_object_get(o, "stuck_deliveries")), 2);
    assert_int_equal(json_array_size(json_object_get(o, "reasons")), 0);
    json_decref(o);
    assert_int_equal(p.calls, 1);
    assert_false(p.for_metrics);

    /* No partitions is ready all the same (CONTRACT §7). */
    p.s.partitions = 0;
    o = readyz(&p, &status);
    assert_int_equal(status, 200);
    json_decref(o);
}

static void test_not_ready(void **state)
{
    struct {
        bool down, pooler, stale, draining;
        const char *reason0, *reason1;
        bool database;
    } cases[] = {
        {true, false, false, false, "database unavailable", NULL, false},
        {true, true, false, false, "database unavailable: a connection pooler lost prepared", NULL,
         false},
        {false, false, true, false, "database not checked recently", NULL, false},
        {false, false, false, true, "draining", NULL, true},
        {true, false, false, true, "database unavailable", "draining", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        probe_t p = healthy();
        p.s.db_down = cases[i].down;
        p.s.pooler_fault = cases[i].pooler;
        p.s.db_stale = cases[i].stale;
        p.s.draining = cases[i].draining;
        int status;
        json_t *o = readyz(&p, &status);
        assert_int_equal(status, 503);
        assert_true(json_is_false(json_object_get(o, "ready")));
        assert_int_equal(json_is_true(json_object_get(o, "database")), cases[i].database);
        assert_int_equal(json_is_true(json_object_get(o, "draining")), cases[i].draining);
        assert_non_null(reason(o, 0));
        assert_memory_equal(reason(o, 0), cases[i].reason0, strlen(cases[i].reason0));
        if (cases[i].reason1 != NULL)
            assert_string_equal(reason(o, 1), cases[i].reason1);
        else
            assert_null(reason(o, 1));
        json_decref(o);
    }
}

static void test_metrics_sets_the_gauges(void **state)
{
    metrics_t *m = metrics_new();
    probe_t p = healthy();
    p.s.db_stale = true;
    p.s.pool = (pool_stats_t){.idle = 2, .active = 3, .connecting = 1};
    p.s.oldest_in_flight_s = 4.25;
    p.s.held_accounts = 1;
    http_response_t r = answer("/metrics", &p, m);
    assert_true(p.for_metrics); /* the runtime sets the lag series then */
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, METRICS_CONTENT_TYPE);
    assert_int_equal(r.len, strlen(r.body));
    const char *want[] = {"\ntally_in_flight_requests 7\n",
                          "\ntally_paused_partitions 1\n",
                          "\ntally_stuck_deliveries 2\n",
                          "\ntally_database_up 0\n",
                          "tally_pool_connections{state=\"idle\"} 2\n",
                          "tally_pool_connections{state=\"active\"} 3\n",
                          "tally_pool_connections{state=\"connecting\"} 1\n",
                          "\ntally_assigned_partitions 3\n",
                          "\ntally_oldest_in_flight_seconds 4.250\n",
                          "\ntally_held_accounts 1\n",
                          "\nprocess_open_fds ",
                          "\nprocess_start_time_seconds "};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        if (strstr(r.body, want[i]) == NULL)
            fail_msg("/metrics lacks %s", want[i]);
    }
    free(r.body);
    metrics_free(m);
}

static void test_other_paths_are_left_alone(void **state)
{
    probe_t p = healthy();
    const char *paths[] = {"/", "/ready", "/metrics/", "/livez/x"};
    for (int i = 0; i < 4; i++) {
        http_response_t r = answer(paths[i], &p, NULL);
        assert_int_equal(r.status, 404);
        assert_null(r.body);
    }
    assert_int_equal(p.calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_livez_takes_no_snapshot),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_not_ready),
        cmocka_unit_test(test_metrics_sets_the_gauges),
        cmocka_unit_test(test_other_paths_are_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
