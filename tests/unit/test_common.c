/* Unit tests for src/common: error codes, time format, ids, log redaction,
 * log lines, the out-of-memory policy, UTF-8, topic names and the KAFKA_*
 * mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/clock.h"
#include "common/errcode.h"
#include "common/ids.h"
#include "common/kafka_env.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/topic.h"
#include "common/utf8.h"

#include <jansson.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_errcode_strings_and_storage(void **state)
{
    (void)state;
    assert_string_equal(tally_errcode_str(TALLY_ERR_INVALID_REQUEST), "invalid_request");
    assert_string_equal(tally_errcode_str(TALLY_ERR_INSUFFICIENT_FUNDS), "insufficient_funds");
    tally_errcode_t c;
    assert_true(tally_errcode_parse("idempotency_conflict", &c));
    assert_int_equal(c, TALLY_ERR_IDEMPOTENCY_CONFLICT);
    assert_false(tally_errcode_parse("none", &c));
    assert_false(tally_errcode_parse("bogus", &c));
    /* CONTRACT.md §3: only not_found, conflict and insufficient_funds are stored. */
    assert_true(tally_errcode_is_stored(TALLY_ERR_NOT_FOUND));
    assert_true(tally_errcode_is_stored(TALLY_ERR_CONFLICT));
    assert_true(tally_errcode_is_stored(TALLY_ERR_INSUFFICIENT_FUNDS));
    assert_false(tally_errcode_is_stored(TALLY_ERR_INVALID_REQUEST));
    assert_false(tally_errcode_is_stored(TALLY_ERR_IDEMPOTENCY_CONFLICT));
    assert_false(tally_errcode_is_stored(TALLY_ERR_INTERNAL));
}

static void test_rfc3339_round_trip(void **state)
{
    (void)state;
    char buf[CLOCK_RFC3339_LEN + 1];
    assert_string_equal(clock_format_rfc3339(1795341600123, buf, sizeof(buf)),
                        "2026-11-22T10:00:00.123Z");
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339("2026-11-22T10:00:00.123Z", &ms), 0);
    assert_int_equal(ms, 1795341600123);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T11:00:00.123+01:00", &ms), 0);
    assert_int_equal(ms, 1795341600123);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T10:00:00Z", &ms), 0);
    assert_int_equal(ms, 1795341600000);
    assert_int_equal(clock_parse_rfc3339("1969-12-31T23:59:59.999Z", &ms), 0);
    assert_int_equal(ms, -1);
    assert_int_equal(clock_parse_rfc3339("2025-02-29T00:00:00Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-22 10:00:00Z", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T10:00:00", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("2026-11-22T10:00:00Zjunk", &ms), -1);
}

/* Found by the fuzzer: an offset moved year 0000 into year -1 (and 9999 into
 * 10000), which formatted as "-001-12-31T…", not RFC 3339. */
static void test_rfc3339_years_0000_to_9999_only(void **state)
{
    (void)state;
    char buf[CLOCK_RFC3339_LEN + 1];
    int64_t ms;
    assert_int_equal(clock_parse_rfc3339("0000-01-01T00:00:00+23:59", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("0000-01-01T00:59:59+01:00", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("9999-12-31T23:59:59-00:01", &ms), -1);
    assert_int_equal(clock_parse_rfc3339("0000-01-01T01:00:00+01:00", &ms), 0);
    assert_string_equal(clock_format_rfc3339(ms, buf, sizeof(buf)), "0000-01-01T00:00:00.000Z");
    assert_int_equal(clock_parse_rfc3339("9999-12-31T23:59:60.999Z", &ms), 0);
    assert_string_equal(clock_format_rfc3339(ms, buf, sizeof(buf)), "9999-12-31T23:59:59.999Z");
}

static void test_ids_shape_and_order(void **state)
{
    (void)state;
    char prev[IDS_MAX] = "";
    for (int i = 0; i < 2000; i++) {
        char id[IDS_MAX];
        assert_int_equal(ids_new("pay", id, sizeof(id)), 0);
        assert_int_equal(strlen(id), 4 + IDS_BODY_LEN);
        assert_memory_equal(id, "pay_", 4);
        assert_true(strcmp(prev, id) < 0); /* strictly increasing within a process */
        strcpy(prev, id);
    }
    char small[10];
    assert_int_equal(ids_new("pay", small, sizeof(small)), -1);
}

static void test_log_redact(void **state)
{
    (void)state;
    char out[256];
    log_redact("postgresql://tally:s3cret@db:5432/tally?sslmode=require", out, sizeof(out));
    assert_string_equal(out, "postgresql://tally:xxxxx@db:5432/tally?sslmode=require");
    log_redact("host=db user=tally password=s3cret dbname=x", out, sizeof(out));
    assert_string_equal(out, "host=db user=tally password=xxxxx dbname=x");
    log_redact("host=db password = 'a b\\'c' dbname=x", out, sizeof(out));
    assert_string_equal(out, "host=db password=xxxxx dbname=x");
    log_redact("postgresql://tally@db/tally", out, sizeof(out));
    assert_string_equal(out, "postgresql://tally@db/tally");
    log_redact("no secrets here", out, sizeof(out));
    assert_string_equal(out, "no secrets here");
}

/* What one log_emit writes to stderr (captured through a pipe). */
static void capture_log(bool text, char *out, size_t size)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    log_setup(LOG_INFO, text);
    log_warn("two\nlines", LOG_S("error", "FATAL:  terminating\n\tserver \"x\""),
             LOG_SOPT("trace_id", ""), LOG_S("url", "postgresql://u:s3cret@db/t"),
             LOG_SOPT("none", NULL), LOG_I("n", 7), LOG_SOPT("trace_id", "0af7"));
    log_setup(LOG_INFO, false);
    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    close(fds[1]);
    ssize_t n = read(fds[0], out, size - 1);
    close(fds[0]);
    assert_true(n > 0);
    out[n] = '\0';
}

/* One line per call in both formats, whatever the values hold (libpq's
 * messages span lines), and no password from a connection string. */
static void test_log_one_line_per_call(void **state)
{
    (void)state;
    char out[1024];
    capture_log(false, out, sizeof(out));
    assert_non_null(strstr(out, "\"level\":\"warn\",\"msg\":\"two\\nlines\""));
    assert_non_null(strstr(out, "\"error\":\"FATAL:  terminating\\n\\tserver \\\"x\\\"\""));
    /* An optional field is left out when empty, written when not. */
    assert_non_null(
        strstr(out, "\"url\":\"postgresql://u:xxxxx@db/t\",\"n\":7,\"trace_id\":\"0af7\"}"));
    assert_non_null(strstr(out, "server \\\"x\\\"\",\"url\""));
    assert_null(strstr(out, "none"));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    assert_null(strstr(out, "s3cret"));

    capture_log(true, out, sizeof(out));
    assert_non_null(strstr(out, " warn  two\\nlines error=FATAL:  terminating\\n\\tserver \"x\""));
    assert_non_null(strstr(out, " url=postgresql://u:xxxxx@db/t n=7 trace_id=0af7\n"));
    assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
    assert_null(strstr(out, "s3cret"));
}

/* Whatever bytes a value holds, and however long, the JSON line is valid
 * UTF-8 and parses: invalid sequences become U+FFFD, and a cut never splits
 * a character. */
static void test_log_line_is_valid_json(void **state)
{
    (void)state;
    static char big[12000];
    size_t n = 0;
    while (n + 2 < sizeof(big) - 1) { /* "é" repeated past the line's limit */
        big[n++] = (char)0xC3;
        big[n++] = (char)0xA9;
    }
    big[n] = '\0';
    const char *const values[] = {"ok \xC3\xA9", "bad \xFF\xC3 \xED\xA0\x80 \xC0\xAF end", big};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        int fds[2];
        assert_int_equal(pipe(fds), 0);
        int saved = dup(STDERR_FILENO);
        assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
        log_setup(LOG_INFO, false);
        log_info("value", LOG_S("v", values[i]));
        assert_true(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        close(fds[1]);
        static char out[16384];
        ssize_t got = read(fds[0], out, sizeof(out) - 1);
        close(fds[0]);
        assert_true(got > 0);
        out[got] = '\0';
        json_error_t jerr;
        json_t *line = json_loads(out, 0, &jerr);
        if (line == NULL)
            fail_msg("log line %zu is not valid JSON: %s", i, jerr.text);
        assert_non_null(json_object_get(line, "v"));
        json_decref(line);
    }
}

static void test_mem_never_null(void **state)
{
    (void)state;
    void *z = mem_alloc(0); /* a real, freeable pointer even for 0 bytes */
    assert_non_null(z);
    free(z);
    char *s = mem_strndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = mem_strndup("ab", 10);
    assert_string_equal(s, "ab");
    free(s);
    int *v = mem_calloc(4, sizeof(int));
    assert_int_equal(v[0] | v[1] | v[2] | v[3], 0);
    v = mem_realloc(v, 1000 * sizeof(int));
    v[999] = 7;
    free(v);
}

/* mem_fail logs one JSON line naming the call and aborts. */
static void test_mem_fail_logs_and_aborts(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        signal(SIGABRT, SIG_DFL);
        mem_fail("malloc", 12345);
    }
    close(fds[1]);
    char buf[512] = "";
    ssize_t n, got = 0;
    while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += n;
    close(fds[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    json_t *line = json_loads(buf, 0, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "out of memory: aborting");
    assert_int_equal(json_integer_value(json_object_get(line, "bytes")), 12345);
    json_decref(line);
}

/* ---- utf8, topic, kafka_env: rules every layer shares --------------------- */

static void test_utf8_validator(void **state)
{
    (void)state;
    size_t bad;
    assert_true(utf8_valid("h\xC3\xA9llo \xF0\x9F\x98\x80", 11, &bad));
    assert_false(utf8_valid("\xC0\xAF", 2, &bad)); /* overlong */
    assert_int_equal(bad, 0);
    assert_false(utf8_valid("ab\xED\xA0\x80", 5, &bad)); /* surrogate */
    assert_int_equal(bad, 2);
    assert_false(utf8_valid("\xF4\x90\x80\x80", 4, &bad)); /* above U+10FFFF */
    assert_false(utf8_valid("\xE2\x82", 2, &bad));         /* truncated */
    assert_false(utf8_valid("\xFF", 1, &bad));
    assert_false(utf8_valid("a\xE2\x82"
                            "b",
                            4, &bad)); /* a cut sequence in the middle */
    assert_int_equal(bad, 1);
    assert_true(utf8_valid("", 0, NULL));
    /* utf8_seq_len stops at the first byte that continues nothing (a NUL). */
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xE2\x82\xAC", SIZE_MAX), 3);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xE2\x82", SIZE_MAX), 0);
    assert_int_equal(utf8_seq_len((const unsigned char *)"\xE2\x82\xAC", 2), 0);
}

static void test_utf8_chars_and_cut(void **state)
{
    (void)state;
    assert_int_equal(utf8_chars("", 0), 0);
    assert_int_equal(utf8_chars("abc", 3), 3);
    assert_int_equal(utf8_chars("a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10), 4);
    /* Cut at a boundary only: "aé€" is 1 + 2 + 3 bytes. */
    assert_int_equal(utf8_cut("a\xC3\xA9\xE2\x82\xAC", 6, 6), 6);
    assert_int_equal(utf8_cut("a\xC3\xA9\xE2\x82\xAC", 6, 5), 3);
    assert_int_equal(utf8_cut("a\xC3\xA9\xE2\x82\xAC", 6, 2), 1);
    assert_int_equal(utf8_cut("a\xC3\xA9\xE2\x82\xAC", 6, 0), 0);
    char out[4];
    utf8_copy(out, sizeof(out), "aé€");
    assert_string_equal(out, "a\xc3\xa9");
    utf8_copy(out, sizeof(out), "€");
    assert_string_equal(out, "\xe2\x82\xac");
    utf8_copy(out, 3, "€");
    assert_string_equal(out, "");
}

static void test_topic_names(void **state)
{
    (void)state;
    assert_true(topic_name_valid("billing.replies", 15));
    assert_true(topic_name_valid("a-b_C.9", 7));
    assert_false(topic_name_valid("", 0));
    assert_false(topic_name_valid(".", 1));
    assert_false(topic_name_valid("..", 2));
    assert_true(topic_name_valid("...", 3));
    assert_false(topic_name_valid("a b", 3));
    assert_false(topic_name_valid("a/b", 3));
    char long_name[251];
    memset(long_name, 'x', 250);
    assert_true(topic_name_valid(long_name, 249));
    assert_false(topic_name_valid(long_name, 250));
}

static void test_kafka_env_mapping(void **state)
{
    (void)state;
    char key[KAFKA_ENV_PROPERTY_MAX];
    const char *value = NULL;
    size_t name_len = 0;
    assert_true(
        kafka_env_property("KAFKA_SESSION_TIMEOUT_MS=6000", key, sizeof(key), &value, &name_len));
    assert_string_equal(key, "session.timeout.ms");
    assert_string_equal(value, "6000");
    assert_int_equal(name_len, strlen("KAFKA_SESSION_TIMEOUT_MS"));
    assert_true(
        kafka_env_property("KAFKA_BOOTSTRAP_SERVERS=", key, sizeof(key), &value, &name_len));
    assert_string_equal(key, "bootstrap.servers");
    assert_string_equal(value, "");
    assert_true(kafka_env_property("KAFKA_A=b=c", key, sizeof(key), &value, &name_len));
    assert_string_equal(key, "a");
    assert_string_equal(value, "b=c");
    /* Not a property: another variable, KAFKA_ alone, no '=', one too long. */
    assert_false(kafka_env_property("TALLY_X=1", key, sizeof(key), &value, &name_len));
    assert_false(kafka_env_property("KAFKA_=1", key, sizeof(key), &value, &name_len));
    assert_false(kafka_env_property("KAFKA_LINGER_MS", key, sizeof(key), &value, &name_len));
    assert_false(kafka_env_property("KAFKA_LINGER_MS=5", key, 9, &value, &name_len));
    assert_true(kafka_env_property("KAFKA_LINGER_MS=5", key, 10, &value, &name_len));
    /* And back. */
    char name[64];
    assert_true(kafka_env_name("session.timeout.ms", name, sizeof(name)));
    assert_string_equal(name, "KAFKA_SESSION_TIMEOUT_MS");
    assert_true(kafka_env_name("linger.ms", name, 16));
    assert_string_equal(name, "KAFKA_LINGER_MS");
    assert_false(kafka_env_name("linger.ms", name, 15));
    assert_true(kafka_env_property("KAFKA_LINGER_MS=5", key, sizeof(key), &value, &name_len));
    assert_true(kafka_env_name(key, name, sizeof(name)));
    assert_string_equal(name, "KAFKA_LINGER_MS");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errcode_strings_and_storage),
        cmocka_unit_test(test_rfc3339_round_trip),
        cmocka_unit_test(test_rfc3339_years_0000_to_9999_only),
        cmocka_unit_test(test_ids_shape_and_order),
        cmocka_unit_test(test_log_redact),
        cmocka_unit_test(test_log_one_line_per_call),
        cmocka_unit_test(test_log_line_is_valid_json),
        cmocka_unit_test(test_mem_never_null),
        cmocka_unit_test(test_mem_fail_logs_and_aborts),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_utf8_chars_and_cut),
        cmocka_unit_test(test_topic_names),
        cmocka_unit_test(test_kafka_env_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
