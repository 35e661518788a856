/* it_harness — the harness itself: the private PostgreSQL and its roles,
 * outages that keep data, the embedded broker and its control protocol. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

int main(void)
{
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test(test_pg_roles),
        cmocka_unit_test(test_pg_halt_resume_keeps_data),
        cmocka_unit_test(test_pg_two_servers_are_independent),
    };
    return cmocka_run_group_tests_name("postgres", pg_tests, setup_pg, teardown_pg);
}
