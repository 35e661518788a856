/* schema — declarative payload schemas and the one validator that reads them.
 *
 * The same tables feed schema_json.h (JSON Schema for producers,
 * docs/schemas/), schema_doc.h (the payload tables of docs/JOB_TYPES.md) and
 * schema_lint.h (checks of the tables themselves).
 *
 * A job type's payload is a schema_object_t: a table of schema_field_t ended
 * by an entry with a NULL name, plus an optional check hook for a rule that
 * spans fields. Example:
 *
 *   static const schema_field_t refund_fields[] = {
 *       {.name = "payment_id", .type = SCHEMA_ID, .required = true},
 *       {.name = "amount", .type = SCHEMA_INTEGER, SCHEMA_AMOUNT_BOUNDS,
 *        .doc = "Minor units to refund; default: the unrefunded rest."},
 *       {0},
 *   };
 *   static const schema_object_t refund_schema = {.fields = refund_fields};
 *
 * schema_validate rejects unknown fields, wrong types and values out of
 * bounds, and names the culprit by its path inside the payload ("amount",
 * "shares[1].basis_points", "metadata.some_key"). Everything here is pure and
 * thread-safe; the tables are const. */
#ifndef TALLY_HANDLERS_SCHEMA_H
#define TALLY_HANDLERS_SCHEMA_H

#include "handlers/handler.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The field types: constant, the noun the validator's messages use ("must be
 * an integer"), the JSON Schema type, the word docs/JOB_TYPES.md uses
 * (common/enumstr.h). */
// clang-format off
#define SCHEMA_TYPE_LIST(X)                                                                        \
    /* UTF-8 text without NUL; lengths count characters (code points) */                           \
    X(SCHEMA_STRING,    "a string",             "string",  "string")                               \
    /* a JSON integer (1999, not 1999.0 nor "1999") in [min, max] */                               \
    X(SCHEMA_INTEGER,   "an integer",           "integer", "integer")                              \
    /* true or false */                                                                            \
    X(SCHEMA_BOOLEAN,   "a boolean",            "boolean", "boolean")                              \
    /* one of the strings in .values */                                                            \
    X(SCHEMA_ENUM,      "a string",             "string",  "enum")                                 \
    /* RFC 3339 date-time with 'Z' or an offset ("2026-11-22T10:00:00Z") */                        \
    X(SCHEMA_TIMESTAMP, "a string",             "string",  "timestamp")                            \
    /* an active ISO 4217 code in lower case (handlers/currency.h) */                              \
    X(SCHEMA_CURRENCY,  "a string",             "string",  "currency")                             \
    /* an object id: 1–SCHEMA_ID_MAX printable ASCII characters, no space */                       \
    X(SCHEMA_ID,        "a string",             "string",  "id")                                   \
    /* object of string → string (metadata) */                                                     \
    X(SCHEMA_MAP,       "an object of strings", "object",  "object of strings")                    \
    /* array of objects, each described by .items */                                               \
    X(SCHEMA_ARRAY,     "an array",             "array",   "array of objects")
// clang-format on

#define SCHEMA_TYPE_CONST_(constant, noun, json_type, doc) constant,
typedef enum schema_type { SCHEMA_TYPE_LIST(SCHEMA_TYPE_CONST_) } schema_type_t;
#undef SCHEMA_TYPE_CONST_

/* Bounds the contract leaves open, chosen like Stripe's. */
#define SCHEMA_ID_MAX           64    /* characters of an id argument */
#define SCHEMA_ID_CHARSET       "!-~" /* an id's characters: printable ASCII without space */
#define SCHEMA_METADATA_KEYS    50    /* keys of a metadata map */
#define SCHEMA_METADATA_KEY_MAX 40    /* characters of a metadata key (at least 1) */
#define SCHEMA_METADATA_VAL_MAX 500   /* characters of a metadata value (may be empty) */

/* The contract's amount bounds: 1 ≤ amount ≤ 10^15 minor units. */
#define SCHEMA_AMOUNT_MAX    INT64_C(1000000000000000)
#define SCHEMA_AMOUNT_BOUNDS .min = 1, .max = SCHEMA_AMOUNT_MAX

/* A metadata field: string → string, ≤ 50 keys of 1–40 chars, values ≤ 500 chars. */
#define SCHEMA_METADATA_FIELD(fname)                                                               \
    {                                                                                              \
        .name = (fname), .type = SCHEMA_MAP, .max_items = SCHEMA_METADATA_KEYS,                    \
        .key_max_len = SCHEMA_METADATA_KEY_MAX, .max_len = SCHEMA_METADATA_VAL_MAX,                \
        .doc = "Your key-value pairs, stored and returned as given."                               \
    }

typedef struct schema_object schema_object_t;

typedef struct schema_field {
    const char *name; /* NULL ends a table */
    schema_type_t type;
    bool required;
    bool nullable;            /* JSON null is accepted (and means "clear" or "none") */
    const char *doc;          /* one sentence for the JSON Schema "description"; may be NULL */
    const char *default_json; /* JSON text of the value used when absent; may be NULL.
                                 handler_execute fills top-level defaults in. */

    /* SCHEMA_STRING: length bounds in characters (max_len > 0 is required) and
     * an optional character class, written as the inside of a regex bracket
     * expression of ASCII ranges and characters ("A-Z0-9-"; a '-' is literal
     * when first or last). SCHEMA_MAP: max_len bounds each value. */
    size_t min_len, max_len;
    const char *charset;

    /* SCHEMA_INTEGER: inclusive bounds (both must be given). */
    int64_t min, max;

    /* SCHEMA_ENUM: the allowed strings, ended by NULL. */
    const char *const *values;

    /* SCHEMA_ARRAY: item count bounds, the items' own schema, and optionally
     * the name of an item field whose values must differ across items.
     * SCHEMA_MAP: max_items bounds the number of keys, key_max_len their length. */
    size_t min_items, max_items;
    const schema_object_t *items;
    const char *unique;
    size_t key_max_len;
} schema_field_t;

/* A rule that spans fields (e.g. shares summing to 10000). Called only after
 * every field of obj passed its own checks. path is obj's path ("" at the top,
 * "shares[1]" for an item); on failure fill err (schema_fail helps) and
 * return false. */
typedef bool (*schema_check_fn)(const json_t *obj, const char *path, handler_error_t *err);

struct schema_object {
    const schema_field_t *fields; /* ended by {0} */
    schema_check_fn check;        /* may be NULL */
    const char *check_doc;        /* the hook's rule in words, for the JSON Schema description
                                     (JSON Schema cannot express it); required with check */
};

/* Paths are built in buffers of this size; err->field keeps at most 127 bytes. */
#define SCHEMA_PATH_MAX 256

/* Validates obj (which must be a JSON object) against s. Returns true when
 * valid; otherwise fills err: code TALLY_ERR_INVALID_REQUEST, field = path of
 * the culprit ("payload" when obj is not an object), message in words. */
bool schema_validate(const schema_object_t *s, const json_t *obj, handler_error_t *err);

/* Validates one value v against field f alone (as found at the top of a
 * payload; the table's lint checks defaults with it). */
bool schema_validate_value(const schema_field_t *f, const json_t *v, handler_error_t *err);

/* The field called name in s's table, or NULL. */
const schema_field_t *schema_field_find(const schema_object_t *s, const char *name);

/* Fills err as an invalid_request on the field at path (prefix, then name;
 * either may be ""), with a printf-style message. Returns false, so a check
 * hook can `return schema_fail(...)`. Path and message are truncated to fit,
 * never inside a UTF-8 character. */
bool schema_fail(handler_error_t *err, const char *prefix, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A new object: a shallow copy of payload with the top-level defaults of s
 * set where a field is absent. NULL on allocation failure. */
json_t *schema_apply_defaults(const schema_object_t *s, const json_t *payload);

#endif
