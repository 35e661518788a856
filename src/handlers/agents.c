/* agents — the agent.* job types (CONTRACT.md §6, account_agents). */
#include "handler_internal.h"

#include "access/agents.h"

/* ---- Payload schemas ---------------------------------------------------- */

// clang-format off
#define AGENT_ID_FIELD                                                                             \
    {.name = "agent_id", .type = SCHEMA_STRING, .required = true, .min_len = 1, .max_len = 64,     \
     .doc = "Your id of the agent; one link per agent and account."}
// clang-format on

static const schema_field_t link_fields[] = {
    AGENT_ID_FIELD,
    {.name = "role",
     .type = SCHEMA_STRING,
     .nullable = true,
     .min_len = 1,
     .max_len = 64,
     .doc = "The agent's role in the account; null clears it. Absent: a new link has none, "
            "an existing one keeps its own."},
    {.name = "share_basis_points",
     .type = SCHEMA_INTEGER,
     .min = 0,
     .max = 10000,
     .doc = "The agent's share in 1/10000. Absent: a new link has 0, an existing one keeps "
            "its own."},
    {0},
};
static const schema_object_t link_schema = {.fields = link_fields};

static const schema_field_t unlink_fields[] = {
    AGENT_ID_FIELD,
    {0},
};
static const schema_object_t unlink_schema = {.fields = unlink_fields};

static const schema_field_t list_fields[] = {
    HANDLER_LIST_FIELDS,
    {.name = "role",
     .type = SCHEMA_STRING,
     .min_len = 1,
     .max_len = 64,
     .doc = "Only agents with this role."},
    {0},
};
static const schema_object_t list_schema = {.fields = list_fields};

/* ---- Results ------------------------------------------------------------- */

static json_t *agent_json(const access_agent_t *a)
{
    return json_pack("{s:s, s:s, s:s?, s:i, s:s, s:s}", "id", a->id, "agent_id", a->agent_id,
                     "role", handler_nonempty(a->role), "share_basis_points",
                     (int)a->share_basis_points, "linked_at", handler_time(a->linked_at_ms).s,
                     "updated_at", handler_time(a->updated_at_ms).s);
}

static handler_status_t answer_agent(const access_agent_t *a, json_t **result, handler_error_t *err)
{
    *result = json_pack("{s:o}", "agent", agent_json(a));
    return *result != NULL ? HANDLER_OK : handler_oom(err);
}

/* ---- Job types ------------------------------------------------------------ */

static handler_status_t link_agent(access_tx_t *tx, const json_t *p, json_t **result,
                                   handler_error_t *err)
{
    access_agent_link_t in = {
        .agent_id = handler_arg_str(p, "agent_id"),
        .set_role = handler_arg_has(p, "role"),
        .role = handler_arg_str(p, "role"), /* NULL for null: clear */
        .set_share = handler_arg_has(p, "share_basis_points"),
        .share_basis_points = (int32_t)handler_arg_int(p, "share_basis_points", 0),
    };
    access_agent_t a;
    access_error_t aerr;
    if (access_agents_link(tx, &in, &a, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_agent(&a, result, err);
}

static handler_status_t unlink_agent(access_tx_t *tx, const json_t *p, json_t **result,
                                     handler_error_t *err)
{
    access_agent_t a;
    access_error_t aerr;
    if (access_agents_unlink(tx, handler_arg_str(p, "agent_id"), &a, &aerr) != ACCESS_OK)
        return handler_access_error(&aerr, err);
    return answer_agent(&a, result, err);
}

static json_t *agent_item(const void *row)
{
    return agent_json(row);
}

static handler_status_t list(access_tx_t *tx, const json_t *p, json_t **result,
                             handler_error_t *err)
{
    handler_list_t l;
    handler_list_begin(&l, p, sizeof(access_agent_t));
    access_status_t st = access_agents_list(tx, handler_arg_str(p, "role"), &l.page, l.rows, &l.n,
                                            &l.has_more, &l.aerr);
    return handler_list_end(&l, st, agent_item, NULL, result, err);
}

const handler_t handlers_agents[] = {
    {.name = "agent.link",
     .summary = "Links an agent to the account, or updates the link's role and share when it "
                "is linked already.",
     .schema = &link_schema,
     .execute = link_agent},
    {.name = "agent.unlink",
     .summary = "Removes an agent's link and answers the link as it was; an agent that is not "
                "linked is not_found.",
     .schema = &unlink_schema,
     .execute = unlink_agent},
    {.name = "agent.list",
     .summary = "The agents linked to the account, newest link first.",
     .schema = &list_schema,
     .execute = list},
    {0},
};
