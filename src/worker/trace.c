/* trace — see worker/trace.h. */
#include "worker/trace.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PARENT_V00_LEN   55 /* "00-" 32 "-" 16 "-" 2 */
#define STATE_MEMBERS    32
#define STATE_KEY_MAX    256
#define STATE_VALUE_MAX  256
#define STATE_TENANT_MAX 241
#define STATE_SYSTEM_MAX 14

static bool lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return true;
}

static bool all_zeros(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '0')
            return false;
    }
    return true;
}

static bool printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7e)
            return false;
    }
    return true;
}

bool trace_parent_valid(const char *v, size_t n)
{
    if (v == NULL || n < PARENT_V00_LEN || n > TRACE_PARENT_MAX)
        return false;
    if (!lower_hex(v, 2) || memcmp(v, "ff", 2) == 0 || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    if (!lower_hex(v + 3, 32) || all_zeros(v + 3, 32) || !lower_hex(v + 36, 16) ||
        all_zeros(v + 36, 16) || !lower_hex(v + 53, 2))
        return false;
    if (memcmp(v, "00", 2) == 0)
        return n == PARENT_V00_LEN;
    /* A later version: what follows the flags starts with "-". */
    return n == PARENT_V00_LEN || (v[PARENT_V00_LEN] == '-' && printable(v, n));
}

static bool lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static bool key_char(char c)
{
    return lcalpha(c) || (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '*' || c == '/';
}

/* first (the first character's rule) then key_char up to max in all. */
static bool key_part(const char *k, size_t n, size_t max, bool digit_first)
{
    if (n == 0 || n > max || !(lcalpha(k[0]) || (digit_first && k[0] >= '0' && k[0] <= '9')))
        return false;
    for (size_t i = 1; i < n; i++) {
        if (!key_char(k[i]))
            return false;
    }
    return true;
}

/* simple-key, or tenant-id "@" system-id. */
static bool state_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (at == NULL)
        return key_part(k, n, STATE_KEY_MAX, false);
    size_t t = (size_t)(at - k);
    return key_part(k, t, STATE_TENANT_MAX, true) &&
           key_part(at + 1, n - t - 1, STATE_SYSTEM_MAX, false);
}

/* 1–256 of 0x20–0x7e but "," and "=", the last not a space. */
static bool state_value(const char *v, size_t n)
{
    if (n == 0 || n > STATE_VALUE_MAX || v[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < 0x20 || v[i] > 0x7e || v[i] == ',' || v[i] == '=')
            return false;
    }
    return true;
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

bool trace_state_valid(const char *v, size_t n)
{
    if (v == NULL || n > TRACE_STATE_MAX)
        return false;
    const char *keys[STATE_MEMBERS];
    size_t key_len[STATE_MEMBERS];
    size_t members = 0;
    for (size_t start = 0; start <= n;) {
        const char *comma = memchr(v + start, ',', n - start);
        size_t end = comma != NULL ? (size_t)(comma - v) : n;
        size_t a = start, b = end;
        while (a < b && ows(v[a]))
            a++;
        while (b > a && ows(v[b - 1]))
            b--;
        start = end + 1;
        if (a == b)
            continue; /* an empty member is allowed */
        const char *eq = memchr(v + a, '=', b - a);
        if (eq == NULL || members == STATE_MEMBERS)
            return false;
        size_t kn = (size_t)(eq - (v + a));
        if (!state_key(v + a, kn) || !state_value(eq + 1, b - a - kn - 1))
            return false;
        for (size_t i = 0; i < members; i++) {
            if (key_len[i] == kn && memcmp(keys[i], v + a, kn) == 0)
                return false; /* a key given twice */
        }
        keys[members] = v + a;
        key_len[members++] = kn;
    }
    return true;
}

void trace_from_headers(const rd_kafka_headers_t *h, trace_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *parent = NULL;
    size_t parent_len = 0, state_len = 0;
    int parents = 0;
    bool state_ok = true;
    const char *name;
    const void *val;
    size_t size;
    for (size_t i = 0; h != NULL && rd_kafka_header_get_all(h, i, &name, &val, &size) ==
                                        RD_KAFKA_RESP_ERR_NO_ERROR;
         i++) {
        if (strcasecmp(name, "traceparent") == 0) {
            parents++;
            parent = val;
            parent_len = val != NULL ? size : 0;
        } else if (strcasecmp(name, "tracestate") == 0 && val != NULL) {
            /* Several headers are one list, joined with ",". */
            size_t need = state_len + (state_len > 0) + size;
            if (need > TRACE_STATE_MAX) {
                state_ok = false;
                continue;
            }
            if (state_len > 0)
                out->state[state_len++] = ',';
            memcpy(out->state + state_len, val, size);
            state_len += size;
        }
    }
    out->state[state_len] = '\0';
    if (parents != 1 || !trace_parent_valid(parent, parent_len)) {
        memset(out, 0, sizeof(*out));
        return;
    }
    memcpy(out->parent, parent, parent_len);
    out->parent[parent_len] = '\0';
    memcpy(out->id, parent + 3, TRACE_ID_LEN);
    out->id[TRACE_ID_LEN] = '\0';
    if (!state_ok || !trace_state_valid(out->state, state_len))
        out->state[0] = '\0';
}

void trace_to_headers(const trace_t *t, rd_kafka_headers_t *h)
{
    if (t->parent[0] == '\0')
        return;
    rd_kafka_header_add(h, "traceparent", -1, t->parent, -1);
    if (t->state[0] != '\0')
        rd_kafka_header_add(h, "tracestate", -1, t->state, -1);
}
