#include "worker/http.h"

#include "common/mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEFAULT_MAX_HEADER  8192
#define DEFAULT_HEAD_MS     2000
#define DEFAULT_WRITE_MS    10000
#define DEFAULT_MAX_CONNS   256
#define DEFAULT_PER_PEER    32
#define DEFAULT_RESERVED    32
#define RESERVED_HEADER     1024 /* a probe's request head is a few lines */
#define MIN_BUF             1024
#define LINGER_MAX_MS       2000
#define LINGER_MAX_BYTES    (64 * 1024)
#define DEFAULT_CONTENT_TYP "text/plain; charset=utf-8"

/* A connection's life: read the request head, write the answer, then linger
 * (half-closed, discarding input until the peer's EOF) so that closing with
 * unread input does not turn into a reset that destroys the answer. */
typedef enum conn_state { CONN_READING, CONN_WRITING, CONN_LINGER } conn_state_t;

typedef struct conn {
    http_server_t *server;
    struct conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write_req;
    uv_shutdown_t shutdown_req;
    conn_state_t state;
    int closes_pending;
    bool closing;
    bool eof;
    bool reserved; /* on reserved capacity: liveness paths only */
    struct sockaddr_storage peer;
    uint64_t timeout_ms; /* for writing the answer */
    size_t max_header;
    size_t len;       /* request bytes in buf */
    size_t discarded; /* bytes read after the request head */
    char head[512];   /* the response's status line and headers */
    char *body;
    size_t body_len;
    size_t buf_size;
    char buf[];
} conn_t;

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    http_handler_cb cb;
    void *ctx;
    http_limits_t limits;
    conn_t *conns;  /* newest first */
    int n_conns;    /* every connection in conns, closing ones included */
    int n_full;     /* not closing, served in full */
    int n_reserved; /* not closing, on reserved capacity */
    int port;
    bool closing;
    bool listener_closed;
    void (*done_cb)(void *);
    void *done_arg;
};

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 400 ? "OK" : "Error";
    }
}

/* ---- teardown ----------------------------------------------------------- */

static void server_maybe_free(http_server_t *s)
{
    if (!s->closing || !s->listener_closed || s->conns != NULL)
        return;
    void (*done_cb)(void *) = s->done_cb;
    void *arg = s->done_arg;
    free(s);
    if (done_cb != NULL)
        done_cb(arg);
}

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->closes_pending > 0)
        return;
    http_server_t *s = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    s->n_conns--;
    free(c->body);
    free(c);
    server_maybe_free(s);
}

static void conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->reserved)
        c->server->n_reserved--;
    else
        c->server->n_full--;
    c->closes_pending = 2;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* ---- writing ------------------------------------------------------------ */

static void on_timeout(uv_timer_t *t);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    conn_t *c = req->data;
    if (!c->closing && (status < 0 || c->eof))
        conn_close(c);
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    if (c->closing)
        return;
    if (status < 0 || c->eof) {
        /* Nothing left unread (or the peer is gone): a plain close is graceful. */
        conn_close(c);
        return;
    }
    c->state = CONN_LINGER;
    uint64_t linger = c->timeout_ms < LINGER_MAX_MS ? c->timeout_ms : LINGER_MAX_MS;
    uv_timer_start(&c->timer, on_timeout, linger, 0);
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

/* Sends the answer; takes ownership of body (malloc'd or NULL). */
static void respond(conn_t *c, int status, const char *content_type, char *body, size_t len,
                    bool head_only, const char *extra_headers)
{
    c->state = CONN_WRITING;
    c->body = body;
    c->body_len = len;
    uv_timer_start(&c->timer, on_timeout, c->timeout_ms, 0);
    int n = snprintf(c->head, sizeof(c->head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
                     status, reason(status), content_type, len, extra_headers);
    if (n < 0 || (size_t)n >= sizeof(c->head)) {
        conn_close(c);
        return;
    }
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n), uv_buf_init(body, (unsigned)len)};
    unsigned nbufs = head_only || body == NULL || len == 0 ? 1 : 2;
    c->write_req.data = c;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, nbufs, on_write) != 0)
        conn_close(c);
}

/* An answer made by the server itself: a one-line plain-text body. */
static void respond_error(conn_t *c, int status, const char *extra_headers)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "%d %s\n", status, reason(status));
    respond(c, status, DEFAULT_CONTENT_TYP, mem_strdup(line), (size_t)n, false, extra_headers);
}

/* ---- parsing ------------------------------------------------------------ */

/* RFC 9110 token characters. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *p, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_tchar((unsigned char)p[i]))
            return false;
    }
    return true;
}

/* The end of the request head (just past the empty line), or 0 if it has not
 * arrived yet. Bare LF line ends are accepted as RFC 9112 allows. */
static size_t head_end(const char *b, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 < len && b[i + 1] == '\n')
            return i + 2;
        if (i + 2 < len && b[i + 1] == '\r' && b[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Garbage (a TLS hello, binary) is answered at once instead of waiting for a
 * head that will never come: the method must be a short token. */
static bool method_prefix_ok(const char *b, size_t len)
{
    for (size_t i = 0; i < len && i <= 16; i++) {
        if (b[i] == ' ')
            return i > 0;
        if (!is_tchar((unsigned char)b[i]))
            return false;
    }
    return len <= 16;
}

typedef struct request {
    const char *method;
    size_t method_len;
    const char *target;
    size_t target_len;
    int minor; /* HTTP/1.<minor> */
} request_t;

/* Parses "METHOD SP target SP HTTP/1.x". Returns 0, or the status to answer. */
static int parse_request_line(const char *p, size_t n, request_t *rq)
{
    const char *sp1 = memchr(p, ' ', n);
    if (sp1 == NULL)
        return 400;
    const char *rest = sp1 + 1;
    const char *sp2 = memchr(rest, ' ', n - (size_t)(rest - p));
    if (sp2 == NULL)
        return 400;
    const char *ver = sp2 + 1;
    size_t ver_len = n - (size_t)(ver - p);
    rq->method = p;
    rq->method_len = (size_t)(sp1 - p);
    rq->target = rest;
    rq->target_len = (size_t)(sp2 - rest);
    if (!is_token(rq->method, rq->method_len) || rq->target_len == 0)
        return 400;
    for (size_t i = 0; i < rq->target_len; i++) {
        unsigned char ch = (unsigned char)rq->target[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return 400;
    }
    if (ver_len != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9')
        return 400;
    if (ver[5] != '1' || (ver[7] != '0' && ver[7] != '1'))
        return 505;
    rq->minor = ver[7] - '0';
    return 0;
}

typedef struct headers_seen {
    int host;
    bool has_body;
} headers_seen_t;

static bool name_is(const char *name, size_t n, const char *want)
{
    return strlen(want) == n && strncasecmp(name, want, n) == 0;
}

/* Parses one "name: value" line. Returns 0, or the status to answer. */
static int parse_header(const char *p, size_t n, headers_seen_t *seen)
{
    if (n > 0 && (p[0] == ' ' || p[0] == '\t'))
        return 400; /* obsolete line folding */
    const char *colon = memchr(p, ':', n);
    if (colon == NULL || !is_token(p, (size_t)(colon - p)))
        return 400;
    size_t name_len = (size_t)(colon - p);
    const char *v = colon + 1;
    const char *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const char *q = v; q < end; q++) {
        unsigned char ch = (unsigned char)*q;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 400;
    }
    if (name_is(p, name_len, "Host")) {
        seen->host++;
    } else if (name_is(p, name_len, "Content-Length")) {
        if (v == end)
            return 400;
        for (const char *q = v; q < end; q++) {
            if (*q < '0' || *q > '9')
                return 400;
            if (*q != '0')
                seen->has_body = true;
        }
    } else if (name_is(p, name_len, "Transfer-Encoding")) {
        seen->has_body = true;
    }
    return 0;
}

static bool is_liveness(const char *path)
{
    static const char *const paths[] = {HTTP_LIVENESS_PATHS};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (strcmp(path, paths[i]) == 0)
            return true;
    }
    return false;
}

static void dispatch(conn_t *c, const request_t *rq)
{
    char method[8];
    bool head_only = rq->method_len == 4 && memcmp(rq->method, "HEAD", 4) == 0;
    memcpy(method, rq->method, rq->method_len);
    method[rq->method_len] = '\0';

    size_t plen = 0;
    while (plen < rq->target_len && rq->target[plen] != '?' && rq->target[plen] != '#')
        plen++;
    char *path = mem_strndup(rq->target, plen);
    if (c->reserved && !is_liveness(path)) {
        free(path);
        respond_error(c, 503, "Retry-After: 1\r\n");
        return;
    }

    http_response_t resp = {.status = 404, .content_type = DEFAULT_CONTENT_TYP};
    c->server->cb(c->server->ctx, method, path, &resp);
    free(path);
    if (resp.status < 100 || resp.status > 599) {
        free(resp.body);
        respond_error(c, 500, "");
        return;
    }
    if (resp.status == 404 && resp.body == NULL) {
        respond_error(c, 404, "");
        return;
    }
    respond(c, resp.status, resp.content_type != NULL ? resp.content_type : DEFAULT_CONTENT_TYP,
            resp.body, resp.body != NULL ? resp.len : 0, head_only, "");
}

/* Parses the complete head buf[0..end) and answers it. */
static void handle_request(conn_t *c, size_t end)
{
    const char *b = c->buf;
    const char *line_end = memchr(b, '\n', end);
    size_t n = (size_t)(line_end - b);
    if (n > 0 && b[n - 1] == '\r')
        n--;
    request_t rq;
    int status = parse_request_line(b, n, &rq);

    headers_seen_t seen = {0};
    const char *p = line_end + 1;
    while (status == 0 && p < b + end) {
        const char *e = memchr(p, '\n', (size_t)(b + end - p));
        size_t len = (size_t)(e - p);
        if (len > 0 && p[len - 1] == '\r')
            len--;
        if (len == 0)
            break; /* the empty line */
        status = parse_header(p, len, &seen);
        p = e + 1;
    }
    if (status == 0 && rq.minor == 1 && seen.host != 1)
        status = 400; /* RFC 9112 §3.2: exactly one Host in HTTP/1.1 */
    if (status == 0 && rq.target[0] != '/')
        status = 400;
    bool get_or_head = status == 0 && ((rq.method_len == 3 && memcmp(rq.method, "GET", 3) == 0) ||
                                       (rq.method_len == 4 && memcmp(rq.method, "HEAD", 4) == 0));
    if (status == 0 && !get_or_head) {
        respond_error(c, 405, "Allow: GET, HEAD\r\n");
        return;
    }
    if (status == 0 && seen.has_body)
        status = 413; /* these routes take no body, so none is read */
    if (status != 0) {
        respond_error(c, status, "");
        return;
    }
    dispatch(c, &rq);
}

/* ---- reading ------------------------------------------------------------ */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn_t *c = h->data;
    if (c->state == CONN_READING)
        *buf = uv_buf_init(c->buf + c->len, (unsigned)(c->max_header - c->len));
    else
        *buf = uv_buf_init(c->buf, (unsigned)c->buf_size); /* discarded */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn_t *c = stream->data;
    if (c->closing || nread == 0)
        return;
    if (nread < 0) {
        c->eof = true;
        uv_read_stop(stream);
        /* While writing, the answer may still reach a half-closed peer. */
        if (c->state != CONN_WRITING || nread != UV_EOF)
            conn_close(c);
        return;
    }
    if (c->state != CONN_READING) {
        c->discarded += (size_t)nread;
        if (c->discarded > LINGER_MAX_BYTES)
            conn_close(c);
        return;
    }
    c->len += (size_t)nread;
    if (!method_prefix_ok(c->buf, c->len)) {
        respond_error(c, 400, "");
        return;
    }
    size_t end = head_end(c->buf, c->len);
    if (end > 0) {
        handle_request(c, end);
    } else if (c->len == c->max_header) {
        bool line_done = memchr(c->buf, '\n', c->len) != NULL;
        respond_error(c, line_done ? 431 : 414, "");
    }
}

static void on_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->closing)
        return;
    if (c->state == CONN_READING)
        respond_error(c, 408, ""); /* then bounded again by the write timeout */
    else
        conn_close(c);
}

/* ---- accepting ---------------------------------------------------------- */

static bool same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return true; /* no address to tell them apart */
}

/* Connections from c's address served in full. */
static int full_from_peer(const http_server_t *s, const conn_t *c)
{
    int n = 0;
    for (const conn_t *o = s->conns; o != NULL; o = o->next)
        n += o != c && !o->closing && !o->reserved && same_address(&o->peer, &c->peer);
    return n;
}

/* Makes room on reserved capacity by closing the oldest reserved
 * connection still waiting for its request: one of c's own address if there
 * is one. Returns false when none waits. */
static bool evict_reserved(http_server_t *s, const conn_t *c)
{
    conn_t *oldest = NULL, *oldest_own = NULL;
    for (conn_t *o = s->conns; o != NULL; o = o->next) {
        if (o == c || o->closing || !o->reserved || o->state != CONN_READING)
            continue;
        oldest = o; /* the list runs newest first */
        if (same_address(&o->peer, &c->peer))
            oldest_own = o;
    }
    conn_t *victim = oldest_own != NULL ? oldest_own : oldest;
    if (victim != NULL)
        conn_close(victim);
    return victim != NULL;
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0 || s->closing)
        return;
    size_t buf_size = s->limits.max_header_bytes < MIN_BUF ? MIN_BUF : s->limits.max_header_bytes;
    conn_t *c = mem_calloc(1, sizeof(*c) + buf_size);
    c->server = s;
    c->max_header = s->limits.max_header_bytes;
    c->buf_size = buf_size;
    c->timeout_ms = s->limits.write_timeout_ms;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->next = s->conns;
    if (s->conns != NULL)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->n_full++; /* until decided otherwise below; conn_close counts it out */
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    int plen = sizeof(c->peer);
    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &plen);
    if (s->n_full > s->limits.max_connections || full_from_peer(s, c) >= s->limits.max_per_peer) {
        s->n_full--;
        s->n_reserved++;
        c->reserved = true;
        c->max_header = RESERVED_HEADER < c->max_header ? RESERVED_HEADER : c->max_header;
        if (s->n_reserved > s->limits.reserved && !evict_reserved(s, c)) {
            conn_close(c); /* every reserved slot is answering (within the write timeout) */
            return;
        }
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timeout, s->limits.header_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

/* ---- setup -------------------------------------------------------------- */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[64];
    const char *port_str;
    if (addr == NULL || *addr == '\0') {
        snprintf(err, errlen, "empty address; expected HOST:PORT");
        return -1;
    }
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof(host)) {
            snprintf(err, errlen, "invalid address \"%s\": expected [IPv6]:PORT", addr);
            return -1;
        }
        memcpy(host, addr + 1, (size_t)(close - addr - 1));
        host[close - addr - 1] = '\0';
        port_str = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (colon == NULL || (size_t)(colon - addr) >= sizeof(host) ||
            memchr(addr, ':', (size_t)(colon - addr)) != NULL) {
            snprintf(err, errlen,
                     "invalid address \"%s\": expected HOST:PORT (IPv6 as [ADDR]:PORT)", addr);
            return -1;
        }
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port_str = colon + 1;
    }
    char *end;
    errno = 0;
    long port = strtol(port_str, &end, 10);
    if (*port_str == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535) {
        snprintf(err, errlen, "invalid address \"%s\": port must be 0-65535", addr);
        return -1;
    }
    if (host[0] == '\0')
        strcpy(host, addr[0] == '[' ? "::" : "0.0.0.0");
    else if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    memset(ss, 0, sizeof(*ss));
    if (addr[0] == '[') {
        if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0) {
            snprintf(err, errlen, "invalid address \"%s\": not an IPv6 address", addr);
            return -1;
        }
    } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0) {
        snprintf(err, errlen, "invalid address \"%s\": host must be an IPv4 address or localhost",
                 addr);
        return -1;
    }
    return 0;
}

/* Binds and listens with plain system calls, so that every failure is
 * reported here before any libuv handle exists. */
static int listen_socket(const struct sockaddr_storage *ss, const char *addr, char *err,
                         size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t sl =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (const struct sockaddr *)ss, sl) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->listener_closed = true;
    server_maybe_free(s);
}

int http_server_start(uv_loop_t *loop, const char *addr, http_handler_cb cb, void *ctx,
                      http_server_t **out, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_addr(addr, &ss, err, errlen) != 0)
        return -1;
    int fd = listen_socket(&ss, addr, err, errlen);
    if (fd < 0)
        return -1;
    http_server_t *s = mem_calloc(1, sizeof(*s));
    s->loop = loop;
    s->cb = cb;
    s->ctx = ctx;
    s->limits = (http_limits_t){DEFAULT_MAX_HEADER, DEFAULT_HEAD_MS,  DEFAULT_WRITE_MS,
                                DEFAULT_MAX_CONNS,  DEFAULT_PER_PEER, DEFAULT_RESERVED};
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(rc));
        /* The handle exists now: it is freed by the loop's next iteration. */
        s->closing = true;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return -1;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
    *out = s;
    return 0;
}

void http_server_set_limits(http_server_t *s, const http_limits_t *limits)
{
    if (limits->max_header_bytes > 0)
        s->limits.max_header_bytes = limits->max_header_bytes;
    if (limits->header_timeout_ms > 0)
        s->limits.header_timeout_ms = limits->header_timeout_ms;
    if (limits->write_timeout_ms > 0)
        s->limits.write_timeout_ms = limits->write_timeout_ms;
    if (limits->max_connections > 0)
        s->limits.max_connections = limits->max_connections;
    if (limits->max_per_peer > 0)
        s->limits.max_per_peer = limits->max_per_peer;
    if (limits->reserved > 0)
        s->limits.reserved = limits->reserved;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

void http_server_close(http_server_t *s, void (*done_cb)(void *), void *arg)
{
    s->closing = true;
    s->done_cb = done_cb;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed); /* stops accepting at once */
    for (conn_t *c = s->conns; c != NULL; c = c->next)
        conn_close(c);
}
