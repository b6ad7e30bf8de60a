/* test_tls_marks: the water marks of small writes on a TLS socket whose
 * peer does not read. The server writes 100-byte buffers to a client that
 * has disabled reading (small kernel buffers on both ends, set through
 * loom_socket_fd()): each becomes a record queued behind the last one,
 * copied into the same queue block. loom_socket_write() must return 1 once
 * the application bytes queued reach high_water (64 KiB), within the kernel's
 * buffers plus high water, and loom_socket_queued() must say the same. Then
 * the client reads: on_drain runs, every byte arrives in order, the queue
 * count is back to 0, and a close ends both ends clean.
 *
 * Before the fix, a write copied into the queue's last block was not
 * counted (only a new block's first write was): about 10 MB of records were
 * queued before the first 1, so a peer that stopped reading grew the queue
 * of a TLS connection (HTTPS pipelining, wss echo, ping floods) far past
 * high water, and loom_socket_queued() wrapped around once the block went
 * out. */
#include "tls_test_util.h"

#define HIGH  (64 * 1024)
#define CHUNK 100
#define LIMIT (HIGH + 2 * 1024 * 1024) /* high water plus the kernel's part, generously */

static loom_socket_t *srv_sock, *cli_sock;
static int connected, drains, cli_closed, srv_closed, events;
static uint64_t written, rcvd;
static bool bad_byte;

static unsigned char pat(uint64_t i)
{
    return (unsigned char)(i * 7 + (i >> 8));
}

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)d;
    srv_sock = s;
    int small = 4096;
    setsockopt(loom_socket_fd(s), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    connected++;
}

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)d;
    cli_sock = s;
    CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
    connected++;
}

static void cli_read(loom_socket_t *s, const char *buf, size_t len, void *d)
{
    (void)s, (void)d;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] != pat(rcvd + i))
            bad_byte = true;
    rcvd += len;
}

static void srv_read(loom_socket_t *s, const char *buf, size_t len, void *d)
{
    (void)s, (void)buf, (void)len, (void)d;
}

static void srv_drain(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    drains++;
}

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (loom_event_kind_is(ev->kind, LOOM_EV_ERROR)) {
        fprintf(stderr, "event: %s\n", ev->msg);
        events++;
    }
}

static void cli_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    cli_closed++;
}

static void srv_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    srv_closed++;
}

static int two(void)
{
    return connected == 2;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL), *cctx = tls_client_ctx(NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = sctx,
                                                     .on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_drain = srv_drain,
                                                     .on_event = on_event,
                                                     .on_close = srv_close,
                                                     .high_water = HIGH,
                                                     .low_water = HIGH / 4},
                             &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.tls = cctx,
                                               .server_name = "localhost",
                                               .on_connect = cli_connect,
                                               .on_read = cli_read,
                                               .on_event = on_event,
                                               .on_close = cli_close},
                              NULL));
    loom_tls_ctx_free(sctx);
    loom_tls_ctx_free(cctx);
    volatile int flag = 0;
    for (int i = 0; i < 2000 && !two(); i++) {
        flag = two();
        tls_run_until(loop, &flag, 5);
    }
    CHECK(two());
    int small = 4096;
    setsockopt(loom_socket_fd(cli_sock), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);

    /* Small writes until the first 1 (the kernel takes some first). */
    unsigned char buf[CHUNK];
    int r = 0;
    while (r == 0 && written < LIMIT) {
        for (int i = 0; i < CHUNK; i++)
            buf[i] = pat(written + (uint64_t)i);
        r = loom_socket_write(srv_sock, buf, CHUNK);
        CHECK(r >= 0);
        written += CHUNK;
        if ((written % (64 * CHUNK)) == 0)
            loom_run(loop, LOOM_RUN_NOWAIT); /* the kernel's buffers fill */
    }
    size_t q = loom_socket_queued(srv_sock);
    fprintf(stderr, "first 1 after %llu bytes in %d-byte writes; queued %zu (high water %d)\n",
            (unsigned long long)written, CHUNK, q, HIGH);
    CHECK_EQ(r, 1);
    CHECK(q >= HIGH && q < HIGH + CHUNK);

    /* The client reads: the queue drains (on_drain), everything arrives. */
    CHECK_OK(loom_socket_enable(cli_sock, LOOM_READABLE));
    uint64_t end = tls_now_ms() + 20000;
    while ((rcvd < written || drains == 0) && tls_now_ms() < end) {
        flag = 0;
        tls_run_until(loop, &flag, 5);
    }
    CHECK_EQ(rcvd, written);
    CHECK(!bad_byte);
    CHECK(drains >= 1);
    CHECK_EQ(loom_socket_queued(srv_sock), 0);

    /* A clean end: close_notify, then each side closes once. */
    loom_socket_close(srv_sock);
    end = tls_now_ms() + 5000;
    while (!cli_closed && tls_now_ms() < end) {
        flag = 0;
        tls_run_until(loop, &flag, 5);
    }
    if (!cli_closed)
        loom_socket_close(cli_sock);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(srv_closed, 1);
    CHECK_EQ(cli_closed, 1);
    CHECK_EQ(events, 0);
    test_loop_free_clean(loop);
    return 0;
}
