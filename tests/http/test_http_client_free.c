/* test_http_client_free.c - loom_loop_free() with HTTP client requests in
 * every state: waiting in the per-host queue, connecting (a name still being
 * resolved), sent and waiting for the answer, in the middle of a buffered
 * body kept across reads, paused in a streamed body with bytes held back, a
 * streamed upload waiting for its source, with a total timeout armed, plus
 * an idle pooled connection. Nothing is called, nothing leaks (the sanitizer
 * build checks), and no descriptor stays open.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). The requests are then streams of one
 * connection, and the queue is the one beyond the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS (5, the per-host limit of the HTTP/1
 * run); a paused stream holds its bytes back by not opening its window. */
#include <dirent.h>

#include "hc_test.h"

static atomic_int release_peer;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    rd->timeout_ms = 3000;
    /* Only the head matters here; uploads never end their body. */
    while (hc_reader_fill(rd) == 0) {
        if (memmem(rd->buf, rd->len, "\r\n\r\n", 4) == NULL)
            continue;
        if (memmem(rd->buf, rd->len, "GET /ok ", 8) != NULL) {
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            rd->len = 0;
            continue;
        }
        if (memmem(rd->buf, rd->len, "GET /partial ", 13) != NULL) {
            /* A buffered body split over reads: part of it, then nothing. */
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nfirst part");
        } else if (memmem(rd->buf, rd->len, "GET /stream ", 12) != NULL) {
            static char chunk[8192];
            memset(chunk, 'x', sizeof chunk);
            hc_writes(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n");
            for (int i = 0; i < 8; i++)
                hc_write(fd, chunk, sizeof chunk);
        }
        break; /* /silent and uploads: no answer */
    }
    while (!atomic_load(&release_peer)) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) > 0) {
            char b[4096];
            if (recv(fd, b, sizeof b, 0) <= 0)
                break;
        }
    }
    free(rd->body);
    free(rd);
}

static int calls;

static void never_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                           void *data)
{
    (void)req, (void)res, (void)data;
    calls++;
}

static void never_event(const loom_event_t *ev, void *data)
{
    (void)ev, (void)data;
    calls++;
}

static int paused_bodies;

static int pause_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)req, (void)chunk, (void)len, (void)data;
    paused_bodies++;
    return LOOM_HTTP_CLIENT_PAUSE;
}

static ssize_t no_data_yet(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    (void)req, (void)buf, (void)size, (void)data;
    return LOOM_EAGAIN;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void start(loom_loop_t *loop, const char *url, loom_http_request_opts o)
{
    o.on_response = never_response;
    o.on_event = never_event;
    CHECK_OK(loom_http_request(loop, url, &o, NULL));
}

int main(void)
{
    test_timeout(20);
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    peer.h2_max_streams = 5;
    /* Some backends open process-wide fds on their first loop (libuv keeps
     * a pipe for the life of the process): warm up before counting. */
    loom_loop_free(test_loop_new());
    int fds_before = count_fds();
    char base[64], u[128];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", peer.port);

    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_http_client_configure(loop, &(loom_http_client_opts){.max_per_host = 5}));

    /* An idle pooled connection. */
    hc_result ok = {0};
    snprintf(u, sizeof u, "%s/ok", base);
    hc_get(loop, u, &ok, NULL);
    hc_run_until(loop, &ok.done, 5000);
    CHECK_EQ(ok.done, 1);
    hc_result_free(&ok);

    snprintf(u, sizeof u, "%s/partial", base);
    start(loop, u, (loom_http_request_opts){.total_timeout_ms = 60000});
    snprintf(u, sizeof u, "%s/stream", base);
    start(loop, u, (loom_http_request_opts){.on_body = pause_body});
    snprintf(u, sizeof u, "%s/upload", base);
    start(loop, u, (loom_http_request_opts){.on_body_source = no_data_yet, .body_length = -1});
    snprintf(u, sizeof u, "%s/silent", base);
    start(loop, u, (loom_http_request_opts){.first_byte_timeout_ms = 60000});
    start(loop, u, (loom_http_request_opts){0});
    /* Beyond the per-host limit: waits in the queue. */
    start(loop, u, (loom_http_request_opts){0});
    start(loop, u, (loom_http_request_opts){.total_timeout_ms = 60000});

    /* Let the requests go out and the partial answers arrive. */
    for (int i = 0; i < 40 && paused_bodies == 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    for (int i = 0; i < 10; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    CHECK_EQ(paused_bodies, 1);
    loom_http_client_stats_t st;
    loom_http_client_stats(loop, &st);
    CHECK(st.queued >= 1);
    CHECK(st.open >= (hv_h2() ? 1 : 5));
    CHECK_EQ(calls, 0);

    loom_loop_free(loop);
    CHECK_EQ(calls, 0);

    /* The peer still serves a new loop, which ends clean. */
    loop = test_loop_new();
    snprintf(u, sizeof u, "%s/ok", base);
    hc_get(loop, u, &ok, NULL);
    hc_run_until(loop, &ok.done, 5000);
    CHECK_EQ(ok.done, 1);
    hc_result_free(&ok);
    hc_loop_done(loop);

    atomic_store(&release_peer, 1);
    hc_peer_stop(&peer);
    /* The peer's connections are closed by now; loom's were closed by the
     * loop free. */
    CHECK_EQ(count_fds(), fds_before - 1); /* the peer's listening socket */
    return 0;
}
