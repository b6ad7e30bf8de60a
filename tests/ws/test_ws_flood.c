/* test_ws_flood: a peer that floods pings and never reads must meet a
 * bounded send queue. A raw client (small receive buffer) sends 60,000
 * pings (about 7.9 MB) without reading; the server's pongs fill the kernel's
 * buffers and then its queue, and from high water on loom holds only the
 * pong of the latest ping (RFC 6455 section 5.5.3) and sends it on drain.
 * The queue seen from on_ping never exceeds high water plus one frame
 * (before the fix it held every pong: megabytes, and gigabytes for a longer
 * flood). Then the client reads: the pong of the last ping and the echo of a
 * text message arrive, and a clean close ends the connection (1000 on both
 * sides, no error event). The loop ends clean. */
#include <pthread.h>
#include <stdatomic.h>

#include "ws_test.h"

#define HIGH  (64 * 1024)
#define PINGS 60000
#define PLEN  125

static loom_loop_t *loop;
static loom_http_server_t *srv;
static atomic_int port_, nerr, nclose, close_code, npings;
static atomic_size_t max_queued;

static void on_message(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len, void *d)
{
    (void)d;
    CHECK(loom_ws_send(ws, type, msg, len) >= 0);
}

static void on_ping(loom_ws_t *ws, const char *p, size_t n, void *d)
{
    (void)p, (void)n, (void)d;
    size_t q = loom_ws_queued(ws);
    if (q > max_queued)
        max_queued = q;
    npings++;
}

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (loom_event_kind_is(ev->kind, LOOM_EV_ERROR)) {
        fprintf(stderr, "server event: %s\n", ev->msg);
        nerr++;
    }
}

static void on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)reason, (void)rl, (void)d;
    close_code = code;
    nclose++;
}

static const loom_ws_opts wopts = {.on_message = on_message,
                                   .on_ping = on_ping,
                                   .on_event = on_event,
                                   .on_close = on_close,
                                   .high_water = HIGH,
                                   .low_water = HIGH / 4};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK_OK(loom_ws_accept(req, &wopts, NULL));
}

static void on_stop(void *d)
{
    (void)d;
    loom_http_server_close(srv, 0, NULL);
}

static void *server_main(void *arg)
{
    (void)arg;
    loop = test_loop_new();
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    port_ = loom_http_server_port(srv);
    loom_run(loop, LOOM_RUN_DEFAULT);
    return NULL;
}

static unsigned char sbuf[PINGS / 100 * (PLEN + 6)], pbuf[1 << 16];

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, server_main, NULL) == 0);
    while (port_ == 0)
        usleep(1000);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char head[1024];
    CHECK_EQ(ws_raw_handshake(fd, NULL, head, sizeof head), 101);

    /* The flood, in batches of 100 pings, never reading. */
    unsigned char pl[PLEN];
    memset(pl, 'p', sizeof pl);
    for (int b = 0; b < PINGS / 100; b++) {
        size_t n = 0;
        for (int i = 0; i < 100; i++)
            n += ws_frame_enc(sbuf + n, 0x89, true, pl, sizeof pl);
        ws_raw_send(fd, sbuf, n);
    }
    size_t n = ws_frame_enc(sbuf, 0x89, true, "last", 4);
    n += ws_frame_enc(sbuf + n, 0x81, true, "end", 3);
    ws_raw_send(fd, sbuf, n);
    for (int i = 0; i < 10000 && npings < PINGS + 1; i++)
        usleep(1000);
    CHECK_EQ(npings, PINGS + 1);
    fprintf(stderr, "largest queue seen: %zu bytes (high water %d)\n", (size_t)max_queued, HIGH);
    CHECK(max_queued <= HIGH + PLEN + 2);

    /* Now it reads: the last ping's pong and the echo arrive. */
    bool got_last = false, got_end = false;
    int frames = 0;
    while (!got_last || !got_end) {
        size_t len;
        int b0 = ws_raw_read_frame(fd, pbuf, sizeof pbuf, &len);
        CHECK(b0 >= 0);
        frames++;
        if (b0 == 0x8A && len == 4 && memcmp(pbuf, "last", 4) == 0)
            got_last = true;
        else if (b0 == 0x81 && len == 3 && memcmp(pbuf, "end", 3) == 0)
            got_end = true;
        else
            CHECK(b0 == 0x8A && len == PLEN);
    }
    fprintf(stderr, "%d frames back for %d pings\n", frames, PINGS + 1);
    n = ws_frame_enc(sbuf, 0x88, true, "\x03\xe8", 2);
    ws_raw_send(fd, sbuf, n);
    size_t len;
    CHECK_EQ(ws_raw_read_frame(fd, pbuf, sizeof pbuf, &len), 0x88);
    close(fd);
    for (int i = 0; i < 5000 && nclose == 0; i++)
        usleep(1000);
    CHECK_EQ(nclose, 1);
    CHECK_EQ(close_code, 1000);
    CHECK_EQ(nerr, 0);
    CHECK_OK(loom_post(loop, (loom_post_fn)on_stop, NULL));
    pthread_join(th, NULL);
    test_loop_free_clean(loop);
    return 0;
}
