/* codes — see access/codes.h; tables ppu and ppu_redemptions
 * (0004_codes_agents.sql). */
#include "access/codes.h"

#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <stdio.h>
#include <string.h>

/* The code columns every statement returns, in read_code's order. The state
 * is judged at time t (an SQL expression), in the precedence that
 * access_code_state_t documents. */
#define CODE_STATE_AT(c, t)                                                                        \
    "CASE WHEN " c ".revoked_at IS NOT NULL THEN 'revoked'"                                        \
    " WHEN " c ".expires_at <= " t " THEN 'expired'"                                               \
    " WHEN " c ".redeemed_count >= " c ".max_redemptions THEN 'exhausted'"                         \
    " ELSE 'active' END"
#define CODE_COLS_AT(t)                                                                            \
    "c.id, c.code, c.amount, c.currency, c.max_redemptions, c.redeemed_count,"                     \
    " " CODE_STATE_AT("c", t) " AS state,"                                                         \
                              " tally_epoch_ms(c.expires_at) AS expires_ms, "                      \
                              "tally_epoch_ms(c.revoked_at) AS revoked_ms,"                        \
                              " tally_epoch_ms(c.created_at) AS created_ms"
#define CODE_COLS  CODE_COLS_AT("clock_timestamp()")
#define CODE_NCOLS 10

/* An expires_at that is not in the future (by the database's clock, which
 * also judges expiry at redemption) inserts nothing and says so in
 * `future`; ON CONFLICT DO NOTHING: a duplicate answers no row instead of
 * failing the transaction, so a generated code can be retried in the same
 * one. The outer LEFT JOIN always yields one row. */
static const access_stmt_t CREATE = {
    .name = "codes_create",
    .sql = "WITH chk AS ("
           "  SELECT $7::bigint IS NULL OR tally_from_epoch_ms($7::bigint) > clock_timestamp()"
           "  AS future),"
           " ins AS ("
           "  INSERT INTO ppu AS c"
           "  (account_id, id, code, amount, currency, max_redemptions, expires_at)"
           "  SELECT $1, $2, $3, $4::bigint, $5, $6::integer, tally_from_epoch_ms($7::bigint)"
           "  FROM chk WHERE chk.future"
           "  ON CONFLICT (account_id, code) DO NOTHING"
           "  RETURNING " CODE_COLS ")"
           " SELECT chk.future, i.* FROM chk LEFT JOIN ins i ON true",
    .nargs = 6,
};

/* One statement per redemption. `target` locks the code and reads the newest
 * committed version (READ COMMITTED re-reads a row it waited for), and its
 * state tells why nothing was updated; the UPDATE's WHERE is the guard, with
 * the CHECK ppu_redemption_limit behind it. Both judge expiry at the same
 * instant (`clock`, materialized once). The outer LEFT JOINs always yield one
 * row: no target → not found; target but no update → conflict. */
static const access_stmt_t REDEEM = {
    .name = "codes_redeem",
    .sql =
        "WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS at),"
        " target AS ("
        "  SELECT c.id, c.redeemed_count, c.max_redemptions,"
        "         " CODE_STATE_AT(
            "c",
            "(SELECT at FROM clock)") " AS state"
                                      "  FROM ppu c WHERE c.account_id = $1 AND c.code = $2 FOR "
                                      "UPDATE),"
                                      " upd AS ("
                                      "  UPDATE ppu c SET redeemed_count = c.redeemed_count + 1,"
                                      "                   updated_at = (SELECT at FROM clock)"
                                      "  FROM target t"
                                      "  WHERE c.account_id = $1 AND c.id = t.id AND c.revoked_at "
                                      "IS NULL"
                                      "    AND (c.expires_at IS NULL OR c.expires_at > (SELECT at "
                                      "FROM clock))"
                                      "    AND c.redeemed_count < c.max_redemptions"
                                      "  RETURNING " CODE_COLS_AT(
                                          "(SELECT at FROM clock)") "),"
                                                                    " ins AS ("
                                                                    "  INSERT INTO ppu_redemptions "
                                                                    "(account_id, id, code_id, "
                                                                    "redeemer, redeemed_at)"
                                                                    "  SELECT $1, $3, u.id, $4, "
                                                                    "(SELECT at FROM clock) FROM "
                                                                    "upd u"
                                                                    "  RETURNING id, redeemer, "
                                                                    "tally_epoch_ms(redeemed_at) "
                                                                    "AS redeemed_ms)"
                                                                    " SELECT t.state, "
                                                                    "t.redeemed_count, "
                                                                    "t.max_redemptions,"
                                                                    "  u.id, u.code, u.amount, "
                                                                    "u.currency, "
                                                                    "u.max_redemptions, "
                                                                    "u.redeemed_count, u.state,"
                                                                    "  u.expires_ms, u.revoked_ms, "
                                                                    "u.created_ms,"
                                                                    "  i.id, i.redeemer, "
                                                                    "i.redeemed_ms"
                                                                    " FROM (VALUES (1)) one LEFT "
                                                                    "JOIN target t ON true LEFT "
                                                                    "JOIN upd u ON true"
                                                                    " LEFT JOIN ins i ON true",
    .nargs = 3,
};

/* The code with its newest redemptions: one row per redemption (the code's
 * columns repeated), or one row with NULL redemption columns. */
static const access_stmt_t GET = {
    .name = "codes_get",
    .sql = "SELECT " CODE_COLS ", r.id, r.redeemer, tally_epoch_ms(r.redeemed_at)"
           " FROM ppu c LEFT JOIN LATERAL ("
           "  SELECT id, redeemer, redeemed_at FROM ppu_redemptions"
           "  WHERE account_id = $1 AND code_id = c.id"
           "  ORDER BY redeemed_at DESC, id DESC LIMIT $3::integer) r ON true"
           " WHERE c.account_id = $1 AND c.code = $2"
           " ORDER BY r.redeemed_at DESC, r.id DESC",
    .nargs = 2,
};

/* A page in one statement (as logs.c): cursor_ok tells an unknown
 * starting_after apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "codes_list",
    .sql =
        "WITH cursor AS ("
        "  SELECT created_at, id FROM ppu WHERE account_id = $1 AND id = $2),"
        " page AS ("
        "  SELECT " CODE_COLS ", c.created_at AS sort_at FROM ppu c"
        "  WHERE c.account_id = $1"
        "    AND ($2::text IS NULL OR (c.created_at, c.id) < (SELECT created_at, id FROM cursor))"
        "  ORDER BY c.created_at DESC, c.id DESC LIMIT $3::integer)"
        " SELECT $2::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
        "  pg.id, pg.code, pg.amount, pg.currency, pg.max_redemptions, pg.redeemed_count,"
        "  pg.state, pg.expires_ms, pg.revoked_ms, pg.created_ms"
        " FROM (VALUES (1)) one LEFT JOIN page pg ON true"
        " ORDER BY pg.sort_at DESC, pg.id DESC",
    .nargs = 2,
};

/* Revoking a revoked code keeps the first revoked_at: a no-op in effect. */
static const access_stmt_t REVOKE = {
    .name = "codes_revoke",
    .sql = "UPDATE ppu c SET revoked_at = coalesce(c.revoked_at, clock_timestamp()),"
           "                 updated_at = CASE WHEN c.revoked_at IS NULL THEN clock_timestamp()"
           "                                   ELSE c.updated_at END"
           " WHERE c.account_id = $1 AND c.code = $2"
           " RETURNING " CODE_COLS,
    .nargs = 1,
};

static const char *const state_names[] = {ACCESS_CODE_STATE_LIST(ENUMSTR_NAME)};

const char *access_code_state_str(access_code_state_t s)
{
    return enumstr_name(state_names, ENUMSTR_COUNT(state_names), (int)s, "?");
}

static bool state_parse(const char *s, access_code_state_t *out)
{
    int v;
    if (!enumstr_parse(state_names, ENUMSTR_COUNT(state_names), s, &v))
        return false;
    *out = (access_code_state_t)v;
    return true;
}

static access_status_t not_found(access_error_t *err)
{
    return access_fail(err, ACCESS_NOT_FOUND, "code",
                       "no purchase code with this code in the account");
}

/* Reads the CODE_COLS starting at column c into *out. */
static access_status_t read_code(const PGresult *r, int row, int c, access_code_t *out,
                                 access_error_t *err)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    access_get_text(r, row, c + 1, out->code, sizeof(out->code));
    out->amount = access_get_i64(r, row, c + 2);
    access_get_text(r, row, c + 3, out->currency, sizeof(out->currency));
    out->max_redemptions = (int32_t)access_get_i64(r, row, c + 4);
    out->redeemed_count = (int32_t)access_get_i64(r, row, c + 5);
    char state[16];
    access_get_text(r, row, c + 6, state, sizeof(state));
    out->expires = !access_get_null(r, row, c + 7);
    out->expires_at_ms = access_get_i64(r, row, c + 7);
    out->revoked = !access_get_null(r, row, c + 8);
    out->revoked_at_ms = access_get_i64(r, row, c + 8);
    out->created_at_ms = access_get_i64(r, row, c + 9);
    if (!state_parse(state, &out->state))
        return access_fail(err, ACCESS_FAILED, NULL, "codes: unknown state in the row");
    return ACCESS_OK;
}

access_status_t access_codes_create(access_tx_t *tx, const access_code_new_t *in,
                                    access_code_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    char id[IDS_MAX];
    if (ids_new("pc", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "codes: cannot make an id");
    char amount[ACCESS_I64_LEN], max[ACCESS_I64_LEN], expires[ACCESS_I64_LEN];
    PGresult *r = access_exec(
        tx, &CREATE,
        ACCESS_ARGS(id, in->code, in->amount > 0 ? access_fmt_i64(amount, in->amount) : NULL,
                    in->amount > 0 ? in->currency : NULL, access_fmt_i64(max, in->max_redemptions),
                    in->expires ? access_fmt_i64(expires, in->expires_at_ms) : NULL),
        err);
    if (r == NULL)
        return err->status;
    access_status_t st;
    if (PQntuples(r) != 1)
        st = access_fail(err, ACCESS_FAILED, NULL, "codes: no row from codes_create");
    else if (!access_get_bool(r, 0, 0))
        st = access_fail(err, ACCESS_INVALID, "expires_at",
                         "expires_at must lie in the future; a code that expired at birth could "
                         "never be redeemed");
    else if (access_get_null(r, 0, 1))
        st = access_fail(err, ACCESS_CONFLICT, "code",
                         "a purchase code with this code already exists in the account");
    else
        st = read_code(r, 0, 1, out, err);
    PQclear(r);
    return st;
}

access_status_t access_codes_redeem(access_tx_t *tx, const char *code, const char *redeemer,
                                    access_code_t *out, access_redemption_t *redemption,
                                    access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    memset(redemption, 0, sizeof(*redemption));
    char id[IDS_MAX];
    if (ids_new("red", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "codes: cannot make an id");
    PGresult *r = access_exec(tx, &REDEEM, ACCESS_ARGS(code, id, redeemer), err);
    if (r == NULL)
        return err->status;

    access_status_t st = ACCESS_OK;
    if (PQntuples(r) != 1 || access_get_null(r, 0, 0)) {
        st = not_found(err);
    } else if (access_get_null(r, 0, 3)) {
        char state[16];
        access_get_text(r, 0, 0, state, sizeof(state));
        if (strcmp(state, "revoked") == 0)
            st = access_fail(err, ACCESS_CONFLICT, "code", "the code is revoked");
        else if (strcmp(state, "expired") == 0)
            st = access_fail(err, ACCESS_CONFLICT, "code", "the code has expired");
        else if (strcmp(state, "exhausted") == 0)
            st =
                access_fail(err, ACCESS_CONFLICT, "code",
                            "the code is exhausted: it was redeemed %lld of %lld times",
                            (long long)access_get_i64(r, 0, 1), (long long)access_get_i64(r, 0, 2));
        else /* the guard and the state disagree: a bug, not the caller's fault */
            st = access_fail(err, ACCESS_FAILED, NULL, "codes: an active code was not redeemed");
    } else {
        st = read_code(r, 0, 3, out, err);
        if (st == ACCESS_OK) {
            int c = 3 + CODE_NCOLS;
            access_get_text(r, 0, c, redemption->id, sizeof(redemption->id));
            snprintf(redemption->code_id, sizeof(redemption->code_id), "%s", out->id);
            access_get_text(r, 0, c + 1, redemption->redeemer, sizeof(redemption->redeemer));
            redemption->redeemed_at_ms = access_get_i64(r, 0, c + 2);
        }
    }
    PQclear(r);
    return st;
}

access_status_t access_codes_get(access_tx_t *tx, const char *code, access_code_t *out,
                                 access_redemption_t recent[ACCESS_CODE_RECENT], int *n_recent,
                                 access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    *n_recent = 0;
    char lim[ACCESS_I64_LEN];
    PGresult *r =
        access_exec(tx, &GET, ACCESS_ARGS(code, access_fmt_i64(lim, ACCESS_CODE_RECENT)), err);
    if (r == NULL)
        return err->status;
    access_status_t st = PQntuples(r) >= 1 ? read_code(r, 0, 0, out, err) : not_found(err);
    for (int i = 0; st == ACCESS_OK && i < PQntuples(r) && i < ACCESS_CODE_RECENT; i++) {
        if (access_get_null(r, i, CODE_NCOLS))
            break; /* no redemptions: the one row has NULLs there */
        access_redemption_t *red = &recent[i];
        memset(red, 0, sizeof(*red));
        access_get_text(r, i, CODE_NCOLS, red->id, sizeof(red->id));
        snprintf(red->code_id, sizeof(red->code_id), "%s", out->id);
        access_get_text(r, i, CODE_NCOLS + 1, red->redeemer, sizeof(red->redeemer));
        red->redeemed_at_ms = access_get_i64(r, i, CODE_NCOLS + 2);
        (*n_recent)++;
    }
    PQclear(r);
    return st;
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    return read_code(r, row, 1, out, err);
}

static const access_list_t PAGE = {
    .stmt = &LIST, .object = "purchase code", .row_size = sizeof(access_code_t), .read = list_row};

access_status_t access_codes_list(access_tx_t *tx, const access_page_t *page, access_code_t *rows,
                                  int *n, bool *has_more, access_error_t *err)
{
    return access_list_page(tx, &PAGE, NULL, page, rows, n, has_more, err);
}

access_status_t access_codes_revoke(access_tx_t *tx, const char *code, access_code_t *out,
                                    access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &REVOKE, ACCESS_ARGS(code), err);
    if (r == NULL)
        return err->status;
    access_status_t st = PQntuples(r) == 1 ? read_code(r, 0, 0, out, err) : not_found(err);
    PQclear(r);
    return st;
}
