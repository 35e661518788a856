#include "worker/scheduler.h"

#include "common/mem.h"

#include <stdlib.h>
#include <string.h>

typedef enum acct_state { ACCT_IDLE, ACCT_READY, ACCT_RUNNING, ACCT_BACKOFF } acct_state_t;

struct sched_account {
    char id[72];
    sched_account_t *hnext;         /* hash chain */
    sched_account_t *rprev, *rnext; /* ready ring */
    sched_item_t *head, *tail;      /* queue */
    size_t queued;
    acct_state_t state;
    int64_t deadline; /* ACCT_BACKOFF */
    size_t heap_at;   /* index in the backoff heap */
};

struct sched {
    sched_account_t **buckets;
    size_t nbuckets, naccounts;
    sched_account_t *ring_head, *ring_tail;
    size_t nready, nqueued;
    sched_account_t **heap; /* min-heap of backing-off accounts by deadline */
    size_t nheap, heapcap;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

sched_t *sched_new(void)
{
    sched_t *s = mem_calloc(1, sizeof(*s));
    s->nbuckets = 64;
    s->buckets = mem_calloc(s->nbuckets, sizeof(*s->buckets));
    return s;
}

void sched_free(sched_t *s)
{
    if (s == NULL)
        return;
    for (size_t b = 0; b < s->nbuckets; b++) {
        for (sched_account_t *a = s->buckets[b], *n; a != NULL; a = n) {
            n = a->hnext;
            free(a);
        }
    }
    free(s->buckets);
    free(s->heap);
    free(s);
}

static void rehash(sched_t *s)
{
    size_t nb = s->nbuckets * 2;
    sched_account_t **b = mem_calloc(nb, sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (sched_account_t *a = s->buckets[i], *n; a != NULL; a = n) {
            n = a->hnext;
            size_t k = hash_str(a->id) & (nb - 1);
            a->hnext = b[k];
            b[k] = a;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

static sched_account_t *account_get(sched_t *s, const char *id)
{
    size_t k = hash_str(id) & (s->nbuckets - 1);
    for (sched_account_t *a = s->buckets[k]; a != NULL; a = a->hnext) {
        if (strcmp(a->id, id) == 0)
            return a;
    }
    sched_account_t *a = mem_calloc(1, sizeof(*a));
    strncpy(a->id, id, sizeof(a->id) - 1);
    a->hnext = s->buckets[k];
    s->buckets[k] = a;
    if (++s->naccounts > s->nbuckets * 2)
        rehash(s);
    return a;
}

/* Frees an account with nothing queued, running or pending. */
static void account_maybe_free(sched_t *s, sched_account_t *a)
{
    if (a->queued > 0 || a->state != ACCT_IDLE)
        return;
    size_t k = hash_str(a->id) & (s->nbuckets - 1);
    for (sched_account_t **p = &s->buckets[k]; *p != NULL; p = &(*p)->hnext) {
        if (*p == a) {
            *p = a->hnext;
            s->naccounts--;
            free(a);
            return;
        }
    }
}

static void ring_append(sched_t *s, sched_account_t *a)
{
    a->state = ACCT_READY;
    a->rnext = NULL;
    a->rprev = s->ring_tail;
    if (s->ring_tail != NULL)
        s->ring_tail->rnext = a;
    else
        s->ring_head = a;
    s->ring_tail = a;
    s->nready++;
}

static sched_account_t *ring_pop(sched_t *s)
{
    sched_account_t *a = s->ring_head;
    if (a == NULL)
        return NULL;
    s->ring_head = a->rnext;
    if (s->ring_head != NULL)
        s->ring_head->rprev = NULL;
    else
        s->ring_tail = NULL;
    a->rnext = a->rprev = NULL;
    s->nready--;
    return a;
}

static void ring_remove(sched_t *s, sched_account_t *a)
{
    if (a->rprev != NULL)
        a->rprev->rnext = a->rnext;
    else
        s->ring_head = a->rnext;
    if (a->rnext != NULL)
        a->rnext->rprev = a->rprev;
    else
        s->ring_tail = a->rprev;
    a->rnext = a->rprev = NULL;
    s->nready--;
}

static void heap_swap(sched_t *s, size_t i, size_t j)
{
    sched_account_t *t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
    s->heap[i]->heap_at = i;
    s->heap[j]->heap_at = j;
}

static void heap_push(sched_t *s, sched_account_t *a)
{
    if (s->nheap == s->heapcap) {
        size_t cap = s->heapcap ? s->heapcap * 2 : 16;
        s->heap = mem_realloc(s->heap, cap * sizeof(*s->heap));
        s->heapcap = cap;
    }
    size_t i = s->nheap++;
    s->heap[i] = a;
    a->heap_at = i;
    while (i > 0 && s->heap[(i - 1) / 2]->deadline > s->heap[i]->deadline) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static sched_account_t *heap_pop(sched_t *s)
{
    sched_account_t *top = s->heap[0];
    s->nheap--;
    if (s->nheap > 0) {
        s->heap[0] = s->heap[s->nheap];
        s->heap[0]->heap_at = 0;
        size_t i = 0;
        for (;;) {
            size_t l = 2 * i + 1, r = l + 1, m = i;
            if (l < s->nheap && s->heap[l]->deadline < s->heap[m]->deadline)
                m = l;
            if (r < s->nheap && s->heap[r]->deadline < s->heap[m]->deadline)
                m = r;
            if (m == i)
                break;
            heap_swap(s, i, m);
            i = m;
        }
    }
    return top;
}

void sched_push(sched_t *s, sched_item_t *item, const char *account)
{
    sched_account_t *a = account_get(s, account);
    item->account = a;
    item->next = NULL;
    item->prev = a->tail;
    if (a->tail != NULL)
        a->tail->next = item;
    else
        a->head = item;
    a->tail = item;
    a->queued++;
    s->nqueued++;
    if (a->state == ACCT_IDLE)
        ring_append(s, a);
}

static void unlink_item(sched_t *s, sched_account_t *a, sched_item_t *it)
{
    if (it->prev != NULL)
        it->prev->next = it->next;
    else
        a->head = it->next;
    if (it->next != NULL)
        it->next->prev = it->prev;
    else
        a->tail = it->prev;
    it->next = it->prev = NULL;
    a->queued--;
    s->nqueued--;
}

size_t sched_poll(sched_t *s, int64_t now_ms)
{
    while (s->nheap > 0 && s->heap[0]->deadline <= now_ms) {
        sched_account_t *a = heap_pop(s);
        if (a->queued > 0) {
            ring_append(s, a);
        } else {
            a->state = ACCT_IDLE;
            account_maybe_free(s, a);
        }
    }
    return s->nready;
}

size_t sched_next_batch(sched_t *s, int64_t now_ms, sched_item_t **out, size_t max)
{
    sched_poll(s, now_ms);
    size_t n = 0;
    while (n < max && s->ring_head != NULL && !(n > 0 && s->ring_head->head->alone)) {
        sched_account_t *a = ring_pop(s);
        sched_item_t *it = a->head;
        unlink_item(s, a, it);
        a->state = ACCT_RUNNING;
        out[n++] = it;
        if (it->alone)
            break;
    }
    return n;
}

void sched_finish(sched_t *s, sched_item_t *item)
{
    sched_account_t *a = item->account;
    item->account = NULL;
    if (a->queued > 0) {
        ring_append(s, a);
    } else {
        a->state = ACCT_IDLE;
        account_maybe_free(s, a);
    }
}

void sched_retry(sched_t *s, sched_item_t *item, int64_t now_ms, int64_t delay_ms)
{
    sched_account_t *a = item->account;
    item->prev = NULL;
    item->next = a->head;
    if (a->head != NULL)
        a->head->prev = item;
    else
        a->tail = item;
    a->head = item;
    a->queued++;
    s->nqueued++;
    if (delay_ms <= 0) {
        ring_append(s, a);
    } else {
        a->state = ACCT_BACKOFF;
        a->deadline = now_ms + delay_ms;
        heap_push(s, a);
    }
}

static void heap_remove(sched_t *s, sched_account_t *a)
{
    /* Move to the top with the smallest deadline, then pop. */
    a->deadline = INT64_MIN;
    size_t i = a->heap_at;
    while (i > 0) {
        heap_swap(s, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    heap_pop(s);
}

size_t sched_drop(sched_t *s, bool (*pred)(const sched_item_t *, void *),
                  void (*drop_cb)(sched_item_t *, void *), void *arg)
{
    size_t dropped = 0;
    for (size_t b = 0; b < s->nbuckets; b++) {
        sched_account_t *a = s->buckets[b];
        while (a != NULL) {
            sched_account_t *next = a->hnext;
            for (sched_item_t *it = a->head, *n; it != NULL; it = n) {
                n = it->next;
                if (pred(it, arg)) {
                    unlink_item(s, a, it);
                    it->account = NULL;
                    drop_cb(it, arg);
                    dropped++;
                }
            }
            if (a->queued == 0 && a->state == ACCT_READY) {
                ring_remove(s, a);
                a->state = ACCT_IDLE;
            } else if (a->queued == 0 && a->state == ACCT_BACKOFF) {
                heap_remove(s, a);
                a->state = ACCT_IDLE;
            }
            account_maybe_free(s, a);
            a = next;
        }
    }
    return dropped;
}

size_t sched_ready(const sched_t *s)
{
    return s->nready;
}

size_t sched_queued(const sched_t *s)
{
    return s->nqueued;
}

int64_t sched_next_deadline(const sched_t *s)
{
    return s->nheap > 0 ? s->heap[0]->deadline : -1;
}

/* min(cap, base·2^(attempt-1)) */
static int64_t backoff_step(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t step = base_ms;
    for (int i = 1; i < attempt && step < cap_ms; i++)
        step *= 2;
    return step < cap_ms ? step : cap_ms;
}

/* Uniform in [0, ceiling]. */
static int64_t jitter(int64_t ceiling, uint64_t *rng)
{
    uint64_t x = *rng != 0 ? *rng : 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *rng = x;
    return (int64_t)(x % (uint64_t)(ceiling + 1));
}

int64_t sched_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng)
{
    return jitter(backoff_step(attempt, base_ms, cap_ms), rng);
}

int64_t sched_backoff_equal_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t *rng)
{
    int64_t step = backoff_step(attempt, base_ms, cap_ms);
    return step / 2 + jitter(step - step / 2, rng);
}
