/* test_ws_python: loom against Python's websockets (Debian
 * python3-websockets), both ways.
 * 1. loom's server, Python's client: a subprotocol picked from the client's
 *    list, text (UTF-8), binary, 70 KB and 1 MiB messages, a fragmented
 *    message, a ping, then the server closes with 4001 "bye" and the client
 *    sees it; a second connection that the client closes (1000).
 *    The second connection negotiates permessage-deflate: large compressible
 *    text and binary, a small message, a fragmented compressed message.
 * 2. loom's client, Python's server, with permessage-deflate negotiated
 *    (Python's default): the subprotocol, messages of every
 *    kind, a fragmented message sent (begin/cont/end) and one received, then
 *    the server closes with 4002 "done" and on_close reports it once.
 * The loop ends clean. */
#include "ws_test.h"
#include "ws_peer_client.h"

static const char py_client[] =
    "import asyncio, sys, websockets\n"
    "async def main():\n"
    "    uri = 'ws://127.0.0.1:%s/chat' % sys.argv[1]\n"
    "    async with websockets.connect(uri, subprotocols=['nope', 'chat'], max_size=None,\n"
    "                                  compression=None) as ws:\n"
    "        assert ws.subprotocol == 'chat', ws.subprotocol\n"
    "        for m in ['hello', 'h\\u00e9llo w\\u00f6rld \\U0001F600', b'\\x00\\xff' * 10,\n"
    "                  'x' * 70000, b'y' * (1 << 20), '', b'']:\n"
    "            await ws.send(m)\n"
    "            r = await ws.recv()\n"
    "            assert r == m, (len(r), len(m))\n"
    "        await ws.send(['frag', 'mented'])\n"
    "        assert await ws.recv() == 'fragmented'\n"
    "        await asyncio.wait_for(await ws.ping(b'abc'), 5)\n"
    "        await ws.send('close-me')\n"
    "        try:\n"
    "            await asyncio.wait_for(ws.recv(), 5)\n"
    "            sys.exit(3)\n"
    "        except websockets.ConnectionClosed as e:\n"
    "            assert e.code == 4001 and e.reason == 'bye', (e.code, e.reason)\n"
    "    async with websockets.connect(uri) as ws:\n"
    "        assert ws.subprotocol is None\n"
    "        assert len(ws.extensions) == 1, ws.extensions\n"
    "        for m in ['x', 'compress me ' * 10000, b'abc' * 30000, '\\u00e9t\\u00e9' * 999,\n"
    "                  ['frag ' * 100, 'mented ' * 100]]:\n"
    "            await ws.send(m)\n"
    "            r = await ws.recv()\n"
    "            assert r == (''.join(m) if isinstance(m, list) else m), len(r)\n"
    "asyncio.run(main())\n";

static const char py_server[] =
    "import asyncio, sys, websockets\n"
    "async def echo(ws):\n"
    "    async for m in ws:\n"
    "        if m == 'bye':\n"
    "            await ws.close(4002, 'done')\n"
    "            return\n"
    "        if m == 'frag':\n"
    "            await ws.send(['a', 'b', 'c'])\n"
    "            continue\n"
    "        await ws.send(m)\n"
    "async def main():\n"
    "    async with websockets.serve(echo, '127.0.0.1', 0, subprotocols=['chat'],\n"
    "                                max_size=None) as srv:\n"
    "        print(srv.sockets[0].getsockname()[1], flush=True)\n"
    "        await asyncio.Future()\n"
    "asyncio.run(main())\n";

/* --- 1. loom's server --------------------------------------------------------- */

static int s_open, s_close, s_codes[4];

static void s_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d;
    if (type == LOOM_WS_TEXT && n == 8 && memcmp(m, "close-me", 8) == 0) {
        CHECK_OK(loom_ws_close(ws, 4001, "bye"));
        CHECK_EQ(loom_ws_send(ws, LOOM_WS_TEXT, "late", 4), LOOM_ECLOSED);
        CHECK_EQ(loom_ws_close(ws, 1000, NULL), LOOM_ECLOSED);
        return;
    }
    CHECK(loom_ws_send(ws, type, m, n) >= 0);
}

static void s_on_close(loom_ws_t *ws, int code, const char *reason, size_t rl, void *d)
{
    (void)ws, (void)reason, (void)rl, (void)d;
    CHECK(s_close < 4);
    s_codes[s_close++] = code;
}

static const char *const protos[] = {"chat", "superchat", NULL};
static const loom_ws_opts s_opts = {
    .on_message = s_on_message, .on_close = s_on_close, .protocols = protos, .deflate = true};

static void s_on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    loom_ws_t *ws;
    CHECK_OK(loom_ws_accept(req, &s_opts, &ws));
    CHECK_STR(loom_ws_protocol(ws), s_open == 0 ? "chat" : "");
    CHECK_EQ(loom_ws_compressed(ws), s_open == 0 ? 0 : 1); /* the second one offers it */
    s_open++;
}

static void server_side(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, s_on_request, NULL, &srv));
    char port[16];
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    ws_child c;
    char *argv[] = {WS_PY, "-c", (char *)py_client, port, NULL};
    ws_child_start(&c, argv);
    ws_run_child(loop, &c);
    CHECK_EQ(ws_child_code(&c), 0);
    ws_child_stop(&c);
    loom_http_server_close(srv, 0, NULL);
    while (s_close < s_open)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(s_open, 2);
    CHECK_EQ(s_codes[0], 4001);
    CHECK_EQ(s_codes[1], 1000);
    loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
}

/* --- 2. loom's client (ws_peer_client.h) ---------------------------------------- */

static void client_side(void)
{
    char *argv[] = {WS_PY, "-c", (char *)py_server, NULL};
    ws_peer_client_side(argv);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    ws_need_python();
    server_side();
    client_side();
    return 0;
}
