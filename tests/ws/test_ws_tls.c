/* test_ws_tls: wss. loom's HTTPS server takes WebSocket connections over
 * (TLS stays in the socket), loom's client connects with wss:// and a
 * client context trusting the test CA: text, a 300 KB binary message (many
 * TLS records), a fragmented message, then the client closes with 1000 and
 * both sides report it once; the same to wss://localhost.:PORT (an absolute
 * name). Python's websockets then connects over wss
 * too. A client whose context does not trust the server's certificate gets
 * a tls error and on_close with 1006, and the server keeps serving. The loop
 * ends clean. */
#include "tls/tls_test_util.h"
#include "ws_test.h"

static int s_close, s_code, c_open, c_close, c_code, c_got, nbad_close, nbad_ev;
static char big[300000];

static void s_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    CHECK(loom_ws_send(ws, type, m, n) >= 0);
}

static void s_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    s_close++;
    s_code = code;
}

static const loom_ws_opts s_opts = {.on_message = s_on_message, .on_close = s_on_close};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK(loom_http_req_is_tls(req));
    CHECK_OK(loom_ws_accept(req, &s_opts, NULL));
}

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    c_open++;
    CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "secure", 6) >= 0);
    CHECK(loom_ws_send(ws, LOOM_WS_BINARY, big, sizeof big) >= 0);
    CHECK(loom_ws_send_begin(ws, LOOM_WS_TEXT, "a", 1) >= 0);
    CHECK(loom_ws_send_end(ws, "b", 1) >= 0);
}

static void c_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    if (c_got == 0)
        CHECK(type == LOOM_WS_TEXT && n == 6 && memcmp(m, "secure", 6) == 0);
    else if (c_got == 1)
        CHECK(type == LOOM_WS_BINARY && n == sizeof big && memcmp(m, big, n) == 0);
    else
        CHECK(type == LOOM_WS_TEXT && n == 2 && memcmp(m, "ab", 2) == 0);
    if (++c_got == 3)
        CHECK_OK(loom_ws_close(ws, 1000, "done"));
}

static void c_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    c_close++;
    c_code = code;
}

static void bad_on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    CHECK(loom_event_is(ev, LOOM_EV_TLS_ERROR) || loom_event_is(ev, LOOM_EV_TCP_ERROR));
    nbad_ev++;
}

static void bad_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    CHECK_EQ(code, LOOM_WS_ABNORMAL);
    nbad_close++;
}

static const char py_client[] =
    "import asyncio, ssl, sys, websockets\n"
    "async def main():\n"
    "    ctx = ssl.create_default_context(cafile=sys.argv[2])\n"
    "    async with websockets.connect('wss://localhost:%s/' % sys.argv[1], ssl=ctx,\n"
    "                                  compression=None) as ws:\n"
    "        await ws.send('over tls')\n"
    "        assert await ws.recv() == 'over tls'\n"
    "asyncio.run(main())\n";

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 13 + 1);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    loom_http_server_t *srv;
    loom_http_server_opts so = {.tls = sctx};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &so, &srv));
    int port = loom_http_server_port(srv);
    char url[64];
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/secure", port);

    loom_ws_opts co = {
        .on_open = c_on_open, .on_message = c_on_message, .on_close = c_on_close, .tls = cctx};
    CHECK_OK(loom_ws_connect(loop, url, &co, NULL));
    while (c_close == 0 || s_close == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(c_open, 1);
    CHECK_EQ(c_got, 3);
    CHECK_EQ(c_code, 1000);
    CHECK_EQ(s_code, 1000);

    /* The absolute name "localhost." (one trailing dot) is localhost: it
     * resolves from /etc/hosts, and SNI and the certificate check use it
     * without the dot. */
    char url2[64];
    snprintf(url2, sizeof url2, "wss://localhost.:%d/secure", port);
    c_open = c_got = c_close = c_code = s_close = s_code = 0;
    CHECK_OK(loom_ws_connect(loop, url2, &co, NULL));
    while (c_close == 0 || s_close == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(c_open, 1);
    CHECK_EQ(c_got, 3);
    CHECK_EQ(c_code, 1000);

    /* A client that does not trust the certificate (a context of its own,
     * with the system's roots only). */
    loom_tls_ctx_t *plain;
    char err[256];
    CHECK_OK(loom_tls_ctx_new(&(loom_tls_opts){0}, &plain, err, sizeof err));
    loom_ws_opts bo = {.on_close = bad_on_close, .on_event = bad_on_event, .tls = plain};
    CHECK_OK(loom_ws_connect(loop, url, &bo, NULL));
    while (nbad_close == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(nbad_ev >= 1);

    /* Python over wss, when it is there. */
    if (access(WS_PY, X_OK) == 0 && system(WS_PY " -c 'import websockets' 2>/dev/null") == 0) {
        char ps[16];
        snprintf(ps, sizeof ps, "%d", port);
        ws_child c;
        char *argv[] = {WS_PY, "-c", (char *)py_client, ps, (char *)tls_path("ca.pem"), NULL};
        ws_child_start(&c, argv);
        ws_run_child(loop, &c);
        CHECK_EQ(ws_child_code(&c), 0);
        ws_child_stop(&c);
    }

    loom_http_server_close(srv, 0, NULL);
    loom_tls_ctx_free(sctx);
    loom_tls_ctx_free(cctx);
    loom_tls_ctx_free(plain);
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    test_loop_free_clean(loop);
    return 0;
}
