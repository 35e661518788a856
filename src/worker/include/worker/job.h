/* job — one consumed request message on its way through the worker, and its
 * life. job_new makes one from a message, job_free frees it, and its state
 * changes in job_set_state only, which asserts that the move is one of
 * these:
 *
 *   RECEIVED ─► QUEUED ─► RUNNING ─► PUBLISHING ─► DONE
 *      │          ▲  ▲      │  │        │   ▲
 *      │          │  └──────┘  │        ▼   │
 *      │          │ run again  │      STUCK ┘
 *      │       BACKOFF ◄───────┘ a failed attempt
 *      └──────────────────────────────► PUBLISHING: unanswerable, to the DLQ
 *
 * A job that is dropped (queued, or finished running, when its partition
 * goes away or the worker drains) is freed without reaching DONE: it is not
 * committed, and the partition's next owner runs it.
 *
 * An answer decided for a job before it runs again — `internal` after its
 * last attempt, or at once after a failure no retry changes, or
 * `account_held` while an operator holds its account — is its verdict,
 * carried beside the envelope: the envelope stays what the request said.
 *
 * Threads: the loop owns a job, except while it sits in a batch handed to an
 * executor (task.h): then only that executor writes the fields under
 * "executor writes" (and the verdict), and hands the job back through
 * exec's completion list, whose mutex orders the accesses. */
#ifndef TALLY_WORKER_JOB_H
#define TALLY_WORKER_JOB_H

#include "common/errcode.h"
#include "common/log.h"
#include "envelope/envelope.h"
#include "worker/scheduler.h"
#include "worker/trace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The states, in the order of a job's life (name, text for logs). */
#define JOB_STATE_MAP(X)                                                                           \
    X(RECEIVED, "received")     /* decoded, nowhere yet */                                         \
    X(QUEUED, "queued")         /* in its account's queue (scheduler.h) */                         \
    X(BACKOFF, "backoff")       /* back in its queue after a failed attempt, waiting it out */     \
    X(RUNNING, "running")       /* in a batch on an executor, or back and not yet settled */       \
    X(PUBLISHING, "publishing") /* answered (or unanswerable): its deliveries are out */           \
    X(STUCK, "stuck")           /* a delivery failed for good: held, uncommitted */                \
    X(DONE, "done")             /* every delivery acknowledged: its offset may be committed */

typedef enum job_state {
#define JOB_STATE_ENUM(name, text) JOB_##name,
    JOB_STATE_MAP(JOB_STATE_ENUM)
#undef JOB_STATE_ENUM
} job_state_t;

/* Verdicts (name, text for logs). A new one is an entry here and a case in
 * job_verdict_answer. */
#define JOB_VERDICT_MAP(X)                                                                         \
    X(NONE, "none")                                     /* none: the job runs */                   \
    X(INTERNAL_AFTER_RETRIES, "internal_after_retries") /* TALLY_MAX_RETRIES attempts failed */    \
    X(INTERNAL_PERMANENT, "internal_permanent")         /* a failure no retry changes */           \
    X(ACCOUNT_HELD, "account_held") /* an operator holds its account (holds.h): nothing applied */

typedef enum job_verdict {
#define JOB_VERDICT_ENUM(name, text) JOB_VERDICT_##name,
    JOB_VERDICT_MAP(JOB_VERDICT_ENUM)
#undef JOB_VERDICT_ENUM
} job_verdict_t;

/* What an executor reports for a job of its batch (batch.h). */
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
    int64_t received_ns;
    int64_t timestamp_ms; /* the message's Kafka timestamp (CreateTime or LogAppendTime), -1 none */
    trace_t trace;        /* its W3C trace context: copied onto every delivery, id in logs */
    envelope_t env;       /* as decoded; never rewritten */
    bool unanswerable;    /* goes to the DLQ unchanged (envelope_decode said so) */
    bool started_once;    /* dispatched at least once: its age at start was observed */

    job_state_t state; /* changed by job_set_state only */
    int attempts;      /* failed attempts so far */
    job_verdict_t verdict;
    char dlq_reason[256]; /* the tally-error-message of its DLQ copy, once it has one */

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
    struct job *all_prev, *all_next; /* every live job (the runtime's list) */
} job_t;

/* A consumed message. */
typedef struct job_source {
    int32_t partition;
    int64_t offset;
    uint64_t generation;
    const void *key; /* NULL: none */
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t timestamp_ms;              /* -1: none */
    const rd_kafka_headers_t *headers; /* NULL: none */
} job_source_t;

/* The fields that name a job in a log line (common/log.h): account_id,
 * request_id, trace_id (when the request carried a valid traceparent),
 * partition and offset. */
#define JOB_LOG_FIELDS(job)                                                                        \
    LOG_S("account_id", (job)->env.account.id), LOG_S("request_id", (job)->env.id),                \
        LOG_SOPT("trace_id", (job)->trace.id), LOG_I("partition", (job)->partition),               \
        LOG_I("offset", (job)->offset)

/* A new job in state RECEIVED: copies the message, reads its trace context
 * and decodes it under policy (envelope_decode); an unanswerable one has its
 * DLQ reason.
 * @thread loop */
job_t *job_new(const job_source_t *src, const envelope_policy_t *policy);

/* Frees job, in any state (it is in no list any more).
 * @thread loop */
void job_free(job_t *job);

/* Whether the move is on the map above.
 * @thread any */
bool job_state_legal(job_state_t from, job_state_t to);

/* Moves job to state to; asserts that the move is legal. Returns whether
 * the job's being started changed (job_started).
 * @thread loop */
bool job_set_state(job_t *job, job_state_t to);

/* Started: in an executor or being published (RUNNING, PUBLISHING) — what a
 * drain or a revocation waits for.
 * @thread loop */
bool job_started(const job_t *job);

/* The answer a verdict decides. */
typedef struct job_verdict_answer {
    tally_errcode_t code;
    char message[256];
    bool dlq; /* a copy of the request goes to the DLQ */
} job_verdict_answer_t;

/* The answer job's verdict decides (TALLY_ERR_NONE for JOB_VERDICT_NONE).
 * @thread any */
void job_verdict_answer(const job_t *job, job_verdict_answer_t *out);

/* An operator's hold on job's account, as the worker knows it when the job
 * runs (held): gives a job without a verdict JOB_VERDICT_ACCOUNT_HELD, and
 * takes it back when the hold is gone (a job that runs again after the
 * release is applied). An `internal` verdict stays: nothing is applied
 * either way.
 * @thread executor (the job's owner) */
void job_set_held(job_t *job, bool held);

/* Names for logs; never NULL.
 * @thread any */
const char *job_state_str(job_state_t s);
const char *job_verdict_str(job_verdict_t v);

#endif
