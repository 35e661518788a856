#include "common/mem.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

_Noreturn void mem_fail(const char *what, size_t size)
{
    /* No log_emit: it may allocate, and memory is what ran out. */
    char line[160];
    int n = snprintf(line, sizeof(line),
                     "{\"level\":\"error\",\"msg\":\"out of memory: aborting\",\"call\":\"%s\","
                     "\"bytes\":%zu}\n",
                     what, size);
    if (n > 0)
        (void)!write(STDERR_FILENO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    abort();
}

void *mem_alloc(size_t size)
{
    void *p = malloc(size != 0 ? size : 1);
    if (p == NULL)
        mem_fail("malloc", size);
    return p;
}

void *mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);
    if (p == NULL)
        mem_fail("calloc", n * size);
    return p;
}

void *mem_realloc(void *p, size_t size)
{
    void *q = realloc(p, size != 0 ? size : 1);
    if (q == NULL)
        mem_fail("realloc", size);
    return q;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

char *mem_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = mem_alloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void mem_use_for_jansson(void)
{
    json_set_alloc_funcs(mem_alloc, free);
}
