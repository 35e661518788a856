/* trace — a request's W3C trace context (traceparent, tracestate), read
 * from its Kafka headers, copied onto what Tally publishes for it (result,
 * audit event, DLQ copy; CONTRACT.md §7) and its trace id into its log
 * lines.
 *
 * Only a valid traceparent is copied (W3C Trace Context, level 1):
 *
 *   version "-" trace-id "-" parent-id "-" trace-flags
 *   2 hex      32 hex       16 hex        2 hex        lower-case hex only
 *
 * version ff is invalid; trace-id and parent-id may not be all zeros;
 * version 00 is exactly those 55 characters; a later version may go on
 * after a "-" (its first four fields are read the same way, as the spec
 * asks), up to TRACE_PARENT_MAX characters. A message with more than one
 * traceparent header has none. tracestate is copied only beside a valid
 * traceparent, when it is a valid list (at most 32 members `key=value`,
 * keys as the spec writes them and unique, values of printable ASCII
 * without `,` and `=`, empty members allowed) of at most TRACE_STATE_MAX
 * characters; several tracestate headers are one list, joined with ",".
 * Header names are matched without regard to case; they go out as
 * "traceparent" and "tracestate". Anything else is left out, never
 * answered: trace context is the caller's business, not the request's.
 *
 * Pure but for the librdkafka header accessors. */
#ifndef TALLY_WORKER_TRACE_H
#define TALLY_WORKER_TRACE_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

#define TRACE_PARENT_MAX 256 /* a later version's traceparent, bounded */
#define TRACE_STATE_MAX  512 /* what the spec asks every vendor to pass on */
#define TRACE_ID_LEN     32

typedef struct trace {
    char parent[TRACE_PARENT_MAX + 1]; /* "" when none or invalid */
    char state[TRACE_STATE_MAX + 1];   /* "" when none, invalid or without a parent */
    char id[TRACE_ID_LEN + 1];         /* parent's trace-id; "" when none */
} trace_t;

/* Whether the n bytes at v are a valid traceparent.
 * @thread any */
bool trace_parent_valid(const char *v, size_t n);

/* Whether the n bytes at v are a valid tracestate list (and at most
 * TRACE_STATE_MAX long).
 * @thread any */
bool trace_state_valid(const char *v, size_t n);

/* Reads the trace context of a message's headers (NULL: none) into out.
 * @thread any */
void trace_from_headers(const rd_kafka_headers_t *h, trace_t *out);

/* Adds traceparent and tracestate to h when t has them.
 * @thread any */
void trace_to_headers(const trace_t *t, rd_kafka_headers_t *h);

#endif
