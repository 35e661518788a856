/* th-stack — the integration harness's stack for tests written in other
 * languages (clients/typescript): a private PostgreSQL with the migrations
 * applied, the embedded broker and one tally-worker, started through the
 * same harness functions as the C tests.
 *
 * Prints one JSON line on stdout once the worker is ready and owns every
 * request partition:
 *   {"bootstrap": "127.0.0.1:…", "database_url": "postgresql://postgres@…",
 *    "http_port": N, "tmpdir": "…"}
 * then reads stdin. End of input (or the line "stop") stops everything and
 * exits 0, removing the logs; the line "fail" stops everything and exits 1,
 * which keeps the logs and prints their tails (the caller's tests failed).
 * Every service dies with this process (PR_SET_PDEATHSIG), so a killed
 * caller leaves nothing behind.
 *
 * Needs the variables CTest sets for the C integration tests
 * (TALLY_WORKER_BIN, TALLYCTL_BIN, TALLY_MIGRATIONS_DIR, TALLY_TEST_TMPDIR,
 * TALLY_PG_TEMPLATE). Options: --partitions N (default 3). */
#include "harness.h"
#include "th_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READY_TIMEOUT_MS 120000

int main(int argc, char **argv)
{
    int partitions = 3;
    if (argc == 3 && strcmp(argv[1], "--partitions") == 0)
        partitions = atoi(argv[2]);
    if (partitions < 1 || partitions > 64 || (argc != 1 && argc != 3)) {
        fprintf(stderr, "usage: th-stack [--partitions N (1-64)]\n");
        return 2;
    }

    th_pg_t *pg = th_pg_start();
    th_pg_migrate(pg);
    th_broker_t *broker = th_broker_start(partitions);
    th_worker_t *worker = th_worker_start(pg, broker, NULL);
    /* Ready does not mean assigned (CONTRACT §7); a single worker gets them all. */
    if (th_worker_wait_partitions(worker, partitions, READY_TIMEOUT_MS) < partitions)
        fail_msg("th-stack: the worker did not own the %d request partitions within %d ms",
                 partitions, READY_TIMEOUT_MS);

    char url[256];
    th_pg_url(pg, "postgres", url, sizeof(url));
    json_t *line = json_pack("{s:s, s:s, s:i, s:s}", "bootstrap", th_broker_bootstrap(broker),
                             "database_url", url, "http_port", th_worker_http_port(worker),
                             "tmpdir", th_tmpdir());
    char *text = line != NULL ? json_dumps(line, JSON_COMPACT) : NULL;
    if (text == NULL)
        fail_msg("th-stack: out of memory");
    printf("%s\n", text);
    fflush(stdout);
    free(text);
    json_decref(line);

    int status = 0;
    char cmd[64];
    while (fgets(cmd, sizeof(cmd), stdin) != NULL) {
        if (strncmp(cmd, "stop", 4) == 0)
            break;
        if (strncmp(cmd, "fail", 4) == 0) {
            status = 1;
            break;
        }
    }

    th_worker_stop(worker);
    th_broker_stop(broker);
    th_pg_stop(pg);
    return status;
}
