/* test_tcp_ipv6: a server on ::1, clients by "::1" and "[::1]", addresses
 * as strings and sockaddrs. Skipped (77) when ::1 is unavailable. */
/* LOOM_TEST_NO_TRANSPORT: the client checks that the echo arrives in one on_read (n == 3); the
 * split transport delivers half a read at once. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test_tcp_util.h"

static loom_tcp_server_t *srv;
static int echoed, closed_srv;

static void srv_connect(loom_socket_t *s, void *data)
{
    char ip[64];
    int port;
    CHECK_OK(loom_socket_local_name(s, ip, sizeof ip, &port));
    CHECK_STR(ip, "::1");
    CHECK_EQ(port, loom_tcp_server_port(srv));
    CHECK_OK(loom_socket_peer_name(s, ip, sizeof ip, &port));
    CHECK_STR(ip, "::1");
    CHECK(port > 0);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    if (++closed_srv == 2)
        loom_tcp_server_close(srv);
}

static void cli_connect(loom_socket_t *s, void *data)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK_OK(loom_socket_peer_addr(s, (struct sockaddr *)&ss, &len));
    CHECK_EQ(ss.ss_family, AF_INET6);
    CHECK_EQ(len, sizeof(struct sockaddr_in6));
    CHECK_EQ(ntohs(((struct sockaddr_in6 *)&ss)->sin6_port), loom_tcp_server_port(srv));
    CHECK_EQ(loom_socket_write(s, "six", 3), 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK_EQ(n, 3);
    CHECK(memcmp(b, "six", 3) == 0);
    echoed++;
    loom_socket_close(s);
}

static void cli_event(const loom_event_t *ev, void *data)
{
    CHECK(!"unexpected client event");
}

int main(void)
{
    test_timeout(10);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd < 0 || bind(fd, (struct sockaddr *)&in6, sizeof in6) != 0)
        TEST_SKIP("::1 is not available");
    close(fd);

    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_tcp_server(loop, "::1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_event = srv_event},
                             &srv));
    int port = loom_tcp_server_port(srv);
    loom_tcp_opts co = {.on_connect = cli_connect, .on_read = cli_read, .on_event = cli_event};
    CHECK_OK(loom_tcp_connect(loop, "::1", port, &co, NULL));
    CHECK_OK(loom_tcp_connect(loop, "[::1]", port, &co, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(echoed, 2);
    CHECK_EQ(closed_srv, 2);
    test_loop_free_clean(loop);
    return 0;
}
