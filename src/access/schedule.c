/* schedule — see access/schedule.h. */
#include "access/schedule.h"

#include "access_internal.h"
#include "errline.h"
#include "common/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char DUE_SQL[] =
    "SELECT account_id, currency, amount, true FROM tally_payouts_due($1, $2)"
    " UNION ALL"
    " SELECT account_id, currency, amount, false FROM tally_payouts_unrouted($1, $2)"
    " ORDER BY 1, 2";

int access_schedule_due(const char *conninfo, const char *schedule, const char *period,
                        access_due_payout_t **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL;
    *n = 0;
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const vals[] = {"10", "tallyctl-payouts", conninfo, NULL};
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    PGresult *r = NULL;
    int rc = 0;
    if (pg == NULL || PQstatus(pg) != CONNECTION_OK) {
        rc = access_errline(err, errlen, "cannot connect to the database: %s",
                            pg != NULL ? PQerrorMessage(pg) : "out of memory");
        goto out;
    }
    const char *const params[] = {schedule, period};
    r = PQexecParams(pg, DUE_SQL, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = access_errline(err, errlen, "reading the due payouts: %s", PQresultErrorMessage(r));
        goto out;
    }
    int count = PQntuples(r);
    if (count > 0)
        *rows = mem_calloc((size_t)count, sizeof(**rows));
    for (int i = 0; i < count; i++) {
        access_due_payout_t *d = &(*rows)[i];
        access_get_text(r, i, 0, d->account_id, sizeof(d->account_id));
        access_get_text(r, i, 1, d->currency, sizeof(d->currency));
        d->amount = access_get_i64(r, i, 2);
        d->routed = access_get_bool(r, i, 3);
    }
    *n = (size_t)count;
out:
    PQclear(r);
    PQfinish(pg);
    return rc;
}
