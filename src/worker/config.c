#include "worker/config.h"

#include "common/kafka_env.h"
#include "common/mem.h"
#include "common/topic.h"
#include "worker/version.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef enum kind { K_STR, K_INT, K_TOPIC, K_ADDR, K_LEVEL, K_FORMAT, K_ONOFF, K_REGEX } kind_t;

/* One row per setting: its variable, its flag, its default and its range. */
typedef struct setting {
    const char *env;
    const char *flag;
    kind_t kind;
    const char *def; /* NULL: required */
    long min, max;
    size_t offset;
    const char *help;
} setting_t;

#define OFF(f) offsetof(config_t, f)

static const setting_t settings[] = {
    {"DATABASE_URL", "database-url", K_STR, NULL, 0, 0, OFF(database_url),
     "PostgreSQL connection URL of the worker's login role (member of tally_app)"},
    {"KAFKA_BOOTSTRAP_SERVERS", "bootstrap-servers", K_STR, NULL, 0, 0, OFF(bootstrap_servers),
     "Kafka bootstrap servers, host:port[,host:port…]"},
    {"TALLY_GROUP_ID", "group-id", K_STR, "tally-workers", 0, 0, OFF(group_id),
     "consumer group shared by all replicas"},
    {"TALLY_REQUEST_TOPIC", "request-topic", K_TOPIC, "tally.requests", 0, 0, OFF(request_topic),
     "topic of requests (consumed)"},
    {"TALLY_RESULT_TOPIC", "result-topic", K_TOPIC, "tally.results", 0, 0, OFF(result_topic),
     "default topic of results"},
    {"TALLY_AUDIT_TOPIC", "audit-topic", K_TOPIC, "tally.audit", 0, 0, OFF(audit_topic),
     "topic of audit events"},
    {"TALLY_DLQ_TOPIC", "dlq-topic", K_TOPIC, "tally.dlq", 0, 0, OFF(dlq_topic),
     "dead-letter topic"},
    {"TALLY_REPLY_TO_PATTERN", "reply-to-pattern", K_REGEX, "", 0, 0, OFF(reply_to_pattern),
     "POSIX extended regex a request's reply_to must match whole (empty: any topic but "
     "Tally's own)"},
    {"TALLY_POOL_MAX", "pool-max", K_INT, "5", 1, 256, OFF(pool_max),
     "database connections, and executor threads"},
    {"TALLY_MAX_IN_FLIGHT", "max-in-flight", K_INT, "1000", 1, 1000000, OFF(max_in_flight),
     "requests read ahead and not yet finished, across partitions"},
    {"TALLY_MAX_RETRIES", "max-retries", K_INT, "5", 1, 1000, OFF(max_retries),
     "attempts before a request is answered internal and copied to the DLQ"},
    {"TALLY_SHUTDOWN_TIMEOUT_MS", "shutdown-timeout-ms", K_INT, "25000", 0, 3600000,
     OFF(shutdown_timeout_ms), "time to finish started requests on shutdown or revocation"},
    {"TALLY_OUTCOME_RETENTION_DAYS", "outcome-retention-days", K_INT, "30", 1, 36500,
     OFF(outcome_retention_days), "days stored outcomes are kept for replay"},
    {"TALLY_BATCH_MAX", "batch-max", K_INT, "50", 1, 1000, OFF(batch_max),
     "requests of different accounts committed in one transaction (group commit)"},
    {"TALLY_STATEMENT_TIMEOUT_MS", "statement-timeout-ms", K_INT, "5000", 1, 3600000,
     OFF(statement_timeout_ms), "longest a request's database round trip may run (then retried)"},
    {"TALLY_LOCK_TIMEOUT_MS", "lock-timeout-ms", K_INT, "2000", 1, 3600000, OFF(lock_timeout_ms),
     "longest a statement waits for a lock (then retried)"},
    {"TALLY_PREPARED_STATEMENTS", "prepared-statements", K_ONOFF, "on", 0, 0,
     OFF(prepared_statements),
     "on: statements are prepared once per connection; off: each is sent unnamed (behind a "
     "transaction-pooling connection pooler such as PgBouncer before 1.21)"},
    {"TALLY_HTTP_ADDR", "http-addr", K_ADDR, "127.0.0.1:8080", 0, 0, OFF(http_addr),
     "host:port of /livez, /readyz and /metrics"},
    {"TALLY_LOG_LEVEL", "log-level", K_LEVEL, "info", 0, 0, OFF(log_level),
     "debug, info, warn or error"},
    {"TALLY_LOG_FORMAT", "log-format", K_FORMAT, "json", 0, 0, OFF(log_text), "json or text"},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int config_split_addr(const char *addr, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || colon == addr)
        return -1;
    const char *h = addr;
    size_t hl = (size_t)(colon - addr);
    if (h[0] == '[') {
        if (hl < 3 || h[hl - 1] != ']')
            return -1;
        h++;
        hl -= 2;
    }
    if (hl + 1 > hostlen)
        return -1;
    const char *p = colon + 1;
    if (*p == '\0' || strlen(p) > 5)
        return -1;
    long v = 0;
    for (; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)v;
    return 0;
}

/* An integer setting within its range. */
static int apply_int(const setting_t *s, const char *value, int *out, char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (value[0] == '\0' || isspace((unsigned char)value[0]) || *end != '\0' || errno != 0) {
        errf(err, errlen, "%s: \"%.32s\" is not an integer", s->env, value);
        return -1;
    }
    if (v < s->min || v > s->max) {
        errf(err, errlen, "%s: %ld is out of range (%ld-%ld)", s->env, v, s->min, s->max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* TALLY_REPLY_TO_PATTERN, compiled once ("" for none). */
static int apply_regex(const setting_t *s, const char *value, config_t *cfg, char *err,
                       size_t errlen)
{
    if (value[0] == '\0')
        return 0;
    int rc = regcomp(&cfg->reply_to_regex, value, REG_EXTENDED);
    if (rc != 0) {
        char why[128];
        regerror(rc, &cfg->reply_to_regex, why, sizeof(why));
        errf(err, errlen, "%s: \"%.64s\" is not a POSIX extended regular expression: %s", s->env,
             value, why);
        return -1;
    }
    cfg->has_reply_to_regex = true;
    return 0;
}

/* Validates value for setting s and stores it in cfg. The message names the
 * setting by its variable; the value is echoed except for DATABASE_URL. */
static int apply(const setting_t *s, const char *value, config_t *cfg, char *err, size_t errlen)
{
    char *base = (char *)cfg + s->offset;
    switch (s->kind) {
    case K_STR:
        if (value[0] == '\0') {
            errf(err, errlen, "%s: must not be empty", s->env);
            return -1;
        }
        break;
    case K_TOPIC:
        if (!topic_name_valid(value, strlen(value))) {
            errf(err, errlen, "%s: \"%.64s\" is not a Kafka topic name (" TOPIC_NAME_RULE ")",
                 s->env, value);
            return -1;
        }
        break;
    case K_ADDR: {
        char host[256];
        int port;
        if (config_split_addr(value, host, sizeof(host), &port) != 0 || host[0] == '\0') {
            errf(err, errlen, "%s: \"%.64s\" is not host:port with a port in 1-65535", s->env,
                 value);
            return -1;
        }
        break;
    }
    case K_INT:
        return apply_int(s, value, (int *)(void *)base, err, errlen);
    case K_LEVEL:
        if (!log_level_parse(value, (log_level_t *)(void *)base)) {
            errf(err, errlen, "%s: \"%.32s\" is not one of debug, info, warn, error", s->env,
                 value);
            return -1;
        }
        return 0;
    case K_REGEX:
        if (apply_regex(s, value, cfg, err, errlen) != 0)
            return -1;
        break;
    case K_FORMAT:
        if (strcmp(value, "json") != 0 && strcmp(value, "text") != 0) {
            errf(err, errlen, "%s: \"%.32s\" is not json or text", s->env, value);
            return -1;
        }
        *(bool *)(void *)base = strcmp(value, "text") == 0;
        return 0;
    case K_ONOFF:
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            errf(err, errlen, "%s: \"%.32s\" is not on or off", s->env, value);
            return -1;
        }
        *(bool *)(void *)base = strcmp(value, "on") == 0;
        return 0;
    }
    char **slot = (char **)(void *)base;
    free(*slot);
    *slot = mem_strdup(value);
    return 0;
}

static int kafka_add(config_t *cfg, const char *key, const char *value, const char *origin,
                     rd_kafka_conf_t *probe, char *err, size_t errlen)
{
    char why[512];
    rd_kafka_conf_res_t r = rd_kafka_conf_set(probe, key, value, why, sizeof(why));
    if (r != RD_KAFKA_CONF_OK) {
        /* librdkafka's own message names the property; values of secrets
         * (sasl.password, …) are not echoed by it. */
        errf(err, errlen, "%s: %s", origin, why);
        return -1;
    }
    config_kv_t *kv = mem_realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*kv));
    cfg->kafka = kv;
    kv[cfg->n_kafka].key = mem_strdup(key);
    kv[cfg->n_kafka].value = mem_strdup(value);
    cfg->n_kafka++;
    return 0;
}

/* Settings with an explicit meaning in Tally are not librdkafka properties. */
static bool env_is_setting(const char *name, size_t len)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        if (strlen(settings[i].env) == len && strncmp(settings[i].env, name, len) == 0)
            return true;
    }
    return false;
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: tally-worker [options]\n"
                 "\n"
                 "Consumes tenant requests from Kafka, runs them on PostgreSQL and publishes a\n"
                 "result and an audit event for each (see CONTRACT.md).\n"
                 "\n"
                 "Options (each also read from the environment variable shown; flags win):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s=V", s->flag);
        fprintf(out, "  %-28s %-29s %s", flag, s->env, s->help);
        if (s->def != NULL && s->def[0] == '\0')
            fprintf(out, " (default: none)");
        else if (s->def != NULL)
            fprintf(out, " (default %s)", s->def);
        else
            fprintf(out, " (required)");
        if (s->kind == K_INT)
            fprintf(out, " [%ld-%ld]", s->min, s->max);
        fputc('\n', out);
    }
    fprintf(out,
            "  %-28s %-29s any librdkafka property, for the consumer and the producer\n"
            "  %-28s %-29s\n"
            "  %-28s %s\n"
            "  %-28s %s\n"
            "\n"
            "Signals: SIGTERM or SIGINT finish started requests, commit and exit 0.\n"
            "Exit status: 0 after a clean shutdown, 1 on a fatal error, 2 on a bad setting.\n",
            "-X key=value", "KAFKA_<PROPERTY>", "", "(dots as underscores)", "-h, --help",
            "this text", "-V, --version", "the version");
}

static const char *env_get(char **envp, const char *name)
{
    size_t n = strlen(name);
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
            return *e + n + 1;
    }
    return NULL;
}

/* Each setting from its flag, else its environment variable, else its default. */
static int load_settings(config_t *cfg, const char *const *flag_value, char **envp, char *err,
                         size_t errlen)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        const char *v = flag_value[i] != NULL ? flag_value[i] : env_get(envp, s->env);
        if (v == NULL)
            v = s->def;
        if (v == NULL) {
            errf(err, errlen, "%s: required (or --%s)", s->env, s->flag);
            return -1;
        }
        if (apply(s, v, cfg, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* KAFKA_<PROPERTY>: KAFKA_SESSION_TIMEOUT_MS=6000 → session.timeout.ms. */
static int load_kafka_env(config_t *cfg, char **envp, rd_kafka_conf_t *probe, char *err,
                          size_t errlen)
{
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        char key[KAFKA_ENV_PROPERTY_MAX];
        const char *value;
        size_t name_len;
        if (!kafka_env_property(*e, key, sizeof(key), &value, &name_len) ||
            env_is_setting(*e, name_len))
            continue;
        char origin[300];
        snprintf(origin, sizeof(origin), "%.*s", (int)name_len, *e);
        if (kafka_add(cfg, key, value, origin, probe, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* -X key=value, after the environment's KAFKA_* (flags win). */
static int load_kafka_flags(config_t *cfg, const char **xprops, size_t nx, rd_kafka_conf_t *probe,
                            char *err, size_t errlen)
{
    for (size_t i = 0; i < nx; i++) {
        const char *eq = strchr(xprops[i], '=');
        if (eq == NULL || eq == xprops[i]) {
            errf(err, errlen, "-X %.64s: expected key=value", xprops[i]);
            return -1;
        }
        char key[256];
        size_t n = (size_t)(eq - xprops[i]);
        if (n >= sizeof(key)) {
            errf(err, errlen, "-X: property name too long");
            return -1;
        }
        memcpy(key, xprops[i], n);
        key[n] = '\0';
        char origin[300];
        snprintf(origin, sizeof(origin), "-X %s", key);
        if (kafka_add(cfg, key, eq + 1, origin, probe, err, errlen) != 0)
            return -1;
    }
    return 0;
}

/* The command line: flag values by setting, -X properties in order.
 * Returns CONFIG_RUN to go on, CONFIG_EXIT after --help or --version, or
 * CONFIG_ERROR. */
static config_result_t parse_args(int argc, char **argv, FILE *out, const char **flag_value,
                                  const char **xprops, size_t *nx, char *err, size_t errlen)
{
    struct option longopts[NSETTINGS + 3];
    for (size_t i = 0; i < NSETTINGS; i++)
        longopts[i] = (struct option){settings[i].flag, required_argument, NULL, 1000 + (int)i};
    longopts[NSETTINGS] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[NSETTINGS + 1] = (struct option){"version", no_argument, NULL, 'V'};
    longopts[NSETTINGS + 2] = (struct option){NULL, 0, NULL, 0};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hVX:", longopts, NULL)) != -1) {
        if (c == 'h') {
            usage(out);
            return CONFIG_EXIT;
        } else if (c == 'V') {
            fprintf(out, "tally-worker %s\n", tally_version());
            return CONFIG_EXIT;
        } else if (c == 'X') {
            xprops[(*nx)++] = optarg;
        } else if (c >= 1000 && c < 1000 + (int)NSETTINGS) {
            flag_value[c - 1000] = optarg;
        } else if (c == ':') {
            errf(err, errlen, "%s: needs a value", argv[optind - 1]);
            return CONFIG_ERROR;
        } else {
            errf(err, errlen, "%s: unknown option (see --help)", argv[optind - 1]);
            return CONFIG_ERROR;
        }
    }
    if (optind < argc) {
        errf(err, errlen, "%.64s: unexpected argument (see --help)", argv[optind]);
        return CONFIG_ERROR;
    }
    return CONFIG_RUN;
}

config_result_t config_load(int argc, char **argv, char **envp, FILE *out, config_t *cfg, char *err,
                            size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));
    err[0] = '\0';
    rd_kafka_conf_t *probe = rd_kafka_conf_new();
    const char *flag_value[NSETTINGS] = {0};
    /* -X properties are applied after the environment's KAFKA_*, so collect them. */
    const char **xprops = mem_calloc((size_t)argc + 1, sizeof(*xprops));
    size_t nx = 0;
    config_result_t result = parse_args(argc, argv, out, flag_value, xprops, &nx, err, errlen);
    if (result == CONFIG_RUN && (load_settings(cfg, flag_value, envp, err, errlen) != 0 ||
                                 load_kafka_env(cfg, envp, probe, err, errlen) != 0 ||
                                 load_kafka_flags(cfg, xprops, nx, probe, err, errlen) != 0))
        result = CONFIG_ERROR;
    rd_kafka_conf_destroy(probe);
    free(xprops);
    if (result != CONFIG_RUN)
        config_free(cfg);
    return result;
}

void config_free(config_t *cfg)
{
    for (size_t i = 0; i < NSETTINGS; i++) {
        kind_t k = settings[i].kind;
        if (k == K_STR || k == K_TOPIC || k == K_ADDR || k == K_REGEX) {
            char **slot = (char **)(void *)((char *)cfg + settings[i].offset);
            free(*slot);
            *slot = NULL;
        }
    }
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
    }
    free(cfg->kafka);
    cfg->kafka = NULL;
    cfg->n_kafka = 0;
    if (cfg->has_reply_to_regex)
        regfree(&cfg->reply_to_regex);
    cfg->has_reply_to_regex = false;
}
