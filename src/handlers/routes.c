/* routes — the route.* job types (CONTRACT.md §6, account_payout_routes). */
#include "handler_internal.h"

#include "access/routes.h"

/* ---- Payload schemas ---------------------------------------------------- */

static const char *const kinds[] = {"stripe_connect", "bank_account", NULL};

static const schema_field_t upsert_fields[] = {
    {.name = "route_id",
     .type = SCHEMA_ID,
     .doc = "The route to update (rt_…); absent: a new route is created."},
    {.name = "kind", .type = SCHEMA_ENUM, .required = true, .values = kinds},
    {.name = "destination",
     .type = SCHEMA_STRING,
     .required = true,
     .min_len = 1,
     .max_len = 255,
     .doc = "Where the money goes: a connected account id (acct_…) or a bank account token."},
    {.name = "currency",
     .type = SCHEMA_CURRENCY,
     .nullable = true,
     .doc = "The only currency the route takes; null or absent on create: any. Absent on "
            "update: unchanged."},
    {.name = "is_default",
     .type = SCHEMA_BOOLEAN,
     .doc = "true makes it the account's default route and demotes the previous one. Absent on "
            "create: false; on update: unchanged."},
    {0},
};
static const schema_object_t upsert_schema = {.fields = upsert_fields};

static const schema_field_t id_fields[] = {
    {.name = "route_id", .type = SCHEMA_ID, .required = true, .doc = "The route's id (rt_…)."},
    {0},
};
static const schema_object_t id_schema = {.fields = id_fields};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Results ------------------------------------------------------------- */

static json_t *route_json(const access_route_t *r)
{
    return json_pack("{s:s, s:s, s:s, s:s?, s:b, s:s, s:s}", "id", r->id, "kind", r->kind,
                     "destination", r->destination, "currency", handler_nonempty(r->currency),
                     "is_default", r->is_default, "created_at", handler_time(r->created_at_ms).s,
                     "updated_at", handler_time(r->updated_at_ms).s);
}

static handler_status_t answer_route(const access_route_t *r, json_t **result, handler_error_t *err)
{
    *result = json_pack("{s:o}", "route", route_json(r));
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t upsert(access_tx_t *tx, const json_t *p, json_t **result,
                               handler_error_t *err)
{
    access_route_upsert_t in = {
        .route_id = handler_arg_str(p, "route_id"),
        .kind = handler_arg_str(p, "kind"),
        .destination = handler_arg_str(p, "destination"),
        .set_currency = handler_arg_has(p, "currency"),
        .currency = handler_arg_str(p, "currency"),
        .set_default = handler_arg_has(p, "is_default"),
        .is_default = handler_arg_bool(p, "is_default", false),
    };
    access_route_t r;
    access_error_t aerr;
    if (access_routes_upsert(tx, &in, &r, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_route(&r, result, err);
}

static handler_status_t get(access_tx_t *tx, const json_t *p, json_t **result, handler_error_t *err)
{
    access_route_t r;
    access_error_t aerr;
    if (access_routes_get(tx, handler_arg_str(p, "route_id"), &r, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_route(&r, result, err);
}

static json_t *route_item(const void *row)
{
    return route_json(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_route_t));
    access_status_t st = access_routes_list(tx, &l.page, l.rows, &l.n, &l.has_more, &l.aerr);
    return handler_list_end(&l, st, route_item, NULL, result, err);
}

/* {"route": the route as it was, "deleted": true}. */
static handler_status_t delete (access_tx_t *tx, const json_t *p, json_t **result,
                                handler_error_t *err)
{
    access_route_t r;
    access_error_t aerr;
    if (access_routes_delete(tx, handler_arg_str(p, "route_id"), &r, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    *result = json_pack("{s:o, s:b}", "route", route_json(&r), "deleted", 1);
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

const handler_t handlers_routes[] = {
    {.name = "route.upsert",
     .summary = "Creates a payout route, or updates one given its route_id; at most one route of "
                "the account is its default.",
     .schema = &upsert_schema,
     .execute = upsert},
    {.name = "route.get",
     .summary = "One payout route of the account.",
     .schema = &id_schema,
     .execute = get},
    {.name = "route.list",
     .summary = "The account's payout routes, newest first.",
     .schema = &list_schema,
     .execute = list},
    {.name = "route.delete",
     .summary = "Deletes a payout route; refused (conflict) while a payout through it is pending.",
     .schema = &id_schema,
     .execute = delete},
    {0},
};
