#include "parts.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/mem.h"
#include "worker/flow.h"

#include <assert.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- partitions ------------------------------------------------------- */

part_t *parts_get(runtime_t *rt, int32_t p)
{
    if (p < 0)
        return NULL;
    if (p >= rt->nparts) {
        int32_t n = rt->nparts ? rt->nparts : 16;
        while (n <= p)
            n *= 2;
        rt->parts = mem_realloc(rt->parts, (size_t)n * sizeof(*rt->parts));
        for (int32_t i = rt->nparts; i < n; i++)
            rt->parts[i] = (part_t){.stored = -1, .hwm_queried = -1, .committed = -1};
        flow_scratch_t *f = &rt->flow;
        f->idx = mem_realloc(f->idx, (size_t)n * sizeof(*f->idx));
        f->in_flight = mem_realloc(f->in_flight, (size_t)n * sizeof(*f->in_flight));
        f->bytes = mem_realloc(f->bytes, (size_t)n * sizeof(*f->bytes));
        f->paused = mem_realloc(f->paused, (size_t)n * sizeof(*f->paused));
        f->want = mem_realloc(f->want, (size_t)n * sizeof(*f->want));
        f->want_bytes = mem_realloc(f->want_bytes, (size_t)n * sizeof(*f->want_bytes));
        rt->nparts = n;
    }
    return &rt->parts[p];
}

bool parts_job_current(runtime_t *rt, const job_t *job)
{
    return job->partition < rt->nparts && rt->parts[job->partition].assigned &&
           rt->parts[job->partition].generation == job->generation;
}

void parts_release(runtime_t *rt, part_t *pt)
{
    if (pt->assigned)
        rt->assigned--;
    offsets_free(pt->offsets);
    uint64_t gen = pt->generation;
    *pt = (part_t){.stored = -1, .hwm_queried = -1, .committed = -1, .generation = gen + 1};
}

/* ---- the jobs in flight ------------------------------------------------- */

void parts_job_add(runtime_t *rt, job_t *job)
{
    job->all_prev = NULL;
    job->all_next = rt->jobs;
    if (rt->jobs != NULL)
        rt->jobs->all_prev = job;
    rt->jobs = job;
    rt->in_flight++;
    rt->in_flight_bytes += (int64_t)job->value_len;
    if (parts_job_current(rt, job))
        rt->parts[job->partition].bytes += (int64_t)job->value_len;
}

/* Counts job in or out of the started jobs. */
static void count_started(runtime_t *rt, const job_t *job, int delta)
{
    rt->started += delta;
    if (parts_job_current(rt, job))
        rt->parts[job->partition].started += delta;
}

void parts_job_state(runtime_t *rt, job_t *job, job_state_t to)
{
    assert(runtime_on_loop(rt));
    if (job_set_state(job, to))
        count_started(rt, job, job_started(job) ? 1 : -1);
}

void parts_job_forget(runtime_t *rt, job_t *job)
{
    if (job_started(job))
        count_started(rt, job, -1);
    if (job->all_prev != NULL)
        job->all_prev->all_next = job->all_next;
    else
        rt->jobs = job->all_next;
    if (job->all_next != NULL)
        job->all_next->all_prev = job->all_prev;
    rt->in_flight--;
    rt->in_flight_bytes -= (int64_t)job->value_len;
    if (parts_job_current(rt, job))
        rt->parts[job->partition].bytes -= (int64_t)job->value_len;
    job_free(job);
}

void parts_job_done(runtime_t *rt, job_t *job)
{
    if (parts_job_current(rt, job)) {
        part_t *pt = &rt->parts[job->partition];
        int64_t next;
        offsets_done(pt->offsets, job->offset);
        if (offsets_advance(pt->offsets, &next)) {
            rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
            rd_kafka_topic_partition_list_add(l, rt->cfg->request_topic, job->partition)->offset =
                next;
            rd_kafka_resp_err_t err = rd_kafka_offsets_store(rt->kafka.consumer, l);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
                log_warn("offset store failed", LOG_I("partition", job->partition),
                         LOG_I("offset", next), LOG_S("error", rd_kafka_err2str(err)));
            else
                pt->stored = next;
            rd_kafka_topic_partition_list_destroy(l);
        }
    }
    parts_job_state(rt, job, JOB_DONE);
    parts_job_forget(rt, job);
}

/* Which queued (not started) jobs to drop: all, or one partition's. */
typedef struct drop_ctx {
    runtime_t *rt;
    bool all;
    int32_t partition;
} drop_ctx_t;

static bool drop_pred(const sched_item_t *it, void *arg)
{
    const drop_ctx_t *c = arg;
    return c->all || ((const job_t *)it)->partition == c->partition;
}

static void drop_job(sched_item_t *it, void *arg)
{
    parts_job_forget(((drop_ctx_t *)arg)->rt, (job_t *)it);
}

size_t parts_drop_queued(runtime_t *rt, bool all, int32_t partition)
{
    drop_ctx_t c = {.rt = rt, .all = all, .partition = partition};
    return sched_drop(rt->sched, drop_pred, drop_job, &c);
}

/* ---- flow control ------------------------------------------------------ */

/* librdkafka (2.0 and later) lets a broker thread that has nothing to fetch
 * sleep for up to a second, and a resume does not wake it: with every
 * partition paused, the window ran dry for ~300 ms of every second (bench:
 * ~1 800 req/s). A seek does wake it, so resumed partitions are also sought to
 * where they are anyway: one past the last message taken. */
static void wake_fetcher(runtime_t *rt, const rd_kafka_topic_partition_list_t *resumed)
{
    rd_kafka_topic_partition_list_t *seek = rd_kafka_topic_partition_list_new(resumed->cnt);
    for (int i = 0; i < resumed->cnt; i++) {
        part_t *pt = &rt->parts[resumed->elems[i].partition];
        int64_t last = offsets_last(pt->offsets);
        if (last >= 0)
            rd_kafka_topic_partition_list_add(seek, resumed->elems[i].topic,
                                              resumed->elems[i].partition)
                ->offset = last + 1;
    }
    if (seek->cnt > 0) {
        rd_kafka_error_t *e = rd_kafka_seek_partitions(rt->kafka.consumer, seek, 0);
        if (e != NULL) {
            log_debug("seek after resume failed", LOG_S("error", rd_kafka_error_string(e)));
            rd_kafka_error_destroy(e);
        }
    }
    rd_kafka_topic_partition_list_destroy(seek);
}

void parts_flow_apply(runtime_t *rt)
{
    if (runtime_stopped(rt) || rt->nparts == 0)
        return;
    flow_scratch_t *f = &rt->flow;
    size_t n = 0;
    for (int32_t p = 0; p < rt->nparts; p++) {
        if (!rt->parts[p].assigned)
            continue;
        f->idx[n] = p;
        f->in_flight[n] = (int64_t)offsets_in_flight(rt->parts[p].offsets);
        f->bytes[n] = rt->parts[p].bytes;
        f->paused[n] = rt->parts[p].paused;
        n++;
    }
    /* The same fair-share rule over messages and over bytes: a partition
     * stays paused while either says so. */
    flow_decide(rt->cfg->max_in_flight, n, f->in_flight, f->paused, f->want);
    flow_decide(MAX_IN_FLIGHT_BYTES, n, f->bytes, f->paused, f->want_bytes);
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(4);
    rd_kafka_topic_partition_list_t *resume = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        part_t *pt = &rt->parts[f->idx[i]];
        bool w =
            f->want[i] || f->want_bytes[i] || rt->db_down || runtime_draining(rt) || pt->revoking;
        if (w == pt->paused)
            continue;
        rd_kafka_topic_partition_list_add(w ? pause : resume, rt->cfg->request_topic, f->idx[i]);
        pt->paused = w;
    }
    if (pause->cnt > 0)
        rd_kafka_pause_partitions(rt->kafka.consumer, pause);
    if (resume->cnt > 0) {
        rd_kafka_resume_partitions(rt->kafka.consumer, resume);
        wake_fetcher(rt, resume);
    }
    if (pause->cnt + resume->cnt > 0)
        log_debug("flow control", LOG_I("paused", pause->cnt), LOG_I("resumed", resume->cnt),
                  LOG_I("in_flight", rt->in_flight));
    rd_kafka_topic_partition_list_destroy(pause);
    rd_kafka_topic_partition_list_destroy(resume);
}

/* ---- rebalance ----------------------------------------------------------- */

void parts_commit(runtime_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = parts_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned && pt->stored >= 0)
            rd_kafka_topic_partition_list_add(l, parts->elems[i].topic, parts->elems[i].partition)
                ->offset = pt->stored;
    }
    if (l->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(rt->kafka.consumer, l, 0 /* sync */);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            log_warn("offset commit failed", LOG_S("error", rd_kafka_err2str(err)));
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Drops the queued jobs of the assigned partitions among parts and forgets them. */
static void forget(runtime_t *rt, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = parts_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned) {
            parts_drop_queued(rt, false, parts->elems[i].partition);
            parts_release(rt, pt);
        }
    }
}

/* Ends a revocation: commit what finished, forget the partitions, unassign. */
void parts_finish_revoke(runtime_t *rt, rd_kafka_topic_partition_list_t *parts, bool commit)
{
    if (commit)
        parts_commit(rt, parts);
    forget(rt, parts);
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(rt->kafka.consumer, parts);
    if (e != NULL) {
        log_warn("incremental unassign failed", LOG_S("error", rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
    }
    log_info("partitions revoked", LOG_I("count", parts->cnt), LOG_B("committed", commit));
}

void parts_check_revoke(runtime_t *rt)
{
    if (rt->revoke == NULL)
        return;
    bool busy = false;
    for (int i = 0; i < rt->revoke->cnt; i++) {
        part_t *pt = parts_get(rt, rt->revoke->elems[i].partition);
        if (pt != NULL && pt->assigned && pt->started > 0)
            busy = true;
    }
    if (busy && runtime_now_ms() < rt->revoke_deadline)
        return;
    if (busy)
        log_warn("revocation timed out: unfinished requests are left to the next owner");
    kafka_serve_producer(&rt->kafka); /* acknowledgements that already arrived count */
    rd_kafka_topic_partition_list_t *l = rt->revoke;
    rt->revoke = NULL;
    parts_finish_revoke(rt, l, true);
    rd_kafka_topic_partition_list_destroy(l);
}

/* Takes on newly assigned partitions. */
static void assign(runtime_t *rt, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                   bool cooperative)
{
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = parts_get(rt, parts->elems[i].partition);
        assert(pt != NULL); /* Kafka's partitions count from 0 */
        if (pt->assigned)
            parts_release(rt, pt);
        pt->assigned = true;
        pt->offsets = offsets_new();
        pt->stored = -1;
        pt->hwm_queried = pt->committed = -1;
        rt->assigned++;
    }
    rd_kafka_error_t *e = NULL;
    if (cooperative)
        e = rd_kafka_incremental_assign(rk, parts);
    else
        rd_kafka_assign(rk, parts);
    /* A partition paused while it was ours before (flow control, a
     * revocation) keeps librdkafka's pause flag: start it flowing. */
    rd_kafka_resume_partitions(rk, parts);
    if (e != NULL) {
        log_error("incremental assign failed", LOG_S("error", rd_kafka_error_string(e)));
        rd_kafka_error_destroy(e);
    }
    log_info("partitions assigned", LOG_I("count", parts->cnt), LOG_I("assigned", rt->assigned));
    runtime_mark_dirty(rt);
}

/* Gives up partitions at once: lost ones (they belong to someone else
 * already: commit nothing), at close (the drain has committed), or under
 * the eager protocol. */
static void revoke_now(runtime_t *rt, rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts,
                       bool cooperative)
{
    bool lost = rd_kafka_assignment_lost(rk);
    if (lost)
        log_warn("partitions lost: the group moved on without this member",
                 LOG_I("count", parts->cnt));
    if (cooperative) {
        parts_finish_revoke(rt, parts, !lost && rt->phase != RT_CLOSING);
        return;
    }
    if (!lost && rt->phase != RT_CLOSING)
        parts_commit(rt, parts);
    forget(rt, parts);
    rd_kafka_assign(rk, NULL);
}

/* Starts a cooperative revocation: nothing new of these partitions starts;
 * started jobs finish (bounded by the shutdown timeout), then the step's
 * parts_check_revoke commits and unassigns. */
static void revoke_later(runtime_t *rt, rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        part_t *pt = parts_get(rt, parts->elems[i].partition);
        if (pt != NULL && pt->assigned) {
            pt->revoking = true;
            parts_drop_queued(rt, false, parts->elems[i].partition);
        }
    }
    rt->revoke = rd_kafka_topic_partition_list_copy(parts);
    rt->revoke_deadline = runtime_now_ms() + rt->cfg->shutdown_timeout_ms;
    log_info("partitions being revoked", LOG_I("count", parts->cnt));
    runtime_mark_dirty(rt); /* pause them; finish at once if nothing of them started */
}

void parts_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                        rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    runtime_t *rt = opaque;
    bool cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(rt, rk, parts, cooperative);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_error("rebalance error", LOG_S("error", rd_kafka_err2str(err)));
        if (cooperative)
            rd_kafka_error_destroy(rd_kafka_incremental_unassign(rk, parts));
        else
            rd_kafka_assign(rk, NULL);
        return;
    }
    /* A revocation supersedes any deferred one: finish that first. */
    if (rt->revoke != NULL) {
        rd_kafka_topic_partition_list_t *l = rt->revoke;
        rt->revoke = NULL;
        parts_finish_revoke(rt, l, !rd_kafka_assignment_lost(rk));
        rd_kafka_topic_partition_list_destroy(l);
    }
    if (rt->phase == RT_CLOSING || rd_kafka_assignment_lost(rk) || !cooperative)
        revoke_now(rt, rk, parts, cooperative);
    else
        revoke_later(rt, parts);
}

void parts_free(runtime_t *rt)
{
    for (int32_t p = 0; p < rt->nparts; p++)
        offsets_free(rt->parts[p].offsets);
    free(rt->parts);
    flow_scratch_t *f = &rt->flow;
    free(f->idx);
    free(f->in_flight);
    free(f->bytes);
    free(f->paused);
    free(f->want);
    free(f->want_bytes);
    rt->parts = NULL;
    rt->nparts = 0;
}
