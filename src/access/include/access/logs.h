/* logs — the payment_system_logs table: one audit row per answered request. */
#ifndef TALLY_ACCESS_LOGS_H
#define TALLY_ACCESS_LOGS_H

#include "access/tx.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct access_log_entry {
    const char *request_id;
    const char *type;
    const char *status;     /* "ok" or "error" */
    const char *error_code; /* NULL when status is "ok" */
    bool replayed;
    int64_t at_ms;          /* epoch milliseconds */
    double duration_ms;
    const char *worker;
    int32_t partition;
    int64_t offset;
} access_log_entry_t;

/* Writes the audit row (the values are copied). In a pipelined session the
 * write is queued and access_tx_end reports its failure. */
access_status_t access_logs_insert(access_tx_t *tx, const access_log_entry_t *e,
                                   access_error_t *err);

typedef struct access_log_row {
    char id[48];
    char request_id[129];
    char type[129]; /* up to 128 chars, as the envelope allows */
    char status[8];
    char error_code[32]; /* "" when none */
    bool replayed;
    int64_t at_ms;
} access_log_row_t;

/* audit.list: rows of tx's account, newest first, optionally of one type
 * (type may be NULL). rows has room for page->limit entries; *n is how many
 * were filled and *has_more whether older rows exist. */
access_status_t access_logs_list(access_tx_t *tx, const char *type, const access_page_t *page,
                                 access_log_row_t *rows, int *n, bool *has_more,
                                 access_error_t *err);

#endif
