/* test_http_client_python.c - the client against Python's http.server with
 * protocol_version HTTP/1.0: bodies delimited by the connection closing (no
 * Content-Length), small and large (buffered and streamed), HEAD, and no
 * connection reuse (every request gets a fresh connection). Skipped without
 * python3. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "py_test.h"

static const char *SERVER =
    "import sys, http.server\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.0'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_HEAD(self):\n"
    "        self.send_response(200); self.send_header('X-Head', '1'); self.end_headers()\n"
    "    def do_GET(self):\n"
    "        self.send_response(200)\n"
    "        self.send_header('Content-Type', 'text/plain')\n"
    "        self.end_headers()\n"
    "        if self.path.startswith('/big/'):\n"
    "            n = int(self.path[5:])\n"
    "            block = bytes(i % 251 for i in range(65536))\n"
    "            while n > 0:\n"
    "                k = min(n, len(block)); self.wfile.write(block[:k]); n -= k\n"
    "        else:\n"
    "            self.wfile.write(('path=' + self.path).encode())\n"
    "s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
    "print(s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

typedef struct {
    uint64_t got;
    int bad, done;
} stream_state;

static int st_body(loom_http_client_req_t *req, const char *c, size_t len, void *data)
{
    stream_state *s = data;
    (void)req;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)c[i] != ((s->got + i) % 65536) % 251)
            s->bad++;
    s->got += len;
    return 0;
}

static void st_done(loom_http_client_req_t *req, const loom_http_client_response_t *res, void *d)
{
    (void)req;
    CHECK_EQ(res->minor_version, 0);
    ((stream_state *)d)->done = 1;
}

int main(void)
{
    test_timeout(25);
    int port = py_start(SERVER, NULL, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];
    hc_result r;

    for (int i = 0; i < 3; i++) {
        snprintf(u, sizeof u, "http://127.0.0.1:%d/x%d?q=1", port, i);
        memset(&r, 0, sizeof r);
        hc_get(loop, u, &r, NULL);
        hc_run_until(loop, &r.done, 5000);
        CHECK_EQ(r.done, 1);
        CHECK_EQ(r.status, 200);
        char want[64];
        snprintf(want, sizeof want, "path=/x%d?q=1", i);
        CHECK_STR(r.body, want);
        CHECK(!r.reused);
        hc_result_free(&r);
    }

    /* HEAD: no body, even though the answer has no length and closes. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/h", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.method = "HEAD"});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK(r.body == NULL);
    CHECK(strstr(r.headers, "X-Head: 1") != NULL);
    hc_result_free(&r);

    /* 3 MB delimited by the close: buffered, then streamed. */
    const size_t big = 3000017;
    snprintf(u, sizeof u, "http://127.0.0.1:%d/big/%zu", port, big);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 10000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.body_len, big);
    for (size_t i = 0; i < big; i += 9973)
        CHECK_EQ((unsigned char)r.body[i], (i % 65536) % 251);
    hc_result_free(&r);
    stream_state s = {0};
    CHECK_OK(loom_http_request(
        loop, u,
        &(loom_http_request_opts){
            .on_body = st_body, .on_response = st_done, .on_event = hc_on_event, .data = &s},
        NULL));
    hc_run_until(loop, &s.done, 10000);
    CHECK_EQ(s.done, 1);
    CHECK_EQ(s.got, big);
    CHECK_EQ(s.bad, 0);

    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.connections, 6);
    CHECK_EQ(st.reused, 0);
    CHECK_EQ(st.idle, 0);
    hc_loop_done(loop);
    py_stop();
    printf("http client python: ok\n");
    return 0;
}
