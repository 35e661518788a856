/* Must NOT compile: a handler cannot reach admin work across accounts
 * (access/admin.h, like session.h, migrate.h, schedule.h and sqlscan.h, is
 * for the composition roots only). */
#include "access/admin.h"

access_status_t prune_everyone(struct pool_conn *conn, access_error_t *err);

access_status_t prune_everyone(struct pool_conn *conn, access_error_t *err)
{
    int64_t deleted = 0;
    return access_admin_prune_outcomes(conn, 1, &deleted, err);
}
