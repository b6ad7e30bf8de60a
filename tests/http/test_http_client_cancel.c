/* test_http_client_cancel.c - cancelling a request at every stage: waiting
 * for a connection in the per-host queue, connecting, sent and waiting for
 * the answer, in the middle of a streamed body (from inside on_body and
 * on_headers), and after it ended (LOOM_ECLOSED). No callback runs after a
 * cancel, the connection in use is closed, other requests carry on, and the
 * loop ends clean.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The connection then belongs to the origin: a
 * cancel resets the stream (RST_STREAM) and may leave the connection open. */
#include "hc_test.h"

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        if (strcmp(path, "/slow") == 0) {
            usleep(100000);
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow");
        } else if (strcmp(path, "/stream") == 0) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (int i = 0; i < 200; i++) {
                if (hc_writes(fd, "5\r\nhello\r\n") < 0)
                    break;
                usleep(2000);
            }
            hc_writes(fd, "0\r\n\r\n");
        } else {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
    free(rd->body);
    free(rd);
}

static int calls;

static void never_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                           void *data)
{
    (void)req;
    (void)res;
    (void)data;
    calls++;
}

static void never_event(const loom_event_t *ev, void *data)
{
    (void)data;
    fprintf(stderr, "unexpected event: %s\n", ev->msg);
    calls++;
}

static int bodies;

static int cancel_in_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)chunk;
    (void)len;
    (void)data;
    if (++bodies == 3) {
        CHECK_OK(loom_http_client_cancel(req));
        CHECK_EQ(loom_http_client_cancel(req), LOOM_ECLOSED);
        CHECK_EQ(loom_http_client_pause(req), LOOM_ECLOSED);
    }
    return 0;
}

static void cancel_in_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                              void *data)
{
    (void)res;
    (void)data;
    CHECK_OK(loom_http_client_cancel(req));
}

static void set_flag(loom_timer_t *t, void *data)
{
    (void)t;
    *(int *)data = 1;
}

static void wait_ms(loom_loop_t *loop, unsigned ms)
{
    int f = 0;
    CHECK_OK(loom_delay(loop, ms, set_flag, &f, NULL));
    hc_run_until(loop, &f, ms + 2000);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_http_client_configure(loop, &(loom_http_client_opts){.max_per_host = 1}));
    char slow[128], stream[128], ok[128];
    snprintf(slow, sizeof slow, "http://127.0.0.1:%d/slow", peer.port);
    snprintf(stream, sizeof stream, "http://127.0.0.1:%d/stream", peer.port);
    snprintf(ok, sizeof ok, "http://127.0.0.1:%d/ok", peer.port);
    loom_http_request_opts never = {.on_response = never_response, .on_event = never_event};
    loom_http_client_req_t *a, *b;

    /* Connecting (a) and queued behind it (b): cancel both at once. */
    CHECK_OK(loom_http_request(loop, slow, &never, &a));
    CHECK_OK(loom_http_request(loop, slow, &never, &b));
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.queued, 1);
    CHECK_OK(loom_http_client_cancel(b));
    CHECK_OK(loom_http_client_cancel(a));
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.queued, 0);
    /* HTTP/2: the connection is the origin's, not the request's; a cancel
     * ends the stream and the connection may stay. */
    if (!hv_h2())
        CHECK_EQ(st.open, 0);
    wait_ms(loop, 50);

    /* Sent, waiting for the answer; a queued request then gets the slot. */
    hc_result r = {0};
    CHECK_OK(loom_http_request(loop, slow, &never, &a));
    hc_get(loop, ok, &r, NULL);
    wait_ms(loop, 30);
    CHECK_OK(loom_http_client_cancel(a));
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);

    /* Mid-body, from inside on_body and from on_headers. */
    CHECK_OK(loom_http_request(loop, stream,
                               &(loom_http_request_opts){.on_body = cancel_in_body,
                                                         .on_response = never_response,
                                                         .on_event = never_event},
                               NULL));
    wait_ms(loop, 200);
    CHECK_EQ(bodies, 3);
    CHECK_OK(loom_http_request(loop, stream,
                               &(loom_http_request_opts){.on_headers = cancel_in_headers,
                                                         .on_body = cancel_in_body,
                                                         .on_response = never_response,
                                                         .on_event = never_event},
                               NULL));
    wait_ms(loop, 100);
    CHECK_EQ(bodies, 3);

    /* After the end: LOOM_ECLOSED (the handle is valid until the iteration
     * ends, so the call is safe right after the callback). */
    hc_get(loop, ok, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    hc_result_free(&r);

    CHECK_EQ(calls, 0);
    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client cancel: ok\n");
    return 0;
}
