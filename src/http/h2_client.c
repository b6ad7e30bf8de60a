/* http/h2_client.c - HTTP/2 for the client, on nghttp2: the second set of
 * connection operations (hc_conn_ops) beside HTTP/1's.
 *
 * A connection made with these operations waits for its connect (for
 * https, the TLS handshake and its ALPN result) holding the one request the
 * pool gave it; the pool queues the origin's other requests meanwhile
 * (pool->h2_wait). Then:
 *  - the server chose h2 (or h2c with prior knowledge): an nghttp2 client
 *    session is made, the connection becomes the pool's HTTP/2 connection
 *    (pool->h2) and takes the waiting requests as streams, up to the
 *    server's SETTINGS_MAX_CONCURRENT_STREAMS;
 *  - it chose http/1.1 (or nothing): the connection switches itself to
 *    loom__hc_h1_ops and the pool becomes an HTTP/1.1 pool (pool->proto).
 *
 * nghttp2 does framing, HPACK, stream states and flow control; loom owns the
 * I/O: bytes read are fed to nghttp2_session_mem_recv(), and what
 * nghttp2_session_mem_send() produces is gathered into one write, from the
 * loop's pending phase (so that requests started together go out in one
 * write) or right after a read. Automatic WINDOW_UPDATE is off: a stream's
 * bytes are consumed (nghttp2_session_consume) when the application has
 * them, so a paused on_body holds its bytes in the request's buffer and the
 * server runs out of window.
 *
 * Invariant: a stream's user data is its request while the request is on
 * this connection, NULL once it left (completed, failed, cancelled,
 * retried); the callbacks ignore everything once the connection is dead.
 *
 * Loop thread only. */
#include <inttypes.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/client_internal.h"

#define H2_STREAM_WINDOW   (1 << 20)  /* our SETTINGS_INITIAL_WINDOW_SIZE */
#define H2_CONN_WINDOW     (16 << 20) /* our connection window */
#define H2_DEFAULT_STREAMS 100        /* assumed until the server's SETTINGS */
#define H2_PIECE           16384      /* held-back body bytes delivered per on_body */
/* The flood guard (CVE-2019-9518 and its family): a server may send at most
 * this many frames that carry nothing (below) within one second without any
 * progress; more end the connection with GOAWAY(ENHANCE_YOUR_CALM). */
#define H2_MAX_IDLE_FRAMES 1000

typedef struct {
    hc_conn *c;
    nghttp2_session *sess;
    loom__bytes *out; /* frames gathered for one write */
    uint32_t busy;    /* nesting of nghttp2 calls on the stack */
    uint8_t decided, dead, kicked, goaway, settings;
    int32_t goaway_last;
    uint32_t goaway_code;
    /* The flood guard: it reads the frame headers of what the server sends
     * itself, before nghttp2, because nghttp2 says nothing of frames it
     * ignores (DATA on a closed stream, unknown types). fr_left: payload
     * bytes of the current frame still to come; fr_hd: a frame header in
     * pieces (fr_hn bytes). idle_frames: frames that carried nothing since
     * the last progress or since idle_at (the start of the current second). */
    uint32_t fr_left, idle_frames;
    uint8_t fr_hd[9], fr_hn, flooded;
    uint64_t idle_at;
    char err[160]; /* nghttp2's last complaint about the peer, for messages */
} h2c;

static inline h2c *h2_of(hc_conn *c)
{
    return c->h2;
}

static void h2_free(h2c *h)
{
    if (h->sess)
        nghttp2_session_del(h->sess);
    loom__bytes_free(&h->out);
    free(h);
}

/* Leaves an nghttp2 call: frees the state if the connection closed under
 * it. Returns true when the connection is gone. */
static bool h2_leave(h2c *h)
{
    h->busy--;
    if (h->dead && h->busy == 0) {
        h2_free(h);
        return true;
    }
    return h->dead;
}

static void h2_kick(hc_conn *c)
{
    h2c *h = h2_of(c);
    if (h == NULL || h->dead || c->pend_queued)
        return;
    c->pend_queued = 1;
    loom__pending_queue(c->st->loop, &c->pend);
}

static void h2_fatal(hc_conn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Sends what nghttp2 has, gathered into writes, until the socket's queue is
 * above high water (on_drain resumes). */
static void h2_flush(hc_conn *c)
{
    h2c *h = h2_of(c);
    if (h == NULL || h->dead || c->dead || h->sess == NULL)
        return;
    h->busy++;
    int err = 0;
    while (!h->dead && loom_socket_queued(c->s) < HC_HIGH_WATER) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(h->sess, &data);
        if (n < 0) {
            err = (int)n;
            break;
        }
        if (n == 0)
            break;
        if (loom__bytes_append(&h->out, data, (size_t)n) < 0) {
            err = NGHTTP2_ERR_NOMEM;
            break;
        }
        if (loom__bytes_size(h->out) >= 64 * 1024) {
            if (loom_socket_write(c->s, loom__bytes_data(h->out), loom__bytes_size(h->out)) < 0)
                err = NGHTTP2_ERR_CALLBACK_FAILURE;
            loom__bytes_consume(&h->out, loom__bytes_size(h->out));
        }
    }
    if (!h->dead && !c->dead && loom__bytes_size(h->out)) {
        if (loom_socket_write(c->s, loom__bytes_data(h->out), loom__bytes_size(h->out)) < 0 &&
            err == 0)
            err = NGHTTP2_ERR_CALLBACK_FAILURE;
        loom__bytes_consume(&h->out, loom__bytes_size(h->out));
    }
    if (h2_leave(h))
        return;
    if (err) {
        h2_fatal(c, LOOM_EPROTOCOL, "HTTP/2 session error: %s", nghttp2_strerror(err));
        return;
    }
    if (!nghttp2_session_want_read(h->sess) && !nghttp2_session_want_write(h->sess) &&
        loom_socket_queued(c->s) == 0)
        h2_fatal(c, h->err[0] ? LOOM_EPROTOCOL : LOOM_EOF, "the HTTP/2 session ended (%s)",
                 h->err[0] ? h->err : "GOAWAY");
}

/* --- Requests leaving the connection ----------------------------------------------- */

/* Forgets r's stream (its bytes are nobody's from now), resetting it with
 * `code` if it is still open. */
static void h2_forget(hc_conn *c, hc_req *r, uint32_t code, bool ended)
{
    h2c *h = h2_of(c);
    int32_t sid = r->h2_sid;
    r->h2_sid = 0;
    if (h == NULL || h->sess == NULL)
        return;
    bool mine = sid > 0 && nghttp2_session_get_stream_user_data(h->sess, sid) == r;
    if (sid <= 0 || mine) {
        /* Held-back bytes go back to the connection window, also when
         * their stream has closed since (a response that ended paused). */
        size_t held = r->on_body ? loom__bytes_size(r->rbuf) : 0;
        if (held) {
            (void)nghttp2_session_consume_connection(h->sess, held);
            loom__bytes_consume(&r->rbuf, held);
        }
    }
    if (mine) {
        nghttp2_session_set_stream_user_data(h->sess, sid, NULL);
        /* `ended`: the server's END_STREAM is being processed (nghttp2
         * marks the stream half-closed after the callback). */
        if ((!ended && nghttp2_session_get_stream_remote_close(h->sess, sid) == 0) ||
            nghttp2_session_get_stream_local_close(h->sess, sid) == 0)
            (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, sid, code);
    }
    h2_kick(c);
}

/* Waiters take the free streams; an idle connection is parked, a
 * connection that got GOAWAY closes when its last stream ends. */
static void h2_after(hc_conn *c)
{
    h2c *h = h2_of(c);
    if (c->dead || h == NULL || !h->decided)
        return;
    hc_pool *pool = c->pool;
    hc_state *st = c->st;
    if (c->no_reuse) {
        if (c->nreqs == 0) {
            if (h->busy) {
                h2_kick(c); /* the GOAWAY's end: closed from the loop */
                return;
            }
            loom__hc_conn_close(c, false);
        }
        return;
    }
    while (!loom__queue_empty(&pool->waiters) && !c->dead) {
        hc_req *w = hc_req_of(pool->waiters.next);
        if (!c->ops->can_take(c, w))
            break;
        loom__queue_remove(&w->node);
        st->stats.queued--;
        loom__hc_assign(c, w);
    }
    if (!c->dead && c->nreqs == 0 && !c->idle)
        loom__hc_conn_release(c);
}

/* r left c (detached by the caller): its stream is reset. */
static void h2_drop(hc_conn *c, hc_req *r)
{
    h2_forget(c, r, NGHTTP2_CANCEL, false);
    h2_after(c);
}

/* The connection cannot go on: every request on it fails (those that may
 * be sent again go back to the queue) and it closes. */
static void h2_fatal(hc_conn *c, int code, const char *fmt, ...)
{
    if (c->dead)
        return;
    char why[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    h2c *h = h2_of(c);
    char where[300];
    loom__hc_where(c->pool, where, sizeof where);
    c->no_reuse = 1;
    if (c->pool->h2 == c)
        c->pool->h2 = NULL;
    /* Requests the server never saw (above a GOAWAY's last stream, or not
     * sent yet) stay on c: the close requeues them. */
    loom__queue *q = c->reqs.next;
    while (q != &c->reqs && !c->dead) {
        hc_req *r = hc_req_of(q);
        q = q->next;
        bool unseen = r->h2_sid == 0 || (h && h->goaway && r->h2_sid > h->goaway_last);
        bool may = hc_idempotent(r->method) || r->retry_unsafe || unseen;
        if (r->state < RQ_HEAD && !r->retried && (unseen || (may && r->reused))) {
            r->retried = 1;
            c->st->stats.retries++;
            if (h)
                h2_forget(c, r, NGHTTP2_CANCEL, false);
            continue;
        }
        loom__hc_fail(r, code == LOOM_ETIMEDOUT ? LOOM_EV_HTTP_TIMEOUT : LOOM_EV_HTTP_ERROR, code,
                      "HTTP/2 connection to %s: %s%s", where, why,
                      r->state >= RQ_HEAD ? " (before the response was complete)"
                                          : " (before any response)");
    }
    if (!c->dead)
        loom__hc_conn_close(c, false);
}

/* --- Responses ------------------------------------------------------------------ */

/* The response's fields, from h2_hdrs into st->hdrs (pointers into it). */
static size_t h2_fill(hc_req *r)
{
    hc_state *st = r->st;
    size_t nh = 0;
    const char *p = loom__bytes_data(r->h2_hdrs);
    for (uint32_t i = 0; i < r->h2_nhdrs && nh < HC_MAX_HEADERS; i++) {
        loom_http_header_t *f = &st->hdrs[nh++];
        f->name = p;
        f->name_len = strlen(p);
        p += f->name_len + 1;
        f->value = p;
        f->value_len = strlen(p);
        p += f->value_len + 1;
    }
    return nh;
}

/* The whole response of r arrived: deliver it. */
static void h2_complete(hc_conn *c, hc_req *r)
{
    hc_state *st = r->st;
    loom_loop_t *loop = st->loop;
    hc_tls_snap snap;
    bool snapped = c->pool->scheme == HC_SCHEME_HTTPS && r->on_response && !r->redirecting &&
                   loom__hc_tls_snap(c, &snap);
    h2_forget(c, r, NGHTTP2_NO_ERROR, true); /* an upload the answer made moot stops */
    loom__queue_remove(&r->node);
    c->nreqs--;
    r->conn = NULL;
    r->state = RQ_DONE;
    h2_after(c);
    if (r->redirecting) {
        r->state = RQ_NEW;
        loom__hc_redirect(r);
        return;
    }
    st->stats.responses++;
    size_t nh = h2_fill(r);
    loom_http_client_response_t v;
    loom__hc_view(r, &v, st->hdrs, nh);
    v.version = 20;
    if (r->on_body == NULL) {
        size_t blen = loom__bytes_size(r->rbuf);
        v.body = blen ? loom__bytes_data(r->rbuf) : NULL;
        v.body_len = blen;
    }
    if (r->on_response) {
        loom__op_scope sc;
        loom__op_enter(loop, &sc, r->on_event, r->h.data, r);
        r->tls_snap = snapped ? &snap.info : NULL;
        r->on_response(r, &v, r->h.data);
        r->tls_snap = NULL;
        loom__op_leave(loop, &sc);
    }
    loom__hc_req_end(r);
}

/* The final head of r arrived. Returns false when r ended. */
static bool h2_head(hc_conn *c, hc_req *r)
{
    hc_state *st = r->st;
    if (r->first_byte_at)
        (void)loom__hc_req_first_byte_by(r, 0); /* clears: cannot fail */
    size_t nh = h2_fill(r);
    const loom_http_header_t *cl = loom_http_header_find(st->hdrs, nh, "content-length", NULL);
    r->res.flags = 0;
    r->res.content_length = 0;
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl->value, &end, 10);
        if (end != cl->value && *end == '\0') {
            r->res.flags = LOOM_HTTP_F_CONTENT_LENGTH;
            r->res.content_length = n;
        }
    }
    uint64_t max = r->limits.max_body_size ? r->limits.max_body_size
                   : r->on_body            ? UINT64_MAX
                                           : HC_DEFAULT_BUF_MAX;
    if (cl && (r->res.flags & LOOM_HTTP_F_CONTENT_LENGTH) && r->res.content_length > max &&
        r->method != LOOM_HTTP_METHOD_HEAD) {
        char where[300];
        loom__hc_fail(
            r, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG,
            "response body of %" PRIu64 " bytes exceeds the limit of %" PRIu64 " bytes (from %s)",
            (uint64_t)r->res.content_length, max, loom__hc_where(r->pool, where, sizeof where));
        return false;
    }
    r->state = RQ_BODY;
    r->redirecting = 0;
    int s = r->res.status;
    if (r->follow && (s == 301 || s == 302 || s == 303 || s == 307 || s == 308)) {
        const loom_http_header_t *loc = loom_http_header_find(st->hdrs, nh, "location", NULL);
        if (loc && loc->value_len) {
            if (r->redirects >= r->max_redirects) {
                char where[300];
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY,
                              "too many redirects (more than %u; the last from %s)",
                              (unsigned)r->max_redirects,
                              loom__hc_where(r->pool, where, sizeof where));
                return false;
            }
            free(r->location);
            r->location = strndup(loc->value, loc->value_len);
            if (r->location == NULL) {
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
                return false;
            }
            r->redirecting = 1;
        }
    }
    if (r->on_headers && !r->redirecting) {
        loom_http_client_response_t v;
        loom__hc_view(r, &v, st->hdrs, nh);
        v.version = 20;
        loom__op_scope sc;
        loom__op_enter(st->loop, &sc, r->on_event, r->h.data, r);
        r->in_cb = 1;
        r->on_headers(r, &v, r->h.data);
        r->in_cb = 0;
        loom__op_leave(st->loop, &sc);
        if (r->state == RQ_DONE || r->conn != c)
            return false;
    }
    return true;
}

/* DATA bytes of a request that just failed or was cancelled on them go back to the
 * connection window (automatic WINDOW_UPDATE is off: bytes nobody
 * consumes would shrink it for good, and after enough failed requests the
 * connection could receive nothing). */
static void h2_unclaimed(h2c *h, size_t len)
{
    if (!h->dead && !h->c->dead && h->sess)
        (void)nghttp2_session_consume_connection(h->sess, len);
}

/* Hands held-back (or new) body bytes of a streaming r to on_body, giving
 * the stream its window back as they are taken. Returns false when r
 * ended or left. */
static bool h2_deliver(hc_conn *c, hc_req *r, const char *data, size_t len)
{
    h2c *h = h2_of(c);
    hc_state *st = r->st;
    int32_t sid = r->h2_sid;
    loom__op_scope sc;
    loom__op_enter(st->loop, &sc, r->on_event, r->h.data, r);
    r->in_cb = 1;
    int rc = r->on_body(r, data, len, r->h.data);
    r->in_cb = 0;
    loom__op_leave(st->loop, &sc);
    if (r->state == RQ_DONE || r->conn != c || c->dead) {
        h2_unclaimed(h, len); /* cancelled in on_body: the bytes are nobody's */
        return false;
    }
    if (sid > 0)
        (void)nghttp2_session_consume(h->sess, sid, len);
    else /* held bytes of a stream that has closed since: the connection's */
        (void)nghttp2_session_consume_connection(h->sess, len);
    if (rc == LOOM_HTTP_CLIENT_PAUSE)
        r->paused = 1;
    return true;
}

/* Delivers what a resumed r held back; completes it if its stream ended. */
static void h2_drain_held(hc_conn *c, hc_req *r)
{
    while (!r->paused && loom__bytes_size(r->rbuf)) {
        size_t k = loom__bytes_size(r->rbuf);
        if (k > H2_PIECE)
            k = H2_PIECE;
        char piece[H2_PIECE];
        memcpy(piece, loom__bytes_data(r->rbuf), k);
        loom__bytes_consume(&r->rbuf, k);
        if (!h2_deliver(c, r, piece, k))
            return;
    }
    if (!r->paused && r->h2_eos && loom__bytes_size(r->rbuf) == 0)
        h2_complete(c, r);
}

/* --- nghttp2 callbacks --------------------------------------------------------------- */

static int h2_on_error(nghttp2_session *sess, int code, const char *msg, size_t len, void *ud)
{
    (void)sess;
    (void)code;
    h2c *h = ud;
    snprintf(h->err, sizeof h->err, "protocol error: %.*s", (int)len, msg);
    return 0;
}

static hc_req *h2_req(h2c *h, int32_t sid);

static const char *h2_frame_name(uint8_t type)
{
    static const char *const names[] = {"DATA",          "HEADERS",      "PRIORITY", "RST_STREAM",
                                        "SETTINGS",      "PUSH_PROMISE", "PING",     "GOAWAY",
                                        "WINDOW_UPDATE", "CONTINUATION"};
    return type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

/* nghttp2 found the response on r's stream malformed and resets the
 * stream itself: r fails here, saying so, rather than later as a reset "by
 * the server". */
static void h2_malformed(h2c *h, hc_req *r, int32_t sid, const char *what, uint32_t code)
{
    nghttp2_session_set_stream_user_data(h->sess, sid, NULL);
    r->h2_sid = 0; /* nghttp2's RST_STREAM is the only one; held bytes: h2_forget() */
    char where[300];
    loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL,
                  "malformed response from %s: %s; loom reset the stream with %s",
                  loom__hc_where(r->pool, where, sizeof where), what, nghttp2_http2_strerror(code));
}

static int h2_on_invalid_frame(nghttp2_session *sess, const nghttp2_frame *frame, int code,
                               void *ud)
{
    h2c *h = ud;
    int32_t sid = frame->hd.stream_id;
    hc_req *r = sid > 0 ? h2_req(h, sid) : NULL;
    if (r && (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)) {
        /* A malformed response (nghttp2's HTTP messaging checks: no
         * :status, a bad field): nghttp2 resets the stream with
         * PROTOCOL_ERROR itself (RFC 9113 section 8.1.1). */
        char what[120];
        snprintf(what, sizeof what, "invalid %s frame (%s)", h2_frame_name(frame->hd.type),
                 nghttp2_strerror(code));
        h2_malformed(h, r, sid, what, NGHTTP2_PROTOCOL_ERROR);
        return 0;
    }
    if (!h->err[0])
        snprintf(h->err, sizeof h->err,
                 "protocol error: invalid frame (type %u) from the server: %s",
                 (unsigned)frame->hd.type, nghttp2_strerror(code));
    return 0;
}

static int h2_on_frame_send(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)sess;
    h2c *h = ud;
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
        h->idle_frames = 0; /* ours: the server's WINDOW_UPDATEs answer them */
    if (frame->hd.type == NGHTTP2_RST_STREAM) {
        /* loom's own resets detach the request first: a request still on
         * the stream is reset by nghttp2 for what the server sent (DATA
         * beyond content-length, a stream window overrun). */
        hc_req *r = h2_req(h, frame->hd.stream_id);
        if (r) {
            char what[120];
            snprintf(what, sizeof what,
                     "a stream error (the body overran its content-length or the stream "
                     "window; %" PRIu64 " body bytes received)",
                     r->received);
            h2_malformed(h, r, frame->hd.stream_id, what, frame->rst_stream.error_code);
        }
        return 0;
    }
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR &&
        !h->err[0])
        snprintf(h->err, sizeof h->err, "protocol error: loom sent GOAWAY %s",
                 nghttp2_http2_strerror(frame->goaway.error_code));
    return 0;
}

static hc_req *h2_req(h2c *h, int32_t sid)
{
    if (h->dead || h->c->dead)
        return NULL;
    return nghttp2_session_get_stream_user_data(h->sess, sid);
}

static int h2_on_header(nghttp2_session *sess, const nghttp2_frame *frame, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    (void)sess;
    (void)flags;
    h2c *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    hc_req *r = h2_req(h, frame->hd.stream_id);
    if (r == NULL || r->state >= RQ_BODY)
        return 0; /* trailers are not kept */
    if (namelen == 7 && memcmp(name, ":status", 7) == 0) {
        /* nghttp2 checks for digits only: a status is 100 to 999, as the
         * HTTP/1 parser takes it ("020" is no final answer). */
        if (valuelen != 3 || value[0] < '1' || value[0] > '9' || value[1] < '0' || value[1] > '9' ||
            value[2] < '0' || value[2] > '9') {
            char what[80];
            snprintf(what, sizeof what, "invalid :status \"%.*s\"",
                     (int)(valuelen < 8 ? valuelen : 8), (const char *)value);
            (void)nghttp2_submit_rst_stream(h->sess, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                            NGHTTP2_PROTOCOL_ERROR);
            h2_malformed(h, r, frame->hd.stream_id, what, NGHTTP2_PROTOCOL_ERROR);
            return 0;
        }
        r->res.status = (value[0] - '0') * 100 + (value[1] - '0') * 10 + (value[2] - '0');
        return 0;
    }
    if (namelen && name[0] == ':')
        return 0;
    uint32_t maxh = r->limits.max_headers ? r->limits.max_headers : 100;
    uint32_t maxb = r->limits.max_header_bytes ? r->limits.max_header_bytes : 16384;
    if (r->h2_nhdrs + 1 > maxh || loom__bytes_size(r->h2_hdrs) + namelen + valuelen + 2 > maxb) {
        char where[300];
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG,
                      "malformed response: too many or too large header fields from %s",
                      loom__hc_where(r->pool, where, sizeof where));
        return 0;
    }
    if (loom__bytes_reserve(&r->h2_hdrs, namelen + valuelen + 2) < 0) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the response head");
        return 0;
    }
    (void)loom__bytes_append(&r->h2_hdrs, name, namelen);
    (void)loom__bytes_append(&r->h2_hdrs, "", 1);
    (void)loom__bytes_append(&r->h2_hdrs, value, valuelen);
    (void)loom__bytes_append(&r->h2_hdrs, "", 1);
    r->h2_nhdrs++;
    return 0;
}

static void h2_end_stream(hc_conn *c, hc_req *r)
{
    if (r->on_body && (r->paused || loom__bytes_size(r->rbuf))) {
        r->h2_eos = 1; /* completes when the held-back bytes are taken */
        return;
    }
    h2_complete(c, r);
}

static int h2_on_frame_recv(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)sess;
    h2c *h = ud;
    hc_conn *c = h->c;
    if (h->dead || c->dead)
        return 0;
    switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
        if (!(frame->hd.flags & NGHTTP2_FLAG_ACK) && !h->settings) {
            h->settings = 1;
            h2_after(c); /* the server's limit is known: more streams may go */
        }
        return 0;
    case NGHTTP2_GOAWAY:
        h->goaway = 1;
        h->goaway_last = frame->goaway.last_stream_id;
        h->goaway_code = frame->goaway.error_code;
        c->no_reuse = 1;
        if (c->pool->h2 == c)
            c->pool->h2 = NULL;
        if (c->nreqs == 0) /* idle: out of the pool now (freed when the read unwinds) */
            loom__hc_conn_close(c, false);
        return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
        break;
    default:
        return 0;
    }
    hc_req *r = h2_req(h, frame->hd.stream_id);
    if (r == NULL)
        return 0;
    /* A live request's HEADERS, or the end of its stream: progress. */
    if (frame->hd.type == NGHTTP2_HEADERS || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
        h->idle_frames = 0;
    if (frame->hd.type == NGHTTP2_HEADERS && r->state < RQ_BODY) {
        if (r->res.status >= 100 && r->res.status < 200) {
            /* 1xx: the final answer follows. */
            loom__bytes_consume(&r->h2_hdrs, loom__bytes_size(r->h2_hdrs));
            r->h2_nhdrs = 0;
            if (++r->interim > HC_MAX_INTERIM) {
                char where[300];
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY,
                              "more than %d interim (1xx) responses from %s", HC_MAX_INTERIM,
                              loom__hc_where(r->pool, where, sizeof where));
            }
            return 0;
        }
        if (!h2_head(c, r))
            return 0;
    }
    if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) && r->state == RQ_BODY)
        h2_end_stream(c, r);
    return 0;
}

static int h2_on_begin_headers(nghttp2_session *sess, const nghttp2_frame *frame, void *ud)
{
    (void)sess;
    h2c *h = ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    hc_req *r = h2_req(h, frame->hd.stream_id);
    if (r == NULL)
        return 0;
    /* The first byte: from here, stalls are the idle clock's. */
    if (r->state < RQ_HEAD)
        r->state = RQ_HEAD;
    /* Every HEADERS is progress, as every read is over HTTP/1.1: a 1xx
     * after the first one (or the final head, or trailers) restarts the
     * idle clock too. */
    r->rx_at = loom_now(r->st->loop);
    return 0;
}

static int h2_on_data(nghttp2_session *sess, uint8_t flags, int32_t sid, const uint8_t *data,
                      size_t len, void *ud)
{
    (void)flags;
    h2c *h = ud;
    hc_req *r = h2_req(h, sid);
    if (r == NULL) {
        if (!h->dead && !h->c->dead)
            (void)nghttp2_session_consume_connection(sess, len);
        return 0;
    }
    hc_conn *c = h->c;
    r->rx_at = loom_now(r->st->loop);
    r->received += len;
    /* The limit as over HTTP/1.1, whose body decoder counts a chunked or
     * close-ended body (a redirect's too): 64 MiB buffered, none streaming
     * unless the request set one. */
    uint64_t max = r->limits.max_body_size ? r->limits.max_body_size
                   : r->on_body            ? UINT64_MAX
                                           : HC_DEFAULT_BUF_MAX;
    if (r->received > max) {
        char where[300];
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG,
                      "response body exceeds the size limit: more than %" PRIu64 " bytes (from %s)",
                      max, loom__hc_where(r->pool, where, sizeof where));
        h2_unclaimed(h, len);
        return 0;
    }
    if (r->redirecting) {
        (void)nghttp2_session_consume(sess, sid, len); /* a redirect's body is dropped */
        return 0;
    }
    if (r->on_body) {
        if (r->paused || loom__bytes_size(r->rbuf)) {
            /* Held back: not consumed, so the stream's window closes. */
            if (loom__bytes_append(&r->rbuf, data, len) < 0) {
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
                h2_unclaimed(h, len);
            }
            return 0;
        }
        (void)h2_deliver(c, r, (const char *)data, len);
        return 0;
    }
    if (loom__bytes_append(&r->rbuf, data, len) < 0) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the body");
        h2_unclaimed(h, len);
        return 0;
    }
    (void)nghttp2_session_consume(sess, sid, len);
    return 0;
}

static int h2_on_stream_close(nghttp2_session *sess, int32_t sid, uint32_t code, void *ud)
{
    (void)sess;
    h2c *h = ud;
    hc_req *r = h2_req(h, sid);
    if (r == NULL)
        return 0;
    hc_conn *c = h->c;
    char where[300];
    loom__hc_where(c->pool, where, sizeof where);
    nghttp2_session_set_stream_user_data(h->sess, sid, NULL);
    r->h2_sid = 0;
    if (code == NGHTTP2_REFUSED_STREAM && r->state < RQ_HEAD && !r->retried &&
        loom__hc_body_rewind(r) == 0) {
        /* Never processed (RFC 9113 section 8.7): once more, on a new
         * connection if this one is going away. */
        r->retried = 1;
        c->st->stats.retries++;
        loom__queue_remove(&r->node);
        c->nreqs--;
        r->conn = NULL;
        r->state = RQ_NEW;
        loom__hc_dispatch(r);
        h2_after(c);
        return 0;
    }
    if (code == NGHTTP2_NO_ERROR && r->state == RQ_BODY && r->h2_eos) {
        h2_end_stream(c, r); /* END_STREAM came, its held-back bytes are still to go */
        return 0;
    }
    /* Anything else, RST_STREAM(NO_ERROR) included, cut the response short:
     * a response is complete only with END_STREAM (RFC 9113 section 8.1). */
    /* As over HTTP/1, a cut-off body says how much of it arrived. */
    char got[64] = "";
    if (r->state == RQ_BODY)
        snprintf(got, sizeof got, " (%" PRIu64 " body bytes received)", r->received);
    loom__hc_fail(r, LOOM_EV_HTTP_ERROR,
                  code == NGHTTP2_REFUSED_STREAM ? LOOM_ECONNREFUSED : LOOM_ECONNRESET,
                  "stream reset by %s %s: %s (HTTP/2 error code %" PRIu32 ")%s%s", where,
                  r->state >= RQ_HEAD ? "while reading the response" : "before any response",
                  nghttp2_http2_strerror(code), code, got, h->goaway ? " after GOAWAY" : "");
    return 0;
}

static ssize_t h2_read_body(nghttp2_session *sess, int32_t sid, uint8_t *buf, size_t len,
                            uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)sess;
    (void)src;
    h2c *h = ud;
    hc_req *r = h2_req(h, sid);
    if (r == NULL)
        return NGHTTP2_ERR_DEFERRED; /* its stream is being reset */
    size_t n;
    bool eof;
    int rc = loom__hc_body_read(r, (char *)buf, len, &n, &eof);
    if (rc == LOOM_EAGAIN)
        return NGHTTP2_ERR_DEFERRED; /* loom_http_client_body_ready() resumes */
    if (rc < 0)
        return NGHTTP2_ERR_DEFERRED;  /* r failed or was cancelled: reset */
    r->rx_at = loom_now(r->st->loop); /* progress: the idle clock */
    if (eof) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        r->upload_done = 1;
        if (r->state == RQ_SENDING)
            r->state = RQ_SENT;
    }
    return (ssize_t)n;
}

/* --- Sending a request ------------------------------------------------------------- */

static bool h2_skip_field(const char *name, size_t n, const char *value, size_t vn, bool strip)
{
    static const char *const drop[] = {"host",    "connection",       "keep-alive",
                                       "upgrade", "proxy-connection", "transfer-encoding"};
    for (size_t k = 0; k < sizeof drop / sizeof drop[0]; k++)
        if (hc_ieq(name, n, drop[k]))
            return true;
    if (hc_ieq(name, n, "te"))
        return !(vn == 8 && strncasecmp(value, "trailers", 8) == 0);
    if (strip && (hc_ieq(name, n, "content-length") || hc_ieq(name, n, "content-type")))
        return true;
    return false;
}

/* Renders r's pseudo-header and header fields into w (measuring when
 * w->out is NULL) and, when nv is not NULL, their nghttp2 name/value pairs
 * (*nnv counts them). */
static void h2_render(hc_req *r, hc_w *w, nghttp2_nv *nv, size_t *nnv)
{
    const loom_url_t *u = &r->u;
    hc_state *st = r->st;
    size_t k = 0;
#define H2_NV(nm, nl, vstart)                                                                      \
    do {                                                                                           \
        if (nv) {                                                                                  \
            nv[k].name = (uint8_t *)(nm);                                                          \
            nv[k].namelen = (nl);                                                                  \
            nv[k].value = (uint8_t *)(w->out + (vstart));                                          \
            nv[k].valuelen = w->n - (vstart);                                                      \
            nv[k].flags = NGHTTP2_NV_FLAG_NONE;                                                    \
        }                                                                                          \
        k++;                                                                                       \
    } while (0)
    size_t v0 = w->n;
    hc_put(w, r->buf, r->method_len);
    H2_NV(":method", 7, v0);
    v0 = w->n;
    hc_puts(w, r->pool->scheme == HC_SCHEME_HTTPS ? "https" : "http");
    H2_NV(":scheme", 7, v0);
    /* :authority: the caller's Host, else the URL's host[:port]. */
    const char *lines = r->buf + r->method_len;
    bool have_auth = false;
    if (r->user_host) {
        for (size_t i = 0; i < r->hdr_len;) {
            const char *e = memchr(lines + i, '\n', r->hdr_len - i);
            size_t end = (size_t)(e - lines) + 1;
            const char *colon = memchr(lines + i, ':', end - i);
            if (colon && hc_ieq(lines + i, (size_t)(colon - lines - i), "host")) {
                const char *val = colon + 2;
                v0 = w->n;
                hc_put(w, val, (size_t)(lines + end - 2 - val));
                H2_NV(":authority", 10, v0);
                have_auth = true;
                break;
            }
            i = end;
        }
    }
    if (!have_auth) {
        v0 = w->n;
        if (u->flags & LOOM_URL_F_IPV6)
            hc_put(w, "[", 1);
        hc_put(w, u->host, u->host_len);
        if (u->flags & LOOM_URL_F_IPV6)
            hc_put(w, "]", 1);
        if (u->flags & LOOM_URL_F_PORT) {
            char p[16];
            int pn = snprintf(p, sizeof p, ":%d", u->port);
            hc_put(w, p, (size_t)pn);
        }
        H2_NV(":authority", 10, v0);
    }
    /* :path: path (or "/") and query, bytes a target may not carry
     * percent-encoded. */
    v0 = w->n;
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {u->path, u->query};
    size_t plen[2] = {u->path_len, u->query_len};
    if (u->path_len == 0)
        hc_put(w, "/", 1);
    for (int j = 0; j < 2; j++) {
        if (j == 1) {
            if (!(u->flags & LOOM_URL_F_QUERY))
                break;
            hc_put(w, "?", 1);
        }
        if (plen[j] == 0)
            continue;
        const char *p = parts[j];
        size_t i = 0, start = 0;
        for (; i < plen[j]; i++) {
            unsigned char ch = (unsigned char)p[i];
            if (ch > 0x20 && ch < 0x7f)
                continue;
            hc_put(w, p + start, i - start);
            char e[3] = {'%', hex[ch >> 4], hex[ch & 15]};
            hc_put(w, e, 3);
            start = i + 1;
        }
        hc_put(w, p + start, i - start);
    }
    H2_NV(":path", 5, v0);
    if (!r->user_ua) {
        v0 = w->n;
        hc_put(w, st->ua ? st->ua : HC_DEFAULT_UA, st->ua_len);
        H2_NV("user-agent", 10, v0);
    }
    if (!r->user_auth && (u->flags & LOOM_URL_F_USERINFO)) {
        v0 = w->n;
        hc_puts(w, "Basic ");
        loom__hc_put_b64_decoded(w, u->userinfo, u->userinfo_len);
        H2_NV("authorization", 13, v0);
    }
    /* The caller's fields, names lower-cased (HTTP/2 requires it). */
    for (size_t i = 0; i < r->hdr_len;) {
        const char *e = memchr(lines + i, '\n', r->hdr_len - i);
        size_t end = (size_t)(e - lines) + 1;
        const char *colon = memchr(lines + i, ':', end - i);
        size_t nl = (size_t)(colon - lines - i);
        const char *val = colon + 2;
        size_t vl = (size_t)(lines + end - 2 - val);
        if (!h2_skip_field(lines + i, nl, val, vl, r->strip_body_headers)) {
            size_t n0 = w->n;
            for (size_t j = 0; j < nl; j++) {
                char ch = lines[i + j];
                ch = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
                hc_put(w, &ch, 1);
            }
            v0 = w->n;
            hc_put(w, val, vl);
            if (nv) {
                nv[k].name = (uint8_t *)(w->out + n0);
                nv[k].namelen = nl;
                nv[k].value = (uint8_t *)(w->out + v0);
                nv[k].valuelen = vl;
                nv[k].flags = NGHTTP2_NV_FLAG_NONE;
            }
            k++;
        }
        i = end;
    }
    bool has_body = r->body != NULL || r->on_source != NULL;
    if (has_body && !r->user_cl && !(r->on_source && r->body_length < 0)) {
        v0 = w->n;
        char num[24];
        int nn = snprintf(num, sizeof num, "%" PRIu64,
                          r->on_source ? (uint64_t)r->body_length : (uint64_t)r->body_len);
        hc_put(w, num, (size_t)nn);
        H2_NV("content-length", 14, v0);
    }
#undef H2_NV
    *nnv = k;
}

/* Opens r's stream on c's session. */
static void h2_start(hc_conn *c, hc_req *r)
{
    h2c *h = h2_of(c);
    hc_w m = {NULL, 0};
    size_t nnv;
    h2_render(r, &m, NULL, &nnv);
    char sbuf[1024];
    nghttp2_nv snv[24];
    char *buf = m.n <= sizeof sbuf ? sbuf : malloc(m.n);
    nghttp2_nv *nv = nnv <= 24 ? snv : malloc(nnv * sizeof *nv);
    int32_t sid = NGHTTP2_ERR_NOMEM;
    if (buf && nv) {
        hc_w w = {buf, 0};
        h2_render(r, &w, nv, &nnv);
        bool has_body = (r->body != NULL && r->body_len > 0) || r->on_source != NULL;
        nghttp2_data_provider prd = {.source.ptr = r, .read_callback = h2_read_body};
        h->busy++;
        sid = nghttp2_submit_request(h->sess, NULL, nv, nnv, has_body ? &prd : NULL, r);
        h2_leave(h);
    }
    if (buf != sbuf)
        free(buf);
    if (nv != snv)
        free(nv);
    if (sid < 0) {
        char where[300], msg[400];
        snprintf(msg, sizeof msg, "cannot send the request on HTTP/2 to %s: %s",
                 loom__hc_where(r->pool, where, sizeof where), nghttp2_strerror(sid));
        loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR,
                            sid == NGHTTP2_ERR_NOMEM ? LOOM_ENOMEM : LOOM_EPROTOCOL, msg);
        return;
    }
    r->h2_sid = sid;
    if (!(r->on_source != NULL)) {
        if (!(r->body != NULL && r->body_len > 0))
            r->upload_done = 1;
        r->state = RQ_SENT;
    }
    uint64_t now = loom_now(r->st->loop);
    r->sent_at = now;
    int trc = 0;
    if (r->first_to)
        trc = loom__hc_req_first_byte_by(r, now + r->first_to);
    if (trc == 0 && r->idle_to)
        trc = loom__hc_req_idle(r, true); /* stalls sending, or after the first byte */
    if (trc < 0)
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, trc, "out of memory");
    h2_kick(c);
}

/* --- The connection is up: h2, or HTTP/1.1 ----------------------------------------- */

static int h2_session_new(hc_conn *c)
{
    h2c *h = h2_of(c);
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return LOOM_ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, h2_on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, h2_on_frame_recv);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, h2_on_begin_headers);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, h2_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, h2_on_stream_close);
    nghttp2_session_callbacks_set_error_callback2(cb, h2_on_error);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cb, h2_on_invalid_frame);
    nghttp2_session_callbacks_set_on_frame_send_callback(cb, h2_on_frame_send);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return LOOM_ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    nghttp2_option_set_peer_max_concurrent_streams(opt, H2_DEFAULT_STREAMS);
    int rv = nghttp2_session_client_new2(&h->sess, cb, h, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return LOOM_ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
    };
    if (nghttp2_submit_settings(h->sess, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
        nghttp2_session_set_local_window_size(h->sess, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW) != 0)
        return LOOM_ENOMEM;
    return 0;
}

static void h2_connected(hc_conn *c)
{
    h2c *h = h2_of(c);
    hc_pool *pool = c->pool;
    hc_state *st = c->st;
    if (h == NULL) {
        h2_fatal(c, LOOM_ENOMEM, "out of memory");
        return;
    }
    if (h->decided)
        return;
    h->decided = 1;
    pool->h2_wait--;
    bool h2 = pool->ver == HC_V_H2C;
    if (pool->scheme == HC_SCHEME_HTTPS) {
        loom_tls_info info;
        h2 = loom_socket_tls_info(c->s, &info) == 0 && info.alpn_len == 2 &&
             memcmp(info.alpn, "h2", 2) == 0;
    }
    if (!h2 && pool->ver == HC_V_H2ONLY) {
        char where[300];
        loom__hc_where(pool, where, sizeof where);
        pool->proto = HC_PROTO_UNKNOWN;
        while (!loom__queue_empty(&c->reqs) && !c->dead)
            loom__hc_fail(hc_req_of(c->reqs.next), LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL,
                          "%s did not choose h2 by ALPN (HTTP/2 with prior knowledge asked)",
                          where);
        if (!c->dead)
            loom__hc_conn_close(c, false);
        return;
    }
    if (!h2) {
        /* HTTP/1.1: the connection becomes an HTTP/1 one, the pool an
         * HTTP/1.1 pool; its first request is sent on it, others (and the
         * waiters) find connections of their own. */
        pool->proto = HC_PROTO_H1;
        if (c->pend_queued)
            loom__pending_cancel(&c->pend);
        c->pend_queued = 0;
        h2_free(h);
        c->h2 = NULL;
        c->ops = &loom__hc_h1_ops;
        c->ops->opened(c);
        loom__queue moved;
        loom__queue_init(&moved);
        if (!loom__queue_empty(&c->reqs)) {
            hc_req *first = hc_req_of(c->reqs.next);
            while (c->reqs.next->next != &c->reqs) {
                hc_req *o = hc_req_of(c->reqs.next->next);
                loom__queue_remove(&o->node);
                c->nreqs--;
                o->conn = NULL;
                o->state = RQ_NEW;
                loom__queue_insert_tail(&moved, &o->node);
            }
            c->ops->submit(c, first);
        } else {
            loom__hc_conn_release(c);
        }
        while (!loom__queue_empty(&moved)) {
            hc_req *o = hc_req_of(moved.next);
            loom__queue_remove(&o->node);
            loom__hc_dispatch(o);
        }
        while (!loom__queue_empty(&pool->waiters) && pool->nconns < st->max_per_host) {
            hc_req *w = hc_req_of(pool->waiters.next);
            loom__queue_remove(&w->node);
            st->stats.queued--;
            w->state = RQ_NEW;
            loom__hc_dispatch(w);
        }
        return;
    }
    pool->proto = HC_PROTO_H2;
    if (pool->h2 == NULL)
        pool->h2 = c;
    int rc = h2_session_new(c);
    if (rc < 0) {
        h2_fatal(c, rc, "cannot start HTTP/2: %s", loom_strerror(rc));
        return;
    }
    (void)loom__hc_conn_timeouts(c, 0, 0);
    for (loom__queue *q = c->reqs.next; q != &c->reqs && !c->dead;) {
        hc_req *r = hc_req_of(q);
        q = q->next;
        h2_start(c, r);
    }
    h2_after(c);
    h2_flush(c);
}

/* --- Operations ------------------------------------------------------------------- */

static void h2_pending(loom__pending *p)
{
    hc_conn *c = LOOM__CONTAINER_OF(p, hc_conn, pend);
    c->pend_queued = 0;
    h2c *h = h2_of(c);
    if (c->dead || h == NULL || h->sess == NULL)
        return;
    /* Resumed streams take what they held back. */
    for (loom__queue *q = c->reqs.next; q != &c->reqs && !c->dead;) {
        hc_req *r = hc_req_of(q);
        q = q->next;
        if (r->on_body && !r->paused && (loom__bytes_size(r->rbuf) || r->h2_eos)) {
            h->busy++;
            h2_drain_held(c, r);
            if (h2_leave(h))
                return;
            q = c->reqs.next; /* the list may have changed */
        }
    }
    if (c->dead)
        return;
    if (c->no_reuse && c->nreqs == 0) {
        loom__hc_conn_close(c, false);
        return;
    }
    h2_flush(c);
}

static void h2_opened(hc_conn *c)
{
    h2c *h = calloc(1, sizeof *h);
    c->h2 = h;
    c->pend.fn = h2_pending;
    c->pool->h2_wait++;
    if (h == NULL) {
        c->no_reuse = 1; /* fails at connect (below) */
        return;
    }
    h->c = c;
}

static bool h2_can_take(hc_conn *c, hc_req *r)
{
    (void)r;
    h2c *h = h2_of(c);
    if (c->dead || c->no_reuse || h == NULL || !h->decided || h->sess == NULL || h->goaway)
        return false;
    uint32_t max =
        nghttp2_session_get_remote_settings(h->sess, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
    if (!h->settings && max > H2_DEFAULT_STREAMS)
        max = H2_DEFAULT_STREAMS;
    return c->nreqs < max;
}

static void h2_submit(hc_conn *c, hc_req *r)
{
    h2c *h = h2_of(c);
    memset(&r->res, 0, sizeof r->res);
    loom__bytes_consume(&r->h2_hdrs, loom__bytes_size(r->h2_hdrs));
    loom__bytes_consume(&r->rbuf, loom__bytes_size(r->rbuf));
    r->h2_nhdrs = 0;
    r->h2_eos = 0;
    r->h2_sid = 0;
    r->received = 0;
    r->interim = 0;
    r->idle_on = 0;
    r->in_rbuf = 0;
    r->upload_done = 0;
    r->uploaded = 0;
    r->state = r->on_source ? RQ_SENDING : RQ_SENT;
    if (r->first_byte_at)
        (void)loom__hc_req_first_byte_by(r, 0);
    if (h == NULL) {
        loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        return;
    }
    if (!h->decided)
        return;                            /* sent when the connection is up */
    (void)loom__hc_conn_timeouts(c, 0, 0); /* it may come from the idle list */
    h2_start(c, r);
}

static void h2_cancel(hc_conn *c, hc_req *r)
{
    h2_drop(c, r);
}

static void h2_closed(hc_conn *c)
{
    h2c *h = h2_of(c);
    if (c->pend_queued)
        loom__pending_cancel(&c->pend);
    c->pend_queued = 0;
    c->h2 = NULL;
    if (h == NULL) {
        c->pool->h2_wait--;
        return;
    }
    if (!h->decided)
        c->pool->h2_wait--;
    h->dead = 1;
    if (h->busy == 0)
        h2_free(h);
}

/* What the flood guard's frame reader makes of a frame header: 1, it
 * carries body bytes for sure (DATA without padding and not empty, or padded
 * and longer than any padding can be: on a stream that is gone too, as flow
 * control bounds those and each costs the server as much as us); -1, an
 * ACK (an answer to ours); 0, anything else, which counts as carrying
 * nothing unless nghttp2 then shows it made progress on a live stream (a
 * response's HEADERS, its END_STREAM: h2_on_frame_recv), since the same
 * frames on a stream that is gone are dropped unseen. */
static int h2_frame_carries(const uint8_t hd[9])
{
    uint32_t len = (uint32_t)hd[0] << 16 | (uint32_t)hd[1] << 8 | hd[2];
    uint8_t type = hd[3], flags = hd[4];
    switch (type) {
    case NGHTTP2_DATA:
        return (flags & NGHTTP2_FLAG_PADDED) ? len > 256 : len > 0;
    case NGHTTP2_SETTINGS:
    case NGHTTP2_PING:
        return (flags & NGHTTP2_FLAG_ACK) ? -1 : 0;
    default:
        return 0;
    }
}

/* Reads the frame headers in buf[0..len) (whole or partial frames),
 * counting the frames that carry nothing, and stops right after the header
 * of the one that makes them more than H2_MAX_IDLE_FRAMES. Returns the
 * bytes read. O(frames). */
static size_t h2_guard(h2c *h, const char *buf, size_t len)
{
    uint64_t now = loom_now(h->c->st->loop);
    if (now - h->idle_at >= 1000) {
        h->idle_at = now;
        h->idle_frames = 0;
    }
    size_t off = 0;
    while (off < len) {
        if (h->fr_left) {
            size_t k = len - off < h->fr_left ? len - off : h->fr_left;
            h->fr_left -= (uint32_t)k;
            off += k;
            continue;
        }
        while (h->fr_hn < 9 && off < len)
            h->fr_hd[h->fr_hn++] = (uint8_t)buf[off++];
        if (h->fr_hn < 9)
            break;
        h->fr_hn = 0;
        h->fr_left = (uint32_t)h->fr_hd[0] << 16 | (uint32_t)h->fr_hd[1] << 8 | h->fr_hd[2];
        int carries = h2_frame_carries(h->fr_hd);
        if (carries > 0)
            h->idle_frames = 0;
        else if (carries == 0 && ++h->idle_frames > H2_MAX_IDLE_FRAMES)
            return off;
    }
    return len;
}

/* Gives p[0..n) to nghttp2, then applies the flood guard's verdict.
 * Returns false when the connection ended or the session went away. */
static bool h2_give(hc_conn *c, h2c *h, const uint8_t *p, size_t n)
{
    h->busy++;
    c->in_read++;
    ssize_t rv = nghttp2_session_mem_recv(h->sess, p, n);
    c->in_read--;
    if (h2_leave(h))
        return false;
    if (c->dead)
        return false;
    if (rv < 0) {
        h2_flush(c); /* nghttp2's GOAWAY, if it made one */
        h2_fatal(c, LOOM_EPROTOCOL, "protocol error: %s", nghttp2_strerror((int)rv));
        return false;
    }
    if (h->idle_frames > H2_MAX_IDLE_FRAMES) {
        uint8_t type = h->fr_hd[3];
        h->flooded = 1;
        char why[sizeof h->err];
        snprintf(why, sizeof why,
                 "flooded by the server: more than %d frames that carry nothing (the last: "
                 "%s%s) within a second; sent GOAWAY (ENHANCE_YOUR_CALM)",
                 H2_MAX_IDLE_FRAMES, type == NGHTTP2_DATA ? "empty " : "", h2_frame_name(type));
        snprintf(h->err, sizeof h->err, "%s", why);
        (void)nghttp2_session_terminate_session(h->sess, NGHTTP2_ENHANCE_YOUR_CALM);
        h2_flush(c); /* the GOAWAY */
        h2_fatal(c, LOOM_EPROTOCOL, "%s", why);
        return false;
    }
    return true;
}

static void h2_read(hc_conn *c, char *buf, size_t len)
{
    h2c *h = h2_of(c);
    if (h == NULL || h->sess == NULL || c->dead || h->flooded)
        return;
    /* A frame header cut by the end of a read is held back (h2_guard keeps
     * it in fr_hd) and given whole once the rest comes: nghttp2 1.52 counts
     * a CONTINUATION against max_continuations once per call that sees part
     * of its header, so a header arriving in pieces (TCP segments, TLS
     * records) would count several times and end a well-formed block. */
    size_t off = 0;
    if (h->fr_hn > 0) {
        uint8_t hd[9];
        size_t have = h->fr_hn, k = 9 - have < len ? 9 - have : len;
        memcpy(hd, h->fr_hd, have);
        memcpy(hd + have, buf, k);
        size_t n = h2_guard(h, buf, k); /* completes the header, or keeps it */
        if (have + k < 9)
            return;
        if (!h2_give(c, h, hd, 9))
            return;
        off = n;
    }
    /* nghttp2 gets the bytes a piece at a time: up to where the frames that
     * carry nothing would be too many, so that the progress its callbacks
     * find there (which zeroes idle_frames) counts before the guard
     * decides. */
    while (off < len) {
        size_t n = h2_guard(h, buf + off, len - off);
        size_t give = n - (off + n == len ? h->fr_hn : 0);
        if (give > 0 && !h2_give(c, h, (const uint8_t *)buf + off, give))
            return;
        off += n;
    }
    h2_flush(c);
}

static void h2_drain_op(hc_conn *c)
{
    h2_flush(c);
}

/* Failures once the connection speaks HTTP/2 (before that, the HTTP/1
 * code reports connect, dns and handshake failures). */
static bool h2_event(hc_conn *c, loom_event_kind_t kind, int code, const char *msg)
{
    h2c *h = h2_of(c);
    if (h == NULL || !h->decided)
        return false;
    if (loom__queue_empty(&c->reqs)) {
        loom__hc_conn_close(c, false); /* an idle connection went away */
        return true;
    }
    char why[200];
    switch (kind) {
    case LOOM_EV_TCP_EOF:
        snprintf(why, sizeof why, "connection closed by the server%s",
                 h->goaway ? " after GOAWAY" : "");
        code = LOOM_EOF;
        break;
    case LOOM_EV_TCP_RESET: {
        /* The address the connection had, kept from connect, when the
         * host is a name ("localhost:8443: connection reset by
         * 127.0.0.1:8443"): the kernel no longer says after a reset. */
        char where[300], addr[64];
        loom__hc_where(c->pool, where, sizeof where);
        bool named =
            loom__socket_kept_peer_name(c->s, addr, sizeof addr) && strcmp(addr, where) != 0;
        snprintf(why, sizeof why, "connection reset%s%s%s", named ? " by " : "", named ? addr : "",
                 h->goaway ? " after GOAWAY" : "");
        break;
    }
    case LOOM_EV_TCP_TIMEOUT:
        snprintf(why, sizeof why, "write timeout (%s)", msg ? msg : "no progress");
        code = LOOM_ETIMEDOUT;
        break;
    default:
        snprintf(why, sizeof why, "%s", msg ? msg : loom_strerror(code));
        break;
    }
    h2_fatal(c, code ? code : LOOM_ECONNRESET, "%s", why);
    return true;
}

static void h2_fail_op(hc_conn *c, hc_req *r)
{
    h2_drop(c, r);
}

static void h2_pause(hc_conn *c, hc_req *r)
{
    (void)c;
    (void)r; /* its bytes are held back, unconsumed, from now */
}

static void h2_resume(hc_conn *c, hc_req *r)
{
    (void)r;
    h2_kick(c); /* delivers from the loop */
}

static void h2_pump(hc_conn *c, hc_req *r)
{
    h2c *h = h2_of(c);
    if (h == NULL || h->sess == NULL || r->h2_sid <= 0)
        return;
    (void)nghttp2_session_resume_data(h->sess, r->h2_sid);
    h2_flush(c);
}

const hc_conn_ops loom__hc_h2_ops = {
    .name = "h2",
    .opened = h2_opened,
    .can_take = h2_can_take,
    .submit = h2_submit,
    .cancel = h2_cancel,
    .closed = h2_closed,
    .fail = h2_fail_op,
    .connected = h2_connected,
    .read = h2_read,
    .drain = h2_drain_op,
    .event = h2_event,
    .pause = h2_pause,
    .resume = h2_resume,
    .pump = h2_pump,
};
