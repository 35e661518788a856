/* payments — the stripe_payments and stripe_payment_refunds tables.
 *
 * Money invariants live in single conditional statements with CHECK
 * constraints behind them: a refund never takes amount_refunded beyond the
 * amount, however many refunds of one payment run at once. The account's
 * balance (account_balances.available) follows every change of a payment's
 * net amount through a trigger (0002_payments.sql). */
#ifndef TALLY_ACCESS_PAYMENTS_H
#define TALLY_ACCESS_PAYMENTS_H

#include "access/tx.h"
#include "common/enumstr.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define ACCESS_PAYMENT_ID_MAX       48   /* buffer for a Tally id ("pay_…") */
#define ACCESS_PAYMENT_EXTERNAL_MAX 1024 /* 255 characters of UTF-8, NUL-terminated */

/* A payment's statuses as stored and answered (common/enumstr.h). */
#define ACCESS_PAYMENT_STATUS_LIST(X)                                                              \
    X(ACCESS_PAYMENT_PENDING, "pending")                                                           \
    X(ACCESS_PAYMENT_SUCCEEDED, "succeeded")                                                       \
    X(ACCESS_PAYMENT_FAILED, "failed")                                                             \
    X(ACCESS_PAYMENT_REFUNDED, "refunded")

typedef enum access_payment_status {
    ACCESS_PAYMENT_STATUS_LIST(ENUMSTR_CONST)
} access_payment_status_t;

/* The status's name; "?" for a value outside the list. */
const char *access_payment_status_str(access_payment_status_t s);

/* Parses one of those strings; false otherwise. */
bool access_payment_status_parse(const char *s, access_payment_status_t *out);

typedef struct access_payment {
    char id[ACCESS_PAYMENT_ID_MAX];
    char external_id[ACCESS_PAYMENT_EXTERNAL_MAX];
    int64_t amount;
    char currency[4];
    access_payment_status_t status;
    int64_t amount_refunded;
    bool allocated;    /* share.allocate split it; refunds append reversals */
    char *description; /* malloc'd, NULL when none */
    json_t *metadata;  /* an object, owned (never NULL after a successful call) */
    int64_t created_at_ms;
    int64_t updated_at_ms;
} access_payment_t;

/* Frees description and metadata and zeroes *p. Safe on a zeroed struct. */
void access_payment_clear(access_payment_t *p);

typedef struct access_refund {
    char id[ACCESS_PAYMENT_ID_MAX];
    char payment_id[ACCESS_PAYMENT_ID_MAX];
    int64_t amount;
    int64_t created_at_ms;
} access_refund_t;

typedef struct access_payment_new {
    const char *external_id;
    int64_t amount;
    const char *currency;
    access_payment_status_t status; /* pending, succeeded or failed */
    const char *description;        /* may be NULL */
    const json_t *metadata;         /* an object, or NULL for {} */
} access_payment_new_t;

/* payment.record. A second payment with the same external_id in the account
 * → ACCESS_CONFLICT (field "external_id"). On ACCESS_OK *out holds the row
 * (clear it). */
access_status_t access_payments_record(access_tx_t *tx, const access_payment_new_t *in,
                                       access_payment_t *out, access_error_t *err);

/* payment.update_status: pending → succeeded | failed. Asking for the current
 * status is a no-op that returns the row; anything else → ACCESS_CONFLICT
 * (field "status"); no such payment in the account → ACCESS_NOT_FOUND. */
access_status_t access_payments_update_status(access_tx_t *tx, const char *payment_id,
                                              access_payment_status_t status, access_payment_t *out,
                                              access_error_t *err);

/* payment.refund: refunds amount (or, when amount is 0, the whole unrefunded
 * rest) of a succeeded payment in one conditional statement, records the
 * refund, and marks the payment refunded once nothing is left. Not succeeded
 * or beyond the rest → ACCESS_CONFLICT (field "amount" for the latter); no
 * such payment → ACCESS_NOT_FOUND. Concurrent refunds of one payment queue on
 * its row lock. On ACCESS_OK *out is the updated payment and *refund the new
 * refund; out->allocated says whether reversals are due. */
access_status_t access_payments_refund(access_tx_t *tx, const char *payment_id, int64_t amount,
                                       access_payment_t *out, access_refund_t *refund,
                                       access_error_t *err);

/* payment.get; ACCESS_NOT_FOUND when the account has no such payment. */
access_status_t access_payments_get(access_tx_t *tx, const char *payment_id, access_payment_t *out,
                                    access_error_t *err);

/* payment.list: newest first, optionally of one status (NULL for any). rows
 * has room for page->limit entries; *n is how many were filled (clear each)
 * and *has_more whether older ones exist. An unknown starting_after →
 * ACCESS_NOT_FOUND (field "starting_after"). */
access_status_t access_payments_list(access_tx_t *tx, const access_payment_status_t *status,
                                     const access_page_t *page, access_payment_t *rows, int *n,
                                     bool *has_more, access_error_t *err);

#endif
