/* ids — identifiers that Tally generates: a type prefix, '_', and 26
 * characters of Crockford base32 encoding 48 bits of milliseconds and 80
 * random bits (ULID layout), e.g. "pay_01JD3Z5T8Q9V7K2M4N6P8R0S2T".
 *
 * Ids from one process sort in creation order; ids from several replicas sort
 * by millisecond. Safe to call from any thread. */
#ifndef TALLY_COMMON_IDS_H
#define TALLY_COMMON_IDS_H

#include <stddef.h>

#define IDS_BODY_LEN 26
#define IDS_MAX      48 /* buffer size that fits any prefix Tally uses */

/* Writes prefix + "_" + body into out. Returns 0, or -1 when out is too small. */
int ids_new(const char *prefix, char *out, size_t size);

#endif
