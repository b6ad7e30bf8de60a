/* test_http_server_curl: loom's server against curl as a child process:
 * GET, keep-alive reuse (two URLs on one connection), HEAD, a buffered POST,
 * a chunked upload, Expect: 100-continue, Connection: close, query
 * parameters and percent-decoding.
 *
 * LOOM_TEST_H2: run once more with curl --http2-prior-knowledge against the
 * server with h2c on (http_version.h): the same cases, header names compared
 * without case (HTTP/2 sends them in lower case); the upload without a
 * length goes as DATA frames, and Connection: close (an HTTP/1 field, which
 * curl does not send over HTTP/2) is checked on HTTP/1.1 only. */
#include "test_http_server_util.h"

static int nreq;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    HV_CHECK_REQ(req);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    char buf[256];
    if (pl == 1) {
        hs_reply(req, "hello");
    } else if (pl == 5 && memcmp(path, "/echo", 5) == 0) {
        size_t bl;
        const char *body = loom_http_req_body(req, &bl);
        char len[32];
        snprintf(len, sizeof len, "%zu", bl);
        const char *h[] = {"X-Len", len, "X-Method", loom_http_req_method_str(req, NULL), NULL};
        CHECK_OK(loom_http_respond(req, 200, h, body, bl));
    } else if (pl == 2 && memcmp(path, "/q", 2) == 0) {
        int r = loom_http_req_query_param(req, "name", buf, sizeof buf);
        CHECK(r >= 0);
        hs_reply(req, buf);
    } else if (pl >= 5 && memcmp(path, "/path", 5) == 0) {
        CHECK(loom_http_req_path_decoded(req, buf, sizeof buf) >= 0);
        hs_reply(req, buf);
    } else if (pl == 4 && memcmp(path, "/hdr", 4) == 0) {
        const char *v = loom_http_req_header(req, "x-TEST", NULL);
        hs_reply(req, v ? v : "(none)");
    } else {
        CHECK_OK(loom_http_respond(req, 404, NULL, "nope\n", 5));
    }
}

int main(void)
{
    test_timeout(60);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){0}), &srv));
    int port = loom_http_server_port(srv);
    char u1[128], u2[128], out[8192];
    snprintf(u1, sizeof u1, "http://127.0.0.1:%d/", port);
    snprintf(u2, sizeof u2, "http://127.0.0.1:%d/q?name=a%%20b+c%%26", port);

    /* GET and keep-alive: two URLs, one connection. */
    loom_stats_t st0, st1;
    loom_stats(loop, &st0);
    if (!hv_h2()) {
        char *a1[] = {"curl", "-s", "-w", "|%{http_code} %{num_connects}\n", u1, u2, NULL};
        CHECK_EQ(hs_run_child(loop, a1, NULL, 0, out, sizeof out, 10000), 0);
        CHECK_STR(out, "hello|200 1\na b c&|200 0\n");
    } else {
        /* curl 7.88 cannot reuse an h2c connection (see hs_run_child):
         * nghttp (h2c with prior knowledge for http://) fetches both. */
        if (!hs_have("nghttp"))
            TEST_SKIP("nghttp not installed (nghttp2-client)");
        char *a1[] = {"nghttp", u1, u2, NULL};
        CHECK_EQ(hs_run_child(loop, a1, NULL, 0, out, sizeof out, 10000), 0);
        CHECK(strstr(out, "hello") != NULL);
        CHECK(strstr(out, "a b c&") != NULL);
    }
    loom_stats(loop, &st1);
    CHECK_EQ(st1.tcp_incoming_total - st0.tcp_incoming_total, 1);

    /* Headers as curl sees them: Date, Content-Length, Content-Type. */
    char *a2[] = {"curl", "-s", "-i", u1, NULL};
    CHECK_EQ(hs_run_child(loop, a2, NULL, 0, out, sizeof out, 10000), 0);
    const char *sl = hv_h2() ? "HTTP/2 200 \r\n" : "HTTP/1.1 200 OK\r\n";
    CHECK(strncmp(out, sl, strlen(sl)) == 0);
    CHECK(strcasestr(out, "\r\nDate: ") != NULL);
    CHECK(strstr(out, " GMT\r\n") != NULL);
    CHECK(strcasestr(out, "\r\nContent-Length: 5\r\n") != NULL);
    CHECK(strcasestr(out, "\r\nContent-Type: text/plain\r\n") != NULL);
    CHECK(strstr(out, "\r\n\r\nhello") != NULL);

    /* HEAD: the length of the body, no body. */
    char *a3[] = {"curl", "-s", "-I", u1, NULL};
    CHECK_EQ(hs_run_child(loop, a3, NULL, 0, out, sizeof out, 10000), 0);
    CHECK(strcasestr(out, "\r\nContent-Length: 5\r\n") != NULL);
    CHECK(strstr(out, "hello") == NULL);

    /* A buffered POST. */
    char ue[128];
    snprintf(ue, sizeof ue, "http://127.0.0.1:%d/echo", port);
    char *a4[] = {"curl", "-s", "-i", "--data-binary", "abc=1&x", ue, NULL};
    CHECK_EQ(hs_run_child(loop, a4, NULL, 0, out, sizeof out, 10000), 0);
    CHECK(strcasestr(out, "\r\nX-Len: 7\r\n") != NULL);
    CHECK(strcasestr(out, "\r\nX-Method: POST\r\n") != NULL);
    CHECK(strstr(out, "\r\n\r\nabc=1&x") != NULL);

    /* A chunked upload from stdin. */
    static const char up[] = "chunked upload data, streamed by curl from its stdin";
    char *a5[] = {"curl", "-s", "-i", "-T", "-", "-H", "Transfer-Encoding: chunked", ue, NULL};
    CHECK_EQ(hs_run_child(loop, a5, up, strlen(up), out, sizeof out, 10000), 0);
    CHECK(strcasestr(out, "\r\nX-Method: PUT\r\n") != NULL);
    if (strstr(out, up) == NULL)
        fprintf(stderr, "curl said: %s\n", out);
    CHECK(strstr(out, up) != NULL);

    /* Expect: 100-continue: the 100 arrives at once (curl would otherwise
     * wait --expect100-timeout seconds before sending the body). */
    char big[3000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *a6[] = {"curl",
                  "-s",
                  "-i",
                  "--expect100-timeout",
                  "5",
                  "-H",
                  "Expect: 100-continue",
                  "--data-binary",
                  big,
                  ue,
                  NULL};
    uint64_t t0 = hs_now_ms();
    CHECK_EQ(hs_run_child(loop, a6, NULL, 0, out, sizeof out, 10000), 0);
    CHECK(hs_now_ms() - t0 < 3000);
    CHECK(strstr(out, hv_h2() ? "HTTP/2 100 \r\n" : "HTTP/1.1 100 Continue\r\n") != NULL);
    CHECK(strcasestr(out, "\r\nX-Len: 2999\r\n") != NULL);

    /* Connection: close is honoured and announced. */
    if (!hv_h2()) {
        char *a7[] = {"curl", "-s", "-i", "-H", "Connection: close", u1, NULL};
        CHECK_EQ(hs_run_child(loop, a7, NULL, 0, out, sizeof out, 10000), 0);
        CHECK(strstr(out, "\r\nConnection: close\r\n") != NULL);
    }

    /* Percent-decoding of the path, a header lookup, and a 404. */
    char up1[160], up2[128], up3[128];
    snprintf(up1, sizeof up1, "http://127.0.0.1:%d/path/a%%2Fb%%20c", port);
    snprintf(up2, sizeof up2, "http://127.0.0.1:%d/hdr", port);
    snprintf(up3, sizeof up3, "http://127.0.0.1:%d/nothing", port);
    char *a8[] = {"curl", "-s", "-H", "X-Test: value 1", up1, up2, up3, NULL};
    CHECK_EQ(hs_run_child(loop, a8, NULL, 0, out, sizeof out, 10000), 0);
    CHECK_STR(out, "/path/a/b cvalue 1nope\n");

    hs_close_server(loop, srv);
    CHECK(nreq >= (hv_h2() ? 9 : 10));
    test_loop_free_clean(loop);
    return 0;
}
