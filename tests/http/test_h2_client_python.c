/* test_h2_client_python: loom's client speaking h2c with prior knowledge
 * (LOOM_HTTP_VERSION_2 on http://) to a scripted Python `h2` server
 * (/usr/bin/python3, Debian python3-h2) for the protocol cases: 20 parallel
 * streams over ONE connection (the server counts its connections), a
 * streamed upload (known length and length-less, with a source that is
 * sometimes empty), a redirect followed, RST_STREAM from the server (an
 * error naming the host, the connection stays), first byte, total and
 * idle timeouts per stream and a cancel (RST_STREAM CANCEL, the connection stays), a paused
 * stream whose window stalls while the connection serves others, GOAWAY
 * mid-transfer (the stream under last-stream-id completes, those above are
 * retried on a new connection), GOAWAY on an idle connection, and a bad frame (a protocol error
 * naming the host). Skipped without python3-h2. */
#include "py_test.h"

static const char *script =
    "import socket, sys, threading\n"
    "try:\n"
    "    import h2.connection, h2.config, h2.events, h2.errors\n"
    "except ImportError:\n"
    "    print(0, flush=True); sys.exit(0)\n"
    "conns = [0]\n"
    "lock = threading.Lock()\n"
    "def serve(sock):\n"
    "    with lock: conns[0] += 1\n"
    "    c = h2.connection.H2Connection(config=h2.config.H2Configuration(\n"
    "        client_side=False, header_encoding='utf-8'))\n"
    "    c.initiate_connection(); sock.sendall(c.data_to_send())\n"
    "    heads, bodies, pending = {}, {}, {}\n"
    "    gone = [False]\n"
    "    def flush():\n"
    "        d = c.data_to_send()\n"
    "        if d: sock.sendall(d)\n"
    "    def pump():\n"
    "        for sid in list(pending):\n"
    "            data = pending[sid]\n"
    "            try:\n"
    "                while data:\n"
    "                    w = min(c.local_flow_control_window(sid), c.max_outbound_frame_size,\n"
    "                            len(data))\n"
    "                    if w <= 0: break\n"
    "                    c.send_data(sid, data[:w]); data = data[w:]\n"
    "            except Exception:\n"
    "                del pending[sid]; continue\n"
    "            if data: pending[sid] = data\n"
    "            else: c.end_stream(sid); del pending[sid]\n"
    "        flush()\n"
    "    def respond(sid, status, body, extra=()):\n"
    "        c.send_headers(sid, [(':status', str(status)), ('content-length', str(len(body)))]\n"
    "                       + list(extra))\n"
    "        pending[sid] = body; pump()\n"
    "    while True:\n"
    "        try: data = sock.recv(65536)\n"
    "        except OSError: break\n"
    "        if not data: break\n"
    "        for ev in c.receive_data(data):\n"
    "            if isinstance(ev, h2.events.RequestReceived):\n"
    "                h = dict(ev.headers); sid = ev.stream_id; p = h[':path']\n"
    "                heads[sid] = h; bodies[sid] = b''\n"
    "                if gone[0]: continue\n"
    "                if p == '/goaway':\n"
    "                    c.send_headers(sid, [(':status', '200'), ('content-length', '200000')])\n"
    "                    c.send_data(sid, b'g' * 16384); flush()\n"
    "                    sock.sendall(b'\\x00\\x00\\x08\\x07\\x00\\x00\\x00\\x00\\x00'\n"
    "                                 + sid.to_bytes(4, 'big') + b'\\x00' * 4)\n"
    "                    gone[0] = True; pending[sid] = b'g' * (200000 - 16384); pump()\n"
    "                elif p == '/rst': c.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)\n"
    "                elif p == '/bad':\n"
    "                    flush(); sock.sendall(b'\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00X')\n"
    "                elif p == '/half':\n"
    "                    c.send_headers(sid, [(':status', '200'), ('content-length', '100')])\n"
    "                    c.send_data(sid, b'h' * 10); flush()\n"
    "                elif p == '/idlegoaway':\n"
    "                    respond(sid, 200, b'bye')\n"
    "                    sock.sendall(b'\\x00\\x00\\x08\\x07\\x00\\x00\\x00\\x00\\x00'\n"
    "                                 + sid.to_bytes(4, 'big') + b'\\x00' * 4)\n"
    "                elif p == '/count': respond(sid, 200, str(conns[0]).encode())\n"
    "                elif p == '/big': respond(sid, 200, b'b' * (4 << 20))\n"
    "                elif p == '/redir': respond(sid, 302, b'moved', [('location', '/echo?r')])\n"
    "            elif isinstance(ev, h2.events.DataReceived):\n"
    "                bodies[ev.stream_id] = bodies.get(ev.stream_id, b'') + ev.data\n"
    "                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)\n"
    "            elif isinstance(ev, h2.events.StreamEnded):\n"
    "                h = heads.get(ev.stream_id)\n"
    "                if h and h[':path'].startswith('/echo') and not gone[0]:\n"
    "                    respond(ev.stream_id, 200, bodies[ev.stream_id],\n"
    "                            [('x-method', h[':method']), ('x-path', h[':path']),\n"
    "                             ('x-cl', h.get('content-length', '-'))])\n"
    "            elif isinstance(ev, h2.events.WindowUpdated): pump()\n"
    "        flush(); pump()\n"
    "        if gone[0] and not pending: break\n"
    "    sock.close()\n"
    "ls = socket.socket(); ls.bind(('127.0.0.1', 0)); ls.listen(16)\n"
    "print(ls.getsockname()[1], flush=True)\n"
    "while True:\n"
    "    s, _ = ls.accept()\n"
    "    threading.Thread(target=serve, args=(s,), daemon=True).start()\n";

static int port;
static loom_loop_t *loop;

typedef struct {
    hc_result r;
    loom_http_client_req_t *req;
    int version;
    uint64_t got;
    int paused;
    /* upload source */
    size_t up_total, up_sent;
    int up_tick;
} h2r;

static void on_resp(loom_http_client_req_t *req, const loom_http_client_response_t *res, void *d)
{
    h2r *h = d;
    h->version = loom_http_client_response_version(res);
    hc_on_response(req, res, &h->r);
}

static void on_ev(const loom_event_t *ev, void *d)
{
    hc_on_event(ev, &((h2r *)d)->r);
}

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *d)
{
    (void)req;
    (void)chunk;
    h2r *h = d;
    h->got += len;
    if (!h->paused && h->got >= 100000) {
        h->paused = 1;
        return LOOM_HTTP_CLIENT_PAUSE;
    }
    return 0;
}

static void noop_cb(loom_timer_t *t, void *d)
{
    (void)t;
    (void)d;
}

static void ready_cb(loom_timer_t *t, void *d)
{
    loom_timer_close(t);
    (void)loom_http_client_body_ready(((h2r *)d)->req);
}

/* 64 KiB pieces of a pattern; every third call has nothing yet (a timer
 * makes it ready). */
static ssize_t source(loom_http_client_req_t *req, char *buf, size_t size, void *d)
{
    (void)req;
    h2r *h = d;
    if (h->up_sent == h->up_total)
        return 0;
    if (++h->up_tick % 3 == 0) {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loop, &t, ready_cb, h));
        CHECK_OK(loom_timer_start(t, 1, 0));
        return LOOM_EAGAIN;
    }
    size_t n = h->up_total - h->up_sent;
    if (n > size)
        n = size;
    if (n > 65536)
        n = 65536;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)('a' + (h->up_sent + i) % 26);
    h->up_sent += n;
    return (ssize_t)n;
}

static void start(const char *path, h2r *h, loom_http_request_opts o)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    memset(&h->r, 0, sizeof h->r);
    h->r.loop = loop;
    h->got = 0;
    o.version = LOOM_HTTP_VERSION_2;
    o.on_response = on_resp;
    o.on_event = on_ev;
    o.data = h;
    CHECK_OK(loom_http_request(loop, url, &o, &h->req));
}

static void get(const char *path, h2r *h, loom_http_request_opts o)
{
    start(path, h, o);
    hc_run_until(loop, &h->r.done, 10000);
    CHECK(h->r.done != 0);
}

static int count_conns(void)
{
    h2r h = {0};
    get("/count", &h, (loom_http_request_opts){0});
    CHECK_EQ(h.r.done, 1);
    CHECK_EQ(h.version, 20);
    int n = atoi(h.r.body);
    hc_result_free(&h.r);
    return n;
}

int main(void)
{
    test_timeout(60);
    port = py_start(script, NULL, NULL);
    loop = test_loop_new();
    static h2r h[20];
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);

    /* 20 parallel streams: one connection. */
    for (int i = 0; i < 20; i++) {
        memset(&h[i], 0, sizeof h[i]);
        start(i % 2 ? "/echo?x" : "/echo", &h[i], (loom_http_request_opts){0});
    }
    for (int i = 0; i < 20; i++)
        hc_run_until(loop, &h[i].r.done, 10000);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(h[i].r.done, 1);
        CHECK_EQ(h[i].r.status, 200);
        CHECK_EQ(h[i].version, 20);
        CHECK(strstr(h[i].r.headers, "x-method: GET\n") != NULL);
        CHECK(strstr(h[i].r.headers, i % 2 ? "x-path: /echo?x\n" : "x-path: /echo\n") != NULL);
        hc_result_free(&h[i].r);
    }
    CHECK_EQ(count_conns(), 1);

    /* Streamed uploads: a known length (content-length sent) and a
     * length-less one (no content-length: DATA frames until END_STREAM). */
    for (int k = 0; k < 2; k++) {
        memset(&h[0], 0, sizeof h[0]);
        h[0].up_total = 300000;
        get("/echo", &h[0],
            (loom_http_request_opts){
                .method = "PUT", .on_body_source = source, .body_length = k == 0 ? 300000 : -1});
        CHECK_EQ(h[0].r.done, 1);
        CHECK_EQ(h[0].r.body_len, 300000);
        for (size_t i = 0; i < 300000; i++)
            CHECK_EQ(h[0].r.body[i], (char)('a' + i % 26));
        CHECK(strstr(h[0].r.headers, "x-method: PUT\n") != NULL);
        CHECK(strstr(h[0].r.headers, k == 0 ? "x-cl: 300000\n" : "x-cl: -\n") != NULL);
        hc_result_free(&h[0].r);
    }
    /* A buffer body. */
    memset(&h[0], 0, sizeof h[0]);
    get("/echo", &h[0], (loom_http_request_opts){.body = "hello h2", .body_len = 8});
    CHECK_EQ(h[0].r.done, 1);
    CHECK_STR(h[0].r.body, "hello h2");
    CHECK(strstr(h[0].r.headers, "x-method: POST\n") != NULL);
    hc_result_free(&h[0].r);

    /* A redirect, followed on the same connection. */
    get("/redir", &h[0], (loom_http_request_opts){.follow_redirects = true});
    CHECK_EQ(h[0].r.done, 1);
    CHECK_EQ(h[0].r.status, 200);
    CHECK_EQ(h[0].r.redirects, 1);
    CHECK(strstr(h[0].r.headers, "x-path: /echo?r\n") != NULL);
    hc_result_free(&h[0].r);

    /* RST_STREAM from the server: an error naming the host. */
    get("/rst", &h[0], (loom_http_request_opts){0});
    CHECK_EQ(h[0].r.done, 2);
    CHECK_EQ(h[0].r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK(strstr(h[0].r.msg, where) != NULL);
    CHECK(strstr(h[0].r.msg, "INTERNAL_ERROR") != NULL);
    hc_result_free(&h[0].r);

    /* No answer: the stream's first byte timeout; a cancel. */
    get("/never", &h[0], (loom_http_request_opts){.first_byte_timeout_ms = 100});
    CHECK_EQ(h[0].r.done, 2);
    CHECK_EQ(h[0].r.ev_kind, LOOM_EV_HTTP_TIMEOUT);
    CHECK(strstr(h[0].r.msg, where) != NULL);
    hc_result_free(&h[0].r);
    get("/never", &h[0], (loom_http_request_opts){.total_timeout_ms = 100});
    CHECK_EQ(h[0].r.done, 2);
    CHECK_EQ(h[0].r.ev_kind, LOOM_EV_HTTP_TIMEOUT);
    CHECK(strstr(h[0].r.msg, "total timeout") != NULL);
    hc_result_free(&h[0].r);
    get("/half", &h[0], (loom_http_request_opts){.idle_timeout_ms = 100});
    CHECK_EQ(h[0].r.done, 2);
    CHECK_EQ(h[0].r.ev_kind, LOOM_EV_HTTP_TIMEOUT);
    CHECK(strstr(h[0].r.msg, "idle timeout") != NULL);
    CHECK(strstr(h[0].r.msg, where) != NULL);
    hc_result_free(&h[0].r);
    start("/never", &h[0], (loom_http_request_opts){0});
    for (int i = 0; i < 5; i++)
        loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_OK(loom_http_client_cancel(h[0].req));
    CHECK_EQ(h[0].r.done, 0);

    /* A paused stream: its window runs out; the connection serves others. */
    memset(&h[1], 0, sizeof h[1]);
    start("/big", &h[1], (loom_http_request_opts){.on_body = on_body});
    loom_update_time(loop);
    uint64_t end = loom_now(loop) + 10000;
    while (!h[1].paused && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(h[1].paused);
    uint64_t at = h[1].got;
    CHECK_EQ(count_conns(), 1);
    CHECK_EQ(h[1].got, at);
    CHECK_OK(loom_http_client_resume(h[1].req));
    hc_run_until(loop, &h[1].r.done, 10000);
    CHECK_EQ(h[1].r.done, 1);
    CHECK_EQ(h[1].got, 4u << 20);
    hc_result_free(&h[1].r);
    CHECK_EQ(count_conns(), 1); /* the timeout, cancel and reset kept it */

    /* GOAWAY mid-transfer: /goaway (stream under last-stream-id) completes
     * its 200000 bytes; the 5 requests sent with it are retried on a new
     * connection. */
    loom_http_client_stats_t s0, s1;
    loom_http_client_stats(loop, &s0);
    for (int i = 0; i < 6; i++) {
        memset(&h[i], 0, sizeof h[i]);
        start(i == 0 ? "/goaway" : "/echo", &h[i], (loom_http_request_opts){0});
    }
    for (int i = 0; i < 6; i++)
        hc_run_until(loop, &h[i].r.done, 10000);
    for (int i = 0; i < 6; i++) {
        if (h[i].r.done != 1)
            fprintf(stderr, "%d: %s\n", i, h[i].r.msg);
        CHECK_EQ(h[i].r.done, 1);
        CHECK_EQ(h[i].r.status, 200);
        CHECK_EQ(h[i].r.body_len, i == 0 ? 200000u : 0u);
        hc_result_free(&h[i].r);
    }
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.retries - s0.retries, 5);
    CHECK_EQ(count_conns(), 2);

    /* GOAWAY right after the last answer, the connection idle: it leaves
     * the pool at once; the next request opens a new one (no retry). */
    loom_http_client_stats(loop, &s0);
    get("/idlegoaway", &h[0], (loom_http_request_opts){0});
    CHECK_EQ(h[0].r.done, 1);
    CHECK_STR(h[0].r.body, "bye");
    hc_result_free(&h[0].r);
    /* The server keeps the socket open: only the GOAWAY can close it. A
     * timer keeps the loop polling (idle connections do not). */
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, noop_cb, NULL));
    CHECK_OK(loom_timer_start(tick, 10, 10));
    loom_http_client_stats(loop, &s1);
    loom_update_time(loop);
    uint64_t until = loom_now(loop) + 5000;
    while (s1.open > 0 && loom_now(loop) < until) {
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        loom_http_client_stats(loop, &s1);
    }
    loom_timer_close(tick);
    CHECK_EQ(s1.open, 0);
    CHECK_EQ(count_conns(), 3);
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.retries, s0.retries);

    /* A bad frame (DATA on stream 0): a protocol error naming the host. */
    get("/bad", &h[0], (loom_http_request_opts){0});
    CHECK_EQ(h[0].r.done, 2);
    CHECK_EQ(h[0].r.ev_kind, LOOM_EV_HTTP_ERROR);
    CHECK(strstr(h[0].r.msg, where) != NULL);
    CHECK(strstr(h[0].r.msg, "PROTOCOL_ERROR") != NULL);
    hc_result_free(&h[0].r);

    hc_loop_done(loop);
    printf("h2 client python: ok\n");
    return 0;
}
