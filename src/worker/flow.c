#include "worker/flow.h"

void flow_decide(int64_t max_in_flight, size_t n, const int64_t *in_flight, const bool *paused,
                 bool *want_paused)
{
    if (n == 0)
        return;
    int64_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += in_flight[i];
    int64_t share = max_in_flight / (int64_t)n;
    if (share < 1)
        share = 1;
    bool over = total >= max_in_flight;
    bool relaxed = total * 4 <= max_in_flight * 3;
    for (size_t i = 0; i < n; i++) {
        if (paused[i])
            want_paused[i] = !(relaxed || in_flight[i] * 2 < share);
        else
            want_paused[i] = over && in_flight[i] >= share;
    }
}
