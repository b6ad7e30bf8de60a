/* test_ws_idle: what an idle WebSocket connection costs the server, and that
 * the handshake's own SHA-1 and base64 are right.
 * 1. SHA-1 and base64 against known vectors (FIPS 180 examples, RFC 4648,
 *    RFC 6455's accept example), through the client and server handshake
 *    helpers' functions.
 * 2. A loom server; a thread opens raw connections (blocking sockets: they
 *    allocate nothing in this process's main heap). After a warm-up (2N
 *    HTTP connections at once, closed: the server's slabs, fd tables and
 *    backend arrays have grown), N keep-alive HTTP connections after one
 *    request each, then N WebSocket connections after their handshake (with
 *    a subprotocol, kept by the class, not the connection) and
 *    one 64-byte binary echo (N = 750, fewer if the fd limit is low). The
 *    server's heap in use (mallinfo2(), main arena: the loop thread's) is
 *    read between the phases: a WebSocket connection may cost at most 64
 *    bytes more than an HTTP one (loom_ws is 40; a per-socket class, kept
 *    buffers or a timer would show). Not checked under sanitizers or
 *    valgrind, whose allocators differ. Then two connections still echo,
 *    every one closes, on_close runs once each, and the loop ends clean.
 */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "ws_test.h"

void loom__ws_sha1(const void *data, size_t n, uint8_t out[20]);
size_t loom__ws_base64(const uint8_t *in, size_t n, char *out);
void loom__ws_accept_key(const char *key, size_t len, char out[29]);

#if defined(__SANITIZE_ADDRESS__)
#define WS_IDLE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WS_IDLE_SANITIZED 1
#endif
#endif
#ifndef WS_IDLE_SANITIZED
#define WS_IDLE_SANITIZED 0
#endif

static void hex(const uint8_t *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static void sha1_is(const char *in, size_t n, const char *want)
{
    uint8_t md[20];
    char h[41];
    loom__ws_sha1(in, n, md);
    hex(md, 20, h);
    CHECK_STR(h, want);
}

static void test_digests(void)
{
    sha1_is("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    sha1_is("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"; /* 56 bytes */
    sha1_is(two, strlen(two), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    static char a[1000000];
    memset(a, 'a', sizeof a);
    sha1_is(a, sizeof a, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    /* Every length around the block and padding boundaries agrees with
     * itself split differently: 55, 56, 63, 64, 65 bytes of 'a'. */
    sha1_is(a, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    sha1_is(a, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");

    char b[64];
    static const struct {
        const char *in, *out;
    } b64[] = {{"", ""},
               {"f", "Zg=="},
               {"fo", "Zm8="},
               {"foo", "Zm9v"},
               {"foob", "Zm9vYg=="},
               {"fooba", "Zm9vYmE="},
               {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof b64 / sizeof b64[0]; i++) {
        size_t n = loom__ws_base64((const uint8_t *)b64[i].in, strlen(b64[i].in), b);
        CHECK_EQ(n, strlen(b64[i].out));
        CHECK_STR(b, b64[i].out);
    }
    char acc[29];
    loom__ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

/* --- The idle connections -------------------------------------------------- */

static int port, nconns, *fds;
static _Atomic int phase;
static int n_open, n_close, n_msg, n_http;

static void s_on_message(loom_ws_t *ws, loom_ws_type_t t, const char *m, size_t n, void *d)
{
    (void)d;
    n_msg++;
    CHECK_STR(loom_ws_protocol(ws), "chat");
    CHECK(loom_ws_send(ws, t, m, n) >= 0);
}

static void s_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)code, (void)r, (void)rl, (void)d;
    n_close++;
}

static const char *const protos[] = {"superchat", "chat", NULL};
static loom_ws_opts s_opts = {
    .on_message = s_on_message, .on_close = s_on_close, .protocols = protos};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    size_t pl = 0;
    const char *path = loom_http_req_path(req, &pl);
    if (pl == 3 && memcmp(path, "/ws", 3) == 0) {
        CHECK_OK(loom_ws_accept(req, &s_opts, NULL));
        n_open++;
        return;
    }
    n_http++;
    loom_http_respond(req, 200, NULL, "ok", 2);
}

static void wait_phase(int p)
{
    time_t t0 = time(NULL);
    while (atomic_load(&phase) != p) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
        CHECK(time(NULL) - t0 < 30);
    }
}

static void echo(int fd, unsigned char tag)
{
    unsigned char msg[64], f[80], back[80];
    memset(msg, tag, sizeof msg);
    size_t fl = ws_frame_enc(f, 0x82, true, msg, sizeof msg);
    ws_raw_send(fd, f, fl);
    size_t bl = 0;
    CHECK_EQ(ws_raw_read_frame(fd, back, sizeof back, &bl), 0x82);
    CHECK_EQ(bl, sizeof msg);
    CHECK(memcmp(back, msg, sizeof msg) == 0);
}

/* Reads a response head (byte by byte: what follows is not ours yet). */
static void read_head(int fd, char *head, size_t cap)
{
    size_t hl = 0;
    while (hl < 4 || memcmp(head + hl - 4, "\r\n\r\n", 4) != 0) {
        CHECK(hl < cap - 1);
        ssize_t k = recv(fd, head + hl, 1, 0);
        CHECK(k == 1);
        hl++;
    }
    head[hl] = '\0';
}

/* A WebSocket connection after its handshake and one echo, or (ws false) a
 * keep-alive HTTP connection after one request. */
static int open_one(bool ws, unsigned char tag)
{
    static const char wreq[] =
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    static const char hreq[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    int fd = ws_raw_connect(port);
    char head[512];
    if (ws) {
        ws_raw_send(fd, wreq, sizeof wreq - 1);
        read_head(fd, head, sizeof head);
        CHECK(memcmp(head, "HTTP/1.1 101 ", 13) == 0);
        echo(fd, tag);
    } else {
        ws_raw_send(fd, hreq, sizeof hreq - 1);
        read_head(fd, head, sizeof head);
        CHECK(memcmp(head, "HTTP/1.1 200 ", 13) == 0);
        char body[2];
        CHECK(recv(fd, body, 2, MSG_WAITALL) == 2);
    }
    return fd;
}

/* The client thread: a warm-up (2N HTTP connections at once, then closed,
 * so that the server's slabs and tables have grown), N keep-alive HTTP
 * connections, N WebSocket connections, the echo check, the end. */
static void *client_main(void *arg)
{
    (void)arg;
    int n = nconns;
    for (int i = 0; i < 2 * n; i++)
        fds[i] = open_one(false, 0);
    for (int i = 0; i < 2 * n; i++)
        close(fds[i]);
    atomic_store(&phase, 1);
    wait_phase(2);
    for (int i = 0; i < n; i++)
        fds[i] = open_one(false, 0);
    atomic_store(&phase, 3);
    wait_phase(4);
    for (int i = n; i < 2 * n; i++)
        fds[i] = open_one(true, (unsigned char)i);
    atomic_store(&phase, 5);
    wait_phase(6);
    echo(fds[n], 0xA5);
    echo(fds[2 * n - 1], 0x5A);
    for (int i = 0; i < 2 * n; i++)
        close(fds[i]);
    atomic_store(&phase, 7);
    return NULL;
}

static void run_until_phase(loom_loop_t *loop, int p)
{
    time_t t0 = time(NULL);
    while (atomic_load(&phase) != p) {
        loom_run(loop, LOOM_RUN_ONCE);
        CHECK(time(NULL) - t0 < 30);
    }
    for (int i = 0; i < 5; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_idle(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    nconns = 750;
    if ((long)rl.rlim_cur < 4L * nconns + 64)
        nconns = (int)(((long)rl.rlim_cur - 64) / 4);
    if (nconns < 250)
        TEST_SKIP("the fd limit (%ld) is too low for the idle connections", (long)rl.rlim_cur);
    fds = calloc((size_t)(2 * nconns), sizeof *fds);

    loom_loop_t *loop = test_loop_new();
    loom_timer_t *tick = ws_ticker(loop);
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    port = loom_http_server_port(srv);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, client_main, NULL) == 0);

    run_until_phase(loop, 1);
    size_t m0 = heap_in_use();
    atomic_store(&phase, 2);
    run_until_phase(loop, 3);
    size_t m1 = heap_in_use();
    atomic_store(&phase, 4);
    run_until_phase(loop, 5);
    size_t m2 = heap_in_use();
    CHECK_EQ(n_open, nconns);
    CHECK_EQ(n_msg, nconns);
    CHECK_EQ(n_http, 3 * nconns);
    double http = ((double)m1 - (double)m0) / nconns;
    double ws = ((double)m2 - (double)m1) / nconns;
    const char *be = loom_loop_backend(loop);
    fprintf(stderr,
            "%s: heap growth per idle connection (slabs warm): HTTP keep-alive %.1f B, "
            "WebSocket %.1f B (%d of each)\n",
            be, http, ws, nconns);
    if (!WS_IDLE_SANITIZED && getenv("LOOM_TEST_TIME_FACTOR") == NULL) {
        /* A WebSocket connection is an HTTP one taken over: it adds loom_ws
         * (40 bytes, a 48-byte malloc chunk) and nothing else while idle
         * (its socket shares its class). */
        CHECK(ws - http <= 64);
    }
    atomic_store(&phase, 6);
    run_until_phase(loop, 7);
    time_t t0 = time(NULL);
    while (n_close < nconns) {
        loom_run(loop, LOOM_RUN_ONCE);
        CHECK(time(NULL) - t0 < 30);
    }
    CHECK_EQ(n_msg, nconns + 2);
    pthread_join(th, NULL);
    free(fds);
    loom_http_server_close(srv, 0, NULL);
    loom_timer_close(tick);
    loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(60);
    test_digests();
    test_idle();
    return 0;
}
