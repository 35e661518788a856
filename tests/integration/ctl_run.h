/* ctl_run — runs `tallyctl` from the tallyctl integration tests
 * (it_ctl_*.c): standard input from a string, standard output and error
 * captured to files, a bounded wait, and the child killed with the test.
 *
 * Header-only on purpose: each it_*.c is its own executable. */
#ifndef TALLY_TESTS_CTL_RUN_H
#define TALLY_TESTS_CTL_RUN_H

#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct ctl_proc {
    pid_t pid;
    char out_path[512];
    char err_path[512];
} ctl_proc_t;

typedef struct ctl_out {
    int code;  /* exit code; -1 when killed or timed out */
    char *out; /* standard output, NUL-terminated */
    char *err; /* standard error */
} ctl_out_t;

static inline char *ctl_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    size_t got = fread(s, 1, (size_t)n, f);
    s[got] = '\0';
    fclose(f);
    return s;
}

/* Starts bin (ctl_start: TALLYCTL_BIN) with args (NULL-terminated, without argv[0]); stdin_text
 * (may be NULL: /dev/null) is its standard input; env holds extra
 * "KEY=VALUE" settings (NULL-terminated, may be NULL). */
static inline ctl_proc_t *ctl_start_prog(const char *bin, const char *stdin_text,
                                         const char *const *env, const char *const *args)
{
    static int seq;
    assert_non_null(bin);
    ctl_proc_t *p = calloc(1, sizeof(*p));
    const char *dir = th_tmpdir();
    int n = ++seq;
    char in_path[512];
    snprintf(in_path, sizeof(in_path), "%s/ctl-%d.in", dir, n);
    snprintf(p->out_path, sizeof(p->out_path), "%s/ctl-%d.out", dir, n);
    snprintf(p->err_path, sizeof(p->err_path), "%s/ctl-%d.err", dir, n);
    if (stdin_text != NULL) {
        FILE *f = fopen(in_path, "wb");
        assert_non_null(f);
        fwrite(stdin_text, 1, strlen(stdin_text), f);
        fclose(f);
    }
    const char *argv[64] = {bin};
    int argc = 1;
    for (; args[argc - 1] != NULL; argc++) {
        assert_true(argc < 63);
        argv[argc] = args[argc - 1];
    }
    argv[argc] = NULL;
    pid_t parent = getpid();
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int in = open(stdin_text != NULL ? in_path : "/dev/null", O_RDONLY);
        int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (in < 0 || out < 0 || err < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        for (int i = 0; env != NULL && env[i] != NULL; i++)
            putenv((char *)env[i]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return p;
}

static inline ctl_proc_t *ctl_start(const char *stdin_text, const char *const *env,
                                    const char *const *args)
{
    return ctl_start_prog(getenv("TALLYCTL_BIN"), stdin_text, env, args);
}

/* Waits up to timeout_ms for the command (killing it after that), fills out
 * (free with ctl_out_free) and frees p. */
static inline void ctl_finish(ctl_proc_t *p, int timeout_ms, ctl_out_t *out)
{
    int status = 0;
    bool done = false;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid) {
            done = true;
            break;
        }
        usleep(10000);
    }
    if (!done) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, &status, 0);
    }
    out->code = done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    out->out = ctl_slurp(p->out_path);
    out->err = ctl_slurp(p->err_path);
    free(p);
}

/* Whether the running command's standard error contains needle yet (checks
 * every 10 ms up to timeout_ms). */
static inline bool ctl_wait_stderr(const ctl_proc_t *p, const char *needle, int timeout_ms)
{
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        char *s = ctl_slurp(p->err_path);
        bool found = strstr(s, needle) != NULL;
        free(s);
        if (found)
            return true;
        usleep(10000);
    }
    return false;
}

static inline void ctl_run(const char *stdin_text, const char *const *env, const char *const *args,
                           ctl_out_t *out)
{
    ctl_finish(ctl_start(stdin_text, env, args), 60000, out);
}

static inline void ctl_out_free(ctl_out_t *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

/* Counts the lines of s. */
static inline int ctl_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

#endif
