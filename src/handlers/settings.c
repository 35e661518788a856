/* settings — the settings.* job types (CONTRACT.md §6, account_payment_settings). */
#include "handler_internal.h"

#include "access/settings.h"

#include <string.h>

/* ---- Payload schemas ---------------------------------------------------- */

static const char *const schedules[] = {"manual", "daily", "weekly", "monthly", NULL};

static const schema_field_t get_fields[] = {
    {0},
};
static const schema_object_t get_schema = {.fields = get_fields};

/* statement_descriptor's characters, as Stripe's: printable ASCII, at least
 * one letter, none of < > \ ' " *. JSON Schema gets this rule in words: the
 * schema's character classes cannot hold a space. */
static bool descriptor_check(const json_t *obj, const char *path, handler_error_t *err)
{
    const char *s = json_string_value(json_object_get(obj, "statement_descriptor"));
    if (s == NULL)
        return true; /* absent, or null to clear it */
    bool letter = false;
    for (const char *c = s; *c != '\0'; c++) {
        if (*c < ' ' || *c > '~' || strchr("<>\\'\"*", *c) != NULL)
            return schema_fail(err, path, "statement_descriptor",
                               "must contain only printable ASCII characters other than "
                               "< > \\ ' \" *");
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z'))
            letter = true;
    }
    if (!letter)
        return schema_fail(err, path, "statement_descriptor", "must contain at least one letter");
    return true;
}

static const schema_field_t update_fields[] = {
    {.name = "default_currency", .type = SCHEMA_CURRENCY},
    {.name = "payout_schedule",
     .type = SCHEMA_ENUM,
     .values = schedules,
     .doc = "How often payouts are made; manual: only on payout.create."},
    {.name = "min_payout_amount",
     .type = SCHEMA_INTEGER,
     SCHEMA_AMOUNT_BOUNDS,
     .doc = "The smallest payout.create amount, in minor units."},
    {.name = "statement_descriptor",
     .type = SCHEMA_STRING,
     .nullable = true,
     .min_len = ACCESS_SETTINGS_DESCRIPTOR_MIN,
     .max_len = ACCESS_SETTINGS_DESCRIPTOR_MAX,
     .doc = "The text on the customer's bank statement; null clears it."},
    {0},
};
static const schema_object_t update_schema = {
    .fields = update_fields,
    .check = descriptor_check,
    .check_doc = "statement_descriptor holds only printable ASCII characters (space to ~), none "
                 "of < > \\ ' \" *, and at least one letter.",
};

/* ---- Results ------------------------------------------------------------- */

static handler_status_t answer_settings(const access_settings_t *s, json_t **result,
                                        handler_error_t *err)
{
    *result = json_pack("{s:{s:s, s:s, s:I, s:s?}}", "settings", "default_currency",
                        s->default_currency, "payout_schedule", s->payout_schedule,
                        "min_payout_amount", (json_int_t)s->min_payout_amount,
                        "statement_descriptor", handler_nonempty(s->statement_descriptor));
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t get(access_tx_t *tx, const json_t *p, json_t **result, handler_error_t *err)
{
    (void)p;
    access_settings_t s;
    access_error_t aerr;
    if (access_settings_get(tx, &s, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_settings(&s, result, err);
}

static handler_status_t update(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_settings_update_t in = {
        .default_currency = handler_arg_str(p, "default_currency"),
        .payout_schedule = handler_arg_str(p, "payout_schedule"),
        .min_payout_amount = handler_arg_int(p, "min_payout_amount", 0),
        .set_statement_descriptor = handler_arg_has(p, "statement_descriptor"),
        .statement_descriptor = handler_arg_str(p, "statement_descriptor"),
    };
    access_settings_t s;
    access_error_t aerr;
    if (access_settings_update(tx, &in, &s, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_settings(&s, result, err);
}

const handler_t handlers_settings[] = {
    {.name = "settings.get",
     .summary = "The account's payment settings; never set, they are usd, manual, 100 and null.",
     .schema = &get_schema,
     .execute = get},
    {.name = "settings.update",
     .summary = "Changes any subset of the account's payment settings.",
     .schema = &update_schema,
     .execute = update},
    {0},
};
