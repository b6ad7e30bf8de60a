/* test_http_client_loom.c - the client against loom's own HTTP server, both
 * on one loop: keep-alive reuse, a POST body, a chunked upload, HEAD, a
 * streamed download, and a deferred answer. LOOM_TEST_H2: run once more
 * over h2c with prior knowledge (http_version.h); the server checks every
 * request's version and the client every response's. */
#include "hc_test.h"
#include "loom/http.h"

static int deferred_pending;
static loom_http_req_t *deferred;

static void answer_late(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    CHECK_OK(loom_http_respond(deferred, 200, NULL, "late", 4));
    deferred_pending = 0;
}

static void on_request(loom_http_req_t *req, void *data)
{
    loom_loop_t *loop = data;
    HV_CHECK_REQ(req);
    size_t plen, blen;
    const char *path = loom_http_req_path(req, &plen);
    const char *body = loom_http_req_body(req, &blen);
    if (plen == 6 && memcmp(path, "/defer", 6) == 0) {
        deferred = req;
        deferred_pending = 1;
        CHECK_OK(loom_delay(loop, 50, answer_late, NULL, NULL));
        return;
    }
    if (plen == 4 && memcmp(path, "/big", 4) == 0) {
        static char big[1 << 20];
        memset(big, 'b', sizeof big);
        loom_http_respond(req, 200, NULL, big, sizeof big);
        return;
    }
    char out[512];
    size_t ml;
    const char *m = loom_http_req_method_str(req, &ml);
    int n = snprintf(out, sizeof out, "%.*s %.*s %zu:%.*s", (int)ml, m, (int)plen, path, blen,
                     (int)(blen > 100 ? 100 : blen), body ? body : "");
    loom_http_respond(req, 200, (const char *[]){"X-Loom", "yes", NULL}, out, (size_t)n);
}

static int src_left;

static ssize_t src(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    (void)req;
    (void)data;
    if (src_left == 0)
        return 0;
    src_left--;
    CHECK(size >= 3);
    memcpy(buf, "abc", 3);
    return 3;
}

static size_t streamed;
static int stream_done;

static int sbody(loom_http_client_req_t *req, const char *c, size_t len, void *d)
{
    (void)req;
    (void)c;
    (void)d;
    streamed += len;
    return 0;
}

static void sdone(loom_http_client_req_t *req, const loom_http_client_response_t *res, void *d)
{
    (void)req;
    (void)d;
    CHECK_EQ(loom_http_client_response_version(res), hv_version());
    stream_done = 1;
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){.data = loop}), &srv));
    int port = loom_http_server_port(srv);
    char u[128];
    hc_result r;

    snprintf(u, sizeof u, "http://127.0.0.1:%d/hello", port);
    for (int i = 0; i < 3; i++) {
        memset(&r, 0, sizeof r);
        hc_get(loop, u, &r, NULL);
        hc_run_until(loop, &r.done, 5000);
        CHECK_EQ(r.done, 1);
        CHECK_EQ(r.version, hv_version());
        CHECK_STR(r.body, "GET /hello 0:");
        CHECK(strcasestr(r.headers, "X-Loom: yes") != NULL); /* h2: lower case */
        CHECK_EQ(r.reused, i > 0);
        hc_result_free(&r);
    }
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.body = "k=v", .body_len = 3});
    hc_run_until(loop, &r.done, 5000);
    CHECK_STR(r.body, "POST /hello 3:k=v");
    hc_result_free(&r);

    src_left = 4;
    memset(&r, 0, sizeof r);
    r.loop = loop;
    CHECK_OK(loom_http_request(loop, u,
                               &(loom_http_request_opts){.method = "PUT",
                                                         .version = hv_client_version(),
                                                         .on_body_source = src,
                                                         .body_length = -1,
                                                         .on_response = hc_on_response,
                                                         .on_event = hc_on_event,
                                                         .data = &r},
                               NULL));
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "PUT /hello 12:abcabcabcabc");
    hc_result_free(&r);

    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.method = "HEAD"});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK(r.body == NULL);
    hc_result_free(&r);

    snprintf(u, sizeof u, "http://127.0.0.1:%d/defer", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_STR(r.body, "late");
    hc_result_free(&r);

    snprintf(u, sizeof u, "http://127.0.0.1:%d/big", port);
    CHECK_OK(loom_http_request(loop, u,
                               &(loom_http_request_opts){.on_body = sbody,
                                                         .on_response = sdone,
                                                         .version = hv_client_version()},
                               NULL));
    hc_run_until(loop, &stream_done, 5000);
    CHECK_EQ(streamed, 1u << 20);

    loom_http_client_close_idle(loop);
    loom_http_server_close(srv, LOOM_HTTP_CLOSE_FORCE, NULL);
    loom_run(loop, LOOM_RUN_DEFAULT);
    test_loop_free_clean(loop);
    printf("http client loom (%s): ok\n", hv_name());
    return 0;
}
