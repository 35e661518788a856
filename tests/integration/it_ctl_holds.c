/* it_ctl_holds — `tallyctl hold`, `release` and `holds` against a private
 * PostgreSQL (migrations/0007_holds.sql): what they print and exit with,
 * their usage errors, the row they write (who, when, why), the
 * notification every change sends, and the worker's role, which may read
 * the held accounts through tally_held_accounts() and nothing else. */
#include "it_worker_common.h"

#include "ctl_run.h"

#include <poll.h>

typedef struct fixture {
    th_pg_t *pg;
    char env_url[300]; /* MIGRATION_DATABASE_URL=… (the owner) */
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    char url[256];
    th_pg_url(f->pg, "tally_owner", url, sizeof(url));
    snprintf(f->env_url, sizeof(f->env_url), "MIGRATION_DATABASE_URL=%s", url);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f == NULL)
        return 0;
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

/* tallyctl with args (NULL-terminated) as the owner; env_url NULL: none. */
static void ctl(const char *env_url, const char *const *args, ctl_out_t *o)
{
    const char *const env[] = {env_url, NULL};
    ctl_run(NULL, env_url != NULL ? env : NULL, args, o);
}

static void test_hold_release_and_list(void **state)
{
    fixture_t *f = *state;
    ctl_out_t o;
    ctl(f->env_url,
        (const char *[]){"hold", "acct_1", "--reason", "floods payouts", "--by", "alice", NULL},
        &o);
    assert_int_equal(o.code, 0);
    assert_string_equal(o.out, "held acct_1 (by alice): floods payouts\n");
    ctl_out_free(&o);
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_account_holds WHERE account = 'acct_1'"
                               " AND reason = 'floods payouts' AND held_by = 'alice'"
                               " AND db_role = 'tally_owner'"
                               " AND held_at > now() - interval '1 minute'"),
                     1);

    /* Again: the new reason, held since the first time, the old one shown. */
    ctl(f->env_url, (const char *[]){"hold", "--reason=still at it", "acct_1", "--by=bob", NULL},
        &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "held acct_1 (by bob): still at it\n"));
    assert_non_null(strstr(o.out, "it was held already, since 20"));
    assert_non_null(strstr(o.out, "by alice: floods payouts\n"));
    ctl_out_free(&o);

    /* Holds are by id: an account that never sent anything can be held. */
    ctl(f->env_url, (const char *[]){"hold", "acct_0", "--reason", "pre-emptive", NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);

    ctl(f->env_url, (const char *[]){"holds", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), 3);
    assert_true(strncmp(o.out, "ACCOUNT", 7) == 0);
    const char *a0 = strstr(o.out, "\nacct_0 "), *a1 = strstr(o.out, "\nacct_1 ");
    assert_true(a0 != NULL && a1 != NULL && a0 < a1); /* by account */
    assert_non_null(strstr(a1, "bob"));
    assert_non_null(strstr(a1, "still at it\n"));
    ctl_out_free(&o);

    ctl(f->env_url, (const char *[]){"holds", "--json", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_int_equal(ctl_lines(o.out), 2);
    json_t *j = json_loads(strchr(o.out, '\n') + 1, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "account")), "acct_1");
    assert_string_equal(json_string_value(json_object_get(j, "reason")), "still at it");
    assert_string_equal(json_string_value(json_object_get(j, "held_by")), "bob");
    assert_string_equal(json_string_value(json_object_get(j, "db_role")), "tally_owner");
    assert_int_equal(json_string_length(json_object_get(j, "held_at")), 24);
    json_decref(j);
    ctl_out_free(&o);

    ctl(f->env_url, (const char *[]){"release", "acct_1", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_true(strncmp(o.out, "released acct_1 (held since 20", 30) == 0);
    assert_non_null(strstr(o.out, " by bob: still at it)\n"));
    ctl_out_free(&o);
    /* Not held (any more, or a typo): said so, exit 1. */
    ctl(f->env_url, (const char *[]){"release", "acct_1", NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_string_equal(o.out, "");
    assert_non_null(strstr(o.err, "acct_1 is not held"));
    ctl_out_free(&o);

    ctl(f->env_url, (const char *[]){"release", "acct_0", NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    ctl(f->env_url, (const char *[]){"holds", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_string_equal(o.out, "no account is held\n");
    ctl_out_free(&o);
    ctl(f->env_url, (const char *[]){"holds", "--json", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_string_equal(o.out, "");
    ctl_out_free(&o);
}

/* A usage error: exit 2, a line naming the culprit, nothing held. */
static void expect_usage(fixture_t *f, const char *env_url, const char *const *args,
                         const char *needle)
{
    ctl_out_t o;
    ctl(env_url, args, &o);
    if (o.code != 2 || strstr(o.err, needle) == NULL)
        fail_msg("tallyctl %s: exit %d, stderr %s (wanted 2 and \"%s\")", args[0], o.code, o.err,
                 needle);
    ctl_out_free(&o);
    assert_int_equal(th_pg_i64(f->pg, "postgres", "SELECT count(*) FROM tally_account_holds"), 0);
}

static void test_usage_errors(void **state)
{
    fixture_t *f = *state;
    const char *u = f->env_url;
    expect_usage(f, u, (const char *[]){"hold", "acct_1", NULL}, "--reason is required");
    expect_usage(f, u, (const char *[]){"hold", "acct_1", "--reason", "", NULL}, "--reason:");
    expect_usage(f, u, (const char *[]){"hold", "acct_1", "--reason", "two\nlines", NULL},
                 "--reason:");
    expect_usage(f, u, (const char *[]){"hold", "--reason", "why", NULL}, "which account?");
    expect_usage(f, u, (const char *[]){"hold", "acct 1", "--reason", "why", NULL},
                 "\"acct 1\" is not an account id");
    expect_usage(f, u, (const char *[]){"hold", "a", "b", "--reason", "why", NULL},
                 "unexpected argument \"b\"");
    expect_usage(f, u, (const char *[]){"hold", "acct_1", "--reason", "why", "--json", NULL},
                 "unknown option --json");
    expect_usage(f, u, (const char *[]){"release", "acct_1", "--reason", "why", NULL},
                 "unknown option --reason");
    expect_usage(f, u, (const char *[]){"holds", "acct_1", NULL}, "unexpected argument");
    expect_usage(f, NULL, (const char *[]){"hold", "acct_1", "--reason", "why", NULL},
                 "set MIGRATION_DATABASE_URL or DATABASE_URL");
    /* The reason is at most 1000 characters (UTF-8: 1000 of "é" pass). */
    char reason[2100] = "";
    for (int i = 0; i < 1000; i++)
        strcat(reason, "\xc3\xa9");
    ctl_out_t o;
    ctl(u, (const char *[]){"hold", "acct_long", "--reason", reason, NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    ctl(u, (const char *[]){"release", "acct_long", NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    strcat(reason, "x");
    expect_usage(f, u, (const char *[]){"hold", "acct_long", "--reason", reason, NULL},
                 "--reason: 1-1000 characters");

    ctl(u, (const char *[]){"hold", "--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "Usage: tallyctl hold ACCOUNT --reason TEXT"));
    ctl_out_free(&o);
    ctl(NULL, (const char *[]){"--help", NULL}, &o);
    assert_int_equal(o.code, 0);
    assert_non_null(strstr(o.out, "  hold "));
    assert_non_null(strstr(o.out, "  release "));
    assert_non_null(strstr(o.out, "  holds "));
    ctl_out_free(&o);

    /* No database there: exit 1, and the password is not repeated. */
    char bad[256];
    snprintf(bad, sizeof(bad),
             "MIGRATION_DATABASE_URL=postgresql://tally_owner:Hold-s3cret@"
             "127.0.0.1:%d/tally?connect_timeout=5",
             th_free_port());
    ctl(bad, (const char *[]){"hold", "acct_1", "--reason", "why", NULL}, &o);
    assert_int_equal(o.code, 1);
    assert_non_null(strstr(o.err, "tallyctl hold: error: cannot connect to the database"));
    assert_null(strstr(o.err, "Hold-s3cret"));
    ctl_out_free(&o);
}

/* Waits up to timeout_ms for a notification on pg's channel; returns it
 * (PQfreemem it) or NULL. */
static PGnotify *await_notify(PGconn *pg, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        assert_int_equal(PQconsumeInput(pg), 1);
        PGnotify *n = PQnotifies(pg);
        int64_t left = end - it_now_ms();
        if (n != NULL || left <= 0)
            return n;
        struct pollfd p = {.fd = PQsocket(pg), .events = POLLIN};
        poll(&p, 1, left > 200 ? 200 : (int)left);
    }
}

/* Every change notifies tally_holds; the worker's role hears it, reads the
 * held accounts through the function, and can touch the table in no way. */
static void test_notify_and_the_worker_role(void **state)
{
    fixture_t *f = *state;
    PGconn *w = th_pg_connect(f->pg, "tally_worker");
    PQclear(PQexec(w, "LISTEN tally_holds"));
    ctl_out_t o;
    ctl(f->env_url, (const char *[]){"hold", "acct_n", "--reason", "noisy", NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    PGnotify *n = await_notify(w, 10000);
    assert_non_null(n);
    assert_string_equal(n->relname, "tally_holds");
    PQfreemem(n);

    PGresult *r = PQexec(w, "SELECT account FROM tally_held_accounts() AS held(account)");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), "acct_n");
    PQclear(r);
    const char *refused[] = {
        "SELECT * FROM tally_account_holds",
        "INSERT INTO tally_account_holds (account, reason, held_by) VALUES ('x', 'y', 'z')",
        "UPDATE tally_account_holds SET reason = 'mine'",
        "DELETE FROM tally_account_holds",
        "TRUNCATE tally_account_holds",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = PQexec(w, refused[i]);
        const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (code == NULL || strcmp(code, "42501") != 0)
            fail_msg("as tally_worker, %s: %s", refused[i], PQresultErrorMessage(r));
        PQclear(r);
    }
    assert_int_equal(th_pg_i64(f->pg, "postgres",
                               "SELECT count(*) FROM tally_account_holds WHERE reason = 'noisy'"),
                     1);

    ctl(f->env_url, (const char *[]){"release", "acct_n", NULL}, &o);
    assert_int_equal(o.code, 0);
    ctl_out_free(&o);
    n = await_notify(w, 10000);
    assert_non_null(n);
    PQfreemem(n);
    PQfinish(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hold_release_and_list),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_notify_and_the_worker_role),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
