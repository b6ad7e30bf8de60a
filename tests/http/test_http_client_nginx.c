/* test_http_client_nginx.c - the client against a real nginx started on
 * loopback with a config of the test's own: keep-alive reuse (nginx's
 * $connection in a header stays the same), a chunked body (sub_filter drops
 * the length), a 404, and a 100 MiB file streamed with flat memory (the
 * process's RSS may not grow by more than a few MiB while it downloads).
 * Run twice through a version parameter: HTTP/1.1, then HTTP/2 (h2c with
 * prior knowledge, LOOM_HTTP_VERSION_2, on a second `http2` listener of the
 * same nginx). Skipped when /usr/sbin/nginx is missing. */
#include "nginx_test.h"

#define BIG_SIZE (100ull << 20)

static int h2c_port; /* nginx's second listener: `http2` (h2c prior knowledge) */

/* Is the listener on ngx_port our nginx? One request for the index page. */
static bool is_our_nginx(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)ngx_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 5};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[1024];
    size_t n = 0;
    if (connect(s, (struct sockaddr *)&a, sizeof a) == 0 &&
        hc_writes(s, "GET / HTTP/1.0\r\n\r\n") == 0) {
        ssize_t k;
        while (n < sizeof buf - 1 && (k = recv(s, buf + n, sizeof buf - 1 - n, 0)) > 0)
            n += (size_t)k;
    }
    buf[n] = '\0';
    close(s);
    return strstr(buf, "hello from nginx") != NULL;
}

static void start_nginx(void)
{
    ngx_setup();
    ngx_fill_html(BIG_SIZE);
    /* Another process may take the port first: then nginx exits, or the
     * probe reaches someone else. Both are detected and the start is tried
     * again on another port. */
    for (int attempt = 0; attempt < 5; attempt++) {
        char extra[64];
        h2c_port = ngx_free_port();
        snprintf(extra, sizeof extra, ";\n  listen 127.0.0.1:%d http2", h2c_port);
        ngx_spawn(extra, NGX_LOCATIONS);
        int up = ngx_wait_listen();
        if (up == 1 && is_our_nginx())
            return;
        ngx_kill();
    }
    TEST_SKIP("nginx did not come up on a free port (see %s/logs/error.log)", ngx_dir);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

typedef struct {
    uint64_t got;
    long rss0, rss_max;
    int nonzero, done, events;
} big_state;

static int big_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    big_state *s = data;
    (void)req;
    for (size_t i = 0; i < len; i += 4096)
        if (chunk[i])
            s->nonzero++;
    uint64_t before = s->got;
    s->got += len;
    if (s->rss0 < 0 && s->got > (4u << 20))
        s->rss0 = rss_kb(); /* after warm-up: buffers and slabs exist */
    if (s->rss0 >= 0 && (before >> 22) != (s->got >> 22)) {
        long r = rss_kb();
        if (r > s->rss_max)
            s->rss_max = r;
    }
    return 0;
}

static void big_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                         void *data)
{
    big_state *s = data;
    (void)req;
    CHECK_EQ(res->status, 200);
    s->done = 1;
}

static void big_event(const loom_event_t *ev, void *data)
{
    big_state *s = data;
    fprintf(stderr, "big: %s\n", ev->msg);
    s->events++;
    s->done = 1;
}

/* The test's requests with version `ver` to `port`. */
static void run(loom_loop_t *loop, loom_http_version_t ver, int port)
{
    char u[128];
    hc_result r;
    const loom_http_request_opts vo = {.version = ver};
    bool h2 = ver == LOOM_HTTP_VERSION_2;

    /* Keep-alive: the same nginx connection answers every request. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/conn", port);
    char first[64] = "";
    for (int i = 0; i < 5; i++) {
        memset(&r, 0, sizeof r);
        hc_get(loop, u, &r, &vo);
        hc_run_until(loop, &r.done, 5000);
        CHECK_EQ(r.done, 1);
        CHECK_STR(r.body, "c");
        const char *c = strcasestr(r.headers, "X-Conn: ");
        CHECK(c);
        char val[64];
        snprintf(val, sizeof val, "%.*s", (int)strcspn(c + 8, "\n"), c + 8);
        if (i == 0)
            snprintf(first, sizeof first, "%s", val);
        else
            CHECK_STR(val, first);
        CHECK_EQ(r.reused, i > 0);
        hc_result_free(&r);
    }

    /* A plain file, then a chunked one. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &vo);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "hello from nginx\n");
    hc_result_free(&r);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/sub.html", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &vo);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.status, 200);
    if (!h2) /* HTTP/2 has no chunked coding */
        CHECK(strstr(r.headers, "Transfer-Encoding: chunked") != NULL);
    CHECK_EQ(r.body_len, 2000 * strlen("line with HELLO in it, and more text to make it longer\n"));
    CHECK(strncmp(r.body, "line with HELLO in it", 21) == 0);
    CHECK(strstr(r.body, "hello") == NULL);
    hc_result_free(&r);

    /* 404. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/missing", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &vo);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 404);
    CHECK(strstr(r.body, "404") != NULL);
    hc_result_free(&r);

    /* 100 MiB streamed: memory stays flat. */
    big_state s = {.rss0 = -1};
    snprintf(u, sizeof u, "http://127.0.0.1:%d/big.bin", port);
    CHECK_OK(loom_http_request(loop, u,
                               &(loom_http_request_opts){.on_body = big_body,
                                                         .on_response = big_response,
                                                         .on_event = big_event,
                                                         .data = &s,
                                                         .version = ver},
                               NULL));
    hc_run_until(loop, &s.done, 20000);
    CHECK_EQ(s.events, 0);
    CHECK_EQ(s.got, BIG_SIZE);
    CHECK_EQ(s.nonzero, 0);
    fprintf(stderr, "100 MiB streamed (%s): RSS %ld kB after warm-up, at most %ld kB\n",
            h2 ? "h2c" : "HTTP/1.1", s.rss0, s.rss_max);
    CHECK(s.rss0 > 0 && s.rss_max > 0);
    CHECK(s.rss_max - s.rss0 < 4 * 1024);
}

int main(void)
{
    test_timeout(25);
    start_nginx();
    loom_loop_t *loop = test_loop_new();
    run(loop, LOOM_HTTP_VERSION_1_1, ngx_port);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.connections, 1);
    run(loop, LOOM_HTTP_VERSION_2, h2c_port);
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.connections, 2); /* one more: the h2c one, for every request */
    hc_loop_done(loop);
    ngx_stop();
    printf("http client nginx: ok\n");
    return 0;
}
