/* test_udp_options: socket options at creation and after (reuseport,
 * reuseaddr, buffers, TTLs, broadcast), the accessors, a send refused by the
 * kernel for the datagram itself (broadcast without SO_BROADCAST: EACCES)
 * reported as an event naming the destination with the socket left open,
 * and loom_raise() from on_recv routed to the socket's on_event. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"

static int events, raised, got;

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_APP_ERROR) {
        CHECK_EQ(ev->code, LOOM_EAPP);
        raised++;
        return;
    }
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK_EQ(ev->code, LOOM_EACCES);
    CHECK(strstr(ev->msg, "255.255.255.255:9") != NULL);
    events++;
}

static void on_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                    unsigned flags, void *data)
{
    (void)u;
    (void)b;
    (void)n;
    (void)from;
    (void)flags;
    (void)data;
    got++;
    loom_raise(loom_udp_loop(u), LOOM_EAPP, "from on_recv", u);
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *a, *b;
    loom_udp_opts o = {.reuseport = true,
                       .reuseaddr = true,
                       .rcvbuf = 1 << 18,
                       .sndbuf = 1 << 18,
                       .ttl = 7,
                       .multicast_ttl = 3,
                       .multicast_loop = -1,
                       .on_event = on_event,
                       .on_recv = on_recv};
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, &o, &a));
    int port = loom_udp_port(a);
    /* reuseport: a second socket on the same port. */
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", port, &o, &b));
    int fd = loom_udp_fd(a), v = 0;
    socklen_t len = sizeof v;
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_TTL, &v, &len));
    CHECK_EQ(v, 7);
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &v, &len));
    CHECK_EQ(v, 3);
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &len));
    CHECK_EQ(v, 0);
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, &len));
    CHECK(v >= 1 << 18);
    CHECK_OK(loom_udp_set_ttl(a, 9));
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_TTL, &v, &len));
    CHECK_EQ(v, 9);
    CHECK_EQ(loom_udp_set_ttl(a, 0), LOOM_EINVAL);
    CHECK_OK(loom_udp_set_multicast_ttl(a, 2));
    CHECK_OK(loom_udp_set_multicast_loop(a, true));
    CHECK_OK(getsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &v, &len));
    CHECK_EQ(v, 1);
    CHECK_EQ(loom_udp_set_multicast_if(a, "not an address"), LOOM_EINVAL);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    CHECK_OK(loom_udp_local_addr(a, (struct sockaddr *)&ss, &sl));
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(ntohs(((struct sockaddr_in *)&ss)->sin_port), port);
    CHECK(loom_udp_loop(a) == loop);

    /* Broadcast without SO_BROADCAST: the kernel refuses that datagram. */
    struct sockaddr_storage bc;
    CHECK_OK(loom_udp_addr("255.255.255.255", 9, &bc, NULL));
    CHECK_EQ(loom_udp_send(a, (struct sockaddr *)&bc, "b", 1), 0);
    /* A good datagram behind it still goes (to b or a: reuseport). */
    struct sockaddr_storage me;
    CHECK_OK(loom_udp_addr("127.0.0.1", port, &me, NULL));
    CHECK_EQ(loom_udp_send(a, (struct sockaddr *)&me, "ok", 2), 0);
    for (int i = 0; i < 1000 && (events < 1 || got < 1); i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(events, 1);
    CHECK_EQ(got, 1);
    CHECK_EQ(raised, 1);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(a, &st));
    CHECK_EQ(st.send_errors, 1);
    CHECK_EQ(st.sent_datagrams, 1);
    CHECK_OK(loom_udp_set_broadcast(a, true));
    CHECK_OK(getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &v, &len));
    CHECK_EQ(v, 1);
    loom_udp_close(a);
    CHECK_EQ(loom_udp_set_ttl(a, 5), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_port(a), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_stats(a, &st), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_queued(a), 0);
    loom_udp_close(b);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
