/* Must NOT compile: a handler cannot reach sessions, which open a tenant
 * transaction for any account (access/session.h is the composition roots'
 * header, not on the handler layer's include path). */
#include "access/session.h"

access_status_t act_for_another_account(access_session_t *s, const access_account_t *other,
                                        access_error_t *err);

access_status_t act_for_another_account(access_session_t *s, const access_account_t *other,
                                        access_error_t *err)
{
    access_tx_t *tx = 0;
    return access_tx_begin(s, other, &tx, err);
}
