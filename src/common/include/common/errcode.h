/* errcode — the contract's stable error codes (CONTRACT.md §3), shared by every layer.
 *
 * The numeric values are internal; only the strings go on the wire. */
#ifndef TALLY_COMMON_ERRCODE_H
#define TALLY_COMMON_ERRCODE_H

#include <stdbool.h>

/* One list: constant, wire string, whether an answer with it is stored for
 * replay (CONTRACT.md §3's table). A new code is one line here. */
// clang-format off
#define TALLY_ERRCODE_LIST(X)                                        \
    X(TALLY_ERR_NONE,                 "none",                 true)  \
    X(TALLY_ERR_INVALID_REQUEST,      "invalid_request",      false) \
    X(TALLY_ERR_UNSUPPORTED_VERSION,  "unsupported_version",  false) \
    X(TALLY_ERR_UNKNOWN_TYPE,         "unknown_type",         false) \
    X(TALLY_ERR_IDEMPOTENCY_CONFLICT, "idempotency_conflict", false) \
    X(TALLY_ERR_NOT_FOUND,            "not_found",            true)  \
    X(TALLY_ERR_CONFLICT,             "conflict",             true)  \
    X(TALLY_ERR_INSUFFICIENT_FUNDS,   "insufficient_funds",   true)  \
    X(TALLY_ERR_INTERNAL,             "internal",             false) \
    X(TALLY_ERR_ACCOUNT_HELD,         "account_held",         false)
// clang-format on

#define TALLY_ERRCODE_CONST_(constant, string, stored) constant,
typedef enum tally_errcode { TALLY_ERRCODE_LIST(TALLY_ERRCODE_CONST_) } tally_errcode_t;
#undef TALLY_ERRCODE_CONST_

/* How many codes there are, TALLY_ERR_NONE included. */
#define TALLY_ERRCODE_ONE_(constant, string, stored) +1
enum { TALLY_ERRCODE_COUNT = 0 TALLY_ERRCODE_LIST(TALLY_ERRCODE_ONE_) };
#undef TALLY_ERRCODE_ONE_

/* The wire string ("invalid_request", …); "none" for TALLY_ERR_NONE. Never NULL. */
const char *tally_errcode_str(tally_errcode_t code);

/* Parses a wire string; returns false when it is not a contract code. */
bool tally_errcode_parse(const char *s, tally_errcode_t *out);

/* Whether an answer with this code is stored for replay (CONTRACT.md §3 table). */
bool tally_errcode_is_stored(tally_errcode_t code);

#endif
