/* backend/mirror.h - a pollable fd for foreign backends whose library has
 * none to offer (libevent, libev): an epoll set that mirrors the backend's
 * watchers. It exists only once loom_backend_fd() has been asked for, so a
 * loop that is never embedded pays nothing; after that every watcher change
 * costs one more epoll_ctl. Level-triggered: the set stays readable while a
 * watched fd is ready, until loom_run(NOWAIT) has dispatched it.
 */
#ifndef LOOM_BACKEND_MIRROR_H
#define LOOM_BACKEND_MIRROR_H

#include <errno.h>
#include <unistd.h>

#include "core/internal.h"
#if LOOM_HAVE_EPOLL
#include <sys/epoll.h>
#endif

typedef struct loom__mirror {
    int fd; /* -1 until asked for */
} loom__mirror;

static inline void loom__mirror_init(loom__mirror *m)
{
    m->fd = -1;
}

/* Mirrors `events` (0: not watched) of fd. Failures only make the outer
 * poller wake less precisely, so they are ignored. */
static inline void loom__mirror_set(loom__mirror *m, int fd, unsigned old_events, unsigned events)
{
#if LOOM_HAVE_EPOLL
    if (m->fd < 0)
        return;
    struct epoll_event e = {.events = 0, .data.fd = fd};
    if (events & LOOM_READABLE)
        e.events |= EPOLLIN | EPOLLRDHUP;
    if (events & LOOM_WRITABLE)
        e.events |= EPOLLOUT;
    if (events == 0)
        (void)epoll_ctl(m->fd, EPOLL_CTL_DEL, fd, &e);
    else if (epoll_ctl(m->fd, old_events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) < 0)
        (void)epoll_ctl(m->fd, old_events ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e);
#else
    (void)m;
    (void)fd;
    (void)old_events;
    (void)events;
#endif
}

/* Creates the set; the caller then adds its current watchers. Returns 0 or
 * a LOOM_E* code (LOOM_ENOTSUP without epoll). */
static inline int loom__mirror_open(loom__mirror *m)
{
#if LOOM_HAVE_EPOLL
    if (m->fd >= 0)
        return 0;
    m->fd = epoll_create1(EPOLL_CLOEXEC);
    return m->fd < 0 ? loom_err_from_errno(errno) : 0;
#else
    (void)m;
    return LOOM_ENOTSUP;
#endif
}

static inline void loom__mirror_close(loom__mirror *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}

#endif
