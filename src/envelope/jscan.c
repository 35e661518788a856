#include "envelope/jscan.h"

#include "common/enumstr.h"
#include "common/mem.h"
#include "common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The decoded keys of one object, to find duplicates ("a" and "\u0061" are
 * the same key). Open addressing; keys are copies, NUL bytes kept. */
typedef struct key_slot {
    char *key; /* NULL: empty slot */
    size_t len;
    uint64_t hash;
} key_slot_t;

typedef struct key_set {
    key_slot_t *slots;
    size_t cap, n;
} key_set_t;

typedef struct scan {
    const char *s;
    size_t len, pos;
    char *out;
    int depth;
    char path[JSCAN_PATH_MAX * 4]; /* the current path, cut on a character boundary */
    size_t plen;
    jscan_member_t *members;
    size_t nmembers;
    int top;   /* members[top] is the top-level member being read, or -1 */
    char *key; /* the last decoded key */
    size_t key_len, key_cap;
    jscan_t *r;
} scan_t;

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* Adds key; returns whether it was new (false: a duplicate). */
static bool key_set_add(key_set_t *ks, const char *key, size_t len)
{
    if ((ks->n + 1) * 2 > ks->cap) {
        size_t cap = ks->cap ? ks->cap * 2 : 16;
        key_slot_t *slots = mem_calloc(cap, sizeof(*slots));
        for (size_t i = 0; i < ks->cap; i++) {
            if (ks->slots[i].key == NULL)
                continue;
            size_t j = ks->slots[i].hash & (cap - 1);
            while (slots[j].key != NULL)
                j = (j + 1) & (cap - 1);
            slots[j] = ks->slots[i];
        }
        free(ks->slots);
        ks->slots = slots;
        ks->cap = cap;
    }
    uint64_t h = fnv1a(key, len);
    size_t j = h & (ks->cap - 1);
    for (; ks->slots[j].key != NULL; j = (j + 1) & (ks->cap - 1)) {
        const key_slot_t *k = &ks->slots[j];
        if (k->hash == h && k->len == len && memcmp(k->key, key, len) == 0)
            return false;
    }
    char *copy = mem_alloc(len + 1);
    memcpy(copy, key, len);
    ks->slots[j] = (key_slot_t){copy, len, h};
    ks->n++;
    return true;
}

static void key_set_free(key_set_t *ks)
{
    for (size_t i = 0; i < ks->cap; i++)
        free(ks->slots[i].key);
    free(ks->slots);
}

/* ---- errors, problems and the path ------------------------------------- */

static bool fail(scan_t *sc)
{
    if (sc->r->valid) {
        sc->r->valid = false;
        sc->r->error_offset = sc->pos;
    }
    return false;
}

static void path_append(scan_t *sc, const char *s, size_t n)
{
    size_t room = sizeof(sc->path) - 1 - sc->plen;
    n = utf8_cut(s, n, room);
    memcpy(sc->path + sc->plen, s, n);
    sc->plen += n;
    sc->path[sc->plen] = '\0';
}

/* Appends the member name key (NUL shown as U+FFFD; "" names nothing, as
 * the payload validator blames the object holding such a key). */
static void path_push_key(scan_t *sc, const char *key, size_t len)
{
    if (len == 0)
        return;
    if (sc->plen > 0)
        path_append(sc, ".", 1);
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '\0') {
            path_append(sc, key + start, i - start);
            if (i < len)
                path_append(sc, "\xEF\xBF\xBD", 3);
            start = i + 1;
        }
    }
}

static void problem(scan_t *sc, jscan_problem_t p)
{
    if (sc->top >= 0)
        sc->members[sc->top].tainted = true;
    if (sc->r->problem != JSCAN_NONE)
        return;
    sc->r->problem = p;
    sc->r->member = sc->top;
    size_t n = utf8_cut(sc->path, sc->plen, sizeof(sc->r->path) - 1);
    memcpy(sc->r->path, sc->path, n);
    sc->r->path[n] = '\0';
}

/* ---- the grammar (RFC 8259) -------------------------------------------- */

static void ws(scan_t *sc)
{
    while (sc->pos < sc->len) {
        char c = sc->s[sc->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        sc->pos++;
    }
}

static bool literal(scan_t *sc, const char *word)
{
    size_t n = strlen(word);
    if (sc->len - sc->pos < n || memcmp(sc->s + sc->pos, word, n) != 0)
        return fail(sc);
    sc->pos += n;
    return true;
}

static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static void key_put(scan_t *sc, const char *p, size_t n)
{
    if (sc->key_len + n > sc->key_cap) {
        size_t cap = sc->key_cap ? sc->key_cap : 64;
        while (cap < sc->key_len + n)
            cap *= 2;
        sc->key = mem_realloc(sc->key, cap);
        sc->key_cap = cap;
    }
    memcpy(sc->key + sc->key_len, p, n);
    sc->key_len += n;
}

static void key_put_cp(scan_t *sc, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6)), b[1] = (char)(0x80 | (cp & 0x3F)), n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12)), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F)), n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18)), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F)), n = 4;
    }
    key_put(sc, b, n);
}

/* A string at pos (the opening quote). A key is decoded into sc->key (its
 * caller reports a \u0000 in it, once the key is on the path); a value's
 * \u0000 is reported at the path as it stands. */
static bool string(scan_t *sc, bool is_key)
{
    sc->pos++; /* the quote */
    sc->key_len = 0;
    bool nul = false;
    while (sc->pos < sc->len) {
        size_t start = sc->pos;
        unsigned char c = (unsigned char)sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            if (nul && !is_key)
                problem(sc, JSCAN_NUL);
            return true;
        }
        if (c < 0x20)
            return fail(sc);
        if (c != '\\') {
            sc->pos++;
            if (is_key)
                key_put(sc, sc->s + start, 1);
            continue;
        }
        if (sc->len - sc->pos < 2)
            return fail(sc);
        char e = sc->s[sc->pos + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != '\0' && simple != NULL) {
            static const char decoded[] = "\"\\/\b\f\n\r\t";
            sc->pos += 2;
            if (is_key)
                key_put(sc, &decoded[simple - "\"\\/bfnrt"], 1);
            continue;
        }
        if (e != 'u' || sc->len - sc->pos < 6)
            return fail(sc);
        int cp = hex4(sc->s + sc->pos + 2);
        if (cp < 0)
            return fail(sc);
        size_t esc = 6;
        uint32_t full = (uint32_t)cp;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
            return fail(sc); /* a lone low surrogate: jansson refuses it */
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (sc->len - sc->pos < 12 || sc->s[sc->pos + 6] != '\\' || sc->s[sc->pos + 7] != 'u')
                return fail(sc);
            int lo = hex4(sc->s + sc->pos + 8);
            if (lo < 0xDC00 || lo > 0xDFFF)
                return fail(sc);
            full = 0x10000 + (((uint32_t)cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00);
            esc = 12;
        }
        if (full == 0) {
            nul = true;
            if (sc->out != NULL)
                memcpy(sc->out + sc->pos + 2, "FFFD", 4);
        }
        if (is_key)
            key_put_cp(sc, full);
        sc->pos += esc;
    }
    return fail(sc);
}

static bool value(scan_t *sc);

/* A number at pos: the grammar, then the range jansson accepts. */
static bool number(scan_t *sc)
{
    size_t start = sc->pos;
    const char *s = sc->s;
    bool real = false;
    if (sc->pos < sc->len && s[sc->pos] == '-')
        sc->pos++;
    if (sc->pos >= sc->len || s[sc->pos] < '0' || s[sc->pos] > '9')
        return fail(sc);
    if (s[sc->pos] == '0') {
        sc->pos++;
    } else {
        while (sc->pos < sc->len && s[sc->pos] >= '0' && s[sc->pos] <= '9')
            sc->pos++;
    }
    if (sc->pos < sc->len && s[sc->pos] == '.') {
        real = true;
        sc->pos++;
        if (sc->pos >= sc->len || s[sc->pos] < '0' || s[sc->pos] > '9')
            return fail(sc);
        while (sc->pos < sc->len && s[sc->pos] >= '0' && s[sc->pos] <= '9')
            sc->pos++;
    }
    if (sc->pos < sc->len && (s[sc->pos] == 'e' || s[sc->pos] == 'E')) {
        real = true;
        sc->pos++;
        if (sc->pos < sc->len && (s[sc->pos] == '+' || s[sc->pos] == '-'))
            sc->pos++;
        if (sc->pos >= sc->len || s[sc->pos] < '0' || s[sc->pos] > '9')
            return fail(sc);
        while (sc->pos < sc->len && s[sc->pos] >= '0' && s[sc->pos] <= '9')
            sc->pos++;
    }
    size_t n = sc->pos - start;
    char small[64];
    char *copy = n < sizeof(small) ? small : mem_alloc(n + 1);
    memcpy(copy, s + start, n);
    copy[n] = '\0';
    errno = 0;
    bool range;
    if (real) {
        double d = strtod(copy, NULL);
        range = errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL);
    } else {
        (void)strtoll(copy, NULL, 10);
        range = errno == ERANGE;
    }
    if (copy != small)
        free(copy);
    if (range) {
        problem(sc, JSCAN_NUMBER_RANGE);
        /* Out of range takes at least 5 characters ("1e309"), so "null" fits. */
        if (sc->out != NULL && n >= 4) {
            memcpy(sc->out + start, "null", 4);
            memset(sc->out + start + 4, ' ', n - 4);
        }
    }
    return true;
}

static bool object(scan_t *sc)
{
    key_set_t keys = {0};
    bool ok = false;
    bool top = sc->depth == 1;
    sc->pos++; /* { */
    ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
        sc->pos++;
        return true;
    }
    for (;;) {
        ws(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != '"') {
            fail(sc);
            goto out;
        }
        size_t saved = sc->plen;
        if (!string(sc, true))
            goto out;
        bool added = key_set_add(&keys, sc->key, sc->key_len);
        if (top) {
            sc->top = -1;
            for (size_t i = 0; i < sc->nmembers; i++) {
                if (strlen(sc->members[i].name) == sc->key_len &&
                    memcmp(sc->members[i].name, sc->key, sc->key_len) == 0) {
                    sc->top = (int)i;
                    if (++sc->members[i].count > 1)
                        sc->members[i].tainted = true;
                }
            }
        }
        path_push_key(sc, sc->key, sc->key_len);
        if (!added)
            problem(sc, JSCAN_DUPLICATE_KEY);
        if (memchr(sc->key, '\0', sc->key_len) != NULL)
            problem(sc, JSCAN_NUL);
        ws(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != ':') {
            fail(sc);
            goto out;
        }
        sc->pos++;
        ws(sc);
        if (!value(sc))
            goto out;
        sc->plen = saved;
        sc->path[saved] = '\0';
        if (top)
            sc->top = -1;
        ws(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
            sc->pos++;
            ok = true;
            goto out;
        }
        fail(sc);
        goto out;
    }
out:
    key_set_free(&keys);
    return ok;
}

static bool array(scan_t *sc)
{
    sc->pos++; /* [ */
    ws(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
        sc->pos++;
        return true;
    }
    for (size_t i = 0;; i++) {
        size_t saved = sc->plen;
        char idx[32];
        int n = snprintf(idx, sizeof(idx), "[%zu]", i);
        path_append(sc, idx, (size_t)n);
        ws(sc);
        if (!value(sc))
            return false;
        sc->plen = saved;
        sc->path[saved] = '\0';
        ws(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ',') {
            sc->pos++;
            continue;
        }
        if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
            sc->pos++;
            return true;
        }
        return fail(sc);
    }
}

/* Every value counts one level, scalars included, as jansson counts them. */
static bool value(scan_t *sc)
{
    if (sc->pos >= sc->len)
        return fail(sc);
    if (++sc->depth > JSCAN_MAX_DEPTH)
        return fail(sc);
    bool ok;
    switch (sc->s[sc->pos]) {
    case '{':
        ok = object(sc);
        break;
    case '[':
        ok = array(sc);
        break;
    case '"':
        ok = string(sc, false);
        break;
    case 't':
        ok = literal(sc, "true");
        break;
    case 'f':
        ok = literal(sc, "false");
        break;
    case 'n':
        ok = literal(sc, "null");
        break;
    default:
        ok = number(sc);
        break;
    }
    sc->depth--;
    return ok;
}

void jscan_run(const char *text, size_t len, char *out, jscan_member_t *members, size_t n,
               jscan_t *result)
{
    memset(result, 0, sizeof(*result));
    result->valid = true;
    result->member = -1;
    for (size_t i = 0; i < n; i++) {
        members[i].count = 0;
        members[i].tainted = false;
    }
    if (out != NULL && len > 0)
        memcpy(out, text, len);
    scan_t sc = {.s = text,
                 .len = len,
                 .out = out,
                 .members = members,
                 .nmembers = n,
                 .top = -1,
                 .r = result};
    sc.key = mem_alloc(sc.key_cap = 64); /* never NULL below, even for "" */
    ws(&sc);
    if (value(&sc)) {
        ws(&sc);
        if (sc.pos != len)
            fail(&sc);
    }
    free(sc.key);
    if (!result->valid) {
        result->problem = JSCAN_NONE;
        result->path[0] = '\0';
    }
}

#define NOUN(constant, noun, predicate) [constant] = noun,
static const char *const nouns[] = {JSCAN_PROBLEM_LIST(NOUN)};
#undef NOUN
#define PREDICATE(constant, noun, predicate) [constant] = predicate,
static const char *const predicates[] = {JSCAN_PROBLEM_LIST(PREDICATE)};
#undef PREDICATE

const char *jscan_problem_str(jscan_problem_t p)
{
    return enumstr_name(nouns, ENUMSTR_COUNT(nouns), (int)p, "nothing");
}

const char *jscan_problem_predicate(jscan_problem_t p)
{
    return enumstr_name(predicates, ENUMSTR_COUNT(predicates), (int)p, "holds no problem");
}
