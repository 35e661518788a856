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

/* Parses an RFC 3339 timestamp with a 'Z' or ±HH:MM offset and optional
 * fraction (truncated to milliseconds). Returns 0 on success, -1 otherwise. */
int clock_parse_rfc3339(const char *s, int64_t *epoch_ms);

#endif
