/* test_http_server_pipeline: 100 requests pipelined in one write get 100
 * answers in order; a request answered later (from a timer) holds back the
 * answers behind it, which then follow in order; pipelined POST bodies and
 * a request split at every byte. */
#include "test_http_server_util.h"

static int ndeferred;

static void on_timer(loom_timer_t *t, void *data)
{
    loom_http_req_t *req = data;
    hs_reply(req, loom_http_req_path(req, NULL) + 1);
    loom_timer_close(t);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    char body[64];
    /* "/d..." is answered 30 ms later. */
    if (pl > 1 && path[1] == 'd') {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loom_http_req_loop(req), &t, on_timer, req));
        CHECK_OK(loom_timer_start(t, 30, 0));
        ndeferred++;
        return;
    }
    size_t bl;
    const char *b = loom_http_req_body(req, &bl);
    snprintf(body, sizeof body, "%.*s%s%.*s", (int)pl - 1, path + 1, bl ? ":" : "", (int)bl,
             b ? b : "");
    hs_reply(req, body);
}

/* Checks that the responses in buf carry the bodies expected[0..n). */
static void check_bodies(const char *buf, size_t len, char expected[][32], int n)
{
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        loom_http_response_t res;
        loom_http_header_t h[32];
        size_t nh = 32;
        int r = loom_http_parse_response(buf + off, len - off, 0, &res, h, &nh, NULL);
        CHECK(r > 0);
        CHECK_EQ(res.status, 200);
        CHECK(res.flags & LOOM_HTTP_F_CONTENT_LENGTH);
        off += (size_t)r;
        CHECK(off + res.content_length <= len);
        if (res.content_length != strlen(expected[i]) ||
            memcmp(buf + off, expected[i], res.content_length) != 0) {
            fprintf(stderr, "response %d: \"%.*s\", expected \"%s\"\n", i, (int)res.content_length,
                    buf + off, expected[i]);
            exit(1);
        }
        off += res.content_length;
    }
    CHECK_EQ(off, len);
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    int port = loom_http_server_port(srv);

    static char req[100 * 64];
    static char expected[100][32];
    hs_raw c;

    /* 100 GETs in one write. */
    size_t n = 0;
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(req + n, sizeof req - n, "GET /%d HTTP/1.1\r\nHost: x\r\n\r\n", i);
        snprintf(expected[i], sizeof expected[i], "%d", i);
    }
    hs_raw_exchange(loop, &c, port, req, 100);
    CHECK_EQ(c.nresp, 100);
    check_bodies(c.resp, c.resp_len, expected, 100);
    hs_raw_free(&c);

    /* Deferred answers keep their place: /d1 and /d5 are answered later. */
    n = 0;
    for (int i = 0; i < 8; i++) {
        bool d = i == 1 || i == 5;
        n += (size_t)snprintf(req + n, sizeof req - n, "GET /%s%d HTTP/1.1\r\nHost: x\r\n\r\n",
                              d ? "d" : "", i);
        snprintf(expected[i], sizeof expected[i], "%s%d", d ? "d" : "", i);
    }
    hs_raw_exchange(loop, &c, port, req, 8);
    CHECK_EQ(ndeferred, 2);
    CHECK_EQ(c.nresp, 8);
    check_bodies(c.resp, c.resp_len, expected, 8);
    hs_raw_free(&c);

    /* Pipelined bodies: Content-Length and chunked, mixed with GETs. */
    n = (size_t)snprintf(req, sizeof req,
                         "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz"
                         "GET /b HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "2\r\nhe\r\n3;ext=1\r\nllo\r\n0\r\nTrailer: t\r\n\r\n"
                         "GET /d9 HTTP/1.1\r\nHost: x\r\n\r\n"
                         "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nq");
    static char exp2[5][32] = {"a:xyz", "b", "c:hello", "d9", "e:q"};
    hs_raw_exchange(loop, &c, port, req, 5);
    CHECK_EQ(c.nresp, 5);
    check_bodies(c.resp, c.resp_len, exp2, 5);
    hs_raw_free(&c);

    /* The same bytes split into 1-byte writes with pauses: partial heads,
     * chunk lines and bodies across reads. */
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = req;
    c.req_len = n;
    c.chunk = 1;
    c.gap_ms = 0;
    c.want = 5;
    c.timeout_ms = 8000;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    CHECK_EQ(c.nresp, 5);
    check_bodies(c.resp, c.resp_len, exp2, 5);
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
