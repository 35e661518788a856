/* th-pg-template — the CTest fixture that builds the PostgreSQL template
 * cluster once, so that each integration test copies it instead of running
 * initdb (seconds each). */
#include "harness.h"
#include "th_internal.h"

#include <stdio.h>

int main(void)
{
    int64_t t0 = th_now_ms();
    th_pg_template_ensure();
    printf("pg template ready in %lld ms\n", (long long)(th_now_ms() - t0));
    return 0;
}
