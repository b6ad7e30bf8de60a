/* test_http_server_discard: an answer that ends before the request body was
 * read no longer costs the connection. loom reads and drops the rest of the
 * body (up to 1 MiB, within the body timeout) and keeps the connection when
 * that completes; beyond the bound the connection closes.
 *
 *  - a streamed echo of a body (the answer starts before the body is read)
 *    keeps the connection: a second request on it is answered;
 *  - a pipelined POST answered at once (its body unread), then a GET on the
 *    same connection: both answered, the answers without Connection: close;
 *  - the same with a chunked body;
 *  - a body announced larger than the bound: the answer, then the close;
 *  - a chunked body that runs past the bound: the answer, then the close;
 *  - Expect: 100-continue answered at once (no 100 sent): closes;
 *  - a client that leaves while its unread body is being dropped: the
 *    request was answered, so on_close never runs for it (it runs at most
 *    once, and only for a request not yet answered);
 *  - a body dropped too slowly (past the body timeout in all): the close is
 *    reported as a request body timeout naming the client. */
#include "test_http_server_util.h"

static int nreq, nclose, ntimeout;
static char lastmsg[512];

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK(loom_event_is(ev, LOOM_EV_HTTP_TIMEOUT));
    ntimeout++;
    snprintf(lastmsg, sizeof lastmsg, "%s", ev->msg);
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    loom_http_req_release(req);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    if (strcmp(path, "/echo") == 0) {
        /* Streamed echo: starts answering before the body. */
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        return;
    }
    /* Anything else is answered at once, whatever its body. */
    char msg[64];
    snprintf(msg, sizeof msg, "early %s", path);
    hs_reply(req, msg);
}

static int on_body(loom_http_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)data;
    if (strcmp(loom_http_req_path(req, NULL), "/echo") != 0)
        return 0;
    if (chunk == NULL) {
        loom_http_response_end(req);
        return 0;
    }
    loom_http_response_write(req, chunk, len);
    return 0;
}

static void expect(loom_loop_t *loop, int port, const char *req, size_t req_len, int want,
                   int want_closed, const char *must, const char *must_not)
{
    hs_raw c;
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = req;
    c.req_len = req_len ? req_len : strlen(req);
    c.want = want_closed ? 0 : want;
    c.timeout_ms = want_closed ? 8000 : 5000;
    c.method = LOOM_HTTP_METHOD_POST;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    if (c.nresp != want || (want_closed && !c.closed) || (must && !strstr(c.resp, must)) ||
        (must_not && strstr(c.resp, must_not)))
        fprintf(stderr, "unexpected: %d answers (want %d), closed %d:\n%.*s\n", c.nresp, want,
                c.closed, (int)(c.resp_len > 600 ? 600 : c.resp_len), c.resp);
    CHECK_EQ(c.nresp, want);
    if (want_closed)
        CHECK(c.closed);
    if (must)
        CHECK(strstr(c.resp, must) != NULL);
    if (must_not)
        CHECK(strstr(c.resp, must_not) == NULL);
    hs_raw_free(&c);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_body = on_body, .on_close = on_close},
                              &srv));
    int port = loom_http_server_port(srv);

    /* Streamed echo, then a GET on the same connection. */
    expect(loop, port,
           "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world"
           "GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
           0, 2, 0, "early /after", "Connection: close");

    /* A POST answered at once (body unread), then a GET. */
    expect(loop, port,
           "POST /early HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789"
           "GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
           0, 2, 0, "early /after", "Connection: close");

    /* The same with a chunked body, sent in pieces. */
    {
        static const char rq[] =
            "POST /early HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            "GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
        hs_raw c;
        memset(&c, 0, sizeof c);
        c.port = port;
        c.req = rq;
        c.req_len = sizeof rq - 1;
        c.chunk = 7;
        c.gap_ms = 1;
        c.want = 2;
        c.timeout_ms = 5000;
        hs_raw_start(&c);
        hs_raw_finish(loop, &c);
        CHECK_EQ(c.nresp, 2);
        CHECK(strstr(c.resp, "early /after") != NULL);
        CHECK(strstr(c.resp, "Connection: close") == NULL);
        hs_raw_free(&c);
    }

    /* Announced beyond the bound (2 MiB): answered, then closed, and the GET
     * behind the body is never answered. */
    {
        size_t big = 2u << 20;
        static const char head[] =
            "POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: 2097152\r\n\r\n";
        static const char tail[] = "GET /after HTTP/1.1\r\nHost: a\r\n\r\n";
        size_t n = sizeof head - 1 + big + sizeof tail - 1;
        char *rq = malloc(n);
        CHECK(rq != NULL);
        memcpy(rq, head, sizeof head - 1);
        memset(rq + sizeof head - 1, 'x', big);
        memcpy(rq + sizeof head - 1 + big, tail, sizeof tail - 1);
        expect(loop, port, rq, n, 1, 1, "early /big", "early /after");
        free(rq);
    }

    /* A chunked body that runs past the bound: closed after the answer. */
    {
        size_t nchunks = 40, csz = 64 * 1024; /* 2.5 MiB */
        static const char head[] =
            "POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        size_t n = sizeof head - 1 + nchunks * (csz + 16) + 16;
        char *rq = malloc(n);
        CHECK(rq != NULL);
        size_t off = 0;
        memcpy(rq, head, sizeof head - 1);
        off += sizeof head - 1;
        for (size_t i = 0; i < nchunks; i++) {
            off += (size_t)sprintf(rq + off, "%zx\r\n", csz);
            memset(rq + off, 'y', csz);
            off += csz;
            memcpy(rq + off, "\r\n", 2);
            off += 2;
        }
        memcpy(rq + off, "0\r\n\r\n", 5);
        off += 5;
        expect(loop, port, rq, off, 1, 1, "early /big", NULL);
        free(rq);
    }

    /* Expect: 100-continue answered at once: the client may never send the
     * body, so the answer says Connection: close. */
    expect(loop, port,
           "POST /expect HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
           0, 1, 1, "Connection: close", "100 Continue");

    /* The client leaves while its body is being dropped. */
    {
        hs_raw c;
        memset(&c, 0, sizeof c);
        c.port = port;
        c.req = "POST /gone HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\npartial";
        c.req_len = strlen(c.req);
        c.want = 1;
        c.timeout_ms = 5000;
        hs_raw_start(&c);
        hs_raw_finish(loop, &c);
        CHECK_EQ(c.nresp, 1);
        hs_raw_free(&c);
        hs_run_for(loop, 100);
        CHECK_EQ(loom_http_server_pending(srv), 0);
    }
    CHECK_EQ(nclose, 0);
    hs_close_server(loop, srv);

    /* The rest of the body trickles in for longer than the body timeout
     * (300 ms; a byte every 5 ms never lets the read timeout run out): the
     * connection closes after the answer, with an event. */
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_body = on_body,
                                                       .on_close = on_close,
                                                       .on_event = on_event,
                                                       .header_timeout_ms = 5000,
                                                       .body_timeout_ms = 300},
                              &srv));
    port = loom_http_server_port(srv);
    {
        static char rq[400];
        int n = snprintf(rq, sizeof rq,
                         "POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 300\r\n\r\n");
        memset(rq + n, 'z', 300);
        hs_raw c;
        memset(&c, 0, sizeof c);
        c.port = port;
        c.req = rq;
        c.req_len = (size_t)n + 300;
        c.chunk = 1;
        c.gap_ms = 5;
        c.timeout_ms = 5000;
        c.method = LOOM_HTTP_METHOD_POST;
        hs_raw_start(&c);
        hs_raw_finish(loop, &c);
        CHECK_EQ(c.nresp, 1);
        CHECK(c.closed);
        CHECK(strstr(c.resp, "early /slow") != NULL);
        hs_raw_free(&c);
        CHECK_EQ(ntimeout, 1);
        CHECK(strncmp(lastmsg, "http client 127.0.0.1:", 22) == 0);
        CHECK(strstr(lastmsg, ": request body timeout") != NULL);
    }
    CHECK_EQ(nclose, 0);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
