/* bench/peers/http_raw.c - the HTTP limit probe: a bare level-triggered
 * epoll loop that does not parse HTTP at all. It counts the CRLFCRLF that end
 * request heads (bodies are not supported) and answers each with the fixed
 * response, all the answers to one read gathered into one send().
 *
 * With --delay S it plays cl-async's benchmark server instead: after the
 * first request on a connection it waits S seconds, answers, and closes.
 * Connections wait in one FIFO (every delay is the same, so the FIFO is in
 * deadline order) and epoll_wait() sleeps until the oldest is due.
 *
 * Usage: bench-http-raw --port P [--reuseport] [--delay S]
 */
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

static const char response[] = BENCH_HTTP_RESPONSE;
#define RESPONSE_LEN (sizeof response - 1)
#define BATCH        64 /* responses per send() */

typedef struct {
    char *pend; /* unsent bytes; while there are some, reading stops */
    size_t len;
    uint8_t match;     /* how many bytes of "\r\n\r\n" the stream ends with */
    uint64_t deadline; /* --delay mode: when to answer, in ns */
} conn_t;

static conn_t *conns;
static int ep;
static char batch[BATCH * RESPONSE_LEN];

static void conn_close(int fd)
{
    free(conns[fd].pend);
    memset(&conns[fd], 0, sizeof conns[fd]);
    close(fd);
}

/* Sends len bytes; what does not fit is kept in pend. Returns -1 on error. */
static int conn_send(int fd, const char *buf, size_t len)
{
    conn_t *c = &conns[fd];
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN)
            return -1;
        n = 0;
    }
    size_t rest = len - (size_t)n;
    if (rest == 0)
        return 0;
    char *p = realloc(c->pend, c->len + rest);
    if (!p)
        return -1;
    memcpy(p + c->len, buf + n, rest);
    c->pend = p;
    c->len += rest;
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    return 0;
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

/* Counts the request heads that end in buf[0..n), carrying the partial
 * match across reads. */
static size_t count_heads(conn_t *c, const char *buf, size_t n)
{
    static const char end[4] = {'\r', '\n', '\r', '\n'};
    size_t count = 0;
    uint8_t m = c->match;
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == end[m]) {
            if (++m == 4) {
                count++;
                m = 0;
            }
        } else {
            m = ch == '\r' ? 1 : 0;
        }
    }
    c->match = m;
    return count;
}

static int answer(int fd, size_t count)
{
    while (count > 0) {
        size_t k = count < BATCH ? count : BATCH;
        if (conn_send(fd, batch, k * RESPONSE_LEN) != 0)
            return -1;
        count -= k;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    double delay_s = bench_arg_double(argc, argv, "--delay", 0);
    uint64_t delay_ns = (uint64_t)(delay_s * 1e9);
    long maxfd = bench_raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    int lfd = bench_listen(port, bench_flag(argc, argv, "--reuseport"), SOCK_NONBLOCK);
    if (lfd < 0 || maxfd <= 0)
        return 1;
    for (int i = 0; i < BATCH; i++)
        memcpy(batch + (size_t)i * RESPONSE_LEN, response, RESPONSE_LEN);
    conns = calloc((size_t)maxfd + 16, sizeof *conns);
    /* --delay mode: a ring of fds waiting for their answer. */
    size_t qcap = (size_t)maxfd + 16, qhead = 0, qlen = 0;
    int *queue = calloc(qcap, sizeof *queue);
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);
    static char buf[65536];
    struct epoll_event evs[512];
    for (;;) {
        int timeout = -1;
        if (qlen > 0) {
            uint64_t now = bench_now_ns(), due = conns[queue[qhead]].deadline;
            timeout = due > now ? (int)((due - now) / 1000000u) + 1 : 0;
        }
        int n = epoll_wait(ep, evs, 512, timeout);
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
            if (r < 0)
                continue;
            size_t heads = count_heads(&conns[fd], buf, (size_t)r);
            if (heads == 0)
                continue;
            if (delay_ns == 0) {
                if (answer(fd, heads) != 0)
                    conn_close(fd);
                continue;
            }
            /* Delay mode: stop watching the connection until it is due. */
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            conns[fd].deadline = bench_now_ns() + delay_ns;
            queue[(qhead + qlen++) % qcap] = fd;
        }
        if (qlen > 0) {
            uint64_t now = bench_now_ns();
            while (qlen > 0 && conns[queue[qhead]].deadline <= now) {
                int fd = queue[qhead];
                qhead = (qhead + 1) % qcap;
                qlen--;
                send(fd, response, RESPONSE_LEN, MSG_NOSIGNAL);
                conn_close(fd);
            }
        }
    }
}
