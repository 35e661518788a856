/* http — a small HTTP/1.1 server on the libuv loop for /livez, /readyz and
 * /metrics.
 *
 * One request per connection, answered with "Connection: close". Only GET and
 * HEAD reach the handler; everything else is answered by the server itself
 * and never disturbs the loop:
 *
 *   400  malformed request line or header, HTTP/1.1 without Host
 *   405  a method other than GET/HEAD (with "Allow: GET, HEAD")
 *   408  the request head did not arrive within the header timeout (slowloris)
 *   413  a request with a body (Content-Length > 0 or Transfer-Encoding)
 *   414  a request line longer than the header limit
 *   431  request headers longer than the header limit
 *   503  a path other than the liveness ones on reserved capacity (below)
 *   505  an HTTP version other than 1.0/1.1
 *
 * Liveness always answers (CONTRACT.md §7): up to max_connections
 * connections are served in full, at most max_per_peer of them from one
 * address; a connection beyond either limit gets one of `reserved` further
 * slots, on which only /livez and /healthz are answered (anything else 503).
 * When those are taken too, the oldest one still waiting for its request is
 * closed to make room, one of the newcomer's own address first, so a flood
 * of idle connections pushes out its own, and a probe that sends its request
 * at once is served.
 *
 * The handler runs on the loop thread and must not block. The path it gets
 * has the query string removed. The request head must arrive within the
 * header timeout and the answer be taken within the write timeout, so idle
 * or slow clients cannot hold connections for long. */
#ifndef TALLY_WORKER_HTTP_H
#define TALLY_WORKER_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct http_server http_server_t;

typedef struct http_response {
    int status;               /* preset to 404 */
    const char *content_type; /* static string; preset to "text/plain; charset=utf-8" */
    char *body;               /* malloc'd, freed by the server; NULL for none */
    size_t len;
} http_response_t;

/* The paths answered on reserved capacity. */
#define HTTP_LIVENESS_PATHS "/livez", "/healthz"

/* Called for each well-formed GET or HEAD (method is "GET" or "HEAD"; for
 * HEAD the server sends the headers only). Leaving resp untouched answers
 * 404. */
typedef void (*http_handler_cb)(void *ctx, const char *method, const char *path,
                                http_response_t *resp);

/* Limits; zero fields keep the defaults. */
typedef struct http_limits {
    size_t max_header_bytes;    /* request line + headers; default 8192 */
    uint64_t header_timeout_ms; /* for the request head, else 408; default 2000 */
    uint64_t write_timeout_ms;  /* for the answer to be taken; default 10000 */
    int max_connections;        /* served in full at once; default 256 */
    int max_per_peer;           /* of those, from one address; default 32 */
    int reserved;               /* liveness-only slots beyond them; default 32 */
} http_limits_t;

/* Binds addr ("127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080", ":8080" for
 * every IPv4 interface, port 0 for an ephemeral one) and listens on loop.
 * Returns 0 and *out, or -1 with a one-line reason in err (which names addr
 * but no setting).
 * @thread loop */
int http_server_start(uv_loop_t *loop, const char *addr, http_handler_cb cb, void *ctx,
                      http_server_t **out, char *err, size_t errlen);

/* Replaces the limits for connections accepted from now on.
 * @thread loop */
void http_server_set_limits(http_server_t *s, const http_limits_t *limits);

/* The bound TCP port (useful with port 0).
 * @thread loop */
int http_server_port(const http_server_t *s);

/* Stops listening, closes every open connection, and frees the server once
 * every handle has closed; then calls done_cb(arg) (done_cb may be NULL).
 * After that, uv_loop_close succeeds as far as this server is concerned.
 * @thread loop */
void http_server_close(http_server_t *s, void (*done_cb)(void *), void *arg);

#endif
