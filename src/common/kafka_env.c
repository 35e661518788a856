#include "common/kafka_env.h"

#include <ctype.h>
#include <string.h>

#define PREFIX_LEN (sizeof(KAFKA_ENV_PREFIX) - 1)

bool kafka_env_property(const char *entry, char *key, size_t keysize, const char **value,
                        size_t *name_len)
{
    if (strncmp(entry, KAFKA_ENV_PREFIX, PREFIX_LEN) != 0)
        return false;
    const char *eq = strchr(entry, '=');
    if (eq == NULL)
        return false;
    size_t n = (size_t)(eq - entry) - PREFIX_LEN;
    if (n == 0 || n >= keysize)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = entry[PREFIX_LEN + i];
        key[i] = ch == '_' ? '.' : (char)tolower((unsigned char)ch);
    }
    key[n] = '\0';
    *value = eq + 1;
    *name_len = (size_t)(eq - entry);
    return true;
}

bool kafka_env_name(const char *property, char *out, size_t size)
{
    size_t n = strlen(property);
    if (PREFIX_LEN + n + 1 > size)
        return false;
    memcpy(out, KAFKA_ENV_PREFIX, PREFIX_LEN);
    for (size_t i = 0; i < n; i++)
        out[PREFIX_LEN + i] = property[i] == '.' ? '_' : (char)toupper((unsigned char)property[i]);
    out[PREFIX_LEN + n] = '\0';
    return true;
}
