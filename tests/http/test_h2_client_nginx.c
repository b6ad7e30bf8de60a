/* test_h2_client_nginx: loom's client speaking HTTP/2 to a real nginx
 * (`ssl http2`, the test certificate) started on loopback: ALPN h2 and the
 * response version, 100 parallel GETs multiplexed over ONE connection
 * (nginx's $connection is the same for all, one connection in the stats)
 * with nginx's http2_max_concurrent_streams at 10 (the rest wait in the
 * pool; streams nginx refuses before its SETTINGS are read are retried),
 * a streamed 8 MiB body with pause and resume (flow control), cancel of
 * streams in flight while others finish on the same connection, a chunked
 * (length-less) body, a 404, and the fallback to HTTP/1.1 against an nginx
 * without http2 (and with LOOM_HTTP_VERSION_1_1). Skipped when
 * /usr/sbin/nginx is missing. LOOM_TEST_NO_TRANSPORT: TLS is the
 * transport. */
#include "hc_tls_test.h"
#include "nginx_test.h"

#define BIG_SIZE (8u << 20)
#define NPAR     100

typedef struct {
    tls_result t;
    int version;
    int paused_once;
    loom_http_client_req_t *req;
    loom_loop_t *loop;
} h2_result;

static void h2_on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                          void *data)
{
    (void)req;
    h2_result *h = data;
    h->version = loom_http_client_response_version(res);
}

static int h2_on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    h2_result *h = data;
    for (size_t i = 0; i < len; i++)
        CHECK_EQ(chunk[i], 0); /* a sparse file */
    h->t.got += len;
    h->t.streamed++;
    if (!h->paused_once && h->t.got > (1u << 20)) {
        /* Pause once: nothing arrives until resume (the stream's window
         * closes; the connection goes on). */
        h->paused_once = 1;
        (void)req;
        return LOOM_HTTP_CLIENT_PAUSE;
    }
    return 0;
}

static void h2_on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                           void *data)
{
    h2_result *h = data;
    h->version = loom_http_client_response_version(res);
    CHECK_EQ(h->version, res->version);
    tls_on_response(req, res, &h->t);
}

static void h2_on_event(const loom_event_t *ev, void *data)
{
    tls_on_event(ev, &((h2_result *)data)->t);
}

static void h2_start(loom_loop_t *loop, const char *path, h2_result *h, loom_tls_ctx_t *cctx,
                     bool stream, loom_http_version_t ver)
{
    char url[256];
    snprintf(url, sizeof url, "https://localhost:%d%s", ngx_port, path);
    memset(h, 0, sizeof *h);
    h->t.r.loop = loop;
    h->loop = loop;
    loom_http_request_opts o = {.tls = cctx,
                                .version = ver,
                                .on_response = h2_on_response,
                                .on_headers = stream ? h2_on_headers : NULL,
                                .on_body = stream ? h2_on_body : NULL,
                                .on_event = h2_on_event,
                                .data = h};
    CHECK_OK(loom_http_request(loop, url, &o, &h->req));
}

static void h2_get(loom_loop_t *loop, const char *path, h2_result *h, loom_tls_ctx_t *cctx,
                   bool stream, loom_http_version_t ver)
{
    h2_start(loop, path, h, cctx, stream, ver);
    hc_run_until(loop, &h->t.r.done, 20000);
    if (h->t.r.done == 2)
        fprintf(stderr, "error: %s\n", h->t.r.msg);
}

static bool try_nginx(loom_loop_t *loop, loom_tls_ctx_t *cctx, bool http2)
{
    char server[1024];
    snprintf(server, sizeof server,
             "  ssl_certificate %s;\n  ssl_certificate_key %s;\n"
             "  http2_max_concurrent_streams 10;\n" NGX_LOCATIONS,
             tls_path("server.pem"), tls_path("server.key"));
    ngx_spawn(http2 ? " ssl http2" : " ssl", server);
    if (ngx_wait_listen() == 1) {
        h2_result h;
        h2_get(loop, "/", &h, cctx, false, LOOM_HTTP_VERSION_AUTO);
        bool ours = h.t.r.done == 1 && h.t.r.body && strstr(h.t.r.body, "hello from nginx");
        hc_result_free(&h.t.r);
        loom_http_client_close_idle(loop);
        loom_run(loop, LOOM_RUN_NOWAIT);
        if (ours)
            return true;
    }
    ngx_kill();
    return false;
}

static void start_nginx(loom_loop_t *loop, loom_tls_ctx_t *cctx, bool http2)
{
    bool up = false;
    for (int attempt = 0; attempt < 5 && !up; attempt++)
        up = try_nginx(loop, cctx, http2);
    if (!up)
        TEST_SKIP("nginx did not come up on a free port (see %s/logs/error.log)", ngx_dir);
}

int main(void)
{
    test_timeout(90);
    ngx_setup();
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    ngx_fill_html(BIG_SIZE);
    start_nginx(loop, cctx, true);

    /* ALPN h2: the version is 20, the fields are NUL-terminated. */
    static h2_result h[NPAR];
    h2_get(loop, "/", &h[0], cctx, false, LOOM_HTTP_VERSION_AUTO);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.r.status, 200);
    CHECK_EQ(h[0].version, 20);
    CHECK_STR(h[0].t.alpn, "h2");
    CHECK(strstr(h[0].t.r.headers, "server: nginx") != NULL);
    CHECK_STR(h[0].t.r.body, "hello from nginx\n");
    hc_result_free(&h[0].t.r);

    /* 100 parallel GETs: one connection (the one above, kept idle). */
    loom_http_client_stats_t s0, s1;
    loom_http_client_stats(loop, &s0);
    for (int i = 0; i < NPAR; i++)
        h2_start(loop, "/conn", &h[i], cctx, false, LOOM_HTTP_VERSION_AUTO);
    for (int i = 0; i < NPAR; i++)
        hc_run_until(loop, &h[i].t.r.done, 20000);
    char first[64] = "";
    for (int i = 0; i < NPAR; i++) {
        CHECK_EQ(h[i].t.r.done, 1);
        CHECK_EQ(h[i].t.r.status, 200);
        CHECK_EQ(h[i].version, 20);
        const char *c = strstr(h[i].t.r.headers, "x-conn: ");
        CHECK(c != NULL);
        if (i == 0)
            snprintf(first, sizeof first, "%.20s", c);
        else
            CHECK(strncmp(first, c, strlen(first)) == 0);
        hc_result_free(&h[i].t.r);
    }
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.connections, s0.connections); /* no new connection */
    CHECK_EQ(s1.open, 1);

    /* 100 parallel from a cold pool: the first handshake is waited for,
     * then all go over one connection. */
    loom_http_client_close_idle(loop);
    loom_run(loop, LOOM_RUN_NOWAIT);
    loom_http_client_stats(loop, &s0);
    for (int i = 0; i < NPAR; i++)
        h2_start(loop, "/conn", &h[i], cctx, false, LOOM_HTTP_VERSION_AUTO);
    for (int i = 0; i < NPAR; i++)
        hc_run_until(loop, &h[i].t.r.done, 20000);
    for (int i = 0; i < NPAR; i++) {
        CHECK_EQ(h[i].t.r.done, 1);
        CHECK_EQ(h[i].version, 20);
        hc_result_free(&h[i].t.r);
    }
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.connections - s0.connections, 1);

    /* A chunked body and a 404, on the same connection. */
    h2_get(loop, "/sub.html", &h[0], cctx, false, LOOM_HTTP_VERSION_AUTO);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.r.body_len, (size_t)2000 * 55);
    CHECK(strstr(h[0].t.r.body, "HELLO") != NULL);
    hc_result_free(&h[0].t.r);
    h2_get(loop, "/missing", &h[0], cctx, false, LOOM_HTTP_VERSION_AUTO);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.r.status, 404);
    hc_result_free(&h[0].t.r);

    /* A large body streamed, paused once: while paused nothing more comes
     * (the stream's window, 1 MiB, runs out), and it completes after resume. */
    h2_start(loop, "/big.bin", &h[0], cctx, true, LOOM_HTTP_VERSION_AUTO);
    loom_update_time(loop);
    uint64_t end = loom_now(loop) + 20000;
    while (!h[0].paused_once && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(h[0].paused_once);
    uint64_t at_pause = h[0].t.got;
    for (int i = 0; i < 20; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
    usleep(50000);
    for (int i = 0; i < 20; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(h[0].t.got, at_pause);
    /* Another stream works meanwhile on the same connection. */
    h2_get(loop, "/", &h[1], cctx, false, LOOM_HTTP_VERSION_AUTO);
    CHECK_EQ(h[1].t.r.done, 1);
    hc_result_free(&h[1].t.r);
    CHECK_EQ(h[0].t.got, at_pause);
    CHECK_OK(loom_http_client_resume(h[0].req));
    hc_run_until(loop, &h[0].t.r.done, 20000);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].version, 20);
    CHECK_EQ(h[0].t.got, BIG_SIZE);
    hc_result_free(&h[0].t.r);

    /* Cancel: 4 big streams, 2 cancelled mid-way (RST_STREAM), the other 2
     * complete; the connection stays (no new connection). */
    loom_http_client_stats(loop, &s0);
    for (int i = 0; i < 4; i++) {
        h2_start(loop, "/big.bin", &h[i], cctx, true, LOOM_HTTP_VERSION_AUTO);
        h[i].paused_once = 1; /* no pause here */
    }
    end = loom_now(loop) + 20000;
    while ((h[0].t.got == 0 || h[1].t.got == 0) && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_OK(loom_http_client_cancel(h[0].req));
    CHECK_OK(loom_http_client_cancel(h[1].req));
    CHECK_EQ(loom_http_client_cancel(h[1].req), LOOM_ECLOSED);
    hc_run_until(loop, &h[2].t.r.done, 20000);
    hc_run_until(loop, &h[3].t.r.done, 20000);
    CHECK_EQ(h[0].t.r.done, 0);
    CHECK_EQ(h[1].t.r.done, 0);
    for (int i = 2; i < 4; i++) {
        CHECK_EQ(h[i].t.r.done, 1);
        CHECK_EQ(h[i].t.got, BIG_SIZE);
        hc_result_free(&h[i].t.r);
    }
    h2_get(loop, "/", &h[0], cctx, false, LOOM_HTTP_VERSION_AUTO);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.r.reused, 1);
    hc_result_free(&h[0].t.r);
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.connections, s0.connections);

    /* loom-fetch: -v shows the version; load mode multiplexes over one
     * connection. */
    const char *fetch = LOOM_BINARY_DIR "/examples/loom-fetch";
    if (access(fetch, X_OK) == 0) {
        char cmd[1024], line[512];
        snprintf(cmd, sizeof cmd,
                 "%s --cacert %s -v https://localhost:%d/ 2>&1 >/dev/null; "
                 "%s --cacert %s --parallel 20 --requests 200 https://localhost:%d/conn",
                 fetch, tls_path("ca.pem"), ngx_port, fetch, tls_path("ca.pem"), ngx_port);
        FILE *pf = popen(cmd, "r");
        CHECK(pf);
        int saw_version = 0, saw_head = 0, saw_load = 0;
        while (fgets(line, sizeof line, pf)) {
            saw_version |= strstr(line, "* HTTP version: HTTP/2") != NULL;
            saw_head |= strstr(line, "< HTTP/2 200") != NULL;
            saw_load |= strstr(line, "requests: 200,") != NULL &&
                        strstr(line, "errors: 0, connections: 1, version: HTTP/2") != NULL;
        }
        CHECK_EQ(pclose(pf), 0);
        CHECK(saw_version && saw_head && saw_load);
    }

    /* LOOM_HTTP_VERSION_1_1 on the same server: ALPN http/1.1. */
    h2_get(loop, "/", &h[0], cctx, false, LOOM_HTTP_VERSION_1_1);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].version, 11);
    CHECK_STR(h[0].t.alpn, "http/1.1");
    hc_result_free(&h[0].t.r);

    /* Fallback: nginx without http2 answers HTTP/1.1 to the same request;
     * parallel requests get the HTTP/1.1 pool (several connections). */
    loom_http_client_close_idle(loop);
    loom_run(loop, LOOM_RUN_NOWAIT);
    ngx_kill();
    start_nginx(loop, cctx, false);
    for (int i = 0; i < 8; i++)
        h2_start(loop, "/conn", &h[i], cctx, false, LOOM_HTTP_VERSION_AUTO);
    for (int i = 0; i < 8; i++)
        hc_run_until(loop, &h[i].t.r.done, 20000);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(h[i].t.r.done, 1);
        CHECK_EQ(h[i].version, 11);
        CHECK_STR(h[i].t.alpn, "http/1.1");
        hc_result_free(&h[i].t.r);
    }
    /* HTTP/2 with prior knowledge over https: an error naming the host. */
    h2_get(loop, "/", &h[0], cctx, false, LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    CHECK_EQ(h[0].t.r.done, 2);
    /* nginx refuses the handshake (no common ALPN) or loom refuses h2-less. */
    CHECK(strstr(h[0].t.r.msg, "localhost:") != NULL);
    hc_result_free(&h[0].t.r);

    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("h2 client nginx: ok\n");
    return 0;
}
