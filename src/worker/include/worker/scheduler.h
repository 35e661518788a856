/* scheduler (sched_) — fair scheduling of queued jobs across accounts.
 *
 * One FIFO queue per account; a round-robin ring of the accounts that have
 * queued work and are neither running nor backing off. An account runs one
 * job at a time (per-account ordering); different accounts run in parallel.
 * A batch holds the head jobs of up to `max` different ready accounts, taken
 * in ring order; an account goes back to the ring's tail when its job
 * finishes, so an account with thousands of queued jobs delays another
 * account's job by at most one round.
 *
 * A retried job goes back to the head of its account's queue and the account
 * waits out a delay (sched_backoff_ms: exponential, full jitter;
 * sched_backoff_equal_ms: with a floor). An item marked `alone` (a job being
 * retried after a lock or statement timeout) is never batched with another
 * account's: whatever it waits for again, nobody waits with it.
 *
 * Pure and single-threaded (the loop thread owns it). Jobs embed a
 * sched_item_t; the scheduler never allocates or frees them. */
#ifndef TALLY_WORKER_SCHED_H
#define TALLY_WORKER_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sched sched_t;
typedef struct sched_account sched_account_t;

typedef struct sched_item {
    struct sched_item *prev, *next; /* in the account's queue */
    sched_account_t *account;
    bool alone; /* runs in a batch of its own (the caller sets it) */
} sched_item_t;

/* A new scheduler, empty.
 * @thread loop */
sched_t *sched_new(void);

/* Frees the scheduler and its accounts; queued items are not touched.
 * @thread loop */
void sched_free(sched_t *s);

/* Appends item to the queue of account (a NUL-terminated id).
 * @thread loop */
void sched_push(sched_t *s, sched_item_t *item, const char *account);

/* Moves accounts whose backoff ended by now_ms to the ring, then takes the
 * head job of up to max ready accounts in round-robin order into out; those
 * accounts are running until sched_finish or sched_retry. An `alone` item
 * ends the batch before it (it comes first in the next one) or is the whole
 * batch. Returns the count.
 * @thread loop */
size_t sched_next_batch(sched_t *s, int64_t now_ms, sched_item_t **out, size_t max);

/* The running item is done: its account may run its next job.
 * @thread loop */
void sched_finish(sched_t *s, sched_item_t *item);

/* The running item must run again: back to the head of its account's queue;
 * the account waits until now_ms + delay_ms (0: ready at once, ring tail).
 * @thread loop */
void sched_retry(sched_t *s, sched_item_t *item, int64_t now_ms, int64_t delay_ms);

/* Removes every queued (not running) item for which pred is true and hands
 * it to drop_cb (which may free it). Returns how many were removed.
 * @thread loop */
size_t sched_drop(sched_t *s, bool (*pred)(const sched_item_t *, void *),
                  void (*drop_cb)(sched_item_t *, void *), void *arg);

/* Accounts ready to run now (not counting ones whose backoff has ended but
 * were not yet moved; call after sched_next_batch or sched_poll).
 * @thread loop */
size_t sched_ready(const sched_t *s);

/* Moves accounts whose backoff ended by now_ms to the ring; returns sched_ready.
 * @thread loop */
size_t sched_poll(sched_t *s, int64_t now_ms);

/* Queued items, all accounts.
 * @thread loop */
size_t sched_queued(const sched_t *s);

/* The earliest backoff deadline, or -1 when no account backs off.
 * @thread loop */
int64_t sched_next_deadline(const sched_t *s);

/* Full-jitter exponential backoff for the attempt-th retry (1, 2, …): a
 * uniform value in [0, min(cap, base·2^(attempt-1))] drawn from *rng (any
 * non-zero seed; xorshift state).
 * @thread any */
int64_t sched_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng);

/* Equal-jitter exponential backoff: with step = min(cap, base·2^(attempt-1)),
 * a uniform value in [step/2, step]. Unlike full jitter it has a floor, so
 * n attempts are sure to span some time (a request's retry budget).
 * @thread any */
int64_t sched_backoff_equal_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng);

#endif
