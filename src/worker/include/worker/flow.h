/* flow — which partitions to pause so the read-ahead stays bounded.
 *
 * In-flight = received and not yet finished. When the total reaches
 * max_in_flight, the partitions holding at least their fair share
 * (max_in_flight / partitions) are paused, so a partition with little work
 * keeps flowing. A paused partition resumes with hysteresis: when the total
 * fell to three quarters of the maximum, or its own count to half its share.
 *
 * Pure. */
#ifndef TALLY_WORKER_FLOW_H
#define TALLY_WORKER_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* For each of n partitions, sets want_paused[i] from in_flight[i] and the
 * current paused[i].
 * @thread any */
void flow_decide(int64_t max_in_flight, size_t n, const int64_t *in_flight, const bool *paused,
                 bool *want_paused);

#endif
