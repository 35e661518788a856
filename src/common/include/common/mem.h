/* mem — the one out-of-memory policy: allocations that never return NULL.
 *
 * A worker that runs out of memory cannot answer a request correctly, and a
 * half-handled NULL risks a silent loss, which is worse than a restart: the
 * failed allocation is logged (one line, written without allocating) and
 * the process aborts; the supervisor restarts it and Kafka redelivers what
 * was in flight, replays included (CONTRACT §4). Use these everywhere
 * instead of malloc and friends; jansson is pointed at mem_alloc as well
 * (mem_use_for_jansson), so its constructors fail only on bad input.
 *
 * Thread-safe. Free with free(). */
#ifndef TALLY_COMMON_MEM_H
#define TALLY_COMMON_MEM_H

#include <stddef.h>

void *mem_alloc(size_t size);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);

/* Logs "out of memory" with what was asked for and aborts. */
_Noreturn void mem_fail(const char *what, size_t size);

/* Makes jansson allocate through mem_alloc; call once, first thing in main. */
void mem_use_for_jansson(void);

#endif
