/* test_http_server_python: loom's server against Python's http.client in a
 * child process: keep-alive reuse of one connection, GET with a query,
 * POST and a chunked upload (an iterable body), HEAD, response headers read
 * case-insensitively, and an HTTP/1.0 client (the connection closes). */
#include "test_http_server_util.h"

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t pl, bl;
    const char *path = loom_http_req_path(req, &pl);
    const char *body = loom_http_req_body(req, &bl);
    char out[512];
    int n =
        snprintf(out, sizeof out, "%s %.*s", loom_http_req_method_str(req, NULL), (int)pl, path);
    if (loom_http_req_query(req, NULL)[0])
        n += snprintf(out + n, sizeof out - (size_t)n, " %s", loom_http_req_query(req, NULL));
    if (bl)
        n += snprintf(out + n, sizeof out - (size_t)n, " %.*s", (int)bl, body);
    const char *thing = loom_http_req_header(req, "X-Thing", NULL);
    const char *h[] = {"Content-Type", "text/plain", "X-Thing", thing ? thing : "-", NULL};
    CHECK_OK(loom_http_respond(req, 200, h, out, (size_t)n));
}

static const char script[] =
    "import http.client, sys\n"
    "port = int(sys.argv[1])\n"
    "c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)\n"
    "c.request('GET', '/a?x=1&y=%20z')\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert r.status == 200 and b == b'GET /a x=1&y=%20z', b\n"
    "s1 = c.sock\n"
    "c.request('POST', '/p', body=b'hello world', headers={'x-thing': 'v1'})\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert b == b'POST /p hello world', b\n"
    "assert r.getheader('content-type') == 'text/plain'\n"
    "assert r.getheader('X-THING') == 'v1'\n"
    "assert r.getheader('date').endswith('GMT')\n"
    "c.request('PUT', '/c', body=iter([b'ab', b'cd', b'ef']))\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert b == b'PUT /c abcdef', b\n"
    "c.request('HEAD', '/h')\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert b == b'' and r.getheader('Content-Length') == '7', r.getheaders()\n"
    "c.request('DELETE', '/d')\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert b == b'DELETE /d'\n"
    "assert c.sock is s1, 'connection not reused'\n"
    "c.close()\n"
    "c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)\n"
    "c._http_vsn = 10; c._http_vsn_str = 'HTTP/1.0'\n"
    "c.request('GET', '/old')\n"
    "r = c.getresponse(); b = r.read()\n"
    "assert b == b'GET /old' and r.will_close, (b, r.getheaders())\n"
    "print('ok')\n";

int main(void)
{
    test_timeout(30);
    if (!hs_have("python3"))
        TEST_SKIP("python3 not installed");
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    char port[16], out[4096];
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {"python3", "-c", (char *)script, port, NULL};
    int r = hs_run_child(loop, argv, NULL, 0, out, sizeof out, 20000);
    if (r != 0)
        fprintf(stderr, "python said: %s\n", out);
    CHECK_EQ(r, 0);
    CHECK_STR(out, "ok\n");
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
