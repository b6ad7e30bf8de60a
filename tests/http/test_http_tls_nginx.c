/* test_http_tls_nginx: loom's client against a real nginx with `ssl` (the
 * test certificate) started on loopback: keep-alive over TLS (nginx's
 * $connection stays the same and the request is marked reused), ALPN
 * http/1.1, a chunked body (sub_filter drops the length), a 404, and an
 * 8 MiB file streamed over TLS. Skipped when /usr/sbin/nginx is missing.
 * LOOM_TEST_NO_TRANSPORT: TLS is the transport. */
#include "hc_tls_test.h"
#include "nginx_test.h"

#define BIG_SIZE (8u << 20)

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)req;
    tls_result *t = data;
    for (size_t i = 0; i < len; i++)
        CHECK_EQ(chunk[i], 0); /* a sparse file */
    t->got += len;
    t->streamed++;
    return 0;
}

static void get(loom_loop_t *loop, const char *path, tls_result *t, loom_tls_ctx_t *cctx,
                bool stream)
{
    char url[256];
    snprintf(url, sizeof url, "https://localhost:%d%s", ngx_port, path);
    tls_start(loop, url, t,
              (loom_http_request_opts){.tls = cctx, .on_body = stream ? on_body : NULL});
    hc_run_until(loop, &t->r.done, 20000);
}

/* Starts nginx with ssl on a free port; false if it did not come up
 * there (or someone else answered). */
static bool try_nginx(loom_loop_t *loop, loom_tls_ctx_t *cctx)
{
    char server[1024];
    snprintf(server, sizeof server,
             "  ssl_certificate %s;\n  ssl_certificate_key %s;\n" NGX_LOCATIONS,
             tls_path("server.pem"), tls_path("server.key"));
    ngx_spawn(" ssl", server);
    if (ngx_wait_listen() == 1) {
        /* Ours if it answers the index page over https. */
        tls_result t;
        get(loop, "/", &t, cctx, false);
        bool ours = t.r.done == 1 && t.r.body && strstr(t.r.body, "hello from nginx");
        hc_result_free(&t.r);
        loom_http_client_close_idle(loop);
        if (ours)
            return true;
    }
    ngx_kill();
    return false;
}

int main(void)
{
    test_timeout(90);
    ngx_setup();
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(&(loom_tls_opts){.alpn = "http/1.1"});
    ngx_fill_html(BIG_SIZE);
    bool up = false;
    for (int attempt = 0; attempt < 5 && !up; attempt++)
        up = try_nginx(loop, cctx);
    if (!up)
        TEST_SKIP("nginx did not come up on a free port (see %s/logs/error.log)", ngx_dir);

    /* Keep-alive: the same nginx connection twice, ALPN http/1.1. */
    tls_result t;
    char first[64] = "";
    for (int i = 0; i < 2; i++) {
        get(loop, "/conn", &t, cctx, false);
        CHECK_EQ(t.r.done, 1);
        CHECK_EQ(t.r.status, 200);
        CHECK_STR(t.alpn, "http/1.1");
        const char *c = strstr(t.r.headers, "X-Conn: ");
        CHECK(c != NULL);
        if (i == 0) {
            snprintf(first, sizeof first, "%.20s", c);
        } else {
            CHECK(strncmp(first, c, strlen(first)) == 0);
            CHECK_EQ(t.r.reused, 1);
        }
        hc_result_free(&t.r);
    }

    /* A chunked body. */
    get(loop, "/sub.html", &t, cctx, false);
    CHECK_EQ(t.r.done, 1);
    CHECK(strstr(t.r.headers, "Transfer-Encoding: chunked") != NULL);
    CHECK_EQ(t.r.body_len, (size_t)2000 * 55);
    CHECK(strstr(t.r.body, "HELLO") != NULL);
    hc_result_free(&t.r);

    /* A 404. */
    get(loop, "/missing", &t, cctx, false);
    CHECK_EQ(t.r.done, 1);
    CHECK_EQ(t.r.status, 404);
    hc_result_free(&t.r);

    /* A large body streamed over TLS. */
    get(loop, "/big.bin", &t, cctx, true);
    CHECK_EQ(t.r.done, 1);
    CHECK_EQ(t.got, BIG_SIZE);
    CHECK(t.streamed > 1);
    hc_result_free(&t.r);

    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("http tls nginx: ok\n");
    return 0;
}
