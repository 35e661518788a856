/* answer_micro — ns per request of the answer texts, before and after
 * issue 14: answer_stored_ok + answer_result + answer_audit_event for a
 * payment.record-shaped result, against the old jansson construction
 * (tests/unit/answer_ref.h). Prints numbers, asserts nothing; not run by
 * ctest. Usage: answer-micro [iterations] (default 200000). */
#include "answer_ref.h"

#include "common/mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct texts {
    char *(*stored_ok)(const json_t *result);
    char *(*result)(const envelope_t *env, const char *stored, bool replayed, int64_t at_ms);
    char *(*audit)(const answer_audit_t *a);
} texts_t;

static const texts_t OLD = {ref_stored_ok, ref_result, ref_audit_event};
static const texts_t NEW = {answer_stored_ok, answer_result, answer_audit_event};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* What handler_payment_record hands back (CONTRACT.md §6). */
static json_t *payment_result(void)
{
    return json_pack("{s:{s:s,s:s,s:I,s:s,s:s,s:I,s:s,s:{s:s,s:s},s:s,s:s}}", "payment", "id",
                     "pay_01HF8Z3K4M5N6P7Q8R9S0T1V2W", "external_id", "pi_3OqXYZ2eZvKYlo2C1a2b3c4d",
                     "amount", (json_int_t)1999, "currency", "usd", "status", "succeeded",
                     "amount_refunded", (json_int_t)0, "description", "Order #1042 — 2 items",
                     "metadata", "order_id", "1042", "channel", "web", "created_at",
                     "2026-11-22T10:00:00.123Z", "updated_at", "2026-11-22T10:00:00.123Z");
}

static answer_audit_t audit_of(const envelope_t *env, int64_t i)
{
    return (answer_audit_t){.env = env,
                            .ok = true,
                            .error_code = TALLY_ERR_NONE,
                            .at_ms = 1795341600123 + i,
                            .duration_ms = 1.7004 + (double)(i % 100) / 1000.0,
                            .worker = "tally-worker-7d9f8-abcde",
                            .partition = 3,
                            .offset = 1042 + i};
}

enum { PART_STORED, PART_RESULT, PART_AUDIT, PART_ALL };
static const char *const PART_NAME[] = {"answer_stored_ok", "answer_result", "answer_audit_event",
                                        "all three"};

/* Takes ownership of text; returns its length so that nothing is optimized
 * away. */
static size_t consume(char *text)
{
    size_t n = strlen(text);
    free(text);
    return n;
}

/* One request's part (the result from stored, the writers' own text). */
static size_t one(const texts_t *t, int part, const json_t *result, const char *stored,
                  const envelope_t *env, int64_t i)
{
    answer_audit_t a = audit_of(env, i);
    switch (part) {
    case PART_STORED:
        return consume(t->stored_ok(result));
    case PART_RESULT:
        return consume(t->result(env, stored, false, 1795341600123 + i));
    case PART_AUDIT:
        return consume(t->audit(&a));
    default: {
        char *own = t->stored_ok(result);
        size_t n = consume(t->result(env, own, false, 1795341600123 + i)) + consume(t->audit(&a));
        return n + consume(own);
    }
    }
}

static double ns_per_call(const texts_t *t, int part, const json_t *result, const char *stored,
                          const envelope_t *env, int64_t iterations, size_t *sink)
{
    int64_t t0 = now_ns();
    for (int64_t i = 0; i < iterations; i++)
        *sink += one(t, part, result, stored, env, i);
    return (double)(now_ns() - t0) / (double)iterations;
}

int main(int argc, char **argv)
{
    mem_use_for_jansson(); /* as the worker's main does */
    int64_t iterations = argc > 1 ? atoll(argv[1]) : 200000;
    if (iterations <= 0) {
        fprintf(stderr, "usage: answer-micro [iterations]\n");
        return 2;
    }
    envelope_t env;
    memset(&env, 0, sizeof(env));
    strcpy(env.id, "req_01HF8Z3K4M5N6P7Q8R9S0T1V2W");
    strcpy(env.account.id, "acct_42");
    strcpy(env.type, "payment.record");
    strcpy(env.correlation_id, "c-77");
    env.has_correlation_id = true;
    json_t *result = payment_result();

    char *stored = answer_stored_ok(result);

    /* The same texts, or the numbers mean nothing. */
    size_t sink = 0;
    for (int part = PART_STORED; part <= PART_ALL; part++) {
        if (one(&OLD, part, result, stored, &env, 0) != one(&NEW, part, result, stored, &env, 0)) {
            fprintf(stderr, "answer-micro: %s: the old and the new texts differ\n",
                    PART_NAME[part]);
            return 1;
        }
    }
    printf("payment.record, %lld iterations a run, best of 3 alternating runs (ns/call)\n",
           (long long)iterations);
    printf("%-20s %10s %10s %8s\n", "", "before", "after", "speed-up");
    for (int part = PART_STORED; part <= PART_ALL; part++) {
        /* Warm up, then alternate so that a busy neighbour hurts both alike. */
        ns_per_call(&OLD, part, result, stored, &env, iterations / 10 + 1, &sink);
        ns_per_call(&NEW, part, result, stored, &env, iterations / 10 + 1, &sink);
        double best_old = 0, best_new = 0;
        for (int round = 0; round < 3; round++) {
            double o = ns_per_call(&OLD, part, result, stored, &env, iterations, &sink);
            double n = ns_per_call(&NEW, part, result, stored, &env, iterations, &sink);
            if (round == 0 || o < best_old)
                best_old = o;
            if (round == 0 || n < best_new)
                best_new = n;
        }
        printf("%-20s %10.0f %10.0f %7.2fx\n", PART_NAME[part], best_old, best_new,
               best_old / best_new);
    }
    printf("(checksum %zu)\n", sink % 1000);
    free(stored);
    json_decref(result);
    return 0;
}
