/* admin — database work that is not tenant work: the worker's start-up check
 * of its own role, and the pruning of expired request outcomes.
 *
 * Both take a borrowed pool connection outside any session (they run in
 * autocommit) and are for the worker's wiring only, never for handlers. */
#ifndef TALLY_ACCESS_ADMIN_H
#define TALLY_ACCESS_ADMIN_H

#include "access/status.h"

#include <stddef.h>
#include <stdint.h>

struct pool_conn;

/* Checks that the connection's role cannot get around row-level security:
 * refuses (ACCESS_INVALID, one clear line in problem) a superuser, a role with
 * BYPASSRLS or CREATEROLE, a member of such a role, a role that owns (or is a member of the
 * owner of) a tenant table (any table with an account_id column), and a role
 * that is not a member of tally_app. ACCESS_OK means the role is fit to run
 * the worker; other statuses mean the check itself failed (err says why). */
access_status_t access_admin_check_worker_role(struct pool_conn *conn, char *problem,
                                               size_t problem_size, access_error_t *err);

/* Deletes stored outcomes older than `days` (≥ 1) in every account, through
 * the SECURITY DEFINER function tally_prune_outcomes, and reports how many. */
access_status_t access_admin_prune_outcomes(struct pool_conn *conn, int days, int64_t *deleted,
                                            access_error_t *err);

#endif
