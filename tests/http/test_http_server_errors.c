/* test_http_server_errors: bad input is answered with 400, 413, 414, 417,
 * 431, 501 or 505 and the connection closed, before the application sees
 * anything; each one is reported as an http error event that names the
 * client ("http client 127.0.0.1:PORT: ...") and, once its request line was
 * read, the method and target (bounded, unprintable bytes as %XX); by its
 * address even when it reset the connection before the server accepted it. */
#include "test_http_server_util.h"

static int nreq, nerr;
static char lastmsg[512];

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    hs_reply(req, "ok");
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK(loom_event_is(ev, LOOM_EV_HTTP_ERROR));
    nerr++;
    snprintf(lastmsg, sizeof lastmsg, "%s", ev->msg);
}

/* The last event's message is "http client 127.0.0.1:PORT: <want>..."
 * (want: its start after the client's name). */
static void expect_msg(const char *want)
{
    const char *p = lastmsg;
    int ok = strncmp(p, "http client 127.0.0.1:", 22) == 0;
    if (ok) {
        p += 22;
        ok = *p >= '1' && *p <= '9';
        while (*p >= '0' && *p <= '9')
            p++;
        ok = ok && strncmp(p, ": ", 2) == 0 && strncmp(p + 2, want, strlen(want)) == 0;
    }
    if (!ok) {
        fprintf(stderr, "event \"%s\", want \"http client 127.0.0.1:PORT: %s...\"\n", lastmsg,
                want);
        exit(1);
    }
}

/* Sends `req` and expects one answer with `status`, then the close; the
 * application must not have been called. */
static void expect_status(loom_loop_t *loop, int port, const char *req, size_t len, int status,
                          const char *want)
{
    hs_raw c;
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = req;
    c.req_len = len;
    c.want = 0; /* read until the server closes */
    c.timeout_ms = 4000;
    int before = nreq, errs = nerr;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    int st[4] = {0};
    int n = hs_count_responses(c.resp, c.resp_len, LOOM_HTTP_METHOD_GET, st, 4);
    if (n != 1 || st[0] != status || !c.closed) {
        fprintf(stderr, "expected %d and a close, got %d answers (%d), closed %d: %.*s\n", status,
                n, st[0], c.closed, (int)(c.resp_len < 300 ? c.resp_len : 300), c.resp);
        exit(1);
    }
    CHECK_EQ(nreq, before);
    CHECK_EQ(nerr, errs + 1);
    CHECK(strstr(c.resp, "\r\nConnection: close\r\n") != NULL);
    expect_msg(want);
    hs_raw_free(&c);
}

static void expect_str(loom_loop_t *loop, int port, const char *req, int status, const char *want)
{
    expect_status(loop, port, req, strlen(req), status, want);
}

/* A client sends `req` and resets at once (SO_LINGER 0 close), before the
 * server has accepted it: the kernel no longer says who the peer was
 * (getpeername() fails), yet the event names it by the address accept
 * returned: exactly "http client 127.0.0.1:PORT: <want>". */
static void expect_reset_named(loom_loop_t *loop, int port, const char *req, const char *want)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof in) == 0);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    CHECK(getsockname(fd, (struct sockaddr *)&me, &ml) == 0);
    CHECK(send(fd, req, strlen(req), 0) == (ssize_t)strlen(req));
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
    int errs = nerr;
    while (nerr == errs)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(nerr, errs + 1);
    char full[256];
    snprintf(full, sizeof full, "http client 127.0.0.1:%d: %s", ntohs(me.sin_port), want);
    if (strcmp(lastmsg, full) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", lastmsg, full);
    CHECK_STR(lastmsg, full);
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_event = on_event, .limits = {.max_body_size = 1000}};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);

    expect_str(loop, port, "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 400, "GET /: ");
    expect_str(loop, port, "GET / HTTP/1.1\nHost: x\r\n\r\n", 400, "");
    expect_str(loop, port, "GET / HTTP/1.1\r\n\r\n", 400, "GET /: "); /* no Host */
    expect_str(loop, port, "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400, "");
    expect_str(loop, port,
               "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
               "Transfer-Encoding: chunked\r\n\r\n",
               400, "");
    expect_str(loop, port, "GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "");
    expect_str(loop, port, "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n", 501,
               "BREW /pot: method not implemented");
    expect_str(loop, port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
               501, "");
    expect_str(loop, port, "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "");
    expect_str(loop, port, "GET / HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", 417,
               "GET /: unsupported expectation");
    /* 413 before the body is read (Content-Length over the limit), and
     * while a chunked body grows past it. */
    expect_str(loop, port, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", 413,
               "POST /: ");
    static char big[20000];
    size_t n = (size_t)snprintf(big, sizeof big,
                                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        n += (size_t)snprintf(big + n, sizeof big - n, "258\r\n");
        memset(big + n, 'b', 600);
        n += 600;
        n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    }
    n += (size_t)snprintf(big + n, sizeof big - n, "0\r\n\r\n");
    expect_status(loop, port, big, n, 413, "POST /: ") /* a body error */;
    /* 414: a request line over 8192 bytes. */
    n = (size_t)snprintf(big, sizeof big, "GET /");
    memset(big + n, 'a', 9000);
    n += 9000;
    n += (size_t)snprintf(big + n, sizeof big - n, " HTTP/1.1\r\nHost: x\r\n\r\n");
    expect_status(loop, port, big, n, 414, "GET: ") /* no target yet */;
    /* 431: header section over 16 KiB, and over 100 fields. */
    n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + n, 'h', 17000);
    n += 17000;
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n\r\n");
    expect_status(loop, port, big, n, 431, "");
    n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 120; i++)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-H%d: v\r\n", i);
    n += (size_t)snprintf(big + n, sizeof big - n, "\r\n");
    expect_status(loop, port, big, n, 431, "");

    /* The target in the event is bounded (the event goes to logs). */
    n = (size_t)snprintf(big, sizeof big, "GET /");
    memset(big + n, 'a', 300);
    n += 300;
    n += (size_t)snprintf(big + n, sizeof big - n, " HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    expect_status(loop, port, big, n, 400, "GET /aaaa");
    CHECK(strstr(lastmsg, "aaa...: ") != NULL);
    CHECK(strlen(lastmsg) < 200);
    /* A request line cut by a bad byte: only the method is known. */
    expect_str(loop, port, "GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "GET: ");
    /* Nothing known: the client alone. */
    expect_str(loop, port, "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "invalid method");

    /* A good request, then garbage on the same connection: the first is
     * answered, the second gets 400. */
    hs_raw c;
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = "GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost x\r\n\r\n";
    c.req_len = strlen(c.req);
    c.timeout_ms = 4000;
    int before = nreq;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    int st[4];
    CHECK_EQ(hs_count_responses(c.resp, c.resp_len, LOOM_HTTP_METHOD_GET, st, 4), 2);
    CHECK_EQ(st[0], 200);
    CHECK_EQ(st[1], 400);
    CHECK(c.closed);
    CHECK_EQ(nreq, before + 1);
    expect_msg("GET /: ");
    hs_raw_free(&c);

    /* The client is gone before the server accepted it. */
    expect_reset_named(loop, port, "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
                       "BREW /pot: method not implemented");
    expect_reset_named(loop, port, "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", "invalid method token");

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
