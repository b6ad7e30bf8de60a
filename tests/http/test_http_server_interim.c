/* test_http_server_interim: interim (1xx) answers with
 * loom_http_respond_interim(): two 103 Early Hints before a 200, seen by
 * curl -v and by a raw client that pipelines three requests (one answered
 * later from a timer: its 103 goes out at once, its 200 later, and the
 * request behind it waits its turn); the refusals (HTTP/1.0: LOOM_ENOTSUP,
 * 101 and final statuses: LOOM_EINVAL, a started answer: LOOM_ESTATE); and
 * Expect: 100-continue where the application sends the 100 itself: one 100
 * only.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h). The raw client's
 * requests then go through loom's client, which skips 1xx answers, so there
 * the interim answers are seen by curl -v alone (both 103s before the 200,
 * and one 100 for Expect: 100-continue); the refusals are the same; the
 * HTTP/1.0 case is HTTP/1 only. */
#include "test_http_server_util.h"

static const char *const link1[] = {"Link", "</style.css>; rel=preload; as=style", NULL};
static const char *const link2[] = {"Link", "</app.js>; rel=preload; as=script", NULL};
static int nrefused;

static void on_timer(loom_timer_t *t, void *data)
{
    hs_reply(data, "late");
    loom_timer_close(t);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    const char *path = loom_http_req_path(req, NULL);
    if (loom_http_req_version(req) == 10) {
        CHECK_EQ(loom_http_respond_interim(req, 103, link1), LOOM_ENOTSUP);
        nrefused++;
        hs_reply(req, "enotsup");
        return;
    }
    CHECK_EQ(loom_http_respond_interim(req, 101, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_http_respond_interim(req, 200, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_http_respond_interim(req, 99, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_http_respond_interim(req, 103, (const char *const[]){"Bad\r\n", "x", NULL}),
             LOOM_EINVAL);
    if (strcmp(path, "/stream") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        CHECK_EQ(loom_http_respond_interim(req, 103, link1), LOOM_ESTATE);
        CHECK(loom_http_response_write(req, "s", 1) >= 0);
        CHECK_OK(loom_http_response_end(req));
        return;
    }
    CHECK_OK(loom_http_respond_interim(req, 103, link1));
    if (strcmp(path, "/late") == 0) {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loom_http_req_loop(req), &t, on_timer, req));
        CHECK_OK(loom_timer_start(t, 30, 0));
        return;
    }
    CHECK_OK(loom_http_respond_interim(req, 103, link2));
    hs_reply(req, "ok");
}

/* Lists the statuses of every answer in buf, 1xx included; returns how many. */
static int statuses(const char *buf, size_t len, int *st, int max)
{
    size_t off = 0;
    int n = 0;
    while (off < len && n < max) {
        loom_http_response_t res;
        loom_http_header_t h[32];
        size_t nh = 32;
        int r = loom_http_parse_response(buf + off, len - off, 0, &res, h, &nh, NULL);
        if (r <= 0)
            break;
        off += (size_t)r;
        if (res.status >= 200) {
            loom_http_framing_t fr;
            loom_http_response_framing(&res, LOOM_HTTP_METHOD_GET, &fr);
            if (fr.kind == LOOM_HTTP_BODY_LENGTH)
                off += fr.length;
        }
        st[n++] = res.status;
    }
    return n;
}

/* Expect: 100-continue in streaming mode; the application sends 100 first. */
static int nbody;

static void on_request_cont(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    CHECK_OK(loom_http_respond_interim(req, 100, NULL));
    CHECK_OK(loom_http_respond_interim(req, 100, NULL)); /* not sent twice */
}

static int on_body_cont(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)data;
    (void)p;
    nbody += (int)n;
    if (p == NULL)
        hs_reply(req, "got it");
    return 0;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){0}), &srv));
    int port = loom_http_server_port(srv);
    hs_raw c;
    int st[16];

    /* Pipelined: /a, /late (answered from a timer), /b in one write. */
    hs_raw_exchange(loop, &c, port,
                    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /late HTTP/1.1\r\nHost: x\r\n\r\n"
                    "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
                    3);
    CHECK_EQ(c.nresp, 3);
    int n = statuses(c.resp, c.resp_len, st, 16);
    static const int want[] = {103, 103, 200, 103, 200, 103, 103, 200};
    static const int want_h2[] = {200, 200, 200}; /* loom's client skips 1xx */
    CHECK_EQ(n, hv_h2() ? 3 : 8);
    for (int i = 0; i < n; i++)
        CHECK_EQ(st[i], hv_h2() ? want_h2[i] : want[i]);
    if (!hv_h2())
        CHECK(strstr(c.resp,
                     "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; "
                     "as=style\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </app.js>") != NULL);
    CHECK(strstr(c.resp, "late") != NULL);
    hs_raw_free(&c);

    /* A started answer refuses interim ones. */
    hs_raw_exchange(loop, &c, port, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    CHECK(strstr(c.resp, " 103 ") == NULL);
    hs_raw_free(&c);

    /* HTTP/1.0: no 1xx. */
    if (!hv_h2()) {
        hs_raw_exchange(loop, &c, port, "GET /a HTTP/1.0\r\n\r\n", 1);
        CHECK_EQ(c.nresp, 1);
        CHECK_EQ(nrefused, 1);
        CHECK(strstr(c.resp, "enotsup") != NULL);
        CHECK(strstr(c.resp, " 103 ") == NULL);
        hs_raw_free(&c);
    }

    /* curl -v shows the 103 before the 200. */
    if (hs_have("curl")) {
        char url[64], out[8192];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/a", port);
        char *argv[] = {"curl", "-s", "-v", url, NULL};
        CHECK_EQ(hs_run_child(loop, argv, NULL, 0, out, sizeof out, 10000), 0);
        const char *p103 = strstr(out, hv_h2() ? "< HTTP/2 103" : "< HTTP/1.1 103 Early Hints");
        const char *p200 = strstr(out, hv_h2() ? "< HTTP/2 200" : "< HTTP/1.1 200 OK");
        if (p103 == NULL || p200 == NULL || p103 > p200) {
            fprintf(stderr, "curl said: %s\n", out);
            exit(1);
        }
        CHECK(strcasestr(out, "< Link: </style.css>") != NULL);
        CHECK(strcasestr(out, "< Link: </app.js>") != NULL);
        CHECK(strstr(out, "ok") != NULL);
    }
    hs_close_server(loop, srv);

    /* Expect: 100-continue, the head alone first: the application's 100
     * is the only one. */
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request_cont,
                              hv_server_opts(&(loom_http_server_opts){.on_body = on_body_cont}),
                              &srv));
    static const char up[] =
        "POST /u HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc";
    memset(&c, 0, sizeof c);
    c.port = loom_http_server_port(srv);
    c.req = up;
    c.req_len = sizeof up - 1;
    c.chunk = sizeof up - 4; /* the head, then the body 50 ms later */
    c.gap_ms = 50;
    c.want = 1;
    c.timeout_ms = 3000;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    CHECK_EQ(c.nresp, 1);
    CHECK_EQ(nbody, 3);
    if (!hv_h2()) {
        CHECK_EQ(count(c.resp, "100 Continue"), 1);
        CHECK(strstr(c.resp, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK") == c.resp);
    }
    hs_raw_free(&c);
    if (hv_h2() && hs_have("curl")) {
        /* The 100s as curl sees them: one. */
        char url[64], out[8192];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/u", loom_http_server_port(srv));
        char *argv[] = {
            "curl", "-s", "-v", "--expect100-timeout", "5", "-H", "Expect: 100-continue", "-d",
            "abc",  url,  NULL};
        uint64_t t0 = hs_now_ms();
        CHECK_EQ(hs_run_child(loop, argv, NULL, 0, out, sizeof out, 10000), 0);
        CHECK(hs_now_ms() - t0 < 3000);
        CHECK_EQ(count(out, "< HTTP/2 100"), 1);
        CHECK(strstr(out, "< HTTP/2 200") != NULL);
        CHECK(strstr(out, "got it") != NULL);
        CHECK_EQ(nbody, 6);
    }
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
