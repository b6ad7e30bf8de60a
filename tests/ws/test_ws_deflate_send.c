/* test_ws_deflate_send: what loom sends with permessage-deflate, checked on
 * the wire and by real peers, with and without context takeover.
 * - Fragmented sends (loom_ws_send_begin/cont/end, an empty piece among
 *   them, and an empty message): a raw client checks RSV1 on the first frame
 *   only, inflates the frames as one stream (the tail stripped only at the
 *   end) with zlib, keeping its context across messages when context
 *   takeover was agreed, and checks the bytes and that they were compressed.
 * - Prepared messages and topic publish: without context takeover the
 *   compressed form is made once (two connections get the same bytes);
 *   with context takeover one of 4000 bytes is compressed for the
 *   connection and one of 200 bytes (below LOOM_WS_PREPARED_DEFLATE_MIN)
 *   goes uncompressed.
 * - Python's websockets (client) does the same with both settings and
 *   sends a fragmented compressed message of its own.
 * - loom's client against loom's server, both settings: a fragmented
 *   compressed message and a prepared message from the client (its mirror:
 *   client_no_context_takeover), echoed.
 * The server runs on its own thread (its zlib stream cache is freed when the
 * thread ends); both loops end clean. */
#include <pthread.h>
#include <zlib.h>

#include "ws_test.h"

#define TEXT_N 600 /* records in the test text: about 20 KB */

static char text[32 * 1024];
static size_t text_len;
static loom_loop_t *sloop;
static loom_http_server_t *srv;
static loom_ws_topics_t *topics;
static volatile int port_;
static loom_ws_prepared_t *p_big, *p_small;

static void make_text(void)
{
    size_t o = 0;
    for (int i = 0; i < TEXT_N; i++)
        o += (size_t)snprintf(text + o, sizeof text - o, "{\"id\":%d,\"text\":\"hello loom\"},", i);
    text_len = o;
}

/* The fragmented message the server sends for "frag". */
static const char frag_a[] = "fragment one, ";
static const char frag_c[] = " end";

static size_t frag_expected(char *out)
{
    memcpy(out, frag_a, sizeof frag_a - 1);
    memcpy(out + sizeof frag_a - 1, text, text_len);
    memcpy(out + sizeof frag_a - 1 + text_len, frag_c, sizeof frag_c - 1);
    return sizeof frag_a - 1 + text_len + sizeof frag_c - 1;
}

/* --- The server (its own thread) ----------------------------------------------- */

static void s_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    CHECK(loom_ws_compressed(ws));
    if (n == 4 && memcmp(m, "frag", 4) == 0) {
        CHECK(loom_ws_send_begin(ws, LOOM_WS_TEXT, frag_a, sizeof frag_a - 1) >= 0);
        CHECK_EQ(loom_ws_send(ws, LOOM_WS_TEXT, "no", 2), LOOM_ESTATE);
        CHECK(loom_ws_send_cont(ws, NULL, 0) >= 0);
        CHECK(loom_ws_send_cont(ws, text, text_len) >= 0);
        CHECK(loom_ws_send_end(ws, frag_c, sizeof frag_c - 1) >= 0);
    } else if (n == 10 && memcmp(m, "frag-empty", 10) == 0) {
        CHECK(loom_ws_send_begin(ws, LOOM_WS_BINARY, NULL, 0) >= 0);
        CHECK(loom_ws_send_end(ws, NULL, 0) >= 0);
    } else if (n == 4 && memcmp(m, "prep", 4) == 0) {
        CHECK(loom_ws_send_prepared(ws, p_big) >= 0);
        CHECK(loom_ws_send_prepared(ws, p_small) >= 0);
    } else if (n == 3 && memcmp(m, "sub", 3) == 0) {
        CHECK_OK(loom_ws_subscribe(topics, ws, "t"));
        CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "subscribed", 10) >= 0);
    } else if (n == 3 && memcmp(m, "pub", 3) == 0) {
        CHECK(loom_ws_publish(topics, "t", LOOM_WS_TEXT, text, 3000) >= 1);
    } else {
        CHECK(loom_ws_send(ws, type, m, n) >= 0);
    }
}

static const loom_ws_opts s_opts = {.on_message = s_on_message, .deflate = true};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK_OK(loom_ws_accept(req, &s_opts, NULL));
}

static void on_stop(void *d)
{
    (void)d;
    loom_http_server_close(srv, 0, NULL);
    loom_ws_topics_free(topics);
}

static void *server_main(void *arg)
{
    (void)arg;
    sloop = test_loop_new(); /* made on the thread that runs it (io_uring) */
    CHECK_OK(loom_http_server(sloop, "127.0.0.1", 0, on_request, NULL, &srv));
    CHECK_OK(loom_ws_topics_new(sloop, NULL, &topics));
    port_ = loom_http_server_port(srv);
    CHECK_OK(loom_run(sloop, LOOM_RUN_DEFAULT));
    return NULL;
}

/* --- The raw client ------------------------------------------------------------ */

typedef struct {
    int fd;
    int nct; /* no context takeover agreed (both ways) */
    z_stream zi;
} raw_t;

static void raw_open(raw_t *r, int nct)
{
    memset(r, 0, sizeof *r);
    r->fd = ws_raw_connect(port_);
    r->nct = nct;
    char head[1024];
    const char *ext = nct ? "Sec-WebSocket-Extensions: permessage-deflate; "
                            "server_no_context_takeover; client_no_context_takeover\r\n"
                          : "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    CHECK_EQ(ws_raw_handshake(r->fd, ext, head, sizeof head), 101);
    CHECK(strstr(head, "permessage-deflate") != NULL);
    CHECK((strstr(head, "server_no_context_takeover") != NULL) == (nct != 0));
    CHECK_EQ(inflateInit2(&r->zi, -15), Z_OK);
}

static void raw_close(raw_t *r)
{
    unsigned char f[16];
    size_t k = ws_frame_enc(f, 0x88, true, "\x03\xe8", 2);
    ws_raw_send(r->fd, f, k);
    unsigned char pl[256];
    size_t n;
    CHECK_EQ(ws_raw_read_frame(r->fd, pl, sizeof pl, &n), 0x88);
    close(r->fd);
    inflateEnd(&r->zi);
}

static void raw_say(raw_t *r, const char *s)
{
    unsigned char f[64];
    size_t k = ws_frame_enc(f, 0x81, true, s, strlen(s));
    ws_raw_send(r->fd, f, k);
}

static unsigned char wire[64 * 1024], plain[64 * 1024];

/* Reads one message: its frames' payloads gathered in wire[0..*wl) and,
 * when compressed, inflated into plain (else copied). Returns the first
 * frame's b0; *nframes counts its frames. */
static int raw_message(raw_t *r, size_t *wl, size_t *pl, int *nframes)
{
    int first = -1;
    *wl = 0;
    *nframes = 0;
    for (;;) {
        size_t n;
        int b0 = ws_raw_read_frame(r->fd, wire + *wl, sizeof wire - 4 - *wl, &n);
        CHECK(b0 >= 0);
        if (first < 0) {
            first = b0;
            CHECK((b0 & 0x0F) == 1 || (b0 & 0x0F) == 2);
        } else {
            CHECK_EQ(b0 & 0x7F, 0); /* continuation, and RSV1 on the first frame only */
        }
        (*nframes)++;
        *wl += n;
        if (b0 & 0x80)
            break;
    }
    if (!(first & 0x40)) {
        memcpy(plain, wire, *wl);
        *pl = *wl;
        return first;
    }
    /* The tail the sender stripped, then inflate the message at once. */
    memcpy(wire + *wl, "\x00\x00\xff\xff", 4);
    if (r->nct)
        CHECK_EQ(inflateReset(&r->zi), Z_OK);
    r->zi.next_in = wire;
    r->zi.avail_in = (uInt)(*wl + 4);
    r->zi.next_out = plain;
    r->zi.avail_out = sizeof plain;
    int z = inflate(&r->zi, Z_SYNC_FLUSH);
    CHECK(z == Z_OK || z == Z_BUF_ERROR);
    CHECK_EQ(r->zi.avail_in, 0);
    *pl = sizeof plain - r->zi.avail_out;
    return first;
}

static void raw_checks(int nct)
{
    static char want[64 * 1024];
    size_t wantl = frag_expected(want), wl, pl;
    int nf;
    raw_t a, b;
    raw_open(&a, nct);
    raw_open(&b, nct);
    for (int round = 0; round < 2; round++) { /* the second one uses the context */
        raw_say(&a, "frag");
        CHECK_EQ(raw_message(&a, &wl, &pl, &nf), 0x41);
        CHECK_EQ(nf, 4);
        CHECK(pl == wantl && memcmp(plain, want, pl) == 0);
        CHECK(wl < wantl / 4); /* compressed, and well */
    }
    raw_say(&a, "frag-empty");
    CHECK_EQ(raw_message(&a, &wl, &pl, &nf), 0x42);
    CHECK_EQ(nf, 2);
    CHECK_EQ(pl, 0);
    /* Echo of a small message, then of a compressible one. */
    raw_say(&a, "hello");
    CHECK_EQ(raw_message(&a, &wl, &pl, &nf), 0x81);
    CHECK(pl == 5 && memcmp(plain, "hello", 5) == 0);

    /* Prepared messages. */
    static unsigned char big_a[8192];
    size_t big_al = 0;
    for (int k = 0; k < 2; k++) {
        raw_t *r = k ? &b : &a;
        raw_say(r, "prep");
        CHECK_EQ(raw_message(r, &wl, &pl, &nf), 0xC1); /* 4000 bytes: compressed either way */
        CHECK(pl == 4000 && memcmp(plain, text, 4000) == 0);
        CHECK(wl < 2000);
        if (k == 0) {
            memcpy(big_a, wire, wl);
            big_al = wl;
        } else if (nct) {
            /* The shared form: the same bytes for both. */
            CHECK(wl == big_al && memcmp(wire, big_a, wl) == 0);
        }
        int b0 = raw_message(r, &wl, &pl, &nf);
        CHECK(pl == 200 && memcmp(plain, text, 200) == 0);
        if (nct) {
            CHECK_EQ(b0, 0xC1);
            CHECK(wl < 200);
        } else {
            CHECK_EQ(b0, 0x81); /* below LOOM_WS_PREPARED_DEFLATE_MIN: as it is */
        }
    }
    /* Topic publish to both. */
    raw_say(&a, "sub");
    CHECK_EQ(raw_message(&a, &wl, &pl, &nf) & 0x0F, 1);
    raw_say(&b, "sub");
    CHECK_EQ(raw_message(&b, &wl, &pl, &nf) & 0x0F, 1);
    raw_say(&a, "pub");
    for (int k = 0; k < 2; k++) {
        raw_t *r = k ? &b : &a;
        CHECK_EQ(raw_message(r, &wl, &pl, &nf), 0xC1);
        CHECK(pl == 3000 && memcmp(plain, text, 3000) == 0);
        if (k == 0) {
            memcpy(big_a, wire, wl);
            big_al = wl;
        } else if (nct) {
            CHECK(wl == big_al && memcmp(wire, big_a, wl) == 0);
        }
    }
    raw_close(&a);
    raw_close(&b);
}

/* --- Python's websockets --------------------------------------------------------- */

static const char py_client[] =
    "import asyncio, sys, websockets\n"
    "from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory\n"
    "text = ''.join('{\"id\":%d,\"text\":\"hello loom\"},' % i for i in range(600))\n"
    "async def run(uri, ext):\n"
    "    kw = {'extensions': [ext]} if ext else {}\n"
    "    async with websockets.connect(uri, max_size=None, **kw) as ws:\n"
    "        assert len(ws.extensions) == 1, ws.extensions\n"
    "        for _ in range(2):\n"
    "            await ws.send('frag')\n"
    "            assert await ws.recv() == 'fragment one, ' + text + ' end'\n"
    "        await ws.send('frag-empty')\n"
    "        assert await ws.recv() == b''\n"
    "        await ws.send('prep')\n"
    "        assert await ws.recv() == text[:4000]\n"
    "        assert await ws.recv() == text[:200]\n"
    "        await ws.send([text[:5000], '', text[5000:]])\n"
    "        assert await ws.recv() == text\n"
    "async def main():\n"
    "    uri = 'ws://127.0.0.1:%s/' % sys.argv[1]\n"
    "    await run(uri, None)\n"
    "    await run(uri, ClientPerMessageDeflateFactory(server_no_context_takeover=True,\n"
    "                   client_no_context_takeover=True))\n"
    "asyncio.run(main())\n";

static void python_checks(void)
{
    char pb[16];
    snprintf(pb, sizeof pb, "%d", port_);
    ws_child c;
    char *argv[] = {WS_PY, "-c", (char *)py_client, pb, NULL};
    ws_child_start(&c, argv);
    time_t t0 = time(NULL);
    while (!ws_child_done(&c)) {
        usleep(2000);
        CHECK(time(NULL) - t0 < 20);
    }
    CHECK_EQ(ws_child_code(&c), 0);
}

/* --- loom's client ------------------------------------------------------------- */

static int c_got, c_closed;
static loom_ws_prepared_t *c_prep;

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    CHECK(loom_ws_compressed(ws));
    CHECK(loom_ws_send_begin(ws, LOOM_WS_TEXT, text, 7000) >= 0);
    CHECK(loom_ws_send_cont(ws, NULL, 0) >= 0);
    CHECK(loom_ws_send_cont(ws, text + 7000, 7000) >= 0);
    CHECK(loom_ws_send_end(ws, text + 14000, text_len - 14000) >= 0);
    CHECK(loom_ws_send_prepared(ws, c_prep) >= 0);
    CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "frag", 4) >= 0);
}

static void c_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    CHECK_EQ(type, LOOM_WS_TEXT);
    if (c_got == 0)
        CHECK(n == text_len && memcmp(m, text, n) == 0);
    else if (c_got == 1)
        CHECK(n == 4000 && memcmp(m, text, n) == 0);
    else {
        static char want[64 * 1024];
        size_t wl = frag_expected(want);
        CHECK(n == wl && memcmp(m, want, n) == 0);
        CHECK_OK(loom_ws_close(ws, 1000, NULL));
    }
    c_got++;
}

static void c_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    CHECK_EQ(code, 1000);
    c_closed++;
}

static void loom_client_checks(int nct)
{
    loom_loop_t *loop = test_loop_new();
    loom_ws_opts co = {.on_open = c_on_open,
                       .on_message = c_on_message,
                       .on_close = c_on_close,
                       .deflate = true,
                       .deflate_opts = {.server_no_context_takeover = (uint8_t)nct,
                                        .client_no_context_takeover = (uint8_t)nct}};
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port_);
    c_got = c_closed = 0;
    CHECK_OK(loom_ws_prepared_new(LOOM_WS_TEXT, text, 4000, &c_prep));
    loom_ws_t *ws;
    CHECK_OK(loom_ws_connect(loop, url, &co, &ws));
    loom_timer_t *tick = ws_ticker(loop);
    ws_run_until(loop, &c_closed);
    CHECK_EQ(c_got, 3);
    loom_ws_prepared_unref(c_prep);
    loom_timer_close(tick);
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    make_text();
    CHECK_OK(loom_ws_prepared_new(LOOM_WS_TEXT, text, 4000, &p_big));
    CHECK_OK(loom_ws_prepared_new(LOOM_WS_TEXT, text, 200, &p_small));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, server_main, NULL) == 0);
    while (port_ == 0)
        usleep(1000);
    raw_checks(0);
    raw_checks(1);
    loom_client_checks(0);
    loom_client_checks(1);
    if (access(WS_PY, X_OK) == 0 && system(WS_PY " -c 'import websockets' 2>/dev/null") == 0)
        python_checks();
    else
        fprintf(stderr, "python3-websockets missing: the Python part is skipped\n");
    CHECK_OK(loom_post(sloop, (loom_post_fn)on_stop, NULL));
    pthread_join(th, NULL);
    loom_ws_prepared_unref(p_big);
    loom_ws_prepared_unref(p_small);
    test_loop_free_clean(sloop);
    return 0;
}
