/* test_udp_many: 100,000 datagrams over loopback with none lost. The client
 * keeps at most a window of datagrams unanswered (well within the socket
 * buffers), the server echoes each one; every sequence number must come back
 * exactly once. The counters show the batching: far fewer sendmmsg() calls
 * than datagrams. */
#include "test.h"

#define TOTAL  100000
#define WINDOW 256

static loom_udp_t *srv, *cli;
static unsigned sent, got;
static unsigned char seen[TOTAL];
static struct sockaddr_storage srv_addr;

static void srv_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                     unsigned flags, void *data)
{
    (void)data;
    CHECK_EQ(flags, 0);
    CHECK(loom_udp_send(u, from, b, n) >= 0);
}

static void fill(void)
{
    char buf[64];
    memset(buf, 0xab, sizeof buf);
    while (sent < TOTAL && sent - got < WINDOW) {
        memcpy(buf, &sent, sizeof sent);
        CHECK(loom_udp_send(cli, (struct sockaddr *)&srv_addr, buf, sizeof buf) >= 0);
        sent++;
    }
}

static void cli_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                     unsigned flags, void *data)
{
    (void)from;
    (void)data;
    CHECK_EQ(flags, 0);
    CHECK_EQ(n, 64);
    unsigned seq;
    memcpy(&seq, b, sizeof seq);
    CHECK(seq < sent);
    CHECK_EQ(seen[seq], 0);
    CHECK_EQ((unsigned char)b[63], 0xab);
    seen[seq] = 1;
    got++;
    if (got == TOTAL) {
        loom_udp_close(u);
        loom_udp_close(srv);
        return;
    }
    /* Refill in bulk, a quarter window at a time, so sends batch. */
    if (sent - got <= WINDOW * 3 / 4)
        fill();
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = srv_recv, .rcvbuf = 1 << 20}, &srv));
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(srv), &srv_addr, NULL));
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = cli_recv, .rcvbuf = 1 << 20}, &cli));
    fill();
    loom_udp_stats_t a, b;
    int r;
    while ((r = loom_run(loop, LOOM_RUN_ONCE)) > 0) {
        if (got < TOTAL) {
            CHECK_OK(loom_udp_stats(srv, &a));
            CHECK_OK(loom_udp_stats(cli, &b));
            /* Everything was within the buffers: no drop at all. */
            CHECK_EQ(a.recv_dropped, 0);
            CHECK_EQ(b.recv_dropped, 0);
        }
    }
    CHECK_EQ(r, 0);
    CHECK_EQ(got, TOTAL);
    fprintf(stderr, "server: %llu datagrams, %llu recvmmsg, %llu sendmmsg\n",
            (unsigned long long)a.recv_datagrams, (unsigned long long)a.recv_calls,
            (unsigned long long)a.send_calls);
    CHECK(a.send_calls < a.recv_datagrams / 2);
    CHECK(b.send_calls < b.sent_datagrams / 2);
    test_loop_free_clean(loop);
    return 0;
}
