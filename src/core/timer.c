/* core/timer.c - timers on a hierarchical timing wheel.
 *
 * 11 levels of 64 slots; level k slots are 64^k ms wide, so every 64-bit
 * deadline has a place. A timer with deadline d goes to the lowest level at
 * which d and the wheel's time `cur` share every higher digit: level
 * (63 - clz(d ^ cur)) / 6, slot (d >> 6k) & 63. That alignment rule is what
 * keeps equal deadlines in start order: a level-k slot is cascaded down at
 * the instant the wheel enters it, before anything can have been placed
 * directly into the lower slots it feeds, and each list is appended in
 * order.
 *
 * Costs: start and stop are O(1) (a list append or unlink and a bitmap bit).
 * Advancing the wheel finds the next non-empty slot with one count-trailing-
 * zeros per level, so idle time costs nothing. A timer moves down at most
 * once per level; with deadlines under 4 s that is at most one cascade.
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
    w->cur = now;
    memset(w->occupied, 0, sizeof w->occupied);
    loom__queue_init(&w->ready);
    for (int k = 0; k < LOOM__WHEEL_LEVELS; k++)
        for (unsigned i = 0; i < LOOM__WHEEL_SLOTS; i++)
            loom__queue_init(&w->slots[k][i]);
}

static inline void loom__wheel_place(loom__wheel *w, loom_timer_t *t)
{
    uint64_t d = t->deadline;
    if (d <= w->cur) {
        t->slot = LOOM__SLOT_READY;
        loom__queue_insert_tail(&w->ready, &t->node);
        return;
    }
    unsigned level = (unsigned)(63 - __builtin_clzll(d ^ w->cur)) / LOOM__WHEEL_BITS;
    unsigned idx = (unsigned)(d >> (level * LOOM__WHEEL_BITS)) & (LOOM__WHEEL_SLOTS - 1);
    t->slot = (uint16_t)(level * LOOM__WHEEL_SLOTS + idx);
    loom__queue_insert_tail(&w->slots[level][idx], &t->node);
    w->occupied[level] |= 1ull << idx;
}

static inline void loom__wheel_unlink(loom__wheel *w, loom_timer_t *t)
{
    uint16_t slot = t->slot;
    loom__queue_remove(&t->node);
    t->slot = LOOM__SLOT_NONE;
    if (slot < LOOM__WHEEL_LEVELS * LOOM__WHEEL_SLOTS) {
        unsigned level = slot / LOOM__WHEEL_SLOTS, idx = slot % LOOM__WHEEL_SLOTS;
        if (loom__queue_empty(&w->slots[level][idx]))
            w->occupied[level] &= ~(1ull << idx);
    }
}

/* The start time of the next non-empty slot after `cur`, at the lowest level
 * that has one (a lower level's slots all come before a higher level's), and
 * that level. Returns UINT64_MAX when the wheel is empty. */
static uint64_t loom__wheel_next(const loom__wheel *w, unsigned *level_out)
{
    for (unsigned k = 0; k < LOOM__WHEEL_LEVELS; k++) {
        if (w->occupied[k] == 0)
            continue;
        unsigned shift = k * LOOM__WHEEL_BITS;
        unsigned idx = (unsigned)(w->cur >> shift) & (LOOM__WHEEL_SLOTS - 1);
        /* Occupied slots always lie after the current index (alignment rule). */
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
        unsigned idx = (unsigned)(t >> (k * LOOM__WHEEL_BITS)) & (LOOM__WHEEL_SLOTS - 1);
        loom__queue *slot = &w->slots[k][idx];
        w->occupied[k] &= ~(1ull << idx);
        if (k == 0) {
            /* Every timer in a level-0 slot has deadline t. */
            loom__queue *q;
            for (q = slot->next; q != slot; q = q->next)
                LOOM__CONTAINER_OF(q, loom_timer_t, node)->slot = LOOM__SLOT_DUE;
            loom__queue_splice_tail(due, slot);
            continue;
        }
        /* Cascade: re-place each timer relative to the new cur, in order. */
        loom__queue tmp;
        loom__queue_init(&tmp);
        loom__queue_splice_tail(&tmp, slot);
        while (!loom__queue_empty(&tmp)) {
            loom_timer_t *tm = LOOM__CONTAINER_OF(tmp.next, loom_timer_t, node);
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
