/* Must NOT compile: a tenant transaction cannot be declared (or forged)
 * outside src/access/; it only comes from access_tx_begin. */
#include "access/logs.h"

access_status_t forge_a_transaction(const access_log_entry_t *e, access_error_t *err);

access_status_t forge_a_transaction(const access_log_entry_t *e, access_error_t *err)
{
    access_tx_t tx;
    return access_logs_insert(&tx, e, err);
}
