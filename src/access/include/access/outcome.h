/* outcome — stored request outcomes, the memory behind "effectively once".
 *
 * Keyed by (account_id, request_id). A stored outcome holds the request's
 * type, a SHA-256 of its canonical payload (computed in the database) and the
 * response text to publish again on replay. */
#ifndef TALLY_ACCESS_OUTCOME_H
#define TALLY_ACCESS_OUTCOME_H

#include "access/tx.h"

typedef enum access_outcome_kind {
    ACCESS_OUTCOME_NEW,      /* nothing stored: the caller now holds the key */
    ACCESS_OUTCOME_STORED,   /* same type and payload: *response is the stored text */
    ACCESS_OUTCOME_MISMATCH, /* the id was used with another type or payload */
} access_outcome_kind_t;

/* Looks up (and row-locks) the outcome of request_id in tx's account. While
 * tx's session is open, another session claiming the same key waits.
 * payload is the canonical JSON text of the request's payload.
 * On ACCESS_OUTCOME_STORED, *response is malloc'd; the caller frees it. */
access_status_t access_outcome_claim(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, access_outcome_kind_t *kind,
                                     char **response, access_error_t *err);

/* Reads the outcome of request_id in tx's account without locking or
 * writing anything (the worker's one-write scheme): NEW when none is stored
 * (nor a response in a claimed row), else STORED or MISMATCH as above. The
 * key is held only by access_outcome_store, which a concurrent store of the
 * same key makes fail (ACCESS_CONFLICT, after waiting for it to commit):
 * the caller's effects must be in the same tenant transaction, to be undone
 * with it. */
access_status_t access_outcome_probe(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, access_outcome_kind_t *kind,
                                     char **response, access_error_t *err);

/* The same probe in two halves, so that it costs no round trip of its own:
 * _send queues it to travel with the tx's next statement (a pipelined
 * session; an eager one reads at once), _take returns what it found
 * (sending it first if nothing went since). The worker runs the handler in
 * between and undoes the handler's effects (access_tx_rollback) when the
 * probe found the id already used. _send fails only when tx cannot take a
 * statement; the read's own failure, or one of what travelled before it,
 * comes from _take. */
access_status_t access_outcome_probe_send(access_tx_t *tx, const char *request_id,
                                          const char *type, const char *payload,
                                          access_error_t *err);
access_status_t access_outcome_probe_take(access_tx_t *tx, access_outcome_kind_t *kind,
                                          char **response, access_error_t *err);

/* Stores the response text for request_id (insert, or complete a claimed key).
 * A response already stored is never replaced: ACCESS_CONFLICT. In a
 * pipelined session the write is queued and access_tx_end reports this. */
access_status_t access_outcome_store(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, const char *response,
                                     access_error_t *err);

#endif
