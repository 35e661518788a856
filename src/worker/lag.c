/* lag — see lag.h. */
#include "lag.h"

#include "common/log.h"
#include "common/mem.h"

#include <stdlib.h>

#define LAG_EVERY_MS         2000 /* at most one round this often */
#define LAG_QUERY_TIMEOUT_MS 500  /* one request's answer */

/* One partition of a round: what to ask, and the answers (-1: none). */
typedef struct lag_item {
    int32_t partition;
    uint64_t generation;
    bool want_hwm, want_committed;
    bool start_at_low; /* nothing committed: the group starts at the low watermark */
    int64_t hwm, committed;
} lag_item_t;

typedef struct lag_round {
    uv_work_t req;
    runtime_t *rt;        /* the loop's; the work thread uses only the next three */
    rd_kafka_t *consumer; /* thread-safe */
    const char *topic;    /* the configuration's, read-only */
    lag_item_t *items;
    size_t n;
} lag_round_t;

static int64_t cached_hwm(runtime_t *rt, int32_t p)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(rt->kafka.consumer, rt->cfg->request_topic, p, &lo, &hi) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        return -1;
    return hi >= 0 ? hi : -1;
}

/* The first offset not finished: from the partition's own tracking, else
 * where the group's committed offset says it starts. -1: not known. */
static int64_t base_of(const part_t *pt)
{
    int64_t b = offsets_first_open(pt->offsets);
    return b >= 0 ? b : pt->committed;
}

void lag_render(runtime_t *rt)
{
    metrics_clear_consumer_lag(rt->metrics);
    for (int32_t p = 0; p < rt->nparts; p++) {
        const part_t *pt = &rt->parts[p];
        if (!pt->assigned)
            continue;
        int64_t hwm = cached_hwm(rt, p);
        if (pt->hwm_queried > hwm)
            hwm = pt->hwm_queried; /* a paused partition's cache stands still */
        int64_t base = base_of(pt);
        if (hwm >= 0 && base >= 0)
            metrics_set_consumer_lag(rt->metrics, rt->cfg->request_topic, p,
                                     hwm > base ? hwm - base : 0);
    }
    lag_tick(rt);
}

/* Work thread: the committed offsets in one request, then the
 * watermarks one partition at a time, until the round's time is up. */
static void round_run(uv_work_t *req)
{
    lag_round_t *r = req->data;
    int64_t end = runtime_now_ms() + LAG_ROUND_MS;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->n);
    for (size_t i = 0; i < r->n; i++) {
        if (r->items[i].want_committed)
            rd_kafka_topic_partition_list_add(l, r->topic, r->items[i].partition)->opaque =
                &r->items[i];
    }
    if (l->cnt > 0 &&
        rd_kafka_committed(r->consumer, l, LAG_QUERY_TIMEOUT_MS) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        for (int i = 0; i < l->cnt; i++) {
            lag_item_t *it = l->elems[i].opaque;
            if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
                continue;
            if (l->elems[i].offset >= 0)
                it->committed = l->elems[i].offset;
            else
                it->start_at_low = it->want_hwm = true; /* auto.offset.reset=earliest */
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    for (size_t i = 0; i < r->n; i++) {
        lag_item_t *it = &r->items[i];
        int64_t left = end - runtime_now_ms(), lo, hi;
        if (!it->want_hwm || left <= 0)
            continue;
        if (rd_kafka_query_watermark_offsets(
                r->consumer, r->topic, it->partition, &lo, &hi,
                (int)(left < LAG_QUERY_TIMEOUT_MS ? left : LAG_QUERY_TIMEOUT_MS)) !=
            RD_KAFKA_RESP_ERR_NO_ERROR)
            continue;
        it->hwm = hi;
        if (it->start_at_low)
            it->committed = lo;
    }
}

/* Loop: the answers go to partitions still assigned as they were. */
static void round_done(uv_work_t *req, int status)
{
    lag_round_t *r = req->data;
    runtime_t *rt = r->rt;
    for (size_t i = 0; status == 0 && i < r->n; i++) {
        const lag_item_t *it = &r->items[i];
        part_t *pt = it->partition < rt->nparts ? &rt->parts[it->partition] : NULL;
        if (pt == NULL || !pt->assigned || pt->generation != it->generation)
            continue;
        if (it->hwm > pt->hwm_queried)
            pt->hwm_queried = it->hwm;
        if (it->committed >= 0)
            pt->committed = it->committed;
    }
    rt->lag_round = NULL;
    free(r->items);
    free(r);
}

void lag_tick(runtime_t *rt)
{
    int64_t now = runtime_now_ms();
    if (rt->lag_round != NULL || runtime_draining(rt) || now < rt->lag_next_ms ||
        rt->kafka.consumer == NULL)
        return;
    lag_item_t *items = NULL;
    size_t n = 0;
    for (int32_t p = 0; p < rt->nparts; p++) {
        const part_t *pt = &rt->parts[p];
        if (!pt->assigned)
            continue;
        bool hwm = pt->paused || cached_hwm(rt, p) < 0;
        bool committed = base_of(pt) < 0;
        if (!hwm && !committed)
            continue;
        if (items == NULL)
            items = mem_calloc((size_t)rt->nparts, sizeof(*items));
        items[n++] = (lag_item_t){.partition = p,
                                  .generation = pt->generation,
                                  .want_hwm = hwm,
                                  .want_committed = committed,
                                  .hwm = -1,
                                  .committed = -1};
    }
    if (n == 0)
        return;
    rt->lag_next_ms = now + LAG_EVERY_MS;
    lag_round_t *r = mem_calloc(1, sizeof(*r));
    *r = (lag_round_t){.rt = rt,
                       .consumer = rt->kafka.consumer,
                       .topic = rt->cfg->request_topic,
                       .items = items,
                       .n = n};
    r->req.data = r;
    if (uv_queue_work(&rt->loop, &r->req, round_run, round_done) != 0) {
        log_debug("cannot queue the consumer lag queries");
        free(items);
        free(r);
        return;
    }
    rt->lag_round = r;
}

void lag_cancel(runtime_t *rt)
{
    if (rt->lag_round != NULL)
        uv_cancel((uv_req_t *)&rt->lag_round->req);
}
