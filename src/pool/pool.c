#include "pool/pool.h"

#include "common/log.h"

void pool_redact_conninfo(const char *conninfo, char *out, size_t size)
{
    log_redact(conninfo, out, size);
}
