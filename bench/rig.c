/* rig — see rig.h. */
#include "rig.h"

#include "procstat.h"
#include "th_internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 120000

void rig_pg_start(rig_t *s, FILE *out, bool durable, bool sql_profile)
{
    s->pg = durable ? th_pg_start_durable() : th_pg_start();
    if (sql_profile) {
        th_pg_exec(s->pg, "postgres",
                   "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'");
        th_pg_halt(s->pg);
        th_pg_resume(s->pg);
        th_pg_exec(s->pg, "postgres", "CREATE EXTENSION pg_stat_statements");
        s->sql_profile = true;
    }
    th_pg_migrate(s->pg);
    /* The postmaster is a backend's parent. */
    pid_t backend = (pid_t)th_pg_i64(s->pg, "postgres", "SELECT pg_backend_pid()");
    s->pg_pid = procstat_ppid(backend);
    char *version = th_pg_text(s->pg, "postgres", "SHOW server_version");
    char *settings = th_pg_text(
        s->pg, "postgres",
        "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ' ' ORDER BY name) "
        "FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes', "
        "'shared_buffers', 'max_connections', 'wal_level', 'autovacuum', "
        "'shared_preload_libraries')");
    fprintf(out, "postgresql: %s on 127.0.0.1:%d, %s: %s\n", version, th_pg_port(s->pg),
            durable ? "durable" : "tuned like the tests", settings);
    free(version);
    free(settings);
}

void rig_sql_profile_reset(rig_t *s)
{
    if (s->sql_profile)
        th_pg_exec(s->pg, "postgres", "SELECT pg_stat_statements_reset()");
}

char *rig_sql_profile(rig_t *s, int64_t requests)
{
    if (!s->sql_profile || requests <= 0)
        return NULL;
    char *sql = th_strdupf(
        "SELECT string_agg(format('  %%8s calls %%8s us/call %%7s us/req %%7s rows  %%s', calls,"
        " round((total_exec_time * 1000 / calls)::numeric, 1),"
        " round((total_exec_time * 1000 / %lld)::numeric, 1), rows,"
        " left(regexp_replace(query, '\\s+', ' ', 'g'), 110)), E'\\n' ORDER BY total_exec_time"
        " DESC) FROM (SELECT * FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database"
        " WHERE datname = 'tally') AND query NOT LIKE '%%pg_stat_statements%%'"
        " ORDER BY total_exec_time DESC LIMIT 14) t",
        (long long)requests);
    char *text = th_pg_text(s->pg, "postgres", sql);
    free(sql);
    return text;
}

void rig_pg_settle(rig_t *s)
{
    th_pg_exec(s->pg, "postgres", "VACUUM ANALYZE");
    th_pg_exec(s->pg, "postgres", "CHECKPOINT");
}

void rig_pgbouncer_start(rig_t *s, int pool_size)
{
    th_pgbouncer_config_t pc = {.pool_mode = "transaction", .default_pool_size = pool_size};
    s->pgbouncer = th_pgbouncer_start(s->pg, &pc);
}

void rig_pgbouncer_url(const rig_t *s, char *out, size_t size)
{
    char url[200];
    th_pgbouncer_url(s->pgbouncer, "tally_worker", url, sizeof(url));
    snprintf(out, size, "DATABASE_URL=%s", url);
}

void rig_pgbouncer_stop(rig_t *s)
{
    th_pgbouncer_stop(s->pgbouncer);
    s->pgbouncer = NULL;
}

void rig_broker_start(rig_t *s, int partitions)
{
    char n[16];
    snprintf(n, sizeof(n), "%d", s->brokers > 0 ? s->brokers : 3);
    const char *args[] = {"--brokers", n, NULL};
    s->broker = th_broker_start_args(partitions, args);
    s->partitions = partitions;
}

void rig_broker_stop(rig_t *s)
{
    th_broker_stop(s->broker);
    s->broker = NULL;
}

static int assigned_partitions(th_worker_t *w)
{
    char *body = NULL;
    int code = th_worker_http_get(w, "/readyz", &body, 2000);
    int n = -1;
    if (code == 200 && body != NULL) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *v = json_object_get(j, "partitions");
        if (json_is_integer(v))
            n = (int)json_integer_value(v);
        json_decref(j);
    }
    free(body);
    return n;
}

void rig_workers_start(rig_t *s, int n, bool wait_assigned)
{
    if (n > RIG_MAX_WORKERS)
        fail_msg("bench: at most %d replicas", RIG_MAX_WORKERS);
    /* The run's environment, then the row's. */
    const char *env[64];
    size_t k = 0;
    for (size_t i = 0; s->worker_env != NULL && s->worker_env[i] != NULL && k < 32; i++)
        env[k++] = s->worker_env[i];
    for (size_t i = 0; s->row_env != NULL && s->row_env[i] != NULL && k < 63; i++)
        env[k++] = s->row_env[i];
    env[k] = NULL;
    for (int i = 0; i < n; i++) {
        s->workers[i] = th_worker_start(s->pg, s->broker, env);
        s->worker_hwm_kb[i] = -1;
    }
    s->nworkers = n;
    if (!wait_assigned)
        return;
    int64_t deadline = th_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int total = 0, empty = 0;
        for (int i = 0; i < n; i++) {
            int a = assigned_partitions(s->workers[i]);
            total += a > 0 ? a : 0;
            empty += a <= 0;
        }
        /* Every partition has an owner, and nobody idles who could work. */
        if (total == s->partitions && (empty == 0 || n > s->partitions))
            return;
        if (th_now_ms() >= deadline)
            fail_msg("bench: %d replicas did not share %d partitions within %d s (%d assigned)", n,
                     s->partitions, READY_TIMEOUT_MS / 1000, total);
        th_sleep_ms(200);
    }
}

int rig_worker_partitions(rig_t *s, int i)
{
    return i < s->nworkers ? assigned_partitions(s->workers[i]) : -1;
}

void rig_workers_stop(rig_t *s)
{
    for (int i = 0; i < s->nworkers; i++) {
        int64_t rss;
        procstat_mem_kb(th_worker_pid(s->workers[i]), &rss, &s->worker_hwm_kb[i]);
    }
    for (int i = 0; i < s->nworkers; i++) {
        th_worker_stop(s->workers[i]);
        s->workers[i] = NULL;
    }
    s->nworkers = 0;
}

void rig_stop(rig_t *s)
{
    rig_workers_stop(s);
    if (s->broker != NULL)
        rig_broker_stop(s);
    if (s->pgbouncer != NULL)
        rig_pgbouncer_stop(s);
    th_pg_stop(s->pg);
    s->pg = NULL;
}

void rig_cpu_snapshot(const rig_t *s, rig_cpu_t *out)
{
    memset(out, 0, sizeof(*out));
    out->pg = procstat_cpu_ticks(s->pg_pid, 1);
    out->broker = s->broker != NULL ? procstat_cpu_ticks(th_broker_pid(s->broker), 0) : 0;
    for (int i = 0; i < s->nworkers; i++) {
        int64_t t = procstat_cpu_ticks(th_worker_pid(s->workers[i]), 0);
        out->workers += t > 0 ? t : 0;
    }
    out->bench = procstat_cpu_ticks(getpid(), 0);
    out->pooler = s->pgbouncer != NULL ? procstat_cpu_ticks(th_pgbouncer_pid(s->pgbouncer), 0) : 0;
    procstat_machine_ticks(&out->idle, &out->total);
    out->wall_ms = th_now_ms();
}

void rig_cpu_split(const rig_cpu_t *a, const rig_cpu_t *b, double client_extra_s, rig_split_t *out)
{
    memset(out, 0, sizeof(*out));
    out->seconds = (double)(b->wall_ms - a->wall_ms) / 1000.0;
    if (out->seconds <= 0)
        return;
    double hz = (double)procstat_ticks_per_second();
    double secs = out->seconds;
    out->pg = (double)(b->pg - a->pg) / hz / secs;
    out->kafka = (double)(b->broker - a->broker) / hz / secs;
    out->tally = (double)(b->workers - a->workers) / hz / secs;
    out->client = ((double)(b->bench - a->bench) / hz + client_extra_s) / secs;
    out->pooler = (double)(b->pooler - a->pooler) / hz / secs;
    /* /proc/stat counts every CPU: shares of the total times the CPU count. */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    double n = (double)(cpus > 0 ? cpus : 1);
    if (b->total > a->total) {
        double total = (double)(b->total - a->total);
        out->idle = (double)(b->idle - a->idle) / total * n;
        double busy = n - out->idle;
        out->other = busy - out->pg - out->kafka - out->tally - out->client - out->pooler;
        if (out->other < 0)
            out->other = 0;
    }
}
