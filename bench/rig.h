/* rig — the embedded stack the benchmark measures: one private PostgreSQL
 * for the whole run (the test harness's, tuned like the tests'), and per row
 * a fresh embedded Kafka broker and 1…N tally-worker replicas in one
 * consumer group; plus CPU accounting of each part.
 *
 * Harness style: a failure to start anything fails the program (fail_msg). */
#ifndef TALLY_BENCH_RIG_H
#define TALLY_BENCH_RIG_H

#include "harness.h"

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define RIG_MAX_WORKERS 8

typedef struct rig {
    th_pg_t *pg;
    pid_t pg_pid;              /* the postmaster */
    bool sql_profile;          /* pg_stat_statements loaded */
    th_pgbouncer_t *pgbouncer; /* between the workers and PostgreSQL, when started */
    th_broker_t *broker;
    int partitions;
    int brokers;
    th_worker_t *workers[RIG_MAX_WORKERS];
    int nworkers;
    int64_t worker_hwm_kb[RIG_MAX_WORKERS]; /* VmHWM read just before each stop */
    const char *const *worker_env;          /* extra KEY=VALUE for every worker */
    const char *const *row_env;             /* ...and for this row's workers (may be NULL) */
} rig_t;

/* Starts PostgreSQL (durable: with fsync, synchronous_commit and
 * full_page_writes on; else tuned like the tests), applies the migrations
 * and grants the worker's role; prints the server's settings on out. With
 * sql_profile the server loads pg_stat_statements (a restart) for
 * rig_sql_profile. */
void rig_pg_start(rig_t *s, FILE *out, bool durable, bool sql_profile);

/* With sql_profile: forgets the statistics so far. Nothing otherwise. */
void rig_sql_profile_reset(rig_t *s);

/* With sql_profile: the top statements in database "tally" since the last
 * reset by total time, each with its calls, time per call and time per
 * request (of requests), as lines of text (malloc'd). NULL otherwise. */
char *rig_sql_profile(rig_t *s, int64_t requests);

/* PgBouncer in transaction pooling with pool_size server connections in
 * front of the rig's PostgreSQL; rig_pgbouncer_url writes the workers'
 * DATABASE_URL=… entry through it. */
void rig_pgbouncer_start(rig_t *s, int pool_size);
void rig_pgbouncer_url(const rig_t *s, char *out, size_t size);
void rig_pgbouncer_stop(rig_t *s);

/* VACUUM ANALYZE and CHECKPOINT, so every row starts from the same state. */
void rig_pg_settle(rig_t *s);

void rig_broker_start(rig_t *s, int partitions);
void rig_broker_stop(rig_t *s);

/* Starts n replicas; with wait_assigned, returns once every one is ready
 * and the request topic's partitions are all assigned among them. */
void rig_workers_start(rig_t *s, int n, bool wait_assigned);

/* Partitions replica i owns now (from its /readyz), or -1. */
int rig_worker_partitions(rig_t *s, int i);

/* SIGTERM to every replica and waits (their VmHWM is kept first). */
void rig_workers_stop(rig_t *s);

void rig_stop(rig_t *s);

/* CPU time used so far by each part, and by the whole machine. */
typedef struct rig_cpu {
    int64_t pg, broker, workers, bench, pooler; /* clock ticks */
    int64_t idle, total;                        /* the machine's, every CPU */
    int64_t wall_ms;
} rig_cpu_t;

void rig_cpu_snapshot(const rig_t *s, rig_cpu_t *out);

/* Where the CPU went between two snapshots, in cores (1.0 = one CPU busy
 * the whole time): PostgreSQL, the broker, the workers, the client (this
 * program, or pgbench's seconds given as client_extra_s), PgBouncer,
 * everything else on the machine (other users' load), and idle. */
typedef struct rig_split {
    double pg, kafka, tally, client, pooler, other, idle;
    double seconds;
} rig_split_t;

void rig_cpu_split(const rig_cpu_t *a, const rig_cpu_t *b, double client_extra_s, rig_split_t *out);

#endif
