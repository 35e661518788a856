/* errcode — the contract's stable error codes (CONTRACT.md §3), shared by every layer.
 *
 * The numeric values are internal; only the strings go on the wire. */
#ifndef TALLY_COMMON_ERRCODE_H
#define TALLY_COMMON_ERRCODE_H

#include <stdbool.h>

typedef enum tally_errcode {
    TALLY_ERR_NONE = 0,
    TALLY_ERR_INVALID_REQUEST,
    TALLY_ERR_UNSUPPORTED_VERSION,
    TALLY_ERR_UNKNOWN_TYPE,
    TALLY_ERR_IDEMPOTENCY_CONFLICT,
    TALLY_ERR_NOT_FOUND,
    TALLY_ERR_CONFLICT,
    TALLY_ERR_INSUFFICIENT_FUNDS,
    TALLY_ERR_INTERNAL,
} tally_errcode_t;

/* The wire string ("invalid_request", …); "none" for TALLY_ERR_NONE. Never NULL. */
const char *tally_errcode_str(tally_errcode_t code);

/* Parses a wire string; returns false when it is not a contract code. */
bool tally_errcode_parse(const char *s, tally_errcode_t *out);

/* Whether an answer with this code is stored for replay (CONTRACT.md §3 table). */
bool tally_errcode_is_stored(tally_errcode_t code);

#endif
