/* th_hostile — the requests of a hostile tenant (issue 11), shared by
 * it_hostile and the benchmark's hostile row.
 *
 * One account sends, in this order: payments of the largest size the
 * contract allows (~28 KB: a description of 1000 characters, 50 metadata
 * keys of 40 with values of 500), then lists of them 100 at a time; balance
 * reads whose reply_to names Tally's own topics, a name outside
 * TH_HOSTILE_REPLY_TO_PATTERN and no topic at all; numbers out of range
 * (2^63, 1e400, -1e400, 2^53 + 1), a duplicate key and \u0000 in payload
 * fields; a value over 1 MiB and one that is not JSON; usd payments meant
 * for a balance row the caller keeps locked; and a burst of balance reads,
 * every tenth a payment.get of a payment that does not exist.
 *
 * The worker must run with TALLY_REPLY_TO_PATTERN=TH_HOSTILE_REPLY_TO_PATTERN
 * (so that "other.replies" and "tally.results" are refused). The producer
 * must take messages of 2 MB (message.max.bytes) and should compress
 * (compression.codec=lz4): the embedded broker keeps about 5 MB a partition,
 * and the account's requests all land in one. Harness style: failures fail
 * the test. */
#ifndef TALLY_TESTS_TH_HOSTILE_H
#define TALLY_TESTS_TH_HOSTILE_H

#include "harness.h"

#include <stdbool.h>

#define TH_HOSTILE_REPLY_TO_PATTERN "well\\.[a-z]+"

typedef enum th_hostile_kind {
    TH_HOSTILE_BIG,      /* payment.record (eur) of the largest size: ok */
    TH_HOSTILE_LIST,     /* payment.list {"limit":100}: ok, a page cut short of 1 MiB, has_more */
    TH_HOSTILE_REPLY_TO, /* a refused reply_to: invalid_request, field reply_to */
    TH_HOSTILE_NUMBER,   /* invalid_request naming the field */
    TH_HOSTILE_DEAD,     /* dead-lettered: no result */
    TH_HOSTILE_LOCKED,   /* payment.record (usd): what it gets is the caller's lock's doing */
    TH_HOSTILE_BURST,    /* balance.get: ok; or payment.get: not_found */
} th_hostile_kind_t;

typedef struct th_hostile_config {
    const char *account;
    const char *topic; /* the requests topic */
    int big, lists, locked, burst;
} th_hostile_config_t;

typedef struct th_hostile_req {
    th_hostile_kind_t kind;
    char id[48];       /* "h-<kind>-<n>"; none for a dead letter that is not JSON */
    const char *want;  /* "ok" or an error code; NULL for TH_HOSTILE_DEAD and _LOCKED */
    const char *field; /* the error's field, or NULL */
} th_hostile_req_t;

typedef void (*th_hostile_cb)(const th_hostile_req_t *req, void *arg);

/* Produces every request (cb, when not NULL, sees each as it goes out),
 * then flushes p. Returns how many were sent. */
int th_hostile_send(th_producer_t *p, const th_hostile_config_t *cfg, th_hostile_cb cb, void *arg);

#endif
