/* test_ws_close: the close paths and their races, loom client against loom
 * server in one loop.
 * 1. Both sides call loom_ws_close() in the same iteration: each on_close
 *    runs once, with the peer's code.
 * 2. Reentrant closes: the server closes from on_message, then calls send
 *    and close (LOOM_ECLOSED each); the client aborts from on_open of a
 *    second connection (1006 on both sides; the server's event names the
 *    client once: "websocket 127.0.0.1:PORT: end of file"; and the same
 *    with a reset: "...: connection reset by peer").
 * 3. The close timeout: the server stops reading (pause), the client's
 *    close waits close_timeout_ms, then ends with its own code.
 * 4. Keepalive: a server pinging every 20 ms keeps a live client; a paused
 *    client never answers, the server fails it (websocket error event
 *    "keepalive") and both report 1006.
 * 5. Streaming: on_fragment gets every frame of a fragmented message with
 *    fin on the last; pause/resume from on_fragment holds the rest.
 * 6. loom_loop_free() with connections open: on_close runs for each.
 * Every loop ends clean. */
#include "ws_test.h"

static loom_http_server_t *srv;
static int port;
static int s_close, c_close, s_code[16], c_code[16], ns_err;
static loom_ws_t *s_last, *c_ws;
static int mode;

static void s_on_message(loom_ws_t *ws, loom_ws_type_t t, const char *m, size_t n, void *d)
{
    (void)d;
    if (mode == 2 && n == 4 && memcmp(m, "quit", 4) == 0) {
        CHECK_OK(loom_ws_close(ws, 4000, "from on_message"));
        CHECK_EQ(loom_ws_send(ws, LOOM_WS_TEXT, "x", 1), LOOM_ECLOSED);
        CHECK_EQ(loom_ws_close(ws, 1000, NULL), LOOM_ECLOSED);
        CHECK_EQ(loom_ws_close(ws, 999, NULL), LOOM_ECLOSED);
        return;
    }
    if (mode == 5) {
        CHECK(loom_ws_send_begin(ws, t, m, 4) >= 0);
        CHECK(loom_ws_send_cont(ws, m + 4, 2) >= 0);
        CHECK(loom_ws_send_end(ws, m + 6, n - 6) >= 0);
        return;
    }
    CHECK(loom_ws_send(ws, t, m, n) >= 0);
}

static char s_sock_msg[512]; /* the server's last socket event */
static int s_sock_events, c_port;

static void s_on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind != LOOM_EV_WS_ERROR) {
        s_sock_events++;
        snprintf(s_sock_msg, sizeof s_sock_msg, "%s", ev->msg);
    }
    if (ev->kind == LOOM_EV_WS_ERROR) {
        CHECK(strstr(ev->msg, "keepalive") != NULL);
        CHECK_EQ(ev->code, LOOM_ETIMEDOUT); /* a timeout, not a protocol error */
        ns_err++;
    }
}

static void s_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)ws, (void)r, (void)rl, (void)d;
    CHECK(s_close < 16);
    s_code[s_close++] = code;
    if (ws == s_last)
        s_last = NULL;
}

static loom_ws_opts s_opts;

static void on_request(loom_http_req_t *req, void *d)
{
    (void)d;
    CHECK_OK(loom_ws_accept(req, &s_opts, &s_last));
}

static void c_on_close(loom_ws_t *ws, int code, const char *r, size_t rl, void *d)
{
    (void)r, (void)rl, (void)d;
    CHECK(c_close < 16);
    c_code[c_close++] = code;
    if (ws == c_ws)
        c_ws = NULL;
}

static int c_opened;
static void c_on_open(loom_ws_t *ws, void *d)
{
    (void)d;
    c_opened++;
    char ip[64];
    CHECK_OK(loom_socket_local_name(loom_ws_socket(ws), ip, sizeof ip, &c_port));
    if (mode == 23) {
        /* A reset (an abort sends one only with bytes queued). */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        CHECK(setsockopt(loom_socket_fd(loom_ws_socket(ws)), SOL_SOCKET, SO_LINGER, &lg,
                         sizeof lg) == 0);
    }
    if (mode == 22 || mode == 23)
        CHECK_OK(loom_ws_abort(ws));
}

static void c_noop(loom_ws_t *ws, loom_ws_type_t t, const char *m, size_t n, void *d)
{
    (void)ws, (void)t, (void)m, (void)n, (void)d;
}

/* Connects a client with `o` and runs until it is open (or closed). */
static loom_ws_t *connect_client(loom_loop_t *loop, loom_ws_opts o)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    o.on_open = c_on_open;
    o.on_close = c_on_close;
    if (o.on_message == NULL && o.on_fragment == NULL)
        o.on_message = c_noop;
    int opened = c_opened, closed = c_close;
    CHECK_OK(loom_ws_connect(loop, url, &o, &c_ws));
    loom_ws_t *ws = c_ws;
    while (c_opened == opened && c_close == closed)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    return ws;
}

static void wait_closes(loom_loop_t *loop, int s, int c)
{
    while (s_close < s || c_close < c)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(s_close, s);
    CHECK_EQ(c_close, c);
}

/* --- 5. streaming ------------------------------------------------------------ */

static int frag_n, frag_fin, frag_paused;
static char frag_buf[64];
static size_t frag_len;
static loom_timer_t *resume_t;

static void on_resume(loom_timer_t *t, void *d)
{
    (void)t;
    CHECK_OK(loom_ws_resume(d));
}

static void c_on_fragment(loom_ws_t *ws, loom_ws_type_t t, const char *p, size_t n, bool fin,
                          void *d)
{
    (void)d;
    CHECK(t == LOOM_WS_TEXT);
    CHECK(frag_len + n < sizeof frag_buf);
    memcpy(frag_buf + frag_len, p, n);
    frag_len += n;
    frag_n++;
    if (fin)
        frag_fin++;
    if (frag_n == 1) {
        /* Hold the rest for a while: nothing arrives while paused. */
        CHECK_OK(loom_ws_pause(ws));
        frag_paused = 1;
        CHECK_OK(loom_timer_start(resume_t, 30, 0));
    } else
        CHECK(!frag_paused || frag_n > 1);
}

static void on_resume_mark(loom_timer_t *t, void *d)
{
    frag_paused = 0;
    on_resume(t, d);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    loom_loop_t *loop = test_loop_new();
    loom_timer_t *tick = ws_ticker(loop);
    s_opts = (loom_ws_opts){.on_message = s_on_message,
                            .on_close = s_on_close,
                            .on_event = s_on_event,
                            .close_timeout_ms = 100};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, NULL, &srv));
    port = loom_http_server_port(srv);

    /* 1. Simultaneous closes. */
    loom_ws_t *c = connect_client(loop, (loom_ws_opts){0});
    CHECK(s_last != NULL);
    CHECK_OK(loom_ws_close(c, 4001, "client"));
    CHECK_OK(loom_ws_close(s_last, 4002, "server"));
    CHECK_EQ(loom_ws_send(c, LOOM_WS_TEXT, "x", 1), LOOM_ECLOSED);
    CHECK(loom_ws_closed(c));
    wait_closes(loop, 1, 1);
    CHECK_EQ(s_code[0], 4001);
    CHECK_EQ(c_code[0], 4002);

    /* 2. Reentrant closes. */
    mode = 2;
    c = connect_client(loop, (loom_ws_opts){0});
    CHECK(loom_ws_send(c, LOOM_WS_TEXT, "quit", 4) >= 0);
    wait_closes(loop, 2, 2);
    CHECK_EQ(s_code[1], 4000); /* the client's answer */
    CHECK_EQ(c_code[1], 4000);
    mode = 22;
    s_sock_events = 0;
    connect_client(loop, (loom_ws_opts){0});
    wait_closes(loop, 3, 3);
    CHECK_EQ(c_code[2], 1006);
    CHECK_EQ(s_code[2], 1006);
    /* The server hears the client's end once, naming the client once. */
    char want[128];
    snprintf(want, sizeof want, "websocket 127.0.0.1:%d: end of file", c_port);
    if (strcmp(s_sock_msg, want) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", s_sock_msg, want);
    CHECK_STR(s_sock_msg, want);
    CHECK_EQ(s_sock_events, 1);
    /* And a reset alike. */
    mode = 23;
    s_sock_events = 0;
    connect_client(loop, (loom_ws_opts){0});
    wait_closes(loop, 4, 4);
    CHECK_EQ(c_code[3], 1006);
    CHECK_EQ(s_code[3], 1006);
    snprintf(want, sizeof want, "websocket 127.0.0.1:%d: connection reset by peer", c_port);
    if (strcmp(s_sock_msg, want) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", s_sock_msg, want);
    CHECK_STR(s_sock_msg, want);
    CHECK_EQ(s_sock_events, 1);
    mode = 0;

    /* 3. The close timeout: the server does not read. */
    c = connect_client(loop, (loom_ws_opts){.close_timeout_ms = 100});
    CHECK_OK(loom_ws_pause(s_last));
    CHECK_OK(loom_ws_close(c, 4003, NULL));
    while (c_close < 5)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(c_code[4], 4003);
    CHECK_OK(loom_ws_resume(s_last));
    wait_closes(loop, 5, 5);

    /* 4. Keepalive. */
    s_opts.ping_interval_ms = 20;
    c = connect_client(loop, (loom_ws_opts){0});
    uint64_t t0 = loom_now(loop);
    while (loom_now(loop) - t0 < 120) /* six intervals: pongs keep it */
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(s_close, 5);
    CHECK_EQ(ns_err, 0);
    CHECK_OK(loom_ws_pause(c)); /* no more pongs */
    while (s_close < 6)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(ns_err, 1);
    CHECK_EQ(s_code[5], 1006);
    CHECK_OK(loom_ws_resume(c));
    wait_closes(loop, 6, 6);
    s_opts.ping_interval_ms = 0;

    /* 5. Streaming with pause and resume. */
    CHECK_OK(loom_timer_new(loop, &resume_t, on_resume_mark, NULL));
    mode = 5; /* the server echoes in three frames */
    c = connect_client(loop, (loom_ws_opts){.on_fragment = c_on_fragment});
    loom_timer_set_data(resume_t, c);
    CHECK(loom_ws_send_begin(c, LOOM_WS_TEXT, "stre", 4) >= 0);
    CHECK(loom_ws_send_cont(c, "am", 2) >= 0);
    CHECK(loom_ws_send_end(c, "ing", 3) >= 0);
    CHECK_EQ(loom_ws_send_end(c, "", 0), LOOM_ESTATE);
    CHECK_EQ(loom_ws_send_cont(c, "", 0), LOOM_ESTATE);
    while (frag_fin == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(frag_n, 3);
    CHECK(frag_len == 9 && memcmp(frag_buf, "streaming", 9) == 0);
    mode = 0;
    CHECK_OK(loom_ws_close(c, 1000, NULL));
    wait_closes(loop, 7, 7);
    loom_timer_close(resume_t);

    /* 6. Connections still open when the loop is freed. */
    connect_client(loop, (loom_ws_opts){0});
    connect_client(loop, (loom_ws_opts){0});
    loom_timer_close(tick);
    loom_http_server_close(srv, 0, NULL);
    loom_loop_free(loop);
    CHECK_EQ(c_close, 9);
    CHECK_EQ(s_close, 9);
    return 0;
}
