/* it_db_common — helpers of the tests that put something between the worker
 * and PostgreSQL (it_pooler: PgBouncer; it_failover: a standby that takes
 * over): a metric read from /metrics, readiness waits, the partitions shared
 * by a group, the DLQ checked empty, and the balances recomputed from the
 * rows. Header-only (static functions), like it_e2e_common.h. */
#ifndef TALLY_IT_DB_COMMON_H
#define TALLY_IT_DB_COMMON_H

#include "it_e2e_common.h"

/* The value of an unlabelled sample of the worker's /metrics ("name value"),
 * or -1 when the scrape failed or the sample is absent. */
static inline double db_metric(th_worker_t *w, const char *name)
{
    char *body = NULL;
    double v = -1;
    if (th_worker_http_get(w, "/metrics", &body, 5000) == 200 && body != NULL) {
        size_t n = strlen(name);
        for (const char *line = body; line != NULL && *line != '\0';) {
            if (strncmp(line, name, n) == 0 && line[n] == ' ') {
                v = strtod(line + n + 1, NULL);
                break;
            }
            line = strchr(line, '\n');
            line = line != NULL ? line + 1 : NULL;
        }
    }
    free(body);
    return v;
}

/* Polls /readyz (every 100 ms, at most timeout_ms) until it answers status
 * with a body containing needle (NULL: any body). */
static inline bool db_wait_readyz(th_worker_t *w, int status, const char *needle, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        char *body = NULL;
        int st = th_worker_http_get(w, "/readyz", &body, 2000);
        bool hit = st == status && (needle == NULL || (body != NULL && strstr(body, needle)));
        free(body);
        if (hit)
            return true;
        if (it_now_ms() > end)
            return false;
        usleep(100 * 1000);
    }
}

/* Waits (at most 60 s) until the n workers hold all partitions between
 * them, each some. */
static inline void db_wait_shared(th_worker_t *const *w, int n, int partitions)
{
    int64_t end = it_now_ms() + 60000;
    for (;;) {
        int sum = 0, least = partitions;
        for (int i = 0; i < n; i++) {
            int k = e2e_assigned(w[i]);
            sum += k;
            least = k < least ? k : least;
        }
        if (sum == partitions && least > 0)
            return;
        if (it_now_ms() > end)
            fail_msg("partitions not shared by %d workers (%d of %d assigned)", n, sum, partitions);
        usleep(200 * 1000);
    }
}

/* Fails the test if the DLQ holds any message (read from the beginning for
 * wait_ms: an `internal` answer's copy is published with its result, which
 * the caller has already seen). */
static inline void db_expect_dlq_empty(const th_broker_t *b, int wait_ms)
{
    th_consumer_t *c = th_consumer_new(b, DLQ_TOPIC);
    th_msg_t m;
    int n = th_consume(c, &m, 1, wait_ms);
    if (n > 0) {
        char text[256];
        snprintf(text, sizeof(text), "%.200s", m.value);
        th_msg_clear(&m);
        th_consumer_free(c);
        fail_msg("the DLQ is not empty: %s", text);
    }
    th_consumer_free(c);
}

/* Balance rows that differ from a recomputation from the payments and
 * payouts (available, pending_payouts, paid_out per account and currency),
 * counted as postgres over the accounts whose id starts with prefix. */
static inline int64_t db_balance_mismatches(const th_pg_t *pg, const char *prefix)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "WITH p AS (SELECT account_id, currency, sum(amount - amount_refunded) AS net"
             "             FROM stripe_payments WHERE status IN ('succeeded', 'refunded')"
             "            GROUP BY 1, 2),"
             "     o AS (SELECT account_id, currency,"
             "                  sum(amount) FILTER (WHERE status IN ('pending', 'paid')) AS held,"
             "                  sum(amount) FILTER (WHERE status = 'pending') AS pending,"
             "                  sum(amount) FILTER (WHERE status = 'paid') AS paid"
             "             FROM pay_out GROUP BY 1, 2),"
             "     want AS (SELECT account_id, currency,"
             "                     coalesce(p.net, 0) - coalesce(o.held, 0) AS available,"
             "                     coalesce(o.pending, 0) AS pending, coalesce(o.paid, 0) AS paid"
             "                FROM p FULL JOIN o USING (account_id, currency))"
             " SELECT count(*) FROM want FULL JOIN account_balances b USING (account_id, currency)"
             "  WHERE coalesce(want.account_id, b.account_id) LIKE '%s%%'"
             "    AND (want.account_id IS NULL OR b.account_id IS NULL"
             "         OR (want.available, want.pending, want.paid)"
             "            IS DISTINCT FROM (b.available, b.pending_payouts, b.paid_out))",
             prefix);
    return th_pg_i64(pg, "postgres", sql);
}

#endif
