/* net/socket_write.c - the socket's write side: the write queue, the one
 * path by which bytes leave for the fd (loom__socket_send(), reached through
 * loom__socket_out()), the one write-side shutdown (loom__socket_shut_wr()),
 * and the deferred work of the queue's pending node (flush, on_write, send
 * errors, the transport's held bytes).
 *
 * Writes are tried at once with one sendmsg() when nothing is queued; only
 * the unsent remainder is queued (copying writes copy only that). Queued
 * writes are gathered into one sendmsg() of up to 64 buffers per
 * writability event, and the socket watches for writability only while
 * something is queued. on_write and on_drain run from the loop, never inside
 * a write call: when a write completes inside the call they are deferred to
 * the pending phase through the write queue's pending node. A class's
 * transport (cls->tr) sees the application's bytes first and hands what is
 * to be sent to loom__socket_out(); plain sockets go there directly.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "net/net_internal.h"

#define LOOM__IOV_BATCH  64
#define LOOM__COPY_CHUNK 4096

static void loom__wq_run(loom__pending *p);

static loom__wq *loom__wq_get(loom_socket_t *s)
{
    if (s->wq)
        return s->wq;
    loom__wq *wq = loom__slab_alloc(&((loom__net *)s->h.loop->net)->wq_slab);
    if (wq == NULL)
        return NULL;
    wq->sock = s;
    wq->pend.fn = loom__wq_run;
    s->wq = wq;
    return wq;
}

static void loom__wq_maybe_free(loom_socket_t *s)
{
    loom__wq *wq = s->wq;
    if (wq && wq->bytes == 0 && wq->todo == 0 && !wq->queued) {
        loom__wclock_stop(wq);
        s->wq = NULL;
        loom__slab_free(&((loom__net *)s->h.loop->net)->wq_slab, wq);
    }
}

static void loom__wreq_free(loom__net *net, loom__wreq *w)
{
    if (w->cap)
        free(w);
    else
        loom__slab_free(&net->ref_slab, w);
}

/* Frees a detached list of requests, running release callbacks. */
static void loom__wreq_release(loom__net *net, loom__wreq *w)
{
    while (w) {
        loom__wreq *next = w->next;
        loom_release_cb rel = w->release;
        const void *buf = w->buf;
        size_t len = w->buflen;
        void *rdata = w->rdata;
        loom__wreq_free(net, w);
        if (rel)
            rel(buf, len, rdata);
        w = next;
    }
}

void loom__wq_destroy(loom_socket_t *s)
{
    loom__wq *wq = s->wq;
    loom__net *net = s->h.loop->net;
    s->wq = NULL;
    loom__wclock_stop(wq);
    loom__pending_cancel(&wq->pend);
    loom__wreq *list = wq->head;
    loom__slab_free(&net->wq_slab, wq);
    loom__wreq_release(net, list);
}

void loom__wq_schedule(loom_socket_t *s, unsigned what)
{
    loom__wq *wq = loom__wq_get(s);
    if (wq == NULL)
        return; /* out of memory: the notification is lost, nothing else */
    wq->todo |= what;
    if (!wq->queued) {
        wq->queued = true;
        loom__pending_queue(s->h.loop, &wq->pend);
    }
}

static void loom__wq_append(loom__wq *wq, loom__wreq *w)
{
    w->next = NULL;
    if (wq->tail)
        wq->tail->next = w;
    else
        wq->head = w;
    wq->tail = w;
    wq->bytes += w->len;
    wq->app += w->app;
}

/* Queues a copy of the iovecs, skipping their first `skip` bytes. Small
 * copies are appended to the last copy request while it has room. */
static int loom__wq_push_copy(loom_socket_t *s, const struct iovec *iov, int n, size_t skip,
                              size_t total, size_t app)
{
    loom__wq *wq = loom__wq_get(s);
    if (wq == NULL)
        return LOOM_ENOMEM;
    size_t rem = total - skip;
    loom__wreq *t = wq->tail;
    char *dst;
    if (t && t->cap && (size_t)(t->data + t->cap - (t->base + t->len)) >= rem) {
        dst = (char *)t->base + t->len;
        t->len += rem;
        t->app += app;
        wq->bytes += rem;
        wq->app += app; /* as loom__wq_append() counts a new request */
    } else {
        size_t cap = rem < LOOM__COPY_CHUNK ? LOOM__COPY_CHUNK : rem;
        if (cap > SIZE_MAX - sizeof(loom__wreq))
            return LOOM_ENOMEM;
        loom__wreq *w = malloc(sizeof *w + cap);
        if (w == NULL)
            return LOOM_ENOMEM;
        memset(w, 0, sizeof *w);
        w->cap = cap;
        w->base = w->data;
        w->len = rem;
        w->app = app;
        dst = w->data;
        loom__wq_append(wq, w);
    }
    for (int i = 0; i < n; i++) {
        size_t l = iov[i].iov_len;
        const char *src = iov[i].iov_base;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(dst, src + skip, l - skip);
        dst += l - skip;
        skip = 0;
    }
    return 0;
}

static int loom__wq_push_ref(loom_socket_t *s, const void *buf, size_t len, size_t skip,
                             loom_release_cb release, void *rdata, size_t app)
{
    loom__wq *wq = loom__wq_get(s);
    if (wq == NULL)
        return LOOM_ENOMEM;
    loom__wreq *w = loom__slab_alloc(&((loom__net *)s->h.loop->net)->ref_slab);
    if (w == NULL)
        return LOOM_ENOMEM;
    w->base = (const char *)buf + skip;
    w->len = len - skip;
    w->release = release;
    w->rdata = rdata;
    w->buf = buf;
    w->buflen = len;
    w->app = app;
    loom__wq_append(wq, w);
    return 0;
}

static uint32_t loom__high_water(const loom__sock_class *cls)
{
    return cls->high_water ? cls->high_water : LOOM__HIGH_WATER;
}

static uint32_t loom__low_water(const loom__sock_class *cls)
{
    if (cls->high_water == 0 && cls->low_water == 0)
        return LOOM__HIGH_WATER / 4;
    return cls->low_water;
}

/* After queueing: watch for writability, start the write clock, report high
 * water. */
static int loom__socket_queued_more(loom_socket_t *s)
{
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if (loom__wq_app(s) >= loom__high_water(s->cls)) {
        s->h.flags |= LOOM__S_HIGH;
        return 1;
    }
    return 0;
}

static inline bool loom__socket_can_send(loom_socket_t *s, size_t app)
{
    return s->io.bio.fd >= 0 && !(s->h.flags & LOOM__S_CONNECTING) &&
           (s->wq == NULL || s->wq->bytes == 0) && loom__socket_may_write(s, app);
}

/* The one place bytes leave for the fd: one sendmsg() (retried on EINTR),
 * counted in the loop's stats. Returns the bytes sent, 0 if the kernel
 * takes none now, or a LOOM_E* code. */
/* A stream that is not a socket (a pipe, a terminal) has no MSG_NOSIGNAL:
 * SIGPIPE is blocked on this thread around the writev(), and the one it
 * raised (a pipe whose reader is gone) is taken back before the mask is
 * restored, so the application sees EPIPE and the process lives on. Costs
 * three system calls more than a socket write; pipes are rarely the hot
 * path, and reads from them pay nothing. */
static ssize_t loom__stream_writev(int fd, const struct iovec *iov, int n)
{
    sigset_t pipe_set, old, pend;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    bool was_pending = sigpending(&pend) == 0 && sigismember(&pend, SIGPIPE);
    ssize_t r;
    do
        r = writev(fd, iov, n);
    while (r < 0 && errno == EINTR);
    int e = errno;
    if (r < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

static ssize_t loom__socket_send(loom_socket_t *s, const struct iovec *iov, int n)
{
    struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
    ssize_t r;
    if (LOOM__UNLIKELY(s->cls->stream))
        r = loom__stream_writev(s->io.bio.fd, iov, n);
    else
        do
            r = sendmsg(s->io.bio.fd, &msg, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
    if (r > 0) {
        s->h.loop->stats.bytes_written += (uint64_t)r;
        return r;
    }
    if (r == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        return 0;
    return loom__err(errno);
}

int loom__socket_out(loom_socket_t *s, const struct iovec *iov, int n, size_t total, bool ref,
                     loom_release_cb release, void *rdata, size_t app)
{
    size_t sent = 0;
    if (loom__socket_can_send(s, app)) {
        ssize_t r = loom__socket_send(s, iov, n > IOV_MAX ? IOV_MAX : n);
        if (r > 0) {
            sent = (size_t)r;
            loom__socket_touch(s);
        } else if (r < 0) {
            /* Reported from the loop, not from inside this call. */
            if (ref && release)
                release(iov[0].iov_base, total, rdata);
            loom__wq_schedule(s, LOOM__WQ_ERROR);
            if (s->wq)
                s->wq->error = (int)r;
            return 0;
        }
        if (sent == total) {
            if (ref && release)
                release(iov[0].iov_base, total, rdata);
            if (s->cls->on_write)
                loom__wq_schedule(s, LOOM__WQ_WRITE);
            return 0;
        }
    }
    /* Behind a transport the application bytes count until the last of
     * their wire bytes is sent (a partial send leaves them all queued). */
    int r = ref ? loom__wq_push_ref(s, iov[0].iov_base, total, sent, release, rdata, app)
                : loom__wq_push_copy(s, iov, n, sent, total, app);
    if (r < 0) {
        /* Part may be gone already: the stream would be corrupt. */
        if (sent)
            loom__socket_close_now(s, true);
        return r;
    }
    return loom__socket_queued_more(s);
}

/* The common write path. `ref`: zero-copy of one buffer (iov[0]). */
static int loom__socket_write_common(loom_socket_t *s, const struct iovec *iov, int n, bool ref,
                                     loom_release_cb release, void *rdata)
{
    if (LOOM__UNLIKELY(s == NULL || loom__socket_dead(s)))
        return LOOM_ECLOSED;
    if (LOOM__UNLIKELY(s->h.flags & (LOOM__S_SHUT | LOOM__S_SHUT_DONE)))
        return LOOM_EPIPE;
    if (LOOM__UNLIKELY(n < 0 || (n > 0 && iov == NULL)))
        return LOOM_EINVAL;
    /* No write can be longer than SSIZE_MAX (sendmsg's limit); checking
     * each addend also keeps the sum from wrapping around. */
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (LOOM__UNLIKELY(iov[i].iov_len > (size_t)SSIZE_MAX - total))
            return LOOM_EINVAL;
        total += iov[i].iov_len;
    }
    if (total == 0) {
        if (ref && release)
            release(iov[0].iov_base, 0, rdata);
        return 0;
    }
    if (s->cls->tr)
        return s->cls->tr->write(s, iov, n, ref ? release : NULL, rdata);
    return loom__socket_out(s, iov, n, total, ref, release, rdata, total);
}

int loom_socket_write(loom_socket_t *s, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return loom__socket_write_common(s, &iov, 1, false, NULL, NULL);
}

int loom_socket_writev(loom_socket_t *s, const struct iovec *iov, int iovcnt)
{
    return loom__socket_write_common(s, iov, iovcnt, false, NULL, NULL);
}

int loom_socket_write_ref(loom_socket_t *s, const void *buf, size_t len, loom_release_cb release,
                          void *rdata)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return loom__socket_write_common(s, &iov, 1, true, release, rdata);
}

void loom__socket_shut_wr(loom_socket_t *s)
{
    uint32_t f = s->h.flags;
    if (!(f & LOOM__S_SHUT) || (f & LOOM__S_SHUT_DONE))
        return;
    if (s->cls->tr && s->cls->tr->shutdown) {
        if (s->cls->tr->shutdown(s) != 0)
            return; /* again after its handshake (loom__socket_ready) */
        if ((s->h.flags & LOOM__H_CLOSING) || (s->wq && s->wq->bytes))
            return; /* again once its bytes are sent (loom__socket_flush) */
    }
    if (!s->cls->stream)
        shutdown(s->io.bio.fd, SHUT_WR);
    s->h.flags |= LOOM__S_SHUT_DONE;
}

/* See net_internal.h. */
int loom__socket_flush(loom_socket_t *s)
{
    loom_loop_t *loop = s->h.loop;
    loom__net *net = loop->net;
    loom__wq *wq = s->wq;
    loom__wreq *done = NULL, **donep = &done;
    size_t sent_total = 0;
    int err = 0;
    for (int round = 0; round < 4 && wq->head; round++) {
        struct iovec iov[LOOM__IOV_BATCH];
        int n = 0;
        size_t want = 0;
        for (loom__wreq *w = wq->head; w && n < LOOM__IOV_BATCH; w = w->next, n++) {
            iov[n].iov_base = (void *)w->base;
            iov[n].iov_len = w->len;
            want += w->len;
        }
        ssize_t r = loom__socket_send(s, iov, n);
        if (r <= 0) {
            err = (int)r;
            break;
        }
        size_t left = (size_t)r;
        sent_total += left;
        wq->bytes -= left;
        while (left) {
            loom__wreq *w = wq->head;
            if (left >= w->len) {
                left -= w->len;
                wq->head = w->next;
                if (wq->head == NULL)
                    wq->tail = NULL;
                wq->app -= w->app;
                w->next = NULL;
                *donep = w;
                donep = &w->next;
            } else {
                w->base += left;
                w->len -= left;
                left = 0;
            }
        }
        if ((size_t)r < want)
            break;
    }
    if (sent_total) {
        loom__wclock_update(s, true);
        loom__socket_touch(s);
    }
    /* Release callbacks are the application's code: run them once the
     * queue is consistent, then look again at what state they left. */
    if (done)
        loom__wreq_release(net, done);
    if (s->h.flags & LOOM__H_CLOSING)
        return -1;
    if (err) {
        if (s->h.flags & LOOM__S_FLUSHING)
            loom__socket_close_now(s, false);
        else
            loom__socket_fail(s, err);
        return -1;
    }
    wq = s->wq;
    uint32_t f = s->h.flags;
    bool drained = wq == NULL || wq->bytes == 0;
    if (drained && (f & LOOM__S_SHUT) && !(f & LOOM__S_SHUT_DONE)) {
        loom__socket_shut_wr(s);
        if (s->h.flags & LOOM__H_CLOSING)
            return -1;
        wq = s->wq;
        drained = wq == NULL || wq->bytes == 0;
    }
    if (drained && (f & LOOM__S_FLUSHING)) {
        loom__socket_close_now(s, false);
        return -1;
    }
    loom__socket_update_io(s);
    loom__socket_touch(s);
    if ((f & LOOM__S_HIGH) && (drained || loom__wq_app(s) <= loom__low_water(s->cls))) {
        s->h.flags &= ~LOOM__S_HIGH;
        if (s->cls->on_drain) {
            loom__socket_call(s, s->cls->on_drain);
            if (loom__socket_dead(s))
                return -1;
        }
    }
    if (drained && sent_total && s->cls->on_write) {
        loom__socket_call(s, s->cls->on_write);
        if (loom__socket_dead(s))
            return -1;
    }
    loom__wq_maybe_free(s);
    return 0;
}

/* The write queue's pending callback: deferred flush, error and callbacks. */
static void loom__wq_run(loom__pending *p)
{
    loom__wq *wq = LOOM__CONTAINER_OF(p, loom__wq, pend);
    loom_socket_t *s = wq->sock;
    unsigned todo = wq->todo;
    wq->todo = 0;
    wq->queued = false;
    if (loom__socket_dead(s)) {
        /* A graceful close in progress: it goes on flushing, unless the
         * socket failed (no event: it is closed for the user). */
        if (s->h.flags & LOOM__H_CLOSING)
            return;
        if (todo & LOOM__WQ_ERROR)
            loom__socket_close_now(s, false);
        else if ((todo & LOOM__WQ_FLUSH) && s->io.bio.fd >= 0 && wq->bytes)
            loom__socket_flush(s);
        return;
    }
    if (todo & LOOM__WQ_ERROR) {
        loom__socket_fail(s, wq->error);
        return;
    }
    if ((todo & LOOM__WQ_FLUSH) && wq->bytes && s->io.bio.fd >= 0 &&
        !(s->h.flags & LOOM__S_CONNECTING) && loom__socket_may_write(s, 0)) {
        if (loom__socket_flush(s) < 0)
            return;
    }
    if (todo & LOOM__WQ_WRITE) {
        if ((s->wq == NULL || s->wq->bytes == 0) && s->cls->on_write) {
            loom__socket_call(s, s->cls->on_write);
            if (loom__socket_dead(s))
                return;
        }
    }
    if (todo & LOOM__WQ_HELD) {
        /* Last: the hook may run on_connect, which may flush and free wq. */
        s->cls->tr->pending(s);
        if (loom__socket_dead(s))
            return;
    }
    loom__wq_maybe_free(s);
}

int loom_socket_shutdown(loom_socket_t *s)
{
    if (s == NULL || loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (s->h.flags & LOOM__S_CONNECTING)
        return LOOM_ENOTCONN;
    if (s->h.flags & (LOOM__S_SHUT | LOOM__S_SHUT_DONE))
        return 0;
    s->h.flags |= LOOM__S_SHUT;
    if (s->wq == NULL || s->wq->bytes == 0)
        loom__socket_shut_wr(s);
    return 0;
}
