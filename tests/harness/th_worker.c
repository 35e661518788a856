/* th_worker — tally-worker as a child process, its log, and a tiny blocking
 * HTTP client for its health endpoints. */
#include "harness.h"
#include "th_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define STOP_TIMEOUT_MS   30000
#define HTTP_TIMEOUT_MS   1000
#define POLL_MS           20
#define HTTP_MAX_RESPONSE (16 * 1024 * 1024)

struct th_worker {
    pid_t pid;
    int http_port;
    char *logpath;
    bool exited;
    int status;
};

/* librdkafka properties for tests (the broker quirks in HACKING.md), passed
 * as -X unless the test sets the property through its KAFKA_* variable. */
static const char *const test_props[][2] = {
    {"fetch.wait.max.ms", "10"},
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "1500"},
};

/* "fetch.wait.max.ms" -> "KAFKA_FETCH_WAIT_MAX_MS=" */
static bool env_sets_prop(const char *const *env, const char *prop)
{
    char key[128] = "KAFKA_";
    size_t k = strlen(key);
    for (const char *c = prop; *c != '\0' && k < sizeof(key) - 2; c++)
        key[k++] = *c == '.' ? '_' : (char)((*c >= 'a' && *c <= 'z') ? *c - 'a' + 'A' : *c);
    key[k++] = '=';
    key[k] = '\0';
    for (int i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], key, k) == 0)
            return true;
    return false;
}

static bool has_key(const char *const *env, const char *kv)
{
    size_t n = strcspn(kv, "=") + 1;
    for (int i = 0; env != NULL && env[i] != NULL; i++)
        if (strncmp(env[i], kv, n) == 0)
            return true;
    return false;
}

static void reap(th_worker_t *w, int timeout_ms)
{
    if (!w->exited && th_proc_wait(w->pid, timeout_ms, &w->status))
        w->exited = true;
}

static void free_worker(th_worker_t *w)
{
    th_unregister(w);
    free(w->logpath);
    free(w);
}

static void stop_cb(void *obj)
{
    th_worker_t *w = obj;
    if (!w->exited)
        th_proc_stop(w->pid, SIGTERM, STOP_TIMEOUT_MS);
    free_worker(w);
}

th_worker_t *th_worker_start(const th_pg_t *pg, const th_broker_t *b, const char *const *env)
{
    const char *bin = th_env_required("TALLY_WORKER_BIN");
    th_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        fail_msg("harness: out of memory");
    w->http_port = th_free_port();

    char url[256];
    th_pg_url(pg, "tally_worker", url, sizeof(url));
    char *defaults[] = {
        th_strdupf("DATABASE_URL=%s", url),
        th_strdupf("KAFKA_BOOTSTRAP_SERVERS=%s", th_broker_bootstrap(b)),
        th_strdupf("TALLY_HTTP_ADDR=127.0.0.1:%d", w->http_port),
    };
    const size_t ndefaults = sizeof(defaults) / sizeof(defaults[0]);
    size_t nenv = 0;
    while (env != NULL && env[nenv] != NULL)
        nenv++;
    /* The test's entries win over the defaults. */
    const char **extra = calloc(ndefaults + nenv + 1, sizeof(*extra));
    if (extra == NULL)
        fail_msg("harness: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < ndefaults; i++)
        if (!has_key(env, defaults[i]))
            extra[k++] = defaults[i];
    for (size_t i = 0; i < nenv; i++)
        extra[k++] = env[i];
    char **envp = th_env_with(extra);

    char *props[3];
    char *argv[2 + 2 * 3 + 1] = {(char *)bin};
    int argc = 1;
    for (size_t i = 0; i < 3; i++) {
        props[i] = NULL;
        if (env_sets_prop(env, test_props[i][0]))
            continue;
        props[i] = th_strdupf("%s=%s", test_props[i][0], test_props[i][1]);
        argv[argc++] = "-X";
        argv[argc++] = props[i];
    }
    argv[argc] = NULL;

    int logfd = th_open_log("worker", &w->logpath);
    char err[256];
    th_spawn_t s = {.path = bin,
                    .argv = argv,
                    .envp = envp,
                    .stdin_fd = -1,
                    .stdout_fd = logfd,
                    .stderr_fd = logfd};
    w->pid = th_spawn(&s, err, sizeof(err));
    close(logfd);
    th_env_free(envp);
    free(extra);
    for (size_t i = 0; i < ndefaults; i++)
        free(defaults[i]);
    for (size_t i = 0; i < 3; i++)
        free(props[i]);
    if (w->pid < 0) {
        free(w->logpath);
        free(w);
        fail_msg("harness: %s", err);
    }
    th_register(w, stop_cb);
    return w;
}

pid_t th_worker_pid(const th_worker_t *w)
{
    return w->pid;
}

int th_worker_http_port(const th_worker_t *w)
{
    return w->http_port;
}

const char *th_worker_log_path(const th_worker_t *w)
{
    return w->logpath;
}

static bool log_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    /* Read in overlapping windows so a needle across two reads is found. */
    size_t nlen = strlen(needle);
    char buf[65536 + 1];
    size_t keep = 0;
    bool found = false;
    for (;;) {
        size_t n = fread(buf + keep, 1, sizeof(buf) - 1 - keep, f);
        if (n == 0)
            break;
        size_t len = keep + n;
        buf[len] = '\0';
        if (memmem(buf, len, needle, nlen) != NULL) {
            found = true;
            break;
        }
        keep = nlen < len ? nlen : len;
        memmove(buf, buf + len - keep, keep);
    }
    fclose(f);
    return found;
}

bool th_worker_wait_log(th_worker_t *w, const char *needle, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        if (log_contains(w->logpath, needle))
            return true;
        if (th_now_ms() >= deadline)
            return false;
        reap(w, 0);
        if (w->exited) /* nothing more will be written */
            return log_contains(w->logpath, needle);
        th_sleep_ms(POLL_MS);
    }
}

/* GET path on 127.0.0.1:port. Returns the status code, or -1 when there is
 * no complete answer within timeout_ms; the body (malloc'd, NUL-terminated)
 * goes to *body when body is not NULL. Reads until the server closes. */
static int http_get(int port, const char *path, char **body, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int status = -1;
    char req[512];
    int reqlen =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", path, port);
    size_t sent = 0, got = 0, cap = 4096;
    char *resp = malloc(cap);
    bool closed = false;
    if (resp == NULL || reqlen >= (int)sizeof(req))
        goto out;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS)
        goto out;
    while (!closed) {
        int left = (int)(deadline - th_now_ms());
        struct pollfd p = {.fd = fd, .events = sent < (size_t)reqlen ? POLLOUT : POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            goto out;
        if (sent < (size_t)reqlen) {
            int soerr = 0;
            socklen_t len = sizeof(soerr);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0)
                goto out;
            ssize_t n = send(fd, req + sent, (size_t)reqlen - sent, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN)
                goto out;
            sent += n > 0 ? (size_t)n : 0;
            continue;
        }
        if (got + 1 == cap) {
            if (cap >= HTTP_MAX_RESPONSE)
                goto out;
            char *bigger = realloc(resp, cap * 2);
            if (bigger == NULL)
                goto out;
            resp = bigger;
            cap *= 2;
        }
        ssize_t n = recv(fd, resp + got, cap - 1 - got, 0);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n < 0)
            goto out;
        closed = n == 0;
        got += (size_t)n;
    }
    resp[got] = '\0';
    int code;
    char *start = strstr(resp, "\r\n\r\n");
    if (sscanf(resp, "HTTP/1.%*d %d", &code) != 1 || start == NULL)
        goto out;
    status = code;
    if (body != NULL)
        *body = strdup(start + 4);
out:
    free(resp);
    close(fd);
    return status;
}

int th_worker_http_get(th_worker_t *w, const char *path, char **body, int timeout_ms)
{
    if (body != NULL)
        *body = NULL;
    return http_get(w->http_port, path, body, timeout_ms);
}

bool th_worker_wait_ready(th_worker_t *w, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        reap(w, 0);
        if (w->exited)
            return false;
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            return false;
        if (http_get(w->http_port, "/readyz", NULL,
                     left < HTTP_TIMEOUT_MS ? left : HTTP_TIMEOUT_MS) == 200)
            return true;
        th_sleep_ms(POLL_MS);
    }
}

int th_worker_wait_partitions(th_worker_t *w, int min, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        reap(w, 0);
        if (w->exited)
            return -1;
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            return -1;
        char *body = NULL;
        int n = -1;
        if (http_get(w->http_port, "/readyz", &body,
                     left < HTTP_TIMEOUT_MS ? left : HTTP_TIMEOUT_MS) == 200 &&
            body != NULL) {
            json_t *j = json_loads(body, 0, NULL);
            json_t *v = json_object_get(j, "partitions");
            n = json_is_integer(v) ? (int)json_integer_value(v) : -1;
            json_decref(j);
        }
        free(body);
        if (n >= min)
            return n;
        th_sleep_ms(POLL_MS);
    }
}

void th_worker_signal(th_worker_t *w, int sig)
{
    reap(w, 0);
    if (w->exited)
        fail_msg("harness: cannot signal tally-worker %d: it has exited", (int)w->pid);
    kill(w->pid, sig);
}

int th_worker_wait(th_worker_t *w, int timeout_ms)
{
    reap(w, timeout_ms);
    return w->exited ? w->status : -1;
}

void th_worker_stop(th_worker_t *w)
{
    if (w == NULL)
        return;
    stop_cb(w);
}
