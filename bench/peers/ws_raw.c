/* bench/peers/ws_raw.c - the WebSocket limit probe: one level-triggered
 * epoll loop, the handshake and the frames done by hand, no UTF-8 check, no
 * extensions (permessage-deflate is declined), no fragmented messages.
 * Nothing a library could do per message is cheaper than this, so loom's
 * figure is also shown as a fraction of this one. It speaks the bench
 * protocol of bench/ws/README.md: echo, `subscribe`, `broadcast <payload>`.
 *
 * Usage: bench-ws-raw --port P
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "../ws/ws_common.h"
#include "bench.h"

#define MAX_FDS 65536
#define MAX_MSG (1u << 20)

typedef struct {
    uint8_t *in; /* unparsed bytes kept between reads (NULL when none) */
    size_t inlen;
    uint8_t *pend; /* bytes not written yet */
    size_t plen;
    unsigned open : 1, upgraded : 1, subscribed : 1;
} conn_t;

static conn_t conns[MAX_FDS];
static int subs[MAX_FDS];
static int nsubs;
static int ep;
static uint8_t scratch[1u << 18];

static void conn_close(int fd)
{
    conn_t *c = &conns[fd];
    if (c->subscribed) {
        for (int i = 0; i < nsubs; i++)
            if (subs[i] == fd) {
                subs[i] = subs[--nsubs];
                break;
            }
    }
    free(c->in);
    free(c->pend);
    memset(c, 0, sizeof *c);
    close(fd);
}

static int conn_write(int fd, const void *buf, size_t len)
{
    conn_t *c = &conns[fd];
    size_t done = 0;
    if (c->plen == 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return -1;
        done = n < 0 ? 0 : (size_t)n;
    }
    if (done < len) {
        uint8_t *p = realloc(c->pend, c->plen + len - done);
        if (!p)
            return -1;
        memcpy(p + c->plen, (const uint8_t *)buf + done, len - done);
        c->pend = p;
        c->plen += len - done;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int conn_flush(int fd)
{
    conn_t *c = &conns[fd];
    ssize_t n = send(fd, c->pend, c->plen, MSG_NOSIGNAL);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    memmove(c->pend, c->pend + n, c->plen - (size_t)n);
    c->plen -= (size_t)n;
    if (c->plen == 0) {
        free(c->pend);
        c->pend = NULL;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
    return 0;
}

static int send_msg(int fd, int opcode, const uint8_t *p, size_t len)
{
    uint8_t frame[14 + 256];
    size_t h = ws_frame_header(frame, opcode, 0, len, NULL);
    if (len <= 256) {
        memcpy(frame + h, p, len);
        return conn_write(fd, frame, h + len);
    }
    if (conn_write(fd, frame, h) != 0)
        return -1;
    return conn_write(fd, p, len);
}

/* Returns bytes consumed, or -1 to close. */
static long handshake(int fd, uint8_t *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > 8192 ? -1 : 0;
    size_t hlen = (size_t)(end - (const char *)buf) + 4;
    size_t klen;
    const char *key = ws_header((const char *)buf, hlen, "Sec-WebSocket-Key", &klen);
    if (!key)
        return -1;
    char acc[29], resp[256];
    ws_accept_for(key, klen, acc);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    if (conn_write(fd, resp, (size_t)n) != 0)
        return -1;
    conns[fd].upgraded = 1;
    return (long)hlen;
}

static int on_message(int fd, int opcode, uint8_t *p, size_t len)
{
    conn_t *c = &conns[fd];
    if (opcode == 1 && len == 9 && memcmp(p, "subscribe", 9) == 0) {
        if (!c->subscribed) {
            c->subscribed = 1;
            subs[nsubs++] = fd;
        }
        return send_msg(fd, 1, (const uint8_t *)"subscribed", 10);
    }
    if (opcode == 1 && len >= 10 && memcmp(p, "broadcast ", 10) == 0) {
        /* Framed once, written to every subscriber. */
        uint8_t frame[14 + 1024];
        size_t plen = len - 10;
        if (plen > 1024)
            return -1;
        size_t h = ws_frame_header(frame, 1, 0, plen, NULL);
        memcpy(frame + h, p + 10, plen);
        for (int i = 0; i < nsubs;) {
            int s = subs[i];
            if (conn_write(s, frame, h + plen) != 0 && s != fd) {
                conn_close(s); /* takes it out of subs: same index again */
                continue;
            }
            i++;
        }
        return 0;
    }
    return send_msg(fd, opcode, p, len);
}

#include "ws_raw_frames.h"

static void on_readable(int fd)
{
    conn_t *c = &conns[fd];
    for (;;) {
        uint8_t *buf;
        size_t len, cap;
        if (c->inlen) {
            cap = c->inlen + sizeof scratch;
            uint8_t *p = realloc(c->in, cap);
            if (!p) {
                conn_close(fd);
                return;
            }
            c->in = p;
            buf = p;
            len = c->inlen;
        } else {
            buf = scratch;
            cap = sizeof scratch;
            len = 0;
        }
        size_t room = cap - len;
        ssize_t n = recv(fd, buf + len, room, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(fd);
            return;
        }
        if (n < 0) {
            if (c->inlen) { /* keep it, without the spare room */
                c->in = realloc(c->in, c->inlen);
            }
            return;
        }
        len += (size_t)n;
        size_t off = 0;
        if (!c->upgraded) {
            long k = handshake(fd, buf, len);
            if (k < 0) {
                conn_close(fd);
                return;
            }
            off = (size_t)k;
        }
        if (c->upgraded && off < len) {
            long k = frames(fd, buf + off, len - off);
            if (k < 0 || !conns[fd].open) {
                if (conns[fd].open)
                    conn_close(fd);
                return;
            }
            off += (size_t)k;
        }
        if (off == len) {
            free(c->in);
            c->in = NULL;
            c->inlen = 0;
        } else if (buf == scratch) {
            c->in = malloc(len - off);
            if (!c->in) {
                conn_close(fd);
                return;
            }
            memcpy(c->in, buf + off, len - off);
            c->inlen = len - off;
        } else {
            memmove(c->in, c->in + off, len - off);
            c->inlen = len - off;
        }
        if ((size_t)n < room) /* a short read: the socket is drained */
            return;
    }
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    int lfd = bench_listen(port, 0, SOCK_NONBLOCK);
    if (port <= 0 || lfd < 0) {
        fprintf(stderr, "usage: bench-ws-raw --port P\n");
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (c < 0)
                        break;
                    if (c >= MAX_FDS) {
                        close(c);
                        continue;
                    }
                    conns[c].open = 1;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            if (!conns[fd].open)
                continue;
            if (evs[i].events & EPOLLOUT) {
                if (conn_flush(fd) != 0) {
                    conn_close(fd);
                    continue;
                }
            }
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(fd);
        }
    }
}
