/* tallyctl — the operator's and producer's tool: one binary, one command per
 * module (ctl.h). This file only dispatches. */
#include "ctl.h"

#include "common/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"broker", ctl_broker, "run the embedded Kafka broker (development and tests only)"},
    {"migrate", ctl_migrate, "apply the database migrations (or --status)"},
    {"enqueue", ctl_enqueue, "send requests (JSON lines or flags); --wait prints the results"},
    {"results", ctl_results, "follow a results topic, filtered by account, correlation or id"},
    {"dlq", ctl_dlq, "list dead letters with their reasons; redrive chosen ones"},
    {"health", ctl_health, "ask a worker whether it is ready (/readyz)"},
    {"payouts", ctl_payouts, "payouts due: enqueue the payouts a schedule makes due"},
    {"hold", ctl_hold, "hold an account: its requests are answered account_held"},
    {"release", ctl_release, "release a held account"},
    {"holds", ctl_holds, "list the held accounts"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: tallyctl <command> [options]\n"
                 "       tallyctl <command> --help\n"
                 "       tallyctl --version\n\n"
                 "Tally's operator and producer tool.\n\n"
                 "Commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

bool ctl_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0')
        return false;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int ctl_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tallyctl %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n(see tallyctl %s --help)\n", cmd);
    va_end(ap);
    return CTL_USAGE;
}

int main(int argc, char **argv)
{
    /* The one out-of-memory policy (common/mem.h), jansson's allocations too. */
    mem_use_for_jansson();
    if (argc < 2) {
        usage(stderr);
        return CTL_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return CTL_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("tallyctl %s\n", TALLY_VERSION);
        return CTL_OK;
    }
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(name, commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "tallyctl: unknown command '%s' (see tallyctl --help)\n", name);
    return CTL_USAGE;
}
