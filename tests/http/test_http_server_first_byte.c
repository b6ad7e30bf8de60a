/* test_http_server_first_byte: a new connection that sends nothing is held
 * to the header timeout, not the idle timeout, so idle sockets cannot hold
 * max_connections cheaply. Here the header timeout is 300 ms and the idle
 * timeout 60 s: silent connections are closed (with an http timeout event)
 * long before a minute, and with max_connections 2 a third client gets in
 * once they are gone; a connection that made a request keeps the idle
 * timeout afterwards. */
#include "test_http_server_util.h"

static int nreq, ntimeouts;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    hs_reply(req, "fine");
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_HTTP_TIMEOUT)
        ntimeouts++;
}

/* Runs the loop until fd sees the server's close (or `ms` pass); returns 1
 * if it did. */
static int wait_closed(loom_loop_t *loop, int fd, unsigned ms)
{
    uint64_t end = hs_now_ms() + ms;
    while (hs_now_ms() < end) {
        hs_run_for(loop, 10);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            char b[256];
            ssize_t n = recv(fd, b, sizeof b, 0);
            if (n <= 0)
                return 1;
        }
    }
    return 0;
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_event = on_event,
                               .header_timeout_ms = 300,
                               .idle_timeout_ms = 60000,
                               .max_connections = 2};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);

    /* Two silent connections fill max_connections. */
    int s1 = hs_connect(port), s2 = hs_connect(port);
    uint64_t t0 = hs_now_ms();
    CHECK(wait_closed(loop, s1, 10000));
    CHECK(wait_closed(loop, s2, 10000));
    CHECK(hs_now_ms() - t0 < 10000); /* far below the idle timeout */
    CHECK_EQ(ntimeouts, 2);
    close(s1);
    close(s2);

    /* A client that asked once keeps the idle timeout: still served after
     * more than three header timeouts of silence. */
    int fd = hs_connect(port);
    const char *r = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[2048];
    for (int round = 0; round < 2; round++) {
        CHECK(send(fd, r, strlen(r), 0) == (ssize_t)strlen(r));
        size_t got = 0;
        uint64_t end = hs_now_ms() + 5000;
        while (hs_count_responses(buf, got, LOOM_HTTP_METHOD_GET, NULL, 1) < 1) {
            CHECK(hs_now_ms() < end);
            hs_run_for(loop, 10);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 0) == 1) {
                ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
                CHECK(n > 0);
                got += (size_t)n;
            }
        }
        if (round == 0)
            hs_run_for(loop, 1000);
    }
    close(fd);
    CHECK_EQ(nreq, 2);
    CHECK_EQ(ntimeouts, 2);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
