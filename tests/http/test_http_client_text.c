/* test_http_client_text.c - what the client hands out: the reason phrase and
 * every header name and value NUL-terminated (in place, from one read or
 * spanning reads, buffered or streamed, in on_headers and on_response),
 * res->content_length, loom_http_client_loop(), the request head, the body
 * bytes counted as they arrive (not as chunk sizes announce them), and the
 * connection counters (attempts, established, failures).
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). HTTP/2 has no reason phrase ("") and no
 * Transfer-Encoding (one field fewer for the chunked answer); a stream reset
 * in the middle of the body reports the body bytes received, as a cut-off
 * HTTP/1 body does. */
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
        const char *head = "HTTP/1.1 200 Very OK\r\nX-A: one \r\nX-Empty:\r\nX-B:\ttwo\t\r\n";
        if (strcmp(path, "/length") == 0) {
            hc_writes(fd, head);
            hc_writes(fd, "Content-Length: 5\r\n\r\nhello");
        } else if (strcmp(path, "/split") == 0) {
            /* The head first, the body in a later read. */
            hc_writes(fd, head);
            hc_writes(fd, "Content-Length: 5\r\n\r\n");
            usleep(50000);
            hc_writes(fd, "hello");
        } else if (strcmp(path, "/chunked") == 0) {
            hc_writes(fd, head);
            hc_writes(fd, "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(path, "/noreason") == 0) {
            hc_writes(fd, "HTTP/1.1 204\r\n\r\n");
        } else if (strcmp(path, "/head") == 0) {
            hc_writes(fd, head);
            hc_writes(fd, "Content-Length: 12345\r\n\r\n");
        } else if (strcmp(path, "/hugechunk") == 0) {
            /* Announces 2^64-1 bytes, sends 3, closes. */
            hc_writes(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                          "ffffffffffffffff\r\nabc");
            break;
        }
    }
    free(rd->body);
    free(rd);
}

typedef struct {
    hc_result r;
    int heads;           /* on_headers calls */
    int64_t content_len; /* as on_response saw it */
    char reason[64];
    size_t streamed;
    loom_loop_t *loop;
} text_result;

/* Every string of the view is NUL-terminated at its length. */
static void check_text(const loom_http_client_response_t *res)
{
    CHECK(res->reason != NULL);
    CHECK_EQ(res->reason[res->reason_len], '\0');
    CHECK_EQ(strlen(res->reason), res->reason_len);
    for (size_t i = 0; i < res->nheaders; i++) {
        const loom_http_header_t *h = &res->headers[i];
        CHECK_EQ(h->name[h->name_len], '\0');
        CHECK_EQ(h->value[h->value_len], '\0');
        CHECK_EQ(strlen(h->name), h->name_len);
    }
    if (res->status == 200 && res->nheaders >= 3) {
        size_t n;
        CHECK_STR(loom_http_client_header(res, "x-a", &n), "one");
        CHECK_EQ(n, 3);
        CHECK_STR(loom_http_client_header(res, "X-Empty", &n), "");
        CHECK_EQ(n, 0);
        CHECK_STR(loom_http_client_header(res, "x-b", NULL), "two");
    }
}

static void t_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                      void *data)
{
    text_result *t = data;
    CHECK(loom_http_client_loop(req) == t->loop);
    check_text(res);
    t->heads++;
}

static int t_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)req;
    (void)chunk;
    text_result *t = data;
    t->streamed += len;
    return 0;
}

static void t_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                       void *data)
{
    text_result *t = data;
    CHECK(loom_http_client_loop(req) == t->loop);
    check_text(res);
    t->content_len = res->content_length;
    CHECK_EQ(loom_http_client_content_length(res), res->content_length);
    snprintf(t->reason, sizeof t->reason, "%s", res->reason);
    hc_on_response(req, res, &t->r);
}

static void t_event(const loom_event_t *ev, void *data)
{
    text_result *t = data;
    hc_on_event(ev, &t->r);
}

static void fetch(loom_loop_t *loop, int port, const char *path, const char *method, bool stream,
                  text_result *t)
{
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d%s", port, path);
    memset(t, 0, sizeof *t);
    t->loop = loop;
    loom_http_client_req_t *req = NULL;
    CHECK_OK(loom_http_request(loop, u,
                               &(loom_http_request_opts){.method = method,
                                                         .on_headers = stream ? t_headers : NULL,
                                                         .on_body = stream ? t_body : NULL,
                                                         .on_response = t_response,
                                                         .on_event = t_event,
                                                         .data = t},
                               &req));
    CHECK(loom_http_client_loop(req) == loop);
    size_t hl = 0;
    const char *head = loom_http_client_request_head(req, &hl);
    char want[160];
    snprintf(want, sizeof want, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", method ? method : "GET",
             path, port);
    CHECK(strncmp(head, want, strlen(want)) == 0);
    CHECK_EQ(strlen(head), hl);
    CHECK(hl > 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0);
    hc_run_until(loop, &t->r.done, 5000);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    text_result t;

    const char *paths[] = {"/length", "/split", "/chunked"};
    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            fetch(loop, peer.port, paths[k], NULL, stream, &t);
            CHECK_EQ(t.r.done, 1);
            /* HTTP/2 has no reason phrase, and no Transfer-Encoding. */
            CHECK_STR(t.reason, hv_h2() ? "" : "Very OK");
            /* The head parsed again from the request's buffer after a
             * callback saw it terminated: all fields still there. */
            CHECK_EQ(t.r.nheaders, hv_h2() && k == 2 ? 3 : 4);
            CHECK_EQ(t.heads, stream);
            CHECK_EQ(t.content_len, k == 2 ? -1 : 5);
            if (stream)
                CHECK_EQ(t.streamed, 5);
            else
                CHECK_STR(t.r.body, "hello");
            hc_result_free(&t.r);
        }
    }
    fetch(loop, peer.port, "/noreason", NULL, false, &t);
    CHECK_EQ(t.r.done, 1);
    CHECK_STR(t.reason, "");
    CHECK_EQ(t.content_len, -1);
    hc_result_free(&t.r);
    /* HEAD: no body, the announced length. */
    fetch(loop, peer.port, "/head", "HEAD", false, &t);
    CHECK_EQ(t.r.done, 1);
    CHECK_EQ(t.content_len, 12345);
    CHECK_EQ(t.r.body_len, 0);
    hc_result_free(&t.r);

    /* A chunk that announces 2^64-1 bytes: 3 arrived, 3 are reported. */
    fetch(loop, peer.port, "/hugechunk", NULL, true, &t);
    if (t.r.done != 2 || strstr(t.r.msg, "(3 body bytes received)") == NULL) {
        fprintf(stderr, "hugechunk: done %d msg \"%s\"\n", t.r.done, t.r.msg);
        exit(1);
    }
    hc_result_free(&t.r);

    /* Counters: a refused connection is an attempt and a failure, not an
     * established connection. */
    loom_http_client_stats_t st0, st1;
    loom_http_client_stats(loop, &st0);
    CHECK(st0.connections >= 1);
    CHECK_EQ(st0.connect_failures, 0);
    CHECK_EQ(st0.connect_attempts, st0.connections);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t alen = sizeof a;
    CHECK(getsockname(s, (struct sockaddr *)&a, &alen) == 0);
    char u[64];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    hc_result r = {0};
    hc_get(loop, u, &r, NULL);
    hc_run_until(loop, &r.done, 5000);
    close(s);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_REFUSED);
    hc_result_free(&r);
    loom_http_client_stats(loop, &st1);
    CHECK_EQ(st1.connect_attempts, st0.connect_attempts + 1);
    CHECK_EQ(st1.connect_failures, 1);
    CHECK_EQ(st1.connections, st0.connections);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client text: ok\n");
    return 0;
}
