/* th_broker — `tallyctl broker` as a child process, driven through its
 * control protocol on stdin/stdout (one reply line per command line). */
#include "harness.h"
#include "th_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define START_TIMEOUT_MS 30000
#define REPLY_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS  15000
#define MAX_ARGS         32

struct th_broker {
    pid_t pid;
    int to_broker;   /* its stdin */
    int from_broker; /* its stdout */
    char rbuf[4096];
    size_t rlen;
    char *bootstrap;
    char *logpath;
};

/* Reads one line (without the newline) into out; false on EOF or timeout. */
static bool read_line(th_broker_t *b, char *out, size_t size, int timeout_ms)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        char *nl = memchr(b->rbuf, '\n', b->rlen);
        if (nl != NULL) {
            size_t n = (size_t)(nl - b->rbuf);
            snprintf(out, size, "%.*s", (int)n, b->rbuf);
            memmove(b->rbuf, nl + 1, b->rlen - n - 1);
            b->rlen -= n + 1;
            return true;
        }
        if (b->rlen == sizeof(b->rbuf))
            b->rlen = 0; /* a line longer than any reply: drop it */
        int left = (int)(deadline - th_now_ms());
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = b->from_broker, .events = POLLIN};
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t n = read(b->from_broker, b->rbuf + b->rlen, sizeof(b->rbuf) - b->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        b->rlen += (size_t)n;
    }
}

static void stop_cb(void *obj);

/* Stops the process; returns its waitpid status. Never fails the test. */
static int shutdown_broker(th_broker_t *b)
{
    th_unregister(b);
    int status = th_proc_stop(b->pid, SIGTERM, STOP_TIMEOUT_MS);
    close(b->to_broker);
    close(b->from_broker);
    free(b->bootstrap);
    free(b->logpath);
    free(b);
    return status;
}

static void stop_cb(void *obj)
{
    shutdown_broker(obj);
}

th_broker_t *th_broker_start_args(int partitions, const char *const *args)
{
    const char *ctl = th_env_required("TALLYCTL_BIN");
    char parts[16];
    snprintf(parts, sizeof(parts), "%d", partitions);
    char *argv[MAX_ARGS + 5] = {(char *)ctl, "broker", "--partitions", parts};
    int argc = 4;
    for (int i = 0; args != NULL && args[i] != NULL; i++) {
        if (i == MAX_ARGS)
            fail_msg("harness: more than %d broker arguments", MAX_ARGS);
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;

    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
        fail_msg("harness: pipe: %s", strerror(errno));
    th_broker_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        fail_msg("harness: out of memory");
    int logfd = th_open_log("broker", &b->logpath);
    char err[256];
    th_spawn_t s = {
        .path = ctl, .argv = argv, .stdin_fd = in[0], .stdout_fd = out[1], .stderr_fd = logfd};
    b->pid = th_spawn(&s, err, sizeof(err));
    close(in[0]);
    close(out[1]);
    close(logfd);
    b->to_broker = in[1];
    b->from_broker = out[0];
    if (b->pid < 0) {
        close(b->to_broker);
        close(b->from_broker);
        free(b->logpath);
        free(b);
        fail_msg("harness: %s", err);
    }
    th_register(b, stop_cb);

    char line[1024];
    if (!read_line(b, line, sizeof(line), START_TIMEOUT_MS) || strchr(line, ':') == NULL) {
        th_print_tail("tallyctl broker log", b->logpath, 40);
        shutdown_broker(b);
        fail_msg("harness: tallyctl broker did not print its bootstrap servers");
    }
    b->bootstrap = strdup(line);
    th_hold_point("tallyctl broker");
    return b;
}

th_broker_t *th_broker_start(int partitions)
{
    return th_broker_start_args(partitions, NULL);
}

void th_broker_stop(th_broker_t *b)
{
    if (b == NULL)
        return;
    int status = shutdown_broker(b);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char buf[64];
        fail_msg("harness: tallyctl broker did not exit cleanly on SIGTERM: %s",
                 th_status_str(status, buf, sizeof(buf)));
    }
}

const char *th_broker_bootstrap(const th_broker_t *b)
{
    return b->bootstrap;
}

pid_t th_broker_pid(const th_broker_t *b)
{
    return b->pid;
}

__attribute__((format(printf, 4, 0))) static bool vcommand(th_broker_t *b, char *reply, size_t size,
                                                       const char *fmt, va_list ap)
{
    char line[1024];
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    if (n < 0 || n >= (int)sizeof(line) - 1)
        fail_msg("harness: broker command too long");
    line[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = write(b->to_broker, line + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            fail_msg("harness: writing to tallyctl broker: %s", strerror(errno));
        off += (int)w;
    }
    char answer[1024];
    if (!read_line(b, answer, sizeof(answer), REPLY_TIMEOUT_MS)) {
        th_print_tail("tallyctl broker log", b->logpath, 40);
        fail_msg("harness: tallyctl broker did not answer '%.*s'", n - 1, line);
    }
    if (reply != NULL)
        snprintf(reply, size, "%s", answer);
    return strcmp(answer, "ok") == 0;
}

bool th_broker_try_command(th_broker_t *b, char *reply, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    bool ok = vcommand(b, reply, size, fmt, ap);
    va_end(ap);
    return ok;
}

void th_broker_command(th_broker_t *b, const char *fmt, ...)
{
    char reply[1024];
    va_list ap;
    va_start(ap, fmt);
    bool ok = vcommand(b, reply, sizeof(reply), fmt, ap);
    va_end(ap);
    if (!ok)
        fail_msg("harness: broker control command failed: %s", reply);
}
