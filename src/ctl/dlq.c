#include "ctl.h"

#include "common/mem.h"
#include "kafka_client.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: tallyctl dlq list    [OPTIONS] [SELECTION]\n"
    "       tallyctl dlq redrive [OPTIONS] SELECTION\n"
    "\n"
    "list shows the dead letters (CONTRACT.md §5) with the reason the worker gave\n"
    "(tally-error-code, tally-error-message) and where they came from\n"
    "(tally-source-topic, -partition, -offset). redrive sends the selected ones back\n"
    "to the request topic with their original key and value, waits for the broker's\n"
    "acknowledgement, and reports each. Both read the dead-letter topic from its\n"
    "beginning up to its end at start, outside any consumer group. A dead letter the\n"
    "worker had to cut to fit the DLQ (headers tally-dlq-key-size/-value-size) is\n"
    "not the request any more and is never redriven: it is reported as refused.\n"
    "\n"
    "Selection (combined with AND; redrive needs at least one):\n"
    "  --all                    every dead letter\n"
    "  --error-code CODE        those with this tally-error-code (repeatable: any of them)\n"
    "  --source PART:OFFSET     the one that came from this request partition and offset\n"
    "                           (repeatable: any of them)\n"
    "  --account ID             those whose key is this account_id\n"
    "\n"
    "Options:\n"
    "  --topic NAME             dead-letter topic (default: $TALLY_DLQ_TOPIC or tally.dlq)\n"
    "  --to NAME                redrive target (default: $TALLY_REQUEST_TOPIC or\n"
    "                           tally.requests)\n"
    "  --dry-run                redrive: show what would be sent, send nothing\n"
    "  --timeout DURATION       bound on reading the topic (default 30s)\n"
    "  --json                   one JSON object per dead letter\n" KC_HELP_COMMON
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 on success; 1 when Kafka failed, a --source was not found, or a\n"
    "redriven message was not acknowledged; 2 on a usage error.\n";

#define MAX_SELECTORS 64

typedef struct source_ref {
    int32_t partition;
    int64_t offset;
    bool found;
} source_ref_t;

typedef struct dlq_opts {
    bool redrive, all, dry_run, json;
    const char *topic, *to, *account;
    const char *codes[MAX_SELECTORS];
    int n_codes;
    source_ref_t sources[MAX_SELECTORS];
    int n_sources;
    int64_t timeout_ms;
} dlq_opts_t;

/* One dead letter as shown and, when redriven, its fate. */
typedef struct letter {
    json_t *info; /* the JSON shown by list, plus "redriven_to" after delivery */
    bool delivered, failed;
} letter_t;

/* The selected letters; a delivery report's opaque is an index into v (v
 * moves as it grows; reports are served only inside our poll calls). */
typedef struct letters {
    letter_t *v;
    size_t n;
} letters_t;

static bool selected(dlq_opts_t *o, const rd_kafka_message_t *m, const char *code,
                     const char *src_part, const char *src_off)
{
    if (o->account != NULL && (m->key == NULL || m->key_len != strlen(o->account) ||
                               memcmp(m->key, o->account, m->key_len) != 0))
        return false;
    if (o->n_codes > 0) {
        bool any = false;
        for (int i = 0; i < o->n_codes && !any; i++)
            any = code != NULL && strcmp(code, o->codes[i]) == 0;
        if (!any)
            return false;
    }
    if (o->n_sources > 0) {
        bool any = false;
        for (int i = 0; i < o->n_sources; i++) {
            source_ref_t *s = &o->sources[i];
            if (src_part != NULL && src_off != NULL && atoll(src_part) == s->partition &&
                atoll(src_off) == s->offset && isdigit((unsigned char)src_off[0])) {
                s->found = true;
                any = true;
            }
        }
        if (!any)
            return false;
    }
    return true;
}

/* The JSON form of a dead letter (what list --json prints). */
static json_t *describe(const rd_kafka_message_t *m, const char *dlq_topic, const char *code,
                        const char *msg, const char *src_topic, const char *src_part,
                        const char *src_off)
{
    json_t *src = json_object();
    if (src_topic != NULL)
        json_object_set_new(src, "topic", json_string(src_topic));
    if (src_part != NULL)
        json_object_set_new(src, "partition", json_integer(atoll(src_part)));
    if (src_off != NULL)
        json_object_set_new(src, "offset", json_integer(atoll(src_off)));
    return json_pack("{s:s, s:i, s:I, s:o, s:o, s:o?, s:o?, s:o, s:o}", "topic", dlq_topic,
                     "partition", (int)m->partition, "offset", (json_int_t)m->offset, "key",
                     kc_bytes_json(m->key, m->key_len), "value", kc_bytes_json(m->payload, m->len),
                     "error_code", code != NULL ? json_string(code) : NULL, "error_message",
                     msg != NULL ? json_string(msg) : NULL, "source", src, "headers",
                     kc_headers_json(m));
}

/* A readable preview of bytes: printable ASCII kept, the rest escaped. */
static void print_preview(FILE *out, const void *p, size_t n, size_t max)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n && i < max; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f)
            fputc(b[i], out);
        else
            fprintf(out, "\\x%02x", b[i]);
    }
    if (n > max)
        fprintf(out, "… (%zu bytes)", n);
}

static void print_letter(FILE *out, const rd_kafka_message_t *m, const json_t *info)
{
    const json_t *src = json_object_get(info, "source");
    fprintf(out, "%s [%d] @ %lld", json_string_value(json_object_get(info, "topic")),
            (int)m->partition, (long long)m->offset);
    if (json_object_get(src, "topic") != NULL)
        fprintf(out, "  from %s [%lld] @ %lld", json_string_value(json_object_get(src, "topic")),
                (long long)json_integer_value(json_object_get(src, "partition")),
                (long long)json_integer_value(json_object_get(src, "offset")));
    fprintf(out, "  key ");
    if (m->key != NULL)
        print_preview(out, m->key, m->key_len, 64);
    else
        fprintf(out, "(none)");
    const char *code = json_string_value(json_object_get(info, "error_code"));
    const char *msg = json_string_value(json_object_get(info, "error_message"));
    fprintf(out, "\n  %s: %s\n  value: ", code != NULL ? code : "(no tally-error-code)",
            msg != NULL ? msg : "");
    print_preview(out, m->payload, m->len, 200);
    fputc('\n', out);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    letters_t *ls = opaque;
    letter_t *l = &ls->v[(uintptr_t)m->_private];
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        l->failed = true;
        json_object_set_new(l->info, "redrive_error", json_string(rd_kafka_err2str(m->err)));
        return;
    }
    l->delivered = true;
    json_object_set_new(l->info, "redriven_to",
                        json_pack("{s:s, s:i, s:I}", "topic", rd_kafka_topic_name(m->rkt),
                                  "partition", (int)m->partition, "offset", (json_int_t)m->offset));
}

static int parse_source(const char *s, source_ref_t *out)
{
    char *end;
    long p = strtol(s, &end, 10);
    if (end == s || *end != ':' || p < 0)
        return -1;
    const char *o = end + 1;
    long long off = strtoll(o, &end, 10);
    if (end == o || *end != '\0' || off < 0)
        return -1;
    out->partition = (int32_t)p;
    out->offset = off;
    return 0;
}

static int parse_args(int argc, char **argv, dlq_opts_t *o, kc_opts_t *ko)
{
    enum { O_ALL = 1, O_CODE, O_SOURCE, O_ACCOUNT, O_TOPIC, O_TO, O_DRY, O_TIMEOUT, O_JSON };
    static const struct option longopts[] = {
        {"all", no_argument, NULL, O_ALL},
        {"error-code", required_argument, NULL, O_CODE},
        {"source", required_argument, NULL, O_SOURCE},
        {"account", required_argument, NULL, O_ACCOUNT},
        {"topic", required_argument, NULL, O_TOPIC},
        {"to", required_argument, NULL, O_TO},
        {"dry-run", no_argument, NULL, O_DRY},
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
    while ((c = getopt_long(argc, argv, "h" KC_SHORT_OPTIONS, longopts, NULL)) != -1) {
        int h = kc_handle_opt(ko, c, optarg, err, sizeof(err));
        if (h < 0)
            return ctl_usage_error("dlq", "%s", err);
        if (h > 0)
            continue;
        switch (c) {
        case O_ALL:
            o->all = true;
            break;
        case O_CODE:
            if (o->n_codes == MAX_SELECTORS)
                return ctl_usage_error("dlq", "at most %d --error-code", MAX_SELECTORS);
            o->codes[o->n_codes++] = optarg;
            break;
        case O_SOURCE:
            if (o->n_sources == MAX_SELECTORS)
                return ctl_usage_error("dlq", "at most %d --source", MAX_SELECTORS);
            if (parse_source(optarg, &o->sources[o->n_sources]) != 0)
                return ctl_usage_error("dlq", "--source expects PARTITION:OFFSET, got \"%s\"",
                                       optarg);
            o->n_sources++;
            break;
        case O_ACCOUNT:
            o->account = optarg;
            break;
        case O_TOPIC:
            o->topic = optarg;
            break;
        case O_TO:
            o->to = optarg;
            break;
        case O_DRY:
            o->dry_run = true;
            break;
        case O_JSON:
            o->json = true;
            break;
        case O_TIMEOUT:
            if (kc_parse_duration_ms(optarg, &o->timeout_ms) != 0)
                return ctl_usage_error("dlq", "--timeout: \"%s\" is not a duration", optarg);
            break;
        case 'h':
            fputs(usage, stdout);
            return -1;
        default:
            return ctl_usage_error("dlq", "unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ctl_usage_error("dlq", "which one: list or redrive?");
    if (strcmp(argv[optind], "list") == 0)
        o->redrive = false;
    else if (strcmp(argv[optind], "redrive") == 0)
        o->redrive = true;
    else
        return ctl_usage_error("dlq", "unknown subcommand \"%s\" (list or redrive)", argv[optind]);
    if (optind + 1 < argc)
        return ctl_usage_error("dlq", "unexpected argument \"%s\"", argv[optind + 1]);
    if (o->redrive && !o->all && o->n_codes == 0 && o->n_sources == 0 && o->account == NULL)
        return ctl_usage_error("dlq", "redrive needs a selection: --all, --error-code, --source "
                                      "or --account");
    if (o->all && (o->n_codes > 0 || o->n_sources > 0 || o->account != NULL))
        return ctl_usage_error("dlq", "--all excludes the other selections");
    if (!o->redrive && o->dry_run)
        return ctl_usage_error("dlq", "--dry-run is for redrive");
    if (kc_opts_check(ko, err, sizeof(err)) != 0)
        return ctl_usage_error("dlq", "%s", err);
    return 0;
}

/* A dead letter the worker cut to fit the DLQ (tally-dlq-key-size,
 * tally-dlq-value-size) holds a prefix of the request, which would be a
 * different request: it is never redriven, and l says why. */
static bool refuse_cut(const rd_kafka_message_t *m, letter_t *l)
{
    char *key_size = kc_header(m, "tally-dlq-key-size");
    char *value_size = kc_header(m, "tally-dlq-value-size");
    bool cut = key_size != NULL || value_size != NULL;
    if (cut) {
        char why[256];
        snprintf(why, sizeof(why),
                 "cut to fit the DLQ (original key %s bytes, value %s bytes): not redriven; "
                 "the tally-source-* headers locate the original",
                 key_size != NULL ? key_size : "whole", value_size != NULL ? value_size : "whole");
        l->failed = true;
        json_object_set_new(l->info, "redrive_error", json_string(why));
    }
    free(key_size);
    free(value_size);
    return cut;
}

/* Reads the dead-letter topic to its end at start; lists or redrives. */
static int run(dlq_opts_t *o, kc_opts_t *ko)
{
    char err[512];
    kc_reader_t reader;
    const char *topics[] = {o->topic};
    if (kc_reader_open(&reader, ko, topics, 1, KC_FROM_BEGINNING, err, sizeof(err)) != 0) {
        fprintf(stderr, "tallyctl dlq: %s\n", err);
        return CTL_FAILED;
    }
    rd_kafka_t *producer = NULL;
    letters_t ls = {0};
    if (o->redrive && !o->dry_run) {
        producer = kc_producer_new(ko, on_delivery, &ls, err, sizeof(err));
        if (producer == NULL) {
            fprintf(stderr, "tallyctl dlq: %s\n", err);
            kc_reader_close(&reader);
            return CTL_FAILED;
        }
    }
    int rc = CTL_OK;
    size_t n_total = 0;
    int64_t deadline = kc_now_ms() + o->timeout_ms;
    while (!kc_reader_caught_up(&reader)) {
        if (kc_now_ms() >= deadline) {
            fprintf(stderr, "tallyctl dlq: timed out reading %s\n", o->topic);
            rc = CTL_FAILED;
            break;
        }
        bool fatal;
        rd_kafka_message_t *m = kc_reader_poll(&reader, 200, &fatal, err, sizeof(err));
        if (fatal) {
            fprintf(stderr, "tallyctl dlq: %s\n", err);
            rc = CTL_FAILED;
            break;
        }
        if (m == NULL)
            continue;
        n_total++;
        char *code = kc_header(m, "tally-error-code");
        char *msg = kc_header(m, "tally-error-message");
        char *st = kc_header(m, "tally-source-topic");
        char *sp = kc_header(m, "tally-source-partition");
        char *so = kc_header(m, "tally-source-offset");
        if (selected(o, m, code, sp, so)) {
            ls.v = mem_realloc(ls.v, (ls.n + 1) * sizeof(*ls.v));
            letter_t *l = &ls.v[ls.n++];
            *l = (letter_t){.info = describe(m, o->topic, code, msg, st, sp, so)};
            if (!o->redrive && !o->json)
                print_letter(stdout, m, l->info);
            bool refused = o->redrive && refuse_cut(m, l);
            if (producer != NULL && !refused) {
                char from[300];
                snprintf(from, sizeof(from), "%s/%d/%lld", o->topic, (int)m->partition,
                         (long long)m->offset);
                rd_kafka_resp_err_t e;
                do { /* waits while the local queue is full */
                    e = rd_kafka_producev(
                        producer, RD_KAFKA_V_TOPIC(o->to), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                        RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                        RD_KAFKA_V_HEADER("tally-redriven-from", from, -1),
                        RD_KAFKA_V_OPAQUE((void *)(uintptr_t)(ls.n - 1)), RD_KAFKA_V_END);
                    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
                        rd_kafka_poll(producer, 100);
                } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
                if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    l->failed = true;
                    json_object_set_new(l->info, "redrive_error", json_string(rd_kafka_err2str(e)));
                }
                rd_kafka_poll(producer, 0);
            }
        }
        free(code);
        free(msg);
        free(st);
        free(sp);
        free(so);
        rd_kafka_message_destroy(m);
    }
    if (producer != NULL) { /* each ends acknowledged or failed within message.timeout.ms */
        while (rd_kafka_outq_len(producer) > 0)
            rd_kafka_flush(producer, 500);
    }
    size_t redriven = 0, failed = 0;
    for (size_t i = 0; i < ls.n; i++) {
        letter_t *l = &ls.v[i];
        if (o->json) {
            if (o->redrive && o->dry_run)
                json_object_set_new(l->info, "dry_run", json_true());
            kc_print_json(stdout, l->info);
        } else if (o->redrive) {
            const json_t *to = json_object_get(l->info, "redriven_to");
            fprintf(stdout, "%s %s [%lld] @ %lld",
                    l->failed    ? "FAILED"
                    : o->dry_run ? "would redrive"
                                 : "redriven",
                    o->topic, (long long)json_integer_value(json_object_get(l->info, "partition")),
                    (long long)json_integer_value(json_object_get(l->info, "offset")));
            const char *code = json_string_value(json_object_get(l->info, "error_code"));
            if (code != NULL)
                fprintf(stdout, " (%s)", code);
            if (to != NULL)
                fprintf(stdout, " -> %s [%lld] @ %lld",
                        json_string_value(json_object_get(to, "topic")),
                        (long long)json_integer_value(json_object_get(to, "partition")),
                        (long long)json_integer_value(json_object_get(to, "offset")));
            const char *why = json_string_value(json_object_get(l->info, "redrive_error"));
            if (why != NULL)
                fprintf(stdout, ": %s", why);
            fputc('\n', stdout);
        }
        redriven += l->delivered;
        failed += l->failed;
        json_decref(l->info);
    }
    free(ls.v);
    for (int i = 0; i < o->n_sources; i++) {
        if (!o->sources[i].found) {
            fprintf(stderr, "tallyctl dlq: no dead letter from partition %d offset %lld\n",
                    (int)o->sources[i].partition, (long long)o->sources[i].offset);
            rc = CTL_FAILED;
        }
    }
    if (failed > 0)
        rc = CTL_FAILED;
    if (!o->json) {
        if (!o->redrive)
            fprintf(stderr, "%zu of %zu dead letters in %s shown\n", ls.n, n_total, o->topic);
        else if (o->dry_run)
            fprintf(stderr, "%zu of %zu dead letters would be redriven to %s\n", ls.n, n_total,
                    o->to);
        else
            fprintf(stderr, "redrove %zu of %zu dead letters to %s%s\n", redriven, n_total, o->to,
                    failed > 0 ? " (some failed)" : "");
    }
    if (producer != NULL)
        rd_kafka_destroy(producer);
    kc_reader_close(&reader);
    return rc;
}

int ctl_dlq(int argc, char **argv)
{
    dlq_opts_t o = {
        .topic = kc_topic_default("dlq"), .to = kc_topic_default("request"), .timeout_ms = 30000};
    kc_opts_t ko = {0};
    int rc = parse_args(argc, argv, &o, &ko);
    if (rc == 0)
        rc = run(&o, &ko);
    else if (rc < 0)
        rc = CTL_OK; /* --help */
    kc_opts_free(&ko);
    return rc;
}
