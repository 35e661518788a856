/* sqlstate — the one place that turns a PostgreSQL failure into an
 * access_status_t. Pure; no libpq. */
#ifndef TALLY_ACCESS_SQLSTATE_H
#define TALLY_ACCESS_SQLSTATE_H

#include "access/status.h"

#include <stdbool.h>

/* Maps a failure to a status:
 *   40001 40P01 55P03 57014                   → ACCESS_RETRY
 *   class 08, class 53, 57P01–57P05, 25006,
 *   26000, 42P05 (a transaction pooler),
 *   no SQLSTATE (NULL or ""), connection_bad  → ACCESS_UNAVAILABLE
 *   class 22 (data exception: a value out of
 *   range, too long, malformed)               → ACCESS_INVALID
 *   class 23 (integrity constraint violation) → ACCESS_CONFLICT
 *   anything else                             → ACCESS_FAILED
 * connection_bad wins over everything: a lost connection is never retried
 * on the same connection. Classes 22 and 23 are permanent: the same
 * statement with the same values fails the same way, so they are answered
 * at once (a statement's errmap may name the field), never retried. */
access_status_t access_classify(const char *sqlstate, bool connection_bad);

#endif
