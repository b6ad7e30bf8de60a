/* test_http_client_deadlines.c - the request's own timer serves all of its
 * deadlines, whichever comes first. Behind a peer that sends "100 Continue"
 * every 400 ms (each read restarts the socket's clock, so only the
 * request's timer can end it), three requests at once:
 *  - a short first byte timeout ends one before a long total one (the 1xx
 *    answers are not the first byte; the message counts them);
 *  - a short total timeout ends one before a long first byte one;
 *  - with no first byte timeout, an idle one shorter than the drip does not
 *    fire: each 1xx restarts the idle clock (over HTTP/2 too, where each is
 *    a HEADERS frame), so the total one ends it.
 * The short deadlines are 2 s and the idle one 2.5 s: on a loaded machine
 * the whole process (the peer's threads too) can stall for over a second,
 * and a first byte deadline that passes before a 1xx is read ends the first
 * case with "(first byte timeout)", no count. At 250 ms a drip starting
 * 300 ms late does that; at 1 s it happened once with 20 runnable tasks on
 * 2 cores. The three run side by side: the test takes 4 s, not 8.
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
 * "ok", except /drip: a 1xx every 400 ms for at most 8 s (11 before the
 * longest case ends at 4 s: below the client's cap of 16). */
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
        for (int i = 0; i < 20 && hc_writes(fd, "HTTP/1.1 100 Continue\r\n\r\n") >= 0; i++)
            usleep(400000);
        return;
    }
}

/* Each case: the deadlines asked for (0: none), the one that must end the
 * drip, and when: not before it, and before the longer ones (the last
 * would end at about 2.5 s by its idle timeout if a 1xx did not restart
 * it; 8 s is the drip's end). */
static const struct {
    uint32_t first_byte, idle, total;
    const char *why;
    uint32_t at, before;
} cases[] = {
    {2000, 6000, 6000, "(first byte timeout; ", 2000, 6000},
    {6000, 6000, 2000, "timed out after 2000 ms (total timeout)", 2000, 6000},
    {0, 2500, 4000, "timed out after 4000 ms (total timeout)", 4000, 8000},
};
#define NCASES (sizeof cases / sizeof cases[0])

int main(void)
{
    test_timeout(40);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];

    snprintf(u, sizeof u, "http://127.0.0.1:%d/drip", peer.port);
    hc_result rs[NCASES] = {0};
    loom_update_time(loop);
    uint64_t started = loom_now(loop);
    for (size_t i = 0; i < NCASES; i++)
        hc_get(loop, u, &rs[i],
               &(loom_http_request_opts){.first_byte_timeout_ms = cases[i].first_byte,
                                         .idle_timeout_ms = cases[i].idle,
                                         .total_timeout_ms = cases[i].total});
    for (size_t i = 0; i < NCASES; i++)
        hc_run_until(loop, &rs[i].done, 15000);
    for (size_t i = 0; i < NCASES; i++) {
        hc_result *r = &rs[i];
        fprintf(stderr, "case %zu: %s (after %llu ms)\n", i, r->msg,
                (unsigned long long)(r->done_at - started));
        CHECK_EQ(r->done, 2);
        CHECK_EQ(r->ev_kind, LOOM_EV_HTTP_TIMEOUT);
        CHECK(strstr(r->msg, cases[i].why) != NULL);
        CHECK(r->done_at - started >= cases[i].at && r->done_at - started < cases[i].before);
        hc_result_free(r);
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
