/* holds — see worker/holds.h. */
#include "worker/holds.h"

#include "common/mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct holds {
    pthread_mutex_t mu;
    char **ids; /* sorted by strcmp, unique */
    size_t n;
    int64_t read_ms; /* when the last good read started; -1: never */
};

holds_t *holds_new(void)
{
    holds_t *h = mem_calloc(1, sizeof(*h));
    pthread_mutex_init(&h->mu, NULL);
    h->read_ms = -1;
    return h;
}

static void free_ids(char **ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

void holds_free(holds_t *h)
{
    if (h == NULL)
        return;
    free_ids(h->ids, h->n);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts ids and drops repeats; returns the new count. */
static size_t sort_unique(char **ids, size_t n)
{
    if (n > 1)
        qsort(ids, n, sizeof(*ids), cmp_id);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        if (out > 0 && strcmp(ids[out - 1], ids[i]) == 0)
            free(ids[i]);
        else
            ids[out++] = ids[i];
    }
    return out;
}

bool holds_replace(holds_t *h, char **ids, size_t n)
{
    n = sort_unique(ids, n);
    pthread_mutex_lock(&h->mu);
    bool same = n == h->n;
    for (size_t i = 0; same && i < n; i++)
        same = strcmp(ids[i], h->ids[i]) == 0;
    char **old = h->ids;
    size_t old_n = h->n;
    h->ids = ids;
    h->n = n;
    pthread_mutex_unlock(&h->mu);
    free_ids(old, old_n);
    return !same;
}

void holds_mark_read(holds_t *h, int64_t read_ms)
{
    pthread_mutex_lock(&h->mu);
    if (read_ms > h->read_ms)
        h->read_ms = read_ms;
    pthread_mutex_unlock(&h->mu);
}

bool holds_current(holds_t *h, int64_t now_ms)
{
    if (h == NULL)
        return true;
    pthread_mutex_lock(&h->mu);
    bool current = h->read_ms >= 0 && now_ms - h->read_ms <= HOLDS_STALE_MS;
    pthread_mutex_unlock(&h->mu);
    return current;
}

bool holds_held(holds_t *h, const char *account)
{
    if (h == NULL || account == NULL)
        return false;
    pthread_mutex_lock(&h->mu);
    bool held = h->n > 0 && bsearch(&account, h->ids, h->n, sizeof(*h->ids), cmp_id) != NULL;
    pthread_mutex_unlock(&h->mu);
    return held;
}

size_t holds_count(holds_t *h)
{
    pthread_mutex_lock(&h->mu);
    size_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}
