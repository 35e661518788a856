/* tally-bench — how close Tally gets, end to end through Kafka, to what
 * PostgreSQL alone does with the same SQL on the same machine.
 *
 * One run starts a private PostgreSQL (tuned like the tests'), measures the
 * limit with pgbench, then for each row a fresh embedded broker and fresh
 * tally-worker replicas, and prints a table whose last line is the ratio of
 * Tally's throughput to the batched limit. bench/run.sh builds a release
 * configuration and runs it; `tally-bench --smoke` is the ctest that keeps it
 * from rotting. The exit status is non-zero only for a broken run (results
 * missing, deliveries failed, a service that would not start), never because
 * a number is slow. */
#include "hostile.h"
#include "lean.h"
#include "load.h"
#include "pgb.h"
#include "procstat.h"
#include "rig.h"
#include "th_hostile.h"
#include "th_internal.h"

#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#ifndef TALLY_BENCH_WORKER_BIN
#define TALLY_BENCH_WORKER_BIN ""
#define TALLY_BENCH_CTL_BIN    ""
#define TALLY_BENCH_MIGRATIONS ""
#define TALLY_BENCH_TMPDIR     "/tmp"
#define TALLY_BENCH_LEAN_SQL   "bench/lean-limit.sql"
#endif

#define MAX_LINES    32
#define MAX_REPLICAS 4
#define MAX_ENV      32

enum {
    ROW_LIMIT = 1 << 0,
    ROW_TALLY = 1 << 1,
    ROW_MIXED = 1 << 2,
    ROW_REPLICAS = 1 << 3,
    ROW_FAIRNESS = 1 << 4,
    ROW_HALFRATE = 1 << 5,
    ROW_BACKLOG = 1 << 6,
    ROW_POOLER = 1 << 7,
    ROW_HOSTILE = 1 << 8,
    ROW_LEAN = 1 << 9,
    ROW_ALL = (1 << 10) - 1,
};

static const struct {
    const char *name;
    unsigned bit;
} row_names[] = {
    {"limit", ROW_LIMIT},       {"lean", ROW_LEAN},         {"tally", ROW_TALLY},
    {"mixed", ROW_MIXED},       {"replicas", ROW_REPLICAS}, {"fairness", ROW_FAIRNESS},
    {"halfrate", ROW_HALFRATE}, {"backlog", ROW_BACKLOG},   {"pooler", ROW_POOLER},
    {"hostile", ROW_HOSTILE},
};

typedef struct opts {
    int n, accounts, partitions, brokers, clients, pgbench_seconds, warmup, fetch_wait_ms;
    int replicas[MAX_REPLICAS], nreplicas;
    unsigned rows;
    double rate;
    int halfrate_seconds;
    int fair_backlog, fair_accounts;
    int hostile_burst, hostile_seconds;
    double hostile_rate;
    int backlog, backlog_partitions, drain_seconds;
    double quiet_load;
    int quiet_wait;
    bool smoke;
    bool tuned;                   /* PostgreSQL tuned like the tests (fsync off, …) */
    bool sql_profile;             /* pg_stat_statements: each row's statements */
    const char *env[MAX_ENV + 3]; /* the user's, then the bench's two, then NULL */
    int nenv;
} opts_t;

/* One row of the table; a negative number prints as "-". */
typedef struct line {
    char name[40];
    int64_t requests;
    double seconds, per_s, p50, p95, p99, max, rss_mb;
    bool has_cpu;
    rig_split_t cpu; /* over the measured window */
    char note[384];
    char *sql; /* --sql-profile: the row's top statements (malloc'd) */
} line_t;

typedef struct bench {
    opts_t o;
    rig_t rig;
    line_t lines[MAX_LINES];
    int nlines;
    int broken; /* rows that failed */
    double limit_batched, lean_batched, tally_per_s;
    int64_t tag; /* unique per run: request ids never collide */
    int rowno;
} bench_t;

/* ---- output ---------------------------------------------------------- */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static line_t *new_line(bench_t *b, const char *name)
{
    if (b->nlines == MAX_LINES)
        fail_msg("bench: too many rows");
    line_t *l = &b->lines[b->nlines++];
    *l = (line_t){.requests = -1,
                  .seconds = -1,
                  .per_s = -1,
                  .p50 = -1,
                  .p95 = -1,
                  .p99 = -1,
                  .max = -1,
                  .rss_mb = -1};
    snprintf(l->name, sizeof(l->name), "%s", name);
    return l;
}

static void cell(FILE *f, double v, int width, int prec)
{
    if (v < 0)
        fprintf(f, " %*s", width, "-");
    else
        fprintf(f, " %*.*f", width, prec, v);
}

static void print_line(FILE *f, const line_t *l)
{
    fprintf(f, "%-28s", l->name);
    if (l->requests < 0)
        fprintf(f, " %8s", "-");
    else
        fprintf(f, " %8lld", (long long)l->requests);
    cell(f, l->seconds, 6, 1);
    cell(f, l->per_s, 7, 0);
    cell(f, l->p50, 7, 1);
    cell(f, l->p95, 7, 1);
    cell(f, l->p99, 7, 1);
    cell(f, l->max, 7, 1);
    cell(f, l->rss_mb, 6, 1);
    fprintf(f, "  %s\n", l->note);
}

static void print_header(FILE *f)
{
    fprintf(f, "%-28s %8s %6s %7s %7s %7s %7s %7s %6s  %s\n", "row", "requests", "s", "req/s",
            "p50 ms", "p95 ms", "p99 ms", "max ms", "RSS MB", "notes");
}

/* Where the CPU went in each row: cores busy, and CPU microseconds per
 * request, which other users' load disturbs much less than req/s. */
static void print_cpu(FILE *f, const line_t *lines, int n)
{
    fprintf(f, "%-28s %6s %6s %6s %6s %6s %6s | %7s %7s %7s %7s %7s\n",
            "cores used / us per request", "pg", "kafka", "tally", "client", "other", "idle", "pg",
            "kafka", "tally", "client", "total");
    for (int i = 0; i < n; i++) {
        const line_t *l = &lines[i];
        if (!l->has_cpu || l->requests <= 0 || l->cpu.seconds <= 0)
            continue;
        const rig_split_t *c = &l->cpu;
        double us = c->seconds * 1e6 / (double)l->requests; /* µs of wall per request */
        fprintf(f, "%-28s %6.2f %6.2f %6.2f %6.2f %6.2f %6.2f | %7.0f %7.0f %7.0f %7.0f %7.0f\n",
                l->name, c->pg, c->kafka, c->tally, c->client, c->other, c->idle, c->pg * us,
                c->kafka * us, c->tally * us, c->client * us,
                (c->pg + c->kafka + c->tally + c->client) * us);
    }
}

static void machine(FILE *f)
{
    struct utsname u;
    uname(&u);
    char model[128] = "?", line[256];
    FILE *c = fopen("/proc/cpuinfo", "r");
    while (c != NULL && fgets(line, sizeof(line), c) != NULL) {
        if (strncmp(line, "model name", 10) == 0) {
            char *v = strchr(line, ':');
            if (v != NULL) {
                snprintf(model, sizeof(model), "%s", v + 2);
                model[strcspn(model, "\n")] = '\0';
            }
            break;
        }
    }
    if (c != NULL)
        fclose(c);
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    fprintf(f, "machine: %ld CPUs (%s), %.1f GiB RAM, %s %s, librdkafka %s\n",
            sysconf(_SC_NPROCESSORS_ONLN), model,
            (double)pages * (double)psize / (1024.0 * 1024 * 1024), u.sysname, u.release,
            rd_kafka_version_str());
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: tally-bench [options]\n"
               "\n"
               "Measures the limits (pgbench with Tally's SQL of payment.record, and with the\n"
               "lean SQL of bench/lean-limit.sql), Tally end to end, and the rows below, on\n"
               "PostgreSQL's durable defaults; prints a table whose last line is the ratio of\n"
               "Tally's throughput to the lean batched limit. Progress goes to stderr, the\n"
               "table to stdout.\n"
               "\n"
               "  --n N                  requests per Tally row (default 50000)\n"
               "  --accounts N           accounts they are spread over (default 1000)\n"
               "  --rows LIST            comma-separated, default all: limit, lean, tally,\n"
               "                         mixed, replicas, fairness, halfrate, backlog, pooler,\n"
               "                         hostile\n"
               "  --replicas LIST        replica counts of the replicas row (default 1,2,4)\n"
               "  --partitions N         request topic partitions (default 16)\n"
               "  --brokers N            embedded brokers (default 1; more cost every client\n"
               "                         CPU, see the README)\n"
               "  --clients N            pgbench clients (default 5, the worker's pool size)\n"
               "  --pgbench-seconds N    each pgbench run (default 15)\n"
               "  --warmup N             requests before each measured Tally row (default 500)\n"
               "  --rate R               the halfrate row's rate (default: half the tally row's)\n"
               "  --halfrate-seconds N   how long the rate-limited producer runs (default 20)\n"
               "  --fair-backlog N       the fairness row's big account backlog (default 20000)\n"
               "  --fair-accounts N      other accounts sending one request each (default 100)\n"
               "  --hostile-burst N      the hostile account's burst (default 20000)\n"
               "  --hostile-rate R       payment chains per second of the 100 well-behaved\n"
               "                         accounts beside it (default 50)\n"
               "  --hostile-seconds N    how long they first run alone (default 20)\n"
               "  --backlog N            requests waiting before the worker starts (default\n"
               "                         1000000)\n"
               "  --backlog-partitions N partitions for it (default 128; each keeps ~5 MB)\n"
               "  --drain-seconds N      how long the worker drains it while sampled (default 30)\n"
               "  --worker-env KEY=VALUE extra environment for every worker (repeatable)\n"
               "  --fetch-wait-ms N      fetch.wait.max.ms of the workers and the result reader\n"
               "                         (default 10, as in the tests: the embedded broker holds\n"
               "                         an empty fetch that long even when data arrives)\n"
               "  --tuned                PostgreSQL tuned like the tests: fsync,\n"
               "                         synchronous_commit and full_page_writes off (default:\n"
               "                         PostgreSQL's durable defaults; --durable says so)\n"
               "  --sql-profile          load pg_stat_statements and print each row's top\n"
               "                         statements (time per call and per request)\n"
               "  --quiet-load L         first wait until the 1-minute load average is <= L\n"
               "  --quiet-wait S         ... for at most S seconds (default 600)\n"
               "  --smoke                every row, tiny: a few hundred requests (the ctest)\n"
               "  --help\n");
}

static int parse_list(const char *arg, int *out, int max)
{
    int n = 0;
    char *copy = strdup(arg), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        int v = atoi(t);
        if (n == max || v < 1 || v > RIG_MAX_WORKERS) {
            free(copy);
            return -1;
        }
        out[n++] = v;
    }
    free(copy);
    return n;
}

static int parse_rows(const char *arg, unsigned *rows)
{
    *rows = 0;
    char *copy = strdup(arg), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        size_t i;
        for (i = 0; i < sizeof(row_names) / sizeof(row_names[0]); i++)
            if (strcmp(t, row_names[i].name) == 0)
                break;
        if (i == sizeof(row_names) / sizeof(row_names[0])) {
            fprintf(stderr, "tally-bench: unknown row '%s'\n", t);
            free(copy);
            return -1;
        }
        *rows |= row_names[i].bit;
    }
    free(copy);
    return 0;
}

static void smoke_defaults(opts_t *o)
{
    o->n = 300;
    o->accounts = 50;
    o->partitions = 4;
    o->replicas[0] = 1;
    o->replicas[1] = 2;
    o->nreplicas = 2;
    o->pgbench_seconds = 2;
    o->warmup = 20;
    o->halfrate_seconds = 3;
    o->fair_backlog = 300;
    o->fair_accounts = 10;
    o->hostile_burst = 300;
    o->hostile_seconds = 2;
    o->hostile_rate = 10;
    o->backlog = 2000;
    o->backlog_partitions = 8;
    o->drain_seconds = 3;
}

static int parse_opts(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.n = 50000,
                  .accounts = 1000,
                  .partitions = 16,
                  .brokers = 1,
                  .clients = 5,
                  .fetch_wait_ms = 10,
                  .pgbench_seconds = 15,
                  .warmup = 500,
                  .replicas = {1, 2, 4},
                  .nreplicas = 3,
                  .rows = ROW_ALL,
                  .halfrate_seconds = 20,
                  .fair_backlog = 20000,
                  .fair_accounts = 100,
                  .hostile_burst = 20000,
                  .hostile_seconds = 20,
                  .hostile_rate = 50,
                  .backlog = 1000000,
                  .backlog_partitions = 128,
                  .drain_seconds = 30,
                  .quiet_load = -1,
                  .quiet_wait = 600};
    /* --smoke first, so that explicit flags override its sizes. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--smoke") == 0) {
            o->smoke = true;
            smoke_defaults(o);
        }
    static const struct option longs[] = {
        {"n", required_argument, 0, 'n'},
        {"accounts", required_argument, 0, 'a'},
        {"rows", required_argument, 0, 'r'},
        {"replicas", required_argument, 0, 'R'},
        {"partitions", required_argument, 0, 'p'},
        {"brokers", required_argument, 0, 'b'},
        {"clients", required_argument, 0, 'c'},
        {"pgbench-seconds", required_argument, 0, 'T'},
        {"warmup", required_argument, 0, 'w'},
        {"rate", required_argument, 0, 'x'},
        {"halfrate-seconds", required_argument, 0, 'H'},
        {"fair-backlog", required_argument, 0, 'F'},
        {"fair-accounts", required_argument, 0, 'f'},
        {"hostile-burst", required_argument, 0, 'U'},
        {"hostile-rate", required_argument, 0, 'V'},
        {"hostile-seconds", required_argument, 0, 'S'},
        {"backlog", required_argument, 0, 'B'},
        {"backlog-partitions", required_argument, 0, 'P'},
        {"drain-seconds", required_argument, 0, 'D'},
        {"worker-env", required_argument, 0, 'e'},
        {"fetch-wait-ms", required_argument, 0, 'W'},
        {"quiet-load", required_argument, 0, 'q'},
        {"quiet-wait", required_argument, 0, 'Q'},
        {"smoke", no_argument, 0, 's'},
        {"durable", no_argument, 0, 'd'},
        {"tuned", no_argument, 0, 't'},
        {"sql-profile", no_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (c) {
        case 'n':
            o->n = atoi(optarg);
            break;
        case 'a':
            o->accounts = atoi(optarg);
            break;
        case 'r':
            if (parse_rows(optarg, &o->rows) != 0)
                return 2;
            break;
        case 'R':
            o->nreplicas = parse_list(optarg, o->replicas, MAX_REPLICAS);
            if (o->nreplicas < 1) {
                fprintf(stderr, "tally-bench: --replicas: up to %d counts of 1-%d\n", MAX_REPLICAS,
                        RIG_MAX_WORKERS);
                return 2;
            }
            break;
        case 'p':
            o->partitions = atoi(optarg);
            break;
        case 'b':
            o->brokers = atoi(optarg);
            break;
        case 'c':
            o->clients = atoi(optarg);
            break;
        case 'T':
            o->pgbench_seconds = atoi(optarg);
            break;
        case 'w':
            o->warmup = atoi(optarg);
            break;
        case 'x':
            o->rate = atof(optarg);
            break;
        case 'H':
            o->halfrate_seconds = atoi(optarg);
            break;
        case 'F':
            o->fair_backlog = atoi(optarg);
            break;
        case 'f':
            o->fair_accounts = atoi(optarg);
            break;
        case 'U':
            o->hostile_burst = atoi(optarg);
            break;
        case 'V':
            o->hostile_rate = atof(optarg);
            break;
        case 'S':
            o->hostile_seconds = atoi(optarg);
            break;
        case 'B':
            o->backlog = atoi(optarg);
            break;
        case 'P':
            o->backlog_partitions = atoi(optarg);
            break;
        case 'D':
            o->drain_seconds = atoi(optarg);
            break;
        case 'e':
            if (o->nenv == MAX_ENV || strchr(optarg, '=') == NULL) {
                fprintf(stderr, "tally-bench: --worker-env KEY=VALUE, at most %d\n", MAX_ENV);
                return 2;
            }
            o->env[o->nenv++] = optarg;
            break;
        case 'W':
            o->fetch_wait_ms = atoi(optarg);
            break;
        case 'q':
            o->quiet_load = atof(optarg);
            break;
        case 'Q':
            o->quiet_wait = atoi(optarg);
            break;
        case 's':
            break;
        case 'd':
            o->tuned = false;
            break;
        case 't':
            o->tuned = true;
            break;
        case 'L':
            o->sql_profile = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc || o->n < 1 || o->accounts < 1 || o->partitions < 1 || o->partitions > 256 ||
        o->brokers < 1 || o->clients < 1 || o->pgbench_seconds < 1 || o->warmup < 0 ||
        o->fair_backlog < 1 || o->fair_accounts < 1 || o->backlog < 1 || o->hostile_burst < 0 ||
        o->hostile_rate < 1 || o->hostile_seconds < 1 || o->backlog_partitions < 1 ||
        o->backlog_partitions > 256 || o->drain_seconds < 1 || o->halfrate_seconds < 1 ||
        o->fetch_wait_ms < 1 || o->fetch_wait_ms > 500) {
        fprintf(stderr, "tally-bench: bad arguments (see --help)\n");
        return 2;
    }
    return -1; /* go on */
}

/* ---- rows ------------------------------------------------------------ */

/* Every request's result within this long after the last was sent, or the
 * run is broken: generous, never a performance judgement. */
static int answer_timeout_ms(int64_t n)
{
    return 120000 + (int)(n * 20 > 1800000 ? 1800000 : n * 20);
}

static void load_line(line_t *l, const load_stats_t *st)
{
    l->requests = st->answered;
    l->seconds = st->seconds;
    l->per_s = st->per_s;
    l->p50 = st->p50_ms;
    l->p95 = st->p95_ms;
    l->p99 = st->p99_ms;
    l->max = st->max_ms;
}

static void row_start(bench_t *b, const char *what)
{
    b->rowno++;
    say("row %s (load average %.2f)", what, procstat_loadavg1());
}

/* pgbench, once with 1 request per transaction and once with 20: Tally's
 * own SQL (lean false) or the lean SQL of bench/lean-limit.sql. */
static void row_limit(bench_t *b, bool lean)
{
    const int per_tx[2] = {1, 20};
    char *text = NULL;
    if (lean) {
        char err[256];
        const char *path = getenv("TALLY_BENCH_LEAN_SQL");
        text = lean_read(path != NULL && *path ? path : TALLY_BENCH_LEAN_SQL, err, sizeof(err));
        if (text == NULL)
            fail_msg("bench: %s", err);
        lean_apply(b->rig.pg, text);
    }
    for (int i = 0; i < 2; i++) {
        char name[40];
        snprintf(name, sizeof(name), "%s %d req/tx", lean ? "lean limit:" : "limit: Tally's SQL,",
                 per_tx[i]);
        row_start(b, name);
        rig_pg_settle(&b->rig);
        pgb_result_t r;
        char err[160];
        line_t *l = new_line(b, name);
        char *script = lean ? lean_script(text, per_tx[i], b->o.accounts)
                            : pgb_tally_script(per_tx[i], b->o.clients, b->o.accounts);
        rig_cpu_t c0, c1;
        rig_sql_profile_reset(&b->rig);
        rig_cpu_snapshot(&b->rig, &c0);
        int rc = pgb_run(b->rig.pg, lean ? "lean" : "tally", script, per_tx[i], b->o.clients,
                         b->o.pgbench_seconds, b->tag + i, &r, err, sizeof(err));
        rig_cpu_snapshot(&b->rig, &c1);
        free(script);
        if (rc != 0) {
            snprintf(l->note, sizeof(l->note), "BROKEN: %.150s", err);
            b->broken++;
            continue;
        }
        l->requests = (int64_t)((double)r.transactions * per_tx[i]);
        l->seconds = r.seconds;
        l->per_s = r.req_per_s;
        l->sql = rig_sql_profile(&b->rig, l->requests);
        rig_cpu_split(&c0, &c1, r.pgbench_cpu_s, &l->cpu);
        l->has_cpu = true;
        snprintf(l->note, sizeof(l->note), "%d clients, -M prepared, %.2f ms per transaction%s",
                 r.clients, r.latency_ms, r.failed > 0 ? ", SOME FAILED" : "");
        if (r.failed > 0)
            b->broken++;
        if (i == 1 && lean)
            b->lean_batched = r.req_per_s;
        else if (i == 1)
            b->limit_batched = r.req_per_s;
    }
    free(text);
}

static load_t *new_load(bench_t *b, int64_t capacity, bool chain, int partitions)
{
    char tag[48];
    snprintf(tag, sizeof(tag), "b%llx-%d", (long long)b->tag, b->rowno);
    load_config_t cfg = {.bootstrap = th_broker_bootstrap(b->rig.broker),
                         .request_topic = "tally.requests",
                         .result_topic = "tally.results",
                         .result_partitions = partitions,
                         .capacity = capacity,
                         .tag = tag,
                         .chain = chain,
                         .linger_ms = 1,
                         .fetch_wait_ms = b->o.fetch_wait_ms};
    return load_new(&cfg);
}

/* Sends the warm-up (excluded from the figures): connections opened,
 * statements prepared, caches filled. */
static bool warm_up(bench_t *b, load_t *l, const char *prefix)
{
    if (b->o.warmup == 0)
        return true;
    load_send_records(l, b->o.warmup, b->o.accounts, prefix, 0);
    return load_wait(l, answer_timeout_ms(b->o.warmup));
}

static void account_prefix(bench_t *b, char *buf, size_t size)
{
    snprintf(buf, size, "acct_%llx_%d", (long long)b->tag, b->rowno);
}

/* Checks the answers of [from, to): false (and a BROKEN note) when some are
 * missing, or when errors were not expected. */
static bool judge(bench_t *b, line_t *l, const load_stats_t *st, bool answered, bool errors_ok)
{
    if (answered && st->answered == st->sent && (errors_ok || st->errors == 0))
        return true;
    snprintf(l->note, sizeof(l->note), "BROKEN: %lld of %lld answered, %lld errors%s%.120s",
             (long long)st->answered, (long long)st->sent, (long long)st->errors,
             st->first_error[0] ? ": " : "", st->first_error);
    b->broken++;
    return false;
}

/* N payment.records (or the mixed chain) through `replicas` workers. */
static double tally_row(bench_t *b, const char *name, int replicas, bool chain, double rate,
                        int64_t n)
{
    row_start(b, name);
    rig_pg_settle(&b->rig);
    rig_broker_start(&b->rig, b->o.partitions);
    rig_workers_start(&b->rig, replicas, true);
    load_t *l = new_load(b, (b->o.warmup + n) * (chain ? 4 : 1) + 8, chain, b->o.partitions);
    char prefix[64];
    account_prefix(b, prefix, sizeof(prefix));
    line_t *line = new_line(b, name);
    double per_s = -1;
    if (!warm_up(b, l, prefix)) {
        snprintf(line->note, sizeof(line->note), "BROKEN: the warm-up was not answered");
        b->broken++;
        goto out;
    }
    pid_t pids[RIG_MAX_WORKERS];
    int parts[RIG_MAX_WORKERS];
    for (int i = 0; i < replicas; i++) {
        pids[i] = th_worker_pid(b->rig.workers[i]);
        parts[i] = rig_worker_partitions(&b->rig, i);
    }
    load_watch(l, pids, replicas);
    rig_cpu_t c0, c1;
    rig_sql_profile_reset(&b->rig);
    rig_cpu_snapshot(&b->rig, &c0);
    int64_t from = load_next_seq(l);
    /* A chain sends a quarter as records; each brings three follow-ups. */
    load_send_records(l, (int)(chain ? n / 4 : n), b->o.accounts, prefix, rate);
    bool answered = load_wait(l, answer_timeout_ms(n));
    rig_cpu_snapshot(&b->rig, &c1);
    load_stats_t st;
    load_stats(l, from, load_next_seq(l), &st);
    load_line(line, &st);
    line->sql = rig_sql_profile(&b->rig, st.answered);
    rig_cpu_split(&c0, &c1, 0, &line->cpu);
    line->has_cpu = true;
    if (!judge(b, line, &st, answered, chain))
        goto out;
    per_s = st.per_s;
    char spread[64] = "";
    for (int i = 0; i < replicas; i++)
        snprintf(spread + strlen(spread), sizeof(spread) - strlen(spread), "%s%d", i ? "/" : "",
                 parts[i]);
    snprintf(line->note, sizeof(line->note),
             "%d partitions (%s), pool 5 per replica; after sending: answered p50 %.0f p99 %.0f, "
             "result produced p50 %.0f p99 %.0f ms",
             b->o.partitions, spread, st.answered_p50_ms, st.answered_p99_ms, st.published_p50_ms,
             st.published_p99_ms);
    if (chain) {
        size_t len = strlen(line->note);
        for (int t = 0; t < LOAD_NTYPES; t++)
            snprintf(line->note + len, sizeof(line->note) - len, "%s%s %lld%s",
                     t == 0 ? "; ok: " : ", ", load_type_name((load_type_t)t),
                     (long long)st.ok_by_type[t], st.errors_by_type[t] ? " (+errors)" : ""),
                len = strlen(line->note);
        if (st.errors > 0)
            snprintf(line->note + len, sizeof(line->note) - len, "; first error: %.80s",
                     st.first_error);
    }
    if (st.duplicates > 0) {
        size_t len = strlen(line->note);
        snprintf(line->note + len, sizeof(line->note) - len, "; %lld duplicate results",
                 (long long)st.duplicates);
    }
out:
    rig_workers_stop(&b->rig);
    int64_t hwm = 0;
    for (int i = 0; i < replicas; i++)
        hwm = b->rig.worker_hwm_kb[i] > hwm ? b->rig.worker_hwm_kb[i] : hwm;
    line->rss_mb = (double)hwm / 1024.0;
    load_free(l);
    rig_broker_stop(&b->rig);
    return per_s;
}

static void row_fairness(bench_t *b)
{
    row_start(b, "fairness");
    rig_pg_settle(&b->rig);
    rig_broker_start(&b->rig, b->o.partitions);
    rig_workers_start(&b->rig, 1, true);
    int64_t cap = b->o.warmup + b->o.fair_backlog + 2 * (int64_t)b->o.fair_accounts + 8;
    load_t *l = new_load(b, cap, false, b->o.partitions);
    char prefix[64], heavy[96], acct[96];
    account_prefix(b, prefix, sizeof(prefix));
    snprintf(heavy, sizeof(heavy), "%s_heavy", prefix);
    line_t *lu = new_line(b, "fairness: unloaded");
    line_t *ll = new_line(b, "fairness: beside a backlog");
    int32_t heavy_part = load_partition(l, heavy, b->o.partitions);
    load_stats_t su, sl;
    if (!warm_up(b, l, prefix)) {
        snprintf(ll->note, sizeof(ll->note), "BROKEN: the warm-up was not answered");
        b->broken++;
        goto out;
    }
    /* The other accounts live in other partitions than the big one: in its
     * own partition, Kafka's order puts them behind the backlog whatever
     * the worker does. */
    char(*others)[96] = calloc((size_t)b->o.fair_accounts, sizeof(*others));
    for (int i = 0, k = 0; i < b->o.fair_accounts; k++) {
        snprintf(acct, sizeof(acct), "%s_small_%d", prefix, k);
        if (b->o.partitions == 1 || load_partition(l, acct, b->o.partitions) != heavy_part)
            snprintf(others[i++], sizeof(others[0]), "%s", acct);
    }
    /* Unloaded: the same burst to an idle worker. */
    int64_t u0 = load_next_seq(l);
    for (int i = 0; i < b->o.fair_accounts; i++)
        load_send_record(l, others[i]);
    bool ok_u = load_wait(l, answer_timeout_ms(b->o.fair_accounts));
    load_stats(l, u0, load_next_seq(l), &su);
    load_line(lu, &su);
    if (!judge(b, lu, &su, ok_u, false)) {
        free(others);
        goto out;
    }
    snprintf(lu->note, sizeof(lu->note), "%d accounts, one request each, sent at once",
             b->o.fair_accounts);

    /* The backlog: queued in full, then the worker is busy with it. */
    int64_t h0 = load_next_seq(l);
    for (int i = 0; i < b->o.fair_backlog; i++)
        load_send_record(l, heavy);
    if (!load_flush(l, 120000) || !load_wait_seq(l, h0 + 1, 120000)) {
        snprintf(ll->note, sizeof(ll->note), "BROKEN: the backlog was not taken up");
        b->broken++;
        free(others);
        goto out;
    }
    int64_t s0 = load_next_seq(l);
    for (int i = 0; i < b->o.fair_accounts; i++)
        load_send_record(l, others[i]);
    free(others);
    bool ok_s = true;
    for (int64_t s = s0; s < s0 + b->o.fair_accounts && ok_s; s++)
        ok_s = load_wait_seq(l, s, answer_timeout_ms(b->o.fair_accounts));
    load_stats(l, s0, load_next_seq(l), &sl);
    load_line(ll, &sl);
    if (!judge(b, ll, &sl, ok_s, false))
        goto out;
    /* How far the backlog had got when the others were served. */
    load_stats_t sh;
    load_stats(l, h0, s0, &sh);
    int64_t heavy_then = sh.answered;
    bool ok_h = load_wait(l, answer_timeout_ms(b->o.fair_backlog));
    load_stats(l, h0, s0, &sh);
    if (!ok_h || sh.answered != b->o.fair_backlog) {
        snprintf(ll->note, sizeof(ll->note), "BROKEN: %lld of %d backlog requests answered",
                 (long long)sh.answered, b->o.fair_backlog);
        b->broken++;
        goto out;
    }
    snprintf(ll->note, sizeof(ll->note),
             "%d accounts outside the big account's partition, one request each, sent while "
             "its %d-request backlog ran (%lld of it answered when they were; it drained at "
             "%.0f req/s); p99 %.1fx the unloaded",
             b->o.fair_accounts, b->o.fair_backlog, (long long)heavy_then, sh.per_s,
             su.p99_ms > 0 ? sl.p99_ms / su.p99_ms : 0);
out:
    rig_workers_stop(&b->rig);
    ll->rss_mb = (double)b->rig.worker_hwm_kb[0] / 1024.0;
    load_free(l);
    rig_broker_stop(&b->rig);
}

static void row_backlog(bench_t *b)
{
    row_start(b, "backlog");
    rig_pg_settle(&b->rig);
    rig_broker_start(&b->rig, b->o.backlog_partitions);
    load_t *l = new_load(b, b->o.backlog + 8, false, b->o.backlog_partitions);
    char prefix[64], name[48];
    account_prefix(b, prefix, sizeof(prefix));
    snprintf(name, sizeof(name), "backlog: %d waiting", b->o.backlog);
    line_t *line = new_line(b, name);
    int64_t t0 = th_now_ms();
    load_send_records(l, b->o.backlog, b->o.accounts, prefix, 0);
    if (!load_flush(l, 600000)) {
        snprintf(line->note, sizeof(line->note), "BROKEN: the backlog could not be produced");
        b->broken++;
        goto out;
    }
    double produce_s = (double)(th_now_ms() - t0) / 1000.0;
    say("backlog of %d produced in %.1f s; starting the worker", b->o.backlog, produce_s);
    rig_workers_start(&b->rig, 1, false);
    pid_t pid = th_worker_pid(b->rig.workers[0]);
    load_watch(l, &pid, 1);
    if (th_worker_wait_partitions(b->rig.workers[0], 1, 120000) < 0) {
        snprintf(line->note, sizeof(line->note), "BROKEN: the worker did not get ready");
        b->broken++;
        goto out;
    }
    rig_cpu_t c0, c1;
    rig_cpu_snapshot(&b->rig, &c0);
    int64_t before = load_answered(l);
    th_sleep_ms(b->o.drain_seconds * 1000);
    rig_cpu_snapshot(&b->rig, &c1);
    int64_t drained = load_answered(l) - before;
    int64_t peak;
    load_watch_peak(l, &peak, NULL);
    rig_cpu_split(&c0, &c1, 0, &line->cpu);
    line->has_cpu = true;
    line->requests = drained;
    line->seconds = b->o.drain_seconds;
    line->per_s = (double)drained / b->o.drain_seconds;
    if (drained == 0) {
        snprintf(line->note, sizeof(line->note), "BROKEN: nothing answered in %d s",
                 b->o.drain_seconds);
        b->broken++;
        goto out;
    }
    snprintf(line->note, sizeof(line->note),
             "%d partitions; the worker started after the backlog was produced and "
             "drained it for %d s once ready: VmRSS peak %.1f MB (RSS column: VmHWM)",
             b->o.backlog_partitions, b->o.drain_seconds, (double)peak / 1024.0);
out:
    rig_workers_stop(&b->rig);
    line->rss_mb = (double)b->rig.worker_hwm_kb[0] / 1024.0;
    load_free(l);
    rig_broker_stop(&b->rig);
}

/* The tally row three ways: direct with named statements (the default),
 * direct with unnamed ones (TALLY_PREPARED_STATEMENTS=off), and through
 * PgBouncer in transaction pooling with unnamed ones, its pool as large as
 * the worker's: what the setting costs, and what the pooler's hop costs. */
static void row_pooler(bench_t *b)
{
    static const struct {
        const char *name, *prepared;
        bool pgbouncer;
    } ways[] = {
        {"pooler: direct, named", "TALLY_PREPARED_STATEMENTS=on", false},
        {"pooler: direct, unnamed", "TALLY_PREPARED_STATEMENTS=off", false},
        {"pooler: pgbouncer, unnamed", "TALLY_PREPARED_STATEMENTS=off", true},
    };
    for (size_t i = 0; i < sizeof(ways) / sizeof(ways[0]); i++) {
        char url[256] = "";
        const char *env[] = {ways[i].prepared, NULL, NULL};
        if (ways[i].pgbouncer) {
            rig_pgbouncer_start(&b->rig, 5);
            rig_pgbouncer_url(&b->rig, url, sizeof(url));
            env[1] = url;
        }
        b->rig.row_env = env;
        tally_row(b, ways[i].name, 1, false, 0, b->o.n);
        b->rig.row_env = NULL;
        line_t *l = &b->lines[b->nlines - 1];
        size_t len = strlen(l->note);
        snprintf(l->note + len, sizeof(l->note) - len, "; %s%s", ways[i].prepared,
                 ways[i].pgbouncer ? "" : ", direct");
        if (ways[i].pgbouncer) {
            len = strlen(l->note);
            snprintf(l->note + len, sizeof(l->note) - len,
                     ", pgbouncer 1.18 transaction pool 5: %.2f cores", l->cpu.pooler);
            rig_pgbouncer_stop(&b->rig);
        }
    }
}

typedef struct cores_text {
    char s[96];
} cores_text_t;

/* "pg 1.20, kafka 0.05, tally 0.40, client 0.05, other 0.10, idle 0.20" */
static cores_text_t cores(const rig_split_t *c)
{
    cores_text_t t;
    snprintf(t.s, sizeof(t.s),
             "pg %.2f, kafka %.2f, tally %.2f, client %.2f, other %.2f, idle %.2f", c->pg, c->kafka,
             c->tally, c->client, c->other, c->idle);
    return t;
}

/* 100 well-behaved accounts' payment chains alone, then beside a hostile
 * account (hostile.h); their p99 beside it against the unloaded p99. */
static void row_hostile(bench_t *b)
{
    row_start(b, "hostile");
    rig_pg_settle(&b->rig);
    rig_broker_start(&b->rig, b->o.partitions);
    /* The smoke run shortens the locked payment's retry budget (~25 s). */
    const char *env[] = {"TALLY_REPLY_TO_PATTERN=" TH_HOSTILE_REPLY_TO_PATTERN,
                         "TALLY_LOCK_TIMEOUT_MS=200", "TALLY_MAX_RETRIES=2", NULL};
    if (!b->o.smoke)
        env[1] = NULL;
    b->rig.row_env = env;
    rig_workers_start(&b->rig, 1, true);
    b->rig.row_env = NULL;
    hostile_config_t hc = {.accounts = 100,
                           .rate = b->o.hostile_rate,
                           .unloaded_seconds = b->o.hostile_seconds,
                           .max_seconds = 600,
                           .big = b->o.smoke ? 10 : 100,
                           .burst = b->o.hostile_burst};
    int64_t cap =
        b->o.warmup + (int64_t)(hc.rate * (hc.unloaded_seconds + hc.max_seconds + 2)) * 4 + 64;
    load_t *l = new_load(b, cap, true, b->o.partitions);
    char prefix[64];
    account_prefix(b, prefix, sizeof(prefix));
    hc.prefix = prefix;
    line_t *lu = new_line(b, "hostile: unloaded");
    line_t *lo = new_line(b, "hostile: beside, others");
    line_t *lm = new_line(b, "hostile: beside, its mates");
    if (!warm_up(b, l, prefix)) {
        snprintf(lo->note, sizeof(lo->note), "BROKEN: the warm-up was not answered");
        b->broken++;
        goto out;
    }
    hostile_result_t r;
    hostile_run(&b->rig, l, &hc, &r);
    load_line(lu, &r.unloaded);
    load_line(lo, &r.others);
    load_line(lm, &r.mates);
    if (r.broken[0] != '\0') {
        snprintf(lo->note, sizeof(lo->note), "BROKEN: %s", r.broken);
        b->broken++;
        goto out;
    }
    if (!judge(b, lu, &r.unloaded, true, false) || !judge(b, lo, &r.others, true, false) ||
        !judge(b, lm, &r.mates, true, false))
        goto out;
    snprintf(lu->note, sizeof(lu->note),
             "%d accounts, %.0f payment chains/s (record, allocate, refund, payout) for %d s; "
             "cores: %s",
             hc.accounts, hc.rate, hc.unloaded_seconds, cores(&r.cpu_alone).s);
    snprintf(lo->note, sizeof(lo->note),
             "the %d accounts outside the hostile account's partition, while its %lld requests "
             "(%d-request burst) were answered in %.1f s; p99 %.1fx the unloaded (to the answer "
             "%.0f, to the result produced %.0f ms; unloaded %.0f, %.0f); cores: %s",
             hc.accounts - r.mates_accounts, (long long)r.hostile_expected, hc.burst,
             r.hostile_seconds, r.unloaded.p99_ms > 0 ? r.others.p99_ms / r.unloaded.p99_ms : 0,
             r.others.answered_p99_ms, r.others.published_p99_ms, r.unloaded.answered_p99_ms,
             r.unloaded.published_p99_ms, cores(&r.cpu_beside).s);
    snprintf(lm->note, sizeof(lm->note),
             "the %d accounts in its partition: behind its backlog in Kafka's order; p99 %.1fx "
             "the unloaded",
             r.mates_accounts, r.unloaded.p99_ms > 0 ? r.mates.p99_ms / r.unloaded.p99_ms : 0);
out:
    rig_workers_stop(&b->rig);
    lo->rss_mb = (double)b->rig.worker_hwm_kb[0] / 1024.0;
    load_free(l);
    rig_broker_stop(&b->rig);
}

/* ---- main -------------------------------------------------------------- */

static void default_env(const char *name, const char *value)
{
    if (getenv(name) == NULL || *getenv(name) == '\0')
        setenv(name, value, 1);
}

static void wait_quiet(const opts_t *o)
{
    if (o->quiet_load < 0)
        return;
    int64_t deadline = th_now_ms() + (int64_t)o->quiet_wait * 1000;
    double l;
    while ((l = procstat_loadavg1()) > o->quiet_load && th_now_ms() < deadline) {
        say("load average %.2f > %.2f: waiting (at most %d s in all)", l, o->quiet_load,
            o->quiet_wait);
        th_sleep_ms(15000);
    }
}

int main(int argc, char **argv)
{
    bench_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return 1;
    int rc = parse_opts(argc, argv, &b->o);
    if (rc >= 0) {
        free(b);
        return rc;
    }
    opts_t *o = &b->o;
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* The harness's paths: CTest sets them; standalone, the build's own. */
    default_env("TALLY_WORKER_BIN", TALLY_BENCH_WORKER_BIN);
    default_env("TALLYCTL_BIN", TALLY_BENCH_CTL_BIN);
    default_env("TALLY_MIGRATIONS_DIR", TALLY_BENCH_MIGRATIONS);
    default_env("TALLY_TEST_TMPDIR", TALLY_BENCH_TMPDIR);
    b->tag = (int64_t)time(NULL);
    int nuser = o->nenv;
    o->env[o->nenv++] = "TALLY_POOL_MAX=5";
    char fetch_wait[48];
    snprintf(fetch_wait, sizeof(fetch_wait), "KAFKA_FETCH_WAIT_MAX_MS=%d", o->fetch_wait_ms);
    o->env[o->nenv++] = fetch_wait;
    o->env[o->nenv] = NULL;
    b->rig.worker_env = o->env;
    b->rig.brokers = o->brokers;

    wait_quiet(o);
    FILE *out = stdout;
    machine(out);
    fprintf(out, "load average (1 min) at start: %.2f\n", procstat_loadavg1());
    rig_pg_start(&b->rig, out, !o->tuned, o->sql_profile);
    fprintf(out,
            "kafka: embedded broker (librdkafka mock cluster, %d broker%s), fresh for each row; "
            "consumers use fetch.wait.max.ms=%d\n",
            o->brokers, o->brokers == 1 ? "" : "s", o->fetch_wait_ms);
    fprintf(out, "tally: %d requests per row over %d accounts, %d partitions, pool 5%s\n", o->n,
            o->accounts, o->partitions, nuser > 0 ? ", worker env:" : "");
    for (int i = 0; i < nuser; i++)
        fprintf(out, "  %s\n", o->env[i]);

    if (o->rows & ROW_LIMIT)
        row_limit(b, false);
    if (o->rows & ROW_LEAN)
        row_limit(b, true);
    if (o->rows & ROW_TALLY) {
        b->tally_per_s = tally_row(b, "tally: payment.record", 1, false, 0, o->n);
    }
    if (o->rows & ROW_MIXED)
        tally_row(b, "tally: mixed", 1, true, 0, o->n);
    if (o->rows & ROW_REPLICAS) {
        for (int i = 0; i < o->nreplicas; i++) {
            char name[40];
            snprintf(name, sizeof(name), "replicas: %d", o->replicas[i]);
            tally_row(b, name, o->replicas[i], false, 0, o->n);
        }
    }
    if (o->rows & ROW_FAIRNESS)
        row_fairness(b);
    if (o->rows & ROW_HALFRATE) {
        double rate = o->rate > 0 ? o->rate : b->tally_per_s / 2;
        if (rate <= 0) {
            line_t *l = new_line(b, "halfrate");
            snprintf(l->note, sizeof(l->note), "skipped: needs the tally row or --rate");
        } else {
            char name[40];
            snprintf(name, sizeof(name), "halfrate: %.0f req/s", rate);
            int64_t n = (int64_t)(rate * o->halfrate_seconds);
            tally_row(b, name, 1, false, rate, n > 0 ? n : 1);
        }
    }
    if (o->rows & ROW_BACKLOG)
        row_backlog(b);
    if (o->rows & ROW_POOLER)
        row_pooler(b);
    if (o->rows & ROW_HOSTILE)
        row_hostile(b);

    rig_stop(&b->rig);
    fprintf(out, "load average (1 min) at the end: %.2f\n\n", procstat_loadavg1());
    print_header(out);
    for (int i = 0; i < b->nlines; i++)
        print_line(out, &b->lines[i]);
    fprintf(out, "\n");
    print_cpu(out, b->lines, b->nlines);
    fprintf(out, "\n");
    for (int i = 0; i < b->nlines; i++) {
        if (b->lines[i].sql != NULL)
            fprintf(out, "sql profile: %s\n%s\n", b->lines[i].name, b->lines[i].sql);
        free(b->lines[i].sql);
    }
    if (b->tally_per_s > 0 && b->limit_batched > 0)
        fprintf(out, "Tally %.0f req/s / batched limit with Tally's SQL %.0f req/s = %.2f\n",
                b->tally_per_s, b->limit_batched, b->tally_per_s / b->limit_batched);
    if (b->tally_per_s > 0 && b->lean_batched > 0)
        fprintf(out, "ratio: Tally %.0f req/s / lean batched limit %.0f req/s = %.2f\n",
                b->tally_per_s, b->lean_batched, b->tally_per_s / b->lean_batched);
    else
        fprintf(out, "ratio: - (needs the lean and tally rows)\n");
    int broken = b->broken;
    free(b);
    if (broken > 0)
        say("%d row(s) broken", broken);
    return broken > 0 ? 1 : 0;
}
