#include "access/account.h"

#include <string.h>

static bool account_char_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

bool access_account_parse(const char *s, size_t len, access_account_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || len == 0 || len > ACCESS_ACCOUNT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!account_char_ok(s[i]))
            return false;
    }
    memcpy(out->id, s, len);
    return true;
}

bool access_account_valid(const access_account_t *a)
{
    if (a == NULL)
        return false;
    size_t len = strnlen(a->id, sizeof(a->id));
    if (len == 0 || len > ACCESS_ACCOUNT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!account_char_ok(a->id[i]))
            return false;
    }
    return true;
}
