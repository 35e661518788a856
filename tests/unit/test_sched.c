/* Unit tests for src/worker/sched: per-account order, round robin, batches
 * of distinct accounts, backoff and dropping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct job {
    sched_item_t item; /* first: a sched_item_t * is a job_t * */
    char account[16];
    int seq;
    int tag;
} job_t;

static job_t *push(sched_t *s, job_t *j, const char *acct, int seq)
{
    memset(j, 0, sizeof(*j));
    snprintf(j->account, sizeof(j->account), "%s", acct);
    j->seq = seq;
    sched_push(s, &j->item, acct);
    return j;
}

static job_t *one(sched_t *s, int64_t now)
{
    sched_item_t *it = NULL;
    return sched_next_batch(s, now, &it, 1) == 1 ? (job_t *)it : NULL;
}

static void test_fifo_per_account_and_one_at_a_time(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    job_t j[3];
    push(s, &j[0], "a", 0);
    push(s, &j[1], "a", 1);
    push(s, &j[2], "a", 2);
    assert_int_equal(sched_queued(s), 3);
    job_t *x = one(s, 0);
    assert_ptr_equal(x, &j[0]);
    /* a is running: nothing else of a may start. */
    assert_null(one(s, 0));
    sched_finish(s, &x->item);
    assert_ptr_equal(one(s, 0), &j[1]);
    sched_finish(s, &j[1].item);
    assert_ptr_equal(one(s, 0), &j[2]);
    sched_finish(s, &j[2].item);
    assert_null(one(s, 0));
    assert_int_equal(sched_queued(s), 0);
    sched_free(s);
}

static void test_round_robin_fairness(void **state)
{
    (void)state;
    /* Account "big" has 5000 queued; "small" pushes one job later. It must
     * run before big's next job: at most one round of delay. */
    sched_t *s = sched_new();
    enum { BIG = 5000 };
    job_t *big = calloc(BIG, sizeof(*big));
    for (int i = 0; i < BIG; i++)
        push(s, &big[i], "big", i);
    job_t *x = one(s, 0);
    assert_ptr_equal(x, &big[0]);
    job_t small;
    push(s, &small, "small", 0);
    sched_finish(s, &x->item);
    assert_ptr_equal(one(s, 0), &small);
    assert_ptr_equal(one(s, 0), &big[1]);

    /* Three accounts interleave strictly. */
    sched_finish(s, &small.item);
    sched_finish(s, &big[1].item);
    job_t c[2];
    push(s, &c[0], "c", 0);
    push(s, &c[1], "c", 1);
    int order_big = 0, order_c = 0;
    for (int round = 0; round < 4; round++) {
        job_t *y = one(s, 0);
        assert_non_null(y);
        if (strcmp(y->account, "big") == 0)
            assert_int_equal(y->seq, 2 + order_big++);
        else
            assert_int_equal(y->seq, order_c++);
        sched_finish(s, &y->item);
    }
    assert_int_equal(order_big, 2);
    assert_int_equal(order_c, 2);
    sched_free(s);
    free(big);
}

static void test_batches_take_distinct_accounts(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    job_t j[6];
    push(s, &j[0], "a", 0);
    push(s, &j[1], "a", 1);
    push(s, &j[2], "b", 0);
    push(s, &j[3], "c", 0);
    push(s, &j[4], "b", 1);
    push(s, &j[5], "d", 0);
    assert_int_equal(sched_ready(s), 4);
    sched_item_t *out[8];
    size_t n = sched_next_batch(s, 0, out, 3);
    assert_int_equal(n, 3);
    assert_ptr_equal(out[0], &j[0].item);
    assert_ptr_equal(out[1], &j[2].item);
    assert_ptr_equal(out[2], &j[3].item);
    /* Only d is ready now: a, b and c are running. */
    n = sched_next_batch(s, 0, out, 8);
    assert_int_equal(n, 1);
    assert_ptr_equal(out[0], &j[5].item);
    assert_int_equal(sched_next_batch(s, 0, out, 8), 0);
    sched_finish(s, &j[0].item);
    sched_finish(s, &j[2].item);
    n = sched_next_batch(s, 0, out, 8);
    assert_int_equal(n, 2);
    assert_ptr_equal(out[0], &j[1].item);
    assert_ptr_equal(out[1], &j[4].item);
    sched_free(s);
}

/* A retried job (marked alone) never shares a batch: one ready behind
 * others ends their batch, and runs in the next one by itself. */
static void test_alone_runs_in_a_batch_of_its_own(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    job_t j[5];
    push(s, &j[0], "a", 0);
    push(s, &j[1], "b", 0);
    push(s, &j[2], "c", 0);
    push(s, &j[3], "d", 0);
    sched_item_t *out[8];
    assert_int_equal(sched_next_batch(s, 0, out, 1), 1); /* a runs, fails */
    j[0].item.alone = true;
    sched_retry(s, &j[0].item, 0, 0); /* a: the ring's tail, behind b, c, d */
    push(s, &j[4], "e", 0);
    size_t n = sched_next_batch(s, 0, out, 8);
    assert_int_equal(n, 3);
    assert_ptr_equal(out[0], &j[1].item);
    assert_ptr_equal(out[1], &j[2].item);
    assert_ptr_equal(out[2], &j[3].item);
    n = sched_next_batch(s, 0, out, 8);
    assert_int_equal(n, 1);
    assert_ptr_equal(out[0], &j[0].item);
    n = sched_next_batch(s, 0, out, 8);
    assert_int_equal(n, 1);
    assert_ptr_equal(out[0], &j[4].item);
    assert_int_equal(sched_ready(s), 0);
    sched_free(s);
}

static void test_retry_goes_to_head_and_backs_off(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    job_t j[3];
    push(s, &j[0], "a", 0);
    push(s, &j[1], "a", 1);
    push(s, &j[2], "b", 0);
    job_t *x = one(s, 1000);
    assert_ptr_equal(x, &j[0]);
    sched_retry(s, &x->item, 1000, 250);
    assert_int_equal(sched_next_deadline(s), 1250);
    /* a backs off: b runs, a does not until its deadline. */
    assert_ptr_equal(one(s, 1100), &j[2]);
    assert_null(one(s, 1249));
    assert_ptr_equal(one(s, 1250), &j[0]); /* the retried job first: order kept */
    assert_int_equal(sched_next_deadline(s), -1);
    sched_finish(s, &j[0].item);
    assert_ptr_equal(one(s, 1250), &j[1]);
    sched_finish(s, &j[1].item);
    /* Retry with no delay: ready at once. */
    sched_finish(s, &j[2].item);
    push(s, &j[2], "b", 1);
    x = one(s, 2000);
    sched_retry(s, &x->item, 2000, 0);
    assert_ptr_equal(one(s, 2000), &j[2]);
    sched_finish(s, &j[2].item);
    sched_free(s);
}

static bool tag_is(const sched_item_t *it, void *arg)
{
    return ((const job_t *)it)->tag == *(int *)arg;
}

static void count_drop(sched_item_t *it, void *arg)
{
    (void)arg;
    ((job_t *)it)->tag = -1;
}

static void test_drop_queued_items(void **state)
{
    (void)state;
    sched_t *s = sched_new();
    job_t j[5];
    push(s, &j[0], "a", 0)->tag = 1;
    push(s, &j[1], "a", 1)->tag = 2;
    push(s, &j[2], "a", 2)->tag = 1;
    push(s, &j[3], "b", 0)->tag = 1;
    push(s, &j[4], "c", 0)->tag = 2;
    job_t *running = one(s, 0); /* a's first job, tag 1: running, not dropped */
    assert_ptr_equal(running, &j[0]);
    job_t *c = one(s, 0);
    assert_ptr_equal(c, &j[3]);
    sched_retry(s, &c->item, 0, 5000); /* b backs off with only a tag-1 job */
    int tag = 1;
    assert_int_equal(sched_drop(s, tag_is, count_drop, &tag), 2);
    assert_int_equal(j[2].tag, -1);
    assert_int_equal(j[3].tag, -1);
    assert_int_equal(j[0].tag, 1);
    assert_int_equal(sched_queued(s), 2);
    assert_int_equal(sched_next_deadline(s), -1); /* b has nothing left */
    sched_finish(s, &running->item);
    job_t *x = one(s, 0);
    assert_ptr_equal(x, &j[4]);
    sched_finish(s, &x->item);
    x = one(s, 0);
    assert_ptr_equal(x, &j[1]);
    sched_finish(s, &x->item);
    assert_null(one(s, 10000));
    sched_free(s);
}

static void test_many_accounts(void **state)
{
    (void)state;
    /* Enough accounts to rehash; every account runs once per round. */
    enum { N = 3000 };
    sched_t *s = sched_new();
    job_t *j = calloc(2 * N, sizeof(*j));
    char name[16];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "acct%d", i);
        push(s, &j[i], name, 0);
        push(s, &j[N + i], name, 1);
    }
    sched_item_t **out = calloc(N, sizeof(*out));
    assert_int_equal(sched_next_batch(s, 0, out, N), N);
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(out[i], &j[i].item);
        sched_finish(s, out[i]);
    }
    assert_int_equal(sched_next_batch(s, 0, out, N), N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(((job_t *)out[i])->seq, 1);
        sched_finish(s, out[i]);
    }
    assert_int_equal(sched_queued(s), 0);
    sched_free(s);
    free(out);
    free(j);
}

static void test_backoff_full_jitter(void **state)
{
    (void)state;
    uint64_t rng = 42;
    int64_t max_seen[8] = {0};
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t ceiling = 100LL << (attempt - 1);
        if (ceiling > 10000)
            ceiling = 10000;
        for (int i = 0; i < 2000; i++) {
            int64_t d = sched_backoff_ms(attempt, 100, 10000, &rng);
            assert_true(d >= 0 && d <= ceiling);
            if (d > max_seen[attempt - 1])
                max_seen[attempt - 1] = d;
        }
        /* The draws spread over the range (not stuck at 0 or one value). */
        assert_true(max_seen[attempt - 1] > ceiling / 2);
    }
    assert_true(sched_backoff_ms(60, 100, 10000, &rng) <= 10000);
}

/* A request's retry budget: each wait is at least half its step, so five
 * attempts with base 1 s span at least 0.5 + 1 + 2 + 4 = 7.5 s of backoff. */
static void test_backoff_equal_jitter(void **state)
{
    (void)state;
    uint64_t rng = 7;
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t step = 1000LL << (attempt - 1);
        if (step > 10000)
            step = 10000;
        int64_t lo = step, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t d = sched_backoff_equal_ms(attempt, 1000, 10000, &rng);
            assert_true(d >= step / 2 && d <= step);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* Jittered over the upper half, not one value. */
        assert_true(hi - lo > step / 4);
    }
    int64_t floor_sum = 0;
    for (int attempt = 1; attempt <= 4; attempt++)
        floor_sum += sched_backoff_equal_ms(attempt, 1000, 10000, &rng);
    assert_true(floor_sum >= 7500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_per_account_and_one_at_a_time),
        cmocka_unit_test(test_round_robin_fairness),
        cmocka_unit_test(test_batches_take_distinct_accounts),
        cmocka_unit_test(test_alone_runs_in_a_batch_of_its_own),
        cmocka_unit_test(test_retry_goes_to_head_and_backs_off),
        cmocka_unit_test(test_drop_queued_items),
        cmocka_unit_test(test_many_accounts),
        cmocka_unit_test(test_backoff_full_jitter),
        cmocka_unit_test(test_backoff_equal_jitter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
