/* routes — the account_payout_routes table: where an account's payouts go
 * (route.*), and which route is its default.
 *
 * At most one live route per account is the default. Setting a default takes
 * a per-account lock and demotes the previous default in the same statement
 * that promotes the new one, so concurrent requests never leave two defaults
 * (nor fail on the partial unique index that stands behind this rule).
 * Deleting a route keeps its row for the payouts that name it; a deleted
 * route is missing for every function here. */
#ifndef TALLY_ACCESS_ROUTES_H
#define TALLY_ACCESS_ROUTES_H

#include "access/tx.h"

#include <stdbool.h>
#include <stdint.h>

#define ACCESS_ROUTE_ID_MAX          48   /* buffer for a Tally id ("rt_…") */
#define ACCESS_ROUTE_DESTINATION_MAX 1024 /* 255 characters of UTF-8, NUL-terminated */

typedef struct access_route {
    char id[ACCESS_ROUTE_ID_MAX];
    char kind[16]; /* "stripe_connect" or "bank_account" */
    char destination[ACCESS_ROUTE_DESTINATION_MAX];
    char currency[4]; /* "" when the route takes any currency */
    bool is_default;
    int64_t created_at_ms;
    int64_t updated_at_ms;
} access_route_t;

typedef struct access_route_upsert {
    const char *route_id; /* NULL creates a route; else that route is updated */
    const char *kind;
    const char *destination;
    bool set_currency;    /* on update: whether currency changes (on create it is always set) */
    const char *currency; /* NULL for any currency */
    bool set_default;     /* whether is_default is given (on create, absent means false) */
    bool is_default;      /* true demotes the account's previous default */
} access_route_upsert_t;

/* route.upsert: creates a route, or updates kind, destination and the fields
 * flagged set_. An unknown route_id → ACCESS_NOT_FOUND (field "route_id").
 * *out is the route afterwards. */
access_status_t access_routes_upsert(access_tx_t *tx, const access_route_upsert_t *in,
                                     access_route_t *out, access_error_t *err);

/* route.get; ACCESS_NOT_FOUND (field "route_id") when the account has no
 * such live route. */
access_status_t access_routes_get(access_tx_t *tx, const char *route_id, access_route_t *out,
                                  access_error_t *err);

/* route.list: live routes, newest first. rows has room for page->limit
 * entries; *n is how many were filled, *has_more whether older ones exist. An
 * unknown starting_after → ACCESS_NOT_FOUND (field "starting_after"). */
access_status_t access_routes_list(access_tx_t *tx, const access_page_t *page, access_route_t *rows,
                                   int *n, bool *has_more, access_error_t *err);

/* route.delete: locks the route, then deletes it unless a payout through it
 * is pending (ACCESS_CONFLICT, field "route_id"). A payout.create that locked
 * the route first is seen; one that comes later finds the route gone. *out
 * is the route as it was before the delete. */
access_status_t access_routes_delete(access_tx_t *tx, const char *route_id, access_route_t *out,
                                     access_error_t *err);

#endif
