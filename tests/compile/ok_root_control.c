/* Must compile, with the same flags as the failing sources, when linked as a
 * composition root (tally_access_root): the headers the handler layer cannot
 * see exist and work, so the failures above are about visibility alone. */
#include "access/admin.h"
#include "access/migrate.h"
#include "access/schedule.h"
#include "access/session.h"
#include "access/sqlscan.h"

access_status_t open_for(access_session_t *s, const access_account_t *a, access_error_t *err);

access_status_t open_for(access_session_t *s, const access_account_t *a, access_error_t *err)
{
    access_tx_t *tx = 0;
    access_status_t st = access_tx_begin(s, a, &tx, err);
    if (st != ACCESS_OK)
        return st;
    return access_tx_end(tx, err);
}
