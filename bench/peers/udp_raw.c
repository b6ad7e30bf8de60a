/* bench/peers/udp_raw.c - the UDP echo limit probe: one epoll loop, one
 * socket, recvmmsg() of up to 64 datagrams and one sendmmsg() of the same
 * datagrams back to their senders. No library, no callbacks, no copies.
 *
 *   bench-udp-raw --port P
 */
#include <signal.h>
#include <sys/epoll.h>

#include "bench.h"

#define BATCH 64

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 9005);
    if (bench_flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: bench-udp-raw --port P\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("udp-raw: bind");
        return 1;
    }
    static char bufs[BATCH][2048];
    static struct sockaddr_in from[BATCH];
    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    for (;;) {
        struct epoll_event out[8];
        if (epoll_wait(ep, out, 8, -1) < 0 && errno != EINTR)
            return 1;
        for (int rounds = 0; rounds < 4; rounds++) {
            for (int i = 0; i < BATCH; i++) {
                iov[i].iov_base = bufs[i];
                iov[i].iov_len = sizeof bufs[i];
                memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
                m[i].msg_hdr.msg_iov = &iov[i];
                m[i].msg_hdr.msg_iovlen = 1;
                m[i].msg_hdr.msg_name = &from[i];
                m[i].msg_hdr.msg_namelen = sizeof from[i];
            }
            int n = recvmmsg(fd, m, BATCH, 0, NULL);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++)
                iov[i].iov_len = m[i].msg_len;
            int off = 0;
            while (off < n) {
                int s = sendmmsg(fd, m + off, (unsigned)(n - off), 0);
                if (s <= 0)
                    break; /* full: drop the rest, as UDP does */
                off += s;
            }
            if (n < BATCH)
                break;
        }
    }
}
