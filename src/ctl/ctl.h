/* ctl — tallyctl's commands and the little they share.
 *
 * Each command is `int ctl_<name>(int argc, char **argv)`: argv[0] is the
 * command's name, the rest its own arguments. It prints its usage on stdout
 * and returns 0 for --help, and returns the process exit code: CTL_OK,
 * CTL_FAILED (the work failed), CTL_USAGE (bad flags or values, after a
 * message on stderr naming the culprit). Register a new command in main.c's
 * table. */
#ifndef TALLY_CTL_H
#define TALLY_CTL_H

#include <stdbool.h>

enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

/* `tallyctl broker`: the embedded Kafka broker (broker.c). */
int ctl_broker(int argc, char **argv);

/* `tallyctl migrate`: applies the migrations directory in order (migrate.c). */
int ctl_migrate(int argc, char **argv);

/* `tallyctl enqueue`: sends requests, waits for acknowledgements and results (enqueue.c). */
int ctl_enqueue(int argc, char **argv);

/* `tallyctl results`: follows a results topic with filters (results.c). */
int ctl_results(int argc, char **argv);

/* `tallyctl dlq list|redrive`: shows dead letters, sends chosen ones back (dlq.c). */
int ctl_dlq(int argc, char **argv);

/* `tallyctl health`: a worker's /readyz (health.c). */
int ctl_health(int argc, char **argv);

/* `tallyctl payouts due`: enqueues the payouts a schedule makes due (payouts.c). */
int ctl_payouts(int argc, char **argv);

/* `tallyctl hold`, `release`, `holds`: an operator's holds on accounts (holds.c). */
int ctl_hold(int argc, char **argv);
int ctl_release(int argc, char **argv);
int ctl_holds(int argc, char **argv);

/* Parses a whole decimal integer in [min, max]; false otherwise. */
bool ctl_parse_long(const char *s, long min, long max, long *out);

/* Prints "tallyctl <cmd>: <message>" and a pointer to --help on stderr;
 * returns CTL_USAGE. */
int ctl_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
