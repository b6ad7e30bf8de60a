/* backend/ev.c - loom on a libev loop ("ev"): the application's
 * (loom_loop_opts.foreign_loop, a struct ev_loop *) or a private one.
 *
 * Each watcher is an ev_io in loom's per-watcher area (ev_io_stop() is
 * synchronous); one ev_timer is kept at loom's next deadline and calls
 * loom_backend_tick(). libev's idiom for watchers that must not keep ev_run()
 * going is ev_unref() right after starting them and ev_ref() right before
 * stopping them: every ev_io of loom's is unref'd, and the timer is unref'd
 * while loom has no live work. When libev stops a watcher by itself (an
 * EV_ERROR on a bad fd, or a one-shot timer firing) the unref is balanced
 * with an ev_ref() so the application's reference count is never disturbed.
 *
 * loom_loop_free() leaves the loop exactly as found the moment it returns:
 * no watcher of loom's is active and ev_refcount() is what it was.
 *
 * Only <ev.h> is included: libev's event.h compatibility header would clash
 * with libevent's names (see event.c).
 */
#include <ev.h>
#include <stdlib.h>

#include "backend/mirror.h"
#include "core/internal.h"

#define LOOM__EV_FOREVER_S 3600.

typedef struct loom__evl {
    struct ev_loop *ev;
    loom_loop_t *loop;
    ev_timer timer;
    bool timer_unref; /* the timer is active and ev_unref()'d */
    bool owned;
    bool in_poll;
    int dispatched;
    loom__queue ios; /* loom__evw */
    loom__mirror mirror;
} loom__evl;

typedef struct loom__evw {
    ev_io w;
    loom_loop_t *loop;
    loom_backend_io_t *io;
    loom__queue node;
    bool active; /* started by us (and unref'd) */
} loom__evw;

static void loom__evl_tick_cb(struct ev_loop *ev, ev_timer *t, int revents)
{
    loom__evl *l = t->data;
    (void)revents;
    /* A non-repeating timer has been stopped by libev before this runs. */
    if (l->timer_unref) {
        ev_ref(ev);
        l->timer_unref = false;
    }
    if (l->in_poll)
        return; /* loom_run() runs the timers itself after the poll */
    loom_backend_tick(l->loop);
}

static void loom__evl_stop_timer(loom__evl *l)
{
    if (!ev_is_active(&l->timer))
        return;
    if (l->timer_unref)
        ev_ref(l->ev);
    l->timer_unref = false;
    ev_timer_stop(l->ev, &l->timer);
}

static void loom__evl_set_timer(loom__evl *l, int timeout_ms, int alive)
{
    loom__evl_stop_timer(l);
    if (timeout_ms < 0 && !alive)
        return;
    ev_tstamp after = timeout_ms < 0 ? LOOM__EV_FOREVER_S : timeout_ms / 1000.;
    ev_timer_set(&l->timer, after, 0.);
    ev_timer_start(l->ev, &l->timer);
    if (!alive) {
        ev_unref(l->ev);
        l->timer_unref = true;
    }
}

static void loom__evl_arm(loom_loop_t *loop, int timeout_ms, int alive)
{
    loom__evl_set_timer(loom_backend_loop_priv(loop), timeout_ms, alive);
}

static int loom__evl_init(loom_loop_t *loop, void *foreign)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    loom__queue_init(&l->ios);
    loom__mirror_init(&l->mirror);
    l->loop = loop;
    if (foreign != NULL) {
        l->ev = foreign;
    } else {
        /* NOSIGMASK: loom's signal handling is its own (core/signal.c). */
        l->ev = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
        if (l->ev == NULL)
            return LOOM_ENOMEM;
        l->owned = true;
    }
    ev_init(&l->timer, loom__evl_tick_cb);
    l->timer.data = l;
    return 0;
}

static void loom__evw_stop(loom__evl *l, loom__evw *w)
{
    if (!w->active)
        return;
    ev_ref(l->ev);
    ev_io_stop(l->ev, &w->w);
    w->active = false;
}

static void loom__evl_destroy(loom_loop_t *loop)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    if (l->ev == NULL)
        return;
    while (!loom__queue_empty(&l->ios)) {
        loom__evw *w = LOOM__CONTAINER_OF(l->ios.next, loom__evw, node);
        loom__evw_stop(l, w);
        loom__queue_remove(&w->node);
    }
    loom__evl_stop_timer(l);
    loom__mirror_close(&l->mirror);
    if (l->owned)
        ev_loop_destroy(l->ev);
    l->ev = NULL;
}

static void loom__evl_io_cb(struct ev_loop *ev, ev_io *iow, int revents)
{
    loom__evw *w = (loom__evw *)iow;
    loom__evl *l = loom_backend_loop_priv(w->loop);
    unsigned events = 0;
    if (revents & EV_ERROR) {
        /* libev stopped the watcher (a bad fd): balance our unref, report a
         * hang-up once; io_modify() starts it again if still wanted. */
        if (w->active && !ev_is_active(iow)) {
            ev_ref(ev);
            w->active = false;
        }
        events = LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
    } else {
        if (revents & EV_READ)
            events |= LOOM_READABLE;
        if (revents & EV_WRITE)
            events |= LOOM_WRITABLE;
    }
    l->dispatched++;
    loom_update_time(w->loop);
    loom_backend_io_ready(w->loop, w->io, events);
}

static int loom__evl_mask(unsigned events)
{
    int m = 0;
    if (events & LOOM_READABLE)
        m |= EV_READ;
    if (events & LOOM_WRITABLE)
        m |= EV_WRITE;
    return m;
}

static void loom__evw_start(loom__evl *l, loom__evw *w, unsigned events)
{
    loom__evw_stop(l, w);
    ev_io_set(&w->w, w->io->fd, loom__evl_mask(events));
    ev_io_start(l->ev, &w->w);
    ev_unref(l->ev);
    w->active = true;
}

static int loom__evl_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    loom__evw *w = io->priv;
    w->loop = loop;
    w->io = io;
    ev_init(&w->w, loom__evl_io_cb);
    loom__evw_start(l, w, events);
    loom__queue_insert_tail(&l->ios, &w->node);
    loom__mirror_set(&l->mirror, io->fd, 0, events);
    return 0;
}

static int loom__evl_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    loom__evw *w = io->priv;
    loom__evw_start(l, w, events);
    loom__mirror_set(&l->mirror, io->fd, io->events, events);
    return 0;
}

static void loom__evl_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    loom__evw *w = io->priv;
    if (w->loop == NULL)
        return;
    loom__evw_stop(l, w);
    loom__queue_remove(&w->node);
    loom__mirror_set(&l->mirror, io->fd, io->events, 0);
    w->loop = NULL;
}

static int loom__evl_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    l->in_poll = true;
    l->dispatched = 0;
    ev_now_update(l->ev);
    /* A ref'd timer: EVRUN_ONCE blocks only while something is ref'd. */
    loom__evl_set_timer(l, timeout_ms == 0 ? -1 : timeout_ms, 1);
    ev_run(l->ev, timeout_ms == 0 ? EVRUN_NOWAIT : EVRUN_ONCE);
    l->in_poll = false;
    return l->dispatched;
}

static int loom__evl_fd(loom_loop_t *loop)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    if (l->mirror.fd < 0) {
        int r = loom__mirror_open(&l->mirror);
        if (r < 0)
            return r;
        for (loom__queue *q = l->ios.next; q != &l->ios; q = q->next) {
            loom__evw *w = LOOM__CONTAINER_OF(q, loom__evw, node);
            loom__mirror_set(&l->mirror, w->io->fd, 0, w->io->events);
        }
    }
    return l->mirror.fd;
}

/* A private loop is loom's to fork; the application calls ev_loop_fork()
 * on its own before loom_loop_fork(). */
static int loom__evl_fork(loom_loop_t *loop)
{
    loom__evl *l = loom_backend_loop_priv(loop);
    if (l->mirror.fd >= 0) {
        loom__mirror_close(&l->mirror);
        int r = loom__evl_fd(loop);
        if (r < 0)
            return r;
    }
    if (l->owned)
        ev_loop_fork(l->ev);
    return 0;
}

const loom_backend_t loom__backend_ev = {
    .name = "ev",
    .caps = LOOM_BACKEND_CAP_FOREIGN | LOOM_BACKEND_CAP_FD,
    .loop_size = sizeof(loom__evl),
    .io_size = sizeof(loom__evw),
    .init = loom__evl_init,
    .destroy = loom__evl_destroy,
    .io_add = loom__evl_add,
    .io_modify = loom__evl_modify,
    .io_remove = loom__evl_remove,
    .poll = loom__evl_poll,
    .wakeup = NULL,
    .backend_fd = loom__evl_fd,
    .arm = loom__evl_arm,
    .fork = loom__evl_fork,
};

#ifdef LOOM_BACKEND_PLUGIN
__attribute__((visibility("default"))) const loom_backend_t *loom_backend_plugin(void);
const loom_backend_t *loom_backend_plugin(void)
{
    return &loom__backend_ev;
}
#endif
