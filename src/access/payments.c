/* payments — see access/payments.h; tables stripe_payments and
 * stripe_payment_refunds (0002_payments.sql). */
#include "access/payments.h"

#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <stdlib.h>
#include <string.h>

/* The payment columns every statement returns, in read_payment's order. */
#define PAYMENT_COLS                                                                               \
    "p.id, p.external_id, p.amount, p.currency, p.status, p.amount_refunded,"                      \
    " p.allocated_at IS NOT NULL AS allocated, p.description, p.metadata::text AS metadata,"       \
    " tally_epoch_ms(p.created_at) AS created_ms, tally_epoch_ms(p.updated_at) AS updated_ms"
#define PAYMENT_NCOLS 11

static const access_errmap_t RECORD_ERRORS[] = {
    {"23505", "stripe_payments_external_id_key", ACCESS_CONFLICT, "external_id",
     "a payment with this external_id already exists in the account"},
    ACCESS_BALANCE_BOUNDS_ERRORS,
    {0},
};

/* Succeeding and refunding move the balance too. */
static const access_errmap_t BALANCE_ERRORS[] = {
    ACCESS_BALANCE_BOUNDS_ERRORS,
    {0},
};

static const access_stmt_t RECORD = {
    .name = "payments_record",
    .sql = "INSERT INTO stripe_payments AS p"
           " (account_id, id, external_id, amount, currency, status, description, metadata)"
           " VALUES ($1, $2, $3, $4::bigint, $5, $6, $7, coalesce($8::json, '{}'))"
           " RETURNING " PAYMENT_COLS,
    .nargs = 7,
    .errors = RECORD_ERRORS,
};

static const access_stmt_t GET = {
    .name = "payments_get",
    .sql = "SELECT " PAYMENT_COLS " FROM stripe_payments p WHERE p.account_id = $1 AND p.id = $2",
    .nargs = 1,
};

/* Only pending moves; the caller tells a no-op from a conflict afterwards. */
static const access_stmt_t UPDATE_STATUS = {
    .name = "payments_update_status",
    .sql = "UPDATE stripe_payments p SET status = $3, updated_at = clock_timestamp()"
           " WHERE p.account_id = $1 AND p.id = $2 AND p.status = 'pending'"
           "   AND $3 IN ('succeeded', 'failed')"
           " RETURNING " PAYMENT_COLS,
    .nargs = 2,
    .errors = BALANCE_ERRORS,
};

/* One statement per refund. `target` locks the payment and reads its rest
 * from the newest committed version (READ COMMITTED re-reads a row it waited
 * for), so "the rest" is exact even when refunds queue on one payment; the
 * UPDATE's own WHERE is the guard that never lets amount_refunded pass the
 * amount, with the CHECK constraint behind it. The outer LEFT JOINs always
 * yield one row: target missing → not found; target but no update → conflict. */
static const access_stmt_t REFUND = {
    .name = "payments_refund",
    .sql = "WITH target AS ("
           "  SELECT id, status, amount - amount_refunded AS rest FROM stripe_payments"
           "  WHERE account_id = $1 AND id = $2 FOR UPDATE),"
           " upd AS ("
           "  UPDATE stripe_payments p"
           "  SET amount_refunded = p.amount_refunded + coalesce($4::bigint, t.rest),"
           "      status = CASE WHEN p.amount_refunded + coalesce($4::bigint, t.rest) = p.amount"
           "                    THEN 'refunded' ELSE p.status END,"
           "      updated_at = clock_timestamp()"
           "  FROM target t"
           "  WHERE p.account_id = $1 AND p.id = t.id AND p.status = 'succeeded'"
           "    AND coalesce($4::bigint, t.rest) >= 1"
           "    AND p.amount_refunded + coalesce($4::bigint, t.rest) <= p.amount"
           "  RETURNING " PAYMENT_COLS ", coalesce($4::bigint, t.rest) AS refunded_now),"
           " ins AS ("
           "  INSERT INTO stripe_payment_refunds (account_id, id, payment_id, amount)"
           "  SELECT $1, $3, u.id, u.refunded_now FROM upd u"
           "  RETURNING id, amount, tally_epoch_ms(created_at) AS created_ms)"
           " SELECT t.status, t.rest,"
           "  u.id, u.external_id, u.amount, u.currency, u.status, u.amount_refunded, u.allocated,"
           "  u.description, u.metadata, u.created_ms, u.updated_ms,"
           "  i.id, i.amount, i.created_ms"
           " FROM (VALUES (1)) one LEFT JOIN target t ON true LEFT JOIN upd u ON true"
           " LEFT JOIN ins i ON true",
    .nargs = 3,
    .errors = BALANCE_ERRORS,
};

/* A page in one statement (as logs.c): cursor_ok tells an unknown
 * starting_after apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "payments_list",
    .sql =
        "WITH cursor AS ("
        "  SELECT created_at, id FROM stripe_payments WHERE account_id = $1 AND id = $3),"
        " page AS ("
        "  SELECT " PAYMENT_COLS ", p.created_at AS sort_at FROM stripe_payments p"
        "  WHERE p.account_id = $1 AND ($2::text IS NULL OR p.status = $2)"
        "    AND ($3::text IS NULL OR (p.created_at, p.id) < (SELECT created_at, id FROM cursor))"
        "  ORDER BY p.created_at DESC, p.id DESC LIMIT $4::integer)"
        " SELECT $3::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
        "  pg.id, pg.external_id, pg.amount, pg.currency, pg.status, pg.amount_refunded,"
        "  pg.allocated, pg.description, pg.metadata, pg.created_ms, pg.updated_ms"
        " FROM (VALUES (1)) one LEFT JOIN page pg ON true"
        " ORDER BY pg.sort_at DESC, pg.id DESC",
    .nargs = 3,
};

static const char *const status_names[] = {ACCESS_PAYMENT_STATUS_LIST(ENUMSTR_NAME)};

const char *access_payment_status_str(access_payment_status_t s)
{
    return enumstr_name(status_names, ENUMSTR_COUNT(status_names), (int)s, "?");
}

bool access_payment_status_parse(const char *s, access_payment_status_t *out)
{
    int v;
    if (!enumstr_parse(status_names, ENUMSTR_COUNT(status_names), s, &v))
        return false;
    *out = (access_payment_status_t)v;
    return true;
}

void access_payment_clear(access_payment_t *p)
{
    free(p->description);
    json_decref(p->metadata);
    memset(p, 0, sizeof(*p));
}

/* Reads the PAYMENT_COLS starting at column c into *out (which it clears). */
static access_status_t read_payment(const PGresult *r, int row, int c, access_payment_t *out,
                                    access_error_t *err)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    access_get_text(r, row, c + 1, out->external_id, sizeof(out->external_id));
    out->amount = access_get_i64(r, row, c + 2);
    access_get_text(r, row, c + 3, out->currency, sizeof(out->currency));
    char status[16];
    access_get_text(r, row, c + 4, status, sizeof(status));
    out->amount_refunded = access_get_i64(r, row, c + 5);
    out->allocated = access_get_bool(r, row, c + 6);
    out->created_at_ms = access_get_i64(r, row, c + 9);
    out->updated_at_ms = access_get_i64(r, row, c + 10);
    if (!access_payment_status_parse(status, &out->status))
        return access_fail(err, ACCESS_FAILED, NULL, "payments: unknown status in the row");
    out->description = access_get_dup(r, row, c + 7);
    out->metadata = json_loads(PQgetvalue(r, row, c + 8), 0, NULL);
    if (!json_is_object(out->metadata)) {
        access_payment_clear(out);
        return access_fail(err, ACCESS_FAILED, NULL, "payments: cannot read the row");
    }
    return ACCESS_OK;
}

access_status_t access_payments_record(access_tx_t *tx, const access_payment_new_t *in,
                                       access_payment_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    char id[IDS_MAX];
    if (ids_new("pay", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "payments: cannot make an id");
    char *metadata = NULL;
    if (in->metadata != NULL) {
        metadata = json_dumps(in->metadata, JSON_COMPACT);
        if (metadata == NULL)
            return access_fail(err, ACCESS_FAILED, NULL, "payments: cannot encode metadata");
    }
    char amount[ACCESS_I64_LEN];
    PGresult *r = access_exec(tx, &RECORD,
                              ACCESS_ARGS(id, in->external_id, access_fmt_i64(amount, in->amount),
                                          in->currency, access_payment_status_str(in->status),
                                          in->description, metadata),
                              err);
    free(metadata);
    if (r == NULL)
        return err->status;
    access_status_t st = read_payment(r, 0, 0, out, err);
    PQclear(r);
    return st;
}

access_status_t access_payments_get(access_tx_t *tx, const char *payment_id, access_payment_t *out,
                                    access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &GET, ACCESS_ARGS(payment_id), err);
    if (r == NULL)
        return err->status;
    access_status_t st = PQntuples(r) == 1 ? read_payment(r, 0, 0, out, err)
                                           : access_fail(err, ACCESS_NOT_FOUND, "payment_id",
                                                         "no payment with this id in the account");
    PQclear(r);
    return st;
}

access_status_t access_payments_update_status(access_tx_t *tx, const char *payment_id,
                                              access_payment_status_t status, access_payment_t *out,
                                              access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &UPDATE_STATUS,
                              ACCESS_ARGS(payment_id, access_payment_status_str(status)), err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) == 1) {
        access_status_t st = read_payment(r, 0, 0, out, err);
        PQclear(r);
        return st;
    }
    PQclear(r);
    /* Nothing moved: read the row as it is now (a fresh snapshot) to tell a
     * no-op from a forbidden transition. */
    access_status_t st = access_payments_get(tx, payment_id, out, err);
    if (st != ACCESS_OK || out->status == status)
        return st;
    access_payment_status_t current = out->status;
    access_payment_clear(out);
    return access_fail(err, ACCESS_CONFLICT, "status", "the payment is %s; it cannot become %s",
                       access_payment_status_str(current), access_payment_status_str(status));
}

access_status_t access_payments_refund(access_tx_t *tx, const char *payment_id, int64_t amount,
                                       access_payment_t *out, access_refund_t *refund,
                                       access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    memset(refund, 0, sizeof(*refund));
    char id[IDS_MAX];
    if (ids_new("re", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "payments: cannot make an id");
    char amount_text[ACCESS_I64_LEN];
    const char *amount_arg = amount > 0 ? access_fmt_i64(amount_text, amount) : NULL;
    PGresult *r = access_exec(tx, &REFUND, ACCESS_ARGS(payment_id, id, amount_arg), err);
    if (r == NULL)
        return err->status;

    access_status_t st = ACCESS_OK;
    if (PQntuples(r) != 1 || access_get_null(r, 0, 0)) {
        st = access_fail(err, ACCESS_NOT_FOUND, "payment_id",
                         "no payment with this id in the account");
    } else if (access_get_null(r, 0, 2)) {
        char status[16];
        access_get_text(r, 0, 0, status, sizeof(status));
        int64_t rest = access_get_i64(r, 0, 1);
        if (strcmp(status, "succeeded") != 0)
            st = access_fail(err, ACCESS_CONFLICT, NULL,
                             "the payment is %s; only succeeded payments can be refunded", status);
        else
            st = access_fail(err, ACCESS_CONFLICT, "amount",
                             "the amount exceeds the unrefunded amount of the payment (%lld)",
                             (long long)rest);
    } else {
        st = read_payment(r, 0, 2, out, err);
        if (st == ACCESS_OK) {
            access_get_text(r, 0, 2 + PAYMENT_NCOLS, refund->id, sizeof(refund->id));
            snprintf(refund->payment_id, sizeof(refund->payment_id), "%s", out->id);
            refund->amount = access_get_i64(r, 0, 3 + PAYMENT_NCOLS);
            refund->created_at_ms = access_get_i64(r, 0, 4 + PAYMENT_NCOLS);
        }
    }
    PQclear(r);
    return st;
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    return read_payment(r, row, 1, out, err);
}

static void list_clear(void *row)
{
    access_payment_clear(row);
}

static const access_list_t PAGE = {.stmt = &LIST,
                                   .object = "payment",
                                   .row_size = sizeof(access_payment_t),
                                   .read = list_row,
                                   .clear = list_clear};

access_status_t access_payments_list(access_tx_t *tx, const access_payment_status_t *status,
                                     const access_page_t *page, access_payment_t *rows, int *n,
                                     bool *has_more, access_error_t *err)
{
    const char *status_arg = status != NULL ? access_payment_status_str(*status) : NULL;
    return access_list_page(tx, &PAGE, ACCESS_ARGS(status_arg), page, rows, n, has_more, err);
}
