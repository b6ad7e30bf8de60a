/* test_http_server_request: the request accessors. Method enum and token,
 * target, path and query (origin and absolute form), query parameters with
 * percent-decoding, the decoded path, headers in order with duplicates and
 * case-insensitive lookup, the body, the printer (into a buffer and a
 * FILE*), and the same accessors on a request kept past its read (the
 * head is then the request's own copy).
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h: the raw client's
 * requests go as streams through loom's client). Over HTTP/2 the field
 * list is what the client sent (lower-case names, its own user-agent and
 * content-length, host from :authority), so the checks of its exact order
 * and spelling are HTTP/1 only, and lookups check the same facts; OPTIONS *
 * (loom's client sends no asterisk form) and a request without any Host
 * (HTTP/2 always carries :authority) are HTTP/1 only; an absolute-form
 * target becomes :authority and :path; a malformed authority may be reset
 * by nghttp2 (PROTOCOL_ERROR) instead of answered 400. */
#include "test_http_server_util.h"

static int checked;

static void check_request(loom_http_req_t *req)
{
    char buf[256];
    size_t len;
    CHECK_EQ(loom_http_req_method(req), LOOM_HTTP_METHOD_PATCH);
    CHECK_STR(loom_http_req_method_str(req, &len), "PATCH");
    CHECK_EQ(len, 5);
    CHECK_STR(loom_http_req_target(req, &len), "/some%20path/x?name=J%C3%B6rg+M&empty=&flag&n=2");
    const char *p = loom_http_req_path(req, &len);
    CHECK_EQ(len, 14);
    CHECK_STR(p, "/some%20path/x"); /* NUL-terminated, like every text accessor */
    CHECK_STR(loom_http_req_host(req, &len), "example");
    CHECK_EQ(len, 7);
    CHECK_STR(loom_http_req_query(req, &len), "name=J%C3%B6rg+M&empty=&flag&n=2");
    CHECK_EQ(loom_http_req_version(req), hv_version());
    CHECK_EQ(loom_http_req_path_decoded(req, buf, sizeof buf), 12);
    CHECK_STR(buf, "/some path/x");
    CHECK_EQ(loom_http_req_path_decoded(req, buf, 4), LOOM_ENOSPC);
    CHECK_EQ(loom_http_req_query_param(req, "name", buf, sizeof buf), 7);
    CHECK_STR(buf, "J\xc3\xb6rg M");
    CHECK_EQ(loom_http_req_query_param(req, "empty", buf, sizeof buf), 0);
    CHECK_STR(buf, "");
    CHECK_EQ(loom_http_req_query_param(req, "flag", buf, sizeof buf), 0);
    CHECK_EQ(loom_http_req_query_param(req, "n", buf, sizeof buf), 1);
    CHECK_STR(buf, "2");
    CHECK_EQ(loom_http_req_query_param(req, "missing", buf, sizeof buf), LOOM_ENOENT);
    CHECK_EQ(loom_http_req_query_param(req, "name", buf, 3), LOOM_ENOSPC);

    size_t n;
    const loom_http_header_t *h = loom_http_req_headers(req, &n);
    if (!hv_h2()) {
        CHECK(n == 5 || n == 6);
        if (n == 6)
            CHECK_STR(h[5].name, "X-Mode");
        CHECK_STR(h[0].name, "Host");
        CHECK_STR(h[1].name, "X-Dup");
        CHECK_STR(h[1].value, "first");
        CHECK_STR(h[2].name, "x-dup");
        CHECK_STR(h[2].value, "second, with spaces");
        CHECK_STR(h[3].name, "Content-Length");
        CHECK_STR(h[4].name, "Empty");
        CHECK_STR(h[4].value, "");
    } else {
        CHECK(n >= 5);
        CHECK_STR(loom_http_req_header(req, "Host", NULL), "example");
        CHECK_STR(loom_http_req_header(req, "Content-Length", NULL), "10");
        CHECK_STR(loom_http_req_header(req, "Empty", NULL), "");
    }
    CHECK_STR(loom_http_req_header(req, "X-DUP", &len), "first");
    CHECK_EQ(len, 5);
    CHECK(loom_http_req_header(req, "nope", &len) == NULL);
    size_t pos = 0;
    const loom_http_header_t *d1 = loom_http_header_find(h, n, "x-dup", &pos);
    const loom_http_header_t *d2 = loom_http_header_find(h, n, "x-dup", &pos);
    CHECK(d1 != NULL && d2 != NULL && d1 < d2);
    CHECK_STR(d1->value, "first");
    CHECK_STR(d2->value, "second, with spaces");
    CHECK(loom_http_header_find(h, n, "x-dup", &pos) == NULL);
    if (!hv_h2())
        CHECK(d1 == &h[1] && d2 == &h[2]);
    const char *b = loom_http_req_body(req, &len);
    CHECK_EQ(len, 10);
    CHECK(memcmp(b, "a=1\nb=\x01two", 10) == 0);
    char peer[64];
    int port;
    CHECK_OK(loom_http_req_peer(req, peer, sizeof peer, &port));
    CHECK_STR(peer, "127.0.0.1");
    CHECK(port > 0);

    /* The printer. */
    char dump[2048];
    int dl = loom_http_req_format(req, dump, sizeof dump);
    CHECK(dl > 0 && (size_t)dl < sizeof dump);
    CHECK_EQ((size_t)dl, strlen(dump));
    CHECK(strstr(dump, "#<http-request PATCH /some%20path/x?") != NULL);
    CHECK(strstr(dump, "  resource: /some%20path/x\n") != NULL);
    CHECK(strstr(dump, "  querystring: name=J%C3%B6rg+M&empty=&flag&n=2\n") != NULL);
    CHECK(strstr(dump, "    name = J%C3%B6rg+M\n") != NULL);
    CHECK(strstr(dump, "    x-dup: second, with spaces\n") != NULL);
    CHECK(strstr(dump, "  body: 10 bytes \"a=1\\nb=\\x01two\"\n") != NULL);
    /* Truncation follows snprintf's rule. */
    char small[32];
    CHECK_EQ(loom_http_req_format(req, small, sizeof small), dl);
    CHECK_EQ(strlen(small), sizeof small - 1);
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK_EQ(loom_http_req_print(req, f), dl);
    rewind(f);
    char back[2048];
    CHECK_EQ(fread(back, 1, sizeof back, f), (size_t)dl);
    CHECK(memcmp(back, dump, (size_t)dl) == 0);
    fclose(f);
    checked++;
}

static void later(loom_timer_t *t, void *data)
{
    loom_http_req_t *req = data;
    check_request(req);
    hs_reply(req, "later");
    loom_timer_close(t);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    const char *mode = loom_http_req_header(req, "X-Mode", NULL);
    if (mode == NULL) {
        check_request(req);
        hs_reply(req, "now");
        return;
    }
    if (strcmp(mode, "later") == 0) {
        /* Keep it: the accessors must work from the request's copy. */
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loom_http_req_loop(req), &t, later, req));
        CHECK_OK(loom_timer_start(t, 20, 0));
        return;
    }
    /* Methods and the absolute form. */
    char out[256];
    size_t pl, hl;
    const char *p = loom_http_req_path(req, &pl);
    CHECK_EQ(strlen(p), pl);
    /* One host: the accessor, the Host field and the parser's field list
     * agree (an absolute-form target's authority replaces Host). */
    const char *host = loom_http_req_host(req, &hl);
    size_t n;
    const loom_http_header_t *hs = loom_http_req_headers(req, &n);
    const loom_http_header_t *hf = loom_http_header_find(hs, n, "host", NULL);
    if (host == NULL) {
        CHECK(hf == NULL);
        CHECK(loom_http_req_header(req, "Host", NULL) == NULL);
    } else {
        CHECK_EQ(strlen(host), hl);
        CHECK_STR(loom_http_req_header(req, "Host", NULL), host);
        CHECK(hf != NULL && hf->value_len == hl && strcmp(hf->value, host) == 0);
        CHECK(loom_http_header_find(hs, n, "host", &(size_t){(size_t)(hf - hs) + 1}) == NULL);
    }
    snprintf(out, sizeof out, "%d %s %s|%s host=%s", (int)loom_http_req_method(req),
             loom_http_req_method_str(req, NULL), p, loom_http_req_query(req, NULL),
             host ? host : "(none)");
    hs_reply(req, out);
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){0}), &srv));
    int port = loom_http_server_port(srv);
    static const char rq[] = "PATCH /some%20path/x?name=J%C3%B6rg+M&empty=&flag&n=2 HTTP/1.1\r\n"
                             "Host: example\r\n"
                             "X-Dup: first\r\n"
                             "x-dup:   second, with spaces  \r\n"
                             "Content-Length: 10\r\n"
                             "Empty:\r\n"
                             "\r\n"
                             "a=1\nb=\x01two";
    hs_raw c;
    hs_raw_exchange(loop, &c, port, rq, 1);
    CHECK_EQ(c.nresp, 1);
    hs_raw_free(&c);
    CHECK_EQ(checked, 1);

    /* The same request kept past its read (X-Mode: later, as the last
     * field), checked from a timer. */
    static char rq2[sizeof rq + 32];
    snprintf(rq2, sizeof rq2, "%.*sX-Mode: later\r\n\r\n%s", (int)(strstr(rq, "\r\n\r\n") - rq + 2),
             rq, strstr(rq, "\r\n\r\n") + 4);
    hs_raw_exchange(loop, &c, port, rq2, 1);
    CHECK_EQ(c.nresp, 1);
    hs_raw_free(&c);
    CHECK_EQ(checked, 2);

    /* Methods and target forms. */
    static const char rq3[] = "PUT /p HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\nContent-Length: 0\r\n\r\n"
                              "DELETE /d?q HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
                              "OPTIONS * HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
                              "TRACE /t HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
                              "GET http://example.com:8080/abs/path?k=v HTTP/1.1\r\nHost: x\r\n"
                              "X-Mode: m\r\n\r\n"
                              "GET http://example.com HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
                              "GET http://h.example/a?b HTTP/1.0\r\nX-Mode: m\r\n"
                              "Connection: keep-alive\r\n\r\n"
                              "GET /nohost HTTP/1.0\r\nX-Mode: m\r\n\r\n";
    /* HTTP/2: without OPTIONS * and the HTTP/1.0 request without a Host. */
    static const char rq3h2[] =
        "PUT /p HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\nContent-Length: 0\r\n\r\n"
        "DELETE /d?q HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
        "TRACE /t HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
        "GET http://example.com:8080/abs/path?k=v HTTP/1.1\r\nHost: x\r\n"
        "X-Mode: m\r\n\r\n"
        "GET http://example.com HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n"
        "GET http://h.example/a?b HTTP/1.0\r\nX-Mode: m\r\n"
        "Connection: keep-alive\r\n\r\n";
    int n3 = hv_h2() ? 6 : 8;
    hs_raw_exchange(loop, &c, port, hv_h2() ? rq3h2 : rq3, n3);
    CHECK_EQ(c.nresp, n3);
    char exp[64];
    snprintf(exp, sizeof exp, "%d PUT /p|", (int)LOOM_HTTP_METHOD_PUT);
    CHECK(strstr(c.resp, exp) != NULL);
    snprintf(exp, sizeof exp, "%d DELETE /d|q", (int)LOOM_HTTP_METHOD_DELETE);
    CHECK(strstr(c.resp, exp) != NULL);
    snprintf(exp, sizeof exp, "%d OPTIONS *|", (int)LOOM_HTTP_METHOD_OPTIONS);
    CHECK(hv_h2() || strstr(c.resp, exp) != NULL);
    snprintf(exp, sizeof exp, "%d TRACE /t|", (int)LOOM_HTTP_METHOD_TRACE);
    CHECK(strstr(c.resp, exp) != NULL);
    CHECK(strstr(c.resp, " GET /abs/path|k=v host=example.com:8080") != NULL);
    CHECK(strstr(c.resp, " GET /| host=example.com") != NULL);
    CHECK(strstr(c.resp, " GET /a|b host=h.example") != NULL); /* HTTP/1.0: a Host is added */
    CHECK(hv_h2() || strstr(c.resp, " GET /nohost| host=(none)") != NULL);
    CHECK(strstr(c.resp, "|q host=x") != NULL);
    hs_raw_free(&c);

    /* A Host (or authority) that is not host[:port] is a bad request. */
    static const char *const bad[] = {
        "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        "GET http://user@a/ HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        /* port = *DIGIT (RFC 9110 section 7.2, RFC 3986 section 3.2.3);
         * an IP literal in brackets, a "%" before two hex digits. */
        "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: [::g]:80\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a]b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n",
        "GET http://a:b/x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://a:1:2/x HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        hs_raw_exchange(loop, &c, port, bad[i], 1);
        if (hv_h2() && c.nresp == 0) {
            /* nghttp2 finds a malformed :authority first (RFC 9113
             * section 8.1.1): a stream error, the application sees
             * nothing either way. */
            CHECK(strstr(c.h2_event, "PROTOCOL_ERROR") != NULL);
            hs_raw_free(&c);
            continue;
        }
        if (c.nresp != 1 || strncmp(c.resp, "HTTP/1.1 400 ", 13) != 0) {
            fprintf(stderr, "%s: %d answers: %.*s\n", bad[i], c.nresp,
                    (int)(c.resp_len < 200 ? c.resp_len : 200), c.resp ? c.resp : "");
            exit(1);
        }
        hs_raw_free(&c);
    }
    /* CONNECT's authority-form is uri-host ":" port, one port only; an
     * absolute-form target's authority replaces the Host field, but an
     * invalid Host is still a bad request (RFC 9112 section 3.2). HTTP/1
     * only: the HTTP/2 run sends no Host beside an authority. */
    static const char *const bad1[] = {
        "CONNECT a:80:80 HTTP/1.1\r\nHost: a:80\r\n\r\n",
        "GET http://a/x HTTP/1.1\r\nHost: a:b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad1 / sizeof bad1[0] && !hv_h2(); i++) {
        hs_raw_exchange(loop, &c, port, bad1[i], 1);
        CHECK_EQ(c.nresp, 1);
        CHECK(strncmp(c.resp, "HTTP/1.1 400 ", 13) == 0);
        hs_raw_free(&c);
    }
    /* What the grammar allows passes: IP literals (IPv6, IPvFuture), an
     * empty port, pct-encoding. */
    static const struct {
        const char *req, *host;
    } good[] = {
        {"GET /g HTTP/1.1\r\nHost: [::1]:8080\r\nX-Mode: m\r\n\r\n", "[::1]:8080"},
        {"GET /g HTTP/1.1\r\nHost: [v1.x]\r\nX-Mode: m\r\n\r\n", "[v1.x]"},
        {"GET /g HTTP/1.1\r\nHost: a:\r\nX-Mode: m\r\n\r\n", "a:"},
        {"GET /g HTTP/1.1\r\nHost: a%20b:1\r\nX-Mode: m\r\n\r\n", "a%20b:1"},
        {"GET http://[::1]:8080/g HTTP/1.1\r\nHost: x\r\nX-Mode: m\r\n\r\n", "[::1]:8080"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        hs_raw_exchange(loop, &c, port, good[i].req, 1);
        char want[64];
        snprintf(want, sizeof want, " GET /g| host=%s", good[i].host);
        if (c.nresp != 1 || strstr(c.resp, want) == NULL) {
            fprintf(stderr, "%s: %d answers: %.*s\n", good[i].req, c.nresp,
                    (int)(c.resp_len < 300 ? c.resp_len : 300), c.resp ? c.resp : "");
            exit(1);
        }
        hs_raw_free(&c);
    }

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
