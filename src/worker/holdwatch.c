/* holdwatch — see holdwatch.h. */
#include "holdwatch.h"

#include "access/holds.h"
#include "common/log.h"
#include "common/mem.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

#define LISTEN_APP_NAME   "tally-worker-listen"
#define LISTEN_CONNECT_MS 5000
#define BACKOFF_FIRST_MS  250
#define BACKOFF_CAP_MS    5000

/* One LISTEN connection, from its poll handle's start to its close. */
typedef struct listen_conn {
    uv_poll_t poll;
    PGconn *pg;
    struct holdwatch *hw;
} listen_conn_t;

typedef struct holdwatch {
    runtime_t *rt;
    /* Reading. */
    int64_t posted_ms; /* when the read under way was posted */
    int64_t due_ms;    /* the next read */
    bool reading;
    bool failing;     /* reads fail: logged once per streak */
    bool unsupported; /* no holds to read: logged once */
    /* The LISTEN connection. */
    uv_work_t connect; /* opening one, off the loop */
    bool connecting;
    PGconn *opened;    /* connect's answer (the work thread writes it) */
    char error[256];   /* ...or why not */
    listen_conn_t *lc; /* NULL while there is none */
    uv_timer_t retry;
    int backoff_ms;
    bool lost; /* a loss logged, not yet recovered */
    bool closing;
} holdwatch_t;

static void start_connect(holdwatch_t *hw);

/* The holds may have changed: read them at the next turn. */
static void read_soon(holdwatch_t *hw)
{
    hw->due_ms = runtime_now_ms();
    runtime_mark_dirty(hw->rt);
}

static void retry_cb(uv_timer_t *t)
{
    start_connect(t->data);
}

/* The connection could not be had or was lost (why): try again after a
 * backoff; the periodic read carries the holds meanwhile. */
static void connect_later(holdwatch_t *hw, const char *why)
{
    if (!hw->lost)
        log_warn("the holds' LISTEN connection is down: reconnecting; holds are still read "
                 "every few seconds",
                 LOG_S("error", why));
    hw->lost = true;
    hw->backoff_ms = hw->backoff_ms == 0 ? BACKOFF_FIRST_MS : hw->backoff_ms * 2;
    if (hw->backoff_ms > BACKOFF_CAP_MS)
        hw->backoff_ms = BACKOFF_CAP_MS;
    if (!hw->closing)
        uv_timer_start(&hw->retry, retry_cb, (uint64_t)hw->backoff_ms, 0);
}

static void lc_closed(uv_handle_t *h)
{
    listen_conn_t *lc = h->data;
    PQfinish(lc->pg); /* after the poll handle let go of its socket */
    free(lc);
}

static void drop(listen_conn_t *lc, const char *why)
{
    holdwatch_t *hw = lc->hw;
    if (hw->lc != lc)
        return;
    hw->lc = NULL;
    uv_close((uv_handle_t *)&lc->poll, lc_closed);
    connect_later(hw, why);
}

/* Reads what arrived: the LISTEN's answer, notifications. */
static void take_input(listen_conn_t *lc)
{
    PGconn *pg = lc->pg;
    if (!PQconsumeInput(pg)) {
        drop(lc, PQerrorMessage(pg));
        return;
    }
    PGresult *r;
    while (!PQisBusy(pg) && (r = PQgetResult(pg)) != NULL) {
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        char why[256];
        snprintf(why, sizeof(why), "LISTEN: %s", PQresultErrorMessage(r));
        PQclear(r);
        if (!ok) {
            drop(lc, why);
            return;
        }
    }
    int heard = 0;
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL) {
        heard++;
        PQfreemem(n);
    }
    if (heard > 0) {
        log_debug("holds changed: reading them", LOG_I("notifications", heard));
        read_soon(lc->hw);
    }
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    listen_conn_t *lc = h->data;
    if (status < 0) {
        drop(lc, uv_strerror(status));
        return;
    }
    if (events & UV_WRITABLE) {
        int f = PQflush(lc->pg);
        if (f < 0) {
            drop(lc, PQerrorMessage(lc->pg));
            return;
        }
        if (f == 0)
            uv_poll_start(&lc->poll, UV_READABLE, poll_cb);
    }
    if (events & UV_READABLE)
        take_input(lc);
}

/* Work thread: opening may resolve a host name, which blocks. */
static void connect_work(uv_work_t *req)
{
    holdwatch_t *hw = req->data;
    hw->opened = pool_connect_aside(hw->rt->pool, LISTEN_APP_NAME, LISTEN_CONNECT_MS, hw->error,
                                    sizeof(hw->error));
}

/* Loop: LISTEN on the new connection, and read the holds (a change may
 * have been missed while there was none). */
static void connect_done(uv_work_t *req, int status)
{
    holdwatch_t *hw = req->data;
    PGconn *pg = hw->opened;
    hw->opened = NULL;
    hw->connecting = false;
    if (status != 0 || hw->closing) {
        PQfinish(pg);
        return;
    }
    if (pg == NULL) {
        connect_later(hw, hw->error);
        return;
    }
    if (PQsetnonblocking(pg, 1) != 0 || !access_holds_send_listen(pg)) {
        char why[256];
        snprintf(why, sizeof(why), "LISTEN: %s", PQerrorMessage(pg));
        PQfinish(pg);
        connect_later(hw, why);
        return;
    }
    listen_conn_t *lc = mem_calloc(1, sizeof(*lc));
    *lc = (listen_conn_t){.pg = pg, .hw = hw};
    uv_poll_init(&hw->rt->loop, &lc->poll, PQsocket(pg));
    lc->poll.data = lc;
    hw->lc = lc;
    uv_poll_start(&lc->poll, UV_READABLE | UV_WRITABLE, poll_cb);
    if (hw->lost)
        log_info("the holds' LISTEN connection is back");
    hw->lost = false;
    hw->backoff_ms = 0;
    read_soon(hw);
}

static void start_connect(holdwatch_t *hw)
{
    if (hw->closing || hw->connecting || hw->lc != NULL)
        return;
    hw->connect.data = hw;
    if (uv_queue_work(&hw->rt->loop, &hw->connect, connect_work, connect_done) != 0) {
        connect_later(hw, "cannot queue the connection attempt");
        return;
    }
    hw->connecting = true;
}

void holdwatch_start(runtime_t *rt)
{
    holdwatch_t *hw = mem_calloc(1, sizeof(*hw));
    hw->rt = rt;
    hw->due_ms = runtime_now_ms();
    uv_timer_init(&rt->loop, &hw->retry);
    hw->retry.data = hw;
    rt->holdwatch = hw;
    start_connect(hw);
}

bool holdwatch_dispatch(runtime_t *rt, int64_t now)
{
    holdwatch_t *hw = rt->holdwatch;
    if (hw == NULL)
        return true;
    if (!hw->reading && now >= hw->due_ms) {
        int i = exec_idle(rt->exec);
        if (i >= 0) {
            hw->reading = true;
            hw->posted_ms = now;
            exec_post(rt->exec, i, task_new_holds());
        }
    }
    return holds_current(rt->holds, now);
}

void holdwatch_task_done(runtime_t *rt, task_t *t)
{
    holdwatch_t *hw = rt->holdwatch;
    int64_t now = runtime_now_ms();
    hw->reading = false;
    runtime_mark_dirty(rt);
    if (t->ok || t->no_holds) {
        if (t->ok && holds_replace(rt->holds, t->held, t->nheld))
            log_info("holds read", LOG_I("held_accounts", (int64_t)holds_count(rt->holds)));
        if (t->ok) {
            t->held = NULL; /* the set's now */
            t->nheld = 0;
        }
        if (t->no_holds && !hw->unsupported)
            log_error("holds cannot be read: running without them. Run tallyctl migrate "
                      "(0007_holds.sql)",
                      LOG_S("error", t->error));
        hw->unsupported = t->no_holds;
        hw->failing = false;
        /* As of when it was posted: what committed before is in it. */
        holds_mark_read(rt->holds, hw->posted_ms);
        hw->due_ms = now + HOLDS_REFRESH_MS;
        return;
    }
    if (!hw->failing)
        log_warn("reading the holds failed: retrying; requests start only while the holds "
                 "were read within the last few seconds",
                 LOG_S("error", t->error));
    hw->failing = true;
    hw->due_ms = now + HOLDS_RETRY_MS;
}

void holdwatch_close(runtime_t *rt)
{
    holdwatch_t *hw = rt->holdwatch;
    if (hw == NULL || hw->closing)
        return;
    hw->closing = true;
    uv_close((uv_handle_t *)&hw->retry, NULL);
    if (hw->lc != NULL) {
        uv_close((uv_handle_t *)&hw->lc->poll, lc_closed);
        hw->lc = NULL;
    }
    if (hw->connecting)
        uv_cancel((uv_req_t *)&hw->connect); /* connect_done closes what it opened */
}

void holdwatch_free(runtime_t *rt)
{
    free(rt->holdwatch);
    rt->holdwatch = NULL;
}
