/* Unit tests for the payload schemas, the shared validator and the handler
 * framework helpers (src/handlers/schema.c, schema_json.c, schema_doc.c,
 * schema_lint.c, handler.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../src/handlers/handler_internal.h"
#include "../../src/handlers/schema_doc.h"
#include "../../src/handlers/schema_json.h"
#include "../../src/handlers/schema_lint.h"
#include "handlers/currency.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- A schema with every field type --------------------------------------- */

static const char *const colors[] = {"red", "green", NULL};

static const schema_field_t item_fields[] = {
    {.name = "party", .type = SCHEMA_STRING, .required = true, .min_len = 1, .max_len = 8},
    {.name = "bp", .type = SCHEMA_INTEGER, .required = true, .min = 1, .max = 10000},
    {0},
};
static const schema_object_t item_schema = {.fields = item_fields};

static bool sum_check(const json_t *obj, const char *path, handler_error_t *err)
{
    const json_t *items = json_object_get(obj, "items");
    if (items == NULL)
        return true;
    json_int_t sum = 0;
    for (size_t i = 0; i < json_array_size(items); i++)
        sum += json_integer_value(json_object_get(json_array_get(items, i), "bp"));
    return sum == 10000 || schema_fail(err, path, "items", "must sum to 10000");
}

static const schema_field_t test_fields[] = {
    {.name = "name", .type = SCHEMA_STRING, .required = true, .min_len = 2, .max_len = 5},
    {.name = "amount", .type = SCHEMA_INTEGER, SCHEMA_AMOUNT_BOUNDS},
    {.name = "flag", .type = SCHEMA_BOOLEAN, .default_json = "true"},
    {.name = "color", .type = SCHEMA_ENUM, .values = colors, .default_json = "\"red\""},
    {.name = "when", .type = SCHEMA_TIMESTAMP},
    {.name = "currency", .type = SCHEMA_CURRENCY},
    {.name = "ref", .type = SCHEMA_ID},
    {.name = "code", .type = SCHEMA_STRING, .min_len = 4, .max_len = 64, .charset = "A-Z0-9-"},
    {.name = "note", .type = SCHEMA_STRING, .max_len = 10, .nullable = true},
    SCHEMA_METADATA_FIELD("metadata"),
    {.name = "items",
     .type = SCHEMA_ARRAY,
     .min_items = 1,
     .max_items = 3,
     .items = &item_schema,
     .unique = "party"},
    {0},
};
static const schema_object_t test_schema = {
    .fields = test_fields,
    .check = sum_check,
    .check_doc = "the items' bp sum to 10000.",
};

/* Validates the JSON text; returns whether valid, err filled otherwise. */
static bool check(const char *text, handler_error_t *err)
{
    json_error_t jerr;
    json_t *v = json_loads(text, JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
    if (v == NULL)
        fail_msg("bad test JSON %s: %s", text, jerr.text);
    bool ok = schema_validate(&test_schema, v, err);
    json_decref(v);
    return ok;
}

static void expect_ok(const char *text)
{
    handler_error_t err;
    if (!check(text, &err))
        fail_msg("%s: unexpected %s (%s)", text, err.field, err.message);
}

static void expect_bad(const char *text, const char *field, const char *message)
{
    handler_error_t err;
    if (check(text, &err))
        fail_msg("%s: unexpectedly valid", text);
    assert_int_equal(err.code, TALLY_ERR_INVALID_REQUEST);
    assert_string_equal(err.field, field);
    if (message != NULL)
        assert_string_equal(err.message, message);
}

static void test_valid_payloads(void **state)
{
    (void)state;
    expect_ok("{\"name\": \"ab\"}");
    expect_ok("{\"name\": \"abcde\", \"amount\": 1, \"flag\": false, \"color\": \"green\","
              " \"when\": \"2026-11-22T10:00:00.123Z\", \"currency\": \"usd\","
              " \"ref\": \"pay_01JD3Z5T8Q9V7K2M4N6P8R0S2T\", \"code\": \"SUMMER-2026\","
              " \"note\": null, \"metadata\": {\"k\": \"\"},"
              " \"items\": [{\"party\": \"a\", \"bp\": 5000}, {\"party\": \"b\", \"bp\": 5000}]}");
    expect_ok("{\"name\": \"ab\", \"amount\": 1000000000000000}");
    expect_ok(
        "{\"name\": \"ab\", \"when\": \"2024-02-29T23:59:60+05:30\"}"); /* leap day, leap second */
    expect_ok("{\"name\": \"ab\", \"when\": \"2026-01-01t00:00:00z\"}");
    expect_ok("{\"name\": \"ééééé\"}"); /* 5 characters, 10 bytes */
    expect_ok("{\"name\": \"ab\", \"note\": \"0123456789\"}");
    expect_ok("{\"name\": \"ab\", \"ref\": \"!~\"}");
}

static void test_required_and_unknown(void **state)
{
    (void)state;
    expect_bad("{}", "name", "name is required");
    expect_bad("{\"name\": \"ab\", \"nmae\": 1}", "nmae", "nmae is not a known field");
    /* Unknown fields are reported before missing ones. */
    expect_bad("{\"extra\": 1}", "extra", "extra is not a known field");
    expect_bad("[]", "payload", "payload must be a JSON object");
    /* Found by the fuzzer: an empty key made an error without a field. */
    expect_bad("{\"name\": \"ab\", \"\": 1}", "payload",
               "payload must not have a field with an empty name");
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\", \"bp\": 10000, \"\": 1}]}",
               "items[0]", "items[0] must not have a field with an empty name");
    expect_bad("\"x\"", "payload", NULL);
}

static void test_integers(void **state)
{
    (void)state;
    expect_bad("{\"name\": \"ab\", \"amount\": 0}", "amount",
               "amount must be between 1 and 1000000000000000");
    expect_bad("{\"name\": \"ab\", \"amount\": 1000000000000001}", "amount", NULL);
    expect_bad("{\"name\": \"ab\", \"amount\": -1}", "amount", NULL);
    expect_bad("{\"name\": \"ab\", \"amount\": 1999.0}", "amount", "amount must be an integer");
    expect_bad("{\"name\": \"ab\", \"amount\": 1e3}", "amount", "amount must be an integer");
    expect_bad("{\"name\": \"ab\", \"amount\": \"1999\"}", "amount", "amount must be an integer");
    expect_bad("{\"name\": \"ab\", \"amount\": true}", "amount", NULL);
    expect_bad("{\"name\": \"ab\", \"amount\": null}", "amount", NULL);
}

static void test_strings(void **state)
{
    (void)state;
    expect_bad("{\"name\": \"a\"}", "name", "name must be 2 to 5 characters long");
    expect_bad("{\"name\": \"éééééé\"}", "name", NULL); /* 6 characters */
    expect_bad("{\"name\": 12}", "name", "name must be a string");
    expect_bad("{\"name\": \"a\\u0000b\"}", "name", "name must not contain NUL characters");
    expect_bad("{\"name\": \"ab\", \"note\": \"01234567890\"}", "note",
               "note must be at most 10 characters long");
    expect_bad("{\"name\": \"ab\", \"code\": \"abcd\"}", "code",
               "code must contain only [A-Z0-9-]");
    expect_bad("{\"name\": \"ab\", \"code\": \"ABC\"}", "code", NULL);
    expect_bad("{\"name\": \"ab\", \"code\": \"ABCD\\n\"}", "code", NULL);
    expect_bad("{\"name\": \"ab\", \"color\": \"blue\"}", "color",
               "color must be one of: red, green");
    expect_bad("{\"name\": \"ab\", \"color\": null}", "color", "color must be a string");
    expect_bad("{\"name\": \"ab\", \"flag\": 1}", "flag", "flag must be a boolean");
    expect_bad("{\"name\": \"ab\", \"currency\": \"USD\"}", "currency", NULL);
    expect_bad("{\"name\": \"ab\", \"currency\": \"usdx\"}", "currency", NULL);
    /* Three lower-case letters are not enough: the code must be ISO 4217's. */
    expect_bad("{\"name\": \"ab\", \"currency\": \"uds\"}", "currency",
               "currency must be an active ISO 4217 currency code; uds is none");
    expect_bad("{\"name\": \"ab\", \"currency\": \"xyz\"}", "currency", NULL);
    expect_bad("{\"name\": \"ab\", \"ref\": \"\"}", "ref", NULL);
    expect_bad("{\"name\": \"ab\", \"ref\": \"pay 1\"}", "ref", NULL);
    expect_bad("{\"name\": \"ab\", \"ref\": \"pay_é\"}", "ref", NULL);
    char long_id[128];
    snprintf(long_id, sizeof(long_id), "{\"name\": \"ab\", \"ref\": \"%065d\"}", 0);
    expect_bad(long_id, "ref", NULL);
}

static void test_timestamps(void **state)
{
    (void)state;
    const char *bad[] = {
        "2026-02-30T00:00:00Z", "2026-13-01T00:00:00Z",
        "2026-11-22 10:00:00Z", "2026-11-22T10:00:00",
        "2026-11-22T24:00:00Z", "2026-11-22T10:00:00.Z",
        "2025-02-29T00:00:00Z", "yesterday",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "{\"name\": \"ab\", \"when\": \"%s\"}", bad[i]);
        expect_bad(text, "when", NULL);
    }
}

static void test_maps(void **state)
{
    (void)state;
    expect_bad("{\"name\": \"ab\", \"metadata\": {\"k\": 1}}", "metadata.k",
               "metadata.k must be a string");
    expect_bad("{\"name\": \"ab\", \"metadata\": []}", "metadata", NULL);
    expect_bad("{\"name\": \"ab\", \"metadata\": {\"\": \"v\"}}", "metadata",
               "metadata must not have an empty key");
    char text[4096];
    snprintf(text, sizeof(text), "{\"name\": \"ab\", \"metadata\": {\"%041d\": \"v\"}}", 0);
    expect_bad(text, "metadata.00000000000000000000000000000000000000000",
               "metadata.00000000000000000000000000000000000000000 must be a key of 1 to 40 "
               "characters");
    snprintf(text, sizeof(text), "{\"name\": \"ab\", \"metadata\": {\"k\": \"%0501d\"}}", 0);
    expect_bad(text, "metadata.k", "metadata.k must be at most 500 characters long");

    size_t used = (size_t)snprintf(text, sizeof(text), "{\"name\": \"ab\", \"metadata\": {");
    for (int i = 0; i < 51; i++)
        used += (size_t)snprintf(text + used, sizeof(text) - used, "%s\"k%d\": \"v\"",
                                 i ? ", " : "", i);
    snprintf(text + used, sizeof(text) - used, "}}");
    expect_bad(text, "metadata", "metadata must have at most 50 keys");
}

static void test_arrays(void **state)
{
    (void)state;
    expect_bad("{\"name\": \"ab\", \"items\": []}", "items", "items must have 1 to 3 items");
    expect_bad("{\"name\": \"ab\", \"items\": {}}", "items", "items must be an array");
    expect_bad("{\"name\": \"ab\", \"items\": [1]}", "items[0]", "items[0] must be an object");
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\", \"bp\": 5000},"
               " {\"party\": \"b\", \"bp\": 0}]}",
               "items[1].bp", "items[1].bp must be between 1 and 10000");
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\"}]}", "items[0].bp",
               "items[0].bp is required");
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\", \"bp\": 10000, \"x\": 1}]}",
               "items[0].x", "items[0].x is not a known field");
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\", \"bp\": 2000},"
               " {\"party\": \"b\", \"bp\": 4000}, {\"party\": \"a\", \"bp\": 4000}]}",
               "items[2].party", "items[2].party repeats the party of items[0]; it must be unique");
    /* The hook runs last, once the fields are sound. */
    expect_bad("{\"name\": \"ab\", \"items\": [{\"party\": \"a\", \"bp\": 5000},"
               " {\"party\": \"b\", \"bp\": 4999}]}",
               "items", "items must sum to 10000");
}

static void test_paths_truncate_on_characters(void **state)
{
    (void)state;
    /* An unknown key of 300 two-byte characters: field and message are cut
     * short, never inside a character. */
    char key[601];
    for (int i = 0; i < 300; i++)
        memcpy(key + 2 * i, "é", 2);
    key[600] = '\0';
    json_t *p = json_pack("{s:s, s:i}", "name", "ab", key, 1);
    assert_non_null(p);
    handler_error_t err;
    assert_false(schema_validate(&test_schema, p, &err));
    json_decref(p);
    size_t flen = strlen(err.field);
    assert_true(flen > 100 && flen < sizeof(err.field));
    assert_int_equal(flen % 2, 0);      /* whole "é"s only */
    json_t *s = json_string(err.field); /* jansson refuses invalid UTF-8 */
    assert_non_null(s);
    json_decref(s);
    s = json_string(err.message);
    assert_non_null(s);
    json_decref(s);
}

static void test_defaults(void **state)
{
    (void)state;
    json_t *in = json_pack("{s:s, s:s}", "name", "ab", "color", "green");
    json_t *full = schema_apply_defaults(&test_schema, in);
    assert_non_null(full);
    assert_true(json_is_true(json_object_get(full, "flag")));
    assert_string_equal(json_string_value(json_object_get(full, "color")), "green");
    assert_null(json_object_get(in, "flag")); /* the input is not touched */
    assert_null(json_object_get(full, "amount"));
    json_decref(full);
    json_decref(in);
}

static void test_json_schema_output(void **state)
{
    (void)state;
    json_t *js = schema_json_generate(&test_schema, "t", "A test.");
    assert_non_null(js);
    assert_string_equal(json_string_value(json_object_get(js, "$schema")),
                        "https://json-schema.org/draft/2020-12/schema");
    assert_true(json_is_false(json_object_get(js, "additionalProperties")));
    assert_non_null(strstr(json_string_value(json_object_get(js, "description")),
                           "the items' bp sum to 10000."));
    json_t *props = json_object_get(js, "properties");
    assert_int_equal(json_object_size(props), 11);
    json_t *req = json_object_get(js, "required");
    assert_int_equal(json_array_size(req), 1);
    assert_string_equal(json_string_value(json_array_get(req, 0)), "name");
    json_t *amount = json_object_get(props, "amount");
    assert_string_equal(json_string_value(json_object_get(amount, "type")), "integer");
    assert_int_equal(json_integer_value(json_object_get(amount, "maximum")), SCHEMA_AMOUNT_MAX);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(props, "code"), "pattern")),
        "^[A-Z0-9-]*$(?!\\n)");
    /* A currency is an enum of every ISO 4217 code, not a pattern. */
    json_t *cur = json_object_get(json_object_get(props, "currency"), "enum");
    assert_int_equal(json_array_size(cur), currency_count());
    assert_string_equal(json_string_value(json_array_get(cur, 0)), currency_code(0));
    assert_null(json_object_get(json_object_get(props, "currency"), "pattern"));
    json_t *note_type = json_object_get(json_object_get(props, "note"), "type");
    assert_true(json_is_array(note_type));
    assert_true(json_is_true(json_object_get(json_object_get(props, "flag"), "default")));
    json_t *items = json_object_get(props, "items");
    assert_non_null(
        strstr(json_string_value(json_object_get(items, "description")), "party must be unique"));
    assert_true(
        json_is_false(json_object_get(json_object_get(items, "items"), "additionalProperties")));
    json_decref(js);
}

/* ---- Lint ------------------------------------------------------------------ */

static const char *const no_values[] = {NULL};
static const schema_field_t bad_int[] = {{.name = "n", .type = SCHEMA_INTEGER}, {0}};
static const schema_field_t bad_enum[] = {{.name = "e", .type = SCHEMA_ENUM, .values = no_values},
                                          {0}};
static const schema_field_t bad_default[] = {
    {.name = "n", .type = SCHEMA_INTEGER, .min = 1, .max = 5, .default_json = "9"}, {0}};
static const schema_field_t bad_charset[] = {
    {.name = "s", .type = SCHEMA_STRING, .max_len = 5, .charset = "a-z]"}, {0}};
static const schema_field_t twice[] = {{.name = "s", .type = SCHEMA_STRING, .max_len = 5},
                                       {.name = "s", .type = SCHEMA_STRING, .max_len = 5},
                                       {0}};
static const schema_field_t bad_unique[] = {
    {.name = "a", .type = SCHEMA_ARRAY, .max_items = 2, .items = &item_schema, .unique = "nope"},
    {0}};

/* The table docs/JOB_TYPES.md shows for a schema comes from its declaration:
 * every field, its bounds, default and enum, the items' rows, the check. */
static void test_doc_markdown(void **state)
{
    (void)state;
    char *md = schema_doc_markdown(&test_schema);
    assert_non_null(md);
    static const char *const rows[] = {
        "| field | required | type | bounds | default | about |\n|---|---|---|---|---|---|\n",
        "| `name` | yes | string | 2–5 characters |  |  |\n",
        "| `amount` |  | integer | 1–10^15 |  |  |\n",
        "| `flag` |  | boolean | `true` or `false` | `true` |  |\n",
        "| `color` |  | enum | `red` or `green` | `red` |  |\n",
        "| `when` |  | timestamp | RFC 3339 with `Z` or an offset |  |  |\n",
        "| `currency` |  | currency | an active ISO 4217 code in lower case |  |  |\n",
        "| `ref` |  | id | 1–64 printable ASCII characters, no spaces |  |  |\n",
        "| `code` |  | string | 4–64 characters of `[A-Z0-9-]` |  |  |\n",
        "| `note` |  | string or `null` | at most 10 characters |  |  |\n",
        "| `metadata` |  | object of strings | at most 50 keys of 1–40 characters; values at most "
        "500 characters |  | Your key-value pairs, stored and returned as given. |\n",
        "| `items` |  | array of objects | 1–3 items; each item's `party` unique |  |  |\n",
        "| `items[].party` | yes | string | 1–8 characters |  |  |\n",
        "| `items[].bp` | yes | integer | 1–10000 |  |  |\n",
        "\nAlso checked: the items' bp sum to 10000.\n",
    };
    const char *at = md;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const char *row = strstr(at, rows[i]);
        if (row == NULL)
            fail_msg("row %zu missing or out of order: %s\nin:\n%s", i, rows[i], md);
        at = row + strlen(rows[i]);
    }
    assert_string_equal(at, ""); /* nothing else */
    free(md);

    static const schema_field_t none[] = {{0}};
    static const schema_object_t empty = {.fields = none};
    md = schema_doc_markdown(&empty);
    assert_string_equal(md, "No fields: the payload is `{}`.\n");
    free(md);

    static const schema_field_t bar_fields[] = {
        {.name = "x", .type = SCHEMA_BOOLEAN, .doc = "a | b"}, {0}};
    static const schema_object_t bar = {.fields = bar_fields};
    md = schema_doc_markdown(&bar);
    assert_non_null(strstr(md, "| a \\| b |")); /* a cell keeps the table whole */
    free(md);

    char n[32];
    schema_doc_int(INT64_C(1000000000000000), n, sizeof(n));
    assert_string_equal(n, "10^15");
    schema_doc_int(1000000, n, sizeof(n));
    assert_string_equal(n, "10^6");
    schema_doc_int(100000, n, sizeof(n));
    assert_string_equal(n, "100000");
    schema_doc_int(10000, n, sizeof(n));
    assert_string_equal(n, "10000");
    schema_doc_int(2000000, n, sizeof(n));
    assert_string_equal(n, "2000000");
    schema_doc_int(0, n, sizeof(n));
    assert_string_equal(n, "0");

    /* Every job type's section: its heading, summary and table. */
    char *sec = handler_doc_markdown(handler_find("payment.refund"));
    assert_non_null(strstr(sec, "### `payment.refund`\n\nRefunds part or all"));
    assert_non_null(strstr(sec, "| `amount` |  | integer | 1–10^15 |"));
    free(sec);
}

static void test_lint(void **state)
{
    (void)state;
    char why[256];
    assert_true(schema_lint_check(&test_schema, why, sizeof(why)));
    const schema_object_t broken[] = {
        {.fields = bad_int},
        {.fields = bad_enum},
        {.fields = bad_default},
        {.fields = bad_charset},
        {.fields = twice},
        {.fields = bad_unique},
        {.fields = item_fields, .check = sum_check},
    };
    for (size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        why[0] = '\0';
        if (schema_lint_check(&broken[i], why, sizeof(why)))
            fail_msg("broken declaration %zu passed the lint", i);
        assert_true(why[0] != '\0');
    }
}

/* ---- The registry and the framework helpers ------------------------------- */

static void test_registry(void **state)
{
    (void)state;
    assert_true(handler_count() >= 7);
    for (size_t i = 0; i < handler_count(); i++) {
        const handler_t *h = handler_at(i);
        char why[256];
        if (!schema_lint_check(h->schema, why, sizeof(why)))
            fail_msg("%s: %s", h->name, why);
        assert_non_null(h->execute);
        assert_non_null(h->summary);
        assert_ptr_equal(handler_find(handler_name(h)), h);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(handler_name(handler_at(j)), handler_name(h));
        json_t *js = handler_json_schema(h);
        assert_non_null(js);
        json_decref(js);
    }
    assert_null(handler_at(handler_count()));
    assert_null(handler_find("payment.nope"));
    assert_null(handler_find(NULL));
    assert_non_null(handler_find("payment.record"));
    assert_non_null(handler_find("share.allocate"));
}

static void test_execute_validates_first(void **state)
{
    (void)state;
    /* An invalid payload never reaches execute (which would need a tx). */
    const handler_t *h = handler_find("payment.record");
    json_t *p =
        json_pack("{s:s, s:f, s:s}", "external_id", "pi_1", "amount", 1999.0, "currency", "usd");
    json_t *result = (json_t *)&result; /* must come back NULL */
    handler_error_t err;
    assert_int_equal(handler_execute(h, NULL, p, &result, &err), HANDLER_REJECTED);
    assert_null(result);
    assert_int_equal(err.code, TALLY_ERR_INVALID_REQUEST);
    assert_string_equal(err.field, "amount");
    json_decref(p);

    p = json_object();
    assert_false(handler_validate(handler_find("share.allocate"), p, &err));
    assert_string_equal(err.field, "payment_id");
    json_decref(p);
}

static void test_access_error_mapping(void **state)
{
    (void)state;
    const struct {
        access_status_t in;
        handler_status_t st;
        tally_errcode_t code;
    } map[] = {
        {ACCESS_NOT_FOUND, HANDLER_REJECTED, TALLY_ERR_NOT_FOUND},
        {ACCESS_CONFLICT, HANDLER_REJECTED, TALLY_ERR_CONFLICT},
        {ACCESS_INSUFFICIENT_FUNDS, HANDLER_REJECTED, TALLY_ERR_INSUFFICIENT_FUNDS},
        {ACCESS_INVALID, HANDLER_REJECTED, TALLY_ERR_INVALID_REQUEST},
        {ACCESS_RETRY, HANDLER_RETRY, TALLY_ERR_INTERNAL},
        {ACCESS_UNAVAILABLE, HANDLER_UNAVAILABLE, TALLY_ERR_INTERNAL},
        {ACCESS_FAILED, HANDLER_FAILED, TALLY_ERR_INTERNAL},
        {ACCESS_OK, HANDLER_FAILED, TALLY_ERR_INTERNAL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        access_error_t aerr = {.status = map[i].in};
        snprintf(aerr.field, sizeof(aerr.field), "amount");
        snprintf(aerr.message, sizeof(aerr.message), "why %zu", i);
        handler_error_t err;
        assert_int_equal(handler_access_error(&aerr, &err), map[i].st);
        assert_int_equal(err.code, map[i].code);
        assert_string_equal(err.message, aerr.message);
        /* Business outcomes keep the field; infrastructure ones have none. */
        assert_string_equal(err.field, map[i].st == HANDLER_REJECTED ? "amount" : "");
    }

    handler_error_t err;
    assert_int_equal(handler_reject(&err, TALLY_ERR_CONFLICT, "amount", "only %d left", 5),
                     HANDLER_REJECTED);
    assert_int_equal(err.code, TALLY_ERR_CONFLICT);
    assert_string_equal(err.field, "amount");
    assert_string_equal(err.message, "only 5 left");
    assert_int_equal(handler_reject(&err, TALLY_ERR_NOT_FOUND, NULL, "gone"), HANDLER_REJECTED);
    assert_string_equal(err.field, "");
    assert_int_equal(handler_oom(&err), HANDLER_FAILED);
    assert_int_equal(err.code, TALLY_ERR_INTERNAL);
}

static void test_result_helpers(void **state)
{
    (void)state;
    assert_string_equal(handler_time(INT64_C(1795341600123)).s, "2026-11-22T10:00:00.123Z");
    assert_string_equal(handler_time(0).s, "1970-01-01T00:00:00.000Z");
    assert_null(handler_nonempty(""));
    assert_null(handler_nonempty(NULL));
    assert_string_equal(handler_nonempty("x"), "x");

    json_t *list = handler_list_result(json_pack("[i]", 1), true);
    assert_non_null(list);
    assert_int_equal(json_array_size(json_object_get(list, "data")), 1);
    assert_true(json_is_true(json_object_get(list, "has_more")));
    json_decref(list);
    assert_null(handler_list_result(NULL, false));

    json_t *p =
        json_pack("{s:i, s:s, s:b, s:n}", "limit", 7, "starting_after", "pay_1", "b", 1, "n");
    access_page_t page;
    handler_page(p, &page);
    assert_int_equal(page.limit, 7);
    assert_string_equal(page.starting_after, "pay_1");
    assert_true(handler_arg_bool(p, "b", false));
    assert_true(handler_arg_has(p, "n"));
    assert_null(handler_arg_str(p, "n"));
    assert_int_equal(handler_arg_int(p, "missing", -3), -3);
    json_decref(p);
    p = json_object();
    handler_page(p, &page);
    assert_int_equal(page.limit, HANDLER_LIST_LIMIT_DEFAULT);
    assert_null(page.starting_after);
    json_decref(p);
}

/* ---- handler_list_begin / handler_list_end -------------------------------- */

typedef struct test_row {
    int value;
    char *owned; /* what clear frees */
} test_row_t;

static int cleared;

static json_t *test_item(const void *row)
{
    return json_integer(((const test_row_t *)row)->value);
}

static void test_clear(void *row)
{
    test_row_t *r = row;
    free(r->owned);
    r->owned = NULL;
    cleared++;
}

static void test_list_helpers(void **state)
{
    (void)state;
    json_t *p = json_pack("{s:i}", "limit", 3);
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(test_row_t));
    assert_non_null(l.rows);
    assert_int_equal(l.page.limit, 3);
    assert_null(l.page.starting_after);
    test_row_t *rows = l.rows;
    for (int i = 0; i < 2; i++) { /* as an access list call fills them */
        rows[i].value = 10 + i;
        rows[i].owned = strdup("x");
    }
    assert_int_equal(rows[2].value, 0); /* zeroed */
    l.n = 2;
    l.has_more = true;
    json_t *result = NULL;
    handler_error_t err;
    cleared = 0;
    assert_int_equal(handler_list_end(&l, ACCESS_OK, test_item, test_clear, &result, &err),
                     HANDLER_OK);
    assert_int_equal(cleared, 2);
    json_t *data = json_object_get(result, "data");
    assert_int_equal(json_array_size(data), 2);
    assert_int_equal(json_integer_value(json_array_get(data, 0)), 10);
    assert_int_equal(json_integer_value(json_array_get(data, 1)), 11);
    assert_true(json_is_true(json_object_get(result, "has_more")));
    json_decref(result);

    /* A failed access call: its error is the answer, and nothing is cleared
     * (the access layer leaves no row owning anything). */
    handler_list_begin(&l, p, sizeof(test_row_t));
    assert_non_null(l.rows);
    l.aerr = (access_error_t){.status = ACCESS_NOT_FOUND};
    snprintf(l.aerr.field, sizeof(l.aerr.field), "starting_after");
    snprintf(l.aerr.message, sizeof(l.aerr.message), "no payment with this id in the account");
    result = NULL;
    cleared = 0;
    assert_int_equal(handler_list_end(&l, ACCESS_NOT_FOUND, test_item, test_clear, &result, &err),
                     HANDLER_REJECTED);
    assert_null(result);
    assert_int_equal(cleared, 0);
    assert_int_equal(err.code, TALLY_ERR_NOT_FOUND);
    assert_string_equal(err.field, "starting_after");
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_payloads),
        cmocka_unit_test(test_required_and_unknown),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_paths_truncate_on_characters),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_json_schema_output),
        cmocka_unit_test(test_doc_markdown),
        cmocka_unit_test(test_lint),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_execute_validates_first),
        cmocka_unit_test(test_access_error_mapping),
        cmocka_unit_test(test_result_helpers),
        cmocka_unit_test(test_list_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
