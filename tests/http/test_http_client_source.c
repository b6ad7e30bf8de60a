/* test_http_client_source.c - a streamed request body is pulled from the
 * loop, never from inside an API call: loom_http_request() runs no callback
 * (not the body source, not an error event), whether the request gets a new
 * connection or an idle pooled one, and cancelling one request does not run
 * the source (or the error event) of the queued request that takes its
 * place.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The body source is pulled for DATA frames, never
 * from inside an API call either. */
#include "hc_test.h"

/* Answers every request with 200 "ok" (reading its body first), keep-alive. */
static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    rd->timeout_ms = 3000;
    while (hc_read_request(rd) == 0)
        if (hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") < 0)
            break;
    free(rd->body);
    free(rd);
}

typedef struct {
    hc_result res;
    int in_api;  /* set around the API call under test */
    int sources; /* source calls */
    int sources_in_api;
    int events_in_api;
    ssize_t fail; /* what the source returns */
} up_t;

static ssize_t source(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    up_t *u = data;
    (void)req;
    (void)buf;
    (void)size;
    u->sources++;
    if (u->in_api)
        u->sources_in_api++;
    return u->fail;
}

static void on_event(const loom_event_t *ev, void *data)
{
    up_t *u = data;
    if (u->in_api)
        u->events_in_api++;
    hc_on_event(ev, &u->res);
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    up_t *u = data;
    hc_on_response(req, res, &u->res);
}

static int start_upload(loom_loop_t *loop, const char *url, up_t *u, loom_http_client_req_t **out)
{
    u->res.loop = loop;
    u->in_api = 1;
    int rc = loom_http_request(loop, url,
                               &(loom_http_request_opts){.method = "POST",
                                                         .on_body_source = source,
                                                         .body_length = -1,
                                                         .on_response = on_response,
                                                         .on_event = on_event,
                                                         .data = u},
                               out);
    u->in_api = 0;
    return rc;
}

/* A source that fails at once: the error event comes from the loop. */
static void test_new_connection(loom_loop_t *loop, const char *url)
{
    up_t u = {.fail = LOOM_EIO};
    CHECK_OK(start_upload(loop, url, &u, NULL));
    CHECK_EQ(u.sources_in_api, 0);
    CHECK_EQ(u.events_in_api, 0);
    CHECK_EQ(u.res.done, 0);
    hc_run_until(loop, &u.res.done, 5000);
    CHECK_EQ(u.res.done, 2);
    CHECK_EQ(u.res.ev_code, LOOM_EIO);
    /* The message says what failed and which request: the server's name. */
    if (strstr(u.res.msg, "request body source failed") == NULL ||
        strstr(u.res.msg, "(request to 127.0.0.1:") == NULL) {
        fprintf(stderr, "source failure message \"%s\"\n", u.res.msg);
        exit(1);
    }
    CHECK_EQ(u.sources, 1);
    hc_result_free(&u.res);
}

/* The same on an idle pooled connection (assigned inside the call). */
static void test_idle_connection(loom_loop_t *loop, const char *url)
{
    hc_result warm = {0};
    hc_get(loop, url, &warm, NULL);
    hc_run_until(loop, &warm.done, 5000);
    CHECK_EQ(warm.done, 1);
    hc_result_free(&warm);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.idle, 1);

    up_t u = {.fail = LOOM_EIO};
    CHECK_OK(start_upload(loop, url, &u, NULL));
    CHECK_EQ(u.sources_in_api, 0);
    CHECK_EQ(u.events_in_api, 0);
    hc_run_until(loop, &u.res.done, 5000);
    CHECK_EQ(u.res.done, 2);
    CHECK_EQ(u.res.ev_code, LOOM_EIO);
    hc_result_free(&u.res);

    /* A body that ends at once (0 bytes, chunked) still gets its answer. */
    up_t ok = {.fail = 0};
    CHECK_OK(start_upload(loop, url, &ok, NULL));
    CHECK_EQ(ok.sources_in_api, 0);
    hc_run_until(loop, &ok.res.done, 5000);
    CHECK_EQ(ok.res.done, 1);
    CHECK_EQ(ok.res.status, 200);
    hc_result_free(&ok.res);
}

/* One connection per host: the upload waits behind a GET; cancelling the GET
 * hands the slot to the upload, whose source runs later, from the loop. */
static void test_cancel_hands_over(loom_loop_t *loop, const char *url)
{
    loom_http_client_close_idle(loop);
    CHECK_OK(loom_http_client_configure(loop, &(loom_http_client_opts){.max_per_host = 1}));
    hc_result first = {0};
    loom_http_client_req_t *r1;
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){.on_response = hc_on_response,
                                                         .on_event = hc_on_event,
                                                         .data = &first},
                               &r1));
    up_t u = {.fail = LOOM_EIO};
    CHECK_OK(start_upload(loop, url, &u, NULL));
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.queued, 1);
    u.in_api = 1;
    CHECK_OK(loom_http_client_cancel(r1));
    u.in_api = 0;
    CHECK_EQ(u.sources_in_api, 0);
    CHECK_EQ(u.events_in_api, 0);
    hc_run_until(loop, &u.res.done, 5000);
    CHECK_EQ(u.res.done, 2);
    CHECK_EQ(u.res.ev_code, LOOM_EIO);
    CHECK_EQ(first.done, 0);
    hc_result_free(&u.res);
    CHECK_OK(loom_http_client_configure(loop, NULL));
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/up", peer.port);
    loom_loop_t *loop = test_loop_new();
    test_new_connection(loop, url);
    test_idle_connection(loop, url);
    test_cancel_hands_over(loop, url);
    hc_loop_done(loop);
    hc_peer_stop(&peer);
    return 0;
}
