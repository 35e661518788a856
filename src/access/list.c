/* list — see list.h. */
#include "list.h"

access_status_t access_list_page(access_tx_t *tx, const access_list_t *list,
                                 const char *const *filters, const access_page_t *page, void *rows,
                                 int *n, bool *has_more, access_error_t *err)
{
    access_error_clear(err);
    *n = 0;
    *has_more = false;
    if (page->limit < 1 || page->limit > 100)
        return access_fail(err, ACCESS_INVALID, "limit", "limit must be between 1 and 100");
    int nfilters = list->stmt->nargs - 2;
    if (nfilters < 0 || nfilters + 2 >= ACCESS_MAX_ARGS)
        return access_fail(err, ACCESS_FAILED, NULL, "%s: bad argument count", list->stmt->name);
    const char *args[ACCESS_MAX_ARGS];
    for (int i = 0; i < nfilters; i++)
        args[i] = filters[i];
    char lim[ACCESS_I64_LEN];
    args[nfilters] = page->starting_after;
    args[nfilters + 1] = access_fmt_i64(lim, page->limit + 1);

    PGresult *r = access_exec(tx, list->stmt, args, err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) < 1 || !access_get_bool(r, 0, 0)) {
        PQclear(r);
        return access_fail(err, ACCESS_NOT_FOUND, "starting_after",
                           "no %s with this id in the account", list->object);
    }
    int total = access_get_null(r, 0, 1) ? 0 : PQntuples(r);
    char *row = rows;
    for (int i = 0; i < total && i < page->limit; i++, row += list->row_size) {
        access_status_t st = list->read(r, i, row, err);
        if (st != ACCESS_OK) {
            for (int k = 0; list->clear != NULL && k < i; k++)
                list->clear((char *)rows + (size_t)k * list->row_size);
            *n = 0;
            PQclear(r);
            return st;
        }
        (*n)++;
    }
    *has_more = total > page->limit;
    PQclear(r);
    return ACCESS_OK;
}
