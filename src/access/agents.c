/* agents — see access/agents.h; table account_agents (0004_codes_agents.sql). */
#include "access/agents.h"

#include "access_internal.h"
#include "common/ids.h"
#include "list.h"

#include <string.h>

/* The agent columns every statement returns, in read_agent's order. */
#define AGENT_COLS                                                                                 \
    "a.id, a.agent_id, a.role, a.share_basis_points,"                                              \
    " tally_epoch_ms(a.linked_at) AS linked_ms, tally_epoch_ms(a.updated_at) AS updated_ms"

/* An upsert: a concurrent first link of the same agent waits on the unique
 * index and then updates, instead of failing. $4 and $6 say whether role and
 * share were given; what was not given keeps its value. */
static const access_stmt_t LINK = {
    .name = "agents_link",
    .sql = "INSERT INTO account_agents AS a (account_id, id, agent_id, role, share_basis_points)"
           " VALUES ($1, $2, $3, $5, coalesce($7::integer, 0))"
           " ON CONFLICT (account_id, agent_id) DO UPDATE"
           " SET role = CASE WHEN $4::boolean THEN EXCLUDED.role ELSE a.role END,"
           "     share_basis_points = CASE WHEN $6::boolean THEN EXCLUDED.share_basis_points"
           "                               ELSE a.share_basis_points END,"
           "     updated_at = clock_timestamp()"
           " RETURNING " AGENT_COLS,
    .nargs = 6,
};

static const access_stmt_t UNLINK = {
    .name = "agents_unlink",
    .sql = "DELETE FROM account_agents a WHERE a.account_id = $1 AND a.agent_id = $2"
           " RETURNING " AGENT_COLS,
    .nargs = 1,
};

/* A page in one statement (as logs.c): cursor_ok tells an unknown
 * starting_after apart from an empty page. */
static const access_stmt_t LIST = {
    .name = "agents_list",
    .sql = "WITH cursor AS ("
           "  SELECT linked_at, id FROM account_agents WHERE account_id = $1 AND id = $3),"
           " page AS ("
           "  SELECT " AGENT_COLS ", a.linked_at AS sort_at FROM account_agents a"
           "  WHERE a.account_id = $1 AND ($2::text IS NULL OR a.role = $2)"
           "    AND ($3::text IS NULL OR (a.linked_at, a.id) < (SELECT linked_at, id FROM cursor))"
           "  ORDER BY a.linked_at DESC, a.id DESC LIMIT $4::integer)"
           " SELECT $3::text IS NULL OR EXISTS (SELECT 1 FROM cursor) AS cursor_ok,"
           "  pg.id, pg.agent_id, pg.role, pg.share_basis_points, pg.linked_ms, pg.updated_ms"
           " FROM (VALUES (1)) one LEFT JOIN page pg ON true"
           " ORDER BY pg.sort_at DESC, pg.id DESC",
    .nargs = 3,
};

/* Reads the AGENT_COLS starting at column c into *out. */
static void read_agent(const PGresult *r, int row, int c, access_agent_t *out)
{
    memset(out, 0, sizeof(*out));
    access_get_text(r, row, c + 0, out->id, sizeof(out->id));
    access_get_text(r, row, c + 1, out->agent_id, sizeof(out->agent_id));
    access_get_text(r, row, c + 2, out->role, sizeof(out->role));
    out->share_basis_points = (int32_t)access_get_i64(r, row, c + 3);
    out->linked_at_ms = access_get_i64(r, row, c + 4);
    out->updated_at_ms = access_get_i64(r, row, c + 5);
}

access_status_t access_agents_link(access_tx_t *tx, const access_agent_link_t *in,
                                   access_agent_t *out, access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    char id[IDS_MAX];
    if (ids_new("ag", id, sizeof(id)) != 0)
        return access_fail(err, ACCESS_FAILED, NULL, "agents: cannot make an id");
    char share[ACCESS_I64_LEN];
    PGresult *r = access_exec(
        tx, &LINK,
        ACCESS_ARGS(id, in->agent_id, in->set_role ? "true" : "false",
                    in->set_role ? in->role : NULL, in->set_share ? "true" : "false",
                    in->set_share ? access_fmt_i64(share, in->share_basis_points) : NULL),
        err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return access_fail(err, ACCESS_FAILED, NULL, "agents: the link returned no row");
    }
    read_agent(r, 0, 0, out);
    PQclear(r);
    return ACCESS_OK;
}

access_status_t access_agents_unlink(access_tx_t *tx, const char *agent_id, access_agent_t *out,
                                     access_error_t *err)
{
    access_error_clear(err);
    memset(out, 0, sizeof(*out));
    PGresult *r = access_exec(tx, &UNLINK, ACCESS_ARGS(agent_id), err);
    if (r == NULL)
        return err->status;
    access_status_t st = ACCESS_OK;
    if (PQntuples(r) == 1)
        read_agent(r, 0, 0, out);
    else
        st = access_fail(err, ACCESS_NOT_FOUND, "agent_id",
                         "no agent with this agent_id is linked to the account");
    PQclear(r);
    return st;
}

static access_status_t list_row(const PGresult *r, int row, void *out, access_error_t *err)
{
    (void)err;
    read_agent(r, row, 1, out);
    return ACCESS_OK;
}

static const access_list_t PAGE = {
    .stmt = &LIST, .object = "agent link", .row_size = sizeof(access_agent_t), .read = list_row};

access_status_t access_agents_list(access_tx_t *tx, const char *role, const access_page_t *page,
                                   access_agent_t *rows, int *n, bool *has_more,
                                   access_error_t *err)
{
    return access_list_page(tx, &PAGE, ACCESS_ARGS(role), page, rows, n, has_more, err);
}
