/* test_http_tls_curl: loom's HTTPS server (loom_http_server_opts.tls)
 * against curl: a GET that sees loom_http_req_is_tls() and the handshake's
 * details, keep-alive over TLS (two URLs in one curl run, one connection),
 * a ~1 MiB upload echoed back, a client that refuses loom's certificate
 * (a handshake failure: no event, the server goes on serving), ALPN with
 * nothing in common (openssl s_client -alpn foo: the fatal
 * no_application_protocol alert, one tls error event), and `threads` with
 * TLS. LOOM_TEST_NO_TRANSPORT: TLS is this server's
 * transport. */
#include "../tls/tls_test_util.h"
#include "test_http_server_util.h"

static int nreq, nevents, tls_errors, alpn_errors;
static char seen[256];
static loom_loop_t *main_loop; /* the counters are this loop's (threads) */

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    bool mine = loom_http_req_loop(req) == main_loop;
    if (mine)
        nreq++;
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    if (pl == 5 && memcmp(path, "/echo", 5) == 0) {
        size_t bl;
        const char *body = loom_http_req_body(req, &bl);
        CHECK_OK(loom_http_respond(req, 200, NULL, body, bl));
        return;
    }
    loom_tls_info info;
    CHECK(loom_http_req_is_tls(req));
    CHECK_OK(loom_http_req_tls_info(req, &info));
    if (mine)
        snprintf(seen, sizeof seen, "%s sni=%s", info.version, info.sni ? info.sni : "-");
    hs_reply(req, pl == 1 ? "hello" : "two");
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "server event: %s\n", ev->msg);
    if (ev->kind == LOOM_EV_TLS_ERROR && strstr(ev->msg, "tls handshake with 127.0.0.1:") &&
        strstr(ev->msg, "unknown ca"))
        tls_errors++;
    else if (ev->kind == LOOM_EV_TLS_ERROR && strstr(ev->msg, "tls handshake with 127.0.0.1:") &&
             strstr(ev->msg, "no application protocol"))
        alpn_errors++;
    else
        nevents++;
}

int main(void)
{
    test_timeout(90);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    loom_loop_t *loop = test_loop_new();
    main_loop = loop;
    loom_tls_ctx_t *ctx = tls_server_ctx("server", NULL);
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = ctx,
                                                       .on_event = on_event,
                                                       .limits.max_body_size = 4u << 20},
                              &srv));
    loom_tls_ctx_free(ctx); /* the server holds its own reference */
    int port = loom_http_server_port(srv);
    char ca[200], res[64], u1[128], u2[128], out[8192];
    snprintf(ca, sizeof ca, "%s", tls_path("ca.pem"));
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u1, sizeof u1, "https://localhost:%d/", port);
    snprintf(u2, sizeof u2, "https://localhost:%d/two", port);

    /* GET and keep-alive: two URLs, one TLS connection. */
    loom_stats_t st0, st1;
    loom_stats(loop, &st0);
    char *a1[] = {"curl",     "-s", "--http1.1",
                  "--cacert", ca,   "--resolve",
                  res,        "-w", "|%{http_code} %{num_connects}\n",
                  u1,         u2,   NULL};
    CHECK_EQ(hs_run_child(loop, a1, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "hello|200 1\ntwo|200 0\n");
    loom_stats(loop, &st1);
    CHECK_EQ(st1.tcp_incoming_total - st0.tcp_incoming_total, 1);
    CHECK(strstr(seen, "TLSv1.3 sni=localhost") != NULL);

    /* By address: no SNI. */
    char u3[128];
    snprintf(u3, sizeof u3, "https://127.0.0.1:%d/", port);
    char *a2[] = {"curl", "-s", "--cacert", ca, u3, NULL};
    CHECK_EQ(hs_run_child(loop, a2, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "hello");
    CHECK(strstr(seen, "sni=-") != NULL);

    /* An upload of ~1 MiB, echoed back intact. */
    char file[200], ue[128];
    snprintf(file, sizeof file, "%s/upload.bin", tls_certs());
    FILE *f = fopen(file, "wb");
    CHECK(f != NULL);
    for (int i = 0; i < (1 << 20) + 12345; i++)
        fputc("0123456789abcdef"[(i * 7) & 15], f);
    fclose(f);
    snprintf(ue, sizeof ue, "https://localhost:%d/echo", port);
    char data[210], cmp[600];
    snprintf(data, sizeof data, "@%s", file);
    char back[200];
    snprintf(back, sizeof back, "%s/back.bin", tls_certs());
    char *a3[] = {"curl",
                  "-s",
                  "--cacert",
                  ca,
                  "--resolve",
                  res,
                  "--data-binary",
                  data,
                  "-o",
                  back,
                  "-w",
                  "%{http_code} %{size_download}",
                  ue,
                  NULL};
    CHECK_EQ(hs_run_child(loop, a3, NULL, 0, out, sizeof out, 30000), 0);
    CHECK_STR(out, "200 1060921");
    snprintf(cmp, sizeof cmp, "cmp -s '%s' '%s'", file, back);
    CHECK_EQ(system(cmp), 0);

    /* A client that does not trust loom's certificate: its handshake
     * fails, the server reports it once (a tls error naming the client and
     * its alert), and keeps serving. */
    int before = nreq;
    char *a4[] = {"curl", "-s", "--resolve", res, u1, NULL};
    CHECK_EQ(hs_run_child(loop, a4, NULL, 0, out, sizeof out, 20000), 60);
    CHECK_EQ(nreq, before);
    CHECK_EQ(hs_run_child(loop, a1, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "hello|200 1\ntwo|200 0\n");
    CHECK_EQ(nevents, 0);
    CHECK_EQ(tls_errors, 1);

    /* ALPN with nothing in common (RFC 7301 section 3.2): the server (h2,
     * http/1.1) answers the fatal no_application_protocol alert - it used
     * to go on without ALPN - and reports one tls error naming the client
     * and the reason; an offer with a protocol it speaks, or no ALPN at
     * all, still connects. */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char *a6[] = {"openssl", "s_client", "-connect", addr, "-alpn", "foo", NULL};
    char *a7[] = {"openssl", "s_client", "-connect", addr, "-alpn", "foo,http/1.1", NULL};
    char *a8[] = {"openssl", "s_client", "-connect", addr, NULL};
    if (hs_have("openssl")) {
        CHECK(hs_run_child(loop, a6, "", 0, out, sizeof out, 20000) != 0);
        CHECK_EQ(alpn_errors, 1);
        CHECK_EQ(hs_run_child(loop, a7, "", 0, out, sizeof out, 20000), 0);
        CHECK(strstr(out, "ALPN protocol: http/1.1") != NULL);
        CHECK_EQ(hs_run_child(loop, a8, "", 0, out, sizeof out, 20000), 0);
        CHECK(strstr(out, "No ALPN negotiated") != NULL);
        CHECK_EQ(alpn_errors, 1);
        CHECK_EQ(nevents, 0);
    }
    hs_close_server(loop, srv);

    /* threads: every thread's server serves HTTPS. */
    ctx = tls_server_ctx("server", NULL);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = ctx, .threads = 2}, &srv));
    loom_tls_ctx_free(ctx);
    port = loom_http_server_port(srv);
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u1, sizeof u1, "https://localhost:%d/", port);
    for (int i = 0; i < 4; i++) {
        char *a5[] = {"curl", "-s", "--cacert", ca, "--resolve", res, u1, u1, NULL};
        CHECK_EQ(hs_run_child(loop, a5, NULL, 0, out, sizeof out, 20000), 0);
        CHECK_STR(out, "hellohello");
    }
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("http tls curl: ok\n");
    return 0;
}
