/* fuzz/fuzz_h2_client.c - libFuzzer target for the HTTP/2 client (h2c with
 * prior knowledge): a hostile HTTP/2 server's bytes, driven through loom's
 * public API only.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_LIBLOOM
 *
 * One loop per backend (epoll, poll) lives for the whole process, with a
 * raw listening socket on 127.0.0.1 watched by a loom_io watcher (the fake
 * server). Each input starts one or three loom_http_request()s to it with
 * LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE (the origin's pool multiplexes them
 * on one connection); the fake server accepts, checks what the client
 * sends, and writes the input's bytes to it in cuts. The input:
 *   - byte 0 picks the configuration (backend; whether the harness first
 *     sends a valid server SETTINGS and the ACK of the client's, so that
 *     the input can go straight to the streams; buffered or streamed
 *     response; GET, HEAD, POST with a buffer or a streamed upload; small
 *     limits; redirects; one request or three at once);
 *   - the bytes after it are what the server sends: frames, well-formed or
 *     not (fuzz/seeds_h2_client.py makes the seeds);
 *   - action bytes are taken from the end: send the next cut, run the loop,
 *     pause or resume a streamed response (or make its next callback
 *     cancel it), hold a streamed upload (its source says LOOM_EAGAIN) or
 *     release it (loom_http_client_body_ready()), cancel the oldest
 *     request, start another request, half-close, close (FIN) or reset the
 *     connection (later bytes go to the next one the client opens: a
 *     retry, or a request after GOAWAY).
 * What loom sends must be an HTTP/2 client's stream: the preface, a
 * SETTINGS first, then well-formed frame heads (lengths and stream ids for
 * each type, CONTINUATION only right after its HEADERS, no PUSH_PROMISE, no
 * new stream after its own GOAWAY, nothing on a stream after its
 * END_STREAM, a request body of the length its content-length announced),
 * and each request's header block must decode (HPACK) to :method, :scheme
 * http, :authority 127.0.0.1:PORT and a :path, lower-case names,
 * pseudo-fields first, no connection-specific field. (These are checked by
 * hand, with nghttp2's HPACK decoder only: an nghttp2 server session fed
 * just the client's half of the conversation would take the client's ACK
 * of the input's SETTINGS, or its answers to frames the harness did not
 * make, for protocol errors.) At the end the server closes every connection
 * and every request must have ended exactly once: on_response (a final status, version 20, no body
 * for HEAD, 204 and 304, a body of exactly a single valid Content-Length) or an error event whose
 * message names the origin (none after a cancel, none inside loom_http_request()). Then the pool is
 * emptied and the loop must hold nothing but the watcher. A hang is a
 * finding (no timeouts are set: a closed connection must end the
 * requests).
 *
 * Nothing leaves the machine or reaches another local service: c-ares
 * lookups of names answer ENOTFOUND at once, and connect() is refused for
 * every address but 127.0.0.1 at the current fake server's port (a
 * redirect may name any host and port; "localhost" reaches it too).
 */
#include <ares.h>
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loom.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_h2_client: %s:%d: %s\n", __FILE__, __LINE__, #c);                \
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
    CF_SETTINGS = 1u << 1, /* the harness sends SETTINGS and SETTINGS ACK first */
    CF_STREAM = 1u << 2,   /* on_headers + on_body */
    CF_METHOD = 3u << 3,   /* GET, HEAD, POST with a buffer, POST streamed */
    CF_SMALL = 1u << 5,    /* small limits (and no upload length, held at first) */
    CF_REDIRECT = 1u << 6, /* follow_redirects, at most 2 */
    CF_MULTI = 1u << 7     /* three requests at once */
};

#define MAXSTEPS 64
#define MAXCONNS 16
#define MAXRQ    8
#define CBUF     (64 * 1024)
#define MAXSID   64

/* What the client sent on one connection, checked frame by frame. */
typedef struct {
    int fd;
    char *buf;
    size_t len;
    size_t preface; /* preface bytes seen */
    int frames;     /* frames seen */
    int32_t max_sid, cont_sid;
    int goaway;
    nghttp2_hd_inflater *hd;
    /* The header block being decoded. */
    int regular, method, scheme, authority, path;
    int64_t block_cl; /* its content-length, or -1 */
    /* The request bodies of streams 1 to 2 * MAXSID - 1: bytes sent, the
     * length announced (-1: none), ended. */
    struct {
        int64_t sent, cl;
        int ended;
    } st[MAXSID];
} conn_t;

typedef struct {
    loom_http_client_req_t *req;
    int ended, headers, paused, cancelled, cancel_next, head;
    int hold; /* the upload source says LOOM_EAGAIN until body_ready */
    int status;
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
    int closing; /* the fake server resets what it accepts */
    conn_t conns[MAXCONNS];
    int nconns, cur;
    int starting; /* inside loom_http_request(): no callback may run */

    rq_t rq[MAXRQ];
    int nrq;
} g;

/* --- DNS and connect: nothing leaves the machine ---------------------------------------- */

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

/* A redirect may name any address and port: only the current input's fake
 * server is reachable (not even the other backend's, which its loop would
 * not accept), anything else is refused at once (another service on the
 * machine must never get the fuzzer's requests). */
typedef int (*connect_fn)(int, const struct sockaddr *, socklen_t);

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    static connect_fn real;
    if (sa && sa->sa_family != AF_UNIX) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        int port = sa->sa_family == AF_INET ? ntohs(in->sin_port) : -1;
        if (sa->sa_family != AF_INET || ntohl(in->sin_addr.s_addr) != INADDR_LOOPBACK ||
            port != g.port[g.cfg & CF_POLL]) {
            errno = sa->sa_family == AF_INET ? ECONNREFUSED : ENETUNREACH;
            return -1;
        }
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

/* --- Checking what the client sends ------------------------------------------------------ */

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

static int streq(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

/* One decoded field of a request's header block. */
static void check_field(conn_t *c, const nghttp2_nv *nv)
{
    for (size_t i = 0; i < nv->namelen; i++)
        ASSERT(!(nv->name[i] >= 'A' && nv->name[i] <= 'Z')); /* lower-case names */
    if (nv->namelen && nv->name[0] == ':') {
        ASSERT(!c->regular); /* pseudo-fields first */
        if (streq(nv->name, nv->namelen, ":method")) {
            ASSERT(!c->method++);
            ASSERT(streq(nv->value, nv->valuelen, "GET") ||
                   streq(nv->value, nv->valuelen, "HEAD") ||
                   streq(nv->value, nv->valuelen, "POST"));
        } else if (streq(nv->name, nv->namelen, ":scheme")) {
            ASSERT(!c->scheme++);
            ASSERT(streq(nv->value, nv->valuelen, "http"));
        } else if (streq(nv->name, nv->namelen, ":authority")) {
            /* The origin, or the same server named localhost by a
             * redirect (the only other name that reaches it). */
            char a[32], b[32];
            snprintf(a, sizeof a, "127.0.0.1:%d", g.port[g.cfg & CF_POLL]);
            snprintf(b, sizeof b, "localhost:%d", g.port[g.cfg & CF_POLL]);
            ASSERT(!c->authority++);
            ASSERT(streq(nv->value, nv->valuelen, a) ||
                   (nv->valuelen == strlen(b) &&
                    strncasecmp((const char *)nv->value, b, nv->valuelen) == 0));
        } else if (streq(nv->name, nv->namelen, ":path")) {
            ASSERT(!c->path++);
            ASSERT(nv->valuelen > 0 && nv->value[0] == '/');
        } else {
            ASSERT(0 && "unknown pseudo-field");
        }
        return;
    }
    c->regular = 1;
    static const char *const banned[] = {"connection", "keep-alive",        "proxy-connection",
                                         "upgrade",    "transfer-encoding", "host"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        ASSERT(!streq(nv->name, nv->namelen, banned[i]));
    if (streq(nv->name, nv->namelen, "te"))
        ASSERT(streq(nv->value, nv->valuelen, "trailers"));
    if (streq(nv->name, nv->namelen, "content-length")) {
        ASSERT(c->block_cl < 0 && nv->valuelen > 0 && nv->valuelen < 10);
        c->block_cl = 0;
        for (size_t i = 0; i < nv->valuelen; i++) {
            ASSERT(nv->value[i] >= '0' && nv->value[i] <= '9');
            c->block_cl = c->block_cl * 10 + (nv->value[i] - '0');
        }
    }
}

/* A piece of a header block (HEADERS or CONTINUATION payload). */
static void check_block(conn_t *c, const uint8_t *p, size_t n, int end)
{
    for (;;) {
        nghttp2_nv nv;
        int flags = 0;
        ssize_t k = nghttp2_hd_inflate_hd2(c->hd, &nv, &flags, p, n, end);
        ASSERT(k >= 0); /* loom's HPACK must decode */
        p += k;
        n -= (size_t)k;
        if (flags & NGHTTP2_HD_INFLATE_EMIT)
            check_field(c, &nv);
        if (flags & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(c->hd);
            ASSERT(c->method == 1 && c->scheme == 1 && c->authority == 1 && c->path == 1);
            int32_t sid = c->max_sid; /* the block opened the newest stream */
            if (sid / 2 < MAXSID) {
                c->st[sid / 2].cl = c->block_cl;
                if (c->st[sid / 2].ended) /* no body: none announced but 0 */
                    ASSERT(c->block_cl <= 0);
            }
            return;
        }
        if (!(flags & NGHTTP2_HD_INFLATE_EMIT)) {
            ASSERT(n == 0 && !end); /* the rest of the block comes in a CONTINUATION */
            return;
        }
    }
}

/* One whole frame the client sent: p[0..9) its head, then its payload. */
static void check_frame(conn_t *c, const uint8_t *p)
{
    uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
    uint8_t type = p[3], flags = p[4];
    int32_t sid =
        (int32_t)(((uint32_t)p[5] << 24 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 8 | p[8]) &
                  0x7fffffffu);
    const uint8_t *pl = p + 9;
    TRACE("client frame type %u flags 0x%x stream %d length %u\n", type, flags, (int)sid,
          (unsigned)len);
    ASSERT(len <= 16384); /* nghttp2's frames stay within the minimum max frame size */
    if (c->frames++ == 0)
        ASSERT(type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK));
    if (c->cont_sid)
        ASSERT(type == NGHTTP2_CONTINUATION && sid == c->cont_sid);
    switch (type) {
    case NGHTTP2_DATA: {
        ASSERT(sid > 0 && (sid & 1) && sid <= c->max_sid);
        uint32_t body = len;
        if (flags & NGHTTP2_FLAG_PADDED) {
            ASSERT(len >= 1 && pl[0] < len);
            body = len - 1 - pl[0];
        }
        /* The body goes on an open stream and, when it ends, has the
         * length its content-length said. */
        if (sid / 2 < MAXSID) {
            ASSERT(!c->st[sid / 2].ended);
            c->st[sid / 2].sent += body;
            if (c->st[sid / 2].cl >= 0)
                ASSERT(c->st[sid / 2].sent <= c->st[sid / 2].cl);
            if (flags & NGHTTP2_FLAG_END_STREAM) {
                c->st[sid / 2].ended = 1;
                if (c->st[sid / 2].cl >= 0)
                    ASSERT(c->st[sid / 2].sent == c->st[sid / 2].cl);
            }
        }
        break;
    }
    case NGHTTP2_HEADERS: {
        /* A client's HEADERS opens a new stream (it sends no trailers). */
        ASSERT(sid > c->max_sid && (sid & 1) && !c->goaway);
        c->max_sid = sid;
        size_t off = 0, end = len;
        if (flags & NGHTTP2_FLAG_PADDED) {
            ASSERT(len >= 1 && pl[0] < len);
            off = 1;
            end = len - pl[0];
        }
        if (flags & NGHTTP2_FLAG_PRIORITY)
            off += 5;
        ASSERT(off <= end);
        c->regular = c->method = c->scheme = c->authority = c->path = 0;
        c->block_cl = -1;
        if (sid / 2 < MAXSID) {
            c->st[sid / 2].sent = 0;
            c->st[sid / 2].cl = -1;
            c->st[sid / 2].ended = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
        }
        check_block(c, pl + off, end - off, (flags & NGHTTP2_FLAG_END_HEADERS) != 0);
        c->cont_sid = (flags & NGHTTP2_FLAG_END_HEADERS) ? 0 : sid;
        break;
    }
    case NGHTTP2_PRIORITY:
        ASSERT(len == 5 && sid > 0);
        break;
    case NGHTTP2_RST_STREAM:
        ASSERT(len == 4 && sid > 0);
        break;
    case NGHTTP2_SETTINGS:
        ASSERT(sid == 0);
        if (flags & NGHTTP2_FLAG_ACK) {
            ASSERT(len == 0);
            break;
        }
        ASSERT(len % 6 == 0);
        for (uint32_t i = 0; i < len; i += 6) {
            unsigned id = (unsigned)pl[i] << 8 | pl[i + 1];
            uint32_t v = (uint32_t)pl[i + 2] << 24 | (uint32_t)pl[i + 3] << 16 |
                         (uint32_t)pl[i + 4] << 8 | pl[i + 5];
            if (id == NGHTTP2_SETTINGS_ENABLE_PUSH)
                ASSERT(v == 0); /* the client refuses pushes */
            if (id == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE)
                ASSERT(v <= 0x7fffffffu);
            if (id == NGHTTP2_SETTINGS_MAX_FRAME_SIZE)
                ASSERT(v >= 16384 && v <= 16777215);
        }
        break;
    case NGHTTP2_PUSH_PROMISE:
        ASSERT(0 && "a client sent PUSH_PROMISE");
        break;
    case NGHTTP2_PING:
        ASSERT(len == 8 && sid == 0);
        break;
    case NGHTTP2_GOAWAY:
        ASSERT(len >= 8 && sid == 0);
        c->goaway = 1;
        break;
    case NGHTTP2_WINDOW_UPDATE: {
        ASSERT(len == 4);
        uint32_t inc =
            ((uint32_t)pl[0] << 24 | (uint32_t)pl[1] << 16 | (uint32_t)pl[2] << 8 | pl[3]) &
            0x7fffffffu;
        ASSERT(inc > 0);
        break;
    }
    case NGHTTP2_CONTINUATION:
        ASSERT(c->cont_sid != 0 && sid == c->cont_sid);
        check_block(c, pl, len, (flags & NGHTTP2_FLAG_END_HEADERS) != 0);
        if (flags & NGHTTP2_FLAG_END_HEADERS)
            c->cont_sid = 0;
        break;
    default:
        ASSERT(0 && "a frame type loom does not send");
    }
}

static void check_sent(conn_t *c)
{
    size_t pos = 0;
    if (c->preface < 24) {
        size_t k = c->len < 24 - c->preface ? c->len : 24 - c->preface;
        ASSERT(memcmp(c->buf, preface + c->preface, k) == 0);
        c->preface += k;
        pos = k;
    }
    while (c->len - pos >= 9) {
        const uint8_t *p = (const uint8_t *)c->buf + pos;
        uint32_t len = (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
        ASSERT(len <= 16384);
        if (c->len - pos < 9 + len)
            break;
        check_frame(c, p);
        pos += 9 + len;
    }
    memmove(c->buf, c->buf + pos, c->len - pos);
    c->len -= pos;
}

/* --- The fake server ----------------------------------------------------------------------- */

static void conn_read(conn_t *c)
{
    while (c->fd >= 0) {
        ssize_t r = recv(c->fd, c->buf + c->len, CBUF - c->len, MSG_DONTWAIT);
        if (r <= 0)
            break;
        c->len += (size_t)r;
        check_sent(c);
    }
}

static void conn_close(conn_t *c, int rst)
{
    if (c->fd < 0)
        return;
    TRACE("server %s conn %d\n", rst ? "reset" : "close", (int)(c - g.conns));
    conn_read(c);
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
        c->len = c->preface = 0;
        c->frames = c->goaway = 0;
        c->max_sid = c->cont_sid = 0;
        ASSERT(nghttp2_hd_inflate_new(&c->hd) == 0);
        g.cur = g.nconns++;
        if (g.cfg & CF_SETTINGS) {
            /* An empty SETTINGS, and the ACK of the client's (which it
             * sends first, before reading anything). */
            static const uint8_t s[] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0};
            ASSERT(send(fd, s, sizeof s, MSG_NOSIGNAL) == (ssize_t)sizeof s);
        }
    }
}

/* Runs the loop without waiting n times, then reads what the client sent. */
static void step(int n)
{
    for (int i = 0; i < n; i++)
        ASSERT(loom_run(g.loop, LOOM_RUN_NOWAIT) >= 0);
    for (int i = 0; i < g.nconns; i++)
        conn_read(&g.conns[i]);
}

/* --- The requests ------------------------------------------------------------------------- */

static unsigned touch(const char *p, size_t n)
{
    unsigned s = 0;
    for (size_t i = 0; i < n; i++)
        s += (unsigned char)p[i];
    return s;
}

/* The body length the response must have: a single valid Content-Length,
 * or 0 for HEAD, 204 and 304; -1 when unknown. */
static int64_t expected_length(const rq_t *q, const loom_http_client_response_t *res)
{
    if (q->head || res->status == 204 || res->status == 304)
        return 0;
    int64_t cl = -1;
    int n = 0;
    for (size_t i = 0; i < res->nheaders; i++) {
        const loom_http_header_t *h = &res->headers[i];
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
    return n == 1 ? cl : -1;
}

static void check_response(rq_t *q, const loom_http_client_response_t *res)
{
    ASSERT(res->status >= 200 && res->status <= 999);
    ASSERT(res->version == 20 && loom_http_client_response_version(res) == 20);
    ASSERT(res->url != NULL && strncmp(res->url, "http://", 7) == 0);
    ASSERT(res->reason != NULL);
    touch(res->reason, res->reason_len);
    for (size_t i = 0; i < res->nheaders; i++) {
        ASSERT(res->headers[i].name[res->headers[i].name_len] == '\0');
        ASSERT(res->headers[i].value[res->headers[i].value_len] == '\0');
        touch(res->headers[i].name, res->headers[i].name_len);
        touch(res->headers[i].value, res->headers[i].value_len);
        ASSERT(res->headers[i].name_len == 0 || res->headers[i].name[0] != ':');
    }
    size_t len;
    const char *v = loom_http_client_header(res, "content-type", &len);
    if (v)
        touch(v, len);
    q->status = res->status;
    q->cl = expected_length(q, res);
}

static int live(const rq_t *q)
{
    return q->req && !q->ended && !q->cancelled;
}

static void cancel(rq_t *q)
{
    TRACE("cancel request %d\n", (int)(q - g.rq));
    ASSERT(loom_http_client_cancel(q->req) == 0);
    q->cancelled = 1;
}

static void on_headers(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                       void *data)
{
    rq_t *q = data;
    ASSERT(!g.starting);
    ASSERT(req == q->req && !q->ended && !q->cancelled && !q->headers);
    ASSERT(res->body == NULL);
    TRACE("on_headers %d (request %d)\n", res->status, (int)(q - g.rq));
    check_response(q, res);
    q->headers = 1;
    if (q->cancel_next)
        cancel(q);
}

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    rq_t *q = data;
    ASSERT(!g.starting);
    ASSERT(req == q->req && !q->ended && !q->cancelled && q->headers && !q->paused);
    ASSERT(len > 0);
    touch(chunk, len);
    q->body += len;
    if (q->cancel_next) {
        cancel(q);
        return 0;
    }
    return 0;
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    rq_t *q = data;
    ASSERT(!g.starting);
    ASSERT(req == q->req && !q->ended && !q->cancelled);
    TRACE("on_response %d (request %d)\n", res->status, (int)(q - g.rq));
    if (g.cfg & CF_STREAM) {
        ASSERT(q->headers && res->body == NULL && res->status == q->status);
    } else {
        check_response(q, res);
        touch(res->body, res->body_len);
        ASSERT(res->body != NULL || res->body_len == 0);
        q->body = res->body_len;
    }
    if (q->cl >= 0)
        ASSERT(q->body == (uint64_t)q->cl); /* no Content-Length lie gets through */
    if (g.cfg & CF_SMALL)
        ASSERT(q->body <= 64);
    q->ended = 1;
}

/* Does an error message say where it happened? Without redirects, the
 * origin; with them, some host (a redirect may lead anywhere), or a DNS
 * failure or an unsupported scheme, which name what they could not use. */
static int names_origin(const char *msg)
{
    char o[32];
    snprintf(o, sizeof o, "127.0.0.1:%d", g.port[g.cfg & CF_POLL]);
    if (strstr(msg, o))
        return 1;
    if (!(g.cfg & CF_REDIRECT))
        return 0;
    if (strstr(msg, "dns lookup of") || strstr(msg, "URL scheme"))
        return 1;
    for (const char *p = strchr(msg, ':'); p; p = strchr(p + 1, ':'))
        if (p > msg && p[1] >= '0' && p[1] <= '9' &&
            (p[-1] == ']' || (p[-1] >= '0' && p[-1] <= '9') || (p[-1] >= 'a' && p[-1] <= 'z')))
            return 1;
    return 0;
}

static void on_event(const loom_event_t *ev, void *data)
{
    rq_t *q = data;
    ASSERT(!g.starting);
    ASSERT(q >= g.rq && q < g.rq + g.nrq);
    TRACE("event %s: %s (request %d)\n", loom_event_kind_name(ev->kind), ev->msg, (int)(q - g.rq));
    ASSERT(ev->object == q->req && !q->ended && !q->cancelled);
    ASSERT(loom_event_is_error(ev) && ev->msg != NULL);
    if (!names_origin(ev->msg))
        fprintf(stderr, "fuzz_h2_client: no origin in \"%s\"\n", ev->msg);
    ASSERT(names_origin(ev->msg));
    q->ended = 1;
}

static ssize_t on_source(loom_http_client_req_t *req, char *buf, size_t size, void *data)
{
    rq_t *q = data;
    ASSERT(req == q->req && !q->ended && !q->cancelled);
    if (q->hold)
        return LOOM_EAGAIN;
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

static void request_start(void)
{
    static const char *const hdrs[] = {"Accept", "*/*",      "Connection", "close",
                                       "TE",     "trailers", NULL};
    static const char *const methods[] = {"GET", "HEAD", "POST", "POST"};
    unsigned m = (g.cfg & CF_METHOD) >> 3;
    loom_http_request_opts o = {
        .method = methods[m],
        .headers = hdrs,
        .on_response = on_response,
        .on_event = on_event,
        .follow_redirects = (g.cfg & CF_REDIRECT) != 0,
        .max_redirects = 2,
        .version = LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
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
        o.limits =
            (loom_http_limits_t){.max_header_bytes = 256, .max_headers = 4, .max_body_size = 64};
    rq_t *q = &g.rq[g.nrq++];
    memset(q, 0, sizeof *q);
    q->cl = -1;
    q->head = m == 1;
    q->hold = m == 3 && (g.cfg & CF_SMALL); /* a chunked upload starts held */
    o.data = q;
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/r?q=%d", g.port[g.cfg & CF_POLL], g.nrq);
    TRACE("request %d\n", g.nrq - 1);
    g.starting = 1;
    ASSERT(loom_http_request(g.loop, url, &o, &q->req) == 0);
    g.starting = 0;
}

/* The oldest live request (arg 0) or the next ones. */
static rq_t *pick(unsigned arg)
{
    int n = 0;
    for (int i = 0; i < g.nrq; i++)
        if (live(&g.rq[i]))
            n++;
    if (n == 0)
        return NULL;
    unsigned k = arg % (unsigned)n;
    for (int i = 0; i < g.nrq; i++)
        if (live(&g.rq[i]) && k-- == 0)
            return &g.rq[i];
    return NULL;
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
        ASSERT(loom_http_client_configure(g.loops[i],
                                          &(loom_http_client_opts){.max_per_host = 2}) == 0);
        g.live[i] = loom_loop_live(g.loops[i]);
    }
    for (int i = 0; i < MAXCONNS; i++) {
        g.conns[i].buf = malloc(CBUF);
        g.conns[i].fd = -1;
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
    g.loop = g.loops[g.cfg & CF_POLL];
    g.closing = 0;
    g.nconns = 0;
    g.cur = -1;
    g.nrq = 0;
    for (int i = 0; i < ((g.cfg & CF_MULTI) ? 3 : 1); i++)
        request_start();
    step(1);

    uint8_t a;
    for (int steps = 0; steps < MAXSTEPS && action(&a); steps++) {
        unsigned arg = a >> 3;
        conn_t *c = g.cur >= 0 ? &g.conns[g.cur] : NULL;
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
            step(1 + (arg & 3));
            break;
        case 4: { /* pause or resume a streamed response, cancel it from its next
                     callback, or hold or release a streamed upload */
            rq_t *q = pick(arg >> 2);
            if (q && (arg & 3) == 1) {
                TRACE("request %d cancels from its next callback\n", (int)(q - g.rq));
                q->cancel_next = 1;
            } else if (q && (arg & 3) == 2) {
                q->hold = !q->hold;
                TRACE("request %d upload %s\n", (int)(q - g.rq), q->hold ? "held" : "released");
                if (!q->hold) {
                    int r = loom_http_client_body_ready(q->req);
                    ASSERT(r == 0 || r == LOOM_ECLOSED);
                }
            } else if (q) {
                int r =
                    q->paused ? loom_http_client_resume(q->req) : loom_http_client_pause(q->req);
                TRACE("%s request %d: %d\n", q->paused ? "resume" : "pause", (int)(q - g.rq), r);
                ASSERT(r == 0 || r == LOOM_ESTATE || r == LOOM_ECLOSED);
                if (r == 0)
                    q->paused = !q->paused;
            }
            step(1);
            break;
        }
        case 5: /* cancel the oldest request, or start another */
            if (arg < 16) {
                rq_t *q = pick(0);
                if (q)
                    cancel(q);
            } else if (g.nrq < MAXRQ) {
                request_start();
            }
            step(1);
            break;
        case 6: /* half-close, or close */
            if (c && c->fd >= 0) {
                if (arg & 1) {
                    TRACE("server half-closes conn %d\n", g.cur);
                    shutdown(c->fd, SHUT_WR);
                } else {
                    conn_close(c, 0);
                }
            }
            step(1);
            break;
        default: /* reset */
            if (c)
                conn_close(c, 1);
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
    for (int i = 0; i < g.nconns; i++)
        conn_close(&g.conns[i], 0);
    for (int i = 0; i < g.nrq; i++)
        if (live(&g.rq[i]) && g.rq[i].hold) {
            g.rq[i].hold = 0;
            int r = loom_http_client_body_ready(g.rq[i].req);
            ASSERT(r == 0 || r == LOOM_ECLOSED);
        }
    for (int i = 0; i < g.nrq; i++)
        if (live(&g.rq[i]) && g.rq[i].paused) {
            int r = loom_http_client_resume(g.rq[i].req);
            ASSERT(r == 0 || r == LOOM_ESTATE);
            g.rq[i].paused = 0;
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
    for (int i = 0; i < g.nconns; i++) {
        nghttp2_hd_inflate_del(g.conns[i].hd);
        g.conns[i].hd = NULL;
    }
    return 0;
}
