/* pooler — does a statement prepared by name outlive its transaction?
 *
 * Behind a connection pooler in transaction mode each transaction of a
 * client connection runs on whichever server connection is free. Unless the
 * pooler tracks prepared statements itself (PgBouncer 1.21 or later with
 * max_prepared_statements set), a statement prepared in one transaction is
 * missing in the next (SQLSTATE 26000) and one that another client prepared
 * is already there (42P05). TALLY_PREPARED_STATEMENTS=off avoids both; with
 * it on, the worker treats either as the database being unavailable and runs
 * pool_pooler_check before it resumes. */
#ifndef TALLY_POOL_POOLER_H
#define TALLY_POOL_POOLER_H

#include "pool/pool.h"

#include <stdbool.h>
#include <stddef.h>

/* Whether sqlstate is one a pooler that loses prepared statements causes:
 * 26000 (invalid_sql_statement_name) or 42P05 (duplicate_prepared_statement).
 * NULL is not. */
bool pool_pooler_sqlstate(const char *sqlstate);

typedef enum pool_pooler_result {
    POOL_POOLER_OK,          /* named statements survived (or no pooler is there) */
    POOL_POOLER_FAULT,       /* one vanished, or another client's was found */
    POOL_POOLER_UNREACHABLE, /* no answer: connecting or a statement failed otherwise */
} pool_pooler_result_t;

/* Opens two connections outside the pool (so that a pool of one still has
 * its slot), prepares the same named statement on each and runs it on each
 * again in a later message. A pooler in transaction mode hands the second
 * client the server connection the first one just used (PgBouncer reuses the
 * last released one), where the name is taken, and a later transaction a
 * server where it is missing; either is a fault. The statement is left in
 * place: behind such a pooler it makes the next check's first step fail on
 * that server, and closing the connections drops it anywhere else. Blocks
 * the calling thread, each step at most the pool's connect timeout; err says
 * what failed (no secrets). A check that passes proves no pooler is sound,
 * only that none misbehaved this time. */
pool_pooler_result_t pool_pooler_check(pool_t *pool, char *err, size_t errlen);

#endif
