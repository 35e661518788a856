#include "access/status.h"

const char *access_status_str(access_status_t s)
{
    switch (s) {
    case ACCESS_OK:
        return "ok";
    case ACCESS_NOT_FOUND:
        return "not_found";
    case ACCESS_CONFLICT:
        return "conflict";
    case ACCESS_INSUFFICIENT_FUNDS:
        return "insufficient_funds";
    case ACCESS_INVALID:
        return "invalid";
    case ACCESS_RETRY:
        return "retry";
    case ACCESS_UNAVAILABLE:
        return "unavailable";
    case ACCESS_FAILED:
        return "failed";
    }
    return "failed";
}
