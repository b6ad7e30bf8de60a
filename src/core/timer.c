/* core/timer.c - timers on a hierarchical timing wheel.
 *
 Level 0 has 4096 one-millisecond slots; levels 1..9 have 64 slots, each 64
 * times wider than the level below (12 + 9 * 6 = 66 bits), so every 64-bit
 * deadline has a place. A timer with deadline d goes to the lowest level at
 * which d and the wheel's time `cur` share every higher digit (the highest
 * bit of d ^ cur names the level). That alignment rule is what
 * keeps equal deadlines in start order: a level-k slot is cascaded down at
 * the instant the wheel enters it, before anything can have been placed
 * directly into the lower slots it feeds, and each list is appended in
 * order.
 *
 * Costs: start and stop are O(1) (a list append or unlink and a bitmap bit).
 * Advancing the wheel finds the next non-empty slot with one count-trailing-
 * zeros per level (two for level 0's 4096-slot bitmap), so idle time costs
 * nothing. A timer moves down at most once per level; a deadline less than
 * 4.096 s away needs at most one cascade, and most need none.
 *
 * Timers whose deadline is already reached when started (delay 0) wait on
 * the `ready` list and run at the next timer phase, never inside
 * loom_timer_start() and never twice in one phase.
 */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

enum { LOOM__SLOT_NONE = 0xffff, LOOM__SLOT_READY = 0xfffe, LOOM__SLOT_DUE = 0xfffd };

void loom__wheel_init(loom__wheel *w, uint64_t now)
{
    memset(w, 0, offsetof(loom__wheel, ready));
    w->cur = now;
    loom__queue_init(&w->ready);
    for (unsigned i = 0; i < LOOM__WHEEL_L0_SLOTS; i++)
        loom__queue_init(&w->l0[i]);
    for (int k = 1; k < LOOM__WHEEL_LEVELS; k++)
        for (unsigned i = 0; i < LOOM__WHEEL_SLOTS; i++)
            loom__queue_init(&w->slots[k][i]);
}

/* Bit position of level k's lowest digit. */
static inline unsigned loom__level_shift(unsigned k)
{
    return k == 0 ? 0 : LOOM__WHEEL_L0_BITS + (k - 1) * LOOM__WHEEL_BITS;
}

static inline void loom__l0_set(loom__wheel *w, unsigned idx)
{
    w->l0_bits[idx >> 6] |= 1ull << (idx & 63);
    w->l0_summary |= 1ull << (idx >> 6);
}

static inline void loom__l0_clear(loom__wheel *w, unsigned idx)
{
    w->l0_bits[idx >> 6] &= ~(1ull << (idx & 63));
    if (w->l0_bits[idx >> 6] == 0)
        w->l0_summary &= ~(1ull << (idx >> 6));
}

static inline void loom__wheel_place(loom__wheel *w, loom_timer_t *t)
{
    uint64_t d = t->deadline;
    if (d <= w->cur) {
        t->slot = LOOM__SLOT_READY;
        loom__queue_insert_tail(&w->ready, &t->node);
        return;
    }
    unsigned high = (unsigned)(63 - __builtin_clzll(d ^ w->cur));
    if (high < LOOM__WHEEL_L0_BITS) {
        unsigned idx = (unsigned)d & (LOOM__WHEEL_L0_SLOTS - 1);
        t->slot = (uint16_t)idx;
        loom__queue_insert_tail(&w->l0[idx], &t->node);
        loom__l0_set(w, idx);
        return;
    }
    unsigned level = 1 + (high - LOOM__WHEEL_L0_BITS) / LOOM__WHEEL_BITS;
    unsigned idx = (unsigned)(d >> loom__level_shift(level)) & (LOOM__WHEEL_SLOTS - 1);
    t->slot = (uint16_t)(LOOM__WHEEL_L0_SLOTS + (level - 1) * LOOM__WHEEL_SLOTS + idx);
    loom__queue_insert_tail(&w->slots[level][idx], &t->node);
    w->occupied[level] |= 1ull << idx;
}

static inline void loom__wheel_unlink(loom__wheel *w, loom_timer_t *t)
{
    uint16_t slot = t->slot;
    loom__queue_remove(&t->node);
    t->slot = LOOM__SLOT_NONE;
    if (slot < LOOM__WHEEL_L0_SLOTS) {
        if (loom__queue_empty(&w->l0[slot]))
            loom__l0_clear(w, slot);
    } else if (slot < LOOM__WHEEL_L0_SLOTS + (LOOM__WHEEL_LEVELS - 1) * LOOM__WHEEL_SLOTS) {
        unsigned rel = slot - LOOM__WHEEL_L0_SLOTS;
        unsigned level = 1 + rel / LOOM__WHEEL_SLOTS, idx = rel % LOOM__WHEEL_SLOTS;
        if (loom__queue_empty(&w->slots[level][idx]))
            w->occupied[level] &= ~(1ull << idx);
    }
}

/* The first non-empty level-0 slot after index `idx`, or -1. */
static inline int loom__l0_next(const loom__wheel *w, unsigned idx)
{
    unsigned word = idx >> 6, bit = idx & 63;
    uint64_t m = bit == 63 ? 0 : w->l0_bits[word] & ~((2ull << bit) - 1);
    if (m)
        return (int)(word * 64 + (unsigned)__builtin_ctzll(m));
    uint64_t s = word == 63 ? 0 : w->l0_summary & ~((2ull << word) - 1);
    if (s == 0)
        return -1;
    unsigned wd = (unsigned)__builtin_ctzll(s);
    return (int)(wd * 64 + (unsigned)__builtin_ctzll(w->l0_bits[wd]));
}

/* The start time of the next non-empty slot after `cur`, at the lowest level
 * that has one (a lower level's slots all come before a higher level's), and
 * that level. Returns UINT64_MAX when the wheel is empty. */
static uint64_t loom__wheel_next(const loom__wheel *w, unsigned *level_out)
{
    if (w->l0_summary) {
        /* Occupied slots always lie after the current index (alignment rule). */
        int j = loom__l0_next(w, (unsigned)w->cur & (LOOM__WHEEL_L0_SLOTS - 1));
        if (j >= 0) {
            *level_out = 0;
            return ((w->cur >> LOOM__WHEEL_L0_BITS) << LOOM__WHEEL_L0_BITS) + (uint64_t)j;
        }
    }
    for (unsigned k = 1; k < LOOM__WHEEL_LEVELS; k++) {
        if (w->occupied[k] == 0)
            continue;
        unsigned shift = loom__level_shift(k);
        unsigned idx = (unsigned)(w->cur >> shift) & (LOOM__WHEEL_SLOTS - 1);
        uint64_t mask = idx == 63 ? 0 : w->occupied[k] & ~((2ull << idx) - 1);
        if (mask == 0)
            continue;
        unsigned j = (unsigned)__builtin_ctzll(mask);
        unsigned hshift = shift + LOOM__WHEEL_BITS;
        uint64_t base = hshift >= 64 ? 0 : (w->cur >> hshift) << hshift;
        *level_out = k;
        return base + ((uint64_t)j << shift);
    }
    return UINT64_MAX;
}

/* Moves everything due at or before `now` onto `due`, in deadline order and,
 * for equal deadlines, start order. */
static void loom__wheel_advance(loom__wheel *w, uint64_t now, loom__queue *due)
{
    loom__queue_splice_tail(due, &w->ready);
    for (;;) {
        unsigned k = 0;
        uint64_t t = loom__wheel_next(w, &k);
        if (t > now) {
            if (now > w->cur)
                w->cur = now;
            return;
        }
        w->cur = t;
        if (k == 0) {
            /* Every timer in a level-0 slot has deadline t. The timers keep
             * their (now stale) slot number until they are popped: that
             * costs nothing, since unlinking one only clears a bitmap bit
             * when that slot is really empty, and it saves a walk over the
             * list (a cache miss per timer). */
            unsigned idx = (unsigned)t & (LOOM__WHEEL_L0_SLOTS - 1);
            loom__l0_clear(w, idx);
            loom__queue_splice_tail(due, &w->l0[idx]);
            continue;
        }
        unsigned idx = (unsigned)(t >> loom__level_shift(k)) & (LOOM__WHEEL_SLOTS - 1);
        loom__queue *slot = &w->slots[k][idx];
        w->occupied[k] &= ~(1ull << idx);
        /* Cascade: re-place each timer relative to the new cur, in order.
         * The next timer is prefetched while this one is placed. */
        loom__queue tmp;
        loom__queue_init(&tmp);
        loom__queue_splice_tail(&tmp, slot);
        while (!loom__queue_empty(&tmp)) {
            loom_timer_t *tm = LOOM__CONTAINER_OF(tmp.next, loom_timer_t, node);
            __builtin_prefetch(tm->node.next->next);
            loom__queue_remove(&tm->node);
            if (tm->deadline <= t) {
                tm->slot = LOOM__SLOT_DUE;
                loom__queue_insert_tail(due, &tm->node);
            } else {
                loom__wheel_place(w, tm);
            }
        }
    }
}

static void loom__timer_free(loom__handle *h)
{
    loom__slab_free(&h->loop->timer_slab, h);
}

int loom_timer_new(loom_loop_t *loop, loom_timer_t **out, loom_timer_cb cb, void *data)
{
    if (out == NULL)
        return LOOM_EINVAL;
    loom_timer_t *t = loom__slab_alloc(&loop->timer_slab);
    if (t == NULL)
        return LOOM_ENOMEM;
    loom__handle_init(loop, &t->h, LOOM__T_TIMER, loom__timer_free, false);
    t->h.data = data;
    t->cb = cb;
    t->slot = LOOM__SLOT_NONE;
    loom__queue_init(&t->node);
    *out = t;
    return 0;
}

int loom_timer_start(loom_timer_t *t, uint64_t delay_ms, uint64_t repeat_ms)
{
    if (LOOM__UNLIKELY(t->h.flags & LOOM__H_CLOSING))
        return LOOM_ECLOSED;
    loom_loop_t *loop = t->h.loop;
    loom__wheel *w = loop->wheel;
    /* On a foreign backend loom's clock moves only when loom's own callbacks
     * run, while the application's loop runs its own for any length of
     * time: a delay started from one of those, counted from the cached
     * time, would fire early by that much. So it is refreshed there. Owning
     * backends keep libuv's rule (the time is cached when loom gets control;
     * loom_update_time() after long work): reading the clock is not free
     * (about 200 ns where the vDSO cannot serve it), and starts outside
     * loom_run() are set-up code. */
    if (LOOM__UNLIKELY(loop->backend->arm != NULL) && !loop->in_run)
        loom__update_time(loop);
    if (t->slot != LOOM__SLOT_NONE)
        loom__wheel_unlink(w, t);
    else
        loop->stats.timers++;
    uint64_t d = loop->now + delay_ms;
    t->deadline = d < loop->now ? UINT64_MAX : d; /* saturate */
    t->repeat = repeat_ms;
    loom__wheel_place(w, t);
    loom__handle_start(&t->h);
    loom__kick(loop);
    return 0;
}

int loom_timer_stop(loom_timer_t *t)
{
    if (LOOM__UNLIKELY(t->h.flags & LOOM__H_CLOSING))
        return LOOM_ECLOSED;
    if (t->slot != LOOM__SLOT_NONE) {
        loom__wheel_unlink(t->h.loop->wheel, t);
        t->h.loop->stats.timers--;
    }
    loom__handle_stop(&t->h);
    return 0;
}

int loom_timer_active(const loom_timer_t *t)
{
    return t->slot != LOOM__SLOT_NONE;
}

void loom_timer_ref(loom_timer_t *t)
{
    loom__handle_ref(&t->h);
}

void loom_timer_unref(loom_timer_t *t)
{
    loom__handle_unref(&t->h);
}

loom_loop_t *loom_timer_loop(const loom_timer_t *t)
{
    return t->h.loop;
}

void *loom_timer_data(const loom_timer_t *t)
{
    return t->h.data;
}

void loom_timer_set_data(loom_timer_t *t, void *data)
{
    t->h.data = data;
}

void loom_timer_close(loom_timer_t *t)
{
    if (t == NULL || (t->h.flags & LOOM__H_CLOSING))
        return;
    loom_timer_stop(t);
    loom__handle_close(&t->h);
}

int loom_delay(loom_loop_t *loop, uint64_t ms, loom_timer_cb cb, void *data, loom_timer_t **out)
{
    loom_timer_t *t;
    int r = loom_timer_new(loop, &t, cb, data);
    if (r < 0)
        return r;
    t->oneshot_close = 1;
    loom_timer_start(t, ms, 0);
    if (out)
        *out = t;
    return 0;
}

int loom_interval(loom_loop_t *loop, uint64_t ms, loom_timer_cb cb, void *data, loom_timer_t **out)
{
    loom_timer_t *t;
    int r = loom_timer_new(loop, &t, cb, data);
    if (r < 0)
        return r;
    loom_timer_start(t, ms, ms ? ms : 1);
    if (out)
        *out = t;
    return 0;
}

void loom__timers_run(loom_loop_t *loop)
{
    loom__wheel *w = loop->wheel;
    loom__queue due;
    loom__queue_init(&due);
    loom__wheel_advance(w, loop->now, &due);
    while (!loom__queue_empty(&due)) {
        loom_timer_t *t = LOOM__CONTAINER_OF(due.next, loom_timer_t, node);
        __builtin_prefetch(t->node.next->next);
        loom__queue_remove(&t->node);
        t->slot = LOOM__SLOT_NONE;
        if (t->repeat) {
            /* Re-armed before the callback, which may stop or restart it. */
            t->deadline = loop->now + t->repeat;
            loom__wheel_place(w, t);
        } else {
            loop->stats.timers--;
            loom__handle_stop(&t->h);
        }
        loom__op_scope s;
        loom__op_enter(loop, &s, NULL, NULL, t);
        t->cb(t, t->h.data);
        loom__op_leave(loop, &s);
        if (t->oneshot_close && t->slot == LOOM__SLOT_NONE)
            loom_timer_close(t);
        if (LOOM__UNLIKELY(loop->stop_flag)) {
            /* loom_stop(): the rest stays due, ahead of newer ready timers,
             * for a later loom_run(). */
            for (loom__queue *q = due.next; q != &due; q = q->next)
                LOOM__CONTAINER_OF(q, loom_timer_t, node)->slot = LOOM__SLOT_READY;
            loom__queue_splice_tail(&due, &w->ready);
            loom__queue_splice_tail(&w->ready, &due);
            break;
        }
    }
}

int64_t loom__timers_next(loom_loop_t *loop)
{
    loom__wheel *w = loop->wheel;
    if (!loom__queue_empty(&w->ready))
        return 0;
    unsigned k;
    uint64_t t = loom__wheel_next(w, &k);
    if (t == UINT64_MAX)
        return -1;
    if (t <= loop->now)
        return 0;
    uint64_t d = t - loop->now;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}
