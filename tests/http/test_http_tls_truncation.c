/* test_http_tls_truncation: a response framed by the end of the connection
 * (no Content-Length, not chunked) over TLS is complete only when the
 * server ends the TLS stream with close_notify. The server here is raw:
 * loom's TLS TCP server writing the answers by hand. It sends a head
 * without Content-Length and some body, then aborts (a FIN without
 * close_notify: the request fails as truncated, never a complete body) or
 * closes (close_notify: the body completes); it also cuts a head short and
 * a Content-Length body short. LOOM_TEST_NO_TRANSPORT: TLS is the
 * transport. */
#include "hc_tls_test.h"

typedef struct {
    char buf[2048];
    size_t len;
} conn_in;

static conn_in ins[16];
static int nconn, srv_closes;

static void srv_connect(loom_socket_t *s, void *data)
{
    (void)data;
    CHECK(nconn < 16);
    ins[nconn].len = 0;
    CHECK_OK(loom_socket_set_data(s, &ins[nconn++]));
}

static void srv_read(loom_socket_t *s, const char *bytes, size_t len, void *data)
{
    conn_in *in = data;
    CHECK(in->len + len < sizeof in->buf);
    memcpy(in->buf + in->len, bytes, len);
    in->len += len;
    in->buf[in->len] = '\0';
    if (strstr(in->buf, "\r\n\r\n") == NULL)
        return;
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    const char *answer;
    bool cut = true;
    if (strncmp(in->buf, "GET /cut ", 9) == 0) {
        answer = "HTTP/1.1 200 OK\r\n\r\npartial body";
    } else if (strncmp(in->buf, "GET /notify ", 12) == 0) {
        answer = head;
        cut = false;
    } else if (strncmp(in->buf, "GET /head ", 10) == 0) {
        answer = "HTTP/1.1 200 OK\r\nContent-Ty";
    } else {
        answer = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort";
    }
    CHECK_OK(loom_socket_write(s, answer, strlen(answer)));
    if (!cut) {
        CHECK_OK(loom_socket_write(s, "the whole body", 14));
        CHECK_OK(loom_socket_close(s)); /* close_notify after the bytes */
        return;
    }
    /* Written at once (nothing was queued): an abort now is a FIN without
     * close_notify, as an attacker's forged FIN would be. */
    CHECK_EQ(loom_socket_queued(s), 0);
    CHECK_OK(loom_socket_abort(s));
}

static void srv_close(loom_socket_t *s, void *data)
{
    (void)s, (void)data;
    srv_closes++;
}

static void srv_event(const loom_event_t *ev, void *data)
{
    (void)ev, (void)data;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = sctx,
                                                     .on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_close = srv_close,
                                                     .on_event = srv_event},
                             &srv));
    int port = loom_tcp_server_port(srv);
    char url[128], want[160];
    hc_result r;

    /* The end without close_notify: truncated, an error. */
    snprintf(url, sizeof url, "https://localhost:%d/cut", port);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK_EQ(r.ev_code, LOOM_ETRUNCATED);
    snprintf(want, sizeof want, "response from localhost:%d truncated", port);
    CHECK(strstr(r.msg, want) == r.msg);
    CHECK(strstr(r.msg, "(12 body bytes received)") != NULL);
    CHECK(r.body == NULL);
    hc_result_free(&r);

    /* With close_notify: the body is complete. */
    snprintf(url, sizeof url, "https://localhost:%d/notify", port);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    CHECK_STR(r.body, "the whole body");
    hc_result_free(&r);

    /* A head cut short without close_notify. */
    snprintf(url, sizeof url, "https://localhost:%d/head", port);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_ETRUNCATED);
    CHECK(strstr(r.msg, "inside the response head") != NULL);
    hc_result_free(&r);

    /* A Content-Length body cut short: an error whichever way it ends. */
    snprintf(url, sizeof url, "https://localhost:%d/short", port);
    tls_get(loop, url, &r, cctx);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK_EQ(r.ev_code, LOOM_ETRUNCATED);
    hc_result_free(&r);

    for (uint64_t end = tls_now_ms() + 5000; srv_closes < nconn && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(srv_closes, nconn);
    loom_tcp_server_close(srv);
    loom_tls_ctx_free(sctx);
    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("http tls truncation: ok\n");
    return 0;
}
