/* fuzz/fuzz_http_server.c - libFuzzer target for the HTTP server's connection
 * state machine, driven through loom's public API only.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_LIBLOOM
 *
 * One loop per backend (epoll, poll) and one server per configuration live
 * for the whole process; each input is one raw client connection (or more,
 * one after the other) on 127.0.0.1. The input is read from both ends:
 *   - byte 0 picks the configuration (backend, buffered or streamed bodies,
 *     small parser limits, a keep-alive request cap, how the input ends);
 *   - the bytes after it are the client's byte stream;
 *   - action bytes are taken from the end: send the next cut of the stream,
 *     run the loop, answer the oldest deferred request (respond, stream,
 *     release, pause or resume its body), half-close, or close (FIN or RST)
 *     and go on with a new connection. on_request takes an action byte too:
 *     answer now, stream now, release now, start a stream and defer it, or
 *     defer.
 * At the end every deferred request is answered or released (before or after
 * the client goes, as the configuration says), the client closes, and the
 * loop must settle back to the server alone: no request pending, no live
 * object left. What the client receives must parse as a sequence of
 * responses (loom's own response parser), in the order of the requests, with
 * the statuses the application gave. A hang is a finding (libFuzzer's
 * -timeout): after the client has closed, nothing may wait for a timer.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loom.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_http_server: %s:%d: %s\n", __FILE__, __LINE__, #c);              \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* FUZZ_TRACE=1 in the environment prints what an input does (to read a
 * reproducer). */
static int trace = -1;
#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace)                                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

/* Configuration byte. */
enum {
    CF_POLL = 1u << 0,      /* the poll backend instead of epoll */
    CF_STREAM = 1u << 1,    /* on_body: streamed request bodies */
    CF_SMALL = 1u << 2,     /* small parser limits, high water and client window */
    CF_KEEPALIVE = 1u << 3, /* max_keepalive_requests = 2 */
    CF_LATE = 1u << 4,      /* the client goes before the deferred answers */
    CF_RST = 1u << 5,       /* the last close is a reset */
    CF_SRVCLOSE = 1u << 6,  /* the server is closed (and made again) at the end */
    CF_FORCE = 1u << 7      /* ... with LOOM_HTTP_CLOSE_FORCE */
};
#define NSERVERS 16 /* CF_STREAM | CF_SMALL | CF_KEEPALIVE, per backend: 2 x 8 */

#define MAXSTEPS 64 /* actions per input: bounds its time */
#define MAXPEND  32
#define MAXFIFO  256
#define RBUF     (256 * 1024)

typedef struct {
    loom_http_req_t *req;
    int streaming; /* 1: a streamed answer runs; 2: its start said LOOM_ECLOSED */
    int closed;    /* on_close ran */
    int pause_body;
    int fifo; /* index in the answer order */
} pend_t;

typedef struct {
    loom_http_method_t method;
    int status; /* what the application answered; 0: nothing (yet) */
} fifo_t;

static struct {
    loom_loop_t *loops[2];
    loom_http_server_t *srv[NSERVERS];
    size_t srv_live[NSERVERS]; /* what each server counts in loom_loop_live() */
    size_t live[2];            /* the loops' live objects with only the servers */
    int closed_done;

    /* The current input. */
    const uint8_t *data;
    size_t front, back; /* stream bytes are [front, back); actions before back */
    unsigned cfg;
    int finishing;
    loom_loop_t *loop;

    pend_t pend[MAXPEND];
    int npend;

    int fd;       /* the raw client, -1 if none */
    int cport;    /* its local port */
    unsigned gen; /* connections made */
    fifo_t fifo[MAXFIFO];
    int nfifo, next; /* requests seen on this connection; next answer to check */
    char *rbuf;
    size_t rlen, rpos;
    int unchecked; /* a close-delimited body or an error answer: stop checking */
} g;

/* --- Input ------------------------------------------------------------------------------- */

static int action(uint8_t *a)
{
    if (g.back <= g.front)
        return 0;
    *a = g.data[--g.back];
    TRACE("action op %d arg %d\n", *a & 7, *a >> 3);
    return 1;
}

/* --- The client's side -------------------------------------------------------------------- */

/* Checks every complete response received so far on this connection. */
static void check_responses(void)
{
    while (!g.unchecked && g.rpos < g.rlen) {
        loom_http_response_t res;
        loom_http_header_t h[64];
        size_t nh = 64;
        const char *p = g.rbuf + g.rpos;
        size_t n = g.rlen - g.rpos;
        int r = loom_http_parse_response(p, n, 0, &res, h, &nh, NULL);
        if (r == LOOM_HTTP_INCOMPLETE)
            return;
        ASSERT(r > 0); /* the server only sends well-formed heads */
        if (res.status < 200) {
            ASSERT(res.status == 100);
            g.rpos += (size_t)r;
            continue;
        }
        loom_http_method_t m = LOOM_HTTP_METHOD_GET;
        int ours = g.next < g.nfifo && g.fifo[g.next].status == res.status;
        if (ours)
            m = g.fifo[g.next].method;
        loom_http_framing_t f;
        loom_http_response_framing(&res, m, &f);
        if (f.kind == LOOM_HTTP_BODY_UNTIL_CLOSE) {
            g.unchecked = 1;
            return;
        }
        loom_http_body_t b;
        loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
        ASSERT(loom_http_body_init(&b, &f, &lim) == 0);
        size_t pos = (size_t)r;
        int done = f.kind == LOOM_HTTP_BODY_NONE;
        while (!done) {
            loom_http_header_t tr[8];
            loom_http_body_out_t o = {.trailers = tr, .ntrailers = 8};
            int k = loom_http_body_parse(&b, p + pos, n - pos, &o);
            ASSERT(k >= 0); /* and well-formed bodies */
            pos += (size_t)k;
            done = o.done;
            if (k == 0 && o.data_len == 0 && !done)
                return; /* incomplete: wait for more */
        }
        g.rpos += pos;
        if (!ours) {
            /* An answer of loom's own (400, 413, ...): the connection's last. */
            ASSERT(res.status >= 400);
            g.unchecked = 1;
            return;
        }
        g.next++;
    }
}

/* Reads what the server sent (non-blocking). Returns 1 at eof or error. */
static int client_read(void)
{
    if (g.fd < 0)
        return 1;
    for (;;) {
        char tmp[16384];
        ssize_t r = recv(g.fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r > 0) {
            size_t k = (size_t)r;
            if (k > RBUF - g.rlen) {
                g.unchecked = 1; /* too much to keep: stop checking */
                k = RBUF - g.rlen;
            }
            TRACE("client read %zu\n", k);
            memcpy(g.rbuf + g.rlen, tmp, k);
            g.rlen += k;
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        check_responses();
        return 1;
    }
    check_responses();
    return 0;
}

static void client_close(int rst)
{
    if (g.fd < 0)
        return;
    client_read();
    TRACE("client %s\n", rst ? "reset" : "close");
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(g.fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(g.fd);
    g.fd = -1;
}

static int client_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT(fd >= 0);
    if (g.cfg & CF_SMALL) {
        /* A small window, so that the server's queue grows (high water,
         * on_drain, and reading paused while answers wait). */
        int sz = 2048;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    if (r != 0 && errno == EINTR) {
        /* libFuzzer's timer signal: the handshake goes on, wait for it. */
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t el = sizeof err;
        while (poll(&p, 1, -1) < 0 && errno == EINTR)
            ;
        r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0 ? 0 : -1;
        errno = err;
    }
    if (r != 0) {
        /* Out of ports or the like: not a finding; this input ends here. */
        fprintf(stderr, "fuzz_http_server: connect: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    socklen_t sl = sizeof sa;
    ASSERT(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
    g.cport = ntohs(sa.sin_port);
    g.gen++;
    g.fd = fd;
    g.nfifo = g.next = 0;
    g.rlen = g.rpos = 0;
    g.unchecked = 0;
    return 0;
}

/* Runs the loop without waiting, n times. Loopback delivers a send before it
 * returns, so one iteration sees it. Syscalls are most of the cost of an
 * input, so there are few: the client reads only in run_read(), before it
 * closes, and at the end (its receive buffer holds far more than an input
 * can make the server write). */
static void settle_nowait(int n)
{
    for (int i = 0; i < n; i++)
        ASSERT(loom_run(g.loop, LOOM_RUN_NOWAIT) >= 0);
}

static void run_read(int n)
{
    settle_nowait(n);
    client_read();
}

/* --- The application ----------------------------------------------------------------------- */

static const int statuses[8] = {200, 201, 204, 304, 404, 500, 301, 200};

static void pend_remove(int i)
{
    g.pend[i] = g.pend[--g.npend];
}

static int pend_find(loom_http_req_t *req)
{
    for (int i = 0; i < g.npend; i++)
        if (g.pend[i].req == req)
            return i;
    return -1;
}

/* A request of the current connection has data = its answer slot + 1 and
 * the connection's number; others have NULL. */
static void set_status(loom_http_req_t *req, int status)
{
    uintptr_t k = (uintptr_t)loom_http_req_data(req);
    if (k != 0 && k / (MAXFIFO + 1) == g.gen)
        g.fifo[k % (MAXFIFO + 1) - 1].status = status;
}

static void respond(loom_http_req_t *req, unsigned how)
{
    int status = statuses[how & 7];
    static const char body[] = "the quick brown fox jumps over the lazy dog";
    const char *const close_h[] = {"Connection", "close", "X-Fuzz", "a b", NULL};
    const char *const plain_h[] = {"Content-Type", "text/plain", NULL};
    size_t len = (how >> 3) % sizeof body;
    set_status(req, status);
    int r = loom_http_respond(req, status, (how & 0x40) ? close_h : plain_h, body, len);
    ASSERT(r == 0 || r == LOOM_ECLOSED);
}

static void stream_write(loom_http_req_t *req, unsigned how)
{
    static char buf[16384];
    size_t len = (size_t)(how % 4) * 5000 + (how & 7);
    memset(buf, 'a' + (int)(how % 26), len);
    int r = loom_http_response_write(req, buf, len);
    /* LOOM_ESTATE: past the Content-Length that stream_start() announced. */
    ASSERT(r == 0 || r == 1 || r == LOOM_ECLOSED || r == LOOM_ESTATE);
}

/* Starts a streamed answer: chunked (or close-delimited for HTTP/1.0), or
 * with a Content-Length of 10 that the writes below do not always match. */
static int stream_start(loom_http_req_t *req, unsigned how)
{ /* returns 1 if the body was written, 0 if not, -1 if the start said ECLOSED */
    const char *const cl_h[] = {"Content-Length", "10", NULL};
    int status = (how & 1) ? 200 : 202;
    set_status(req, status);
    int r = loom_http_response_start(req, status, (how & 2) ? cl_h : NULL);
    ASSERT(r == 0 || r == LOOM_ECLOSED);
    if (r < 0)
        return -1;
    if (how & 2) {
        r = loom_http_response_write(req, "0123456789", (how & 4) ? 10 : 4);
        ASSERT(r == 0 || r == 1 || r == LOOM_ECLOSED);
        return 1;
    }
    return 0;
}

static void stream_end(loom_http_req_t *req)
{
    int r = loom_http_response_end(req);
    ASSERT(r == 0 || r == LOOM_ECLOSED);
}

/* Exercises the accessors; checks the documented NUL terminations. */
static void inspect(loom_http_req_t *req)
{
    size_t len, n;
    const char *s = loom_http_req_method_str(req, &len);
    ASSERT(s && strlen(s) == len);
    s = loom_http_req_target(req, &len);
    ASSERT(s && strlen(s) == len);
    s = loom_http_req_query(req, &len);
    ASSERT(s && strlen(s) == len);
    s = loom_http_req_path(req, &len);
    ASSERT(s != NULL || len == 0);
    const loom_http_header_t *h = loom_http_req_headers(req, &n);
    for (size_t i = 0; i < n; i++)
        ASSERT(strlen(h[i].value) == h[i].value_len && strlen(h[i].name) == h[i].name_len);
    s = loom_http_req_header(req, "host", &len);
    ASSERT(s == NULL || strlen(s) == len);
    loom_http_req_body(req, &len);
    char buf[256];
    int r = loom_http_req_path_decoded(req, buf, sizeof buf);
    ASSERT(r == LOOM_ENOSPC || r == LOOM_EURL || (r >= 0 && strlen(buf) == (size_t)r));
    r = loom_http_req_query_param(req, "a", buf, sizeof buf);
    ASSERT(r == LOOM_ENOSPC || r == LOOM_EURL || r == LOOM_ENOENT || r >= 0);
    r = loom_http_req_format(req, buf, sizeof buf);
    ASSERT(r >= 0 && strlen(buf) == ((size_t)r < sizeof buf ? (size_t)r : sizeof buf - 1));
    ASSERT(loom_http_req_loop(req) == g.loop);
    ASSERT(loom_http_req_version(req) == 10 || loom_http_req_version(req) == 11);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    ASSERT(pend_find(req) < 0);
    TRACE("on_request %p\n", (void *)req);
    inspect(req);
    char name[64];
    int port = 0;
    int pr = loom_http_req_peer(req, name, sizeof name, &port);
    ASSERT(pr == 0 || pr == LOOM_ECLOSED);
    if (g.fd >= 0 && g.nfifo < MAXFIFO && pr == 0 && port == g.cport) {
        g.fifo[g.nfifo] = (fifo_t){loom_http_req_method(req), 0};
        g.nfifo++;
        loom_http_req_set_data(req, (void *)(uintptr_t)(g.gen * (MAXFIFO + 1) + (unsigned)g.nfifo));
    }
    uint8_t a = 0;
    if (g.finishing || !action(&a) || g.npend == MAXPEND) {
        respond(req, a >> 3);
        return;
    }
    unsigned arg = a >> 3;
    switch (a & 7) {
    case 0:
    case 1:
        respond(req, arg);
        return;
    case 2: /* stream now */
        if (stream_start(req, arg) == 0) {
            stream_write(req, arg);
            stream_write(req, arg >> 2);
        }
        stream_end(req);
        return;
    case 3: {
        int r = loom_http_req_release(req);
        ASSERT(r == 0);
        return;
    }
    case 4: /* start a stream, go on later */
        g.pend[g.npend++] = (pend_t){.req = req, .streaming = 1};
        if (stream_start(req, arg) < 0)
            g.pend[g.npend - 1].streaming = 2;
        return;
    case 5: /* defer, pausing a streamed body at its next piece */
        g.pend[g.npend++] = (pend_t){.req = req, .pause_body = 1};
        return;
    default: /* defer */
        g.pend[g.npend++] = (pend_t){.req = req};
        return;
    }
}

/* Finishes a deferred request: answered, or released. */
static void finish(int i, unsigned how)
{
    loom_http_req_t *req = g.pend[i].req;
    int streaming = g.pend[i].streaming;
    pend_remove(i);
    if (streaming == 1) {
        /* Release refuses a running stream; end it. */
        int r = loom_http_req_release(req);
        ASSERT(r == LOOM_ESTATE || r == 0);
        if (r == LOOM_ESTATE)
            stream_end(req);
    } else if (streaming == 2) {
        if (how & 1)
            stream_end(req);
        else
            ASSERT(loom_http_req_release(req) == 0);
    } else if ((how & 3) == 3) {
        ASSERT(loom_http_req_release(req) == 0);
    } else {
        respond(req, how >> 2);
    }
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    int i = pend_find(req);
    TRACE("on_close %p\n", (void *)req);
    ASSERT(i >= 0);            /* only unanswered requests get on_close */
    ASSERT(!g.pend[i].closed); /* once */
    ASSERT(loom_http_req_closed(req) == 1);
    g.pend[i].closed = 1;
    if (g.finishing)
        finish(i, 0);
}

static int on_body(loom_http_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)data;
    ASSERT(chunk != NULL || len == 0);
    int i = pend_find(req);
    if (i >= 0 && g.pend[i].pause_body && chunk != NULL) {
        g.pend[i].pause_body = 0;
        return LOOM_HTTP_PAUSE;
    }
    return 0;
}

/* An action on the oldest deferred request. */
static void act(unsigned arg)
{
    if (g.npend == 0)
        return;
    int i = 0;
    pend_t *p = &g.pend[i];
    if (p->streaming) {
        if (arg & 1)
            stream_write(p->req, arg >> 1);
        else
            finish(i, arg);
        return;
    }
    switch (arg & 3) {
    case 0: {
        int r = loom_http_req_resume(p->req);
        ASSERT(r == 0 || r == LOOM_ECLOSED || r == LOOM_ESTATE);
        break;
    }
    case 1: {
        int r = loom_http_req_pause(p->req);
        ASSERT(r == 0 || r == LOOM_ECLOSED || r == LOOM_ESTATE);
        break;
    }
    default:
        finish(i, arg >> 2);
        break;
    }
}

static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    int i = pend_find(req);
    TRACE("on_drain %p\n", (void *)req);
    ASSERT(i >= 0 && g.pend[i].streaming == 1); /* only a running stream drains */
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)ev;
    (void)data;
}

/* --- Servers ------------------------------------------------------------------------------ */

static void on_closed(loom_http_server_t *srv, void *data)
{
    (void)srv;
    (void)data;
    g.closed_done = 1;
}

static void server_make(int k)
{
    unsigned c = (unsigned)k;
    loom_http_server_opts o = {
        .on_event = on_event,
        .on_close = on_close,
        .on_drain = on_drain,
        .on_body = (c & 1) ? on_body : NULL,
        .high_water = (c & 2) ? 4096 : 0,
        .max_keepalive_requests = (c & 4) ? 2 : 0,
        .server_name = "fuzz",
        /* Nothing may wait for these while an input runs. */
        .header_timeout_ms = 20000,
        .idle_timeout_ms = 20000,
    };
    if (c & 2)
        o.limits = (loom_http_limits_t){
            .max_request_line = 64, .max_header_bytes = 256, .max_headers = 4, .max_body_size = 64};
    size_t before = loom_loop_live(g.loops[k >> 3]);
    ASSERT(before == g.live[k >> 3]);
    ASSERT(loom_http_server(g.loops[k >> 3], "127.0.0.1", 0, on_request, &o, &g.srv[k]) == 0);
    g.srv_live[k] = loom_loop_live(g.loops[k >> 3]) - before;
    g.live[k >> 3] += g.srv_live[k];
}

static void init_once(void)
{
    if (g.loops[0])
        return;
    trace = getenv("FUZZ_TRACE") != NULL;
    const char *names[2] = {"epoll", "poll"};
    for (int i = 0; i < 2; i++) {
        ASSERT(loom_loop_new(&g.loops[i], &(loom_loop_opts){.backend = names[i]}) == 0);
        g.live[i] = loom_loop_live(g.loops[i]);
    }
    g.rbuf = malloc(RBUF);
    g.fd = -1;
}

/* Runs the loop until the server's side is back to what it was. */
static void settle_wait(int k)
{
    int guard = 0;
    for (;;) {
        client_read();
        if (loom_loop_live(g.loop) == g.live[k >> 3] && g.npend == 0)
            break;
        ASSERT(++guard < 100000);
        ASSERT(loom_run(g.loop, LOOM_RUN_ONCE) >= 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    init_once();
    g.cfg = data[0];
    g.data = data;
    g.front = 1;
    g.back = size;
    g.finishing = 0;
    g.npend = 0;
    int k = ((g.cfg & CF_POLL) ? 8 : 0) | (int)((g.cfg >> 1) & 7);
    g.loop = g.loops[k >> 3];
    if (g.srv[k] == NULL)
        server_make(k);
    int port = loom_http_server_port(g.srv[k]);
    ASSERT(port > 0);
    if (client_open(port) < 0)
        return 0;

    uint8_t a;
    int reconnects = 0;
    for (int steps = 0; steps < MAXSTEPS && action(&a); steps++) {
        unsigned arg = a >> 3;
        switch (a & 7) {
        case 0:
        case 1:
        case 2: { /* send the next cut */
            size_t n = arg < 16 ? arg + 1 : (arg - 15) * 64;
            if (n > g.back - g.front)
                n = g.back - g.front;
            if (g.fd >= 0 && n > 0) {
                ssize_t r = send(g.fd, data + g.front, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                TRACE("client sent %zd of %zu\n", r, n);
                if (r > 0)
                    g.front += (size_t)r;
            }
            settle_nowait(1);
            break;
        }
        case 3:
            run_read(1 + (arg & 1));
            break;
        case 4:
        case 5:
            act(arg);
            settle_nowait(1);
            break;
        case 6: /* half-close */
            if (g.fd >= 0)
                shutdown(g.fd, SHUT_WR);
            settle_nowait(2);
            break;
        default: /* close, and go on with a new connection (twice at most) */
            if (++reconnects > 2) {
                run_read(1);
                break;
            }
            client_close(arg & 1);
            settle_nowait(2);
            if (client_open(port) < 0)
                goto out;
            break;
        }
    }
    /* Whatever of the stream no action sent. */
    if (g.fd >= 0 && g.back > g.front)
        send(g.fd, data + g.front, g.back - g.front, MSG_NOSIGNAL | MSG_DONTWAIT);
    settle_nowait(2);

out:
    g.finishing = 1;
    if (g.cfg & CF_LATE) {
        client_close(g.cfg & CF_RST);
        settle_nowait(2);
    }
    while (g.npend > 0)
        finish(0, 0);
    settle_nowait(2);
    if (g.cfg & CF_SRVCLOSE) {
        g.closed_done = 0;
        ASSERT(loom_http_server_close(g.srv[k], (g.cfg & CF_FORCE) ? LOOM_HTTP_CLOSE_FORCE : 0,
                                      on_closed) == 0);
        settle_nowait(2);
    }
    client_close(g.cfg & CF_RST);
    if (g.cfg & CF_SRVCLOSE) {
        for (int guard = 0; !g.closed_done; guard++) {
            ASSERT(guard < 100000);
            ASSERT(loom_run(g.loop, LOOM_RUN_ONCE) >= 0);
        }
        ASSERT(loom_run(g.loop, LOOM_RUN_NOWAIT) >= 0);
        ASSERT(g.npend == 0);
        g.live[k >> 3] -= g.srv_live[k];
        ASSERT(loom_loop_live(g.loop) == g.live[k >> 3]); /* nothing left of it */
        g.srv[k] = NULL;
        server_make(k);
    }
    settle_wait(k);
    return 0;
}
