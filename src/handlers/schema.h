/* schema — declarative payload schemas, the one validator that reads them, and
 * their translation into JSON Schema (draft 2020-12) for producers.
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

typedef enum schema_type {
    SCHEMA_STRING,    /* UTF-8 text without NUL; lengths count characters (code points) */
    SCHEMA_INTEGER,   /* a JSON integer (1999, not 1999.0 nor "1999") in [min, max] */
    SCHEMA_BOOLEAN,   /* true or false */
    SCHEMA_ENUM,      /* one of the strings in .values */
    SCHEMA_TIMESTAMP, /* RFC 3339 date-time with 'Z' or an offset ("2026-11-22T10:00:00Z") */
    SCHEMA_CURRENCY,  /* an active ISO 4217 code in lower case (handlers/currency.h) */
    SCHEMA_ID,        /* an object id: 1–SCHEMA_ID_MAX printable ASCII characters, no space */
    SCHEMA_MAP,       /* object of string → string (metadata) */
    SCHEMA_ARRAY,     /* array of objects, each described by .items */
} schema_type_t;

/* Bounds the contract leaves open, chosen like Stripe's. */
#define SCHEMA_ID_MAX           64  /* characters of an id argument */
#define SCHEMA_METADATA_KEYS    50  /* keys of a metadata map */
#define SCHEMA_METADATA_KEY_MAX 40  /* characters of a metadata key (at least 1) */
#define SCHEMA_METADATA_VAL_MAX 500 /* characters of a metadata value (may be empty) */

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

/* Validates obj (which must be a JSON object) against s. Returns true when
 * valid; otherwise fills err: code TALLY_ERR_INVALID_REQUEST, field = path of
 * the culprit ("payload" when obj is not an object), message in words. */
bool schema_validate(const schema_object_t *s, const json_t *obj, handler_error_t *err);

/* Fills err as an invalid_request on the field at path (prefix, then name;
 * either may be ""), with a printf-style message. Returns false, so a check
 * hook can `return schema_fail(...)`. Path and message are truncated to fit,
 * never inside a UTF-8 character. */
bool schema_fail(handler_error_t *err, const char *prefix, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A new object: a shallow copy of payload with the top-level defaults of s
 * set where a field is absent. NULL on allocation failure. */
json_t *schema_apply_defaults(const schema_object_t *s, const json_t *payload);

/* The JSON Schema (draft 2020-12) of s as a new object, or NULL on allocation
 * failure. title and description go to the top level; check_doc and unique
 * rules are appended to the descriptions they concern. */
json_t *schema_to_json_schema(const schema_object_t *s, const char *title, const char *description);

/* Checks the declaration itself (bounds given and sane, enums non-empty,
 * defaults valid, names unique, charset well-formed, check_doc present with
 * check). Returns true when sound; otherwise writes the problem to why.
 * Run by the unit tests over every handler's schema. */
bool schema_lint(const schema_object_t *s, char *why, size_t size);

#endif
