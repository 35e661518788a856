/* status — what an access function reports besides success.
 *
 * Business outcomes (NOT_FOUND, CONFLICT, INSUFFICIENT_FUNDS, INVALID) leave
 * the tenant transaction usable after access_tx_rollback. Infrastructure
 * outcomes (RETRY, UNAVAILABLE, FAILED) mean the work must be redone. */
#ifndef TALLY_ACCESS_STATUS_H
#define TALLY_ACCESS_STATUS_H

typedef enum access_status {
    ACCESS_OK = 0,
    ACCESS_NOT_FOUND,          /* no such object in this account */
    ACCESS_CONFLICT,           /* the object's state forbids it */
    ACCESS_INSUFFICIENT_FUNDS, /* a payout above the available balance */
    ACCESS_INVALID,            /* input that only the database can judge (field says which) */
    ACCESS_RETRY,              /* transient: serialization failure, deadlock, lock timeout */
    ACCESS_UNAVAILABLE,        /* the connection or the database is gone */
    ACCESS_FAILED,             /* anything else: an unexpected database error */
} access_status_t;

typedef struct access_error {
    access_status_t status;
    char sqlstate[6];  /* "" when the error did not come from PostgreSQL */
    char field[128];   /* payload field for INVALID/CONFLICT, "" otherwise */
    char message[256]; /* for the log and, for business outcomes, the result */
} access_error_t;

const char *access_status_str(access_status_t s);

/* Whether s is one of the infrastructure outcomes (RETRY, UNAVAILABLE, FAILED). */
static inline int access_status_is_infra(access_status_t s)
{
    return s == ACCESS_RETRY || s == ACCESS_UNAVAILABLE || s == ACCESS_FAILED;
}

#endif
