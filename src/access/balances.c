/* balances — see access/balances.h; table account_balances (0002_payments.sql,
 * moved by the triggers of 0002 and 0003). */
#include "access/balances.h"

#include "access/settings.h"
#include "access_internal.h"
#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

/* The account's rows (of one currency when $2 is given), or else one zero row
 * in $2, the account's default_currency, or the default default ($3). */
static const access_stmt_t GET = {
    .name = "balances_get",
    .sql = "WITH own AS ("
           "  SELECT currency, available, pending_payouts, paid_out FROM account_balances"
           "  WHERE account_id = $1 AND ($2::text IS NULL OR currency = $2::text))"
           " SELECT currency, available, pending_payouts, paid_out FROM own"
           " UNION ALL"
           " SELECT coalesce($2::text, (SELECT default_currency FROM account_payment_settings"
           "                           WHERE account_id = $1), $3::text), 0, 0, 0"
           " WHERE NOT EXISTS (SELECT 1 FROM own)"
           " ORDER BY 1",
    .nargs = 2,
};

access_status_t access_balances_get(access_tx_t *tx, const char *currency, access_balance_t **rows,
                                    int *n, access_error_t *err)
{
    access_error_clear(err);
    *rows = NULL;
    *n = 0;
    PGresult *r =
        access_exec(tx, &GET, ACCESS_ARGS(currency, ACCESS_SETTINGS_DEFAULT_CURRENCY), err);
    if (r == NULL)
        return err->status;
    int count = PQntuples(r);
    if (count == 0) {
        PQclear(r);
        return access_fail(err, ACCESS_FAILED, NULL, "balances: no row from balances_get");
    }
    access_balance_t *out = mem_calloc((size_t)count, sizeof(*out));
    for (int i = 0; i < count; i++) {
        access_get_text(r, i, 0, out[i].currency, sizeof(out[i].currency));
        out[i].available = access_get_i64(r, i, 1);
        out[i].pending_payouts = access_get_i64(r, i, 2);
        out[i].paid_out = access_get_i64(r, i, 3);
    }
    PQclear(r);
    *rows = out;
    *n = count;
    return ACCESS_OK;
}
