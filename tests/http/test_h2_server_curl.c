/* test_h2_server_curl: loom's HTTP/2 server against real clients - curl
 * (--http2-prior-knowledge on a plain server with http2.h2c, --http2 over
 * TLS by ALPN), nghttp and h2load: the version and stream id the handler
 * sees, HTTP/1.1 still served beside h2c, a 1 MiB upload echoed back, a
 * streamed 2 MiB download that waits for on_drain, Server-Sent Events,
 * deferred answers multiplexed on one connection (curl --parallel), and the
 * same over TLS. The application code is the HTTP/1 one, unchanged. */
#include "../tls/tls_test_util.h"
#include "test_http_server_util.h"

#define BIG (2u << 20)

static int nreq, nevents, deferred_live, deferred_max, last_version;
static char bigbuf[65536];

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "server event: %s\n", ev->msg);
    nevents++;
}

static void defer_cb(loom_timer_t *t, void *data)
{
    loom_http_req_t *req = data;
    deferred_live--;
    hs_reply(req, "late");
    loom_timer_close(t);
}

/* Streamed download: writes until told to wait, goes on from on_drain. */
static void stream_more(loom_http_req_t *req)
{
    uintptr_t left = (uintptr_t)loom_http_req_data(req);
    while (left > 0) {
        size_t n = left < sizeof bigbuf ? left : sizeof bigbuf;
        int r = loom_http_response_write(req, bigbuf, n);
        CHECK(r >= 0);
        left -= n;
        loom_http_req_set_data(req, (void *)left);
        if (r == 1)
            return; /* on_drain */
    }
    CHECK_OK(loom_http_response_end(req));
}

static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    stream_more(req);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    last_version = loom_http_req_version(req);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    if (strcmp(path, "/echo") == 0) {
        size_t bl;
        const char *body = loom_http_req_body(req, &bl);
        CHECK_OK(loom_http_respond(req, 200, NULL, body, bl));
    } else if (strcmp(path, "/stream") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        loom_http_req_set_data(req, (void *)(uintptr_t)BIG);
        stream_more(req);
    } else if (strcmp(path, "/sse") == 0) {
        CHECK_OK(loom_http_sse_start(req, NULL));
        CHECK_OK(loom_http_sse_send(req, "a", "one"));
        CHECK_OK(loom_http_sse_send(req, NULL, "two\nlines"));
        CHECK_OK(loom_http_response_end(req));
    } else if (strcmp(path, "/defer") == 0) {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loom_http_req_loop(req), &t, defer_cb, req));
        CHECK_OK(loom_timer_start(t, 100, 0));
        if (++deferred_live > deferred_max)
            deferred_max = deferred_live;
    } else {
        char b[128];
        size_t hl = 0;
        const char *host = loom_http_req_host(req, &hl);
        snprintf(b, sizeof b, "hello %d %s q=%s id-odd=%u host=%s", loom_http_req_version(req),
                 path, loom_http_req_query(req, NULL), loom_http_req_stream_id(req) % 2,
                 host ? host : "-");
        hs_reply(req, b);
    }
}

static loom_http_server_opts opts(loom_tls_ctx_t *tls)
{
    return (loom_http_server_opts){.tls = tls,
                                   .on_event = on_event,
                                   .on_drain = on_drain,
                                   .http2 = {.h2c = true},
                                   .high_water = 128 * 1024,
                                   .limits.max_body_size = 4u << 20};
}

/* Writes a file of n patterned bytes; returns its path (static). */
static const char *make_file(const char *name, size_t n)
{
    static char path[4][200];
    static int k;
    char *p = path[k++ & 3];
    snprintf(p, 200, "%s/%s", tls_certs(), name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    for (size_t i = 0; i < n; i++)
        fputc(bigbuf[i % sizeof bigbuf], f);
    fclose(f);
    return p;
}

static void check_same(const char *a, const char *b)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    CHECK_EQ(system(cmd), 0);
}

int main(void)
{
    test_timeout(120);
    if (!hs_have("curl"))
        TEST_SKIP("curl not installed");
    for (size_t i = 0; i < sizeof bigbuf; i++)
        bigbuf[i] = "0123456789abcdefghijklmnopqrstuv"[(i * 7 + i / 64) & 31];
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = opts(NULL);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);
    char u[160], out[16384];

    /* A GET by prior knowledge: version 20, an odd stream id, the query and
     * :authority as the host. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/p?x=1", port);
    char *a1[] = {"curl", "-s", "--http2-prior-knowledge", "-w", "|%{http_version}", u, NULL};
    CHECK_EQ(hs_run_child(loop, a1, NULL, 0, out, sizeof out, 20000), 0);
    char want[200];
    snprintf(want, sizeof want, "hello 20 /p q=x=1 id-odd=1 host=127.0.0.1:%d|2", port);
    CHECK_STR(out, want);

    /* HTTP/1.1 on the same port. */
    char *a2[] = {"curl", "-s", "--http1.1", "-w", "|%{http_version}", u, NULL};
    CHECK_EQ(hs_run_child(loop, a2, NULL, 0, out, sizeof out, 20000), 0);
    snprintf(want, sizeof want, "hello 11 /p q=x=1 id-odd=0 host=127.0.0.1:%d|1.1", port);
    CHECK_STR(out, want);

    /* Upload ~1 MiB (more than a stream's window), echoed back intact. */
    const char *up = make_file("up.bin", (1u << 20) + 4321);
    char data[210], back[200];
    snprintf(data, sizeof data, "@%s", up);
    snprintf(back, sizeof back, "%s/back.bin", tls_certs());
    snprintf(u, sizeof u, "http://127.0.0.1:%d/echo", port);
    char *a3[] = {"curl",
                  "-s",
                  "--http2-prior-knowledge",
                  "--data-binary",
                  data,
                  "-o",
                  back,
                  "-w",
                  "%{http_code} %{size_download}",
                  u,
                  NULL};
    CHECK_EQ(hs_run_child(loop, a3, NULL, 0, out, sizeof out, 30000), 0);
    CHECK_STR(out, "200 1052897");
    check_same(up, back);

    /* A streamed 2 MiB download, paced by on_drain. */
    const char *big = make_file("big.bin", BIG);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/stream", port);
    char *a4[] = {"curl", "-s", "--http2-prior-knowledge",       "-o",
                  back,   "-w", "%{http_code} %{size_download}", u,
                  NULL};
    CHECK_EQ(hs_run_child(loop, a4, NULL, 0, out, sizeof out, 30000), 0);
    CHECK_STR(out, "200 2097152");
    check_same(big, back);

    /* Server-Sent Events. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/sse", port);
    char *a5[] = {"curl", "-s", "--http2-prior-knowledge", u, NULL};
    CHECK_EQ(hs_run_child(loop, a5, NULL, 0, out, sizeof out, 20000), 0);
    CHECK_STR(out, "event: a\ndata: one\n\ndata: two\ndata: lines\n\n");

    /* nghttp and h2load, nghttp2's own clients. */
    if (hs_have("nghttp")) {
        /* Five deferred requests multiplexed on one connection. */
        char d[5][96];
        for (int i = 0; i < 5; i++)
            snprintf(d[i], sizeof d[i], "http://127.0.0.1:%d/defer?%d", port, i);
        char *a7[] = {"nghttp", "-n", "-s", d[0], d[1], d[2], d[3], d[4], NULL};
        deferred_max = 0;
        int before = nreq;
        CHECK_EQ(hs_run_child(loop, a7, NULL, 0, out, sizeof out, 20000), 0);
        CHECK(strstr(out, "/defer") != NULL);
        CHECK_EQ(nreq - before, 5);
        CHECK_EQ(deferred_max, 5);
    }
    if (hs_have("h2load")) {
        snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
        char *a8[] = {"h2load", "-n", "400", "-c", "4", "-m", "10", u, NULL};
        CHECK_EQ(hs_run_child(loop, a8, NULL, 0, out, sizeof out, 30000), 0);
        CHECK(strstr(out, "400 succeeded, 0 failed, 0 errored") != NULL);
    }
    CHECK_EQ(nevents, 0);
    hs_close_server(loop, srv);

    /* TLS: h2 by ALPN, http/1.1 for clients that ask for it. */
    loom_tls_ctx_t *ctx = tls_server_ctx("server", NULL);
    o = opts(ctx);
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    loom_tls_ctx_free(ctx);
    port = loom_http_server_port(srv);
    char ca[200], res[64];
    snprintf(ca, sizeof ca, "%s", tls_path("ca.pem"));
    snprintf(res, sizeof res, "localhost:%d:127.0.0.1", port);
    snprintf(u, sizeof u, "https://localhost:%d/t", port);
    char *b1[] = {"curl", "-s", "--http2",          "--cacert", ca,  "--resolve",
                  res,    "-w", "|%{http_version}", u,          NULL};
    CHECK_EQ(hs_run_child(loop, b1, NULL, 0, out, sizeof out, 20000), 0);
    snprintf(want, sizeof want, "hello 20 /t q= id-odd=1 host=localhost:%d|2", port);
    CHECK_STR(out, want);
    char *b2[] = {"curl", "-s", "--http1.1",        "--cacert", ca,  "--resolve",
                  res,    "-w", "|%{http_version}", u,          NULL};
    CHECK_EQ(hs_run_child(loop, b2, NULL, 0, out, sizeof out, 20000), 0);
    snprintf(want, sizeof want, "hello 11 /t q= id-odd=0 host=localhost:%d|1.1", port);
    CHECK_STR(out, want);
    snprintf(u, sizeof u, "https://localhost:%d/echo", port);
    char *b3[] = {"curl",
                  "-s",
                  "--http2",
                  "--cacert",
                  ca,
                  "--resolve",
                  res,
                  "--data-binary",
                  data,
                  "-o",
                  back,
                  "-w",
                  "%{http_code} %{http_version}",
                  u,
                  NULL};
    CHECK_EQ(hs_run_child(loop, b3, NULL, 0, out, sizeof out, 30000), 0);
    CHECK_STR(out, "200 2");
    check_same(up, back);
    snprintf(u, sizeof u, "https://localhost:%d/stream", port);
    char *b4[] = {"curl", "-s", "--http2", "--cacert", ca, "--resolve", res, "-o", back, u, NULL};
    CHECK_EQ(hs_run_child(loop, b4, NULL, 0, out, sizeof out, 30000), 0);
    check_same(big, back);

    loom_stats_t s0, s1;
    int before;
    deferred_max = 0;
    /* 20 deferred requests in parallel (curl 7.88 multiplexes them only
     * after ALPN, not with prior knowledge): one connection, answered
     * later, all in flight at once. */
    loom_stats(loop, &s0);
    snprintf(u, sizeof u, "https://localhost:%d/defer?[1-20]", port);
    char *a6[] = {"curl", "-s",         "--http2",        "--cacert", ca, "--resolve",
                  res,    "--parallel", "--parallel-max", "20",       u,  NULL};
    before = nreq;
    CHECK_EQ(hs_run_child(loop, a6, NULL, 0, out, sizeof out, 20000), 0);
    int nlate = 0; /* curl 7.88 prints its parallel progress even with -s */
    for (const char *p = out; (p = strstr(p, "late")) != NULL; p += 4)
        nlate++;
    CHECK_EQ(nlate, 20);
    CHECK_EQ(nreq - before, 20);
    loom_stats(loop, &s1);
    CHECK_EQ(s1.tcp_incoming_total - s0.tcp_incoming_total, 1);
    CHECK(deferred_max > 1);

    CHECK_EQ(nevents, 0);
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("h2 server curl: ok\n");
    return 0;
}
