/* test_http_client_stream.c - streaming both ways: on_headers, then on_body
 * pieces as they download, then on_response without a body; backpressure
 * (a paused request gets no on_body and its socket stops reading, so the
 * server's sends block); request bodies pulled from a callback as chunked
 * upload or with a known length, including a source that has nothing ready
 * (LOOM_EAGAIN, then loom_http_client_body_ready()), and a source that ends
 * early.
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h; the script answers
 * through hc_h2_gateway.h). A paused download then closes the stream's
 * window, so the script's sends block all the same; uploads go as DATA
 * frames, which the gateway hands to the script with a Content-Length. */
#include "hc_test.h"

/* The download: 24 MiB, 8 in the h2 run (its pauses come at 1 and 5 MB;
 * the gateway copies every byte once more). */
#define BIG (hv_h2() ? 8u << 20 : 24u << 20)

static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static atomic_int server_sent_done;

static void script(hc_peer *p, int fd, int index)
{
    (void)p;
    (void)index;
    hc_reader *rd = malloc(sizeof *rd);
    CHECK(rd);
    hc_reader_init(rd, fd);
    while (hc_read_request(rd) == 0) {
        char path[128], buf[256];
        snprintf(path, sizeof path, "%.*s", (int)rd->req.target_len, rd->req.target);
        if (strcmp(path, "/big") == 0) {
            /* Chunked, 64 KiB pieces, through a small send buffer so that a
             * paused client soon blocks the sender. */
            int sb = 65536;
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof sb);
            hc_writes(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-T: big\r\n\r\n");
            unsigned char *b = malloc(65536);
            CHECK(b);
            for (size_t off = 0; off < BIG; off += 65536) {
                for (size_t i = 0; i < 65536; i++)
                    b[i] = pat(off + i);
                int hl = snprintf(buf, sizeof buf, "%x\r\n", 65536);
                if (hc_write(fd, buf, (size_t)hl) || hc_write(fd, b, 65536) ||
                    hc_write(fd, "\r\n", 2))
                    break;
            }
            hc_writes(fd, "0\r\n\r\n");
            atomic_store(&server_sent_done, 1);
            free(b);
        } else {
            /* Echo what the upload looked like: framing and a checksum. */
            uint64_t sum = 0;
            for (size_t i = 0; i < rd->body_len; i++)
                sum = sum * 31 + (unsigned char)rd->body[i];
            const char *te = hc_req_header(rd, "transfer-encoding");
            const char *cl = hc_req_header(rd, "content-length");
            char te_s[64], cl_s[64];
            snprintf(te_s, sizeof te_s, "%.60s", te ? te : "-");
            snprintf(cl_s, sizeof cl_s, "%.60s", cl ? cl : "-");
            char msg[200];
            int ml = snprintf(msg, sizeof msg, "%zu %llu te=%s cl=%s", rd->body_len,
                              (unsigned long long)sum, te_s, cl_s);
            int hl = snprintf(buf, sizeof buf, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", ml);
            hc_write(fd, buf, (size_t)hl);
            hc_write(fd, msg, (size_t)ml);
        }
    }
    free(rd->body);
    free(rd);
}

/* --- Download with backpressure ----------------------------------------------- */

typedef struct {
    int headers, responses, paused_now, pauses, events;
    size_t got;
    int bad;
    loom_loop_t *loop;
    loom_http_client_req_t *req;
} dl_state;

static void resume_cb(loom_timer_t *t, void *data)
{
    dl_state *s = data;
    (void)t;
    /* The server ran into the closed window while we were paused. */
    CHECK(!atomic_load(&server_sent_done));
    s->paused_now = 0;
    CHECK_OK(loom_http_client_resume(s->req));
}

static void dl_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                       void *data)
{
    dl_state *s = data;
    CHECK_EQ(res->status, 200);
    CHECK(res->body == NULL);
    size_t n;
    CHECK(loom_http_client_header(res, "x-t", &n) != NULL);
    CHECK_EQ(s->got, 0);
    s->headers++;
    s->req = req;
}

static int dl_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    dl_state *s = data;
    CHECK(!s->paused_now);
    CHECK_EQ(s->headers, 1);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)chunk[i] != pat(s->got + i))
            s->bad++;
    size_t before = s->got;
    s->got += len;
    /* Pause twice: once by the return value, once by the call. */
    if (before < 1000000 && s->got >= 1000000) {
        s->paused_now = 1;
        s->pauses++;
        CHECK_OK(loom_delay(s->loop, 150, resume_cb, s, NULL));
        return LOOM_HTTP_CLIENT_PAUSE;
    }
    if (before < 5000000 && s->got >= 5000000) {
        s->paused_now = 1;
        s->pauses++;
        CHECK_OK(loom_http_client_pause(req));
        CHECK_OK(loom_delay(s->loop, 150, resume_cb, s, NULL));
    }
    return 0;
}

static void dl_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    dl_state *s = data;
    (void)req;
    CHECK(res->body == NULL);
    CHECK_EQ(res->body_len, 0);
    s->responses++;
}

static void dl_event(const loom_event_t *ev, void *data)
{
    dl_state *s = data;
    fprintf(stderr, "download event: %s\n", ev->msg);
    s->events++;
}

/* --- Uploads ---------------------------------------------------------------------- */

typedef struct {
    size_t total, sent;
    int eagain_every; /* return LOOM_EAGAIN every n-th call, then body_ready from a timer */
    int calls;
    int short_by; /* end this many bytes early */
    loom_loop_t *loop;
    loom_http_client_req_t *req;
    uint64_t sum;
} up_state;

static void ready_cb(loom_timer_t *t, void *data)
{
    up_state *u = data;
    (void)t;
    CHECK_OK(loom_http_client_body_ready(u->req));
}

static ssize_t up_source(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    up_state *u = data;
    u->req = req;
    u->calls++;
    if (u->eagain_every && u->calls % u->eagain_every == 0) {
        CHECK_OK(loom_delay(u->loop, 5, ready_cb, u, NULL));
        return LOOM_EAGAIN;
    }
    size_t left = u->total - u->short_by - u->sent;
    size_t n = left < size ? left : size;
    if (n > 10000)
        n = 10000 + (u->calls % 7) * 1000; /* uneven pieces */
    if (n > left)
        n = left;
    if (n > size) /* never more than asked (HTTP/2 asks for less than a frame) */
        n = size;
    for (size_t i = 0; i < n; i++) {
        buf[i] = (char)pat(u->sent + i);
        u->sum = u->sum * 31 + (unsigned char)buf[i];
    }
    u->sent += n;
    return (ssize_t)n;
}

static up_state *g_up;

static ssize_t up_source_g(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    (void)data;
    return up_source(req, buf, size, g_up);
}

static void upload_g(loom_loop_t *loop, const char *url, size_t total, bool known, int eagain,
                     int short_by, hc_result *r, uint64_t *sum)
{
    up_state u = {.total = total, .eagain_every = eagain, .short_by = short_by, .loop = loop};
    g_up = &u;
    memset(r, 0, sizeof *r);
    r->loop = loop;
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){.method = "PUT",
                                                         .on_body_source = up_source_g,
                                                         .body_length = known ? (int64_t)total : -1,
                                                         .on_response = hc_on_response,
                                                         .on_event = hc_on_event,
                                                         .data = r},
                               NULL));
    hc_run_until(loop, &r->done, 60000);
    *sum = u.sum;
    g_up = NULL;
}

int main(void)
{
    test_timeout(100); /* 15 s under ASan when idle; a loaded machine is slower */
    hc_peer peer;
    hc_peer_start(&peer, script, NULL);
    loom_loop_t *loop = test_loop_new();
    char u[128];

    /* Download 24 MiB in pieces, pausing twice for 150 ms. */
    dl_state s = {.loop = loop};
    snprintf(u, sizeof u, "http://127.0.0.1:%d/big", peer.port);
    CHECK_OK(loom_http_request(loop, u,
                               &(loom_http_request_opts){.on_headers = dl_headers,
                                                         .on_body = dl_body,
                                                         .on_response = dl_response,
                                                         .on_event = dl_event,
                                                         .data = &s},
                               NULL));
    while (s.responses + s.events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(s.events, 0);
    CHECK_EQ(s.responses, 1);
    CHECK_EQ(s.got, BIG);
    CHECK_EQ(s.bad, 0);
    CHECK_EQ(s.pauses, 2);

    /* Uploads: chunked and with a length, smooth and with EAGAIN pauses. */
    snprintf(u, sizeof u, "http://127.0.0.1:%d/up", peer.port);
    size_t sizes[] = {0, 1, 70000, 3000000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        for (int known = 0; known < 2; known++) {
            for (int eagain = 0; eagain <= 3; eagain += 3) {
                hc_result r;
                uint64_t sum;
                upload_g(loop, u, sizes[i], known, eagain, 0, &r, &sum);
                if (r.done != 1) {
                    fprintf(stderr, "upload %zu known %d: %s\n", sizes[i], known, r.msg);
                    exit(1);
                }
                char want[200];
                char cl[32];
                snprintf(cl, sizeof cl, "%zu", sizes[i]);
                /* HTTP/2: no chunked coding; the client announces a known
                 * length, the gateway gives the script the length it got. */
                if (hv_h2())
                    snprintf(want, sizeof want, "%zu %llu te=- cl=%s", sizes[i],
                             (unsigned long long)sum, known || sizes[i] ? cl : "-");
                else
                    snprintf(want, sizeof want, "%zu %llu te=%s cl=%s", sizes[i],
                             (unsigned long long)sum, known ? "-" : "chunked", known ? cl : "-");
                CHECK_STR(r.body, want);
                hc_result_free(&r);
            }
        }
    }
    /* A source that ends before its announced length fails the request. */
    {
        hc_result r;
        uint64_t sum;
        upload_g(loop, u, 5000, true, 0, 10, &r, &sum);
        CHECK_EQ(r.done, 2);
        CHECK_EQ(r.ev_kind, LOOM_EV_HTTP_ERROR);
        CHECK(strstr(r.msg, "ended after 4990 of 5000 bytes") != NULL);
        hc_result_free(&r);
    }
    /* A body and a source at once is a usage error. */
    CHECK_EQ(loom_http_request(loop, u,
                               &(loom_http_request_opts){
                                   .body = "x", .body_len = 1, .on_body_source = up_source_g},
                               NULL),
             LOOM_EINVAL);

    hc_loop_done(loop);
    hc_peer_stop(&peer);
    printf("http client stream: ok\n");
    return 0;
}
