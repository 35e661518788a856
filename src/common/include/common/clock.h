/* clock — wall and monotonic time, and the contract's time format
 * (RFC 3339, UTC, milliseconds: "2026-11-22T10:00:00.123Z"). */
#ifndef TALLY_COMMON_CLOCK_H
#define TALLY_COMMON_CLOCK_H

#include <stddef.h>
#include <stdint.h>

#define CLOCK_RFC3339_LEN 24 /* "YYYY-MM-DDTHH:MM:SS.mmmZ" without the NUL */

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_wall_ms(void);

/* Nanoseconds from an arbitrary origin (CLOCK_MONOTONIC); for durations only. */
int64_t clock_mono_ns(void);

/* Formats epoch milliseconds into buf (at least CLOCK_RFC3339_LEN + 1 bytes).
 * Returns buf. */
char *clock_format_rfc3339(int64_t epoch_ms, char *buf, size_t size);

/* The instants that RFC 3339 UTC can write, in epoch seconds:
 * 0000-01-01T00:00:00Z to 9999-12-31T23:59:59Z. */
#define CLOCK_RFC3339_MIN_S INT64_C(-62167219200)
#define CLOCK_RFC3339_MAX_S INT64_C(253402300799)

/* Parses an RFC 3339 timestamp with a 'Z' or ±HH:MM offset and optional
 * fraction (truncated to milliseconds). Returns 0 on success, -1 otherwise,
 * also when the instant falls outside years 0000-9999 in UTC
 * ("0000-01-01T00:00:00+01:00"), so that every parsed time formats back. */
int clock_parse_rfc3339(const char *s, int64_t *epoch_ms);

#endif
