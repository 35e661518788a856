/* runtime_internal — the worker runtime's state, shared by the loop
 * (runtime.c), partitions and the jobs in flight (parts.c), settling a job
 * (settle.c), its deliveries (deliver.c), the database's state (dbwatch.c),
 * an operator's holds (holdwatch.c) and the consumer lag (lag.c). Calls go down that list, never
 * back up: the others mark the runtime dirty, or ask for a drain, and the loop's step acts. Loop
 * thread only: nothing here is locked. */
#ifndef TALLY_WORKER_RUNTIME_INTERNAL_H
#define TALLY_WORKER_RUNTIME_INTERNAL_H

#include "common/clock.h"
#include "pool/pool.h"
#include "worker/config.h"
#include "worker/exec.h"
#include "worker/holds.h"
#include "worker/http.h"
#include "worker/job.h"
#include "worker/kafka.h"
#include "worker/metrics.h"
#include "worker/offsets.h"
#include "worker/scheduler.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#define RETRY_BASE_MS 100
#define RETRY_CAP_MS  10000
/* A request's attempts back off from 1 s with equal jitter (half of each
 * step fixed): TALLY_MAX_RETRIES 5 spans at least 7.5 s of backoff plus four
 * lock timeouts, outlasting an ordinary lock wait. The account waits; its
 * executor serves others meanwhile. */
#define ATTEMPT_BASE_MS 1000
#define PROBE_CAP_MS    5000
#define TICK_MS         1000
#define HEALTH_EVERY_MS 5000
#define HEALTH_STALE_MS 30000
#define PRUNE_EVERY_MS  (3600 * 1000)
/* The read-ahead window in bytes, beside TALLY_MAX_IN_FLIGHT in messages:
 * 1000 requests of up to 1 MiB each must not mean a gigabyte of memory. */
#define MAX_IN_FLIGHT_BYTES (64 * 1024 * 1024)
#define PRUNE_FIRST_MS      (60 * 1000)
/* After the drain's deadline cancelled the running statements, how long the
 * executors get to come back before the process exits without them. */
#define EXEC_STOP_GRACE_MS 2000

typedef struct part {
    bool assigned;
    bool revoking; /* in a pending revocation: nothing new starts */
    bool paused;
    uint64_t generation;
    offsets_t *offsets;
    int64_t started; /* jobs handed to executors or being published */
    int64_t bytes;   /* message bytes held by its in-flight jobs */
    int64_t stored;  /* last offset stored for commit, -1 when none */
    /* For the consumer lag (lag.h), -1 until known: the high watermark and
     * the group's committed offset as the broker last answered them. */
    int64_t hwm_queried;
    int64_t committed;
} part_t;

typedef enum delivery_kind { DELIVERY_RESULT, DELIVERY_AUDIT, DELIVERY_DLQ } delivery_kind_t;

typedef struct delivery {
    job_t *job;
    delivery_kind_t kind;
    bool redirected;  /* reply_to refused it: the result goes to the results topic */
    bool shortened;   /* the result could not be published: a short `internal` replaced it */
    int cut;          /* a DLQ copy: 0 whole, 1 key and value cut to fit, 2 key cut, no value */
    char reason[128]; /* the broker's refusal (tally-reply-to-error, tally-dlq-cut-reason) */
    int attempts;     /* transient failures so far */
    int64_t due_ms;
    struct delivery *next;
} delivery_t;

/* The worker's life, in order; each phase includes the restrictions of the
 * ones before it. */
typedef enum runtime_phase {
    RT_RUNNING,  /* consuming and serving */
    RT_DRAINING, /* a signal or a fatal error: nothing new starts, started work finishes */
    RT_STOPPED,  /* drained (or timed out), committed: the loop is closing its handles */
    RT_CLOSING,  /* after the loop: rd_kafka_consumer_close is leaving the group */
} runtime_phase_t;

/* Scratch for parts_flow_apply: an entry per partition slot, grown with
 * parts (parts_get), so that flow control allocates nothing per call. */
typedef struct flow_scratch {
    int32_t *idx;
    int64_t *in_flight, *bytes;
    bool *paused, *want, *want_bytes;
} flow_scratch_t;

typedef struct runtime {
    const config_t *cfg;
    envelope_policy_t policy; /* where results may go (reply_to) */
    pool_t *pool;
    char worker_name[128];
    uv_loop_t loop;
    uv_thread_t loop_thread; /* the thread that runs the loop (runtime_on_loop) */
    uv_prepare_t turn;       /* the per-turn step (runtime.c: turn_cb) */
    bool dirty;              /* the step has work (runtime_mark_dirty) */
    uv_poll_t consumer_poll, producer_poll;
    uv_async_t wake;
    uv_timer_t sched_timer, tick_timer, redeliver_timer, probe_timer;
    uv_signal_t sigterm, sigint;
    kafka_t kafka;
    exec_t *exec;
    http_server_t *http;
    metrics_t *metrics;
    sched_t *sched;
    holds_t *holds;              /* the held accounts, checked by the executors */
    struct holdwatch *holdwatch; /* reading and hearing of them (holdwatch.h) */

    part_t *parts;
    int32_t nparts; /* capacity of parts */
    flow_scratch_t flow;
    int assigned;
    int64_t in_flight;
    int64_t in_flight_bytes;
    int64_t started; /* jobs in an executor or being published (job_started) */
    job_t *jobs;     /* every live job */

    delivery_t *redeliver; /* waiting for their due time */
    delivery_t *stuck;     /* failed for good: held until their partition moves on */
    int64_t n_stuck;

    bool db_down;
    bool pooler_fault; /* the outage is a pooler losing prepared statements (pool/pooler.h) */
    bool probe_running;
    int probe_attempt;
    int64_t db_ok_ms;  /* last time the database answered */
    int64_t health_ms; /* last periodic health check started */
    int64_t prune_ms;  /* next prune due */
    bool prune_running;

    struct lag_round *lag_round; /* queries for the consumer lag, off the loop (lag.h) */
    int64_t lag_next_ms;

    rd_kafka_topic_partition_list_t *revoke; /* a deferred revocation */
    int64_t revoke_deadline;

    runtime_phase_t phase; /* moves forward only */
    bool drain_asked;      /* runtime_ask_drain: the step begins it */
    int drain_exit_code;
    const char *drain_why; /* a static string */
    int64_t drain_deadline;
    int exit_code;
    uint64_t rng;
} runtime_t;

/* @thread loop */
static inline bool runtime_draining(const runtime_t *rt)
{
    return rt->phase >= RT_DRAINING;
}

/* @thread loop */
static inline bool runtime_stopped(const runtime_t *rt)
{
    return rt->phase >= RT_STOPPED;
}

/* Monotonic milliseconds.
 * @thread any */
static inline int64_t runtime_now_ms(void)
{
    return clock_mono_ns() / 1000000;
}

/* Whether the caller runs on the loop's thread (for assert).
 * @thread any */
static inline bool runtime_on_loop(const runtime_t *rt)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &rt->loop_thread);
}

/* Something changed that one of the loop's per-turn duties may act on
 * (dispatch, flow control, a revocation or a drain to finish): the step
 * (runtime.c, turn_cb) runs them before the loop next waits.
 * @thread loop */
static inline void runtime_mark_dirty(runtime_t *rt)
{
    rt->dirty = true;
}

/* Asks for a drain where it cannot begin at once (in the middle of
 * publishing): the step begins it. why is a static string.
 * @thread loop */
static inline void runtime_ask_drain(runtime_t *rt, int exit_code, const char *why)
{
    if (!rt->drain_asked || exit_code > rt->drain_exit_code) {
        rt->drain_exit_code = exit_code;
        rt->drain_why = why;
    }
    rt->drain_asked = true;
    rt->dirty = true;
}

#endif
