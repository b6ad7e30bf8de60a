/* backend/epoll.c - the Linux default backend.
 *
 * Level-triggered epoll. The per-loop table `ios`, indexed by fd, lets the
 * child of a fork() re-register every watcher on a fresh epoll instance (8
 * bytes per fd, the same trade libuv makes). A watcher removed earlier in a
 * batch is skipped by the core (its callback pointer is cleared), and its
 * memory is freed only after the batch, at the end of the iteration.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/internal.h"

#define LOOM__EPOLL_BATCH 256

typedef struct loom__epoll {
    int epfd;
    loom_backend_io_t **ios; /* by fd */
    size_t nios;
    struct epoll_event events[LOOM__EPOLL_BATCH];
} loom__epoll;

static uint32_t loom__epoll_mask(unsigned events)
{
    uint32_t m = 0;
    if (events & LOOM_READABLE)
        m |= EPOLLIN | EPOLLRDHUP;
    if (events & LOOM_WRITABLE)
        m |= EPOLLOUT;
    return m;
}

static int loom__epoll_init(loom_loop_t *loop, void *foreign)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0)
        return loom__err(errno);
    (void)foreign;
    return 0;
}

static void loom__epoll_destroy(loom_loop_t *loop)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    if (ep->epfd >= 0)
        close(ep->epfd);
    ep->epfd = -1;
    free(ep->ios);
    ep->ios = NULL;
}

static int loom__epoll_track(loom__epoll *ep, loom_backend_io_t *io)
{
    size_t fd = (size_t)io->fd;
    loom_backend_io_t **t = loom__fd_table_fit(ep->ios, &ep->nios, sizeof *t, fd);
    if (t == NULL)
        return LOOM_ENOMEM;
    ep->ios = t;
    ep->ios[fd] = io;
    return 0;
}

static int loom__epoll_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    int r = loom__epoll_track(ep, io);
    if (r < 0)
        return r;
    struct epoll_event e = {.events = loom__epoll_mask(events), .data.ptr = io};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, io->fd, &e) < 0) {
        if (errno != EEXIST || epoll_ctl(ep->epfd, EPOLL_CTL_MOD, io->fd, &e) < 0) {
            ep->ios[io->fd] = NULL;
            return loom__err(errno);
        }
    }
    return 0;
}

static int loom__epoll_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    struct epoll_event e = {.events = loom__epoll_mask(events), .data.ptr = io};
    if (epoll_ctl(ep->epfd, EPOLL_CTL_MOD, io->fd, &e) < 0)
        return loom__err(errno);
    return 0;
}

static void loom__epoll_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    struct epoll_event e = {0};
    /* May fail when the fd is already closed; the kernel then dropped it. */
    (void)epoll_ctl(ep->epfd, EPOLL_CTL_DEL, io->fd, &e);
    if ((size_t)io->fd < ep->nios && ep->ios[io->fd] == io)
        ep->ios[io->fd] = NULL;
}

static int loom__epoll_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    int n = epoll_wait(ep->epfd, ep->events, LOOM__EPOLL_BATCH, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : loom__err(errno);
    if (n > 0)
        loom__update_time(loop);
    for (int i = 0; i < n; i++) {
        uint32_t m = ep->events[i].events;
        unsigned ev = 0;
        if (m & (EPOLLIN | EPOLLRDHUP | EPOLLPRI))
            ev |= LOOM_READABLE;
        if (m & EPOLLOUT)
            ev |= LOOM_WRITABLE;
        if (m & (EPOLLHUP | EPOLLERR))
            ev |= LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
        loom_backend_io_ready(loop, ep->events[i].data.ptr, ev);
    }
    return n;
}

static int loom__epoll_fd(loom_loop_t *loop)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    return ep->epfd;
}

static int loom__epoll_fork(loom_loop_t *loop)
{
    loom__epoll *ep = loom_backend_loop_priv(loop);
    close(ep->epfd);
    ep->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (ep->epfd < 0)
        return loom__err(errno);
    for (size_t fd = 0; fd < ep->nios; fd++) {
        loom_backend_io_t *io = ep->ios[fd];
        if (io == NULL || io->events == 0)
            continue;
        struct epoll_event e = {.events = loom__epoll_mask(io->events), .data.ptr = io};
        if (epoll_ctl(ep->epfd, EPOLL_CTL_ADD, io->fd, &e) < 0)
            return loom__err(errno);
    }
    return 0;
}

const loom_backend_t loom__backend_epoll = {
    .name = "epoll",
    .caps = LOOM_BACKEND_CAP_FD,
    .loop_size = sizeof(loom__epoll),
    .io_size = 0,
    .init = loom__epoll_init,
    .destroy = loom__epoll_destroy,
    .io_add = loom__epoll_add,
    .io_modify = loom__epoll_modify,
    .io_remove = loom__epoll_remove,
    .poll = loom__epoll_poll,
    .wakeup = NULL,
    .backend_fd = loom__epoll_fd,
    .arm = NULL,
    .fork = loom__epoll_fork,
};
