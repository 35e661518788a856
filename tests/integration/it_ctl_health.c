/* tallyctl health against a tiny HTTP server: the worker's own http module
 * on a libuv loop in a thread of this test, answering /readyz 200 or 503 as
 * the test decides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"
#include "worker/http.h"

#include <pthread.h>
#include <stdatomic.h>

typedef struct fx {
    uv_loop_t loop;
    uv_async_t stop;
    http_server_t *srv;
    pthread_t thread;
    atomic_bool ready;
    char addr[64];
} fx_t;

static void handler(void *ctx, const char *method, const char *path, http_response_t *resp)
{
    fx_t *f = ctx;
    (void)method;
    if (strcmp(path, "/readyz") == 0) {
        bool ready = atomic_load(&f->ready);
        resp->status = ready ? 200 : 503;
        resp->content_type = "application/json";
        resp->body = strdup(ready ? "{\"ready\":true}\n"
                                  : "{\"ready\":false,\"reasons\":[\"draining\"]}\n");
        resp->len = strlen(resp->body);
    } else if (strcmp(path, "/livez") == 0) {
        resp->status = 200;
        resp->body = strdup("ok\n");
        resp->len = 3;
    }
}

static void on_stop(uv_async_t *a)
{
    fx_t *f = a->data;
    http_server_close(f->srv, NULL, NULL);
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void *serve(void *arg)
{
    fx_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    char err[256];
    assert_int_equal(
        http_server_start(&f->loop, "127.0.0.1:0", handler, f, &f->srv, err, sizeof(err)), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->stop, on_stop), 0);
    f->stop.data = f;
    snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", http_server_port(f->srv));
    assert_int_equal(pthread_create(&f->thread, NULL, serve, f), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void test_ready_and_not_ready(void **state)
{
    fx_t *f = *state;
    ctl_out_t o;
    atomic_store(&f->ready, true);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", f->addr, NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "/readyz: ready (HTTP 200)"));
    ctl_out_free(&o);

    atomic_store(&f->ready, false);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", f->addr, NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "not ready (HTTP 503)"));
    assert_non_null(strstr(o.out, "draining"));
    ctl_out_free(&o);

    /* --json: the body is embedded as JSON when it is JSON. */
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", f->addr, "--json", NULL}, &o);
    assert_int_equal(o.code, 1);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
    assert_true(json_is_false(json_object_get(j, "ready")));
    assert_true(json_is_false(json_object_get(json_object_get(j, "body"), "ready")));
    json_decref(j);
    ctl_out_free(&o);

    /* --live asks /livez; TALLY_HTTP_ADDR is the default address; a
     * wildcard host means this machine. */
    char env[128], wildcard[64];
    snprintf(env, sizeof(env), "TALLY_HTTP_ADDR=%s", f->addr);
    ctl_run(NULL, (const char *const[]){env, NULL}, (const char *const[]){"health", "--live", NULL},
            &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "/livez: alive (HTTP 200)"));
    ctl_out_free(&o);
    snprintf(wildcard, sizeof(wildcard), "0.0.0.0:%s", strchr(f->addr, ':') + 1);
    atomic_store(&f->ready, true);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", wildcard, NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
}

static void test_unreachable_and_usage(void **state)
{
    (void)state;
    ctl_out_t o;
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", th_free_port());
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", addr, "--json", NULL}, &o);
    assert_int_equal(o.code, 1);
    json_t *j = json_loads(o.out, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "status")));
    assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "refused"));
    json_decref(j);
    ctl_out_free(&o);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--addr", "nonsense", NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.out, "invalid address"));
    ctl_out_free(&o);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--bogus", NULL}, &o);
    assert_int_equal(o.code, 2);
    ctl_out_free(&o);
    ctl_run(NULL, NULL, (const char *const[]){"health", "--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "Usage: tallyctl health"));
    ctl_out_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ready_and_not_ready, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_and_usage, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
