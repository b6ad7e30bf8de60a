/* test_http_tls_limits: an HTTPS server counts connections from accept, so
 * connections still in their TLS handshake hold max_connections: with
 * max_connections = 2, two raw connections that send nothing fill the
 * server, a third client waits in the backlog until the handshake timeout
 * (400 ms) frees their places, and is then served. A server closed while
 * handshakes are pending ends them and reports done. LOOM_TEST_NO_TRANSPORT:
 * TLS is the transport. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "hc_tls_test.h"

static int timeouts, done_cb;
static volatile int both_timed_out;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    CHECK_OK(loom_http_respond(req, 200, NULL, path, pl));
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_TCP_TIMEOUT && strstr(ev->msg, "tls handshake with 127.0.0.1:"))
        both_timed_out = ++timeouts == 2;
    else
        fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static void on_done(loom_http_server_t *srv, void *data)
{
    (void)srv, (void)data;
    done_cb++;
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_EQ(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", &(loom_tls_opts){.handshake_timeout_ms = 400});
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.tls = sctx, .max_connections = 2, .on_event = on_event}, &srv));
    int port = loom_http_server_port(srv);
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    char url[128];
    snprintf(url, sizeof url, "https://localhost:%d/ok", port);

    /* Served at once while the server is empty. */
    tls_result t;
    uint64_t t0 = tls_now_ms();
    tls_start(loop, url, &t, (loom_http_request_opts){.tls = cctx});
    hc_run_until(loop, &t.r.done, 10000);
    CHECK_EQ(t.r.done, 1);
    CHECK_STR(t.r.body, "/ok");
    hc_result_free(&t.r);
    loom_http_client_close_idle(loop);
    loom_run(loop, LOOM_RUN_NOWAIT);

    /* Two silent connections fill it: the third waits for their timeout. */
    int fds[2];
    for (int i = 0; i < 2; i++)
        fds[i] = raw_connect(port);
    volatile int never = 0;
    tls_run_until(loop, &never, 100); /* both accepted, handshaking */
    t0 = tls_now_ms();
    tls_start(loop, url, &t, (loom_http_request_opts){.tls = cctx});
    hc_run_until(loop, &t.r.done, 10000);
    uint64_t took = tls_now_ms() - t0;
    if (t.r.done != 1)
        fprintf(stderr, "request: %s\n", t.r.msg);
    CHECK_EQ(t.r.done, 1);
    CHECK_STR(t.r.body, "/ok");
    /* The two timers may fire in different turns of the loop (the two were
     * accepted in different turns): the first frees a place and the third
     * client can be served before the second times out. */
    tls_run_until(loop, &both_timed_out, 5000);
    CHECK_EQ(timeouts, 2);
    fprintf(stderr, "served after %llu ms\n", (unsigned long long)took);
    CHECK(took >= 200); /* it waited for the handshake timeout (400 ms from accept) */
    hc_result_free(&t.r);
    loom_http_client_close_idle(loop);
    for (int i = 0; i < 2; i++)
        close(fds[i]);

    /* A graceful close with a handshake pending: it ends, the server is done. */
    fds[0] = raw_connect(port);
    tls_run_until(loop, &never, 100);
    CHECK_OK(loom_http_server_close(srv, 0, on_done));
    CHECK(tls_run_until(loop, &done_cb, 5000));
    close(fds[0]);

    loom_tls_ctx_free(cctx);
    loom_tls_ctx_free(sctx);
    hc_loop_done(loop);
    printf("http tls limits: ok\n");
    return 0;
}
