/* test_http_client_python.c - the client against Python's http.server with
 * protocol_version HTTP/1.0: bodies delimited by the connection closing (no
 * Content-Length), small and large (buffered and streamed), HEAD, and no
 * connection reuse (every request gets a fresh connection). Skipped without
 * python3. */
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "hc_test.h"

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

static pid_t py = -1;

static void stop_py(void)
{
    if (py > 0) {
        kill(py, SIGTERM);
        waitpid(py, NULL, 0);
        py = -1;
    }
}

static int start_py(void)
{
    if (access("/usr/bin/python3", X_OK) != 0)
        TEST_SKIP("python3 is missing");
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    py = fork();
    CHECK(py >= 0);
    if (py == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        execl("/usr/bin/python3", "python3", "-c", SERVER, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    atexit(stop_py);
    char buf[32] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t k = read(pfd[0], buf + n, 1);
        if (k <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    close(pfd[0]);
    int port = atoi(buf);
    if (port <= 0)
        TEST_SKIP("python's http.server did not start");
    return port;
}

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
    int port = start_py();
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
    stop_py();
    printf("http client python: ok\n");
    return 0;
}
