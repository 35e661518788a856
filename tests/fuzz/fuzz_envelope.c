/* fuzz_envelope — the libFuzzer target over everything that runs before the
 * database: envelope_decode, handler_validate of every job type, the
 * defaults handler_execute fills in, the handlers' pure pre-database work
 * (timestamps, pages, share arithmetic) and the answers built from the
 * outcome (fuzz_target.h has the input format).
 *
 * Invariants are checked here, so the fuzzer finds wrong answers and not
 * only crashes: a second, independent reading of CONTRACT.md §2 decides what
 * envelope_decode must answer (for a value jansson refuses only for a
 * duplicate key, a number out of range or a \u0000, a permissive reading by
 * jansson itself decides whether it is readable, and the field answered
 * must name a place in it); docs/schemas/envelope.json and each job
 * type's published JSON Schema must agree with the C validator; errors name
 * a contract code and a plausible field; texts that reach a result, a log
 * line or a header are valid UTF-8 and bounded; the share split follows the
 * contract's rule (checked against a 128-bit reference). A broken invariant
 * aborts with a line that starts with "INVARIANT BROKEN". */
#include "fuzz_target.h"
#include "jschema.h"

#include "../../src/handlers/alloc.h"
#include "../../src/handlers/handler_internal.h"
#include "access/account.h"
#include "access/payments.h"
#include "worker/answer.h"
#include "common/clock.h"
#include "common/utf8.h"
#include "envelope/envelope.h"

#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_ENVELOPE_SCHEMA
#error "define FUZZ_ENVELOPE_SCHEMA as the path of docs/schemas/envelope.json"
#endif

#define MAX_TYPES 128

static json_t *envelope_schema;
static json_t *payload_schemas[MAX_TYPES];
static size_t ntypes;
static bool told_unknown;

static void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fuzz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("INVARIANT BROKEN: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__VA_ARGS__);                                                                \
    } while (0)

/* ---- Independent helpers (not the code under test) --------------------------- */

/* Well-formed UTF-8 after Unicode's Table 3-7. */
static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i], lo = 0x80, hi = 0xBF;
        size_t len;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c == 0xE0) {
            len = 3, lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            len = 3;
        } else if (c == 0xED) {
            len = 3, hi = 0x9F;
        } else if (c == 0xF0) {
            len = 4, lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            len = 4;
        } else if (c == 0xF4) {
            len = 4, hi = 0x8F;
        } else {
            return false;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return false;
        }
        i += len;
    }
    return true;
}

static bool cstr_utf8(const char *s)
{
    return utf8_ok((const uint8_t *)s, strlen(s));
}

static size_t code_points(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

static bool all_in(const char *s, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return false;
    }
    return true;
}

#define DIGITS        "0123456789"
#define LETTERS       "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define ACCOUNT_CHARS LETTERS DIGITS "_-"
#define TOPIC_CHARS   LETTERS DIGITS "._-"

/* The member, or NULL when absent or JSON null. */
static json_t *present(const json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    return json_is_null(v) ? NULL : v;
}

static size_t type_index(const handler_t *h)
{
    for (size_t i = 0; i < ntypes; i++) {
        if (handler_at(i) == h)
            return i;
    }
    fuzz_fail("handler %s is not in the registry", handler_name(h));
}

static const handler_t *type_named(const char *s, size_t len)
{
    for (size_t i = 0; i < ntypes; i++) {
        const char *name = handler_name(handler_at(i));
        if (strlen(name) == len && memcmp(name, s, len) == 0)
            return handler_at(i);
    }
    return NULL;
}

static void note_unknown(const char *unknown)
{
    if (unknown[0] != '\0' && !told_unknown) {
        fprintf(stderr, "fuzz_envelope: the JSON Schema checker skips %s\n", unknown);
        told_unknown = true;
    }
}

/* ---- The envelope: what CONTRACT.md §2 says the answer is ------------------- */

typedef struct expect {
    envelope_kind_t kind;
    tally_errcode_t code;
    const char *field;
} expect_t;

#define EXPECT_DLQ                                                                                 \
    (expect_t)                                                                                     \
    {                                                                                              \
        ENVELOPE_DLQ, TALLY_ERR_INVALID_REQUEST, ""                                                \
    }

/* root is the parsed value (NULL when it does not parse). */
static expect_t expect_decode(const uint8_t *key, size_t klen, bool has_key, const json_t *root,
                              size_t vlen, bool utf8)
{
    if (vlen == 0 || vlen > ENVELOPE_MAX_VALUE || !utf8 || !json_is_object(root))
        return EXPECT_DLQ;
    const json_t *id = json_object_get(root, "id");
    size_t n = json_string_length(id);
    if (!json_is_string(id) || n < 1 || n > 128)
        return EXPECT_DLQ;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)json_string_value(id)[i];
        if (c < ' ' || c > '~')
            return EXPECT_DLQ;
    }
    const json_t *acct = json_object_get(root, "account_id");
    n = json_string_length(acct);
    if (!json_is_string(acct) || n < 1 || n > 64 ||
        !all_in(json_string_value(acct), n, ACCOUNT_CHARS))
        return EXPECT_DLQ;

    const json_t *v = present(root, "v");
    if (v != NULL && !(json_is_integer(v) && json_integer_value(v) == 1))
        return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_UNSUPPORTED_VERSION, "v"};
    if (has_key && (klen != n || memcmp(key, json_string_value(acct), n) != 0))
        return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "account_id"};
    const json_t *type = json_object_get(root, "type");
    if (!json_is_string(type))
        return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "type"};
    if (type_named(json_string_value(type), json_string_length(type)) == NULL)
        return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_UNKNOWN_TYPE, "type"};
    if (!json_is_object(json_object_get(root, "payload")))
        return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "payload"};
    const json_t *reply = present(root, "reply_to");
    if (reply != NULL) {
        const char *s = json_string_value(reply);
        n = json_string_length(reply);
        if (!json_is_string(reply) || n < 1 || n > 249 || !all_in(s, n, TOPIC_CHARS) ||
            strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
            return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "reply_to"};
        /* Never Tally's own topics (the policy below names the defaults). */
        if (strcmp(s, "tally.requests") == 0 || strcmp(s, "tally.audit") == 0 ||
            strcmp(s, "tally.dlq") == 0)
            return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "reply_to"};
    }
    const json_t *corr = present(root, "correlation_id");
    if (corr != NULL) {
        const char *s = json_string_value(corr);
        n = json_string_length(corr);
        /* "a string ≤ 128 chars": characters, as envelope.json's maxLength counts them. */
        if (!json_is_string(corr) || memchr(s, '\0', n) != NULL || code_points(s, n) > 128)
            return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, "correlation_id"};
    }
    return (expect_t){ENVELOPE_ANSWER, TALLY_ERR_NONE, ""};
}

static void check_answer_text(const envelope_t *env, const char *text, const char *status)
{
    json_t *r = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(r), "a result is not a JSON object: %s", text);
    const json_t *v = json_object_get(r, "v");
    CHECK(json_is_integer(v) && json_integer_value(v) == 1, "result v");
    const char *id = json_string_value(json_object_get(r, "id"));
    const char *acct = json_string_value(json_object_get(r, "account_id"));
    CHECK(id != NULL && strcmp(id, env->id) == 0, "result id differs from the request's");
    CHECK(acct != NULL && strcmp(acct, env->account.id) == 0, "result account_id differs");
    const json_t *type = json_object_get(r, "type");
    CHECK(env->type[0] == '\0'
              ? json_is_null(type)
              : json_is_string(type) && strcmp(json_string_value(type), env->type) == 0,
          "result type does not echo the request's");
    const json_t *corr = json_object_get(r, "correlation_id");
    CHECK(env->has_correlation_id == (corr != NULL), "correlation_id echoed iff sent");
    CHECK(corr == NULL || strcmp(json_string_value(corr), env->correlation_id) == 0,
          "correlation_id echo differs");
    const char *st = json_string_value(json_object_get(r, "status"));
    CHECK(st != NULL && strcmp(st, status) == 0, "result status");
    CHECK(json_is_false(json_object_get(r, "replayed")), "result replayed");
    json_decref(r);
}

/* The error answer the worker would publish for env, and its audit event. */
static void check_error_answer(const envelope_t *env, tally_errcode_t code, const char *message,
                               const char *field)
{
    CHECK(code != TALLY_ERR_NONE, "an error without a code");
    CHECK(message[0] != '\0' && cstr_utf8(message), "error message empty or not UTF-8: %s",
          message);
    CHECK(cstr_utf8(field), "error field not UTF-8");
    char *stored = answer_stored_error(code, message, field);
    CHECK(stored != NULL, "answer_stored_error failed");
    bool ok = true;
    tally_errcode_t back = TALLY_ERR_NONE;
    CHECK(answer_stored_status(stored, &ok, &back) && !ok && back == code,
          "stored error does not read back: %s", stored);
    char *result = answer_result(env, stored, false, 0);
    CHECK(result != NULL, "answer_result failed on %s", stored);
    check_answer_text(env, result, "error");
    json_t *r = json_loads(result, 0, NULL);
    const json_t *e = json_object_get(r, "error");
    const char *c = json_string_value(json_object_get(e, "code"));
    CHECK(c != NULL && strcmp(c, tally_errcode_str(code)) == 0, "result error.code");
    const json_t *f = json_object_get(e, "field");
    CHECK(field[0] == '\0' ? f == NULL : f != NULL && strcmp(json_string_value(f), field) == 0,
          "result error.field differs from \"%s\"", field);
    json_decref(r);

    answer_audit_t a = {.env = env, .ok = false, .error_code = code, .worker = "fuzz"};
    char *audit = answer_audit_event(&a);
    json_t *ev = audit != NULL ? json_loads(audit, JSON_REJECT_DUPLICATES, NULL) : NULL;
    CHECK(json_is_object(ev), "audit event is not a JSON object");
    const char *ec = json_string_value(json_object_get(ev, "error_code"));
    CHECK(ec != NULL && strcmp(ec, tally_errcode_str(code)) == 0, "audit error_code");
    json_decref(ev);
    free(audit);
    free(result);
    free(stored);
}

/* Checks env against the parsed value root and the expected outcome. With
 * lenient, root is the permissive reading and want.field NULL (any field:
 * field_in_tree checks it), and echoed fields may be left out (one of them
 * may hold the problem). */
static void check_envelope(const envelope_t *env, envelope_kind_t kind, const json_t *root,
                           expect_t want, bool lenient, const char *what)
{
    CHECK(kind == want.kind && env->error == want.code &&
              (want.field == NULL || strcmp(env->error_field, want.field) == 0),
          "%s: decoded %s/%s/\"%s\" (%s), the contract says %s/%s/\"%s\"", what,
          kind == ENVELOPE_DLQ ? "dlq" : "answer", tally_errcode_str(env->error), env->error_field,
          env->error_message, want.kind == ENVELOPE_DLQ ? "dlq" : "answer",
          tally_errcode_str(want.code), want.field != NULL ? want.field : "*");
    CHECK(env->error == TALLY_ERR_NONE || (env->error_message[0] != '\0' &&
                                           strlen(env->error_message) < sizeof(env->error_message)),
          "%s: an error without a message", what);
    CHECK(cstr_utf8(env->error_message), "%s: error message is not UTF-8: %s", what,
          env->error_message);
    if (kind == ENVELOPE_DLQ) {
        CHECK(env->payload == NULL && env->handler == NULL, "%s: DLQ with a payload", what);
        return;
    }
    CHECK(access_account_valid(&env->account) &&
              all_in(env->account.id, strlen(env->account.id), ACCOUNT_CHARS) &&
              strlen(env->account.id) <= 64,
          "%s: decoded account_id is not valid", what);
    CHECK(strcmp(env->account.id, json_string_value(json_object_get(root, "account_id"))) == 0,
          "%s: account_id differs from the message's", what);
    const json_t *id = json_object_get(root, "id");
    CHECK(strlen(env->id) == json_string_length(id) &&
              memcmp(env->id, json_string_value(id), json_string_length(id)) == 0,
          "%s: id differs from the message's", what);
    CHECK(cstr_utf8(env->type) && strlen(env->type) <= ENVELOPE_TYPE_MAX, "%s: type echo", what);
    const json_t *type = json_object_get(root, "type");
    if (json_is_string(type) && json_string_length(type) <= ENVELOPE_TYPE_MAX &&
        !(lenient && env->type[0] == '\0'))
        CHECK(strcmp(env->type, json_string_value(type)) == 0, "%s: type echo differs", what);

    const json_t *corr = present(root, "correlation_id");
    bool corr_fits = json_is_string(corr) &&
                     memchr(json_string_value(corr), '\0', json_string_length(corr)) == NULL &&
                     code_points(json_string_value(corr), json_string_length(corr)) <= 128;
    CHECK(lenient ? !env->has_correlation_id || corr_fits : env->has_correlation_id == corr_fits,
          "%s: has_correlation_id", what);
    if (corr_fits && env->has_correlation_id)
        CHECK(strcmp(env->correlation_id, json_string_value(corr)) == 0,
              "%s: correlation_id differs", what);

    if (env->error != TALLY_ERR_NONE) {
        CHECK(env->handler == NULL && env->payload == NULL, "%s: an error with a job", what);
        return;
    }
    CHECK(env->handler != NULL && strcmp(handler_name(env->handler), env->type) == 0,
          "%s: handler %s for type %s", what, env->handler ? handler_name(env->handler) : "-",
          env->type);
    CHECK(json_is_object(env->payload) &&
              json_equal(env->payload, json_object_get(root, "payload")),
          "%s: payload differs from the message's", what);
    const json_t *reply = present(root, "reply_to");
    CHECK(reply == NULL ? env->reply_to[0] == '\0'
                        : strcmp(env->reply_to, json_string_value(reply)) == 0,
          "%s: reply_to", what);
}

/* ---- Payloads ------------------------------------------------------------------ */

/* Whether field names a declared field (with a path below it), a key of the
 * payload (possibly cut to fit the error's field buffer), or the payload as
 * a whole when it holds a key "" that no path can name. */
static bool culprit_plausible(const schema_object_t *s, const json_t *payload, const char *field)
{
    if (strcmp(field, "payload") == 0 && json_object_get(payload, "") != NULL)
        return true;
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        size_t n = strlen(f->name);
        if (strncmp(field, f->name, n) == 0 &&
            (field[n] == '\0' || field[n] == '.' || field[n] == '['))
            return true;
    }
    size_t flen = strlen(field);
    const char *key;
    size_t klen;
    json_t *v;
    json_object_keylen_foreach((json_t *)payload, key, klen, v)
    {
        if (klen == flen && memcmp(key, field, klen) == 0)
            return true;
        if (flen + 4 >= sizeof(((handler_error_t *)0)->field) && klen > flen &&
            memcmp(key, field, flen) == 0)
            return true;
    }
    return false;
}

/* Whether s has a rule JSON Schema cannot state: a check hook, a unique
 * field, a calendar date (also inside array items). */
static bool beyond_json_schema(const schema_object_t *s)
{
    if (s->check != NULL)
        return true;
    for (const schema_field_t *f = s->fields; f->name != NULL; f++) {
        if (f->type == SCHEMA_TIMESTAMP || f->unique != NULL ||
            (f->type == SCHEMA_ARRAY && beyond_json_schema(f->items)))
            return true;
    }
    return false;
}

/* The contract's split, computed independently in 128-bit arithmetic. */
static void reference_split(int64_t amount, const int32_t *bp, size_t n, int64_t *out)
{
    __int128 a = amount < 0 ? -(__int128)amount : amount;
    int64_t rem[ALLOC_MAX_SHARES];
    __int128 given = 0;
    for (size_t i = 0; i < n; i++) {
        out[i] = (int64_t)(a * bp[i] / ALLOC_BP_TOTAL);
        rem[i] = (int64_t)(a * bp[i] % ALLOC_BP_TOTAL);
        given += out[i];
    }
    bool bumped[ALLOC_MAX_SHARES] = {false};
    for (__int128 left = a - given; left > 0; left--) {
        size_t best = n;
        for (size_t i = 0; i < n; i++) {
            if (!bumped[i] && (best == n || rem[i] > rem[best]))
                best = i;
        }
        CHECK(best < n, "reference split: more leftover units than shares");
        bumped[best] = true;
        out[best]++;
    }
    if (amount < 0) {
        for (size_t i = 0; i < n; i++)
            out[i] = -out[i];
    }
}

static void check_allocation(const json_t *payload, const uint8_t *data, size_t size)
{
    const json_t *shares = json_object_get(payload, "shares");
    size_t n = json_array_size(shares);
    int32_t bp[ALLOC_MAX_SHARES];
    CHECK(n >= 1 && n <= ALLOC_MAX_SHARES, "share.allocate: %zu shares passed validation", n);
    for (size_t i = 0; i < n; i++)
        bp[i] = (int32_t)handler_arg_int(json_array_get(shares, i), "basis_points", 0);
    /* Net amounts at the edges, and one drawn from the input. */
    uint64_t h = 1469598103934665603u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 1099511628211u;
    const int64_t amounts[] = {
        1, 49, 9999, 10000, 10001, SCHEMA_AMOUNT_MAX, (int64_t)(h % SCHEMA_AMOUNT_MAX) + 1,
    };
    for (size_t k = 0; k < sizeof(amounts) / sizeof(amounts[0]); k++) {
        for (int sign = 1; sign >= -1; sign -= 2) {
            int64_t amount = sign * amounts[k];
            int64_t got[ALLOC_MAX_SHARES], want[ALLOC_MAX_SHARES];
            CHECK(alloc_split(amount, bp, n, got) == 0,
                  "alloc_split refuses shares that passed validation");
            reference_split(amount, bp, n, want);
            int64_t sum = 0;
            for (size_t i = 0; i < n; i++) {
                CHECK(got[i] == want[i], "alloc_split(%lld): share %zu is %lld, the rule says %lld",
                      (long long)amount, i, (long long)got[i], (long long)want[i]);
                sum += got[i];
            }
            CHECK(sum == amount, "allocations sum to %lld, not %lld", (long long)sum,
                  (long long)amount);
        }
    }
}

/* The CHECK constraints of migrations/ on payload fields, by field name: what
 * passes validation must also pass the database, or the request would fail
 * as `internal` instead of being answered invalid_request. */
static const struct db_rule {
    const char *field, *regex;
    bool match;
} db_rules[] = {
    {"currency", "^[a-z]{3}$", true},           {"default_currency", "^[a-z]{3}$", true},
    {"code", "^[A-Z0-9-]{4,64}$", true},        {"statement_descriptor", "^[ -~]{5,22}$", true},
    {"statement_descriptor", "[A-Za-z]", true}, {"statement_descriptor", "[<>\\'\"*]", false},
};

static void check_db_rules(const char *type, const json_t *payload)
{
    static regex_t compiled[sizeof(db_rules) / sizeof(db_rules[0])];
    static bool ready;
    size_t n = sizeof(db_rules) / sizeof(db_rules[0]);
    if (!ready) {
        for (size_t i = 0; i < n; i++)
            CHECK(regcomp(&compiled[i], db_rules[i].regex, REG_EXTENDED | REG_NOSUB) == 0,
                  "regex %s", db_rules[i].regex);
        ready = true;
    }
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_object_get(payload, db_rules[i].field));
        if (s != NULL)
            CHECK((regexec(&compiled[i], s, 0, NULL, 0) == 0) == db_rules[i].match,
                  "%s.%s \"%s\" passed validation but breaks the database's CHECK (%s)", type,
                  db_rules[i].field, s, db_rules[i].regex);
    }
}

/* The pure work between validation and the first access call. */
static void check_pre_database(const handler_t *h, const json_t *full, const uint8_t *data,
                               size_t size)
{
    const char *name = handler_name(h);
    for (const schema_field_t *f = h->schema->fields; f->name != NULL; f++) {
        const json_t *v = present(full, f->name);
        if (v == NULL)
            continue;
        if (f->type == SCHEMA_TIMESTAMP) {
            int64_t ms = 0, again = 0;
            char text[CLOCK_RFC3339_LEN + 1];
            CHECK(clock_parse_rfc3339(json_string_value(v), &ms) == 0,
                  "%s.%s passed validation but does not parse", name, f->name);
            clock_format_rfc3339(ms, text, sizeof(text));
            CHECK(clock_parse_rfc3339(text, &again) == 0 && again == ms,
                  "%s.%s: %s -> %lld -> %s -> %lld", name, f->name, json_string_value(v),
                  (long long)ms, text, (long long)again);
        } else if (f->type == SCHEMA_INTEGER) {
            int64_t n = handler_arg_int(full, f->name, INT64_MIN);
            CHECK(n >= f->min && n <= f->max, "%s.%s out of bounds after validation", name,
                  f->name);
        } else if (f->type == SCHEMA_ENUM && strcmp(f->name, "status") == 0 &&
                   strncmp(name, "payment.", 8) == 0) {
            access_payment_status_t st;
            CHECK(access_payment_status_parse(json_string_value(v), &st),
                  "%s: status %s does not parse", name, json_string_value(v));
        }
    }
    if (json_object_get(full, "limit") != NULL) {
        access_page_t page;
        handler_page(full, &page);
        CHECK(page.limit >= 1 && page.limit <= HANDLER_LIST_LIMIT_MAX, "%s: page limit %d", name,
              page.limit);
    }
    if (strcmp(name, "share.allocate") == 0)
        check_allocation(full, data, size);
    check_db_rules(name, full);
}

static void check_payload(const envelope_t *env, const uint8_t *data, size_t size)
{
    const handler_t *h = env->handler;
    const char *name = handler_name(h);
    handler_error_t err, again;
    bool ok = handler_validate(h, env->payload, &err);
    bool ok2 = handler_validate(h, env->payload, &again);
    CHECK(ok == ok2 && memcmp(&err, &again, sizeof(err)) == 0, "%s: validation differs on a rerun",
          name);

    char why[256], unknown[160];
    bool published = jschema_accepts(payload_schemas[type_index(h)], env->payload, why, sizeof(why),
                                     unknown, sizeof(unknown));
    note_unknown(unknown);

    if (!ok) {
        CHECK(err.code == TALLY_ERR_INVALID_REQUEST, "%s: validation error code %s", name,
              tally_errcode_str(err.code));
        CHECK(err.field[0] != '\0' && strlen(err.field) < sizeof(err.field),
              "%s: validation error without a field (%s)", name, err.message);
        CHECK(culprit_plausible(h->schema, env->payload, err.field),
              "%s: field \"%s\" names nothing in the payload or schema", name, err.field);
        CHECK(!published || beyond_json_schema(h->schema),
              "%s: the published JSON Schema accepts what the validator rejects (%s: %s)", name,
              err.field, err.message);
        check_error_answer(env, err.code, err.message, err.field);
        return;
    }
    CHECK(published, "%s: the validator accepts what its published JSON Schema rejects: %s", name,
          why);

    json_t *full = schema_apply_defaults(h->schema, env->payload);
    CHECK(full != NULL, "%s: schema_apply_defaults failed", name);
    CHECK(schema_validate(h->schema, full, &err), "%s: the defaults make the payload invalid: %s",
          name, err.message);
    for (const schema_field_t *f = h->schema->fields; f->name != NULL; f++) {
        const json_t *given = json_object_get(env->payload, f->name);
        const json_t *used = json_object_get(full, f->name);
        if (given != NULL)
            CHECK(json_equal(given, used), "%s.%s: a default replaced a given value", name,
                  f->name);
        else if (f->default_json != NULL)
            CHECK(used != NULL, "%s.%s: the default is missing", name, f->name);
        else
            CHECK(used == NULL, "%s.%s: a value appeared from nowhere", name, f->name);
    }
    check_pre_database(h, full, data, size);
    json_decref(full);

    /* The idempotency key's payload text: deterministic and faithful. */
    char *canonical = json_dumps(env->payload, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK(canonical != NULL && cstr_utf8(canonical), "%s: canonical payload", name);
    json_t *back = json_loads(canonical, JSON_REJECT_DUPLICATES, NULL);
    CHECK(back != NULL && json_equal(back, env->payload),
          "%s: canonical payload does not read back", name);
    json_decref(back);
    free(canonical);

    /* An ok answer carrying the payload as its result. */
    char *stored = answer_stored_ok(env->payload);
    char *result = stored != NULL ? answer_result(env, stored, false, 0) : NULL;
    CHECK(result != NULL, "%s: building an ok answer failed", name);
    check_answer_text(env, result, "ok");
    free(result);
    free(stored);
}

/* ---- Entry points ------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (envelope_schema != NULL)
        return 0;
    json_object_seed(1); /* the same hash layout on every run */
    json_error_t jerr;
    envelope_schema = json_load_file(FUZZ_ENVELOPE_SCHEMA, 0, &jerr);
    if (envelope_schema == NULL) {
        fprintf(stderr, "fuzz_envelope: %s: %s\n", FUZZ_ENVELOPE_SCHEMA, jerr.text);
        exit(2);
    }
    ntypes = handler_count();
    CHECK(ntypes > 0 && ntypes <= MAX_TYPES, "%zu job types", ntypes);
    for (size_t i = 0; i < ntypes; i++) {
        payload_schemas[i] = handler_json_schema(handler_at(i));
        CHECK(payload_schemas[i] != NULL, "no JSON Schema for %s", handler_name(handler_at(i)));
    }
    return 0;
}

/* ---- The lenient reading ------------------------------------------------------ */

static bool number_char(uint8_t c)
{
    return (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
}

static size_t digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* Whether s[0..n) is one JSON number (RFC 8259 §6):
 * -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? — and not, say, "9-1e999",
 * a number followed by another that jansson lexes on its own. */
static bool number_lexeme(const char *s, size_t n)
{
    size_t i = s[0] == '-', j;
    if (i >= n || s[i] < '0' || s[i] > '9')
        return false;
    i = s[i] == '0' ? i + 1 : digits(s, i, n);
    if (i < n && s[i] == '.') {
        if ((j = digits(s, i + 1, n)) == i + 1)
            return false;
        i = j;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i += i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-') ? 2 : 1;
        if ((j = digits(s, i, n)) == i)
            return false;
        i = j;
    }
    return i == n;
}

/* An independent lenient reading of a value jansson refuses as it is:
 * jansson itself, allowing duplicates (the last one wins) and reading
 * integers as reals, after every \u0000 escape became \u0001 and with each
 * number it still calls out of range blanked to 0 where its error points.
 * NULL when that does not make it JSON (or the repairs do not end). */
/* Whether the last permissive reading dropped a duplicate (the first
 * occurrence, which the decoder may name, is not in it). */
static bool permissive_dropped;

static json_t *permissive_parse(const uint8_t *value, size_t vlen)
{
    permissive_dropped = false;
    /* A raw NUL byte is never JSON (RFC 8259), though jansson lets one
     * through right after a number. */
    if (memchr(value, '\0', vlen) != NULL)
        return NULL;
    char *t = malloc(vlen + 1);
    memcpy(t, value, vlen);
    t[vlen] = '\0';
    for (size_t i = 0; i + 6 <= vlen; i++) {
        if (t[i] != '\\')
            continue;
        if (memcmp(t + i + 1, "u0000", 5) == 0)
            t[i + 5] = '1';
        i++; /* whatever the backslash escapes is not the start of an escape */
    }
    json_t *root = NULL;
    for (int round = 0; round < 256 && root == NULL; round++) {
        json_error_t e;
        root = json_loadb(t, vlen, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL, &e);
        if (root != NULL || json_error_code(&e) != json_error_numeric_overflow)
            break;
        size_t end = (size_t)e.position < vlen ? (size_t)e.position : vlen;
        while (end > 0 && !number_char((uint8_t)t[end - 1]) && (size_t)e.position - end < 2)
            end--;
        size_t start = end;
        while (start > 0 && number_char((uint8_t)t[start - 1]))
            start--;
        if (start == end || !number_lexeme(t + start, end - start))
            break;
        t[start] = '0';
        memset(t + start + 1, ' ', end - start - 1);
    }
    json_error_t e;
    json_t *strict =
        root != NULL
            ? json_loadb(t, vlen,
                         JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_REJECT_DUPLICATES, &e)
            : NULL;
    permissive_dropped = root != NULL && strict == NULL;
    json_decref(strict);
    free(t);
    return root;
}

static int path_in(const json_t *v, const char *path);

/* What follows a key or an index: the end, an index, or '.' and a key. */
static int path_rest(const json_t *v, const char *rest)
{
    if (*rest == '\0')
        return 1;
    if (*rest == '[')
        return path_in(v, rest);
    return *rest == '.' ? path_in(v, rest + 1) : 0;
}

/* Whether a path in error-field syntax ("a.b[2].c": keys joined by '.',
 * indexes in brackets, an empty key leaving no trace) leads to a node of v.
 * Keys may hold '.' and '[', so every key that fits is tried. 1 found, 0
 * not, -1 cannot tell (a key on the way held \u0000, now \u0001). */
static int path_in(const json_t *v, const char *path)
{
    if (*path == '[' && json_is_array(v)) {
        char *end;
        unsigned long i = strtoul(path + 1, &end, 10);
        return *end == ']' && i < json_array_size(v) ? path_rest(json_array_get(v, i), end + 1) : 0;
    }
    if (!json_is_object(v))
        return 0;
    int verdict = 0;
    const char *key;
    size_t klen;
    json_t *m;
    json_object_keylen_foreach((json_t *)v, key, klen, m)
    {
        int r = 0;
        if (memchr(key, '\x01', klen) != NULL)
            r = -1;
        else if (klen == 0) /* names nothing: the path goes on from here */
            r = *path == '\0' ? 1 : path_in(m, path);
        else if (strncmp(path, key, klen) == 0)
            r = path_rest(m, path + klen);
        if (r == 1)
            return 1;
        if (r == -1)
            verdict = -1;
    }
    return verdict;
}

/* The field of an answer to a lenient reading names a place in it: a
 * payload field by its path inside the payload, anything else from the top
 * (unless it may have been cut to fit the field). */
static void field_in_tree(const json_t *root, const char *field, const char *what)
{
    /* The path is cut to JSCAN_PATH_MAX before "payload." comes off it. */
    if (field[0] == '\0' || strlen(field) + 4 + strlen("payload.") >= JSCAN_PATH_MAX)
        return;
    if (permissive_dropped)
        return;
    const json_t *payload = json_object_get(root, "payload");
    CHECK((payload != NULL && path_in(payload, field) != 0) || path_in(root, field) != 0,
          "%s: the field \"%s\" names no place in the request", what, field);
}

static const envelope_policy_t policy = {
    .own_topics = {"tally.requests", "tally.audit", "tally.dlq"}};

/* Decodes value under key and checks the envelope invariants; returns the
 * kind. root is jansson's strict reading, proot the permissive one (NULL
 * unless root is). */
static envelope_kind_t decode_checked(const uint8_t *key, size_t klen, bool has_key,
                                      const uint8_t *value, size_t vlen, const json_t *root,
                                      const json_t *proot, bool utf8, envelope_t *env,
                                      const char *what)
{
    envelope_kind_t kind = envelope_decode(&policy, has_key ? key : NULL, klen, value, vlen, env);
    if (root != NULL || proot == NULL || !utf8 || vlen > ENVELOPE_MAX_VALUE) {
        check_envelope(env, kind, root, expect_decode(key, klen, has_key, root, vlen, utf8), false,
                       what);
        return kind;
    }
    /* Readable: answered invalid_request naming the place, unless its id or
     * account_id is unreadable (missing, invalid or given twice). */
    expect_t want = expect_decode(key, klen, has_key, proot, vlen, utf8);
    if (want.kind == ENVELOPE_DLQ) {
        check_envelope(env, kind, proot, want, true, what);
        return kind;
    }
    if (kind == ENVELOPE_DLQ) {
        CHECK(strstr(env->error_message, "more than once") != NULL,
              "%s: a readable request was dead-lettered: %s", what, env->error_message);
        check_envelope(env, kind, proot, EXPECT_DLQ, true, what);
        return kind;
    }
    check_envelope(env, kind, proot, (expect_t){ENVELOPE_ANSWER, TALLY_ERR_INVALID_REQUEST, NULL},
                   true, what);
    field_in_tree(proot, env->error_field, what);
    return kind;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    LLVMFuzzerInitialize(NULL, NULL);
    const uint8_t *key = NULL, *value = data;
    size_t klen = 0, vlen = size;
    bool has_key = size > 0 && data[0] == 0x01;
    if (has_key) {
        const uint8_t *end = memchr(data + 1, 0x01, size - 1);
        key = data + 1;
        klen = end != NULL ? (size_t)(end - key) : size - 1;
        value = end != NULL ? end + 1 : data + size;
        vlen = size - (size_t)(value - data);
    }

    bool utf8 = utf8_ok(value, vlen);
    size_t bad = 0;
    CHECK(utf8_valid(value, vlen, &bad) == utf8, "utf8_valid says %d, Table 3-7 says %d", !utf8,
          utf8);
    json_t *root = vlen > 0 ? json_loadb((const char *)value, vlen,
                                         JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL)
                            : NULL;
    json_t *proot = root == NULL && utf8 && vlen > 0 ? permissive_parse(value, vlen) : NULL;

    envelope_t env;
    envelope_kind_t kind =
        decode_checked(key, klen, has_key, value, vlen, root, proot, utf8, &env, "as sent");

    if (root != NULL && json_is_object(root)) {
        /* docs/schemas/envelope.json, the producers' reading of §2. */
        char why[256], unknown[160];
        bool published =
            jschema_accepts(envelope_schema, root, why, sizeof(why), unknown, sizeof(unknown));
        note_unknown(unknown);
        if (kind == ENVELOPE_ANSWER && env.error == TALLY_ERR_NONE)
            CHECK(published, "envelope.json rejects an envelope Tally accepts: %s", why);
        if (published && vlen <= ENVELOPE_MAX_VALUE)
            CHECK(kind == ENVELOPE_ANSWER &&
                      (env.error == TALLY_ERR_NONE || env.error == TALLY_ERR_UNKNOWN_TYPE ||
                       strcmp(env.error_field, "account_id") == 0),
                  "envelope.json accepts an envelope Tally answers %s on \"%s\": %s",
                  tally_errcode_str(env.error), env.error_field, env.error_message);
    }

    if (kind == ENVELOPE_ANSWER && env.error != TALLY_ERR_NONE)
        check_error_answer(&env, env.error, env.error_message, env.error_field);
    if (kind == ENVELOPE_ANSWER && env.error == TALLY_ERR_NONE)
        check_payload(&env, data, size);

    /* The key rule changes nothing else: keyed by its own account the message
     * decodes the same; keyed otherwise it is refused on account_id unless
     * the version already decided. */
    if (!has_key && kind == ENVELOPE_ANSWER) {
        envelope_t keyed;
        const uint8_t *own = (const uint8_t *)env.account.id;
        envelope_kind_t k2 = decode_checked(own, strlen(env.account.id), true, value, vlen, root,
                                            proot, utf8, &keyed, "keyed by its account");
        CHECK(k2 == kind && keyed.error == env.error &&
                  strcmp(keyed.error_field, env.error_field) == 0 &&
                  json_equal(keyed.payload, env.payload) == (env.payload != NULL),
              "the matching key changes the outcome");
        envelope_clear(&keyed);
        static const uint8_t other[] = "some-other-account";
        decode_checked(other, sizeof(other) - 1, true, value, vlen, root, proot, utf8, &keyed,
                       "keyed by another account");
        envelope_clear(&keyed);
    }

    envelope_clear(&env);
    json_decref(root);
    json_decref(proot);
    return 0;
}
