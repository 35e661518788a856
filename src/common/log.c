#include "common/log.h"

#include "common/clock.h"
#include "common/utf8.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define LINE_MAX_BYTES 8192

/* Set once by log_setup before any thread starts; read-only afterwards. */
static log_level_t threshold = LOG_INFO;
static bool text_format;

static const char *const level_names[] = {LOG_LEVEL_LIST(ENUMSTR_NAME)};

void log_setup(log_level_t level, bool text)
{
    threshold = level;
    text_format = text;
}

bool log_level_parse(const char *s, log_level_t *out)
{
    for (size_t i = 0; i < ENUMSTR_COUNT(level_names); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (log_level_t)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = LOG_WARN;
        return true;
    }
    return false;
}

bool log_enabled(log_level_t level)
{
    return level >= threshold;
}

void log_redact(const char *in, char *out, size_t size)
{
    size_t o = 0;
    if (size == 0)
        return;
    for (size_t i = 0; in[i] != '\0' && o + 1 < size;) {
        /* URL form: scheme://user:password@host — mask between ':' and '@'. */
        if (strncmp(in + i, "://", 3) == 0) {
            const char *auth = in + i + 3;
            size_t auth_len = strcspn(auth, "@/?# ");
            const char *colon = memchr(auth, ':', auth_len);
            if (auth[auth_len] == '@' && colon != NULL) {
                size_t keep = (size_t)(colon - (in + i)) + 1;
                int n = snprintf(out + o, size - o, "%.*sxxxxx@", (int)keep, in + i);
                o += (n > 0 && (size_t)n < size - o) ? (size_t)n : size - o - 1;
                i += 3 + auth_len + 1;
                continue;
            }
        }
        /* Keyword form: password=secret (possibly quoted). */
        if ((i == 0 || !isalnum((unsigned char)in[i - 1])) &&
            strncasecmp(in + i, "password", 8) == 0) {
            size_t j = i + 8;
            while (in[j] == ' ')
                j++;
            if (in[j] == '=') {
                j++;
                while (in[j] == ' ')
                    j++;
                if (in[j] == '\'') {
                    j++;
                    while (in[j] != '\0' && in[j] != '\'')
                        j += (in[j] == '\\' && in[j + 1] != '\0') ? 2 : 1;
                    if (in[j] == '\'')
                        j++;
                } else {
                    while (in[j] != '\0' && !isspace((unsigned char)in[j]) && in[j] != '&')
                        j++;
                }
                int n = snprintf(out + o, size - o, "password=xxxxx");
                o += (n > 0 && (size_t)n < size - o) ? (size_t)n : size - o - 1;
                i = j;
                continue;
            }
        }
        out[o++] = in[i++];
    }
    out[o] = '\0';
}

/* Appends s to buf as a JSON string body (without quotes). */
static size_t put_json_string(char *buf, size_t o, size_t cap, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && o + 7 < cap; p++) {
        switch (*p) {
        case '"':
            buf[o++] = '\\';
            buf[o++] = '"';
            break;
        case '\\':
            buf[o++] = '\\';
            buf[o++] = '\\';
            break;
        case '\n':
            buf[o++] = '\\';
            buf[o++] = 'n';
            break;
        case '\r':
            buf[o++] = '\\';
            buf[o++] = 'r';
            break;
        case '\t':
            buf[o++] = '\\';
            buf[o++] = 't';
            break;
        default:
            if (*p < 0x20) {
                o += (size_t)snprintf(buf + o, cap - o, "\\u%04x", *p);
            } else if (*p < 0x80) {
                buf[o++] = (char)*p;
            } else {
                /* Whole UTF-8 sequences only, so a line is always valid JSON
                 * even when the input is not UTF-8 or the line is cut short. */
                size_t n = utf8_seq_len(p, SIZE_MAX);
                if (n == 0) {
                    memcpy(buf + o, "\\ufffd", 6);
                    o += 6;
                } else if (o + n + 7 < cap) {
                    memcpy(buf + o, p, n);
                    o += n;
                    p += n - 1;
                } else {
                    return o;
                }
            }
        }
    }
    return o;
}

/* Appends s to buf for the text format: control characters are escaped as
 * in JSON, so that a multi-line value (libpq's messages) stays on one line. */
static size_t put_text_string(char *buf, size_t o, size_t cap, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && o + 7 < cap; p++) {
        if (*p < 0x20) {
            char one[2] = {(char)*p, '\0'};
            o = put_json_string(buf, o, cap, one);
        } else {
            buf[o++] = (char)*p;
        }
    }
    return o;
}

__attribute__((format(printf, 4, 5))) static size_t put(char *buf, size_t o, size_t cap,
                                                        const char *fmt, ...)
{
    if (o >= cap)
        return o;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + o, cap - o, fmt, ap);
    va_end(ap);
    if (n < 0)
        return o;
    return (size_t)n >= cap - o ? cap - 1 : o + (size_t)n;
}

void log_emit(log_level_t level, const char *msg, ...)
{
    if (level < threshold)
        return;
    char buf[LINE_MAX_BYTES];
    char ts[CLOCK_RFC3339_LEN + 1];
    char redacted[2048];
    const size_t cap = sizeof(buf) - 2; /* room for "}\n" */
    clock_format_rfc3339(clock_wall_ms(), ts, sizeof(ts));

    size_t o = 0;
    if (text_format) {
        o = put(buf, o, cap, "%s %-5s ", ts, level_names[level]);
        o = put_text_string(buf, o, cap, msg);
    } else {
        o = put(buf, o, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"", ts, level_names[level]);
        o = put_json_string(buf, o, cap, msg);
        o = put(buf, o, cap, "\"");
    }

    va_list ap;
    va_start(ap, msg);
    for (;;) {
        log_kv_t kv = va_arg(ap, log_kv_t);
        if (kv.kind == LOG_KV_END)
            break;
        if (kv.kind == LOG_KV_STR_OPT && (kv.s == NULL || kv.s[0] == '\0'))
            continue;
        if (text_format)
            o = put(buf, o, cap, " %s=", kv.key);
        else
            o = put(buf, o, cap, ",\"%s\":", kv.key);
        switch (kv.kind) {
        case LOG_KV_STR:
        case LOG_KV_STR_OPT:
            if (kv.s == NULL) {
                o = put(buf, o, cap, "null");
                break;
            }
            log_redact(kv.s, redacted, sizeof(redacted));
            if (text_format) {
                o = put_text_string(buf, o, cap, redacted);
            } else {
                o = put(buf, o, cap, "\"");
                o = put_json_string(buf, o, cap, redacted);
                o = put(buf, o, cap, "\"");
            }
            break;
        case LOG_KV_INT:
            o = put(buf, o, cap, "%lld", (long long)kv.i);
            break;
        case LOG_KV_DBL:
            o = put(buf, o, cap, "%.3f", kv.d);
            break;
        case LOG_KV_BOOL:
            o = put(buf, o, cap, "%s", kv.i ? "true" : "false");
            break;
        case LOG_KV_END:
            break;
        }
    }
    va_end(ap);
    if (!text_format)
        buf[o++] = '}';
    buf[o++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, buf, o);
    (void)ignored;
}
