/* routes — see access/routes.h; table account_payout_routes (0003_payouts.sql). */
#include "access/routes.h"

#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <string.h>

/* The route columns every statement returns, in read_route's order. */
#define ROUTE_COLS                                                                                 \
    "r.id, r.kind, r.destination, r.currency, r.is_default,"                                       \
    " tally_epoch_ms(r.created_at) AS created_ms, tally_epoch_ms(r.updated_at) AS updated_ms"

/* Serializes the statements that set a default in one account. The demote
 * then runs in a later statement, whose snapshot sees any default that
 * another transaction committed while this one waited. */
static const access_stmt_t LOCK_DEFAULT = {
    .name = "routes_lock_default",
    .sql = "SELECT pg_advisory_xact_lock(hashtext('account_payout_routes'), hashtext($1))",
    .nargs = 0,
};

/* The table's CHECKs back the validator; the partial unique index can only
 * trip if the lock above were bypassed, so it asks for a retry. */
static const access_errmap_t UPSERT_ERRORS[] = {
    {"23514", "account_payout_routes_kind_check", ACCESS_INVALID, "kind",
     "kind must be stripe_connect or bank_account"},
    {"23514", "account_payout_routes_destination_check", ACCESS_INVALID, "destination",
     "destination must be 1 to 255 characters long"},
    {"23514", "account_payout_routes_currency_check", ACCESS_INVALID, "currency",
     "currency must be a three-letter ISO 4217 code"},
    {"23505", "account_payout_routes_one_default", ACCESS_RETRY, NULL,
     "another default route was set at the same time"},
    {0},
};

/* $6 (is_default): the old default is demoted first; the INSERT reads the
 * demote's count, which orders the two inside the statement. */
static const access_stmt_t CREATE = {
    .name = "routes_create",
    .sql = "WITH demote AS ("
           "  UPDATE account_payout_routes SET is_default = false, updated_at = clock_timestamp()"
           "  WHERE account_id = $1 AND is_default AND $6::boolean RETURNING id)"
           " INSERT INTO account_payout_routes AS r"
           " (account_id, id, kind, destination, currency, is_default)"
           " SELECT $1, $2, $3, $4, $5, $6::boolean FROM (SELECT count(*) FROM demote) d"
           " RETURNING " ROUTE_COLS,
    .nargs = 5,
    .errors = UPSERT_ERRORS,
};

/* $5 says whether currency ($6) changes, $7 whether is_default ($8) does. */
static const access_stmt_t UPDATE = {
    .name = "routes_update",
    .sql = "WITH target AS ("
           "  SELECT id FROM account_payout_routes"
           "  WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL FOR UPDATE),"
           " demote AS ("
           "  UPDATE account_payout_routes o SET is_default = false, updated_at = clock_timestamp()"
           "  FROM target t"
           "  WHERE o.account_id = $1 AND o.is_default AND o.id <> t.id AND $7::boolean"
           "    AND $8::boolean"
           "  RETURNING o.id)"
           " UPDATE account_payout_routes r SET kind = $3, destination = $4,"
           "  currency = CASE WHEN $5::boolean THEN $6::text ELSE r.currency END,"
           "  is_default = CASE WHEN $7::boolean THEN $8::boolean ELSE r.is_default END,"
           "  updated_at = clock_timestamp()"
           " FROM target t, (SELECT count(*) FROM demote) d"
           " WHERE r.account_id = $1 AND r.id = t.id"
           " RETURNING " ROUTE_COLS,
    .nargs = 7,
    .errors = UPSERT_ERRORS,
};

static const access_stmt_t GET = {
    .name = "routes_get",
    .sql = "SELECT " ROUTE_COLS " FROM account_payout_routes r"
           " WHERE r.account_id = $1 AND r.id = $2 AND r.deleted_at IS NULL",
    .nargs = 1,
};

/* A page in one statement (as logs.c): cursor_ok tells an unknown
 * starting_after apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "routes_list",
    .sql = "WITH cursor AS ("
           "  SELECT created_at, id FROM account_payout_routes"
           "  WHERE account_id = $1 AND id = $2 AND deleted_at IS NULL),"
           " page AS ("
           "  SELECT " ROUTE_COLS ", r.created_at AS sort_at FROM account_payout_routes r"
           "  WHERE r.account_id = $1 AND r.deleted_at IS NULL"
           "    AND ($2::text IS NULL"
           "         OR (r.created_at, r.id) < (SELECT created_at, id FROM cursor))"
           "  ORDER BY r.created_at DESC, r.id DESC LIMIT $3::integer)"
           " SELECT $2::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
           "  p.id, p.kind, p.destination, p.currency, p.is_default, p.created_ms, p.updated_ms"
           " FROM (VALUES (1)) one LEFT JOIN page p ON true"
           " ORDER BY p.sort_at DESC, p.id DESC",
    .nargs = 2,
};

/* route.delete, first statement: the row lock that payout.create's FOR SHARE
 * waits for (or that waits for it). */
static const access_stmt_t DELETE_LOCK = {
    .name = "routes_delete_lock",
    .sql = "SELECT " ROUTE_COLS " FROM account_payout_routes r"
           " WHERE r.account_id = $1 AND r.id = $2 AND r.deleted_at IS NULL FOR UPDATE",
    .nargs = 1,
};

/* Second statement: its fresh snapshot sees every payout committed by a
 * transaction that held the route before the lock above was granted. */
static const access_stmt_t DELETE = {
    .name = "routes_delete",
    .sql = "UPDATE account_payout_routes r"
           " SET deleted_at = clock_timestamp(), is_default = false, updated_at = clock_timestamp()"
           " WHERE r.account_id = $1 AND r.id = $2 AND r.deleted_at IS NULL"
           "   AND NOT EXISTS (SELECT 1 FROM pay_out p"
           "                   WHERE p.account_id = $1 AND p.route_id = $2"
           "                     AND p.status = 'pending')"
           " RETURNING r.id",
    .nargs = 1,
};

/* Reads the ROUTE_COLS starting at column c of row into *out. */
static void read_route(const PGresult *r, int row, int c, access_route_t *out)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    access_get_text(r, row, c + 1, out->kind, sizeof(out->kind));
    access_get_text(r, row, c + 2, out->destination, sizeof(out->destination));
    access_get_text(r, row, c + 3, out->currency, sizeof(out->currency));
    out->is_default = access_get_bool(r, row, c + 4);
    out->created_at_ms = access_get_i64(r, row, c + 5);
    out->updated_at_ms = access_get_i64(r, row, c + 6);
}

static access_status_t not_found(access_error_t *err)
{
    return access_fail(err, ACCESS_NOT_FOUND, "route_id",
                       "no payout route with this id in the account");
}

/* Runs st and reads its one row into *out; no row → not found. */
static access_status_t one_route(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                                 access_route_t *out, access_error_t *err)
{
    PGresult *r = access_exec(tx, st, args, err);
    if (r == NULL)
        return err->status;
    access_status_t status = ACCESS_OK;
    if (PQntuples(r) == 1)
        read_route(r, 0, 0, out);
    else
        status = not_found(err);
    PQclear(r);
    return status;
}

access_status_t access_routes_upsert(access_tx_t *tx, const access_route_upsert_t *in,
                                     access_route_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    if (in->set_default && in->is_default) {
        PGresult *r = access_exec(tx, &LOCK_DEFAULT, NULL, err);
        if (r == NULL)
            return err->status;
        PQclear(r);
    }
    const char *is_default = in->set_default && in->is_default ? "true" : "false";
    if (in->route_id == NULL) {
        char id[IDS_MAX];
        if (ids_new("rt", id, sizeof(id)) != 0)
            return access_fail(err, ACCESS_FAILED, NULL, "routes: cannot make an id");
        return one_route(tx, &CREATE,
                         ACCESS_ARGS(id, in->kind, in->destination, in->currency, is_default), out,
                         err);
    }
    return one_route(tx, &UPDATE,
                     ACCESS_ARGS(in->route_id, in->kind, in->destination,
                                 in->set_currency ? "true" : "false", in->currency,
                                 in->set_default ? "true" : "false", is_default),
                     out, err);
}

access_status_t access_routes_get(access_tx_t *tx, const char *route_id, access_route_t *out,
                                  access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    return one_route(tx, &GET, ACCESS_ARGS(route_id), out, err);
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    (void)err;
    read_route(r, row, 1, out);
    return ACCESS_OK;
}

static const access_list_t PAGE = {
    .stmt = &LIST, .object = "payout route", .row_size = sizeof(access_route_t), .read = list_row};

access_status_t access_routes_list(access_tx_t *tx, const access_page_t *page, access_route_t *rows,
                                   int *n, bool *has_more, access_error_t *err)
{
    return access_list_page(tx, &PAGE, NULL, page, rows, n, has_more, err);
}

access_status_t access_routes_delete(access_tx_t *tx, const char *route_id, access_route_t *out,
                                     access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    access_status_t st = one_route(tx, &DELETE_LOCK, ACCESS_ARGS(route_id), out, err);
    if (st != ACCESS_OK)
        return st;
    PGresult *r = access_exec(tx, &DELETE, ACCESS_ARGS(route_id), err);
    if (r == NULL)
        return err->status;
    int deleted = PQntuples(r);
    PQclear(r);
    if (deleted != 1)
        return access_fail(err, ACCESS_CONFLICT, "route_id",
                           "the payout route has pending payouts; it cannot be deleted");
    return ACCESS_OK;
}
