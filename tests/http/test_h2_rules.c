/* test_h2_rules: the HTTP rules of an HTTP/2 request (RFC 9113 section 8),
 * which loom checks itself (http/h2_check.c; nghttp2 runs without its
 * HTTP checks). A scripted peer (tests/http/h2_rules_peer.py: raw frames,
 * HPACK from python3-hpack) sends one request per stream on one
 * connection, each well-formed or broken in one way: field names with
 * uppercase or other non-token bytes, values with NUL, CR, LF, DEL or
 * white space at an end, unknown, repeated, late or missing pseudo-header
 * fields, bad :method, :scheme, :path and :authority (a bad port or IP
 * literal too: "a:b", "a:1:2"), no authority at
 * all, connection-specific fields, te other than trailers, content-length
 * repeated, not digits, or not what the DATA adds up to, and trailers
 * that do not end the stream or carry pseudo-header fields. A broken one
 * is reset with PROTOCOL_ERROR and never reaches the application; a good
 * one is answered, and the connection serves to the end. A reset request
 * the application already had (streaming mode) hears on_close.
 * LOOM_TEST_NO_BACKEND: protocol cases, the same on every backend. */
#include "test_http_server_util.h"

#define PY "/usr/bin/python3"

static loom_http_server_t *srv;
static char seen[8192];
static int nclose;
static bool streaming;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    size_t n = strlen(seen);
    snprintf(seen + n, sizeof seen - n, "%s\n", path);
    if (streaming && strncmp(path, "/bad-cl", 7) == 0)
        return; /* waits for its body, which breaks its content-length */
    if (!streaming && (strcmp(path, "/ok-tr") == 0 || strcmp(path, "/ok-cl") == 0)) {
        size_t len = 0;
        const char *b = loom_http_req_body(req, &len);
        CHECK(len == 3 || len == 5);
        CHECK(b != NULL);
    }
    if (strcmp(path, "/ok-inner") == 0) {
        size_t vl = 0;
        const char *v = loom_http_req_header(req, "x-foo", &vl);
        CHECK(v != NULL && vl == 4 && memcmp(v, "a \tb", 4) == 0);
    }
    hs_reply(req, "hi");
}

static int on_body(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)req;
    (void)p;
    (void)n;
    (void)data;
    return 0;
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    CHECK_EQ(loom_http_respond(req, 200, NULL, "x", 1), LOOM_ECLOSED);
}

static void run_peer(loom_loop_t *loop, char *out, size_t size)
{
    char script[256], port[16];
    snprintf(script, sizeof script, "%s/tests/http/h2_rules_peer.py", LOOM_SOURCE_DIR);
    snprintf(port, sizeof port, "%d", loom_http_server_port(srv));
    char *argv[] = {PY, script, port, NULL};
    int r = hs_run_child_once(loop, argv, NULL, 0, out, size, 20000);
    hs_run_for(loop, 20);
    fprintf(stderr, "%s", out);
    CHECK_EQ(r, 0);
}

static const char *const good[] = {
    "ok",          "inner_ws_value", "obs_text_value", "options_star",  "other_scheme",
    "host_only",   "te_trailers",    "cl_ok",          "cl_two_frames", "cl_zero_end",
    "trailers_ok", "trailers_cl_ok", "last",           "ok_auth0",      "ok_auth1",
    "ok_auth2",    "ok_auth3",       "ok_auth4",       "ok_host0",      "ok_host1",
    "ok_host2",    "ok_host3",       "ok_host4",
};

static const char *const bad[] = {
    "upper_name",
    "space_name",
    "colon_inside_name",
    "nul_value",
    "cr_value",
    "lf_value",
    "del_value",
    "lead_ws_value",
    "trail_ws_value",
    "unknown_pseudo",
    "status_pseudo",
    "protocol_pseudo",
    "pseudo_after_regular",
    "dup_method",
    "dup_path",
    "dup_scheme",
    "dup_authority",
    "no_method",
    "no_scheme",
    "no_path",
    "empty_path",
    "relative_path",
    "path_space",
    "get_star",
    "bad_method",
    "empty_method",
    "bad_scheme",
    "bad_authority",
    "no_authority_no_host",
    "dup_host",
    "bad_host",
    "bad_auth_port0",
    "bad_auth_port1",
    "bad_auth_port2",
    "bad_auth_port3",
    "bad_auth_port4",
    "bad_host_port0",
    "bad_host_port1",
    "bad_host_port2",
    "bad_host_port3",
    "bad_host_port4",
    "conn_connection",
    "conn_keep-alive",
    "conn_proxy-connection",
    "conn_transfer-encoding",
    "conn_upgrade",
    "te_gzip",
    "cl_short",
    "cl_long",
    "cl_headers_end",
    "cl_dup",
    "cl_letters",
    "cl_negative",
    "cl_huge",
    "trailers_no_end",
    "trailers_pseudo",
    "trailers_upper",
    "connect_with_path",
    "connect_no_authority",
    "empty_authority",
    "empty_host",
    "empty_scheme",
};

static void expect(const char *out, const char *name, const char *what)
{
    char line[128];
    snprintf(line, sizeof line, "%s: %s\n", name, what);
    const char *p = strstr(out, line);
    if (p == NULL || (p != out && p[-1] != '\n')) {
        fprintf(stderr, "expected \"%s: %s\"\n", name, what);
        CHECK(0);
    }
}

int main(void)
{
    test_timeout(60);
    if (access(PY, X_OK) != 0 || system(PY " -c 'import hpack' 2>/dev/null") != 0)
        TEST_SKIP("python3-hpack is missing");
    loom_loop_t *loop = test_loop_new();
    char out[16384];

    /* Buffered: a request is dispatched when it is whole. */
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.http2 = {.h2c = true}}, &srv));
    run_peer(loop, out, sizeof out);
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        expect(out, good[i], "status 200");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect(out, bad[i], "rst 1");
    hs_expect_in(out, "done");
    /* Nothing broken reached the application. */
    CHECK(strstr(seen, "/bad") == NULL);
    hs_expect_in(seen, "/ok\n");
    hs_expect_in(seen, "/ok-last\n");
    hs_expect_in(seen, "*\n");
    hs_close_server(loop, srv);

    /* Streaming: the application has a request whose body then breaks
     * its content-length; the reset reaches it as on_close. */
    seen[0] = 0;
    streaming = true;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.on_body = on_body, .on_close = on_close, .http2 = {.h2c = true}},
        &srv));
    run_peer(loop, out, sizeof out);
    expect(out, "cl_short", "rst 1");
    expect(out, "cl_long", "rst 1");
    expect(out, "ok", "status 200");
    expect(out, "last", "status 200");
    hs_expect_in(out, "done");
    CHECK_EQ(nclose, 2); /* cl_short and cl_long; the others never began */
    hs_expect_in(seen, "/bad-cls\n");
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
