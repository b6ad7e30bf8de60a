/* test_tcp_errmsg_hooks: a socket error's message reaches every hook that
 * can receive it - the protocol layer's proto_event, the socket's on_event
 * and the loop's default handler - and is the same text in each, for a
 * refused connection, a read timeout and a reset. */
/* LOOM_TEST_NO_TRANSPORT: it checks connection failures, not bytes. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "net/net_internal.h"
#include "test_tcp_util.h"

enum { M_PROTO, M_ON_EVENT, M_DEFAULT, M_COUNT };

static char msg[M_COUNT][256];
static int kind[M_COUNT], events;

static void record(int m, loom_event_kind_t k, const char *text)
{
    events++;
    kind[m] = (int)k;
    CHECK(text != NULL);
    snprintf(msg[m], sizeof msg[m], "%s", text);
}

static void proto_event(loom_socket_t *s, loom_event_kind_t k, int code, const char *text)
{
    record(M_PROTO, k, text);
}

static void proto_read(loom_socket_t *s, char *buf, size_t len) {}

static void on_event(const loom_event_t *ev, void *data)
{
    record(M_ON_EVENT, ev->kind, ev->msg);
}

static void on_default(const loom_event_t *ev, void *data)
{
    record(M_DEFAULT, ev->kind, ev->msg);
}

static void on_connect_write(loom_socket_t *s, void *data)
{
    CHECK(loom_socket_write(s, "x", 1) >= 0);
}

/* Keeps the peer's address as the TCP API's own client classes do (and the
 * HTTP client's), so that a reset names it in every hook alike. */
static loom__sock_class proto_cls = {
    .proto_read = proto_read,
    .proto_event = proto_event,
    .is_static = true,
    .keep_peer = sizeof(loom__peer_addr),
};

/* A loopback socket bound to a free port; listening if `listening`. */
static int raw_bound(bool listening, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(fd, (struct sockaddr *)&in, sizeof in) == 0);
    socklen_t len = sizeof in;
    CHECK(getsockname(fd, (struct sockaddr *)&in, &len) == 0);
    *port = ntohs(in.sin_port);
    if (listening)
        CHECK(listen(fd, 8) == 0);
    return fd;
}

enum { E_REFUSED, E_TIMEOUT, E_RESET };

/* One connection in mode m to `port` (lfd) that fails with error e. */
static void one(loom_loop_t *loop, int m, int e, int lfd, int port)
{
    uint32_t rto = e == E_TIMEOUT ? 100 : 0;
    proto_cls.read_timeout_ms = rto;
    loom_tcp_opts o = {.read_timeout_ms = rto, .connect_timeout_ms = 5000};
    if (e == E_RESET)
        o.on_connect = on_connect_write;
    if (m == M_ON_EVENT)
        o.on_event = on_event;
    events = 0;
    if (m == M_PROTO)
        CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", port, &o, &proto_cls, NULL));
    else
        CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port, &o, NULL));
    if (e == E_RESET) {
        /* Accept, then reset the connection (SO_LINGER 0). */
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) < 0)
            CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        char b[4];
        /* Let the "x" arrive (unread data makes close() send a reset anyway). */
        for (int i = 0; i < 100 && recv(fd, b, sizeof b, MSG_PEEK) < 0; i++)
            CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(events, 1);
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = on_default}));
    static const loom_event_kind_t kinds[] = {LOOM_EV_TCP_REFUSED, LOOM_EV_TCP_TIMEOUT,
                                              LOOM_EV_TCP_RESET};
    for (int e = E_REFUSED; e <= E_RESET; e++) {
        int port, lfd = raw_bound(e != E_REFUSED, &port);
        for (int m = 0; m < M_COUNT; m++) {
            msg[m][0] = '\0';
            one(loop, m, e, lfd, port);
            CHECK_EQ(kind[m], (int)kinds[e]);
            CHECK(msg[m][0] != '\0');
        }
        CHECK_STR(msg[M_PROTO], msg[M_ON_EVENT]);
        CHECK_STR(msg[M_DEFAULT], msg[M_ON_EVENT]);
        close(lfd);
    }
    test_loop_free_clean(loop);
    return 0;
}
