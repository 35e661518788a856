/* job — one consumed request message on its way through the worker.
 *
 * Owned by the loop thread, except while it sits in a batch handed to an
 * executor: then only that executor touches the fields under "executor
 * writes", and hands the job back through exec's completion list (whose
 * mutex orders the accesses). */
#ifndef TALLY_WORKER_JOB_H
#define TALLY_WORKER_JOB_H

#include "common/errcode.h"
#include "envelope/envelope.h"
#include "scheduler.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum job_exec_status {
    JOB_ANSWERED, /* result_text and audit_text are ready to publish */
    JOB_RETRY,    /* a failed attempt: back off and try again (counts) */
    JOB_REQUEUE,  /* not the job's fault (database unreachable, connection lost,
                   * a pooler fault, batch-mate's failure): run again, not
                   * counted as an attempt */
} job_exec_status_t;

typedef struct job {
    sched_item_t item; /* first member: a sched_item_t * is a job_t * */

    /* Source message. The value is kept for the DLQ copy of an `internal` answer. */
    int32_t partition;
    int64_t offset;
    uint64_t generation; /* of the partition's assignment when consumed */
    char *key;           /* NULL when the message had none */
    size_t key_len;
    char *value;
    size_t value_len;
    envelope_t env;
    bool unanswerable;   /* goes to the DLQ unchanged (envelope_decode said so) */
    bool started;        /* handed to an executor or being published */
    int attempts;        /* failed attempts so far */
    bool final_internal; /* answered `internal`: after max retries, or at once after a
                          * failure no retry changes (set by the executor) */

    /* Executor writes. */
    job_exec_status_t status;
    char *result_text; /* malloc'd; the result to publish */
    char *audit_text;  /* malloc'd; the audit event to publish */
    bool ok;
    tally_errcode_t error_code;
    bool replayed;
    char fail_reason[256]; /* for the log, on JOB_RETRY */
    int losses;            /* connections lost while it ran (not a pooler's fault) */

    /* Loop: deliveries still waiting for the broker's acknowledgement. */
    int pending_acks;
    int64_t received_ns;
    struct job *all_prev, *all_next; /* every live job, for the final cleanup */
} job_t;

#endif
