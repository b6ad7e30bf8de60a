/* test_h2_server_python: loom's HTTP/2 server (h2c) against a scripted
 * peer (tests/http/h2_peer.py: raw frames, HPACK from python3-hpack) that
 * misbehaves on purpose: a bad preface, frames on a closed stream, a
 * window overflow, a SETTINGS ack that never comes, GOAWAY in the middle of
 * a streamed answer, RST_STREAM of a deferred request (on_close), the
 * rapid-reset, CONTINUATION and PING floods, an HPACK bomb, a zero-window
 * stall (the stream is reset after the write timeout), a paused upload
 * (flow control as backpressure) and a graceful close (GOAWAY with the last
 * stream id, the deferred answer still delivered). Each attack gets the
 * right GOAWAY and one event that names the client and the reason, and the
 * server goes on serving. LOOM_TEST_NO_BACKEND: these are protocol cases
 * (nghttp2 and h2_server.c), the same on every backend, and each costs a
 * Python start; test_h2_server_curl covers the backends. */
#include "test_http_server_util.h"

#define PY "/usr/bin/python3"

static int nclose, nforever, ndone;
static char events[8192];
static loom_http_server_t *srv;

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, "%s\n", ev->msg);
}

static void later_cb(loom_timer_t *t, void *data)
{
    (void)t;
    hs_reply(data, "bye");
}

static void resume_cb(loom_timer_t *t, void *data)
{
    (void)t;
    loom_http_req_t *req = data;
    if (!loom_http_req_closed(req))
        CHECK_OK(loom_http_req_resume(req));
}

static char chunk[32768];

static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    while (loom_http_response_write(req, chunk, sizeof chunk) == 0) {
    }
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    CHECK_EQ(loom_http_req_version(req), 20);
    if (strcmp(path, "/forever") == 0) {
        nforever++; /* answered by on_close */
    } else if (strcmp(path, "/stream") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        on_drain(req, NULL); /* endless: the client leaves */
    } else if (strcmp(path, "/close") == 0) {
        CHECK_OK(loom_http_server_close(srv, 0, hs_on_closed));
        CHECK_OK(loom_delay(loom_http_req_loop(req), 200, later_cb, req, NULL));
    } else if (strcmp(path, "/big") == 0) {
        static char big[100000];
        memset(big, 'b', sizeof big);
        CHECK_OK(loom_http_respond(req, 200, NULL, big, sizeof big));
    } else if (strcmp(path, "/upload") == 0) {
        loom_http_req_set_data(req, (void *)0);
    } else {
        hs_reply(req, "hi");
    }
}

static int on_body(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)data;
    if (strcmp(loom_http_req_path(req, NULL), "/upload") != 0)
        return 0;
    uintptr_t got = (uintptr_t)loom_http_req_data(req);
    if (p == NULL) {
        char b[64];
        snprintf(b, sizeof b, "got %lu", (unsigned long)got);
        hs_reply(req, b);
        return 0;
    }
    loom_http_req_set_data(req, (void *)(got + n));
    /* Pause after every piece; a timer resumes. */
    CHECK_OK(loom_delay(loom_http_req_loop(req), 2, resume_cb, req, NULL));
    return LOOM_HTTP_PAUSE;
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    const char *path = loom_http_req_path(req, NULL);
    if (strcmp(path, "/stream") == 0)
        CHECK_EQ(loom_http_response_end(req), LOOM_ECLOSED);
    else
        CHECK_EQ(loom_http_respond(req, 200, NULL, "x", 1), LOOM_ECLOSED);
}

static void start(loom_loop_t *loop)
{
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_event = on_event,
                                                       .on_body = on_body,
                                                       .on_close = on_close,
                                                       .on_drain = on_drain,
                                                       /* 1.5 s: what a Python peer on a
                                                        * loaded machine may stall between
                                                        * two sends (the upload, the
                                                        * SETTINGS ack) stays under them;
                                                        * noack, zero_window and body_stall
                                                        * wait for them on purpose. */
                                                       .header_timeout_ms = 1500,
                                                       .write_timeout_ms = 1500,
                                                       .body_timeout_ms = 1500,
                                                       .http2 = {.h2c = true}},
                              &srv));
}

/* Runs one scenario; its output in out. */
static void peer(loom_loop_t *loop, const char *what, char *out, size_t size)
{
    char script[256], port[16];
    snprintf(script, sizeof script, "%s/tests/http/h2_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {PY, script, port, (char *)what, NULL};
    events[0] = 0;
    uint64_t t0 = hs_now_ms();
    int r = hs_run_child(loop, argv, NULL, 0, out, size, 20000);
    hs_run_for(loop, 20); /* the server's side of the end */
    fprintf(stderr, "%s (%u ms): %s", what, (unsigned)(hs_now_ms() - t0), out);
    fprintf(stderr, "  events: %s", events[0] ? events : "(none)\n");
    CHECK_EQ(r, 0);
}

int main(void)
{
    test_timeout(90);
    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0)
        TEST_SKIP("python3-hpack is missing");
    memset(chunk, 'z', sizeof chunk);
    loom_loop_t *loop = test_loop_new();
    start(loop);
    char out[4096];

    peer(loop, "preface", out, sizeof out);
    hs_expect_in(out, "eof");
    hs_expect_in(events, "bad connection preface");
    hs_expect_in(events, "http2 client 127.0.0.1:");

    /* DATA on a stream the client closed (its END_STREAM, then the
     * answer's): a connection error STREAM_CLOSED (RFC 9113 section 5.1). */
    peer(loop, "closed_stream", out, sizeof out);
    hs_expect_in(out, "status 200\nstatus None goaway 5");
    hs_expect_in(events, "DATA on stream 1 after the client closed it");

    peer(loop, "window", out, sizeof out);
    hs_expect_in(out, "goaway 3 eof");
    hs_expect_in(events, "GOAWAY FLOW_CONTROL_ERROR");

    peer(loop, "noack", out, sizeof out);
    hs_expect_in(out, "eof");
    hs_expect_in(events, "SETTINGS ack timeout");

    int c0 = nclose;
    peer(loop, "goaway_mid", out, sizeof out);
    hs_expect_in(out, "closed");
    CHECK_EQ(nclose - c0, 1);

    c0 = nclose;
    peer(loop, "rst_deferred", out, sizeof out);
    hs_expect_in(out, "status 200 hi None");
    CHECK_EQ(nclose - c0, 1);

    c0 = nclose;
    peer(loop, "rapid_reset", out, sizeof out);
    hs_expect_in(out, "goaway 11");
    hs_expect_in(events, "ENHANCE_YOUR_CALM");
    CHECK(nclose - c0 < 2000);

    /* MadeYouReset (CVE-2025-8671): streams the server resets for the
     * client's errors cost the same tokens (200): GOAWAY long before the
     * client's 2,000, and each deferred request heard on_close. */
    c0 = nclose;
    peer(loop, "made_you_reset", out, sizeof out);
    hs_expect_in(out, "goaway 11");
    hs_expect_in(events, "GOAWAY ENHANCE_YOUR_CALM: reset flood: more than 200 streams reset");
    CHECK(nclose - c0 >= 200 && nclose - c0 < 1000); /* (the bucket refills at 50/s) */

    peer(loop, "continuation", out, sizeof out);
    hs_expect_in(out, "goaway 1 eof");
    hs_expect_in(events, "GOAWAY PROTOCOL_ERROR: Too many CONTINUATION frames");

    /* A malformed request is an event of its own; a later connection
     * error's event names that error, not the malformed request. Found by
     * fuzz_h2_server. */
    events[0] = '\0';
    peer(loop, "malformed_then_bad_ping", out, sizeof out);
    hs_expect_in(out, "rst 1\ngoaway 6 eof");
    hs_expect_in(events, "malformed request on stream 1: invalid field name");
    hs_expect_in(events, "GOAWAY FRAME_SIZE_ERROR");
    CHECK(strstr(events, "GOAWAY FRAME_SIZE_ERROR: malformed") == NULL);

    peer(loop, "hpack_bomb", out, sizeof out);
    hs_expect_in(out, "status 431");
    hs_expect_in(out, "status 200");

    peer(loop, "ping_flood", out, sizeof out);
    hs_expect_in(out, "eof");
    hs_expect_in(events, "GOAWAY ENHANCE_YOUR_CALM: flood of control frames");

    peer(loop, "upload_pause", out, sizeof out);
    hs_expect_in(out, "status 200 got 200000 None");

    /* A client that keeps the window shut: the stream is reset after the
     * write timeout; the connection goes on. */
    peer(loop, "zero_window", out, sizeof out);
    hs_expect_in(out, "status 200 0 rst 8\nstatus 200");
    hs_expect_in(events, "stream 1: response write timeout (zero window)");

    /* A request body that stops coming: the body timeout (per connection,
     * while a stream waits for body bytes), on_close for the request. */
    c0 = nclose;
    peer(loop, "body_stall", out, sizeof out);
    hs_expect_in(out, "eof");
    hs_expect_in(events, "request body timeout");
    CHECK_EQ(nclose - c0, 1);

    /* Still serving after all that. */
    peer(loop, "closed_stream", out, sizeof out);
    hs_expect_in(out, "status 200");

    /* Graceful close: GOAWAY naming stream 1, whose deferred answer still
     * arrives, then the connection ends and on_done runs. */
    atomic_store(&hs_closed_done, 0);
    peer(loop, "graceful", out, sizeof out);
    hs_expect_in(out, "goaway 0 last 1\nstatus 200 bye None\neof");
    CHECK(hs_run_until(loop, &hs_closed_done, 5000));

    /* The same, with another request in the same segment as /close:
     * nghttp2 takes it (it takes new streams until the GOAWAY is sent,
     * not submitted), so loom refuses it (REFUSED_STREAM: the client may
     * retry it elsewhere) rather than serve a stream past the GOAWAY's
     * last one. Found by fuzz_h2_server. */
    start(loop);
    atomic_store(&hs_closed_done, 0);
    peer(loop, "graceful_batch", out, sizeof out);
    hs_expect_in(out, "goaway 0 last 1\n");
    hs_expect_in(out, "rst 3 code 7\n");
    hs_expect_in(out, "stream 1 status 200\n");
    CHECK(strstr(out, "stream 3 status") == NULL);
    CHECK(hs_run_until(loop, &hs_closed_done, 5000));
    (void)ndone;
    test_loop_free_clean(loop);
    printf("h2 server python: ok\n");
    return 0;
}
