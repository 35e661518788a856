/* envelope — decodes one Kafka request message (CONTRACT.md §2) into a job.
 *
 * Pure: no I/O, never crashes on any bytes. The outcome is either a job to
 * answer (possibly with an error already decided: invalid_request naming the
 * field, unsupported_version, unknown_type) or "unanswerable": the message
 * goes to the DLQ unchanged.
 *
 * When several things are wrong, the first check in this order decides:
 *   unanswerable (DLQ): 1 value over 1 MiB, 2 not UTF-8, 3 not JSON (RFC
 *     8259) or not one object, 4 `id` missing, not 1-128 printable ASCII or
 *     given twice, 5 `account_id` missing, invalid or given twice — without
 *     both a result cannot be keyed or deduped;
 *   answered: 6 a duplicate key, a number out of range (an integer beyond
 *     int64, a number beyond double) or a \u0000 anywhere (invalid_request;
 *     the field names the first such place: a payload field by its path
 *     inside the payload, anything else by its path from the top), 7 `v`
 *     (unsupported_version: other fields may mean something else in another
 *     version), 8 message key ≠ account_id (invalid_request, field
 *     account_id), 9 `type` missing or not a string (invalid_request), 10
 *     `type` unknown (unknown_type), 11 `payload` missing or not an object,
 *     12 `reply_to` not a topic name, one of Tally's own topics or outside
 *     the operator's pattern (envelope_policy_t), 13 `correlation_id` not a
 *     string ≤ 128 chars (all invalid_request with the field); payload fields
 *     are checked later by the job type's validator.
 * Check 6 comes from a second, lenient reading (jscan.h) of a text jansson
 * refused; a field holding such a problem is not echoed, and a refused
 * reply_to is never used, so every answer goes to a topic allowed to get it.
 * JSON null in an optional field (`v`, `reply_to`, `correlation_id`) counts
 * as absent. Unknown top-level fields are ignored. */
#ifndef TALLY_ENVELOPE_ENVELOPE_H
#define TALLY_ENVELOPE_ENVELOPE_H

#include "envelope/jscan.h"

#include "access/account.h"
#include "common/errcode.h"
#include "common/topic.h"
#include "handlers/handler.h"

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#define ENVELOPE_MAX_VALUE (1024 * 1024)
#define ENVELOPE_ID_MAX    128
#define ENVELOPE_TYPE_MAX  128
#define ENVELOPE_CORR_MAX  128 /* characters (code points), as envelope.json's maxLength */
#define ENVELOPE_CORR_SIZE (ENVELOPE_CORR_MAX * 4 + 1) /* bytes, with the NUL */

typedef enum envelope_kind {
    ENVELOPE_ANSWER, /* answer it: *env is filled */
    ENVELOPE_DLQ,    /* unanswerable: env->error_message says why */
} envelope_kind_t;

typedef struct envelope {
    char id[ENVELOPE_ID_MAX + 1];
    access_account_t account;
    char type[ENVELOPE_TYPE_MAX + 1];  /* as sent; "" when missing, not a string or too long */
    const handler_t *handler;          /* NULL when error != TALLY_ERR_NONE */
    json_t *payload;                   /* owned; NULL when error != TALLY_ERR_NONE */
    char reply_to[TOPIC_NAME_MAX + 1]; /* "" → the results topic */
    char correlation_id[ENVELOPE_CORR_SIZE];
    bool has_correlation_id;
    tally_errcode_t error;            /* a pre-decided answer, or TALLY_ERR_NONE */
    char error_field[JSCAN_PATH_MAX]; /* field named by an invalid_request, or "" */
    char error_message[256];
    bool error_in_payload; /* the error lies inside the payload (check 6 found it there):
                            * a payload matter, like the validator's answers */
} envelope_t;

/* Where results may go: never one of Tally's own topics (the configured
 * names of the requests, audit and DLQ topics; NULL entries are skipped),
 * and, when pattern is not NULL (TALLY_REPLY_TO_PATTERN, compiled with
 * REG_EXTENDED), only a name the pattern matches whole. */
typedef struct envelope_policy {
    const char *own_topics[3];
    const regex_t *pattern;
} envelope_policy_t;

/* Whether a result may go to topic (a valid topic name). NULL policy: yes. */
bool envelope_reply_to_allowed(const envelope_policy_t *policy, const char *topic);

/* Decodes a message under policy (NULL: no reply_to policy). key is NULL
 * when the message has no key. Always fills *env far enough for
 * envelope_clear; on ENVELOPE_DLQ, error is TALLY_ERR_INVALID_REQUEST and
 * error_message holds the reason. */
envelope_kind_t envelope_decode(const envelope_policy_t *policy, const void *key, size_t key_len,
                                const void *value, size_t value_len, envelope_t *env);

/* The top-level members the lenient reading reports on. */
enum {
    ENVELOPE_M_ID,
    ENVELOPE_M_ACCOUNT,
    ENVELOPE_M_TYPE,
    ENVELOPE_M_REPLY_TO,
    ENVELOPE_M_CORR,
    ENVELOPE_M_PAYLOAD
};
#define ENVELOPE_M_COUNT 6

typedef struct envelope_text {
    json_t *root; /* owned: the parsed value */
    jscan_t scan; /* scan.problem != JSCAN_NONE: jansson refused the text and
                   * root is the lenient reading (see jscan.h) */
    jscan_member_t members[ENVELOPE_M_COUNT];
} envelope_text_t;

/* Parses a UTF-8 value as envelope_decode does: strictly, else leniently.
 * Returns true with t->root (release it with json_decref), or false with
 * the reason ("not JSON: …") in why. */
bool envelope_parse(const void *value, size_t len, envelope_text_t *t, char *why, size_t whylen);

/* Whether member m (ENVELOPE_M_*) of a parsed text can be trusted: it
 * occurs at most once and holds no problem. */
bool envelope_member_trusted(const envelope_text_t *t, int m);

/* The field an invalid_request names for the problem the lenient reading
 * of t found (a payload field by its path inside the payload), into out. */
void envelope_problem_field(const envelope_text_t *t, char *out, size_t size);

/* Releases env->payload. */
void envelope_clear(envelope_t *env);

#endif
