/* loom/backend.h - the contract a backend fulfils.
 *
 * A backend is a const loom_backend_t chosen when a loop is created. The core
 * never asks which backend it runs on; it reads the capability flags. loom
 * over-allocates and zeroes `loop_size` bytes of private state per loop and
 * `io_size` bytes per watcher, and hands them to the backend through
 * loom_backend_loop_priv() and loom_backend_io_t.priv.
 *
 * Two shapes of backend fit this one struct:
 *  - an *owning* backend (epoll, poll, io_uring) implements poll(): loom_run()
 *    calls it with the time until the next timer and it dispatches readiness
 *    with loom_backend_io_ready();
 *  - a *foreign* backend (libuv, libevent, libev; LOOM_BACKEND_CAP_FOREIGN)
 *    lives on a loop the application drives. It watches fds with its
 *    library's watchers, calls loom_backend_io_ready() from their callbacks,
 *    and keeps one timer of its library armed at the time the core asks for
 *    through arm(); when that timer fires it calls loom_backend_tick(). Its
 *    poll() runs one iteration of its own library's loop, so loom_run() also
 *    works on it.
 *
 * A plugin is a shared object named libloom-backend-<name>.so that exports
 *     const loom_backend_t *loom_backend_plugin(void);
 * and is loaded by name when a loop asks for a backend that is not built in.
 */
#ifndef LOOM_BACKEND_H
#define LOOM_BACKEND_H

#include <stddef.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LOOM_BACKEND_CAP_FD = 1 << 0,         /* has a pollable fd for embedding */
    LOOM_BACKEND_CAP_FOREIGN = 1 << 1,    /* lives on an application-driven loop */
    LOOM_BACKEND_CAP_EDGE = 1 << 2,       /* reports edge-triggered readiness */
    LOOM_BACKEND_CAP_ONESHOT_FD = 1 << 3, /* io_add/remove are cheap enough per event */
    LOOM_BACKEND_CAP_ACCEPT = 1 << 4,     /* accept_start/accept_stop: kernel-side accept */
    LOOM_BACKEND_CAP_RECV = 1 << 5,       /* recv_start/stop/drop: kernel-side socket reads */
};

/* The part of a watcher a backend sees. Embedded first in loom's watchers. */
typedef struct loom_backend_io {
    int fd;
    unsigned events; /* LOOM_READABLE | LOOM_WRITABLE currently registered */
    void *priv;      /* io_size bytes of backend state, zeroed at creation */
} loom_backend_io_t;

/* Called by a backend with CAP_ACCEPT for each connection accepted on
 * `listen_io`: `fd_or_err` is a new non-blocking, close-on-exec socket that
 * the callee owns, or a negative LOOM_E* code (LOOM_EMFILE, LOOM_ENFILE, ...;
 * the backend keeps accepting unless the callee calls accept_stop). */
typedef void (*loom_backend_accept_cb)(loom_backend_io_t *listen_io, int fd_or_err);

/* Called by a backend with CAP_RECV, on the loop thread, with what it read
 * from io->fd: `len` bytes at `buf` (len > 0, err 0; the memory is the
 * backend's, writable, and valid only during the call), or the end of the
 * stream (len 0, err 0), or an error (len 0, err a negative LOOM_E* code).
 * Nothing more is delivered after the end or an error. */
typedef void (*loom_backend_recv_cb)(loom_backend_io_t *io, char *buf, size_t len, int err);

typedef struct loom_backend {
    const char *name;
    unsigned caps;
    size_t loop_size; /* private bytes per loop */
    size_t io_size;   /* private bytes per watcher */

    /* Sets up the backend on `loop`. `foreign` is loom_loop_opts.foreign_loop
     * (NULL for owning backends). Returns 0 or a LOOM_E* code. */
    int (*init)(loom_loop_t *loop, void *foreign);
    /* Releases everything init() and the watchers created; for a foreign
     * loop, leaves that loop exactly as found. */
    void (*destroy)(loom_loop_t *loop);

    /* Starts watching io->fd for `events`; io->events is still the old set
     * (0) and the core updates it after success. */
    int (*io_add)(loom_loop_t *loop, loom_backend_io_t *io, unsigned events);
    /* Changes the set from io->events to `events` (both non-zero). */
    int (*io_modify)(loom_loop_t *loop, loom_backend_io_t *io, unsigned events);
    /* Stops watching. Must not fail; the fd may already be closed. */
    void (*io_remove)(loom_loop_t *loop, loom_backend_io_t *io);

    /* Waits up to timeout_ms (-1: forever, 0: not at all) and dispatches
     * ready watchers. Returns the number dispatched or a LOOM_E* code. */
    int (*poll)(loom_loop_t *loop, int timeout_ms);

    /* Wakes a poll() in progress from another thread. May be NULL: then the
     * core writes to its own eventfd, which it watches through io_add. */
    void (*wakeup)(loom_loop_t *loop);

    /* The fd an outer poller can wait on, or LOOM_ENOTSUP. May be NULL. */
    int (*backend_fd)(loom_loop_t *loop);

    /* Foreign backends only: (re)arm the library timer to call
     * loom_backend_tick() after timeout_ms (0: as soon as possible; -1:
     * disarm). `alive` says whether loom has live work, for libraries whose
     * watchers keep their loop running (the backend refs or unrefs its timer
     * accordingly). */
    void (*arm)(loom_loop_t *loop, int timeout_ms, int alive);

    /* Re-creates kernel state in a child after fork(). May be NULL. */
    int (*fork)(loom_loop_t *loop);

    /* CAP_ACCEPT only (NULL otherwise); new members go after these so
     * designated initialisers of other backends stay valid.
     * accept_start: accepts connections on listen_io->fd (a listening,
     * non-blocking socket the caller initialised as a watcher but does not
     * watch for events) and hands each to `cb`, on the loop thread, until
     * accept_stop. Returns 0 or a LOOM_E* code (LOOM_ENOTSUP: use accept4 on
     * readiness instead). accept_stop: stops it at once; never fails; a
     * connection the kernel accepted after the stop is closed, never
     * delivered. Call accept_stop before closing the fd or freeing the
     * watcher. */
    int (*accept_start)(loom_loop_t *loop, loom_backend_io_t *listen_io, loom_backend_accept_cb cb);
    void (*accept_stop)(loom_loop_t *loop, loom_backend_io_t *listen_io);

    /* CAP_RECV only (NULL otherwise): the backend reads a connected stream
     * socket itself and hands the bytes to `cb`, in order, replacing
     * LOOM_READABLE readiness for that socket (the caller may still watch
     * it for LOOM_WRITABLE through io_add/io_modify).
     * recv_start: starts or resumes delivery on io->fd (io initialised as a
     * watcher; `cb` replaces any earlier one). Returns 0 or a LOOM_E* code
     * (the socket then fails with it: a backend that cannot read some
     * socket must not advertise CAP_RECV). Data read from the kernel
     * before a recv_stop took effect is kept and delivered first, from the
     * next poll().
     * recv_stop: pauses delivery at once: `cb` is not called again until the
     * next recv_start, even for data already read. Never fails.
     * recv_drop: forgets io: stops reading, discards what was kept, and lets
     * go of the file, so call it before closing the fd. Never fails; does
     * nothing if io never started. */
    int (*recv_start)(loom_loop_t *loop, loom_backend_io_t *io, loom_backend_recv_cb cb);
    void (*recv_stop)(loom_loop_t *loop, loom_backend_io_t *io);
    void (*recv_drop)(loom_loop_t *loop, loom_backend_io_t *io);

    /* Embedding: makes every watcher change since the last poll() take
     * effect in the kernel, so that backend_fd() reflects it before an
     * outer poller sleeps on it. Returns 1 if the backend has something to
     * dispatch without waiting (the outer poller must not sleep), else 0.
     * loom_backend_timeout() calls it. May be NULL: changes take effect at
     * once (as epoll_ctl's do). */
    int (*flush)(loom_loop_t *loop);
} loom_backend_t;

/* The backend's private per-loop state (loop_size bytes, zeroed). */
LOOM_EXTERN void *loom_backend_loop_priv(loom_loop_t *loop);

/* Called by a backend when `io` is ready. The core runs the watcher's
 * callback; a watcher closed earlier in the same batch is skipped. */
LOOM_EXTERN void loom_backend_io_ready(loom_loop_t *loop, loom_backend_io_t *io, unsigned events);

/* Foreign backends: runs loom's due timers, pending and idle callbacks and
 * frees closed objects, then calls arm() with the next deadline. */
LOOM_EXTERN void loom_backend_tick(loom_loop_t *loop);

/* Logs through the loop's logger, for a backend's one-line notices. */
LOOM_EXTERN void loom_backend_log(loom_loop_t *loop, int level, const char *msg);

/* Returns the built-in or plugin backend called `name`, loading
 * libloom-backend-<name>.so if needed; NULL if there is none (then *err, if
 * not NULL, says why: LOOM_EBACKEND or LOOM_ENOPLUGIN). Any thread. */
LOOM_EXTERN const loom_backend_t *loom_backend_find(const char *name, int *err);

/* The names of the backends built in, NULL-terminated. */
LOOM_EXTERN const char *const *loom_backend_builtin(void);

#ifdef __cplusplus
}
#endif
#endif
