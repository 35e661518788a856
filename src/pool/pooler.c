/* pooler — see pool/pooler.h. */
#include "pool/pooler.h"

#include "pool_internal.h"

#include "common/clock.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#define CHECK_NAME "tally_pooler_check"
#define CHECK_SQL  "SELECT 1"

bool pool_pooler_sqlstate(const char *sqlstate)
{
    return sqlstate != NULL && (strcmp(sqlstate, "26000") == 0 || strcmp(sqlstate, "42P05") == 0);
}

/* Waits until pg has a whole result to hand out (or none left), at most
 * until deadline. A pooler may queue a client without limit: nothing here
 * waits on it longer than the connect timeout. */
static bool wait_idle(PGconn *pg, int64_t deadline)
{
    for (;;) {
        int unsent = PQflush(pg);
        if (unsent < 0)
            return false;
        if (unsent == 0 && !PQisBusy(pg))
            return true;
        int64_t left_ms = (deadline - clock_mono_ns()) / 1000000;
        if (left_ms <= 0)
            return false;
        struct pollfd pfd = {.fd = PQsocket(pg), .events = POLLIN | (unsent ? POLLOUT : 0)};
        if (pfd.fd < 0)
            return false;
        int n = poll(&pfd, 1, left_ms > 1000 ? 1000 : (int)left_ms);
        if (n < 0 && errno != EINTR)
            return false;
        if (n > 0 && (pfd.revents & ~POLLOUT) != 0 && !PQconsumeInput(pg))
            return false;
    }
}

/* Prepares the check statement on pg, or runs it (execute). */
static pool_pooler_result_t step(PGconn *pg, bool execute, int timeout_ms, char *err, size_t errlen)
{
    int64_t deadline = clock_mono_ns() + (int64_t)timeout_ms * 1000000;
    int sent = execute ? PQsendQueryPrepared(pg, CHECK_NAME, 0, NULL, NULL, NULL, 0)
                       : PQsendPrepare(pg, CHECK_NAME, CHECK_SQL, 0, NULL);
    PGresult *r = NULL;
    pool_pooler_result_t res = POOL_POOLER_UNREACHABLE;
    if (!sent || !wait_idle(pg, deadline)) {
        pool_set_err(err, errlen, "pooler check",
                     sent ? "no answer within the connect timeout" : PQerrorMessage(pg));
        return res;
    }
    r = PQgetResult(pg);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        res = POOL_POOLER_OK;
    } else {
        const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        if (pool_pooler_sqlstate(state) && PQstatus(pg) == CONNECTION_OK)
            res = POOL_POOLER_FAULT;
        pool_set_err(err, errlen, "pooler check",
                     r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    }
    PQclear(r);
    /* The end of the command (a NULL result) must be read before the next. */
    while (wait_idle(pg, deadline) && (r = PQgetResult(pg)) != NULL)
        PQclear(r);
    return res;
}

pool_pooler_result_t pool_pooler_check(pool_t *pool, char *err, size_t errlen)
{
    int timeout_ms = pool_connect_timeout_ms(pool);
    PGconn *first = pool_open_unpooled(pool, err, errlen);
    PGconn *second = first != NULL ? pool_open_unpooled(pool, err, errlen) : NULL;
    pool_pooler_result_t res = POOL_POOLER_UNREACHABLE;
    if (second != NULL) {
        /* first prepares, second prepares the same name, each runs it. */
        PGconn *order[] = {first, second, first, second};
        res = POOL_POOLER_OK;
        for (int i = 0; i < 4 && res == POOL_POOLER_OK; i++)
            res = step(order[i], i >= 2, timeout_ms, err, errlen);
    }
    if (first != NULL)
        PQfinish(first);
    if (second != NULL)
        PQfinish(second);
    return res;
}
