/* Must NOT compile: an access function called without its tenant transaction. */
#include "access/logs.h"

access_status_t call_without_tenant(const access_log_entry_t *e, access_error_t *err);

access_status_t call_without_tenant(const access_log_entry_t *e, access_error_t *err)
{
    return access_logs_insert(e, err);
}
