/* bench/memory/mem_load.c - opens N keep-alive connections to an HTTP server,
 * sends one request on each and reads its response, then holds them all idle
 * so that the harness can read the server's RSS. Connects are non-blocking,
 * at most --inflight at a time (so the server's accept queue never
 * overflows), and the whole ramp is bounded by --timeout.
 *
 * Usage: bench-mem-load --port P [--conns 15000] [--inflight 256]
 *                       [--timeout 30] [--src-net N]
 * When the ramp is over it prints {"ok":N,"failed":F,"seconds":S} and waits
 * until stdin reaches EOF (the harness closes it), then resets every
 * connection (SO_LINGER 0, so no TIME_WAIT is left behind) and exits.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

enum { C_FREE, C_CONNECTING, C_READING, C_IDLE };

typedef struct {
    uint8_t state;
    uint16_t len;   /* bytes of the response so far (only the head is kept) */
    int head_end;   /* offset after CRLFCRLF, or -1 */
    long body;      /* Content-Length */
    char head[512]; /* the response head, for Content-Length */
} conn_t;

static void conn_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Returns 1 when the response is complete. */
static int response_feed(conn_t *c, const char *p, size_t n)
{
    size_t room = sizeof c->head - 1 - c->len;
    size_t keep = n < room ? n : room;
    memcpy(c->head + c->len, p, keep);
    if (c->head_end < 0) {
        c->head[c->len + keep] = 0;
        char *e = strstr(c->head, "\r\n\r\n");
        if (e) {
            c->head_end = (int)(e + 4 - c->head);
            c->body = 0;
            for (char *h = c->head; h < e; h++)
                if ((*h == 'C' || *h == 'c') && strncasecmp(h, "content-length:", 15) == 0)
                    c->body = strtol(h + 15, NULL, 10);
        }
    }
    c->len = (uint16_t)(c->len + keep);
    size_t total = c->len + (n - keep); /* bytes beyond the kept ones count too */
    return c->head_end >= 0 && total >= (size_t)c->head_end + (size_t)c->body;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    long want = bench_arg_long(argc, argv, "--conns", 15000);
    long inflight_max = bench_arg_long(argc, argv, "--inflight", 256);
    double timeout = bench_arg_double(argc, argv, "--timeout", 30);
    int src_net = (int)bench_arg_long(argc, argv, "--src-net", 1);
    unsigned turn = 0;
    signal(SIGPIPE, SIG_IGN);
    long maxfd = bench_raise_nofile();
    if (port <= 0 || want < 1 || want + 16 > maxfd) {
        fprintf(stderr, "mem-load: need --port and --conns below the fd limit (%ld)\n", maxfd);
        return 2;
    }
    conn_t *conns = calloc((size_t)maxfd, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long started = 0, ok = 0, failed = 0, inflight = 0;
    uint64_t t0 = bench_now_ns(), deadline = t0 + (uint64_t)(timeout * 1e9);
    static char buf[65536];
    struct epoll_event evs[512];
    while (ok + failed < want && bench_now_ns() < deadline) {
        while (inflight < inflight_max && started < want) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0 || fd >= maxfd) {
                perror("mem-load: socket");
                return 1;
            }
            started++;
            if (bench_bind_source(fd, src_net, &turn) != 0) {
                perror("mem-load: bind");
                return 1;
            }
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
                failed++;
                close(fd);
                continue;
            }
            bench_nodelay(fd);
            conn_t *c = &conns[fd];
            memset(c, 0, sizeof *c);
            c->state = C_CONNECTING;
            c->head_end = -1;
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            inflight++;
        }
        int n = epoll_wait(ep, evs, 512, 100);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            conn_t *c = &conns[fd];
            if (c->state == C_IDLE) {
                /* The server closed an idle connection: it no longer counts. */
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                conn_reset(fd);
                c->state = C_FREE;
                ok--;
                failed++;
                continue;
            }
            if (evs[i].events & (EPOLLERR | EPOLLHUP) && c->state == C_CONNECTING)
                goto fail;
            if (c->state == C_CONNECTING) {
                if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != sizeof request - 1)
                    goto fail;
                c->state = C_READING;
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN)
                continue;
            if (r <= 0)
                goto fail;
            if (response_feed(c, buf, (size_t)r)) {
                /* Keep watching: a close by the server while idle is counted. */
                c->state = C_IDLE;
                ok++;
                inflight--;
            }
            continue;
        fail:
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            conn_reset(fd);
            c->state = C_FREE;
            failed++;
            inflight--;
        }
    }
    printf("{\"ok\":%ld,\"failed\":%ld,\"seconds\":%.3f}\n", ok, failed,
           (double)(bench_now_ns() - t0) / 1e9);
    fflush(stdout);
    /* Hold the connections until the harness has read the server's RSS. */
    while (read(0, buf, sizeof buf) > 0)
        ;
    for (int fd = 0; fd < maxfd; fd++)
        if (conns[fd].state != C_FREE)
            conn_reset(fd);
    close(ep);
    free(conns);
    return 0;
}
