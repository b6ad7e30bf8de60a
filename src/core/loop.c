/* core/loop.c - the event loop.
 *
 * One iteration, in order:
 *   1. update the cached time; run due timers
 *   2. run pending (deferred) callbacks
 *   3. run idle callbacks
 *   4. poll the backend for I/O, sleeping until the next timer unless
 *      something is ready to run (then it does not sleep)
 *   5. update the time; run due timers again
 *   6. free the handles closed during the iteration
 * A natural exit (LOOM_RUN_DEFAULT) happens when nothing keeps the loop
 * alive: no active ref'd handle, no pending callback, post or pool job.
 */
#include <assert.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#if LOOM_HAVE_EVENTFD
#include <sys/eventfd.h>
#endif

void loom__raised_flush(loom_loop_t *loop);
void loom__raised_free(loom_loop_t *loop);

struct loom__post {
    loom__post *next;
    loom_post_fn fn;
    void *data;
};

struct loom_idle {
    loom__handle h;
    loom__queue node;
    loom_idle_cb cb;
};

struct loom_io {
    loom__handle h;
    loom__queue node; /* loop->user_ios until freed */
    loom_io_cb cb;
    loom__io w; /* keep last: followed by the backend's io area */
};

/* --- Time ----------------------------------------------------------------- */

void loom__update_time(loom_loop_t *loop)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    loop->now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    loop->now = loop->now_ns / 1000000u;
}

uint64_t loom_now(const loom_loop_t *loop)
{
    return loop->now;
}

void loom_update_time(loom_loop_t *loop)
{
    loom__update_time(loop);
}

/* --- Handles -------------------------------------------------------------- */

void loom__handle_init(loom_loop_t *loop, loom__handle *h, uint32_t type, loom__free_fn free_fn,
                       bool internal)
{
    h->loop = loop;
    h->type = (uint16_t)type;
    h->flags = LOOM__H_REF | (internal ? LOOM__H_INTERNAL : 0);
    /* Each distinct free function is registered once per loop; a short
     * linear search (a loop knows a dozen or so), after a look at the one
     * found last. */
    unsigned i = loop->free_hint;
    if (i >= loop->nfree_fns || loop->free_fns[i] != free_fn) {
        i = 0;
        while (i < loop->nfree_fns && loop->free_fns[i] != free_fn)
            i++;
        if (i == loop->nfree_fns) {
            assert(i < LOOM__MAX_FREE_FNS);
            loop->free_fns[loop->nfree_fns++] = free_fn;
        }
        loop->free_hint = i;
    }
    h->free_idx = (uint16_t)i;
    h->closing_next = NULL;
    if (!internal)
        loop->live++;
}

loom__handle *loom__sentinel_new(loom_loop_t *loop, void *state, loom__free_fn fn)
{
    loom__handle *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    loom__handle_init(loop, h, LOOM__T_OTHER, fn, true);
    h->data = state;
    return h;
}

void loom__handle_start(loom__handle *h)
{
    if (h->flags & LOOM__H_ACTIVE)
        return;
    h->flags |= LOOM__H_ACTIVE;
    /* The first live handle: a foreign loop must now stay alive. */
    if ((h->flags & LOOM__H_REF) && h->loop->active_refs++ == 0)
        loom__kick(h->loop);
}

void loom__handle_stop(loom__handle *h)
{
    if (!(h->flags & LOOM__H_ACTIVE))
        return;
    h->flags &= ~LOOM__H_ACTIVE;
    /* The last live handle gone: a foreign loop may exit now. */
    if ((h->flags & LOOM__H_REF) && --h->loop->active_refs == 0)
        loom__kick(h->loop);
}

void loom__handle_ref(loom__handle *h)
{
    if (h->flags & LOOM__H_REF)
        return;
    h->flags |= LOOM__H_REF;
    if ((h->flags & LOOM__H_ACTIVE) && h->loop->active_refs++ == 0)
        loom__kick(h->loop);
}

void loom__handle_unref(loom__handle *h)
{
    if (!(h->flags & LOOM__H_REF))
        return;
    h->flags &= ~LOOM__H_REF;
    if ((h->flags & LOOM__H_ACTIVE) && --h->loop->active_refs == 0)
        loom__kick(h->loop);
}

void loom__handle_close(loom__handle *h)
{
    if (h->flags & LOOM__H_CLOSING)
        return;
    loom__handle_stop(h);
    h->flags |= LOOM__H_CLOSING;
    h->closing_next = NULL;
    loom_loop_t *loop = h->loop;
    if (loop->closing_tail)
        loop->closing_tail->closing_next = h;
    else
        loop->closing = h;
    loop->closing_tail = h;
    loom__kick(loop);
}

void loom__handle_own(loom__handle *h)
{
    if (h->flags & LOOM__H_INTERNAL)
        return;
    loom__handle_unref(h);
    h->flags |= LOOM__H_INTERNAL;
    h->loop->live--;
}

void loom__handle_forget(loom__handle *h)
{
    if (!(h->flags & LOOM__H_INTERNAL))
        h->loop->live--;
}

static void loom__run_closing(loom_loop_t *loop)
{
    /* A free function may close further handles; they are appended and
     * freed here too. */
    while (loop->closing) {
        loom__handle *h = loop->closing;
        loop->closing = h->closing_next;
        if (loop->closing == NULL)
            loop->closing_tail = NULL;
        if (!(h->flags & LOOM__H_INTERNAL))
            loop->live--;
        loop->free_fns[h->free_idx](h);
    }
}

/* --- Pending callbacks ------------------------------------------------------ */

void loom__pending_queue(loom_loop_t *loop, loom__pending *p)
{
    loom__queue_insert_tail(&loop->pending, &p->node);
    loom__kick(loop);
}

void loom__pending_cancel(loom__pending *p)
{
    if (p->node.next != NULL)
        loom__queue_remove(&p->node);
}

static void loom__run_pending(loom_loop_t *loop)
{
    /* Callbacks queued while this runs wait for the next iteration. */
    loom__queue q;
    loom__queue_init(&q);
    loom__queue_splice_tail(&q, &loop->pending);
    while (!loom__queue_empty(&q) && !loop->stop_flag) {
        loom__pending *p = LOOM__CONTAINER_OF(q.next, loom__pending, node);
        loom__queue_remove(&p->node);
        p->fn(p);
    }
    if (!loom__queue_empty(&q)) {
        /* Stopped: keep the rest, ahead of newer ones. */
        loom__queue_splice_tail(&q, &loop->pending);
        loom__queue_splice_tail(&loop->pending, &q);
    }
}

/* --- Watchers --------------------------------------------------------------- */

int loom__io_init(loom_loop_t *loop, loom__io *w, int fd, loom__io_cb cb)
{
    w->bio.fd = fd;
    w->bio.events = 0;
    w->bio.priv = NULL;
    w->cb = cb;
    if (loop->backend->io_size) {
        w->bio.priv = calloc(1, loop->backend->io_size);
        if (w->bio.priv == NULL)
            return LOOM_ENOMEM;
    }
    return 0;
}

int loom__io_set(loom_loop_t *loop, loom__io *w, unsigned events)
{
    events &= LOOM_READABLE | LOOM_WRITABLE;
    if (events == w->bio.events)
        return 0;
    int r;
    if (events == 0) {
        loop->backend->io_remove(loop, &w->bio);
        r = 0;
    } else if (w->bio.events == 0) {
        r = loop->backend->io_add(loop, &w->bio, events);
    } else {
        r = loop->backend->io_modify(loop, &w->bio, events);
    }
    if (r == 0)
        w->bio.events = events;
    return r;
}

void loom__io_deinit(loom_loop_t *loop, loom__io *w)
{
    if (w->bio.events) {
        loop->backend->io_remove(loop, &w->bio);
        w->bio.events = 0;
    }
    w->cb = NULL; /* later events of the same batch are skipped */
    free(w->bio.priv);
    w->bio.priv = NULL;
}

void loom_backend_io_ready(loom_loop_t *loop, loom_backend_io_t *bio, unsigned events)
{
    loom__io *w = (loom__io *)bio;
    if (LOOM__UNLIKELY(w->cb == NULL))
        return;
    w->cb(w, events);
    (void)loop;
}

/* Public fd watchers. */
static void loom__io_user_cb(loom__io *w, unsigned events)
{
    loom_io_t *io = LOOM__CONTAINER_OF(w, loom_io_t, w);
    if (io->h.flags & LOOM__H_CLOSING)
        return;
    loom__op_scope s;
    loom__op_enter(io->h.loop, &s, NULL, NULL, io);
    io->cb(io, events, io->h.data);
    loom__op_leave(io->h.loop, &s);
}

static void loom__io_free(loom__handle *h)
{
    loom_io_t *io = (loom_io_t *)h;
    loom__queue_remove(&io->node);
    free(io);
}

int loom_io_new(loom_loop_t *loop, loom_io_t **out, int fd, loom_io_cb cb, void *data)
{
    if (out == NULL)
        return LOOM_EINVAL;
    if (fd < 0)
        return LOOM_EBADF;
    loom_io_t *io = calloc(1, sizeof *io);
    if (io == NULL)
        return LOOM_ENOMEM;
    int r = loom__io_init(loop, &io->w, fd, loom__io_user_cb);
    if (r < 0) {
        free(io);
        return r;
    }
    loom__handle_init(loop, &io->h, LOOM__T_IO, loom__io_free, false);
    io->h.data = data;
    io->cb = cb;
    loom__queue_insert_tail(&loop->user_ios, &io->node);
    *out = io;
    return 0;
}

int loom_io_start(loom_io_t *io, unsigned events)
{
    if (io->h.flags & LOOM__H_CLOSING)
        return LOOM_ECLOSED;
    loom_loop_t *loop = io->h.loop;
    bool was = io->w.bio.events != 0;
    int r = loom__io_set(loop, &io->w, events);
    if (r < 0)
        return r;
    bool now = io->w.bio.events != 0;
    if (now && !was) {
        loom__handle_start(&io->h);
        loop->stats.fd_watchers++;
    } else if (!now && was) {
        loom__handle_stop(&io->h);
        loop->stats.fd_watchers--;
    }
    return 0;
}

int loom_io_stop(loom_io_t *io)
{
    return loom_io_start(io, 0);
}

int loom_io_fd(const loom_io_t *io)
{
    return io->w.bio.fd;
}

loom_loop_t *loom_io_loop(const loom_io_t *io)
{
    return io->h.loop;
}

void *loom_io_data(const loom_io_t *io)
{
    return io->h.data;
}

void loom_io_close(loom_io_t *io)
{
    if (io == NULL || (io->h.flags & LOOM__H_CLOSING))
        return;
    loom_io_stop(io);
    loom__io_deinit(io->h.loop, &io->w);
    loom__handle_close(&io->h);
}

/* --- Idle ------------------------------------------------------------------- */

static void loom__idle_free(loom__handle *h)
{
    loom__slab_free(&h->loop->idle_slab, h);
}

int loom_idle_new(loom_loop_t *loop, loom_idle_t **out, loom_idle_cb cb, void *data)
{
    if (out == NULL)
        return LOOM_EINVAL;
    loom_idle_t *i = loom__slab_alloc(&loop->idle_slab);
    if (i == NULL)
        return LOOM_ENOMEM;
    loom__handle_init(loop, &i->h, LOOM__T_IDLE, loom__idle_free, false);
    i->h.data = data;
    i->cb = cb;
    loom__queue_init(&i->node);
    *out = i;
    return 0;
}

loom_loop_t *loom_idle_loop(const loom_idle_t *i)
{
    return i->h.loop;
}

int loom_idle_start(loom_idle_t *i)
{
    if (i->h.flags & LOOM__H_CLOSING)
        return LOOM_ECLOSED;
    if (i->h.flags & LOOM__H_ACTIVE)
        return 0;
    loom__queue_insert_tail(&i->h.loop->idles, &i->node);
    loom__handle_start(&i->h);
    loom__kick(i->h.loop);
    return 0;
}

int loom_idle_stop(loom_idle_t *i)
{
    if (i->h.flags & LOOM__H_CLOSING)
        return LOOM_ECLOSED;
    if (!(i->h.flags & LOOM__H_ACTIVE))
        return 0;
    loom__queue_remove(&i->node);
    loom__handle_stop(&i->h);
    return 0;
}

void loom_idle_close(loom_idle_t *i)
{
    if (i == NULL || (i->h.flags & LOOM__H_CLOSING))
        return;
    loom_idle_stop(i);
    loom__handle_close(&i->h);
}

static void loom__run_idle(loom_loop_t *loop)
{
    if (loom__queue_empty(&loop->idles))
        return;
    /* Idles started by a callback wait for the next iteration; a stopped or
     * closed one leaves the list at once. */
    loom__queue q;
    loom__queue_init(&q);
    loom__queue_splice_tail(&q, &loop->idles);
    while (!loom__queue_empty(&q)) {
        loom_idle_t *i = LOOM__CONTAINER_OF(q.next, loom_idle_t, node);
        loom__queue_remove(&i->node);
        loom__queue_insert_tail(&loop->idles, &i->node);
        loom__op_scope s;
        loom__op_enter(loop, &s, NULL, NULL, i);
        i->cb(i, i->h.data);
        loom__op_leave(loop, &s);
        if (loop->stop_flag)
            break;
    }
    loom__queue_splice_tail(&loop->idles, &q);
}

/* --- Posts and wakeups ------------------------------------------------------ */

void loom__wakeup(loom_loop_t *loop)
{
    /* Coalesced: one write until the loop has drained the wakeup. */
    if (atomic_exchange(&loop->wakeup_pending, true))
        return;
    if (loop->backend->wakeup) {
        loop->backend->wakeup(loop);
        return;
    }
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(loop->wakeup_wfd, &one, loop->wakeup_wfd == loop->wakeup_fd ? 8 : 1);
    while (n < 0 && errno == EINTR);
}

static void loom__run_posts(loom_loop_t *loop)
{
    pthread_mutex_lock(&loop->post_lock);
    loom__post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        loom__post *next = p->next;
        atomic_fetch_sub(&loop->post_count, 1);
        loop->stats.posts_pending = atomic_load(&loop->post_count);
        loom__op_scope s;
        loom__op_enter(loop, &s, NULL, NULL, NULL);
        p->fn(p->data);
        loom__op_leave(loop, &s);
        free(p);
        p = next;
    }
}

static void loom__wakeup_cb(loom__io *w, unsigned events)
{
    loom_loop_t *loop = LOOM__CONTAINER_OF(w, loom_loop_t, wakeup_io);
    char buf[64];
    ssize_t n;
    do
        n = read(loop->wakeup_fd, buf, sizeof buf);
    while (n > 0 && loop->wakeup_fd != loop->wakeup_wfd);
    atomic_store(&loop->wakeup_pending, false);
    if (atomic_load(&loop->stop_async)) {
        atomic_store(&loop->stop_async, false);
        loop->stop_flag = 1;
    }
    loom__run_posts(loop);
    loom__work_drain(loop);
    (void)events;
}

int loom_post(loom_loop_t *loop, loom_post_fn fn, void *data)
{
    loom__post *p = malloc(sizeof *p);
    if (p == NULL)
        return LOOM_ENOMEM;
    p->next = NULL;
    p->fn = fn;
    p->data = data;
    /* `freeing` is set under this lock, and the wakeup is written under it
     * too: once loom_loop_free() has set it, no poster touches the queue or
     * the wakeup fd any more. */
    pthread_mutex_lock(&loop->post_lock);
    if (loop->freeing) {
        pthread_mutex_unlock(&loop->post_lock);
        free(p);
        return LOOM_ECLOSED;
    }
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    atomic_fetch_add(&loop->post_count, 1);
    loom__wakeup(loop);
    pthread_mutex_unlock(&loop->post_lock);
    return 0;
}

void loom_stop_async(loom_loop_t *loop)
{
    atomic_store(&loop->stop_async, true);
    loom__wakeup(loop);
}

static int loom__wakeup_open(loom_loop_t *loop)
{
#if LOOM_HAVE_EVENTFD
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return loom__err(errno);
    loop->wakeup_fd = loop->wakeup_wfd = fd;
#else
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return loom__err(errno);
    loop->wakeup_fd = fds[0];
    loop->wakeup_wfd = fds[1];
#endif
    int r = loom__io_init(loop, &loop->wakeup_io, loop->wakeup_fd, loom__wakeup_cb);
    if (r == 0)
        r = loom__io_set(loop, &loop->wakeup_io, LOOM_READABLE);
    return r;
}

static void loom__wakeup_close(loom_loop_t *loop)
{
    loom__io_deinit(loop, &loop->wakeup_io);
    if (loop->wakeup_fd >= 0)
        close(loop->wakeup_fd);
    if (loop->wakeup_wfd >= 0 && loop->wakeup_wfd != loop->wakeup_fd)
        close(loop->wakeup_wfd);
    loop->wakeup_fd = loop->wakeup_wfd = -1;
}

/* --- Creation and destruction ------------------------------------------------ */

void *loom_backend_loop_priv(loom_loop_t *loop)
{
    return loop->backend_priv;
}

int loom_loop_new(loom_loop_t **out, const loom_loop_opts *opts)
{
    static const loom_loop_opts defaults = {0};
    if (out == NULL)
        return LOOM_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    const char *name = opts->backend;
    if (name == NULL || name[0] == '\0')
        name = getenv("LOOM_BACKEND");
    int err = 0;
    char why[2048];
    const loom_backend_t *be = loom__backend_select(name, &err, why, sizeof why);
    if (be == NULL) {
        /* No loop to log through yet: the options' logger hears it. */
        int level = opts->log_level ? opts->log_level : LOOM_LOG_NOTICE;
        if (err == LOOM_ENOPLUGIN && opts->on_log && LOOM_LOG_ERR <= level) {
            char msg[2200];
            snprintf(msg, sizeof msg,
                     "backend \"%s\": no usable plugin libloom-backend-%s.so; "
                     "searched %s",
                     name, name, why);
            opts->on_log(LOOM_LOG_ERR, msg, opts->log_data);
        }
        return err ? err : LOOM_EBACKEND;
    }

    int r = LOOM_ENOMEM;
    loom_loop_t *loop = calloc(1, sizeof *loop);
    if (loop == NULL)
        goto fail_loop;
    loop->wheel = malloc(sizeof *loop->wheel);
    if (loop->wheel == NULL)
        goto fail_wheel;
    loop->backend = be;
    loop->on_event = opts->on_event;
    loop->on_fatal = opts->on_fatal;
    loop->event_data = opts->event_data;
    loop->on_log = opts->on_log;
    loop->log_level = opts->log_level ? opts->log_level : LOOM_LOG_NOTICE;
    loop->log_data = opts->log_data;
    loop->pool_threads = opts->pool_threads ? opts->pool_threads : 4;
    loop->user_data = opts->data;
    loop->foreign = opts->foreign_loop;
    loop->wakeup_fd = loop->wakeup_wfd = -1;
    loom__queue_init(&loop->idles);
    loom__queue_init(&loop->user_ios);
    loom__queue_init(&loop->pending);
    loom__queue_init(&loop->raised);
    loom__slab_init(&loop->timer_slab, sizeof(loom_timer_t));
    loom__slab_init(&loop->idle_slab, sizeof(loom_idle_t));
    loom__bc_init(&loop->bc);
    pthread_mutex_init(&loop->post_lock, NULL);
    atomic_init(&loop->post_count, 0);
    atomic_init(&loop->wakeup_pending, false);
    atomic_init(&loop->stop_async, false);
    loom__update_time(loop);
    loom__wheel_init(loop->wheel, loop->now);

    if (be->loop_size) {
        loop->backend_priv = calloc(1, be->loop_size);
        if (loop->backend_priv == NULL)
            goto fail_priv;
    }
    r = be->init(loop, opts->foreign_loop);
    if (r < 0)
        goto fail_init;
    /* A backend may replace itself (io_uring falling back to epoll). */
    be = loop->backend;
    r = loom__wakeup_open(loop);
    if (r < 0)
        goto fail_wakeup;
    *out = loop;
    loom__kick(loop);
    return 0;

fail_wakeup:
    loom__wakeup_close(loop);
    be->destroy(loop);
fail_init:
    free(loop->backend_priv);
fail_priv:
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->wheel);
fail_wheel:
    free(loop);
fail_loop:
    return r;
}

void loom_loop_free(loom_loop_t *loop)
{
    if (loop == NULL)
        return;
    pthread_mutex_lock(&loop->post_lock);
    loop->freeing = true;
    pthread_mutex_unlock(&loop->post_lock);
    /* The pool first: no thread may touch the loop after this. */
    loom__work_loop_free(loop);
    loom__signal_loop_free(loop);
    if (loop->http_free)
        loop->http_free(loop);
    if (loop->net_free)
        loop->net_free(loop);
    if (loop->proc_free)
        loop->proc_free(loop);
    /* Application fd watchers still open (the fds stay the application's). */
    for (loom__queue *q = loop->user_ios.next; q != &loop->user_ios; q = q->next)
        loom_io_close(LOOM__CONTAINER_OF(q, loom_io_t, node));
    /* File-system watches (their close notifications run in the drain). */
    if (loop->fs_free)
        loop->fs_free(loop);
    /* After net (TCP cancels its lookups there), before the backend goes. */
    if (loop->dns_free)
        loop->dns_free(loop);
    loom__run_closing(loop);
    loom__wakeup_close(loop);
    loop->backend->destroy(loop);
    /* Drop posts that never ran. */
    for (loom__post *p = loop->post_head, *n; p; p = n) {
        n = p->next;
        free(p);
    }
    loom__raised_free(loop);
    loom__slab_destroy(&loop->timer_slab);
    loom__slab_destroy(&loop->idle_slab);
    loom__bc_destroy(&loop->bc);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop->scratch);
    free(loop->backend_priv);
    free(loop->wheel);
    free(loop);
}

size_t loom_loop_live(const loom_loop_t *loop)
{
    return loop->live;
}

void *loom_loop_data(const loom_loop_t *loop)
{
    return loop->user_data;
}

void loom_loop_set_data(loom_loop_t *loop, void *data)
{
    loop->user_data = data;
}

const char *loom_loop_backend(const loom_loop_t *loop)
{
    return loop->backend->name;
}

void loom_log(loom_loop_t *loop, int level, const char *fmt, ...)
{
    if (loop->on_log == NULL || level > loop->log_level)
        return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    loop->on_log(level, buf, loop->log_data);
}

void loom_backend_log(loom_loop_t *loop, int level, const char *msg)
{
    loom_log(loop, level, "%s", msg);
}

/* --- Running ------------------------------------------------------------------ */

static bool loom__alive(const loom_loop_t *loop)
{
    return loop->active_refs > 0 || !loom__queue_empty(&loop->pending) ||
           atomic_load(&loop->post_count) > 0 || loop->closing != NULL ||
           !loom__queue_empty(&loop->raised);
}

/* How long poll may sleep: 0 if something is ready to run. */
static int loom__poll_timeout(loom_loop_t *loop)
{
    if (loop->stop_flag || !loom__queue_empty(&loop->pending) || !loom__queue_empty(&loop->idles) ||
        loop->closing != NULL || !loom__queue_empty(&loop->raised))
        return 0;
    if (!loom__alive(loop))
        return 0; /* the iteration ends and the loop exits: never sleep */
    int64_t t = loom__timers_next(loop);
    if (t > INT32_MAX)
        t = INT32_MAX;
    return (int)t;
}

static void loom__lag_end(loom_loop_t *loop, uint64_t start_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t end = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    uint64_t busy = end > start_ns ? end - start_ns : 0;
    loop->stats.lag_total_ns += busy;
    if (busy > loop->stats.lag_max_ns)
        loop->stats.lag_max_ns = busy;
}

/* Everything but the poll: shared by loom_run and foreign backends. */
static void loom__run_callbacks(loom_loop_t *loop)
{
    loom__timers_run(loop);
    if (!loop->stop_flag)
        loom__run_pending(loop);
    if (!loop->stop_flag)
        loom__run_idle(loop);
    loom__raised_flush(loop);
}

int loom_run(loom_loop_t *loop, loom_run_mode mode)
{
    if (loop->in_run)
        return LOOM_EBUSY;
    loop->in_run = true;
    loop->stop_flag = 0;
    loop->run_result = 0;
    loom__update_time(loop);
    bool alive = loom__alive(loop);
    while (alive && !loop->stop_flag) {
        loop->stats.iterations++;
        uint64_t busy_start = loop->now_ns;
        loom__run_callbacks(loop);
        int timeout = 0;
        if (mode != LOOM_RUN_NOWAIT)
            timeout = loom__poll_timeout(loop);
        loom__lag_end(loop, busy_start);
        int r = loop->backend->poll(loop, timeout);
        loom__update_time(loop);
        busy_start = loop->now_ns;
        if (LOOM__UNLIKELY(r < 0 && r != LOOM_EINTR)) {
            loom_event_t ev = {
                .kind = LOOM_EV_ERROR, .code = r, .msg = "backend poll failed", .loop = loop};
            loom_log(loop, LOOM_LOG_ERR, "%s backend poll failed: %s", loop->backend->name,
                     loom_strerror(r));
            if (loop->run_result == 0) {
                loop->run_result = r;
                if (loop->on_fatal)
                    loop->on_fatal(&ev, loop->event_data);
            }
            loop->stop_flag = 1;
        }
        if (mode == LOOM_RUN_ONCE && !loop->stop_flag)
            loom__timers_run(loop);
        loom__raised_flush(loop);
        loom__run_closing(loop);
        loom__lag_end(loop, busy_start);
        alive = loom__alive(loop);
        if (mode != LOOM_RUN_DEFAULT)
            break;
    }
    loop->in_run = false;
    loop->stop_flag = 0;
    /* A foreign backend's timer was left at the last poll's timeout. */
    loom__kick(loop);
    if (loop->run_result < 0)
        return loop->run_result;
    return loom__alive(loop) ? 1 : 0;
}

void loom_stop(loom_loop_t *loop)
{
    loop->stop_flag = 1;
}

int loom_start(void (*start_fn)(loom_loop_t *loop, void *data), void *data,
               const loom_loop_opts *opts)
{
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, opts);
    if (r < 0)
        return r;
    start_fn(loop, data);
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r;
}

/* --- Foreign backends and embedding --------------------------------------------- */

/* The timeout a foreign backend arms its timer with. Unlike
 * loom__poll_timeout(), a loop with nothing keeping it alive still gets its
 * next (unref'd) timer rather than 0: the application's loop goes on running
 * and must neither spin on loom's behalf nor miss loom's timers. */
static int loom__arm_timeout(loom_loop_t *loop)
{
    if (!loom__queue_empty(&loop->pending) || !loom__queue_empty(&loop->idles) ||
        loop->closing != NULL || !loom__queue_empty(&loop->raised))
        return 0;
    int64_t t = loom__timers_next(loop);
    if (t > INT32_MAX)
        t = INT32_MAX;
    return (int)t;
}

void loom__kick(loom_loop_t *loop)
{
    if (LOOM__UNLIKELY(loop->backend->arm != NULL) && !loop->in_run && !loop->freeing)
        loop->backend->arm(loop, loom__arm_timeout(loop), loom__alive(loop));
}

void loom_backend_tick(loom_loop_t *loop)
{
    loom__update_time(loop);
    loop->stats.iterations++;
    uint64_t busy_start = loop->now_ns;
    bool was = loop->in_run;
    /* Outside loom_run() a loom_stop() only cuts the current tick short. */
    if (!was)
        loop->stop_flag = 0;
    loop->in_run = true; /* suppress re-arming while callbacks run */
    loom__run_callbacks(loop);
    loom__run_closing(loop);
    loop->in_run = was;
    loom__lag_end(loop, busy_start);
    if (!was) {
        loop->stop_flag = 0;
        loom__kick(loop);
    }
}

int loom_backend_fd(const loom_loop_t *loop)
{
    if (!(loop->backend->caps & LOOM_BACKEND_CAP_FD) || loop->backend->backend_fd == NULL)
        return LOOM_ENOTSUP;
    return loop->backend->backend_fd((loom_loop_t *)loop);
}

int loom_backend_timeout(loom_loop_t *loop)
{
    loom__update_time(loop);
    /* Changes made since the last poll (callbacks after it, calls from the
     * application's own code) must be in the kernel before the outer poller
     * sleeps on the backend fd. */
    if (loop->backend->flush != NULL && loop->backend->flush(loop) > 0)
        return 0;
    if (!loom__alive(loop))
        return -1;
    return loom__poll_timeout(loop);
}

int loom_loop_fork(loom_loop_t *loop)
{
    if (loop->backend->fork) {
        int r = loop->backend->fork(loop);
        if (r < 0)
            return r;
    }
    /* The wakeup fd is shared with the parent: make our own. */
    loom__io_deinit(loop, &loop->wakeup_io);
    close(loop->wakeup_fd);
    if (loop->wakeup_wfd != loop->wakeup_fd)
        close(loop->wakeup_wfd);
    atomic_store(&loop->wakeup_pending, false);
    pthread_mutex_init(&loop->post_lock, NULL);
    int r = loom__wakeup_open(loop);
    if (r < 0)
        return r;
    loom__work_loop_fork(loop);
    if (loop->dns_fork)
        loop->dns_fork(loop);
    if (loop->proc_fork)
        loop->proc_fork(loop);
    return loom__signal_loop_fork(loop);
}

void loom_stats(const loom_loop_t *loop, loom_stats_t *out)
{
    *out = loop->stats;
    out->posts_pending = atomic_load(&loop->post_count);
}
