/* Unit tests for src/worker/procstat: /proc/self/stat's fields read from
 * after the command (which may hold spaces and parentheses), and the
 * running process's figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "worker/procstat.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

/* A real line of cat's, with a command made hostile. */
static const char STAT[] =
    "17615 (a) b (c) R 17612 17612 26234 0 -1 4194304 101 0 0 0 250 50 0 0 20 0 1 0 1376501 "
    "3133440 413 18446744073709551615 94279532355584 94279532375465 140721793763664 0 0 0 0 0 0 "
    "0 0 0 17 0 0 0 0 0 0\n";

static void test_parse_stat(void **state)
{
    (void)state;
    procstat_t p = {0};
    assert_int_equal(procstat_parse_stat(STAT, 1796194647, 100, 4096, &p), 0);
    assert_true(p.cpu_seconds == 3.0);                          /* (250 + 50) / 100 */
    assert_true(p.start_time_seconds == 1796194647 + 13765.01); /* boot + 1376501 / 100 */
    assert_int_equal(p.virtual_bytes, 3133440);
    assert_int_equal(p.resident_bytes, 413 * 4096);
}

static void test_parse_refuses_other_text(void **state)
{
    (void)state;
    procstat_t p;
    assert_int_equal(procstat_parse_stat(NULL, 0, 100, 4096, &p), -1);
    assert_int_equal(procstat_parse_stat("", 0, 100, 4096, &p), -1);
    assert_int_equal(procstat_parse_stat("1 (x) R 2 3", 0, 100, 4096, &p), -1); /* cut short */
    assert_int_equal(procstat_parse_stat("1 (x)R 2", 0, 100, 4096, &p), -1);
    assert_int_equal(procstat_parse_stat("1 (x) R 1 2 3 4 5 6 7 8 9 10 x", 0, 100, 4096, &p), -1);
    assert_int_equal(procstat_parse_stat(STAT, 0, 0, 4096, &p), -1);
}

static void test_read_self(void **state)
{
    (void)state;
    procstat_t p;
    assert_int_equal(procstat_read(&p), 0);
    time_t now = time(NULL);
    /* Started a little before now (the test runner may be slow, not the clock). */
    assert_true(p.start_time_seconds <= (double)now + 1);
    assert_true(p.start_time_seconds > (double)now - 3600);
    assert_true(p.cpu_seconds >= 0);
    assert_true(p.resident_bytes > 0);
    assert_true(p.virtual_bytes >= p.resident_bytes);
    /* stdin, stdout and stderr at least, and the limit above them. */
    assert_true(p.open_fds >= 3);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(p.max_fds >= p.open_fds);
    if (rl.rlim_cur != RLIM_INFINITY)
        assert_int_equal(p.max_fds, (int64_t)rl.rlim_cur);
    /* One more open descriptor is seen. */
    FILE *f = fopen("/proc/self/stat", "r");
    assert_non_null(f);
    procstat_t q;
    assert_int_equal(procstat_read(&q), 0);
    assert_int_equal(q.open_fds, p.open_fds + 1);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stat),
        cmocka_unit_test(test_parse_refuses_other_text),
        cmocka_unit_test(test_read_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
