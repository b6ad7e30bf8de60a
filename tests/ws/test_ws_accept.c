/* test_ws_accept: loom_ws_accept() gives a request exactly one answer
 * whenever it does not take the connection over, and says which case it
 * was - the request must never be left unanswered (an unanswered request
 * has no timeout: the client would wait for ever and the request leak).
 * - A handshake whose body is unread (an on_body server): the takeover
 *   refuses (LOOM_EBUSY) and the client gets 400; it used to get nothing.
 * - A subprotocol the application chose that is not a valid field value, or
 *   that the client did not offer (RFC 6455 section 4.2.2): 500 and
 *   LOOM_EINVAL; the invalid one used to get nothing.
 * - An HTTP/2 request (h2c): 400 naming HTTP/1.1 (a 426 needs an Upgrade
 *   field, which HTTP/2 does not have; RFC 9110 section 15.5.22).
 * - An answer the application had begun: LOOM_ESTATE, nothing sent, the
 *   request stays the application's (its own answer goes out).
 * - A deferred accept after the client left: LOOM_ECLOSED, and the request
 *   is finished all the same (the loop ends clean).
 * The server keeps serving after each (the next request on the connection
 * or a new one is answered). */
#include "http/test_http_server_util.h"

#define KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
#define WSH "Upgrade: websocket\r\nConnection: Upgrade\r\n" KEY

static loom_loop_t *g_loop;
static int last_rc, nclose;
static atomic_int got_later, closed_later;
static loom_http_req_t *later;

static const char *bad_proto(loom_http_req_t *req, const char *offered, size_t len, void *data)
{
    (void)req, (void)offered, (void)len, (void)data;
    return "chat\r\nX-Injected: 1";
}

static const char *other_proto(loom_http_req_t *req, const char *offered, size_t len, void *data)
{
    (void)req, (void)offered, (void)len, (void)data;
    return "superchat";
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_path(req, NULL);
    loom_ws_opts o = {0};
    if (strcmp(path, "/badproto") == 0)
        o.select_protocol = bad_proto;
    else if (strcmp(path, "/otherproto") == 0)
        o.select_protocol = other_proto;
    if (strcmp(path, "/plain") == 0) {
        hs_reply(req, "plain");
    } else if (strcmp(path, "/later") == 0) {
        later = req; /* accepted once the client has gone */
        atomic_store(&got_later, 1);
    } else if (strcmp(path, "/started") == 0) {
        CHECK_OK(loom_http_response_start(req, 200, NULL));
        last_rc = loom_ws_accept(req, &o, NULL);
        CHECK_EQ(last_rc, LOOM_ESTATE);
        CHECK_EQ(loom_http_response_write(req, "mine", 4), 0);
        CHECK_OK(loom_http_response_end(req));
    } else {
        last_rc = loom_ws_accept(req, &o, NULL);
    }
}

static int on_body(loom_http_req_t *req, const char *p, size_t n, void *data)
{
    (void)req, (void)p, (void)n, (void)data;
    return 0;
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    if (req == later)
        atomic_store(&closed_later, 1); /* not released: the accept below finishes it */
}

/* Sends `req` then a plain GET on the same connection; checks the first
 * answer's status and that the second is answered too. */
static void expect(int port, const char *req, int status, int rc, const char *why)
{
    char both[1024];
    snprintf(both, sizeof both, "%sGET /plain HTTP/1.1\r\nHost: x\r\n\r\n", req);
    last_rc = 1;
    hs_raw c;
    hs_raw_exchange(g_loop, &c, port, both, 2);
    char want[32];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    if (strncmp(c.resp, want, strlen(want)) != 0 || last_rc != rc || c.nresp != 2 ||
        strstr(c.resp, why) == NULL) {
        fprintf(stderr, "%.40s...: rc %d (want %d), %d answers, got:\n%s\n", req, last_rc, rc,
                c.nresp, c.resp);
        exit(1);
    }
    CHECK(strstr(c.resp, "X-Injected") == NULL);
    CHECK(strstr(c.resp, "plain") != NULL);
    hs_raw_free(&c);
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = g_loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts so = {.on_body = on_body, .on_close = on_close, .http2 = {.h2c = true}};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &so, &srv));
    int port = loom_http_server_port(srv);

    /* A body still unread: the takeover cannot have the connection. */
    expect(port, "GET /body HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" WSH "\r\nhello", 400,
           LOOM_EBUSY, "websocket: the opening handshake has a body");
    /* The application's subprotocol: not a field value, or not offered. */
    expect(port, "GET /badproto HTTP/1.1\r\nHost: x\r\n" WSH "Sec-WebSocket-Protocol: chat\r\n\r\n",
           500, LOOM_EINVAL, "websocket: invalid subprotocol");
    expect(port,
           "GET /otherproto HTTP/1.1\r\nHost: x\r\n" WSH "Sec-WebSocket-Protocol: chat\r\n\r\n",
           500, LOOM_EINVAL, "websocket: invalid subprotocol");
    /* An answer begun by the application: its own answer goes out. */
    expect(port, "GET /started HTTP/1.1\r\nHost: x\r\n" WSH "\r\n", 200, LOOM_ESTATE, "mine");

    /* HTTP/2 (h2c with prior knowledge): 400, not a 426 without Upgrade. */
    if (hs_have("curl")) {
        char url[128], out[4096];
        snprintf(url, sizeof url, "http://127.0.0.1:%d/ws", port);
        char *a[] = {"curl", "-s", "-i", "--http2-prior-knowledge", url, NULL};
        last_rc = 1;
        CHECK_EQ(hs_run_child(loop, a, NULL, 0, out, sizeof out, 10000), 0);
        if (strncmp(out, "HTTP/2 400", 10) != 0 || strstr(out, "use HTTP/1.1") == NULL) {
            fprintf(stderr, "HTTP/2: %s\n", out);
            exit(1);
        }
        CHECK_EQ(last_rc, LOOM_EPROTOCOL);
    }

    /* Accepted after the client has gone: finished, LOOM_ECLOSED. */
    int fd = hs_connect(port);
    const char *rq = "GET /later HTTP/1.1\r\nHost: x\r\n" WSH "\r\n";
    CHECK_EQ(write(fd, rq, strlen(rq)), (ssize_t)strlen(rq));
    CHECK(hs_run_until(loop, &got_later, 3000));
    close(fd);
    CHECK(hs_run_until(loop, &closed_later, 3000));
    CHECK_EQ(loom_ws_accept(later, NULL, NULL), LOOM_ECLOSED);
    later = NULL;

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("ws accept: ok\n");
    return 0;
}
