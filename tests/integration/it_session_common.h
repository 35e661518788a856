/* it_session_common — the fixture and helpers it_session.c and
 * it_session_pipelined.c share: a private PostgreSQL with the migrations
 * applied and a pool connected as the worker's role. */
#ifndef TALLY_IT_SESSION_COMMON_H
#define TALLY_IT_SESSION_COMMON_H

#include "harness.h"

#include "access/session.h"
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

typedef struct fixture {
    th_pg_t *pg;
    pool_t *pool;
} fixture_t;

/* For a cmocka group setup: the server, migrated, and a pool of `max`. */
static inline int session_fixture_start(void **state, int max, const char *application_name)
{
    fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    char url[256], err[256];
    th_pg_url(f->pg, "tally_worker", url, sizeof(url));
    pool_config_t cfg = {.conninfo = url, .max = max, .application_name = application_name};
    if (pool_new(&cfg, &f->pool, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    *state = f;
    return 0;
}

static inline int group_teardown(void **state)
{
    fixture_t *f = *state;
    pool_free(f->pool);
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

/* Asserts an access call succeeded; needs an access_error_t named err. */
#define OK(expr)                                                                                   \
    do {                                                                                           \
        access_status_t st_ = (expr);                                                              \
        if (st_ != ACCESS_OK)                                                                      \
            fail_msg("%s: %s (%s) %s", #expr, access_status_str(st_), err.sqlstate, err.message);  \
    } while (0)

static inline access_account_t tenant(const char *id)
{
    access_account_t a;
    assert_true(access_account_parse(id, strlen(id), &a));
    return a;
}

static inline pool_conn_t *borrow(fixture_t *f)
{
    pool_conn_t *c;
    char err[256];
    if (pool_acquire(f->pool, &c, err, sizeof(err)) != 0)
        fail_msg("pool_acquire: %s", err);
    return c;
}

#endif
