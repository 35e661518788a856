#include "ctl.h"

#include "common/ids.h"
#include "common/mem.h"
#include "common/topic.h"
#include "common/utf8.h"
#include "envelope/envelope.h"
#include "kafka_client.h"
#include "results.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_VALUE       (1024 * 1024) /* CONTRACT.md §2 */
#define PROGRESS_EVERY  10000         /* lines between progress lines when stderr is no TTY */
#define PROGRESS_TTY_MS 250

static const char usage[] =
    "Usage: tallyctl enqueue [OPTIONS] [--file PATH]\n"
    "       tallyctl enqueue [OPTIONS] --account ID --type TYPE [--payload JSON] …\n"
    "\n"
    "Sends requests (CONTRACT.md §2) to the request topic, keyed by account_id, and\n"
    "waits until the broker acknowledged every one. Requests come from JSON lines\n"
    "(one envelope per line, from --file or standard input; blank lines are skipped),\n"
    "or one is built from the flags. A line that is not a valid envelope is reported\n"
    "with its number and not sent; the others are sent.\n"
    "\n"
    "Input:\n"
    "  -f, --file PATH          read JSON lines from PATH ('-': standard input, the default)\n"
    "  --account ID             build one request for this account_id …\n"
    "  --type TYPE              … of this job type …\n"
    "  --payload JSON           … with this payload object (default {})\n"
    "  --id ID                  its id (default: a new req_… id, printed)\n"
    "  --correlation-id ID      echoed in the result\n"
    "  --reply-to TOPIC         where the result goes (default: the results topic)\n"
    "\n"
    "Sending:\n"
    "  --topic NAME             request topic (default: $TALLY_REQUEST_TOPIC or tally.requests)\n"
    "  --raw                    send lines as they are, unchecked (to test the worker's DLQ)\n"
    "  --dry-run                check the input and send nothing\n"
    "  -q, --quiet              no progress lines\n"
    "\n"
    "Waiting for results:\n"
    "  -w, --wait               then wait for the result of every acknowledged request and\n"
    "                           print each as it arrives\n"
    "  --results-topic NAME     where to wait (default: --reply-to, else $TALLY_RESULT_TOPIC\n"
    "                           or tally.results); requests replying elsewhere are not awaited\n"
    "  --timeout DURATION       how long to wait for results (default 30s)\n"
    "\n"
    "Output:\n"
    "  --json                   a JSON summary object (with --wait: one result per line,\n"
    "                           the summary on standard error)\n" KC_HELP_COMMON
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 when every request was valid and acknowledged (and, with --wait,\n"
    "answered \"ok\" in time); 1 otherwise; 2 on a usage error.\n";

/* ---- a set of "account_id\x1fid" strings (the results --wait expects) --- */

typedef struct strset {
    char **slots;
    size_t cap, n;
} strset_t;

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static char **strset_slot(const strset_t *set, const char *s)
{
    size_t i = hash(s) & (set->cap - 1);
    while (set->slots[i] != NULL && strcmp(set->slots[i], s) != 0)
        i = (i + 1) & (set->cap - 1);
    return &set->slots[i];
}

/* Adds a copy of s; returns whether it was not there yet. */
static bool strset_add(strset_t *set, const char *s)
{
    if ((set->n + 1) * 2 > set->cap) {
        strset_t bigger = {mem_calloc(set->cap ? set->cap * 2 : 64, sizeof(char *)),
                           set->cap ? set->cap * 2 : 64, set->n};
        for (size_t i = 0; i < set->cap; i++) {
            if (set->slots[i] != NULL)
                *strset_slot(&bigger, set->slots[i]) = set->slots[i];
        }
        free(set->slots);
        *set = bigger;
    }
    char **slot = strset_slot(set, s);
    if (*slot != NULL)
        return false;
    *slot = mem_strdup(s);
    set->n++;
    return true;
}

static bool strset_has(const strset_t *set, const char *s)
{
    return set->cap > 0 && *strset_slot(set, s) != NULL;
}

static void strset_free(strset_t *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slots[i]);
    free(set->slots);
    memset(set, 0, sizeof(*set));
}

/* ---- state ------------------------------------------------------------ */

typedef struct enqueue {
    const char *topic;
    envelope_policy_t policy; /* reply_to: never Tally's own topics, as the worker says */
    const char *wait_topic;   /* NULL without --wait */
    bool json, quiet, tty;
    long sent, acked, failed, invalid;
    strset_t awaited;       /* acknowledged requests whose result --wait expects */
    int32_t last_partition; /* of the last acknowledged message */
    int64_t last_offset;
    int64_t last_progress_ms;
} enqueue_t;

/* What a delivery report needs to know about its message. */
typedef struct sent {
    long line;
    bool awaited;
    char wait_key[]; /* "account_id\x1fid" */
} sent_t;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    enqueue_t *q = opaque;
    sent_t *s = m->_private;
    (void)rk;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        q->failed++;
        if (s->line > 0)
            fprintf(stderr, "tallyctl enqueue: line %ld: not delivered: %s\n", s->line,
                    rd_kafka_err2str(m->err));
        else
            fprintf(stderr, "tallyctl enqueue: not delivered: %s\n", rd_kafka_err2str(m->err));
    } else {
        q->acked++;
        q->last_partition = m->partition;
        q->last_offset = m->offset;
        if (s->awaited)
            strset_add(&q->awaited, s->wait_key);
    }
    free(s);
}

static void progress(enqueue_t *q, bool final)
{
    if (q->quiet)
        return;
    if (q->tty) {
        int64_t now = kc_now_ms();
        if (!final && now - q->last_progress_ms < PROGRESS_TTY_MS)
            return;
        q->last_progress_ms = now;
        fprintf(stderr, "\r%ld sent, %ld acknowledged, %ld failed, %ld invalid%s", q->sent,
                q->acked, q->failed, q->invalid, final ? "\n" : "");
    } else if (!final && q->sent > 0 && q->sent % PROGRESS_EVERY == 0) {
        fprintf(stderr, "tallyctl enqueue: %ld sent, %ld acknowledged\n", q->sent, q->acked);
    }
}

/* ---- judging a request: the worker's own decoder ------------------------------ */

/* Judges an envelope as the worker will (envelope_decode under policy). It
 * is refused when the worker would dead-letter it or answer an error about
 * the envelope (a bad id, account_id, v, type, payload, reply_to or
 * correlation_id); it is sent when the worker would run it, answer a
 * job type this tallyctl does not know (the worker may be newer), or answer a
 * problem inside the payload (a duplicate key, a number out of range or a
 * \u0000 there: the worker names the field, as it does for any payload
 * field the job type refuses). On false, why holds the worker's reason;
 * either way *env is filled for envelope_clear. */
static bool judge(const envelope_policy_t *policy, const char *text, size_t len, envelope_t *env,
                  char *why, size_t whylen)
{
    envelope_kind_t kind = envelope_decode(policy, NULL, 0, text, len, env);
    /* The worker judges types: one newer than this tallyctl may know a job
     * type it does not (CONTRACT: types are only ever added). */
    if (kind == ENVELOPE_ANSWER && (env->error == TALLY_ERR_NONE || env->error_in_payload ||
                                    env->error == TALLY_ERR_UNKNOWN_TYPE))
        return true;
    /* "v: only envelope version 1 is supported"; a reason that names its
     * field first ("type is not a known job type") stands as it is. */
    size_t n = strlen(env->error_field);
    if (n > 0 && strncmp(env->error_message, env->error_field, n) != 0)
        snprintf(why, whylen, "%s: %s", env->error_field, env->error_message);
    else
        snprintf(why, whylen, "%s", env->error_message);
    return false;
}

/* Says that a judged envelope's type is unknown here and goes out anyway
 * (line 0: the request built from flags). */
static void warn_unknown_type(const envelope_t *env, long line)
{
    if (env->error != TALLY_ERR_UNKNOWN_TYPE)
        return;
    char where[32] = "";
    if (line > 0)
        snprintf(where, sizeof(where), "line %ld: ", line);
    fprintf(stderr,
            "tallyctl enqueue: %stype \"%s\" is not a job type this tallyctl knows; sent anyway "
            "(a newer worker may know it, else it answers unknown_type)\n",
            where, env->type);
}

/* ---- sending ------------------------------------------------------------ */

/* Produces one message, waiting while the local queue is full. */
static void produce(rd_kafka_t *rk, enqueue_t *q, const char *key, const char *value, size_t len,
                    long line, const char *wait_key)
{
    size_t wl = wait_key != NULL ? strlen(wait_key) : 0;
    sent_t *s = mem_alloc(sizeof(*s) + wl + 1);
    s->line = line;
    s->awaited = wait_key != NULL;
    memcpy(s->wait_key, wait_key != NULL ? wait_key : "", wl + 1);
    rd_kafka_resp_err_t e = kc_produce(rk, q->topic, key, value, len, s);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        q->sent++;
        return;
    }
    q->failed++;
    fprintf(stderr, "tallyctl enqueue: line %ld: not sent: %s\n", line, rd_kafka_err2str(e));
    free(s);
}

/* "account_id\x1fid": the key a result is awaited under. */
static char *wait_key(const char *account, const char *id)
{
    size_t n = strlen(account) + strlen(id) + 2;
    char *k = mem_alloc(n);
    snprintf(k, n, "%s\x1f%s", account, id);
    return k;
}

/* The key a result is awaited under, or NULL when its reply goes elsewhere
 * (where the worker sends it: reply_to, or the results topic). */
static char *wait_key_of(const enqueue_t *q, const envelope_t *env)
{
    if (q->wait_topic == NULL)
        return NULL;
    const char *to = env->reply_to[0] != '\0' ? env->reply_to : kc_topic_default("result");
    if (strcmp(to, q->wait_topic) != 0)
        return NULL;
    return wait_key(env->account.id, env->id);
}

/* --raw: the account_id a line is keyed by, when it has a readable one. */
static const char *raw_key(const char *line, size_t len, char *key, size_t size)
{
    json_t *o = json_loadb(line, len, 0, NULL);
    const char *acct = json_string_value(json_object_get(o, "account_id"));
    if (acct != NULL)
        snprintf(key, size, "%s", acct);
    json_decref(o);
    return acct != NULL ? key : NULL;
}

/* Sends every line of in. */
static void send_lines(rd_kafka_t *rk, enqueue_t *q, FILE *in, bool raw, bool dry_run)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    long no = 0;
    bool warned_elsewhere = false;
    while (!kc_interrupted() && (len = getline(&line, &cap, in)) >= 0) {
        no++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (strspn(line, " \t") == (size_t)len)
            continue;
        char why[256];
        envelope_t env = {0};
        if (!raw && !judge(&q->policy, line, (size_t)len, &env, why, sizeof(why))) {
            q->invalid++;
            fprintf(stderr, "tallyctl enqueue: line %ld: %s\n", no, why);
            envelope_clear(&env);
            continue;
        }
        if (!raw)
            warn_unknown_type(&env, no);
        if (!dry_run) {
            char keybuf[ACCESS_ACCOUNT_ID_MAX * 4 + 1];
            const char *key =
                raw ? raw_key(line, (size_t)len, keybuf, sizeof(keybuf)) : env.account.id;
            char *wk = raw ? NULL : wait_key_of(q, &env);
            if (q->wait_topic != NULL && wk == NULL && !raw && !warned_elsewhere) {
                fprintf(stderr,
                        "tallyctl enqueue: line %ld: its reply goes elsewhere than %s; "
                        "not waiting for such results\n",
                        no, q->wait_topic);
                warned_elsewhere = true;
            }
            produce(rk, q, key, line, (size_t)len, no, wk);
            free(wk);
            progress(q, false);
        } else {
            q->sent++; /* counted as "would send" */
        }
        envelope_clear(&env);
    }
    free(line);
}

/* ---- waiting ------------------------------------------------------------ */

/* Prints awaited results as they arrive; returns how many arrived, and how
 * many of those were errors in *errors. */
static long wait_results(kc_reader_t *r, enqueue_t *q, int64_t timeout_ms, long *errors)
{
    strset_t seen = {0};
    int64_t deadline = kc_now_ms() + timeout_ms;
    *errors = 0;
    while ((long)seen.n < (long)q->awaited.n && !kc_interrupted()) {
        int64_t left = deadline - kc_now_ms();
        if (left <= 0)
            break;
        bool fatal;
        char err[256];
        rd_kafka_message_t *m =
            kc_reader_poll(r, left < 200 ? (int)left : 200, &fatal, err, sizeof(err));
        if (fatal) {
            fprintf(stderr, "tallyctl enqueue: %s\n", err);
            break;
        }
        if (m == NULL)
            continue;
        json_t *res = json_loadb(m->payload, m->len, 0, NULL);
        const char *acct = json_string_value(json_object_get(res, "account_id"));
        const char *id = json_string_value(json_object_get(res, "id"));
        char *k = acct != NULL && id != NULL ? wait_key(acct, id) : NULL;
        if (k != NULL && strset_has(&q->awaited, k) && strset_add(&seen, k)) {
            results_print(stdout, res, q->json);
            fflush(stdout);
            const char *status = json_string_value(json_object_get(res, "status"));
            if (status == NULL || strcmp(status, "ok") != 0)
                (*errors)++;
        }
        free(k);
        json_decref(res);
        rd_kafka_message_destroy(m);
    }
    long n = (long)seen.n;
    strset_free(&seen);
    return n;
}

/* ---- the command --------------------------------------------------------- */

typedef struct flags {
    const char *file, *account, *type, *payload, *id, *corr, *reply_to, *results_topic;
    bool raw, dry_run, wait;
    int64_t timeout_ms;
} flags_t;

/* The envelope built from --account/--type/…, judged into *one (cleared by
 * the caller); NULL with a usage message. */
static char *build_envelope(const flags_t *f, const envelope_policy_t *policy, envelope_t *one,
                            char *why, size_t whylen)
{
    char id[ENVELOPE_ID_MAX * 4 + 1];
    json_error_t je;
    json_t *payload = json_loads(f->payload != NULL ? f->payload : "{}", 0, &je);
    if (!json_is_object(payload)) {
        snprintf(why, whylen, "--payload must be a JSON object%s%s", payload == NULL ? ": " : "",
                 payload == NULL ? je.text : "");
        json_decref(payload);
        return NULL;
    }
    if (f->id != NULL)
        snprintf(id, sizeof(id), "%s", f->id);
    else
        ids_new("req", id, sizeof(id));
    json_t *env = json_pack("{s:i, s:s, s:s, s:s, s:o}", "v", 1, "id", id, "account_id", f->account,
                            "type", f->type, "payload", payload);
    if (env == NULL) {
        snprintf(why, whylen, "--account, --type and --id must be UTF-8");
        return NULL;
    }
    if (f->reply_to != NULL)
        json_object_set_new(env, "reply_to", json_string(f->reply_to));
    if (f->corr != NULL)
        json_object_set_new(env, "correlation_id", json_string(f->corr));
    char *s = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    if (!judge(policy, s, strlen(s), one, why, whylen)) {
        free(s);
        return NULL;
    }
    warn_unknown_type(one, 0);
    return s;
}

static int parse_flags(int argc, char **argv, flags_t *f, enqueue_t *q, kc_opts_t *ko)
{
    enum {
        O_ACCOUNT = 1,
        O_TYPE,
        O_PAYLOAD,
        O_ID,
        O_CORR,
        O_REPLY,
        O_TOPIC,
        O_RAW,
        O_DRY,
        O_RESULTS,
        O_TIMEOUT,
        O_JSON
    };
    static const struct option longopts[] = {
        {"file", required_argument, NULL, 'f'},
        {"account", required_argument, NULL, O_ACCOUNT},
        {"type", required_argument, NULL, O_TYPE},
        {"payload", required_argument, NULL, O_PAYLOAD},
        {"id", required_argument, NULL, O_ID},
        {"correlation-id", required_argument, NULL, O_CORR},
        {"reply-to", required_argument, NULL, O_REPLY},
        {"topic", required_argument, NULL, O_TOPIC},
        {"raw", no_argument, NULL, O_RAW},
        {"dry-run", no_argument, NULL, O_DRY},
        {"quiet", no_argument, NULL, 'q'},
        {"wait", no_argument, NULL, 'w'},
        {"results-topic", required_argument, NULL, O_RESULTS},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        KC_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    char err[256];
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "f:qwh" KC_SHORT_OPTIONS, longopts, NULL)) != -1) {
        int h = kc_handle_opt(ko, c, optarg, err, sizeof(err));
        if (h < 0)
            return ctl_usage_error("enqueue", "%s", err);
        if (h > 0)
            continue;
        switch (c) {
        case 'f':
            f->file = optarg;
            break;
        case O_ACCOUNT:
            f->account = optarg;
            break;
        case O_TYPE:
            f->type = optarg;
            break;
        case O_PAYLOAD:
            f->payload = optarg;
            break;
        case O_ID:
            f->id = optarg;
            break;
        case O_CORR:
            f->corr = optarg;
            break;
        case O_REPLY:
            f->reply_to = optarg;
            break;
        case O_TOPIC:
            q->topic = optarg;
            break;
        case O_RAW:
            f->raw = true;
            break;
        case O_DRY:
            f->dry_run = true;
            break;
        case 'q':
            q->quiet = true;
            break;
        case 'w':
            f->wait = true;
            break;
        case O_RESULTS:
            f->results_topic = optarg;
            break;
        case O_JSON:
            q->json = true;
            break;
        case O_TIMEOUT:
            if (kc_parse_duration_ms(optarg, &f->timeout_ms) != 0)
                return ctl_usage_error("enqueue", "--timeout: \"%s\" is not a duration (e.g. 30s)",
                                       optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return ctl_usage_error("enqueue", "unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ctl_usage_error("enqueue", "unexpected argument \"%s\"", argv[optind]);
    bool built = f->account || f->type || f->payload || f->id || f->corr || f->reply_to;
    if (built && (f->account == NULL || f->type == NULL))
        return ctl_usage_error("enqueue", "a request built from flags needs --account and --type");
    if (built && f->file != NULL)
        return ctl_usage_error("enqueue", "--file and --account/--type exclude each other");
    if (f->raw && f->wait)
        return ctl_usage_error("enqueue", "--raw and --wait exclude each other");
    if (!f->dry_run && kc_opts_check(ko, err, sizeof(err)) != 0)
        return ctl_usage_error("enqueue", "%s", err);
    return 0;
}

/* one: the request built from flags, or NULL. */
static void print_summary(const enqueue_t *q, const envelope_t *one, bool dry_run, FILE *out,
                          bool json)
{
    if (json) {
        json_t *o =
            json_pack("{s:s, s:I, s:I, s:I, s:I, s:b}", "topic", q->topic, "sent",
                      (json_int_t)q->sent, "acknowledged", (json_int_t)q->acked, "failed",
                      (json_int_t)q->failed, "invalid", (json_int_t)q->invalid, "dry_run", dry_run);
        if (one != NULL && q->acked == 1) {
            json_object_set_new(o, "id", json_string(one->id));
            json_object_set_new(o, "account_id", json_string(one->account.id));
            json_object_set_new(o, "partition", json_integer(q->last_partition));
            json_object_set_new(o, "offset", json_integer(q->last_offset));
        }
        kc_print_json(out, o);
        json_decref(o);
    } else if (dry_run) {
        fprintf(out, "%ld valid, %ld invalid; nothing sent (--dry-run)\n", q->sent, q->invalid);
    } else if (one != NULL && q->acked == 1) {
        fprintf(out, "enqueued %s for %s (%s) on %s [%d] at offset %lld\n", one->id,
                one->account.id, one->type, q->topic, (int)q->last_partition,
                (long long)q->last_offset);
    } else {
        fprintf(out, "enqueued %ld of %ld requests on %s: %ld acknowledged, %ld failed", q->acked,
                q->sent, q->topic, q->acked, q->failed);
        if (q->invalid > 0)
            fprintf(out, "; %ld invalid line%s not sent", q->invalid, q->invalid == 1 ? "" : "s");
        fputc('\n', out);
    }
}

int ctl_enqueue(int argc, char **argv)
{
    flags_t f = {.timeout_ms = 30000};
    enqueue_t q = {.topic = kc_topic_default("request"), .tty = isatty(2) == 1};
    kc_opts_t ko = {0};
    rd_kafka_t *rk = NULL;
    kc_reader_t reader = {0};
    FILE *in = NULL;
    char *one = NULL;         /* the request built from flags, as sent */
    envelope_t one_env = {0}; /* … as the worker reads it */
    char err[512];
    int rc = parse_flags(argc, argv, &f, &q, &ko);
    if (rc != 0) {
        rc = rc < 0 ? CTL_OK : rc;
        goto out;
    }
    /* The worker's names, as far as tallyctl knows them (its environment). */
    q.policy = (envelope_policy_t){
        .own_topics = {q.topic, kc_topic_default("audit"), kc_topic_default("dlq")}};
    rc = CTL_FAILED;
    if (f.account != NULL) {
        one = build_envelope(&f, &q.policy, &one_env, err, sizeof(err));
        if (one == NULL) {
            rc = ctl_usage_error("enqueue", "%s", err);
            goto out;
        }
        q.quiet = true;
    } else if (f.file != NULL && strcmp(f.file, "-") != 0) {
        in = fopen(f.file, "r");
        if (in == NULL) {
            fprintf(stderr, "tallyctl enqueue: %s: %s\n", f.file, strerror(errno));
            goto out;
        }
    } else if (!f.dry_run && isatty(0) == 1) {
        fprintf(stderr, "tallyctl enqueue: reading JSON lines from the terminal "
                        "(Ctrl-D to end; --help for flags)\n");
    }

    if (f.wait) {
        q.wait_topic = f.results_topic      ? f.results_topic
                       : f.reply_to != NULL ? f.reply_to
                                            : kc_topic_default("result");
        /* Opened first, at the current end: no result can slip past. */
        const char *topics[] = {q.wait_topic};
        if (kc_reader_open(&reader, &ko, topics, 1, KC_FROM_END, err, sizeof(err)) != 0) {
            fprintf(stderr, "tallyctl enqueue: %s\n", err);
            goto out;
        }
    }
    if (!f.dry_run) {
        rk = kc_producer_new(&ko, on_delivery, &q, err, sizeof(err));
        if (rk == NULL) {
            fprintf(stderr, "tallyctl enqueue: %s\n", err);
            goto out;
        }
    }
    if (one != NULL && f.dry_run) { /* show what would be sent */
        puts(one);
        rc = CTL_OK;
        goto out;
    }
    kc_install_sigint();
    if (one != NULL) {
        char *wk = wait_key_of(&q, &one_env);
        produce(rk, &q, one_env.account.id, one, strlen(one), 0, wk);
        free(wk);
    } else {
        send_lines(rk, &q, in != NULL ? in : stdin, f.raw, f.dry_run);
    }
    if (rk != NULL) {
        /* Every message ends acknowledged or failed within message.timeout.ms. */
        while (rd_kafka_outq_len(rk) > 0) {
            rd_kafka_flush(rk, 500);
            progress(&q, false);
        }
        if (q.tty && one == NULL && q.sent > 0)
            progress(&q, true);
    }
    bool all_sent = q.failed == 0 && q.invalid == 0 && !kc_interrupted();
    print_summary(&q, one != NULL ? &one_env : NULL, f.dry_run, f.wait ? stderr : stdout,
                  f.wait ? false : q.json);
    rc = all_sent ? CTL_OK : CTL_FAILED;

    if (f.wait && q.awaited.n > 0) {
        long errors = 0;
        long got = wait_results(&reader, &q, f.timeout_ms, &errors);
        fprintf(stderr, "%ld of %zu results arrived (%ld ok, %ld error)\n", got, q.awaited.n,
                got - errors, errors);
        if (got < (long)q.awaited.n || errors > 0)
            rc = CTL_FAILED;
    }
out:
    if (rk != NULL)
        rd_kafka_destroy(rk);
    if (reader.rk != NULL)
        kc_reader_close(&reader);
    if (in != NULL)
        fclose(in);
    strset_free(&q.awaited);
    envelope_clear(&one_env);
    free(one);
    kc_opts_free(&ko);
    return rc;
}
