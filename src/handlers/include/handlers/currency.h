/* currency — the currencies Tally accepts: the active ISO 4217 codes, in
 * lower case (CONTRACT.md §6), from a table generated from Debian's
 * iso-codes package by scripts/gen-currencies.py (currency_table.h).
 *
 * The payload validator refuses any other code (invalid_request, field
 * "currency") wherever a currency is accepted; `tallyctl payouts due` skips
 * balances held in one (written before the check existed). Pure and
 * thread-safe. */
#ifndef TALLY_HANDLERS_CURRENCY_H
#define TALLY_HANDLERS_CURRENCY_H

#include <stdbool.h>
#include <stddef.h>

/* Whether code (NUL-terminated) is an active ISO 4217 code in lower case. */
bool currency_known(const char *code);

/* The number of codes, and code i (0 ≤ i < currency_count()) in sorted order. */
size_t currency_count(void);
const char *currency_code(size_t i);

#endif
