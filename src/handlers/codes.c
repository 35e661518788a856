/* codes — the code.* job types (CONTRACT.md §6, purchase codes in table ppu). */
#include "handler_internal.h"

#include "access/codes.h"

#include <stdio.h>
#include <sys/random.h>

/* ---- Payload schemas ---------------------------------------------------- */

#define CODE_CHARSET        "A-Z0-9-"
#define MAX_REDEMPTIONS_MAX 1000000000 /* fits the table's integer column */
#define GENERATE_ATTEMPTS   5

// clang-format off
#define CODE_FIELD(required_, doc_)                                                                \
    {.name = "code", .type = SCHEMA_STRING, .required = (required_), .min_len = 4,                 \
     .max_len = 64, .charset = CODE_CHARSET, .doc = (doc_)}
// clang-format on

/* amount and currency come together or not at all. */
static bool amount_currency_check(const json_t *obj, const char *path, handler_error_t *err)
{
    bool amount = json_object_get(obj, "amount") != NULL;
    bool currency = json_object_get(obj, "currency") != NULL;
    if (amount && !currency)
        return schema_fail(err, path, "currency", "is required when amount is given");
    if (currency && !amount)
        return schema_fail(err, path, "amount", "is required when currency is given");
    return true;
}

static const schema_field_t create_fields[] = {
    CODE_FIELD(false, "The code to hand out, unique in the account; generated when absent "
                      "(12 characters in groups of four, e.g. K7QM-2XHD-9RWB)."),
    {.name = "amount",
     .type = SCHEMA_INTEGER,
     SCHEMA_AMOUNT_BOUNDS,
     .doc = "What the code is worth, in minor units; with currency, or neither."},
    {.name = "currency",
     .type = SCHEMA_CURRENCY,
     .doc = "The amount's currency (ISO 4217, lower case)."},
    {.name = "max_redemptions",
     .type = SCHEMA_INTEGER,
     .min = 1,
     .max = MAX_REDEMPTIONS_MAX,
     .default_json = "1",
     .doc = "How many times the code can be redeemed."},
    {.name = "expires_at",
     .type = SCHEMA_TIMESTAMP,
     .doc = "From this instant on the code cannot be redeemed; it must lie in the future (else "
            "invalid_request). Absent: never expires."},
    {0},
};
static const schema_object_t create_schema = {
    .fields = create_fields,
    .check = amount_currency_check,
    .check_doc = "amount and currency are given together or not at all.",
};

static const schema_field_t redeem_fields[] = {
    CODE_FIELD(true, "The code to redeem."),
    {.name = "redeemer",
     .type = SCHEMA_STRING,
     .min_len = 1,
     .max_len = 128,
     .doc = "Who redeems it (your customer's id), stored with the redemption."},
    {0},
};
static const schema_object_t redeem_schema = {.fields = redeem_fields};

static const schema_field_t code_fields[] = {
    CODE_FIELD(true, "The purchase code."),
    {0},
};
static const schema_object_t code_schema = {.fields = code_fields};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Results ------------------------------------------------------------- */

/* The Code object: amount and currency are null for a code without a value,
 * expires_at and revoked_at null when not set. */
static json_t *code_json(const access_code_t *c)
{
    return json_pack("{s:s, s:s, s:o, s:s?, s:i, s:i, s:s, s:s?, s:s?, s:s}", "id", c->id, "code",
                     c->code, "amount", c->amount > 0 ? json_integer(c->amount) : json_null(),
                     "currency", handler_nonempty(c->currency), "max_redemptions",
                     (int)c->max_redemptions, "redeemed_count", (int)c->redeemed_count, "status",
                     access_code_state_str(c->state), "expires_at",
                     c->expires ? handler_time(c->expires_at_ms).s : NULL, "revoked_at",
                     c->revoked ? handler_time(c->revoked_at_ms).s : NULL, "created_at",
                     handler_time(c->created_at_ms).s);
}

static json_t *redemption_json(const access_redemption_t *r)
{
    return json_pack("{s:s, s:s?, s:s}", "id", r->id, "redeemer", handler_nonempty(r->redeemer),
                     "redeemed_at", handler_time(r->redeemed_at_ms).s);
}

static handler_status_t answer_code(const access_code_t *c, json_t **result, handler_error_t *err)
{
    *result = json_pack("{s:o}", "code", code_json(c));
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Generated codes ----------------------------------------------------------- */

/* 32 symbols, so 5 random bits pick one without bias; 0, 1, I and O are left
 * out because people misread them. 12 symbols carry 60 bits. */
static const char symbols[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/* Writes a fresh "XXXX-XXXX-XXXX" from the kernel's CSPRNG into out (≥ 15
 * bytes). Returns false when no randomness was available. */
static bool generate_code(char *out)
{
    unsigned char r[12];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return false;
    size_t o = 0;
    for (size_t i = 0; i < sizeof(r); i++) {
        if (i > 0 && i % 4 == 0)
            out[o++] = '-';
        out[o++] = symbols[r[i] & 31];
    }
    out[o] = '\0';
    return true;
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t create(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_code_new_t in = {
        .code = handler_arg_str(p, "code"),
        .amount = handler_arg_int(p, "amount", 0),
        .currency = handler_arg_str(p, "currency"),
        .max_redemptions = (int32_t)handler_arg_int(p, "max_redemptions", 1),
        .expires = handler_arg_has(p, "expires_at"),
    };
    if (in.expires && clock_parse_rfc3339(handler_arg_str(p, "expires_at"), &in.expires_at_ms) != 0)
        return handler_reject(err, TALLY_ERR_INVALID_REQUEST, "expires_at",
                              "expires_at is not a valid timestamp");
    bool generated = in.code == NULL;
    char code[16];
    access_code_t c;
    access_error_t aerr;
    /* A generated code collides with one of n codes with odds n / 2^60; a
     * collision leaves the transaction usable, so draw again. */
    for (int attempt = 0; attempt < GENERATE_ATTEMPTS; attempt++) {
        if (generated) {
            if (!generate_code(code)) {
                handler_reject(err, TALLY_ERR_INTERNAL, NULL, "no randomness for a new code");
                return HANDLER_FAILED;
            }
            in.code = code;
        }
        access_status_t st = access_codes_create(tx, &in, &c, &aerr);
        if (st == ACCESS_OK)
            return answer_code(&c, result, err);
        /* Only a collision (no row, no SQL error) leaves the tx usable. */
        if (!generated || st != ACCESS_CONFLICT || aerr.sqlstate[0] != '\0')
            return handler_access_error(&aerr, err);
    }
    handler_reject(err, TALLY_ERR_INTERNAL, NULL, "%d generated codes in a row already existed",
                   GENERATE_ATTEMPTS);
    return HANDLER_FAILED;
}

static handler_status_t redeem(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_code_t c;
    access_redemption_t r;
    access_error_t aerr;
    if (access_codes_redeem(tx, handler_arg_str(p, "code"), handler_arg_str(p, "redeemer"), &c, &r,
                            &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    *result = json_pack("{s:o, s:o}", "code", code_json(&c), "redemption", redemption_json(&r));
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

static handler_status_t get(access_tx_t *tx, const json_t *p, json_t **result, handler_error_t *err)
{
    access_code_t c;
    access_redemption_t recent[ACCESS_CODE_RECENT];
    int n = 0;
    access_error_t aerr;
    if (access_codes_get(tx, handler_arg_str(p, "code"), &c, recent, &n, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    json_t *reds = json_array();
    for (int i = 0; reds != NULL && i < n; i++) {
        if (json_array_append_new(reds, redemption_json(&recent[i])) != 0) {
            json_decref(reds);
            reds = NULL;
        }
    }
    *result =
        reds != NULL ? json_pack("{s:o, s:o}", "code", code_json(&c), "redemptions", reds) : NULL;
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

static json_t *code_item(const void *row)
{
    return code_json(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_code_t));
    access_status_t st = access_codes_list(tx, &l.page, l.rows, &l.n, &l.has_more, &l.aerr);
    return handler_list_end(&l, st, code_item, NULL, result, err);
}

static handler_status_t revoke(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_code_t c;
    access_error_t aerr;
    if (access_codes_revoke(tx, handler_arg_str(p, "code"), &c, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_code(&c, result, err);
}

const handler_t handlers_codes[] = {
    {.name = "code.create",
     .summary = "Creates a purchase code (generated when not given) with an optional value, "
                "a redemption limit and an expiry; a code that exists in the account is a "
                "conflict.",
     .schema = &create_schema,
     .execute = create},
    {.name = "code.redeem",
     .summary = "Redeems a purchase code once; a revoked, expired or exhausted code is a "
                "conflict.",
     .schema = &redeem_schema,
     .execute = redeem},
    {.name = "code.get",
     .summary = "One purchase code of the account with its redemption count and its newest "
                "redemptions (at most 10, newest first).",
     .schema = &code_schema,
     .execute = get},
    {.name = "code.list",
     .summary = "The account's purchase codes, newest first.",
     .schema = &list_schema,
     .execute = list},
    {.name = "code.revoke",
     .summary = "Revokes a purchase code so that it can no longer be redeemed; revoking it "
                "again changes nothing.",
     .schema = &code_schema,
     .execute = revoke},
    {0},
};
