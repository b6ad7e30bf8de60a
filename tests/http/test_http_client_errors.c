/* test_http_client_errors.c - every way a request can fail, each with its
 * event kind, code and a clear message: malformed status lines and headers,
 * heads over the size limits, a refused connection, a name that does not
 * resolve, a connection closed without a response or inside the head or the
 * body, a reset in the middle of the body, unsupported schemes. The
 * events go to the request's callback, or to the loop's default.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). Malformed and oversized HTTP/1 heads, bad
 * lengths and chunks are HTTP/1 parser matters (HTTP/2's malformed frames
 * and fields are test_h2_client_python's); an answer cut off, reset or
 * missing ends the stream with RST_STREAM, an http error naming the server
 * (LOOM_ECONNRESET); refusal, DNS and scheme errors and the default handler
 * are the same. */
#include "hc_test.h"

static const char *answer(const char *path)
{
    static char big[40000];
    if (strcmp(path, "/badstatus") == 0)
        return "HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n";
    if (strcmp(path, "/badversion") == 0)
        return "HTTP/2.0 200 OK\r\n\r\n";
    if (strcmp(path, "/garbage") == 0)
        return "hello there\r\n\r\n";
    if (strcmp(path, "/badheader") == 0)
        return "HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n";
    if (strcmp(path, "/barelf") == 0)
        return "HTTP/1.1 200 OK\nContent-Length: 0\n\n";
    if (strcmp(path, "/badcl") == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 12a\r\n\r\n";
    if (strcmp(path, "/badchunk") == 0)
        return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
    if (strcmp(path, "/hugehead") == 0) {
        strcpy(big, "HTTP/1.1 200 OK\r\nX-Big: ");
        size_t n = strlen(big);
        memset(big + n, 'a', 30000);
        strcpy(big + n + 30000, "\r\nContent-Length: 0\r\n\r\n");
        return big;
    }
    if (strcmp(path, "/closehead") == 0)
        return "HTTP/1.1 200 OK\r\nContent-Le";
    if (strcmp(path, "/closebody") == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part";
    if (strcmp(path, "/resetbody") == 0)
        return "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nonly part";
    if (strcmp(path, "/nothing") == 0)
        return "";
    return NULL;
}

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    if (hc_read_request(rd) == 0) {
        char path[128];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        const char *a = answer(path);
        if (a == NULL)
            a = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        hc_writes(fd, a);
        if (strcmp(path, "/resetbody") == 0) {
            usleep(20000);
            hc_set_linger0(fd);
        } else {
            usleep(5000);
        }
    }
    free(rd->body);
    free(rd);
}

static char base[64];

static void expect_error(loom_loop_t *loop, const char *path, int kind, int code,
                         const char *msg_part)
{
    char u[256];
    snprintf(u, sizeof u, "%s%s", base, path);
    hc_result r = {0};
    hc_get(loop, u, &r, NULL);
    CHECK_EQ(r.done, 0); /* never inside the call */
    hc_run_until(loop, &r.done, 5000);
    if (r.done != 2 || r.ev_kind != kind || (code && r.ev_code != code) ||
        (msg_part && strstr(r.msg, msg_part) == NULL) ||
        /* Every message names the peer (docs/HTTP_CLIENT.md), malformed
         * heads and bodies included. */
        strstr(r.msg, "127.0.0.1:") == NULL) {
        fprintf(stderr, "%s: done %d kind %d (want %d) code %s msg \"%s\"\n", path, r.done,
                r.ev_kind, kind, loom_err_name(r.ev_code), r.msg);
        exit(1);
    }
    hc_result_free(&r);
}

static int default_events;
static char default_msg[256];

static void loop_default(const loom_event_t *ev, void *data)
{
    (void)data;
    default_events++;
    snprintf(default_msg, sizeof default_msg, "%s", ev->msg);
    CHECK(loom_event_is(ev, LOOM_EV_HTTP_ERROR));
}

int main(void)
{
    test_timeout(25);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", peer.port);
    loom_loop_t *loop = test_loop_new();

    if (hv_h2()) {
        static const char *const cut[] = {"/closehead", "/closebody", "/resetbody", "/nothing"};
        for (size_t i = 0; i < sizeof cut / sizeof *cut; i++)
            expect_error(loop, cut[i], LOOM_EV_HTTP_ERROR, LOOM_ECONNRESET,
                         "stream reset by 127.0.0.1:");
        goto common;
    }
    expect_error(loop, "/badstatus", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "malformed response");
    expect_error(loop, "/badversion", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "malformed response");
    expect_error(loop, "/garbage", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "malformed response");
    expect_error(loop, "/badheader", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "header");
    expect_error(loop, "/barelf", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "malformed response");
    expect_error(loop, "/badcl", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "Content-Length");
    expect_error(loop, "/badchunk", LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "chunk");
    expect_error(loop, "/hugehead", LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG, "too large");
    expect_error(loop, "/closehead", LOOM_EV_HTTP_ERROR, LOOM_EOF, "inside the response head");
    expect_error(loop, "/closebody", LOOM_EV_HTTP_ERROR, LOOM_EOF,
                 "before the response was complete");
    expect_error(loop, "/resetbody", LOOM_EV_HTTP_ERROR, LOOM_ECONNRESET, "reset");
    expect_error(loop, "/nothing", LOOM_EV_HTTP_ERROR, LOOM_EOF, "without a response");
common:;
    /* Every kind above is an http error, and a connection error. */
    loom_event_t probe = {.kind = LOOM_EV_HTTP_TIMEOUT};
    CHECK(loom_event_is(&probe, LOOM_EV_HTTP_ERROR));
    CHECK(loom_event_is(&probe, LOOM_EV_CONN_ERROR));

    /* Refused: a port nobody listens on. */
    {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
        socklen_t len = sizeof a;
        CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
        char u[64];
        snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
        hc_result r = {0};
        hc_get(loop, u, &r, NULL);
        hc_run_until(loop, &r.done, 5000);
        close(s);
        CHECK_EQ(r.done, 2);
        CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_REFUSED);
        CHECK_EQ(r.ev_code, LOOM_ECONNREFUSED);
        CHECK(strstr(r.msg, "connect to 127.0.0.1:") != NULL);
        CHECK(strstr(r.msg, " refused") != NULL);
        hc_result_free(&r);
    }

    /* A host with no address (of the family asked for): a dns error. No
     * query leaves the machine. */
    {
        char u[64];
        snprintf(u, sizeof u, "http://127.0.0.1:%d/", peer.port);
        hc_result r = {0};
        hc_get(loop, u, &r, &(loom_http_request_opts){.family = AF_INET6});
        hc_run_until(loop, &r.done, 5000);
        CHECK_EQ(r.done, 2);
        CHECK_EQ(r.ev_kind, LOOM_EV_DNS_ERROR);
        CHECK(strstr(r.msg, "dns lookup of 127.0.0.1 failed: ") != NULL);
        hc_result_free(&r);
    }

    /* Unsupported schemes (https is tests/http/test_http_tls_*.c's). */
    {
        hc_result r = {0};
        hc_get(loop, "ftp://127.0.0.1/x", &r, NULL);
        CHECK_EQ(r.done, 0);
        hc_run_until(loop, &r.done, 5000);
        CHECK_EQ(r.done, 2);
        CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
        CHECK_EQ(r.ev_code, LOOM_EPROTOCOL);
        CHECK_STR(r.msg, "unsupported URL scheme \"ftp\"");
        hc_result_free(&r);
    }
    hc_loop_done(loop);

    /* Without an event callback the loop's default handler gets the event. */
    loop = NULL;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = loop_default}));
    CHECK_OK(loom_http_request(loop, "ftp://127.0.0.1/x", NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(default_events, 1);
    CHECK_STR(default_msg, "unsupported URL scheme \"ftp\"");
    /* ...and with no default handler an error ends loom_run() with its code. */
    hc_loop_done(loop);
    loop = test_loop_new();
    CHECK_OK(loom_http_request(loop, "ftp://127.0.0.1/x", NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), LOOM_EPROTOCOL);
    loom_run(loop, LOOM_RUN_NOWAIT);
    hc_loop_done(loop);

    hc_peer_stop(&peer);
    printf("http client errors: ok\n");
    return 0;
}
