/* jscan — a second, lenient look at a JSON text that jansson refused.
 *
 * jansson (with JSON_REJECT_DUPLICATES, without JSON_ALLOW_NUL) refuses three
 * things RFC 8259 allows: a duplicate object key, a number outside int64
 * (an integer) or outside double (a number with a fraction or an exponent),
 * and \u0000 in a string. A request holding one of them is still readable,
 * and CONTRACT.md §2 wants it answered, so jscan:
 *
 *   - checks the text against RFC 8259 and jansson's remaining limits
 *     (nesting deeper than JSCAN_MAX_DEPTH, an unpaired surrogate escape);
 *     anything else is invalid, as jansson would have said;
 *   - reports the first of those three problems in text order, with its path
 *     ("payload.shares[1].basis_points"; a duplicate key's path is the key);
 *   - writes a copy of the text that jansson takes without
 *     JSON_REJECT_DUPLICATES (each such number becomes `null` padded with
 *     spaces, each \u0000 becomes \uFFFD: same length, same offsets);
 *   - counts, for top-level member names the caller lists, how often each
 *     occurs and whether a problem lies inside it (then its value is not to
 *     be trusted).
 *
 * The text must be valid UTF-8 (check it first). Pure; any bytes are safe. */
#ifndef TALLY_ENVELOPE_JSCAN_H
#define TALLY_ENVELOPE_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

#define JSCAN_MAX_DEPTH 2048 /* jansson's JSON_PARSER_MAX_DEPTH */
#define JSCAN_PATH_MAX  128  /* bytes of a reported path, with the NUL */

/* The problems, each with a noun for messages about the text and a
 * predicate for messages about one field ("amount is a number out of range"). */
// clang-format off
#define JSCAN_PROBLEM_LIST(X)                                                                      \
    X(JSCAN_NONE,          "nothing",               "holds no problem")                            \
    X(JSCAN_DUPLICATE_KEY, "a duplicate key",       "appears twice in its object")                 \
    X(JSCAN_NUMBER_RANGE,  "a number out of range", "is a number out of range")                    \
    X(JSCAN_NUL,           "\\u0000 (NUL)",         "contains \\u0000 (NUL)")
// clang-format on

#define JSCAN_PROBLEM_CONST_(constant, noun, predicate) constant,
typedef enum jscan_problem { JSCAN_PROBLEM_LIST(JSCAN_PROBLEM_CONST_) } jscan_problem_t;
#undef JSCAN_PROBLEM_CONST_

typedef struct jscan_member {
    const char *name; /* in: a top-level member name */
    int count;        /* out: how often it occurs */
    bool tainted;     /* out: a problem lies in it (or it occurs more than once) */
} jscan_member_t;

typedef struct jscan {
    bool valid;                /* RFC 8259 within jansson's limits */
    size_t error_offset;       /* when !valid: where the text went wrong */
    jscan_problem_t problem;   /* the first one, or JSCAN_NONE */
    int member;                /* index in members of the top-level member it lies in, or -1
                                * (keys may hold '.', so the path alone cannot say) */
    char path[JSCAN_PATH_MAX]; /* of the first problem; valid UTF-8, possibly cut */
} jscan_t;

/* Scans text[0..len). out, when not NULL, has room for len bytes and gets
 * the copy jansson takes (meaningful only when valid). members (n of them)
 * may be NULL. */
void jscan_run(const char *text, size_t len, char *out, jscan_member_t *members, size_t n,
               jscan_t *result);

/* "a duplicate key", "a number out of range", "\\u0000 (NUL)": for messages
 * ("nothing" for JSCAN_NONE or a value outside the list). */
const char *jscan_problem_str(jscan_problem_t p);

/* What a field holding the problem does: "appears twice in its object", "is
 * a number out of range", "contains \\u0000 (NUL)". */
const char *jscan_problem_predicate(jscan_problem_t p);

#endif
