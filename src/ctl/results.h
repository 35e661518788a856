/* results — `tallyctl results`: follow a results topic and print the results
 * (CONTRACT.md §3) that match the filters; also the result printer that
 * `tallyctl enqueue --wait` shares. */
#ifndef TALLY_CTL_RESULTS_H
#define TALLY_CTL_RESULTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* Prints one result: with json, the object itself on one line; otherwise a
 * readable line ("ok  req_1  acct_42  payment.record  …") and, for ok
 * answers, the compact "result" object indented below it. */
void results_print(FILE *out, const json_t *result, bool json);

#endif
