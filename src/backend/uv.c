/* backend/uv.c - loom on a libuv loop ("uv"): the application's
 * (loom_loop_opts.foreign_loop, a uv_loop_t *) or a private one.
 *
 * Each watcher is a uv_poll_t; one uv_timer_t is kept armed at loom's next
 * deadline and calls loom_backend_tick(). None of loom's handles keeps the
 * uv loop alive except that timer, which is ref'd exactly while loom has
 * live work: uv_run() returns when both the application and loom are done.
 *
 * libuv closes handles asynchronously: uv_close() frees a handle's memory
 * only from its close callback, on a later turn of the loop. The uv_poll_t
 * and the timer are therefore allocated on their own (not in loom's
 * per-watcher area, which the core frees at once) and free themselves in
 * their close callbacks, which touch nothing of loom's. So
 * loom_loop_free() returns at once, and the application's next uv_run()
 * (any mode) finishes the closes; after that uv_loop_close() succeeds. That
 * is libuv's own rule for the application's handles, so the usual shutdown
 * (close your handles, uv_run, uv_loop_close) needs nothing extra. A private
 * loop is run until its closes are done and closed by loom itself.
 *
 * loom_run() on this backend runs uv_run(UV_RUN_ONCE) (NOWAIT for a zero
 * timeout) with the timer ref'd at the poll timeout; it must not be called
 * from inside the uv loop's own callbacks (libuv is not re-entrant).
 */
#include <stdlib.h>
#include <uv.h>

#include "core/internal.h"

/* "No deadline" while alive: the timer still has to be active to keep the
 * loop running; it fires once an hour and is re-armed. */
#define LOOM__UV_FOREVER (3600u * 1000u)

typedef struct loom__uvp {
    uv_poll_t poll;
    loom_loop_t *loop; /* NULL once detached from loom */
    loom_backend_io_t *io;
    loom__queue node;
} loom__uvp;

typedef struct loom__uv {
    uv_loop_t *uv;
    uv_timer_t *timer;
    loom__queue polls; /* live loom__uvp */
    bool owned;
    bool in_poll; /* inside poll(): the timer only wakes uv_run */
    int dispatched;
} loom__uv;

static int loom__uv_err(int uverr)
{
    return uverr < 0 ? loom_err_from_errno(-uverr) : uverr;
}

static void loom__uv_free_handle(uv_handle_t *h)
{
    free(h->data);
}

/* The timer's data points at its own allocation (so the close callback can
 * free it); the loop is kept right after the handle. */
typedef struct loom__uvt {
    uv_timer_t timer;
    loom_loop_t *loop;
} loom__uvt;

static void loom__uv_tick_cb(uv_timer_t *t)
{
    loom__uvt *ut = (loom__uvt *)t;
    loom__uv *u = loom_backend_loop_priv(ut->loop);
    if (u->in_poll)
        return; /* loom_run() runs the timers itself after the poll */
    loom_backend_tick(ut->loop);
}

static void loom__uv_set_timer(loom__uv *u, int timeout_ms, int alive)
{
    if (timeout_ms < 0 && !alive) {
        uv_timer_stop(u->timer);
    } else {
        uint64_t ms = timeout_ms < 0 ? LOOM__UV_FOREVER : (uint64_t)timeout_ms;
        uv_timer_start(u->timer, loom__uv_tick_cb, ms, 0);
    }
    if (alive)
        uv_ref((uv_handle_t *)u->timer);
    else
        uv_unref((uv_handle_t *)u->timer);
}

static void loom__uv_arm(loom_loop_t *loop, int timeout_ms, int alive)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    loom__uv_set_timer(u, timeout_ms, alive);
}

static int loom__uv_init(loom_loop_t *loop, void *foreign)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    loom__queue_init(&u->polls);
    int r;
    if (foreign != NULL) {
        u->uv = foreign;
    } else {
        u->uv = malloc(sizeof *u->uv);
        if (u->uv == NULL)
            return LOOM_ENOMEM;
        r = uv_loop_init(u->uv);
        if (r < 0) {
            free(u->uv);
            return loom__uv_err(r);
        }
        u->owned = true;
    }
    loom__uvt *ut = calloc(1, sizeof *ut);
    if (ut == NULL) {
        r = LOOM_ENOMEM;
        goto fail_timer;
    }
    ut->loop = loop;
    r = uv_timer_init(u->uv, &ut->timer);
    if (r < 0) {
        free(ut);
        r = loom__uv_err(r);
        goto fail_timer;
    }
    ut->timer.data = ut;
    u->timer = &ut->timer;
    uv_unref((uv_handle_t *)u->timer);
    return 0;

fail_timer:
    if (u->owned) {
        uv_loop_close(u->uv);
        free(u->uv);
    }
    u->uv = NULL;
    return r;
}

static void loom__uv_detach(loom__uvp *p)
{
    uv_poll_stop(&p->poll);
    p->loop = NULL;
    p->io = NULL;
    loom__queue_remove(&p->node);
    uv_close((uv_handle_t *)&p->poll, loom__uv_free_handle);
}

static void loom__uv_destroy(loom_loop_t *loop)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    if (u->uv == NULL)
        return;
    while (!loom__queue_empty(&u->polls))
        loom__uv_detach(LOOM__CONTAINER_OF(u->polls.next, loom__uvp, node));
    uv_timer_stop(u->timer);
    uv_close((uv_handle_t *)u->timer, loom__uv_free_handle);
    u->timer = NULL;
    if (u->owned) {
        /* Only loom's handles live here: one turn runs their closes. */
        uv_run(u->uv, UV_RUN_DEFAULT);
        uv_loop_close(u->uv);
        free(u->uv);
    }
    u->uv = NULL;
}

static int loom__uv_mask(unsigned events)
{
    int m = 0;
    if (events & LOOM_READABLE)
        m |= UV_READABLE | UV_DISCONNECT;
    if (events & LOOM_WRITABLE)
        m |= UV_WRITABLE;
    return m;
}

static void loom__uv_io_cb(uv_poll_t *h, int status, int events)
{
    loom__uvp *p = h->data;
    if (p->io == NULL)
        return;
    unsigned ev = 0;
    if (status < 0) {
        /* POLLERR (a reset, a refused connect): libuv has stopped the
         * handle. Report a hang-up, and below start it again: loom's
         * readiness is level-triggered, and a reader that took the last
         * bytes before the error relies on hearing about it again. */
        ev = LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
    } else {
        if (events & (UV_READABLE | UV_DISCONNECT | UV_PRIORITIZED))
            ev |= LOOM_READABLE;
        if (events & UV_WRITABLE)
            ev |= LOOM_WRITABLE;
    }
    loom_loop_t *loop = p->loop;
    loom__uv *u = loom_backend_loop_priv(loop);
    u->dispatched++;
    loom_update_time(loop);
    loom_backend_io_ready(loop, p->io, ev);
    if (status < 0 && p->io != NULL && p->io->events != 0)
        uv_poll_start(&p->poll, loom__uv_mask(p->io->events), loom__uv_io_cb);
}

static int loom__uv_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    loom__uvp *p = calloc(1, sizeof *p);
    if (p == NULL)
        return LOOM_ENOMEM;
    /* Note: uv_poll_init() puts the fd in non-blocking mode. */
    int r = uv_poll_init(u->uv, &p->poll, io->fd);
    if (r < 0) {
        free(p);
        return loom__uv_err(r);
    }
    p->poll.data = p;
    p->loop = loop;
    p->io = io;
    uv_unref((uv_handle_t *)&p->poll);
    loom__queue_insert_tail(&u->polls, &p->node);
    r = uv_poll_start(&p->poll, loom__uv_mask(events), loom__uv_io_cb);
    if (r < 0) {
        loom__uv_detach(p);
        return loom__uv_err(r);
    }
    *(loom__uvp **)io->priv = p;
    return 0;
}

static int loom__uv_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__uvp *p = *(loom__uvp **)io->priv;
    (void)loop;
    return loom__uv_err(uv_poll_start(&p->poll, loom__uv_mask(events), loom__uv_io_cb));
}

static void loom__uv_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__uvp *p = *(loom__uvp **)io->priv;
    (void)loop;
    if (p == NULL)
        return;
    *(loom__uvp **)io->priv = NULL;
    loom__uv_detach(p);
}

static int loom__uv_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    u->in_poll = true;
    u->dispatched = 0;
    /* A ref'd, active timer: uv_run() neither skips the poll (a loop with
     * nothing alive does not poll at all) nor sleeps past timeout_ms. */
    uv_update_time(u->uv);
    loom__uv_set_timer(u, timeout_ms == 0 ? -1 : timeout_ms, 1);
    uv_run(u->uv, timeout_ms == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
    u->in_poll = false;
    return u->dispatched;
}

static int loom__uv_fd(loom_loop_t *loop)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    int fd = uv_backend_fd(u->uv);
    return fd >= 0 ? fd : LOOM_ENOTSUP;
}

/* A private loop is loom's to re-create; the application forks its own
 * (uv_loop_fork) before calling loom_loop_fork(). */
static int loom__uv_fork(loom_loop_t *loop)
{
    loom__uv *u = loom_backend_loop_priv(loop);
    return u->owned ? loom__uv_err(uv_loop_fork(u->uv)) : 0;
}

const loom_backend_t loom__backend_uv = {
    .name = "uv",
    .caps = LOOM_BACKEND_CAP_FOREIGN | LOOM_BACKEND_CAP_FD,
    .loop_size = sizeof(loom__uv),
    .io_size = sizeof(loom__uvp *),
    .init = loom__uv_init,
    .destroy = loom__uv_destroy,
    .io_add = loom__uv_add,
    .io_modify = loom__uv_modify,
    .io_remove = loom__uv_remove,
    .poll = loom__uv_poll,
    .wakeup = NULL,
    .backend_fd = loom__uv_fd,
    .arm = loom__uv_arm,
    .fork = loom__uv_fork,
};

#ifdef LOOM_BACKEND_PLUGIN
__attribute__((visibility("default"))) const loom_backend_t *loom_backend_plugin(void);
const loom_backend_t *loom_backend_plugin(void)
{
    return &loom__backend_uv;
}
#endif
