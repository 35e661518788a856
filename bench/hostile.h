/* hostile — the benchmark's hostile row: what one account's abuse costs the
 * others' latency (issue 11).
 *
 * Well-behaved accounts send payment chains (payment.record, then
 * share.allocate, payment.refund and payout.create, each after the one
 * before was answered; the load's chain mode) at a steady rate: first alone
 * for a while (the unloaded figures), then beside one hostile account that
 * sends th_hostile.h's mix — the largest payments and lists of them,
 * refused reply_tos, numbers out of range, dead letters, a payment whose
 * balance row an outside session keeps locked through its whole retry
 * budget, and a burst — until every hostile request is answered. The
 * figures beside it are split: the accounts outside the hostile account's
 * partition (which the worker's fairness protects) and its partition-mates
 * (whose requests Kafka orders behind the hostile backlog beyond the
 * read-ahead window).
 *
 * Harness style: a setup failure fails the program; a run that does not
 * complete says so in broken. */
#ifndef TALLY_BENCH_HOSTILE_H
#define TALLY_BENCH_HOSTILE_H

#include "load.h"
#include "rig.h"

#define HOSTILE_ACCOUNT_MAX 96

typedef struct hostile_config {
    const char *prefix; /* the well-behaved accounts: <prefix>_0 … <prefix>_<accounts-1> */
    int accounts;
    double rate;          /* chains started per second */
    int unloaded_seconds; /* how long they run alone */
    int max_seconds;      /* bound on the run beside the hostile account */
    int big, burst;       /* th_hostile sizes */
} hostile_config_t;

typedef struct hostile_result {
    load_stats_t unloaded; /* every well-behaved account, alone */
    load_stats_t others;   /* beside the hostile account, outside its partition */
    load_stats_t mates;    /* beside it, in its partition */
    int mates_accounts;    /* how many of the accounts share its partition */
    int64_t hostile_expected, hostile_answered;
    double hostile_seconds;            /* from its first request to its last result */
    rig_split_t cpu_alone, cpu_beside; /* where the CPU went meanwhile */
    char broken[200];                  /* "" when the row completed */
} hostile_result_t;

/* Runs the row on the rig's broker and worker with l (a chain load). */
void hostile_run(rig_t *rig, load_t *l, const hostile_config_t *cfg, hostile_result_t *out);

#endif
