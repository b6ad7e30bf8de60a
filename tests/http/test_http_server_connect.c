/* test_http_server_connect: a 2xx answer to CONNECT turns the connection
 * into a tunnel for the client (RFC 9110 section 9.3.6), so it carries no
 * Content-Length, no Transfer-Encoding and no body, whatever the application
 * gave (a body would reach the client as tunnel data); loom serves no
 * tunnel, so the connection ends after it. A non-2xx answer to CONNECT is an
 * ordinary answer with its body. Found by the fuzz_http_server long run (a
 * 202 with "Content-Length: 10" and body bytes after the head). */
#include "test_http_server_util.h"

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    const char *path = loom_http_req_target(req, NULL);
    static const char *const cl[] = {"Content-Length", "10", "X-Kind", "t", NULL};
    if (strcmp(path, "whole:443") == 0) {
        CHECK_OK(loom_http_respond(req, 200, cl, "0123456789", 10));
    } else if (strcmp(path, "stream:443") == 0) {
        CHECK_OK(loom_http_response_start(req, 202, cl));
        /* A tunnel's answer has no body: the write is refused. */
        CHECK_EQ(loom_http_response_write(req, "0123", 4), LOOM_ENOBODY);
        CHECK_OK(loom_http_response_end(req));
    } else {
        CHECK_OK(loom_http_respond(req, 403, NULL, "no tunnels", 10));
    }
}

/* The raw answer to one CONNECT: its head alone, then the end. */
static void check_tunnel(loom_loop_t *loop, int port, const char *target, int status)
{
    char req[256];
    snprintf(req, sizeof req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target);
    hs_raw c;
    hs_raw_exchange(loop, &c, port, req, 1);
    fprintf(stderr, "CONNECT %s -> %.*s\n", target, (int)c.resp_len, c.resp);
    char want[64];
    snprintf(want, sizeof want, "HTTP/1.1 %d ", status);
    CHECK(strncmp(c.resp, want, strlen(want)) == 0);
    const char *end = strstr(c.resp, "\r\n\r\n");
    CHECK(end != NULL);
    CHECK_EQ((size_t)(end + 4 - c.resp), c.resp_len); /* nothing after the head */
    CHECK(strcasestr(c.resp, "content-length") == NULL);
    CHECK(strcasestr(c.resp, "transfer-encoding") == NULL);
    CHECK(strstr(c.resp, "X-Kind: t\r\n") != NULL);
    CHECK(c.closed); /* the connection ended */
    hs_raw_free(&c);
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    int port = loom_http_server_port(srv);
    check_tunnel(loop, port, "whole:443", 200);
    check_tunnel(loop, port, "stream:443", 202);

    /* A refusal is an ordinary answer. */
    hs_raw c;
    hs_raw_exchange(loop, &c, port, "CONNECT other:443 HTTP/1.1\r\nHost: other:443\r\n\r\n", 1);
    CHECK(strncmp(c.resp, "HTTP/1.1 403 ", 13) == 0);
    CHECK(strstr(c.resp, "Content-Length: 10\r\n") != NULL);
    CHECK(strstr(c.resp, "\r\n\r\nno tunnels") != NULL);
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    printf("http server connect: ok\n");
    return 0;
}
