/* test_udp_multicast: multicast on the loopback interface. A receiver joins
 * 239.255.77.x on 127.0.0.1 (any-source, then source-specific), a sender
 * picks the interface with IP_MULTICAST_IF 127.0.0.1, TTL and loopback on.
 * Skipped (77) only when the kernel refuses multicast on lo (the join or the
 * interface fails, or nothing arrives within a second): some containers have
 * no multicast route for lo. */
#include <errno.h>

#include "test.h"

static int got;
static char last[32];

static void rx_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                    unsigned flags, void *data)
{
    (void)u;
    (void)from;
    (void)flags;
    (void)data;
    CHECK(n < sizeof last);
    memcpy(last, b, n);
    last[n] = '\0';
    got++;
}

static void on_timer(loom_timer_t *t, void *data)
{
    (void)t;
    *(int *)data = 1;
}

/* Runs until `n` datagrams arrived or a second passed; returns whether they did. */
static int wait_for(loom_loop_t *loop, int n)
{
    int expired = 0;
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_timer, &expired));
    CHECK_OK(loom_timer_start(t, 1000, 0));
    while (got < n && !expired)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(t);
    return got >= n;
}

static void round_trip(const char *group, bool source_specific)
{
    loom_loop_t *loop = test_loop_new();
    got = 0;
    loom_udp_t *rx, *tx;
    CHECK_OK(
        loom_udp_bind(loop, NULL, 0, &(loom_udp_opts){.on_recv = rx_recv, .reuseaddr = true}, &rx));
    int port = loom_udp_port(rx);
    int r = source_specific ? loom_udp_join_source(rx, group, "127.0.0.1", "127.0.0.1")
                            : loom_udp_join(rx, group, "127.0.0.1");
    if (r < 0)
        TEST_SKIP("the kernel refuses a multicast join on lo: %s", loom_strerror(r));
    CHECK_OK(loom_udp_bind(
        loop, "127.0.0.1", 0,
        &(loom_udp_opts){.multicast_if = "127.0.0.1", .multicast_ttl = 1, .multicast_loop = 1},
        &tx));
    CHECK_OK(loom_udp_set_multicast_loop(tx, true));
    CHECK_OK(loom_udp_set_multicast_ttl(tx, 1));
    CHECK_OK(loom_udp_set_multicast_if(tx, "127.0.0.1"));
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr(group, port, &ss, NULL));
    CHECK_EQ(loom_udp_send(tx, (struct sockaddr *)&ss, "mcast", 5), 0);
    if (!wait_for(loop, 1))
        TEST_SKIP("no multicast delivery on lo (no multicast route?)");
    CHECK_STR(last, "mcast");
    /* Leaving: the membership goes (a second leave fails). */
    r = source_specific ? loom_udp_leave_source(rx, group, "127.0.0.1", "127.0.0.1")
                        : loom_udp_leave(rx, group, "127.0.0.1");
    CHECK_OK(r);
    r = source_specific ? loom_udp_leave_source(rx, group, "127.0.0.1", "127.0.0.1")
                        : loom_udp_leave(rx, group, "127.0.0.1");
    CHECK(r < 0);
    loom_udp_close(rx);
    loom_udp_close(tx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    char group[32];
    /* Distinct per process, so parallel runs do not hear each other. */
    snprintf(group, sizeof group, "239.255.%d.%d", (int)(getpid() >> 8) & 255, (int)getpid() & 255);
    round_trip(group, false);
    round_trip(group, true);
    return 0;
}
