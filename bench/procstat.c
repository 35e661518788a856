/* procstat — see procstat.h. */
#include "procstat.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void procstat_mem_kb(pid_t pid, int64_t *rss_kb, int64_t *hwm_kb)
{
    *rss_kb = *hwm_kb = -1;
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kb = strtoll(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm_kb = strtoll(line + 6, NULL, 10);
    }
    fclose(f);
}

/* The fields of /proc/<pid>/stat after the command name: field 4 (ppid) is
 * fields[0], utime (14) fields[10], stime fields[11], cutime fields[12],
 * cstime fields[13]. Returns the number read, 0 when unreadable. */
static int read_stat(pid_t pid, long long fields[14])
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL || p[1] == '\0')
        return 0;
    p += 2;
    while (*p != '\0' && *p != ' ') /* field 3, the state */
        p++;
    int k = 0;
    while (k < 14 && *p != '\0') {
        char *end;
        fields[k] = strtoll(p, &end, 10);
        if (end == p)
            break;
        k++;
        p = end;
    }
    return k;
}

pid_t procstat_ppid(pid_t pid)
{
    long long f[14];
    return read_stat(pid, f) >= 1 ? (pid_t)f[0] : -1;
}

int64_t procstat_cpu_ticks(pid_t pid, int with_children)
{
    long long f[14];
    if (read_stat(pid, f) < 14)
        return -1;
    int64_t total = f[10] + f[11];
    if (!with_children)
        return total;
    total += f[12] + f[13];
    DIR *d = opendir("/proc");
    if (d == NULL)
        return total;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t child = (pid_t)atoi(e->d_name);
        long long c[14];
        if (read_stat(child, c) >= 12 && c[0] == pid)
            total += c[10] + c[11];
    }
    closedir(d);
    return total;
}

long procstat_ticks_per_second(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? t : 100;
}

double procstat_loadavg1(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return -1;
    double l = -1;
    if (fscanf(f, "%lf", &l) != 1)
        l = -1;
    fclose(f);
    return l;
}

void procstat_machine_ticks(int64_t *idle, int64_t *total)
{
    *idle = *total = -1;
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return;
    long long v[10] = {0};
    int n = fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld %lld %lld", &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 5)
        return;
    /* guest and guest_nice (8, 9) are already counted in user and nice. */
    int64_t t = 0;
    for (int i = 0; i < n && i < 8; i++)
        t += v[i];
    *idle = v[3] + v[4];
    *total = t;
}
