#include "common/errcode.h"

#include <string.h>

static const struct {
    const char *name;
    bool stored;
} codes[] = {
    [TALLY_ERR_NONE] = {"none", true},
    [TALLY_ERR_INVALID_REQUEST] = {"invalid_request", false},
    [TALLY_ERR_UNSUPPORTED_VERSION] = {"unsupported_version", false},
    [TALLY_ERR_UNKNOWN_TYPE] = {"unknown_type", false},
    [TALLY_ERR_IDEMPOTENCY_CONFLICT] = {"idempotency_conflict", false},
    [TALLY_ERR_NOT_FOUND] = {"not_found", true},
    [TALLY_ERR_CONFLICT] = {"conflict", true},
    [TALLY_ERR_INSUFFICIENT_FUNDS] = {"insufficient_funds", true},
    [TALLY_ERR_INTERNAL] = {"internal", false},
};

#define NCODES (sizeof(codes) / sizeof(codes[0]))

const char *tally_errcode_str(tally_errcode_t code)
{
    if ((unsigned)code >= NCODES)
        return "internal";
    return codes[code].name;
}

bool tally_errcode_parse(const char *s, tally_errcode_t *out)
{
    for (unsigned i = 1; i < NCODES; i++) {
        if (strcmp(s, codes[i].name) == 0) {
            *out = (tally_errcode_t)i;
            return true;
        }
    }
    return false;
}

bool tally_errcode_is_stored(tally_errcode_t code)
{
    if ((unsigned)code >= NCODES)
        return false;
    return codes[code].stored;
}
