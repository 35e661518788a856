/* pgb — the limit: pgbench running the SQL of one payment.record exactly as
 * Tally sends it (tenant setting, outcome claim, payment insert with its
 * balance trigger, outcome store, audit row, savepoints), as the worker's
 * role so that row-level security applies, with prepared statements.
 *
 * pgbench variables are numbers, so the texts Tally binds as parameters
 * (account, request id, payload, stored response) are built in SQL by
 * concatenation from them; each request uses its own account and ids. The
 * accounts are split among the clients, so no two open transactions ever
 * hold the same account: like Tally, which runs one request of an account at
 * a time, it is not a hot-row test. */
#ifndef TALLY_BENCH_PGB_H
#define TALLY_BENCH_PGB_H

#include "harness.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pgb_result {
    int per_tx; /* requests per transaction */
    int clients;
    double seconds;       /* pgbench -T */
    double tps;           /* transactions per second, without connection time */
    double req_per_s;     /* tps × per_tx */
    double latency_ms;    /* average transaction latency */
    int64_t transactions; /* committed */
    int64_t failed;
    double pgbench_cpu_s; /* CPU seconds pgbench itself used */
} pgb_result_t;

/* The pgbench script for per_tx requests per transaction, accounts split in
 * slices of `slice` per client. Malloc'd; the caller frees it. */
char *pgb_script(int per_tx, int slice);

/* The script of pgb_script for accounts split among clients. Malloc'd. */
char *pgb_tally_script(int per_tx, int clients, int accounts);

/* Runs pgbench -n -M prepared -c clients -j 1 -T seconds with script (per_tx
 * requests per transaction; name names its files) against pg's database
 * "tally" as tally_worker, with the variables i=0 and run=run_tag (unique per
 * run: Tally's script tags its ids with it), and fills *out. Returns 0, or
 * -1 with a reason in err. */
int pgb_run(const th_pg_t *pg, const char *name, const char *script, int per_tx, int clients,
            int seconds, int64_t run_tag, pgb_result_t *out, char *err, size_t errsize);

#endif
