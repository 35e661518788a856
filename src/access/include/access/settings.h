/* settings — the account_payment_settings table: an account's payout
 * preferences (settings.get, settings.update) and the min_payout_amount that
 * payout.create enforces.
 *
 * An account that never updated its settings has no row and the defaults
 * below; they are defined here only (SQL receives them as arguments). */
#ifndef TALLY_ACCESS_SETTINGS_H
#define TALLY_ACCESS_SETTINGS_H

#include "access/tx.h"

#include <stdbool.h>
#include <stdint.h>

#define ACCESS_SETTINGS_DEFAULT_CURRENCY   "usd"
#define ACCESS_SETTINGS_DEFAULT_SCHEDULE   "manual"
#define ACCESS_SETTINGS_DEFAULT_MIN_PAYOUT 100

/* statement_descriptor bounds, like Stripe's (the table's CHECK agrees). */
#define ACCESS_SETTINGS_DESCRIPTOR_MIN 5
#define ACCESS_SETTINGS_DESCRIPTOR_MAX 22

typedef struct access_settings {
    char default_currency[4];
    char payout_schedule[8]; /* "manual", "daily", "weekly" or "monthly" */
    int64_t min_payout_amount;
    char statement_descriptor[ACCESS_SETTINGS_DESCRIPTOR_MAX + 1]; /* "" when none */
} access_settings_t;

/* settings.get: the stored settings, or the defaults when there are none. */
access_status_t access_settings_get(access_tx_t *tx, access_settings_t *out, access_error_t *err);

/* What settings.update changes; everything else keeps its value. */
typedef struct access_settings_update {
    const char *default_currency; /* NULL: unchanged */
    const char *payout_schedule;  /* NULL: unchanged */
    int64_t min_payout_amount;    /* 0: unchanged */
    bool set_statement_descriptor;
    const char *statement_descriptor; /* with set_statement_descriptor; NULL clears it */
} access_settings_update_t;

/* settings.update in one statement (creating the row from the defaults on
 * first use). A value the table refuses → ACCESS_INVALID naming the field.
 * *out is the settings after the update. */
access_status_t access_settings_update(access_tx_t *tx, const access_settings_update_t *in,
                                       access_settings_t *out, access_error_t *err);

#endif
