/* logs — see access/logs.h; table payment_system_logs (0001_core.sql). */
#include "access/logs.h"

#include "access_internal.h"
#include "common/ids.h"

#include <stdio.h>
#include <string.h>

static const access_stmt_t INSERT = {
    .name = "logs_insert",
    .sql = "INSERT INTO payment_system_logs (account_id, id, request_id, type, status, "
           "error_code, replayed, at, duration_ms, worker, partition, \"offset\") "
           "VALUES ($1, $2, $3, $4, $5, $6, $7::boolean, tally_from_epoch_ms($8::bigint), "
           "$9::double precision, $10, $11::integer, $12::bigint)",
    .nargs = 11,
};

/* One statement for a page: the cursor row is looked up in the same account,
 * and the outer LEFT JOIN always yields one row, so an unknown starting_after
 * (cursor_ok false) is told apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "logs_list",
    .sql =
        "WITH cursor AS ("
        "  SELECT created_at, id FROM payment_system_logs WHERE account_id = $1 AND id = $3),"
        " page AS ("
        "  SELECT l.id, l.request_id, l.type, l.status, l.error_code, l.replayed,"
        "         tally_epoch_ms(l.at) AS at_ms, l.created_at"
        "  FROM payment_system_logs l"
        "  WHERE l.account_id = $1 AND ($2::text IS NULL OR l.type = $2)"
        "    AND ($3::text IS NULL OR (l.created_at, l.id) < (SELECT created_at, id FROM cursor))"
        "  ORDER BY l.created_at DESC, l.id DESC LIMIT $4::integer)"
        " SELECT $3::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
        "        p.id, p.request_id, p.type, p.status, p.error_code, p.replayed, p.at_ms"
        " FROM (VALUES (1)) one LEFT JOIN page p ON true"
        " ORDER BY p.created_at DESC, p.id DESC",
    .nargs = 3,
};

access_status_t access_logs_insert(access_tx_t *tx, const access_log_entry_t *e,
                                   access_error_t *err)
{
    access_error_clear(err);
    char id[IDS_MAX];
    if (ids_new("log", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "logs: cannot make an id");
    char at[ACCESS_I64_LEN], part[ACCESS_I64_LEN], off[ACCESS_I64_LEN], dur[32];
    snprintf(dur, sizeof(dur), "%.3f", e->duration_ms >= 0 ? e->duration_ms : 0.0);
    return access_exec_write(
        tx, &INSERT,
        ACCESS_ARGS(id, e->request_id, e->type, e->status, e->error_code,
                    e->replayed ? "true" : "false", access_fmt_i64(at, e->at_ms), dur,
                    e->worker != NULL ? e->worker : "", access_fmt_i64(part, e->partition),
                    access_fmt_i64(off, e->offset)),
        -1, NULL, err);
}

access_status_t access_logs_list(access_tx_t *tx, const char *type, const access_page_t *page,
                                 access_log_row_t *rows, int *n, bool *has_more,
                                 access_error_t *err)
{
    access_error_clear(err);
    *n = 0;
    *has_more = false;
    if (page->limit < 1 || page->limit > 100)
        return access_fail(err, ACCESS_INVALID, "limit", "limit must be between 1 and 100");
    char lim[ACCESS_I64_LEN];
    PGresult *r = access_exec(
        tx, &LIST, ACCESS_ARGS(type, page->starting_after, access_fmt_i64(lim, page->limit + 1)),
        err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) < 1 || !access_get_bool(r, 0, 0)) {
        PQclear(r);
        return access_fail(err, ACCESS_NOT_FOUND, "starting_after",
                           "no audit row with this id in the account");
    }
    int total = access_get_null(r, 0, 1) ? 0 : PQntuples(r);
    for (int i = 0; i < total && i < page->limit; i++) {
        access_log_row_t *row = &rows[i];
        access_get_text(r, i, 1, row->id, sizeof(row->id));
        access_get_text(r, i, 2, row->request_id, sizeof(row->request_id));
        access_get_text(r, i, 3, row->type, sizeof(row->type));
        access_get_text(r, i, 4, row->status, sizeof(row->status));
        access_get_text(r, i, 5, row->error_code, sizeof(row->error_code));
        row->replayed = access_get_bool(r, i, 6);
        row->at_ms = access_get_i64(r, i, 7);
        (*n)++;
    }
    *has_more = total > page->limit;
    PQclear(r);
    return ACCESS_OK;
}
