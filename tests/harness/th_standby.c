/* th_standby — a streaming standby of a test's PostgreSQL, made with
 * pg_basebackup -R, and its promotion with pg_ctl promote. The standby is a
 * th_pg_t like any other server (th_pg.c starts and stops it). */
#include "harness.h"
#include "th_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYNC_TIMEOUT_MS 60000

/* Polls sql (one integer) as postgres on pg until it returns want. */
static bool wait_value(const th_pg_t *pg, const char *sql, int64_t want)
{
    int64_t deadline = th_now_ms() + SYNC_TIMEOUT_MS;
    while (th_pg_i64(pg, "postgres", sql) != want) {
        if (th_now_ms() > deadline)
            return false;
        th_sleep_ms(50);
    }
    return true;
}

th_pg_t *th_standby_start(th_pg_t *primary, bool synchronous)
{
    th_pg_t *sb = th_pg_instance();
    char *tool = th_pg_bin("pg_basebackup");
    char port[16];
    snprintf(port, sizeof(port), "%d", th_pg_port(primary));
    /* -R: standby.signal and primary_conninfo; -X stream: the WAL written
     * meanwhile comes along. */
    char *argv[] = {tool,
                    "-h",
                    "127.0.0.1",
                    "-p",
                    port,
                    "-U",
                    "postgres",
                    "-D",
                    (char *)th_pg_datadir(sb),
                    "-R",
                    "-X",
                    "stream",
                    "--checkpoint=fast",
                    "--no-sync",
                    NULL};
    th_pg_run_tool(sb, argv);
    free(tool);
    th_pg_launch(sb);
    if (!wait_value(primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
                    1))
        fail_msg("harness: the standby on port %d does not stream", th_pg_port(sb));
    if (synchronous) {
        /* After the base backup, so that the standby does not inherit it. */
        th_pg_exec(primary, "postgres", "ALTER SYSTEM SET synchronous_standby_names = '*'");
        th_pg_i64(primary, "postgres", "SELECT pg_reload_conf()::int");
        if (!wait_value(primary,
                        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'", 1))
            fail_msg("harness: the standby on port %d did not become synchronous", th_pg_port(sb));
    }
    th_hold_point("standby");
    return sb;
}

void th_standby_promote(th_pg_t *standby)
{
    char *tool = th_pg_bin("pg_ctl");
    char *argv[] = {tool, "promote", "-w", "-t", "60", "-D", (char *)th_pg_datadir(standby), NULL};
    th_pg_run_tool(standby, argv);
    free(tool);
    if (th_pg_i64(standby, "postgres", "SELECT pg_is_in_recovery()::int") != 0)
        fail_msg("harness: the standby on port %d is still in recovery", th_pg_port(standby));
}
