/* loom/timer.h - delays and intervals.
 *
 * Timers live on a hierarchical timing wheel with millisecond resolution:
 * start, stop and fire are O(1) (amortised; a timer cascades at most once per
 * wheel level). Timers with the same deadline fire in the order they were
 * started. A delay of 0 runs as soon as the loop gets control (on the next
 * timer phase, never inside loom_timer_start()).
 */
#ifndef LOOM_TIMER_H
#define LOOM_TIMER_H

#include <stdint.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*loom_timer_cb)(loom_timer_t *timer, void *data);

/* Creates a stopped timer whose callback is cb(timer, data). Returns 0,
 * LOOM_ENOMEM, or LOOM_EINVAL when `out` is NULL: a stopped timer
 * nobody holds could never be started or closed (loom_delay() and
 * loom_interval() start theirs, so there `out` may be NULL). Timers come
 * from a per-loop slab: no malloc per timer in the steady state. Loop
 * thread only. */
LOOM_EXTERN int loom_timer_new(loom_loop_t *loop, loom_timer_t **out, loom_timer_cb cb, void *data);

/* (Re)starts the timer: it fires after `delay_ms`, then every `repeat_ms` if
 * that is non-zero. Restarting an active timer moves it. The delay counts
 * from loom_now(), the time cached when loom last got control (as in libuv):
 * after long work in a callback, or before loom_run() after long set-up,
 * call loom_update_time() first. On a foreign backend (uv, event, ev) a
 * start from outside loom's callbacks (from the application's own) refreshes
 * the time itself, so such a timer never fires before `delay_ms` have passed
 * since this call (give or take the 1 ms resolution). Returns 0, or
 * LOOM_ECLOSED after close. */
LOOM_EXTERN int loom_timer_start(loom_timer_t *timer, uint64_t delay_ms, uint64_t repeat_ms);

/* Stops the timer; harmless when stopped. Returns 0, or LOOM_ECLOSED. */
LOOM_EXTERN int loom_timer_stop(loom_timer_t *timer);

/* Returns 1 if the timer is started, else 0. */
LOOM_EXTERN int loom_timer_active(const loom_timer_t *timer);

/* An unref'd timer does not keep the loop alive; ref undoes that. */
LOOM_EXTERN void loom_timer_ref(loom_timer_t *timer);
LOOM_EXTERN void loom_timer_unref(loom_timer_t *timer);

/* The loop the timer belongs to. */
LOOM_EXTERN loom_loop_t *loom_timer_loop(const loom_timer_t *timer);

/* The user slot. */
LOOM_EXTERN void *loom_timer_data(const loom_timer_t *timer);
LOOM_EXTERN void loom_timer_set_data(loom_timer_t *timer, void *data);

/* Stops and closes the timer. This is its one close path: its memory is
 * reused only after the loop is done with it, and closing twice, or from its
 * own callback, is harmless. Timers made with loom_timer_new() and
 * loom_interval() are closed only by this call; a loom_delay() closes
 * itself after its callback (see there). */
LOOM_EXTERN void loom_timer_close(loom_timer_t *timer);

/* cl-async's `delay`: runs cb(data) once after `ms`. `out` may be NULL; a
 * pointer kept through it lets you cancel the delay with loom_timer_close()
 * (then cb never runs).
 *
 * Close notification: the callback is the delay's last call, and loom
 * closes the timer itself when it returns; from then on the pointer is dead
 * (calls on it return LOOM_ECLOSED until the end of the iteration, and are
 * use after free after it: ASan builds report them). So the callback runs
 * exactly once per delay, and it is the place to forget the pointer. A
 * callback that restarts its timer with loom_timer_start() keeps it alive:
 * the next run of the callback is then the last one, by the same rule.
 * loom_loop_free() frees a delay that has not fired without calling cb.
 * Returns 0 or LOOM_ENOMEM. */
LOOM_EXTERN int loom_delay(loom_loop_t *loop, uint64_t ms, loom_timer_cb cb, void *data,
                           loom_timer_t **out);

/* cl-async's `interval`: runs cb every `ms` until loom_timer_close()
 * (cl-async's remove-interval). loom never closes an interval by itself, so
 * it has no close notification: it is dead once loom_timer_close() returns.
 * `out` may be NULL (then only the callback's `timer` can close it).
 * Returns 0 or LOOM_ENOMEM. */
LOOM_EXTERN int loom_interval(loom_loop_t *loop, uint64_t ms, loom_timer_cb cb, void *data,
                              loom_timer_t **out);

#ifdef __cplusplus
}
#endif
#endif
