/* settings — see access/settings.h; table account_payment_settings
 * (0003_payouts.sql). */
#include "access/settings.h"

#include "access_internal.h"

#include <string.h>

#define SETTINGS_COLS "default_currency, payout_schedule, min_payout_amount, statement_descriptor"

/* One row always: the stored settings or, without a row, the defaults ($2–$4). */
static const access_stmt_t GET = {
    .name = "settings_get",
    .sql = "SELECT coalesce(s.default_currency, $2), coalesce(s.payout_schedule, $3),"
           " coalesce(s.min_payout_amount, $4::bigint), s.statement_descriptor"
           " FROM (VALUES (1)) one"
           " LEFT JOIN account_payment_settings s ON s.account_id = $1",
    .nargs = 3,
};

/* The table's CHECKs back the validator: a refused value names its field. */
static const access_errmap_t UPDATE_ERRORS[] = {
    {"23514", "account_payment_settings_default_currency_check", ACCESS_INVALID, "default_currency",
     "default_currency must be a three-letter ISO 4217 code"},
    {"23514", "account_payment_settings_payout_schedule_check", ACCESS_INVALID, "payout_schedule",
     "payout_schedule must be manual, daily, weekly or monthly"},
    {"23514", "account_payment_settings_min_payout_amount_check", ACCESS_INVALID,
     "min_payout_amount", "min_payout_amount must be between 1 and 10^15"},
    {"23514", "account_payment_settings_descriptor", ACCESS_INVALID, "statement_descriptor",
     "statement_descriptor must be 5 to 22 printable ASCII characters with at least one letter "
     "and none of < > \\ ' \" *"},
    {0},
};

/* Insert-or-update in one statement: $2–$4 are NULL for "unchanged", $5 says
 * whether statement_descriptor ($6, NULL clears it) changes, $7–$9 are the
 * defaults a first row starts from. */
static const access_stmt_t UPDATE = {
    .name = "settings_update",
    .sql = "INSERT INTO account_payment_settings AS s"
           " (account_id, default_currency, payout_schedule, min_payout_amount,"
           "  statement_descriptor)"
           " VALUES ($1, coalesce($2::text, $7::text), coalesce($3::text, $8::text),"
           "  coalesce($4::bigint, $9::bigint), CASE WHEN $5::boolean THEN $6::text END)"
           " ON CONFLICT (account_id) DO UPDATE SET"
           "  default_currency = coalesce($2::text, s.default_currency),"
           "  payout_schedule = coalesce($3::text, s.payout_schedule),"
           "  min_payout_amount = coalesce($4::bigint, s.min_payout_amount),"
           "  statement_descriptor = CASE WHEN $5::boolean THEN $6::text"
           "                         ELSE s.statement_descriptor END,"
           "  updated_at = clock_timestamp()"
           " RETURNING " SETTINGS_COLS,
    .nargs = 8,
    .errors = UPDATE_ERRORS,
};

/* Runs st, whose one row holds the SETTINGS_COLS, into *out. */
static access_status_t one_row(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                               access_settings_t *out, access_error_t *err)
{
    PGresult *r = access_exec(tx, st, args, err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return access_fail(err, ACCESS_FAILED, NULL, "settings: no row from %s", st->name);
    }
    access_get_text(r, 0, 0, out->default_currency, sizeof(out->default_currency));
    access_get_text(r, 0, 1, out->payout_schedule, sizeof(out->payout_schedule));
    out->min_payout_amount = access_get_i64(r, 0, 2);
    access_get_text(r, 0, 3, out->statement_descriptor, sizeof(out->statement_descriptor));
    PQclear(r);
    return ACCESS_OK;
}

access_status_t access_settings_get(access_tx_t *tx, access_settings_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    char min[ACCESS_I64_LEN];
    return one_row(tx, &GET,
                   ACCESS_ARGS(ACCESS_SETTINGS_DEFAULT_CURRENCY, ACCESS_SETTINGS_DEFAULT_SCHEDULE,
                               access_fmt_i64(min, ACCESS_SETTINGS_DEFAULT_MIN_PAYOUT)),
                   out, err);
}

access_status_t access_settings_update(access_tx_t *tx, const access_settings_update_t *in,
                                       access_settings_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    /* Nothing to change: answer the settings as they are, writing nothing. */
    if (in->default_currency == NULL && in->payout_schedule == NULL && in->min_payout_amount == 0 &&
        !in->set_statement_descriptor)
        return access_settings_get(tx, out, err);

    char min[ACCESS_I64_LEN], dflt_min[ACCESS_I64_LEN];
    return one_row(
        tx, &UPDATE,
        ACCESS_ARGS(in->default_currency, in->payout_schedule,
                    in->min_payout_amount != 0 ? access_fmt_i64(min, in->min_payout_amount) : NULL,
                    in->set_statement_descriptor ? "true" : "false",
                    in->set_statement_descriptor ? in->statement_descriptor : NULL,
                    ACCESS_SETTINGS_DEFAULT_CURRENCY, ACCESS_SETTINGS_DEFAULT_SCHEDULE,
                    access_fmt_i64(dflt_min, ACCESS_SETTINGS_DEFAULT_MIN_PAYOUT)),
        out, err);
}
