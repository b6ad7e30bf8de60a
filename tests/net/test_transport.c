/* test_transport: the socket's transport seam, through the test transports
 * of src/net/transport_test.c:
 *  - xor between two loom sockets: an echo whose client's initial bytes wait
 *    for the handshake (they follow the hello on the wire);
 *  - xor against a raw peer: the hello and the transformed bytes on the wire,
 *    no accept until the peer's hello, bytes sent with the hello delivered
 *    after the accept;
 *  - a handshake failure: one error event with its message, one close, no
 *    accept;
 *  - a large xor transfer with backpressure (high water, on_drain) while the
 *    reader pauses: every byte arrives, in order;
 *  - split: bytes held across the application's pause are delivered after
 *    the resume, before newer ones, in order, and never while paused;
 *  - water marks count application bytes, not the transport's (xor doubles
 *    every byte on the wire): loom_socket_queued() and the high-water result
 *    of a write, and on_drain once they are sent;
 *  - the transport sends its handshake although the application disabled
 *    writing, holds a write and a shutdown made during the handshake, and
 *    its shutdown hook's close notify goes after the application's bytes and
 *    before the end; a peer's close notify ends the stream cleanly;
 *  - every socket's on_close runs exactly once.
 */
/* LOOM_TEST_NO_TRANSPORT: it sets the classes' transports itself. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_internal.h"
#include "test_tcp_util.h"

/* A static class whose sockets count their close in on_close. */
#define TEST_CLASS(...)                                                                            \
    {                                                                                              \
        .on_close = on_close, .is_static = true, __VA_ARGS__                                       \
    }

static loom_loop_t *loop;
static int accepts, connects, closes, srv_events, drains;
static tcp_events sev;
static char srv_msg[128];
static char srv_buf[64], cli_buf[64];
static size_t srv_len, cli_len;
static int done;

static void on_close(loom_socket_t *s, void *data)
{
    closes++;
}

static void on_tick(loom_timer_t *t, void *data) {}

/* Runs the loop `n` times (a ticking timer bounds each turn). */
static void turns(int n)
{
    for (int i = 0; i < n; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
}

/* --- The echo server (xor) ---------------------------------------------------- */
static void srv_accept(loom_socket_t *s, void *data)
{
    accepts++;
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(accepts > 0); /* never before the accept */
    CHECK(srv_len + n <= sizeof srv_buf);
    memcpy(srv_buf + srv_len, b, n);
    srv_len += n;
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    srv_events++;
    tcp_count_event(ev, &sev);
    snprintf(srv_msg, sizeof srv_msg, "%s", ev->msg);
}

static loom__sock_class srv_cls =
    TEST_CLASS(.on_connect = srv_accept, .on_read = srv_read, .on_event = srv_event);

/* --- Phase 1: xor between two loom sockets ------------------------------------- */
static void cli_connect(loom_socket_t *s, void *data)
{
    connects++;
    CHECK_EQ(loom_socket_write(s, "world", 5), 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(connects == 1);
    CHECK(cli_len + n <= sizeof cli_buf);
    memcpy(cli_buf + cli_len, b, n);
    cli_len += n;
    if (cli_len == 10) {
        CHECK(memcmp(cli_buf, "helloworld", 10) == 0);
        CHECK_OK(loom_socket_close(s));
        done = 1;
    }
}

static loom__sock_class cli_cls = TEST_CLASS(.on_connect = cli_connect, .on_read = cli_read);

static void phase_echo(int port)
{
    CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", port,
                                   &(loom_tcp_opts){.initial = "hello", .initial_len = 5}, &cli_cls,
                                   NULL));
    tcp_run_until(loop, &done, 3000);
    CHECK(done);
    turns(3); /* the server reads the end and closes */
    CHECK_EQ(accepts, 1);
    CHECK_EQ(connects, 1);
    CHECK_EQ(srv_len, 10);
    CHECK(memcmp(srv_buf, "helloworld", 10) == 0);
    CHECK_EQ(closes, 2);
}

/* --- Phase 2: a raw peer --------------------------------------------------------- */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* Reads exactly n bytes from a raw fd, running the loop meanwhile. */
static void raw_read(int fd, unsigned char *buf, size_t n)
{
    size_t got = 0;
    for (int i = 0; i < 200 && got < n; i++) {
        turns(1);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            ssize_t r = recv(fd, buf + got, n - got, 0);
            CHECK(r > 0);
            got += (size_t)r;
        }
    }
    CHECK_EQ(got, n);
}

static void phase_raw(int port)
{
    accepts = 0;
    srv_len = 0;
    int fd = raw_connect(port);
    unsigned char b[8];
    raw_read(fd, b, 1);
    CHECK_EQ(b[0], 0x5a); /* the server's hello */
    turns(5);
    CHECK_EQ(accepts, 0); /* no accept before the peer's hello */
    /* The hello, then "abc": each byte transformed and sent twice, the
     * last pair split across two sends. */
    unsigned char hello[6] = {0x5a, 'a' ^ 0xa5, 'a' ^ 0xa5, 'b' ^ 0xa5, 'b' ^ 0xa5, 'c' ^ 0xa5};
    CHECK_EQ(send(fd, hello, sizeof hello, 0), (ssize_t)sizeof hello);
    turns(3);
    CHECK_EQ(srv_len, 2);
    unsigned char last = 'c' ^ 0xa5;
    CHECK_EQ(send(fd, &last, 1, 0), 1);
    raw_read(fd, b, 6); /* the echo, transformed and doubled on the wire */
    CHECK_EQ(accepts, 1);
    CHECK_EQ(srv_len, 3);
    CHECK(memcmp(srv_buf, "abc", 3) == 0);
    for (int i = 0; i < 3; i++)
        CHECK(b[2 * i] == (("abc"[i]) ^ 0xa5) && b[2 * i + 1] == b[2 * i]);
    /* The peer's close notify (a pair that differs), then its end: a clean
     * end, no error. */
    unsigned char bye[2] = {0xb0, 0x0b};
    CHECK_EQ(send(fd, bye, 2, 0), 2);
    close(fd);
    int before = closes;
    for (int i = 0; i < 100 && closes == before; i++)
        turns(1);
    CHECK_EQ(closes, before + 1);
    CHECK_EQ(sev.count[LOOM_EV_TCP_ERROR], 0);

    /* A peer that does not speak xor: one error, with its message. */
    accepts = 0;
    fd = raw_connect(port);
    CHECK_EQ(send(fd, "GET", 3, 0), 3);
    for (int i = 0; i < 100 && closes == before + 1; i++)
        turns(1);
    CHECK_EQ(closes, before + 2);
    CHECK_EQ(sev.count[LOOM_EV_TCP_ERROR], 1);
    CHECK_EQ(sev.last_code, LOOM_EPROTO);
    CHECK(strstr(srv_msg, "bad handshake") != NULL);
    CHECK_EQ(accepts, 0);
    raw_read(fd, b, 1); /* its hello, then the end */
    CHECK(recv(fd, b, sizeof b, 0) == 0);
    close(fd);
}

/* --- Phase 3: a large xor transfer with backpressure ----------------------------- */
#define BIG   (16u << 20)
#define CHUNK (64u << 10)
static size_t big_sent, big_got;
static uint64_t big_fnv_sent = TCP_FNV_INIT, big_fnv_got = TCP_FNV_INIT;
static loom_timer_t *resume_timer;
static loom_socket_t *big_srv;

static void big_pump(loom_socket_t *s)
{
    static unsigned char chunk[CHUNK];
    while (big_sent < BIG) {
        for (size_t i = 0; i < CHUNK; i++)
            chunk[i] = tcp_pattern(big_sent + i);
        big_fnv_sent = tcp_fnv(big_fnv_sent, chunk, CHUNK);
        big_sent += CHUNK;
        int r = loom_socket_write(s, chunk, CHUNK);
        CHECK(r >= 0);
        if (r == 1)
            return; /* high water: on_drain goes on */
    }
}

static void big_cli_connect(loom_socket_t *s, void *data)
{
    big_pump(s);
}

static void big_cli_drain(loom_socket_t *s, void *data)
{
    drains++;
    big_pump(s);
}

static void big_resume(loom_timer_t *t, void *data)
{
    CHECK_OK(loom_socket_enable(big_srv, LOOM_READABLE));
}

static void big_srv_accept(loom_socket_t *s, void *data)
{
    big_srv = s;
}

static void big_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    size_t before = big_got;
    big_fnv_got = tcp_fnv(big_fnv_got, b, n);
    big_got += n;
    if (big_got == BIG) {
        CHECK_OK(loom_socket_close(s));
        return;
    }
    /* Pause for a moment every MiB: the sender's queue fills up. */
    if (before / (1u << 20) != big_got / (1u << 20)) {
        CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
        loom_timer_start(resume_timer, 20, 0);
    }
}

static void big_cli_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    done = 1;
}

static loom__sock_class big_srv_cls =
    TEST_CLASS(.on_connect = big_srv_accept, .on_read = big_srv_read);
static loom__sock_class big_cli_cls =
    TEST_CLASS(.on_connect = big_cli_connect, .on_drain = big_cli_drain, .on_event = big_cli_event,
               .high_water = 256u << 10, .low_water = 64u << 10);

static void phase_big(void)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom__tcp_server_cls(loop, "127.0.0.1", 0, NULL, &big_srv_cls, &srv));
    CHECK_OK(loom_timer_new(loop, &resume_timer, big_resume, NULL));
    done = 0;
    int before = closes;
    CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", loom_tcp_server_port(srv), NULL, &big_cli_cls,
                                   NULL));
    tcp_run_until(loop, &done, 20000);
    CHECK(done);
    turns(2);
    CHECK_EQ(big_got, BIG);
    CHECK(big_fnv_got == big_fnv_sent);
    CHECK(drains > 0);
    CHECK_EQ(closes, before + 2);
    loom_timer_close(resume_timer);
    loom_tcp_server_close(srv);
}

/* --- Phase 4: split, bytes held across a pause --------------------------------- */
static char held_buf[64];
static size_t held_len;
static int paused, reads_while_paused, held_reads;
static loom_timer_t *held_timer;

static void held_resume(loom_timer_t *t, void *data)
{
    loom_socket_t *s = data;
    paused = 0;
    CHECK_OK(loom_socket_enable(s, LOOM_READABLE));
}

static void held_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    if (paused)
        reads_while_paused++;
    held_reads++;
    memcpy(held_buf + held_len, b, n);
    held_len += n;
    if (held_reads == 1) {
        /* The transport still holds the rest of this read. */
        paused = 1;
        CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
        CHECK_OK(loom_timer_new(loop, &held_timer, held_resume, s));
        loom_timer_start(held_timer, 30, 0);
    }
    if (held_len == 20) {
        CHECK(memcmp(held_buf, "0123456789abcdefWXYZ", 20) == 0);
        CHECK_OK(loom_socket_close(s));
        done = 1;
    }
}

static void held_cli_connect(loom_socket_t *s, void *data)
{
    CHECK_EQ(loom_socket_write(s, "0123456789abcdef", 16), 0);
}

static void held_late(loom_timer_t *t, void *data)
{
    /* Newer bytes, sent while the server is paused. */
    CHECK_EQ(loom_socket_write(data, "WXYZ", 4), 0);
    loom_timer_close(t);
}

static void held_cli_connected(loom_socket_t *s, void *data)
{
    held_cli_connect(s, data);
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, held_late, s));
    loom_timer_start(t, 10, 0);
}

static loom__sock_class held_srv_cls = TEST_CLASS(.on_read = held_srv_read);
static loom__sock_class held_cli_cls = TEST_CLASS(.on_connect = held_cli_connected);

static void phase_held(void)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom__tcp_server_cls(loop, "127.0.0.1", 0, NULL, &held_srv_cls, &srv));
    done = 0;
    int before = closes;
    CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", loom_tcp_server_port(srv), NULL,
                                   &held_cli_cls, NULL));
    tcp_run_until(loop, &done, 3000);
    CHECK(done);
    for (int i = 0; i < 100 && closes < before + 2; i++)
        turns(1);
    CHECK_EQ(reads_while_paused, 0);
    CHECK(held_reads >= 3); /* half, the held half after the resume, the rest */
    CHECK_EQ(closes, before + 2);
    loom_timer_close(held_timer);
    loom_tcp_server_close(srv);
}

/* --- Phase 5: water marks count application bytes ------------------------------ */
static int marks_drains;
static size_t marks_got;
static loom_socket_t *marks_cli;

static void marks_connect(loom_socket_t *s, void *data)
{
    marks_cli = s;
}

static void marks_drain(loom_socket_t *s, void *data)
{
    marks_drains++;
}

static void marks_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    for (size_t i = 0; i < n; i++)
        CHECK_EQ((unsigned char)b[i], (unsigned char)((marks_got + i) & 0xff));
    marks_got += n;
    if (marks_got == 1100)
        CHECK_OK(loom_socket_close(s));
}

static loom__sock_class marks_srv_cls = TEST_CLASS(.on_read = marks_read);
static loom__sock_class marks_cli_cls =
    TEST_CLASS(.on_connect = marks_connect, .on_drain = marks_drain, .high_water = 1000,
               .low_water = 100);

static void phase_marks(void)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom__tcp_server_cls(loop, "127.0.0.1", 0, NULL, &marks_srv_cls, &srv));
    int before = closes;
    CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", loom_tcp_server_port(srv), NULL,
                                   &marks_cli_cls, NULL));
    for (int i = 0; i < 300 && marks_cli == NULL; i++)
        turns(1);
    CHECK(marks_cli != NULL);
    /* Nothing leaves while writing is off: 600 application bytes are 1,200
     * on the wire, above high water (1,000) as wire bytes but not as the
     * application's. */
    CHECK_OK(loom_socket_disable(marks_cli, LOOM_WRITABLE));
    unsigned char buf[600];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i & 0xff);
    CHECK_EQ(loom_socket_write(marks_cli, buf, 600), 0);
    CHECK_EQ(loom_socket_queued(marks_cli), 600);
    for (size_t i = 0; i < 500; i++)
        buf[i] = (unsigned char)((600 + i) & 0xff);
    CHECK_EQ(loom_socket_write_ref(marks_cli, buf, 500, NULL, NULL), 1); /* 1,100: high water */
    CHECK_EQ(loom_socket_queued(marks_cli), 1100);
    CHECK_EQ(marks_drains, 0);
    CHECK_OK(loom_socket_enable(marks_cli, LOOM_WRITABLE));
    for (int i = 0; i < 300 && (marks_drains == 0 || marks_got < 1100); i++)
        turns(1);
    CHECK_EQ(marks_drains, 1);
    CHECK_EQ(loom_socket_queued(marks_cli), 0);
    CHECK_EQ(marks_got, 1100);
    CHECK_OK(loom_socket_close(marks_cli));
    for (int i = 0; i < 100 && closes < before + 2; i++)
        turns(1);
    CHECK_EQ(closes, before + 2);
    loom_tcp_server_close(srv);
}

/* --- Phase 6: the transport's own writes and its shutdown ---------------------- */
static int hs_connects;
static void hs_connect(loom_socket_t *s, void *data)
{
    hs_connects++;
}
static loom__sock_class hs_cli_cls = TEST_CLASS(.on_connect = hs_connect);

/* Whether the raw fd has anything to read (bytes or its end) after a few
 * turns of the loop. */
static bool raw_readable(int fd)
{
    turns(5);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* An xor client against a raw server:
 *  - the application disables writing before the handshake: the hello (the
 *    transport's own bytes) goes out all the same;
 *  - a write and a shutdown during the handshake are held: no byte and no
 *    end reach the peer, not even after the handshake while writing stays
 *    disabled;
 *  - once writing is enabled: the write, then the close notify (the
 *    transport's shutdown hook), then the end, in that order. */
static void phase_shutdown(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(lfd, 1) == 0);
    socklen_t alen = sizeof a;
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    loom_socket_t *cs;
    CHECK_OK(loom__tcp_connect_cls(loop, "127.0.0.1", ntohs(a.sin_port), NULL, &hs_cli_cls, &cs));
    CHECK_OK(loom_socket_disable(cs, LOOM_WRITABLE));
    int fd = -1;
    for (int i = 0; i < 100 && fd < 0; i++) {
        turns(1);
        struct pollfd p = {.fd = lfd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1)
            fd = accept(lfd, NULL, NULL);
    }
    CHECK(fd >= 0);
    unsigned char b[16];
    raw_read(fd, b, 1);
    CHECK_EQ(b[0], 0x5a); /* the hello, although the application disabled writing */
    CHECK_EQ(hs_connects, 0);
    CHECK_EQ(loom_socket_write(cs, "hi", 2), 0);
    CHECK_OK(loom_socket_shutdown(cs));
    CHECK(!raw_readable(fd)); /* held by the handshake: no bytes, no end */
    unsigned char hello = 0x5a;
    CHECK_EQ(send(fd, &hello, 1, 0), 1);
    for (int i = 0; i < 100 && hs_connects == 0; i++)
        turns(1);
    CHECK_EQ(hs_connects, 1);
    CHECK(!raw_readable(fd)); /* up, but writing is disabled: still nothing */
    CHECK_OK(loom_socket_enable(cs, LOOM_WRITABLE));
    raw_read(fd, b, 6);
    const unsigned char want[6] = {'h' ^ 0xa5, 'h' ^ 0xa5, 'i' ^ 0xa5, 'i' ^ 0xa5, 0xb0, 0x0b};
    CHECK(memcmp(b, want, 6) == 0);
    CHECK(raw_readable(fd));
    CHECK_EQ(recv(fd, b, sizeof b, 0), 0); /* the end came after the close notify */
    int before = closes;
    close(fd); /* the client reads the end and closes */
    for (int i = 0; i < 100 && closes == before; i++)
        turns(1);
    CHECK_EQ(closes, before + 1);
    close(lfd);
}

int main(void)
{
    test_timeout(30);
    loop = test_loop_new();
    loom__class_set_transport(&srv_cls, &loom__transport_xor);
    loom__class_set_transport(&cli_cls, &loom__transport_xor);
    loom__class_set_transport(&big_srv_cls, &loom__transport_xor);
    loom__class_set_transport(&big_cli_cls, &loom__transport_xor);
    loom__class_set_transport(&held_srv_cls, &loom__transport_split);
    loom__class_set_transport(&held_cli_cls, &loom__transport_split);
    loom__class_set_transport(&marks_srv_cls, &loom__transport_xor);
    loom__class_set_transport(&marks_cli_cls, &loom__transport_xor);
    loom__class_set_transport(&hs_cli_cls, &loom__transport_xor);
    loom_timer_t *tick;
    CHECK_OK(loom_interval(loop, 10, on_tick, NULL, &tick));
    loom_tcp_server_t *srv;
    CHECK_OK(loom__tcp_server_cls(loop, "127.0.0.1", 0, NULL, &srv_cls, &srv));
    int port = loom_tcp_server_port(srv);
    phase_echo(port);
    phase_raw(port);
    loom_tcp_server_close(srv);
    phase_big();
    phase_held();
    phase_marks();
    phase_shutdown();
    loom_timer_close(tick);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(closes, 11);
    test_loop_free_clean(loop);
    return 0;
}
