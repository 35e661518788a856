/* holds — the accounts an operator holds (CONTRACT.md §7, `tallyctl hold`),
 * as this worker last read them (holdwatch.h reads them): a sorted set,
 * replaced whole by each read, that executors look a request's account up
 * in when they run it (batch.c), so a hold that lands while a request
 * waits in its queue still stops it.
 *
 * The set also knows when the read it came from started (holds_mark_read),
 * and an executor runs a request only while that read is at most
 * HOLDS_STALE_MS old (holds_current): a hold committed that long before a
 * request runs stops it, whatever became of the notifications
 * (docs/OPERATIONS.md › Holds).
 *
 * Thread-safe: one mutex around the set; a lookup is a binary search. */
#ifndef TALLY_WORKER_HOLDS_H
#define TALLY_WORKER_HOLDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The oldest read of the holds a request may run against (CONTRACT.md §7:
 * a hold applies within 5 s; the loop reads them every 1-2 s). */
#define HOLDS_STALE_MS 4000

typedef struct holds holds_t;

/* An empty set, never read (never NULL: common/mem.h); holds_free(NULL)
 * is a no-op.
 * @thread loop */
holds_t *holds_new(void);
void holds_free(holds_t *h);

/* Replaces the set with the n accounts of ids (any order; duplicates count
 * once), taking ids and its strings (malloc'd). Returns whether the set
 * changed.
 * @thread loop */
bool holds_replace(holds_t *h, char **ids, size_t n);

/* Records that a read which started at read_ms (monotonic, clock_mono_ns
 * in ms) succeeded: the set, replaced or not, is as of then.
 * @thread loop */
void holds_mark_read(holds_t *h, int64_t read_ms);

/* Whether the set was read within HOLDS_STALE_MS of now_ms (monotonic ms).
 * h NULL: true (no holds to keep current).
 * @thread any */
bool holds_current(holds_t *h, int64_t now_ms);

/* Whether account is held. h may be NULL (no holds).
 * @thread any */
bool holds_held(holds_t *h, const char *account);

/* How many accounts are held.
 * @thread any */
size_t holds_count(holds_t *h);

#endif
