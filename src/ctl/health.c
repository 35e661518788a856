#include "ctl.h"

#include "common/mem.h"
#include "kafka_client.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_RESPONSE (1024 * 1024)

static const char usage[] =
    "Usage: tallyctl health [OPTIONS]\n"
    "\n"
    "Asks a worker whether it is ready (GET /readyz: database reachable, partitions\n"
    "assigned, not draining) and prints its answer.\n"
    "\n"
    "Options:\n"
    "  --addr HOST:PORT         the worker's HTTP address (default: $TALLY_HTTP_ADDR or\n"
    "                           127.0.0.1:8080; a wildcard host means this machine)\n"
    "  --live                   ask /livez instead (the process and its loop are alive)\n"
    "  --timeout DURATION       connect and answer bound (default 5s)\n"
    "  --json                   {\"addr\", \"path\", \"status\", \"ready\", \"body\", \"error\"}\n"
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 when the worker answered 200, 1 otherwise (not ready, unreachable),\n"
    "2 on a usage error.\n";

/* Splits "host:port" / "[v6]:port"; a wildcard or empty host becomes loopback. */
static int split_addr(const char *addr, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    strcpy(port, colon + 1);
    if (hl == 0 || strcmp(host, "0.0.0.0") == 0)
        strcpy(host, "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        strcpy(host, "::1");
    return 0;
}

static int64_t left_ms(int64_t deadline)
{
    int64_t l = deadline - kc_now_ms();
    return l > 0 ? l : 0;
}

/* Connects with a deadline; returns the socket or -1 with err. */
static int dial(const char *host, const char *port, int64_t deadline, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(host, port, &hints, &res);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "no address for %s", host);
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS) {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int soerr = ETIMEDOUT;
            socklen_t sl = sizeof(soerr);
            if (poll(&p, 1, (int)left_ms(deadline)) == 1)
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
            errno = soerr;
            rc = soerr == 0 ? 0 : -1;
        }
        if (rc != 0) {
            snprintf(err, errlen, "cannot connect: %s", strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* GETs path; returns the HTTP status (body malloc'd in *body) or -1 with err. */
static int http_get(const char *addr, const char *path, int64_t timeout_ms, char **body, char *err,
                    size_t errlen)
{
    char host[256], port[16];
    *body = NULL;
    if (split_addr(addr, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(err, errlen, "invalid address \"%s\": expected HOST:PORT", addr);
        return -1;
    }
    int64_t deadline = kc_now_ms() + timeout_ms;
    int fd = dial(host, port, deadline, err, errlen);
    if (fd < 0)
        return -1;
    char req[512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: tallyctl/%s\r\n"
                     "Accept: */*\r\nConnection: close\r\n\r\n",
                     path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port,
                     TALLY_VERSION);
    char *buf = mem_alloc(MAX_RESPONSE + 1);
    size_t len = 0;
    int status = -1;
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) { /* small: fits the socket buffer */
        snprintf(err, errlen, "cannot send: %s", strerror(errno));
        goto out;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int pr = poll(&p, 1, (int)left_ms(deadline));
        if (pr == 0) {
            snprintf(err, errlen, "no answer within %lld ms", (long long)timeout_ms);
            goto out;
        }
        ssize_t r = recv(fd, buf + len, MAX_RESPONSE - len, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read: %s", strerror(errno));
            goto out;
        }
        if (r == 0 || (len += (size_t)r) == MAX_RESPONSE)
            break;
    }
    buf[len] = '\0';
    int minor;
    if (sscanf(buf, "HTTP/1.%d %d", &minor, &status) != 2 || status < 100 || status > 599) {
        snprintf(err, errlen, "not an HTTP answer");
        status = -1;
        goto out;
    }
    const char *b = strstr(buf, "\r\n\r\n");
    *body = mem_strdup(b != NULL ? b + 4 : "");
out:
    free(buf);
    close(fd);
    return status;
}

int ctl_health(int argc, char **argv)
{
    enum { O_ADDR = 1, O_LIVE, O_TIMEOUT, O_JSON };
    static const struct option longopts[] = {
        {"addr", required_argument, NULL, O_ADDR},
        {"live", no_argument, NULL, O_LIVE},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *addr = getenv("TALLY_HTTP_ADDR");
    if (addr == NULL || *addr == '\0')
        addr = "127.0.0.1:8080";
    const char *path = "/readyz";
    int64_t timeout_ms = 5000;
    bool json = false;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_ADDR:
            addr = optarg;
            break;
        case O_LIVE:
            path = "/livez";
            break;
        case O_JSON:
            json = true;
            break;
        case O_TIMEOUT:
            if (kc_parse_duration_ms(optarg, &timeout_ms) != 0 || timeout_ms == 0)
                return ctl_usage_error("health", "--timeout: \"%s\" is not a duration", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return CTL_OK;
        default:
            return ctl_usage_error("health", "unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ctl_usage_error("health", "unexpected argument \"%s\"", argv[optind]);

    char err[256] = "";
    char *body = NULL;
    int status = http_get(addr, path, timeout_ms, &body, err, sizeof(err));
    bool ok = status == 200;
    if (json) {
        json_t *b = body != NULL ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
        if (b == NULL && body != NULL)
            b = json_string(body);
        json_t *o = json_pack("{s:s, s:s, s:o, s:b, s:o, s:o}", "addr", addr, "path", path,
                              "status", status > 0 ? json_integer(status) : json_null(), "ready",
                              ok, "body", b != NULL ? b : json_null(), "error",
                              status > 0 ? json_null() : json_string(err));
        kc_print_json(stdout, o);
        json_decref(o);
    } else if (status < 0) {
        printf("%s%s: unreachable: %s\n", addr, path, err);
    } else {
        size_t bl = strlen(body);
        while (bl > 0 && (body[bl - 1] == '\n' || body[bl - 1] == '\r'))
            body[--bl] = '\0';
        printf("%s%s: %s (HTTP %d)%s%s\n", addr, path,
               ok ? (path[1] == 'r' ? "ready" : "alive")
                  : (path[1] == 'r' ? "not ready" : "not alive"),
               status, bl > 0 ? "\n" : "", body);
    }
    free(body);
    return ok ? CTL_OK : CTL_FAILED;
}
