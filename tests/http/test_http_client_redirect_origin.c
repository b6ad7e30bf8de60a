/* test_http_client_redirect_origin.c - credentials and a redirect: a
 * redirect within the origin keeps the caller's Authorization,
 * Proxy-Authorization, Cookie and Host fields; one to another origin
 * (127.0.0.1:A -> localhost:B, and 127.0.0.1:A -> 127.0.0.1:B) drops them and
 * the URL's userinfo, unless redirect_keep_credentials is set. Every server
 * answers with what it received, so the test sees what the second one got.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The same credential rules; Host travels as
 * :authority. */
#include "hc_test.h"

static int port_a, port_b;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128], buf[1024];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        const char *loc = NULL;
        char lbuf[128];
        if (strcmp(path, "/same") == 0) {
            loc = "/land";
        } else if (strcmp(path, "/cross-host") == 0) {
            snprintf(lbuf, sizeof lbuf, "http://localhost:%d/land", port_b);
            loc = lbuf;
        } else if (strcmp(path, "/cross-port") == 0) {
            snprintf(lbuf, sizeof lbuf, "http://127.0.0.1:%d/land", port_b);
            loc = lbuf;
        } else if (strcmp(path, "/back") == 0) {
            /* Away and back again: dropped fields stay dropped. */
            snprintf(lbuf, sizeof lbuf, "http://127.0.0.1:%d/return", port_b);
            loc = lbuf;
        } else if (strcmp(path, "/return") == 0) {
            snprintf(lbuf, sizeof lbuf, "http://127.0.0.1:%d/land", port_a);
            loc = lbuf;
        }
        int hl;
        if (loc) {
            hl = snprintf(buf, sizeof buf,
                          "HTTP/1.1 302 Found\r\nLocation: %s\r\nContent-Length: 0\r\n\r\n", loc);
        } else {
            char body[768];
            const char *names[] = {"authorization", "proxy-authorization", "cookie", "host",
                                   "x-keep"};
            int bl = 0;
            for (int i = 0; i < 5; i++) {
                const char *v = hc_req_header(rd, names[i]);
                bl += snprintf(body + bl, sizeof body - (size_t)bl, "%s%s=%.100s", i ? " " : "",
                               names[i], v ? v : "-");
            }
            hl = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bl,
                          body);
        }
        hc_write(fd, buf, (size_t)hl);
    }
    free(rd->body);
    free(rd);
}

static const char *const creds[] = {"Authorization",
                                    "Bearer X",
                                    "Proxy-Authorization",
                                    "Basic cHJveHk6cw==",
                                    "Cookie",
                                    "s=X",
                                    "Host",
                                    "custom.example",
                                    "X-Keep",
                                    "1",
                                    NULL};

static void fetch(loom_loop_t *loop, const char *url, bool keep, const char *const *headers,
                  const char *want)
{
    hc_result r = {0};
    hc_get(loop, url, &r,
           &(loom_http_request_opts){.follow_redirects = true,
                                     .redirect_keep_credentials = keep,
                                     .headers = headers,
                                     .family = AF_INET});
    hc_run_until(loop, &r.done, 5000);
    if (r.done != 1 || r.status != 200 || strcmp(r.body, want) != 0) {
        fprintf(stderr, "%s: done %d status %d body \"%s\" msg \"%s\"\n  want \"%s\"\n", url,
                r.done, r.status, r.body ? r.body : "", r.msg, want);
        exit(1);
    }
    hc_result_free(&r);
}

int main(void)
{
    test_timeout(20);
    hc_peer a, b;
    hc_peer_start(&a, script, NULL);
    hc_peer_start(&b, script, NULL);
    port_a = a.port;
    port_b = b.port;
    loom_loop_t *loop = test_loop_new();
    char u[128], want[512];
    const char *all = "authorization=Bearer X proxy-authorization=Basic cHJveHk6cw== cookie=s=X "
                      "host=custom.example x-keep=1";

    /* Same origin: everything is kept. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/same", port_a);
    fetch(loop, u, false, creds, all);

    /* Another host (same address, another name and port). */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/cross-host", port_a);
    snprintf(want, sizeof want,
             "authorization=- proxy-authorization=- cookie=- host=localhost:%d x-keep=1", port_b);
    fetch(loop, u, false, creds, want);

    /* Only the port changes. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/cross-port", port_a);
    snprintf(want, sizeof want,
             "authorization=- proxy-authorization=- cookie=- host=127.0.0.1:%d x-keep=1", port_b);
    fetch(loop, u, false, creds, want);

    /* Dropped once, dropped for the rest of the chain, even back home. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/back", port_a);
    snprintf(want, sizeof want,
             "authorization=- proxy-authorization=- cookie=- host=127.0.0.1:%d x-keep=1", port_a);
    fetch(loop, u, false, creds, want);

    /* The caller keeps them deliberately. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/cross-host", port_a);
    fetch(loop, u, true, creds, all);

    /* Userinfo: Basic on the same origin, not to another one. */
    snprintf(u, sizeof u, "http://user:pw@127.0.0.1:%d/same", port_a);
    snprintf(want, sizeof want,
             "authorization=Basic dXNlcjpwdw== proxy-authorization=- cookie=- host=127.0.0.1:%d "
             "x-keep=-",
             port_a);
    fetch(loop, u, false, NULL, want);
    snprintf(u, sizeof u, "http://user:pw@127.0.0.1:%d/cross-port", port_a);
    snprintf(want, sizeof want,
             "authorization=- proxy-authorization=- cookie=- host=127.0.0.1:%d x-keep=-", port_b);
    fetch(loop, u, false, NULL, want);

    hc_loop_done(loop);
    hc_peer_stop(&a);
    hc_peer_stop(&b);
    printf("http client redirect origin: ok\n");
    return 0;
}
