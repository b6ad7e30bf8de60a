/* test_http_server_fields: the server applies the one field rule that the
 * client applies too (http/common.c): a header name the application gives
 * must be an RFC 9110 token, a value may hold no control character but HTAB
 * (no CR, LF, NUL or DEL). Every refused field makes the answer call return
 * LOOM_EINVAL without writing anything, and the application can still
 * answer properly afterwards: the client sees one clean 200.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h); the accepted name
 * then arrives in lower case. */
#include "test_http_server_util.h"

static int nrefused, nasked;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    /* Names that are not tokens: separators (RFC 9110 5.6.2), space, colon,
     * an empty name, a control character, obs-text. */
    static const char *const bad_names[] = {"X(y)", "X,y",  "X/y",   "X;y",   "X=y",  "X\"y",
                                            "X@y",  "X[y]", "X{y}",  "X?y",   "X\\y", "X y",
                                            "X:y",  "",     "X\x01", "X\x80", "X<y>"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        const char *h[] = {bad_names[i], "v", NULL};
        nasked++;
        if (loom_http_respond(req, 200, h, "no", 2) == LOOM_EINVAL)
            nrefused++;
    }
    static const char *const bad_values[] = {"a\r\nInjected: 1", "a\nb", "a\rb", "a\x7f", "a\x01"};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++) {
        const char *h[] = {"X-Value", bad_values[i], NULL};
        nasked++;
        if (loom_http_respond(req, 200, h, "no", 2) == LOOM_EINVAL)
            nrefused++;
    }
    /* Every token character is accepted, and so are HTAB, SP and obs-text
     * in a value. */
    const char *good[] = {"X-!#$%&'*+-.^_`|~09azAZ", "a\tb c\x80\xff", NULL};
    CHECK_OK(loom_http_respond(req, 200, good, "ok", 2));
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request,
                              hv_server_opts(&(loom_http_server_opts){0}), &srv));
    int port = loom_http_server_port(srv);

    hs_raw c;
    hs_raw_exchange(loop, &c, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    CHECK(strncmp(c.resp, "HTTP/1.1 200 ", 13) == 0);
    CHECK(strcasestr(c.resp, "\r\nX-!#$%&'*+-.^_`|~09azAZ: a\tb c\x80\xff\r\n") != NULL);
    CHECK(strstr(c.resp, "Injected") == NULL);
    CHECK(strstr(c.resp, "\r\n\r\nok") != NULL);
    CHECK_EQ(nrefused, nasked);
    hs_raw_free(&c);

    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
    return 0;
}
