/* envelope — decodes one Kafka request message (CONTRACT.md §2) into a job.
 *
 * Pure: no I/O, never crashes on any bytes. The outcome is either a job to
 * answer (possibly with an error already decided: invalid_request naming the
 * field, unsupported_version, unknown_type) or "unanswerable": the message
 * goes to the DLQ unchanged.
 *
 * When several things are wrong, the first check in this order decides:
 *   unanswerable (DLQ): 1 value over 1 MiB, 2 not UTF-8, 3 not one JSON
 *     object (duplicate keys count as not JSON: they make the envelope
 *     ambiguous), 4 `id` missing or not 1-128 printable ASCII, 5 `account_id`
 *     missing or invalid — without both a result cannot be keyed or deduped;
 *   answered: 6 `v` (unsupported_version: other fields may mean something
 *     else in another version), 7 message key ≠ account_id (invalid_request,
 *     field account_id), 8 `type` missing or not a string (invalid_request),
 *     9 `type` unknown (unknown_type), 10 `payload` missing or not an object,
 *     11 `reply_to` not a topic name, 12 `correlation_id` not a string ≤ 128 chars
 *     (all invalid_request with the field); payload fields are checked later
 *     by the job type's validator.
 * JSON null in an optional field (`v`, `reply_to`, `correlation_id`) counts
 * as absent. Unknown top-level fields are ignored. */
#ifndef TALLY_WORKER_ENVELOPE_H
#define TALLY_WORKER_ENVELOPE_H

#include "access/account.h"
#include "common/errcode.h"
#include "handlers/handler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define ENVELOPE_MAX_VALUE (1024 * 1024)
#define ENVELOPE_ID_MAX    128
#define ENVELOPE_TYPE_MAX  128
#define ENVELOPE_CORR_MAX  128 /* characters (code points), as envelope.json's maxLength */
#define ENVELOPE_CORR_SIZE (ENVELOPE_CORR_MAX * 4 + 1) /* bytes, with the NUL */
#define ENVELOPE_TOPIC_MAX 249

typedef enum envelope_kind {
    ENVELOPE_ANSWER, /* answer it: *env is filled */
    ENVELOPE_DLQ,    /* unanswerable: env->error_message says why */
} envelope_kind_t;

typedef struct envelope {
    char id[ENVELOPE_ID_MAX + 1];
    access_account_t account;
    char type[ENVELOPE_TYPE_MAX + 1];      /* as sent; "" when missing, not a string or too long */
    const handler_t *handler;              /* NULL when error != TALLY_ERR_NONE */
    json_t *payload;                       /* owned; NULL when error != TALLY_ERR_NONE */
    char reply_to[ENVELOPE_TOPIC_MAX + 1]; /* "" → the results topic */
    char correlation_id[ENVELOPE_CORR_SIZE];
    bool has_correlation_id;
    tally_errcode_t error; /* a pre-decided answer, or TALLY_ERR_NONE */
    char error_field[32];  /* envelope field named by an invalid_request, or "" */
    char error_message[256];
} envelope_t;

/* Decodes a message. key is NULL when the message has no key. Always fills
 * *env far enough for envelope_clear; on ENVELOPE_DLQ, error is
 * TALLY_ERR_INVALID_REQUEST and error_message holds the reason. */
envelope_kind_t envelope_decode(const void *key, size_t key_len, const void *value,
                                size_t value_len, envelope_t *env);

/* Releases env->payload. */
void envelope_clear(envelope_t *env);

/* Whether s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF). On failure *bad is the offset of the first bad byte. */
bool envelope_utf8_valid(const unsigned char *s, size_t len, size_t *bad);

/* Whether s is a legal Kafka topic name (1-249 chars of [A-Za-z0-9._-], not "." or ".."). */
bool envelope_topic_valid(const char *s, size_t len);

#endif
