/* fuzz/fuzz_http_client.c - libFuzzer target for the HTTP client's response
 * handling: a hostile server's bytes, driven through loom's public API only.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_LIBLOOM
 *
 * One loop per backend (epoll, poll) lives for the whole process, with a
 * raw listening socket on 127.0.0.1 watched by a loom_io watcher (the fake
 * server). Each input starts a loom_http_request() to it; the fake server
 * accepts, reads what the client sends (every request head must parse with
 * loom's own parser) and writes the input's bytes to it in cuts. The input:
 *   - byte 0 picks the configuration (backend, buffered or streamed
 *     response, method and request body, small limits, redirects,
 *     keep-alive, how the server closes);
 *   - the bytes after it are what the server sends: status lines, headers,
 *     chunked bodies, 1xx floods, Content-Length lies, ...;
 *   - action bytes are taken from the end: send the next cut, run the loop,
 *     start a second request (the pool has one connection per host and
 *     pipelines two requests: it waits, is pipelined, or reuses the pooled
 *     connection), pause or resume a streamed response, cancel, half-close,
 *     or close (FIN or reset) the connection (later bytes go to the next one
 *     the client opens: a retry or a redirect).
 * At the end the server closes every connection and the request must end:
 * exactly one of on_response and an error event (none after a cancel), with
 * a response that agrees with itself (a final status; with a single valid
 * Content-Length and no Transfer-Encoding, a body of exactly that length).
 * Then the pool is emptied and the loop must hold nothing but the watcher:
 * no live object, no open client connection. A hang is a finding (the
 * requests have no timeouts: a closed connection must end them).
 *
 * Host names in redirects: c-ares would send queries to the system's name
 * server thousands of times a second, so this target interposes
 * ares_getaddrinfo() and answers ENOTFOUND at once for anything but numeric
 * hosts and "localhost" (those go to the real one, which needs no network),
 * and connect(), which refuses every address but loopback at once.
 */
#include <ares.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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
            fprintf(stderr, "fuzz_http_client: %s:%d: %s\n", __FILE__, __LINE__, #c);              \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

/* FUZZ_TRACE=1 in the environment prints what an input does. */
static int trace = -1;
#define TRACE(...)                                                                                 \
    do {                                                                                           \
        if (trace)                                                                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
    } while (0)

/* Configuration byte. */
enum {
    CF_POLL = 1u << 0,     /* the poll backend instead of epoll */
    CF_STREAM = 1u << 1,   /* on_headers + on_body */
    CF_METHOD = 3u << 2,   /* GET, HEAD, POST with a buffer, PUT streamed */
    CF_SMALL = 1u << 4,    /* small limits (and a chunked upload for PUT) */
    CF_REDIRECT = 1u << 5, /* follow_redirects, at most 2 */
    CF_KEEP = 1u << 6,     /* keep-alive (else no_keepalive) */
    CF_RST = 1u << 7       /* the server's last close is a reset */
};

#define MAXSTEPS 64
#define MAXCONNS 16
#define CBUF     (64 * 1024)

typedef struct {
    int fd;
    char *buf; /* what the client sent, for the request check */
    size_t len, pos;
    int unchecked;
} conn_t;

typedef struct {
    loom_http_client_req_t *req;
    int ended, headers, paused, cancelled;
    uint64_t body;
    int64_t cl;
    int upload_sent;
} rq_t;

static struct {
    loom_loop_t *loops[2];
    int lfd[2], port[2];
    loom_io_t *io[2];
    size_t live[2]; /* live objects with just the watcher */

    /* The current input. */
    const uint8_t *data;
    size_t front, back;
    unsigned cfg;
    loom_loop_t *loop;
    int closing; /* the fake server closes what it accepts */
    conn_t conns[MAXCONNS];
    int nconns, cur;

    /* The requests: a second one may start at any time (pipelined or
     * queued behind the first, or on the connection it left in the pool). */
    rq_t rq[2];
    int nrq;
} g;

/* --- DNS: no queries leave the machine ------------------------------------------------- */

typedef void (*gai_fn)(ares_channel, const char *, const char *, const struct ares_addrinfo_hints *,
                       ares_addrinfo_callback, void *);

void ares_getaddrinfo(ares_channel channel, const char *name, const char *service,
                      const struct ares_addrinfo_hints *hints, ares_addrinfo_callback callback,
                      void *arg)
{
    static gai_fn real;
    unsigned char tmp[sizeof(struct in6_addr)];
    if (name && (strcmp(name, "localhost") == 0 || inet_pton(AF_INET, name, tmp) == 1 ||
                 inet_pton(AF_INET6, name, tmp) == 1)) {
        if (!real)
            real = (gai_fn)dlsym(RTLD_NEXT, "ares_getaddrinfo");
        real(channel, name, service, hints, callback, arg);
        return;
    }
    callback(arg, ARES_ENOTFOUND, 0, NULL);
}

/* --- Connections: none leave the machine ------------------------------------------------
 * A redirect may name any numeric address. A connect to one that is not
 * loopback would send packets off the machine and wait for the kernel's SYN
 * retries (two minutes: the run's "slow units"); it fails at once instead,
 * as an unreachable network does. */
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

static bool loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return true; /* Unix sockets */
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static connect_fn real;
    if (sa && !loopback(sa)) {
        errno = ENETUNREACH;
        return -1;
    }
    if (!real)
        real = (connect_fn)dlsym(RTLD_NEXT, "connect");
    return real(fd, sa, len);
}

/* --- Input ------------------------------------------------------------------------------ */

static int action(uint8_t *a)
{
    if (g.back <= g.front)
        return 0;
    *a = g.data[--g.back];
    TRACE("action op %d arg %d\n", *a & 7, *a >> 3);
    return 1;
}

/* --- The fake server ----------------------------------------------------------------------- */

/* Every request head the client sent must parse, and its body must be
 * well-formed for its framing. */
static void check_requests(conn_t *c)
{
    while (!c->unchecked && c->pos < c->len) {
        loom_http_request_t rq;
        loom_http_header_t h[64];
        size_t nh = 64;
        const char *p = c->buf + c->pos;
        size_t n = c->len - c->pos;
        int r = loom_http_parse_request(p, n, 0, &rq, h, &nh, NULL);
        if (r == LOOM_HTTP_INCOMPLETE)
            return;
        if (r < 0)
            fprintf(stderr, "fuzz_http_client: bad request head: %.*s\n", (int)n, p);
        ASSERT(r > 0);
        loom_http_framing_t f;
        loom_http_request_framing(&rq, &f);
        loom_http_body_t b;
        loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
        ASSERT(loom_http_body_init(&b, &f, &lim) == 0);
        size_t pos = (size_t)r;
        int done = f.kind == LOOM_HTTP_BODY_NONE;
        while (!done) {
            loom_http_header_t tr[8];
            loom_http_body_out_t o = {.trailers = tr, .ntrailers = 8};
            int k = loom_http_body_parse(&b, p + pos, n - pos, &o);
            ASSERT(k >= 0);
            pos += (size_t)k;
            done = o.done;
            if (k == 0 && o.data_len == 0 && !done)
                return;
        }
        c->pos += pos;
    }
}

static void conn_read(conn_t *c)
{
    while (c->fd >= 0) {
        char tmp[16384];
        ssize_t r = recv(c->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r <= 0)
            break;
        size_t k = (size_t)r;
        if (k > CBUF - c->len) {
            c->unchecked = 1;
            k = CBUF - c->len;
        }
        memcpy(c->buf + c->len, tmp, k);
        c->len += k;
    }
    check_requests(c);
}

static void conn_close(conn_t *c, int rst)
{
    if (c->fd < 0)
        return;
    TRACE("server %s conn %d\n", rst ? "reset" : "close", (int)(c - g.conns));
    if (rst) {
        struct linger l = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);
    c->fd = -1;
}

static void on_accept(loom_io_t *io, unsigned events, void *data)
{
    (void)events;
    (void)data;
    for (;;) {
        int fd = accept4(loom_io_fd(io), NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (g.closing || g.nconns == MAXCONNS) {
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
            close(fd);
            continue;
        }
        TRACE("server accepted conn %d\n", g.nconns);
        conn_t *c = &g.conns[g.nconns];
        c->fd = fd;
        c->len = c->pos = 0;
        c->unchecked = 0;
        g.cur = g.nconns++;
    }
}

/* Runs the loop without waiting n times, then reads what the client sent. */
static void step(int n)
{
    for (int i = 0; i < n; i++)
        ASSERT(loom_run(g.loop, LOOM_RUN_NOWAIT) >= 0);
    if (g.cur >= 0)
        conn_read(&g.conns[g.cur]);
}

/* --- The request ------------------------------------------------------------------------- */

/* Touches every byte the response points to (ASan checks the bounds). */
static unsigned touch(const char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += (unsigned char)p[i];
    return s;
}

/* The Content-Length the response announces for its body, or -1 when it has
 * none or several, or also a Transfer-Encoding, or no body by its status. */
static int64_t announced_length(const loom_http_client_response_t *res, int head)
{
    int64_t cl = -1;
    int n = 0;
    for (size_t i = 0; i < res->nheaders; i++) {
        const loom_http_header_t *h = &res->headers[i];
        if (h->name_len == 17 && strncasecmp(h->name, "transfer-encoding", 17) == 0)
            return -1;
        if (h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0) {
            n++;
            int64_t v = 0;
            if (h->value_len == 0 || h->value_len > 15)
                return -1;
            for (size_t k = 0; k < h->value_len; k++) {
                if (h->value[k] < '0' || h->value[k] > '9')
                    return -1;
                v = v * 10 + (h->value[k] - '0');
            }
            cl = v;
        }
    }
    if (n != 1 || head || res->status < 200 || res->status == 204 || res->status == 304)
        return -1;
    return cl;
}

static void check_response(rq_t *q, const loom_http_client_response_t *res)
{
    /* A final status; 101 is one too (client.c: no protocol switch, the
     * answer has no body and ends the request). */
    ASSERT((res->status >= 200 && res->status <= 999) || res->status == 101);
    ASSERT(res->minor_version >= 0 && res->minor_version <= 9); /* as sent: HTTP/1.2 is 2 */
    ASSERT(res->url != NULL && strncmp(res->url, "http://", 7) == 0);
    touch(res->reason, res->reason_len);
    for (size_t i = 0; i < res->nheaders; i++) {
        touch(res->headers[i].name, res->headers[i].name_len);
        touch(res->headers[i].value, res->headers[i].value_len);
    }
    size_t len;
    const char *v = loom_http_client_header(res, "content-type", &len);
    if (v)
        touch(v, len);
    q->cl = announced_length(res, (g.cfg & CF_METHOD) == (1u << 2));
}

static void on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                       void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled && !q->headers);
    ASSERT(res->body == NULL);
    TRACE("on_headers %d (request %d)\n", res->status, (int)(q - g.rq));
    check_response(q, res);
    q->headers = 1;
}

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled && q->headers);
    touch(chunk, len);
    q->body += len;
    return 0;
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled);
    TRACE("on_response %d (request %d)\n", res->status, (int)(q - g.rq));
    if (g.cfg & CF_STREAM) {
        ASSERT(q->headers && res->body == NULL);
    } else {
        check_response(q, res);
        touch(res->body, res->body_len);
        ASSERT(res->body != NULL || res->body_len == 0);
        q->body = res->body_len;
    }
    if (q->cl >= 0)
        ASSERT(q->body == (uint64_t)q->cl); /* no Content-Length lie gets through */
    q->ended = 1;
}

static void on_event(const loom_event_t *ev, void *data)
{
    rq_t *q = data;
    TRACE("event %s: %s (request %d)\n", loom_event_kind_name(ev->kind), ev->msg, (int)(q - g.rq));
    ASSERT(q >= g.rq && q < g.rq + g.nrq);
    ASSERT(ev->object == q->req && !q->ended && !q->cancelled);
    ASSERT(loom_event_is_error(ev) && ev->msg != NULL);
    q->ended = 1;
}

static ssize_t on_source(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled);
    size_t n = 100 - (size_t)q->upload_sent;
    if (n > 30)
        n = 30;
    if (n > size)
        n = size;
    memset(buf, 'u', n);
    q->upload_sent += (int)n;
    return (ssize_t)n;
}

static int on_rewind(loom_http_client_req_t *req, void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled);
    q->upload_sent = 0;
    return 0;
}

static int live(const rq_t *q)
{
    return q->req && !q->ended && !q->cancelled;
}

static void request_start(void)
{
    static const char *const hdrs[] = {"Accept", "*/*", "Authorization", "Bearer x", NULL};
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT"};
    unsigned m = (g.cfg & CF_METHOD) >> 2;
    loom_http_request_opts o = {
        .method = methods[m],
        .headers = hdrs,
        .on_response = on_response,
        .on_event = on_event,
        .follow_redirects = (g.cfg & CF_REDIRECT) != 0,
        .max_redirects = 2,
        .no_keepalive = !(g.cfg & CF_KEEP),
    };
    if (g.cfg & CF_STREAM) {
        o.on_headers = on_headers;
        o.on_body = on_body;
    }
    if (m == 2) {
        o.body = "name=value";
        o.body_len = 10;
    } else if (m == 3) {
        o.on_body_source = on_source;
        o.on_body_rewind = on_rewind;
        o.body_length = (g.cfg & CF_SMALL) ? -1 : 100;
    }
    if (g.cfg & CF_SMALL)
        o.limits = (loom_http_limits_t){
            .max_header_bytes = 256, .max_headers = 4, .max_chunk_ext = 16, .max_body_size = 64};
    rq_t *q = &g.rq[g.nrq++];
    memset(q, 0, sizeof *q);
    q->cl = -1;
    o.data = q;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/r?q=%d", g.port[g.cfg & CF_POLL], g.nrq);
    TRACE("request %d\n", g.nrq - 1);
    ASSERT(loom_http_request(g.loop, url, &o, &q->req) == 0);
}

/* --- The input ------------------------------------------------------------------------------ */

static void init_once(void)
{
    if (g.loops[0])
        return;
    trace = getenv("FUZZ_TRACE") != NULL;
    const char *names[2] = {"epoll", "poll"};
    for (int i = 0; i < 2; i++) {
        ASSERT(loom_loop_new(&g.loops[i], &(loom_loop_opts){.backend = names[i]}) == 0);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT(fd >= 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t sl = sizeof sa;
        ASSERT(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 && listen(fd, 64) == 0);
        ASSERT(getsockname(fd, (struct sockaddr *)&sa, &sl) == 0);
        g.lfd[i] = fd;
        g.port[i] = ntohs(sa.sin_port);
        ASSERT(loom_io_new(g.loops[i], &g.io[i], fd, on_accept, NULL) == 0);
        ASSERT(loom_io_start(g.io[i], LOOM_READABLE) == 0);
        /* One connection to the fake server: a second request is pipelined
         * (or waits) on it. */
        ASSERT(loom_http_client_configure(g.loops[i], &(loom_http_client_opts){
                                                          .max_per_host = 1,
                                                          .pipeline_depth = 2,
                                                      }) == 0);
        g.live[i] = loom_loop_live(g.loops[i]);
    }
    for (int i = 0; i < MAXCONNS; i++)
        g.conns[i].buf = malloc(CBUF);
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
    g.loop = g.loops[g.cfg & CF_POLL];
    g.closing = 0;
    g.nconns = 0;
    g.cur = -1;
    g.nrq = 0;
    request_start();
    step(1);

    uint8_t a;
    for (int steps = 0; steps < MAXSTEPS && action(&a); steps++) {
        unsigned arg = a >> 3;
        conn_t *c = g.cur >= 0 ? &g.conns[g.cur] : NULL;
        rq_t *q = &g.rq[(arg & 1) % g.nrq];
        switch (a & 7) {
        case 0:
        case 1:
        case 2: { /* send the next cut */
            size_t n = arg < 16 ? arg + 1 : (arg - 15) * 64;
            if (n > g.back - g.front)
                n = g.back - g.front;
            if (c && c->fd >= 0 && n > 0) {
                ssize_t r = send(c->fd, data + g.front, n, MSG_NOSIGNAL | MSG_DONTWAIT);
                TRACE("server sent %zd of %zu\n", r, n);
                if (r > 0)
                    g.front += (size_t)r;
            }
            step(1);
            break;
        }
        case 3:
            step(1 + (arg & 1));
            break;
        case 4: /* pause or resume a streamed response */
            if (live(q)) {
                int r =
                    q->paused ? loom_http_client_resume(q->req) : loom_http_client_pause(q->req);
                TRACE("%s request %d: %d\n", q->paused ? "resume" : "pause", (int)(q - g.rq), r);
                ASSERT(r == 0 || r == LOOM_ESTATE || r == LOOM_ECLOSED);
                if (r == 0)
                    q->paused = !q->paused;
            }
            step(1);
            break;
        case 5:
            if ((arg & 14) == 14 && live(q)) {
                TRACE("cancel request %d\n", (int)(q - g.rq));
                ASSERT(loom_http_client_cancel(q->req) == 0);
                q->cancelled = 1;
            } else if ((arg & 6) == 2 && g.nrq < 2) {
                request_start(); /* pipelined, queued, or on a pooled connection */
            }
            step(1);
            break;
        case 6: /* half-close */
            if (c && c->fd >= 0)
                shutdown(c->fd, SHUT_WR);
            step(1);
            break;
        default:
            if (c)
                conn_close(c, arg & 1);
            step(1);
            break;
        }
    }
    /* Whatever of the stream no action sent. */
    if (g.cur >= 0 && g.conns[g.cur].fd >= 0 && g.back > g.front)
        send(g.conns[g.cur].fd, data + g.front, g.back - g.front, MSG_NOSIGNAL | MSG_DONTWAIT);
    step(1);

    /* The server goes: the requests must end. */
    g.closing = 1;
    for (int i = 0; i < g.nconns; i++) {
        conn_read(&g.conns[i]);
        conn_close(&g.conns[i], g.cfg & CF_RST);
    }
    for (int i = 0; i < g.nrq; i++)
        if (live(&g.rq[i]) && g.rq[i].paused) {
            int r = loom_http_client_resume(g.rq[i].req);
            ASSERT(r == 0 || r == LOOM_ESTATE);
        }
    for (int i = 0; i < g.nrq; i++)
        for (int guard = 0; live(&g.rq[i]); guard++) {
            ASSERT(guard < 100000);
            ASSERT(loom_run(g.loop, LOOM_RUN_ONCE) >= 0);
        }
    loom_http_client_close_idle(g.loop);
    for (int guard = 0;; guard++) {
        loom_http_client_stats_t st;
        loom_http_client_stats(g.loop, &st);
        if (loom_loop_live(g.loop) == g.live[g.cfg & CF_POLL] && st.open == 0 && st.queued == 0)
            break;
        ASSERT(guard < 1000);
        ASSERT(loom_run(g.loop, LOOM_RUN_NOWAIT) >= 0);
    }
    return 0;
}
