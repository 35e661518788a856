#include "worker/answer.h"

#include "common/clock.h"
#include "common/mem.h"
#include "common/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The texts are written straight into one growable buffer: building jansson
 * objects only to dump them was a large share of the worker's CPU (issue 14).
 * Every byte must stay what jansson 2.14's compact dump wrote before, so the
 * writers below follow dump.c: the same escapes, the same "%.17g" reals, and
 * a member whose string jansson refuses (invalid UTF-8) is left out, as
 * json_object_set_new(o, key, NULL) left it out. tests/unit/test_answer.c
 * keeps the jansson construction and compares byte for byte. */

/* Keys stay in insertion order, which is the contract's order. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

typedef struct text {
    char *s;
    size_t len;
    size_t cap;
} text_t;

/* Room for more bytes and the final NUL. */
static void text_reserve(text_t *t, size_t more)
{
    if (t->cap - t->len > more)
        return;
    size_t cap = t->cap != 0 ? t->cap : 256;
    while (cap - t->len <= more)
        cap *= 2;
    t->s = mem_realloc(t->s, cap);
    t->cap = cap;
}

static void text_put(text_t *t, const char *s, size_t n)
{
    text_reserve(t, n);
    memcpy(t->s + t->len, s, n);
    t->len += n;
}

#define TEXT_LIT(t, lit) text_put((t), (lit), sizeof(lit) - 1)

static char *text_finish(text_t *t)
{
    text_reserve(t, 0);
    t->s[t->len] = '\0';
    return t->s;
}

/* json_dump_callback's sink. */
static int text_sink(const char *buffer, size_t size, void *data)
{
    text_put(data, buffer, size);
    return 0;
}

static void put_int(text_t *t, int64_t v)
{
    char digits[24];
    size_t i = sizeof(digits);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        digits[--i] = '-';
    text_put(t, digits + i, sizeof(digits) - i);
}

/* dump_string's two-character escapes; 0 where it writes \u00XX. */
static const char SHORT_ESCAPE[128] = {['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
                                       ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};

/* s[0..n) as a JSON string, escaped as dump.c's dump_string does without
 * flags. False (and nothing written) for invalid UTF-8, which json_string
 * refuses and dump_string fails on. */
static bool put_stringn(text_t *t, const char *s, size_t n)
{
    size_t start = t->len;
    const unsigned char *p = (const unsigned char *)s;
    text_reserve(t, n + 2);
    t->s[t->len++] = '"';
    size_t run = 0; /* start of the bytes not written yet */
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x80) {
            size_t k = utf8_seq_len(p + i, n - i);
            if (k == 0) {
                t->len = start;
                return false;
            }
            i += k;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        text_put(t, s + run, i - run);
        char seq[6] = {'\\', SHORT_ESCAPE[c], 0};
        size_t len = 2;
        if (seq[1] == 0) {
            memcpy(seq + 1, "u00", 3);
            seq[4] = "0123456789ABCDEF"[c >> 4];
            seq[5] = "0123456789ABCDEF"[c & 0xF];
            len = 6;
        }
        text_put(t, seq, len);
        run = ++i;
    }
    text_put(t, s + run, n - run);
    TEXT_LIT(t, "\"");
    return true;
}

/* As put_stringn; false for NULL too, which json_string refuses. */
static bool put_string(text_t *t, const char *s)
{
    return s != NULL && put_stringn(t, s, strlen(s));
}

/* Starts a member: the comma unless it is the object's first, then the key
 * (written "\"name\":"). Returns the mark to roll back to. */
static size_t put_key(text_t *t, const char *key, size_t key_len)
{
    size_t mark = t->len;
    if (t->s[t->len - 1] != '{')
        TEXT_LIT(t, ",");
    text_put(t, key, key_len);
    return mark;
}

#define KEY(t, key) put_key((t), (key), sizeof(key) - 1)

/* A string member; left out when jansson would refuse the string. */
static void put_member(text_t *t, const char *key, size_t key_len, const char *value)
{
    size_t mark = put_key(t, key, key_len);
    if (!put_string(t, value))
        t->len = mark;
}

#define MEMBER(t, key, value) put_member((t), (key), sizeof(key) - 1, (value))

/* The old str_or_null: "" and NULL are null. */
static void put_member_or_null(text_t *t, const char *key, size_t key_len, const char *value)
{
    if (value != NULL && value[0] != '\0') {
        put_member(t, key, key_len, value);
    } else {
        put_key(t, key, key_len);
        TEXT_LIT(t, "null");
    }
}

#define MEMBER_OR_NULL(t, key, value) put_member_or_null((t), (key), sizeof(key) - 1, (value))

/* A real as jansson's jsonp_dtostr writes it with precision 0: "%.17g", a
 * ".0" when it would read as an integer, no '+' or leading zeros in the
 * exponent. (jansson also swaps the locale's decimal point for '.'; the
 * worker never calls setlocale, so it is '.' already.) */
static void put_real(text_t *t, double v)
{
    char buf[48]; /* "%.17g" writes at most 24 characters, ".0" makes 26 */
    int n = snprintf(buf, sizeof(buf), "%.17g", v);
    char *e = strchr(buf, 'e');
    if (e == NULL && strchr(buf, '.') == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    } else if (e != NULL) {
        char *digits = e + 1; /* where the exponent's digits go */
        char *from = digits + 1;
        if (*digits == '-')
            digits++;
        while (*from == '0')
            from++;
        memmove(digits, from, (size_t)(buf + n - from) + 1);
        n -= (int)(from - digits);
    }
    text_put(t, buf, (size_t)n);
}

/* Deeper than this, or a cycle, is left to jansson. */
#define VALUE_MAX_DEPTH 2048

/* v as json_dumps(v, DUMP_FLAGS | JSON_ENCODE_ANY) writes it, without its
 * loop check, which costs a hash table insert per container. False when
 * the old deep copy and dump might fail or differ: a string jansson
 * refuses, a key holding NUL, a cycle. */
static bool put_value(text_t *t, const json_t *v, int depth)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        if (depth >= VALUE_MAX_DEPTH)
            return false;
        TEXT_LIT(t, "{");
        bool first = true;
        for (void *it = json_object_iter((json_t *)v); it != NULL;
             it = json_object_iter_next((json_t *)v, it)) {
            if (!first)
                TEXT_LIT(t, ",");
            first = false;
            /* A key holding NUL: the old deep copy cut it short (strlen). */
            const char *key = json_object_iter_key(it);
            size_t key_len = json_object_iter_key_len(it);
            if (memchr(key, '\0', key_len) != NULL || !put_stringn(t, key, key_len))
                return false;
            TEXT_LIT(t, ":");
            if (!put_value(t, json_object_iter_value(it), depth + 1))
                return false;
        }
        TEXT_LIT(t, "}");
        return true;
    }
    case JSON_ARRAY: {
        if (depth >= VALUE_MAX_DEPTH)
            return false;
        TEXT_LIT(t, "[");
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i > 0)
                TEXT_LIT(t, ",");
            if (!put_value(t, json_array_get(v, i), depth + 1))
                return false;
        }
        TEXT_LIT(t, "]");
        return true;
    }
    case JSON_STRING:
        return put_stringn(t, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        put_int(t, json_integer_value(v));
        return true;
    case JSON_REAL:
        put_real(t, json_real_value(v));
        return true;
    case JSON_TRUE:
        TEXT_LIT(t, "true");
        return true;
    case JSON_FALSE:
        TEXT_LIT(t, "false");
        return true;
    case JSON_NULL:
        TEXT_LIT(t, "null");
        return true;
    }
    return false;
}

char *answer_stored_ok(const json_t *result)
{
    text_t t = {0};
    text_reserve(&t, 1023);
    TEXT_LIT(&t, "{\"status\":\"ok\",\"result\":");
    /* Written in place: the deep copy bought nothing. */
    if (result != NULL && put_value(&t, result, 0)) {
        TEXT_LIT(&t, "}");
        return text_finish(&t);
    }
    free(t.s);
    /* No result, a cycle (the copy fails: no member) or a string jansson
     * refuses (the whole dump fails): rare, and left to jansson as before. */
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string("ok"));
    json_object_set_new(o, "result", json_deep_copy(result));
    char *s = json_dumps(o, DUMP_FLAGS);
    json_decref(o);
    return s;
}

static void put_error_object(text_t *t, tally_errcode_t code, const char *message,
                             const char *field)
{
    TEXT_LIT(t, "{");
    MEMBER(t, "\"code\":", tally_errcode_str(code));
    MEMBER(t, "\"message\":", message != NULL ? message : "");
    if (field != NULL && field[0] != '\0')
        MEMBER(t, "\"field\":", field);
    TEXT_LIT(t, "}");
}

char *answer_stored_error(tally_errcode_t code, const char *message, const char *field)
{
    text_t t = {0};
    TEXT_LIT(&t, "{\"status\":\"error\",\"error\":");
    put_error_object(&t, code, message, field);
    TEXT_LIT(&t, "}");
    return text_finish(&t);
}

bool answer_stored_status(const char *stored, bool *ok, tally_errcode_t *code)
{
    json_t *s = json_loads(stored, 0, NULL);
    bool good = false;
    const char *status = json_string_value(json_object_get(s, "status"));
    if (status != NULL && strcmp(status, "ok") == 0 && json_object_get(s, "result") != NULL) {
        *ok = true;
        *code = TALLY_ERR_NONE;
        good = true;
    } else if (status != NULL && strcmp(status, "error") == 0) {
        const char *c = json_string_value(json_object_get(json_object_get(s, "error"), "code"));
        *ok = false;
        good = c != NULL && tally_errcode_parse(c, code);
    }
    json_decref(s);
    return good;
}

/* ---- Splicing a stored body ------------------------------------------------
 * A stored text written by answer_stored_ok/_error is a compact jansson dump,
 * and parsing then dumping its body again gives back the same bytes. The
 * scanner below accepts only text in that form (no whitespace, only the
 * escapes dump_string writes, integers, no key twice in an object), so that
 * splicing it is exact; anything else (reals, whose text need not be
 * "%.17g"'s; "\u0000", which json_loads refuses; whitespace; other key
 * orders of older writers) takes the parse path. */

#define SCAN_MAX_DEPTH 128 /* deeper takes the parse path (jansson's limit: 2048) */
#define SCAN_MAX_KEYS  256 /* keys of the open objects; more takes the parse path */

typedef struct scan {
    const char *key[SCAN_MAX_KEYS]; /* as written: one text per value, so bytes compare */
    size_t key_len[SCAN_MAX_KEYS];
    size_t keys;
} scan_t;

static size_t scan_value(scan_t *sc, const char *p, size_t n, int depth);

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F') /* dump_string writes upper case */
        return c - 'A' + 10;
    return -1;
}

/* Length of the string at p ('"' first), or 0. */
static size_t scan_string(const char *p, size_t n)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t i = 1;
    while (i < n) {
        unsigned char c = u[i];
        if (c == '"')
            return i + 1;
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            size_t k = utf8_seq_len(u + i, n - i);
            if (k == 0)
                return 0;
            i += k;
            continue;
        }
        if (c != '\\') {
            i++;
            continue;
        }
        if (i + 1 >= n)
            return 0;
        c = u[i + 1];
        if (c != '\0' && strchr("\"\\bfnrt", c) != NULL) {
            i += 2;
            continue;
        }
        /* \u00XX for the other control characters, never \u0000 */
        if (c != 'u' || i + 5 >= n || p[i + 2] != '0' || p[i + 3] != '0')
            return 0;
        int hi = hex_value(p[i + 4]), lo = hex_value(p[i + 5]);
        if (hi < 0 || hi > 1 || lo < 0)
            return 0;
        int cp = hi * 16 + lo;
        if (cp == 0 || cp == '\b' || cp == '\f' || cp == '\n' || cp == '\r' || cp == '\t')
            return 0;
        i += 6;
    }
    return 0;
}

/* Length of an integer as "%lld" writes it, or 0 (reals included). */
static size_t scan_integer(const char *p, size_t n)
{
    size_t i = p[0] == '-';
    size_t first = i;
    while (i < n && p[i] >= '0' && p[i] <= '9')
        i++;
    size_t digits = i - first;
    /* 18 digits always fit in json_int_t; longer takes the parse path. */
    if (digits == 0 || digits > 18 || (p[first] == '0' && (digits > 1 || first == 1)))
        return 0;
    if (i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E'))
        return 0;
    return i;
}

/* Whether the key at p is new in the object whose keys start at base, and
 * then remembers it. */
static bool scan_new_key(scan_t *sc, size_t base, const char *p, size_t n)
{
    for (size_t k = base; k < sc->keys; k++)
        if (sc->key_len[k] == n && memcmp(sc->key[k], p, n) == 0)
            return false;
    if (sc->keys == SCAN_MAX_KEYS)
        return false;
    sc->key[sc->keys] = p;
    sc->key_len[sc->keys++] = n;
    return true;
}

/* Length of the container at p ('{' or '['), or 0. */
static size_t scan_container(scan_t *sc, const char *p, size_t n, int depth)
{
    bool object = p[0] == '{';
    char close = object ? '}' : ']';
    size_t base = sc->keys;
    if (depth >= SCAN_MAX_DEPTH)
        return 0;
    size_t i = 1;
    if (i < n && p[i] == close)
        return i + 1;
    while (i < n) {
        if (object) {
            size_t k = p[i] == '"' ? scan_string(p + i, n - i) : 0;
            if (k == 0 || i + k >= n || p[i + k] != ':' || !scan_new_key(sc, base, p + i, k))
                return 0;
            i += k + 1;
        }
        size_t v = i < n ? scan_value(sc, p + i, n - i, depth + 1) : 0;
        if (v == 0)
            return 0;
        i += v;
        if (i < n && p[i] == close) {
            sc->keys = base;
            return i + 1;
        }
        if (i >= n || p[i] != ',')
            return 0;
        i++;
    }
    return 0;
}

/* Length of the value at p, or 0 when it is not one in dump's form. */
static size_t scan_value(scan_t *sc, const char *p, size_t n, int depth)
{
    if (n == 0)
        return 0;
    switch (p[0]) {
    case '{':
    case '[':
        return scan_container(sc, p, n, depth);
    case '"':
        return scan_string(p, n);
    case 't':
        return n >= 4 && memcmp(p, "true", 4) == 0 ? 4 : 0;
    case 'f':
        return n >= 5 && memcmp(p, "false", 5) == 0 ? 5 : 0;
    case 'n':
        return n >= 4 && memcmp(p, "null", 4) == 0 ? 4 : 0;
    default:
        return (p[0] == '-' || (p[0] >= '0' && p[0] <= '9')) ? scan_integer(p, n) : 0;
    }
}

static const char STORED_OK[] = "{\"status\":\"ok\",\"result\":";
static const char STORED_ERROR[] = "{\"status\":\"error\",\"error\":";

/* The stored body when stored has exactly the writers' shape, else false. */
static bool stored_split(const char *stored, bool *ok, const char **body, size_t *len)
{
    size_t head;
    if (strncmp(stored, STORED_OK, sizeof(STORED_OK) - 1) == 0)
        head = sizeof(STORED_OK) - 1, *ok = true;
    else if (strncmp(stored, STORED_ERROR, sizeof(STORED_ERROR) - 1) == 0)
        head = sizeof(STORED_ERROR) - 1, *ok = false;
    else
        return false;
    const char *b = stored + head;
    size_t n = strlen(b);
    scan_t sc;
    sc.keys = 0;
    if (n < 2 || b[n - 1] != '}' || scan_value(&sc, b, n - 1, 0) != n - 1)
        return false;
    *body = b;
    *len = n - 1;
    return true;
}

/* The result's members up to the status (the caller adds the body and the
 * rest). */
static void put_result_head(text_t *t, const envelope_t *env, bool ok)
{
    TEXT_LIT(t, "{\"v\":1");
    MEMBER(t, "\"id\":", env->id);
    MEMBER(t, "\"account_id\":", env->account.id);
    MEMBER_OR_NULL(t, "\"type\":", env->type);
    if (env->has_correlation_id)
        MEMBER(t, "\"correlation_id\":", env->correlation_id);
    if (ok)
        TEXT_LIT(t, ",\"status\":\"ok\",\"result\":");
    else
        TEXT_LIT(t, ",\"status\":\"error\",\"error\":");
}

static char *put_result_tail(text_t *t, bool replayed, int64_t at_ms)
{
    char at[CLOCK_RFC3339_LEN + 1];
    if (replayed)
        TEXT_LIT(t, ",\"replayed\":true");
    else
        TEXT_LIT(t, ",\"replayed\":false");
    MEMBER(t, "\"processed_at\":", clock_format_rfc3339(at_ms, at, sizeof(at)));
    TEXT_LIT(t, "}");
    return text_finish(t);
}

/* Room for the identity members escaped at worst (6 bytes a byte) and the
 * fixed text around them, so that the common result takes one allocation. */
static size_t result_room(const envelope_t *env, size_t body)
{
    size_t ids = strlen(env->id) + strlen(env->account.id) + strlen(env->type) +
                 (env->has_correlation_id ? strlen(env->correlation_id) : 0);
    return 200 + 6 * ids + body;
}

char *answer_result(const envelope_t *env, const char *stored, bool replayed, int64_t at_ms)
{
    text_t t = {0};
    bool ok;
    const char *body;
    size_t len;
    if (stored_split(stored, &ok, &body, &len)) {
        text_reserve(&t, result_room(env, len));
        put_result_head(&t, env, ok);
        text_put(&t, body, len);
        return put_result_tail(&t, replayed, at_ms);
    }

    /* Any other shape: parse, and dump the body as it reads. */
    json_t *s = json_loads(stored, 0, NULL);
    const char *status = json_string_value(json_object_get(s, "status"));
    json_t *b = NULL;
    if (status != NULL && strcmp(status, "ok") == 0)
        b = json_object_get(s, "result"), ok = true;
    else if (status != NULL && strcmp(status, "error") == 0)
        b = json_object_get(s, "error"), ok = false;
    if (b == NULL) {
        json_decref(s);
        return NULL;
    }
    text_reserve(&t, result_room(env, 0));
    put_result_head(&t, env, ok);
    int failed = json_dump_callback(b, text_sink, &t, DUMP_FLAGS | JSON_ENCODE_ANY);
    json_decref(s);
    if (failed) {
        free(t.s);
        return NULL;
    }
    return put_result_tail(&t, replayed, at_ms);
}

char *answer_unpublishable(const envelope_t *env, size_t size, const char *why, bool replayed,
                           int64_t at_ms)
{
    char message[256];
    snprintf(message, sizeof(message),
             "the result (%zu bytes) could not be published: %.120s; the request is in the "
             "dead-letter topic",
             size, why);
    char *stored = answer_stored_error(TALLY_ERR_INTERNAL, message, NULL);
    char *text = stored != NULL ? answer_result(env, stored, replayed, at_ms) : NULL;
    free(stored);
    return text;
}

char *answer_audit_event(const answer_audit_t *a)
{
    char at[CLOCK_RFC3339_LEN + 1];
    text_t t = {0};
    text_reserve(&t, 400);
    TEXT_LIT(&t, "{\"v\":1");
    MEMBER(&t, "\"account_id\":", a->env->account.id);
    MEMBER(&t, "\"request_id\":", a->env->id);
    MEMBER_OR_NULL(&t, "\"type\":", a->env->type);
    if (a->ok) {
        TEXT_LIT(&t, ",\"status\":\"ok\",\"error_code\":null");
    } else {
        TEXT_LIT(&t, ",\"status\":\"error\"");
        MEMBER(&t, "\"error_code\":", tally_errcode_str(a->error_code));
    }
    if (a->replayed)
        TEXT_LIT(&t, ",\"replayed\":true");
    else
        TEXT_LIT(&t, ",\"replayed\":false");
    MEMBER(&t, "\"at\":", clock_format_rfc3339(a->at_ms, at, sizeof(at)));
    /* Microsecond precision is plenty and keeps the text short and stable. */
    KEY(&t, "\"duration_ms\":");
    put_real(&t, (double)(int64_t)(a->duration_ms * 1000.0 + 0.5) / 1000.0);
    MEMBER(&t, "\"worker\":", a->worker != NULL ? a->worker : "");
    KEY(&t, "\"partition\":");
    put_int(&t, a->partition);
    KEY(&t, "\"offset\":");
    put_int(&t, a->offset);
    TEXT_LIT(&t, "}");
    return text_finish(&t);
}
