/* test_udp_flood: a flood beyond a small receive buffer is counted as kernel
 * drops (recv_dropped), never a crash; and the send queue's backpressure:
 * sends return 1 from high water, LOOM_EAGAIN past the limit with nothing
 * queued, and on_drain follows once the queue is sent. */
#include "test.h"

#define FLOOD 3000

static unsigned got, drains;
static loom_udp_t *rx;

static void rx_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                    unsigned flags, void *data)
{
    (void)u;
    (void)b;
    (void)from;
    (void)flags;
    (void)data;
    CHECK_EQ(n, 512);
    got++;
}

static void flood(void)
{
    loom_loop_t *loop = test_loop_new();
    got = 0;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = rx_recv, .rcvbuf = 4096}, &rx));
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(rx), &ss, &len));
    /* A plain socket floods it while the loop is not reading. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    char buf[512] = {0};
    int sent = 0;
    for (int i = 0; i < FLOOD; i++)
        if (sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, len) == (ssize_t)sizeof buf)
            sent++;
    close(fd);
    CHECK_EQ(sent, FLOOD);
    for (int i = 0; i < 20; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(rx, &st));
    fprintf(stderr, "flood: %u received, %llu dropped\n", got, (unsigned long long)st.recv_dropped);
    CHECK(got > 0);
    CHECK(st.recv_dropped > 0);
    CHECK(got + st.recv_dropped <= FLOOD);
    CHECK_EQ(st.recv_datagrams, got);
    loom_udp_close(rx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void on_drain(loom_udp_t *u, void *data)
{
    (void)data;
    drains++;
    CHECK_EQ(loom_udp_queued(u), 0);
}

static void backpressure(void)
{
    loom_loop_t *loop = test_loop_new();
    got = drains = 0;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = rx_recv, .rcvbuf = 1 << 20}, &rx));
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(rx), &ss, NULL));
    loom_udp_t *tx;
    CHECK_OK(loom_udp_bind(
        loop, "127.0.0.1", 0,
        &(loom_udp_opts){.on_drain = on_drain, .high_water = 8 * 576, .queue_limit = 16 * 576},
        &tx));
    char buf[512] = {0};
    int zeros = 0, ones = 0, r;
    while ((r = loom_udp_send(tx, (struct sockaddr *)&ss, buf, sizeof buf)) >= 0)
        r == 0 ? zeros++ : ones++;
    CHECK_EQ(r, LOOM_EAGAIN);
    CHECK_EQ(zeros, 7);
    CHECK_EQ(ones, 9);
    CHECK_EQ(loom_udp_queued(tx), 16 * 576);
    CHECK_EQ(loom_udp_send(tx, (struct sockaddr *)&ss, buf, sizeof buf), LOOM_EAGAIN);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(tx, &st));
    CHECK_EQ(st.send_refused, 2);
    CHECK_EQ(st.queued_bytes, 16 * 576);
    while (got < 16)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(drains, 1);
    CHECK_EQ(loom_udp_queued(tx), 0);
    /* Below high water again: plain 0 returns, no second on_drain. */
    CHECK_EQ(loom_udp_send(tx, (struct sockaddr *)&ss, buf, sizeof buf), 0);
    CHECK_EQ(loom_udp_flush(tx), 0);
    while (got < 17)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(drains, 1);
    loom_udp_close(tx);
    loom_udp_close(rx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    flood();
    backpressure();
    return 0;
}
