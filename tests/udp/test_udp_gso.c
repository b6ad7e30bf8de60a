/* test_udp_gso: bulk sends of equal 1,200-byte datagrams to one destination
 * leave as UDP GSO batches where the kernel has UDP_SEGMENT (gso_batches),
 * and a receiver with GRO gets every datagram back as its own on_recv, in
 * order and intact, whether or not the kernel coalesced them. The same again
 * with GSO off. Datagrams of other sizes and destinations in between still
 * arrive intact. */
#include "test.h"

#define COUNT 2000
#define SIZE  1200

static unsigned got, bad;
static unsigned next_seq;

static void rx_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                    unsigned flags, void *data)
{
    (void)u;
    (void)from;
    (void)data;
    CHECK_EQ(flags, 0);
    unsigned seq;
    CHECK(n >= sizeof seq);
    memcpy(&seq, b, sizeof seq);
    size_t want = (seq % 100 == 99) ? 300 : SIZE;
    if (n != want || (unsigned char)b[n - 1] != (seq & 255))
        bad++;
    /* Loopback keeps order for one socket pair. */
    CHECK_EQ(seq, next_seq);
    next_seq++;
    got++;
}

static void run(bool gso, bool gro)
{
    loom_loop_t *loop = test_loop_new();
    got = bad = next_seq = 0;
    loom_udp_t *rx, *tx;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = rx_recv, .gro = gro, .rcvbuf = 8 << 20},
                           &rx));
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(rx), &ss, NULL));
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.no_gso = !gso, .queue_limit = 16 << 20}, &tx));
    char buf[SIZE];
    memset(buf, 0, sizeof buf);
    unsigned sent = 0;
    while (sent < COUNT) {
        /* Bursts of 200 per iteration, so the receiver keeps up. */
        for (int i = 0; i < 200 && sent < COUNT; i++, sent++) {
            size_t n = (sent % 100 == 99) ? 300 : SIZE;
            memcpy(buf, &sent, sizeof sent);
            buf[n - 1] = (char)(sent & 255);
            CHECK(loom_udp_send(tx, (struct sockaddr *)&ss, buf, n) >= 0);
        }
        while (got + 200 < sent)
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }
    for (int i = 0; i < 10000 && got < COUNT; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(got, COUNT);
    CHECK_EQ(bad, 0);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(tx, &st));
    loom_udp_stats_t rs;
    CHECK_OK(loom_udp_stats(rx, &rs));
    fprintf(stderr, "gso %d gro %d: %llu sendmmsg, %llu GSO messages, %llu GRO receives split\n",
            gso, gro, (unsigned long long)st.send_calls, (unsigned long long)st.gso_batches,
            (unsigned long long)rs.gro_batches);
    CHECK_EQ(rs.recv_datagrams, COUNT);
    if (!gro)
        CHECK_EQ(rs.gro_batches, 0);
    CHECK_EQ(st.sent_datagrams, COUNT);
    if (!gso)
        CHECK_EQ(st.gso_batches, 0);
    loom_udp_close(rx);
    loom_udp_close(tx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(30);
    run(true, true);
    run(true, false);
    run(false, true);
    return 0;
}
