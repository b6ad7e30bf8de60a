/* test_http_tls_errors: how https requests fail, each as one event that
 * names the host and the reason: a certificate for another name (hostname
 * mismatch), a CA the default context (the system's store) does not trust,
 * an https request to a plain HTTP server (a handshake failure), and the
 * redirect policy: https -> http is refused unless allow_insecure_redirect,
 * http -> https is followed with the request's context. The servers are
 * loom's. LOOM_TEST_NO_TRANSPORT: TLS is the transport.
 *
 * LOOM_TEST_H2: run once more over HTTP/2 (http_version.h): h2 by ALPN
 * (the client offers h2 alone) on the HTTPS servers and h2c with prior
 * knowledge on the plain one; the same failures and redirect policy. */
#include "../tls/tls_test_util.h"
#include "hc_test.h"

static int plain_port, tls_port;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    /* (The default run's https requests are h2 already: ALPN's choice.) */
    if (hv_h2())
        CHECK_EQ(loom_http_req_version(req), 20);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    char loc[128];
    if (pl == 8 && memcmp(path, "/to-http", 8) == 0) {
        snprintf(loc, sizeof loc, "http://127.0.0.1:%d/plain", plain_port);
    } else if (pl == 9 && memcmp(path, "/to-https", 9) == 0) {
        snprintf(loc, sizeof loc, "https://localhost:%d/secure", tls_port);
    } else {
        CHECK_OK(loom_http_respond(req, 200, NULL, path, pl));
        return;
    }
    const char *h[] = {"Location", loc, NULL};
    CHECK_OK(loom_http_respond(req, 302, h, "", 0));
}

static void fail(loom_loop_t *loop, const char *url, hc_result *r, loom_http_request_opts o)
{
    memset(r, 0, sizeof *r);
    hc_get(loop, url, r, &o);
    hc_run_until(loop, &r->done, 10000);
    CHECK_EQ(r->done, 2);
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *good = tls_server_ctx("server", NULL);
    loom_tls_ctx_t *other = tls_server_ctx("other", NULL);
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    loom_http_server_t *s_good, *s_other, *s_plain;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = good}, &s_good));
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = other}, &s_other));
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){0}), &s_plain));
    tls_port = loom_http_server_port(s_good);
    plain_port = loom_http_server_port(s_plain);
    char url[160], want[200];
    hc_result r;

    /* Hostname mismatch: the certificate is for other.example. */
    int oport = loom_http_server_port(s_other);
    snprintf(url, sizeof url, "https://localhost:%d/", oport);
    fail(loop, url, &r, (loom_http_request_opts){.tls = cctx});
    CHECK_EQ(r.ev_kind, LOOM_EV_TLS_VERIFY_ERROR);
    CHECK_EQ(r.ev_code, LOOM_ECERT);
    snprintf(want, sizeof want, "certificate verify failed for localhost:%d: ", oport);
    CHECK(strstr(r.msg, want) == r.msg);
    CHECK(strstr(r.msg, "hostname mismatch") != NULL);
    hc_result_free(&r);

    /* The default context trusts the system's store, not the test CA. */
    snprintf(url, sizeof url, "https://localhost:%d/", tls_port);
    fail(loop, url, &r, (loom_http_request_opts){0});
    CHECK_EQ(r.ev_kind, LOOM_EV_TLS_VERIFY_ERROR);
    snprintf(want, sizeof want, "certificate verify failed for localhost:%d: ", tls_port);
    CHECK(strstr(r.msg, want) == r.msg);
    CHECK(strstr(r.msg, "local issuer") != NULL);
    hc_result_free(&r);

    /* An https request to a plain HTTP server. */
    snprintf(url, sizeof url, "https://127.0.0.1:%d/", plain_port);
    fail(loop, url, &r, (loom_http_request_opts){.tls = cctx});
    CHECK_EQ(r.ev_kind, LOOM_EV_TLS_ERROR);
    CHECK(strstr(r.msg, "tls handshake with 127.0.0.1:") == r.msg);
    hc_result_free(&r);

    /* https -> http: refused by default. */
    snprintf(url, sizeof url, "https://localhost:%d/to-http", tls_port);
    fail(loop, url, &r, (loom_http_request_opts){.tls = cctx, .follow_redirects = true});
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK_EQ(r.ev_code, LOOM_EPROTOCOL);
    CHECK(strstr(r.msg, "refused a redirect from https to http") == r.msg);
    CHECK(strstr(r.msg, "allow_insecure_redirect") != NULL);
    hc_result_free(&r);
    /* ...followed when asked. */
    memset(&r, 0, sizeof r);
    hc_get(loop, url, &r,
           &(loom_http_request_opts){
               .tls = cctx, .follow_redirects = true, .allow_insecure_redirect = true});
    hc_run_until(loop, &r.done, 10000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "/plain");
    hc_result_free(&r);

    /* http -> https: followed, with the request's context. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/to-https", plain_port);
    memset(&r, 0, sizeof r);
    hc_get(loop, url, &r, &(loom_http_request_opts){.tls = cctx, .follow_redirects = true});
    hc_run_until(loop, &r.done, 10000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "/secure");
    CHECK_EQ(r.redirects, 1);
    hc_result_free(&r);

    /* A server context is no client context. */
    CHECK_EQ(loom_http_request(loop, url, &(loom_http_request_opts){.tls = good}, NULL),
             LOOM_EINVAL);
    /* ...and a client context no server's. */
    loom_http_server_t *bad;
    CHECK_EQ(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              &(loom_http_server_opts){.tls = cctx}, &bad),
             LOOM_EINVAL);

    loom_http_server_close(s_good, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_http_server_close(s_other, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_http_server_close(s_plain, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_tls_ctx_free(good);
    loom_tls_ctx_free(other);
    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("http tls errors: ok\n");
    return 0;
}
