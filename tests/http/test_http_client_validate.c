/* test_http_client_validate.c - what loom_http_request() refuses before
 * anything is sent: header values with a control character other than HTAB
 * (VT, DEL, NUL-free C0 bytes, CR, LF), a Content-Length that disagrees with
 * the body, or one with a chunked upload. The peer checks that nothing
 * reaches it; a request that passes still goes out as given.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The same refusals before anything is sent. */
#include "hc_test.h"

static atomic_int requests_seen;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        atomic_fetch_add(&requests_seen, 1);
        const char *x = hc_req_header(rd, "x-v");
        char body[256], buf[512];
        int bl = snprintf(body, sizeof body, "x=%s len=%zu body=%s", x ? x : "-", rd->body_len,
                          rd->body);
        int hl =
            snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bl, body);
        hc_write(fd, buf, (size_t)hl);
    }
    free(rd->body);
    free(rd);
}

static ssize_t src(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    (void)req;
    (void)buf;
    (void)size;
    (void)data;
    return 0;
}

static int try_request(loom_loop_t *loop, const char *url, loom_http_request_opts o)
{
    o.on_response = hc_on_response;
    o.on_event = hc_on_event;
    return loom_http_request(loop, url, &o, NULL);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/v", peer.port);

    /* Control characters in a value. */
    const char *bad[] = {"a\vb", "a\x7f", "a\x01", "a\rb", "a\nb", "a\x1b[0m", "\x1f"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ(
            try_request(loop, u,
                        (loom_http_request_opts){.headers = (const char *[]){"X-V", bad[i], NULL}}),
            LOOM_EINVAL);
    /* ...and in the pool's User-Agent. */
    CHECK_EQ(loom_http_client_configure(loop, &(loom_http_client_opts){.user_agent = "ua\x7f"}),
             LOOM_EINVAL);

    /* A Content-Length that is not the body's. */
    const char *cl_bad[] = {"5", "2", "", "3 ", "+3", "0x3", "-3", "03a"};
    for (size_t i = 0; i < sizeof cl_bad / sizeof cl_bad[0]; i++)
        CHECK_EQ(try_request(loop, u,
                             (loom_http_request_opts){
                                 .body = "abc",
                                 .body_len = 3,
                                 .headers = (const char *[]){"Content-Length", cl_bad[i], NULL}}),
                 LOOM_EINVAL);
    /* Without a body only 0 is right; with a chunked upload nothing is. */
    CHECK_EQ(try_request(loop, u,
                         (loom_http_request_opts){
                             .headers = (const char *[]){"content-length", "4", NULL}}),
             LOOM_EINVAL);
    CHECK_EQ(try_request(loop, u,
                         (loom_http_request_opts){
                             .on_body_source = src,
                             .body_length = -1,
                             .headers = (const char *[]){"Content-Length", "0", NULL}}),
             LOOM_EINVAL);
    CHECK_EQ(try_request(loop, u,
                         (loom_http_request_opts){
                             .on_body_source = src,
                             .body_length = 7,
                             .headers = (const char *[]){"Content-Length", "8", NULL}}),
             LOOM_EINVAL);
    /* Nothing was started, nothing was sent. */
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.requests, 0);
    CHECK_EQ(loom_loop_live(loop), 0);
    CHECK_EQ(atomic_load(&peer.accepted), 0);

    /* What passes: HTAB and obs-text in a value, and a right length. */
    hc_result r = {0};
    hc_get(loop, u, &r,
           &(loom_http_request_opts){
               .body = "abc",
               .body_len = 3,
               .headers = (const char *[]){"X-V", "a\tb\xc3\xa9", "Content-Length", "3", NULL}});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "x=a\tb\xc3\xa9 len=3 body=abc");
    hc_result_free(&r);
    CHECK_EQ(atomic_load(&requests_seen), 1);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client validate: ok\n");
    return 0;
}
