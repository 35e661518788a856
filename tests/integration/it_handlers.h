/* it_handlers — running job types below the worker, for the handler
 * integration tests (it_payments.c, it_shares.c, and later domains).
 *
 * it_run() does what an executor does with one request: validate the
 * payload, open a session and a tenant transaction on a pooled connection,
 * execute, then commit the effects (ok), roll them back (a rejection) or
 * abort (an infrastructure failure). It never calls cmocka, so threads may
 * use it; it_ok() and it_reject() assert on the main thread. */
#ifndef TALLY_IT_HANDLERS_H
#define TALLY_IT_HANDLERS_H

#include "harness.h"

#include "access/session.h"
#include "handlers/handler.h"
#include "pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

typedef struct it_answer {
    handler_status_t status; /* HANDLER_FAILED also for a test-side failure (see err.message) */
    json_t *result;          /* on HANDLER_OK; the caller json_decref()s it */
    handler_error_t err;
} it_answer_t;

static inline it_answer_t it_fail(const char *what, const char *why)
{
    it_answer_t a = {.status = HANDLER_FAILED};
    a.err.code = TALLY_ERR_INTERNAL;
    snprintf(a.err.message, sizeof(a.err.message), "%s: %s", what, why);
    return a;
}

/* Runs one request of type in account with the payload given as JSON text. */
static inline it_answer_t it_run_text(pool_t *pool, const char *account, const char *type,
                                      const char *payload_text)
{
    const handler_t *h = handler_find(type);
    if (h == NULL)
        return it_fail(type, "unknown job type");
    access_account_t acct;
    if (!access_account_parse(account, strlen(account), &acct))
        return it_fail(account, "bad account id");
    json_error_t jerr;
    json_t *payload = json_loads(payload_text, 0, &jerr);
    if (payload == NULL)
        return it_fail(payload_text, jerr.text);

    it_answer_t a = {.status = HANDLER_REJECTED};
    if (!handler_validate(h, payload, &a.err)) {
        json_decref(payload);
        return a;
    }
    char why[256];
    pool_conn_t *conn;
    if (pool_acquire(pool, &conn, why, sizeof(why)) != 0) {
        json_decref(payload);
        return it_fail("pool_acquire", why);
    }
    access_session_t *s = NULL;
    access_tx_t *tx = NULL;
    access_error_t aerr;
    if (access_session_begin(conn, &s, &aerr) != ACCESS_OK) {
        a = it_fail("access_session_begin", aerr.message);
        goto out;
    }
    if (access_tx_begin(s, &acct, &tx, &aerr) != ACCESS_OK) {
        a = it_fail("access_tx_begin", aerr.message);
        access_session_abort(s);
        goto out;
    }
    a.status = handler_execute(h, tx, payload, &a.result, &a.err);
    if (a.status == HANDLER_OK || a.status == HANDLER_REJECTED) {
        if ((a.status == HANDLER_REJECTED && access_tx_rollback(tx, &aerr) != ACCESS_OK) ||
            access_tx_end(tx, &aerr) != ACCESS_OK) {
            json_decref(a.result);
            a = it_fail("ending the tenant transaction", aerr.message);
            access_session_abort(s);
            goto out;
        }
        if (access_session_commit(s, &aerr) != ACCESS_OK) {
            json_decref(a.result);
            a = it_fail("access_session_commit", aerr.message);
        }
    } else {
        access_session_abort(s);
    }
out:
    pool_release(pool, conn);
    json_decref(payload);
    return a;
}

/* it_run_text with a printf-style payload. */
static inline it_answer_t it_run(pool_t *pool, const char *account, const char *type,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static inline it_answer_t it_run(pool_t *pool, const char *account, const char *type,
                                 const char *fmt, ...)
{
    char text[16384];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(text))
        return it_fail(type, "payload too long for the test buffer");
    return it_run_text(pool, account, type, text);
}

static inline const char *it_status_str(handler_status_t s)
{
    static const char *const names[] = {"ok", "rejected", "retry", "unavailable", "failed"};
    return (unsigned)s < 5 ? names[s] : "?";
}

/* Asserts an ok answer and returns its result (the caller decrefs it). */
#define it_ok(pool, account, type, ...)                                                            \
    it_expect_ok(it_run((pool), (account), (type), __VA_ARGS__), (type), __FILE__, __LINE__)
static inline json_t *it_expect_ok(it_answer_t a, const char *type, const char *file, int line)
{
    if (a.status != HANDLER_OK)
        fail_msg("%s:%d: %s answered %s: %s %s (%s)", file, line, type, it_status_str(a.status),
                 tally_errcode_str(a.err.code), a.err.field, a.err.message);
    return a.result;
}

/* Asserts a rejection with code (and field, unless NULL); returns the error. */
#define it_reject(code, field, pool, account, type, ...)                                           \
    it_expect_reject(it_run((pool), (account), (type), __VA_ARGS__), (code), (field), (type),      \
                     __FILE__, __LINE__)
static inline handler_error_t it_expect_reject(it_answer_t a, tally_errcode_t code,
                                               const char *field, const char *type,
                                               const char *file, int line)
{
    if (a.status != HANDLER_REJECTED || a.err.code != code ||
        (field != NULL && strcmp(a.err.field, field) != 0)) {
        char *text = a.result != NULL ? json_dumps(a.result, JSON_COMPACT) : NULL;
        json_decref(a.result);
        fail_msg("%s:%d: %s answered %s %s field '%s' (%s) %s; wanted %s field '%s'", file, line,
                 type, it_status_str(a.status), tally_errcode_str(a.err.code), a.err.field,
                 a.err.message, text != NULL ? text : "", tally_errcode_str(code),
                 field != NULL ? field : "*");
    }
    return a.err;
}

/* Result accessors: the value at a dotted path ("payment.amount"). */
static inline json_t *it_get(const json_t *v, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    char *save = NULL;
    for (char *part = strtok_r(buf, ".", &save); part != NULL && v != NULL;
         part = strtok_r(NULL, ".", &save)) {
        char *end;
        long idx = strtol(part, &end, 10);
        v = (*end == '\0' && json_is_array(v)) ? json_array_get(v, (size_t)idx)
                                               : json_object_get(v, part);
    }
    return (json_t *)v;
}

static inline const char *it_str(const json_t *v, const char *path)
{
    const char *s = json_string_value(it_get(v, path));
    if (s == NULL)
        fail_msg("no string at %s", path);
    return s != NULL ? s : ""; /* fail_msg does not return; the compiler cannot know */
}

static inline json_int_t it_int(const json_t *v, const char *path)
{
    json_t *x = it_get(v, path);
    if (!json_is_integer(x))
        fail_msg("no integer at %s", path);
    return json_integer_value(x);
}

/* A group fixture: a migrated private PostgreSQL and a pool of 4
 * connections as the worker's role. Use it_setup / it_teardown as the
 * cmocka group setup and teardown; tests get it as *state. */
typedef struct it_fixture {
    th_pg_t *pg;
    pool_t *pool;
} it_fixture_t;

static inline pool_t *it_pool(const th_pg_t *pg, int max);

static inline int it_setup(void **state)
{
    it_fixture_t *f = calloc(1, sizeof(*f));
    f->pg = th_pg_start();
    th_pg_migrate(f->pg);
    f->pool = it_pool(f->pg, 4);
    *state = f;
    return 0;
}

static inline int it_teardown(void **state)
{
    it_fixture_t *f = *state;
    pool_free(f->pool);
    th_pg_stop(f->pg);
    free(f);
    return 0;
}

/* A printf-style query as the superuser (for assertions across tenants). */
static inline int64_t it_sql_i64(const it_fixture_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline int64_t it_sql_i64(const it_fixture_t *f, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    return th_pg_i64(f->pg, "postgres", sql);
}

/* payment.record in usd; the new payment's id goes to out. */
static inline void it_record_payment(const it_fixture_t *f, const char *account,
                                     const char *external_id, int64_t amount, const char *status,
                                     char *out, size_t size)
{
    json_t *r = it_ok(f->pool, account, "payment.record",
                      "{\"external_id\": \"%s\", \"amount\": %lld, \"currency\": \"usd\","
                      " \"status\": \"%s\"}",
                      external_id, (long long)amount, status);
    snprintf(out, size, "%s", it_str(r, "payment.id"));
    json_decref(r);
}

/* A pool of the worker's role on the harness's PostgreSQL. */
static inline pool_t *it_pool(const th_pg_t *pg, int max)
{
    char url[256], err[256];
    th_pg_url(pg, "tally_worker", url, sizeof(url));
    pool_config_t cfg = {.conninfo = url, .max = max, .application_name = "it_handlers"};
    pool_t *pool;
    if (pool_new(&cfg, &pool, err, sizeof(err)) != 0)
        fail_msg("pool_new: %s", err);
    return pool;
}

#endif
