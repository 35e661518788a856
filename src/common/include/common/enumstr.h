/* enumstr — enum-to-string tables written once, as X-macro lists (libuv's
 * UV_ERRNO_MAP is the model): the enum, its names and its parser all come
 * from one list, so they cannot drift apart.
 *
 *   #define ACCESS_PAYOUT_STATUS_LIST(X) \
 *       X(ACCESS_PAYOUT_PENDING, "pending") \
 *       X(ACCESS_PAYOUT_PAID, "paid")
 *   typedef enum access_payout_status {
 *       ACCESS_PAYOUT_STATUS_LIST(ENUMSTR_CONST)
 *   } access_payout_status_t;
 *
 *   static const char *const names[] = {ACCESS_PAYOUT_STATUS_LIST(ENUMSTR_NAME)};
 *   …enumstr_name(names, ENUMSTR_COUNT(names), s, "?")…
 *
 * A list of more columns (errcode.h) expands its own macros the same way.
 * Pure and thread-safe. */
#ifndef TALLY_COMMON_ENUMSTR_H
#define TALLY_COMMON_ENUMSTR_H

#include <stdbool.h>
#include <stddef.h>

/* Expanders for a two-column list X(CONSTANT, "string"). */
#define ENUMSTR_CONST(constant, string)  constant,
#define ENUMSTR_NAME(constant, string)   [constant] = string,
#define ENUMSTR_STRING(constant, string) string,

#define ENUMSTR_COUNT(names) (sizeof(names) / sizeof((names)[0]))

/* names[value], or fallback when value is outside the table (or has no name). */
const char *enumstr_name(const char *const *names, size_t count, int value, const char *fallback);

/* The value whose name is s (case-sensitive; s may be NULL): true and *out,
 * or false. */
bool enumstr_parse(const char *const *names, size_t count, const char *s, int *out);

#endif
