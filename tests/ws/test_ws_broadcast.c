/* test_ws_broadcast: topics and prepared messages. 200 loom clients
 * subscribe to a topic through the server (one message each); 20 messages
 * published once each reach every subscriber, in order, and a prepared
 * message is sent by hand too. Then a slow reader (a raw socket that never
 * reads) faces a fast publisher of 64 KB messages: with the skip policy the
 * server's queue for it stays bounded (high water plus one message) while
 * the messages it misses are counted; with the close policy it is closed
 * (1008) with a websocket error event. Unsubscribe and the subscription
 * cleanup on close are checked; the loop ends clean. */
#include "ws_test.h"

#define NCLIENTS 200
#define NMSG     20
#define HW       (256 * 1024)

static loom_ws_topics_t *topics, *strict;
static int nsub, nserver_close, nclient_close, nerr;
static int got[NCLIENTS];
static loom_ws_t *slow_ws;

static void s_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)d, (void)type;
    if (n == 3 && memcmp(m, "sub", 3) == 0) {
        CHECK_OK(loom_ws_subscribe(topics, ws, "room"));
        CHECK_OK(loom_ws_subscribe(topics, ws, "room")); /* twice is once */
        CHECK_OK(loom_ws_subscribe(topics, ws, "other"));
        CHECK_OK(loom_ws_unsubscribe(topics, ws, "other"));
        CHECK_EQ(loom_ws_unsubscribe(topics, ws, "other"), LOOM_ENOENT);
        nsub++;
    } else if (n == 4 && memcmp(m, "slow", 4) == 0) {
        CHECK_OK(loom_ws_subscribe(topics, ws, "fast"));
        CHECK_OK(loom_ws_subscribe(strict, ws, "fast"));
        slow_ws = ws;
        nsub++;
    }
}

static void s_on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_WS_ERROR) {
        CHECK(strstr(ev->msg, "too slow") != NULL);
        CHECK(strstr(ev->msg, "127.0.0.1:") != NULL);
        CHECK_EQ(ev->code, LOOM_ENOBUFS); /* its queue is full: no protocol error */
        nerr++;
    }
}

static void s_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)r, (void)rl, (void)d;
    if (ws == slow_ws) {
        CHECK_EQ(code, LOOM_WS_POLICY);
        slow_ws = NULL;
    }
    nserver_close++;
}

static const loom_ws_opts s_opts = {.on_message = s_on_message,
                                    .on_event = s_on_event,
                                    .on_close = s_on_close,
                                    .high_water = HW,
                                    .close_timeout_ms = 200};

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK_OK(loom_ws_accept(req, &s_opts, NULL));
}

static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    CHECK(loom_ws_send(ws, LOOM_WS_TEXT, "sub", 3) >= 0);
}

static void c_on_message(loom_ws_t *ws, loom_ws_type_t type, const char *m, size_t n, void *d)
{
    (void)ws, (void)type;
    int *g = d;
    char want[32];
    snprintf(want, sizeof want, "message %d", *g);
    CHECK(n == strlen(want) && memcmp(m, want, n) == 0);
    (*g)++;
}

static void c_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    CHECK_EQ(code, 1000);
    nclient_close++;
}

static loom_ws_t *clients[NCLIENTS];

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts so = {.max_connections = 1000};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &so, &srv));
    int port = loom_http_server_port(srv);
    loom_timer_t *tick = ws_ticker(loop);
    CHECK_OK(loom_ws_topics_new(loop, NULL, &topics));
    CHECK_OK(loom_ws_topics_new(loop, &(loom_ws_topics_opts){.slow = LOOM_WS_SLOW_CLOSE}, &strict));
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    for (int i = 0; i < NCLIENTS; i++) {
        loom_ws_opts co = {.on_open = c_on_open,
                           .on_message = c_on_message,
                           .on_close = c_on_close,
                           .data = &got[i]};
        CHECK_OK(loom_ws_connect(loop, url, &co, &clients[i]));
    }
    while (nsub < NCLIENTS)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    for (int k = 0; k < NMSG - 1; k++) {
        char m[32];
        snprintf(m, sizeof m, "message %d", k);
        CHECK_EQ(loom_ws_publish(topics, "room", LOOM_WS_TEXT, m, strlen(m)), NCLIENTS);
    }
    CHECK_EQ(loom_ws_publish(topics, "nobody", LOOM_WS_TEXT, "x", 1), 0);
    loom_ws_prepared_t *p;
    char last[32];
    snprintf(last, sizeof last, "message %d", NMSG - 1);
    CHECK_OK(loom_ws_prepared_new(LOOM_WS_TEXT, last, strlen(last), &p));
    CHECK_EQ(loom_ws_publish_prepared(topics, "room", p), NCLIENTS);
    loom_ws_prepared_unref(p); /* the sends in flight hold their references */
    for (;;) {
        int done = 0;
        for (int i = 0; i < NCLIENTS; i++)
            done += got[i] == NMSG;
        if (done == NCLIENTS)
            break;
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }

    /* The slow reader: a raw client that subscribes and never reads. */
    int fd = ws_raw_connect(port);
    int rcv = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    char req[512];
    snprintf(req, sizeof req,
             "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
    ws_raw_send(fd, req, strlen(req));
    unsigned char fr[32];
    size_t fl = ws_frame_enc(fr, 0x81, true, "slow", 4);
    ws_raw_send(fd, fr, fl);
    while (slow_ws == NULL)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    static char chunk[64 * 1024];
    memset(chunk, 'z', sizeof chunk);
    size_t maxq = 0;
    for (int k = 0; k < 400 && loom_ws_topics_skipped(topics) < 10; k++) {
        loom_ws_publish(topics, "fast", LOOM_WS_BINARY, chunk, sizeof chunk);
        size_t q = loom_ws_queued(slow_ws);
        if (q > maxq)
            maxq = q;
        loom_run(loop, LOOM_RUN_NOWAIT);
    }
    CHECK(loom_ws_topics_skipped(topics) >= 10);
    CHECK(maxq <= HW + sizeof chunk + 16);
    CHECK_EQ(nerr, 0);
    /* The close policy: one publish on the strict set closes it. */
    CHECK_EQ(loom_ws_publish(strict, "fast", LOOM_WS_BINARY, chunk, sizeof chunk), 0);
    CHECK_EQ(loom_ws_topics_closed_slow(strict), 1);
    CHECK_EQ(nerr, 1);
    while (slow_ws != NULL)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    close(fd);
    /* Its subscriptions left with it. */
    CHECK_EQ(loom_ws_publish(topics, "fast", LOOM_WS_BINARY, "x", 1), 0);

    /* Everyone leaves; the topic empties. */
    for (int i = 0; i < NCLIENTS; i++)
        CHECK_OK(loom_ws_close(clients[i], 1000, NULL));
    while (nclient_close < NCLIENTS || nserver_close < NCLIENTS + 1)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(loom_ws_publish(topics, "room", LOOM_WS_TEXT, "x", 1), 0);
    loom_ws_topics_free(topics);
    loom_ws_topics_free(strict);
    loom_http_server_close(srv, 0, NULL);
    loom_timer_close(tick);
    CHECK_OK(loom_run(loop, LOOM_RUN_DEFAULT));
    test_loop_free_clean(loop);
    return 0;
}
