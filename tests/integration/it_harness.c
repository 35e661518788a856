/* it_harness — the harness itself: the private PostgreSQL and its roles,
 * outages that keep data, the embedded broker and its control protocol. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

typedef struct fixture {
    th_pg_t *pg;
} fixture_t;

static int setup_pg(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    *state = f;
    return 0;
}

static int teardown_pg(void **state)
{
    fixture_t *f = *state;
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

static void test_pg_roles(void **state)
{
    fixture_t *f = *state;
    th_pg_t *pg = f->pg;
    assert_int_equal(
        th_pg_i64(pg, "postgres", "SELECT rolsuper::int FROM pg_roles WHERE rolname = 'postgres'"),
        1);
    assert_int_equal(
        th_pg_i64(pg, "postgres", "SELECT current_setting('server_version_num')::int / 10000"), 15);

    /* tally_owner: may log in and create roles, owns tally, is no superuser. */
    assert_int_equal(
        th_pg_i64(
            pg, "tally_owner",
            "SELECT (rolcanlogin AND rolcreaterole AND NOT rolsuper AND NOT rolbypassrls)::int"
            " FROM pg_roles WHERE rolname = current_user"),
        1);
    char *owner = th_pg_text(
        pg, "postgres", "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'tally'");
    assert_string_equal(owner, "tally_owner");
    free(owner);

    /* tally_worker: may log in, nothing else. */
    assert_int_equal(th_pg_i64(pg, "tally_worker",
                               "SELECT (rolcanlogin AND NOT rolcreaterole AND NOT rolsuper"
                               " AND NOT rolbypassrls AND NOT rolcreatedb)::int"
                               " FROM pg_roles WHERE rolname = current_user"),
                     1);
    assert_int_equal(
        th_pg_i64(pg, "tally_worker",
                  "SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
                  " WHERE r.rolname = 'tally_worker'"),
        0);

    /* Durability settings of a throwaway test server. */
    char *fsync = th_pg_text(pg, "postgres", "SHOW fsync");
    assert_string_equal(fsync, "off");
    free(fsync);
    char *listen = th_pg_text(pg, "postgres", "SHOW listen_addresses");
    assert_string_equal(listen, "127.0.0.1");
    free(listen);

    char url[256];
    th_pg_url(pg, "tally_worker", url, sizeof(url));
    char want[256];
    snprintf(want, sizeof(want), "postgresql://tally_worker@127.0.0.1:%d/tally", th_pg_port(pg));
    assert_string_equal(url, want);
}

static void test_pg_halt_resume_keeps_data(void **state)
{
    fixture_t *f = *state;
    th_pg_t *pg = f->pg;
    int port = th_pg_port(pg);
    th_pg_exec(pg, "tally_owner", "CREATE TABLE kept (n int8 NOT NULL)");
    th_pg_exec(pg, "tally_owner", "INSERT INTO kept SELECT generate_series(1, 1000)");

    th_pg_halt(pg);
    /* Down means down: a connection attempt is refused. */
    char conninfo[128];
    snprintf(conninfo, sizeof(conninfo),
             "host=127.0.0.1 port=%d user=postgres dbname=tally connect_timeout=2", port);
    assert_int_equal(PQping(conninfo), PQPING_NO_RESPONSE);

    th_pg_resume(pg);
    assert_int_equal(th_pg_port(pg), port);
    assert_int_equal(th_pg_i64(pg, "tally_owner", "SELECT sum(n) FROM kept"), 500500);
    th_pg_exec(pg, "tally_owner", "DROP TABLE kept");
}

static void test_pg_two_servers_are_independent(void **state)
{
    fixture_t *f = *state;
    th_pg_t *other = th_pg_start();
    assert_int_not_equal(th_pg_port(other), th_pg_port(f->pg));
    th_pg_exec(other, "tally_owner", "CREATE TABLE only_here (n int)");
    assert_int_equal(th_pg_i64(other, "tally_owner",
                               "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"),
                     1);
    assert_int_equal(th_pg_i64(f->pg, "tally_owner",
                               "SELECT count(*) FROM pg_tables WHERE tablename = 'only_here'"),
                     0);
    th_pg_stop(other);
}

/* th_pg_migrate: `tallyctl migrate` as tally_owner, then tally_app granted to
 * tally_worker; running it again changes nothing. */
static void test_pg_migrate(void **state)
{
    fixture_t *f = *state;
    th_pg_migrate(f->pg);
    assert_int_equal(
        th_pg_i64(f->pg, "postgres",
                  "SELECT (NOT rolcanlogin)::int FROM pg_roles WHERE rolname = 'tally_app'"),
        1);
    assert_int_equal(
        th_pg_i64(f->pg, "tally_worker", "SELECT pg_has_role('tally_app', 'MEMBER')::int"), 1);
    int64_t applied = th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_schema_migrations");
    assert_true(applied >= 1);
    th_pg_migrate(f->pg);
    assert_int_equal(th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_schema_migrations"),
                     applied);
}

/* ---- embedded broker ---------------------------------------------------- */

static const char *topic_name(const char *env, const char *dflt)
{
    const char *v = getenv(env);
    return v != NULL && *v != '\0' ? v : dflt;
}

static int setup_broker(void **state)
{
    *state = th_broker_start(6);
    return 0;
}

static int teardown_broker(void **state)
{
    th_broker_stop(*state); /* fails unless it exits 0 on SIGTERM */
    return 0;
}

static void test_broker_round_trip_each_topic(void **state)
{
    th_broker_t *b = *state;
    const char *topics[] = {
        topic_name("TALLY_REQUEST_TOPIC", "tally.requests"),
        topic_name("TALLY_RESULT_TOPIC", "tally.results"),
        topic_name("TALLY_AUDIT_TOPIC", "tally.audit"),
        topic_name("TALLY_DLQ_TOPIC", "tally.dlq"),
    };
    th_producer_t *p = th_producer_new(b);
    for (int t = 0; t < 4; t++) {
        /* Six partitions, each led by one of the three brokers. */
        for (int32_t part = 0; part < 6; part++) {
            int32_t leader = th_partition_leader(p, topics[t], part);
            assert_true(leader >= 1 && leader <= 3);
        }
        assert_int_equal(th_partition_leader(p, topics[t], 6), -1);
        for (int i = 0; i < 3; i++) {
            char value[128];
            int n = snprintf(value, sizeof(value), "{\"topic\":\"%s\",\"n\":%d}", topics[t], i);
            th_produce(p, topics[t], -1, "acct_42", value, (size_t)n);
        }
        /* One more with headers, through the raw handle. */
        rd_kafka_resp_err_t err = rd_kafka_producev(
            th_producer_handle(p), RD_KAFKA_V_TOPIC(topics[t]), RD_KAFKA_V_KEY("acct_42", 7),
            RD_KAFKA_V_VALUE("not json", 8), RD_KAFKA_V_HEADER("tally-status", "ok", 2),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    th_producer_flush(p);

    for (int t = 0; t < 4; t++) {
        th_consumer_t *c = th_consumer_new(b, topics[t]);
        th_msg_t msgs[4];
        assert_int_equal(th_consume(c, msgs, 4, 30000), 4);
        /* One key: one partition, in order. */
        for (int i = 0; i < 3; i++) {
            assert_string_equal(msgs[i].key, "acct_42");
            assert_int_equal(msgs[i].partition, msgs[0].partition);
            assert_int_equal(msgs[i].offset, msgs[0].offset + i);
            assert_non_null(msgs[i].json);
            assert_int_equal(json_integer_value(json_object_get(msgs[i].json, "n")), i);
            assert_string_equal(json_string_value(json_object_get(msgs[i].json, "topic")),
                                topics[t]);
        }
        assert_null(msgs[3].json);
        assert_string_equal(msgs[3].value, "not json");
        assert_int_equal(msgs[3].value_len, 8);
        assert_string_equal(json_string_value(json_object_get(msgs[3].headers, "tally-status")),
                            "ok");
        for (int i = 0; i < 4; i++)
            th_msg_clear(&msgs[i]);
        th_consumer_free(c);
    }
    th_producer_free(p);
}

static void test_broker_topic_command(void **state)
{
    th_broker_t *b = *state;
    th_broker_command(b, "topic it.extra 2");
    char reply[256];
    assert_false(th_broker_try_command(b, reply, sizeof(reply), "topic it.extra 2"));
    assert_non_null(strstr(reply, "error: "));
    th_producer_t *p = th_producer_new(b);
    assert_true(th_partition_leader(p, "it.extra", 1) >= 1);
    assert_int_equal(th_partition_leader(p, "it.extra", 2), -1);
    th_producer_free(p);
}

static void produce_one(th_producer_t *p, const char *topic, int32_t partition)
{
    th_produce(p, topic, partition, "acct_1", "{}", 2);
}

static void test_broker_request_errors_then_clear(void **state)
{
    th_broker_t *b = *state;
    const char *topic = topic_name("TALLY_RESULT_TOPIC", "tally.results");
    th_producer_t *p = th_producer_new(b);
    produce_one(p, topic, 0); /* connect and learn metadata before the errors */
    th_producer_flush(p);

    char err[256];
    th_broker_command(b, "request-errors Produce MSG_SIZE_TOO_LARGE 10 10");
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "too large"));

    /* Two errors are still pushed; clearing them lets the next produce through. */
    th_broker_command(b, "clear-errors Produce");
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 0);

    /* And a pushed error is really consumed by the next request, not sticky. */
    th_broker_command(b, "request-errors 0 msg_size_too_large");
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 1);
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 0);
    th_producer_free(p);
}

static void test_broker_down_then_up(void **state)
{
    th_broker_t *b = *state;
    const char *topic = topic_name("TALLY_AUDIT_TOPIC", "tally.audit");
    /* Short timeout: with its leader down a message can only time out. */
    const char *conf[] = {"message.timeout.ms=3000", "reconnect.backoff.max.ms=200", NULL};
    th_producer_t *p = th_producer_new_with(b, conf);
    int32_t leader = th_partition_leader(p, topic, 0);
    assert_true(leader >= 1);
    produce_one(p, topic, 0);
    th_producer_flush(p);

    th_broker_command(b, "broker-down %d", (int)leader);
    char err[256];
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 1);
    assert_non_null(strstr(err, "timed out"));

    th_broker_command(b, "broker-up %d", (int)leader);
    produce_one(p, topic, 0);
    assert_int_equal(th_producer_flush_failures(p, err, sizeof(err)), 0);

    th_broker_command(b, "rtt all 5");
    th_broker_command(b, "rtt all 0");
    th_producer_free(p);
}

static void test_broker_malformed_lines(void **state)
{
    th_broker_t *b = *state;
    const char *bad[] = {
        "",
        "   ",
        "nonsense",
        "topic",
        "topic only-name",
        "topic x 0",
        "topic x many",
        "topic bad/name 1",
        "broker-down",
        "broker-down 0",
        "broker-down 4",
        "broker-up x",
        "broker-up 1 2",
        "rtt 1",
        "rtt 1 -5",
        "rtt 9 5",
        "request-errors Produce",
        "request-errors Nope 6",
        "request-errors Produce NOPE",
        "request-errors Produce 6 NOPE",
        "clear-errors",
        "clear-errors Nope",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char reply[512] = "";
        assert_false(th_broker_try_command(b, reply, sizeof(reply), "%s", bad[i]));
        if (strncmp(reply, "error: ", 7) != 0)
            fail_msg("'%s' got '%s'", bad[i], reply);
    }
    /* Still in step: the next good command gets its own "ok". */
    th_broker_command(b, "rtt 1 0");
}

static void test_broker_options(void **state)
{
    (void)state;
    const char *args[] = {"--brokers", "1", "--topic", "it.custom:3", "--topic=it.plain", NULL};
    th_broker_t *b = th_broker_start_args(2, args);
    th_producer_t *p = th_producer_new(b);
    assert_int_equal(th_partition_leader(p, "it.custom", 2), 1);
    assert_int_equal(th_partition_leader(p, "it.custom", 3), -1);
    assert_int_equal(th_partition_leader(p, "it.plain", 1), 1); /* --partitions 2 */
    assert_int_equal(th_partition_leader(p, "it.plain", 2), -1);
    assert_int_equal(th_partition_leader(p, topic_name("TALLY_DLQ_TOPIC", "tally.dlq"), 1), 1);
    th_producer_free(p);
    char reply[128];
    assert_false(th_broker_try_command(b, reply, sizeof(reply), "broker-down 2"));
    th_broker_stop(b);
}

/* An optional argument runs one group only ("postgres" or "broker"): the
 * interrupt test uses it to catch a run while a given service is up. */
int main(int argc, char **argv)
{
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test(test_pg_roles),
        cmocka_unit_test(test_pg_halt_resume_keeps_data),
        cmocka_unit_test(test_pg_two_servers_are_independent),
        cmocka_unit_test(test_pg_migrate),
    };
    const struct CMUnitTest broker_tests[] = {
        cmocka_unit_test(test_broker_round_trip_each_topic),
        cmocka_unit_test(test_broker_topic_command),
        cmocka_unit_test(test_broker_request_errors_then_clear),
        cmocka_unit_test(test_broker_down_then_up),
        cmocka_unit_test(test_broker_malformed_lines),
        cmocka_unit_test(test_broker_options),
    };
    const char *only = argc > 1 ? argv[1] : "";
    int failed = 0;
    if (*only == '\0' || strcmp(only, "postgres") == 0)
        failed += cmocka_run_group_tests_name("postgres", pg_tests, setup_pg, teardown_pg);
    if (*only == '\0' || strcmp(only, "broker") == 0)
        failed +=
            cmocka_run_group_tests_name("broker", broker_tests, setup_broker, teardown_broker);
    return failed;
}
