#include "access/status.h"

static const char *const names[] = {ACCESS_STATUS_LIST(ENUMSTR_NAME)};

const char *access_status_str(access_status_t s)
{
    return enumstr_name(names, ENUMSTR_COUNT(names), (int)s, "failed");
}
