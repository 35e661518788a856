/* sqlscan — reads a migration's SQL the way the server splits it into
 * statements, to find the transaction control that `tallyctl migrate` must
 * refuse before running anything (each file already runs in the
 * transaction migrate opens; a COMMIT inside would commit half of it).
 *
 * What is skipped: -- and nested block comments, 'strings' (with ''),
 * E'strings' (with backslash escapes), "identifiers", $tag$dollar
 * quotes$tag$. What does not end a statement: a semicolon inside
 * parentheses (rules) or inside BEGIN ATOMIC … END of a CREATE FUNCTION or
 * PROCEDURE (CASE … END nested in it). Pure; no libpq. */
#ifndef TALLY_ACCESS_SQLSCAN_H
#define TALLY_ACCESS_SQLSCAN_H

#include <stdbool.h>
#include <stddef.h>

typedef struct access_sqlscan_hit {
    int line;      /* 1-based line of the statement's first word */
    char what[48]; /* "COMMIT", "START TRANSACTION", … as the statement begins */
} access_sqlscan_hit_t;

/* Whether sql holds a statement that begins, ends or splits a transaction:
 * BEGIN, START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, SAVEPOINT,
 * RELEASE, PREPARE TRANSACTION (COMMIT/ROLLBACK PREPARED included). The
 * first one goes to *hit. */
bool access_sqlscan_txn_control(const char *sql, access_sqlscan_hit_t *hit);

#endif
