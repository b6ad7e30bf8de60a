/* test_http_client_timeout.c - the four timeouts, each tripped by a slow
 * peer and each arriving as an http timeout: connect (a listener whose
 * backlog is full), first byte (a peer that reads the request and says
 * nothing), idle (a body that stalls halfway; an upload that stalls after an
 * early answer or before any, named as such) and total (a body that trickles
 * in steadily, so the idle timeout never fires). Fast answers with every
 * timeout set succeed.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). Each timeout ends the request by resetting its
 * stream; a silent or slow script trips them as before (the connect timeout
 * is the same TCP connect). */
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
        if (strcmp(path, "/slowfirst") == 0) {
            hc_wait_eof(fd, 1500);
            break;
        } else if (strcmp(path, "/stall") == 0) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
            hc_wait_eof(fd, 1500);
            break;
        } else if (strcmp(path, "/trickle") == 0) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n");
            for (int i = 0; i < 100; i++) {
                if (hc_write(fd, "x", 1) < 0)
                    break;
                usleep(30000);
            }
            break;
        } else {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    }
    free(rd->body);
    free(rd);
}

/* Reads a request head and answers at once, the body unread (an early
 * answer), then neither reads nor sends: the upload stalls. */
static void early_script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    char buf[4096];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t k = recv(fd, buf + n, 1, 0);
        if (k <= 0)
            return;
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    usleep(1200000);
}

/* Reads nothing and answers nothing: the upload stalls before any
 * response. */
static void mute_script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)fd;
    (void)index;
    usleep(1200000);
}

static void expect_timeout(loom_loop_t *loop, const char *url, loom_http_request_opts o,
                           unsigned at_least, unsigned at_most, const char *msg_part)
{
    hc_result r = {0};
    loom_update_time(loop);
    uint64_t t0 = loom_now(loop);
    hc_get(loop, url, &r, &o);
    hc_run_until(loop, &r.done, 5000);
    uint64_t el = r.done_at - t0;
    if (r.done != 2 || r.ev_kind != LOOM_EV_HTTP_TIMEOUT || r.ev_code != LOOM_ETIMEDOUT ||
        strstr(r.msg, msg_part) == NULL || el < at_least || el > at_most) {
        fprintf(stderr, "%s: done %d kind %d msg \"%s\" after %llu ms\n", url, r.done, r.ev_kind,
                r.msg, (unsigned long long)el);
        exit(1);
    }
    hc_result_free(&r);
}

/* A loop has room for 63 distinct socket timeout values. A request whose
 * idle timeout (a socket write timeout while sending) would need one more
 * is refused at once (LOOM_ETOOMANY) rather than left to run without it;
 * the first byte deadline is the request's own timer and takes none. A
 * connection that cannot get the pool's idle timeout is closed rather than
 * parked without one. */
static void ignore_event(const loom_event_t *ev, void *data)
{
    (void)ev, (void)data;
}

static void test_too_many_values(int port)
{
    loom_loop_t *loop = test_loop_new();
    loom_socket_t *s;
    /* A socket that only serves to take up the values (its connect to a
     * closed port fails later, quietly). */
    CHECK_OK(
        loom_tcp_connect(loop, "127.0.0.1", 1, &(loom_tcp_opts){.on_event = ignore_event}, &s));
    for (uint32_t i = 0; i < 63; i++)
        CHECK_OK(loom_socket_set_timeouts(s, 2000 + i, 0));
    char u[128];
    snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", port);
    hc_result r = {0};
    loom_http_request_opts o = {.on_response = hc_on_response, .on_event = hc_on_event, .data = &r};
    /* The idle timeout times a stall in sending with the socket's write
     * timeout: a 64th value has no group. */
    o.idle_timeout_ms = 7778;
    CHECK_EQ(loom_http_request(loop, u, &o, NULL), LOOM_ETOOMANY);
    /* The first byte deadline is the request's own timer: any value works,
     * and it does not take a socket group. */
    o.idle_timeout_ms = 0;
    o.first_byte_timeout_ms = 7777;
    r.loop = loop;
    CHECK_OK(loom_http_request(loop, u, &o, NULL));
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);
    memset(&r, 0, sizeof r);
    o.data = &r;
    /* Values in use are fine; the answer comes, and the connection, which
     * cannot have the pool's 30 s idle timeout, is closed, not parked. */
    o.idle_timeout_ms = 2001;
    o.first_byte_timeout_ms = 2002;
    r.loop = loop;
    CHECK_OK(loom_http_request(loop, u, &o, NULL));
    hc_run_until(loop, &r.done, 5000);
    CHECK_EQ(r.done, 1);
    CHECK_STR(r.body, "ok");
    hc_result_free(&r);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.idle, 0);
    CHECK_EQ(st.open, 0);
    hc_loop_done(loop);
}

int main(void)
{
    test_timeout(25);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];

    /* Connect: a listener with a full backlog never completes the handshake. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(listen(lfd, 0) == 0);
    socklen_t alen = sizeof a;
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        CHECK(connect(fill[i], (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS);
    }
    usleep(50000);
    snprintf(u, sizeof u, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    expect_timeout(loop, u, (loom_http_request_opts){.connect_timeout_ms = 150}, 150, 4000,
                   "connect timeout after 150 ms connecting to 127.0.0.1:");
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);

    /* First byte. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/slowfirst", peer.port);
    expect_timeout(loop, u, (loom_http_request_opts){.first_byte_timeout_ms = 150}, 150, 4000,
                   "read timeout after 150 ms waiting for 127.0.0.1:");
    /* Idle: the body stalls after 10 bytes. The head comes from a new
     * connection's script thread: 3 s for it (and for the idle timer after
     * it), so a loaded machine cannot make the first byte deadline fire. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/stall", peer.port);
    expect_timeout(loop, u,
                   (loom_http_request_opts){.first_byte_timeout_ms = 3000, .idle_timeout_ms = 150},
                   150, 3000, "read timeout after 150 ms reading the response from 127.0.0.1:");
    /* Idle while the body is still being sent (an early answer, then a
     * server that reads nothing more): the message names the upload. Which
     * of "the response had begun" and "no response yet" it adds depends on
     * whether the client read the early answer within the 150 ms, which a
     * loaded machine decides; the message names the upload either way (it
     * used to say "on the connection to" when the answer was not read yet). */
    if (!hv_h2()) {
        hc_peer early;
        hc_peer_start(&early, early_script, NULL);
        snprintf(u, sizeof u, "http://127.0.0.1:%d/upload", early.port);
        size_t big = 16u << 20;
        char *body = malloc(big);
        CHECK(body);
        memset(body, 'b', big);
        expect_timeout(loop, u,
                       (loom_http_request_opts){
                           .method = "PUT", .body = body, .body_len = big, .idle_timeout_ms = 150},
                       150, 4000, "ms sending the request body to 127.0.0.1:");
        hc_peer_stop(&early);

        /* No answer at all: the body is still queued, nothing came back. */
        hc_peer mute;
        hc_peer_start(&mute, mute_script, NULL);
        snprintf(u, sizeof u, "http://127.0.0.1:%d/upload", mute.port);
        expect_timeout(loop, u,
                       (loom_http_request_opts){
                           .method = "PUT", .body = body, .body_len = big, .idle_timeout_ms = 150},
                       150, 4000,
                       "write timeout after 150 ms sending the request body to 127.0.0.1:");
        expect_timeout(loop, u,
                       (loom_http_request_opts){
                           .method = "PUT", .body = body, .body_len = big, .idle_timeout_ms = 150},
                       150, 4000, "(idle timeout; no response yet)");
        free(body);
        hc_peer_stop(&mute);
    }
    /* Total: 30 ms between bytes keeps the idle timeout quiet. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/trickle", peer.port);
    expect_timeout(loop, u,
                   (loom_http_request_opts){.idle_timeout_ms = 400, .total_timeout_ms = 300}, 300,
                   4000, "timed out after 300 ms (total timeout)");

    /* Fast answers: no timeout fires, before or after. The timeouts are
     * 2 s, not 100 ms: the first request opens a connection, so the answer
     * waits for the peer's accept and a new script thread, which a loaded
     * machine can hold up for far more than 100 ms (with 100 ms, one ended
     * with a timeout event in a full ASan run at -j4). */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/ok", peer.port);
    for (int i = 0; i < 5; i++) {
        hc_result r = {0};
        hc_get(loop, u, &r,
               &(loom_http_request_opts){.connect_timeout_ms = 2000,
                                         .first_byte_timeout_ms = 2000,
                                         .idle_timeout_ms = 2000,
                                         .total_timeout_ms = 2000});
        hc_run_until(loop, &r.done, 5000);
        if (r.done != 1)
            fprintf(stderr, "fast answer %d: %s\n", i, r.msg);
        CHECK_EQ(r.done, 1);
        CHECK_STR(r.body, "ok");
        hc_result_free(&r);
    }
    /* The pooled connection outlives the request timeouts quietly. */
    usleep(2300000);
    loom_run(loop, LOOM_RUN_NOWAIT);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(st.errors, hv_h2() ? 4 : 7); /* HTTP/1: the three uploads too */

    hc_loop_done(loop);
    test_too_many_values(peer.port);
    hc_peer_stop(&peer);
    printf("http client timeout: ok\n");
    return 0;
}
