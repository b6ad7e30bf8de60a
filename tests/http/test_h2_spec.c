/* test_h2_spec: frame-level HTTP/2 conformance of loom's server, in the
 * manner of h2spec (which Debian and npm do not package): 80 cases from RFC
 * 9113 sections 3.5 to 8 and RFC 7541, written as raw frames by a scripted
 * peer (tests/http/h2spec_peer.py, HPACK from python3-hpack), each on its
 * own connection. Every case names the answer the RFC requires: a GOAWAY
 * with the right error code and a closed connection, an RST_STREAM after
 * which the connection still answers PING, a PING ACK, a SETTINGS ACK,
 * DATA cut to the window the peer set, or a response. Among them the
 * stream-state rules that nghttp2 leaves to loom (h2_server.c's frame-head
 * walk): DATA or HEADERS on a stream the client reset or ended, HEADERS on
 * a lower stream id, PRIORITY on stream 0 or on itself.
 *
 * The cases run three times: on h2c with prior knowledge, again with every
 * write cut into pieces of 1 to 7 bytes (the preface, frame heads and header
 * blocks arrive split at every place, which the frame-head walk must
 * reassemble), and over TLS with ALPN h2, also cut. Runs on every backend. */
#include "../tls/tls_test_util.h"
#include "test_http_server_util.h"

#define PY "/usr/bin/python3"

static loom_http_server_t *srv;
static int nreq;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    /* 64 bytes, so that the flow-control cases can see DATA cut short. */
    static const char body[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    CHECK_OK(loom_http_respond(req, 200, NULL, body, sizeof body - 1));
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "server event: %s\n", ev->msg);
}

static void run_peer(loom_loop_t *loop, const char *how, const char *ca)
{
    char script[256], port[16], ca_copy[200], out[32768];
    snprintf(script, sizeof script, "%s/tests/http/h2spec_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    snprintf(ca_copy, sizeof ca_copy, "%s", ca ? ca : "");
    char *argv[8] = {PY, script, port};
    int n = 3;
    if (how != NULL)
        argv[n++] = (char *)how;
    if (ca != NULL) {
        argv[n++] = "--tls";
        argv[n++] = ca_copy;
    }
    argv[n] = NULL;
    int r = hs_run_child_once(loop, argv, NULL, 0, out, sizeof out, 120000);
    hs_run_for(loop, 20);
    fprintf(stderr, "%s", out);
    CHECK_EQ(r, 0);
    hs_expect_in(out, " failed 0\n");
    CHECK(strstr(out, "FAIL") == NULL);
}

int main(void)
{
    test_timeout(240);
    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0)
        TEST_SKIP("python3-hpack is missing");
    loom_loop_t *loop = test_loop_new();

    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.on_event = on_event, .http2 = {.h2c = true}}, &srv));
    run_peer(loop, NULL, NULL);
    CHECK(nreq > 0);
    run_peer(loop, "--split", NULL);
    hs_close_server(loop, srv);

    loom_tls_ctx_t *tls = tls_server_ctx("server", NULL);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = tls, .on_event = on_event}, &srv));
    run_peer(loop, "--split", tls_path("ca.pem"));
    hs_close_server(loop, srv);
    loom_tls_ctx_free(tls);
    test_loop_free_clean(loop);
    return 0;
}
