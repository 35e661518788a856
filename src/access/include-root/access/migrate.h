/* migrate — applies the SQL files of a migrations directory, in name order,
 * over one dedicated connection (not the pool), each file in its own
 * transaction, recorded in tally_schema_migrations (name, SHA-256 checksum,
 * applied_at).
 *
 * - An applied file whose checksum changed is refused, naming the file;
 *   nothing is applied then.
 * - A pending file that sorts before an applied one is refused (out of order).
 * - Two migrators at once are serialized by a session advisory lock; the
 *   second then finds nothing to do.
 * - Files must not contain transaction control (BEGIN, COMMIT, SAVEPOINT, …,
 *   found by access/sqlscan.h outside comments, strings and dollar quotes):
 *   each already runs inside its own transaction. A pending file with any is
 *   refused, naming the file and line, before anything is applied.
 *
 * Progress lines go to out; nothing printed or returned contains a password.
 * For `tallyctl migrate` and the tests; the worker never migrates. */
#ifndef TALLY_ACCESS_MIGRATE_H
#define TALLY_ACCESS_MIGRATE_H

#include <stddef.h>
#include <stdio.h>

/* Applies every pending file of dir. Returns 0 (also when there was nothing
 * to do), or -1 with one line in err. */
int access_migrate_apply(const char *conninfo, const char *dir, FILE *out, char *err,
                         size_t errlen);

/* Writes one line per file (applied, pending, modified, or applied but
 * missing from dir) to out, without changing anything. Returns 0, or -1 with
 * err (also when an applied file was modified). */
int access_migrate_status(const char *conninfo, const char *dir, FILE *out, char *err,
                          size_t errlen);

#endif
