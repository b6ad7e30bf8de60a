/* test_udp_echo: echo over IPv4 and IPv6 (skipped for v6 when ::1 is
 * unavailable), sendv, a connected client, a truncated datagram flagged,
 * dual-stack, argument errors, close from inside on_recv with on_close once,
 * and a loop that ends clean. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"

static int echoed, closes, truncs, srv_after_close;
static loom_udp_t *srv;

static void srv_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                     unsigned flags, void *data)
{
    (void)data;
    CHECK(from != NULL);
    if (flags & LOOM_UDP_TRUNCATED) {
        truncs++;
        CHECK_EQ(n, 100);
        return;
    }
    CHECK(loom_udp_send(u, from, b, n) >= 0);
}

static void on_close(loom_udp_t *u, void *data)
{
    (void)u;
    (void)data;
    closes++;
}

static void cli_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                     unsigned flags, void *data)
{
    (void)from;
    CHECK_EQ(flags, 0);
    const char *want = data;
    CHECK_EQ(n, strlen(want));
    CHECK(memcmp(b, want, n) == 0);
    echoed++;
    loom_udp_close(u);
    CHECK_EQ(loom_udp_send(u, NULL, "x", 1), LOOM_ECLOSED);
    CHECK_EQ(loom_udp_fd(u), LOOM_ECLOSED);
}

static void no_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "unexpected event: %s\n", ev->msg);
    CHECK(!"unexpected event");
}

/* One echo round trip from an unconnected and from a connected client. */
static void echo_round(const char *ip, int family)
{
    loom_loop_t *loop = test_loop_new();
    echoed = closes = 0;
    CHECK_OK(loom_udp_bind(
        loop, ip, 0,
        &(loom_udp_opts){.on_recv = srv_recv, .on_close = on_close, .on_event = no_event}, &srv));
    int port = loom_udp_port(srv);
    CHECK(port > 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_OK(loom_udp_addr(ip, port, &ss, &len));
    CHECK_EQ(ss.ss_family, family);

    loom_udp_t *a, *b;
    CHECK_OK(loom_udp_bind(
        loop, ip, 0,
        &(loom_udp_opts){
            .on_recv = cli_recv, .on_close = on_close, .on_event = no_event, .data = "hello, udp"},
        &a));
    CHECK_EQ(loom_udp_send(a, NULL, "x", 1), LOOM_EINVAL);
    CHECK_EQ(loom_udp_send(a, (struct sockaddr *)&ss, "hello, udp", 10), 0);
    CHECK_OK(loom_udp_connect(
        loop, ip, port,
        &(loom_udp_opts){
            .on_recv = cli_recv, .on_close = on_close, .on_event = no_event, .data = "gathered"},
        &b));
    CHECK_EQ(loom_udp_send(b, (struct sockaddr *)&ss, "x", 1), LOOM_EISCONN);
    struct iovec iov[3] = {{"gat", 3}, {"her", 3}, {"ed", 2}};
    CHECK_EQ(loom_udp_sendv(b, NULL, iov, 3), 0);
    CHECK_EQ(loom_udp_queued(b), 8 + 64);

    while (echoed < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_OK(loom_run(loop, LOOM_RUN_NOWAIT));
    CHECK_EQ(closes, 2);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(srv, &st));
    CHECK_EQ(st.recv_datagrams, 2);
    CHECK_EQ(st.sent_datagrams, 2);
    CHECK_EQ(st.recv_bytes, 18);
    loom_udp_close(srv);
    loom_udp_close(srv); /* harmless twice */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(closes, 3);
    test_loop_free_clean(loop);
}

/* A datagram longer than the slot is cut short and flagged. */
static void truncation(void)
{
    loom_loop_t *loop = test_loop_new();
    truncs = 0;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = srv_recv, .max_datagram = 100}, &srv));
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(srv), &ss, NULL));
    loom_udp_t *c;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, NULL, &c));
    char big[300];
    memset(big, 'z', sizeof big);
    CHECK_EQ(loom_udp_send(c, (struct sockaddr *)&ss, big, sizeof big), 0);
    while (truncs == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(srv, &st));
    CHECK_EQ(st.recv_truncated, 1);
    char huge[65508];
    CHECK_EQ(loom_udp_send(c, (struct sockaddr *)&ss, huge, sizeof huge), LOOM_EMSGSIZE);
    loom_udp_close(c);
    loom_udp_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* Closing inside on_recv stops the batch: nothing more is delivered. */
static void closing_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                         unsigned flags, void *data)
{
    (void)b;
    (void)n;
    (void)from;
    (void)flags;
    (void)data;
    srv_after_close++;
    loom_udp_close(u);
}

static void close_in_recv(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = srv_after_close = 0;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_recv = closing_recv, .on_close = on_close}, &srv));
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(srv), &ss, NULL));
    /* Ten datagrams already waiting when the socket is first read. */
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(sendto(fd, "d", 1, 0, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 1);
    close(fd);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(srv_after_close, 1);
    CHECK_EQ(closes, 1);
    test_loop_free_clean(loop);
}

/* A dual-stack socket hears IPv4 senders as v4-mapped addresses. */
static int dual_got;
static void dual_recv(loom_udp_t *u, const char *b, size_t n, const struct sockaddr *from,
                      unsigned flags, void *data)
{
    (void)b;
    (void)n;
    (void)flags;
    (void)data;
    CHECK_EQ(from->sa_family, AF_INET6);
    CHECK(IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)from)->sin6_addr));
    dual_got++;
    loom_udp_close(u);
}

static void dual_stack(void)
{
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_udp_bind(
        loop, NULL, 0,
        &(loom_udp_opts){.on_recv = dual_recv, .family = AF_INET6, .dual_stack = true}, &srv));
    loom_udp_t *c;
    CHECK_OK(loom_udp_connect(loop, "127.0.0.1", loom_udp_port(srv), NULL, &c));
    CHECK_EQ(loom_udp_send(c, NULL, "v4", 2), 0);
    while (dual_got == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_udp_close(c);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* Sockets still open when the loop is freed get their on_close. */
static void free_open(void)
{
    loom_loop_t *loop = test_loop_new();
    closes = 0;
    loom_udp_t *u;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, &(loom_udp_opts){.on_close = on_close}, &u));
    CHECK_EQ(loom_udp_send(u, NULL, "x", 1), LOOM_EINVAL);
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", 9, &ss, NULL));
    CHECK_EQ(loom_udp_send(u, (struct sockaddr *)&ss, "queued", 6), 0);
    CHECK_EQ(loom_loop_live(loop), 1);
    loom_loop_free(loop);
    CHECK_EQ(closes, 1);
}

static void bad_args(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *u = NULL;
    struct sockaddr_storage ss;
    CHECK_EQ(loom_udp_addr("not an address", 1, &ss, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_udp_addr("127.0.0.1", 70000, &ss, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_udp_bind(loop, "nohost", 0, NULL, &u), LOOM_EINVAL);
    CHECK_EQ(loom_udp_connect(loop, "127.0.0.1", 0, NULL, &u), LOOM_EINVAL);
    CHECK_EQ(loom_udp_bind(loop, NULL, 0, &(loom_udp_opts){.family = 12345}, &u), LOOM_EINVAL);
    CHECK(u == NULL);
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, NULL, &u));
    int port = loom_udp_port(u);
    loom_udp_t *v;
    CHECK_EQ(loom_udp_bind(loop, "127.0.0.1", port, NULL, &v), LOOM_EADDRINUSE);
    CHECK_EQ(loom_udp_join(u, "127.0.0.1", NULL), LOOM_EINVAL);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    echo_round("127.0.0.1", AF_INET);
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&in6, sizeof in6) == 0;
    if (fd >= 0)
        close(fd);
    if (v6) {
        echo_round("::1", AF_INET6);
        dual_stack();
    } else {
        fprintf(stderr, "::1 is not available: IPv6 rounds skipped\n");
    }
    truncation();
    close_in_recv();
    free_open();
    bad_args();
    return 0;
}
