/* test_http_client_redirect.c - following redirects: relative and absolute
 * Locations, the method and body rules of 301, 302, 303, 307 and 308, the
 * hop limit, redirects not followed unless asked, and other schemes refused.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The same redirect rules; each hop is a stream. */
#include "hc_test.h"

static int port;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128], buf[512];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        int code;
        if (sscanf(path, "/a/r%d", &code) == 1) {
            /* Body text explains itself; the Location is relative. */
            int hl = snprintf(buf, sizeof buf,
                              "HTTP/1.1 %d Moved\r\nLocation: ../final?from=%d\r\n"
                              "Content-Length: 5\r\n\r\n%s",
                              code, code, rd->req.method == LOOM_HTTP_METHOD_HEAD ? "" : "moved");
            hc_write(fd, buf, (size_t)hl);
        } else if (strncmp(path, "/loop/", 6) == 0) {
            int n = atoi(path + 6);
            int hl = snprintf(buf, sizeof buf,
                              "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/loop/%d\r\n"
                              "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                              port, n + 1);
            hc_write(fd, buf, (size_t)hl);
        } else if (strcmp(path, "/badport") == 0) {
            hc_writes(fd, "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:99999/\r\n"
                          "Content-Length: 0\r\n\r\n");
        } else if (strcmp(path, "/tls") == 0) {
            hc_writes(fd, "HTTP/1.1 301 Moved\r\nLocation: ftp://127.0.0.1/\r\n"
                          "Content-Length: 0\r\n\r\n");
        } else {
            const char *ct = hc_req_header(rd, "content-type");
            char ct_s[80];
            snprintf(ct_s, sizeof ct_s, "%.70s", ct ? ct : "-");
            char body[512];
            int bl = snprintf(body, sizeof body, "%.*s %s body=%s ct=%s", (int)rd->req.method_len,
                              rd->req.method_str, path, rd->body, ct_s);
            int hl = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", bl);
            hc_write(fd, buf, (size_t)hl);
            /* No body after HEAD: the client rightly reads none, and stray
             * bytes would be taken for the next response. */
            if (rd->req.method != LOOM_HTTP_METHOD_HEAD)
                hc_write(fd, body, (size_t)bl);
        }
    }
    free(rd->body);
    free(rd);
}

/* A streamed request body of three bytes, with no way to rewind it. */
static int src_sent;
static ssize_t src_once(loom_http_client_req_t *rq, char *buf, size_t size, void *data)
{
    (void)rq;
    (void)data;
    if (src_sent || size < 3)
        return 0;
    src_sent = 1;
    memcpy(buf, "k=v", 3);
    return 3;
}

static void req(loom_loop_t *loop, const char *path, const char *method, const char *body,
                bool follow, unsigned max, hc_result *r)
{
    char u[256];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/a%s", port, path);
    memset(r, 0, sizeof *r);
    loom_http_request_opts o = {.method = method,
                                .follow_redirects = follow,
                                .max_redirects = max,
                                .headers =
                                    body ? (const char *[]){"Content-Type", "text/x", NULL} : NULL};
    if (body) {
        o.body = body;
        o.body_len = strlen(body);
    }
    hc_get(loop, u, r, &o);
    hc_run_until(loop, &r->done, 5000);
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    port = peer.port;
    loom_loop_t *loop = test_loop_new();
    hc_result r;
    char want[256];

    /* Not followed unless asked. */
    req(loop, "/r302", NULL, NULL, false, 0, &r);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 302);
    CHECK_STR(r.body, "moved");
    hc_result_free(&r);

    /* GET stays GET everywhere. */
    int codes[] = {301, 302, 303, 307, 308};
    for (int i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "/r%d", codes[i]);
        req(loop, p, NULL, NULL, true, 0, &r);
        CHECK_EQ(r.done, 1);
        CHECK_EQ(r.status, 200);
        CHECK_EQ(r.redirects, 1);
        snprintf(want, sizeof want, "GET /final?from=%d body= ct=-", codes[i]);
        CHECK_STR(r.body, want);
        snprintf(want, sizeof want, "http://127.0.0.1:%d/final?from=%d", port, codes[i]);
        CHECK_STR(r.url, want);
        hc_result_free(&r);
    }
    /* POST: 301/302/303 become GET without the body; 307/308 keep both. */
    for (int i = 0; i < 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "/r%d", codes[i]);
        req(loop, p, "POST", "k=v", true, 0, &r);
        CHECK_EQ(r.done, 1);
        if (codes[i] < 307)
            snprintf(want, sizeof want, "GET /final?from=%d body= ct=-", codes[i]);
        else
            snprintf(want, sizeof want, "POST /final?from=%d body=k=v ct=text/x", codes[i]);
        CHECK_STR(r.body, want);
        hc_result_free(&r);
    }
    /* PUT keeps its method on 301/302, becomes GET on 303. */
    req(loop, "/r302", "PUT", "k=v", true, 0, &r);
    CHECK_STR(r.body, "PUT /final?from=302 body=k=v ct=text/x");
    hc_result_free(&r);
    req(loop, "/r303", "PUT", "k=v", true, 0, &r);
    CHECK_STR(r.body, "GET /final?from=303 body= ct=-");
    hc_result_free(&r);
    /* HEAD stays HEAD on 303. */
    req(loop, "/r303", "HEAD", NULL, true, 0, &r);
    CHECK_EQ(r.done, 1);
    CHECK_EQ(r.status, 200);
    hc_result_free(&r);

    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.connections, 1); /* every hop so far reused the connection */

    /* The hop limit. */
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/loop/0", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.follow_redirects = true, .max_redirects = 3});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK(strstr(r.msg, "too many redirects") != NULL);
    /* It names the peer (HTTP/1 and HTTP/2). */
    CHECK(strstr(r.msg, "127.0.0.1:") != NULL);
    hc_result_free(&r);

    /* A 307 keeps the body, and a streamed body without on_body_rewind
     * cannot be sent again: the message names the peer and the reason. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/a/r307", port);
    memset(&r, 0, sizeof r);
    src_sent = 0;
    hc_get(loop, u, &r,
           &(loom_http_request_opts){.method = "POST",
                                     .follow_redirects = true,
                                     .on_body_source = src_once,
                                     .body_length = 3});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_ESTATE);
    CHECK(strncmp(r.msg, "cannot follow a 307 redirect from 127.0.0.1:", 44) == 0);
    CHECK(strstr(r.msg, ": the streamed body cannot be sent again (to http://127.0.0.1:") != NULL);
    hc_result_free(&r);

    /* A Location that is no URL: the message names it and the peer. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/badport", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.follow_redirects = true});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_EURL);
    CHECK(strstr(r.msg, "bad redirect location \"http://127.0.0.1:99999/\" from 127.0.0.1:") !=
          NULL);
    hc_result_free(&r);

    /* A redirect to an unsupported scheme (https: test_http_tls_redirect). */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/tls", port);
    memset(&r, 0, sizeof r);
    hc_get(loop, u, &r, &(loom_http_request_opts){.follow_redirects = true});
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 2);
    CHECK_EQ(r.ev_code, LOOM_EPROTOCOL);
    /* The message names the peer, the target and the reason. */
    CHECK(strncmp(r.msg, "cannot follow the redirect from 127.0.0.1:", 42) == 0);
    CHECK(strstr(r.msg, " to ftp://") != NULL);
    CHECK(strstr(r.msg, ": unsupported URL scheme \"ftp\"") != NULL);
    hc_result_free(&r);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client redirect: ok\n");
    return 0;
}
