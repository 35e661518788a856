/* lean — the lean limit: the least SQL that records one payment.record with
 * its stored outcome and audit row, on its own lean schema, as fixed by
 * bench/lean-limit.sql (a verbatim copy of the shared yardstick,
 * shared/bench/lean-limit.sql; bench.lean_limit_current checks that they
 * are the same). The file is used as it is: its schema applied whole, its
 * commented request repeated per transaction, a savepoint around each copy.
 *
 * Harness style: a failure to apply the schema fails the program. */
#ifndef TALLY_BENCH_LEAN_H
#define TALLY_BENCH_LEAN_H

#include "harness.h"

/* The file's text (malloc'd), or NULL with a reason in err. */
char *lean_read(const char *path, char *err, size_t errsize);

/* Applies the file's schema (section 1; the rest is comments) to the
 * database "tally" as its owner, tally_owner. */
void lean_apply(const th_pg_t *pg, const char *text);

/* The pgbench script: BEGIN, per_tx copies of the file's request (section
 * 2), each between "SAVEPOINT req;" and "RELEASE SAVEPOINT req;", COMMIT,
 * with ACCOUNTS replaced by accounts. Malloc'd; NULL when the file holds
 * no request. */
char *lean_script(const char *text, int per_tx, int accounts);

#endif
