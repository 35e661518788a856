/* th_proc — child processes, the per-process directory, the exit hook. */
#include "harness.h"
#include "th_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAX_REGISTERED 64
#define MAX_LOGS       128
#define TAIL_LINES     40

typedef struct registered {
    void *obj;
    void (*stop)(void *obj);
} registered_t;

typedef struct logfile {
    char *label;
    char *path;
} logfile_t;

/* Process-wide on purpose (see th_internal.h). */
static struct {
    bool initialised;
    char *tmpdir;
    int seq;
    registered_t live[MAX_REGISTERED];
    int nlive;
    logfile_t logs[MAX_LOGS];
    int nlogs;
} g;

static void exit_hook(int status, void *arg);

static void init(void)
{
    if (g.initialised)
        return;
    g.initialised = true;
    /* A write to a dead broker's stdin must fail, not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    on_exit(exit_hook, NULL);
}

int64_t th_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void th_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void th_hold_point(const char *what)
{
    const char *v = getenv("TALLY_TEST_HOLD_MS");
    long ms = v != NULL ? strtol(v, NULL, 10) : 0;
    if (ms <= 0)
        return;
    fprintf(stderr, "harness: %s is up; holding %ld ms (TALLY_TEST_HOLD_MS)\n", what, ms);
    th_sleep_ms((int)(ms < 600000 ? ms : 600000));
}

const char *th_env_required(const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || *v == '\0')
        fail_msg("harness: environment variable %s is not set (run the test through ctest)", name);
    return v;
}

char *th_strdupf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        fail_msg("harness: out of memory");
    return s;
}

static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

char **th_env_with(const char *const *extra)
{
    size_t n = 0, nextra = 0;
    while (environ[n] != NULL)
        n++;
    while (extra != NULL && extra[nextra] != NULL)
        nextra++;
    char **env = calloc(n + nextra + 1, sizeof(*env));
    if (env == NULL)
        fail_msg("harness: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nextra && !replaced; j++)
            replaced = key_len(environ[i]) == key_len(extra[j]) &&
                       strncmp(environ[i], extra[j], key_len(extra[j])) == 0;
        if (!replaced)
            env[k++] = strdup(environ[i]);
    }
    for (size_t j = 0; j < nextra; j++)
        env[k++] = strdup(extra[j]);
    env[k] = NULL;
    for (size_t i = 0; i < k; i++)
        if (env[i] == NULL)
            fail_msg("harness: out of memory");
    return env;
}

void th_env_free(char **env)
{
    if (env == NULL)
        return;
    for (size_t i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

bool th_postgres_ids(uid_t *uid, gid_t *gid)
{
    if (geteuid() != 0)
        return false;
    struct passwd *pw = getpwnam("postgres");
    if (pw == NULL)
        fail_msg("harness: running as root but there is no 'postgres' OS user "
                 "(install postgresql-15)");
    *uid = pw->pw_uid;
    *gid = pw->pw_gid;
    return true;
}

/* Everything between fork and exec is async-signal-safe: the test process
 * may have librdkafka threads. */
static void child_exec(const th_spawn_t *s, pid_t parent, bool drop, uid_t uid, gid_t gid)
{
    if (drop && (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0))
        _exit(126);
    /* After setuid: a credential change clears the death signal. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(125);
    int devnull = open("/dev/null", O_RDWR);
    int fds[3] = {s->stdin_fd, s->stdout_fd, s->stderr_fd};
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i] >= 0 ? fds[i] : devnull, i) < 0)
            _exit(124);
    close_range(3, ~0U, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, NULL);
    if (s->cwd != NULL && chdir(s->cwd) != 0)
        _exit(123);
    execve(s->path, s->argv, s->envp != NULL ? s->envp : environ);
    _exit(127);
}

pid_t th_spawn(const th_spawn_t *s, char *err, size_t errsize)
{
    init();
    uid_t uid = 0;
    gid_t gid = 0;
    bool drop = s->as_postgres && th_postgres_ids(&uid, &gid);
    if (access(s->path, X_OK) != 0) {
        snprintf(err, errsize, "%s is not executable: %s", s->path, strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errsize, "fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0)
        child_exec(s, parent, drop, uid, gid);
    return pid;
}

int th_run(const th_spawn_t *s, int timeout_ms)
{
    char err[256];
    pid_t pid = th_spawn(s, err, sizeof(err));
    if (pid < 0)
        fail_msg("harness: %s", err);
    int status;
    if (!th_proc_wait(pid, timeout_ms, &status)) {
        th_proc_stop(pid, SIGKILL, 1000);
        fail_msg("harness: %s did not finish within %d ms", s->path, timeout_ms);
    }
    return status;
}

bool th_postgres_can_use(const char *dir)
{
    uid_t uid;
    gid_t gid;
    if (!th_postgres_ids(&uid, &gid))
        return true;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        if (setgroups(1, &gid) != 0 || setgid(gid) != 0 || setuid(uid) != 0)
            _exit(2);
        _exit(access(dir, X_OK) == 0 ? 0 : 1);
    }
    int status;
    if (!th_proc_wait(pid, 10000, &status)) {
        th_proc_stop(pid, SIGKILL, 1000);
        return false;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

bool th_proc_wait(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = th_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR) {
            *status = -1; /* not our child any more: count it as gone */
            return true;
        }
        if (th_now_ms() >= deadline)
            return false;
        th_sleep_ms(5);
    }
}

int th_proc_stop(pid_t pid, int sig, int timeout_ms)
{
    int status = -1;
    if (pid <= 0)
        return -1;
    kill(pid, sig);
    if (th_proc_wait(pid, timeout_ms, &status))
        return status;
    fprintf(stderr, "harness: pid %d ignored signal %d for %d ms; killing it\n", (int)pid, sig,
            timeout_ms);
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

const char *th_status_str(int status, char *buf, size_t size)
{
    if (status == -1)
        snprintf(buf, size, "unknown status");
    else if (WIFEXITED(status))
        snprintf(buf, size, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, size, "signal %d", WTERMSIG(status));
    else
        snprintf(buf, size, "status 0x%x", (unsigned)status);
    return buf;
}

int th_mkdir_p(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
        return -1;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

const char *th_tmpdir(void)
{
    init();
    if (g.tmpdir != NULL)
        return g.tmpdir;
    const char *base = getenv("TALLY_TEST_TMPDIR");
    if (base == NULL || *base == '\0')
        base = getenv("TMPDIR");
    if (base == NULL || *base == '\0')
        base = "/tmp";
    if (th_mkdir_p(base) != 0)
        fail_msg("harness: cannot create %s: %s", base, strerror(errno));
    char *dir = th_strdupf("%s/it-%d-XXXXXX", base, (int)getpid());
    if (mkdtemp(dir) == NULL)
        fail_msg("harness: mkdtemp %s: %s", dir, strerror(errno));
    /* Traversable, so the postgres user can keep its data directories here. */
    chmod(dir, 0755);
    g.tmpdir = dir;
    return dir;
}

int th_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        fail_msg("harness: socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
        int e = errno;
        close(fd);
        fail_msg("harness: bind to a free port: %s", strerror(e));
    }
    close(fd);
    return ntohs(sa.sin_port);
}

int th_open_log(const char *name, char **path)
{
    int seq = ++g.seq;
    char *p = th_strdupf("%s/%s-%d.log", th_tmpdir(), name, seq);
    int fd = open(p, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        fail_msg("harness: open %s: %s", p, strerror(errno));
    if (g.nlogs < MAX_LOGS) {
        g.logs[g.nlogs].label = th_strdupf("%s #%d", name, seq);
        g.logs[g.nlogs].path = strdup(p);
        g.nlogs++;
    }
    *path = p;
    return fd;
}

void th_print_tail(const char *label, const char *path, int lines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    /* Find where the last `lines` lines start by scanning backwards. */
    fseek(f, 0, SEEK_END);
    long end = ftell(f), pos = end;
    int seen = 0;
    while (pos > 0 && seen <= lines) {
        pos--;
        fseek(f, pos, SEEK_SET);
        if (fgetc(f) == '\n' && pos != end - 1)
            seen++;
    }
    if (seen > lines)
        pos++;
    fseek(f, pos, SEEK_SET);
    fprintf(stderr, "---- %s (%s), last %d lines ----\n", label, path, lines);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, stderr);
    fprintf(stderr, "---- end of %s ----\n", label);
    fclose(f);
}

void th_register(void *obj, void (*stop)(void *obj))
{
    init();
    if (g.nlive == MAX_REGISTERED)
        fail_msg("harness: more than %d services alive at once", MAX_REGISTERED);
    g.live[g.nlive++] = (registered_t){.obj = obj, .stop = stop};
}

void th_unregister(void *obj)
{
    for (int i = 0; i < g.nlive; i++) {
        if (g.live[i].obj == obj) {
            g.live[i] = g.live[--g.nlive];
            return;
        }
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

int th_rmtree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
    return lstat(path, &st) == 0 ? -1 : 0;
}

/* Runs at exit, after main returned cmocka's failure count: stops whatever a
 * failed test left running, prints the services' logs if anything failed, and
 * removes the directory otherwise. */
static void exit_hook(int status, void *arg)
{
    (void)arg;
    while (g.nlive > 0) {
        registered_t r = g.live[g.nlive - 1];
        r.stop(r.obj); /* unregisters itself */
        if (g.nlive > 0 && g.live[g.nlive - 1].obj == r.obj)
            g.nlive--;
    }
    if (status != 0) {
        for (int i = 0; i < g.nlogs; i++)
            th_print_tail(g.logs[i].label, g.logs[i].path, TAIL_LINES);
        if (g.tmpdir != NULL)
            fprintf(stderr, "harness: exit status %d; logs kept in %s\n", status, g.tmpdir);
    } else if (g.tmpdir != NULL) {
        th_rmtree(g.tmpdir);
    }
    for (int i = 0; i < g.nlogs; i++) {
        free(g.logs[i].label);
        free(g.logs[i].path);
    }
    g.nlogs = 0;
    free(g.tmpdir);
    g.tmpdir = NULL;
}
