/* broker — `tallyctl broker`: librdkafka's mock cluster as an embedded Kafka
 * broker for development and tests (production uses a real Kafka cluster),
 * with a line-based control protocol on stdin for fault injection. */
#include "ctl.h"

#include "common/topic.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define CMD             "broker"
#define MAX_BROKERS     32
#define MAX_PARTITIONS  256
#define MAX_TOPICS      64
#define MAX_LINE        4096
#define MAX_ERRORS      64
#define MAX_RTT_MS      600000
#define AUTO_PARTITIONS 4 /* the mock cluster's default for auto-created topics */

typedef struct topic_spec {
    char name[TOPIC_NAME_MAX + 1];
    int partitions;
} topic_spec_t;

typedef struct broker_opts {
    int brokers;
    int partitions;
    topic_spec_t topics[MAX_TOPICS];
    int ntopics;
} broker_opts_t;

typedef struct broker {
    rd_kafka_mock_cluster_t *mc;
    int brokers;
    int replication;
} broker_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tallyctl broker [--brokers N] [--partitions N] [--topic NAME[:PARTITIONS]]...\n"
            "\n"
            "Runs an embedded Kafka broker on 127.0.0.1: librdkafka's mock cluster, which\n"
            "speaks the Kafka protocol over TCP and keeps data in memory. It is for\n"
            "development and tests only; production uses a real Kafka cluster.\n"
            "\n"
            "Creates the contract's four topics with --partitions partitions each:\n"
            "  $TALLY_REQUEST_TOPIC (default tally.requests)\n"
            "  $TALLY_RESULT_TOPIC  (default tally.results)\n"
            "  $TALLY_AUDIT_TOPIC   (default tally.audit)\n"
            "  $TALLY_DLQ_TOPIC     (default tally.dlq)\n"
            "plus every --topic. Prints the bootstrap servers (host:port,...) as the first\n"
            "line of stdout, then runs until SIGTERM or SIGINT and exits 0.\n"
            "\n"
            "Options:\n"
            "  --brokers N               number of brokers, ids 1..N (1-%d, default 3)\n"
            "  --partitions N            partitions of each contract topic (1-%d, default 6)\n"
            "  --topic NAME[:PARTITIONS] an extra topic (default --partitions partitions);\n"
            "                            repeatable; naming a contract topic overrides its count\n"
            "  --help                    this text\n"
            "\n"
            "A topic that does not exist is created, with %d partitions, as soon as any\n"
            "client names it: a producer sending to a request's reply_to, but also a\n"
            "consumer subscribing to it or asking for its metadata (the mock cluster\n"
            "answers Metadata v0-2 only and so ignores allow.auto.create.topics). Each\n"
            "partition keeps about the last 5 MB of messages.\n"
            "\n"
            "Control protocol: one command per line on stdin; one reply line on stdout for\n"
            "each, \"ok\" or \"error: <why>\". End of input only stops reading commands.\n"
            "  topic NAME PARTITIONS            create a topic\n"
            "  broker-down ID|all               drop the broker's connections and refuse new\n"
            "                                   ones (partition leaders do not move)\n"
            "  broker-up ID|all                 accept connections again\n"
            "  rtt ID|all MS                    delay the broker's responses by MS (0 = none)\n"
            "  request-errors APIKEY ERR [ERR...]\n"
            "                                   the next requests of that type fail with these\n"
            "                                   errors, one each, in order\n"
            "  clear-errors APIKEY              forget the errors still pushed for APIKEY\n"
            "APIKEY is a Kafka request type by name (Produce, Fetch, ListOffsets, Metadata,\n"
            "OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup,\n"
            "SyncGroup, ApiVersions, InitProducerId, ...) or number. ERR is a Kafka error by\n"
            "name as librdkafka spells it (NOT_LEADER_FOR_PARTITION, REQUEST_TIMED_OUT,\n"
            "_TRANSPORT = disconnect the client, ...) or number.\n",
            MAX_BROKERS, MAX_PARTITIONS, AUTO_PARTITIONS);
}

/* ---- options ----------------------------------------------------------- */

/* Adds or, for a name already listed, re-sizes a topic. */
static int add_topic(broker_opts_t *o, const char *name, int partitions)
{
    if (!topic_name_valid(name, strlen(name)))
        return ctl_usage_error(CMD, "invalid topic name '%s' (" TOPIC_NAME_RULE ")", name);
    for (int i = 0; i < o->ntopics; i++) {
        if (strcmp(o->topics[i].name, name) == 0) {
            o->topics[i].partitions = partitions;
            return CTL_OK;
        }
    }
    if (o->ntopics == MAX_TOPICS)
        return ctl_usage_error(CMD, "too many topics (at most %d)", MAX_TOPICS);
    topic_spec_t *t = &o->topics[o->ntopics++];
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->partitions = partitions;
    return CTL_OK;
}

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v != NULL && *v != '\0' ? v : dflt;
}

/* Parses "NAME[:PARTITIONS]" from --topic. */
static int parse_topic_arg(broker_opts_t *o, const char *arg, int dflt_partitions)
{
    char name[TOPIC_NAME_MAX + 2];
    const char *colon = strrchr(arg, ':');
    size_t len = colon != NULL ? (size_t)(colon - arg) : strlen(arg);
    if (len >= sizeof(name))
        return ctl_usage_error(CMD, "topic name too long in --topic '%s'", arg);
    memcpy(name, arg, len);
    name[len] = '\0';
    long parts = dflt_partitions;
    if (colon != NULL && !ctl_parse_long(colon + 1, 1, MAX_PARTITIONS, &parts))
        return ctl_usage_error(CMD, "bad partition count in --topic '%s' (1-%d)", arg,
                               MAX_PARTITIONS);
    return add_topic(o, name, (int)parts);
}

/* Fills o from argv; returns CTL_OK, CTL_USAGE, or -1 after --help. */
static int parse_args(int argc, char **argv, broker_opts_t *o)
{
    o->brokers = 3;
    o->partitions = 6;
    const char *extra[MAX_TOPICS];
    int nextra = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        /* Every option takes a value, as "--opt V" or "--opt=V". */
        const char *names[] = {"--brokers", "--partitions", "--topic"};
        const char *val = NULL;
        int which = -1;
        for (int k = 0; k < 3 && which < 0; k++) {
            size_t n = strlen(names[k]);
            if (strcmp(a, names[k]) == 0) {
                if (i + 1 >= argc)
                    return ctl_usage_error(CMD, "%s needs a value", names[k]);
                which = k;
                val = argv[++i];
            } else if (strncmp(a, names[k], n) == 0 && a[n] == '=') {
                which = k;
                val = a + n + 1;
            }
        }
        long v;
        switch (which) {
        case 0:
            if (!ctl_parse_long(val, 1, MAX_BROKERS, &v))
                return ctl_usage_error(CMD, "bad --brokers '%s' (1-%d)", val, MAX_BROKERS);
            o->brokers = (int)v;
            break;
        case 1:
            if (!ctl_parse_long(val, 1, MAX_PARTITIONS, &v))
                return ctl_usage_error(CMD, "bad --partitions '%s' (1-%d)", val, MAX_PARTITIONS);
            o->partitions = (int)v;
            break;
        case 2:
            if (nextra == MAX_TOPICS)
                return ctl_usage_error(CMD, "too many topics (at most %d)", MAX_TOPICS);
            extra[nextra++] = val;
            break;
        default:
            if (a[0] == '-')
                return ctl_usage_error(CMD, "unknown option '%s'", a);
            return ctl_usage_error(CMD, "unexpected argument '%s'", a);
        }
    }
    /* Contract topics first, so that --topic may re-size them. */
    const char *contract[][2] = {{"TALLY_REQUEST_TOPIC", "tally.requests"},
                                 {"TALLY_RESULT_TOPIC", "tally.results"},
                                 {"TALLY_AUDIT_TOPIC", "tally.audit"},
                                 {"TALLY_DLQ_TOPIC", "tally.dlq"}};
    for (int k = 0; k < 4; k++) {
        int rc = add_topic(o, env_or(contract[k][0], contract[k][1]), o->partitions);
        if (rc != CTL_OK)
            return rc;
    }
    for (int k = 0; k < nextra; k++) {
        int rc = parse_topic_arg(o, extra[k], o->partitions);
        if (rc != CTL_OK)
            return rc;
    }
    return CTL_OK;
}

/* ---- control protocol ---------------------------------------------------- */

static const struct {
    const char *name;
    int16_t key;
} api_keys[] = {
    {"Produce", 0},
    {"Fetch", 1},
    {"ListOffsets", 2},
    {"Metadata", 3},
    {"OffsetCommit", 8},
    {"OffsetFetch", 9},
    {"FindCoordinator", 10},
    {"JoinGroup", 11},
    {"Heartbeat", 12},
    {"LeaveGroup", 13},
    {"SyncGroup", 14},
    {"DescribeGroups", 15},
    {"ListGroups", 16},
    {"SaslHandshake", 17},
    {"ApiVersions", 18},
    {"CreateTopics", 19},
    {"DeleteTopics", 20},
    {"DeleteRecords", 21},
    {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23},
    {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25},
    {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
    {"SaslAuthenticate", 36},
    {"CreatePartitions", 37},
};

static bool parse_api_key(const char *s, int16_t *out)
{
    for (size_t i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++) {
        if (strcasecmp(s, api_keys[i].name) == 0) {
            *out = api_keys[i].key;
            return true;
        }
    }
    long v;
    if (!ctl_parse_long(s, 0, 100, &v))
        return false;
    *out = (int16_t)v;
    return true;
}

/* A Kafka error by librdkafka's name (case-insensitive, with or without the
 * RD_KAFKA_RESP_ERR_ prefix) or by number; only codes librdkafka knows. */
static bool parse_error(const char *s, rd_kafka_resp_err_t *out)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    if (strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
        s += 18;
    long num;
    bool numeric = ctl_parse_long(s, -1000, 1000, &num);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name == NULL || strncmp(descs[i].name, "_BEGIN", 6) == 0 ||
            strncmp(descs[i].name, "_END", 4) == 0)
            continue;
        if (numeric ? descs[i].code == num : strcasecmp(descs[i].name, s) == 0) {
            *out = descs[i].code;
            return true;
        }
    }
    return false;
}

/* "all" is -1 for the mock API; otherwise 1..brokers. */
static bool parse_broker_id(const broker_t *b, const char *s, int32_t *out)
{
    long v;
    if (strcmp(s, "all") == 0) {
        *out = -1;
        return true;
    }
    if (!ctl_parse_long(s, 1, b->brokers, &v))
        return false;
    *out = (int32_t)v;
    return true;
}

#define REPLY(...) (snprintf(reply, size, __VA_ARGS__), (void)0)

static void mock_result(rd_kafka_resp_err_t err, char *reply, size_t size)
{
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        REPLY("ok");
    else
        REPLY("error: %s", rd_kafka_err2str(err));
}

static void cmd_topic(broker_t *b, char **argv, int argc, char *reply, size_t size)
{
    long parts;
    if (argc != 3)
        return REPLY("error: usage: topic NAME PARTITIONS");
    if (!topic_name_valid(argv[1], strlen(argv[1])))
        return REPLY("error: invalid topic name '%s'", argv[1]);
    if (!ctl_parse_long(argv[2], 1, MAX_PARTITIONS, &parts))
        return REPLY("error: bad partition count '%s' (1-%d)", argv[2], MAX_PARTITIONS);
    mock_result(rd_kafka_mock_topic_create(b->mc, argv[1], (int)parts, b->replication), reply,
                size);
}

static void cmd_broker_state(broker_t *b, char **argv, int argc, char *reply, size_t size)
{
    int32_t id;
    bool down = strcmp(argv[0], "broker-down") == 0;
    if (argc != 2)
        return REPLY("error: usage: %s ID|all", argv[0]);
    if (!parse_broker_id(b, argv[1], &id))
        return REPLY("error: no broker '%s' (ids 1-%d or all)", argv[1], b->brokers);
    mock_result(down ? rd_kafka_mock_broker_set_down(b->mc, id)
                     : rd_kafka_mock_broker_set_up(b->mc, id),
                reply, size);
}

static void cmd_rtt(broker_t *b, char **argv, int argc, char *reply, size_t size)
{
    int32_t id;
    long ms;
    if (argc != 3)
        return REPLY("error: usage: rtt ID|all MS");
    if (!parse_broker_id(b, argv[1], &id))
        return REPLY("error: no broker '%s' (ids 1-%d or all)", argv[1], b->brokers);
    if (!ctl_parse_long(argv[2], 0, MAX_RTT_MS, &ms))
        return REPLY("error: bad delay '%s' (0-%d ms)", argv[2], MAX_RTT_MS);
    mock_result(rd_kafka_mock_broker_set_rtt(b->mc, id, (int)ms), reply, size);
}

static void cmd_request_errors(broker_t *b, char **argv, int argc, char *reply, size_t size)
{
    int16_t key;
    rd_kafka_resp_err_t errs[MAX_ERRORS];
    if (argc < 3)
        return REPLY("error: usage: request-errors APIKEY ERR [ERR...]");
    if (argc - 2 > MAX_ERRORS)
        return REPLY("error: at most %d errors at once", MAX_ERRORS);
    if (!parse_api_key(argv[1], &key))
        return REPLY("error: unknown API key '%s'", argv[1]);
    for (int i = 2; i < argc; i++)
        if (!parse_error(argv[i], &errs[i - 2]))
            return REPLY("error: unknown Kafka error '%s'", argv[i]);
    rd_kafka_mock_push_request_errors_array(b->mc, key, (size_t)(argc - 2), errs);
    REPLY("ok");
}

static void cmd_clear_errors(broker_t *b, char **argv, int argc, char *reply, size_t size)
{
    int16_t key;
    if (argc != 2)
        return REPLY("error: usage: clear-errors APIKEY");
    if (!parse_api_key(argv[1], &key))
        return REPLY("error: unknown API key '%s'", argv[1]);
    rd_kafka_mock_clear_request_errors(b->mc, key);
    REPLY("ok");
}

/* Executes one control line (modified in place) and writes the reply. */
static void control(broker_t *b, char *line, char *reply, size_t size)
{
    static const struct {
        const char *name;
        void (*fn)(broker_t *, char **, int, char *, size_t);
    } table[] = {
        {"topic", cmd_topic},
        {"broker-down", cmd_broker_state},
        {"broker-up", cmd_broker_state},
        {"rtt", cmd_rtt},
        {"request-errors", cmd_request_errors},
        {"clear-errors", cmd_clear_errors},
    };
    char *argv[MAX_ERRORS + 3];
    int argc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r", &save); tok != NULL;
         tok = strtok_r(NULL, " \t\r", &save)) {
        if (argc == (int)(sizeof(argv) / sizeof(argv[0])))
            return REPLY("error: too many words");
        argv[argc++] = tok;
    }
    if (argc == 0)
        return REPLY("error: empty command");
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(argv[0], table[i].name) == 0)
            return table[i].fn(b, argv, argc, reply, size);
    REPLY("error: unknown command '%.64s' (see tallyctl broker --help)", argv[0]);
}

static void reply_line(const char *reply)
{
    /* A reader that went away must not stop the broker (SIGPIPE is ignored). */
    printf("%s\n", reply);
    fflush(stdout);
}

static void run_line(broker_t *b, char *line, bool *overlong)
{
    char reply[512];
    if (*overlong) {
        /* The tail of a line whose start was dropped. */
        *overlong = false;
        reply_line("error: line too long");
        return;
    }
    control(b, line, reply, sizeof(reply));
    reply_line(reply);
}

/* Reads what stdin has and executes the complete lines (a last line without
 * a newline at EOF too). Returns false once stdin is finished. */
static bool read_commands(broker_t *b, char *buf, size_t *len, bool *overlong)
{
    ssize_t n = read(STDIN_FILENO, buf + *len, MAX_LINE - *len);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    *len += (size_t)n;
    char *nl;
    while ((nl = memchr(buf, '\n', *len)) != NULL) {
        *nl = '\0';
        run_line(b, buf, overlong);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, buf + used, *len - used);
        *len -= used;
    }
    if (*len == MAX_LINE) {
        /* No newline in a full buffer: drop it, answer at the line's end. */
        *overlong = true;
        *len = 0;
    }
    if (n > 0)
        return true;
    if (*len > 0 || *overlong) {
        buf[*len] = '\0';
        run_line(b, buf, overlong);
        *len = 0;
    }
    return false;
}

/* ---- main ------------------------------------------------------------------ */

static int serve(broker_t *b, int sigfd)
{
    char buf[MAX_LINE + 1];
    size_t len = 0;
    bool overlong = false, stdin_open = true;
    for (;;) {
        struct pollfd fds[2] = {{.fd = sigfd, .events = POLLIN},
                                {.fd = stdin_open ? STDIN_FILENO : -1, .events = POLLIN}};
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("tallyctl broker: poll");
            return CTL_FAILED;
        }
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                fprintf(stderr, "tallyctl broker: %s, stopping\n", strsignal((int)si.ssi_signo));
            return CTL_OK;
        }
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
            stdin_open = read_commands(b, buf, &len, &overlong);
    }
}

int ctl_broker(int argc, char **argv)
{
    broker_opts_t o = {0};
    int rc = parse_args(argc, argv, &o);
    if (rc != CTL_OK)
        return rc < 0 ? CTL_OK : rc;

    /* Block the signals before librdkafka starts threads, which inherit the
     * mask, so that only the signalfd sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    /* A shell may start us with them ignored; ignored signals never queue. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sigfd < 0) {
        perror("tallyctl broker: signalfd");
        return CTL_FAILED;
    }

    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Level 4 hides the notice that this handle has no bootstrap.servers: it
     * is only the mock cluster's owner and never connects anywhere. */
    if (rd_kafka_conf_set(conf, "client.id", "tally-embedded-broker", errstr, sizeof(errstr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "tallyctl broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        close(sigfd);
        return CTL_FAILED;
    }
    /* rd_kafka_new takes ownership of conf on success only. */
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (rk == NULL) {
        fprintf(stderr, "tallyctl broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        close(sigfd);
        return CTL_FAILED;
    }
    broker_t b = {.brokers = o.brokers, .replication = o.brokers < 3 ? o.brokers : 3};
    b.mc = rd_kafka_mock_cluster_new(rk, o.brokers);
    if (b.mc == NULL) {
        fprintf(stderr, "tallyctl broker: could not start the mock cluster\n");
        rd_kafka_destroy(rk);
        close(sigfd);
        return CTL_FAILED;
    }
    rc = CTL_OK;
    for (int i = 0; i < o.ntopics && rc == CTL_OK; i++) {
        rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(b.mc, o.topics[i].name,
                                                             o.topics[i].partitions, b.replication);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "tallyctl broker: creating topic %s: %s\n", o.topics[i].name,
                    rd_kafka_err2str(err));
            rc = CTL_FAILED;
        }
    }
    if (rc == CTL_OK) {
        const char *bootstrap = rd_kafka_mock_cluster_bootstraps(b.mc);
        printf("%s\n", bootstrap);
        fflush(stdout);
        fprintf(stderr, "tallyctl broker: %d brokers at %s (development and tests only)\n",
                o.brokers, bootstrap);
        for (int i = 0; i < o.ntopics; i++)
            fprintf(stderr, "tallyctl broker: topic %s, %d partitions\n", o.topics[i].name,
                    o.topics[i].partitions);
        rc = serve(&b, sigfd);
    }
    rd_kafka_mock_cluster_destroy(b.mc);
    rd_kafka_destroy(rk);
    close(sigfd);
    return rc;
}
