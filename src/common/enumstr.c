#include "common/enumstr.h"

#include <string.h>

const char *enumstr_name(const char *const *names, size_t count, int value, const char *fallback)
{
    if (value < 0 || (size_t)value >= count || names[value] == NULL)
        return fallback;
    return names[value];
}

bool enumstr_parse(const char *const *names, size_t count, const char *s, int *out)
{
    for (size_t i = 0; s != NULL && i < count; i++) {
        if (names[i] != NULL && strcmp(s, names[i]) == 0) {
            *out = (int)i;
            return true;
        }
    }
    return false;
}
