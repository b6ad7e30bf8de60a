/* test_udp_close: closing a socket with work in flight, on every backend.
 *  - sends queued and never flushed: dropped, nothing delivered, on_close
 *    once, every call after the close returns LOOM_ECLOSED;
 *  - datagrams waiting in the kernel's receive buffer and the socket closed
 *    before the loop reads them: no on_recv after the close;
 *  - two sockets ready in the same iteration, the first closing the second
 *    from on_recv: the second hears nothing more (a watcher closed earlier
 *    in the batch is skipped);
 *  - a close from on_drain, with the queue just sent;
 *  - loom_loop_free() with sockets still open, holding queued sends and
 *    unread datagrams: each on_close runs once, nothing leaks (ASan). */
#include "test.h"

static int closes, recvs_after, got_a, got_b, drains;
static loom_udp_t *sa, *sb;
static bool closed_b;

static void on_close(loom_udp_t *u, void *data)
{
    (void)u;
    (void)data;
    closes++;
}

static void count_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                       unsigned flags, void *data)
{
    (void)u;
    (void)b;
    (void)n;
    (void)from;
    (void)flags;
    (void)data;
    recvs_after++;
}

static struct sockaddr_storage addr_of(loom_udp_t *u)
{
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(u), &ss, NULL));
    return ss;
}

/* Sends `n` datagrams of 100 bytes to `u` from a plain socket. */
static void feed(loom_udp_t *u, int n)
{
    struct sockaddr_storage ss = addr_of(u);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0);
    char buf[100] = {0};
    for (int i = 0; i < n; i++)
        CHECK_EQ(sendto(fd, buf, sizeof buf, 0, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)),
                 (ssize_t)sizeof buf);
    close(fd);
}

static void queued_then_close(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = recvs_after = 0;
    loom_udp_t *rx, *tx;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, &(loom_udp_opts){.on_recv = count_recv}, &rx));
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, &(loom_udp_opts){.on_close = on_close}, &tx));
    struct sockaddr_storage to = addr_of(rx);
    char buf[200] = {0};
    for (int i = 0; i < 300; i++)
        CHECK(loom_udp_send(tx, (struct sockaddr *)&to, buf, sizeof buf) >= 0);
    CHECK(loom_udp_queued(tx) > 0);
    loom_udp_close(tx);
    loom_udp_close(tx); /* harmless twice */
    CHECK_EQ(loom_udp_send(tx, (struct sockaddr *)&to, buf, sizeof buf), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_flush(tx), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_queued(tx), 0);
    loom_udp_stats_t st;
    CHECK_EQ(loom_udp_stats(tx, &st), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_fd(tx), LOOM_ECLOSED);
    CHECK_EQ(closes, 0); /* from the loop, never from inside close */
    for (int i = 0; i < 10; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    CHECK_EQ(closes, 1);
    CHECK_EQ(recvs_after, 0); /* the queue was dropped, not sent */
    loom_udp_close(rx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void unread_then_close(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = recvs_after = 0;
    loom_udp_t *rx;
    CHECK_OK(loom_udp_bind(
        loop, "127.0.0.1", 0,
        &(loom_udp_opts){.on_recv = count_recv, .on_close = on_close, .rcvbuf = 1 << 20}, &rx));
    /* One iteration first, so that a backend reading in the kernel has its
     * request armed when the datagrams land. */
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    feed(rx, 50);
    loom_udp_close(rx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(recvs_after, 0);
    CHECK_EQ(closes, 1);
    test_loop_free_clean(loop);
}

static void a_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                   unsigned flags, void *data)
{
    (void)u;
    (void)b;
    (void)n;
    (void)from;
    (void)flags;
    (void)data;
    got_a++;
    if (!closed_b) {
        closed_b = true;
        loom_udp_close(sb);
    }
}

static void b_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                   unsigned flags, void *data)
{
    (void)u;
    (void)b;
    (void)n;
    (void)from;
    (void)flags;
    (void)data;
    got_b++;
    if (!closed_b) {
        /* b came first in this batch: it closes a instead (the same check,
         * mirrored). */
        closed_b = true;
        loom_udp_close(sa);
    }
}

static void close_other_in_batch(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = got_a = got_b = 0;
    closed_b = false;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = a_recv, .on_close = on_close}, &sa));
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = b_recv, .on_close = on_close}, &sb));
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    feed(sa, 20);
    feed(sb, 20);
    for (int i = 0; i < 50 && closes == 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, 1);
    /* Whichever ran first closed the other before it heard anything. */
    CHECK((got_a > 0) != (got_b > 0));
    int a = got_a;
    for (int i = 0; i < 5; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    if (a > 0) {
        CHECK_EQ(got_a, 20); /* the survivor still gets all of its own */
        CHECK_EQ(got_b, 0);
    } else {
        CHECK_EQ(got_b, 20);
        CHECK_EQ(got_a, 0);
    }
    loom_udp_close(got_a ? sa : sb);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(closes, 2);
    test_loop_free_clean(loop);
}

static void on_drain_close(loom_udp_t *u, void *data)
{
    (void)data;
    drains++;
    CHECK_EQ(loom_udp_queued(u), 0);
    loom_udp_close(u);
}

static void close_from_drain(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = drains = recvs_after = 0;
    loom_udp_t *rx, *tx;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = count_recv, .rcvbuf = 1 << 20}, &rx));
    CHECK_OK(loom_udp_bind(
        loop, "127.0.0.1", 0,
        &(loom_udp_opts){.on_drain = on_drain_close, .on_close = on_close, .high_water = 4096},
        &tx));
    struct sockaddr_storage to = addr_of(rx);
    char buf[500] = {0};
    int r = 0, n = 0;
    while (r == 0 && n < 100) {
        r = loom_udp_send(tx, (struct sockaddr *)&to, buf, sizeof buf);
        n++;
    }
    CHECK_EQ(r, 1); /* behind: on_drain follows */
    for (int i = 0; i < 100 && (closes == 0 || recvs_after < n); i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(drains, 1);
    CHECK_EQ(closes, 1);
    CHECK_EQ(recvs_after, n); /* sent before the close, all of it */
    loom_udp_close(rx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void free_with_open_sockets(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = 0;
    loom_udp_t *rx, *tx;
    CHECK_OK(loom_udp_bind(
        loop, "127.0.0.1", 0,
        &(loom_udp_opts){.on_recv = count_recv, .on_close = on_close, .rcvbuf = 1 << 20}, &rx));
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, &(loom_udp_opts){.on_close = on_close}, &tx));
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    feed(rx, 30);
    struct sockaddr_storage to = addr_of(rx);
    char buf[1000] = {0};
    for (int i = 0; i < 100; i++)
        CHECK(loom_udp_send(tx, (struct sockaddr *)&to, buf, sizeof buf) >= 0);
    loom_loop_free(loop);
    CHECK_EQ(closes, 2);
}

int main(void)
{
    test_timeout(30);
    queued_then_close();
    unread_then_close();
    close_other_in_batch();
    close_from_drain();
    free_with_open_sockets();
    return 0;
}
