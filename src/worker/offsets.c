#include "worker/offsets.h"

#include "common/mem.h"

#include <stdlib.h>

typedef struct entry {
    int64_t offset;
    bool done;
} entry_t;

/* A ring buffer of entries in offset order: head is the oldest. */
struct offsets {
    entry_t *ring;
    size_t cap, head, len;
    int64_t last;
};

offsets_t *offsets_new(void)
{
    offsets_t *o = mem_calloc(1, sizeof(*o));
    o->last = -1;
    return o;
}

void offsets_free(offsets_t *o)
{
    if (o == NULL)
        return;
    free(o->ring);
    free(o);
}

static entry_t *at(const offsets_t *o, size_t i)
{
    return &o->ring[(o->head + i) % o->cap];
}

int offsets_track(offsets_t *o, int64_t offset)
{
    if (offset <= o->last)
        return -1;
    if (o->len == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        entry_t *r = mem_alloc(cap * sizeof(*r));
        for (size_t i = 0; i < o->len; i++)
            r[i] = *at(o, i);
        free(o->ring);
        o->ring = r;
        o->cap = cap;
        o->head = 0;
    }
    o->ring[(o->head + o->len) % o->cap] = (entry_t){offset, false};
    o->len++;
    o->last = offset;
    return 0;
}

bool offsets_done(offsets_t *o, int64_t offset)
{
    size_t lo = 0, hi = o->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int64_t v = at(o, mid)->offset;
        if (v == offset) {
            at(o, mid)->done = true;
            return true;
        }
        if (v < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

bool offsets_advance(offsets_t *o, int64_t *next)
{
    bool moved = false;
    while (o->len > 0 && at(o, 0)->done) {
        *next = at(o, 0)->offset + 1;
        o->head = (o->head + 1) % o->cap;
        o->len--;
        moved = true;
    }
    return moved;
}

size_t offsets_in_flight(const offsets_t *o)
{
    return o->len;
}

int64_t offsets_last(const offsets_t *o)
{
    return o->last;
}

int64_t offsets_first_open(const offsets_t *o)
{
    for (size_t i = 0; i < o->len; i++) {
        if (!at(o, i)->done)
            return at(o, i)->offset;
    }
    return o->last >= 0 ? o->last + 1 : -1;
}
