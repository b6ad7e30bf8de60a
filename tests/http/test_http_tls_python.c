/* test_http_tls_python: Python's ssl and http.client both ways.
 *  - Python's http.client (HTTPSConnection, verifying against the test CA)
 *    as the client of loom's HTTPS server: two requests on one connection
 *    and a POST; then clients that drop the connection without close_notify
 *    (Python's SSLSocket.close() sends none) while idle and in the middle of
 *    a request: the server treats both as a client's EOF (no event) and
 *    keeps serving.
 *  - Python's http.server wrapped with ssl as the server of loom's client:
 *    a Content-Length answer; an HTTP/1.0 answer delimited by the close,
 *    complete when the handler ends TLS with close_notify (unwrap()) and a
 *    truncation error when it just closes.
 * LOOM_TEST_NO_TRANSPORT: TLS is the transport. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "hc_tls_test.h"
#include "py_test.h"
#include "test_http_server_util.h"

static const char *CLIENT =
    "import sys, ssl, socket, http.client\n"
    "port, ca = int(sys.argv[1]), sys.argv[2]\n"
    "ctx = ssl.create_default_context(cafile=ca)\n"
    "c = http.client.HTTPSConnection('localhost', port, context=ctx)\n"
    "out = []\n"
    "for p in ('/a', '/b'):\n"
    "    c.request('GET', p); r = c.getresponse(); out.append(r.read().decode())\n"
    "c.request('POST', '/post', body=b'x' * 100000); r = c.getresponse()\n"
    "out.append(r.read().decode())\n"
    "out.append(c.sock.version())\n"
    "c.close()\n"
    "raw = socket.create_connection(('127.0.0.1', port))\n"
    "s = ctx.wrap_socket(raw, server_hostname='localhost')\n"
    "s.sendall(b'GET /idle HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); s.recv(4096)\n"
    "s.close()\n"
    "raw = socket.create_connection(('127.0.0.1', port))\n"
    "s = ctx.wrap_socket(raw, server_hostname='localhost')\n"
    "s.sendall(b'POST /cut HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 100\\r\\n\\r\\nabc')\n"
    "s.close()\n"
    "print(' '.join(out))\n";

static const char *SERVER =
    "import sys, ssl, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_GET(self):\n"
    "        if self.path.startswith('/close'):\n"
    "            self.protocol_version = 'HTTP/1.0'\n"
    "            self.send_response(200); self.end_headers()\n"
    "            self.wfile.write(b'until the end'); self.wfile.flush()\n"
    "            self.close_connection = True\n"
    "            if self.path == '/close-notify':\n"
    "                self.request.unwrap()\n"
    "            return\n"
    "        b = ('path=' + self.path).encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(b)))\n"
    "        self.end_headers(); self.wfile.write(b)\n"
    "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"
    "s.socket = ctx.wrap_socket(s.socket, server_side=True)\n"
    "print(s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

static int nreq, nevents, ngone;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    size_t pl, bl;
    const char *path = loom_http_req_path(req, &pl);
    (void)loom_http_req_body(req, &bl);
    if (bl) {
        char n[32];
        snprintf(n, sizeof n, "%zu", bl);
        hs_reply(req, n);
    } else {
        char b[64];
        snprintf(b, sizeof b, "%.*s", (int)pl, path);
        hs_reply(req, b);
    }
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "server event: %s\n", ev->msg);
    nevents++;
}

static void on_gone(loom_http_req_t *req, void *data)
{
    (void)req, (void)data;
    ngone++;
}

int main(void)
{
    test_timeout(90);
    if (access(PY, X_OK) != 0)
        TEST_SKIP("%s is missing", PY);
    loom_loop_t *loop = test_loop_new();

    /* Python's http.client against loom's server. */
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.tls = sctx, .on_event = on_event, .on_close = on_gone}, &srv));
    loom_tls_ctx_free(sctx);
    char port[16], out[4096];
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {PY, "-c", (char *)CLIENT, port, (char *)tls_path("ca.pem"), NULL};
    loom_stats_t st0, st1;
    loom_stats(loop, &st0);
    CHECK_EQ(hs_run_child(loop, argv, NULL, 0, out, sizeof out, 30000), 0);
    CHECK_STR(out, "/a /b 100000 TLSv1.3\n");
    CHECK_EQ(nreq, 4); /* a, b, post, idle; not the cut one */
    /* Let the server see the last connections end. */
    for (uint64_t end = tls_now_ms() + 5000; tls_now_ms() < end;) {
        loom_stats(loop, &st1);
        if (st1.tcp_incoming == st0.tcp_incoming)
            break;
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }
    loom_stats(loop, &st1);
    CHECK_EQ(st1.tcp_incoming, st0.tcp_incoming);
    CHECK_EQ(st1.tcp_incoming_total - st0.tcp_incoming_total, 3);
    CHECK_EQ(nevents, 0);
    CHECK_EQ(ngone, 0);
    hs_close_server(loop, srv);

    /* Python's ssl http.server against loom's client. */
    int pport = py_start(SERVER, tls_path("server.pem"), tls_path("server.key"));
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    char url[128];
    hc_result r;
    snprintf(url, sizeof url, "https://localhost:%d/x?y=1", pport);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "path=/x?y=1");
    hc_result_free(&r);
    snprintf(url, sizeof url, "https://localhost:%d/close-notify", pport);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "until the end");
    hc_result_free(&r);
    snprintf(url, sizeof url, "https://localhost:%d/close", pport);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_ETRUNCATED);
    CHECK(strstr(r.msg, "truncated") != NULL);
    hc_result_free(&r);

    loom_tls_ctx_free(cctx);
    py_stop();
    hc_loop_done(loop);
    printf("http tls python: ok\n");
    return 0;
}
