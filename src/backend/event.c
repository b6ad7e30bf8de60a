/* backend/event.c - loom on a libevent event_base ("event"): the
 * application's (loom_loop_opts.foreign_loop, a struct event_base *) or a
 * private one.
 *
 * Each watcher is a persistent event; one timer event is kept at loom's next
 * deadline and calls loom_backend_tick(). libevent has no "unref": a base
 * runs while it has added events. loom's events are therefore marked
 * EVLIST_INTERNAL, the flag libevent gives its own internal events (it is
 * in the public event_struct.h, set after event_assign() and before
 * event_add(), and libevent's counters honour it on both add and delete),
 * so they do not keep event_base_dispatch() running; only the timer is
 * counted, and only while loom has live work. A consequence: loom's events
 * do not show in event_base_get_num_events() or event_base_foreach_event().
 *
 * Everything is synchronous in libevent, so loom_loop_free() leaves the base
 * exactly as found the moment it returns: no event of loom's is added.
 *
 * libev exports libevent's API names too (event_add, event_base_new...).
 * If it comes first in the process's global symbol scope (an application
 * linked with libev), this file's calls would bind to libev's emulation;
 * init() checks that the functions it uses all come from one library and
 * refuses otherwise. libev's own event.h is never included here.
 */
#include <dlfcn.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "backend/mirror.h"
#include "core/internal.h"

#define LOOM__EVB_FOREVER_S 3600

typedef struct loom__evb {
    struct event_base *base;
    struct event *timer;
    loom__queue ios; /* loom__evio */
    loom__mirror mirror;
    bool owned;
    bool in_poll;
    bool woke; /* this poll's timer was activated by an io callback */
    int dispatched;
} loom__evb;

/* A watcher's private area. libevent's event_del() is synchronous, so the
 * event is gone by the time the core frees this area. */
typedef struct loom__evio {
    struct event *ev;
    loom_loop_t *loop;
    loom_backend_io_t *io;
    loom__queue node;
} loom__evio;

static void loom__evb_internal(struct event *ev)
{
    ev->ev_evcallback.evcb_flags |= EVLIST_INTERNAL;
}

static void loom__evb_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    loom_loop_t *loop = arg;
    loom__evb *b = loom_backend_loop_priv(loop);
    (void)fd;
    (void)what;
    if (b->in_poll)
        return; /* loom_run() runs the timers itself after the poll */
    loom_backend_tick(loop);
}

static void loom__evb_set_timer(loom__evb *b, int timeout_ms, int alive)
{
    struct event *t = b->timer;
    event_del(t);
    if (timeout_ms < 0 && !alive)
        return;
    /* Only a counted (non-internal) event keeps the base running. */
    if (alive)
        t->ev_evcallback.evcb_flags &= (short)~EVLIST_INTERNAL;
    else
        t->ev_evcallback.evcb_flags |= EVLIST_INTERNAL;
    struct timeval tv = {.tv_sec = LOOM__EVB_FOREVER_S, .tv_usec = 0};
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    event_add(t, &tv);
}

static void loom__evb_arm(loom_loop_t *loop, int timeout_ms, int alive)
{
    loom__evb_set_timer(loom_backend_loop_priv(loop), timeout_ms, alive);
}

/* True when the libevent functions this file calls all come from the same
 * object as event_base_get_num_events (which libev does not emulate). */
static bool loom__evb_symbols_ok(void)
{
    void *const fns[] = {(void *)event_base_new, (void *)event_add, (void *)event_del,
                         (void *)event_base_loop, (void *)event_assign};
    Dl_info ref, info;
    if (!dladdr((void *)event_base_get_num_events, &ref))
        return true; /* cannot tell: trust the link */
    for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
        if (dladdr(fns[i], &info) && info.dli_fbase != ref.dli_fbase)
            return false;
    return true;
}

static int loom__evb_init(loom_loop_t *loop, void *foreign)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    loom__queue_init(&b->ios);
    loom__mirror_init(&b->mirror);
    if (!loom__evb_symbols_ok()) {
        loom_backend_log(loop, LOOM_LOG_ERR,
                         "event backend: libevent's functions resolve to another library "
                         "(libev's emulation?); not starting");
        return LOOM_EBACKEND;
    }
    if (foreign != NULL) {
        b->base = foreign;
    } else {
        b->base = event_base_new();
        if (b->base == NULL)
            return LOOM_ENOMEM;
        b->owned = true;
    }
    b->timer = event_new(b->base, -1, 0, loom__evb_tick_cb, loop);
    if (b->timer == NULL) {
        if (b->owned)
            event_base_free(b->base);
        b->base = NULL;
        return LOOM_ENOMEM;
    }
    return 0;
}

static void loom__evb_destroy(loom_loop_t *loop)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    if (b->base == NULL)
        return;
    while (!loom__queue_empty(&b->ios)) {
        loom__evio *w = LOOM__CONTAINER_OF(b->ios.next, loom__evio, node);
        loom__queue_remove(&w->node);
        event_free(w->ev);
        w->ev = NULL;
    }
    event_free(b->timer);
    b->timer = NULL;
    loom__mirror_close(&b->mirror);
    if (b->owned)
        event_base_free(b->base);
    b->base = NULL;
}

static void loom__evb_io_cb(evutil_socket_t fd, short what, void *arg)
{
    loom__evio *w = arg;
    unsigned ev = 0;
    (void)fd;
    if (what & EV_READ)
        ev |= LOOM_READABLE;
    if (what & EV_WRITE)
        ev |= LOOM_WRITABLE;
    loom__evb *b = loom_backend_loop_priv(w->loop);
    b->dispatched++;
    if (b->in_poll && !b->woke) {
        /* EVLOOP_ONCE ends only after a counted (non-internal) callback:
         * run the timer's (a no-op in poll) in this same pass. */
        b->woke = true;
        event_active(b->timer, EV_TIMEOUT, 1);
    }
    loom_update_time(w->loop);
    loom_backend_io_ready(w->loop, w->io, ev);
}

static short loom__evb_what(unsigned events)
{
    short what = EV_PERSIST;
    if (events & LOOM_READABLE)
        what |= EV_READ;
    if (events & LOOM_WRITABLE)
        what |= EV_WRITE;
    return what;
}

/* (Re)assigns and adds the event; it must not be pending. */
static int loom__evb_start(loom__evb *b, loom__evio *w, unsigned events)
{
    if (event_assign(w->ev, b->base, w->io->fd, loom__evb_what(events), loom__evb_io_cb, w) < 0)
        return LOOM_EINVAL;
    loom__evb_internal(w->ev);
    if (event_add(w->ev, NULL) < 0)
        return errno ? loom_err_from_errno(errno) : LOOM_EIO;
    return 0;
}

static int loom__evb_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    loom__evio *w = io->priv;
    w->ev = event_new(b->base, io->fd, loom__evb_what(events), loom__evb_io_cb, w);
    if (w->ev == NULL)
        return LOOM_ENOMEM;
    w->loop = loop;
    w->io = io;
    errno = 0;
    int r = loom__evb_start(b, w, events);
    if (r < 0) {
        event_free(w->ev);
        w->ev = NULL;
        return r;
    }
    loom__queue_insert_tail(&b->ios, &w->node);
    loom__mirror_set(&b->mirror, io->fd, 0, events);
    return 0;
}

static int loom__evb_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    loom__evio *w = io->priv;
    event_del(w->ev);
    errno = 0;
    int r = loom__evb_start(b, w, events);
    if (r == 0)
        loom__mirror_set(&b->mirror, io->fd, io->events, events);
    return r;
}

static void loom__evb_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    loom__evio *w = io->priv;
    if (w->ev == NULL)
        return;
    loom__mirror_set(&b->mirror, io->fd, io->events, 0);
    loom__queue_remove(&w->node);
    event_free(w->ev);
    w->ev = NULL;
}

static int loom__evb_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    b->in_poll = true;
    b->woke = false;
    b->dispatched = 0;
    loom__evb_set_timer(b, timeout_ms == 0 ? -1 : timeout_ms, 1);
    /* NO_EXIT_ON_EMPTY: poll even when every added event is internal;
     * ONCE (also with NONBLOCK): one pass over the ready events, never a
     * loop that a still-ready fd could keep going. */
    int r = event_base_loop(b->base, EVLOOP_NO_EXIT_ON_EMPTY | EVLOOP_ONCE |
                                         (timeout_ms == 0 ? EVLOOP_NONBLOCK : 0));
    b->in_poll = false;
    return r < 0 ? LOOM_EIO : b->dispatched;
}

static int loom__evb_fd(loom_loop_t *loop)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    if (b->mirror.fd < 0) {
        int r = loom__mirror_open(&b->mirror);
        if (r < 0)
            return r;
        for (loom__queue *q = b->ios.next; q != &b->ios; q = q->next) {
            loom__evio *w = LOOM__CONTAINER_OF(q, loom__evio, node);
            loom__mirror_set(&b->mirror, w->io->fd, 0, w->io->events);
        }
    }
    return b->mirror.fd;
}

/* A private base is loom's to re-initialise; the application re-inits its
 * own (event_reinit) before calling loom_loop_fork(). */
static int loom__evb_fork(loom_loop_t *loop)
{
    loom__evb *b = loom_backend_loop_priv(loop);
    if (b->mirror.fd >= 0) {
        loom__mirror_close(&b->mirror);
        int r = loom__evb_fd(loop);
        if (r < 0)
            return r;
    }
    if (b->owned && event_reinit(b->base) < 0)
        return LOOM_EIO;
    return 0;
}

const loom_backend_t loom__backend_event = {
    .name = "event",
    .caps = LOOM_BACKEND_CAP_FOREIGN | LOOM_BACKEND_CAP_FD,
    .loop_size = sizeof(loom__evb),
    .io_size = sizeof(loom__evio),
    .init = loom__evb_init,
    .destroy = loom__evb_destroy,
    .io_add = loom__evb_add,
    .io_modify = loom__evb_modify,
    .io_remove = loom__evb_remove,
    .poll = loom__evb_poll,
    .wakeup = NULL,
    .backend_fd = loom__evb_fd,
    .arm = loom__evb_arm,
    .fork = loom__evb_fork,
};

#ifdef LOOM_BACKEND_PLUGIN
__attribute__((visibility("default"))) const loom_backend_t *loom_backend_plugin(void);
const loom_backend_t *loom_backend_plugin(void)
{
    return &loom__backend_event;
}
#endif
