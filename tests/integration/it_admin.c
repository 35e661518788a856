/* it_admin — the worker's start-up role check: refuses every role that could
 * get around row-level security, accepts a plain member of tally_app. */
#include "harness.h"

#include "access/admin.h"
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct fixture {
    th_pg_t *pg;
} fixture_t;

static int group_setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    /* Roles of every kind; role attributes need the superuser. */
    th_pg_exec(f->pg, "postgres",
               "CREATE ROLE it_bypass LOGIN BYPASSRLS IN ROLE tally_app;"
               "CREATE ROLE it_owner_member LOGIN IN ROLE tally_owner, tally_app;"
               "CREATE ROLE it_super_member LOGIN IN ROLE postgres, tally_app;"
               "CREATE ROLE it_stranger LOGIN;"
               "CREATE ROLE it_plain LOGIN IN ROLE tally_app;"
               "CREATE ROLE it_createrole LOGIN CREATEROLE IN ROLE tally_app;"
               "CREATE ROLE it_cr_group NOLOGIN CREATEROLE;"
               "CREATE ROLE it_cr_member LOGIN IN ROLE it_cr_group, tally_app;"
               "GRANT CONNECT ON DATABASE tally TO it_stranger");
    *state = f;
    return 0;
}

static int group_teardown(void **state)
{
    fixture_t *f = *state;
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

/* Runs the check as role; returns its status and copies the problem line. */
static access_status_t check_as(fixture_t *f, const char *role, char *problem, size_t size)
{
    char url[256], err[256];
    th_pg_url(f->pg, role, url, sizeof(url));
    pool_config_t cfg = {.conninfo = url, .max = 1, .application_name = "it_admin"};
    pool_t *p;
    if (pool_new(&cfg, &p, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    pool_conn_t *c;
    if (pool_acquire(p, &c, err, sizeof(err)) != 0)
        fail_msg("pool_acquire as %s: %s", role, err);
    access_error_t aerr;
    access_status_t st = access_admin_check_worker_role(c, problem, size, &aerr);
    /* err->message is bounded (256): it holds the start of the problem line. */
    if (st == ACCESS_INVALID)
        assert_int_equal(strncmp(aerr.message, problem, sizeof(aerr.message) - 1), 0);
    pool_release(p, c);
    pool_free(p);
    printf("%-16s -> %s%s%s\n", role, access_status_str(st), problem[0] ? ": " : "", problem);
    return st;
}

static void expect_refused(fixture_t *f, const char *role, const char *needle)
{
    char problem[512];
    assert_int_equal(check_as(f, role, problem, sizeof(problem)), ACCESS_INVALID);
    assert_non_null(strstr(problem, role));
    if (strstr(problem, needle) == NULL)
        fail_msg("%s: expected '%s' in: %s", role, needle, problem);
    assert_null(strchr(problem, '\n')); /* one line */
}

static void test_superuser_refused(void **state)
{
    expect_refused(*state, "postgres", "superuser");
}

static void test_bypassrls_refused(void **state)
{
    expect_refused(*state, "it_bypass", "BYPASSRLS");
}

static void test_owner_refused(void **state)
{
    expect_refused(*state, "tally_owner", "owns");
    expect_refused(*state, "it_owner_member", "owner");
}

static void test_member_of_superuser_refused(void **state)
{
    expect_refused(*state, "it_super_member", "member of postgres");
}

/* On PostgreSQL 15 a CREATEROLE role can GRANT itself the tables' owner
 * (and so switch row-level security off): refused, and so is a member of one. */
static void test_createrole_refused(void **state)
{
    fixture_t *f = *state;
    expect_refused(f, "it_createrole", "CREATEROLE");
    expect_refused(f, "it_cr_member", "member of it_cr_group");
    /* Not a false alarm: the role really can make itself the owner. */
    PGconn *c = th_pg_connect(f->pg, "it_createrole");
    PGresult *r = PQexec(c, "GRANT tally_owner TO it_createrole");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
    th_pg_exec(f->pg, "postgres", "REVOKE tally_owner FROM it_createrole");
}

static void test_non_member_refused(void **state)
{
    expect_refused(*state, "it_stranger", "not a member of tally_app");
}

static void test_plain_members_accepted(void **state)
{
    fixture_t *f = *state;
    char problem[512];
    assert_int_equal(check_as(f, "tally_worker", problem, sizeof(problem)), ACCESS_OK);
    assert_string_equal(problem, "");
    assert_int_equal(check_as(f, "it_plain", problem, sizeof(problem)), ACCESS_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_superuser_refused),
        cmocka_unit_test(test_bypassrls_refused),
        cmocka_unit_test(test_owner_refused),
        cmocka_unit_test(test_member_of_superuser_refused),
        cmocka_unit_test(test_createrole_refused),
        cmocka_unit_test(test_non_member_refused),
        cmocka_unit_test(test_plain_members_accepted),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
