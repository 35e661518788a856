/* procstat — see worker/procstat.h. */
#include "worker/procstat.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Fields of /proc/self/stat counted from 1 (proc(5)); the ones after the
 * command, which may hold spaces and parentheses, are read from after its
 * last ')'. */
#define F_STATE     3
#define F_UTIME     14
#define F_STIME     15
#define F_STARTTIME 22
#define F_VSIZE     23
#define F_RSS       24

int procstat_parse_stat(const char *stat, int64_t boot_time, long ticks_per_s, long page_size,
                        procstat_t *out)
{
    const char *p = stat != NULL ? strrchr(stat, ')') : NULL;
    if (p == NULL || p[1] != ' ' || ticks_per_s <= 0 || page_size <= 0)
        return -1;
    p += 2;
    uint64_t f[F_RSS + 1] = {0};
    for (int field = F_STATE; field <= F_RSS; field++) {
        char *end;
        if (field == F_STATE) {
            end = strchr(p, ' '); /* a letter */
        } else {
            f[field] = strtoull(p, &end, 10);
            if (end == p)
                return -1;
        }
        if (end == NULL || (*end != ' ' && !(field == F_RSS && (*end == '\0' || *end == '\n'))))
            return -1;
        p = end + (*end == ' ');
    }
    out->cpu_seconds = (double)(f[F_UTIME] + f[F_STIME]) / (double)ticks_per_s;
    out->start_time_seconds = (double)boot_time + (double)f[F_STARTTIME] / (double)ticks_per_s;
    out->virtual_bytes = (int64_t)f[F_VSIZE];
    out->resident_bytes = (int64_t)f[F_RSS] * page_size;
    return 0;
}

/* The whole of a small procfs file, NUL-terminated, into buf. */
static int read_small(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0 ? 0 : -1;
}

/* /proc/stat's "btime" line: the boot time in Unix seconds, or -1. */
static int64_t boot_time(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    char line[256];
    int64_t t = -1;
    while (t < 0 && fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "btime %" SCNd64, &t) != 1)
            t = -1;
    fclose(f);
    return t;
}

static int64_t open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int procstat_read(procstat_t *out)
{
    memset(out, 0, sizeof(*out));
    char stat[1024];
    int64_t boot = boot_time();
    struct rlimit rl;
    if (boot < 0 || read_small("/proc/self/stat", stat, sizeof(stat)) != 0 ||
        procstat_parse_stat(stat, boot, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), out) != 0 ||
        (out->open_fds = open_fds()) < 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        memset(out, 0, sizeof(*out));
        return -1;
    }
    out->max_fds =
        rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > INT64_MAX ? INT64_MAX : (int64_t)rl.rlim_cur;
    return 0;
}
