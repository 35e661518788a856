/* pool_internal — what the pool's modules share and the layers above do
 * not see. Private to src/pool/. */
#ifndef TALLY_POOL_INTERNAL_H
#define TALLY_POOL_INTERNAL_H

#include "pool/pool.h"

/* Opens a connection with the pool's settings that the pool does not count
 * or keep (the caller PQfinish()es it), within the connect timeout. Returns
 * NULL with err filled (no secrets) when none could be had. */
PGconn *pool_open_unpooled(pool_t *pool, char *err, size_t errlen);

/* Writes "what: detail" (or just what) into err, detail made one line and
 * redacted. */
void pool_set_err(char *err, size_t errlen, const char *what, const char *detail);

/* The connect timeout, which also bounds the pooler check's statements. */
int pool_connect_timeout_ms(const pool_t *pool);

#endif
