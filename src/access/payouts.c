/* payouts — see access/payouts.h; table pay_out (0003_payouts.sql). */
#include "access/payouts.h"

#include "access/settings.h"
#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <stdlib.h>
#include <string.h>

/* The payout columns every statement returns, in read_payout's order. */
#define PAYOUT_COLS                                                                                \
    "p.id, p.amount, p.currency, p.status, p.route_id, p.description,"                             \
    " tally_epoch_ms(p.created_at) AS created_ms, tally_epoch_ms(p.updated_at) AS updated_ms"

/* The trigger's refusal is the one way a payout meets insufficient funds. */
static const access_errmap_t CREATE_ERRORS[] = {
    {"23514", "pay_out_funds", ACCESS_INSUFFICIENT_FUNDS, "amount",
     "the payout exceeds the available balance"},
    {"23514", "pay_out_amount_check", ACCESS_INVALID, "amount",
     "amount must be between 1 and 10^15"},
    {"23514", "pay_out_currency_check", ACCESS_INVALID, "currency",
     "currency must be a three-letter ISO 4217 code"},
    {"23514", "pay_out_description_check", ACCESS_INVALID, "description",
     "description must be at most 1000 characters long"},
    ACCESS_BALANCE_BOUNDS_ERRORS,
    {0},
};

/* Paying out and failing move the balance too. */
static const access_errmap_t BALANCE_ERRORS[] = {
    ACCESS_BALANCE_BOUNDS_ERRORS,
    {0},
};

/* One statement. `rt` resolves the route (the given one, else the default)
 * and share-locks it: route.delete's FOR UPDATE either waits for this
 * transaction, then sees the pending payout, or goes first, and then this
 * lock re-reads the row, finds it deleted and resolves no route. `chk` holds
 * the rules that come before the money; the INSERT runs only when they pass,
 * and its trigger moves the balance or refuses (pay_out_funds). The outer
 * LEFT JOIN always yields one row, so a refusal is told by its flags. */
static const access_stmt_t CREATE = {
    .name = "payouts_create",
    .sql = "WITH cfg AS ("
           "  SELECT coalesce((SELECT min_payout_amount FROM account_payment_settings"
           "                   WHERE account_id = $1), $7::bigint) AS min_amount),"
           " rt AS ("
           "  SELECT id, currency FROM account_payout_routes"
           "  WHERE account_id = $1 AND deleted_at IS NULL"
           "    AND CASE WHEN $5::text IS NULL THEN is_default ELSE id = $5::text END"
           "  FOR SHARE),"
           " chk AS ("
           "  SELECT cfg.min_amount, $3::bigint >= cfg.min_amount AS min_ok,"
           "   $5::text IS NULL OR EXISTS (SELECT 1 FROM rt) AS route_ok,"
           "   NOT EXISTS (SELECT 1 FROM rt WHERE rt.currency <> $4::text) AS currency_ok,"
           "   (SELECT currency FROM rt) AS route_currency, (SELECT id FROM rt) AS rt_id"
           "  FROM cfg),"
           " ins AS ("
           "  INSERT INTO pay_out AS p"
           "  (account_id, id, amount, currency, status, route_id, description)"
           "  SELECT $1, $2, $3::bigint, $4::text, 'pending', (SELECT id FROM rt), $6::text"
           "  FROM chk WHERE chk.min_ok AND chk.route_ok AND chk.currency_ok"
           "  RETURNING " PAYOUT_COLS ")"
           " SELECT c.min_amount, c.min_ok, c.route_ok, c.currency_ok, c.route_currency, c.rt_id,"
           "  i.id, i.amount, i.currency, i.status, i.route_id, i.description, i.created_ms,"
           "  i.updated_ms"
           " FROM chk c LEFT JOIN ins i ON true",
    .nargs = 6,
    .errors = CREATE_ERRORS,
};

static const access_stmt_t GET = {
    .name = "payouts_get",
    .sql = "SELECT " PAYOUT_COLS " FROM pay_out p WHERE p.account_id = $1 AND p.id = $2",
    .nargs = 1,
};

/* Only pending moves (the trigger moves the balance); the caller tells a
 * no-op from a conflict afterwards. */
static const access_stmt_t UPDATE_STATUS = {
    .name = "payouts_update_status",
    .sql = "UPDATE pay_out p SET status = $3, updated_at = clock_timestamp()"
           " WHERE p.account_id = $1 AND p.id = $2 AND p.status = 'pending'"
           "   AND $3 IN ('paid', 'failed')"
           " RETURNING " PAYOUT_COLS,
    .nargs = 2,
    .errors = BALANCE_ERRORS,
};

/* A page in one statement (as logs.c): cursor_ok tells an unknown
 * starting_after apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "payouts_list",
    .sql = "WITH cursor AS ("
           "  SELECT created_at, id FROM pay_out WHERE account_id = $1 AND id = $3),"
           " page AS ("
           "  SELECT " PAYOUT_COLS ", p.created_at AS sort_at FROM pay_out p"
           "  WHERE p.account_id = $1 AND ($2::text IS NULL OR p.status = $2)"
           "    AND ($3::text IS NULL"
           "         OR (p.created_at, p.id) < (SELECT created_at, id FROM cursor))"
           "  ORDER BY p.created_at DESC, p.id DESC LIMIT $4::integer)"
           " SELECT $3::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
           "  pg.id, pg.amount, pg.currency, pg.status, pg.route_id, pg.description,"
           "  pg.created_ms, pg.updated_ms"
           " FROM (VALUES (1)) one LEFT JOIN page pg ON true"
           " ORDER BY pg.sort_at DESC, pg.id DESC",
    .nargs = 3,
};

static const char *const status_names[] = {ACCESS_PAYOUT_STATUS_LIST(ENUMSTR_NAME)};

const char *access_payout_status_str(access_payout_status_t s)
{
    return enumstr_name(status_names, ENUMSTR_COUNT(status_names), (int)s, "?");
}

bool access_payout_status_parse(const char *s, access_payout_status_t *out)
{
    int v;
    if (!enumstr_parse(status_names, ENUMSTR_COUNT(status_names), s, &v))
        return false;
    *out = (access_payout_status_t)v;
    return true;
}

void access_payout_clear(access_payout_t *p)
{
    free(p->description);
    memset(p, 0, sizeof(*p));
}

/* Reads the PAYOUT_COLS starting at column c into *out (which it clears). */
static access_status_t read_payout(const PGresult *r, int row, int c, access_payout_t *out,
                                   access_error_t *err)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    out->amount = access_get_i64(r, row, c + 1);
    access_get_text(r, row, c + 2, out->currency, sizeof(out->currency));
    char status[16];
    access_get_text(r, row, c + 3, status, sizeof(status));
    access_get_text(r, row, c + 4, out->route_id, sizeof(out->route_id));
    out->created_at_ms = access_get_i64(r, row, c + 6);
    out->updated_at_ms = access_get_i64(r, row, c + 7);
    if (!access_payout_status_parse(status, &out->status))
        return access_fail(err, ACCESS_FAILED, NULL, "payouts: unknown status in the row");
    out->description = access_get_dup(r, row, c + 5);
    return ACCESS_OK;
}

access_status_t access_payouts_create(access_tx_t *tx, const access_payout_new_t *in,
                                      access_payout_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    char id[IDS_MAX];
    if (ids_new("po", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "payouts: cannot make an id");
    char amount[ACCESS_I64_LEN], min[ACCESS_I64_LEN];
    PGresult *r = access_exec(tx, &CREATE,
                              ACCESS_ARGS(id, access_fmt_i64(amount, in->amount), in->currency,
                                          in->route_id, in->description,
                                          access_fmt_i64(min, ACCESS_SETTINGS_DEFAULT_MIN_PAYOUT)),
                              err);
    if (r == NULL)
        return err->status;

    access_status_t st;
    if (PQntuples(r) != 1) {
        st = access_fail(err, ACCESS_FAILED, NULL, "payouts: no row from payouts_create");
    } else if (!access_get_bool(r, 0, 1)) {
        st = access_fail(err, ACCESS_INVALID, "amount",
                         "amount is below the account's min_payout_amount (%lld)",
                         (long long)access_get_i64(r, 0, 0));
    } else if (!access_get_bool(r, 0, 2)) {
        st = access_fail(err, ACCESS_NOT_FOUND, "route_id",
                         "no payout route with this id in the account");
    } else if (!access_get_bool(r, 0, 3)) {
        char route_currency[4], route_id[ACCESS_ROUTE_ID_MAX];
        access_get_text(r, 0, 4, route_currency, sizeof(route_currency));
        access_get_text(r, 0, 5, route_id, sizeof(route_id));
        /* Without route_id the request named no route: blame none, name the default. */
        if (in->route_id != NULL)
            st = access_fail(err, ACCESS_CONFLICT, "route_id",
                             "the payout route only takes %s payouts", route_currency);
        else
            st = access_fail(err, ACCESS_CONFLICT, NULL,
                             "the account's default payout route %s only takes %s payouts; "
                             "give a route_id that takes %s",
                             route_id, route_currency, in->currency);
    } else if (access_get_null(r, 0, 6)) {
        st = access_fail(err, ACCESS_FAILED, NULL, "payouts: the payout was not inserted");
    } else {
        st = read_payout(r, 0, 6, out, err);
    }
    PQclear(r);
    return st;
}

access_status_t access_payouts_get(access_tx_t *tx, const char *payout_id, access_payout_t *out,
                                   access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &GET, ACCESS_ARGS(payout_id), err);
    if (r == NULL)
        return err->status;
    access_status_t st = PQntuples(r) == 1 ? read_payout(r, 0, 0, out, err)
                                           : access_fail(err, ACCESS_NOT_FOUND, "payout_id",
                                                         "no payout with this id in the account");
    PQclear(r);
    return st;
}

access_status_t access_payouts_update_status(access_tx_t *tx, const char *payout_id,
                                             access_payout_status_t status, access_payout_t *out,
                                             access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &UPDATE_STATUS,
                              ACCESS_ARGS(payout_id, access_payout_status_str(status)), err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) == 1) {
        access_status_t st = read_payout(r, 0, 0, out, err);
        PQclear(r);
        return st;
    }
    PQclear(r);
    /* Nothing moved: read the row as it is now (a fresh snapshot, after any
     * concurrent move committed) to tell a no-op from a forbidden transition. */
    access_status_t st = access_payouts_get(tx, payout_id, out, err);
    if (st != ACCESS_OK || out->status == status)
        return st;
    access_payout_status_t current = out->status;
    access_payout_clear(out);
    return access_fail(err, ACCESS_CONFLICT, "status", "the payout is %s; it cannot become %s",
                       access_payout_status_str(current), access_payout_status_str(status));
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    return read_payout(r, row, 1, out, err);
}

static void list_clear(void *row)
{
    access_payout_clear(row);
}

static const access_list_t PAGE = {.stmt = &LIST,
                                   .object = "payout",
                                   .row_size = sizeof(access_payout_t),
                                   .read = list_row,
                                   .clear = list_clear};

access_status_t access_payouts_list(access_tx_t *tx, const access_payout_status_t *status,
                                    const access_page_t *page, access_payout_t *rows, int *n,
                                    bool *has_more, access_error_t *err)
{
    const char *status_arg = status != NULL ? access_payout_status_str(*status) : NULL;
    return access_list_page(tx, &PAGE, ACCESS_ARGS(status_arg), page, rows, n, has_more, err);
}
