/* hostile — see hostile.h. */
#include "hostile.h"

#include "th_hostile.h"
#include "th_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_MS 600000 /* for the well-behaved chains to finish: generous, never a judgement */

typedef struct mates {
    const char *prefix;
    int32_t *partition; /* of each well-behaved account */
    int accounts;
    int32_t hostile;
    bool inside; /* keep the partition-mates, else the others */
} mates_t;

/* load_keep_cb: whether account "<prefix>_<k>" is (or is not) a mate. */
static bool keep_account(const char *account, void *arg)
{
    const mates_t *m = arg;
    size_t n = strlen(m->prefix);
    if (strncmp(account, m->prefix, n) != 0 || account[n] != '_')
        return false;
    int k = atoi(account + n + 1);
    return k >= 0 && k < m->accounts && (m->partition[k] == m->hostile) == m->inside;
}

static void count_expected(const th_hostile_req_t *r, void *arg)
{
    *(int64_t *)arg += r->kind != TH_HOSTILE_DEAD; /* everything else gets a result */
}

/* An outside session's row lock on the account's usd balance. */
static PGconn *lock_balance(rig_t *rig, const char *account)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO account_balances (account_id, currency) VALUES ('%s', 'usd')"
             " ON CONFLICT DO NOTHING",
             account);
    th_pg_exec(rig->pg, "postgres", sql);
    PGconn *c = th_pg_connect(rig->pg, "postgres");
    PQclear(PQexec(c, "BEGIN"));
    snprintf(sql, sizeof(sql),
             "SELECT 1 FROM account_balances WHERE account_id = '%s' AND currency = 'usd'"
             " FOR UPDATE",
             account);
    PGresult *r = PQexec(c, sql);
    if (PQntuples(r) != 1)
        fail_msg("bench: cannot lock the balance row of %s", account);
    PQclear(r);
    return c;
}

/* Sends chains at cfg->rate, a second at a time, until the hostile account
 * has all its results (or max_seconds); returns when that happened (ms). */
static int64_t run_beside(load_t *l, const hostile_config_t *cfg, int64_t expected, int64_t t0)
{
    int64_t end = t0 + (int64_t)cfg->max_seconds * 1000, done_ms = -1;
    int per_second = cfg->rate >= 1 ? (int)cfg->rate : 1;
    while (th_now_ms() < end) {
        if (load_key_results(l) >= expected) {
            done_ms = th_now_ms();
            break;
        }
        load_send_records(l, per_second, cfg->accounts, cfg->prefix, cfg->rate);
    }
    return done_ms;
}

void hostile_run(rig_t *rig, load_t *l, const hostile_config_t *cfg, hostile_result_t *out)
{
    memset(out, 0, sizeof(*out));
    char hostile[HOSTILE_ACCOUNT_MAX];
    snprintf(hostile, sizeof(hostile), "%s_hostile", cfg->prefix);
    mates_t m = {.prefix = cfg->prefix,
                 .partition = calloc((size_t)cfg->accounts, sizeof(int32_t)),
                 .accounts = cfg->accounts,
                 .hostile = load_partition(l, hostile, rig->partitions)};
    char account[HOSTILE_ACCOUNT_MAX];
    for (int k = 0; k < cfg->accounts; k++) {
        snprintf(account, sizeof(account), "%s_%d", cfg->prefix, k);
        m.partition[k] = load_partition(l, account, rig->partitions);
        out->mates_accounts += m.partition[k] == m.hostile;
    }

    /* Alone. */
    rig_cpu_t c0, c1;
    rig_cpu_snapshot(rig, &c0);
    int64_t from = load_next_seq(l);
    load_send_records(l, (int)(cfg->rate * cfg->unloaded_seconds), cfg->accounts, cfg->prefix,
                      cfg->rate);
    bool answered = load_wait(l, WAIT_MS);
    rig_cpu_snapshot(rig, &c1);
    rig_cpu_split(&c0, &c1, 0, &out->cpu_alone);
    load_stats(l, from, load_next_seq(l), &out->unloaded);
    if (!answered) {
        snprintf(out->broken, sizeof(out->broken), "the unloaded chains were not all answered");
        goto out;
    }

    /* Beside the hostile account: its balance row locked, its mix sent. */
    PGconn *lock = lock_balance(rig, hostile);
    const char *conf[] = {"compression.codec=lz4", "message.max.bytes=4000000", NULL};
    th_producer_t *p = th_producer_new_with(rig->broker, conf);
    load_count_key(l, hostile);
    th_hostile_config_t hc = {.account = hostile,
                              .topic = "tally.requests",
                              .big = cfg->big,
                              .lists = 3,
                              .locked = 1,
                              .burst = cfg->burst};
    rig_cpu_snapshot(rig, &c0);
    int64_t t0 = th_now_ms();
    from = load_next_seq(l);
    th_hostile_send(p, &hc, count_expected, &out->hostile_expected);
    int64_t done_ms = run_beside(l, cfg, out->hostile_expected, t0);
    rig_cpu_snapshot(rig, &c1);
    rig_cpu_split(&c0, &c1, 0, &out->cpu_beside);
    PQclear(PQexec(lock, "ROLLBACK"));
    PQfinish(lock);
    answered = load_wait(l, WAIT_MS);
    out->hostile_answered = load_key_results(l);
    out->hostile_seconds = done_ms > 0 ? (double)(done_ms - t0) / 1000.0 : -1;
    m.inside = false;
    load_stats_where(l, from, load_next_seq(l), keep_account, &m, &out->others);
    m.inside = true;
    load_stats_where(l, from, load_next_seq(l), keep_account, &m, &out->mates);
    th_producer_free(p);
    if (done_ms < 0)
        snprintf(out->broken, sizeof(out->broken),
                 "the hostile account had %lld of %lld results after %d s",
                 (long long)out->hostile_answered, (long long)out->hostile_expected,
                 cfg->max_seconds);
    else if (!answered)
        snprintf(out->broken, sizeof(out->broken), "the chains beside it were not all answered");
out:
    free(m.partition);
}
