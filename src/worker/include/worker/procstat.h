/* procstat — the worker process's own resource use, read from /proc/self
 * the way the Prometheus client libraries read it for their standard
 * process_* metrics (metrics.h):
 *
 *   process_start_time_seconds     /proc/stat btime + /proc/self/stat starttime / CLK_TCK
 *   process_cpu_seconds_total      (utime + stime) / CLK_TCK
 *   process_resident_memory_bytes  rss × page size
 *   process_virtual_memory_bytes   vsize
 *   process_open_fds               the entries of /proc/self/fd
 *   process_max_fds                RLIMIT_NOFILE's soft limit
 *
 * Linux only; procfs reads do not touch a disk, so the loop may call it. */
#ifndef TALLY_WORKER_PROCSTAT_H
#define TALLY_WORKER_PROCSTAT_H

#include <stdint.h>

typedef struct procstat {
    double start_time_seconds; /* Unix time */
    double cpu_seconds;
    int64_t resident_bytes;
    int64_t virtual_bytes;
    int64_t open_fds;
    int64_t max_fds;
} procstat_t;

/* Reads the running process's figures. Returns 0, or -1 when /proc cannot
 * be read (then *out is zero).
 * @thread any */
int procstat_read(procstat_t *out);

/* Fills out's start time, CPU and memory from the text of /proc/self/stat
 * (stat), the boot time in Unix seconds (/proc/stat's btime), the clock
 * ticks per second and the page size. Returns 0, or -1 when stat is not
 * such a text.
 * @thread any */
int procstat_parse_stat(const char *stat, int64_t boot_time, long ticks_per_s, long page_size,
                        procstat_t *out);

#endif
