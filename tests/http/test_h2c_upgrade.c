/* test_h2c_upgrade: "Upgrade: h2c" (RFC 7540 section 3.2) on a plain server
 * with http2.h2c. Real clients: curl --http2 (the 101, then HTTP/2 on the
 * response; GET, HEAD, two URLs on one connection, a POST that stays on
 * HTTP/1.1) and nghttp -u. A scripted peer (tests/http/h2c_upgrade_peer.py:
 * raw HTTP/1.1 bytes, then h2_peer.py's raw frames) for the rest: the
 * preface pipelined in the same write as the request, the preface sent
 * after the 101, HEAD, the requests that are answered on HTTP/1.1 (bad
 * base64, a partial setting, a bad setting value, too many settings, two
 * HTTP2-Settings, none, a Connection that does not list HTTP2-Settings, a
 * body, a WebSocket upgrade, h2c off, http2.no_upgrade), a token list with
 * h2c in another case and the connection's fields left out of stream 1, a
 * close right after the 101 (on_close for the deferred request), a client
 * that never sends the preface (the header timeout, an event), stream 1
 * reset by the client (on_close, the connection goes on), a graceful close
 * while stream 1 waits (GOAWAY naming it, its answer), stream 1's
 * answer streamed and deferred, the upgrade pipelined behind a plain
 * request, the request and preface in 5-byte pieces. Over TLS, Upgrade: h2c is ignored. */
#include "../tls/tls_test_util.h"
#include "test_http_server_util.h"

#define PY           "/usr/bin/python3"
#define STREAM_BYTES 100000

static int nclose, nreq;
static char events[8192];
static loom_http_server_t *srv;
static char chunk[16384];

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    size_t n = strlen(events);
    snprintf(events + n, sizeof events - n, "%s\n", ev->msg);
}

static void later_cb(loom_timer_t *t, void *data)
{
    (void)t;
    hs_reply(data, "late");
}

/* /stream: STREAM_BYTES of 'z' in pieces, paced by on_drain. */
static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    uintptr_t left = (uintptr_t)loom_http_req_data(req);
    while (left > 0) {
        size_t n = left < sizeof chunk ? left : sizeof chunk;
        int r = loom_http_response_write(req, chunk, n);
        CHECK(r >= 0);
        left -= n;
        loom_http_req_set_data(req, (void *)left);
        if (r == 1)
            return;
    }
    CHECK_OK(loom_http_response_end(req));
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    const char *path = loom_http_req_path(req, NULL);
    char b[256];
    if (strcmp(path, "/forever") == 0) {
        return; /* answered by on_close */
    } else if (strcmp(path, "/defer") == 0) {
        CHECK_OK(loom_delay(loom_http_req_loop(req), 50, later_cb, req, NULL));
    } else if (strcmp(path, "/stream") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        loom_http_req_set_data(req, (void *)(uintptr_t)STREAM_BYTES);
        on_drain(req, NULL);
    } else if (strcmp(path, "/close") == 0) {
        CHECK_OK(loom_http_server_close(srv, 0, hs_on_closed));
        CHECK_OK(loom_delay(loom_http_req_loop(req), 100, later_cb, req, NULL));
    } else if (strcmp(path, "/three") == 0) {
        snprintf(b, sizeof b, "id=%u closed=%d", (unsigned)loom_http_req_stream_id(req), nclose);
        hs_reply(req, b);
    } else if (strcmp(path, "/echo") == 0) {
        size_t bl;
        const char *body = loom_http_req_body(req, &bl);
        snprintf(b, sizeof b, "v=%d body=%.*s", loom_http_req_version(req), (int)bl, body);
        hs_reply(req, b);
    } else if (strcmp(path, "/fields") == 0) {
        /* Stream 1 carries the request's fields, not the connection's. */
        const char *names[] = {"connection", "upgrade", "http2-settings",
                               "keep-alive", "x-hop",   "x-kept",
                               "te",         "host"};
        size_t n = (size_t)snprintf(b, sizeof b, "v=%d id=%u", loom_http_req_version(req),
                                    (unsigned)loom_http_req_stream_id(req));
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            const char *v = loom_http_req_header(req, names[i], NULL);
            n += (size_t)snprintf(b + n, sizeof b - n, " %s=%s", names[i], v ? v : "-");
        }
        hs_reply(req, b);
    } else {
        const char *host = loom_http_req_host(req, NULL);
        const char *up = loom_http_req_header(req, "upgrade", NULL);
        snprintf(b, sizeof b, "v=%d id=%u %s q=%s host=%s up=%s", loom_http_req_version(req),
                 (unsigned)loom_http_req_stream_id(req), path, loom_http_req_query(req, NULL),
                 host ? host : "-", up ? up : "-");
        hs_reply(req, b);
    }
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    CHECK_EQ(loom_http_req_version(req), 20); /* /forever, kept as stream 1 */
    CHECK_OK(loom_http_req_release(req));
}

static loom_http_server_t *start(loom_loop_t *loop, loom_tls_ctx_t *tls, bool h2c, bool no_upgrade)
{
    loom_http_server_t *s;
    CHECK_OK(
        loom_http_server(loop, "127.0.0.1", 0, on_request,
                         &(loom_http_server_opts){.tls = tls,
                                                  .on_event = on_event,
                                                  .on_close = on_close,
                                                  .on_drain = on_drain,
                                                  .header_timeout_ms = 300,
                                                  .high_water = 32 * 1024,
                                                  .http2 = {.h2c = h2c, .no_upgrade = no_upgrade}},
                         &s));
    return s;
}

/* Runs one scenario of the scripted peer against `s`; its output in out. */
static void peer(loom_loop_t *loop, loom_http_server_t *s, const char *what, char *out, size_t size)
{
    char script[256], port[16];
    snprintf(script, sizeof script, "%s/tests/http/h2c_upgrade_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(s));
    char *argv[] = {PY, script, port, (char *)what, NULL};
    events[0] = 0;
    int r = hs_run_child_once(loop, argv, NULL, 0, out, size, 20000);
    hs_run_for(loop, 20); /* the server's side of the end */
    fprintf(stderr, "%s: %s", what, out);
    if (events[0])
        fprintf(stderr, "  events: %s", events);
    CHECK_EQ(r, 0);
}

/* curl with `args` (NULL-terminated), verbose: its output in out. */
static void curl(loom_loop_t *loop, char *const *args, char *out, size_t size)
{
    char *argv[24];
    int k = 0;
    argv[k++] = "curl";
    argv[k++] = "-sv";
    for (int i = 0; args[i]; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    CHECK_EQ(hs_run_child_once(loop, argv, NULL, 0, out, size, 20000), 0);
}

int main(void)
{
    test_timeout(110);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    memset(chunk, 'z', sizeof chunk);
    loom_loop_t *loop = test_loop_new();
    srv = start(loop, NULL, true, false);
    int port = loom_http_server_port(srv);
    char u[128], u2[128], want[256], out[16384];

    /* curl --http2 on http://: Upgrade: h2c, the 101, the answer on
     * HTTP/2 as stream 1 (host from Host, the query kept, the upgrade's
     * fields gone); a second URL goes on the same connection as stream 3. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/p?x=1", port);
    snprintf(u2, sizeof u2, "http://127.0.0.1:%d/q", port);
    curl(loop, (char *[]){"--http2", u, u2, NULL}, out, sizeof out);
    hs_expect_in(out, "> Upgrade: h2c");
    hs_expect_in(out, "< HTTP/1.1 101 Switching Protocols");
    hs_expect_in(out, "< HTTP/2 200");
    snprintf(want, sizeof want, "v=20 id=1 /p q=x=1 host=127.0.0.1:%d up=-", port);
    hs_expect_in(out, want);
    hs_expect_in(out, "Re-using existing connection");
    snprintf(want, sizeof want, "v=20 id=3 /q q= host=127.0.0.1:%d up=-", port);
    hs_expect_in(out, want);
    CHECK(strstr(out, "Connection died") == NULL);

    /* HEAD: the head on HTTP/2 with the length a GET would have, no body. */
    curl(loop, (char *[]){"--http2", "-I", u, NULL}, out, sizeof out);
    hs_expect_in(out, "< HTTP/1.1 101 Switching Protocols");
    hs_expect_in(out, "< HTTP/2 200");
    hs_expect_in(out, "content-length: ");

    /* A POST with a body: curl asks, loom answers on HTTP/1.1 (RFC 7540
     * section 3.2 lets a server ignore the upgrade). */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/echo", port);
    curl(loop, (char *[]){"--http2", "-d", "hello", u, NULL}, out, sizeof out);
    CHECK(strstr(out, "< HTTP/1.1 101") == NULL);
    hs_expect_in(out, "< HTTP/1.1 200");
    hs_expect_in(out, "v=11 body=hello");

    if (hs_have("nghttp")) {
        snprintf(u, sizeof u, "http://127.0.0.1:%d/n", port);
        char *a[] = {"nghttp", "-u", "-v", u, NULL};
        CHECK_EQ(hs_run_child_once(loop, a, NULL, 0, out, sizeof out, 20000), 0);
        hs_expect_in(out, "HTTP Upgrade success");
        hs_expect_in(out, "v=20 id=1 /n");
    }
    CHECK_EQ(events[0], 0);

    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0) {
        fprintf(stderr, "python3-hpack is missing: the scripted cases are skipped\n");
        goto tls;
    }
    peer(loop, srv, "pipelined", out, sizeof out);
    hs_expect_in(out, "101 h2c Upgrade\nh2 200 v=20 id=1 / q=a=1 host=localhost up=- None\n"
                      "h2 200 v=20 id=3 /second q= host=localhost up=- None\n");
    peer(loop, srv, "after_h1", out, sizeof out);
    hs_expect_in(out, "http/1.1 200 v=11 id=0 /first q= host=localhost up=-\n101 h2c Upgrade\n"
                      "h2 200 v=20 id=1 /second q= host=localhost up=- None\n");
    peer(loop, srv, "trickle", out, sizeof out);
    hs_expect_in(out, "101 h2c Upgrade\nh2 200 v=20 id=1 /trickle q= host=localhost up=- None\n");
    peer(loop, srv, "waited", out, sizeof out);
    hs_expect_in(out, "101 h2c Upgrade\nh2 200 v=20 id=1 /waited");
    peer(loop, srv, "head", out, sizeof out);
    hs_expect_in(out, "101 h2c Upgrade\nh2 200  None\n");
    peer(loop, srv, "upgrade_list", out, sizeof out);
    hs_expect_in(out, "h2 200 v=20 id=1 connection=- upgrade=- http2-settings=- keep-alive=- "
                      "x-hop=- x-kept=2 te=trailers host=localhost None");

    /* Answered on HTTP/1.1, the upgrade ignored. */
    static const char *const h1[] = {"bad_b64",      "bad_len",     "bad_value",       "too_many",
                                     "two_settings", "no_settings", "conn_no_settings"};
    for (size_t i = 0; i < sizeof h1 / sizeof h1[0]; i++) {
        peer(loop, srv, h1[i], out, sizeof out);
        hs_expect_in(out, "http/1.1 200 v=11 id=0 / q= host=localhost up=h2c\n");
    }
    peer(loop, srv, "websocket", out, sizeof out);
    hs_expect_in(out, "http/1.1 200 v=11 id=0 / q= host=localhost up=websocket\n");
    peer(loop, srv, "post", out, sizeof out);
    hs_expect_in(out, "http/1.1 200 v=11 body=hello\n");

    /* Stream 1's answer streamed (flow control, on_drain) and deferred. */
    peer(loop, srv, "stream", out, sizeof out);
    snprintf(want, sizeof want, "101 h2c Upgrade\nh2 200 %ux%c None\n", STREAM_BYTES, 'z');
    hs_expect_in(out, want);
    peer(loop, srv, "defer", out, sizeof out);
    hs_expect_in(out, "h2 200 late None\n");

    /* The client leaves right after the 101: the request it left hears
     * on_close, nothing leaks (the clean loop at the end, ASan). */
    int c0 = nclose;
    peer(loop, srv, "close_after_101", out, sizeof out);
    hs_expect_in(out, "101\n");
    for (int i = 0; i < 50 && nclose == c0; i++)
        hs_run_for(loop, 10);
    CHECK_EQ(nclose - c0, 1);

    /* Stream 1 reset by the client before its answer: on_close; the
     * connection serves stream 3. */
    c0 = nclose;
    peer(loop, srv, "rst_stream1", out, sizeof out);
    snprintf(want, sizeof want, "101\nh2 200 id=3 closed=%d None\n", c0 + 1);
    hs_expect_in(out, want);
    CHECK_EQ(nclose - c0, 1);

    /* No preface after the 101: the header timeout (300 ms) ends it. */
    c0 = nclose;
    peer(loop, srv, "no_preface", out, sizeof out);
    hs_expect_in(out, "101\neof after <2s\n");
    hs_expect_in(events, "no connection preface after the 101 (Upgrade: h2c)");
    CHECK_EQ(nclose - c0, 1);
    events[0] = 0;

    /* h2c off, and h2c with no_upgrade: HTTP/1.1. */
    loom_http_server_t *off = start(loop, NULL, false, false);
    peer(loop, off, "pipelined", out, sizeof out);
    hs_expect_in(out, "http/1.1 200 v=11 id=0 / q=a=1 host=localhost up=h2c\n");
    hs_expect_in(events, "invalid method token"); /* the preface behind it, as HTTP/1 */
    hs_close_server(loop, off);
    off = start(loop, NULL, true, true);
    peer(loop, off, "waited", out, sizeof out);
    hs_expect_in(out, "http/1.1 200 v=11 id=0 /waited q= host=localhost up=h2c\n");
    hs_close_server(loop, off);

    /* A graceful close while stream 1 waits for its answer: GOAWAY naming
     * stream 1, the answer, the end, on_done. */
    atomic_store(&hs_closed_done, 0);
    peer(loop, srv, "graceful", out, sizeof out);
    hs_expect_in(out, "101\ngoaway 0 last 1\nh2 200 late None\neof\n");
    CHECK(hs_run_until(loop, &hs_closed_done, 5000));
    srv = NULL;

tls:
    CHECK_EQ(events[0], 0);
    if (srv != NULL)
        hs_close_server(loop, srv);

    /* Over TLS (h2c on too), Upgrade: h2c is ignored (RFC 7540 section
     * 3.3): HTTP/1.1 for a client that chose it by ALPN. */
    loom_tls_ctx_t *ctx = tls_server_ctx("server", NULL);
    srv = start(loop, ctx, true, false);
    loom_tls_ctx_free(ctx);
    port = loom_http_server_port(srv);
    char ca[200], res[64];
    snprintf(ca, sizeof ca, "%s", tls_path("ca.pem"));
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u, sizeof u, "https://localhost:%d/t", port);
    curl(loop,
         (char *[]){"--http1.1", "--cacert", ca, "--resolve", res, "-H",
                    "Connection: Upgrade, HTTP2-Settings", "-H", "Upgrade: h2c", "-H",
                    "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", u, NULL},
         out, sizeof out);
    CHECK(strstr(out, "< HTTP/1.1 101") == NULL);
    hs_expect_in(out, "< HTTP/1.1 200");
    hs_expect_in(out, "v=11 id=0 /t q= host=localhost");

    /* Nor is the preface taken as prior knowledge over TLS (RFC 9113
     * section 3.3): after ALPN chose http/1.1 it is a request with the
     * method PRI, and gets a 400. */
    char script[256], pstr[16];
    snprintf(script, sizeof script, "%s/tests/http/h2c_upgrade_peer.py", LOOM_SOURCE_DIR);
    snprintf(pstr, sizeof pstr, "%d", port);
    CHECK_EQ(hs_run_child_once(loop, (char *[]){PY, script, pstr, "tls_preface", ca, NULL}, NULL, 0,
                               out, sizeof out, 20000),
             0);
    fprintf(stderr, "tls_preface: %s", out);
    hs_expect_in(out, "alpn http/1.1\nhttp/1.1 400");
    hs_close_server(loop, srv);
    events[0] = 0; /* the 400's event */
    test_loop_free_clean(loop);
    printf("h2c upgrade: ok\n");
    return 0;
}
