/* answer — the JSON texts Tally publishes for a request: the result
 * (CONTRACT.md §3), the audit event (§5), and the stored response from which
 * a replay rebuilds the result.
 *
 * The stored response is the part of a result that does not change between
 * deliveries: {"status":"ok","result":…} or {"status":"error","error":{…}}.
 * A result adds the request's identity (v, id, account_id, type,
 * correlation_id iff the request had one) and the per-delivery fields
 * (replayed, processed_at).
 *
 * Pure: safe on any thread. Every returned string is malloc'd; the caller
 * frees it. NULL means an unparsable stored text (or out of memory, where
 * jansson was not pointed at common/mem.h: the worker's main does). */
#ifndef TALLY_WORKER_ANSWER_H
#define TALLY_WORKER_ANSWER_H

#include "common/errcode.h"
#include "envelope/envelope.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* The most a result's value may be (CONTRACT.md §3). */
#define ANSWER_MAX_RESULT (1024 * 1024)

/* {"status":"ok","result":<result>} (result is borrowed).
 * @thread any */
char *answer_stored_ok(const json_t *result);

/* {"status":"error","error":{"code","message","field"?}}; field "" or NULL is left out.
 * @thread any */
char *answer_stored_error(tally_errcode_t code, const char *message, const char *field);

/* The result for env built from a stored response text.
 * @thread any */
char *answer_result(const envelope_t *env, const char *stored, bool replayed, int64_t at_ms);

/* The short `internal` result that replaces a result of size bytes that
 * could not be published (why: too large, refused by the broker).
 * @thread any */
char *answer_unpublishable(const envelope_t *env, size_t size, const char *why, bool replayed,
                           int64_t at_ms);

/* Reads status and error code back from a stored response text. Returns
 * false when the text is not a stored response.
 * @thread any */
bool answer_stored_status(const char *stored, bool *ok, tally_errcode_t *code);

typedef struct answer_audit {
    const envelope_t *env;
    bool ok;
    tally_errcode_t error_code; /* TALLY_ERR_NONE when ok */
    bool replayed;
    int64_t at_ms;
    double duration_ms;
    const char *worker;
    int32_t partition;
    int64_t offset;
} answer_audit_t;

/* The audit event of §5.
 * @thread any */
char *answer_audit_event(const answer_audit_t *a);

#endif
