/* test_tcp_eyeballs: Happy Eyeballs and the connect timeout. A listener on
 * [::1]:P whose accept queue is full drops new SYNs, so an attempt there
 * hangs; "localhost" tries ::1 first, then after attempt_delay_ms starts
 * 127.0.0.1:P, where a loom server answers: the second attempt wins and the
 * hanging one is closed. With only the hanging address, the connect
 * timeout gives a tcp timeout event. Skipped (77) without ::1. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test_tcp_util.h"

static loom_loop_t *loop;
static loom_tcp_server_t *srv;
static uint64_t start;
static int connected, timeouts;

static void cli_connect(loom_socket_t *s, void *data)
{
    char ip[64];
    CHECK_OK(loom_socket_peer_name(s, ip, sizeof ip, NULL));
    CHECK_STR(ip, "127.0.0.1");
    uint64_t took = loom_now(loop) - start;
    /* Not before the attempt delay. The hanging ::1 attempt has no connect
     * timeout and never fails on its own, so connecting at all shows the
     * delay started the second attempt; the upper bound only catches a
     * delay grossly overshot and is loose enough for a loaded machine. */
    CHECK(took >= 100);
    CHECK(took < 5000);
    connected++;
    loom_socket_close(s);
    loom_tcp_server_close(srv);
}

static int port;

static void cli_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_TIMEOUT);
    CHECK(loom_now(loop) - start >= 150);
    /* The message says which timeout, and the target. */
    char want[128];
    snprintf(want, sizeof want, "connect to [::1]:%d failed: connect timeout (150 ms)", port);
    CHECK_STR(ev->msg, want);
    timeouts++;
}

static void srv_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
}

int main(void)
{
    test_timeout(20);
    /* A full listener on ::1. */
    int lfd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int one = 1;
    if (lfd < 0)
        TEST_SKIP("no IPv6");
    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&in6, sizeof in6) != 0)
        TEST_SKIP("::1 is not available");
    CHECK(listen(lfd, 0) == 0);
    socklen_t len = sizeof in6;
    CHECK(getsockname(lfd, (struct sockaddr *)&in6, &len) == 0);
    port = ntohs(in6.sin6_port);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(connect(fill[i], (struct sockaddr *)&in6, sizeof in6) == 0 || errno == EINPROGRESS);
    }
    usleep(50000);

    loop = test_loop_new();
    /* 127.0.0.1 on the same port, served by loom (may be taken: skip). */
    int r = loom_tcp_server(loop, "127.0.0.1", port, &(loom_tcp_server_opts){.on_event = srv_event},
                            &srv);
    if (r == LOOM_EADDRINUSE)
        TEST_SKIP("127.0.0.1:%d is taken", port);
    CHECK_OK(r);

    loom_update_time(loop);
    start = loom_now(loop);
    CHECK_OK(loom_tcp_connect(
        loop, "localhost", port,
        &(loom_tcp_opts){.on_connect = cli_connect, .on_event = cli_event, .attempt_delay_ms = 100},
        NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(connected, 1);
    CHECK_EQ(timeouts, 0);

    /* Only the hanging address: the connect timeout ends it. */
    loom_update_time(loop);
    start = loom_now(loop);
    CHECK_OK(loom_tcp_connect(loop, "::1", port,
                              &(loom_tcp_opts){.on_connect = cli_connect,
                                               .on_event = cli_event,
                                               .connect_timeout_ms = 150},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(timeouts, 1);
    CHECK_EQ(connected, 1);

    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
    test_loop_free_clean(loop);
    return 0;
}
