/* test_http_client_deadlines.c - the request's own timer serves both of its
 * deadlines, whichever comes first: behind a peer that sends "100 Continue"
 * every 100 ms (each read restarts the socket's clock, so only the request's
 * timer can end it), a short first byte timeout ends the request before a
 * long total one, and a short total timeout before a long first byte one.
 * Also: the request head, rendered when the request is first sent, can be
 * read before that and is the same bytes afterwards; and requests for the
 * same host with another address family use a pool of their own.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The request's timer works the same on a stream;
 * the 100 Continue answers arrive as interim HEADERS. */
#include <sys/socket.h>
#include <unistd.h>

#include "hc_test.h"

/* Answers each request (one per read: they are small and sequential) with
 * "ok", except /drip: a 1xx every 100 ms for at most 3 s. */
static void script(hc_peer *p, int fd, int index)
{
    (void)p, (void)index;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf - 1)) > 0) {
        buf[n] = '\0';
        if (strstr(buf, "GET /drip ") == NULL) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            continue;
        }
        for (int i = 0; i < 30 && hc_writes(fd, "HTTP/1.1 100 Continue\r\n\r\n") >= 0; i++)
            usleep(100000);
        return;
    }
}

/* Each case: the deadlines asked for, and the one that must end the drip. */
static const struct {
    uint32_t first_byte, total;
    const char *why;
} cases[] = {
    {250, 2000, "(first byte timeout; "},
    {2000, 250, "timed out after 250 ms (total timeout)"},
};

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];

    snprintf(u, sizeof u, "http://127.0.0.1:%d/drip", peer.port);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hc_result r = {0};
        loom_update_time(loop);
        uint64_t started = loom_now(loop);
        hc_get(loop, u, &r,
               &(loom_http_request_opts){.first_byte_timeout_ms = cases[i].first_byte,
                                         .idle_timeout_ms = 2000,
                                         .total_timeout_ms = cases[i].total});
        hc_run_until(loop, &r.done, 5000);
        fprintf(stderr, "case %zu: %s (after %llu ms)\n", i, r.msg,
                (unsigned long long)(r.done_at - started));
        CHECK_EQ(r.done, 2);
        CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_TIMEOUT);
        CHECK(strstr(r.msg, cases[i].why) != NULL);
        CHECK(r.done_at - started >= 250 && r.done_at - started <= 1500);
        hc_result_free(&r);
    }

    /* The head before the request is sent, and after. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/h", peer.port);
    hc_result r = {0};
    r.loop = loop;
    loom_http_client_req_t *req;
    CHECK_OK(
        loom_http_request(loop, u,
                          &(loom_http_request_opts){.headers = (const char *[]){"X-A", "1", NULL},
                                                    .on_response = hc_on_response,
                                                    .on_event = hc_on_event,
                                                    .data = &r},
                          &req));
    char want[256];
    snprintf(want, sizeof want,
             "GET /h HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: loom/0.1\r\nX-A: 1\r\n\r\n",
             peer.port);
    size_t len = 0;
    const char *head = loom_http_client_request_head(req, &len);
    CHECK(head != NULL);
    CHECK_EQ(len, strlen(want));
    CHECK_STR(head, want);
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0); /* sent now, if not answered yet */
    if (!r.done)
        CHECK_STR(loom_http_client_request_head(req, NULL), want);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);

    /* Another address family, another pool: two idle connections. */
    loom_http_client_close_idle(loop);
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    hc_result_free(&r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.family = AF_INET});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.reused, 0);
    hc_result_free(&r);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.idle, 2);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client deadlines: ok\n");
    return 0;
}
