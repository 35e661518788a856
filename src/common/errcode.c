#include "common/errcode.h"

#include "common/enumstr.h"

#define NAME(constant, string, stored) [constant] = string,
static const char *const names[] = {TALLY_ERRCODE_LIST(NAME)};
#undef NAME

#define STORED(constant, string, stored) [constant] = stored,
static const bool stored_for_replay[] = {TALLY_ERRCODE_LIST(STORED)};
#undef STORED

const char *tally_errcode_str(tally_errcode_t code)
{
    return enumstr_name(names, ENUMSTR_COUNT(names), (int)code, "internal");
}

bool tally_errcode_parse(const char *s, tally_errcode_t *out)
{
    int v;
    if (!enumstr_parse(names, ENUMSTR_COUNT(names), s, &v) || v == TALLY_ERR_NONE)
        return false;
    *out = (tally_errcode_t)v;
    return true;
}

bool tally_errcode_is_stored(tally_errcode_t code)
{
    return (unsigned)code < ENUMSTR_COUNT(stored_for_replay) && stored_for_replay[code];
}
