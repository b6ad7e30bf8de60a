/* bench/udp/udp_load.c - the UDP workloads' load side.
 *
 * Echo load (default): F flows, each a connected UDP socket with W datagrams
 * of S bytes in flight (ping-pong: each reply is answered by a new datagram),
 * on one epoll loop with recvmmsg/sendmmsg. A flow that hears nothing for
 * 100 ms (a datagram lost on a full buffer) is topped up to W again. After a
 * warm-up it counts replies for a fixed time and reads the server's CPU time
 * (/proc/<pid>/stat) at both ends of that window.
 *
 *   bench-udp-load --port P [--flows 100] [--window 1] [--size 64]
 *                  [--duration 5] [--warmup 0.5] [--pids PID[,PID...]]
 *   prints {"msgs":N,"seconds":S,"msgs_per_s":R,"server_cpu_s":C,"msgs_per_cpu_s":M}
 *
 * Sink (--sink): binds 127.0.0.1:P and drains datagrams until killed; the
 * bulk senders send to it.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

#define BATCH 64

typedef struct {
    int fd;
    int inflight;
    uint64_t last_ns;
} flow_t;

static int sink(int port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int big = 8 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("udp-load: bind");
        return 1;
    }
    static char bufs[BATCH][2048];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = sizeof bufs[i];
        memset(&m[i], 0, sizeof m[i]);
        m[i].msg_hdr.msg_iov = &iov[i];
        m[i].msg_hdr.msg_iovlen = 1;
    }
    printf("sink ready\n");
    fflush(stdout);
    for (;;)
        if (recvmmsg(fd, m, BATCH, MSG_WAITFORONE, NULL) < 0 && errno != EINTR)
            return 1;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    if (bench_flag(argc, argv, "--sink"))
        return sink(port);
    long nflows = bench_arg_long(argc, argv, "--flows", 100);
    int window = (int)bench_arg_long(argc, argv, "--window", 1);
    size_t size = (size_t)bench_arg_long(argc, argv, "--size", 64);
    double duration = bench_arg_double(argc, argv, "--duration", 5);
    double warmup = bench_arg_double(argc, argv, "--warmup", 0.5);
    const char *pids = bench_arg(argc, argv, "--pids", NULL);
    if (port <= 0 || nflows < 1 || window < 1 || window > BATCH || size < 1 || size > 2048) {
        fprintf(stderr, "usage: bench-udp-load --port P [--flows F] [--window W] [--size S] "
                        "[--duration D] [--pids PIDS] | --sink --port P\n");
        return 2;
    }
    bench_raise_nofile();
    static char msg[2048], rbufs[BATCH][2048];
    memset(msg, 'u', size);
    struct mmsghdr sm[BATCH], rm[BATCH];
    struct iovec siov = {msg, size}, riov[BATCH];
    for (int i = 0; i < BATCH; i++) {
        memset(&sm[i], 0, sizeof sm[i]);
        sm[i].msg_hdr.msg_iov = &siov;
        sm[i].msg_hdr.msg_iovlen = 1;
        riov[i].iov_base = rbufs[i];
        riov[i].iov_len = sizeof rbufs[i];
        memset(&rm[i], 0, sizeof rm[i]);
        rm[i].msg_hdr.msg_iov = &riov[i];
        rm[i].msg_hdr.msg_iovlen = 1;
    }
    flow_t *flows = calloc((size_t)nflows, sizeof *flows);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uint64_t now = bench_now_ns();
    for (long i = 0; i < nflows; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            perror("udp-load: connect");
            return 1;
        }
        flows[i].fd = fd;
        flows[i].last_ns = now;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &flows[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        int r = sendmmsg(fd, sm, (unsigned)window, 0);
        flows[i].inflight = r > 0 ? r : 0;
    }
    uint64_t start = bench_now_ns();
    uint64_t t_warm = start + (uint64_t)(warmup * 1e9);
    uint64_t t_end = t_warm + (uint64_t)(duration * 1e9);
    uint64_t msgs = 0, msgs0 = 0, t0 = 0, next_scan = start + 50000000u;
    double cpu0 = -1;
    int measuring = 0;
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 20);
        now = bench_now_ns();
        for (int i = 0; i < n; i++) {
            flow_t *f = evs[i].data.ptr;
            int r = recvmmsg(f->fd, rm, BATCH, 0, NULL);
            if (r <= 0)
                continue; /* EAGAIN, or an ICMP error while the server starts */
            msgs += (uint64_t)r;
            f->inflight -= r;
            if (f->inflight < 0)
                f->inflight = 0;
            f->last_ns = now;
            int want = window - f->inflight;
            if (want > 0) {
                int s = sendmmsg(f->fd, sm, (unsigned)want, 0);
                if (s > 0)
                    f->inflight += s;
            }
        }
        if (now >= next_scan) {
            next_scan = now + 50000000u;
            for (long i = 0; i < nflows; i++) {
                flow_t *f = &flows[i];
                if (now - f->last_ns > 100000000u) {
                    f->inflight = 0; /* lost: start over */
                    int s = sendmmsg(f->fd, sm, (unsigned)window, 0);
                    if (s > 0)
                        f->inflight = s;
                    f->last_ns = now;
                }
            }
        }
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
            break;
        }
    }
    for (long i = 0; i < nflows; i++)
        close(flows[i].fd);
    close(ep);
    free(flows);
    return 0;
}
