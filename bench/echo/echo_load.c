/* bench/echo/echo_load.c - the echo load generator: C connections, each with
 * exactly one S-byte message in flight (ping-pong), on one epoll loop. After
 * a warm-up it counts round trips for a fixed time and reads the server's CPU
 * time (utime + stime from /proc/<pid>/stat) at both ends of that window.
 *
 * Usage: bench-echo-load --port P [--conns 100] [--size 64] [--duration 5]
 *                        [--warmup 0.5] [--pids PID[,PID...]]
 * Prints {"msgs":N,"seconds":S,"msgs_per_s":R,"server_cpu_s":C,
 *         "msgs_per_cpu_s":M}; the last two are -1 without --pids.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

typedef struct {
    int fd;
    size_t got; /* bytes of the current echo received so far */
} conn_t;

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    long nconns = bench_arg_long(argc, argv, "--conns", 100);
    size_t size = (size_t)bench_arg_long(argc, argv, "--size", 64);
    double duration = bench_arg_double(argc, argv, "--duration", 5);
    double warmup = bench_arg_double(argc, argv, "--warmup", 0.5);
    const char *pids = bench_arg(argc, argv, "--pids", NULL);
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    if (port <= 0 || nconns < 1 || size < 1 || size > 65536) {
        fprintf(stderr, "usage: bench-echo-load --port P [--conns C] [--size S] ...\n");
        return 2;
    }
    char *msg = malloc(size);
    static char buf[65536];
    memset(msg, 'x', size);
    conn_t *conns = calloc((size_t)nconns, sizeof *conns);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (long i = 0; i < nconns; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("echo-load: connect");
            return 1;
        }
        bench_nodelay(fd);
        fcntl(fd, F_SETFL, O_NONBLOCK);
        conns[i].fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
    for (long i = 0; i < nconns; i++)
        if (send(conns[i].fd, msg, size, MSG_NOSIGNAL) != (ssize_t)size) {
            perror("echo-load: send");
            return 1;
        }

    uint64_t start = bench_now_ns();
    uint64_t t_warm = start + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_warm + (uint64_t)(duration * 1e9);
    uint64_t msgs = 0, msgs0 = 0, t0 = 0;
    double cpu0 = -1;
    int measuring = 0, status = -1;
    struct epoll_event evs[256];
    while (status < 0) {
        int n = epoll_wait(ep, evs, 256, 20);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            ssize_t r = read(c->fd, buf, sizeof buf);
            if (r <= 0) {
                if (r < 0 && errno == EAGAIN)
                    continue;
                fprintf(stderr, "echo-load: server closed a connection\n");
                status = 1;
                break;
            }
            c->got += (size_t)r;
            while (c->got >= size) {
                c->got -= size;
                msgs++;
                if (send(c->fd, msg, size, MSG_NOSIGNAL) != (ssize_t)size) {
                    perror("echo-load: send");
                    status = 1;
                    break;
                }
            }
        }
        if (status >= 0)
            break;
        uint64_t now = bench_now_ns();
        if (!measuring && now >= t_warm) {
            measuring = 1;
            msgs0 = msgs;
            t0 = now;
            cpu0 = pids ? bench_proc_cpu_s(pids) : -1;
        } else if (measuring && now >= t_end) {
            double cpu = pids && cpu0 >= 0 ? bench_proc_cpu_s(pids) - cpu0 : -1;
            double secs = (double)(now - t0) / 1e9;
            double m = (double)(msgs - msgs0);
            printf("{\"msgs\":%.0f,\"seconds\":%.3f,\"msgs_per_s\":%.0f,\"server_cpu_s\":%.2f,"
                   "\"msgs_per_cpu_s\":%.0f}\n",
                   m, secs, m / secs, cpu, cpu > 0 ? m / cpu : -1);
            status = 0;
        }
    }
    for (long i = 0; i < nconns; i++)
        close(conns[i].fd);
    close(ep);
    free(conns);
    free(msg);
    return status;
}
