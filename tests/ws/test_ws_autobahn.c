/* test_ws_autobahn: loom's WebSocket server and client against an
 * Autobahn-style frame-level peer (tests/ws/ws_autobahn_peer.py, raw
 * sockets and hand-built frames in /usr/bin/python3), both directions.
 *
 * 1. The peer as the client (Autobahn's fuzzingclient) against loom's echo
 *    server, set up as loom-ws-echo is (permessage-deflate accepted, a
 *    reader that falls behind paused until its echoes drain), with a 1 MiB
 *    max_message: framing and length encodings, pings, reserved bits and
 *    opcodes, fragmentation, UTF-8 (every invalid sequence whole and in
 *    1-byte frames, fail-fast with the rest of the message withheld), close
 *    codes (every valid one echoed, every invalid one 1002), the limits
 *    (1009), masking, permessage-deflate negotiation (window bits 8-15 both
 *    ways, no context takeover; the server's messages are inflated with
 *    exactly the window it agreed to) with compressed and fragmented echoes
 *    (also cut at any byte into small frames), bad offers declined, RSV1 misuse, a bomb, and the
 * opening handshake's refusals (400, and 426 with Sec-WebSocket-Version, Upgrade and Connection:
 * upgrade).
 * 2. The peer as the server (Autobahn's fuzzingserver) for loom's client,
 *    one connection per case: echoes (masked), pongs, the close codes the
 *    client answers or fails with, the 101s it must refuse (bad Accept,
 *    unoffered subprotocol or extension, bad permessage-deflate parameters)
 *    and the ones it must take (lists over several lines, frames behind the
 *    101, every window the server may choose).
 * The peer checks each case's RFC 6455 / RFC 7692 outcome and exits 1 if
 * any fails (its lines are copied to stderr). Here: every connection's
 * on_close runs once, every websocket error event names the peer, the loops
 * end clean. */
#include <stdatomic.h>

#include "ws_test.h"

#define MAXMSG (1 << 20)

static const char peer_py[] = LOOM_SOURCE_DIR "/tests/ws/ws_autobahn_peer.py";
static int nerr, bad_event;

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_WS_ERROR) {
        nerr++;
        if (strstr(ev->msg, "websocket 127.0.0.1:") == NULL) {
            fprintf(stderr, "event without the peer: %s\n", ev->msg);
            bad_event++;
        }
    }
}

/* Copies what the child printed so far to stderr; false at its end. */
static bool child_output(ws_child *c)
{
    char buf[4096];
    struct pollfd p = {.fd = c->out, .events = POLLIN};
    while (poll(&p, 1, 0) > 0) {
        ssize_t k = read(c->out, buf, sizeof buf);
        if (k <= 0)
            return false;
        fwrite(buf, 1, (size_t)k, stderr);
    }
    return true;
}

/* Runs the loop in short slices until the child has exited (25 s at most),
 * copying its output. */
static void run_with_child(loom_loop_t *loop, ws_child *c)
{
    time_t t0 = time(NULL);
    while (!ws_child_done(c)) {
        loom_run(loop, LOOM_RUN_NOWAIT);
        child_output(c);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        CHECK(time(NULL) - t0 < 25);
    }
    while (child_output(c))
        ;
}

/* --- 1. loom's server ----------------------------------------------------------- */

static int s_open, s_close;

static void s_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    int r = loom_ws_send(ws, type, m, n);
    CHECK(r >= 0);
    if (r == 1)
        loom_ws_pause(ws); /* as loom-ws-echo: the peer reads slower than it writes */
}

static void s_on_drain(loom_ws_t *ws, void *d)
{
    (void)d;
    loom_ws_resume(ws);
}

static void s_on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)code, (void)d;
    CHECK(reason[rl] == '\0');
    s_close++;
}

static const loom_ws_opts s_opts = {.on_message = s_on_message,
                                    .on_drain = s_on_drain,
                                    .on_close = s_on_close,
                                    .on_event = on_event,
                                    .deflate = true,
                                    .max_message = MAXMSG};

static void s_on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    if (loom_ws_accept(req, &s_opts, NULL) == 0)
        s_open++;
}

static void server_side(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, s_on_request, NULL, &srv));
    char port[16], max[16];
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    snprintf(max, sizeof max, "%d", MAXMSG);
    ws_child c;
    char *argv[] = {WS_PY, (char *)peer_py, "server", port, max, NULL};
    ws_child_start(&c, argv);
    run_with_child(loop, &c);
    CHECK_EQ(ws_child_code(&c), 0);
    ws_child_stop(&c);
    loom_http_server_close(srv, 0, NULL);
    time_t t0 = time(NULL);
    while (s_close < s_open) {
        loom_run(loop, LOOM_RUN_NOWAIT);
        CHECK(time(NULL) - t0 < 10);
    }
    CHECK(s_open > 150);
    CHECK_EQ(s_close, s_open);
    CHECK(nerr > 50); /* the failures are events */
    CHECK_EQ(bad_event, 0);
    loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
}

/* --- 2. loom's client ------------------------------------------------------------- */

static loom_loop_t *cloop;
static int c_port, c_cases, c_refused, c_cur, c_open, c_close;

static void c_connect(void);

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)ws, (void)d;
    c_open++;
}

static void c_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    CHECK(loom_ws_send(ws, type, m, n) >= 0);
}

static void c_on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)code, (void)d;
    CHECK(reason[rl] == '\0');
    c_close++;
    if (++c_cur < c_cases)
        c_connect();
}

static const loom_ws_opts c_opts = {.on_open = c_on_open,
                                    .on_message = c_on_message,
                                    .on_close = c_on_close,
                                    .on_event = on_event,
                                    .deflate = true,
                                    .max_message = 4 * MAXMSG,
                                    .close_timeout_ms = 2000};

static void c_connect(void)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/case/%d", c_port, c_cur);
    CHECK_OK(loom_ws_connect(cloop, url, &c_opts, NULL));
}

static void client_side(void)
{
    ws_child c;
    char *argv[] = {WS_PY, (char *)peer_py, "client", NULL};
    ws_child_start(&c, argv);
    /* "PORT NCASES NREFUSED" */
    char line[64] = {0};
    size_t n = 0;
    while (n < sizeof line - 1) {
        struct pollfd p = {.fd = c.out, .events = POLLIN};
        CHECK(poll(&p, 1, 10000) > 0);
        CHECK(read(c.out, line + n, 1) == 1);
        if (line[n] == '\n')
            break;
        n++;
    }
    CHECK(sscanf(line, "%d %d %d", &c_port, &c_cases, &c_refused) == 3);
    CHECK(c_port > 0 && c_cases > 50 && c_refused > 5);
    cloop = test_loop_new();
    nerr = 0;
    c_connect();
    run_with_child(cloop, &c);
    CHECK_EQ(ws_child_code(&c), 0);
    ws_child_stop(&c);
    time_t t0 = time(NULL);
    while (c_close < c_cases) {
        loom_run(cloop, LOOM_RUN_NOWAIT);
        CHECK(time(NULL) - t0 < 10);
    }
    CHECK_EQ(c_close, c_cases);
    CHECK_EQ(c_open, c_cases - c_refused);
    CHECK(nerr >= c_refused);
    CHECK_EQ(bad_event, 0);
    loom_run(cloop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(cloop);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    if (access(WS_PY, X_OK) != 0)
        TEST_SKIP("%s is missing", WS_PY);
    server_side();
    client_side();
    printf("ok\n");
    return 0;
}
