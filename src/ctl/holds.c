/* tallyctl hold, release, holds — an operator's holds on accounts
 * (CONTRACT.md §7; access/holds.h). While an account is held, every worker
 * answers its requests `account_held` within 5 s and applies nothing; the
 * others are served as before. Over the operator's connection, like
 * `tallyctl migrate`. */
#include "ctl.h"

#include "access/account.h"
#include "access/holds.h"
#include "common/clock.h"
#include "common/mem.h"
#include "common/utf8.h"

#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char hold_usage[] =
    "Usage: tallyctl hold ACCOUNT --reason TEXT [--by NAME]\n"
    "\n"
    "Holds ACCOUNT: within 5 s every worker answers its requests account_held,\n"
    "audited but not applied (send them again after the release), and serves every\n"
    "other account as before. Holds are by id: an account that has sent nothing\n"
    "yet can be held. Holding a held account again replaces its reason.\n"
    "\n"
    "  --reason TEXT  why (required, 1-1000 characters): the next operator reads it\n"
    "  --by NAME      who holds it (default: $USER)\n"
    "  -h, --help     this text\n"
    "\n"
    "Connects with MIGRATION_DATABASE_URL, else DATABASE_URL (the owner's role).\n"
    "Exit status: 0 held, 1 failure, 2 usage.\n";

static const char release_usage[] =
    "Usage: tallyctl release ACCOUNT\n"
    "\n"
    "Ends the hold on ACCOUNT: within 5 s every worker applies its requests again\n"
    "(those answered account_held meanwhile were not applied: send them again).\n"
    "\n"
    "Connects with MIGRATION_DATABASE_URL, else DATABASE_URL (the owner's role).\n"
    "Exit status: 0 released, 1 failure or ACCOUNT was not held, 2 usage.\n";

static const char holds_usage[] =
    "Usage: tallyctl holds [--json]\n"
    "\n"
    "Lists the held accounts: account, since when, by whom, why.\n"
    "\n"
    "  --json      one JSON object per hold: {\"account\", \"reason\", \"held_by\",\n"
    "              \"db_role\", \"held_at\"}\n"
    "  -h, --help  this text\n"
    "\n"
    "Connects with MIGRATION_DATABASE_URL, else DATABASE_URL (the owner's role).\n"
    "Exit status: 0 listed, 1 failure, 2 usage.\n";

enum { O_REASON = 1, O_BY, O_JSON };

/* The operator's connection string, or NULL. */
static const char *operator_url(void)
{
    const char *url = getenv("MIGRATION_DATABASE_URL");
    if (url == NULL || url[0] == '\0')
        url = getenv("DATABASE_URL");
    return url != NULL && url[0] != '\0' ? url : NULL;
}

typedef struct args {
    const char *account, *reason, *by;
    bool json;
} args_t;

/* Parses cmd's arguments: ACCOUNT when takes_account, --reason and --by
 * for hold, --json for holds. Returns CTL_OK to go on, -1 after --help, or
 * the exit code of a usage error (after its message). */
static int parse(const char *cmd, const char *usage, bool takes_account, int argc, char **argv,
                 args_t *a)
{
    static const struct option longopts[] = {
        {"reason", required_argument, NULL, O_REASON},
        {"by", required_argument, NULL, O_BY},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *a = (args_t){0};
    int c, li = -1;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, &li)) != -1) {
        bool allowed = (c == O_REASON || c == O_BY) ? strcmp(cmd, "hold") == 0
                       : c == O_JSON                ? strcmp(cmd, "holds") == 0
                                                    : true;
        if (c == 'h') {
            fputs(usage, stdout);
            return -1;
        }
        if (c == '?')
            return ctl_usage_error(cmd, "unknown or incomplete option %s", argv[optind - 1]);
        if (!allowed)
            return ctl_usage_error(cmd, "unknown option --%s", longopts[li].name);
        if (c == O_REASON)
            a->reason = optarg;
        else if (c == O_BY)
            a->by = optarg;
        else
            a->json = true;
    }
    if (takes_account && optind < argc)
        a->account = argv[optind++];
    if (optind < argc)
        return ctl_usage_error(cmd, "unexpected argument \"%s\"", argv[optind]);
    if (takes_account && a->account == NULL)
        return ctl_usage_error(cmd, "which account? (tallyctl %s ACCOUNT)", cmd);
    access_account_t acct;
    if (a->account != NULL && !access_account_parse(a->account, strlen(a->account), &acct))
        return ctl_usage_error(cmd, "\"%s\" is not an account id (1-64 of A-Z a-z 0-9 _ -)",
                               a->account);
    if (operator_url() == NULL)
        return ctl_usage_error(cmd, "set MIGRATION_DATABASE_URL or DATABASE_URL");
    return CTL_OK;
}

/* A text of 1 to max characters of valid UTF-8 without control characters. */
static bool good_text(const char *s, size_t max)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    }
    return len > 0 && utf8_valid(s, len, NULL) && utf8_chars(s, len) <= max;
}

static const char *at(int64_t ms, char *buf, size_t size)
{
    return clock_format_rfc3339(ms, buf, size);
}

int ctl_hold(int argc, char **argv)
{
    args_t a;
    int rc = parse("hold", hold_usage, true, argc, argv, &a);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    if (a.reason == NULL)
        return ctl_usage_error("hold", "--reason is required: say why, for the next operator");
    if (!good_text(a.reason, ACCESS_HOLD_REASON_MAX))
        return ctl_usage_error("hold", "--reason: 1-%d characters of text, no control characters",
                               ACCESS_HOLD_REASON_MAX);
    const char *by = a.by != NULL ? a.by : getenv("USER");
    if (by == NULL || by[0] == '\0')
        by = getenv("LOGNAME");
    char uid[32];
    if (by == NULL || by[0] == '\0') {
        snprintf(uid, sizeof(uid), "uid %ld", (long)getuid());
        by = uid;
    }
    if (!good_text(by, ACCESS_HOLD_BY_MAX))
        return ctl_usage_error("hold", "--by: 1-%d characters of text", ACCESS_HOLD_BY_MAX);
    char err[1024];
    bool was = false;
    access_hold_t *prev = mem_calloc(1, sizeof(*prev));
    if (access_holds_put(operator_url(), a.account, a.reason, by, &was, prev, err, sizeof(err)) !=
        0) {
        fprintf(stderr, "tallyctl hold: error: %s\n", err);
        free(prev);
        return CTL_FAILED;
    }
    char when[CLOCK_RFC3339_LEN + 1];
    printf("held %s (by %s): %s\n", a.account, by, a.reason);
    if (was)
        printf("  it was held already, since %s by %s: %s\n",
               at(prev->held_at_ms, when, sizeof(when)), prev->held_by, prev->reason);
    free(prev);
    return CTL_OK;
}

int ctl_release(int argc, char **argv)
{
    args_t a;
    int rc = parse("release", release_usage, true, argc, argv, &a);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    char err[1024];
    bool was = false;
    access_hold_t *gone = mem_calloc(1, sizeof(*gone));
    rc = CTL_OK;
    if (access_holds_remove(operator_url(), a.account, &was, gone, err, sizeof(err)) != 0) {
        fprintf(stderr, "tallyctl release: error: %s\n", err);
        rc = CTL_FAILED;
    } else if (!was) {
        fprintf(stderr, "tallyctl release: %s is not held (tallyctl holds lists the holds)\n",
                a.account);
        rc = CTL_FAILED;
    } else {
        char when[CLOCK_RFC3339_LEN + 1];
        printf("released %s (held since %s by %s: %s)\n", a.account,
               at(gone->held_at_ms, when, sizeof(when)), gone->held_by, gone->reason);
    }
    free(gone);
    return rc;
}

static void print_json(const access_hold_t *h)
{
    char when[CLOCK_RFC3339_LEN + 1];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "account", h->account, "reason", h->reason,
                          "held_by", h->held_by, "db_role", h->db_role, "held_at",
                          at(h->held_at_ms, when, sizeof(when)));
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("%s\n", text);
    free(text);
    json_decref(o);
}

int ctl_holds(int argc, char **argv)
{
    args_t a;
    int rc = parse("holds", holds_usage, false, argc, argv, &a);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;
    char err[1024];
    access_hold_t *rows = NULL;
    size_t n = 0;
    if (access_holds_list(operator_url(), &rows, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "tallyctl holds: error: %s\n", err);
        return CTL_FAILED;
    }
    if (n == 0 && !a.json)
        printf("no account is held\n");
    else if (!a.json)
        printf("%-24s  %-24s  %-16s  %s\n", "ACCOUNT", "HELD AT", "HELD BY", "REASON");
    for (size_t i = 0; i < n; i++) {
        char when[CLOCK_RFC3339_LEN + 1];
        if (a.json)
            print_json(&rows[i]);
        else
            printf("%-24s  %-24s  %-16s  %s\n", rows[i].account,
                   at(rows[i].held_at_ms, when, sizeof(when)), rows[i].held_by, rows[i].reason);
    }
    free(rows);
    return CTL_OK;
}
