/* tallyctl payouts due — scheduled payouts (CONTRACT.md §6, payment
 * settings): finds what a payout schedule makes due (access/schedule.h) and
 * enqueues one ordinary payout.create per account and currency, whose id
 * names the schedule, the period and the currency. The worker applies each
 * effectively once, so a second run in the same period is a replay. */
#include "ctl.h"

#include "access/schedule.h"
#include "common/enumstr.h"
#include "common/mem.h"
#include "handlers/currency.h"
#include "kafka_client.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "Usage: tallyctl payouts due --schedule daily|weekly|monthly [--at DATE] [--dry-run]\n"
    "                            [--json] [--topic NAME] [--brokers …] [-X KEY=VALUE]\n"
    "\n"
    "For every account whose payout_schedule is SCHEDULE, enqueues one payout.create\n"
    "per currency of its whole available balance when that is at least its\n"
    "min_payout_amount, to its default route (no route_id). The request's id, and the\n"
    "payout's description, is auto_<schedule>_<period>_<currency>:\n"
    "\n"
    "  daily    auto_daily_2026-12-02_usd     the UTC date\n"
    "  weekly   auto_weekly_2026-W49_usd      the ISO 8601 week (Monday to Sunday, UTC)\n"
    "  monthly  auto_monthly_2026-12_usd      the UTC month\n"
    "\n"
    "so a second run in the same period sends the same requests again (the period's\n"
    "amount, not the balance now) and the worker answers them as replays: never a\n"
    "second payout. Accounts whose default route does not take the currency (or that\n"
    "have none) are listed as skipped, as are balances in a code that is not ISO 4217.\n"
    "\n"
    "  --schedule S      daily, weekly or monthly (required)\n"
    "  --at DATE         a day (YYYY-MM-DD) of the period to pay (default: today, UTC)\n"
    "  --dry-run         list what is due; send nothing\n"
    "  --topic NAME      request topic (default: $TALLY_REQUEST_TOPIC or tally.requests)\n"
    "  --json            one JSON object per payout on standard output\n" KC_HELP_COMMON
    "  -h, --help        this text\n"
    "\n"
    "Reads PAYOUTS_DATABASE_URL: a login role granted tally_scheduler (it may call\n"
    "tally_payouts_due and tally_payouts_unrouted, nothing else; never the owner's\n"
    "or the worker's role). Exit status: 0 when every due payout was acknowledged by\n"
    "the broker (or --dry-run), 1 otherwise, 2 on a usage error.\n";

/* What happened to one due payout, and the status printed for it. */
// clang-format off
#define OUTCOME_LIST(X)                                                                            \
    X(OUT_PENDING, "failed")    /* sent, not acknowledged (printed only if it never is) */         \
    X(OUT_ENQUEUED, "enqueued") /* acknowledged by the broker */                                   \
    X(OUT_FAILED, "failed")     /* not sent or not acknowledged */                                 \
    X(OUT_WOULD_SEND, "due")    /* --dry-run */                                                    \
    X(OUT_SKIPPED, "skipped")   /* reason says why */
// clang-format on

typedef enum outcome { OUTCOME_LIST(ENUMSTR_CONST) } outcome_t;

typedef struct item {
    access_due_payout_t due;
    char id[128];
    outcome_t outcome;
    const char *reason;
    char error[128];
} item_t;

typedef struct opts {
    const char *schedule, *at, *topic;
    bool dry_run, json;
} opts_t;

/* The period key of schedule for the UTC day *day: 2026-12-02, 2026-W49 or 2026-12. */
static void period_key(const char *schedule, const struct tm *day, char *out, size_t size)
{
    if (strcmp(schedule, "daily") == 0)
        strftime(out, size, "%Y-%m-%d", day);
    else if (strcmp(schedule, "weekly") == 0)
        strftime(out, size, "%G-W%V", day);
    else
        strftime(out, size, "%Y-%m", day);
}

/* Parses YYYY-MM-DD into a UTC day (normalized by timegm, so 2026-02-30 is refused). */
static bool parse_day(const char *s, struct tm *out)
{
    struct tm t = {0};
    const char *end = strptime(s, "%Y-%m-%d", &t);
    if (end == NULL || *end != '\0' || strlen(s) != 10)
        return false;
    struct tm want = t;
    time_t at = timegm(&t);
    if (at == (time_t)-1 || gmtime_r(&at, out) == NULL)
        return false;
    return out->tm_year == want.tm_year && out->tm_mon == want.tm_mon &&
           out->tm_mday == want.tm_mday;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    item_t *it = m->_private;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        it->outcome = OUT_ENQUEUED;
    } else {
        it->outcome = OUT_FAILED;
        snprintf(it->error, sizeof(it->error), "%s", rd_kafka_err2str(m->err));
    }
}

/* The request envelope of one due payout (malloc'd JSON text, or NULL). */
static char *envelope(const item_t *it)
{
    json_t *env =
        json_pack("{s:i, s:s, s:s, s:s, s:{s:I, s:s, s:s}}", "v", 1, "id", it->id, "account_id",
                  it->due.account_id, "type", "payout.create", "payload", "amount",
                  (json_int_t)it->due.amount, "currency", it->due.currency, "description", it->id);
    char *text = env != NULL ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    return text;
}

/* Sends every pending item and waits for the broker's acknowledgements;
 * each item's outcome says what became of it. */
static void send_all(rd_kafka_t *rk, const char *topic, item_t *items, size_t n)
{
    for (size_t i = 0; i < n && !kc_interrupted(); i++) {
        item_t *it = &items[i];
        if (it->outcome != OUT_PENDING)
            continue;
        char *value = envelope(it);
        rd_kafka_resp_err_t e =
            value != NULL ? kc_produce(rk, topic, it->due.account_id, value, strlen(value), it)
                          : RD_KAFKA_RESP_ERR__FAIL;
        free(value);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            it->outcome = OUT_FAILED;
            snprintf(it->error, sizeof(it->error), "%s", rd_kafka_err2str(e));
        }
    }
    /* Every message ends acknowledged or failed within message.timeout.ms. */
    while (rd_kafka_outq_len(rk) > 0)
        rd_kafka_flush(rk, 500);
}

static const char *const outcome_names[] = {OUTCOME_LIST(ENUMSTR_NAME)};

static const char *outcome_str(outcome_t o)
{
    return enumstr_name(outcome_names, ENUMSTR_COUNT(outcome_names), (int)o, "failed");
}

static void print_item(const item_t *it, bool json)
{
    if (json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s}", "status", outcome_str(it->outcome),
                              "account_id", it->due.account_id, "currency", it->due.currency,
                              "amount", (json_int_t)it->due.amount, "id", it->id);
        if (it->outcome == OUT_SKIPPED)
            json_object_set_new(o, "reason", json_string(it->reason));
        if (it->outcome == OUT_FAILED || it->outcome == OUT_PENDING)
            json_object_set_new(o, "error", json_string(it->error));
        kc_print_json(stdout, o);
        json_decref(o);
        return;
    }
    printf("%-8s %-40s %-20s %lld %s", outcome_str(it->outcome), it->id, it->due.account_id,
           (long long)it->due.amount, it->due.currency);
    if (it->outcome == OUT_SKIPPED)
        printf(": %s", it->reason);
    else if (it->outcome == OUT_FAILED || it->outcome == OUT_PENDING)
        printf(": %s", it->error[0] != '\0' ? it->error : "not acknowledged");
    putchar('\n');
}

static int parse_flags(int argc, char **argv, opts_t *o, kc_opts_t *ko)
{
    enum { O_SCHEDULE = 1, O_AT, O_DRY, O_JSON, O_TOPIC };
    static const struct option longopts[] = {
        {"schedule", required_argument, NULL, O_SCHEDULE},
        {"at", required_argument, NULL, O_AT},
        {"dry-run", no_argument, NULL, O_DRY},
        {"json", no_argument, NULL, O_JSON},
        {"topic", required_argument, NULL, O_TOPIC},
        {"help", no_argument, NULL, 'h'},
        KC_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" KC_SHORT_OPTIONS, longopts, NULL)) != -1) {
        int h = kc_handle_opt(ko, c, optarg, err, sizeof(err));
        if (h < 0)
            return ctl_usage_error("payouts", "%s", err);
        if (h > 0)
            continue;
        switch (c) {
        case O_SCHEDULE:
            o->schedule = optarg;
            break;
        case O_AT:
            o->at = optarg;
            break;
        case O_DRY:
            o->dry_run = true;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_TOPIC:
            o->topic = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return ctl_usage_error("payouts", "unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ctl_usage_error("payouts", "unexpected argument \"%s\"", argv[optind]);
    if (o->schedule == NULL)
        return ctl_usage_error("payouts", "--schedule is required (daily, weekly or monthly)");
    if (strcmp(o->schedule, "daily") != 0 && strcmp(o->schedule, "weekly") != 0 &&
        strcmp(o->schedule, "monthly") != 0)
        return ctl_usage_error("payouts", "--schedule must be daily, weekly or monthly, not \"%s\"",
                               o->schedule);
    if (!o->dry_run && kc_opts_check(ko, err, sizeof(err)) != 0)
        return ctl_usage_error("payouts", "%s", err);
    return 0;
}

/* `tallyctl payouts due …`: argv[0] is "due". */
static int due(int argc, char **argv)
{
    opts_t o = {.topic = kc_topic_default("request")};
    kc_opts_t ko = {0};
    access_due_payout_t *rows = NULL;
    item_t *items = NULL;
    rd_kafka_t *rk = NULL;
    size_t n = 0;
    int rc = parse_flags(argc, argv, &o, &ko);
    if (rc != 0) {
        rc = rc < 0 ? CTL_OK : rc;
        goto out;
    }
    struct tm day;
    time_t now = time(NULL);
    if (o.at == NULL) {
        gmtime_r(&now, &day);
    } else if (!parse_day(o.at, &day)) {
        rc = ctl_usage_error("payouts", "--at: \"%s\" is not a date (YYYY-MM-DD)", o.at);
        goto out;
    }
    char period[16];
    period_key(o.schedule, &day, period, sizeof(period));
    const char *url = getenv("PAYOUTS_DATABASE_URL");
    if (url == NULL || url[0] == '\0') {
        rc = ctl_usage_error("payouts", "set PAYOUTS_DATABASE_URL (a role granted "
                                        "tally_scheduler)");
        goto out;
    }

    rc = CTL_FAILED;
    char err[1024];
    if (access_schedule_due(url, o.schedule, period, &rows, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "tallyctl payouts: %s\n", err);
        goto out;
    }
    items = mem_calloc(n > 0 ? n : 1, sizeof(*items));
    size_t due_count = 0;
    for (size_t i = 0; i < n; i++) {
        item_t *it = &items[i];
        it->due = rows[i];
        snprintf(it->id, sizeof(it->id), "auto_%s_%s_%s", o.schedule, period, it->due.currency);
        if (!currency_known(it->due.currency)) {
            it->outcome = OUT_SKIPPED;
            it->reason = "not an active ISO 4217 currency (a balance from before the check)";
        } else if (!it->due.routed) {
            it->outcome = OUT_SKIPPED;
            it->reason = "no default route that takes this currency";
        } else {
            it->outcome = o.dry_run ? OUT_WOULD_SEND : OUT_PENDING;
            due_count++;
        }
    }

    int failed = 0;
    if (!o.dry_run && due_count > 0) {
        rk = kc_producer_new(&ko, on_delivery, NULL, err, sizeof(err));
        if (rk == NULL) {
            fprintf(stderr, "tallyctl payouts: %s\n", err);
            goto out;
        }
        kc_install_sigint();
        send_all(rk, o.topic, items, n);
    }
    size_t enqueued = 0;
    for (size_t i = 0; i < n; i++) {
        print_item(&items[i], o.json);
        enqueued += items[i].outcome == OUT_ENQUEUED;
        failed += items[i].outcome == OUT_FAILED || items[i].outcome == OUT_PENDING;
    }
    fflush(stdout);
    fprintf(stderr, "payouts due %s %s: %zu due, %zu %s, %zu skipped, %d failed\n", o.schedule,
            period, due_count, o.dry_run ? due_count : enqueued,
            o.dry_run ? "not sent (--dry-run)" : "enqueued", n - due_count, failed);
    rc = failed == 0 && !kc_interrupted() ? CTL_OK : CTL_FAILED;
out:
    if (rk != NULL)
        rd_kafka_destroy(rk);
    free(items);
    free(rows);
    kc_opts_free(&ko);
    return rc;
}

int ctl_payouts(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return CTL_OK;
    }
    if (argc < 2 || strcmp(argv[1], "due") != 0)
        return ctl_usage_error("payouts", "the only subcommand is \"due\"");
    return due(argc - 1, argv + 1);
}
