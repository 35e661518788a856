/* Must NOT compile: a raw libpq connection is not a tenant transaction. */
#include "access/logs.h"

#include <libpq-fe.h>

access_status_t bypass_with_connection(PGconn *conn, const access_log_entry_t *e,
                                       access_error_t *err);

access_status_t bypass_with_connection(PGconn *conn, const access_log_entry_t *e,
                                       access_error_t *err)
{
    return access_logs_insert(conn, e, err);
}
