/* health — see worker/health.h. */
#include "worker/health.h"

#include "common/mem.h"
#include "worker/procstat.h"

#include <jansson.h>
#include <string.h>

#define POOLER_FAULT_REASON                                                                        \
    "database unavailable: a connection pooler lost prepared statements (PgBouncer 1.21 or "       \
    "later with max_prepared_statements, or TALLY_PREPARED_STATEMENTS=off)"

bool health_db_up(const health_snapshot_t *s)
{
    return !s->db_down && !s->db_stale;
}

static void set_body(http_response_t *resp, int status, const char *type, char *body)
{
    resp->status = status;
    resp->content_type = type;
    resp->body = body;
    resp->len = body != NULL ? strlen(body) : 0;
}

static void readyz(const health_snapshot_t *s, http_response_t *resp)
{
    bool db = health_db_up(s);
    bool ready = db && !s->draining;
    json_t *reasons = json_array();
    if (s->pooler_fault)
        json_array_append_new(reasons, json_string(POOLER_FAULT_REASON));
    else if (s->db_down)
        json_array_append_new(reasons, json_string("database unavailable"));
    else if (!db)
        json_array_append_new(reasons, json_string("database not checked recently"));
    if (s->draining)
        json_array_append_new(reasons, json_string("draining"));
    json_t *o =
        json_pack("{s:b,s:b,s:i,s:b,s:I,s:I,s:o}", "ready", ready, "database", db, "partitions",
                  s->partitions, "draining", s->draining, "in_flight", (json_int_t)s->in_flight,
                  "stuck_deliveries", (json_int_t)s->stuck_deliveries, "reasons", reasons);
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    set_body(resp, ready ? 200 : 503, "application/json", text);
}

static void metrics(const health_snapshot_t *s, metrics_t *m, http_response_t *resp)
{
    metrics_set_pool(m, s->pool.idle, s->pool.active, s->pool.connecting);
    metrics_set_in_flight(m, s->in_flight);
    metrics_set_paused_partitions(m, s->paused);
    metrics_set_database_up(m, health_db_up(s));
    metrics_set_stuck_deliveries(m, s->stuck_deliveries);
    metrics_set_assigned_partitions(m, s->partitions);
    metrics_set_oldest_in_flight(m, s->oldest_in_flight_s);
    metrics_set_held_accounts(m, s->held_accounts);
    procstat_t ps;
    metrics_set_process(m, procstat_read(&ps) == 0 ? &ps : NULL);
    char *text = NULL;
    size_t len = 0;
    if (metrics_render(m, &text, &len) != 0) {
        set_body(resp, 500, "text/plain; charset=utf-8",
                 mem_strdup("metrics cannot be rendered\n"));
        return;
    }
    resp->status = 200;
    resp->content_type = METRICS_CONTENT_TYPE;
    resp->body = text;
    resp->len = len;
}

void health_answer(const char *path, health_snapshot_cb snapshot, void *ctx, metrics_t *m,
                   http_response_t *resp)
{
    if (strcmp(path, "/livez") == 0 || strcmp(path, "/healthz") == 0) {
        set_body(resp, 200, "text/plain; charset=utf-8", mem_strdup("ok\n"));
        return;
    }
    bool ready = strcmp(path, "/readyz") == 0;
    if (!ready && strcmp(path, "/metrics") != 0)
        return;
    health_snapshot_t s;
    memset(&s, 0, sizeof(s));
    s.for_metrics = !ready;
    snapshot(ctx, &s);
    if (ready)
        readyz(&s, resp);
    else
        metrics(&s, m, resp);
}
