/* Unit tests for src/worker/http over a real loopback socket: the server runs
 * on a private loop in the test's main thread; a client thread speaks raw
 * HTTP with blocking sockets (every read bounded by SO_RCVTIMEO). Each test
 * ends with http_server_close and asserts that uv_loop_close succeeds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/http.h"
#include "worker/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 10

typedef struct fixture fixture_t;
typedef void (*client_fn)(fixture_t *f);

struct fixture {
    uv_loop_t loop;
    uv_async_t async;
    http_server_t *srv;
    metrics_t *metrics;
    int port;
    int calls; /* handler calls; loop thread only */
    char last_method[8];
    int closed; /* done_cb calls */
    atomic_bool client_done;
    atomic_bool close_requested;
    client_fn client;
    char failure[256]; /* the client thread's first failed check */
};

/* cmocka's asserts longjmp and so only work in the test's own thread: the
 * client thread records its first failure and returns; run_client asserts. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            if (f->failure[0] == '\0')                                                             \
                snprintf(f->failure, sizeof(f->failure), "line %d: %s", __LINE__, #cond);          \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* ---- the server side ----------------------------------------------------- */

static void handler(void *ctx, const char *method, const char *path, http_response_t *resp)
{
    fixture_t *f = ctx;
    f->calls++;
    snprintf(f->last_method, sizeof(f->last_method), "%s", method);
    if (strcmp(path, "/livez") == 0) {
        resp->status = 200;
        resp->body = strdup("ok\n");
        resp->len = 3;
    } else if (strcmp(path, "/metrics") == 0) {
        metrics_request_done(f->metrics, "x", "ok", NULL, 0.001, false);
        resp->status = 200;
        resp->content_type = METRICS_CONTENT_TYPE;
        if (metrics_render(f->metrics, &resp->body, &resp->len) != 0)
            resp->status = 500;
    } else if (strcmp(path, "/bogus-status") == 0) {
        resp->status = 999;
        resp->body = strdup("x");
        resp->len = 1;
    }
    /* anything else: untouched, so 404 */
}

static void on_closed(void *arg)
{
    ((fixture_t *)arg)->closed++;
}

static void on_async(uv_async_t *a)
{
    fixture_t *f = a->data;
    if (atomic_exchange(&f->close_requested, false) && f->srv != NULL) {
        http_server_close(f->srv, on_closed, f);
        f->srv = NULL;
    }
    if (atomic_load(&f->client_done))
        uv_stop(&f->loop);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->async, on_async), 0);
    f->async.data = f;
    f->metrics = metrics_new();
    char err[256];
    assert_int_equal(
        http_server_start(&f->loop, "127.0.0.1:0", handler, f, &f->srv, err, sizeof(err)), 0);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->srv != NULL)
        http_server_close(f->srv, on_closed, f);
    uv_close((uv_handle_t *)&f->async, NULL);
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* no handle left behind */
    metrics_free(f->metrics);
    free(f);
    return 0;
}

static void *client_main(void *arg)
{
    fixture_t *f = arg;
    f->client(f);
    atomic_store(&f->client_done, true);
    uv_async_send(&f->async);
    return NULL;
}

/* Runs fn in a client thread while the loop serves; returns when it is done. */
static void run_client(fixture_t *f, client_fn fn)
{
    pthread_t th;
    f->client = fn;
    atomic_store(&f->client_done, false);
    assert_int_equal(pthread_create(&th, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    if (f->failure[0] != '\0')
        fail_msg("client: %s", f->failure);
}

/* ---- the client side (client thread) ------------------------------------ */

/* A connection to the server from the loopback address from ("127.0.0.1"
 * by default: every 127/8 address is the loopback interface on Linux). */
static int dial_from(int port, const char *from)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in local = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, from, &local.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&local, sizeof(local)) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int dial(int port)
{
    return dial_from(port, "127.0.0.1");
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Reads until EOF (or error/timeout); returns the byte count. */
static size_t recv_all(int fd, char *out, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, out + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    out[n] = '\0';
    return n;
}

typedef struct reply {
    int status;
    char text[65536];
    size_t len;
    const char *body;
} reply_t;

static void parse_reply(reply_t *r)
{
    r->status = 0;
    sscanf(r->text, "HTTP/1.1 %d", &r->status);
    const char *b = strstr(r->text, "\r\n\r\n");
    r->body = b != NULL ? b + 4 : "";
}

/* One request on a fresh connection; status 0 when the connection failed. */
static void exchange(fixture_t *f, const char *req, size_t len, reply_t *r)
{
    r->text[0] = '\0';
    int fd = dial(f->port);
    if (fd >= 0) {
        send_all(fd, req, len); /* the server may answer (and stop reading) early */
        r->len = recv_all(fd, r->text, sizeof(r->text));
        close(fd);
    }
    parse_reply(r);
}

static reply_t R; /* client thread only */

/* One request; records a failure naming the request unless it got want_status. */
static bool get(fixture_t *f, const char *req, int want_status)
{
    exchange(f, req, strlen(req), &R);
    if (R.status == want_status && strstr(R.text, "Connection: close\r\n") != NULL)
        return true;
    if (f->failure[0] == '\0')
        snprintf(f->failure, sizeof(f->failure), "%.60s: got %d, want %d", req, R.status,
                 want_status);
    return false;
}

/* ---- tests -------------------------------------------------------------- */

static void client_routes(fixture_t *f)
{
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    CHECK(strcmp(R.body, "ok\n") == 0);
    CHECK(strstr(R.text, "Content-Length: 3\r\n") != NULL);
    CHECK(strstr(R.text, "Content-Type: text/plain; charset=utf-8\r\n") != NULL);
    CHECK(get(f, "GET /livez?verbose=1 HTTP/1.0\r\n\r\n",
              200));                                        /* query dropped; 1.0 needs no Host */
    CHECK(get(f, "GET /livez HTTP/1.1\nHost: t\n\n", 200)); /* bare LF line ends */
    CHECK(get(f, "HEAD /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    CHECK(strstr(R.text, "Content-Length: 3\r\n") != NULL);
    CHECK(strcmp(R.body, "") == 0); /* HEAD: headers only */
    CHECK(get(f, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404));
    CHECK(get(f, "GET /bogus-status HTTP/1.1\r\nHost: t\r\n\r\n", 500));
    CHECK(get(f, "GET /metrics HTTP/1.1\r\nHost: t\r\nUser-Agent: Prometheus/2\r\n\r\n", 200));
    CHECK(strstr(R.text, "Content-Type: " METRICS_CONTENT_TYPE "\r\n") != NULL);
    CHECK(strstr(R.body, "tally_requests_total{type=\"unknown\",status=\"ok\"} 1\n") != NULL);
    CHECK(get(f, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    /* The metric grows with the calls that happened between scrapes. */
    CHECK(strstr(R.body, "tally_requests_total{type=\"unknown\",status=\"ok\"} 2\n") != NULL);
}

static void test_routes(void **state)
{
    fixture_t *f = *state;
    run_client(f, client_routes);
    assert_int_equal(f->calls, 8);
    assert_string_equal(f->last_method, "GET");
}

static void client_bad_requests(fixture_t *f)
{
    CHECK(get(f, "POST /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}", 405));
    CHECK(strstr(R.text, "Allow: GET, HEAD\r\n") != NULL);
    CHECK(get(f, "DELETE /livez HTTP/1.1\r\nHost: t\r\n\r\n", 405));
    CHECK(get(f, "GARBAGE\r\n\r\n", 400));
    CHECK(get(f, "GET  /livez HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CHECK(get(f, "GET livez HTTP/1.1\r\nHost: t\r\n\r\n", 400));
    CHECK(get(f, "GET /livez HTTP/1.1\r\n\r\n", 400));                       /* no Host */
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400)); /* two */
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n", 400));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\nContent-Length: x\r\n\r\n", 400));
    CHECK(get(f, "GET /livez HTTP/2.0\r\nHost: t\r\n\r\n", 505));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", 413));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              413));
    /* Embedded NUL and a TLS ClientHello: answered at once, not waited for. */
    static const char nul[] = "GET /li\0vez HTTP/1.1\r\nHost: t\r\n\r\n";
    exchange(f, nul, sizeof(nul) - 1, &R);
    CHECK(R.status == 400);
    static const char tls[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    exchange(f, tls, sizeof(tls) - 1, &R);
    CHECK(R.status == 400);

    /* Oversized: a 9000-byte header, and a 9000-byte request line. */
    static char big[12000];
    int n = snprintf(big, sizeof(big), "GET /livez HTTP/1.1\r\nHost: t\r\nX-Big: ");
    memset(big + n, 'a', 9000);
    memcpy(big + n + 9000, "\r\n\r\n", 4);
    exchange(f, big, (size_t)n + 9004, &R);
    CHECK(R.status == 431);
    n = snprintf(big, sizeof(big), "GET /");
    memset(big + n, 'a', 9000);
    memcpy(big + n + 9000, " HTTP/1.1\r\nHost: t\r\n\r\n", 22);
    exchange(f, big, (size_t)n + 9022, &R);
    CHECK(R.status == 414);

    /* A client that connects and leaves at once, or mid-request. */
    int fd = dial(f->port);
    close(fd);
    fd = dial(f->port);
    send_all(fd, "GET /livez HT", 13);
    close(fd);
    /* And the server still serves. */
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
}

static void test_bad_requests_get_4xx(void **state)
{
    fixture_t *f = *state;
    run_client(f, client_bad_requests);
    assert_int_equal(f->calls, 1); /* only the final, valid request reached the handler */
}

/* Sends one byte at a time, 20 ms apart, until the server hangs up; returns
 * the bytes sent (bounded: at most max_bytes, so at most max_bytes × 20 ms). */
static int drip(int fd, const char *bytes, int max_bytes)
{
    for (int i = 0; i < max_bytes; i++) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 20) > 0)
            return i; /* the answer (or the hang-up) arrived */
        if (send(fd, &bytes[i % 8], 1, MSG_NOSIGNAL) != 1)
            return i;
    }
    return max_bytes;
}

static void client_slowloris(fixture_t *f)
{
    int slow = dial(f->port);
    CHECK(slow >= 0);
    CHECK(send_all(slow, "GET /livez HTTP/1.1\r\nHost: t\r\nX-Slow: ", 38));
    /* Meanwhile the loop serves everyone else. */
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    int sent = drip(slow, "abcdefgh", 500); /* up to 10 s of dripping */
    CHECK(sent < 500);
    reply_t *r = malloc(sizeof(*r));
    r->len = recv_all(slow, r->text, sizeof(r->text));
    parse_reply(r);
    CHECK(r->status == 408);
    free(r);
    close(slow);
}

static void test_slowloris_is_timed_out(void **state)
{
    fixture_t *f = *state;
    http_server_set_limits(f->srv, &(http_limits_t){.header_timeout_ms = 200});
    run_client(f, client_slowloris);
    assert_int_equal(f->calls, 1);
}

#define MANY 150

static void client_many(fixture_t *f)
{
    static int fds[MANY];
    for (int i = 0; i < MANY; i++) {
        fds[i] = dial(f->port);
        CHECK(fds[i] >= 0);
    }
    /* All are open at once before any request is sent. */
    for (int i = 0; i < MANY; i++)
        CHECK(send_all(fds[i], "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 33));
    reply_t *r = malloc(sizeof(*r));
    for (int i = 0; i < MANY; i++) {
        r->len = recv_all(fds[i], r->text, sizeof(r->text));
        parse_reply(r);
        CHECK(r->status == 200);
        close(fds[i]);
    }
    free(r);
}

static void test_many_concurrent_connections(void **state)
{
    fixture_t *f = *state;
    /* All from one address: each may be served in full. */
    http_server_set_limits(f->srv, &(http_limits_t){.max_per_peer = MANY});
    run_client(f, client_many);
    assert_int_equal(f->calls, MANY);
}

/* Reads the answer on fd (status 0: closed without one). */
static int answer_on(int fd)
{
    reply_t *r = malloc(sizeof(*r));
    r->len = recv_all(fd, r->text, sizeof(r->text));
    parse_reply(r);
    int status = r->status;
    free(r);
    return status;
}

static void client_over_limit(fixture_t *f)
{
    int fds[6];
    for (int i = 0; i < 6; i++) {
        fds[i] = dial(f->port);
        CHECK(fds[i] >= 0);
    }
    /* Four are served in full, two sit on the reserved slots. A seventh
     * connection takes the place of the oldest idle reserved one, and may
     * ask for liveness only. */
    CHECK(get(f, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 503));
    CHECK(strstr(R.text, "Retry-After: 1\r\n") != NULL);
    CHECK(answer_on(fds[4]) == 0); /* closed to make room, unanswered */
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    CHECK(get(f, "HEAD /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    for (int i = 0; i < 4; i++) { /* within the limit: served in full */
        CHECK(send_all(fds[i], "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 35));
        CHECK(answer_on(fds[i]) == 200);
    }
    for (int i = 0; i < 6; i++)
        close(fds[i]);
}

static void test_connection_limit(void **state)
{
    fixture_t *f = *state;
    http_server_set_limits(f->srv, &(http_limits_t){.max_connections = 4,
                                                    .reserved = 2,
                                                    .header_timeout_ms = 30000 /* no 408 here */});
    run_client(f, client_over_limit);
    assert_int_equal(f->calls, 2 + 4); /* the liveness probes and the four in full */
}

/* One address holds at most max_per_peer connections served in full; the
 * next one is on reserved capacity, while another address is served. */
static void client_per_peer(fixture_t *f)
{
    int a = dial(f->port), b = dial(f->port);
    CHECK(a >= 0 && b >= 0);
    CHECK(get(f, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 503));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    int other = dial_from(f->port, "127.0.0.2");
    CHECK(other >= 0);
    CHECK(send_all(other, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 35));
    CHECK(answer_on(other) == 200);
    close(other);
    close(a);
    close(b);
}

static void test_per_peer_limit(void **state)
{
    fixture_t *f = *state;
    http_server_set_limits(f->srv, &(http_limits_t){.max_per_peer = 2, .header_timeout_ms = 30000});
    run_client(f, client_per_peer);
    assert_int_equal(f->calls, 2);
}

#define IDLE 300

/* 300 connections that send nothing: /livez still answers, at once. */
static void client_idle_flood(fixture_t *f)
{
    static int fds[IDLE];
    for (int i = 0; i < IDLE; i++) {
        fds[i] = dial(f->port);
        CHECK(fds[i] >= 0);
    }
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200));
    CHECK(strcmp(R.body, "ok\n") == 0);
    CHECK(get(f, "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n", 503));
    for (int i = 0; i < IDLE; i++)
        close(fds[i]);
}

static void test_livez_survives_idle_flood(void **state)
{
    fixture_t *f = *state;
    http_server_set_limits(f->srv, &(http_limits_t){.header_timeout_ms = 30000});
    run_client(f, client_idle_flood);
    assert_int_equal(f->calls, 1); /* the 503 is the server's own */
}

static void client_close_with_open_connections(fixture_t *f)
{
    int idle = dial(f->port);
    int partial = dial(f->port);
    CHECK(idle >= 0 && partial >= 0);
    CHECK(send_all(partial, "GET /livez HTTP/1.1\r\n", 21));
    CHECK(get(f, "GET /livez HTTP/1.1\r\nHost: t\r\n\r\n", 200)); /* both are surely accepted */
    atomic_store(&f->close_requested, true);
    uv_async_send(&f->async);
    char buf[64];
    CHECK(recv(idle, buf, sizeof(buf), 0) == 0); /* closed by the server */
    CHECK(recv(partial, buf, sizeof(buf), 0) == 0);
    close(idle);
    close(partial);
    /* Nobody listens any more. */
    CHECK(dial(f->port) == -1);
}

static void test_close_with_open_connections(void **state)
{
    fixture_t *f = *state;
    run_client(f, client_close_with_open_connections);
    assert_null(f->srv);
    /* teardown runs the loop dry and asserts done_cb ran once and the loop closes */
}

static void test_bad_addresses(void **state)
{
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    http_server_t *s = NULL;
    char err[256];
    const char *bad[] = {"",     "8080",   "nonsense",       "127.0.0.1:99999", "127.0.0.1:",
                         "[::1", "::1:80", "example.com:80", "127.0.0.1:80x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(http_server_start(&loop, bad[i], handler, NULL, &s, err, sizeof(err)), -1);
        assert_true(strlen(err) > 0);
    }
    /* A port already taken. */
    http_server_t *first;
    assert_int_equal(
        http_server_start(&loop, "127.0.0.1:0", handler, NULL, &first, err, sizeof(err)), 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", http_server_port(first));
    assert_int_equal(http_server_start(&loop, addr, handler, NULL, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "in use"));
    assert_non_null(strstr(err, addr));
    /* IPv6 and localhost forms are accepted. */
    http_server_t *six = NULL, *local = NULL;
    if (http_server_start(&loop, "[::1]:0", handler, NULL, &six, err, sizeof(err)) == 0)
        http_server_close(six, NULL, NULL); /* where IPv6 loopback exists */
    assert_int_equal(
        http_server_start(&loop, "localhost:0", handler, NULL, &local, err, sizeof(err)), 0);
    http_server_close(local, NULL, NULL);
    http_server_close(first, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests_get_4xx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slowloris_is_timed_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_concurrent_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_per_peer_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_livez_survives_idle_flood, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_open_connections, setup, teardown),
        cmocka_unit_test(test_bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
