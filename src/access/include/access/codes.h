/* codes — purchase codes (table ppu) and their redemptions (ppu_redemptions).
 *
 * A code is redeemable while it is not revoked, not expired and has
 * redemptions left. access_codes_redeem checks all three and counts the
 * redemption in one conditional UPDATE, with a CHECK constraint behind it, so
 * however many sessions redeem one code at once, it is never redeemed more
 * than max_redemptions times. */
#ifndef TALLY_ACCESS_CODES_H
#define TALLY_ACCESS_CODES_H

#include "access/tx.h"
#include "common/enumstr.h"

#include <stdbool.h>
#include <stdint.h>

#define ACCESS_CODE_ID_MAX       48  /* buffer for a Tally id ("pc_…", "red_…") */
#define ACCESS_CODE_MAX          65  /* 4–64 of [A-Z0-9-], NUL-terminated */
#define ACCESS_CODE_REDEEMER_MAX 513 /* 128 characters of UTF-8, NUL-terminated */
#define ACCESS_CODE_RECENT       10  /* redemptions access_codes_get returns at most */

/* What a code allows now, judged by the database's clock. A code that is
 * several things at once reports the first of revoked, expired, exhausted. */
// clang-format off
#define ACCESS_CODE_STATE_LIST(X)                                                                  \
    X(ACCESS_CODE_ACTIVE, "active")                                                                \
    X(ACCESS_CODE_REVOKED, "revoked")                                                              \
    X(ACCESS_CODE_EXPIRED, "expired")                                                              \
    X(ACCESS_CODE_EXHAUSTED, "exhausted") /* redeemed_count reached max_redemptions */
// clang-format on

typedef enum access_code_state { ACCESS_CODE_STATE_LIST(ENUMSTR_CONST) } access_code_state_t;

/* The state's name, as the database computes it; "?" outside the list. */
const char *access_code_state_str(access_code_state_t s);

typedef struct access_code {
    char id[ACCESS_CODE_ID_MAX];
    char code[ACCESS_CODE_MAX];
    int64_t amount;   /* 0 when the code carries no amount */
    char currency[4]; /* "" when the code carries no amount */
    int32_t max_redemptions;
    int32_t redeemed_count;
    access_code_state_t state;
    bool expires; /* expires_at_ms is set */
    int64_t expires_at_ms;
    bool revoked; /* revoked_at_ms is set */
    int64_t revoked_at_ms;
    int64_t created_at_ms;
} access_code_t;

typedef struct access_redemption {
    char id[ACCESS_CODE_ID_MAX];
    char code_id[ACCESS_CODE_ID_MAX];
    char redeemer[ACCESS_CODE_REDEEMER_MAX]; /* "" when none was given */
    int64_t redeemed_at_ms;
} access_redemption_t;

typedef struct access_code_new {
    const char *code;        /* 4–64 of [A-Z0-9-] */
    int64_t amount;          /* 0 for none; then currency is NULL */
    const char *currency;    /* NULL for none */
    int32_t max_redemptions; /* ≥ 1 */
    bool expires;
    int64_t expires_at_ms; /* when expires; must lie in the future */
} access_code_new_t;

/* code.create. An expires_at not in the future (the database's clock) →
 * ACCESS_INVALID (field "expires_at"); a code that already exists in the
 * account → ACCESS_CONFLICT (field "code"). Either way the transaction stays
 * usable (nothing failed in the database), so a caller that generated the
 * code may try another one. */
access_status_t access_codes_create(access_tx_t *tx, const access_code_new_t *in,
                                    access_code_t *out, access_error_t *err);

/* code.redeem: counts one redemption of code and records it with redeemer
 * (NULL for none). No such code in the account → ACCESS_NOT_FOUND (field
 * "code"); revoked, expired or exhausted → ACCESS_CONFLICT (field "code", the
 * message says which). Concurrent redemptions of one code queue on its row
 * lock. On ACCESS_OK *out is the code after the redemption. */
access_status_t access_codes_redeem(access_tx_t *tx, const char *code, const char *redeemer,
                                    access_code_t *out, access_redemption_t *redemption,
                                    access_error_t *err);

/* code.get: the code and its newest redemptions (up to ACCESS_CODE_RECENT,
 * newest first) into recent, *n_recent of them. ACCESS_NOT_FOUND (field
 * "code") when the account has no such code. */
access_status_t access_codes_get(access_tx_t *tx, const char *code, access_code_t *out,
                                 access_redemption_t recent[ACCESS_CODE_RECENT], int *n_recent,
                                 access_error_t *err);

/* code.list: newest first. rows has room for page->limit entries; *n is how
 * many were filled and *has_more whether older ones exist. An unknown
 * starting_after → ACCESS_NOT_FOUND (field "starting_after"). */
access_status_t access_codes_list(access_tx_t *tx, const access_page_t *page, access_code_t *rows,
                                  int *n, bool *has_more, access_error_t *err);

/* code.revoke: marks the code revoked; a revoked code stays as it is (the
 * first revoked_at is kept). ACCESS_NOT_FOUND (field "code") when the account
 * has no such code. */
access_status_t access_codes_revoke(access_tx_t *tx, const char *code, access_code_t *out,
                                    access_error_t *err);

#endif
