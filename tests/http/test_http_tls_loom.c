/* test_http_tls_loom: loom's HTTPS client against loom's HTTPS server in
 * one loop: GETs on one keep-alive TLS connection (reused, resumption not
 * needed), pipelining over TLS, a ~1 MiB POST echoed back,
 * loom_http_client_tls_info() in on_response, pools per client context (a
 * second context gets its own connection), loom_http_client_configure()'s
 * context, and a server that sees its clients' certificates
 * (LOOM_TLS_VERIFY_REQUIRED with a client context that has one).
 * ALPN: an HTTPS server whose context names no protocols offers http/1.1,
 * the HTTP client offers http/1.1 when its context names none, and neither
 * side ever picks or offers a protocol HTTP/1 cannot speak (h2 in a
 * context's list); a raw TLS client that offers only h2 is refused with the
 * no_application_protocol alert (RFC 7301 section 3.2).
 * LOOM_TEST_NO_TRANSPORT: TLS is the transport. */
#include "hc_tls_test.h"

static int nreq;
static char subject[256];

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    size_t pl, bl;
    const char *path = loom_http_req_path(req, &pl);
    const char *body = loom_http_req_body(req, &bl);
    loom_tls_info info;
    CHECK_OK(loom_http_req_tls_info(req, &info));
    snprintf(subject, sizeof subject, "%s", info.peer_subject);
    if (bl)
        CHECK_OK(loom_http_respond(req, 200, NULL, body, bl));
    else
        CHECK_OK(loom_http_respond(req, 200, NULL, path, pl));
}

/* A raw TLS client (loom_tcp_connect): the ALPN protocol the server chose. */
static char alpn_seen[32];
static int raw_done;

static void raw_connect(loom_socket_t *s, void *data)
{
    (void)data;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    snprintf(alpn_seen, sizeof alpn_seen, "%.*s", (int)info.alpn_len, info.alpn ? info.alpn : "");
    raw_done = 1;
    loom_socket_close(s);
}

static char raw_msg[256];

static void raw_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "raw client: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
    snprintf(raw_msg, sizeof raw_msg, "%s", ev->msg);
    raw_done = -1;
}

static void get(loom_loop_t *loop, const char *url, tls_result *t, loom_http_request_opts o)
{
    tls_start(loop, url, t, o);
    hc_run_until(loop, &t->r.done, 10000);
    if (t->r.done != 1)
        fprintf(stderr, "%s: %s\n", url, t->r.msg);
    CHECK_EQ(t->r.done, 1);
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL); /* no ALPN list: http/1.1 */
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = sctx}, &srv));
    int port = loom_http_server_port(srv);
    loom_tls_ctx_t *cctx = tls_client_ctx(&(loom_tls_opts){.alpn = "http/1.1"});
    char url[128];
    tls_result t;

    /* Keep-alive: three GETs, one connection, the TLS details on each. */
    loom_http_client_stats_t cs;
    for (int i = 0; i < 3; i++) {
        snprintf(url, sizeof url, "https://localhost:%d/get/%d", port, i);
        get(loop, url, &t, (loom_http_request_opts){.tls = cctx});
        CHECK_EQ(t.r.status, 200);
        char want[32];
        snprintf(want, sizeof want, "/get/%d", i);
        CHECK_STR(t.r.body, want);
        CHECK_EQ(t.r.reused, i > 0);
        CHECK_EQ(t.info_rc, 0);
        CHECK_STR(t.version, "TLSv1.3");
        CHECK_STR(t.alpn, "http/1.1");
        CHECK(strstr(t.subject, "CN=localhost") != NULL);
        hc_result_free(&t.r);
    }
    loom_http_client_stats(loop, &cs);
    CHECK_EQ(cs.connections, 1);

    /* By address: the certificate's IP entry is checked. */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/ip", port);
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx});
    CHECK_STR(t.r.body, "/ip");
    hc_result_free(&t.r);

    /* A ~1 MiB POST, echoed back. */
    size_t big = (1u << 20) + 777;
    char *body = malloc(big);
    CHECK(body);
    for (size_t i = 0; i < big; i++)
        body[i] = (char)('a' + i % 23);
    snprintf(url, sizeof url, "https://localhost:%d/post", port);
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx, .body = body, .body_len = big});
    CHECK_EQ(t.r.status, 413); /* over the server's 1 MiB default */
    hc_result_free(&t.r);
    loom_http_server_close(srv, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.tls = sctx, .limits.max_body_size = 8u << 20}, &srv));
    port = loom_http_server_port(srv);
    snprintf(url, sizeof url, "https://localhost:%d/post", port);
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx, .body = body, .body_len = big});
    CHECK_EQ(t.r.status, 200);
    CHECK_EQ(t.r.body_len, big);
    CHECK(memcmp(t.r.body, body, big) == 0);
    hc_result_free(&t.r);
    free(body);

    /* Pipelining over TLS: one connection carries four requests. */
    loom_http_client_close_idle(loop);
    CHECK_OK(loom_http_client_configure(
        loop, &(loom_http_client_opts){.max_per_host = 1, .pipeline_depth = 4}));
    loom_http_client_stats(loop, &cs);
    uint64_t conns0 = cs.connections;
    tls_result p[4];
    for (int i = 0; i < 4; i++) {
        snprintf(url, sizeof url, "https://localhost:%d/pipe/%d", port, i);
        tls_start(loop, url, &p[i], (loom_http_request_opts){.tls = cctx});
    }
    for (int i = 0; i < 4; i++) {
        hc_run_until(loop, &p[i].r.done, 10000);
        CHECK_EQ(p[i].r.done, 1);
        char want[32];
        snprintf(want, sizeof want, "/pipe/%d", i);
        CHECK_STR(p[i].r.body, want);
        hc_result_free(&p[i].r);
    }
    loom_http_client_stats(loop, &cs);
    CHECK_EQ(cs.connections, conns0 + 1);

    /* Another context: another pool, another connection. */
    loom_tls_ctx_t *cctx2 = tls_client_ctx(NULL);
    snprintf(url, sizeof url, "https://localhost:%d/other", port);
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx2});
    CHECK_EQ(t.r.reused, 0);
    /* this context names none: the client offers h2 and http/1.1, and loom's server
     * prefers h2 */
    CHECK_STR(t.alpn, "h2");
    hc_result_free(&t.r);
    loom_http_client_stats(loop, &cs);
    CHECK_EQ(cs.connections, conns0 + 2);

    /* The client's configured context serves requests that name none. */
    CHECK_EQ(loom_http_client_configure(loop, &(loom_http_client_opts){.tls = sctx}), LOOM_EINVAL);
    CHECK_OK(loom_http_client_configure(loop, &(loom_http_client_opts){.tls = cctx2}));
    get(loop, url, &t, (loom_http_request_opts){0});
    CHECK_EQ(t.r.reused, 1); /* the same pool as cctx2's */
    hc_result_free(&t.r);
    CHECK_EQ(loom_http_request(loop, url, &(loom_http_request_opts){.tls = sctx}, NULL),
             LOOM_EINVAL);
    loom_http_client_close_idle(loop);
    loom_tls_ctx_free(cctx2);

    /* A server that requires client certificates. */
    loom_http_server_t *srv2;
    loom_tls_ctx_t *sctx2 =
        tls_server_ctx("server", &(loom_tls_opts){.verify_client = LOOM_TLS_VERIFY_REQUIRED,
                                                  .ca_file = tls_path("ca.pem")});
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = sctx2}, &srv2));
    loom_tls_ctx_free(sctx2);
    loom_tls_ctx_t *cctx3 = tls_client_ctx(&(loom_tls_opts){
        .cert = {.cert_file = tls_path("client.pem"), .key_file = tls_path("client.key")}});
    snprintf(url, sizeof url, "https://localhost:%d/mtls", loom_http_server_port(srv2));
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx3});
    CHECK_STR(t.r.body, "/mtls");
    CHECK(strstr(subject, "CN=") != NULL);
    hc_result_free(&t.r);
    loom_tls_ctx_free(cctx3);

    /* ALPN lists that name h2: a server with HTTP/2 off (HTTP/1 only)
     * neither offers nor picks it. */
    loom_http_server_t *srv3;
    loom_tls_ctx_t *sctx3 = tls_server_ctx("server", &(loom_tls_opts){.alpn = "h2,http/1.1"});
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = sctx3, .http2.disable = true},
                              &srv3));
    loom_tls_ctx_free(sctx3);
    int port3 = loom_http_server_port(srv3);
    loom_tls_ctx_t *cctx4 = tls_client_ctx(&(loom_tls_opts){.alpn = "h2,http/1.1"});
    snprintf(url, sizeof url, "https://localhost:%d/alpn", port3);
    get(loop, url, &t, (loom_http_request_opts){.tls = cctx4});
    CHECK_STR(t.r.body, "/alpn");
    CHECK_STR(t.alpn, "http/1.1");
    hc_result_free(&t.r);
    loom_tls_ctx_free(cctx4);
    for (int i = 0; i < 2; i++) {
        loom_tls_ctx_t *raw = tls_client_ctx(&(loom_tls_opts){.alpn = i ? "h2,http/1.1" : "h2"});
        alpn_seen[0] = 0;
        raw_done = 0;
        CHECK_OK(loom_tcp_connect(
            loop, "localhost", port3,
            &(loom_tcp_opts){.tls = raw, .on_connect = raw_connect, .on_event = raw_event}, NULL));
        tls_run_until(loop, &raw_done, 10000);
        if (i == 0) {
            /* h2 only: nothing in common, the fatal no_application_protocol
             * alert (RFC 7301 section 3.2; it used to go on without ALPN). */
            CHECK_EQ(raw_done, -1);
            CHECK(strstr(raw_msg, "no application protocol") != NULL);
        } else {
            CHECK_EQ(raw_done, 1);
            CHECK_STR(alpn_seen, "http/1.1");
        }
        loom_tls_ctx_free(raw);
    }

    loom_http_server_close(srv3, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_http_server_close(srv2, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_http_server_close(srv, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_tls_ctx_free(cctx);
    loom_tls_ctx_free(sctx);
    hc_loop_done(loop);
    printf("http tls loom: ok (%d requests)\n", nreq);
    return 0;
}
