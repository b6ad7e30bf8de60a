/* test_http_server_takeover: loom_http_req_takeover() hands an upgrade
 * request's connection to a new owner. A raw client sends the Upgrade
 * request and extra bytes in one write (alone, behind a pipelined request,
 * or taken over later from a timer); the application answers 101, gets
 * a plain socket, receives the extra bytes first and echoes everything; the
 * server's pending count drops at once and a graceful close of the server
 * finishes while the taken socket still echoes; the socket's on_close runs
 * once. Then the refusals: another status, no Upgrade field, an HTTP/1.0
 * request, a body still unread, a started answer. */
#include "test_http_server_util.h"

static loom_http_server_t *srv;
static int nread, nclose, ntaken, first_ok, done_before_bye;
static atomic_int server_done;
static char got[256];
static void on_done(loom_http_server_t *sv, void *data);
static size_t got_len;

static void on_sock_read(loom_socket_t *s, const char *p, size_t n, void *data)
{
    CHECK(data == &nread);
    if (nread++ == 0) {
        /* The bytes behind the request come first, whole. */
        first_ok = n == 5 && memcmp(p, "HELLO", 5) == 0;
        /* The server may close: the socket is no longer its. */
        CHECK_OK(loom_http_server_close(srv, 0, on_done));
    }
    CHECK(got_len + n < sizeof got);
    memcpy(got + got_len, p, n);
    got_len += n;
    CHECK(loom_socket_write(s, p, n) >= 0);
    if (got_len >= 3 && memcmp(got + got_len - 3, "bye", 3) == 0) {
        done_before_bye = atomic_load(&server_done);
        loom_socket_close(s);
    }
}

static void on_sock_close(loom_socket_t *s, void *data)
{
    (void)s;
    CHECK(data == &nread);
    nclose++;
}

static void on_done(loom_http_server_t *sv, void *data)
{
    (void)sv;
    (void)data;
    atomic_store(&server_done, 1);
}

static void take(loom_http_req_t *req)
{
    static const char *const up[] = {"Upgrade", "echo", NULL};
    loom_socket_t *s = NULL;
    loom_tcp_opts o = {.on_read = on_sock_read,
                       .on_close = on_sock_close,
                       .data = &nread,
                       .read_timeout_ms = 5000};
    CHECK_EQ(loom_http_server_pending(srv), 1);
    CHECK_EQ(loom_http_req_takeover(req, 200, up, &o, &s), LOOM_EINVAL);
    CHECK_EQ(loom_http_req_takeover(req, 101, NULL, &o, &s), LOOM_EINVAL);
    CHECK_OK(loom_http_req_takeover(req, 101, up, &o, &s));
    CHECK(s != NULL);
    CHECK_EQ(loom_http_server_pending(srv), 0);
    ntaken++;
}

static void on_take_timer(loom_timer_t *t, void *data)
{
    take(data);
    loom_timer_close(t);
}

/* "/a": an ordinary answer; "/ws": taken over at once; "/ws-late": taken
 * over from a timer (the bytes behind it wait in the server meanwhile). */
static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    if (strcmp(path, "/a") == 0) {
        hs_reply(req, "first");
    } else if (strcmp(path, "/ws-late") == 0) {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loom_http_req_loop(req), &t, on_take_timer, req));
        CHECK_OK(loom_timer_start(t, 20, 0));
    } else {
        take(req);
    }
}

typedef struct {
    int port;
    const char *req;
    char buf[1024];
    size_t len;
    atomic_int done;
} client_t;

static void read_until(int fd, client_t *c, const char *what)
{
    uint64_t end = hs_now_ms() + 5000;
    while (strstr(c->buf, what) == NULL && hs_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0);
        if (n <= 0)
            break;
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    int fd = hs_connect(c->port);
    size_t n = strlen(c->req);
    CHECK(send(fd, c->req, n, MSG_NOSIGNAL) == (ssize_t)n);
    read_until(fd, c, "\r\n\r\nHELLO");
    usleep(100 * 1000); /* the server's graceful close finishes meanwhile */
    CHECK(send(fd, " more bye", 9, MSG_NOSIGNAL) == 9);
    read_until(fd, c, "more bye");
    /* Then the new owner closes. */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 5000) == 1);
    CHECK(recv(fd, c->buf + c->len, sizeof c->buf - c->len - 1, 0) == 0);
    close(fd);
    atomic_store(&c->done, 1);
    return NULL;
}

/* --- Refusals --------------------------------------------------------------- */

static int nrefused;

static void on_request_refuse(loom_http_req_t *req, void *data)
{
    (void)data;
    static const char *const up[] = {"Upgrade", "echo", NULL};
    loom_socket_t *s = NULL;
    loom_tcp_opts o = {.on_read = on_sock_read};
    const char *path = loom_http_req_path(req, NULL);
    int want = LOOM_EBUSY;
    if (loom_http_req_version(req) == 10)
        want = LOOM_ENOTSUP;
    else if (strcmp(path, "/plain") == 0)
        want = LOOM_EINVAL;
    else if (strcmp(path, "/started") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        CHECK_EQ(loom_http_req_takeover(req, 101, up, &o, &s), LOOM_ESTATE);
        CHECK_OK(loom_http_response_end(req));
        nrefused++;
        return;
    }
    CHECK_EQ(loom_http_req_takeover(req, 101, up, &o, &s), want);
    CHECK(s == NULL);
    nrefused++;
    hs_reply(req, "refused");
}

static int on_body_refuse(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)req;
    (void)p;
    (void)n;
    (void)data;
    return 0;
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    /* Alone; behind a pipelined request (its answer goes first); from a
     * timer (the extra bytes wait in the server until the takeover). */
    static const char *const reqs[] = {
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\nHELLO",
        "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: upgrade\r\n\r\nHELLO",
        "GET /ws-late HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\n\r\nHELLO"};
    for (int k = 0; k < 3; k++) {
        nread = nclose = ntaken = first_ok = done_before_bye = 0;
        got_len = 0;
        atomic_store(&server_done, 0);
        CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
        static client_t c;
        memset(&c, 0, sizeof c);
        c.port = loom_http_server_port(srv);
        c.req = reqs[k];
        pthread_t th;
        CHECK(pthread_create(&th, NULL, client_main, &c) == 0);
        CHECK(hs_run_until(loop, &c.done, 8000));
        pthread_join(th, NULL);
        CHECK(hs_run_until(loop, &server_done, 2000));
        CHECK_EQ(ntaken, 1);
        CHECK(first_ok);
        CHECK(done_before_bye); /* the server did not wait for the taken socket */
        const char *h = c.buf;
        if (k == 1) {
            CHECK(strncmp(h, "HTTP/1.1 200 OK\r\n", 17) == 0);
            h = strstr(h, "first");
            CHECK(h != NULL);
            h += 5;
        }
        CHECK(strncmp(h, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
        CHECK(strstr(h, "\r\nUpgrade: echo\r\n") != NULL);
        CHECK(strstr(h, "\r\nConnection: upgrade\r\n\r\nHELLO more bye") != NULL);
        CHECK_EQ(nclose, 1);
        hs_run_for(loop, 20);
        CHECK_EQ(nclose, 1);
    }

    /* Refusals. */
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request_refuse,
                              &(loom_http_server_opts){.on_body = on_body_refuse}, &srv));
    int port = loom_http_server_port(srv);
    hs_raw r;
    hs_raw_exchange(loop, &r, port, "GET /plain HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK(strstr(r.resp, "refused") != NULL);
    hs_raw_free(&r);
    hs_raw_exchange(loop, &r, port, "GET /old HTTP/1.0\r\nUpgrade: echo\r\n\r\n", 1);
    CHECK(strstr(r.resp, "refused") != NULL);
    hs_raw_free(&r);
    hs_raw_exchange(loop, &r, port,
                    "POST /body HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nContent-Length: 4\r\n\r\n",
                    1);
    CHECK(strstr(r.resp, "refused") != NULL);
    hs_raw_free(&r);
    hs_raw_exchange(loop, &r, port, "GET /started HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\n\r\n", 1);
    CHECK_EQ(r.nresp, 1);
    hs_raw_free(&r);
    CHECK_EQ(nrefused, 4);
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
