/* test_http_server_deferred: answers given later, from a timer (long-poll).
 * A client that goes away first makes on_close run; a late answer then
 * returns LOOM_ECLOSED and frees the request, and nothing crashes. Also:
 * release from on_close, a reset instead of a close, and a deferred answer
 * on a connection that is then reused.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h: the raw client's
 * requests go as streams through loom's client). The client going away is
 * then a cancelled stream (RST_STREAM) and a closed connection; the reset
 * of case 3 is a stream reset (RST_STREAM) of a connection that stays open
 * a while; case 4's two requests are two streams of one connection, the
 * deferred one answered after the other. */
#include "test_http_server_util.h"

static loom_http_req_t *held[8];
static int nheld, nclosed, late_result = 1, release_in_close;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    if (pl == 5 && memcmp(path, "/wait", 5) == 0) {
        loom_http_req_set_data(req, (void *)(intptr_t)(nheld + 100));
        held[nheld++] = req;
        return;
    }
    hs_reply(req, "now");
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclosed++;
    CHECK(loom_http_req_closed(req));
    CHECK((intptr_t)loom_http_req_data(req) >= 100);
    /* Accessors still work on a gone request. */
    CHECK(strcmp(loom_http_req_target(req, NULL), "/wait") == 0);
    if (release_in_close) {
        for (int i = 0; i < nheld; i++)
            if (held[i] == req)
                held[i] = NULL;
        CHECK_OK(loom_http_req_release(req));
    }
}

static void on_late(loom_timer_t *t, void *data)
{
    loom_http_req_t **slot = data;
    late_result = loom_http_respond(*slot, 200, NULL, "late", 4);
    *slot = NULL;
    loom_timer_close(t);
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, hv_server_opts(&o), &srv));
    int port = loom_http_server_port(srv);

    /* 1. The client gives up (closes) before the answer. */
    hs_raw c;
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
    c.req_len = strlen(c.req);
    c.timeout_ms = 150;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    CHECK_EQ(c.nresp, 0);
    hs_run_for(loop, 100);
    CHECK_EQ(nheld, 1);
    CHECK_EQ(nclosed, 1);
    CHECK_EQ(loom_http_server_pending(srv), 1);
    /* The late answer: an error, never a crash; the request is gone after. */
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_late, &held[0]));
    CHECK_OK(loom_timer_start(t, 10, 0));
    hs_run_for(loop, 60);
    CHECK_EQ(late_result, LOOM_ECLOSED);
    CHECK_EQ(loom_http_server_pending(srv), 0);
    hs_raw_free(&c);

    /* 2. Released from on_close. */
    release_in_close = 1;
    hs_raw_start(&c);
    hs_raw_finish(loop, &c);
    hs_run_for(loop, 100);
    CHECK_EQ(nclosed, 2);
    CHECK(held[1] == NULL);
    CHECK_EQ(loom_http_server_pending(srv), 0);
    hs_raw_free(&c);
    release_in_close = 0;

    /* 3. A reset (SO_LINGER 0) while the request waits (HTTP/2: the
     * stream's reset, RST_STREAM from the cancelled request). */
    if (!hv_h2()) {
        int fd = hs_connect(port);
        const char *rq = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(send(fd, rq, strlen(rq), 0) == (ssize_t)strlen(rq));
        hs_run_for(loop, 50);
        CHECK_EQ(nheld, 3);
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(fd);
        hs_run_for(loop, 50);
    } else {
        hs_raw_start(&c);
        hs_raw_finish(loop, &c);
        hs_raw_free(&c);
        hs_run_for(loop, 50);
        CHECK_EQ(nheld, 3);
    }
    CHECK_EQ(nclosed, 3);
    CHECK_EQ(loom_http_respond(held[2], 200, NULL, "x", 1), LOOM_ECLOSED);
    held[2] = NULL;

    /* 4. A deferred answer that arrives, then the connection carries on
     * (the second request was pipelined behind the first). */
    memset(&c, 0, sizeof c);
    c.port = port;
    c.req = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\nGET /now HTTP/1.1\r\nHost: x\r\n\r\n";
    c.req_len = strlen(c.req);
    c.want = 2;
    c.timeout_ms = 3000;
    late_result = 1;
    hs_raw_start(&c);
    hs_run_for(loop, 50);
    CHECK_EQ(nheld, 4);
    CHECK_OK(loom_timer_new(loop, &t, on_late, &held[3]));
    CHECK_OK(loom_timer_start(t, 20, 0));
    hs_raw_finish(loop, &c);
    CHECK_EQ(late_result, 0);
    CHECK_EQ(c.nresp, 2);
    CHECK(strstr(c.resp, "late") < strstr(c.resp, "now"));
    CHECK_EQ(nclosed, 3);
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
