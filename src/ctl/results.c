#include "results.h"

#include "ctl.h"

#include "kafka_client.h"

#include <stdlib.h>
#include <string.h>

static const char *str_field(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s != NULL ? s : "-";
}

void results_print(FILE *out, const json_t *result, bool json)
{
    if (json) {
        kc_print_json(out, result);
        return;
    }
    const char *status = str_field(result, "status");
    fprintf(out, "%-5s  %s  %s  %s", status, str_field(result, "id"),
            str_field(result, "account_id"), str_field(result, "type"));
    const char *corr = json_string_value(json_object_get(result, "correlation_id"));
    if (corr != NULL)
        fprintf(out, "  correlation_id=%s", corr);
    if (json_is_true(json_object_get(result, "replayed")))
        fprintf(out, "  (replayed)");
    const json_t *error = json_object_get(result, "error");
    if (strcmp(status, "ok") != 0 && json_is_object(error)) {
        fprintf(out, "\n       %s: %s", str_field(error, "code"), str_field(error, "message"));
        const char *field = json_string_value(json_object_get(error, "field"));
        if (field != NULL)
            fprintf(out, " (field %s)", field);
    }
    const json_t *res = json_object_get(result, "result");
    if (res != NULL) {
        char *s = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s != NULL)
            fprintf(out, "\n       %s", s);
        free(s);
    }
    fputc('\n', out);
}

static const char usage[] =
    "Usage: tallyctl results [OPTIONS]\n"
    "\n"
    "Follows a results topic and prints the results that match every filter given.\n"
    "Reads outside any consumer group and commits nothing.\n"
    "\n"
    "Options:\n"
    "  --topic NAME             results topic (default: $TALLY_RESULT_TOPIC or tally.results)\n"
    "  --from-beginning         start at the oldest kept result (default: only new ones)\n"
    "  --account ID             only results of this account_id\n"
    "  --correlation-id ID      only results with this correlation_id\n"
    "  --id ID                  only results of this request id\n"
    "  --count N                stop after N matching results\n"
    "  --timeout DURATION       stop after this long (500ms, 10s, 2m; default: never)\n"
    "  --json                   one result object per line, as published\n" KC_HELP_COMMON
    "  -h, --help               this text\n"
    "\n"
    "Exit status: 0 when done (Ctrl-C, --timeout, or --count reached), 1 when --count\n"
    "results did not arrive before --timeout or Kafka failed, 2 on a usage error.\n";

static bool matches(const json_t *r, const char *account, const char *corr, const char *id)
{
    if (account != NULL && strcmp(str_field(r, "account_id"), account) != 0)
        return false;
    if (corr != NULL) {
        const char *c = json_string_value(json_object_get(r, "correlation_id"));
        if (c == NULL || strcmp(c, corr) != 0)
            return false;
    }
    return id == NULL || strcmp(str_field(r, "id"), id) == 0;
}

int ctl_results(int argc, char **argv)
{
    enum { O_TOPIC = 1, O_BEGIN, O_ACCOUNT, O_CORR, O_ID, O_COUNT, O_TIMEOUT, O_JSON };
    static const struct option longopts[] = {
        {"topic", required_argument, NULL, O_TOPIC},
        {"from-beginning", no_argument, NULL, O_BEGIN},
        {"account", required_argument, NULL, O_ACCOUNT},
        {"correlation-id", required_argument, NULL, O_CORR},
        {"id", required_argument, NULL, O_ID},
        {"count", required_argument, NULL, O_COUNT},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, 'h'},
        KC_LONG_OPTIONS,
        {NULL, 0, NULL, 0},
    };
    kc_opts_t ko = {0};
    const char *topic = kc_topic_default("result");
    const char *account = NULL, *corr = NULL, *id = NULL;
    long count = -1;
    int64_t timeout_ms = -1;
    bool from_beginning = false, json = false;
    char err[512];
    int rc = CTL_USAGE;
    int c;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h" KC_SHORT_OPTIONS, longopts, NULL)) != -1) {
        int h = kc_handle_opt(&ko, c, optarg, err, sizeof(err));
        if (h < 0) {
            ctl_usage_error("results", "%s", err);
            goto out;
        }
        if (h > 0)
            continue;
        char *end;
        switch (c) {
        case O_TOPIC:
            topic = optarg;
            break;
        case O_BEGIN:
            from_beginning = true;
            break;
        case O_ACCOUNT:
            account = optarg;
            break;
        case O_CORR:
            corr = optarg;
            break;
        case O_ID:
            id = optarg;
            break;
        case O_JSON:
            json = true;
            break;
        case O_COUNT:
            count = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || count < 1) {
                ctl_usage_error("results", "--count needs a positive integer");
                goto out;
            }
            break;
        case O_TIMEOUT:
            if (kc_parse_duration_ms(optarg, &timeout_ms) != 0) {
                ctl_usage_error("results", "--timeout: \"%s\" is not a duration (e.g. 10s)",
                                optarg);
                goto out;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            rc = CTL_OK;
            goto out;
        default:
            ctl_usage_error("results", "unknown or incomplete option %s", argv[optind - 1]);
            goto out;
        }
    }
    if (optind < argc) {
        ctl_usage_error("results", "unexpected argument \"%s\"", argv[optind]);
        goto out;
    }
    if (kc_opts_check(&ko, err, sizeof(err)) != 0) {
        ctl_usage_error("results", "%s", err);
        goto out;
    }

    kc_reader_t reader;
    const char *topics[] = {topic};
    if (kc_reader_open(&reader, &ko, topics, 1, from_beginning ? KC_FROM_BEGINNING : KC_FROM_END,
                       err, sizeof(err)) != 0) {
        fprintf(stderr, "tallyctl results: %s\n", err);
        rc = CTL_FAILED;
        goto out;
    }
    kc_install_sigint();
    if (!json)
        fprintf(stderr, "tallyctl results: following %s%s (Ctrl-C to stop)\n", topic,
                from_beginning ? " from the beginning" : "");
    int64_t deadline = timeout_ms >= 0 ? kc_now_ms() + timeout_ms : -1;
    long seen = 0;
    rc = CTL_OK;
    while (!kc_interrupted() && (count < 0 || seen < count)) {
        int wait = 200;
        if (deadline >= 0) {
            int64_t left = deadline - kc_now_ms();
            if (left <= 0)
                break;
            wait = left < wait ? (int)left : wait;
        }
        bool fatal;
        rd_kafka_message_t *m = kc_reader_poll(&reader, wait, &fatal, err, sizeof(err));
        if (fatal) {
            fprintf(stderr, "tallyctl results: %s\n", err);
            rc = CTL_FAILED;
            break;
        }
        if (m == NULL)
            continue;
        json_t *r = json_loadb(m->payload, m->len, 0, NULL);
        if (!json_is_object(r)) {
            fprintf(stderr, "tallyctl results: %s [%d] offset %lld is not a JSON result\n", topic,
                    (int)m->partition, (long long)m->offset);
        } else if (matches(r, account, corr, id)) {
            results_print(stdout, r, json);
            fflush(stdout);
            seen++;
        }
        json_decref(r);
        rd_kafka_message_destroy(m);
    }
    if (count > 0 && seen < count && rc == CTL_OK && !kc_interrupted()) {
        fprintf(stderr, "tallyctl results: %ld of %ld results arrived\n", seen, count);
        rc = CTL_FAILED;
    }
    kc_reader_close(&reader);
out:
    kc_opts_free(&ko);
    return rc;
}
