/* currency — see handlers/currency.h. */
#include "handlers/currency.h"

#include "currency_table.h"

#include <stdlib.h>
#include <string.h>

#define COUNT (sizeof(currency_table) / sizeof(currency_table[0]))

static int cmp(const void *key, const void *elem)
{
    return strcmp(key, elem);
}

bool currency_known(const char *code)
{
    return code != NULL && strlen(code) == 3 &&
           bsearch(code, currency_table, COUNT, sizeof(currency_table[0]), cmp) != NULL;
}

size_t currency_count(void)
{
    return COUNT;
}

const char *currency_code(size_t i)
{
    return i < COUNT ? currency_table[i] : NULL;
}
