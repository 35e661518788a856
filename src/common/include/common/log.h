/* log — one JSON object per line on stderr ({"ts","level","msg",…fields}),
 * or aligned text for humans (TALLY_LOG_FORMAT=text).
 *
 *   log_info("request answered", LOG_S("account_id", acct), LOG_I("offset", off));
 *
 * Thread-safe: each line is written with one write(2). String values that
 * look like connection strings have their password masked, as a last line of
 * defence; callers still redact secrets themselves. */
#ifndef TALLY_COMMON_LOG_H
#define TALLY_COMMON_LOG_H

#include "common/enumstr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The levels, lowest first, with the name a line carries (common/enumstr.h). */
#define LOG_LEVEL_LIST(X)                                                                          \
    X(LOG_DEBUG, "debug")                                                                          \
    X(LOG_INFO, "info")                                                                            \
    X(LOG_WARN, "warn")                                                                            \
    X(LOG_ERROR, "error")

typedef enum log_level { LOG_LEVEL_LIST(ENUMSTR_CONST) } log_level_t;

typedef enum log_kv_kind {
    LOG_KV_END,
    LOG_KV_STR,
    LOG_KV_STR_OPT, /* a string field left out when it is NULL or "" */
    LOG_KV_INT,
    LOG_KV_DBL,
    LOG_KV_BOOL
} log_kv_kind_t;

typedef struct log_kv {
    const char *key;
    log_kv_kind_t kind;
    const char *s;
    int64_t i;
    double d;
} log_kv_t;

/* Fields of a line. LOG_SOPT is a field only some lines have (a request's
 * trace_id): left out when v is NULL or "". */
#define LOG_S(k, v)    ((log_kv_t){.key = (k), .kind = LOG_KV_STR, .s = (v)})
#define LOG_SOPT(k, v) ((log_kv_t){.key = (k), .kind = LOG_KV_STR_OPT, .s = (v)})
#define LOG_I(k, v)    ((log_kv_t){.key = (k), .kind = LOG_KV_INT, .i = (int64_t)(v)})
#define LOG_D(k, v)    ((log_kv_t){.key = (k), .kind = LOG_KV_DBL, .d = (double)(v)})
#define LOG_B(k, v)    ((log_kv_t){.key = (k), .kind = LOG_KV_BOOL, .i = (v) ? 1 : 0})
#define LOG_END        ((log_kv_t){.key = 0, .kind = LOG_KV_END})

/* Sets the threshold and the format; call once at start-up (default: info, JSON). */
void log_setup(log_level_t level, bool text);

/* Parses "debug" | "info" | "warn" | "error". Returns false otherwise. */
bool log_level_parse(const char *s, log_level_t *out);

bool log_enabled(log_level_t level);

/* Writes one line; the field list ends with LOG_END (the macros add it). */
void log_emit(log_level_t level, const char *msg, ...);

#define log_debug(...) log_emit(LOG_DEBUG, __VA_ARGS__, LOG_END)
#define log_info(...)  log_emit(LOG_INFO, __VA_ARGS__, LOG_END)
#define log_warn(...)  log_emit(LOG_WARN, __VA_ARGS__, LOG_END)
#define log_error(...) log_emit(LOG_ERROR, __VA_ARGS__, LOG_END)

/* Masks passwords in a connection string or URL ("postgresql://u:secret@h" →
 * "postgresql://u:xxxxx@h", "password=secret" → "password=xxxxx"). */
void log_redact(const char *in, char *out, size_t size);

#endif
