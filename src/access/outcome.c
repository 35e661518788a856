/* outcome — see access/outcome.h; table tally_request_outcomes (0001_core.sql).
 *
 * The worker probes, then stores once (one write per outcome); the store is
 * an upsert that never replaces a response, so of two sessions that both
 * probed nothing, the second waits on the first's row (the unique index)
 * and then stores no row: its attempt fails and is undone, and its retry
 * probes the stored outcome and replays it.
 *
 * The claim is an INSERT … ON CONFLICT DO NOTHING of a row without a
 * response. Our uncommitted row makes a concurrent claim of the same key wait
 * on it (the unique index), so one processor at a time holds a key. When the
 * key exists, a separate SELECT … FOR UPDATE reads it: a new statement takes a
 * new snapshot, so it sees a row that the session we waited for committed. */
#include "access/outcome.h"

#include "access_internal.h"

#include <stdlib.h>
#include <string.h>

static const access_stmt_t CLAIM_INSERT = {
    .name = "outcome_claim_insert",
    .sql = "INSERT INTO tally_request_outcomes (account_id, request_id, type, payload_sha256) "
           "VALUES ($1, $2, $3, sha256(convert_to($4, 'UTF8'))) "
           "ON CONFLICT (account_id, request_id) DO NOTHING RETURNING true",
    .nargs = 3,
};

static const access_stmt_t CLAIM_SELECT = {
    .name = "outcome_claim_select",
    .sql = "SELECT type = $3 AND payload_sha256 = sha256(convert_to($4, 'UTF8')), response "
           "FROM tally_request_outcomes WHERE account_id = $1 AND request_id = $2 FOR UPDATE",
    .nargs = 3,
};

/* The probe of the one-write scheme: a plain read, no lock, no write. */
static const access_stmt_t PROBE = {
    .name = "outcome_probe",
    .sql = "SELECT type = $3 AND payload_sha256 = sha256(convert_to($4, 'UTF8')), response "
           "FROM tally_request_outcomes WHERE account_id = $1 AND request_id = $2",
    .nargs = 3,
};

/* Completes a claimed row, or inserts the row again if a rollback undid the
 * claim; a response already stored is never replaced. */
static const access_stmt_t STORE = {
    .name = "outcome_store",
    .sql = "INSERT INTO tally_request_outcomes AS o "
           "(account_id, request_id, type, payload_sha256, response) "
           "VALUES ($1, $2, $3, sha256(convert_to($4, 'UTF8')), $5) "
           "ON CONFLICT (account_id, request_id) DO UPDATE SET response = EXCLUDED.response "
           "WHERE o.account_id = $1 AND o.response IS NULL AND o.type = EXCLUDED.type "
           "AND o.payload_sha256 = EXCLUDED.payload_sha256 "
           "RETURNING true",
    .nargs = 4,
};

/* STORE returns no row. */
static const access_errmap_t STORE_TAKEN = {
    .status = ACCESS_CONFLICT,
    .field = "id",
    .message = "outcome: the request id already has another stored outcome",
};

/* A row can vanish between the INSERT and the SELECT only if it was pruned
 * (or its claim rolled back) in that instant; a few attempts settle it. */
#define CLAIM_ATTEMPTS 3

access_status_t access_outcome_claim(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, access_outcome_kind_t *kind,
                                     char **response, access_error_t *err)
{
    access_error_clear(err);
    *response = NULL;
    const char *const *args = ACCESS_ARGS(request_id, type, payload);
    for (int attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
        PGresult *r = access_exec(tx, &CLAIM_INSERT, args, err);
        if (r == NULL)
            return err->status;
        int inserted = PQntuples(r);
        PQclear(r);
        if (inserted == 1) {
            *kind = ACCESS_OUTCOME_NEW;
            return ACCESS_OK;
        }

        r = access_exec(tx, &CLAIM_SELECT, args, err);
        if (r == NULL)
            return err->status;
        if (PQntuples(r) == 0) {
            PQclear(r);
            continue;
        }
        bool same = access_get_bool(r, 0, 0);
        if (!same) {
            *kind = ACCESS_OUTCOME_MISMATCH;
        } else if (access_get_null(r, 0, 1)) {
            /* Claimed and committed without a response: nobody completed it.
             * We hold the row lock now, so the key is ours to process. */
            *kind = ACCESS_OUTCOME_NEW;
        } else {
            *response = access_get_dup(r, 0, 1);
            *kind = ACCESS_OUTCOME_STORED;
        }
        PQclear(r);
        return ACCESS_OK;
    }
    return access_fail(err, ACCESS_RETRY, NULL, "outcome: the stored outcome kept vanishing");
}

access_status_t access_outcome_probe_send(access_tx_t *tx, const char *request_id,
                                          const char *type, const char *payload,
                                          access_error_t *err)
{
    return access_exec_deferred(tx, &PROBE, ACCESS_ARGS(request_id, type, payload), err);
}

access_status_t access_outcome_probe(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, access_outcome_kind_t *kind,
                                     char **response, access_error_t *err)
{
    *response = NULL;
    *kind = ACCESS_OUTCOME_NEW;
    if (access_outcome_probe_send(tx, request_id, type, payload, err) != ACCESS_OK)
        return err->status;
    return access_outcome_probe_take(tx, kind, response, err);
}

access_status_t access_outcome_probe_take(access_tx_t *tx, access_outcome_kind_t *kind,
                                          char **response, access_error_t *err)
{
    *response = NULL;
    *kind = ACCESS_OUTCOME_NEW;
    PGresult *r = access_take_deferred(tx, err);
    if (r == NULL)
        return err->status;
    if (PQntuples(r) == 1 && !access_get_bool(r, 0, 0)) {
        *kind = ACCESS_OUTCOME_MISMATCH;
    } else if (PQntuples(r) == 1 && !access_get_null(r, 0, 1)) {
        *response = access_get_dup(r, 0, 1);
        *kind = ACCESS_OUTCOME_STORED;
    } /* else none, or a claim committed without a response: the store completes it */
    PQclear(r);
    return ACCESS_OK;
}

access_status_t access_outcome_store(access_tx_t *tx, const char *request_id, const char *type,
                                     const char *payload, const char *response, access_error_t *err)
{
    access_error_clear(err);
    if (response == NULL)
        return access_fail(err, ACCESS_FAILED, NULL, "outcome: no response to store");
    return access_exec_write(tx, &STORE, ACCESS_ARGS(request_id, type, payload, response), 1,
                             &STORE_TAKEN, err);
}
