#include "handler_internal.h"

#include <string.h>

/* The registry of job types, ended by a NULL name; each domain module adds
 * its entries here. */
static const handler_t handlers[] = {
    {.name = NULL},
};

size_t handler_count(void)
{
    size_t n = 0;
    while (handlers[n].name != NULL)
        n++;
    return n;
}

const handler_t *handler_at(size_t i)
{
    return i < handler_count() ? &handlers[i] : NULL;
}

const handler_t *handler_find(const char *type)
{
    for (const handler_t *h = handlers; h->name != NULL; h++) {
        if (strcmp(h->name, type) == 0)
            return h;
    }
    return NULL;
}

const char *handler_name(const handler_t *h)
{
    return h->name;
}
