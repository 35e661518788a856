/* account — the tenant, as a type of its own.
 *
 * An access_account_t only comes out of access_account_parse, which enforces
 * the contract's rule (1–64 chars of [A-Za-z0-9_-]); tenant transactions are
 * opened from it and check it again, so a forged value cannot open one. */
#ifndef TALLY_ACCESS_ACCOUNT_H
#define TALLY_ACCESS_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

#define ACCESS_ACCOUNT_ID_MAX 64

typedef struct access_account {
    char id[ACCESS_ACCOUNT_ID_MAX + 1];
} access_account_t;

/* Fills *out from the len bytes at s. Returns false (leaving *out zeroed) when
 * they are not 1–64 chars of [A-Za-z0-9_-]. */
bool access_account_parse(const char *s, size_t len, access_account_t *out);

/* Whether *a holds a valid account id (used to refuse forged values). */
bool access_account_valid(const access_account_t *a);

#endif
