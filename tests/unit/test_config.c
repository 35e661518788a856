/* Unit tests for src/worker/config: defaults, flags over environment, Kafka
 * properties, and one clear line for every bad value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE_ENV                                                                                   \
    "DATABASE_URL=postgresql://w:s3cret@127.0.0.1:5/tally", "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:"   \
                                                            "9092"

static config_result_t load(char **argv, char **envp, config_t *cfg, char *err, size_t len)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    FILE *out = fopen("/dev/null", "w");
    config_result_t r = config_load(argc, argv, envp, out, cfg, err, len);
    fclose(out);
    return r;
}

static void test_defaults(void **state)
{
    (void)state;
    char *argv[] = {"tally-worker", NULL};
    char *envp[] = {BASE_ENV, "HOME=/root", NULL};
    config_t cfg;
    char err[256];
    assert_int_equal(load(argv, envp, &cfg, err, sizeof(err)), CONFIG_RUN);
    assert_string_equal(cfg.group_id, "tally-workers");
    assert_string_equal(cfg.request_topic, "tally.requests");
    assert_string_equal(cfg.result_topic, "tally.results");
    assert_string_equal(cfg.audit_topic, "tally.audit");
    assert_string_equal(cfg.dlq_topic, "tally.dlq");
    assert_int_equal(cfg.pool_max, 5);
    assert_int_equal(cfg.max_in_flight, 1000);
    assert_int_equal(cfg.max_retries, 5);
    assert_int_equal(cfg.shutdown_timeout_ms, 25000);
    assert_int_equal(cfg.outcome_retention_days, 30);
    assert_int_equal(cfg.statement_timeout_ms, 5000);
    assert_int_equal(cfg.lock_timeout_ms, 2000);
    assert_string_equal(cfg.http_addr, "127.0.0.1:8080");
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_false(cfg.log_text);
    assert_true(cfg.prepared_statements);
    assert_int_equal(cfg.n_kafka, 0);
    assert_string_equal(cfg.reply_to_pattern, "");
    assert_false(cfg.has_reply_to_regex);
    config_free(&cfg);
}

/* TALLY_REPLY_TO_PATTERN is compiled once at start-up (POSIX extended). */
static void test_reply_to_pattern(void **state)
{
    (void)state;
    char *argv[] = {"tally-worker", NULL};
    char *envp[] = {BASE_ENV, "TALLY_REPLY_TO_PATTERN=billing\\.[a-z]+|audit-copies", NULL};
    config_t cfg;
    char err[256];
    assert_int_equal(load(argv, envp, &cfg, err, sizeof(err)), CONFIG_RUN);
    assert_true(cfg.has_reply_to_regex);
    assert_string_equal(cfg.reply_to_pattern, "billing\\.[a-z]+|audit-copies");
    assert_int_equal(regexec(&cfg.reply_to_regex, "billing.replies", 0, NULL, 0), 0);
    assert_int_equal(regexec(&cfg.reply_to_regex, "other", 0, NULL, 0), REG_NOMATCH);
    config_free(&cfg);
    assert_false(cfg.has_reply_to_regex);
}

static void test_flags_env_and_kafka_properties(void **state)
{
    (void)state;
    char *argv[] = {"tally-worker", "--pool-max=3", "-X", "fetch.wait.max.ms=10",
                    "--log-format", "text",         NULL};
    char *argv_off[] = {"tally-worker", "--prepared-statements=off", NULL};
    char *envp[] = {BASE_ENV,
                    "TALLY_POOL_MAX=9",
                    "TALLY_GROUP_ID=g1",
                    "KAFKA_SESSION_TIMEOUT_MS=6000",
                    "TALLY_LOG_LEVEL=debug",
                    NULL};
    config_t cfg;
    char err[256];
    assert_int_equal(load(argv, envp, &cfg, err, sizeof(err)), CONFIG_RUN);
    assert_int_equal(cfg.pool_max, 3); /* the flag wins */
    assert_string_equal(cfg.group_id, "g1");
    assert_true(cfg.log_text);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.n_kafka, 2);
    assert_string_equal(cfg.kafka[0].key, "session.timeout.ms");
    assert_string_equal(cfg.kafka[0].value, "6000");
    assert_string_equal(cfg.kafka[1].key, "fetch.wait.max.ms");
    assert_string_equal(cfg.kafka[1].value, "10");
    assert_string_equal(cfg.bootstrap_servers, "127.0.0.1:9092");
    assert_true(cfg.prepared_statements);
    config_free(&cfg);
    /* Behind a transaction pooler. */
    char *envp_on[] = {BASE_ENV, "TALLY_PREPARED_STATEMENTS=on", NULL};
    assert_int_equal(load(argv_off, envp_on, &cfg, err, sizeof(err)), CONFIG_RUN);
    assert_false(cfg.prepared_statements);
    config_free(&cfg);
}

/* Each case: one extra env entry or flag, and words the error must contain. */
static void expect_bad(const char *env_or_flag, const char *must_contain)
{
    char *argv[4] = {"tally-worker", NULL, NULL, NULL};
    char *envp[5] = {BASE_ENV, NULL, NULL, NULL};
    if (env_or_flag[0] == '-')
        argv[1] = (char *)env_or_flag;
    else
        envp[2] = (char *)env_or_flag;
    config_t cfg;
    char err[256];
    assert_int_equal(load(argv, envp, &cfg, err, sizeof(err)), CONFIG_ERROR);
    if (strstr(err, must_contain) == NULL)
        fail_msg("error \"%s\" for %s lacks \"%s\"", err, env_or_flag, must_contain);
    assert_null(strchr(err, '\n'));
    assert_null(strstr(err, "s3cret"));
}

static void test_every_bad_value(void **state)
{
    (void)state;
    expect_bad("TALLY_POOL_MAX=0", "TALLY_POOL_MAX: 0 is out of range");
    expect_bad("TALLY_POOL_MAX=abc", "TALLY_POOL_MAX: \"abc\" is not an integer");
    expect_bad("TALLY_POOL_MAX=", "TALLY_POOL_MAX");
    expect_bad("TALLY_POOL_MAX=5x", "not an integer");
    expect_bad("TALLY_MAX_IN_FLIGHT=-1", "TALLY_MAX_IN_FLIGHT: -1 is out of range");
    expect_bad("TALLY_MAX_RETRIES=99999999999999999999", "TALLY_MAX_RETRIES");
    expect_bad("TALLY_SHUTDOWN_TIMEOUT_MS=-5", "TALLY_SHUTDOWN_TIMEOUT_MS");
    expect_bad("TALLY_OUTCOME_RETENTION_DAYS=0", "TALLY_OUTCOME_RETENTION_DAYS");
    expect_bad("TALLY_BATCH_MAX=0", "TALLY_BATCH_MAX");
    expect_bad("TALLY_STATEMENT_TIMEOUT_MS=0", "TALLY_STATEMENT_TIMEOUT_MS: 0 is out of range");
    expect_bad("TALLY_LOCK_TIMEOUT_MS=soon", "TALLY_LOCK_TIMEOUT_MS");
    expect_bad("TALLY_HTTP_ADDR=localhost", "TALLY_HTTP_ADDR: \"localhost\" is not host:port");
    expect_bad("TALLY_HTTP_ADDR=127.0.0.1:70000", "TALLY_HTTP_ADDR");
    expect_bad("TALLY_HTTP_ADDR=:80", "TALLY_HTTP_ADDR");
    expect_bad("TALLY_LOG_LEVEL=loud", "TALLY_LOG_LEVEL");
    expect_bad("TALLY_LOG_FORMAT=xml", "TALLY_LOG_FORMAT");
    expect_bad("TALLY_PREPARED_STATEMENTS=yes",
               "TALLY_PREPARED_STATEMENTS: \"yes\" is not on or off");
    expect_bad("--prepared-statements=", "TALLY_PREPARED_STATEMENTS");
    expect_bad("TALLY_REQUEST_TOPIC=bad topic", "TALLY_REQUEST_TOPIC");
    expect_bad("TALLY_RESULT_TOPIC=..", "TALLY_RESULT_TOPIC");
    expect_bad("TALLY_AUDIT_TOPIC=a/b", "TALLY_AUDIT_TOPIC");
    expect_bad("TALLY_DLQ_TOPIC=", "TALLY_DLQ_TOPIC");
    expect_bad("TALLY_GROUP_ID=", "TALLY_GROUP_ID: must not be empty");
    expect_bad("TALLY_REPLY_TO_PATTERN=billing\\.(", "TALLY_REPLY_TO_PATTERN");
    expect_bad("TALLY_REPLY_TO_PATTERN=[a-", "not a POSIX extended regular expression");
    expect_bad("--reply-to-pattern=*x", "TALLY_REPLY_TO_PATTERN");
    expect_bad("KAFKA_NO_SUCH_PROPERTY=1", "KAFKA_NO_SUCH_PROPERTY");
    expect_bad("KAFKA_SESSION_TIMEOUT_MS=soon", "KAFKA_SESSION_TIMEOUT_MS");
    expect_bad("-Xnot.a.property=1", "-X not.a.property");
    expect_bad("-Xnovalue", "expected key=value");
    expect_bad("--pool-max=0", "TALLY_POOL_MAX");
    expect_bad("--bogus", "unknown option");
    expect_bad("--pool-max", "needs a value");
}

static void test_required_and_secret(void **state)
{
    (void)state;
    char *argv[] = {"tally-worker", NULL};
    char *no_db[] = {"KAFKA_BOOTSTRAP_SERVERS=x:1", NULL};
    char *no_kafka[] = {"DATABASE_URL=postgresql://u:s3cret@h/db", NULL};
    config_t cfg;
    char err[256];
    assert_int_equal(load(argv, no_db, &cfg, err, sizeof(err)), CONFIG_ERROR);
    assert_non_null(strstr(err, "DATABASE_URL: required"));
    assert_int_equal(load(argv, no_kafka, &cfg, err, sizeof(err)), CONFIG_ERROR);
    assert_non_null(strstr(err, "KAFKA_BOOTSTRAP_SERVERS: required"));
    assert_null(strstr(err, "s3cret"));
    char *extra[] = {"tally-worker", "surplus", NULL};
    char *envp[] = {BASE_ENV, NULL};
    assert_int_equal(load(extra, envp, &cfg, err, sizeof(err)), CONFIG_ERROR);
    assert_non_null(strstr(err, "unexpected argument"));
}

static void test_help_and_version(void **state)
{
    (void)state;
    char buf[8192] = {0};
    FILE *out = fmemopen(buf, sizeof(buf) - 1, "w");
    char *argv[] = {"tally-worker", "--help", NULL};
    char *envp[] = {NULL};
    config_t cfg;
    char err[256];
    assert_int_equal(config_load(2, argv, envp, out, &cfg, err, sizeof(err)), CONFIG_EXIT);
    fclose(out);
    /* Every setting is listed. */
    const char *names[] = {"DATABASE_URL",
                           "KAFKA_BOOTSTRAP_SERVERS",
                           "TALLY_GROUP_ID",
                           "TALLY_REQUEST_TOPIC",
                           "TALLY_RESULT_TOPIC",
                           "TALLY_AUDIT_TOPIC",
                           "TALLY_DLQ_TOPIC",
                           "TALLY_POOL_MAX",
                           "TALLY_MAX_IN_FLIGHT",
                           "TALLY_MAX_RETRIES",
                           "TALLY_SHUTDOWN_TIMEOUT_MS",
                           "TALLY_OUTCOME_RETENTION_DAYS",
                           "TALLY_HTTP_ADDR",
                           "TALLY_LOG_LEVEL",
                           "TALLY_LOG_FORMAT",
                           "TALLY_BATCH_MAX",
                           "TALLY_STATEMENT_TIMEOUT_MS",
                           "TALLY_LOCK_TIMEOUT_MS",
                           "TALLY_PREPARED_STATEMENTS",
                           "KAFKA_<PROPERTY>",
                           "--version"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strstr(buf, names[i]) == NULL)
            fail_msg("--help lacks %s", names[i]);
    }
    memset(buf, 0, sizeof(buf));
    out = fmemopen(buf, sizeof(buf) - 1, "w");
    char *argv2[] = {"tally-worker", "--version", NULL};
    assert_int_equal(config_load(2, argv2, envp, out, &cfg, err, sizeof(err)), CONFIG_EXIT);
    fclose(out);
    assert_non_null(strstr(buf, "tally-worker " TALLY_VERSION));
}

static void test_split_addr(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(config_split_addr("127.0.0.1:8080", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(config_split_addr("[::1]:9", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(config_split_addr("h:0", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("h:", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_addr("h:-1", host, sizeof(host), &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reply_to_pattern),
        cmocka_unit_test(test_flags_env_and_kafka_properties),
        cmocka_unit_test(test_every_bad_value),
        cmocka_unit_test(test_required_and_secret),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_split_addr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
