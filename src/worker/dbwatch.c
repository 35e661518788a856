/* dbwatch — see dbwatch.h. */
#include "dbwatch.h"

#include "common/log.h"
#include "worker/scheduler.h"

#include <assert.h>

static void post_probe(runtime_t *rt)
{
    int i = exec_idle(rt->exec);
    if (i < 0 || rt->probe_running)
        return;
    /* SELECT 1 passes through a pooler that loses prepared statements. */
    rt->probe_running = true;
    exec_post(rt->exec, i, task_new_probe(rt->pooler_fault));
}

static void probe_timer_cb(uv_timer_t *t)
{
    post_probe(t->data);
}

void dbwatch_probe_down(runtime_t *rt)
{
    assert(rt->db_down);
    if (!uv_is_active((uv_handle_t *)&rt->probe_timer))
        post_probe(rt);
}

/* The database failed (pooler: a pooler lost prepared statements): pause
 * consumption until a probe succeeds — after a pooler fault, only a pooler
 * check (pool/pooler.h) will do. One error line per outage, and one when it
 * turns out to be the pooler's, naming the fix. */
static void set_db_down(runtime_t *rt, const char *why, bool pooler)
{
    if (pooler && !rt->pooler_fault) {
        rt->pooler_fault = true;
        log_error("a connection pooler lost prepared statements: consumption paused until it "
                  "keeps them. Fix: PgBouncer 1.21 or later with max_prepared_statements set, "
                  "or TALLY_PREPARED_STATEMENTS=off",
                  LOG_S("error", why));
    }
    if (rt->db_down)
        return;
    rt->db_down = true;
    rt->probe_attempt = 0;
    if (!pooler)
        log_error("database unavailable: pausing consumption", LOG_S("error", why));
    runtime_mark_dirty(rt);
}

static void probe_done(runtime_t *rt, const task_t *t)
{
    rt->probe_running = false;
    /* A SELECT 1 posted before a pooler fault proves nothing about it. */
    if (t->ok && (!rt->pooler_fault || t->pooler_check)) {
        rt->db_ok_ms = runtime_now_ms();
        if (rt->db_down) {
            rt->db_down = false;
            rt->pooler_fault = false;
            log_info("database is back: resuming", LOG_D("latency_ms", t->latency_ms),
                     LOG_B("pooler_checked", t->pooler_check));
            runtime_mark_dirty(rt);
        }
    } else if (rt->db_down) {
        rt->probe_attempt++;
        int64_t delay = RETRY_BASE_MS +
                        sched_backoff_ms(rt->probe_attempt, RETRY_BASE_MS, PROBE_CAP_MS, &rt->rng);
        log_debug("database still unavailable", LOG_I("attempt", rt->probe_attempt),
                  LOG_S("error", t->error));
        if (!runtime_stopped(rt))
            uv_timer_start(&rt->probe_timer, probe_timer_cb, (uint64_t)delay, 0);
    } else {
        set_db_down(rt, t->error, t->pooler_fault);
    }
}

void dbwatch_task_done(runtime_t *rt, const task_t *t)
{
    switch (t->kind) {
    case TASK_BATCH:
    case TASK_HOLDS:
        if (t->db_unavailable)
            set_db_down(rt, t->error, t->pooler_fault);
        else
            rt->db_ok_ms = runtime_now_ms();
        break;
    case TASK_PROBE:
        probe_done(rt, t);
        break;
    case TASK_PRUNE:
        rt->prune_running = false;
        if (t->ok)
            log_info("stored outcomes pruned", LOG_I("deleted", t->pruned),
                     LOG_I("retention_days", rt->cfg->outcome_retention_days));
        else
            log_warn("outcome pruning failed", LOG_S("error", t->error));
        break;
    }
}

void dbwatch_tick(runtime_t *rt, int64_t now)
{
    if (rt->db_down || runtime_draining(rt))
        return;
    if (now - rt->db_ok_ms > HEALTH_EVERY_MS && now - rt->health_ms > HEALTH_EVERY_MS) {
        rt->health_ms = now;
        post_probe(rt);
    }
    if (!rt->prune_running && now >= rt->prune_ms) {
        int i = exec_idle(rt->exec);
        if (i >= 0) {
            rt->prune_running = true;
            rt->prune_ms = now + PRUNE_EVERY_MS;
            exec_post(rt->exec, i, task_new_prune(rt->cfg->outcome_retention_days));
        }
    }
}
