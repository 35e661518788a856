/* status — what an access function reports besides success.
 *
 * Business outcomes (NOT_FOUND, CONFLICT, INSUFFICIENT_FUNDS, INVALID) leave
 * the tenant transaction usable after access_tx_rollback. Infrastructure
 * outcomes (RETRY, UNAVAILABLE, FAILED) mean the work must be redone. */
#ifndef TALLY_ACCESS_STATUS_H
#define TALLY_ACCESS_STATUS_H

#include "common/enumstr.h"

/* The statuses with their names for logs (common/enumstr.h); ACCESS_OK first (0). */
// clang-format off
#define ACCESS_STATUS_LIST(X)                                                                      \
    X(ACCESS_OK, "ok")                                                                             \
    /* no such object in this account */                                                           \
    X(ACCESS_NOT_FOUND, "not_found")                                                               \
    /* the object's state forbids it */                                                            \
    X(ACCESS_CONFLICT, "conflict")                                                                 \
    /* a payout above the available balance */                                                     \
    X(ACCESS_INSUFFICIENT_FUNDS, "insufficient_funds")                                             \
    /* input that only the database can judge (field says which) */                                \
    X(ACCESS_INVALID, "invalid")                                                                   \
    /* transient: serialization failure, deadlock, lock timeout */                                 \
    X(ACCESS_RETRY, "retry")                                                                       \
    /* the connection or the database is gone */                                                   \
    X(ACCESS_UNAVAILABLE, "unavailable")                                                           \
    /* anything else: an unexpected database error */                                              \
    X(ACCESS_FAILED, "failed")
// clang-format on

typedef enum access_status { ACCESS_STATUS_LIST(ENUMSTR_CONST) } access_status_t;

typedef struct access_error {
    access_status_t status;
    char sqlstate[6];  /* "" when the error did not come from PostgreSQL */
    char field[128];   /* payload field for INVALID/CONFLICT, "" otherwise */
    char message[256]; /* for the log and, for business outcomes, the result */
} access_error_t;

/* The status's name ("not_found", …); "failed" for a value outside the list. */
const char *access_status_str(access_status_t s);

/* Whether s is one of the infrastructure outcomes (RETRY, UNAVAILABLE, FAILED). */
static inline int access_status_is_infra(access_status_t s)
{
    return s == ACCESS_RETRY || s == ACCESS_UNAVAILABLE || s == ACCESS_FAILED;
}

#endif
