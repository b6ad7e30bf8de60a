/* fuzz/fuzz_h2_server.c - libFuzzer target for the HTTP/2 server (h2c with
 * prior knowledge, and Upgrade: h2c), driven through loom's public API only;
 * the client is the fuzzer.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_LIBLOOM
 *
 * One loop per backend (epoll, poll) and one server per configuration live
 * for the whole process; each input is one raw client connection (or more,
 * one after the other) on 127.0.0.1. The input is read from both ends:
 *   - byte 0 picks the configuration (backend, buffered or streamed bodies,
 *     small limits and HTTP/2 settings, a keep-alive request cap, whether
 *     the harness sends the connection preface and an empty SETTINGS frame
 *     or the input's bytes are all there is, and how the input ends: the
 *     client first, a graceful or forced server close);
 *   - the bytes after it are the client's byte stream (frames);
 *   - action bytes are taken from the end: send the next cut of the stream,
 *     run the loop, act on a deferred request (answer, release, pause or
 *     resume its body, write more of a streamed answer or an event stream),
 *     half-close, or close (FIN or RST) and go on with a new connection.
 *     on_request takes an action byte too: answer now, stream now, release
 *     now, start a stream or an event stream and defer it, defer (pausing
 *     the body at its next piece, or after an interim 103).
 * At the end every deferred request is answered or released (before or after
 * the client goes, as the configuration says), the client closes, and the
 * loop must settle back to the server alone: no request pending, no live
 * object left.
 *
 * What the client receives is checked as HTTP/2 from loom: a sequence of
 * well-formed frames (the server's SETTINGS first, lengths within the
 * largest SETTINGS_MAX_FRAME_SIZE the client sent, header blocks that HPACK
 * decodes, CONTINUATION only where it belongs), answers only on streams the
 * client opened and never after the server's END_STREAM or RST_STREAM on
 * them, no more DATA than the client's windows allowed, a final :status
 * before any DATA, the status the application gave (or >= 400 for loom's
 * own refusals), a body of the announced content-length, none for HEAD,
 * 204 and 304, no connection-specific fields, GOAWAYs whose last stream
 * never grows, and no more SETTINGS or PING acknowledgements than the
 * client asked for. An HTTP/1 answer (the client did not send the preface)
 * is not checked, except for a 101 to Upgrade: h2c, after which the frames
 * are (less strictly: HTTP2-Settings are not followed).
 * A hang is a finding (libFuzzer's -timeout): after the client has closed,
 * nothing may wait for a timer. FUZZ_TRACE=1 prints what an input does.
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

#include <nghttp2/nghttp2.h>

#include "loom.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz_h2_server: %s:%d: %s\n", __FILE__, __LINE__, #c);                \
            __builtin_trap();                                                                      \
        }                                                                                          \
    } while (0)

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
    CF_SMALL = 1u << 2,     /* small limits, HTTP/2 settings, high water and client window */
    CF_KEEPALIVE = 1u << 3, /* max_keepalive_requests = 2 */
    CF_RAW = 1u << 4,       /* no preface from the harness: the input's bytes only */
    CF_LATE = 1u << 5,      /* the client goes before the deferred answers */
    CF_SRVCLOSE = 1u << 6,  /* the server is closed (and made again) at the end */
    CF_HARD = 1u << 7       /* ... with LOOM_HTTP_CLOSE_FORCE; the client's last close is a reset */
};
#define NSERVERS 16 /* CF_STREAM | CF_SMALL | CF_KEEPALIVE, per backend: 2 x 8 */

#define MAXSTEPS 64 /* actions per input: bounds its time */
#define MAXPEND  32
#define MAXST    128 /* streams followed per connection */
#define PLMAX    (1u << 17)

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                 "\0\0\0\4\0\0\0\0\0"; /* and an empty SETTINGS */
#define MAGIC_LEN 24

typedef struct {
    loom_http_req_t *req;
    int streaming; /* 1: a streamed answer runs; 2: its start said LOOM_ECLOSED */
    int sse;       /* the stream is an event stream */
    int closed;    /* on_close ran */
    int pause_body;
} pend_t;

/* A stream of the current connection, as both sides see it. */
typedef struct {
    uint32_t id;
    /* The client's side. */
    uint64_t grant; /* its WINDOW_UPDATE increments */
    /* The application's side. */
    int seen;                  /* on_request ran for it */
    loom_http_method_t method; /* (if seen) */
    int app_status;            /* what the application answered with; 0: nothing yet */
    /* The server's side (what the client received). */
    int final;     /* the final answer's HEADERS came */
    int status;    /* its :status */
    int ended;     /* END_STREAM came */
    int reset;     /* the server's RST_STREAM came */
    int64_t clen;  /* the final answer's content-length, -1: none */
    uint64_t data; /* DATA payload bytes */
} st_t;

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

    st_t st[MAXST];
    int nst;

    /* What the client sent, walked as frames: the bounds it set. */
    struct {
        uint8_t magic[MAGIC_LEN];
        size_t nmagic;
        int lenient; /* not the preface: no bounds known (HTTP/1, Upgrade: h2c) */
        uint8_t head[9];
        size_t nhead;
        uint32_t left; /* payload bytes of the current frame still to pass */
        uint8_t pl[1024];
        size_t npl;
        int keep;           /* the payload is kept (SETTINGS, WINDOW_UPDATE) */
        uint32_t max_frame; /* the largest SETTINGS_MAX_FRAME_SIZE sent */
        uint32_t init_win;  /* the largest SETTINGS_INITIAL_WINDOW_SIZE sent */
        uint64_t conn_grant;
        uint32_t max_id; /* the highest stream a HEADERS was sent on */
        unsigned settings, pings;
    } cw;

    /* What the client received, parsed as frames. */
    struct {
        int mode; /* 0: first bytes; 1: an HTTP/1 head; 2: frames; 3: not checked */
        char h1[4096];
        size_t nh1;
        uint8_t head[9];
        size_t nhead;
        uint32_t len, left;
        uint8_t type, flags;
        uint32_t id;
        uint8_t *pl;
        size_t npl;
        unsigned frames;
        uint32_t cont_id; /* a header block waits for CONTINUATION on this stream */
        uint8_t cont_end; /* ... and its HEADERS had END_STREAM */
        uint8_t *hb;
        size_t nhb;
        nghttp2_hd_inflater *inf;
        int goaway;
        uint32_t goaway_last;
        uint64_t conn_data;
        unsigned settings_acks, ping_acks;
    } sv;
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

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static st_t *st_find(uint32_t id, int make)
{
    for (int i = 0; i < g.nst; i++)
        if (g.st[i].id == id)
            return &g.st[i];
    if (!make || g.nst == MAXST)
        return NULL;
    st_t *s = &g.st[g.nst++];
    *s = (st_t){.id = id, .clen = -1};
    return s;
}

/* --- What the client sends ----------------------------------------------------------------- */

static void cw_frame_end(void)
{
    const uint8_t *h = g.cw.head;
    uint8_t type = h[3], flags = h[4];
    uint32_t id = be32(h + 5) & 0x7fffffffu;
    if (!g.cw.keep)
        return;
    if (type == NGHTTP2_SETTINGS && id == 0 && !(flags & NGHTTP2_FLAG_ACK)) {
        g.cw.settings++;
        for (size_t i = 0; i + 6 <= g.cw.npl; i += 6) {
            uint16_t k = (uint16_t)(g.cw.pl[i] << 8 | g.cw.pl[i + 1]);
            uint32_t v = be32(g.cw.pl + i + 2);
            if (k == NGHTTP2_SETTINGS_MAX_FRAME_SIZE && v > g.cw.max_frame)
                g.cw.max_frame = v;
            if (k == NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE && v > g.cw.init_win)
                g.cw.init_win = v;
        }
    } else if (type == NGHTTP2_WINDOW_UPDATE && g.cw.npl == 4) {
        uint32_t inc = be32(g.cw.pl) & 0x7fffffffu;
        if (id == 0) {
            g.cw.conn_grant += inc;
        } else {
            st_t *s = st_find(id, 1);
            if (s)
                s->grant += inc;
            else
                g.cw.lenient = 1; /* too many streams to follow */
        }
    }
}

/* Walks the bytes the client sent (in order) as frames. */
static void cw_feed(const uint8_t *p, size_t n)
{
    while (n > 0 && !g.cw.lenient) {
        if (g.cw.nmagic < MAGIC_LEN) {
            size_t k = MAGIC_LEN - g.cw.nmagic;
            if (k > n)
                k = n;
            memcpy(g.cw.magic + g.cw.nmagic, p, k);
            g.cw.nmagic += k;
            p += k, n -= k;
            if (g.cw.nmagic == MAGIC_LEN && memcmp(g.cw.magic, preface, MAGIC_LEN) != 0)
                g.cw.lenient = 1;
            continue;
        }
        if (g.cw.left == 0 && g.cw.nhead < 9) {
            size_t k = 9 - g.cw.nhead;
            if (k > n)
                k = n;
            memcpy(g.cw.head + g.cw.nhead, p, k);
            g.cw.nhead += k;
            p += k, n -= k;
            if (g.cw.nhead < 9)
                continue;
            const uint8_t *h = g.cw.head;
            uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
            uint32_t id = be32(h + 5) & 0x7fffffffu;
            if (h[3] == NGHTTP2_HEADERS && id > g.cw.max_id)
                g.cw.max_id = id;
            if (h[3] == NGHTTP2_PING && !(h[4] & NGHTTP2_FLAG_ACK))
                g.cw.pings++;
            g.cw.keep = (h[3] == NGHTTP2_SETTINGS || h[3] == NGHTTP2_WINDOW_UPDATE) &&
                        len <= sizeof g.cw.pl;
            g.cw.npl = 0;
            g.cw.left = len;
            if (len == 0) {
                cw_frame_end();
                g.cw.nhead = 0;
            }
            continue;
        }
        size_t k = g.cw.left < n ? g.cw.left : n;
        if (g.cw.keep) {
            memcpy(g.cw.pl + g.cw.npl, p, k);
            g.cw.npl += k;
        }
        g.cw.left -= (uint32_t)k;
        p += k, n -= k;
        if (g.cw.left == 0) {
            cw_frame_end();
            g.cw.nhead = 0;
        }
    }
}

static ssize_t client_send(const uint8_t *p, size_t n)
{
    ssize_t r = send(g.fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    TRACE("client sent %zd of %zu\n", r, n);
    if (r > 0)
        cw_feed(p, (size_t)r);
    return r;
}

/* --- What the client receives ----------------------------------------------------------------- */

/* A whole header block of the server's, on stream id. */
static void sv_block(uint32_t id, int end_stream)
{
    uint8_t *in = g.sv.hb;
    size_t inl = g.sv.nhb;
    int status = 0, nfields = 0, pseudo = 0;
    int64_t clen = -1;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t r = nghttp2_hd_inflate_hd2(g.sv.inf, &nv, &fl, in, inl, 1);
        ASSERT(r >= 0); /* loom's header blocks decode */
        in += r;
        inl -= (size_t)r;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            nfields++;
            if (nv.namelen > 0 && nv.name[0] == ':') {
                /* :status, first and once (RFC 9113 section 8.3) */
                ASSERT(nfields == 1 && nv.namelen == 7 && memcmp(nv.name, ":status", 7) == 0);
                ASSERT(nv.valuelen == 3);
                for (int i = 0; i < 3; i++)
                    ASSERT(nv.value[i] >= '0' && nv.value[i] <= '9');
                status = (nv.value[0] - '0') * 100 + (nv.value[1] - '0') * 10 + (nv.value[2] - '0');
                pseudo++;
            } else {
                ASSERT(nv.namelen > 0);
                for (size_t i = 0; i < nv.namelen; i++)
                    ASSERT(!(nv.name[i] >= 'A' && nv.name[i] <= 'Z'));
                static const char *const conn[] = {"connection", "transfer-encoding", "keep-alive",
                                                   "upgrade", "proxy-connection"};
                for (size_t i = 0; i < sizeof conn / sizeof conn[0]; i++)
                    ASSERT(!(nv.namelen == strlen(conn[i]) &&
                             memcmp(nv.name, conn[i], nv.namelen) == 0));
                for (size_t i = 0; i < nv.valuelen; i++)
                    ASSERT(nv.value[i] != 0 && nv.value[i] != '\r' && nv.value[i] != '\n');
                if (nv.namelen == 14 && memcmp(nv.name, "content-length", 14) == 0) {
                    ASSERT(clen < 0 && nv.valuelen > 0 && nv.valuelen < 19);
                    clen = 0;
                    for (size_t i = 0; i < nv.valuelen; i++) {
                        ASSERT(nv.value[i] >= '0' && nv.value[i] <= '9');
                        clen = clen * 10 + (nv.value[i] - '0');
                    }
                }
            }
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(g.sv.inf);
            break;
        }
        if (!(fl & NGHTTP2_HD_INFLATE_EMIT) && inl == 0)
            break;
    }
    st_t *s = st_find(id, 1);
    TRACE("server HEADERS stream %u status %d%s\n", id, status, end_stream ? " END_STREAM" : "");
    if (s == NULL)
        return;
    ASSERT(!s->ended && !s->reset);
    if (!s->final) {
        ASSERT(pseudo == 1);
        ASSERT(status >= 100 && status <= 999 && status != 101);
        /* RFC 9110 section 8.6: no Content-Length in a 1xx or 204. */
        ASSERT(clen < 0 || (status >= 200 && status != 204));
        if (status < 200) {
            ASSERT(!end_stream); /* an interim answer does not end the stream */
        } else {
            s->final = 1;
            s->status = status;
            s->clen = clen;
            /* The application's status, or one of loom's refusals. */
            if (s->seen)
                ASSERT(s->app_status == status);
            else
                ASSERT(status >= 400);
        }
    } else {
        ASSERT(pseudo == 0 && end_stream); /* trailers */
    }
    if (end_stream && s->final) {
        s->ended = 1;
        if (s->seen && s->clen >= 0 && s->method != LOOM_HTTP_METHOD_HEAD &&
            s->method != LOOM_HTTP_METHOD_CONNECT && s->status != 304)
            ASSERT((uint64_t)s->clen == s->data);
    } else if (end_stream) {
        s->ended = 1;
    }
}

/* A whole frame of the server's (the payload kept unless it is DATA). */
static void sv_frame(void)
{
    uint8_t type = g.sv.type, flags = g.sv.flags;
    uint32_t id = g.sv.id, len = g.sv.len;
    const uint8_t *pl = g.sv.pl;
    TRACE("server frame type %u flags 0x%x stream %u len %u\n", type, flags, id, len);
    if (g.sv.frames++ == 0)
        ASSERT(type == NGHTTP2_SETTINGS && !(flags & NGHTTP2_FLAG_ACK)); /* its preface */
    if (g.sv.cont_id != 0)
        ASSERT(type == NGHTTP2_CONTINUATION && id == g.sv.cont_id);
    if (!g.cw.lenient)
        ASSERT(len <= g.cw.max_frame);
    switch (type) {
    case NGHTTP2_DATA:
    case NGHTTP2_HEADERS: {
        ASSERT(id != 0 && (id & 1));
        if (!g.cw.lenient)
            ASSERT(id <= g.cw.max_id); /* a stream the client opened */
        if (g.sv.goaway)
            ASSERT(id <= g.sv.goaway_last);
        if (type == NGHTTP2_HEADERS) {
            size_t off = 0, end = len;
            if (flags & NGHTTP2_FLAG_PADDED) {
                ASSERT(len >= 1 && pl[0] < len);
                off = 1;
                end = len - pl[0];
            }
            if (flags & NGHTTP2_FLAG_PRIORITY)
                off += 5;
            ASSERT(off <= end);
            memcpy(g.sv.hb, pl + off, end - off);
            g.sv.nhb = end - off;
            if (flags & NGHTTP2_FLAG_END_HEADERS) {
                sv_block(id, (flags & NGHTTP2_FLAG_END_STREAM) != 0);
            } else {
                g.sv.cont_id = id;
                g.sv.cont_end = (flags & NGHTTP2_FLAG_END_STREAM) != 0;
            }
            break;
        }
        g.sv.conn_data += len;
        if (!g.cw.lenient)
            ASSERT(g.sv.conn_data <= 65535 + g.cw.conn_grant);
        st_t *s = st_find(id, 1);
        if (s == NULL)
            break;
        s->data += len;
        if (!g.cw.lenient)
            ASSERT(s->data <= (uint64_t)g.cw.init_win + s->grant);
        ASSERT(s->final && !s->ended && !s->reset); /* after the answer's head, before its end */
        if (s->status == 204 || s->status == 304 || (s->seen && s->method == LOOM_HTTP_METHOD_HEAD))
            ASSERT(len == 0);
        if (flags & NGHTTP2_FLAG_END_STREAM) {
            s->ended = 1;
            if (s->seen && s->clen >= 0 && s->method != LOOM_HTTP_METHOD_HEAD &&
                s->method != LOOM_HTTP_METHOD_CONNECT && s->status != 304)
                ASSERT((uint64_t)s->clen == s->data);
        }
        break;
    }
    case NGHTTP2_CONTINUATION:
        ASSERT(g.sv.cont_id == id && id != 0);
        ASSERT(g.sv.nhb + len <= PLMAX);
        memcpy(g.sv.hb + g.sv.nhb, pl, len);
        g.sv.nhb += len;
        if (flags & NGHTTP2_FLAG_END_HEADERS) {
            g.sv.cont_id = 0;
            sv_block(id, g.sv.cont_end);
        }
        break;
    case NGHTTP2_RST_STREAM: {
        ASSERT(id != 0 && len == 4);
        if (!g.cw.lenient)
            ASSERT(id <= g.cw.max_id);
        st_t *s = st_find(id, 1);
        if (s)
            s->reset = 1;
        break;
    }
    case NGHTTP2_SETTINGS:
        ASSERT(id == 0);
        if (flags & NGHTTP2_FLAG_ACK) {
            ASSERT(len == 0);
            g.sv.settings_acks++;
            if (!g.cw.lenient)
                ASSERT(g.sv.settings_acks <= g.cw.settings);
        } else {
            ASSERT(len % 6 == 0);
        }
        break;
    case NGHTTP2_PING:
        ASSERT(id == 0 && len == 8 && (flags & NGHTTP2_FLAG_ACK));
        g.sv.ping_acks++;
        if (!g.cw.lenient)
            ASSERT(g.sv.ping_acks <= g.cw.pings);
        break;
    case NGHTTP2_GOAWAY: {
        ASSERT(id == 0 && len >= 8);
        uint32_t last = be32(pl) & 0x7fffffffu;
        TRACE("server GOAWAY last %u code %u\n", last, be32(pl + 4));
        /* RFC 9113 section 6.8: the last stream id never grows. */
        ASSERT(!g.sv.goaway || last <= g.sv.goaway_last);
        g.sv.goaway = 1;
        g.sv.goaway_last = last;
        break;
    }
    case NGHTTP2_WINDOW_UPDATE: {
        ASSERT(len == 4);
        uint32_t inc = be32(pl) & 0x7fffffffu;
        ASSERT(inc != 0);
        break;
    }
    default:
        ASSERT(!"a frame type loom does not send");
    }
}

/* Parses what the server sent, as it arrives. */
static void sv_feed(const uint8_t *p, size_t n)
{
    while (n > 0 && g.sv.mode != 3) {
        if (g.sv.mode == 0) {
            /* HTTP/1 (no preface: not checked here; a 101 to Upgrade: h2c
             * is followed by frames), or frames. */
            g.sv.mode = p[0] == 'H' ? 1 : 2;
            continue;
        }
        if (g.sv.mode == 1) {
            g.sv.h1[g.sv.nh1++] = (char)*p++;
            n--;
            if (g.sv.nh1 >= 4 && memcmp(g.sv.h1 + g.sv.nh1 - 4, "\r\n\r\n", 4) == 0) {
                if (g.sv.nh1 >= 13 && memcmp(g.sv.h1, "HTTP/1.1 101 ", 13) == 0) {
                    g.sv.mode = 2;
                    g.cw.lenient = 1; /* HTTP2-Settings are not followed */
                } else {
                    g.sv.mode = 3;
                }
            } else if (g.sv.nh1 == sizeof g.sv.h1) {
                g.sv.mode = 3;
            }
            continue;
        }
        if (g.sv.nhead < 9) {
            size_t k = 9 - g.sv.nhead;
            if (k > n)
                k = n;
            memcpy(g.sv.head + g.sv.nhead, p, k);
            g.sv.nhead += k;
            p += k, n -= k;
            if (g.sv.nhead < 9)
                continue;
            const uint8_t *h = g.sv.head;
            g.sv.len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
            g.sv.type = h[3];
            g.sv.flags = h[4];
            g.sv.id = be32(h + 5) & 0x7fffffffu;
            ASSERT(!(h[5] & 0x80)); /* the reserved bit is 0 */
            /* Only a DATA frame's payload is not kept; any other frame of
             * loom's is much smaller than this. */
            ASSERT(g.sv.type == NGHTTP2_DATA || g.sv.len <= PLMAX);
            g.sv.left = g.sv.len;
            g.sv.npl = 0;
        }
        size_t k = g.sv.left < n ? g.sv.left : n;
        if (g.sv.type != NGHTTP2_DATA) {
            memcpy(g.sv.pl + g.sv.npl, p, k);
            g.sv.npl += k;
        }
        g.sv.left -= (uint32_t)k;
        p += k, n -= k;
        if (g.sv.left == 0) {
            sv_frame();
            g.sv.nhead = 0;
        }
    }
}

/* --- The client ------------------------------------------------------------------------------ */

/* Reads what the server sent (non-blocking). Returns 1 at eof or error. */
static int client_read(void)
{
    if (g.fd < 0)
        return 1;
    for (;;) {
        uint8_t tmp[16384];
        ssize_t r = recv(g.fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r > 0) {
            TRACE("client read %zd\n", r);
            sv_feed(tmp, (size_t)r);
            continue;
        }
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        return 1;
    }
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
        /* A small window, so that the server's output waits (high water,
         * on_drain, flow control against the socket). */
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
        fprintf(stderr, "fuzz_h2_server: connect: %s\n", strerror(errno));
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
    g.nst = 0;
    memset(&g.cw, 0, sizeof g.cw);
    g.cw.max_frame = 16384;
    g.cw.init_win = 65535;
    nghttp2_hd_inflater *inf = g.sv.inf;
    uint8_t *pl = g.sv.pl, *hb = g.sv.hb;
    memset(&g.sv, 0, sizeof g.sv);
    g.sv.pl = pl;
    g.sv.hb = hb;
    if (inf)
        nghttp2_hd_inflate_del(inf);
    ASSERT(nghttp2_hd_inflate_new(&g.sv.inf) == 0);
    if (!(g.cfg & CF_RAW))
        client_send(preface, sizeof preface - 1);
    return 0;
}

/* Runs the loop without waiting, n times (loopback delivers a send before
 * it returns, so one iteration sees it). */
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
    memmove(&g.pend[i], &g.pend[i + 1], (size_t)(g.npend - i - 1) * sizeof g.pend[0]);
    g.npend--;
}

static int pend_find(loom_http_req_t *req)
{
    for (int i = 0; i < g.npend; i++)
        if (g.pend[i].req == req)
            return i;
    return -1;
}

/* A request of the current connection has data = the connection's number
 * (others: of an earlier one). */
static st_t *req_st(loom_http_req_t *req)
{
    if ((uintptr_t)loom_http_req_data(req) != g.gen || g.fd < 0)
        return NULL;
    return st_find(loom_http_req_stream_id(req), 0);
}

static void set_status(loom_http_req_t *req, int status)
{
    st_t *s = req_st(req);
    if (s)
        s->app_status = status;
}

static void respond(loom_http_req_t *req, unsigned how)
{
    int status = statuses[how & 7];
    static const char body[] = "the quick brown fox jumps over the lazy dog";
    const char *const close_h[] = {"Connection", "close", "X-Fuzz", "a b", "Keep-Alive", "5", NULL};
    const char *const plain_h[] = {"Content-Type", "text/plain", NULL};
    size_t len = (how >> 3) % sizeof body;
    set_status(req, status);
    int r = loom_http_respond(req, status, (how & 0x10) ? close_h : plain_h, body, len);
    ASSERT(r == 0 || r == LOOM_ECLOSED);
}

static void stream_write(loom_http_req_t *req, unsigned how)
{
    static char buf[16384];
    size_t len = (size_t)(how % 4) * 5000 + (how & 7);
    memset(buf, 'a' + (int)(how % 26), len);
    int r = loom_http_response_write(req, buf, len);
    /* LOOM_ESTATE: past the Content-Length that stream_start() announced. */
    ASSERT(r == 0 || r == 1 || r == LOOM_ECLOSED || r == LOOM_ESTATE || r == LOOM_ENOBODY);
}

static void sse_write(loom_http_req_t *req, unsigned how)
{
    int r;
    for (unsigned i = 0; i < 1 + how % 8; i++) {
        if (how & 8)
            r = loom_http_sse_comment(req, "beat");
        else
            r = loom_http_sse_send(req, (i & 1) ? "tick" : NULL, "line one\nline two");
        ASSERT(r == 0 || r == 1 || r == LOOM_ECLOSED || r == LOOM_ENOBODY);
        if (r != 0)
            break;
    }
}

/* Starts a streamed answer: with no length, or with a Content-Length of 10
 * that the writes below do not always match. Returns 1 if the body was
 * written, 0 if not, -1 if the start said LOOM_ECLOSED. */
static int stream_start(loom_http_req_t *req, unsigned how)
{
    const char *const cl_h[] = {"Content-Length", "10", "Transfer-Encoding", "chunked", NULL};
    int status = (how & 1) ? 200 : 202;
    if ((how & 0x18) == 0x18)
        status = 204;
    set_status(req, status);
    int r = loom_http_response_start(req, status, (how & 2) ? cl_h : NULL);
    ASSERT(r == 0 || r == LOOM_ECLOSED);
    if (r < 0)
        return -1;
    if (how & 2) {
        r = loom_http_response_write(req, "0123456789", (how & 4) ? 10 : 4);
        ASSERT(r == 0 || r == 1 || r == LOOM_ECLOSED || r == LOOM_ENOBODY);
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
    s = loom_http_req_host(req, &len);
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
    ASSERT(loom_http_req_version(req) == 20 || loom_http_req_version(req) == 10 ||
           loom_http_req_version(req) == 11);
}

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    ASSERT(pend_find(req) < 0);
    TRACE("on_request %p stream %u\n", (void *)req, loom_http_req_stream_id(req));
    inspect(req);
    char name[64];
    int port = 0;
    int pr = loom_http_req_peer(req, name, sizeof name, &port);
    ASSERT(pr == 0 || pr == LOOM_ECLOSED);
    if (loom_http_req_version(req) != 20) {
        /* HTTP/1 (no preface): fuzz_http_server's business. */
        respond(req, 0);
        return;
    }
    if (g.fd >= 0 && pr == 0 && port == g.cport) {
        uint32_t id = loom_http_req_stream_id(req);
        ASSERT(id != 0 && (id & 1));
        st_t *s = st_find(id, 1);
        if (s) {
            ASSERT(!s->seen); /* once per stream */
            s->seen = 1;
            s->method = loom_http_req_method(req);
            loom_http_req_set_data(req, (void *)(uintptr_t)g.gen);
        }
    }
    uint8_t a = 0;
    if (g.finishing || !action(&a) || g.npend == MAXPEND) {
        respond(req, a >> 3);
        return;
    }
    unsigned arg = a >> 3;
    switch (a & 7) {
    case 0:
        respond(req, arg);
        return;
    case 1: /* stream now */
        if (stream_start(req, arg) == 0) {
            stream_write(req, arg);
            stream_write(req, arg >> 2);
        }
        stream_end(req);
        return;
    case 2: {
        int r = loom_http_req_release(req);
        ASSERT(r == 0);
        return;
    }
    case 3: /* start a stream, go on later */
        g.pend[g.npend++] = (pend_t){.req = req, .streaming = 1};
        if (stream_start(req, arg) < 0)
            g.pend[g.npend - 1].streaming = 2;
        return;
    case 4: { /* an event stream, go on later */
        g.pend[g.npend++] = (pend_t){.req = req, .streaming = 1, .sse = 1};
        set_status(req, 200);
        int r = loom_http_sse_start(req, NULL);
        ASSERT(r == 0 || r == LOOM_ECLOSED);
        if (r < 0)
            g.pend[g.npend - 1].streaming = 2;
        else
            sse_write(req, arg);
        return;
    }
    case 5: /* defer, pausing a streamed body at its next piece */
        g.pend[g.npend++] = (pend_t){.req = req, .pause_body = 1};
        return;
    case 6: { /* an interim answer, and defer */
        const char *const link[] = {"Link", "</s.css>; rel=preload", NULL};
        int r = loom_http_respond_interim(req, (arg & 1) ? 103 : 100, link);
        ASSERT(r == 0 || r == LOOM_ECLOSED);
        g.pend[g.npend++] = (pend_t){.req = req};
        return;
    }
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
        /* Release refuses a running stream (but one without a body); end it. */
        int r = (how & 1) ? loom_http_req_release(req) : LOOM_ESTATE;
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
    } else if ((how & 3) == 2) {
        if (stream_start(req, how >> 2) == 0)
            stream_write(req, how >> 3);
        stream_end(req);
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
    ASSERT(chunk == NULL || len > 0);
    int i = pend_find(req);
    if (i >= 0 && g.pend[i].pause_body && chunk != NULL) {
        g.pend[i].pause_body = 0;
        return LOOM_HTTP_PAUSE;
    }
    return 0;
}

/* An action on a deferred request. */
static void act(int i, unsigned arg)
{
    if (g.npend == 0)
        return;
    i %= g.npend;
    pend_t *p = &g.pend[i];
    if (p->streaming) {
        if (!(arg & 1))
            finish(i, arg >> 1);
        else if (p->sse)
            sse_write(p->req, arg >> 1);
        else if (p->streaming == 1)
            stream_write(p->req, arg >> 1);
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
    (void)data;
    TRACE("event %d: %s\n", (int)ev->kind, ev->msg);
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
        .http2 = {.h2c = true},
    };
    if (c & 2) {
        o.limits = (loom_http_limits_t){
            .max_request_line = 64, .max_header_bytes = 256, .max_headers = 4, .max_body_size = 64};
        o.http2.max_concurrent_streams = 3;
        o.http2.initial_window = 100;
        o.http2.max_frame_size = 16384;
        o.http2.reset_burst = 4;
        o.http2.reset_rate = 1;
    } else {
        o.http2.max_frame_size = 65536;
    }
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
    g.sv.pl = malloc(PLMAX);
    g.sv.hb = malloc(PLMAX);
    ASSERT(g.sv.pl && g.sv.hb);
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
                ssize_t r = client_send(data + g.front, n);
                if (r > 0)
                    g.front += (size_t)r;
            }
            settle_nowait(1);
            break;
        }
        case 3:
            run_read(1 + (arg & 1));
            break;
        case 4: /* the oldest deferred request */
            act(0, arg);
            settle_nowait(1);
            break;
        case 5: /* another one */
            act((int)(arg & 3), arg >> 2);
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
        client_send(data + g.front, g.back - g.front);
    run_read(2);

out:
    if (g.cfg & CF_SRVCLOSE) {
        /* While requests are in flight: GOAWAY, and they finish. */
        g.closed_done = 0;
        ASSERT(loom_http_server_close(g.srv[k], (g.cfg & CF_HARD) ? LOOM_HTTP_CLOSE_FORCE : 0,
                                      on_closed) == 0);
        run_read(2);
    }
    g.finishing = 1;
    if (g.cfg & CF_LATE) {
        client_close(g.cfg & CF_HARD);
        settle_nowait(2);
    }
    while (g.npend > 0)
        finish(0, 0);
    run_read(2);
    client_close(g.cfg & CF_HARD);
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
