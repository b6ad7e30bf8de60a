/* test_ws_node: loom against node's ws package (installed with npm into the
 * build tree on first use, see ws_test.h), both ways.
 * 1. loom's server, node's client: the subprotocol, text, binary, 70 KB and
 *    1 MiB messages, an empty one, a fragmented one, a ping answered by a
 *    pong, then the server closes with 4001 "bye"; a second connection is
 *    not made (node's client would need a second process).
 * 2. loom's client, node's server: the subprotocol, messages of every kind,
 *    a fragmented message each way, then the server closes with 4002
 *    "done" and on_close reports it once.
 * permessage-deflate is negotiated both ways (node's threshold: 16 bytes).
 * The loop ends clean. */
#include "ws_test.h"
#include "ws_peer_client.h"

static const char node_client[] =
    "const WebSocket = require(process.argv[1] + '/node_modules/ws');\n"
    "const ws = new WebSocket('ws://127.0.0.1:' + process.argv[2] + '/chat', ['nope', 'chat'],\n"
    "                         {perMessageDeflate: true, maxPayload: 0});\n"
    "const msgs = ['hello', 'h\\u00e9llo w\\u00f6rld \\u{1F600}', Buffer.from([0, 255, 1]),\n"
    "              'x'.repeat(70000), Buffer.alloc(1 << 20, 7), '', 'fragmented'];\n"
    "let i = 0;\n"
    "function next() {\n"
    "  if (i < msgs.length - 1) { ws.send(msgs[i]); return; }\n"
    "  ws.send('frag', {fin: false}); ws.send('mented', {fin: true});\n"
    "}\n"
    "ws.on('open', () => { if (ws.protocol !== 'chat') process.exit(4); next(); });\n"
    "ws.on('message', (d, bin) => {\n"
    "  const m = msgs[i];\n"
    "  const ok = typeof m === 'string' ? (!bin && d.toString() === m) : (bin && d.equals(m));\n"
    "  if (!ok) { console.error('mismatch', i); process.exit(5); }\n"
    "  if (++i < msgs.length) { next(); return; }\n"
    "  ws.ping('abc');\n"
    "});\n"
    "ws.on('pong', (d) => { if (d.toString() !== 'abc') process.exit(7); ws.send('close-me'); });\n"
    "ws.on('close', (code, reason) => {\n"
    "  process.exit(code === 4001 && reason.toString() === 'bye' && i === msgs.length ? 0 : 8);\n"
    "});\n"
    "ws.on('error', (e) => { console.error(e); process.exit(6); });\n";

static const char node_server[] =
    "const WebSocket = require(process.argv[1] + '/node_modules/ws');\n"
    "const wss = new WebSocket.Server({host: '127.0.0.1', port: 0,\n"
    "  perMessageDeflate: {threshold: 16},\n"
    "  handleProtocols: (set) => set.has('chat') ? 'chat' : false});\n"
    "wss.on('listening', () => console.log(wss.address().port));\n"
    "wss.on('connection', (ws) => ws.on('message', (d, bin) => {\n"
    "  const s = d.toString();\n"
    "  if (!bin && s === 'bye') { ws.close(4002, 'done'); return; }\n"
    "  if (!bin && s === 'frag') {\n"
    "    ws.send('a', {fin: false}); ws.send('b', {fin: false}); ws.send('c', {fin: true});\n"
    "    return;\n"
    "  }\n"
    "  ws.send(d, {binary: bin});\n"
    "}));\n";

/* --- 1. loom's server --------------------------------------------------------- */

static const char *node_dir;
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
    CHECK_EQ(loom_ws_compressed(ws), 1);
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
    char *argv[] = {"/usr/bin/node", "-e", (char *)node_client, (char *)node_dir, port, NULL};
    ws_child_start(&c, argv);
    ws_run_child(loop, &c);
    CHECK_EQ(ws_child_code(&c), 0);
    ws_child_stop(&c);
    loom_http_server_close(srv, 0, NULL);
    while (s_close < s_open)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(s_open, 1);
    CHECK_EQ(s_codes[0], 4001);
    loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
}

/* --- 2. loom's client (ws_peer_client.h) ---------------------------------------- */

static void client_side(void)
{
    char *argv[] = {"/usr/bin/node", "-e", (char *)node_server, (char *)node_dir, NULL};
    ws_peer_client_side(argv);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    node_dir = ws_node_dir();
    server_side();
    client_side();
    return 0;
}
