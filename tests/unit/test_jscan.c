/* Unit tests for src/envelope/jscan: it calls valid exactly what jansson
 * takes once duplicates, NULs and out-of-range numbers are allowed for; it
 * finds the first of those with its path; its copy is what jansson takes;
 * it counts and taints the top-level members asked about. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "envelope/jscan.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jscan_t scan(const char *text, char **copy)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1);
    out[n] = '\0';
    jscan_t r;
    jscan_run(text, n, out, NULL, 0, &r);
    if (copy != NULL)
        *copy = out;
    else
        free(out);
    return r;
}

static void expect_problem(const char *text, jscan_problem_t p, const char *path)
{
    char *copy;
    jscan_t r = scan(text, &copy);
    if (!r.valid || r.problem != p || strcmp(r.path, path) != 0)
        fail_msg("%s: valid %d, problem %d at \"%s\"; expected %d at \"%s\"", text, r.valid,
                 r.problem, r.path, p, path);
    /* The copy is what jansson takes without JSON_REJECT_DUPLICATES. */
    json_error_t e;
    json_t *j = json_loadb(copy, strlen(copy), JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("%s: the copy %s is refused: %s", text, copy, e.text);
    json_decref(j);
    free(copy);
}

static void test_problems_and_paths(void **state)
{
    (void)state;
    expect_problem("{\"a\":1,\"a\":2}", JSCAN_DUPLICATE_KEY, "a");
    expect_problem("{\"a\":1,\"\\u0061\":2}", JSCAN_DUPLICATE_KEY, "a");
    expect_problem("{\"p\":{\"m\":{\"k\":1,\"k\":1}}}", JSCAN_DUPLICATE_KEY, "p.m.k");
    expect_problem("[0,{\"x\":[1,2,9223372036854775808]}]", JSCAN_NUMBER_RANGE, "[1].x[2]");
    expect_problem("{\"n\":-9223372036854775809}", JSCAN_NUMBER_RANGE, "n");
    expect_problem("{\"n\":1e309}", JSCAN_NUMBER_RANGE, "n");
    expect_problem("{\"n\":-1.7976931348623159e308}", JSCAN_NUMBER_RANGE, "n");
    expect_problem("{\"s\":\"ab\\u0000\"}", JSCAN_NUL, "s");
    expect_problem("{\"k\\u0000\":1}", JSCAN_NUL, "k\xEF\xBF\xBD");
    expect_problem("{\"\":{\"a\":1e999}}", JSCAN_NUMBER_RANGE, "a");       /* "" leaves no trace */
    expect_problem("{\"z\":\"\\u0000\",\"a\":1,\"a\":2}", JSCAN_NUL, "z"); /* the first one */
    expect_problem("\"\\u0000\"", JSCAN_NUL, "");
    /* In range, however written: nothing to report. */
    jscan_t r = scan("{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":1e-400,"
                     "\"d\":1.7976931348623157e308,\"e\":-0,\"f\":\"\\ud83d\\ude00\"}",
                     NULL);
    assert_true(r.valid);
    assert_int_equal(r.problem, JSCAN_NONE);
    /* A long path is cut on a character boundary. */
    char deep[4096] = "";
    for (int i = 0; i < 60; i++)
        strcat(deep, "{\"\xC3\xA9\xC3\xA9\":");
    strcat(deep, "1e400");
    for (int i = 0; i < 60; i++)
        strcat(deep, "}");
    r = scan(deep, NULL);
    assert_int_equal(r.problem, JSCAN_NUMBER_RANGE);
    assert_true(strlen(r.path) < JSCAN_PATH_MAX);
    assert_true(strlen(r.path) > JSCAN_PATH_MAX - 8);
    assert_int_equal(((unsigned char)r.path[strlen(r.path) - 1] & 0xC0), 0x80); /* é's last byte */
}

/* valid means what jansson takes, duplicates and NULs allowed (and numbers
 * checked apart). */
static void test_validity_agrees_with_jansson(void **state)
{
    (void)state;
    const char *texts[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "[,1]",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{1:2}",
        "01",
        "1.",
        ".5",
        "1e",
        "1e+",
        "-",
        "+1",
        "--1",
        "0x10",
        "tru",
        "nul",
        "falsey",
        "\"abc",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\uZZZZ\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "\"\t\"",
        "\"\x7f\"",
        "1 2",
        "[1] x",
        "\x0c"
        "1",
        "{\"a\":1}\n",
        "[[],{}]",
        "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
        "-0.0e-0",
        "[true,false,null]",
        "  [ 1 , 2 ] ",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        jscan_t r = scan(texts[i], NULL);
        json_t *j = json_loadb(texts[i], strlen(texts[i]), JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (r.valid != (j != NULL))
            fail_msg("\"%s\": jscan says %s, jansson %s", texts[i], r.valid ? "valid" : "invalid",
                     j != NULL ? "takes it" : "refuses it");
        json_decref(j);
    }
}

/* jansson counts every value a level, scalars included, up to 2048. */
static void test_depth_as_jansson(void **state)
{
    (void)state;
    for (int n = JSCAN_MAX_DEPTH - 1; n <= JSCAN_MAX_DEPTH + 1; n++) {
        for (int scalar = 0; scalar < 2; scalar++) {
            size_t len = 2 * (size_t)n + 2;
            char *t = malloc(len);
            size_t k = 0;
            for (int i = 0; i < n; i++)
                t[k++] = '[';
            if (scalar)
                t[k++] = '1';
            for (int i = 0; i < n; i++)
                t[k++] = ']';
            t[k] = '\0';
            jscan_t r;
            jscan_run(t, k, NULL, NULL, 0, &r);
            json_t *j = json_loadb(t, k, JSON_DECODE_ANY, NULL);
            assert_int_equal(r.valid, j != NULL);
            json_decref(j);
            free(t);
        }
    }
}

static void test_members(void **state)
{
    (void)state;
    jscan_member_t m[] = {{.name = "id"}, {.name = "type"}, {.name = "reply_to"}, {.name = "x"}};
    const char *text = "{\"id\":\"a\",\"type\":\"t\",\"\\u0069d\":\"b\",\"reply_to\":[1e400],"
                       "\"nested\":{\"x\":1,\"x\":2}}";
    jscan_t r;
    jscan_run(text, strlen(text), NULL, m, 4, &r);
    assert_true(r.valid);
    assert_int_equal(r.problem, JSCAN_DUPLICATE_KEY);
    assert_string_equal(r.path, "id");
    assert_int_equal(r.member, 0); /* in members[0], "id" */
    assert_int_equal(m[0].count, 2);
    assert_true(m[0].tainted);
    assert_int_equal(m[1].count, 1);
    assert_false(m[1].tainted);
    assert_int_equal(m[2].count, 1);
    assert_true(m[2].tainted);       /* a problem inside it */
    assert_int_equal(m[3].count, 0); /* only top-level members count */
    assert_false(m[3].tainted);
    /* A problem outside every member asked about. */
    jscan_run("{\"a\":1e400}", 11, NULL, m, 4, &r);
    assert_int_equal(r.problem, JSCAN_NUMBER_RANGE);
    assert_int_equal(r.member, -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_problems_and_paths),
        cmocka_unit_test(test_validity_agrees_with_jansson),
        cmocka_unit_test(test_depth_as_jansson),
        cmocka_unit_test(test_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
