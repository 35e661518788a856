/* shares — see access/shares.h; table payment_share_tracking (0002_payments.sql). */
#include "access/shares.h"

#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The share columns every read returns, in read_share's order. */
#define SHARE_COLS                                                                                 \
    "s.id, s.payment_id, s.kind, s.refund_id, s.position, s.party, s.basis_points, s.amount,"      \
    " s.currency, tally_epoch_ms(s.created_at) AS created_ms"

/* Claims the payment with a conditional UPDATE: its row lock keeps refunds
 * out until tx ends, and of concurrent claims only the first matches
 * allocated_at IS NULL (the others re-read the row after it commits). */
static const access_stmt_t CLAIM = {
    .name = "shares_claim",
    .sql = "UPDATE stripe_payments p SET allocated_at = clock_timestamp()"
           " WHERE p.account_id = $1 AND p.id = $2 AND p.status = 'succeeded'"
           "   AND p.allocated_at IS NULL"
           " RETURNING p.amount - p.amount_refunded, p.currency",
    .nargs = 1,
};

static const access_stmt_t CLAIM_WHY = {
    .name = "shares_claim_why",
    .sql = "SELECT status, allocated_at IS NOT NULL FROM stripe_payments"
           " WHERE account_id = $1 AND id = $2",
    .nargs = 1,
};

static const access_errmap_t INSERT_ERRORS[] = {
    {"23505", "payment_share_tracking_allocation_once", ACCESS_CONFLICT, NULL,
     "the payment is already allocated"},
    {"23505", "payment_share_tracking_reversal_once", ACCESS_CONFLICT, NULL,
     "the refund is already reversed"},
    {"23503", NULL, ACCESS_NOT_FOUND, "payment_id", "no payment with this id in the account"},
    {0},
};

/* All rows in one statement from a JSON array; ordered by position so that
 * created_at (clock_timestamp per row) and the ids follow the share list. */
static const access_stmt_t INSERT = {
    .name = "shares_insert",
    .sql =
        "INSERT INTO payment_share_tracking (account_id, id, payment_id, kind, refund_id,"
        " position, party, basis_points, amount, currency)"
        " SELECT $1, x.id, p.id, CASE WHEN $3::text IS NULL THEN 'allocation' ELSE 'reversal' END,"
        "        $3, x.position, x.party, x.basis_points, x.amount, p.currency"
        " FROM json_to_recordset($4::json)"
        "      AS x(id text, position smallint, party text, basis_points integer, amount bigint)"
        " JOIN stripe_payments p ON p.account_id = $1 AND p.id = $2"
        " ORDER BY x.position",
    .nargs = 3,
    .errors = INSERT_ERRORS,
};

/* Per position: the allocation's party and share, and the sum of its rows. */
static const access_stmt_t TOTALS = {
    .name = "shares_totals",
    .sql = "SELECT s.position,"
           "  max(s.party) FILTER (WHERE s.kind = 'allocation'),"
           "  max(s.basis_points) FILTER (WHERE s.kind = 'allocation'),"
           "  sum(s.amount)::bigint"
           " FROM payment_share_tracking s"
           " WHERE s.account_id = $1 AND s.payment_id = $2"
           " GROUP BY s.position ORDER BY s.position",
    .nargs = 1,
};

static const access_stmt_t LIST = {
    .name = "shares_list",
    .sql =
        "WITH cursor AS ("
        "  SELECT created_at, id FROM payment_share_tracking WHERE account_id = $1 AND id = $4),"
        " page AS ("
        "  SELECT " SHARE_COLS ", s.created_at AS sort_at FROM payment_share_tracking s"
        "  WHERE s.account_id = $1 AND ($2::text IS NULL OR s.payment_id = $2)"
        "    AND ($3::text IS NULL OR s.party = $3)"
        "    AND ($4::text IS NULL OR (s.created_at, s.id) < (SELECT created_at, id FROM cursor))"
        "  ORDER BY s.created_at DESC, s.id DESC LIMIT $5::integer)"
        " SELECT $4::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
        "  pg.id, pg.payment_id, pg.kind, pg.refund_id, pg.position, pg.party,"
        "  pg.basis_points, pg.amount, pg.currency, pg.created_ms"
        " FROM (VALUES (1)) one LEFT JOIN page pg ON true"
        " ORDER BY pg.sort_at DESC, pg.id DESC",
    .nargs = 4,
};

static const char *const kind_names[] = {ACCESS_SHARE_KIND_LIST(ENUMSTR_NAME)};

const char *access_share_kind_str(access_share_kind_t k)
{
    return enumstr_name(kind_names, ENUMSTR_COUNT(kind_names), (int)k, "allocation");
}

static void read_share(const PGresult *r, int row, int c, access_share_row_t *out)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    access_get_text(r, row, c + 1, out->payment_id, sizeof(out->payment_id));
    char kind[16];
    access_get_text(r, row, c + 2, kind, sizeof(kind));
    int k = ACCESS_SHARE_ALLOCATION;
    enumstr_parse(kind_names, ENUMSTR_COUNT(kind_names), kind, &k);
    out->kind = (access_share_kind_t)k;
    access_get_text(r, row, c + 3, out->refund_id, sizeof(out->refund_id));
    out->position = (int)access_get_i64(r, row, c + 4);
    access_get_text(r, row, c + 5, out->party, sizeof(out->party));
    out->basis_points = (int32_t)access_get_i64(r, row, c + 6);
    out->amount = access_get_i64(r, row, c + 7);
    access_get_text(r, row, c + 8, out->currency, sizeof(out->currency));
    out->created_at_ms = access_get_i64(r, row, c + 9);
}

access_status_t access_shares_claim(access_tx_t *tx, const char *payment_id,
                                    access_share_claim_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &CLAIM, ACCESS_ARGS(payment_id), err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) == 1) {
        out->net_amount = access_get_i64(r, 0, 0);
        access_get_text(r, 0, 1, out->currency, sizeof(out->currency));
        PQclear(r);
        return ACCESS_OK;
    }
    PQclear(r);
    /* Nothing claimed: say why, from the row as it is now. */
    r = access_exec(tx, &CLAIM_WHY, ACCESS_ARGS(payment_id), err);
    if (r == NULL)
        return err->status;
    access_status_t st;
    if (PQntuples(r) != 1) {
        st = access_fail(err, ACCESS_NOT_FOUND, "payment_id",
                         "no payment with this id in the account");
    } else if (access_get_bool(r, 0, 1)) {
        st = access_fail(err, ACCESS_CONFLICT, "payment_id", "the payment is already allocated");
    } else {
        char status[16];
        access_get_text(r, 0, 0, status, sizeof(status));
        st = access_fail(err, ACCESS_CONFLICT, "payment_id",
                         "the payment is %s; only succeeded payments can be allocated", status);
    }
    PQclear(r);
    return st;
}

access_status_t access_shares_insert(access_tx_t *tx, const char *payment_id, const char *refund_id,
                                     const access_share_new_t *shares, size_t n,
                                     access_error_t *err)
{
    access_error_clear(err);
    if (n < 1 || n > ACCESS_SHARES_MAX)
        return access_fail(err, ACCESS_FAILED, NULL, "shares: %zu shares", n);
    json_t *rows = json_array();
    for (size_t i = 0; rows != NULL && i < n; i++) {
        char id[IDS_MAX];
        json_t *row =
            ids_new("sh", id, sizeof(id)) == 0
                ? json_pack("{s:s, s:i, s:s, s:i, s:I}", "id", id, "position", shares[i].position,
                            "party", shares[i].party, "basis_points", (int)shares[i].basis_points,
                            "amount", (json_int_t)shares[i].amount)
                : NULL;
        if (row == NULL || json_array_append_new(rows, row) != 0) {
            json_decref(rows);
            rows = NULL;
        }
    }
    char *text = rows != NULL ? json_dumps(rows, JSON_COMPACT) : NULL;
    json_decref(rows);
    if (text == NULL)
        return access_fail(err, ACCESS_FAILED, NULL, "shares: cannot encode the rows");
    PGresult *r = access_exec(tx, &INSERT, ACCESS_ARGS(payment_id, refund_id, text), err);
    free(text);
    if (r == NULL)
        return err->status;
    bool all = strtoull(PQcmdTuples(r), NULL, 10) == n;
    PQclear(r);
    if (!all)
        return access_fail(err, ACCESS_NOT_FOUND, "payment_id",
                           "no payment with this id in the account");
    return ACCESS_OK;
}

access_status_t access_shares_totals(access_tx_t *tx, const char *payment_id,
                                     access_share_total_t *rows, size_t *n, access_error_t *err)
{
    access_error_clear(err);
    *n = 0;
    PGresult *r = access_exec(tx, &TOTALS, ACCESS_ARGS(payment_id), err);
    if (r == NULL)
        return err->status;
    int count = PQntuples(r);
    access_status_t st = ACCESS_OK;
    for (int i = 0; st == ACCESS_OK && i < count; i++) {
        /* Positions 0…n−1, each with its allocation row: anything else is damage. */
        if (i >= ACCESS_SHARES_MAX || access_get_i64(r, i, 0) != i || access_get_null(r, i, 1)) {
            st = access_fail(err, ACCESS_FAILED, NULL,
                             "shares: payment %s has share rows without their allocation",
                             payment_id);
            break;
        }
        memset(&rows[i], 0, sizeof(rows[i]));
        access_get_text(r, i, 1, rows[i].party, sizeof(rows[i].party));
        rows[i].basis_points = (int32_t)access_get_i64(r, i, 2);
        rows[i].total = access_get_i64(r, i, 3);
    }
    if (st == ACCESS_OK)
        *n = (size_t)count;
    PQclear(r);
    return st;
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    (void)err;
    read_share(r, row, 1, out);
    return ACCESS_OK;
}

static const access_list_t PAGE = {
    .stmt = &LIST, .object = "share row", .row_size = sizeof(access_share_row_t), .read = list_row};

access_status_t access_shares_list(access_tx_t *tx, const char *payment_id, const char *party,
                                   const access_page_t *page, access_share_row_t *rows, int *n,
                                   bool *has_more, access_error_t *err)
{
    return access_list_page(tx, &PAGE, ACCESS_ARGS(payment_id, party), page, rows, n, has_more,
                            err);
}
