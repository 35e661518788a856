/* agents — the account_agents table: agents linked to an account, each with
 * an optional role and a share in basis points.
 *
 * agent_id is the caller's id of the agent, unique in the account; id
 * ("ag_…") is the link's own id and the list cursor. Linking again updates
 * the link in place; unlinking deletes it, so a later link gets a new id. */
#ifndef TALLY_ACCESS_AGENTS_H
#define TALLY_ACCESS_AGENTS_H

#include "access/tx.h"

#include <stdbool.h>
#include <stdint.h>

#define ACCESS_AGENT_ID_MAX  48  /* buffer for a Tally id ("ag_…") */
#define ACCESS_AGENT_STR_MAX 257 /* 64 characters of UTF-8, NUL-terminated */

typedef struct access_agent {
    char id[ACCESS_AGENT_ID_MAX];
    char agent_id[ACCESS_AGENT_STR_MAX];
    char role[ACCESS_AGENT_STR_MAX]; /* "" when none */
    int32_t share_basis_points;      /* 0–10000 */
    int64_t linked_at_ms;
    int64_t updated_at_ms;
} access_agent_t;

typedef struct access_agent_link {
    const char *agent_id;       /* 1–64 characters */
    bool set_role;              /* false: a new link has no role, an existing one keeps its own */
    const char *role;           /* when set_role: 1–64 characters, or NULL to clear it */
    bool set_share;             /* false: a new link has 0, an existing one keeps its own */
    int32_t share_basis_points; /* when set_share: 0–10000 */
} access_agent_link_t;

/* agent.link: links the agent, or updates the fields set in *in when it is
 * linked already (one statement). */
access_status_t access_agents_link(access_tx_t *tx, const access_agent_link_t *in,
                                   access_agent_t *out, access_error_t *err);

/* agent.unlink: removes the link; *out is the link as it was. ACCESS_NOT_FOUND
 * (field "agent_id") when the agent is not linked to the account. */
access_status_t access_agents_unlink(access_tx_t *tx, const char *agent_id, access_agent_t *out,
                                     access_error_t *err);

/* agent.list: newest link first, optionally of one role (NULL for any). rows
 * has room for page->limit entries; *n is how many were filled and *has_more
 * whether older ones exist. An unknown starting_after → ACCESS_NOT_FOUND
 * (field "starting_after"). */
access_status_t access_agents_list(access_tx_t *tx, const char *role, const access_page_t *page,
                                   access_agent_t *rows, int *n, bool *has_more,
                                   access_error_t *err);

#endif
