/* test_ws_fragment_limits: the limits of a streaming receiver (on_fragment),
 * loom client against loom server in one loop. The server streams with
 * max_message 64 KiB and max_frame 128 KiB:
 * 1. An uncompressed message of 400 KiB in four frames of 100 KiB: every
 *    frame is delivered, fin on the last (max_message does not apply).
 * 2. The same message compressed (permessage-deflate): delivered as well;
 *    the inflater's bound is per frame, not per message.
 * 3. One compressed frame that inflates to exactly max_frame: delivered.
 * 4. A bomb: one compressed frame of max_frame + 1 zeros (a few hundred
 *    bytes on the wire) fails with 1009 and a websocket error event naming
 *    the peer and the limit; so does 1 MiB of zeros.
 * Every loop ends clean. */
#include "ws_test.h"

#define MAX_MESSAGE (64 * 1024)
#define MAX_FRAME   (128 * 1024)
#define PIECE       (100 * 1024)

static loom_http_server_t *srv;
static int port;
static int s_close, s_code, s_err, c_close, c_opened;
static char s_msg[256];
static size_t s_total, s_max_piece;
static int s_frames, s_fin, s_bad;
static char *data;

static void s_on_fragment(loom_ws_t *ws, loom_ws_type_t t, const char *p, size_t n, bool fin,
                          void *d)
{
    (void)ws, (void)d;
    if (t != LOOM_WS_BINARY || memcmp(p, data + s_total, n) != 0)
        s_bad++;
    s_total += n;
    if (n > s_max_piece)
        s_max_piece = n;
    s_frames++;
    if (fin)
        s_fin++;
}

static void s_on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_WS_ERROR) {
        s_err++;
        snprintf(s_msg, sizeof s_msg, "%s", ev->msg);
    }
}

static void s_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    s_close++;
    s_code = code;
}

static const loom_ws_opts s_opts = {.on_fragment = s_on_fragment,
                                    .on_event = s_on_event,
                                    .on_close = s_on_close,
                                    .max_message = MAX_MESSAGE,
                                    .max_frame = MAX_FRAME,
                                    .deflate = true};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK_OK(loom_ws_accept(req, &s_opts, NULL));
}

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)ws, (void)d;
    c_opened++;
}

static void c_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)code, (void)r, (void)rl, (void)d;
    c_close++;
}

static void c_noop(loom_ws_t *ws, loom_ws_type_t t, const char *m, size_t n, void *d)
{
    (void)ws, (void)t, (void)m, (void)n, (void)d;
}

static loom_ws_t *connect_client(loom_loop_t *loop, bool deflate)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    loom_ws_t *c;
    int opened = c_opened;
    CHECK_OK(loom_ws_connect(
        loop, url,
        &(loom_ws_opts){
            .on_open = c_on_open, .on_close = c_on_close, .on_message = c_noop, .deflate = deflate},
        &c));
    while (c_opened == opened)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(loom_ws_compressed(c), deflate);
    s_total = s_max_piece = 0;
    s_frames = s_fin = s_bad = 0;
    return c;
}

/* Sends data[0..4 * PIECE) in four frames and checks the server got them. */
static void four_frames(loom_loop_t *loop, bool deflate)
{
    loom_ws_t *c = connect_client(loop, deflate);
    CHECK(loom_ws_send_begin(c, LOOM_WS_BINARY, data, PIECE) >= 0);
    CHECK(loom_ws_send_cont(c, data + PIECE, PIECE) >= 0);
    CHECK(loom_ws_send_cont(c, data + 2 * PIECE, PIECE) >= 0);
    CHECK(loom_ws_send_end(c, data + 3 * PIECE, PIECE) >= 0);
    int closed = s_close;
    while (s_fin == 0 && s_close == closed)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    if (s_close != closed || s_err || s_bad || s_total != 4 * PIECE || s_frames != 4) {
        fprintf(stderr, "deflate %d: closed %d (%d) err \"%s\" bad %d total %zu frames %d\n",
                deflate, s_close - closed, s_code, s_msg, s_bad, s_total, s_frames);
        exit(1);
    }
    CHECK(s_max_piece <= MAX_FRAME);
    int cc = c_close;
    CHECK_OK(loom_ws_close(c, 1000, NULL));
    while (s_close == closed || c_close == cc)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(s_code, 1000);
}

/* One compressed frame of n zeros: delivered if n <= MAX_FRAME, else 1009. */
static void zeros_frame(loom_loop_t *loop, size_t n)
{
    char *z = calloc(1, n);
    CHECK(z != NULL);
    char *saved = data;
    data = z;
    loom_ws_t *c = connect_client(loop, true);
    CHECK(loom_ws_send(c, LOOM_WS_BINARY, z, n) >= 0);
    int closed = s_close, errs = s_err;
    while (s_fin == 0 && s_close == closed)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    if (n <= MAX_FRAME) {
        CHECK_EQ(s_close, closed);
        CHECK_EQ(s_total, n);
        CHECK_EQ(s_bad, 0);
        int cc = c_close;
        CHECK_OK(loom_ws_close(c, 1000, NULL));
        while (s_close == closed || c_close == cc)
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    } else {
        while (c_close == 0 || s_close == closed)
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        CHECK_EQ(s_code, 1009);
        CHECK_EQ(s_err, errs + 1);
        CHECK_EQ(s_total, 0);
        char lim[32];
        snprintf(lim, sizeof lim, "%d bytes", MAX_FRAME);
        if (strstr(s_msg, "inflates to more than") == NULL || strstr(s_msg, lim) == NULL ||
            strstr(s_msg, "127.0.0.1:") == NULL) {
            fprintf(stderr, "bomb of %zu: \"%s\"\n", n, s_msg);
            exit(1);
        }
    }
    data = saved;
    free(z);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    loom_loop_t *loop = test_loop_new();
    loom_timer_t *tick = ws_ticker(loop);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    port = loom_http_server_port(srv);
    /* Compressible but not trivial: numbered text lines. */
    data = malloc(4 * PIECE + 64);
    CHECK(data != NULL);
    for (size_t off = 0, i = 0; off < 4 * PIECE; i++)
        off += (size_t)snprintf(data + off, 64, "line %zu of the streamed message\n", i);

    four_frames(loop, false);
    four_frames(loop, true);
    zeros_frame(loop, MAX_FRAME);
    c_close = 0;
    zeros_frame(loop, MAX_FRAME + 1);
    c_close = 0;
    zeros_frame(loop, 1 << 20);

    free(data);
    loom_timer_close(tick);
    loom_http_server_close(srv, 0, NULL);
    CHECK(loom_run(loop, LOOM_RUN_DEFAULT) >= 0);
    test_loop_free_clean(loop);
    printf("ws fragment limits: ok\n");
    return 0;
}
