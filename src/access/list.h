/* list — one page of a list type, the same way for every domain.
 *
 * A list statement takes the domain's filters as $2…, then starting_after
 * and limit + 1, and answers in one round trip (see logs.c): its first
 * column, cursor_ok, is false when starting_after names no object of the
 * account, and an outer LEFT JOIN always yields one row, so an unknown
 * cursor is told apart from an empty page; the object's columns start at 1
 * (all NULL on an empty page).
 *
 *   static access_status_t list_row(const PGresult *r, int row, void *out,
 *                                   access_error_t *err)
 *   {
 *       read_route(r, row, 1, out);
 *       return ACCESS_OK;
 *   }
 *   static const access_list_t PAGE = {.stmt = &LIST, .object = "payout route",
 *                                      .row_size = sizeof(access_route_t), .read = list_row};
 *   …
 *   return access_list_page(tx, &PAGE, NULL, page, rows, n, has_more, err);
 *
 * Private to src/access/. */
#ifndef TALLY_ACCESS_LIST_H
#define TALLY_ACCESS_LIST_H

#include "access_internal.h"

#include <stdbool.h>
#include <stddef.h>

/* Reads result row `row` of a page into *out. On failure *out owns nothing. */
typedef access_status_t (*access_list_read_t)(const PGresult *r, int row, void *out,
                                              access_error_t *err);

typedef struct access_list {
    const access_stmt_t *stmt; /* filters…, starting_after, limit + 1 (nargs counts them all) */
    const char *object;        /* names it in "no <object> with this id in the account" */
    size_t row_size;           /* of one element of the caller's row array */
    access_list_read_t read;
    void (*clear)(void *row); /* frees what a row owns; NULL when rows own nothing */
} access_list_t;

/* Fetches one page into rows (room for page->limit of them): refuses a limit
 * outside 1–100 (ACCESS_INVALID, field limit) and an unknown starting_after
 * (ACCESS_NOT_FOUND, field starting_after), runs list->stmt with filters
 * (stmt->nargs - 2 of them; NULL when there are none), reads at most
 * page->limit rows and sets *has_more. On any failure *n is 0 and no row
 * owns anything. */
access_status_t access_list_page(access_tx_t *tx, const access_list_t *list,
                                 const char *const *filters, const access_page_t *page, void *rows,
                                 int *n, bool *has_more, access_error_t *err);

#endif
