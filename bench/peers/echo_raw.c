/* bench/peers/echo_raw.c - the echo limit probe: a bare level-triggered
 * epoll loop that reads into one scratch buffer and writes the bytes back.
 * Nothing a library could do is cheaper than this per message, so loom's
 * figure is also shown as a fraction of this one.
 *
 * Usage: bench-echo-raw --port P [--reuseport]
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

/* Bytes that could not be written yet; only a peer that stops reading ever
 * leaves some, and while there are some the connection stops reading. */
typedef struct {
    char *pend;
    size_t len;
} conn_t;

static conn_t *conns;
static int ep;

static void conn_close(int fd)
{
    free(conns[fd].pend);
    conns[fd].pend = NULL;
    conns[fd].len = 0;
    close(fd);
}

static int conn_flush(int fd)
{
    conn_t *c = &conns[fd];
    ssize_t n = send(fd, c->pend, c->len, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    memmove(c->pend, c->pend + n, c->len - (size_t)n);
    c->len -= (size_t)n;
    if (c->len == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int conn_write(int fd, const char *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN)
            return -1;
        n = 0;
    }
    if ((size_t)n < len) {
        conn_t *c = &conns[fd];
        c->pend = malloc(len - (size_t)n);
        if (!c->pend)
            return -1;
        memcpy(c->pend, buf + n, len - (size_t)n);
        c->len = len - (size_t)n;
        struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    long maxfd = bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    int lfd = bench_listen(port, bench_flag(argc, argv, "--reuseport"), SOCK_NONBLOCK);
    if (lfd < 0 || maxfd <= 0)
        return 1;
    conns = calloc((size_t)maxfd + 16, sizeof *conns);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    static char buf[65536];
    struct epoll_event evs[512];
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (cfd >= maxfd) {
                        close(cfd);
                        continue;
                    }
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(fd) != 0)
                    conn_close(fd);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r == 0 || (r < 0 && errno != EAGAIN)) {
                conn_close(fd);
                continue;
            }
            if (r > 0 && conn_write(fd, buf, (size_t)r) != 0)
                conn_close(fd);
        }
    }
}
