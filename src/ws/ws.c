/* ws/ws.c - a WebSocket connection (RFC 6455) on a plain loom socket:
 * frames in (validated, unmasked, reassembled or streamed), frames out
 * (whole, fragmented, control), the close handshake, keepalive and the
 * close notification. The handshakes are in ws_server.c and ws_client.c.
 *
 * Memory: an open, idle connection holds this object and a share of its
 * class; the frame and message buffers exist only while a frame or message
 * is incomplete. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "net/net_internal.h"
#include "loom/ws_frame.h"
#include "ws/ws_internal.h"

#define WS_DEFAULT_MAX_MESSAGE   ((size_t)16 << 20)
#define WS_DEFAULT_CLOSE_TIMEOUT 5000u

/* --- Classes ---------------------------------------------------------------- */

/* The last class made on this thread: accepts with equal options share it
 * (a server passes the same options to every accept). */
static _Thread_local loom__ws_class *ws_last_class;

loom__ws_class *loom__ws_class_get(const loom_ws_opts *o, bool server)
{
    loom_ws_opts zero = {0};
    if (o == NULL)
        o = &zero;
    loom__ws_class *c = ws_last_class;
    if (c && c->server == server && memcmp(&c->o, o, sizeof *o) == 0) {
        c->refs++;
        return c;
    }
    c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->o = *o;
    c->refs = 1;
    c->server = server;
    ws_last_class = c;
    return c;
}

void loom__ws_class_unref(loom__ws_class *c)
{
    if (--c->refs == 0) {
        if (ws_last_class == c)
            ws_last_class = NULL;
        free(c);
    }
}

static size_t ws_max_message(const loom_ws_t *ws)
{
    return ws->cls->o.max_message ? ws->cls->o.max_message : WS_DEFAULT_MAX_MESSAGE;
}

static size_t ws_max_frame(const loom_ws_t *ws)
{
    return ws->cls->o.max_frame ? ws->cls->o.max_frame : ws_max_message(ws);
}

/* --- Helpers: accept key, UTF-8, masking ------------------------------------- */

void loom__ws_accept_key(const char *key, size_t len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    char in[64 + sizeof guid];
    if (len > 64)
        len = 64; /* keys are 24 bytes; a longer one was refused already */
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof guid - 1);
    unsigned int mdlen = 0;
    if (EVP_Digest(in, len + sizeof guid - 1, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        memset(md, 0, sizeof md); /* no match: the handshake fails, nothing worse */
    EVP_EncodeBlock((unsigned char *)out, md, 20);
    out[28] = '\0';
}

/* --- Events and the close --------------------------------------------------- */

void loom__ws_event(loom_ws_t *ws, loom_event_kind_t kind, int code, const char *msg)
{
    loom_loop_t *loop = loom_socket_loop(ws->sock);
    if (ws->cls->o.on_event) {
        loom__event_emit(loop, ws->cls->o.on_event, ws->data, kind, code, msg, ws);
        return;
    }
    /* A server's connection: a peer must not end the server's loom_run(). */
    if (ws->cls->server && loop->on_event == NULL) {
        loom_log(loop, loom_event_kind_is(kind, LOOM_EV_ERROR) ? LOOM_LOG_INFO : LOOM_LOG_DEBUG,
                 "%s", msg);
        return;
    }
    loom__event_emit(loop, NULL, NULL, kind, code, msg, ws);
}

/* RFC 6455 section 7.4: the codes a close frame may carry (ws_frame.h). */
static bool ws_code_ok(int code)
{
    return code > 0 && loom_ws_close_code_valid((unsigned)code);
}

static void ws_free_release(const void *buf, size_t len, void *data)
{
    (void)len;
    (void)data;
    free((void *)buf);
}

/* A frame header for a payload of len bytes into h (14 bytes of room): op
 * (with RSV1 when 0x40 is set), FIN, the length and, on a client, the mask
 * bit and a fresh unpredictable key. Returns its length; *key is where the
 * key is (NULL on a server). */
static size_t ws_frame_head(const loom_ws_t *ws, unsigned char *h, int op, bool fin, size_t len,
                            const unsigned char **key)
{
    size_t hl = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | op);
    if (len < 126)
        h[1] = (unsigned char)len;
    else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        hl = 4;
    } else {
        h[1] = 127;
        for (int k = 0; k < 8; k++)
            h[2 + k] = (unsigned char)((uint64_t)len >> (56 - 8 * k));
        hl = 10;
    }
    *key = NULL;
    if (ws->cls->server)
        return hl;
    h[1] |= 0x80;
    uint32_t k = arc4random();
    memcpy(h + hl, &k, 4);
    *key = h + hl;
    return hl + 4;
}

static void ws_free_data_release(const void *buf, size_t len, void *data)
{
    (void)buf;
    (void)len;
    free(data);
}

/* Writes one frame: header, then the payload (masked into a copy on a
 * client). Returns like loom_socket_write(). */
static int ws_write_frame(loom_ws_t *ws, int op, bool fin, const void *data, size_t len)
{
    unsigned char h[14];
    const unsigned char *key;
    size_t hl = ws_frame_head(ws, h, op, fin, len, &key);
    if (key == NULL) {
        struct iovec iov[2] = {{h, hl}, {(void *)data, len}};
        return loom_socket_writev(ws->sock, iov, len ? 2 : 1);
    }
    /* Client frames are masked, into the thread's scratch buffer (a large
     * one into its own, handed to the socket). */
    char small[512];
    int owned = 0;
    char *buf = hl + len <= sizeof small ? small : loom__ws_zbuf(hl + len, &owned);
    if (buf == NULL)
        return LOOM_ENOMEM;
    memcpy(buf, h, hl);
    if (len)
        memcpy(buf + hl, data, len);
    loom_ws_mask(buf + hl, len, key, 0);
    if (!owned)
        return loom_socket_write(ws->sock, buf, hl + len);
    int r = loom_socket_write_ref(ws->sock, buf, hl + len, ws_free_release, NULL);
    if (r < 0)
        free(buf);
    return r;
}

int loom__ws_write_frame(loom_ws_t *ws, int op, bool fin, const void *data, size_t len)
{
    return ws_write_frame(ws, op, fin, data, len);
}

int loom__ws_send_z(loom_ws_t *ws, int op, bool fin, const void *data, size_t len)
{
    /* Compressed into scratch memory behind room for the largest header,
     * which then goes right in front of the payload: one buffer, one write,
     * masked in place on a client. */
    size_t cap = loom_ws_deflate_bound(len), ol = 0;
    int owned;
    char *buf = loom__ws_zbuf(14 + cap, &owned);
    if (buf == NULL)
        return LOOM_ENOMEM;
    int r = loom_ws_deflate_compress(ws->z, data, len, fin, buf + 14, cap, &ol);
    if (r == 0) {
        unsigned char h[14];
        const unsigned char *key;
        size_t hl = ws_frame_head(ws, h, op, fin, ol, &key);
        char *f = buf + 14 - hl;
        memcpy(f, h, hl);
        if (key)
            loom_ws_mask(buf + 14, ol, key, 0);
        if (!owned)
            return loom_socket_write(ws->sock, f, hl + ol);
        r = loom_socket_write_ref(ws->sock, f, hl + ol, ws_free_data_release, buf);
        if (r >= 0)
            return r;
    }
    if (owned)
        free(buf);
    return r;
}

static int ws_write_close(loom_ws_t *ws, int code, const char *reason, size_t rlen)
{
    char p[125];
    if (code == 0)
        return ws_write_frame(ws, 0x8, true, NULL, 0);
    p[0] = (char)(code >> 8);
    p[1] = (char)code;
    if (rlen > 123)
        rlen = 123;
    if (rlen)
        memcpy(p + 2, reason, rlen);
    return ws_write_frame(ws, 0x8, true, p, 2 + rlen);
}

static void ws_free_bufs(loom_ws_t *ws)
{
    free(ws->rbuf);
    ws->rbuf = NULL;
    ws->rlen = ws->rcap = 0;
    free(ws->mbuf);
    ws->mbuf = NULL;
    ws->mlen = ws->mcap = 0;
}

/* Leaves OPEN/CLOSE_SENT for good: the socket closes (gracefully, after what
 * is queued, or at once). */
static void ws_set_closed(loom_ws_t *ws, bool abort)
{
    if (ws->state == WS_CLOSED)
        return;
    ws->state = WS_CLOSED;
    if (ws->timer)
        loom_timer_stop(ws->timer);
    if (abort) {
        loom_socket_abort(ws->sock);
        return;
    }
    /* The flush is bounded: a peer that stopped reading cannot keep the
     * connection (and its queue) forever. */
    uint32_t t =
        ws->cls->o.close_timeout_ms ? ws->cls->o.close_timeout_ms : WS_DEFAULT_CLOSE_TIMEOUT;
    loom_socket_set_timeouts(ws->sock, 0, t);
    loom_socket_close(ws->sock);
}

void loom__ws_fail(loom_ws_t *ws, int code, bool abort, const char *fmt, ...)
{
    if (ws->state == WS_CLOSED)
        return;
    char why[160], msg[256], peer[80];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    loom__socket_peer_name(ws->sock, peer, sizeof peer);
    if (code)
        snprintf(msg, sizeof msg, "websocket %s: %s (%d)", peer[0] ? peer : "?", why, code);
    else
        snprintf(msg, sizeof msg, "websocket %s: %s", peer[0] ? peer : "?", why);
    if (ws->state == WS_OPEN && code && !abort)
        ws_write_close(ws, code, why, strlen(why));
    if (!(ws->flags & WS_F_GOT_CLOSE))
        ws->close_code = code ? (uint16_t)code : LOOM_WS_ABNORMAL;
    /* No callback runs for the connection past this point but the event
     * (emitted first, while the socket still exists) and on_close. */
    uint8_t st = ws->state;
    ws->state = WS_CLOSED;
    loom__ws_event(ws, LOOM_EV_WS_ERROR, code == LOOM_WS_TOO_BIG ? LOOM_ETOOBIG : LOOM_EPROTOCOL,
                   msg);
    ws->state = st;
    ws_set_closed(ws, abort);
}

/* --- The socket's callbacks ------------------------------------------------- */

static void ws_sock_read(loom_socket_t *s, const char *p, size_t n, void *data)
{
    (void)s;
    loom_ws_t *ws = data;
    if (ws->client) {
        loom__ws_client_read(ws, p, n);
        return;
    }
    /* loom's read memory is the reader's for the duration of the call:
     * frames are unmasked in place, never copied when they arrive whole. */
    loom__ws_feed(ws, (char *)p, n);
}

static void ws_sock_drain(loom_socket_t *s, void *data)
{
    (void)s;
    loom_ws_t *ws = data;
    if (ws->state != WS_CLOSED && ws->cls->o.on_drain)
        ws->cls->o.on_drain(ws, ws->data);
}

static void ws_sock_event(const loom_event_t *ev, void *data)
{
    loom_ws_t *ws = data;
    /* A close handshake whose answer never came ends quietly: the
     * application asked for the close, and on_close reports its code. */
    bool quiet = ws->state == WS_CLOSE_SENT && ev->kind == LOOM_EV_TCP_TIMEOUT;
    /* The socket closes itself after these; the connection ends with it. */
    if (ws->state != WS_CLOSED) {
        ws->state = WS_CLOSED;
        if (!(ws->flags & WS_F_GOT_CLOSE) && ws->close_code == 0)
            ws->close_code = LOOM_WS_ABNORMAL;
        if (ws->timer)
            loom_timer_stop(ws->timer);
    }
    if (quiet)
        return;
    char msg[320], peer[80];
    loom__socket_peer_name(ws->sock, peer, sizeof peer);
    snprintf(msg, sizeof msg, "websocket %s: %s", peer[0] ? peer : "?", ev->msg);
    loom__ws_event(ws, ev->kind, ev->code, msg);
}

static void ws_sock_close(loom_socket_t *s, void *data)
{
    (void)s;
    loom_ws_t *ws = data;
    ws->state = WS_CLOSED;
    loom__ws_unsubscribe_all(ws);
    if (ws->timer) {
        loom_timer_close(ws->timer);
        ws->timer = NULL;
    }
    if (ws->client) {
        loom__ws_client_free(ws->client);
        ws->client = NULL;
    }
    int code = ws->close_code ? ws->close_code : LOOM_WS_ABNORMAL;
    const char *reason = "";
    size_t rl = 0;
    if ((ws->flags & WS_F_GOT_CLOSE) && ws->mbuf) {
        reason = ws->mbuf;
        rl = ws->mlen;
    }
    if (ws->cls->o.on_close) {
        loom__op_scope sc;
        loom_loop_t *loop = loom_socket_loop(ws->sock);
        loom__op_enter(loop, &sc, ws->cls->o.on_event, ws->data, ws);
        ws->cls->o.on_close(ws, code, reason, rl, ws->data);
        loom__op_leave(loop, &sc);
    }
    ws->sock = NULL;
    loom__ws_free(ws);
}

void loom__ws_tcp_opts(loom_ws_t *ws, loom_tcp_opts *t)
{
    const loom_ws_opts *o = &ws->cls->o;
    memset(t, 0, sizeof *t);
    t->on_read = ws_sock_read;
    t->on_drain = ws_sock_drain;
    t->on_event = ws_sock_event;
    t->on_close = ws_sock_close;
    t->read_timeout_ms = o->idle_timeout_ms;
    t->high_water = o->high_water;
    t->low_water = o->low_water;
    t->data = ws;
}

loom_ws_t *loom__ws_new(loom__ws_class *c)
{
    loom_ws_t *ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return NULL;
    c->refs++;
    ws->cls = c;
    ws->data = c->o.data;
    ws->protocol = "";
    return ws;
}

int loom__ws_deflate_start(loom_ws_t *ws, loom_ws_role_t role, const loom_ws_deflate_params_t *a)
{
    ws->z = calloc(1, sizeof *ws->z);
    if (ws->z == NULL)
        return LOOM_ENOMEM;
    if (loom_ws_deflate_init(ws->z, role, a, &ws->cls->o.deflate_opts, ws_max_message(ws)) < 0) {
        free(ws->z);
        ws->z = NULL;
        return LOOM_EINVAL;
    }
    return 0;
}

void loom__ws_free(loom_ws_t *ws)
{
    ws_free_bufs(ws);
    if (ws->z) {
        loom_ws_deflate_free(ws->z);
        free(ws->z);
    }
    if (ws->flags & WS_F_PROTO_OWN)
        free((char *)ws->protocol);
    loom__ws_class_unref(ws->cls);
    free(ws);
}

/* --- Keepalive and the deferred feed ------------------------------------------ */

static void ws_on_timer(loom_timer_t *t, void *data)
{
    loom_ws_t *ws = data;
    (void)t;
    if (ws->state == WS_CLOSED)
        return;
    /* Bytes kept by a pause and resumed: processed here, never inside
     * loom_ws_resume(). */
    const loom_ws_opts *o = &ws->cls->o;
    if (ws->flags & WS_F_RESUMED) {
        /* A wake for the bytes kept by a pause, not a keepalive tick: the
         * keepalive starts a fresh interval after it. */
        ws->flags &= (uint8_t)~WS_F_RESUMED;
        if (ws->rlen && !(ws->flags & WS_F_PAUSED))
            loom__ws_feed(ws, NULL, 0);
        if (ws->state != WS_CLOSED && o->ping_interval_ms)
            loom_timer_start(ws->timer, o->ping_interval_ms, 0);
        return;
    }
    if (o->ping_interval_ms == 0)
        return;
    if (ws->flags & WS_F_SEEN) {
        ws->flags &= (uint8_t) ~(WS_F_SEEN | WS_F_PING_OUT);
        loom_timer_start(ws->timer, o->ping_interval_ms, 0);
        return;
    }
    if (ws->flags & WS_F_PING_OUT) {
        loom__ws_fail(ws, 0, true, "keepalive: no pong within %u ms",
                      o->pong_timeout_ms ? o->pong_timeout_ms : o->ping_interval_ms);
        return;
    }
    ws_write_frame(ws, 0x9, true, NULL, 0);
    ws->flags |= WS_F_PING_OUT;
    loom_timer_start(ws->timer, o->pong_timeout_ms ? o->pong_timeout_ms : o->ping_interval_ms, 0);
}

static int ws_timer(loom_ws_t *ws)
{
    if (ws->timer)
        return 0;
    int r = loom_timer_new(loom_socket_loop(ws->sock), &ws->timer, ws_on_timer, ws);
    if (r == 0)
        loom_timer_unref(ws->timer);
    return r;
}

void loom__ws_opened(loom_ws_t *ws)
{
    ws->state = WS_OPEN;
    if (ws->cls->o.ping_interval_ms && ws_timer(ws) == 0)
        loom_timer_start(ws->timer, ws->cls->o.ping_interval_ms, 0);
}

/* --- Frames in ----------------------------------------------------------------- */

static bool ws_mbuf_append(loom_ws_t *ws, const char *p, size_t n)
{
    if ((size_t)ws->mlen + n > ws->mcap || ws->mbuf == NULL) {
        size_t cap = ws->mcap ? ws->mcap : 128;
        while (cap < (size_t)ws->mlen + n)
            cap *= 2;
        char *b = realloc(ws->mbuf, cap + 1);
        if (b == NULL)
            return false;
        ws->mbuf = b;
        ws->mcap = (uint32_t)cap;
    }
    memcpy(ws->mbuf + ws->mlen, p, n);
    ws->mlen += (uint32_t)n;
    return true;
}

/* Makes room for `n` more bytes in the message buffer. */
static bool ws_mbuf_reserve(loom_ws_t *ws, size_t n)
{
    if ((size_t)ws->mlen + n <= ws->mcap && ws->mbuf)
        return true;
    size_t cap = ws->mcap ? ws->mcap : 128;
    while (cap < (size_t)ws->mlen + n)
        cap *= 2;
    if (cap > UINT32_MAX - 1)
        return false;
    char *b = realloc(ws->mbuf, cap + 1);
    if (b == NULL)
        return false;
    ws->mbuf = b;
    ws->mcap = (uint32_t)cap;
    return true;
}

/* Inflates one frame of a compressed message, appending to the message
 * buffer (the inflater stops a bomb at max_message + 1 bytes). Returns false
 * after failing the connection. */
static bool ws_inflate_frame(loom_ws_t *ws, const char *p, size_t n, bool fin)
{
    const uint8_t *in = (const uint8_t *)p;
    size_t inl = n;
    for (;;) {
        size_t room = ws->mcap - ws->mlen;
        if (room < 4096 || ws->mbuf == NULL) {
            /* A first guess of 4 times the compressed size (JSON-like text
             * inflates 3-5 times) saves most regrowths; then doubling. */
            size_t want = ws->mcap >= 4096 ? ws->mcap : 4096;
            if (ws->mbuf == NULL && inl < (64u << 10) && inl * 4 > want)
                want = inl * 4;
            if (!ws_mbuf_reserve(ws, want)) {
                loom__ws_fail(ws, LOOM_WS_INTERNAL, false, "out of memory for a message");
                return false;
            }
            room = ws->mcap - ws->mlen;
        }
        size_t ol = room;
        int r = loom_ws_inflate(ws->z, &in, &inl, fin, (uint8_t *)ws->mbuf + ws->mlen, &ol);
        ws->mlen += (uint32_t)ol;
        if (r < 0) {
            int code = r == LOOM_ENOMEM ? LOOM_WS_INTERNAL : loom_ws_err_close_code(r);
            loom__ws_fail(ws, code, false, "permessage-deflate: %s",
                          r == LOOM_ENOMEM ? "out of memory" : loom_ws_err_str(r));
            return false;
        }
        if (r == 1 || (inl == 0 && !fin))
            return true;
    }
}

/* A close frame from the peer. */
static void ws_on_close_frame(loom_ws_t *ws, char *p, size_t n)
{
    if (n == 1) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false, "close frame with a 1-byte payload");
        return;
    }
    int code = LOOM_WS_NO_STATUS;
    if (n >= 2) {
        code = ((unsigned char)p[0] << 8) | (unsigned char)p[1];
        if (!ws_code_ok(code)) {
            loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false, "invalid close code %d", code);
            return;
        }
        if (!loom_ws_utf8_valid(p + 2, n - 2)) {
            loom__ws_fail(ws, LOOM_WS_INVALID_DATA, false, "close reason is not valid UTF-8");
            return;
        }
    }
    /* Keep the reason for on_close, in the message buffer (no message can
     * be in progress any more). */
    ws->mlen = 0;
    if (!ws_mbuf_append(ws, n > 2 ? p + 2 : "", n > 2 ? n - 2 : 0)) {
        ws->mlen = 0;
    } else {
        ws->mbuf[ws->mlen] = '\0';
    }
    ws->flags |= WS_F_GOT_CLOSE;
    ws->close_code = (uint16_t)code;
    if (ws->state == WS_OPEN)
        ws_write_close(ws, code == LOOM_WS_NO_STATUS ? 0 : code, NULL, 0);
    ws_set_closed(ws, false);
}

static void ws_deliver(loom_ws_t *ws, int op, const char *p, size_t n, bool fin)
{
    const loom_ws_opts *o = &ws->cls->o;
    loom_loop_t *loop = loom_socket_loop(ws->sock);
    loom__op_scope sc;
    loom__op_enter(loop, &sc, o->on_event, ws->data, ws);
    if (o->on_fragment)
        o->on_fragment(ws, (loom_ws_type_t)op, p, n, fin, ws->data);
    else if (o->on_message)
        o->on_message(ws, (loom_ws_type_t)op, p, n, ws->data);
    loom__op_leave(loop, &sc);
}

/* A frame of a compressed message: inflated into the message buffer, then
 * validated and delivered like an uncompressed one. */
static void ws_frame_z(loom_ws_t *ws, int op, int mop, bool fin, char *p, size_t n)
{
    const loom_ws_opts *o = &ws->cls->o;
    (void)op;
    size_t from = ws->mlen;
    if (!ws_inflate_frame(ws, p, n, fin))
        return;
    ws->msg_op = fin ? 0 : (uint8_t)mop;
    if (mop == 1 && (loom_ws_utf8_feed(&ws->u8, ws->mbuf + from, ws->mlen - from, NULL) != 0 ||
                     (fin && loom_ws_utf8_finish(&ws->u8) != 0))) {
        loom__ws_fail(ws, LOOM_WS_INVALID_DATA, false, "text message is not valid UTF-8");
        return;
    }
    if (fin)
        ws->flags &= (uint8_t)~WS_F_MSG_Z;
    if (ws->state != WS_OPEN) {
        ws->mlen = 0;
        return;
    }
    if (o->on_fragment) {
        ws->mbuf[ws->mlen] = '\0';
        ws_deliver(ws, mop, ws->mbuf + from, ws->mlen - from, fin);
        ws->mlen = 0;
    } else if (fin) {
        ws->mbuf[ws->mlen] = '\0';
        ws_deliver(ws, mop, ws->mbuf, ws->mlen, true);
        ws->mlen = 0;
    }
    if (fin || o->on_fragment) {
        free(ws->mbuf);
        ws->mbuf = NULL;
        ws->mlen = ws->mcap = 0;
    }
}

/* One whole frame, payload unmasked. */
static void ws_frame(loom_ws_t *ws, int op, bool fin, bool rsv1, char *p, size_t n)
{
    const loom_ws_opts *o = &ws->cls->o;
    if (op >= 8) {
        if (op == 0x8) {
            ws_on_close_frame(ws, p, n);
            return;
        }
        if (ws->state != WS_OPEN)
            return; /* closing: control frames other than close are ignored */
        loom_ws_control_cb cb = op == 0x9 ? o->on_ping : o->on_pong;
        if (op == 0x9)
            ws_write_frame(ws, 0xA, true, p, n);
        if (cb) {
            loom__op_scope sc;
            loom_loop_t *loop = loom_socket_loop(ws->sock);
            loom__op_enter(loop, &sc, o->on_event, ws->data, ws);
            cb(ws, p, n, ws->data);
            loom__op_leave(loop, &sc);
        }
        return;
    }
    if (op == 0 && ws->msg_op == 0) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false, "continuation frame with no message");
        return;
    }
    if (op != 0 && ws->msg_op != 0) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false,
                      "new message before the last one's final frame");
        return;
    }
    int mop = op ? op : ws->msg_op;
    if (op != 0) {
        if (rsv1)
            ws->flags |= WS_F_MSG_Z;
        else
            ws->flags &= (uint8_t)~WS_F_MSG_Z;
    }
    if (ws->flags & WS_F_MSG_Z) {
        ws_frame_z(ws, op, mop, fin, p, n);
        return;
    }
    if (mop == 1 && loom_ws_utf8_feed(&ws->u8, p, n, NULL) != 0) {
        loom__ws_fail(ws, LOOM_WS_INVALID_DATA, false, "text message is not valid UTF-8");
        return;
    }
    if (fin && mop == 1 && loom_ws_utf8_finish(&ws->u8) != 0) {
        loom__ws_fail(ws, LOOM_WS_INVALID_DATA, false, "text message ends inside a UTF-8 sequence");
        return;
    }
    ws->msg_op = fin ? 0 : (uint8_t)mop;
    if (ws->state != WS_OPEN)
        return; /* after loom_ws_close(): parsed, not delivered */
    if (o->on_fragment) {
        ws_deliver(ws, mop, p, n, fin);
        return;
    }
    if (fin && op != 0) { /* a single-frame message: straight from the read */
        ws_deliver(ws, mop, p, n, true);
        return;
    }
    if ((size_t)ws->mlen + n > ws_max_message(ws)) {
        loom__ws_fail(ws, LOOM_WS_TOO_BIG, false, "message larger than %zu bytes",
                      ws_max_message(ws));
        return;
    }
    if (!ws_mbuf_append(ws, p, n)) {
        loom__ws_fail(ws, LOOM_WS_INTERNAL, false, "out of memory for a message");
        return;
    }
    if (fin) {
        ws->mbuf[ws->mlen] = '\0';
        ws_deliver(ws, mop, ws->mbuf, ws->mlen, true);
        if (ws->state != WS_CLOSED || !(ws->flags & WS_F_GOT_CLOSE)) {
            free(ws->mbuf);
            ws->mbuf = NULL;
            ws->mlen = ws->mcap = 0;
        }
    }
}

/* Parses one frame at p[0..n). Returns its total length (header and
 * payload) once whole, 0 if more bytes are needed, -1 after failing the
 * connection.
 *
 * Why not ws_frame.h's streaming parser: it keeps 64 bytes of state per
 * connection (a partial header, the message's length and UTF-8 state),
 * which an idle connection would carry forever against the goal of
 * 192 bytes in all. Here a frame is decoded only once it is whole (the
 * header is a few shifts), and an incomplete one waits in rbuf, which exists
 * only while it is incomplete; so the idle state is two bytes (msg_op and
 * the UTF-8 state). Masking, UTF-8, close codes and compression are
 * ws_frame.h's. */
static long long ws_parse(loom_ws_t *ws, char *p, size_t n)
{
    if (n < 2)
        return 0;
    unsigned b0 = (unsigned char)p[0], b1 = (unsigned char)p[1];
    bool fin = b0 & 0x80;
    int op = b0 & 0x0F;
    bool rsv1 = b0 & 0x40;
    if ((b0 & 0x30) || (rsv1 && (ws->z == NULL || op == 0 || op >= 8))) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false,
                      ws->z ? "reserved bits set (RSV1 only on a message's first frame)"
                            : "reserved bits set (no extension)");
        return -1;
    }
    if ((op > 2 && op < 8) || op > 10) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false, "unknown opcode %d", op);
        return -1;
    }
    bool masked = b1 & 0x80;
    if (masked != ws->cls->server) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false,
                      masked ? "masked server frame" : "unmasked client frame");
        return -1;
    }
    uint64_t len = b1 & 0x7F;
    if (op >= 8 && (!fin || len > 125)) {
        loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false,
                      !fin ? "fragmented control frame" : "control frame payload over 125 bytes");
        return -1;
    }
    size_t hl = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = ((uint64_t)(unsigned char)p[2] << 8) | (unsigned char)p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int k = 0; k < 8; k++)
            len = (len << 8) | (unsigned char)p[2 + k];
        hl = 10;
        if (len >> 63) {
            loom__ws_fail(ws, LOOM_WS_PROTOCOL_ERROR, false, "frame length with the top bit set");
            return -1;
        }
    }
    if (len > ws_max_frame(ws)) {
        loom__ws_fail(ws, LOOM_WS_TOO_BIG, false, "frame of %llu bytes over the %zu limit",
                      (unsigned long long)len, ws_max_frame(ws));
        return -1;
    }
    if (masked)
        hl += 4;
    if (n < hl || n - hl < len)
        return 0;
    char *pl = p + hl;
    if (masked)
        loom_ws_mask(pl, (size_t)len, (unsigned char *)p + hl - 4, 0);
    ws->flags |= WS_F_SEEN;
    ws_frame(ws, op, fin, rsv1, pl, (size_t)len);
    return (long long)(hl + len);
}

static bool ws_rbuf_append(loom_ws_t *ws, const char *p, size_t n)
{
    if ((size_t)ws->rlen + n > ws->rcap) {
        size_t cap = ws->rcap ? ws->rcap : 512;
        while (cap < (size_t)ws->rlen + n)
            cap *= 2;
        if (cap > UINT32_MAX)
            return false;
        char *b = realloc(ws->rbuf, cap);
        if (b == NULL)
            return false;
        ws->rbuf = b;
        ws->rcap = (uint32_t)cap;
    }
    memcpy(ws->rbuf + ws->rlen, p, n);
    ws->rlen += (uint32_t)n;
    return true;
}

void loom__ws_feed(loom_ws_t *ws, char *p, size_t n)
{
    if (ws->state == WS_CLOSED)
        return;
    if (ws->rlen || (ws->flags & WS_F_PAUSED)) {
        /* Behind an incomplete frame: gather, then parse from the buffer. */
        if (n && !ws_rbuf_append(ws, p, n)) {
            loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
            return;
        }
        if (ws->flags & (WS_F_PAUSED | WS_F_IN_FEED))
            return;
        p = ws->rbuf;
        n = ws->rlen;
        ws->flags |= WS_F_IN_FEED;
        size_t off = 0;
        while (off < n && ws->state != WS_CLOSED && !(ws->flags & WS_F_PAUSED)) {
            long long r = ws_parse(ws, ws->rbuf + off, n - off);
            if (r <= 0)
                break;
            off += (size_t)r;
        }
        ws->flags &= (uint8_t)~WS_F_IN_FEED;
        if (ws->state == WS_CLOSED) {
            free(ws->rbuf);
            ws->rbuf = NULL;
            ws->rlen = ws->rcap = 0;
            return;
        }
        /* Bytes appended by a reentrant feed sit behind n. */
        size_t left = ws->rlen - off;
        if (left == 0) {
            free(ws->rbuf);
            ws->rbuf = NULL;
            ws->rlen = ws->rcap = 0;
        } else {
            memmove(ws->rbuf, ws->rbuf + off, left);
            ws->rlen = (uint32_t)left;
        }
        return;
    }
    ws->flags |= WS_F_IN_FEED;
    while (n && ws->state != WS_CLOSED) {
        if (ws->flags & WS_F_PAUSED)
            break;
        long long r = ws_parse(ws, p, n);
        if (r < 0)
            break;
        if (r == 0)
            break;
        p += r;
        n -= (size_t)r;
    }
    ws->flags &= (uint8_t)~WS_F_IN_FEED;
    if (n && ws->state != WS_CLOSED && !ws_rbuf_append(ws, p, n))
        loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
}

/* --- Public API ----------------------------------------------------------------- */

static int ws_send_check(loom_ws_t *ws)
{
    if (ws == NULL)
        return LOOM_EINVAL;
    if (ws->state == WS_CLOSED || ws->state == WS_CLOSE_SENT)
        return LOOM_ECLOSED;
    return 0;
}

static int ws_check_text(loom_ws_t *ws, const void *msg, size_t len, bool fin)
{
    if (!ws->cls->o.validate_utf8_send)
        return 0;
    (void)fin;
    return loom_ws_utf8_valid(msg, len) ? 0 : LOOM_EINVAL;
}

int loom_ws_send(loom_ws_t *ws, loom_ws_type_t type, const void *msg, size_t len)
{
    int r = ws_send_check(ws);
    if (r)
        return r;
    if (type != LOOM_WS_TEXT && type != LOOM_WS_BINARY)
        return LOOM_EINVAL;
    if (ws->send_op)
        return LOOM_ESTATE;
    if (type == LOOM_WS_TEXT && ws_check_text(ws, msg, len, true))
        return LOOM_EINVAL;
    if (ws->z && len >= LOOM_WS_DEFLATE_MIN) /* RSV1 marks a compressed message */
        return loom__ws_send_z(ws, 0x40 | type, true, msg, len);
    return ws_write_frame(ws, type, true, msg, len);
}

int loom_ws_send_begin(loom_ws_t *ws, loom_ws_type_t type, const void *data, size_t len)
{
    int r = ws_send_check(ws);
    if (r)
        return r;
    if (type != LOOM_WS_TEXT && type != LOOM_WS_BINARY)
        return LOOM_EINVAL;
    if (ws->send_op)
        return LOOM_ESTATE;
    if (ws->z) {
        /* Compressed: RSV1 on the first frame only, one deflate stream
         * across the fragments, the tail stripped at the end (send_op keeps
         * RSV1 to say so). */
        ws->send_op = (uint8_t)(0x40 | type);
        return loom__ws_send_z(ws, 0x40 | type, false, data, len);
    }
    ws->send_op = (uint8_t)type;
    return ws_write_frame(ws, type, false, data, len);
}

int loom_ws_send_cont(loom_ws_t *ws, const void *data, size_t len)
{
    int r = ws_send_check(ws);
    if (r)
        return r;
    if (!ws->send_op)
        return LOOM_ESTATE;
    if (ws->send_op & 0x40)
        return loom__ws_send_z(ws, 0, false, data, len);
    return ws_write_frame(ws, 0, false, data, len);
}

int loom_ws_send_end(loom_ws_t *ws, const void *data, size_t len)
{
    int r = ws_send_check(ws);
    if (r)
        return r;
    if (!ws->send_op)
        return LOOM_ESTATE;
    bool z = ws->send_op & 0x40;
    ws->send_op = 0;
    if (z)
        return loom__ws_send_z(ws, 0, true, data, len);
    return ws_write_frame(ws, 0, true, data, len);
}

int loom_ws_ping(loom_ws_t *ws, const void *payload, size_t len)
{
    int r = ws_send_check(ws);
    if (r)
        return r;
    if (len > 125)
        return LOOM_EINVAL;
    return ws_write_frame(ws, 0x9, true, payload, len);
}

int loom_ws_close(loom_ws_t *ws, int code, const char *reason)
{
    if (ws == NULL)
        return LOOM_EINVAL;
    if (ws->state == WS_CLOSED || ws->state == WS_CLOSE_SENT)
        return LOOM_ECLOSED;
    size_t rl = reason ? strlen(reason) : 0;
    if (code != 0 && !ws_code_ok(code))
        return LOOM_EINVAL;
    if (rl > 123 || (rl && code == 0))
        return LOOM_EINVAL;
    if (rl && !loom_ws_utf8_valid(reason, rl))
        return LOOM_EINVAL;
    ws->close_code = code ? (uint16_t)code : LOOM_WS_NO_STATUS;
    if (ws->state == WS_CONNECTING) {
        /* No handshake yet: nothing to say to the peer. */
        ws->close_code = LOOM_WS_ABNORMAL;
        ws_set_closed(ws, true);
        return 0;
    }
    ws_write_close(ws, code, reason, rl);
    ws->state = WS_CLOSE_SENT;
    /* The peer's answer is awaited under the read timeout. */
    uint32_t t =
        ws->cls->o.close_timeout_ms ? ws->cls->o.close_timeout_ms : WS_DEFAULT_CLOSE_TIMEOUT;
    if (loom_socket_set_timeouts(ws->sock, t, t) < 0)
        ws_set_closed(ws, false);
    if (ws->timer)
        loom_timer_stop(ws->timer);
    return 0;
}

int loom_ws_abort(loom_ws_t *ws)
{
    if (ws == NULL)
        return LOOM_EINVAL;
    if (ws->state == WS_CLOSED)
        return LOOM_ECLOSED;
    if (!(ws->flags & WS_F_GOT_CLOSE))
        ws->close_code = LOOM_WS_ABNORMAL;
    ws_set_closed(ws, true);
    return 0;
}

int loom_ws_pause(loom_ws_t *ws)
{
    if (ws == NULL || ws->state == WS_CLOSED)
        return LOOM_ECLOSED;
    ws->flags |= WS_F_PAUSED;
    return loom_socket_disable(ws->sock, LOOM_READABLE);
}

int loom_ws_resume(loom_ws_t *ws)
{
    if (ws == NULL || ws->state == WS_CLOSED)
        return LOOM_ECLOSED;
    if (!(ws->flags & WS_F_PAUSED))
        return 0;
    ws->flags &= (uint8_t)~WS_F_PAUSED;
    if (ws->rlen) {
        /* What was read behind the pause is processed from the loop. */
        int r = ws_timer(ws);
        if (r < 0)
            return r;
        ws->flags |= WS_F_RESUMED;
        loom_timer_start(ws->timer, 0, 0);
    }
    return loom_socket_enable(ws->sock, LOOM_READABLE);
}

size_t loom_ws_queued(const loom_ws_t *ws)
{
    return ws && ws->sock ? loom_socket_queued(ws->sock) : 0;
}

const char *loom_ws_protocol(const loom_ws_t *ws)
{
    return ws ? ws->protocol : "";
}

int loom_ws_compressed(const loom_ws_t *ws)
{
    return ws && ws->z != NULL;
}

int loom_ws_closed(const loom_ws_t *ws)
{
    return ws == NULL || ws->state == WS_CLOSED || ws->state == WS_CLOSE_SENT;
}

loom_socket_t *loom_ws_socket(const loom_ws_t *ws)
{
    return ws ? ws->sock : NULL;
}

void *loom_ws_data(const loom_ws_t *ws)
{
    return ws ? ws->data : NULL;
}

void loom_ws_set_data(loom_ws_t *ws, void *data)
{
    if (ws)
        ws->data = data;
}

loom_loop_t *loom_ws_loop(const loom_ws_t *ws)
{
    return ws && ws->sock ? loom_socket_loop(ws->sock) : NULL;
}
