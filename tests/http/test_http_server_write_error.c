/* test_http_server_write_error: a streamed answer to a client that has
 * gone. The client sends its request and closes at once; the application
 * starts a streamed answer inside on_request and writes until
 * loom_http_response_write() returns non-zero, the pattern the header
 * documents (1: wait for on_drain). The first write reaches the closed
 * socket and the peer resets it; the sends after it fail (EPIPE). The socket
 * layer reports that error from the loop, not from inside the call, so the
 * writes used to return 0 for ever and the producer spun at 100% CPU inside
 * its callback. Each write after the failure must return LOOM_ECLOSED, for a
 * chunked (HTTP/1.1) and a raw (HTTP/1.0) body, and on_close runs at most
 * once. */
#include "test_http_server_util.h"

static char blk[16384];
static atomic_int served;
static int last_rc, iterations, nclose;

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclose++;
    loom_http_req_release(req);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    CHECK_OK(loom_http_response_start(req, 200, NULL));
    int r = 0, i;
    /* Bounded here so a regression fails instead of hanging. */
    for (i = 0; i < 20000; i++) {
        r = loom_http_response_write(req, blk, sizeof blk);
        if (r != 0)
            break;
    }
    last_rc = r;
    iterations = i;
    if (r != 1)
        (void)loom_http_response_end(req);
    else
        (void)loom_http_req_release(req);
    atomic_store(&served, 1);
}

/* Sends `req` and closes at once; returns 1 if the application saw it. */
static int one(loom_loop_t *loop, int port, const char *req)
{
    atomic_store(&served, 0);
    int fd = hs_connect(port);
    CHECK_EQ(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    close(fd);
    hs_run_until(loop, &served, 2000);
    hs_run_for(loop, 50);
    return atomic_load(&served);
}

int main(void)
{
    test_timeout(60);
    memset(blk, 'x', sizeof blk);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);
    static const char *const reqs[] = {"GET /stream HTTP/1.1\r\nHost: a\r\n\r\n",
                                       "GET /stream HTTP/1.0\r\n\r\n"};
    for (int k = 0; k < 2; k++) {
        int seen = 0, failed = 0;
        for (int round = 0; round < 5; round++) {
            nclose = 0;
            if (!one(loop, port, reqs[k]))
                continue; /* the close was seen first: nothing to answer */
            seen++;
            CHECK(nclose <= 1);
            if (last_rc == 1)
                continue; /* high water before the reset came back: not this case */
            if (last_rc != LOOM_ECLOSED || iterations > 100) {
                fprintf(stderr, "%s: write returned %d after %d writes (want LOOM_ECLOSED)\n",
                        k ? "HTTP/1.0" : "HTTP/1.1", last_rc, iterations);
                exit(1);
            }
            failed++;
        }
        printf("%s: %d requests seen, %d writes ended with LOOM_ECLOSED\n",
               k ? "HTTP/1.0" : "HTTP/1.1", seen, failed);
        CHECK(seen > 0);
    }
    hs_close_server(loop, srv);
    loom_loop_free(loop);
    printf("http server write error: ok\n");
    return 0;
}
