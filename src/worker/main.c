/* tally-worker — consumes tenant requests from Kafka and answers them.
 *
 * Start-up: configuration, logging, the pool, the role check (refuse a role
 * that could bypass row-level security), then the runtime (Kafka, executors,
 * HTTP, subscribe). Exit status: 0 after a clean drain, 1 on a fatal error,
 * 2 on a bad setting. */
#include "access/admin.h"
#include "common/log.h"
#include "common/mem.h"
#include "pool/pool.h"
#include "worker/config.h"
#include "worker/runtime.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* Refuses a superuser, BYPASSRLS, CREATEROLE or owning role (or a member of
 * one): one clear line, exit 1. */
static int check_role(pool_t *pool)
{
    char err[512];
    pool_conn_t *conn = NULL;
    /* The database may still be starting (a fresh deployment): wait up to
     * about half a minute before giving up. */
    int delay_ms = 250;
    for (int attempt = 1; pool_acquire(pool, &conn, err, sizeof(err)) != 0; attempt++) {
        if (attempt >= 10) {
            log_error("cannot connect to the database", LOG_S("error", err));
            return -1;
        }
        log_warn("database not reachable yet, retrying", LOG_I("attempt", attempt),
                 LOG_I("delay_ms", delay_ms), LOG_S("error", err));
        usleep((useconds_t)delay_ms * 1000);
        delay_ms = delay_ms * 2 > 5000 ? 5000 : delay_ms * 2;
    }
    char problem[512] = "";
    access_error_t aerr;
    access_status_t st = access_admin_check_worker_role(conn, problem, sizeof(problem), &aerr);
    pool_release(pool, conn);
    if (st == ACCESS_INVALID) {
        log_error("refusing to run with this database role", LOG_S("problem", problem));
        return -1;
    }
    if (st != ACCESS_OK) {
        log_error("cannot check the database role", LOG_S("error", aerr.message));
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    mem_use_for_jansson(); /* first: jansson allocates under the one policy too */
    config_t cfg;
    char err[512];
    switch (config_load(argc, argv, environ, stdout, &cfg, err, sizeof(err))) {
    case CONFIG_EXIT:
        return 0;
    case CONFIG_ERROR:
        /* Logged in the default format: the configured one is not known. */
        log_error("invalid configuration", LOG_S("error", err));
        return 2;
    case CONFIG_RUN:
        break;
    }
    log_setup(cfg.log_level, cfg.log_text);

    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    char worker_name[96];
    snprintf(worker_name, sizeof(worker_name), "%s-%d", host, (int)getpid());

    char redacted[512];
    log_redact(cfg.database_url, redacted, sizeof(redacted));
    log_info("starting", LOG_S("worker", worker_name), LOG_S("database", redacted),
             LOG_S("bootstrap_servers", cfg.bootstrap_servers),
             LOG_S("prepared_statements", cfg.prepared_statements ? "on" : "off"));

    pool_t *pool = NULL;
    pool_config_t pc = {.conninfo = cfg.database_url,
                        .max = cfg.pool_max,
                        .idle_timeout_ms = 20000,
                        .connect_timeout_ms = 10000,
                        .application_name = "tally-worker",
                        .statement_timeout_ms = cfg.statement_timeout_ms,
                        .lock_timeout_ms = cfg.lock_timeout_ms,
                        .idle_in_transaction_timeout_ms = 10000,
                        .unnamed_statements = !cfg.prepared_statements};
    int rc = 1;
    if (pool_new(&pc, &pool, err, sizeof(err)) != 0) {
        log_error("cannot create the connection pool", LOG_S("error", err));
        goto out;
    }
    if (check_role(pool) != 0)
        goto out;
    bool pool_in_use = false;
    rc = runtime_run(&cfg, pool, worker_name, &pool_in_use);
    if (pool_in_use)
        return rc; /* a stuck executor still holds a connection: just exit */
out:
    if (pool != NULL)
        pool_free(pool);
    config_free(&cfg);
    return rc;
}
