/* test_h2_server_limits: the HTTP/1 request lifecycle rules on HTTP/2 (h2c,
 * against tests/http/h2_limits_peer.py):
 * - Expect: 100-continue: a buffered server sends the 100 (a HEADERS frame
 *   with :status 100) before the body at once; an on_body server sends it
 *   once on_request returned without answering, and not at all when the
 *   application answered from on_request; another expectation gets 417.
 * - max_keepalive_requests: the connection's last request is named by a
 *   GOAWAY; it and the ones before it are answered, the later ones refused
 *   (also those in the same read, which nghttp2 takes until the GOAWAY is
 *   sent: RST_STREAM REFUSED_STREAM), then the connection closes; a later
 *   GOAWAY (a connection error) names no higher stream.
 * - The per-loop frame buffer: four connections with large answers (a header
 *   block over one frame, 100000-byte bodies) read in turn, each answer
 *   intact.
 * LOOM_TEST_NO_BACKEND: protocol cases (nghttp2 and h2_server.c), the same on
 * every backend; each costs a Python start. */
#include "test_http_server_util.h"

#define PY "/usr/bin/python3"

static char events[4096];
static int nbody;

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, "%s\n", ev->msg);
}

static loom_http_server_t *capped; /* the server with max_keepalive_requests 3 */
static int nbeyond;                /* its requests on streams past the third (5) */

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_EQ(loom_http_req_version(req), 20);
    if (loom_http_req_server(req) == capped && loom_http_req_stream_id(req) > 5)
        nbeyond++;
    const char *path = loom_http_req_path(req, NULL);
    if (strcmp(path, "/deny") == 0) {
        CHECK_OK(loom_http_respond(req, 403, NULL, "no", 2));
    } else if (strcmp(path, "/big") == 0) {
        /* A header block larger than one frame and a 100000-byte body, all
         * of the letter the query names. */
        static char hv[20001], body[100000];
        size_t ql = 0;
        const char *q = loom_http_req_query(req, &ql);
        char ch = ql == 3 && q[0] == 'c' ? q[2] : '?';
        memset(hv, ch, sizeof hv - 1);
        hv[sizeof hv - 1] = 0;
        memset(body, ch, sizeof body);
        const char *h[] = {"x-big", hv, NULL};
        CHECK_OK(loom_http_respond(req, 200, h, body, sizeof body));
    } else if (strcmp(path, "/echo") == 0) {
        size_t len = 0;
        const char *b = loom_http_req_body(req, &len);
        if (b != NULL || len) { /* buffered: the body is here */
            char out[64];
            snprintf(out, sizeof out, "got %.*s", (int)len, b);
            hs_reply(req, out);
        } /* streamed: on_body answers */
    } else {
        hs_reply(req, "hi");
    }
}

static int on_body(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)data;
    static char got[64];
    static size_t glen;
    if (p != NULL) {
        nbody++;
        size_t k = n < sizeof got - 1 - glen ? n : sizeof got - 1 - glen;
        memcpy(got + glen, p, k);
        glen += k;
        return 0;
    }
    char out[96];
    snprintf(out, sizeof out, "got %.*s", (int)glen, got);
    glen = 0;
    hs_reply(req, out);
    return 0;
}

static void peer(loom_loop_t *loop, loom_http_server_t *srv, const char *what, const char *path,
                 char *out, size_t size)
{
    char script[256], port[16];
    snprintf(script, sizeof script, "%s/tests/http/h2_limits_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {PY, script, port, (char *)what, (char *)path, NULL};
    events[0] = 0;
    int r = hs_run_child(loop, argv, NULL, 0, out, size, 20000);
    hs_run_for(loop, 20);
    fprintf(stderr, "%s %s: %s", what, path ? path : "", out);
    fprintf(stderr, "  events: %s", events[0] ? events : "(none)\n");
    CHECK_EQ(r, 0);
}

int main(void)
{
    test_timeout(60);
    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0)
        TEST_SKIP("python3-hpack is missing");
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *buf_srv, *str_srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.on_event = on_event, .http2 = {.h2c = true}}, &buf_srv));
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.on_event = on_event,
                                                       .on_body = on_body,
                                                       .max_keepalive_requests = 3,
                                                       .http2 = {.h2c = true}},
                              &str_srv));
    capped = str_srv;
    char out[2048];

    /* Buffered: 100 at once, then the body, then the answer. */
    peer(loop, buf_srv, "expect", "/echo", out, sizeof out);
    hs_expect_in(out, "status 100\nstatus 200\nbody got hello\n");

    /* on_body: 100 once on_request returned without an answer. */
    nbody = 0;
    peer(loop, str_srv, "expect", "/echo", out, sizeof out);
    hs_expect_in(out, "status 100\nstatus 200\nbody got hello\n");
    CHECK(nbody >= 1);

    /* on_body, answered from on_request: no 100, and the body never comes. */
    nbody = 0;
    peer(loop, str_srv, "expect", "/deny", out, sizeof out);
    CHECK(strstr(out, "status 100") == NULL);
    hs_expect_in(out, "status 403\nbody no\n");
    CHECK_EQ(nbody, 0);

    /* Buffered, answered at once: the 100 still came first (the server
     * reads buffered bodies itself), then the answer. */
    peer(loop, buf_srv, "expect", "/deny", out, sizeof out);
    hs_expect_in(out, "status 403\nbody no\n");

    /* Another expectation: 417, with an event naming it. */
    peer(loop, buf_srv, "expect_bad", "/echo", out, sizeof out);
    hs_expect_in(out, "status 417\n");
    hs_expect_in(events, "unsupported expectation");

    /* max_keepalive_requests 3: GOAWAY names stream 5; 1, 3 and 5 are
     * answered, 7 is not; the connection ends. */
    peer(loop, str_srv, "max_requests", NULL, out, sizeof out);
    hs_expect_in(out, "goaway 0 last 5\n");
    hs_expect_in(out, "answered 1 3 5\neof\n");

    /* The four in one read: 7 came behind the request that decided the
     * GOAWAY, and nghttp2 took it (it takes streams until the GOAWAY is
     * sent): refused (REFUSED_STREAM, 7), not answered; a connection error
     * in the same read ends the connection with a GOAWAY that still names
     * 5 (the last stream id never grows). Found by fuzz_h2_server. */
    peer(loop, str_srv, "max_requests_batch", NULL, out, sizeof out);
    hs_expect_in(out, "goaway 0 last 5\n");
    hs_expect_in(out, "rst 7 code 7\n");
    hs_expect_in(out, "answered 1 3 5\neof\n");
    peer(loop, str_srv, "max_requests_batch_error", NULL, out, sizeof out);
    hs_expect_in(out, "goaway 0 last 5\n");
    CHECK(strstr(out, "last 7") == NULL);
    hs_expect_in(out, "eof\n");
    CHECK_EQ(nbeyond, 0); /* the application never saw a stream past 5 */

    /* The buffered server has no limit: the same four are all answered. */
    peer(loop, buf_srv, "max_requests", NULL, out, sizeof out);
    CHECK(strstr(out, "goaway") == NULL);
    hs_expect_in(out, "answered 1 3 5 7\n");

    /* Four connections answered at once, read in turn by the client: the
     * server's connections share one frame buffer, and every answer still
     * carries its own bytes. */
    peer(loop, buf_srv, "interleave", NULL, out, sizeof out);
    hs_expect_in(out, "interleave 12 answers 0 bad\n");

    hs_close_server(loop, buf_srv);
    hs_close_server(loop, str_srv);
    test_loop_free_clean(loop);
    return 0;
}
