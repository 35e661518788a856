/* handler_internal — how a job type is written inside src/handlers/.
 *
 * A job type is a struct handler: its name, the declarative schema of its
 * payload (schema.h) and a straight-line execute function. The worker calls
 * handler_validate, then handler_execute, which validates again, fills the
 * schema's top-level defaults in and calls execute with the completed payload,
 * so execute may read every field without re-checking types or bounds.
 *
 * Adding a domain ("routes"):
 *   1. src/handlers/routes.c defines the payload schemas, the execute
 *      functions and a table `const handler_t handlers_routes[]` ended by
 *      {0}; declare it below (HANDLER_DOMAIN) and list it in `domains[]` in
 *      handler.c. Nothing else registers a type.
 *   2. execute reads arguments with handler_arg_*, calls access functions,
 *      turns access errors into answers with handler_access_error, and builds
 *      the result with json_pack plus the helpers below:
 *
 *   static handler_status_t route_get(access_tx_t *tx, const json_t *p, json_t **result,
 *                                     handler_error_t *err)
 *   {
 *       access_route_t r;
 *       access_error_t aerr;
 *       if (access_routes_get(tx, handler_arg_str(p, "route_id"), &r, &aerr) != ACCESS_OK)
 *           return handler_access_error(&aerr, err);
 *       *result = json_pack("{s:{s:s, s:s, s:s?, s:s}}", "route", "id", r.id, "kind", r.kind,
 *                           "currency", handler_nonempty(r.currency),
 *                           "created_at", handler_time(r.created_at_ms).s);
 *       return *result != NULL ? HANDLER_OK : handler_oom(err);
 *   }
 *
 *   3. docs/schemas/<type>.json and the type's table in docs/JOB_TYPES.md
 *      are generated from the schema (see tests/schemas/): place the type
 *      in docs/JOB_TYPES.md.in as a line {{type <type>}} with its rules in
 *      prose, regenerate with `cmake --build build --target
 *      tally-schemas-update`, and add docs/schemas/examples/<type>.valid.json
 *      and .invalid.json; the schemas ctests fail until all of it is there.
 *
 * Rules of the house: no SQL, libpq, pool or Kafka here; money is int64_t;
 * business outcomes are HANDLER_REJECTED with a contract code; infrastructure
 * outcomes come only from handler_access_error. */
#ifndef TALLY_HANDLERS_INTERNAL_H
#define TALLY_HANDLERS_INTERNAL_H

#include "handlers/handler.h"
#include "schema.h"

#include "access/tx.h"
#include "common/clock.h"
#include "common/errcode.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Runs a validated payload with its defaults filled in. On HANDLER_OK sets
 * *result to a new reference; otherwise leaves it NULL and fills err. */
typedef handler_status_t (*handler_execute_fn)(access_tx_t *tx, const json_t *payload,
                                               json_t **result, handler_error_t *err);

struct handler {
    const char *name;              /* the job type, "payment.record"; NULL ends a table */
    const char *summary;           /* one sentence: the JSON Schema's description */
    const schema_object_t *schema; /* the payload */
    handler_execute_fn execute;
};

/* The domain tables, each ended by {0}; handler.c lists them in `domains[]`. */
#define HANDLER_DOMAIN(d) extern const handler_t handlers_##d[]
HANDLER_DOMAIN(payments);
HANDLER_DOMAIN(shares);
HANDLER_DOMAIN(payouts);
HANDLER_DOMAIN(routes);
HANDLER_DOMAIN(settings);
HANDLER_DOMAIN(codes);
HANDLER_DOMAIN(agents);
HANDLER_DOMAIN(audit);

/* ---- Reading a validated payload ------------------------------------------ */

/* The string field name, or NULL when absent or null. */
const char *handler_arg_str(const json_t *payload, const char *name);

/* The integer field name, or dflt when absent or null. */
int64_t handler_arg_int(const json_t *payload, const char *name, int64_t dflt);

/* The boolean field name, or dflt when absent or null. */
bool handler_arg_bool(const json_t *payload, const char *name, bool dflt);

/* Whether the field is present (null counts as present: "clear it"). */
bool handler_arg_has(const json_t *payload, const char *name);

/* ---- Building results -------------------------------------------------------- */

/* A formatted time. Use the member inline, e.g. in json_pack arguments:
 * handler_time(row.created_at_ms).s lives until the end of the full
 * expression; for an optional time, `has ? handler_time(ms).s : NULL` with "s?". */
typedef struct handler_time {
    char s[CLOCK_RFC3339_LEN + 1];
} handler_time_t;
handler_time_t handler_time(int64_t epoch_ms);

/* s, or NULL when s is "" (fixed-size row fields use "" for SQL NULL); pair
 * with json_pack's "s?" to emit null. */
const char *handler_nonempty(const char *s);

/* {"data": data, "has_more": has_more}; steals data. NULL on failure. */
json_t *handler_list_result(json_t *data, bool has_more);

/* ---- Lists: `limit` (1–100, default 20) and `starting_after` ---------------- */

#define HANDLER_LIST_LIMIT_DEFAULT 20
#define HANDLER_LIST_LIMIT_MAX     100

/* The two paging fields, for a list type's field table:
 *   static const schema_field_t list_fields[] = {HANDLER_LIST_FIELDS, {.name = "status", …}, {0}};
 */
// clang-format off
#define HANDLER_LIST_FIELDS                                                                        \
    {.name = "limit", .type = SCHEMA_INTEGER, .min = 1, .max = HANDLER_LIST_LIMIT_MAX,             \
     .default_json = "20", .doc = "Page size."},                                                   \
    {.name = "starting_after", .type = SCHEMA_ID,                                                  \
     .doc = "The id of the last object of the previous page; the page holds older ones."}
// clang-format on

/* The page the payload asks for. page->starting_after points into payload. */
void handler_page(const json_t *payload, access_page_t *page);

/* A list type's execute, in three steps:
 *
 *   handler_list_t l;
 *   handler_list_begin(&l, p, sizeof(access_route_t));
 *   access_status_t st = access_routes_list(tx, &l.page, l.rows, &l.n, &l.has_more, &l.aerr);
 *   return handler_list_end(&l, st, route_item, NULL, result, err);
 *
 * where route_item(const void *row) returns one row's JSON (NULL when out of
 * memory). */
typedef struct handler_list {
    access_page_t page; /* from the payload (handler_page) */
    void *rows;         /* room for page.limit rows, zeroed */
    size_t row_size;
    int n; /* rows the access call filled */
    bool has_more;
    access_error_t aerr;
} handler_list_t;

/* Reads the page and allocates its rows (common/mem.h: never fails). */
void handler_list_begin(handler_list_t *l, const json_t *payload, size_t row_size);

/* Answers {"data": [item(row)…], "has_more"} when st is ACCESS_OK, otherwise
 * l->aerr as handler_access_error does. Items stop before the page's JSON
 * would pass HANDLER_LIST_PAGE_MAX_BYTES (the first item always goes in);
 * then has_more is true, and the next page, starting after the last item
 * given, continues exactly. clear (may be NULL) frees what each filled row
 * owns; the rows themselves are freed either way. */
handler_status_t handler_list_end(handler_list_t *l, access_status_t st,
                                  json_t *(*item)(const void *row), void (*clear)(void *row),
                                  json_t **result, handler_error_t *err);

/* ---- Answers ----------------------------------------------------------------- */

/* Turns a failed access call into the handler's answer: NOT_FOUND → not_found,
 * CONFLICT → conflict, INSUFFICIENT_FUNDS → insufficient_funds, INVALID →
 * invalid_request (all HANDLER_REJECTED, keeping the access layer's field and
 * message); RETRY, UNAVAILABLE and FAILED → the matching handler status with
 * code internal (the message is for the log only). */
handler_status_t handler_access_error(const access_error_t *aerr, handler_error_t *err);

/* A contract error answer: fills err and returns HANDLER_REJECTED. field may
 * be NULL or "". */
handler_status_t handler_reject(handler_error_t *err, tally_errcode_t code, const char *field,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The result could not be built (allocation failure): HANDLER_FAILED. */
handler_status_t handler_oom(handler_error_t *err);

#endif
