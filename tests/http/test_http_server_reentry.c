/* test_http_server_reentry: calls into the server API from inside
 * on_request must not move memory the current request points into.
 *
 * Starting a second server with a larger max_headers from on_request used to
 * reallocate the loop's shared header array while the request still
 * pointed into it (ASan: heap-use-after-free in loom_http_header_find).
 * Each server now has its own array, never reallocated.
 *
 * Also: loom_http_server() accepts out NULL (the server runs; here it is
 * freed with its loop), and loom_http_server_loop() gives a server's loop.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h); the request then
 * also carries loom's client's user-agent. */
#include "test_http_server_util.h"

static loom_loop_t *g_loop;
static int nreq, nreq2;
static loom_http_server_t *second;

static void on_request2(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq2++;
    second = loom_http_req_server(req);
    hs_reply(req, "second");
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    HV_CHECK_REQ(req);
    size_t n;
    const loom_http_header_t *h0 = loom_http_req_headers(req, &n);
    CHECK_EQ(n, hv_h2() ? 4 : 3);
    /* A larger max_headers than the first server's. */
    for (int i = 0; i < 4; i++) {
        loom_http_server_opts o = {.limits = {.max_headers = 1000u * (unsigned)(i + 1)}};
        CHECK_OK(loom_http_server(g_loop, "127.0.0.1", 0, on_request2, &o, &second));
        CHECK(loom_http_server_loop(second) == g_loop);
        CHECK_OK(loom_http_server_close(second, 0, NULL));
    }
    /* The request's fields are where they were. */
    const loom_http_header_t *h1 = loom_http_req_headers(req, &n);
    CHECK(h0 == h1);
    CHECK_STR(loom_http_req_header(req, "X-Mark", NULL), "one");
    const loom_http_header_t *f = loom_http_header_find(h1, n, "x-other", NULL);
    CHECK(f != NULL);
    CHECK_STR(f->value, "two");
    CHECK_STR(loom_http_req_host(req, NULL), "a");
    hs_reply(req, "first");
}

int main(void)
{
    test_timeout(30);
    g_loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        g_loop, "127.0.0.1", 0, on_request,
        hv_server_opts(&(loom_http_server_opts){.limits = {.max_headers = 8}}), &srv));
    CHECK(loom_http_server_loop(srv) == g_loop);
    CHECK(loom_http_server_loop(NULL) == NULL);
    int port = loom_http_server_port(srv);
    hs_raw c;
    hs_raw_exchange(g_loop, &c, port,
                    "GET / HTTP/1.1\r\nHost: a\r\nX-Mark: one\r\nX-Other: two\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    CHECK(strstr(c.resp, "first") != NULL);
    hs_raw_free(&c);
    CHECK_EQ(nreq, 1);

    hs_close_server(g_loop, srv);
    test_loop_free_clean(g_loop);

    /* out NULL: the server runs (it keeps its loop alive) and goes with
     * its loop. */
    loom_loop_t *loop2 = test_loop_new();
    CHECK_OK(loom_http_server(loop2, "127.0.0.1", 0, on_request2, NULL, NULL));
    CHECK_EQ(loom_loop_live(loop2), 1);
    loom_loop_free(loop2);
    return 0;
}
