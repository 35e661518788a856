/* access_internal — what every module of src/access/ shares: the structs
 * behind access_session_t and access_tx_t, and the one way to run SQL
 * (implemented in query.c).
 *
 * Private to src/access/ (never on the include path of the layers above).
 *
 * Writing an access function:
 *
 *   static const access_errmap_t ROUTE_INSERT_ERRORS[] = {
 *       {"23505", "account_payout_routes_pkey", ACCESS_CONFLICT, "route_id",
 *        "a route with this id already exists"},
 *       {0},
 *   };
 *   static const access_stmt_t ROUTE_INSERT = {
 *       .name = "routes_insert",          // unique in src/access/: "<module>_<what>"
 *       .sql = "INSERT INTO account_payout_routes (account_id, id, kind) "
 *              "VALUES ($1, $2, $3) RETURNING tally_epoch_ms(created_at)",
 *       .nargs = 2,                       // the caller's values: $2 and $3
 *       .errors = ROUTE_INSERT_ERRORS,    // may be NULL
 *   };
 *
 *   access_status_t access_routes_insert(access_tx_t *tx, const char *id, const char *kind,
 *                                        int64_t *created_ms, access_error_t *err)
 *   {
 *       PGresult *r = access_exec(tx, &ROUTE_INSERT, ACCESS_ARGS(id, kind), err);
 *       if (r == NULL)
 *           return err->status;           // classified; err says why
 *       *created_ms = access_get_i64(r, 0, 0);
 *       PQclear(r);
 *       return ACCESS_OK;
 *   }
 *
 * Rules:
 * - $1 is ALWAYS the tenant: access_exec binds the tx's account id to it, and
 *   every statement filters on (or inserts) account_id = $1. The caller's
 *   values follow as $2…$(nargs+1), as text (NULL is SQL NULL); cast in SQL
 *   ($2::bigint). Format integers with access_fmt_i64.
 * - Statements are prepared on first use per connection and reused after
 *   (unnamed, parsed each time, when TALLY_PREPARED_STATEMENTS=off).
 * - A failed statement leaves err classified (see sqlstate.h): the statement's
 *   errmap first, then RETRY / UNAVAILABLE / FAILED by SQLSTATE. After any
 *   failure the database transaction is in error: the caller (the worker)
 *   must access_tx_rollback before the tx can be used or ended.
 * - Times cross the boundary as epoch milliseconds: select
 *   tally_epoch_ms(col) and read it with access_get_i64; pass
 *   tally_from_epoch_ms($n::bigint) for input (both defined in 0001_core.sql).
 * - A list type's page is fetched by access_list_page (list.h): limit + 1
 *   rows for has_more, and the starting_after cursor checked in the same
 *   statement. */
#ifndef TALLY_ACCESS_INTERNAL_H
#define TALLY_ACCESS_INTERNAL_H

#include "access/session.h"
#include "access/status.h"
#include "access/tx.h"
#include "pool/pool.h"
#include "sqlstate.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct access_tx {
    access_session_t *session;
    access_account_t account;
    bool open;
    bool in_error; /* a statement failed since the savepoint: rollback before anything else */
};

/* Control statements; prepared once per connection like every other (or
 * sent unnamed likewise). */
typedef enum access_ctl {
    ACCESS_CTL_BEGIN,
    ACCESS_CTL_SAVEPOINT,
    ACCESS_CTL_RELEASE,
    ACCESS_CTL_ROLLBACK_TO,
    ACCESS_CTL_SET_TENANT, /* set_config('app.account_id', <the item's account>, true), and
                            * the session's limits (SET LOCAL statement_timeout, …) */
    ACCESS_CTL_COMMIT,
} access_ctl_t;

#define ACCESS_MAX_QUEUE 24

typedef struct access_stmt access_stmt_t;
typedef struct access_errmap access_errmap_t;

/* What waits in a session for its next message to the server: a control
 * statement, or (pipelined sessions) a write whose result is only checked
 * (access_exec_write). Each belongs to a tenant transaction, its owner,
 * numbered from 1 in the session (0: the session's BEGIN), and carries that
 * transaction's account: a write may be sent after its transaction ended. */
typedef struct access_item {
    int ctl;                 /* an access_ctl_t, or -1 for a write */
    const access_stmt_t *st; /* the write */
    char **args;             /* its values, copied (one allocation) */
    int expect_rows;         /* -1: any */
    const access_errmap_t *mismatch;
    unsigned owner;
    char account[ACCESS_ACCOUNT_ID_MAX + 1];
} access_item_t;

typedef enum access_deferred_state {
    ACCESS_DEFERRED_NONE,
    ACCESS_DEFERRED_QUEUED, /* waits in the queue for the next message */
    ACCESS_DEFERRED_DONE,   /* its result (or failure) is in the session */
} access_deferred_state_t;

struct access_session {
    pool_conn_t *conn;
    PGconn *pg;
    access_tx_t tx;  /* at most one tenant transaction is open at a time */
    bool pipelined;  /* access_session_begin_pipelined */
    bool sent;       /* something went to the server (BEGIN first) */
    bool tx_pending; /* the open tx's SAVEPOINT has not been sent */
    bool broken;     /* an infrastructure failure: only abort is left */
    bool pooler;     /* ...that a pooler lost a prepared statement (pool/pooler.h) */
    unsigned ntx;    /* tenant transactions begun; the open (or last) one is ntx */
    access_item_t queue[ACCESS_MAX_QUEUE]; /* in the order they must run */
    int nqueue;
    /* A tx whose writes failed after access_tx_end had returned (pipelined
     * sessions carry them into the next message): 0 for none. */
    unsigned failed;
    bool failed_permanently; /* its failure was class 22 or 23 (sqlstate.h) */
    /* The pool's limits (pool_limits_t) as text for SET_TENANT: statement,
     * lock and idle-in-transaction timeouts in milliseconds. */
    char limits[3][16];
    /* The read access_exec_deferred queued, and where its result waits
     * until access_take_deferred once it travelled. */
    struct {
        access_deferred_state_t state;
        unsigned owner;
        PGresult *result;
        access_error_t err;
    } deferred;
    unsigned round_trips; /* messages sent to the server (pipelines) */
};

/* One SQLSTATE (and optionally one constraint) turned into a business outcome. */
struct access_errmap {
    const char *sqlstate;   /* e.g. "23505"; NULL ends the list */
    const char *constraint; /* constraint name, or NULL for any */
    access_status_t status; /* e.g. ACCESS_CONFLICT */
    const char *field;      /* payload field to blame, or NULL */
    const char *message;    /* for the result */
};

/* For the errmap of every statement that moves a balance (its triggers
 * write account_balances): a total that would pass ±(2^53 − 1) is a
 * conflict on the request's amount (CONTRACT.md §3), whether the CHECK of
 * 0006_bounds.sql refuses it or, on a row already beyond it, bigint
 * overflows. */
// clang-format off
#define ACCESS_BALANCE_BOUNDS_ERRORS                                                               \
    {"23514", "account_balances_bounds", ACCESS_CONFLICT, "amount",                                \
     "the account's balance in this currency would pass 2^53 - 1 in absolute value"},             \
    {"22003", NULL, ACCESS_CONFLICT, "amount",                                                     \
     "the account's balance in this currency would pass 2^53 - 1 in absolute value"}
// clang-format on

struct access_stmt {
    const char *name;              /* unique across src/access/, "<module>_<what>" */
    const char *sql;               /* $1 is the tenant's account id */
    int nargs;                     /* values the caller passes, bound to $2…$(nargs+1) */
    const access_errmap_t *errors; /* NULL-terminated; may be NULL */
};

#define ACCESS_MAX_ARGS 32

/* A compound literal for access_exec's values: ACCESS_ARGS(id, amount_text). */
#define ACCESS_ARGS(...) ((const char *const[]){__VA_ARGS__})

/* Runs st on tx's connection with $1 = the tx's account and args as $2….
 * Returns the result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; the caller
 * PQclear()s it), or NULL with err filled and err->status classified; an
 * UNAVAILABLE failure also marks the pooled connection broken. args may be
 * NULL when st->nargs is 0. */
PGresult *access_exec(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                      access_error_t *err);

/* Runs a write whose result only matters as "it worked" (expect_rows -1) or
 * "exactly expect_rows rows came back"; otherwise it fails with mismatch's
 * status, field and message (mismatch may be NULL only with -1). In an eager
 * session it runs at once. In a pipelined session it is queued (its values
 * copied) and travels with the next message (see session.c); access_tx_end
 * or, when the tx's writes are carried into the next message, that message
 * reports a failure; access_tx_rollback discards them. */
access_status_t access_exec_write(access_tx_t *tx, const access_stmt_t *st, const char *const *args,
                                  int expect_rows, const access_errmap_t *mismatch,
                                  access_error_t *err);

/* Queues a read whose result the caller takes later (access_take_deferred),
 * so that it travels with the tx's next statement instead of a round trip of
 * its own; an eager session runs it at once. One at a time per session (a
 * second replaces the first). Fails only when the tx cannot take a
 * statement; the read's own failure is reported by access_take_deferred
 * (and, being the open tx's, puts the tx in error like any statement). */
access_status_t access_exec_deferred(access_tx_t *tx, const access_stmt_t *st,
                                     const char *const *args, access_error_t *err);

/* The deferred read's result (PGRES_TUPLES_OK or PGRES_COMMAND_OK; the
 * caller PQclear()s it), sending the queue first when it is still in it; or
 * NULL with err filled: the read failed, or what travelled before it did
 * (the session may then be broken), or nothing was deferred in this tx. */
PGresult *access_take_deferred(access_tx_t *tx, access_error_t *err);

/* Forgets the deferred read: drops it from the queue, frees its result. */
void access_deferred_clear(access_session_t *s);

/* Queues a control statement of tenant transaction owner (0: the
 * session's) run for account (NULL: none needed). False when the queue is
 * full, which never happens by construction: the session is then broken. */
bool access_queue_ctl(access_session_t *s, access_ctl_t ctl, unsigned owner, const char *account);

/* Sends the queue and then ctl (unless -1) in one pipeline (for session.c).
 * A failure in writes carried from an ended tx breaks the session and sets
 * s->failed (see query.c). */
access_status_t access_flush(access_session_t *s, int ctl, access_error_t *err);

/* Drops the queued writes of tenant transaction owner (0: all), unsent. */
void access_queue_drop_writes(access_session_t *s, unsigned owner);

/* Whether writes of tenant transaction owner are queued. */
bool access_queue_has_writes(const access_session_t *s, unsigned owner);

/* Fills a failure that SQLSTATE did not produce: a row that is not there
 * (NOT_FOUND), a conditional UPDATE that matched nothing (CONFLICT), ….
 * field may be NULL. Returns status, for `return access_fail(...)`. */
access_status_t access_fail(access_error_t *err, access_status_t status, const char *field,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Resets err to "no error". */
void access_error_clear(access_error_t *err);

/* ---- Reading rows (column values of row `row`, column `col`) ---------- */

/* Copies the text into buf (always NUL-terminated; "" for NULL). Returns
 * false when it had to be truncated. */
bool access_get_text(const PGresult *r, int row, int col, char *buf, size_t size);

/* A malloc'd copy of the text (common/mem.h: never NULL for a value), or
 * NULL for SQL NULL. */
char *access_get_dup(const PGresult *r, int row, int col);

/* An int8/int4/bigint column (0 for NULL). */
int64_t access_get_i64(const PGresult *r, int row, int col);

/* A boolean column (false for NULL). */
bool access_get_bool(const PGresult *r, int row, int col);

/* A double precision column (0 for NULL). Not for money. */
double access_get_double(const PGresult *r, int row, int col);

bool access_get_null(const PGresult *r, int row, int col);

#define ACCESS_I64_LEN 24

/* Formats v as decimal text into buf (ACCESS_I64_LEN bytes); returns buf. */
const char *access_fmt_i64(char buf[ACCESS_I64_LEN], int64_t v);

/* ---- Failures ------------------------------------------------------- */

/* Fills err from a failed libpq call on pg: r may be NULL (no result), name
 * says what was running (a statement name). Applies errors first (may be
 * NULL). Returns err->status. */
access_status_t access_error_from_pg(PGconn *pg, const PGresult *r, const char *name,
                                     const access_errmap_t *errors, access_error_t *err);

#endif
