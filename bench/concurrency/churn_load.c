/* bench/concurrency/churn_load.c - cl-async's concurrency benchmark, the load
 * side: a new connection for every request, opened as fast as possible while
 * fewer than --max are open. Each connection sends one request and waits for
 * the server to answer and close (the delay server holds it for some
 * seconds first), then is closed and replaced. Connects are non-blocking,
 * at most --connecting at a time.
 *
 * Several of these run side by side to go past one process's fd limit; each
 * is given its own block of source addresses (--src-net N: 127.N.0.1-64, see
 * bench_bind_source()) so that connect() stays cheap.
 *
 * Usage: bench-churn-load --port P [--max 19000] [--duration 8]
 *                         [--connecting 1024] [--src-net N]
 * Prints {"opened":N,"completed":C,"failed":F,"peak_open":K,"seconds":S,
 *         "ramp_s":R,"open_per_s":O}: ramp_s is how long it took to reach
 * peak_open; open_per_s is connections established per second over the run.
 */
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

static const char request[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

enum { C_FREE, C_CONNECTING, C_WAITING };

static void conn_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    long maxfd = bench_raise_nofile();
    long max_open = bench_arg_long(argc, argv, "--max", maxfd - 100);
    long max_connecting = bench_arg_long(argc, argv, "--connecting", 1024);
    double duration = bench_arg_double(argc, argv, "--duration", 8);
    int src_net = (int)bench_arg_long(argc, argv, "--src-net", 1);
    unsigned turn = 0;
    signal(SIGPIPE, SIG_IGN);
    if (port <= 0 || max_open < 1 || max_open + 16 > maxfd) {
        fprintf(stderr, "churn-load: need --port and --max below the fd limit (%ld)\n", maxfd);
        return 2;
    }
    uint8_t *state = calloc((size_t)maxfd, 1);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    long open = 0, connecting = 0, opened = 0, completed = 0, failed = 0, peak = 0;
    uint64_t t0 = bench_now_ns(), t_end = t0 + (uint64_t)(duration * 1e9), t_peak = t0;
    static char buf[4096];
    struct epoll_event evs[1024];
    for (;;) {
        uint64_t now = bench_now_ns();
        if (now >= t_end)
            break;
        while (open < max_open && connecting < max_connecting) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0)
                break;
            if (bench_bind_source(fd, src_net, &turn) != 0) {
                perror("churn-load: bind");
                return 1;
            }
            if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
                failed++;
                close(fd);
                break; /* out of ports or refused: retry on the next turn */
            }
            state[fd] = C_CONNECTING;
            struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
            open++;
            connecting++;
        }
        if (open > peak) {
            peak = open;
            t_peak = now;
        }
        int n = epoll_wait(ep, evs, 1024, 10);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            ssize_t r = -1;
            if (state[fd] == C_CONNECTING) {
                connecting--;
                if ((evs[i].events & (EPOLLERR | EPOLLHUP)) ||
                    send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != sizeof request - 1) {
                    failed++;
                    goto drop;
                }
                opened++;
                state[fd] = C_WAITING;
                struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
                epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                continue;
            }
            r = read(fd, buf, sizeof buf);
            if (r > 0 || (r < 0 && errno == EAGAIN))
                continue; /* the answer; the close follows */
            if (r == 0)
                completed++;
            else
                failed++;
        drop:
            epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
            /* After the server's close a plain close leaves no TIME_WAIT here. */
            if (r == 0)
                close(fd);
            else
                conn_reset(fd);
            state[fd] = C_FREE;
            open--;
        }
    }
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    printf("{\"opened\":%ld,\"completed\":%ld,\"failed\":%ld,\"peak_open\":%ld,\"seconds\":%.3f,"
           "\"ramp_s\":%.3f,\"open_per_s\":%.0f}\n",
           opened, completed, failed, peak, secs, (double)(t_peak - t0) / 1e9,
           (double)opened / secs);
    fflush(stdout);
    for (int fd = 0; fd < maxfd; fd++)
        if (state[fd] != C_FREE)
            conn_reset(fd);
    close(ep);
    free(state);
    return 0;
}
