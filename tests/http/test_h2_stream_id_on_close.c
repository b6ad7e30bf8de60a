/* test_h2_stream_id_on_close: loom_http_req_stream_id() still names the
 * stream in on_close, when the HTTP/2 stream is already gone. Found by the
 * chat demo's end-to-end run over h2 (tests/e2e/test_chat_h2_e2e.c), whose
 * access log said "client went away (HTTP/2 stream 0)" for a held poll
 * whose tab was closed. Two ways a deferred request loses its stream: the
 * client resets it (loom's client cancels: RST_STREAM CANCEL), and the
 * server is closed by force. Both must report the id on_request saw, and
 * version 20. h2c with prior knowledge, loom's own client. */
#include "test_http_server_util.h"

static uint32_t seen[4], closed[4];
static int nseen, nclosed;
static atomic_int got_req, got_close, client_done;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_EQ(loom_http_req_version(req), 20);
    uint32_t id = loom_http_req_stream_id(req);
    CHECK(id % 2 == 1); /* a client's stream */
    CHECK(nseen < 4);
    seen[nseen++] = id;
    atomic_store(&got_req, 1); /* held: answered by nobody */
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_EQ(loom_http_req_version(req), 20);
    CHECK(nclosed < 4);
    closed[nclosed++] = loom_http_req_stream_id(req);
    atomic_store(&got_close, 1);
    loom_http_req_release(req);
}

static void on_client_event(const loom_event_t *ev, void *data)
{
    (void)ev;
    (void)data;
    atomic_store(&client_done, 1); /* the forced close ends the request */
}

static void on_client_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                               void *data)
{
    (void)req;
    (void)res;
    (void)data;
    CHECK(!"a held request got an answer");
}

static loom_http_client_req_t *hold(loom_loop_t *loop, int port)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/hold", port);
    loom_http_client_req_t *creq;
    atomic_store(&got_req, 0);
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){
                                   .version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
                                   .on_response = on_client_response,
                                   .on_event = on_client_event,
                               },
                               &creq));
    CHECK(hs_run_until(loop, &got_req, 5000));
    return creq;
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.on_close = on_close, .http2 = {.h2c = true}}, &srv));
    int port = loom_http_server_port(srv);

    /* The client resets the stream of a held request. */
    loom_http_client_req_t *creq = hold(loop, port);
    atomic_store(&got_close, 0);
    CHECK_OK(loom_http_client_cancel(creq));
    CHECK(hs_run_until(loop, &got_close, 5000));
    CHECK_EQ(nclosed, 1);
    CHECK(seen[0] != 0);
    CHECK_EQ(closed[0], seen[0]);

    /* The server is closed by force under a held request. */
    hold(loop, port);
    atomic_store(&got_close, 0);
    hs_close_server_flags(loop, srv, LOOM_HTTP_CLOSE_FORCE);
    CHECK(hs_run_until(loop, &got_close, 5000));
    CHECK(hs_run_until(loop, &client_done, 5000));
    CHECK_EQ(nclosed, 2);
    CHECK(seen[1] != 0);
    CHECK_EQ(closed[1], seen[1]);
    fprintf(stderr, "stream ids in on_close: %u (reset by the client), %u (forced close)\n",
            (unsigned)closed[0], (unsigned)closed[1]);

    hs_run_for(loop, 20);
    test_loop_free_clean(loop);
    return 0;
}
