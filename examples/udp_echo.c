/* loom-udp-echo: echoes every datagram back to its sender; the UDP benchmark
 * server.
 *
 *     loom-udp-echo [--port P] [--bind ADDR] [--reuseport] [--gro] [--no-gso]
 *                   [--rcvbuf BYTES] [--sndbuf BYTES] [--backend NAME]
 *
 * Without --bind it listens on [::] dual-stack (IPv4 and IPv6), else on
 * 0.0.0.0 when IPv6 is off. Replies are queued and leave with one sendmmsg()
 * per received batch. A sender that outruns the queue's limit loses replies,
 * as it would on a wire (counted; loom_udp_stats()). Ctrl-C (SIGINT) or
 * SIGTERM closes the socket and the loop ends.
 *
 * --backend picks the loop's backend by name (epoll, io_uring, poll...;
 * default: the library's default, or LOOM_BACKEND). On io_uring the socket
 * still runs through readiness (poll requests) with recvmmsg/sendmmsg: an
 * io_uring-native design (the bench-udp-uring probe) measured no better
 * than recvmmsg/sendmmsg for this workload (docs/UDP.md).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom.h"

static loom_udp_t *udp;

static void on_recv(loom_udp_t *u, const char *bytes, size_t len, const struct sockaddr *from,
                    unsigned flags, void *data)
{
    (void)flags;
    (void)data;
    /* 1 (behind) still queued the reply; LOOM_EAGAIN dropped it. */
    (void)loom_udp_send(u, from, bytes, len);
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)ev;
    (void)data;
    /* ICMP errors of clients that went away: nothing to do. */
}

static void on_signal(loom_signal_t *sig, int signo, void *data)
{
    (void)signo;
    (void)data;
    loom_udp_stats_t st;
    if (loom_udp_stats(udp, &st) == 0)
        fprintf(stderr,
                "loom-udp-echo: closing: %llu datagrams in, %llu out, %llu dropped by the "
                "kernel, %llu recvmmsg, %llu sendmmsg\n",
                (unsigned long long)st.recv_datagrams, (unsigned long long)st.sent_datagrams,
                (unsigned long long)st.recv_dropped, (unsigned long long)st.recv_calls,
                (unsigned long long)st.send_calls);
    loom_udp_close(udp);
    loom_signal_clear(loom_signal_loop(sig));
}

static void usage(void)
{
    fprintf(stderr, "usage: loom-udp-echo [--port P] [--bind ADDR] [--reuseport] [--gro] "
                    "[--no-gso] [--rcvbuf BYTES] [--sndbuf BYTES] [--backend NAME]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 9005;
    const char *bind = NULL;
    loom_loop_opts lopts = {.backend = NULL};
    loom_udp_opts opts = {.on_recv = on_recv, .on_event = on_event};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--reuseport") == 0)
            opts.reuseport = true;
        else if (strcmp(argv[i], "--gro") == 0)
            opts.gro = true;
        else if (strcmp(argv[i], "--no-gso") == 0)
            opts.no_gso = true;
        else if (strcmp(argv[i], "--rcvbuf") == 0 && i + 1 < argc)
            opts.rcvbuf = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sndbuf") == 0 && i + 1 < argc)
            opts.sndbuf = atoi(argv[++i]);
        else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc)
            lopts.backend = argv[++i];
        else
            usage();
    }
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, &lopts);
    if (r < 0) {
        fprintf(stderr, "loom-udp-echo: %s\n", loom_strerror(r));
        return 1;
    }
    if (bind == NULL) {
        opts.family = AF_INET6;
        opts.dual_stack = true;
        r = loom_udp_bind(loop, NULL, port, &opts, &udp);
        if (r < 0) {
            opts.family = AF_INET;
            r = loom_udp_bind(loop, NULL, port, &opts, &udp);
        }
    } else {
        r = loom_udp_bind(loop, bind, port, &opts, &udp);
    }
    if (r < 0) {
        fprintf(stderr, "loom-udp-echo: cannot bind: %s\n", loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    loom_signal_handler(loop, SIGINT, on_signal, NULL, NULL);
    loom_signal_handler(loop, SIGTERM, on_signal, NULL, NULL);
    printf("loom-udp-echo: listening on port %d (%s)\n", loom_udp_port(udp),
           loom_loop_backend(loop));
    fflush(stdout);
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
