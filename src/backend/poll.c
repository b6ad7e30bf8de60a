/* backend/poll.c - the portable backend, on poll(2).
 *
 * A dense pollfd array plus a parallel watcher array; each watcher's index
 * lives in a table by fd, so add, modify and remove are O(1) (remove swaps
 * the last entry into the hole). poll() itself is O(n) in the number of
 * watched fds, which is why epoll is the default on Linux. Watchers removed
 * while a batch is being dispatched are skipped by the core.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

typedef struct loom__poll {
    struct pollfd *fds;
    loom_backend_io_t **ios;
    size_t n, cap;
    int *index; /* by fd: position in fds, or -1 */
    size_t nindex;
    /* A snapshot taken for dispatch, so removals during it are safe. */
    struct pollfd *snap;
    loom_backend_io_t **snap_ios;
    size_t snap_cap;
} loom__poll;

static short loom__poll_mask(unsigned events)
{
    short m = 0;
    if (events & LOOM_READABLE)
        m |= POLLIN;
    if (events & LOOM_WRITABLE)
        m |= POLLOUT;
    return m;
}

static int loom__poll_init(loom_loop_t *loop, void *foreign)
{
    (void)loop;
    (void)foreign;
    return 0;
}

static void loom__poll_destroy(loom_loop_t *loop)
{
    loom__poll *p = loom_backend_loop_priv(loop);
    free(p->fds);
    free(p->ios);
    free(p->index);
    free(p->snap);
    free(p->snap_ios);
    memset(p, 0, sizeof *p);
}

static int loom__poll_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__poll *p = loom_backend_loop_priv(loop);
    size_t fd = (size_t)io->fd;
    if (fd >= p->nindex) {
        size_t n = p->nindex ? p->nindex : 64;
        while (n <= fd)
            n *= 2;
        int *t = realloc(p->index, n * sizeof *t);
        if (t == NULL)
            return LOOM_ENOMEM;
        for (size_t i = p->nindex; i < n; i++)
            t[i] = -1;
        p->index = t;
        p->nindex = n;
    }
    if (p->index[fd] >= 0)
        return LOOM_EEXIST;
    if (p->n == p->cap) {
        size_t c = p->cap ? p->cap * 2 : 64;
        struct pollfd *f = realloc(p->fds, c * sizeof *f);
        if (f == NULL)
            return LOOM_ENOMEM;
        p->fds = f;
        loom_backend_io_t **w = realloc(p->ios, c * sizeof *w);
        if (w == NULL)
            return LOOM_ENOMEM;
        p->ios = w;
        p->cap = c;
    }
    p->fds[p->n] = (struct pollfd){.fd = io->fd, .events = loom__poll_mask(events)};
    p->ios[p->n] = io;
    p->index[fd] = (int)p->n;
    p->n++;
    return 0;
}

static int loom__poll_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__poll *p = loom_backend_loop_priv(loop);
    int i = p->index[io->fd];
    p->fds[i].events = loom__poll_mask(events);
    return 0;
}

static void loom__poll_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__poll *p = loom_backend_loop_priv(loop);
    size_t fd = (size_t)io->fd;
    if (fd >= p->nindex || p->index[fd] < 0 || p->ios[p->index[fd]] != io)
        return;
    size_t i = (size_t)p->index[fd], last = p->n - 1;
    if (i != last) {
        p->fds[i] = p->fds[last];
        p->ios[i] = p->ios[last];
        p->index[p->fds[i].fd] = (int)i;
    }
    p->index[fd] = -1;
    p->n--;
}

static int loom__poll_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__poll *p = loom_backend_loop_priv(loop);
    int n = poll(p->fds, (nfds_t)p->n, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : loom__err(errno);
    if (n == 0)
        return 0;
    loom__update_time(loop);
    /* Dispatch from a snapshot of the ready entries: callbacks may add and
     * remove watchers, which reorders the live arrays. */
    if (p->snap_cap < (size_t)n) {
        size_t c = (size_t)n * 2;
        struct pollfd *s = realloc(p->snap, c * sizeof *s);
        if (s == NULL)
            return LOOM_ENOMEM;
        p->snap = s;
        loom_backend_io_t **w = realloc(p->snap_ios, c * sizeof *w);
        if (w == NULL)
            return LOOM_ENOMEM;
        p->snap_ios = w;
        p->snap_cap = c;
    }
    size_t k = 0;
    for (size_t i = 0; i < p->n && k < (size_t)n; i++) {
        if (p->fds[i].revents) {
            p->snap[k] = p->fds[i];
            p->snap_ios[k] = p->ios[i];
            k++;
        }
    }
    for (size_t i = 0; i < k; i++) {
        loom_backend_io_t *io = p->snap_ios[i];
        /* Skip a watcher removed (or re-added for another fd) meanwhile. */
        size_t fd = (size_t)p->snap[i].fd;
        if (fd >= p->nindex || p->index[fd] < 0 || p->ios[p->index[fd]] != io)
            continue;
        short m = p->snap[i].revents;
        unsigned ev = 0;
        if (m & (POLLIN | POLLPRI))
            ev |= LOOM_READABLE;
        if (m & POLLOUT)
            ev |= LOOM_WRITABLE;
        if (m & (POLLHUP | POLLERR | POLLNVAL))
            ev |= LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
        loom_backend_io_ready(loop, io, ev);
    }
    return (int)k;
}

const loom_backend_t loom__backend_poll = {
    .name = "poll",
    .caps = 0,
    .loop_size = sizeof(loom__poll),
    .io_size = 0,
    .init = loom__poll_init,
    .destroy = loom__poll_destroy,
    .io_add = loom__poll_add,
    .io_modify = loom__poll_modify,
    .io_remove = loom__poll_remove,
    .poll = loom__poll_poll,
    .wakeup = NULL,
    .backend_fd = NULL,
    .arm = NULL,
    .fork = NULL,
};
