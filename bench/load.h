/* load — the benchmark's Kafka client: produces requests, keyed by account,
 * to the request topic and reads every result back, recording when each
 * request was sent and when its result arrived.
 *
 * Each request gets a sequence number; its correlation_id is
 * "<seq>.<send time in CLOCK_MONOTONIC ns>", so a result alone says which
 * request it answers and when that was sent (both processes share the
 * machine's monotonic clock). Results are at-least-once: a second result for
 * a sequence number counts as a duplicate, not as an answer.
 *
 * A consumer thread reads the results topic (every partition, from the
 * beginning, outside any group) and, while it runs, samples the resident
 * memory of the processes given to load_watch every 100 ms, and counts the
 * results of one other account (load_count_key). In a chain load
 * (the mixed workload) that thread also sends each ok payment.record's
 * follow-ups one after another: share.allocate, payment.refund, payout.create.
 *
 * Every function but load_new runs on the thread that created the load.
 * Harness style: a setup failure fails the program (fail_msg). */
#ifndef TALLY_BENCH_LOAD_H
#define TALLY_BENCH_LOAD_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum load_type {
    LOAD_RECORD,
    LOAD_ALLOCATE,
    LOAD_REFUND,
    LOAD_PAYOUT,
    LOAD_NTYPES
} load_type_t;

typedef struct load_config {
    const char *bootstrap;
    const char *request_topic;
    const char *result_topic;
    int result_partitions;
    int64_t capacity;  /* requests this load may send in its life */
    const char *tag;   /* unique in the run: request ids are "<tag>-<seq>" */
    bool chain;        /* follow every ok payment.record with its three follow-ups */
    int linger_ms;     /* the producer's linger.ms */
    int fetch_wait_ms; /* the result consumer's fetch.wait.max.ms */
} load_config_t;

typedef struct load load_t;

load_t *load_new(const load_config_t *cfg);
void load_free(load_t *l);

/* Sends one payment.record for account; returns its sequence number. */
int64_t load_send_record(load_t *l, const char *account);

/* Sends n payment.records, each for a random account of
 * "<prefix>_0" … "<prefix>_<accounts-1>", paced at rate per second (0: as
 * fast as the producer takes them). Returns the first sequence number. */
int64_t load_send_records(load_t *l, int n, int accounts, const char *prefix, double rate);

/* Waits until the broker acknowledged every request sent so far; false if
 * any delivery failed. */
bool load_flush(load_t *l, int timeout_ms);

/* Waits until every request sent (follow-ups included) has its result, at
 * most timeout_ms; true when all arrived. */
bool load_wait(load_t *l, int timeout_ms);

/* Waits until the request seq has its result; false on timeout. */
bool load_wait_seq(load_t *l, int64_t seq, int timeout_ms);

/* The partition of the request topic (of `partitions`) that a message keyed
 * key goes to: librdkafka's default partitioner, as the producer uses it. */
int32_t load_partition(load_t *l, const char *key, int32_t partitions);

/* The sequence number the next request gets (= requests sent so far). */
int64_t load_next_seq(load_t *l);

/* Distinct requests answered so far. */
int64_t load_answered(load_t *l);

/* Samples the memory of these processes from now on (replaces any earlier
 * list; at most 8). */
void load_watch(load_t *l, const pid_t *pids, int n);

/* The highest VmRSS seen (KiB) of each watched process, and of their sum. */
void load_watch_peak(load_t *l, int64_t *per_pid_kb, int64_t *sum_kb);

typedef struct load_stats {
    int64_t sent;
    int64_t answered; /* distinct requests with a result */
    int64_t ok, errors, duplicates;
    int64_t ok_by_type[LOAD_NTYPES], errors_by_type[LOAD_NTYPES];
    double seconds; /* first send → last result */
    double per_s;   /* answered / seconds */
    double p50_ms, p95_ms, p99_ms, max_ms;
    /* From sending to the worker's answer (the result's processed_at, wall
     * clock, millisecond resolution): the rest is the way back. */
    double answered_p50_ms, answered_p99_ms;
    /* From sending to the worker producing the result (its CreateTime). */
    double published_p50_ms, published_p99_ms;
    char first_error[256]; /* the first error result's text, for the report */
} load_stats_t;

/* Statistics of the requests with from <= seq < to. */
void load_stats(load_t *l, int64_t from, int64_t to, load_stats_t *out);

/* The same, of those whose account keep(account, arg) accepts; only a chain
 * load knows its requests' accounts (else nothing is kept). */
typedef bool (*load_keep_cb)(const char *account, void *arg);
void load_stats_where(load_t *l, int64_t from, int64_t to, load_keep_cb keep, void *arg,
                      load_stats_t *out);

/* From now on, results keyed key (another producer's account: not timed)
 * are counted; load_key_results says how many arrived. */
void load_count_key(load_t *l, const char *key);
int64_t load_key_results(load_t *l);

const char *load_type_name(load_type_t t);

#endif
