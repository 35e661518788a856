#include "sqlstate.h"

#include "pool/pooler.h"

#include <string.h>

access_status_t access_classify(const char *sqlstate, bool connection_bad)
{
    if (connection_bad || sqlstate == NULL || strlen(sqlstate) != 5)
        return ACCESS_UNAVAILABLE;

    /* Transient: the same statement may succeed on a new attempt. */
    static const char *const retry[] = {
        "40001", /* serialization_failure */
        "40P01", /* deadlock_detected */
        "55P03", /* lock_not_available (lock_timeout) */
        "57014", /* query_canceled (statement_timeout) */
    };
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        if (strcmp(sqlstate, retry[i]) == 0)
            return ACCESS_RETRY;
    }

    /* The connection or the server is going away: use another connection.
     * Class 08 is connection_exception, class 53 insufficient_resources (too
     * many connections, disk full, out of memory). */
    if (strncmp(sqlstate, "08", 2) == 0 || strncmp(sqlstate, "53", 2) == 0)
        return ACCESS_UNAVAILABLE;
    /* A transaction pooler that lost a prepared statement (26000) or handed
     * us another client's (42P05): no request is at fault (pool/pooler.h). */
    if (pool_pooler_sqlstate(sqlstate))
        return ACCESS_UNAVAILABLE;
    static const char *const gone[] = {
        "57P01", /* admin_shutdown (also pg_terminate_backend) */
        "57P02", /* crash_shutdown */
        "57P03", /* cannot_connect_now (starting up, recovery) */
        "57P04", /* database_dropped */
        "57P05", /* idle_session_timeout */
        "25006", /* read_only_sql_transaction: a standby after a failover */
    };
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        if (strcmp(sqlstate, gone[i]) == 0)
            return ACCESS_UNAVAILABLE;
    }

    /* Permanent: a retry sends the same values and meets the same rows. */
    if (strncmp(sqlstate, "22", 2) == 0)
        return ACCESS_INVALID;
    if (strncmp(sqlstate, "23", 2) == 0)
        return ACCESS_CONFLICT;
    return ACCESS_FAILED;
}
