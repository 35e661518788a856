/* procstat — what the benchmark reads from /proc: a process's resident
 * memory (VmRSS, VmHWM), CPU time of a process or of a process and its
 * children (a PostgreSQL postmaster and its backends), and the load average.
 * Linux only; every reader returns -1 (or a negative value) when the process
 * or file is gone. */
#ifndef TALLY_BENCH_PROCSTAT_H
#define TALLY_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* VmRSS and VmHWM of pid in KiB; -1 each when unreadable. */
void procstat_mem_kb(pid_t pid, int64_t *rss_kb, int64_t *hwm_kb);

/* utime + stime of pid in clock ticks; with_children adds the times of its
 * reaped children (cutime + cstime) and of its live direct children, so a
 * postmaster's figure covers every backend that ran. -1 when unreadable. */
int64_t procstat_cpu_ticks(pid_t pid, int with_children);

/* The parent of pid, or -1. */
pid_t procstat_ppid(pid_t pid);

/* Clock ticks per second (sysconf(_SC_CLK_TCK)). */
long procstat_ticks_per_second(void);

/* The 1-minute load average, or -1. */
double procstat_loadavg1(void);

/* Ticks every CPU of the machine spent idle (idle + iowait) and in total,
 * from /proc/stat; both -1 when unreadable. */
void procstat_machine_ticks(int64_t *idle, int64_t *total);

#endif
