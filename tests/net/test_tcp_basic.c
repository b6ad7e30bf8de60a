/* test_tcp_basic: connect, accept, read, write and close; the data slot;
 * addresses; TCP_NODELAY and keepalive; server close twice; refused
 * connections; every operation after close; close in on_write; stats;
 * "localhost" falling back from ::1 to 127.0.0.1; the dual-stack server. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "net/net_internal.h"
#include "test_tcp_util.h"

static int srv_tag, cli_tag, cli_tag2;

/* --- Phase 1: echo round trip ----------------------------------------------- */
static loom_tcp_server_t *srv;
static tcp_events sev, cev;
static int srv_conns, client_done;
static char got[64];
static size_t got_len;

static void srv_connect(loom_socket_t *s, void *data)
{
    CHECK(data == &srv_tag);
    CHECK(loom_socket_data(s) == &srv_tag);
    srv_conns++;
    int fd = loom_socket_fd(s), v = 0;
    socklen_t len = sizeof v;
    CHECK(fd >= 0);
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    CHECK_EQ(v, 1); /* inherited from the listener */
    len = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len) == 0);
    CHECK_EQ(v, 1);
    char ip[64];
    int port = 0;
    CHECK_OK(loom_socket_local_name(s, ip, sizeof ip, &port));
    CHECK_STR(ip, "127.0.0.1");
    CHECK_EQ(port, loom_tcp_server_port(srv));
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(data == &srv_tag);
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &sev);
}

static void cli_connect(loom_socket_t *s, void *data)
{
    CHECK(data == &cli_tag);
    char ip[64];
    int port = 0;
    CHECK_OK(loom_socket_peer_name(s, ip, sizeof ip, &port));
    CHECK_STR(ip, "127.0.0.1");
    CHECK_EQ(port, loom_tcp_server_port(srv));
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    CHECK_OK(loom_socket_local_addr(s, (struct sockaddr *)&ss, &sl));
    CHECK_EQ(ss.ss_family, AF_INET);
    CHECK_EQ(loom_socket_peer_name(s, ip, 4, &port), LOOM_ENOSPC);
    int fd = loom_socket_fd(s), v = 0;
    socklen_t len = sizeof v;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    CHECK_EQ(v, 1);
    CHECK_OK(loom_socket_set_nodelay(s, 0));
    len = sizeof v;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
    CHECK_EQ(v, 0);
    CHECK_OK(loom_socket_set_nodelay(s, 1));
    /* The keepalive option. */
    len = sizeof v;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &v, &len) == 0);
    CHECK_EQ(v, 1);
    len = sizeof v;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len) == 0);
    CHECK_EQ(v, 17);
    CHECK_OK(loom_socket_set_keepalive(s, 1, 42));
    len = sizeof v;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &v, &len) == 0);
    CHECK_EQ(v, 42);
    CHECK_OK(loom_socket_set_data(s, &cli_tag2));
    CHECK_EQ(loom_socket_write(s, " world", 6), 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(data == &cli_tag2);
    CHECK(got_len + n < sizeof got);
    memcpy(got + got_len, b, n);
    got_len += n;
    if (got_len < 11)
        return;
    CHECK(memcmp(got, "hello world", 11) == 0);
    CHECK_OK(loom_socket_close(s));
    /* Everything after close: LOOM_ECLOSED, no crash. */
    CHECK_EQ(loom_socket_closed(s), 1);
    CHECK_EQ(loom_socket_write(s, "x", 1), LOOM_ECLOSED);
    struct iovec iov = {.iov_base = "x", .iov_len = 1};
    CHECK_EQ(loom_socket_writev(s, &iov, 1), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_write_ref(s, "x", 1, NULL, NULL), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_set_data(s, NULL), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_enable(s, LOOM_READABLE), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_disable(s, LOOM_READABLE), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_set_timeouts(s, 1, 1), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_shutdown(s), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_abort(s), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_close(s), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_fd(s), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_set_nodelay(s, 1), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_set_keepalive(s, 1, 1), LOOM_ECLOSED);
    char ip[64];
    CHECK_EQ(loom_socket_peer_name(s, ip, sizeof ip, NULL), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_queued(s), 0);
    CHECK(loom_socket_data(s) == &cli_tag2); /* memory valid until the iteration ends */
    client_done = 1;
    loom_tcp_server_close(srv);
    loom_tcp_server_close(srv); /* twice: harmless */
    CHECK_EQ(loom_tcp_server_port(srv), LOOM_ECLOSED);
}

static void cli_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &cev);
}

static void phase_echo(loom_loop_t *loop)
{
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_event = srv_event,
                                                     .keepalive_s = 30,
                                                     .data = &srv_tag},
                             &srv));
    int port = loom_tcp_server_port(srv);
    CHECK(port > 0);
    CHECK(loom_tcp_server_data(srv) == &srv_tag);
    loom_socket_t *c = NULL;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.initial = "hello",
                                               .initial_len = 5,
                                               .on_connect = cli_connect,
                                               .on_read = cli_read,
                                               .on_event = cli_event,
                                               .keepalive_s = 17,
                                               .data = &cli_tag},
                              &c));
    CHECK(c != NULL);
    CHECK_EQ(loom_socket_fd(c), -1); /* still connecting */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(client_done);
    CHECK_EQ(srv_conns, 1);
    CHECK_EQ(sev.count[LOOM_EV_TCP_EOF], 1); /* the server saw the client's close */
    CHECK_EQ(cev.count[LOOM_EV_TCP_EOF], 0);
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.tcp_incoming, 0);
    CHECK_EQ(st.tcp_outgoing, 0);
    CHECK_EQ(st.tcp_incoming_total, 1);
    CHECK_EQ(st.tcp_outgoing_total, 1);
    CHECK(st.bytes_read >= 22);
    CHECK(st.bytes_written >= 22);
}

/* --- Phase 2: refused ---------------------------------------------------------- */
static int refused_port;
static tcp_events rev;
static loom_socket_t *refused_sock;

static void refused_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &rev);
    CHECK(ev->object == refused_sock);
    CHECK(loom_event_is(ev, LOOM_EV_TCP_ERROR));
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK_EQ(ev->code, LOOM_ECONNREFUSED);
}

static void phase_refused(loom_loop_t *loop)
{
    /* A port nobody listens on: bound (so no other process can take it
     * and listen meanwhile) but not listening, so connecting is refused. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    CHECK(bind(fd, (struct sockaddr *)&in, sizeof in) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&in, &len) == 0);
    refused_port = ntohs(in.sin_port);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", refused_port,
                              &(loom_tcp_opts){.on_event = refused_event}, &refused_sock));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(rev.count[LOOM_EV_TCP_REFUSED], 1);
    /* Without an event callback and without a loop default, the error ends
     * loom_run with its code. */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", refused_port, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), LOOM_ECONNREFUSED);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(fd);
    /* Bad arguments. */
    CHECK_EQ(loom_tcp_connect(loop, "127.0.0.1", 0, NULL, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_tcp_connect(loop, "", 80, NULL, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_tcp_server(loop, "not an address", 0, NULL, &srv), LOOM_EINVAL);
}

/* --- Phase 3: close in on_write loses nothing ---------------------------------- */
#define BIG (4u << 20)
static size_t big_got;
static uint64_t big_sum = TCP_FNV_INIT;
static int big_eof, big_write_cbs;
static char *big_buf;

static void big_srv_connect(loom_socket_t *s, void *data)
{
    CHECK(loom_socket_write(s, big_buf, BIG) >= 0);
    CHECK(loom_socket_queued(s) > 0); /* 4 MiB does not fit the socket buffer */
}

static void big_srv_write(loom_socket_t *s, void *data)
{
    big_write_cbs++;
    CHECK_EQ(loom_socket_queued(s), 0);
    CHECK_OK(loom_socket_close(s));
    loom_tcp_server_close(srv);
}

static void big_cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    big_sum = tcp_fnv(big_sum, b, n);
    big_got += n;
}

static void big_cli_event(const loom_event_t *ev, void *data)
{
    if (ev->kind == LOOM_EV_TCP_EOF)
        big_eof = 1;
    else
        CHECK(!"unexpected client event");
}

static void phase_close_in_on_write(loom_loop_t *loop)
{
    big_buf = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        big_buf[i] = (char)tcp_pattern(i);
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = big_srv_connect,
                                                     .on_write = big_srv_write,
                                                     .on_event = srv_event},
                             &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_read = big_cli_read, .on_event = big_cli_event},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(big_write_cbs, 1);
    CHECK_EQ(big_got, BIG);
    CHECK(big_eof);
    CHECK_EQ(big_sum, tcp_fnv(TCP_FNV_INIT, big_buf, BIG));
    free(big_buf);
}

/* --- Phase 4: "localhost" and the dual-stack server ---------------------------- */
static int lh_connected;

static void lh_connect(loom_socket_t *s, void *data)
{
    char ip[64];
    CHECK_OK(loom_socket_peer_name(s, ip, sizeof ip, NULL));
    CHECK_STR(ip, (const char *)data);
    lh_connected++;
    loom_socket_close(s);
}

static void lh_srv_connect(loom_socket_t *s, void *data)
{
    /* Accepted connections close when the peer does. */
}

static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0;
    close(fd);
    return ok;
}

static void phase_localhost(loom_loop_t *loop)
{
    /* Only 127.0.0.1 listens: the ::1 attempt is refused, then 127.0.0.1 wins. */
    CHECK_OK(loom_tcp_server(
        loop, "localhost", 0,
        &(loom_tcp_server_opts){.on_connect = lh_srv_connect, .on_event = srv_event}, &srv));
    CHECK_OK(loom_tcp_connect(
        loop, "localhost", loom_tcp_server_port(srv),
        &(loom_tcp_opts){.on_connect = lh_connect, .on_event = cli_event, .data = "127.0.0.1"},
        NULL));
    while (lh_connected < 1)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);

    /* NULL bind: every address, IPv4 and IPv6 through one socket. */
    CHECK_OK(loom_tcp_server(
        loop, NULL, 0, &(loom_tcp_server_opts){.on_connect = lh_srv_connect, .on_event = srv_event},
        &srv));
    int port = loom_tcp_server_port(srv);
    int want = 2;
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", port,
        &(loom_tcp_opts){.on_connect = lh_connect, .on_event = cli_event, .data = "127.0.0.1"},
        NULL));
    if (have_ipv6()) {
        CHECK_OK(loom_tcp_connect(
            loop, "::1", port,
            &(loom_tcp_opts){.on_connect = lh_connect, .on_event = cli_event, .data = "::1"},
            NULL));
        want++;
    }
    while (lh_connected < want)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(cev.count[LOOM_EV_TCP_REFUSED], 0);
}

/* --- Phase 5: SO_REUSEPORT --------------------------------------------------------- */
static void phase_reuseport(loom_loop_t *loop)
{
    /* Two loops (as on two threads) share one port with reuseport. */
    loom_loop_t *other = test_loop_new();
    loom_tcp_server_t *a, *b, *c;
    loom_tcp_server_opts o = {.reuseport = true};
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &o, &a));
    int port = loom_tcp_server_port(a);
    CHECK_OK(loom_tcp_server(other, "127.0.0.1", port, &o, &b));
    CHECK_EQ(loom_tcp_server(other, "127.0.0.1", port, NULL, &c), LOOM_EADDRINUSE);
    loom_tcp_server_close(a);
    loom_tcp_server_close(b);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(loom_run(other, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(other);
}

int main(void)
{
    test_timeout(20);
    /* The socket stays lean: a handle, a watcher and three words. */
    CHECK(sizeof(loom_socket_t) <= 88);
    loom_loop_t *loop = test_loop_new();
    phase_echo(loop);
    phase_refused(loop);
    phase_close_in_on_write(loop);
    phase_localhost(loop);
    phase_reuseport(loop);
    test_loop_free_clean(loop);
    return 0;
}
