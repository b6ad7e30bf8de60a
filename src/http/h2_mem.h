/* http/h2_mem.h - page slots for nghttp2's page-sized zeroed allocations,
 * given back to the kernel while they are all zero (h2_mem.c). Loop thread
 * only. Not installed.
 */
#ifndef LOOM_HTTP_H2_MEM_H
#define LOOM_HTTP_H2_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

typedef struct loom__h2arena loom__h2arena;

/* A slot's bookkeeping (never inside its page). Stays valid until the
 * arena is destroyed, whatever happens to the slot. */
typedef struct loom__h2slot {
    loom__queue node; /* in the arena list of its state */
    uint32_t idx;     /* chunk << 8 | slot within the chunk */
    uint8_t state;    /* LOOM__H2S_* (h2_mem.c) */
    uint8_t touched;  /* used since the last sweep */
} loom__h2slot;

/* The size of a slot: one page. */
#define LOOM__H2SLOT_SIZE 4096u

/* The sweep's period in ms (default 1000): a slot untouched for a whole
 * period is looked at. Tests lower it before making their servers. */
extern uint32_t loom__h2mem_period_ms;

/* A zeroed page-aligned LOOM__H2SLOT_SIZE block for nghttp2, or NULL (then
 * the caller uses calloc): the arena is capped, or mmap failed. *slot (if
 * not NULL) gets the slot's bookkeeping. Makes the arena on first use. */
void *loom__h2arena_calloc(loom__h2arena **ap, loom_loop_t *loop, loom__h2slot **slot);

/* The bookkeeping of the used slot at p, or NULL if p is not one. O(log
 * chunks) for a page-aligned p, O(1) otherwise. */
loom__h2slot *loom__h2arena_find(loom__h2arena *a, const void *p);

/* If p is a used slot of the arena, takes it back and returns true. */
bool loom__h2arena_free(loom__h2arena *a, void *p);

/* The slot was used (a read or a write of its connection): it is not given
 * back before it has been left alone for a whole period. */
void loom__h2arena_touch_slow(loom__h2arena *a, loom__h2slot *s);
static inline void loom__h2arena_touch(loom__h2arena *a, loom__h2slot *s)
{
    if (s == NULL)
        return;
    if (LOOM__LIKELY(s->state == 1 /* LOOM__H2S_ACTIVE */))
        s->touched = 1;
    else
        loom__h2arena_touch_slow(a, s);
}

/* Closes the sweep's timer (the loop is being freed); the slots stay. */
void loom__h2arena_stop(loom__h2arena *a);

/* Unmaps everything. Every session must be gone. */
void loom__h2arena_destroy(loom__h2arena *a);

/* For tests: counts of the slots in each state, how many times a page was
 * given back, and how many of the used slots' pages are resident
 * (mincore). */
typedef struct loom__h2arena_stats {
    size_t used;       /* slots held by sessions */
    size_t active;     /* used, looked at by the next sweeps */
    size_t reclaimed;  /* used, all zero and given back */
    size_t held;       /* used, not zero when last looked at (open streams) */
    size_t free;       /* slots on the free lists */
    size_t free_clean; /* of which given back (known zero) */
    size_t resident;   /* used slots whose page is resident */
    uint64_t reclaims;
} loom__h2arena_stats;

void loom__h2arena_get_stats(loom__h2arena *a, loom__h2arena_stats *st);

#endif
