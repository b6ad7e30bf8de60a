/* http/h2_mem.c - page slots for nghttp2's page-sized zeroed allocations.
 *
 * nghttp2 1.52 callocs its stream map as one 4 KiB table (256 buckets of
 * 16 bytes) per session. Once a stream has been in it the page is resident
 * for the session's life, although with no stream open it is all zero
 * again (a removed bucket is cleared): 4 KiB of every idle connection.
 *
 * So every calloc of exactly one page from an nghttp2 session of the loop
 * gets a page-aligned slot carved from 1 MiB chunks mmap'd for the loop
 * (one mapping per 256 slots, never one per connection). A sweep, a timer
 * that runs at most every loom__h2mem_period_ms and only while some slot
 * may need it, looks at the slots that were not touched (no read and no
 * flush of their connection) for a whole period: a slot whose page is all
 * zero bytes is given back with madvise(MADV_DONTNEED), after which it
 * reads back as zeros, identical, so nghttp2's view of it never changes
 * whatever its internals do; a slot that is not all zero (a stream still
 * open) is left alone until it is touched again. The next stream of a
 * reclaimed connection takes one page fault. The sweep is O(slots touched
 * since the last sweep + slots freed since then); idle slots cost it
 * nothing.
 *
 * Correctness does not depend on the touches, which are only hints about
 * what is worth looking at: a page is given back only after the sweep saw
 * it all zero, and nothing else runs on the loop in between. Loop thread
 * only.
 *
 * A freed slot goes to a free list; the sweep gives its page back a period
 * later (then it is known zero), and a slot reused before that is zeroed by
 * memset. The arena is capped at LOOM__H2MEM_MAX_CHUNKS chunks; beyond it,
 * or when mmap fails, the caller falls back to calloc.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "http/h2_mem.h"
#include "net/net_internal.h"

#define LOOM__H2MEM_SLOTS      256u /* slots per chunk */
#define LOOM__H2MEM_CHUNK      ((size_t)LOOM__H2MEM_SLOTS * LOOM__H2SLOT_SIZE)
#define LOOM__H2MEM_MAX_CHUNKS 1024u /* 1 GiB of address space per loop */

enum {
    LOOM__H2S_FREE = 0,      /* on free_clean: known zero */
    LOOM__H2S_ACTIVE = 1,    /* used; on active */
    LOOM__H2S_HELD = 2,      /* used; not zero when last looked at; on idle */
    LOOM__H2S_RECLAIMED = 3, /* used; given back; on idle */
    LOOM__H2S_DIRTY = 4,     /* on free_dirty: freed, maybe not zero */
};

_Static_assert(LOOM__H2S_ACTIVE == 1, "loom__h2arena_touch (h2_mem.h) tests the state inline");

typedef struct loom__h2chunk {
    char *base;
    loom__h2slot s[LOOM__H2MEM_SLOTS];
} loom__h2chunk;

struct loom__h2arena {
    loom_loop_t *loop;
    loom_timer_t *sweep;
    loom__h2chunk **chunks; /* in the order made: a slot's idx names its chunk */
    uint32_t *sorted;       /* chunk numbers by base address, for lookups */
    uint32_t nchunks, cap;
    uint32_t fresh; /* slots of the last chunk never used: from LOOM__H2MEM_SLOTS - fresh */
    loom__queue active, idle, free_dirty, free_clean;
    size_t nused;
    uint64_t reclaims;
};

uint32_t loom__h2mem_period_ms = 1000;

static char *loom__h2slot_page(loom__h2arena *a, const loom__h2slot *s)
{
    return a->chunks[s->idx >> 8]->base + (size_t)(s->idx & 0xff) * LOOM__H2SLOT_SIZE;
}

static bool loom__h2mem_zero(const char *p)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    uint64_t acc = 0;
    for (size_t i = 0; i < LOOM__H2SLOT_SIZE / 8; i += 8) {
        acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
        if (acc)
            return false;
    }
    return true;
}

static void loom__h2mem_move(loom__queue *to, loom__h2slot *s, uint8_t state)
{
    loom__queue_remove(&s->node);
    loom__queue_insert_tail(to, &s->node);
    s->state = state;
}

static void loom__h2mem_arm(loom__h2arena *a)
{
    if (!loom_timer_active(a->sweep))
        loom_timer_start(a->sweep, loom__h2mem_period_ms, loom__h2mem_period_ms);
}

/* The sweep: O(active + free_dirty). */
static void loom__h2mem_sweep(loom_timer_t *t, void *data)
{
    loom__h2arena *a = data;
    loom__queue *q, *n;
    for (q = a->active.next; q != &a->active; q = n) {
        n = q->next;
        loom__h2slot *s = LOOM__CONTAINER_OF(q, loom__h2slot, node);
        if (s->touched) {
            s->touched = 0;
            continue;
        }
        char *p = loom__h2slot_page(a, s);
        if (loom__h2mem_zero(p) && madvise(p, LOOM__H2SLOT_SIZE, MADV_DONTNEED) == 0) {
            loom__h2mem_move(&a->idle, s, LOOM__H2S_RECLAIMED);
            a->reclaims++;
        } else {
            loom__h2mem_move(&a->idle, s, LOOM__H2S_HELD);
        }
    }
    for (q = a->free_dirty.next; q != &a->free_dirty; q = n) {
        n = q->next;
        loom__h2slot *s = LOOM__CONTAINER_OF(q, loom__h2slot, node);
        if (s->touched) {
            s->touched = 0;
            continue;
        }
        if (madvise(loom__h2slot_page(a, s), LOOM__H2SLOT_SIZE, MADV_DONTNEED) == 0)
            loom__h2mem_move(&a->free_clean, s, LOOM__H2S_FREE);
    }
    if (loom__queue_empty(&a->active) && loom__queue_empty(&a->free_dirty))
        loom_timer_stop(t);
}

static loom__h2arena *loom__h2arena_new(loom_loop_t *loop)
{
    loom__h2arena *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    /* loom's own timer: not a live object, and it keeps no loop alive. */
    if (loom__net_timer_new(loop, &a->sweep, loom__h2mem_sweep, a) < 0) {
        free(a);
        return NULL;
    }
    a->loop = loop;
    loom__queue_init(&a->active);
    loom__queue_init(&a->idle);
    loom__queue_init(&a->free_dirty);
    loom__queue_init(&a->free_clean);
    return a;
}

/* A new chunk: its slots are fresh (zero, not resident). */
static bool loom__h2mem_grow(loom__h2arena *a)
{
    if (sysconf(_SC_PAGESIZE) != LOOM__H2SLOT_SIZE || a->nchunks == LOOM__H2MEM_MAX_CHUNKS)
        return false;
    if (a->nchunks == a->cap) {
        uint32_t cap = a->cap ? 2 * a->cap : 8;
        loom__h2chunk **c = realloc(a->chunks, cap * sizeof *c);
        if (c == NULL)
            return false;
        a->chunks = c;
        uint32_t *so = realloc(a->sorted, cap * sizeof *so);
        if (so == NULL)
            return false;
        a->sorted = so;
        a->cap = cap;
    }
    loom__h2chunk *c = malloc(sizeof *c);
    if (c == NULL)
        return false;
    void *m = mmap(NULL, LOOM__H2MEM_CHUNK, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        free(c);
        return false;
    }
#ifdef MADV_NOHUGEPAGE
    /* A huge page would make a slot's page fault allocate 2 MiB, and
     * MADV_DONTNEED of one slot split it. */
    (void)madvise(m, LOOM__H2MEM_CHUNK, MADV_NOHUGEPAGE);
#endif
    c->base = m;
    uint32_t k = a->nchunks++;
    for (uint32_t i = 0; i < LOOM__H2MEM_SLOTS; i++) {
        c->s[i].idx = k << 8 | i;
        c->s[i].state = LOOM__H2S_FREE;
        c->s[i].touched = 0;
        loom__queue_init(&c->s[i].node);
    }
    a->chunks[k] = c;
    uint32_t j = k; /* insertion into the sorted numbers */
    while (j > 0 && a->chunks[a->sorted[j - 1]]->base > c->base) {
        a->sorted[j] = a->sorted[j - 1];
        j--;
    }
    a->sorted[j] = k;
    a->fresh = LOOM__H2MEM_SLOTS;
    return true;
}

void *loom__h2arena_calloc(loom__h2arena **ap, loom_loop_t *loop, loom__h2slot **slot)
{
    loom__h2arena *a = *ap;
    if (a == NULL && (a = *ap = loom__h2arena_new(loop)) == NULL)
        return NULL;
    loom__h2slot *s;
    char *p;
    if (!loom__queue_empty(&a->free_dirty)) { /* resident: cheaper than a fault */
        s = LOOM__CONTAINER_OF(a->free_dirty.next, loom__h2slot, node);
        p = loom__h2slot_page(a, s);
        memset(p, 0, LOOM__H2SLOT_SIZE);
    } else if (!loom__queue_empty(&a->free_clean)) {
        s = LOOM__CONTAINER_OF(a->free_clean.next, loom__h2slot, node);
        p = loom__h2slot_page(a, s);
    } else {
        if (a->fresh == 0 && !loom__h2mem_grow(a))
            return NULL;
        s = &a->chunks[a->nchunks - 1]->s[LOOM__H2MEM_SLOTS - a->fresh--];
        p = loom__h2slot_page(a, s);
    }
    loom__h2mem_move(&a->active, s, LOOM__H2S_ACTIVE);
    s->touched = 1;
    a->nused++;
    loom__h2mem_arm(a);
    if (slot != NULL)
        *slot = s;
    return p;
}

loom__h2slot *loom__h2arena_find(loom__h2arena *a, const void *p)
{
    if (a == NULL || p == NULL || ((uintptr_t)p & (LOOM__H2SLOT_SIZE - 1)) != 0)
        return NULL; /* malloc's pointers are rarely page-aligned */
    const char *cp = p;
    uint32_t lo = 0, hi = a->nchunks;
    while (lo < hi) { /* the last chunk whose base is <= p */
        uint32_t mid = (lo + hi) / 2;
        if (a->chunks[a->sorted[mid]]->base <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    loom__h2chunk *c = a->chunks[a->sorted[lo - 1]];
    if (cp >= c->base + LOOM__H2MEM_CHUNK)
        return NULL;
    loom__h2slot *s = &c->s[(size_t)(cp - c->base) / LOOM__H2SLOT_SIZE];
    uint8_t state = s->state;
    bool used =
        state == LOOM__H2S_ACTIVE || state == LOOM__H2S_HELD || state == LOOM__H2S_RECLAIMED;
    return used ? s : NULL;
}

bool loom__h2arena_free(loom__h2arena *a, void *p)
{
    loom__h2slot *s = loom__h2arena_find(a, p);
    if (s == NULL)
        return false;
    loom__h2mem_move(&a->free_dirty, s, LOOM__H2S_DIRTY);
    s->touched = 1; /* given back a period later, if not reused */
    a->nused--;
    loom__h2mem_arm(a);
    return true;
}

void loom__h2arena_touch_slow(loom__h2arena *a, loom__h2slot *s)
{
    if (s->state != LOOM__H2S_HELD && s->state != LOOM__H2S_RECLAIMED)
        return; /* freed since (the session's map grew): nothing to do */
    loom__h2mem_move(&a->active, s, LOOM__H2S_ACTIVE);
    s->touched = 1;
    loom__h2mem_arm(a);
}

void loom__h2arena_stop(loom__h2arena *a)
{
    if (a != NULL && a->sweep != NULL) {
        loom_timer_close(a->sweep);
        a->sweep = NULL;
    }
}

void loom__h2arena_destroy(loom__h2arena *a)
{
    if (a == NULL)
        return;
    loom__h2arena_stop(a);
    for (uint32_t k = 0; k < a->nchunks; k++) {
        munmap(a->chunks[k]->base, LOOM__H2MEM_CHUNK);
        free(a->chunks[k]);
    }
    free(a->chunks);
    free(a->sorted);
    free(a);
}

void loom__h2arena_get_stats(loom__h2arena *a, loom__h2arena_stats *st)
{
    memset(st, 0, sizeof *st);
    if (a == NULL)
        return;
    st->used = a->nused;
    st->reclaims = a->reclaims;
    loom__queue *q;
    for (q = a->active.next; q != &a->active; q = q->next)
        st->active++;
    for (q = a->free_dirty.next; q != &a->free_dirty; q = q->next)
        st->free++;
    for (q = a->free_clean.next; q != &a->free_clean; q = q->next) {
        st->free++;
        st->free_clean++;
    }
    for (q = a->idle.next; q != &a->idle; q = q->next) {
        loom__h2slot *s = LOOM__CONTAINER_OF(q, loom__h2slot, node);
        if (s->state == LOOM__H2S_RECLAIMED)
            st->reclaimed++;
        else
            st->held++;
    }
    for (uint32_t k = 0; k < a->nchunks; k++) {
        loom__h2chunk *c = a->chunks[k];
        unsigned char vec[LOOM__H2MEM_SLOTS];
        if (mincore(c->base, LOOM__H2MEM_CHUNK, vec) != 0)
            continue;
        for (uint32_t i = 0; i < LOOM__H2MEM_SLOTS; i++) {
            uint8_t state = c->s[i].state;
            bool used = state == LOOM__H2S_ACTIVE || state == LOOM__H2S_HELD ||
                        state == LOOM__H2S_RECLAIMED;
            if (used && (vec[i] & 1))
                st->resident++;
        }
    }
}
