/* http/h2_server.c - HTTP/2 on the server, on nghttp2: the connection
 * (framing, HPACK, flow control and stream states are nghttp2's), its
 * streams, and loom__h2_proto, the protocol operations that let the
 * neutral request core (server.c, server_resp.c) answer a stream exactly
 * as it answers an HTTP/1 request.
 *
 * A connection becomes HTTP/2 after ALPN "h2" (server.c, proto_accept),
 * when a plain connection opens with the preface and h2c is on
 * (server_h1.c), or after the 101 to an HTTP/1.1 request with "Upgrade:
 * h2c" (loom__h2_upgrade; that request is stream 1). From then on
 * server_h1.c forwards the socket's hooks here (state LOOM__HC_H2) and its
 * one way out (loom__hconn_detach) calls loom__h2_free.
 *
 * Input: the bytes of a read go to nghttp2_session_mem_recv; its callbacks
 * build the request of a stream (fields copied into the request's own
 * memory, NUL-terminated), dispatch it (on_request), and feed its body
 * (buffered, or on_body). Output: nothing is written from inside nghttp2;
 * loom__h2_flush gathers nghttp2_session_mem_send's frames into one buffer
 * and writes it with one socket write - at the end of a read, or from the
 * pending phase after the application answered from elsewhere (one flush
 * per connection per iteration, however many streams were answered).
 *
 * Flow control is backpressure: the session runs with automatic
 * WINDOW_UPDATE off, and body bytes are given back (consumed) when they
 * reach the application; a paused stream keeps what arrived (at most its
 * window) and its window stays shut until loom_http_req_resume().
 *
 * A stream (loom__h2stream) lives as long as nghttp2's stream; its request
 * (loom_http_req_t) lives until the application answered or released it,
 * as on HTTP/1. An answer's unsent body stays with the stream, so an
 * answered request is freed at once.
 *
 * Loop thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <nghttp2/nghttp2.h>

#include "http/h2_check.h"
#include "http/h2_mem.h"

#include "http/server_internal.h"

#define LOOM__H2_GATHER 16384 /* bytes gathered on the stack before a write */

/* Stream flags (loom__h2stream.flags). */
enum {
    LOOM__H2S_DATA = 1u << 0,     /* the answer has a data provider */
    LOOM__H2S_OUT_END = 1u << 1,  /* the answer's body is all in ob */
    LOOM__H2S_DEFERRED = 1u << 2, /* the data provider waits for bytes */
    LOOM__H2S_IN_END = 1u << 3,   /* the client's END_STREAM arrived */
    LOOM__H2S_DRAIN = 1u << 4,    /* a write returned 1: on_drain due */
    LOOM__H2S_EOF_DUE = 1u << 5,  /* END_STREAM arrived while paused */
    LOOM__H2S_TOOBIG = 1u << 6,   /* fields or body over the limit: refused */
    LOOM__H2S_ANSWERED = 1u << 7, /* the final answer's head was submitted */
    LOOM__H2S_BAD = 1u << 8,      /* malformed (h2_check.c): reset, nothing more is read */
    LOOM__H2S_EXPECT = 1u << 9,   /* the request has an Expect field */
    LOOM__H2S_BADEXP = 1u << 10,  /* ... other than 100-continue */
    LOOM__H2S_CRST = 1u << 11     /* the client reset it (RST_STREAM) */
};

typedef struct loom__h2stream {
    loom__queue node; /* in conn->streams */
    loom__h2conn *conn;
    loom_http_req_t *req; /* NULL once the request is answered or gone */
    int32_t id;
    uint32_t flags;
    /* Fields being received: records of [u32 name len][u32 value len]
     * name NUL value NUL. */
    char *hb;
    size_t hlen, hcap, hbytes;
    uint32_t nh;
    /* Noted as the fields are recorded (loom__h2s_field), for the build:
     * where :method, :path and :authority are (record offset + 1, 0:
     * none), how many pseudo-header fields and host fields there are. */
    uint32_t at_method, at_path, at_auth;
    uint32_t npseudo, nhost;
    /* The answer's body not yet taken by nghttp2. */
    char *ob;
    size_t olen, ooff, ocap;
    /* Body bytes held while the application paused. */
    char *ib;
    size_t ilen, icap;
    uint64_t stall_ms; /* loop time since which the answer waits on a zero window, or 0 */
    loom__h2chk chk;   /* the request's HTTP rules so far */
    /* The final answer's :status and content-length values, which nghttp2
     * reads where they are (NGHTTP2_NV_FLAG_NO_COPY_VALUE) when it packs
     * the HEADERS frame: the stream outlives it. */
    char status[4];
    char clen[20];
} loom__h2stream;

struct loom__h2conn {
    nghttp2_session *ng;
    loom_socket_t *s;
    loom_http_server_t *srv;
    loom__queue streams;
    loom__pending flush_pend;
    uint32_t nstreams;
    uint32_t nreq; /* requests begun (max_keepalive_requests) */
    /* The last stream our GOAWAY named (once c->goaway): streams above it
     * are refused, and no later GOAWAY names more (loom__h2_goaway_clamp). */
    uint32_t goaway_last;
    uint32_t ndrain; /* streams whose writer waits for on_drain (LOOM__H2S_DRAIN) */
    size_t unsent;   /* answer bytes of all the streams not yet taken by nghttp2 */
    /* Inside nghttp2 or an application callback of ours: no flush (it
     * follows) and no free (loom__h2_free defers it) until back at 0. */
    unsigned busy;
    bool dead;             /* detached: free once out of nghttp2 */
    bool queued;           /* flush_pend is queued */
    bool goaway;           /* GOAWAY submitted (graceful close, max_keepalive_requests) */
    bool settings;         /* our SETTINGS not acknowledged yet */
    bool reported;         /* an error event was sent for this connection */
    bool preface;          /* Upgrade: h2c: the client's connection preface is still due */
    bool malformed;        /* a malformed request was reported (once per connection) */
    loom_timer_t *stall_t; /* zero-window stalls (loom__h2_check_stall), made on first use */
    loom__h2slot *slot;    /* the page slot of nghttp2's stream map (h2_mem.c), or NULL */
    loom__h2stream *hst;   /* the stream whose fields are arriving (saves map lookups) */
    loom__h2stream *ost;   /* the stream whose last DATA frame was packed (the same) */
    uint32_t resets;       /* rapid reset: tokens left (see loom__h2_on_reset) */
    uint32_t hb_size;      /* what the last request's record grew to: the next one's first size */
    uint64_t reset_ms;     /* loop time of the last refill */
    /* The frame walker (loom__h2_feed): where the client's frames begin
     * and end in its bytes, for the stream-state rules nghttp2 leaves
     * out. */
    uint32_t w_left;    /* payload bytes of the current frame still to pass */
    uint32_t w_max;     /* the highest stream id a HEADERS frame opened */
    uint32_t w_gap_lo;  /* the last ids the client skipped (never opened): */
    uint32_t w_gap_hi;  /* [w_gap_lo, w_gap_hi], or lo > hi for none */
    uint32_t closed[4]; /* streams closed lately: id, bit 31 if closed by the
                         * client (its RST_STREAM, or its END_STREAM and the
                         * answer's end); a ring from closed_at */
    uint8_t closed_at;
    uint8_t w_magic;    /* bytes of the client magic still to pass */
    uint8_t w_have;     /* bytes of a frame's head in w_head */
    uint8_t w_moving;   /* the current frame may close a stream (an RST_STREAM,
                         * or END_STREAM): one whose payload ends in a later
                         * read has not done so for nghttp2 yet */
    uint8_t w_head[13]; /* a frame's head (and a PRIORITY's dependency) */
    char *err;          /* why the connection ends, for its event: NULL until
                         * there is a reason (loom__h2_why; idle connections
                         * do not carry the buffer) */
};

static void loom__h2_flush(loom__h2conn *c);
static void loom__h2_free_now(loom__h2conn *c);

#define LOOM__H2_WHY_MAX 96

/* Notes why the connection may end (the event's reason); `keep`: only if
 * no reason is noted yet. The buffer is made on first use: if that fails,
 * the event has no detail. */
static void loom__h2_why(loom__h2conn *c, bool keep, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void loom__h2_why(loom__h2conn *c, bool keep, const char *fmt, ...)
{
    if (c->err != NULL && keep && c->err[0])
        return;
    if (c->err == NULL && (c->err = malloc(LOOM__H2_WHY_MAX)) == NULL)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, LOOM__H2_WHY_MAX, fmt, ap);
    va_end(ap);
}

/* --- Small helpers -------------------------------------------------------------- */

/* Ends a stretch of calls into nghttp2 or the application begun with
 * c->busy++. Returns true if the connection was closed meanwhile (it is
 * freed once no such stretch is left): the caller must not touch it. */
static bool loom__h2_leave(loom__h2conn *c)
{
    c->busy--;
    if (!c->dead)
        return false;
    if (c->busy == 0)
        loom__h2_free_now(c);
    return true;
}

/* A stream's buffers, its record and the request's fields come from the
 * loop's block cache (core/bcache.c): several per request, freed within a
 * loop iteration or two. */
static loom__bcache *loom__h2_bc(const loom__h2conn *c)
{
    return &c->s->h.loop->bc;
}

static int loom__grow_slow(loom__bcache *bc, char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap * 2 : need < 256 ? 256 : need;
    while (n < need)
        n *= 2;
    char *b = loom__bc_realloc_sized(bc, *buf, *cap, n);
    if (b == NULL)
        return LOOM_ENOMEM;
    *buf = b;
    *cap = n;
    return 0;
}

/* Makes room for `need` bytes in a block of the cache. Returns 0 or
 * LOOM_ENOMEM. */
static inline int loom__grow(loom__bcache *bc, char **buf, size_t *cap, size_t need)
{
    return LOOM__LIKELY(need <= *cap) ? 0 : loom__grow_slow(bc, buf, cap, need);
}

static loom_http_method_t loom__h2_method(const char *m, size_t n)
{
    static const struct {
        const char *s;
        loom_http_method_t m;
    } t[] = {{"GET", LOOM_HTTP_METHOD_GET},         {"HEAD", LOOM_HTTP_METHOD_HEAD},
             {"POST", LOOM_HTTP_METHOD_POST},       {"PUT", LOOM_HTTP_METHOD_PUT},
             {"DELETE", LOOM_HTTP_METHOD_DELETE},   {"CONNECT", LOOM_HTTP_METHOD_CONNECT},
             {"OPTIONS", LOOM_HTTP_METHOD_OPTIONS}, {"TRACE", LOOM_HTTP_METHOD_TRACE},
             {"PATCH", LOOM_HTTP_METHOD_PATCH}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (strlen(t[i].s) == n && memcmp(t[i].s, m, n) == 0)
            return t[i].m;
    return LOOM_HTTP_METHOD_OTHER;
}

/* Reports trouble with this connection's client, naming it. */
static void loom__h2_report(loom__h2conn *c, loom_event_kind_t kind, int code, const char *why)
{
    char peer[64], msg[256];
    loom__socket_peer_name(c->s, peer, sizeof peer);
    snprintf(msg, sizeof msg, "http2 client %s: %s", peer[0] ? peer : "?", why);
    loom__hsrv_emit(c->srv, kind, code, msg);
}

static void loom__h2_schedule(loom__h2conn *c)
{
    if (c->queued || c->busy || c->dead)
        return;
    c->queued = true;
    loom__pending_queue(c->s->h.loop, &c->flush_pend);
}

/* --- Streams -------------------------------------------------------------------- */

/* The stream's writer no longer waits for on_drain (it heard it, or the
 * request left the stream). */
static inline void loom__h2s_undrain(loom__h2stream *st)
{
    if (st->flags & LOOM__H2S_DRAIN) {
        st->flags &= ~LOOM__H2S_DRAIN;
        st->conn->ndrain--;
    }
}

static void loom__h2s_free(loom__h2stream *st)
{
    loom__bcache *bc = loom__h2_bc(st->conn);
    if (st->conn->hst == st)
        st->conn->hst = NULL;
    if (st->conn->ost == st)
        st->conn->ost = NULL;
    loom__queue_remove(&st->node);
    st->conn->nstreams--;
    st->conn->unsent -= st->olen - st->ooff;
    if (st->flags & LOOM__H2S_DRAIN)
        st->conn->ndrain--;
    loom__bc_free_sized(bc, st->hb, st->hcap);
    loom__bc_free_sized(bc, st->ob, st->ocap);
    loom__bc_free_sized(bc, st->ib, st->icap);
    loom__bc_free_sized(bc, st, sizeof *st);
}

/* The request leaves its stream without an answer on the wire (the client
 * reset the stream, or the connection went): on_close or free. */
static void loom__h2s_req_gone(loom__h2stream *st)
{
    loom_http_req_t *req = st->req;
    if (req == NULL)
        return;
    loom__h2s_undrain(st);
    st->req = NULL;
    req->p.h2 = NULL;
    loom__hreq_gone(req);
}

/* The request breaks an HTTP rule (RFC 9113 section 8.1.1): the stream
 * is reset with PROTOCOL_ERROR, and nothing more of it reaches the
 * application (a request it already has hears on_close when the reset
 * closes the stream). The reason is kept for the connection's event. */
static void loom__h2s_malformed(loom__h2stream *st, const char *why)
{
    loom__h2conn *c = st->conn;
    if (st->flags & LOOM__H2S_BAD)
        return;
    st->flags |= LOOM__H2S_BAD;
    /* Its own event, the first of the connection's: the reset bucket
     * (loom__h2_on_reset) bounds how many a client can make, and its
     * flood gets an event of its own. Not the reason of a later GOAWAY,
     * which is about something else (a connection error). */
    if (!c->malformed) {
        c->malformed = true;
        char msg[160];
        snprintf(msg, sizeof msg, "malformed request on stream %d: %s", (int)st->id, why);
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL, msg);
    }
    nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_PROTOCOL_ERROR);
}

/* The value of the field recorded at `at` - 1 (0: none; *v is left). */
static inline void loom__h2s_value(const char *hb, uint32_t at, const char **v, size_t *vl)
{
    if (at == 0)
        return;
    uint32_t nl, l;
    memcpy(&nl, hb + at - 1, 4);
    memcpy(&l, hb + at - 1 + 4, 4);
    *v = hb + at - 1 + 8 + nl + 1;
    *vl = l;
}

/* Builds the request of a stream whose fields are complete. Returns 0, or
 * an HTTP status to refuse it with (400, 431), or LOOM_ENOMEM. */
static int loom__h2s_build(loom__h2stream *st, loom_http_req_t *req)
{
    const char *method = NULL, *path = NULL, *auth = NULL;
    size_t ml = 0, pl = 0, al = 0;
    size_t nh = st->nh - st->npseudo, hostf = st->nhost;
    /* The pseudo-fields were noted where they are recorded (h2_check.c
     * has checked their presence and order). */
    loom__h2s_value(st->hb, st->at_method, &method, &ml);
    loom__h2s_value(st->hb, st->at_path, &path, &pl);
    loom__h2s_value(st->hb, st->at_auth, &auth, &al);
    if (method == NULL)
        return 400;
    if (path == NULL) { /* CONNECT: the authority is the target */
        path = auth ? auth : "";
        pl = auth ? al : 0;
    }
    if (nh + (auth && !hostf) > st->conn->srv->lim.max_headers)
        return 431;
    /* The request's memory is the record itself, grown by the field array
     * (plus a Host from :authority) and the path's own copy when a query
     * follows it: the strings are not copied again. */
    size_t nfields = nh + (auth && !hostf ? 1 : 0);
    size_t hsz = nfields * sizeof(loom_http_header_t);
    size_t at = (st->hlen + 7) & ~(size_t)7;
    size_t need = at + hsz + pl + 1;
    if (loom__grow(loom__h2_bc(st->conn), &st->hb, &st->hcap, need) < 0)
        return LOOM_ENOMEM;
    st->conn->hb_size = need <= 16384 ? (uint32_t)need : 0;
    char *m = st->hb, *str = m;
    loom_http_header_t *h = (loom_http_header_t *)(void *)(m + at);
    size_t k = 0;
    const char *host = NULL, *clv = NULL;
    size_t host_len = 0, cll = 0;
    /* One pass, on the record where it now lives: the pointers, and the
     * fields the server looks at (names are lowercase here). */
    loom__h2s_value(str, st->at_method, &method, &ml);
    loom__h2s_value(str, st->at_path, &path, &pl);
    loom__h2s_value(str, st->at_auth, &auth, &al);
    for (size_t off = 0; off < st->hlen;) {
        uint32_t nl, vl;
        memcpy(&nl, str + off, 4);
        memcpy(&vl, str + off + 4, 4);
        const char *n = str + off + 8, *v = n + nl + 1;
        if (n[0] != ':') {
            h[k].name = n;
            h[k].name_len = nl;
            h[k].value = v;
            h[k].value_len = vl;
            if (nl == 4 && memcmp(n, "host", 4) == 0 && host == NULL) {
                host = v, host_len = vl;
            } else if (nl == 14 && clv == NULL && memcmp(n, "content-length", 14) == 0) {
                clv = v, cll = vl;
            } else if (nl == 6 && memcmp(n, "expect", 6) == 0) {
                /* RFC 9110 section 10.1.1: 100-continue is the one
                 * expectation (compared without regard to case). */
                st->flags |= LOOM__H2S_EXPECT;
                if (!(vl == 12 && strncasecmp(v, "100-continue", 12) == 0))
                    st->flags |= LOOM__H2S_BADEXP;
            }
            k++;
        }
        off += 8 + nl + vl + 2;
    }
    if (path == NULL) /* CONNECT, as in pass 1 */
        path = auth ? auth : "";
    if (auth) {
        /* RFC 9113 section 8.3.1: :authority stands for Host. */
        host = auth;
        host_len = al;
        if (!hostf) {
            h[k].name = "host";
            h[k].name_len = 4;
            h[k].value = auth;
            h[k].value_len = al;
            k++;
        }
    }
    loom_http_request_t *rq = &req->rq;
    rq->method = loom__h2_method(method, ml);
    rq->method_str = method;
    rq->method_len = ml;
    rq->target = path;
    rq->target_len = pl;
    rq->minor_version = 1;
    if (host) {
        rq->host = host;
        rq->host_len = host_len;
        rq->flags |= LOOM_HTTP_F_HOST;
    }
    req->hdrs = h;
    req->nhdrs = k;
    req->mem = m;
    req->mem_cap = st->hcap <= UINT32_MAX ? (uint32_t)st->hcap : 0;
    st->hb = NULL; /* now the request's */
    st->hlen = st->hcap = 0;
    req->flags |= LOOM__HR_PERSIST;
    /* Path and query, NUL-terminated: the target itself without a query,
     * else a copy of the part before '?'. */
    const char *q = memchr(rq->target, '?', pl);
    if (q == NULL) {
        req->path = rq->target;
        req->path_len = pl;
        req->query = rq->target + pl;
        req->query_len = 0;
    } else {
        char *pc = (char *)(h + nfields);
        size_t plen = (size_t)(q - rq->target);
        memcpy(pc, rq->target, plen);
        pc[plen] = '\0';
        req->path = pc;
        req->path_len = plen;
        req->query = q + 1;
        req->query_len = pl - plen - 1;
    }
    /* The host's characters were looked at with the fields' own
     * (h2_check.c); the server's check runs only where that did not say. */
    if (host && !loom__h2chk_host_ok(&st->chk, auth != NULL) &&
        loom__hreq_check_host(st->conn->srv, rq, k) == 400)
        return 400;
    /* Content-Length announces the body (h2_check.c checks it matches). */
    if (clv) {
        uint64_t v = 0;
        for (size_t i = 0; i < cll && v < (UINT64_C(1) << 60); i++)
            v = v * 10 + (uint64_t)(clv[i] - '0');
        req->body_size = v;
    }
    return 0;
}

/* Refuses a stream before the application saw it: a canned answer. */
static void loom__h2s_refuse(loom__h2stream *st, int status)
{
    char sv[3];
    loom__put_status(sv, status);
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)sv, 7, 3, NGHTTP2_NV_FLAG_NONE}};
    st->flags |= LOOM__H2S_ANSWERED | LOOM__H2S_TOOBIG;
    nghttp2_submit_response(st->conn->ng, st->id, nv, 1, NULL);
}

/* Feeds body bytes to the request (buffered or on_body). Returns false if
 * the stream was refused or reset. */
static bool loom__h2s_body(loom__h2stream *st, const char *p, size_t n)
{
    loom__h2conn *c = st->conn;
    loom_http_req_t *req = st->req;
    loom_http_server_t *srv = c->srv;
    if (req == NULL || req->astate == LOOM__HA_DONE) {
        nghttp2_session_consume_stream(c->ng, st->id, n);
        return true;
    }
    if (srv->o.on_body == NULL) {
        if (req->body_len + n > srv->lim.max_body_size) {
            loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG, "request body too large");
            loom__hreq_free(req);
            st->req = NULL;
            loom__h2s_refuse(st, 413);
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
            return false;
        }
        if (loom__hreq_body_append(req, p, n) < 0) {
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
            return false;
        }
        nghttp2_session_consume_stream(c->ng, st->id, n);
        return true;
    }
    if (req->flags & LOOM__HR_PAUSED) {
        if (loom__grow(loom__h2_bc(st->conn), &st->ib, &st->icap, st->ilen + n) < 0)
            return false;
        memcpy(st->ib + st->ilen, p, n);
        st->ilen += n;
        return true;
    }
    req->flags |= LOOM__HR_IN_CB;
    int v = loom__hreq_on_body(srv, req, p, n);
    req->flags &= ~LOOM__HR_IN_CB;
    if (v == LOOM_HTTP_PAUSE && st->req == req && req->astate != LOOM__HA_DONE)
        req->flags |= LOOM__HR_PAUSED;
    if (!c->dead)
        nghttp2_session_consume_stream(c->ng, st->id, n);
    return true;
}

/* The body is complete: dispatch (buffered) or the end call (on_body). */
static void loom__h2s_body_end(loom__h2stream *st)
{
    loom_http_req_t *req = st->req;
    loom_http_server_t *srv = st->conn->srv;
    if (req == NULL)
        return;
    if (req->flags & LOOM__HR_PAUSED) {
        st->flags |= LOOM__H2S_EOF_DUE;
        return;
    }
    req->bstate = LOOM__HB_NONE;
    if (srv->o.on_body == NULL) {
        loom__hreq_dispatch(srv, req);
    } else if (req->astate != LOOM__HA_DONE) {
        req->flags |= LOOM__HR_IN_CB;
        loom__hreq_on_body(srv, req, NULL, 0);
        req->flags &= ~LOOM__HR_IN_CB;
    }
}

/* "100 Continue" for a request that said Expect: 100-continue: a HEADERS
 * frame with :status 100 (RFC 9113 section 8.1), once per request. */
static void loom__h2s_continue(loom__h2stream *st, loom_http_req_t *req)
{
    if (req->flags & LOOM__HR_CONT_SENT)
        return;
    req->flags |= LOOM__HR_CONT_SENT;
    nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_headers(st->conn->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nv, 1, NULL);
}

/* The fields of a request are complete: make the request and, in streaming
 * mode or without a body, hand it to the application. */
static void loom__h2s_begin(loom__h2stream *st, bool end_stream)
{
    loom__h2conn *c = st->conn;
    loom_http_server_t *srv = c->srv;
    /* max_keepalive_requests: the connection's last request. GOAWAY names
     * its stream: later streams are refused (the client retries them on a
     * new connection), the ones up to it are served, then the connection
     * closes (loom__h2_settle). As on HTTP/1, above 65535 is no limit. */
    if (c->goaway && (uint32_t)st->id > c->goaway_last) {
        /* nghttp2 takes new streams until our GOAWAY has been sent, not
         * only submitted: one opened behind the request that decided it
         * (in the same read) is above the last stream it names. Refused,
         * as that GOAWAY tells the client (it retries it elsewhere, RFC
         * 9113 section 6.8); answering it would make the client's retry
         * run the request twice. */
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_REFUSED_STREAM);
        return;
    }
    uint32_t mk = srv->o.max_keepalive_requests;
    if (mk && mk <= 65535 && ++c->nreq >= mk && !c->goaway) {
        c->goaway = true;
        c->goaway_last = (uint32_t)st->id;
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR, NULL, 0);
    }
    if (st->flags & LOOM__H2S_TOOBIG) {
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG, "request header fields too large");
        loom__h2s_refuse(st, 431);
        return;
    }
    loom_http_req_t *req = loom__hreq_new(srv, c->s, &loom__h2_proto);
    if (req == NULL) {
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        return;
    }
    int r = loom__h2s_build(st, req);
    if (r != 0) {
        loom__hreq_free(req);
        if (r < 0) {
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
            return;
        }
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, r == 431 ? LOOM_ETOOBIG : LOOM_EHTTP,
                        r == 431 ? "too many header fields" : "invalid host");
        loom__h2s_refuse(st, r);
        return;
    }
    if (req->rq.method == LOOM_HTTP_METHOD_OTHER) {
        loom__hreq_free(req);
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "method not implemented");
        loom__h2s_refuse(st, 501);
        return;
    }
    if (req->body_size != UINT64_MAX && req->body_size > srv->lim.max_body_size) {
        loom__hreq_free(req);
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG, "request body too large");
        loom__h2s_refuse(st, 413);
        return;
    }
    /* Expect (RFC 9110 section 10.1.1): 100-continue is honoured as on
     * HTTP/1 (below), any other expectation gets 417. */
    if (st->flags & LOOM__H2S_BADEXP) {
        loom__hreq_free(req);
        loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_EHTTP, "unsupported expectation");
        loom__h2s_refuse(st, 417);
        return;
    }
    bool expect = false;
    if (st->flags & LOOM__H2S_EXPECT) {
        req->rq.flags |= LOOM_HTTP_F_EXPECT_CONTINUE;
        expect = !end_stream;
    }
    st->req = req;
    req->p.h2 = st;
    req->h2_id = (uint32_t)st->id;
    req->bstate = end_stream ? LOOM__HB_NONE : LOOM__HB_READ;
    if (end_stream) {
        loom__hreq_dispatch(srv, req);
        if (srv->o.on_body && st->req == req && req->astate != LOOM__HA_DONE) {
            req->flags |= LOOM__HR_IN_CB;
            loom__hreq_on_body(srv, req, NULL, 0);
            req->flags &= ~LOOM__HR_IN_CB;
        }
    } else if (srv->o.on_body) {
        loom__hreq_dispatch(srv, req);
        /* The application read the head and did not answer: it wants the
         * body, so the client may send it. */
        if (expect && !c->dead && st->req == req && req->astate == LOOM__HA_NONE &&
            !(req->flags & LOOM__HR_GONE))
            loom__h2s_continue(st, req);
    } else if (expect) {
        loom__h2s_continue(st, req); /* buffered: the body is read at once */
    }
}

/* --- nghttp2 callbacks ---------------------------------------------------------- */

/* memcpy for the short strings of fields (most are under 32 bytes): two
 * overlapping moves of a fixed size instead of a call. */
static inline void loom__h2_copy(char *d, const char *s, size_t n)
{
    if (n >= 8 && n <= 16) {
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        memcpy(d, &a, 8);
        memcpy(d + n - 8, &b, 8);
    } else if (n >= 4 && n < 8) {
        uint32_t a, b;
        memcpy(&a, s, 4);
        memcpy(&b, s + n - 4, 4);
        memcpy(d, &a, 4);
        memcpy(d + n - 4, &b, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
    } else {
        memcpy(d, s, n);
    }
}

/* Appends a field to the stream's record of fields being received (see
 * loom__h2stream.hb); `lower`: the name is lowercased on the way. Returns 0
 * or LOOM_ENOMEM. */
static LOOM__INLINE int loom__h2s_field(loom__h2stream *st, const char *name, size_t nl,
                                        const char *value, size_t vl, bool lower)
{
    size_t need = st->hlen + 8 + nl + vl + 2;
    if (st->hcap == 0 && need < st->conn->hb_size)
        need = st->conn->hb_size; /* requests on a connection look alike: one block */
    if (loom__grow(loom__h2_bc(st->conn), &st->hb, &st->hcap, need) < 0)
        return LOOM_ENOMEM;
    uint32_t n32 = (uint32_t)nl, v32 = (uint32_t)vl;
    char *o = st->hb + st->hlen;
    /* Noted for the build (see loom__h2stream): a pseudo-header field
     * here is one h2_check.c passed (or the upgrade's own). */
    if (nl > 1 && name[0] == ':') {
        uint32_t at = (uint32_t)st->hlen + 1;
        st->npseudo++;
        if (nl == 7 && name[1] == 'm')
            st->at_method = at;
        else if (nl == 5 && name[1] == 'p')
            st->at_path = at;
        else if (nl == 10 && name[1] == 'a')
            st->at_auth = at;
    } else if (nl == 4 && (name[0] | 0x20) == 'h' && strncasecmp(name, "host", 4) == 0) {
        st->nhost++;
    }
    memcpy(o, &n32, 4);
    memcpy(o + 4, &v32, 4);
    loom__h2_copy(o + 8, name, nl);
    for (size_t i = 0; lower && i < nl; i++)
        if (o[8 + i] >= 'A' && o[8 + i] <= 'Z')
            o[8 + i] = (char)(o[8 + i] + 32);
    o[8 + nl] = '\0';
    loom__h2_copy(o + 9 + nl, value, vl);
    o[9 + nl + vl] = '\0';
    st->hlen += 8 + nl + vl + 2;
    st->nh++;
    return 0;
}

static int loom__h2_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    loom__h2conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    loom__h2stream *st = loom__bc_calloc(loom__h2_bc(c), sizeof *st);
    if (st == NULL)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    st->conn = c;
    st->id = f->hd.stream_id;
    loom__h2chk_init(&st->chk);
    loom__queue_insert_tail(&c->streams, &st->node);
    c->nstreams++;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    c->hst = st;
    return 0;
}

/* The stream a frame sent with END_STREAM, or a stream's close, is
 * about: usually the one whose last DATA frame was packed last. */
static loom__h2stream *loom__h2_ostream(loom__h2conn *c, int32_t id)
{
    if (c->ost != NULL && c->ost->id == id)
        return c->ost;
    return nghttp2_session_get_stream_user_data(c->ng, id);
}

/* The stream a HEADERS frame is for: usually the one whose fields began
 * last. */
static loom__h2stream *loom__h2_hstream(loom__h2conn *c, int32_t id)
{
    if (c->hst != NULL && c->hst->id == id)
        return c->hst;
    return nghttp2_session_get_stream_user_data(c->ng, id);
}

static int loom__h2_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                              size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags;
    loom__h2conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    (void)ng;
    loom__h2stream *st = loom__h2_hstream(c, f->hd.stream_id);
    if (st == NULL || (st->flags & LOOM__H2S_BAD))
        return 0;
    bool trailer = f->headers.cat != NGHTTP2_HCAT_REQUEST;
    const char *why = loom__h2chk_field(&st->chk, name, nl, value, vl, trailer);
    if (why != NULL) {
        loom__h2s_malformed(st, why);
        return 0;
    }
    if (trailer || (st->flags & LOOM__H2S_TOOBIG))
        return 0; /* trailers are not kept */
    /* The decoded list is bounded (HPACK bombs, CONTINUATION floods): past
     * the limit nothing more is kept and the stream gets 431. */
    st->hbytes += nl + vl + 32;
    if (st->hbytes > c->srv->lim.max_header_bytes + 32u * 4 ||
        st->nh >= c->srv->lim.max_headers + 4) {
        st->flags |= LOOM__H2S_TOOBIG;
        return 0;
    }
    if (loom__h2s_field(st, (const char *)name, nl, (const char *)value, vl, false) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

/* Rapid reset (CVE-2023-44487): every RST_STREAM from the client costs a
 * token of a bucket of reset_burst, refilled at reset_rate per second;
 * an empty bucket ends the connection with GOAWAY ENHANCE_YOUR_CALM.
 * (nghttp2's own limit, set wider, is the backstop.) So does every stream
 * the server resets because of the client's error (`ours`: MadeYouReset,
 * CVE-2025-8671, below), which nghttp2 1.52 does not count. */
static void loom__h2_on_reset(loom__h2conn *c, bool ours)
{
    const loom_http2_opts *o = &c->srv->o.http2;
    uint32_t burst = o->reset_burst ? o->reset_burst : 200;
    uint32_t rate = o->reset_rate ? o->reset_rate : 50;
    uint64_t now = c->s->h.loop->now;
    uint64_t add = (now - c->reset_ms) * rate / 1000;
    if (add) {
        c->resets = add >= burst - c->resets ? burst : c->resets + (uint32_t)add;
        c->reset_ms = now;
    }
    if (c->resets > 0) {
        c->resets--;
        return;
    }
    if (ours)
        loom__h2_why(c, false, "reset flood: more than %u streams reset for the client's errors",
                     burst);
    else
        loom__h2_why(c, false, "rapid reset: more than %u stream resets", burst);
    nghttp2_session_terminate_session(c->ng, NGHTTP2_ENHANCE_YOUR_CALM);
}

static int loom__h2_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    loom__h2conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    c->preface = false; /* a frame came: the preface (magic and SETTINGS) did */
    if (f->hd.type == NGHTTP2_SETTINGS && (f->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->settings = false;
        return 0;
    }
    if (f->hd.stream_id == 0)
        return 0;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        loom__h2stream *rst = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (rst != NULL)
            rst->flags |= LOOM__H2S_CRST; /* (nghttp2 closes it next) */
        loom__h2_on_reset(c, false);
        return 0;
    }
    loom__h2stream *st = f->hd.type == NGHTTP2_HEADERS
                             ? loom__h2_hstream(c, f->hd.stream_id)
                             : nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL)
        return 0;
    if (st->flags & LOOM__H2S_BAD)
        return 0;
    bool end = (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    const char *why = NULL;
    if (f->hd.type == NGHTTP2_HEADERS)
        why = f->headers.cat == NGHTTP2_HCAT_REQUEST ? loom__h2chk_head(&st->chk, end)
                                                     : loom__h2chk_trailers(&st->chk, end);
    else if (f->hd.type == NGHTTP2_DATA && end)
        why = loom__h2chk_end(&st->chk);
    if (why != NULL) {
        loom__h2s_malformed(st, why);
        return 0;
    }
    if (f->hd.type == NGHTTP2_HEADERS && f->headers.cat == NGHTTP2_HCAT_REQUEST) {
        if (end)
            st->flags |= LOOM__H2S_IN_END;
        loom__h2s_begin(st, end);
        return 0;
    }
    if ((f->hd.type == NGHTTP2_DATA || f->hd.type == NGHTTP2_HEADERS) && end) {
        st->flags |= LOOM__H2S_IN_END;
        if (st->req && st->req->bstate == LOOM__HB_READ)
            loom__h2s_body_end(st);
    }
    return 0;
}

static int loom__h2_on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id,
                                  const uint8_t *data, size_t len, void *ud)
{
    (void)flags;
    loom__h2conn *c = ud;
    if (c->dead)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    /* The connection's window opens at once (one stream must not stall
     * the others); a stream's window opens as its bytes are consumed. */
    nghttp2_session_consume_connection(ng, len);
    loom__h2stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st != NULL && !(st->flags & LOOM__H2S_BAD)) {
        const char *why = loom__h2chk_data(&st->chk, len);
        if (why != NULL)
            loom__h2s_malformed(st, why);
    }
    if (st == NULL || st->req == NULL || (st->flags & LOOM__H2S_BAD)) {
        nghttp2_session_consume_stream(ng, id, len);
        return 0;
    }
    loom__h2s_body(st, (const char *)data, len);
    return 0;
}

static int loom__h2_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)ng;
    loom__h2conn *c = ud;
    loom__h2stream *st = loom__h2_ostream(c, id);
    /* Noted for the frames that may still come on it (loom__h2_feed): a
     * stream the client closed (its RST_STREAM, or its END_STREAM and then
     * the answer's, with no reset) gets none; one the server reset may
     * (RFC 9113 section 5.1, "closed"). */
    bool by_client = st != NULL && ((st->flags & LOOM__H2S_CRST) ||
                                    ((st->flags & LOOM__H2S_IN_END) && code == NGHTTP2_NO_ERROR));
    c->closed[c->closed_at++ & 3] = (uint32_t)id | (by_client ? UINT32_C(0x80000000) : 0);
    if (st == NULL)
        return 0;
    /* (nghttp2 destroys the stream when this returns: no closed streams
     * are kept, so its user data is not reset.) */
    loom__h2s_req_gone(st); /* reset before its answer: on_close */
    loom__h2s_free(st);
    return 0;
}

/* True for the error codes of a stream reset for what the client did
 * (nghttp2's stream errors and loom's malformed requests), not for one the
 * server chose (NO_ERROR, CANCEL, INTERNAL_ERROR, REFUSED_STREAM: the
 * stream never reached the application). */
static bool loom__h2_peer_fault(uint32_t code)
{
    return code == NGHTTP2_PROTOCOL_ERROR || code == NGHTTP2_FLOW_CONTROL_ERROR ||
           code == NGHTTP2_STREAM_CLOSED || code == NGHTTP2_FRAME_SIZE_ERROR ||
           code == NGHTTP2_COMPRESSION_ERROR;
}

static int loom__h2_on_frame_send(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    loom__h2conn *c = ud;
    if (f->hd.type == NGHTTP2_SETTINGS && !(f->hd.flags & NGHTTP2_FLAG_ACK)) {
        c->settings = true;
    } else if (f->hd.type == NGHTTP2_GOAWAY && f->goaway.error_code != NGHTTP2_NO_ERROR &&
               !c->reported) {
        /* The reason noted, else what nghttp2 put in the frame's debug
         * data (its own connection errors), else the code alone. */
        const char *r = c->err ? c->err : "";
        int rl = (int)strlen(r);
        if (rl == 0 && f->goaway.opaque_data_len > 0) {
            r = (const char *)f->goaway.opaque_data;
            rl = f->goaway.opaque_data_len < LOOM__H2_WHY_MAX ? (int)f->goaway.opaque_data_len
                                                              : LOOM__H2_WHY_MAX;
        }
        char why[160];
        snprintf(why, sizeof why, "GOAWAY %s%s%.*s", nghttp2_http2_strerror(f->goaway.error_code),
                 rl ? ": " : "", rl, r);
        loom__h2_report(c, LOOM_EV_HTTP_ERROR,
                        f->goaway.error_code == NGHTTP2_ENHANCE_YOUR_CALM ? LOOM_ETOOMANY
                                                                          : LOOM_EPROTOCOL,
                        why);
        c->reported = true; /* one event for the connection's end */
    } else if (f->hd.type == NGHTTP2_RST_STREAM && loom__h2_peer_fault(f->rst_stream.error_code)) {
        /* MadeYouReset (CVE-2025-8671): a client that makes the server
         * reset its streams (a malformed request, a stream window pushed
         * past 2^31-1, too much DATA: nghttp2's stream errors) frees their
         * slots of max concurrent streams as surely as with its own
         * RST_STREAM, while what they started may still run: each costs a
         * token of the same bucket. */
        loom__h2_on_reset(c, true);
    } else if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
               (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* The answer is complete before the request's body: the rest is
         * not wanted (RFC 9113 section 8.1). */
        loom__h2stream *st = loom__h2_ostream(c, f->hd.stream_id);
        if (st && !(st->flags & LOOM__H2S_IN_END))
            nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
    }
    return 0;
}

static int loom__h2_on_error(nghttp2_session *ng, int code, const char *msg, size_t len, void *ud)
{
    (void)ng;
    (void)code;
    loom__h2conn *c = ud;
    loom__h2_why(c, false, "%.*s", (int)(len < LOOM__H2_WHY_MAX ? len : LOOM__H2_WHY_MAX), msg);
    return 0;
}

/* Rapid reset (CVE-2023-44487): every stream the client resets before its
 * answer costs a token. nghttp2 counts the same with its own bucket and
 * answers with GOAWAY ENHANCE_YOUR_CALM (on_frame_send reports it). */
static int loom__h2_on_invalid_frame(nghttp2_session *ng, const nghttp2_frame *f, int err, void *ud)
{
    (void)ng;
    (void)f;
    loom__h2conn *c = ud;
    loom__h2_why(c, true, "%s", nghttp2_strerror(err));
    return 0;
}

/* The data provider of an answer: its body as the application gave it. */
static ssize_t loom__h2_data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                                  uint32_t *dflags, nghttp2_data_source *src, void *ud)
{
    (void)ng;
    (void)id;
    (void)ud;
    loom__h2stream *st = src->ptr;
    size_t avail = st->olen - st->ooff;
    if (avail == 0) {
        if (st->flags & LOOM__H2S_OUT_END) {
            *dflags |= NGHTTP2_DATA_FLAG_EOF;
            st->conn->ost = st;
            return 0;
        }
        st->flags |= LOOM__H2S_DEFERRED;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = avail < len ? avail : len;
    memcpy(buf, st->ob + st->ooff, n);
    st->ooff += n;
    st->conn->unsent -= n;
    if (st->ooff == st->olen) {
        st->ooff = st->olen = 0;
        if (st->flags & LOOM__H2S_OUT_END) {
            *dflags |= NGHTTP2_DATA_FLAG_EOF;
            st->conn->ost = st;
        } else if (st->ocap > 65536) {
            free(st->ob); /* an idle stream holds no buffer */
            st->ob = NULL;
            st->ocap = 0;
        }
    }
    return (ssize_t)n;
}

/* --- The connection ------------------------------------------------------------- */

/* nghttp2's memory. A session allocates its output frame buffer (one
 * frame's worth, 16 KiB and a header) when it is made and keeps it for its
 * life: most of an idle connection's memory. The frames in it are only
 * needed from their packing until nghttp2_session_mem_send() hands them
 * over, and loom__h2_flush copies them at once (into its gather buffer or
 * the socket's write) before nghttp2 runs any callback of the connection
 * that could start another flush (sl->h2_sending defers those). So every
 * session of a loop packs into the same per-loop buffer: the first
 * allocation of that size during nghttp2_session_server_new3 gets it, and
 * freeing it is a no-op. (Extra chunks of a frame larger than one buffer
 * - a long header block - are the session's own, as nghttp2 allocates
 * them while packing.) A zeroed page is a slot of h2_mem.c (below).
 * Everything else goes through the loop's block cache (core/bcache.c):
 * nghttp2 makes and frees its stream, outbound items and field copies for
 * every request. */
#define LOOM__H2_FRAMEBUF_MIN 16384u /* nghttp2: 9-byte header + 1 + 16384 */
#define LOOM__H2_FRAMEBUF_MAX (16384u + 64u)

static void *loom__h2_mem_malloc(size_t size, void *ud)
{
    loom__hsrv_loop *sl = ud;
    if (sl->h2_making && size > LOOM__H2_FRAMEBUF_MIN && size <= LOOM__H2_FRAMEBUF_MAX) {
        if (sl->h2_frame == NULL) {
            sl->h2_frame = malloc(size);
            sl->h2_frame_len = sl->h2_frame ? size : 0;
        }
        if (sl->h2_frame != NULL && size == sl->h2_frame_len) {
            sl->h2_making = false; /* one per session */
            return sl->h2_frame;
        }
    }
    return loom__bc_alloc(&sl->loop->bc, size);
}

/* A page slot is page-aligned; malloc's blocks (16-aligned) seldom are, so
 * most frees skip the arena's lookup. */
static bool loom__h2_mem_slot(const loom__hsrv_loop *sl, const void *p)
{
    return ((uintptr_t)p & (LOOM__H2SLOT_SIZE - 1)) == 0 && sl->h2_arena != NULL &&
           loom__h2arena_find(sl->h2_arena, p) != NULL;
}

static void loom__h2_mem_free(void *p, void *ud)
{
    loom__hsrv_loop *sl = ud;
    if (p == NULL || p == sl->h2_frame)
        return;
    if (((uintptr_t)p & (LOOM__H2SLOT_SIZE - 1)) == 0 && loom__h2arena_free(sl->h2_arena, p))
        return;
    loom__bc_free(&sl->loop->bc, p);
}

/* A zeroed page (nghttp2 1.52's stream map: 256 buckets of 16 bytes) comes
 * from the loop's page slots, given back to the kernel while the
 * connection is idle and the page all zero (h2_mem.c). */
static void *loom__h2_mem_calloc(size_t n, size_t size, void *ud)
{
    loom__hsrv_loop *sl = ud;
    if (n <= LOOM__H2SLOT_SIZE && size <= LOOM__H2SLOT_SIZE && n * size == LOOM__H2SLOT_SIZE) {
        void *p = loom__h2arena_calloc(&sl->h2_arena, sl->loop, &sl->h2_slot);
        if (p != NULL)
            return p;
    }
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    return loom__bc_calloc(&sl->loop->bc, n * size);
}

static void *loom__h2_mem_realloc(void *p, size_t size, void *ud)
{
    loom__hsrv_loop *sl = ud;
    if (p == NULL) /* nghttp2 makes its buffers with realloc(NULL, n) */
        return loom__h2_mem_malloc(size, ud);
    if (p == sl->h2_frame) {
        void *q = malloc(size);
        if (q != NULL)
            memcpy(q, p, size < sl->h2_frame_len ? size : sl->h2_frame_len);
        return q;
    }
    if (loom__h2_mem_slot(sl, p)) {
        void *q = malloc(size);
        if (q != NULL) {
            memcpy(q, p, size < LOOM__H2SLOT_SIZE ? size : LOOM__H2SLOT_SIZE);
            loom__h2arena_free(sl->h2_arena, p);
        }
        return q;
    }
    return loom__bc_realloc(&sl->loop->bc, p, size);
}

bool loom__h2_enabled(const loom_http_server_t *srv, bool tls)
{
    /* h2c is for cleartext only (RFC 9113 section 3.3): on a TLS server,
     * HTTP/2 is chosen by ALPN, and a client that chose http/1.1 and then
     * sends the preface is an HTTP/1.1 client with the method PRI. */
    return tls ? !srv->o.http2.disable : srv->o.http2.h2c && srv->o.tls == NULL;
}

static void loom__h2_flush_cb(loom__pending *p)
{
    loom__h2conn *c = LOOM__CONTAINER_OF(p, loom__h2conn, flush_pend);
    c->queued = false;
    loom__h2_flush(c);
}

/* Zero-window stalls: an answer that waits on a window the client keeps
 * shut makes no progress although the socket is idle, so the socket's
 * write timeout cannot see it. Each stream remembers since when it waits;
 * a timer resets the streams that waited longer than the write timeout
 * (RST_STREAM CANCEL, an event, on_close for a request still owned). */
static void loom__h2_stall_cb(loom_timer_t *t, void *data);

static void loom__h2_check_stall(loom__h2conn *c)
{
    uint32_t wt = c->s->cls->write_timeout_ms;
    if (wt == 0)
        return;
    uint64_t now = c->s->h.loop->now;
    bool any = false;
    bool conn_shut = nghttp2_session_get_remote_window_size(c->ng) <= 0;
    for (loom__queue *q = c->streams.next; q != &c->streams; q = q->next) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        if (st->olen > st->ooff &&
            (conn_shut || nghttp2_session_get_stream_remote_window_size(c->ng, st->id) <= 0)) {
            if (st->stall_ms == 0)
                st->stall_ms = now ? now : 1;
            any = true;
        } else {
            st->stall_ms = 0;
        }
    }
    if (!any)
        return;
    if (c->stall_t == NULL) {
        if (loom_timer_new(c->s->h.loop, &c->stall_t, loom__h2_stall_cb, c) < 0)
            return;
        loom_timer_unref(c->stall_t);
    }
    if (!loom_timer_active(c->stall_t))
        loom_timer_start(c->stall_t, wt / 2 ? wt / 2 : 1, 0);
}

static void loom__h2_stall_cb(loom_timer_t *t, void *data)
{
    (void)t;
    loom__h2conn *c = data;
    if (c->dead)
        return;
    uint32_t wt = c->s->cls->write_timeout_ms;
    uint64_t now = c->s->h.loop->now;
    c->busy++;
    for (loom__queue *q = c->streams.next; q != &c->streams && !c->dead;) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        q = q->next;
        if (st->stall_ms == 0 || now - st->stall_ms < wt)
            continue;
        char why[96];
        snprintf(why, sizeof why, "stream %d: response write timeout (zero window)", st->id);
        loom__h2_report(c, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, why);
        st->stall_ms = 0;
        c->unsent -= st->olen - st->ooff;
        st->olen = st->ooff = 0;
        nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
        loom__h2s_req_gone(st);
    }
    if (loom__h2_leave(c))
        return;
    loom__h2_flush(c);
}

/* True if a stream waits for request body bytes the application wants
 * (not paused). O(streams), at most max_concurrent_streams. */
static bool loom__h2_body_due(loom__h2conn *c)
{
    for (loom__queue *q = c->streams.next; q != &c->streams; q = q->next) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        if (st->req && st->req->bstate == LOOM__HB_READ && !(st->req->flags & LOOM__HR_PAUSED))
            return true;
    }
    return false;
}

static void loom__h2_settle(loom__h2conn *c)
{
    loom_http_server_t *srv = c->srv;
    loom_socket_t *s = c->s;
    if (c->dead || loom_socket_closed(s))
        return;
    loom__h2_check_stall(c);
    if (!nghttp2_session_want_read(c->ng) && !nghttp2_session_want_write(c->ng)) {
        loom__h1_close(s, true); /* GOAWAY done and every stream finished */
        return;
    }
    /* Reading goes on (control frames, other streams) unless the output is
     * above high water; an idle connection has the idle timeout, one that
     * has not acknowledged our SETTINGS the header timeout. */
    unsigned g = 0;
    if (c->preface)
        g = srv->g_head ? srv->g_head : srv->g_idle; /* after a 101, whatever stream 1 does */
    else if (c->nstreams == 0)
        g = c->settings && srv->g_head ? srv->g_head : srv->g_idle;
    else if (loom__h2_body_due(c))
        g = srv->g_body; /* a request body is awaited: the body timeout */
    if (loom__socket_high(s))
        loom__socket_read_stop(s);
    else
        loom__socket_read_start(s);
    loom__socket_set_rgroup(s, g);
}

/* The connection's budget for the answer bytes of all its streams not yet
 * taken by nghttp2 (c->unsent), in high waters: what streams that wait on
 * their own window may hold without holding the others back (below, and
 * docs/HTTP2.md, Flow control is backpressure). */
#define LOOM__H2_BUDGET 4

/* Of the connection's unsent answer bytes (c->unsent), those that can
 * leave as fast as the socket takes them ("moving"): all but the ones of
 * streams that wait on their own flow-control window while the
 * connection's is open ("held": the client keeps that stream shut, and
 * its bytes must not hold the other streams' writers back). With the
 * connection's window shut nothing can leave and everything counts.
 * `due`: if not NULL, set to the first stream whose writer waits for
 * on_drain and whose own backlog is at most lw (or NULL). O(streams), one
 * window lookup per stream with a backlog: asked only when a write may be
 * behind and when on_drain calls are due. */
static size_t loom__h2_moving(loom__h2conn *c, loom__h2stream **due, size_t lw)
{
    bool conn_open = nghttp2_session_get_remote_window_size(c->ng) > 0;
    size_t n = 0;
    if (due != NULL)
        *due = NULL;
    for (loom__queue *q = c->streams.next; q != &c->streams; q = q->next) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        size_t own = st->olen - st->ooff;
        if (own &&
            !(conn_open && nghttp2_session_get_stream_remote_window_size(c->ng, st->id) <= 0))
            n += own;
        if (due != NULL && *due == NULL && (st->flags & LOOM__H2S_DRAIN) && st->req && own <= lw &&
            st->req->astate == LOOM__HA_STREAM)
            *due = st;
    }
    return n;
}

/* The connection's part of a write's verdict (the stream's own backlog is
 * under high water): behind when the moving bytes with the socket's queue
 * q reach high water, or everything unsent with q reaches the budget. */
static bool loom__h2_conn_behind(loom__h2conn *c, size_t q, size_t hw)
{
    if (c->unsent + q < hw)
        return false; /* the usual case: no lookup */
    return loom__h2_moving(c, NULL, 0) + q >= hw ||
           (uint64_t)c->unsent + q >= (uint64_t)hw * LOOM__H2_BUDGET;
}

/* A GOAWAY frame about to be written (p[0..n), a copy of nghttp2's):
 * once ours named a last stream, a later one names no higher (RFC 9113
 * section 6.8: the last stream id must not grow). nghttp2 1.52 takes new
 * streams until our GOAWAY has been sent, so a connection error it finds
 * later (its own GOAWAY, with the last stream it took) would name one of
 * the streams our GOAWAY left out and loom refused (loom__h2s_begin). */
static void loom__h2_goaway_clamp(loom__h2conn *c, uint8_t *p, size_t n)
{
    if (!c->goaway || n < 17 || p[3] != NGHTTP2_GOAWAY)
        return;
    uint32_t last =
        ((uint32_t)p[9] << 24 | (uint32_t)p[10] << 16 | (uint32_t)p[11] << 8 | p[12]) & 0x7fffffffu;
    if (last <= c->goaway_last)
        return;
    p[9] = (uint8_t)(c->goaway_last >> 24);
    p[10] = (uint8_t)(c->goaway_last >> 16);
    p[11] = (uint8_t)(c->goaway_last >> 8);
    p[12] = (uint8_t)c->goaway_last;
}

/* Rounds of on_drain calls and the sends they cause in one flush; the
 * rest waits for the pending phase (other connections get their turn, and
 * the stack stays flat however fast the client takes the bytes). */
#define LOOM__H2_DRAIN_ROUNDS 8

/* Sends what nghttp2 has to send, gathered into as few writes as the
 * stack buffer allows (one for the usual small answers), then runs the
 * on_drain calls that became due and settles the connection. */
static void loom__h2_flush(loom__h2conn *c)
{
    if (c->busy || c->dead)
        return;
    loom__hsrv_loop *sl = c->srv->sl;
    unsigned rounds = 0;
again:
    if (sl->h2_sending) {
        /* Called from inside another connection's flush (an application
         * callback run by nghttp2): the frame buffer is in use. */
        loom__h2_schedule(c);
        return;
    }
    loom__h2arena_touch(sl->h2_arena, c->slot);
    loom_socket_t *s = c->s;
    char buf[LOOM__H2_GATHER];
    size_t bl = 0;
    sl->h2_sending = true;
    while (!loom_socket_closed(s) && !loom__socket_high(s)) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(c->ng, &d);
        if (n < 0) {
            sl->h2_sending = false;
            loom__h2_report(c, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL, nghttp2_strerror((int)n));
            loom__h1_close(s, false);
            return;
        }
        if (n == 0)
            break;
        if (bl + (size_t)n > sizeof buf) {
            loom_socket_write(s, buf, bl);
            bl = 0;
        }
        if ((size_t)n > sizeof buf) {
            loom_socket_write(s, d, (size_t)n);
            continue;
        }
        memcpy(buf + bl, d, (size_t)n);
        loom__h2_goaway_clamp(c, (uint8_t *)buf + bl, (size_t)n);
        bl += (size_t)n;
    }
    sl->h2_sending = false;
    if (bl && !loom_socket_closed(s))
        loom_socket_write(s, buf, bl);
    if (c->dead || loom_socket_closed(s))
        return;
    /* Writers that were told to wait hear on_drain once their stream's
     * backlog and the socket are low again. */
    loom_http_server_t *srv = c->srv;
    /* A socket whose send failed (the client reset it) drains nothing: the
     * loop reports the error and the streams' requests hear on_close. */
    if (srv->o.on_drain && c->ndrain && !loom__socket_high(s) && !loom__hsock_broken(s)) {
        size_t lw = s->cls->low_water, hw = s->cls->high_water;
        /* Room for a high water's worth of writes under the budget. */
        uint64_t room = (uint64_t)hw * (LOOM__H2_BUDGET - 1);
        bool called = false;
        c->busy++;
        /* A drain call may end other streams: take one due stream at a
         * time from the start of the list. */
        while (!c->dead && c->ndrain && c->unsent <= room) {
            loom__h2stream *due;
            /* ... and the connection's moving backlog is low again too
             * (bytes that wait on their stream's shut window are not). */
            if (loom__h2_moving(c, &due, lw) > lw || due == NULL)
                break;
            loom__h2s_undrain(due);
            called = true;
            srv->o.on_drain(due->req, srv->h.data);
        }
        if (loom__h2_leave(c))
            return;
        if (called) { /* the drain calls may have written more: send it now */
            loom__pending_cancel(&c->flush_pend);
            c->queued = false;
            if (++rounds < LOOM__H2_DRAIN_ROUNDS)
                goto again;
            loom__h2_schedule(c);
        }
    }
    loom__h2_settle(c);
}

/* Makes the connection state and its session, with the server's SETTINGS
 * submitted; nothing is sent or scheduled yet. */
static loom__h2conn *loom__h2_make(loom_socket_t *s)
{
    loom_http_server_t *srv = s->h.data;
    const loom_http2_opts *o = &srv->o.http2;
    loom__h2conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->s = s;
    c->srv = srv;
    loom__queue_init(&c->streams);
    loom__queue_init(&c->flush_pend.node);
    c->flush_pend.fn = loom__h2_flush_cb;

    nghttp2_session_callbacks *cb;
    nghttp2_option *opt;
    if (nghttp2_session_callbacks_new(&cb) != 0) {
        free(c);
        return NULL;
    }
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, loom__h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, loom__h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, loom__h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, loom__h2_on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, loom__h2_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, loom__h2_on_frame_send);
    nghttp2_session_callbacks_set_error_callback2(cb, loom__h2_on_error);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, loom__h2_on_invalid_frame);
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        free(c);
        return NULL;
    }
    uint32_t win = o->initial_window ? o->initial_window : 65535;
    uint32_t hl = o->max_header_list ? o->max_header_list : srv->lim.max_header_bytes;
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    nghttp2_option_set_max_continuations(opt, 8);
    c->resets = o->reset_burst ? o->reset_burst : 200;
    c->reset_ms = s->h.loop->now;
    nghttp2_option_set_stream_reset_rate_limit(opt, 2 * c->resets + 1000,
                                               2 * (o->reset_rate ? o->reset_rate : 50));
    nghttp2_option_set_max_send_header_block_length(opt, 65536);
    /* Closed streams are not kept for the RFC 7540 priority tree: an idle
     * connection holds no stream. */
    nghttp2_option_set_no_closed_streams(opt, 1);
    /* The HTTP rules of a request are loom's (h2_check.c), checked in the
     * pass it makes over the fields anyway. */
    nghttp2_option_set_no_http_messaging(opt, 1);
    nghttp2_mem mem = {.mem_user_data = srv->sl,
                       .malloc = loom__h2_mem_malloc,
                       .free = loom__h2_mem_free,
                       .calloc = loom__h2_mem_calloc,
                       .realloc = loom__h2_mem_realloc};
    srv->sl->h2_making = true;
    srv->sl->h2_slot = NULL;
    int r = nghttp2_session_server_new3(&c->ng, cb, c, opt, &mem);
    srv->sl->h2_making = false;
    c->slot = srv->sl->h2_slot; /* its stream map's (a hint for the sweep) */
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (r != 0) {
        free(c);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
         o->max_concurrent_streams ? o->max_concurrent_streams : 100},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, win},
        {NGHTTP2_SETTINGS_MAX_FRAME_SIZE, o->max_frame_size ? o->max_frame_size : 16384},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, hl},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        /* RFC 9113 section 5.3.2: RFC 7540's priority tree is not kept;
         * answers are sent by RFC 9218 urgency (all equal: round robin). */
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    if (nghttp2_submit_settings(c->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0) {
        nghttp2_session_del(c->ng);
        free(c);
        return NULL;
    }
    /* The connection's window: 16 streams' worth, so that one slow stream
     * does not hold the others back. */
    uint64_t cw = (uint64_t)win * 16;
    nghttp2_session_set_local_window_size(c->ng, NGHTTP2_FLAG_NONE, 0,
                                          cw > INT32_MAX ? INT32_MAX : (int32_t)cw);
    c->settings = true;
    c->w_magic = 24; /* NGHTTP2_CLIENT_MAGIC_LEN */
    c->w_gap_lo = 1;
    return c;
}

loom__h2conn *loom__h2_new(loom_socket_t *s)
{
    loom__h2conn *c = loom__h2_make(s);
    if (c == NULL)
        return NULL;
    loom__h2_schedule(c);
    loom__h2_settle(c);
    return c;
}

loom__h2conn *loom__h2_upgrade(loom_socket_t *s, const loom_http_request_t *rq,
                               const loom_http_header_t *h, size_t nh, const uint8_t *set,
                               size_t setlen)
{
    loom__h2conn *c = loom__h2_make(s);
    if (c == NULL)
        return NULL;
    loom__h2stream *st = calloc(1, sizeof *st);
    if (st == NULL)
        goto fail_conn;
    st->conn = c;
    st->id = 1;
    loom__h2chk_init(&st->chk);   /* read by HTTP/1.1, and has no body */
    st->flags = LOOM__H2S_IN_END; /* half-closed (remote): the request is whole */
    /* Stream 1's fields, as if they had come in its HEADERS: the pseudo
     * fields, then the request's own (names lowercased), without the
     * HTTP/1 connection's (RFC 9113 section 8.2.2). Host stays Host. */
    if (loom__h2s_field(st, ":method", 7, rq->method_str, rq->method_len, false) < 0 ||
        loom__h2s_field(st, ":path", 5, rq->target, rq->target_len, false) < 0)
        goto fail_stream;
    for (size_t i = 0; i < nh; i++) {
        if (loom__h2c_hop_field(h, nh, &h[i]))
            continue;
        if (loom__h2s_field(st, h[i].name, h[i].name_len, h[i].value, h[i].value_len, true) < 0)
            goto fail_stream;
    }
    /* Applies the client's HTTP2-Settings (no ACK is sent for them) and
     * opens stream 1, half-closed (remote); HEAD tells nghttp2 that the
     * answer carries no body. */
    if (nghttp2_session_upgrade2(c->ng, set, setlen, rq->method == LOOM_HTTP_METHOD_HEAD, NULL) !=
        0)
        goto fail_stream;
    /* A server session does not keep upgrade2's stream_user_data (nghttp2
     * 1.52 gives it to clients only): set it as on_begin_headers does. */
    nghttp2_session_set_stream_user_data(c->ng, 1, st);
    loom__queue_insert_tail(&c->streams, &st->node);
    c->nstreams++;
    c->preface = true;
    c->w_max = 1;
    return c;

fail_stream:
    loom__bc_free(loom__h2_bc(c), st->hb);
    loom__bc_free(loom__h2_bc(c), st);
fail_conn:
    nghttp2_session_del(c->ng);
    free(c->err);
    free(c);
    return NULL;
}

void loom__h2_upgrade_begin(loom__h2conn *c)
{
    loom__h2stream *st = LOOM__CONTAINER_OF(c->streams.next, loom__h2stream, node);
    c->busy++;
    loom__h2s_begin(st, true);
    if (loom__h2_leave(c))
        return;
    loom__h2_flush(c);
}

/* Rules of stream states that nghttp2 1.52 does not apply, because loom
 * keeps no closed streams and no RFC 7540 priority tree (section numbers
 * are RFC 9113's):
 * - DATA or HEADERS on a stream the client closed: after its RST_STREAM,
 *   or after its END_STREAM once the answer is whole (5.1, "closed"); on
 *   a stream the server reset, such frames are ignored (5.1: they may have
 *   been on their way), as on a stream closed too long ago to be noted;
 * - HEADERS on a stream id the client skipped: lower than one it opened
 *   already (5.1.1);
 * - PRIORITY on stream 0 (6.3), or making a stream depend on itself
 *   (5.3.1).
 * Each ends the connection with GOAWAY (STREAM_CLOSED, or PROTOCOL_ERROR)
 * and names the stream. Returns 0 if the frame may go to nghttp2, or
 * the error code. */
/* loom__h2_frame_check's refusal: notes why and returns code, unless the
 * connection is ending already (0: nghttp2 reads no more). */
static uint32_t loom__h2_refuse(loom__h2conn *c, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static uint32_t loom__h2_refuse(loom__h2conn *c, uint32_t code, const char *fmt, ...)
{
    if (!nghttp2_session_want_read(c->ng))
        return 0;
    char why[LOOM__H2_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    loom__h2_why(c, false, "%s", why);
    return code;
}

static uint32_t loom__h2_frame_check(loom__h2conn *c, const uint8_t *h, size_t have)
{
    uint32_t len = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
    uint8_t type = h[3];
    uint32_t id =
        ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) & 0x7fffffffu;
    if (type == NGHTTP2_PRIORITY) {
        if (id == 0) {
            return loom__h2_refuse(c, NGHTTP2_PROTOCOL_ERROR, "PRIORITY on stream 0");
        }
        if (len == 5 && have >= 13 &&
            (((uint32_t)h[9] << 24 | (uint32_t)h[10] << 16 | (uint32_t)h[11] << 8 | h[12]) &
             0x7fffffffu) == id) {
            return loom__h2_refuse(c, NGHTTP2_PROTOCOL_ERROR, "stream %u depends on itself", id);
        }
        return 0;
    }
    if ((type != NGHTTP2_DATA && type != NGHTTP2_HEADERS) || id == 0 || !(id & 1))
        return 0; /* nghttp2's own rules */
    if (id > c->w_max) {
        if (type == NGHTTP2_HEADERS) {
            if (id > c->w_max + 2) {
                c->w_gap_lo = c->w_max + 2;
                c->w_gap_hi = id - 2;
            }
            c->w_max = id;
        }
        return 0; /* a new stream, or DATA on an idle one (nghttp2's) */
    }
    if (type == NGHTTP2_HEADERS && id >= c->w_gap_lo && id <= c->w_gap_hi) {
        return loom__h2_refuse(c, NGHTTP2_PROTOCOL_ERROR,
                               "HEADERS on stream %u, after a higher one was opened", id);
    }
    if (nghttp2_session_find_stream(c->ng, (int32_t)id) != NULL)
        return 0; /* open, or half-closed: nghttp2's */
    for (int i = 0; i < 4; i++) {
        if ((c->closed[i] & 0x7fffffffu) == id) {
            if (!(c->closed[i] & 0x80000000u))
                return 0;
            return loom__h2_refuse(c, NGHTTP2_STREAM_CLOSED,
                                   "%s on stream %u after the client closed it",
                                   type == NGHTTP2_DATA ? "DATA" : "HEADERS", id);
        }
    }
    return 0;
}

/* Gives buf[0..len) to nghttp2, walking its frames on the way for
 * loom__h2_frame_check. A frame that may find a stream in another state
 * than before the bytes ahead of it (after an RST_STREAM or an END_STREAM
 * among them) is checked once those are given. Returns what
 * nghttp2_session_mem_recv does; the caller checks c->dead. */
static ssize_t loom__h2_feed(loom__h2conn *c, const uint8_t *buf, size_t len)
{
    size_t i = 0, fed = 0, hold = 0;
    /* Bytes not fed yet may close a stream: from this read, or the rest of
     * a frame begun in an earlier one. */
    bool moved = c->w_left > 0 && c->w_moving;
    while (i < len) {
        if (c->w_magic > 0 || c->w_left > 0) {
            size_t k = len - i;
            if (c->w_magic > 0) {
                if (k > c->w_magic)
                    k = c->w_magic;
                c->w_magic = (uint8_t)(c->w_magic - k);
            } else {
                if (k > c->w_left)
                    k = c->w_left;
                c->w_left -= (uint32_t)k;
            }
            i += k;
            continue;
        }
        /* Where the head began here; a head begun in an earlier read
         * (carried) has its first bytes only in w_head. */
        bool carried = c->w_have > i;
        size_t start = carried ? 0 : i - c->w_have;
        hold = start;
        size_t need = 9;
        if (c->w_have >= 9 && c->w_head[3] == NGHTTP2_PRIORITY && c->w_head[2] == 5 &&
            c->w_head[1] == 0 && c->w_head[0] == 0)
            need = 13;
        size_t k = need - c->w_have;
        if (k > len - i)
            k = len - i;
        memcpy(c->w_head + c->w_have, buf + i, k);
        c->w_have = (uint8_t)(c->w_have + k);
        i += k;
        if (c->w_have < need)
            continue;
        if (need == 9 && c->w_head[3] == NGHTTP2_PRIORITY && c->w_head[2] == 5 &&
            c->w_head[1] == 0 && c->w_head[0] == 0)
            continue; /* and its dependency */
        const uint8_t *h = c->w_head;
        uint32_t flen = (uint32_t)h[0] << 16 | (uint32_t)h[1] << 8 | h[2];
        c->w_left = flen - (uint32_t)(c->w_have - 9);
        c->w_have = 0;
        uint8_t type = h[3];
        bool existing = type == NGHTTP2_DATA || type == NGHTTP2_HEADERS;
        /* Only a frame on a stream opened before it asks after that
         * stream's state (loom__h2_frame_check): a new stream's HEADERS
         * (the next request of a batch) goes in the same call. */
        uint32_t fid = ((uint32_t)h[5] << 24 | (uint32_t)h[6] << 16 | (uint32_t)h[7] << 8 | h[8]) &
                       0x7fffffffu;
        if (existing && moved && start > fed && (fid & 1) && fid <= c->w_max) {
            /* The state of the streams before this frame. */
            ssize_t r = nghttp2_session_mem_recv(c->ng, buf + fed, start - fed);
            if (r < 0 || c->dead)
                return r;
            fed = start;
            moved = false;
        }
        uint32_t code = loom__h2_frame_check(c, h, need);
        if (code != 0) {
            if (start > fed) {
                ssize_t r = nghttp2_session_mem_recv(c->ng, buf + fed, start - fed);
                if (r < 0 || c->dead)
                    return r;
            }
            nghttp2_session_terminate_session(c->ng, code);
            return (ssize_t)len;
        }
        if (carried) {
            /* Everything before it was given: the head goes whole. */
            ssize_t r = nghttp2_session_mem_recv(c->ng, h, need);
            if (r < 0 || c->dead)
                return r;
            fed = i;
        }
        c->w_moving = type == NGHTTP2_RST_STREAM || (existing && (h[4] & NGHTTP2_FLAG_END_STREAM));
        if (c->w_moving)
            moved = true;
    }
    /* A head cut by the end of the bytes is held back in w_head and given
     * whole with the next read: nghttp2 1.52 counts a CONTINUATION against
     * its limit (max_continuations) once per call that sees part of its
     * head, so a head arriving in pieces (TCP segments, TLS records) would
     * count several times and end a well-formed header block. */
    size_t end = c->w_have > 0 ? hold : len;
    if (fed >= end)
        return (ssize_t)len;
    ssize_t r = nghttp2_session_mem_recv(c->ng, buf + fed, end - fed);
    return r < 0 ? r : (ssize_t)len;
}

void loom__h2_read(loom__h2conn *c, char *buf, size_t len)
{
    if (c->dead)
        return;
    loom_socket_t *s = c->s;
    loom__h2arena_touch(c->srv->sl->h2_arena, c->slot);
    c->busy++;
    ssize_t r = loom__h2_feed(c, (const uint8_t *)buf, len);
    if (loom__h2_leave(c))
        return;
    if (r < 0) {
        /* nghttp2 queued GOAWAY (on_frame_send reports it, with this
         * reason); a bad preface gets none and is reported here. */
        const char *why = r == NGHTTP2_ERR_BAD_CLIENT_MAGIC ? "bad connection preface"
                          : r == NGHTTP2_ERR_FLOODED        ? "flood of control frames"
                                                            : nghttp2_strerror((int)r);
        loom__h2_why(c, false, "%s", why);
        if (r != NGHTTP2_ERR_BAD_CLIENT_MAGIC)
            nghttp2_session_terminate_session(c->ng, r == NGHTTP2_ERR_FLOODED
                                                         ? NGHTTP2_ENHANCE_YOUR_CALM
                                                         : NGHTTP2_PROTOCOL_ERROR);
        loom__h2_flush(c);
        if (!loom_socket_closed(s)) {
            if (!c->reported)
                loom__h2_report(c, LOOM_EV_HTTP_ERROR,
                                r == NGHTTP2_ERR_FLOODED ? LOOM_ETOOMANY : LOOM_EPROTOCOL, why);
            loom__h1_close(s, true);
        }
        return;
    }
    if (c->queued) {
        loom__pending_cancel(&c->flush_pend);
        c->queued = false;
    }
    loom__h2_flush(c);
}

void loom__h2_event(loom__h2conn *c, loom_event_kind_t kind, int code, const char *msg)
{
    (void)code;
    (void)msg;
    if (kind == LOOM_EV_TCP_TIMEOUT) {
        if (loom_socket_queued(c->s) > 0)
            loom__h2_report(c, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, "response write timeout");
        else if (c->preface)
            loom__h2_report(c, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                            "no connection preface after the 101 (Upgrade: h2c)");
        else if (c->settings)
            loom__h2_report(c, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, "SETTINGS ack timeout");
        else if (c->nstreams && loom__h2_body_due(c))
            loom__h2_report(c, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, "request body timeout");
    }
    /* loom__hconn_detach follows (server_h1.c) and calls loom__h2_free. */
}

void loom__h2_drain(loom__h2conn *c)
{
    loom__h2_flush(c);
}

void loom__h2_close_conn(loom__h2conn *c, bool force)
{
    if (force || c->dead) {
        loom__h1_close(c->s, false);
        return;
    }
    if (!c->goaway) {
        c->goaway = true;
        c->goaway_last = (uint32_t)nghttp2_session_get_last_proc_stream_id(c->ng);
        nghttp2_submit_goaway(c->ng, NGHTTP2_FLAG_NONE, (int32_t)c->goaway_last, NGHTTP2_NO_ERROR,
                              NULL, 0);
    }
    if (c->busy)
        return; /* flushed when the read is done */
    loom__h2_flush(c);
}

static void loom__h2_free_now(loom__h2conn *c)
{
    loom__pending_cancel(&c->flush_pend);
    if (c->stall_t)
        loom_timer_close(c->stall_t);
    while (!loom__queue_empty(&c->streams)) {
        loom__h2stream *st = LOOM__CONTAINER_OF(c->streams.next, loom__h2stream, node);
        loom__h2s_free(st);
    }
    nghttp2_session_del(c->ng);
    free(c->err);
    free(c);
}

void loom__h2_free(loom__h2conn *c)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->queued) {
        loom__pending_cancel(&c->flush_pend);
        c->queued = false;
    }
    /* Requests the application still owns hear on_close. */
    loom__queue *q = c->streams.next;
    while (q != &c->streams) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        q = q->next;
        loom__h2s_req_gone(st);
    }
    if (c->busy == 0)
        loom__h2_free_now(c);
}

void loom__h2_drop(loom__h2conn *c)
{
    c->dead = true;
    for (loom__queue *q = c->streams.next; q != &c->streams; q = q->next) {
        loom__h2stream *st = LOOM__CONTAINER_OF(q, loom__h2stream, node);
        if (st->req) {
            st->req->sock = NULL;
            st->req->p.h2 = NULL;
        }
    }
    loom__h2_free_now(c);
}

uint32_t loom__h2_stream_id(const loom_http_req_t *req)
{
    return req->h2_id; /* also once the stream is gone (on_close) */
}

/* --- The protocol operations ------------------------------------------------------ */

/* True for the fields HTTP/2 forbids in a message (RFC 9113 section
 * 8.2.2) and the ones loom writes itself. */
static bool loom__h2_skip_field(const char *n, size_t nl, int kind)
{
    if (kind == LOOM__HK_CONN || kind == LOOM__HK_TE || kind == LOOM__HK_CL)
        return true;
    return (nl == 10 && strncasecmp(n, "keep-alive", 10) == 0) ||
           (nl == 7 && strncasecmp(n, "upgrade", 7) == 0) ||
           (nl == 16 && strncasecmp(n, "proxy-connection", 16) == 0);
}

/* Builds the field list of an answer head: :status, the fields of `pre`
 * and `hdrs` (names lowercased), date, server and content-length. Calls
 * nghttp2 with it through `submit`. The lengths and kinds of the fields
 * come from the response's scan (`sc`, the first LOOM__HSCAN_MAX). What
 * outlives the frame is not copied by nghttp2 (NGHTTP2_NV_FLAG_NO_COPY_*):
 * literal names, the loop's date, the server's name, and a final answer's
 * :status and content-length, kept in the stream; everything else is. */
static int loom__h2_head(loom_http_req_t *req, int status, const char *const *pre,
                         const char *const *hdrs, const loom__hscan *sc, bool cl, uint64_t length,
                         nghttp2_data_provider *dp, bool interim)
{
    loom__h2stream *st = req->p.h2;
    loom__h2conn *c = st->conn;
    loom_http_server_t *srv = req->srv;
    size_t n = 4 + sc->n, names = 0;
    for (unsigned j = 0; j < sc->n && j < LOOM__HSCAN_MAX; j++)
        names += sc->f[j].nl;
    if (sc->n > LOOM__HSCAN_MAX) { /* the fields past the scan's record */
        unsigned j = 0;
        for (int l = 0; l < 2; l++) {
            const char *const *h = l ? hdrs : pre;
            for (size_t i = 0; h && h[i]; i += 2, j++)
                if (j >= LOOM__HSCAN_MAX)
                    names += strlen(h[i]);
        }
    }
    nghttp2_nv nvs[24], *nv = n <= 24 ? nvs : malloc(n * sizeof *nv);
    char lbuf[512], *low = names <= sizeof lbuf ? lbuf : malloc(names ? names : 1);
    if (nv == NULL || low == NULL) {
        if (nv != nvs)
            free(nv);
        if (low != lbuf)
            free(low);
        return LOOM_ENOMEM;
    }
    char isv[4];
    char *sv = interim ? isv : st->status; /* an interim's is copied: a final one follows */
    loom__put_status(sv, status);
    uint8_t sflag = interim ? NGHTTP2_NV_FLAG_NO_COPY_NAME
                            : NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)sv, 7, 3, sflag};
    char *lo = low;
    unsigned j = 0;
    for (int l = 0; l < 2; l++) {
        const char *const *h = l ? hdrs : pre;
        for (size_t i = 0; h && h[i]; i += 2, j++) {
            size_t nl, vl;
            int kind;
            if (j < LOOM__HSCAN_MAX) {
                nl = sc->f[j].nl;
                vl = sc->f[j].vl;
                kind = sc->f[j].kind;
            } else {
                nl = strlen(h[i]);
                vl = strlen(h[i + 1]);
                kind = loom__hdr_kind(h[i], nl);
            }
            if (loom__h2_skip_field(h[i], nl, kind))
                continue;
            for (size_t b = 0; b < nl; b++) {
                char ch = h[i][b];
                lo[b] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
            }
            nv[k++] =
                (nghttp2_nv){(uint8_t *)lo, (uint8_t *)h[i + 1], nl, vl, NGHTTP2_NV_FLAG_NONE};
            lo += nl;
        }
    }
    if (!interim) {
        uint8_t lit = NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE;
        if (!sc->has_date) /* the loop's date: same length whenever it is read */
            nv[k++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)loom__hsrv_date(srv->sl) + 6, 4,
                                   29, lit};
        if (srv->server_name_len)
            nv[k++] = (nghttp2_nv){(uint8_t *)"server", (uint8_t *)srv->o.server_name, 6,
                                   srv->server_name_len, lit};
        if (cl) {
            size_t m = (size_t)(loom__put_u64(st->clen, length) - st->clen);
            nv[k++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)st->clen, 14, m, lit};
        }
    }
    int r;
    if (interim)
        r = nghttp2_submit_headers(c->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nv, k, NULL);
    else
        r = nghttp2_submit_response(c->ng, st->id, nv, k, dp);
    if (nv != nvs)
        free(nv);
    if (low != lbuf)
        free(low);
    if (r != 0)
        return r == NGHTTP2_ERR_NOMEM ? LOOM_ENOMEM : LOOM_EPROTOCOL;
    loom__h2_schedule(c);
    return 0;
}

static int loom__h2_start(loom_http_req_t *req, const loom__hhead *hd)
{
    loom__h2stream *st = req->p.h2;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = loom__h2_data_read};
    bool data;
    if (hd->stream)
        data = hd->framing != LOOM__HF_NONE && !(req->flags & LOOM__HR_NOBODY) &&
               !(hd->framing == LOOM__HF_LENGTH && hd->length == 0);
    else
        data = hd->len > 0;
    if (data && !hd->stream) {
        /* A whole body: a block of its size (small answers stay small). */
        if (st->ob == NULL) {
            st->ob = loom__bc_alloc(loom__h2_bc(st->conn), hd->len);
            if (st->ob == NULL)
                return LOOM_ENOMEM;
            st->ocap = hd->len;
        } else if (loom__grow(loom__h2_bc(st->conn), &st->ob, &st->ocap, hd->len) < 0) {
            return LOOM_ENOMEM;
        }
        memcpy(st->ob, hd->body, hd->len);
        st->conn->unsent -= st->olen - st->ooff;
        st->conn->unsent += hd->len;
        st->olen = hd->len;
        st->ooff = 0;
        st->flags |= LOOM__H2S_OUT_END;
    }
    if (data)
        st->flags |= LOOM__H2S_DATA;
    st->flags |= LOOM__H2S_ANSWERED;
    return loom__h2_head(req, hd->status, hd->pre, hd->hdrs, hd->sc, hd->framing == LOOM__HF_LENGTH,
                         hd->length, data ? &dp : NULL, false);
}

static int loom__h2_interim(loom_http_req_t *req, int status, const char *const *hdrs,
                            const loom__hscan *sc)
{
    if (status == 100) { /* one 100 per request, as on HTTP/1 */
        if (req->flags & LOOM__HR_CONT_SENT)
            return 0;
        req->flags |= LOOM__HR_CONT_SENT;
    }
    return loom__h2_head(req, status, NULL, hdrs, sc, false, 0, NULL, true);
}

static void loom__h2_resume_data(loom__h2stream *st)
{
    if (st->flags & LOOM__H2S_DEFERRED) {
        st->flags &= ~LOOM__H2S_DEFERRED;
        nghttp2_session_resume_data(st->conn->ng, st->id);
    }
    loom__h2_schedule(st->conn);
}

static int loom__h2_body(loom_http_req_t *req, const struct iovec *iov, int n)
{
    loom__h2stream *st = req->p.h2;
    /* The connection's socket failed (the client reset it): nothing more
     * goes out, and a producer that writes until 1 must not fill memory or
     * spin inside its callback until the loop reports the error. */
    if (LOOM__UNLIKELY(loom__hsock_broken(st->conn->s)))
        return LOOM_ECLOSED;
    if (!(st->flags & LOOM__H2S_DATA))
        return 0;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (st->ooff && st->ooff == st->olen)
        st->ooff = st->olen = 0;
    if (loom__grow(loom__h2_bc(st->conn), &st->ob, &st->ocap, st->olen + total) < 0)
        return LOOM_ENOMEM;
    for (int i = 0; i < n; i++) {
        memcpy(st->ob + st->olen, iov[i].iov_base, iov[i].iov_len);
        st->olen += iov[i].iov_len;
    }
    loom__h2conn *c = st->conn;
    c->unsent += total;
    loom__h2_resume_data(st);
    /* Behind when this stream's backlog with the socket's queue reaches
     * high water, or the connection's: its moving bytes (every stream's,
     * but those waiting on their own shut window) with the queue reach
     * high water, or all its unsent bytes reach the budget. A client that
     * opens many streams and reads none holds at most high water and one
     * write per stream, not high water per stream; one that keeps some
     * streams' windows shut holds at most the budget and one write per
     * stream, and its other streams go on meanwhile. */
    loom_socket_t *s = c->s;
    size_t q = loom_socket_queued(s), hw = s->cls->high_water;
    if (st->olen - st->ooff + q >= hw || loom__h2_conn_behind(c, q, hw)) {
        if (!(st->flags & LOOM__H2S_DRAIN)) {
            st->flags |= LOOM__H2S_DRAIN;
            c->ndrain++;
        }
        return 1;
    }
    return 0;
}

static int loom__h2_end(loom_http_req_t *req)
{
    loom__h2stream *st = req->p.h2;
    if (!(st->flags & LOOM__H2S_DATA))
        return 0;
    st->flags |= LOOM__H2S_OUT_END;
    loom__h2_resume_data(st);
    return 0;
}

/* The answer is complete (or dropped): the request is freed; the stream
 * sends the rest of the answer and closes by itself. A request released
 * without an answer resets its stream. */
static void loom__h2_finished(loom_http_req_t *req)
{
    loom__h2stream *st = req->p.h2;
    req->astate = LOOM__HA_DONE;
    if (st != NULL) {
        loom__h2s_undrain(st);
        st->req = NULL;
        req->p.h2 = NULL;
        loom__h2conn *c = st->conn;
        if (!(st->flags & LOOM__H2S_ANSWERED))
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        else if ((st->flags & LOOM__H2S_DATA) && !(st->flags & LOOM__H2S_OUT_END)) {
            /* A raw body shorter than its Content-Length: the stream is cut. */
            nghttp2_submit_rst_stream(c->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
        }
        /* The rest of a body not read is not wanted: its window reopens. */
        if (st->ilen) {
            nghttp2_session_consume_stream(c->ng, st->id, st->ilen);
            st->ilen = 0;
        }
        loom__h2_schedule(c);
    }
    loom__hreq_free(req);
}

/* Delivers what a paused stream held, then its end, from the pending
 * phase. */
static void loom__h2_pause(loom_http_req_t *req)
{
    req->flags |= LOOM__HR_PAUSED;
}

static void loom__h2_resume(loom_http_req_t *req)
{
    loom__h2stream *st = req->p.h2;
    req->flags &= ~LOOM__HR_PAUSED;
    if (st == NULL)
        return;
    loom__h2conn *c = st->conn;
    /* Hand over what was held, as one piece (if the application pauses
     * again, what arrives meanwhile is held anew). */
    c->busy++;
    if (st->ilen && req->astate != LOOM__HA_DONE) {
        size_t n = st->ilen;
        char *b = st->ib;
        st->ib = NULL;
        st->ilen = st->icap = 0;
        loom__h2s_body(st, b, n);
        loom__bc_free(loom__h2_bc(c), b);
    }
    if (!c->dead && st->req == req && !(req->flags & LOOM__HR_PAUSED) &&
        (st->flags & LOOM__H2S_EOF_DUE)) {
        st->flags &= ~LOOM__H2S_EOF_DUE;
        loom__h2s_body_end(st);
    }
    if (loom__h2_leave(c))
        return;
    loom__h2_schedule(c); /* window updates */
}

static size_t loom__h2_queued(const loom_http_req_t *req)
{
    const loom__h2stream *st = req->p.h2;
    return (st ? st->olen - st->ooff : 0) + (req->sock ? loom_socket_queued(req->sock) : 0);
}

const loom__hproto loom__h2_proto = {
    .start = loom__h2_start,
    .interim = loom__h2_interim,
    .body = loom__h2_body,
    .end = loom__h2_end,
    .finished = loom__h2_finished,
    .pause = loom__h2_pause,
    .resume = loom__h2_resume,
    .queued = loom__h2_queued,
    .takeover = NULL,
};
