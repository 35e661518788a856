/* handler — the job types of CONTRACT.md §6: for each, the payload's schema,
 * its business rules and the shape of its result.
 *
 * Handlers see tenant transactions and access functions only: no SQL, no
 * libpq, no pool, no Kafka. They run on executor threads and are written as
 * straight-line code. */
#ifndef TALLY_HANDLERS_HANDLER_H
#define TALLY_HANDLERS_HANDLER_H

#include "access/tx.h"
#include "common/errcode.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct handler handler_t;

/* A result's value never exceeds 1 MiB (CONTRACT.md §3). A list page stops
 * adding items before its "result" would pass HANDLER_LIST_PAGE_MAX_BYTES of
 * compact JSON, which leaves the rest of the 1 MiB to the envelope around it
 * (ids, correlation_id, processed_at: under 2 KiB). */
#define HANDLER_RESULT_MAX_BYTES    (1024 * 1024)
#define HANDLER_LIST_PAGE_MAX_BYTES (HANDLER_RESULT_MAX_BYTES - 16 * 1024)

typedef struct handler_error {
    tally_errcode_t code; /* the contract code when the request is rejected */
    char field[128];      /* payload path of the culprit ("amount", "shares[1].party"), or "" */
    char message[256];    /* human-readable; for infrastructure failures, for the log only */
} handler_error_t;

typedef enum handler_status {
    HANDLER_OK,          /* *result holds the "result" object */
    HANDLER_REJECTED,    /* a contract error answer; err->code says which */
    HANDLER_RETRY,       /* transient database failure: undo and try again later */
    HANDLER_UNAVAILABLE, /* the connection is gone: abort the session */
    HANDLER_FAILED,      /* unexpected failure: counts as a failed attempt */
} handler_status_t;

/* The handler of a job type, or NULL when type is not a known job type. */
const handler_t *handler_find(const char *type);

/* The job type's name ("payment.record"). */
const char *handler_name(const handler_t *h);

/* All job types, for listings: handler_at(i) for i < handler_count(). */
size_t handler_count(void);
const handler_t *handler_at(size_t i);

/* Checks payload against the job type's schema without touching the database.
 * Returns true when valid; otherwise fills err (code TALLY_ERR_INVALID_REQUEST,
 * field naming the culprit). */
bool handler_validate(const handler_t *h, const json_t *payload, handler_error_t *err);

/* The JSON Schema (draft 2020-12) of the job type's payload, generated from
 * the same declaration that handler_validate reads (docs/schemas/<type>.json).
 * A new reference the caller owns, or NULL on allocation failure. */
json_t *handler_json_schema(const handler_t *h);

/* The job type's section of docs/JOB_TYPES.md: a heading, its summary and
 * the table of its payload's fields, bounds, defaults and enums, generated
 * from the same declaration. The caller frees it. */
char *handler_doc_markdown(const handler_t *h);

/* Runs a validated payload in tx. On HANDLER_OK, *result is a new reference
 * the caller owns; otherwise *result is NULL and err says why. On anything but
 * HANDLER_OK the caller rolls tx back before writing the answer. */
handler_status_t handler_execute(const handler_t *h, access_tx_t *tx, const json_t *payload,
                                 json_t **result, handler_error_t *err);

#endif
