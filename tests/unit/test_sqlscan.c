/* Unit tests for access/sqlscan: transaction control found where the server
 * would run it, and never inside comments, strings, dollar quotes or a
 * function's BEGIN ATOMIC body. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "access/sqlscan.h"

#include <stdio.h>
#include <string.h>

static void expect_hit(const char *sql, int line, const char *what)
{
    access_sqlscan_hit_t hit = {0};
    if (!access_sqlscan_txn_control(sql, &hit))
        fail_msg("no transaction control found in [%s]", sql);
    if (hit.line != line || strcmp(hit.what, what) != 0)
        fail_msg("[%s]: got %s at line %d, want %s at line %d", sql, hit.what, hit.line, what,
                 line);
}

static void expect_none(const char *sql)
{
    access_sqlscan_hit_t hit = {0};
    if (access_sqlscan_txn_control(sql, &hit))
        fail_msg("[%s]: %s at line %d is not transaction control", sql, hit.what, hit.line);
}

static void test_finds_every_kind(void **state)
{
    (void)state;
    expect_hit("COMMIT;", 1, "COMMIT");
    expect_hit("CREATE TABLE a (x int);\nCOMMIT;\nBEGIN;\nSELEC 1;\n", 2, "COMMIT");
    expect_hit("select 1;\n\n  begin isolation level serializable;", 3, "BEGIN");
    expect_hit("START TRANSACTION;", 1, "START TRANSACTION");
    expect_hit("end;", 1, "END");
    expect_hit("SELECT 1; ROLLBACK", 1, "ROLLBACK");
    expect_hit("abort;", 1, "ABORT");
    expect_hit("SAVEPOINT s;", 1, "SAVEPOINT");
    expect_hit("release s;", 1, "RELEASE");
    expect_hit("COMMIT PREPARED 'x';", 1, "COMMIT");
    expect_hit("PREPARE\n  TRANSACTION 'x';", 1, "PREPARE TRANSACTION");
    expect_hit("-- a comment\n/* one /* nested */ more */ Commit", 2, "COMMIT");
    /* After a string, a dollar quote or a routine, the scan goes on. */
    expect_hit("SELECT 'it''s; fine';\nCOMMIT;", 2, "COMMIT");
    expect_hit("SELECT E'\\';';\nCOMMIT;", 2, "COMMIT");
    expect_hit("DO $x$ BEGIN END $x$;\nCOMMIT;", 2, "COMMIT");
    expect_hit("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n"
               "COMMIT;",
               2, "COMMIT");
}

static void test_ignores_what_is_not_a_statement(void **state)
{
    (void)state;
    expect_none("");
    expect_none("-- COMMIT;\nSELECT 1;");
    expect_none("/* BEGIN; /* COMMIT; */ END; */ SELECT 1;");
    expect_none("SELECT 'a; COMMIT; b';");
    expect_none("SELECT E'\\'; COMMIT; \\'';");
    expect_none("SELECT \"COMMIT\" FROM t;");
    expect_none("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\n"
                "BEGIN\n  PERFORM 1;\nEND\n$$;");
    expect_none("DO $body$ BEGIN COMMIT; END $body$;");
    expect_none("SELECT $1::int; PREPARE p AS SELECT 1;");
    expect_none("CREATE OR REPLACE FUNCTION f(x int) RETURNS int LANGUAGE sql\n"
                "BEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n  SELECT 2;\nEND;\n"
                "SELECT f(1);");
    expect_none("CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END;");
    expect_none("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); "
                "DELETE FROM v);");
    expect_none("SELECT begin_at, end_at FROM t; UPDATE t SET committed = true;");
    expect_none("CREATE TABLE t (x int);\nCREATE TRIGGER g AFTER INSERT ON t "
                "FOR EACH ROW EXECUTE FUNCTION f();\nSELECT CASE WHEN true THEN 1 END;");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finds_every_kind),
        cmocka_unit_test(test_ignores_what_is_not_a_statement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
