/* test_http_server_sse: Server-Sent Events. The stream starts with
 * text/event-stream and no-cache, chunked for HTTP/1.1; events (named or
 * not, multi-line data split into data lines) and comments are sent from a
 * timer; the end closes the stream; a client that leaves mid-stream makes
 * on_close run and later sends return LOOM_ECLOSED.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h): the same events
 * in DATA frames (no chunked framing: those checks, and the HTTP/1.0 case
 * delimited by the close, are HTTP/1 only); the client that leaves cancels
 * its stream. */
#include "test_http_server_util.h"

static loom_http_req_t *stream;
static int nsent, nclosed, send_after_close = 1;

static void tick(loom_timer_t *t, void *data)
{
    (void)data;
    if (stream == NULL) {
        loom_timer_close(t);
        return;
    }
    if (loom_http_req_closed(stream)) {
        send_after_close = loom_http_sse_send(stream, "x", "y");
        CHECK_EQ(loom_http_response_end(stream), LOOM_ECLOSED);
        stream = NULL;
        loom_timer_close(t);
        return;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "n=%d", nsent);
    switch (nsent) {
    case 0:
        CHECK_OK(loom_http_sse_send(stream, NULL, buf));
        break;
    case 1:
        CHECK_OK(loom_http_sse_send(stream, "update", "line one\nline two\r\nline three"));
        break;
    case 2:
        CHECK_OK(loom_http_sse_comment(stream, "heartbeat"));
        break;
    case 3:
        CHECK_EQ(loom_http_sse_send(stream, "bad\nname", "x"), LOOM_EINVAL);
        CHECK_OK(loom_http_sse_send(stream, "last", buf));
        break;
    default:
        if (loom_http_req_data(stream) == NULL) {
            CHECK_OK(loom_http_response_end(stream));
            stream = NULL;
            loom_timer_close(t);
            return;
        }
        /* The endless stream: keep sending until the client leaves. */
        CHECK(loom_http_sse_send(stream, "more", buf) >= 0);
        break;
    }
    nsent++;
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    CHECK(stream == NULL);
    CHECK_OK(loom_http_sse_start(req, (const char *[]){"X-Stream", "yes", NULL}));
    if (pl == 8 && memcmp(path, "/endless", 8) == 0)
        loom_http_req_set_data(req, req);
    stream = req;
    nsent = 0;
    loom_timer_t *t;
    CHECK_OK(loom_interval(loom_http_req_loop(req), 10, tick, NULL, &t));
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)req;
    (void)data;
    nclosed++;
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, hv_server_opts(&o), &srv));
    int port = loom_http_server_port(srv);

    hs_raw c;
    hs_raw_exchange(loop, &c, port, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    CHECK(strcasestr(c.resp, "\r\nContent-Type: text/event-stream\r\n") != NULL);
    CHECK(strcasestr(c.resp, "\r\nCache-Control: no-cache\r\n") != NULL);
    CHECK(strcasestr(c.resp, "\r\nX-Stream: yes\r\n") != NULL);
    if (!hv_h2()) {
        CHECK(strstr(c.resp, "\r\nTransfer-Encoding: chunked\r\n") != NULL);
        CHECK(strstr(c.resp, "\r\ndata: n=0\n\n\r\n") != NULL);
        CHECK(strstr(c.resp, "\r\n0\r\n\r\n") != NULL);
    } else {
        CHECK(strstr(c.resp, "\r\n\r\ndata: n=0\n\nevent: update\n") != NULL);
    }
    CHECK(strstr(c.resp, "event: update\ndata: line one\ndata: line two\ndata: line three\n\n") !=
          NULL);
    CHECK(strstr(c.resp, ": heartbeat\n\n") != NULL);
    CHECK(strstr(c.resp, "event: last\ndata: n=3\n\n") != NULL);
    hs_raw_free(&c);
    CHECK_EQ(nclosed, 0);

    /* HTTP/1.0: raw, delimited by the close. */
    if (!hv_h2()) {
        hs_raw_exchange(loop, &c, port, "GET /events HTTP/1.0\r\n\r\n", 0);
        CHECK(c.closed);
        CHECK(strstr(c.resp, "chunked") == NULL);
        CHECK(strstr(c.resp, "\r\n\r\ndata: n=0\n\nevent: update\n") != NULL);
        hs_raw_free(&c);
    }

    /* A client that leaves in the middle. */
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = "GET /endless HTTP/1.1\r\nHost: x\r\n\r\n";
    c.req_len = strlen(c.req);
    c.timeout_ms = 200;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    CHECK(c.resp_len > 0);
    hs_run_for(loop, 100);
    CHECK_EQ(nclosed, 1);
    CHECK(stream == NULL);
    CHECK_EQ(send_after_close, LOOM_ECLOSED);
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
