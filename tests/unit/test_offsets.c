/* Unit tests for src/worker/offsets and src/worker/flow: the contiguous done
 * prefix, and which partitions flow control pauses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/flow.h"
#include "worker/offsets.h"

static void test_contiguous_prefix(void **state)
{
    (void)state;
    offsets_t *o = offsets_new();
    int64_t next = -1;
    for (int64_t off = 10; off < 15; off++)
        assert_int_equal(offsets_track(o, off), 0);
    assert_false(offsets_advance(o, &next));
    assert_true(offsets_done(o, 12));
    assert_true(offsets_done(o, 11));
    assert_false(offsets_advance(o, &next)); /* 10 still running */
    assert_true(offsets_done(o, 10));
    assert_true(offsets_advance(o, &next));
    assert_int_equal(next, 13);
    assert_int_equal(offsets_in_flight(o), 2);
    assert_false(offsets_done(o, 12)); /* already dropped */
    assert_false(offsets_done(o, 99));
    assert_true(offsets_done(o, 14));
    assert_false(offsets_advance(o, &next));
    assert_true(offsets_done(o, 13));
    assert_true(offsets_advance(o, &next));
    assert_int_equal(next, 15);
    assert_int_equal(offsets_in_flight(o), 0);
    offsets_free(o);
}

/* Where the consumer lag counts from: the first offset not done. */
static void test_first_open(void **state)
{
    (void)state;
    offsets_t *o = offsets_new();
    int64_t next;
    assert_int_equal(offsets_first_open(o), -1); /* nothing taken yet */
    for (int64_t off = 20; off < 24; off++)
        assert_int_equal(offsets_track(o, off), 0);
    assert_int_equal(offsets_first_open(o), 20);
    assert_true(offsets_done(o, 20));
    assert_true(offsets_done(o, 22));
    assert_int_equal(offsets_first_open(o), 21); /* before advance, too */
    assert_true(offsets_advance(o, &next));
    assert_int_equal(offsets_first_open(o), 21);
    assert_true(offsets_done(o, 21));
    assert_true(offsets_done(o, 23));
    assert_true(offsets_advance(o, &next));
    assert_int_equal(offsets_first_open(o), 24); /* everything taken is done */
    offsets_free(o);
}

static void test_gaps_and_redelivery(void **state)
{
    (void)state;
    offsets_t *o = offsets_new();
    int64_t next = -1;
    assert_int_equal(offsets_track(o, 5), 0);
    assert_int_equal(offsets_track(o, 9), 0); /* compaction gap */
    assert_int_equal(offsets_track(o, 9), -1);
    assert_int_equal(offsets_track(o, 3), -1);
    assert_int_equal(offsets_last(o), 9);
    assert_true(offsets_done(o, 9));
    assert_true(offsets_done(o, 5));
    assert_true(offsets_advance(o, &next));
    assert_int_equal(next, 10);
    offsets_free(o);
}

static void test_ring_growth_and_wrap(void **state)
{
    (void)state;
    offsets_t *o = offsets_new();
    int64_t next = 0, off = 0;
    /* Track and finish in waves so the ring wraps and grows. */
    for (int wave = 0; wave < 50; wave++) {
        int64_t first = off;
        for (int i = 0; i < 37 + wave * 3; i++)
            assert_int_equal(offsets_track(o, off++), 0);
        for (int64_t k = off - 1; k >= first + 5; k--)
            assert_true(offsets_done(o, k));
        for (int64_t k = first; k < first + 5; k++)
            assert_true(offsets_done(o, k));
        assert_true(offsets_advance(o, &next));
        assert_int_equal(next, off);
        assert_int_equal(offsets_in_flight(o), 0);
    }
    offsets_free(o);
}

static void test_flow_pauses_heavy_partitions_only(void **state)
{
    (void)state;
    int64_t in[3] = {990, 10, 0};
    bool paused[3] = {false, false, false}, want[3];
    flow_decide(1000, 3, in, paused, want);
    assert_true(want[0]);
    assert_false(want[1]);
    assert_false(want[2]);
    /* Below the maximum: nothing new is paused. */
    in[0] = 900;
    flow_decide(1000, 3, in, paused, want);
    assert_false(want[0]);
    /* Hysteresis: paused p0 stays paused until the total reaches 3/4 ... */
    paused[0] = true;
    in[0] = 700;
    in[1] = 200;
    flow_decide(1000, 3, in, paused, want);
    assert_true(want[0]);
    in[0] = 550;
    flow_decide(1000, 3, in, paused, want);
    assert_false(want[0]);
    /* ... or its own count half its share, even when the total is high. */
    int64_t in2[2] = {200, 900};
    bool paused2[2] = {true, false}, want2[2];
    flow_decide(1000, 2, in2, paused2, want2);
    assert_false(want2[0]);
    assert_true(want2[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contiguous_prefix),
        cmocka_unit_test(test_first_open),
        cmocka_unit_test(test_gaps_and_redelivery),
        cmocka_unit_test(test_ring_growth_and_wrap),
        cmocka_unit_test(test_flow_pauses_heavy_partitions_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
