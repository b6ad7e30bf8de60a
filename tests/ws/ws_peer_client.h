/* tests/ws/ws_peer_client.h - the script loom's client plays against a real
 * WebSocket server (test_ws_node and test_ws_python, the same expectations for
 * each peer): subprotocol and permessage-deflate negotiated, a text message, a
 * 100,000-byte binary one, a fragmented text message with a ping in between, a
 * message the server answers fragmented, then the server's close 4002 "done".
 * Include after ws_test.h. */
#ifndef LOOM_WS_PEER_CLIENT_H
#define LOOM_WS_PEER_CLIENT_H

/* --- loom's client ------------------------------------------------------------ */

static int c_step, c_open, c_close, c_code;
static char c_reason[32];
static char big[100000];

static void c_next(loom_ws_t *ws)
{
    switch (c_step) {
    case 0:
        CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "hello", 5) >= 0);
        break;
    case 1:
        CHECK(loom_ws_send(ws, LOOM_WS_BINARY, big, sizeof big) >= 0);
        break;
    case 2:
        CHECK(loom_ws_send_begin(ws, LOOM_WS_TEXT, "ab", 2) >= 0);
        CHECK_EQ(loom_ws_send(ws, LOOM_WS_TEXT, "x", 1), LOOM_ESTATE);
        CHECK(loom_ws_ping(ws, "in-between", 10) >= 0);
        CHECK(loom_ws_send_cont(ws, "cd", 2) >= 0);
        CHECK(loom_ws_send_end(ws, "ef", 2) >= 0);
        break;
    case 3:
        CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "frag", 4) >= 0);
        break;
    case 4:
        CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "bye", 3) >= 0);
        break;
    }
}

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    c_open++;
    CHECK_STR(loom_ws_protocol(ws), "chat");
    CHECK_EQ(loom_ws_compressed(ws), 1);
    c_next(ws);
}

static void c_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    switch (c_step) {
    case 0:
        CHECK(type == LOOM_WS_TEXT && n == 5 && memcmp(m, "hello", 5) == 0);
        break;
    case 1:
        CHECK(type == LOOM_WS_BINARY && n == sizeof big && memcmp(m, big, n) == 0);
        break;
    case 2:
        CHECK(type == LOOM_WS_TEXT && n == 6 && memcmp(m, "abcdef", 6) == 0);
        break;
    case 3:
        CHECK(type == LOOM_WS_TEXT && n == 3 && memcmp(m, "abc", 3) == 0);
        break;
    default:
        CHECK(0);
    }
    c_step++;
    c_next(ws);
}

static void c_on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)d;
    c_close++;
    c_code = code;
    snprintf(c_reason, sizeof c_reason, "%.*s", (int)rl, reason);
}

static void ws_peer_client_side(char *const argv[])
{
    loom_loop_t *loop = test_loop_new();
    ws_child c;
    ws_child_start(&c, argv);
    int port = ws_child_port(&c);
    CHECK(port > 0);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/path?q=1", port);
    static const char *const offer[] = {"other", "chat", NULL};
    static const char *const hdrs[] = {"X-Test", "1", NULL};
    loom_ws_opts o = {.on_open = c_on_open,
                      .on_message = c_on_message,
                      .on_close = c_on_close,
                      .protocols = offer,
                      .headers = hdrs,
                      .deflate = true};
    loom_ws_t *ws;
    CHECK_OK(loom_ws_connect(loop, url, &o, &ws));
    CHECK(ws != NULL);
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    CHECK_EQ(c_open, 1);
    CHECK_EQ(c_step, 4);
    CHECK_EQ(c_close, 1);
    CHECK_EQ(c_code, 4002);
    CHECK_STR(c_reason, "done");
    ws_child_stop(&c);
    CHECK_EQ(loom_ws_connect(loop, "http://127.0.0.1/", &o, NULL), LOOM_EURL);
    CHECK_EQ(loom_ws_connect(loop, "wss://127.0.0.1/", &o, NULL), LOOM_EINVAL);
    test_loop_free_clean(loop);
}

#endif
