/* thread_marks_fixture — a header the thread-mark check must refuse. */
#ifndef THREAD_MARKS_FIXTURE_H
#define THREAD_MARKS_FIXTURE_H

/* Marked.
 * @thread loop */
int fixture_marked(void);
int fixture_shares_the_mark(void);

/* Says nothing of its thread. */
int fixture_unmarked(int a,
                     int b);

static inline int fixture_inline(void)
{
    return 0;
}

#endif
