/* test_http_server_slowloris: clients that trickle a request head one byte
 * at a time, or go silent in the middle of it, are cut off by the header
 * timeout (with an http timeout event) while normal clients are served;
 * the idle timeout closes a quiet keep-alive connection; the body timeout
 * cuts a stalled body. */
#include "test_http_server_util.h"

#define NSLOW 6

static int nreq, ntimeouts;
static char lastmsg[512];

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    hs_reply(req, "fine");
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_HTTP_TIMEOUT) {
        ntimeouts++;
        /* Each names the client: "http client 127.0.0.1:PORT: ...". */
        CHECK(strncmp(ev->msg, "http client 127.0.0.1:", 22) == 0);
        snprintf(lastmsg, sizeof lastmsg, "%s", ev->msg);
    }
}

/* The last timeout's message is "http client 127.0.0.1:PORT: <want>". */
static void expect_msg(const char *want)
{
    const char *p = lastmsg + 22;
    while (*p >= '0' && *p <= '9')
        p++;
    if (strncmp(p, ": ", 2) != 0 || strcmp(p + 2, want) != 0) {
        fprintf(stderr, "event \"%s\", want \"http client 127.0.0.1:PORT: %s\"\n", lastmsg, want);
        exit(1);
    }
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_event = on_event,
                               .header_timeout_ms = 300,
                               .idle_timeout_ms = 400,
                               .body_timeout_ms = 300};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);

    static const char req[] = "GET /slow HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaa\r\n\r\n";
    hs_raw slow[NSLOW];
    uint64_t t0 = hs_now_ms();
    for (int i = 0; i < NSLOW; i++) {
        memset(&slow[i], 0, sizeof slow[i]);
        slow[i].port = port;
        slow[i].req = req;
        /* Half trickle (1 byte / 100 ms: the whole head would take 5.4 s,
         * longer on a loaded machine), half send a piece and go silent. */
        slow[i].req_len = i % 2 ? 10 : sizeof req - 1;
        slow[i].chunk = 1;
        slow[i].gap_ms = i % 2 ? 1 : 100;
        slow[i].want = 1;
        slow[i].timeout_ms = 4000;
        hs_raw_start(&slow[i]);
    }
    /* Normal clients meanwhile. */
    for (int k = 0; k < 5; k++) {
        hs_raw c;
        hs_raw_exchange(loop, &c, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
        CHECK_EQ(c.nresp, 1);
        hs_raw_free(&c);
        hs_run_for(loop, 20);
    }
    for (int i = 0; i < NSLOW; i++) {
        hs_raw_finish(loop, &slow[i]);
        CHECK(slow[i].closed);
        CHECK_EQ(slow[i].nresp, 0);
        hs_raw_free(&slow[i]);
    }
    uint64_t took = hs_now_ms() - t0;
    /* Cut off (closed, no response) before the trickle could finish: a
     * timeout restarted by each byte would have let the head through. The
     * cut-off takes about the header timeout; the bound is the trickle's
     * 5.4 s, not the timeout, so that a loaded machine does not miss it. */
    CHECK(took < 5000);
    CHECK_EQ(nreq, 5);
    CHECK_EQ(ntimeouts, NSLOW);

    /* The idle timeout: a keep-alive connection left quiet is closed. */
    int fd = hs_connect(port);
    const char *r = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(send(fd, r, strlen(r), 0) > 0);
    t0 = hs_now_ms();
    char buf[1024];
    size_t got = 0;
    for (;;) {
        hs_run_for(loop, 10);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 0) == 1) {
            ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        CHECK(hs_now_ms() - t0 < 8000);
    }
    took = hs_now_ms() - t0;
    /* Not before the idle timeout (400 ms, less the timer slack); the upper
     * bound is generous: it only shows the close came from the timeout. */
    CHECK(took >= 350 && took < 8000);
    CHECK(got > 0);
    close(fd);
    CHECK_EQ(ntimeouts, NSLOW); /* idle closes are silent */
    expect_msg("request header timeout");

    /* The body timeout: half a body, then silence. */
    hs_raw c;
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhalf";
    c.req_len = strlen(c.req);
    c.timeout_ms = 8000;
    t0 = hs_now_ms();
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    CHECK(c.closed); /* by the server, before the client gave up */
    CHECK(hs_now_ms() - t0 >= 250);
    CHECK(hs_now_ms() - t0 < 8000);
    CHECK_EQ(ntimeouts, NSLOW + 1);
    expect_msg("POST /: request body timeout"); /* the request is named */
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
