/* test_http_client_obs_fold.c - a response whose field values are folded
 * (obs-fold): RFC 9112 section 5.2 says a user agent MUST replace each
 * obs-fold with SP before interpreting the value, so the client accepts the
 * response and hands out the value with CR and LF turned into SP (in
 * on_response and in on_headers, from one read or with the head parsed
 * again after the body spans reads). A folded Content-Length is still a
 * malformed response naming the server: framing fields are never unfolded.
 * HTTP/1 only: HTTP/2 fields have no folding. */
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
        if (strcmp(path, "/fold") == 0) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\n\tthree\r\nX-B:\r\n b\r\n"
                          "Content-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/split") == 0) {
            /* The body comes in a later read: the head is stashed and parsed
             * again from the client's own copy. */
            hc_writes(fd, "HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 4\r\n\r\nab");
            usleep(30000);
            hc_writes(fd, "cd");
        } else if (strcmp(path, "/foldcl") == 0) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\nx");
            break;
        } else {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nno");
        }
    }
    free(rd->body);
    free(rd);
}

static char seen_a[128];
static int headers_calls;

static void on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                       void *data)
{
    (void)req;
    (void)data;
    headers_calls++;
    const char *a = loom_http_client_header(res, "x-a", NULL);
    CHECK(a != NULL);
    snprintf(seen_a, sizeof seen_a, "%s", a);
}

static int on_body(loom_http_client_req_t *req, const char *buf, size_t len, void *data)
{
    (void)req;
    (void)buf;
    (void)len;
    (void)data;
    return 0;
}

int main(void)
{
    test_timeout(25);
    if (hv_h2())
        return 77;
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    char u[128];
    loom_loop_t *loop = test_loop_new();

    /* Buffered: both folded values unfolded, the connection reused after. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/fold", peer.port);
    hc_result r = {0};
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    CHECK(r.body_len == 2 && memcmp(r.body, "ok", 2) == 0);
    if (strstr(r.headers, "X-A: one   two  \tthree\n") == NULL ||
        strstr(r.headers, "X-B: b\n") == NULL || strchr(r.headers, '\r') != NULL) {
        fprintf(stderr, "headers: \"%s\"\n", r.headers);
        exit(1);
    }
    hc_result_free(&r);

    snprintf(u, sizeof u, "http://127.0.0.1:%d/split", peer.port);
    r = (hc_result){0};
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK(r.body_len == 4 && memcmp(r.body, "abcd", 4) == 0);
    CHECK(strstr(r.headers, "X-A: one   two\n") != NULL);
    CHECK(r.reused);
    hc_result_free(&r);

    /* Streaming: on_headers sees the unfolded value too. */
    r = (hc_result){0};
    hc_get(loop, u, &r, &(loom_http_request_opts){.on_headers = on_headers, .on_body = on_body});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(headers_calls, 1);
    CHECK(strcmp(seen_a, "one   two") == 0);
    hc_result_free(&r);

    /* A folded framing field stays an error, naming the server. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/foldcl", peer.port);
    r = (hc_result){0};
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK_EQ(r.ev_code, LOOM_EHTTP);
    if (strstr(r.msg, "obs-fold") == NULL || strstr(r.msg, "127.0.0.1:") == NULL) {
        fprintf(stderr, "msg: \"%s\"\n", r.msg);
        exit(1);
    }
    hc_result_free(&r);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client obs-fold: ok\n");
    return 0;
}
