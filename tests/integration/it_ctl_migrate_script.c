/* deploy/migrate.sh (the image's schema job) against a private PostgreSQL:
 * it applies the migrations as the owning role, then creates the worker's
 * login role, sets its password and grants it tally_app; it can run again;
 * the password appears in none of its output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "ctl_run.h"
#include "harness.h"

#include <libgen.h>

#define PASSWORD "s3cret-Pw-42"

static void run_script(const th_pg_t *pg, const char *password, ctl_out_t *o)
{
    char script[1024], path_env[1024], url_env[512], url[256], pw_env[128];
    char *src = strdup(getenv("TALLY_MIGRATIONS_DIR")); /* <source>/migrations */
    snprintf(script, sizeof(script), "%s/deploy/migrate.sh", dirname(src));
    free(src);
    char *bin = strdup(getenv("TALLYCTL_BIN"));
    snprintf(path_env, sizeof(path_env), "PATH=%s:/usr/bin:/bin", dirname(bin));
    free(bin);
    th_pg_url(pg, "tally_owner", url, sizeof(url));
    snprintf(url_env, sizeof(url_env), "MIGRATION_DATABASE_URL=%s", url);
    snprintf(pw_env, sizeof(pw_env), "TALLY_WORKER_PASSWORD=%s", password);
    ctl_finish(ctl_start_prog("/bin/sh", NULL,
                              (const char *const[]){path_env, url_env, pw_env,
                                                    "TALLY_WORKER_ROLE=tally_login_2", NULL},
                              (const char *const[]){script, NULL}),
               120000, o);
}

static void test_migrate_script(void **state)
{
    (void)state;
    th_pg_t *pg = th_pg_start();
    ctl_out_t o;
    run_script(pg, PASSWORD, &o);
    if (o.code != 0)
        fprintf(stderr, "%s%s", o.out, o.err);
    assert_int_equal(o.code, 0);
    assert_null(strstr(o.out, PASSWORD));
    assert_null(strstr(o.err, PASSWORD));
    ctl_out_free(&o);
    assert_true(th_pg_i64(pg, "postgres", "SELECT count(*) FROM tally_schema_migrations") >= 1);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM pg_auth_members m"
                               " JOIN pg_roles r ON r.oid = m.member"
                               " JOIN pg_roles g ON g.oid = m.roleid"
                               " WHERE r.rolname = 'tally_login_2' AND g.rolname = 'tally_app'"),
                     1);
    assert_int_equal(th_pg_i64(pg, "postgres",
                               "SELECT count(*) FROM pg_authid WHERE rolname = 'tally_login_2'"
                               " AND rolcanlogin AND NOT rolsuper AND NOT rolbypassrls"
                               " AND rolpassword IS NOT NULL"),
                     1);
    /* Again (every deploy runs it): nothing to apply, the role is updated. */
    run_script(pg, PASSWORD "-rotated", &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    assert_int_equal(
        th_pg_i64(pg, "postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'tally_login_2'"),
        1);
    th_pg_stop(pg);
}

static void test_without_url_is_a_usage_error(void **state)
{
    (void)state;
    char script[1024];
    char *src = strdup(getenv("TALLY_MIGRATIONS_DIR"));
    snprintf(script, sizeof(script), "%s/deploy/migrate.sh", dirname(src));
    free(src);
    ctl_out_t o;
    ctl_finish(
        ctl_start_prog("/bin/sh", NULL,
                       (const char *const[]){"MIGRATION_DATABASE_URL=", "DATABASE_URL=", NULL},
                       (const char *const[]){script, NULL}),
        30000, &o);
    assert_int_equal(o.code, 2);
    assert_non_null(strstr(o.err, "MIGRATION_DATABASE_URL"));
    ctl_out_free(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_script),
        cmocka_unit_test(test_without_url_is_a_usage_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
