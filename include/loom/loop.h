/* loom/loop.h - the event loop, idle callbacks, cross-thread posts and the
 * worker pool.
 *
 * A loop is owned by one thread: every function here must be called on the
 * loop's thread, except loom_post(), loom_stop_async() and the functions that
 * say otherwise. Many loops may run in many threads at once; nothing is
 * global except signal dispatch.
 */
#ifndef LOOM_LOOP_H
#define LOOM_LOOP_H

#include <stdint.h>

#include "loom/common.h"
#include "loom/event.h"

#ifdef __cplusplus
extern "C" {
#endif

/* syslog levels for the logger callback. */
enum {
    LOOM_LOG_ERR = 3,
    LOOM_LOG_WARNING = 4,
    LOOM_LOG_NOTICE = 5,
    LOOM_LOG_INFO = 6,
    LOOM_LOG_DEBUG = 7
};

typedef void (*loom_log_cb)(int level, const char *msg, void *data);
/* Called once when an error reaches no handler, just before loom_run()
 * returns its code. */
typedef void (*loom_fatal_cb)(const loom_event_t *ev, void *data);

/* Options for loom_loop_new(); a zeroed struct gives the defaults. These are
 * cl-async's start-event-loop keywords. */
typedef struct loom_loop_opts {
    /* Backend name ("epoll", "poll", "io_uring", "uv", "event", "ev"), or
     * NULL: then $LOOM_BACKEND, else the best built-in one. */
    const char *backend;
    /* For the foreign-loop backends: the application's uv_loop_t *,
     * struct event_base * or struct ev_loop *. NULL makes the backend create
     * and own a private loop of its library. */
    void *foreign_loop;
    loom_event_cb on_event; /* default event callback */
    loom_fatal_cb on_fatal;
    void *event_data; /* passed to on_event and on_fatal */
    loom_log_cb on_log;
    int log_level; /* highest level passed to on_log; 0 means LOOM_LOG_NOTICE */
    void *log_data;
    unsigned pool_threads; /* worker threads for loom_work(); 0 means 4 */
    void *data;            /* user slot, see loom_loop_data() */
} loom_loop_opts;

/* Creates a loop in `*out`. `opts` may be NULL; `out` may not (LOOM_EINVAL):
 * a loop nobody holds could never be run or freed. Returns 0, LOOM_EBACKEND
 * or LOOM_ENOPLUGIN when the requested backend cannot be had (with
 * LOOM_ENOPLUGIN, the options' on_log hears a LOOM_LOG_ERR line naming every
 * path searched; see docs/BACKENDS.md for the search order), or another
 * LOOM_E* code. Any thread; the loop then belongs to the calling thread. */
LOOM_EXTERN int loom_loop_new(loom_loop_t **out, const loom_loop_opts *opts);

/* Frees the loop and everything still open on it: open objects are closed
 * without their ordinary callbacks; only the close notifications run (a
 * socket's on_close, so per-socket state can be freed, and the release
 * callbacks of zero-copy writes). Pending posts and unstarted pool jobs are
 * dropped (the pool is joined first). HTTP client requests still in flight
 * end without a callback. A foreign loop is left as found. Not from inside a
 * callback of this loop. NULL is ignored. */
LOOM_EXTERN void loom_loop_free(loom_loop_t *loop);

/* Returns the number of live objects (timers, idles, watchers, signals,
 * sockets, servers, queries, requests) not yet fully closed. Tests use it
 * to check that a loop ends clean. */
LOOM_EXTERN size_t loom_loop_live(const loom_loop_t *loop);

typedef enum {
    LOOM_RUN_DEFAULT = 0, /* run until no live work remains, or loom_stop() */
    LOOM_RUN_ONCE,        /* one iteration, waiting for events if needed */
    LOOM_RUN_NOWAIT       /* one iteration without waiting */
} loom_run_mode;

/* Runs the loop. Returns a negative LOOM_E* code if an error reached no
 * handler (see loom/event.h), else 1 if live work remains and 0 if none.
 * Loop thread only; not re-entrant. */
LOOM_EXTERN int loom_run(loom_loop_t *loop, loom_run_mode mode);

/* cl-async's exit-event-loop: makes loom_run() return at the end of the
 * current iteration, dropping callbacks that were pending. Objects stay
 * open; loom_loop_free() frees them. Loop thread only. */
LOOM_EXTERN void loom_stop(loom_loop_t *loop);

/* Creates a loop, calls start_fn(loop, data), runs the loop until it exits
 * naturally or is stopped, and frees it: cl-async's start-event-loop.
 * Returns loom_run()'s result or loom_loop_new()'s error. */
LOOM_EXTERN int loom_start(void (*start_fn)(loom_loop_t *loop, void *data), void *data,
                           const loom_loop_opts *opts);

/* The loop's time in milliseconds (monotonic), cached once per iteration. */
LOOM_EXTERN uint64_t loom_now(const loom_loop_t *loop);
/* Refreshes the cached time; rarely needed. */
LOOM_EXTERN void loom_update_time(loom_loop_t *loop);

/* The loop's user slot. */
LOOM_EXTERN void *loom_loop_data(const loom_loop_t *loop);
LOOM_EXTERN void loom_loop_set_data(loom_loop_t *loop, void *data);

/* The name of the backend the loop runs on ("epoll"). */
LOOM_EXTERN const char *loom_loop_backend(const loom_loop_t *loop);

/* Logs through the loop's logger callback (no-op without one, or above the
 * configured level). printf-style. Loop thread only. */
LOOM_EXTERN void loom_log(loom_loop_t *loop, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- Embedding in another poller -------------------------------------
 * loom_backend_fd() returns an fd that becomes readable when loom has work
 * (for epoll: the epoll fd; every backend that supports embedding provides
 * one), or LOOM_ENOTSUP. loom_backend_timeout() returns how long the outer
 * poller may sleep, in ms (-1: no limit, 0: do not sleep). After the outer
 * poller wakes, call loom_run(loop, LOOM_RUN_NOWAIT). */
LOOM_EXTERN int loom_backend_fd(const loom_loop_t *loop);
LOOM_EXTERN int loom_backend_timeout(loom_loop_t *loop);

/* Re-initialises the kernel state of a loop in the child after fork() (its
 * poller, wakeup fd and signal pipe) and gives it new worker threads (a pool
 * job that was running at fork time ends with LOOM_ECANCELED). The resolver's
 * channels are the parent's too: they are dropped, a DNS query in flight at
 * fork time ends with a dns error event (LOOM_ECANCELED), and later lookups
 * use new channels. The child must call this before using the loop. Returns
 * 0 or a LOOM_E* code. */
LOOM_EXTERN int loom_loop_fork(loom_loop_t *loop);

/* --- Idle callbacks ---------------------------------------------------
 * An active idle callback runs once per loop iteration and keeps the loop
 * from sleeping. */
typedef void (*loom_idle_cb)(loom_idle_t *idle, void *data);

/* Creates a stopped idle handle. Returns 0, LOOM_ENOMEM, or LOOM_EINVAL when
 * `out` is NULL (a stopped handle nobody holds could never start). */
LOOM_EXTERN int loom_idle_new(loom_loop_t *loop, loom_idle_t **out, loom_idle_cb cb, void *data);

/* The loop the idle handle belongs to. */
LOOM_EXTERN loom_loop_t *loom_idle_loop(const loom_idle_t *idle);
/* Starts or stops it. Return 0, or LOOM_ECLOSED after close. */
LOOM_EXTERN int loom_idle_start(loom_idle_t *idle);
LOOM_EXTERN int loom_idle_stop(loom_idle_t *idle);
/* Closes it; its memory is reused once the loop is done with it. The one close
 * path; closing twice is harmless. */
LOOM_EXTERN void loom_idle_close(loom_idle_t *idle);

/* --- Cross-thread posts -----------------------------------------------
 * loom_post() may be called from any thread, including the loop's. It runs
 * fn(data) on the loop's thread, in the order the posts were made (per
 * posting thread, and in total order of the internal queue), waking the
 * loop with coalesced wakeups. A pending post keeps the loop alive.
 * Returns 0, LOOM_ENOMEM, or LOOM_ECLOSED once the loop is being freed
 * (then fn is not called). */
typedef void (*loom_post_fn)(void *data);
LOOM_EXTERN int loom_post(loom_loop_t *loop, loom_post_fn fn, void *data);

/* Makes loom_run() return as loom_stop() does; any thread. */
LOOM_EXTERN void loom_stop_async(loom_loop_t *loop);

/* --- Worker pool -------------------------------------------------------
 * loom_work() runs work_fn(data) on one of the loop's worker threads (created
 * on first use; see loom_loop_opts.pool_threads), then done_fn(status, data)
 * on the loop's thread, status 0 or LOOM_ECANCELED. A pending job keeps the
 * loop alive. `out` may be NULL; the handle is valid until done_fn returns.
 * done_fn may be NULL. Returns 0, LOOM_EINVAL (no work_fn), LOOM_ENOMEM, or
 * the thread-creation error (LOOM_EAGAIN) when no worker can start. Loop
 * thread only. */
typedef void (*loom_work_fn)(void *data);
typedef void (*loom_done_fn)(int status, void *data);
LOOM_EXTERN int loom_work(loom_loop_t *loop, loom_work_fn work_fn, loom_done_fn done_fn, void *data,
                          loom_work_t **out);

/* Cancels a job that has not started: done_fn then runs with LOOM_ECANCELED
 * on a later iteration (never inside this call). Returns 0, or LOOM_EBUSY if
 * it already started, finished or was cancelled. Loop thread only. */
LOOM_EXTERN int loom_work_cancel(loom_work_t *work);

/* The loop the job belongs to (valid while the handle is: until done_fn
 * returns). */
LOOM_EXTERN loom_loop_t *loom_work_loop(const loom_work_t *work);

#ifdef __cplusplus
}
#endif
#endif
