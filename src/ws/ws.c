/* ws/ws.c - a WebSocket connection (RFC 6455) on a plain loom socket:
 * frames in (validated, unmasked, reassembled or streamed), frames out
 * (whole, fragmented, control), the close handshake, keepalive and the
 * close notification. The handshakes are in ws_server.c and ws_client.c.
 *
 * Frames are read by ws_frame.h's parser (loom_ws_parse()): a frame that
 * is whole in the read is handled in place (unmasked there, delivered from
 * there); one that arrives in pieces is gathered in fbuf.
 *
 * Memory: an open, idle connection holds this 40-byte object and a share
 * of its class; the parser's state, the frame and message buffers, the
 * timer and the rest live in loom__ws_more, which exists only while it
 * holds something (ws_internal.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"
#include "loom/ws_frame.h"
#include "ws/ws_internal.h"

#define WS_DEFAULT_MAX_MESSAGE   ((size_t)16 << 20)
#define WS_DEFAULT_CLOSE_TIMEOUT 5000u

/* The idle memory goal (docs/WEBSOCKET.md, "Memory"): a 48-byte malloc
 * chunk per connection. */
_Static_assert(sizeof(void *) != 8 || sizeof(loom_ws_t) == 40, "loom_ws_t grew past 40 bytes");

/* --- Classes ---------------------------------------------------------------- */

/* The last classes used on this thread: accepts with equal options share
 * one (a server passes the same options to every accept; a few endpoints
 * with their own options each keep theirs). Most recent first. */
#define WS_CLASS_CACHE 4
static _Thread_local loom__ws_class *ws_classes[WS_CLASS_CACHE];

loom__ws_class *loom__ws_class_get(const loom_ws_opts *o, bool server)
{
    loom_ws_opts zero = {0};
    if (o == NULL)
        o = &zero;
    loom__ws_class *c = NULL;
    int i = 0;
    for (; i < WS_CLASS_CACHE && ws_classes[i]; i++) {
        loom__ws_class *k = ws_classes[i];
        if (k->server == server && memcmp(&k->o, o, sizeof *o) == 0) {
            c = k;
            break;
        }
    }
    if (c) {
        c->refs++;
    } else {
        c = calloc(1, sizeof *c);
        if (c == NULL)
            return NULL;
        c->o = *o;
        c->refs = 1;
        c->server = server;
        if (i == WS_CLASS_CACHE)
            i--; /* the least recent leaves the cache (not its users) */
    }
    memmove(ws_classes + 1, ws_classes, (size_t)i * sizeof *ws_classes);
    ws_classes[0] = c;
    return c;
}

void loom__ws_class_unref(loom__ws_class *c)
{
    if (--c->refs == 0) {
        for (int i = 0; i < WS_CLASS_CACHE; i++)
            if (ws_classes[i] == c) {
                memmove(ws_classes + i, ws_classes + i + 1,
                        (size_t)(WS_CLASS_CACHE - 1 - i) * sizeof *ws_classes);
                ws_classes[WS_CLASS_CACHE - 1] = NULL;
                break;
            }
        if (c->sock)
            loom__class_unref(c->sock);
        for (int i = 0; i < WS_CLASS_PROTOS; i++)
            free(c->protos[i]);
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
    uint8_t md[20];
    char in[64 + sizeof guid];
    if (len > 64)
        len = 64; /* keys are 24 bytes; a longer one was refused already */
    memcpy(in, key, len);
    memcpy(in + len, guid, sizeof guid - 1);
    loom__ws_sha1(in, len + sizeof guid - 1, md);
    loom__ws_base64(md, sizeof md, out);
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
    int r = loom_ws_deflate_compress(loom__ws_z(ws), data, len, fin, buf + 14, cap, &ol);
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

loom__ws_more *loom__ws_more_get(loom_ws_t *ws)
{
    if (ws->x == NULL)
        ws->x = calloc(1, sizeof *ws->x);
    return ws->x;
}

int loom__ws_set_protocol(loom_ws_t *ws, const char *name)
{
    loom__ws_class *c = ws->cls;
    for (int i = 0; i < WS_CLASS_PROTOS; i++) {
        if (c->protos[i] == NULL) {
            c->protos[i] = strdup(name);
            if (c->protos[i] == NULL)
                return LOOM_ENOMEM;
        }
        if (strcmp(c->protos[i], name) == 0) {
            ws->proto = (uint8_t)(i + 1);
            return 0;
        }
    }
    loom__ws_more *x = loom__ws_more_get(ws);
    char *own = x ? strdup(name) : NULL;
    if (own == NULL)
        return LOOM_ENOMEM;
    free(x->protocol);
    x->protocol = own;
    ws->proto = WS_CLASS_PROTOS + 1;
    return 0;
}

void loom__ws_more_trim(loom_ws_t *ws)
{
    loom__ws_more *x = ws->x;
    if (x == NULL || (ws->flags & WS_F_IN_FEED) || x->live || x->rbuf || x->fbuf || x->mbuf ||
        x->timer || x->client || x->subs || x->protocol || x->z || x->pong)
        return;
    free(x);
    ws->x = NULL;
}

/* Leaves OPEN/CLOSE_SENT for good: the socket closes (gracefully, after what
 * is queued, or at once). */
static void ws_set_closed(loom_ws_t *ws, bool abort)
{
    if (ws->state == WS_CLOSED)
        return;
    ws->state = WS_CLOSED;
    if (loom__ws_timer(ws))
        loom_timer_stop(ws->x->timer);
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

/* The peer for messages: its address, else (a client still connecting) the
 * host and port it was asked for, else "?". */
static void ws_peer(const loom_ws_t *ws, char *buf, size_t len)
{
    loom__socket_peer_name(ws->sock, buf, len);
    if (buf[0] == '\0' && ws->x && ws->x->client)
        snprintf(buf, len, "%s", loom__ws_client_target(ws->x->client));
    if (buf[0] == '\0')
        snprintf(buf, len, "?");
}

/* The event's code for a failure closing with `code`: what went wrong on
 * this side (a limit, memory, a slow subscriber's full queue), else the
 * peer's protocol violation (a bad frame, a bad handshake answer). */
static int ws_fail_err(int code)
{
    switch (code) {
    case LOOM_WS_TOO_BIG:
        return LOOM_ETOOBIG;
    case LOOM_WS_INTERNAL:
        return LOOM_ENOMEM;
    case LOOM_WS_POLICY:
        return LOOM_ENOBUFS;
    default:
        return LOOM_EPROTOCOL;
    }
}

void loom__ws_fail(loom_ws_t *ws, int code, bool abort, const char *fmt, ...)
{
    if (ws->state == WS_CLOSED)
        return;
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    loom__ws_fail_err(ws, code, ws_fail_err(code), abort, "%s", why);
}

void loom__ws_fail_err(loom_ws_t *ws, int code, int err, bool abort, const char *fmt, ...)
{
    if (ws->state == WS_CLOSED)
        return;
    char why[160], msg[512], peer[270];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ws_peer(ws, peer, sizeof peer);
    if (code)
        snprintf(msg, sizeof msg, "websocket %s: %s (%d)", peer, why, code);
    else
        snprintf(msg, sizeof msg, "websocket %s: %s", peer, why);
    if (ws->state == WS_OPEN && code && !abort)
        ws_write_close(ws, code, why, strlen(why));
    if (!(ws->flags & WS_F_GOT_CLOSE))
        ws->close_code = code ? (uint16_t)code : LOOM_WS_ABNORMAL;
    /* No callback runs for the connection past this point but the event
     * (emitted first, while the socket still exists) and on_close. */
    uint8_t st = ws->state;
    ws->state = WS_CLOSED;
    loom__ws_event(ws, LOOM_EV_WS_ERROR, err, msg);
    ws->state = st;
    ws_set_closed(ws, abort);
}

/* --- The socket's callbacks ------------------------------------------------- */

/* Whether `msg` names `peer` ("127.0.0.1:80" in "... with 127.0.0.1:80",
 * not in "127.0.0.1:8080"). */
static bool ws_names(const char *msg, const char *peer)
{
    size_t pl = strlen(peer);
    for (const char *p = strstr(msg, peer); p; p = strstr(p + 1, peer)) {
        char before = p == msg ? ' ' : p[-1], after = p[pl];
        if (!isalnum((unsigned char)before) && before != '.' && before != '[' &&
            !isdigit((unsigned char)after))
            return true;
    }
    return false;
}

/* The text of a socket event for the connection, naming the peer once:
 * "websocket PEER: reason". The socket layer's own form "reason on the
 * connection with PEER" loses its tail; another message that names the
 * peer already (a refused connect, a TLS handshake) is only prefixed:
 * "websocket: connect to 127.0.0.1:9 refused". */
static void ws_sock_msg(const loom_ws_t *ws, const char *sm, char *msg, size_t len)
{
    static const char on[] = " on the connection with ";
    char peer[270];
    ws_peer(ws, peer, sizeof peer);
    size_t pl = strlen(peer), ml = strlen(sm), ol = sizeof on - 1;
    if (strcmp(peer, "?") != 0 && ml > ol + pl && strcmp(sm + ml - pl, peer) == 0 &&
        memcmp(sm + ml - pl - ol, on, ol) == 0)
        snprintf(msg, len, "websocket %s: %.*s", peer, (int)(ml - pl - ol), sm);
    else if (strcmp(peer, "?") != 0 && ws_names(sm, peer))
        snprintf(msg, len, "websocket: %s", sm);
    else
        snprintf(msg, len, "websocket %s: %s", peer, sm);
}

static void ws_sock_read(loom_socket_t *s, const char *p, size_t n, void *data)
{
    (void)s;
    loom_ws_t *ws = data;
    if (ws->x && ws->x->client) {
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
    loom__ws_more *x = ws->x;
    if (x && x->pong) {
        /* The pong held while the queue was full (ws_pong()). */
        unsigned char *pong = x->pong;
        x->pong = NULL;
        if (ws->state == WS_OPEN)
            ws_write_frame(ws, 0xA, true, pong + 1, pong[0]);
        free(pong);
        if (!(ws->flags & WS_F_IN_FEED))
            loom__ws_more_trim(ws);
    }
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
        if (loom__ws_timer(ws))
            loom_timer_stop(ws->x->timer);
    }
    if (quiet)
        return;
    char msg[600];
    ws_sock_msg(ws, ev->msg, msg, sizeof msg);
    loom__ws_event(ws, ev->kind, ev->code, msg);
}

static void ws_sock_close(loom_socket_t *s, void *data)
{
    (void)s;
    loom_ws_t *ws = data;
    ws->state = WS_CLOSED;
    loom__ws_unsubscribe_all(ws);
    loom__ws_more *x = ws->x;
    if (x && x->timer) {
        loom_timer_close(x->timer);
        x->timer = NULL;
    }
    if (x && x->client) {
        loom__ws_client_free(x->client);
        x->client = NULL;
    }
    int code = ws->close_code ? ws->close_code : LOOM_WS_ABNORMAL;
    const char *reason = "";
    size_t rl = 0;
    if ((ws->flags & WS_F_GOT_CLOSE) && x && x->mbuf) {
        reason = x->mbuf;
        rl = x->mlen;
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
    return ws;
}

int loom__ws_deflate_start(loom_ws_t *ws, loom_ws_role_t role, const loom_ws_deflate_params_t *a)
{
    loom__ws_more *x = loom__ws_more_get(ws);
    if (x == NULL)
        return LOOM_ENOMEM;
    x->z = calloc(1, sizeof *x->z);
    if (x->z == NULL)
        return LOOM_ENOMEM;
    /* The inflater's bound: per message when messages are reassembled, per
     * frame when they are streamed (ws_frame_z() restarts the count at each
     * frame), so a streaming receiver takes messages of any size while a
     * bomb in one frame is still stopped at max_frame + 1 inflated bytes. */
    uint64_t bound = ws->cls->o.on_fragment ? ws_max_frame(ws) : ws_max_message(ws);
    if (loom_ws_deflate_init(x->z, role, a, &ws->cls->o.deflate_opts, bound) < 0) {
        free(x->z);
        x->z = NULL;
        return LOOM_EINVAL;
    }
    return 0;
}

void loom__ws_free(loom_ws_t *ws)
{
    loom__ws_more *x = ws->x;
    if (x) {
        free(x->rbuf);
        free(x->fbuf);
        free(x->mbuf);
        if (x->z) {
            loom_ws_deflate_free(x->z);
            free(x->z);
        }
        free(x->protocol);
        free(x->pong);
        free(x);
    }
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
        if (ws->x->rlen && !(ws->flags & WS_F_PAUSED))
            loom__ws_feed(ws, NULL, 0);
        if (ws->state != WS_CLOSED && o->ping_interval_ms)
            loom_timer_start(ws->x->timer, o->ping_interval_ms, 0);
        else if (ws->state != WS_CLOSED && !(ws->flags & WS_F_RESUMED)) {
            /* No keepalive and no other wake due: the timer goes, and the
             * connection's rarely used part with it if it is empty. */
            loom_timer_close(ws->x->timer);
            ws->x->timer = NULL;
            loom__ws_more_trim(ws);
        }
        return;
    }
    if (o->ping_interval_ms == 0)
        return;
    if (ws->flags & WS_F_SEEN) {
        ws->flags &= (uint8_t) ~(WS_F_SEEN | WS_F_PING_OUT);
        loom_timer_start(ws->x->timer, o->ping_interval_ms, 0);
        return;
    }
    if (ws->flags & WS_F_PING_OUT) {
        loom__ws_fail_err(ws, 0, LOOM_ETIMEDOUT, true, "keepalive: no pong within %u ms",
                          o->pong_timeout_ms ? o->pong_timeout_ms : o->ping_interval_ms);
        return;
    }
    ws_write_frame(ws, 0x9, true, NULL, 0);
    ws->flags |= WS_F_PING_OUT;
    loom_timer_start(ws->x->timer, o->pong_timeout_ms ? o->pong_timeout_ms : o->ping_interval_ms,
                     0);
}

static int ws_timer(loom_ws_t *ws)
{
    if (loom__ws_timer(ws))
        return 0;
    loom__ws_more *x = loom__ws_more_get(ws);
    if (x == NULL)
        return LOOM_ENOMEM;
    int r = loom_timer_new(loom_socket_loop(ws->sock), &x->timer, ws_on_timer, ws);
    if (r == 0)
        loom_timer_unref(x->timer);
    return r;
}

void loom__ws_opened(loom_ws_t *ws)
{
    ws->state = WS_OPEN;
    if (ws->cls->o.ping_interval_ms && ws_timer(ws) == 0)
        loom_timer_start(ws->x->timer, ws->cls->o.ping_interval_ms, 0);
}

/* --- Frames in ----------------------------------------------------------------- */

/* Grows a buffer of the rarely used part to hold `n` more bytes after `len`
 * (plus one for a terminating NUL). */
static bool ws_buf_reserve(char **buf, uint32_t *cap, uint32_t len, size_t n, size_t first)
{
    if ((size_t)len + n <= *cap && *buf)
        return true;
    size_t c = *cap ? *cap : first;
    while (c < (size_t)len + n)
        c *= 2;
    if (c > UINT32_MAX - 1)
        return false;
    char *b = realloc(*buf, c + 1);
    if (b == NULL)
        return false;
    *buf = b;
    *cap = (uint32_t)c;
    return true;
}

static bool ws_mbuf_append(loom_ws_t *ws, const char *p, size_t n)
{
    loom__ws_more *x = loom__ws_more_get(ws);
    if (x == NULL || !ws_buf_reserve(&x->mbuf, &x->mcap, x->mlen, n, 128))
        return false;
    if (n)
        memcpy(x->mbuf + x->mlen, p, n);
    x->mlen += (uint32_t)n;
    return true;
}

static void ws_mbuf_free(loom__ws_more *x)
{
    free(x->mbuf);
    x->mbuf = NULL;
    x->mlen = x->mcap = 0;
}

/* Inflates one frame of a compressed message, appending to the message
 * buffer (the inflater stops a bomb at max_message + 1 bytes for the
 * message, or max_frame + 1 for the frame when streaming). Returns false
 * after failing the connection. */
static bool ws_inflate_frame(loom_ws_t *ws, const char *p, size_t n, bool fin)
{
    loom__ws_more *x = ws->x; /* exists: it holds z */
    const uint8_t *in = (const uint8_t *)p;
    size_t inl = n;
    for (;;) {
        size_t room = x->mcap - x->mlen;
        if (room < 4096 || x->mbuf == NULL) {
            /* A first guess of 4 times the compressed size (JSON-like text
             * inflates 3-5 times) saves most regrowths; then doubling. */
            size_t want = x->mcap >= 4096 ? x->mcap : 4096;
            if (x->mbuf == NULL && inl < (64u << 10) && inl * 4 > want)
                want = inl * 4;
            if (!ws_buf_reserve(&x->mbuf, &x->mcap, x->mlen, want, 128)) {
                loom__ws_fail(ws, LOOM_WS_INTERNAL, false, "out of memory for a message");
                return false;
            }
            room = x->mcap - x->mlen;
        }
        size_t ol = room;
        int r = loom_ws_inflate(x->z, &in, &inl, fin, (uint8_t *)x->mbuf + x->mlen, &ol);
        x->mlen += (uint32_t)ol;
        if (r == LOOM_WS_ERR_MESSAGE_TOO_BIG) {
            if (ws->cls->o.on_fragment)
                loom__ws_fail(ws, loom_ws_err_close_code(r), false,
                              "compressed frame inflates to more than %zu bytes", ws_max_frame(ws));
            else
                loom__ws_fail(ws, loom_ws_err_close_code(r), false,
                              "compressed message inflates to more than %zu bytes",
                              ws_max_message(ws));
            return false;
        }
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

/* A close frame from the peer, validated by the parser (code and reason). */
static void ws_on_close_frame(loom_ws_t *ws, char *p, size_t n)
{
    unsigned code = LOOM_WS_NO_STATUS;
    const char *reason = NULL;
    size_t rl = 0;
    int r = loom_ws_close_parse((const uint8_t *)p, n, &code, &reason, &rl);
    if (r < 0) { /* the parser checked it already: not reached */
        loom__ws_fail(ws, loom_ws_err_close_code(r), false, "%s", loom_ws_err_str(r));
        return;
    }
    /* Keep the reason for on_close, in the message buffer (no message can
     * be in progress any more). */
    if (ws->x)
        ws->x->mlen = 0;
    if (ws_mbuf_append(ws, rl ? reason : "", rl))
        ws->x->mbuf[ws->x->mlen] = '\0';
    ws->flags |= WS_F_GOT_CLOSE;
    ws->close_code = (uint16_t)code;
    if (ws->state == WS_OPEN)
        ws_write_close(ws, code == LOOM_WS_NO_STATUS ? 0 : (int)code, NULL, 0);
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
static void ws_frame_z(loom_ws_t *ws, int mop, bool fin, char *p, size_t n)
{
    const loom_ws_opts *o = &ws->cls->o;
    loom__ws_more *x = ws->x;
    size_t from = x->mlen;
    if (o->on_fragment)
        x->z->rx_total = 0; /* streaming: the inflater's bound is per frame */
    if (!ws_inflate_frame(ws, p, n, fin))
        return;
    ws->msg_op = fin ? 0 : (uint8_t)mop;
    if (mop == 1 && (loom_ws_utf8_feed(&ws->u8, x->mbuf + from, x->mlen - from, NULL) != 0 ||
                     (fin && loom_ws_utf8_finish(&ws->u8) != 0))) {
        loom__ws_fail(ws, LOOM_WS_INVALID_DATA, false, "text message is not valid UTF-8");
        return;
    }
    if (fin)
        ws->flags &= (uint8_t)~WS_F_MSG_Z;
    if (ws->state != WS_OPEN) {
        x->mlen = 0;
        return;
    }
    if (o->on_fragment) {
        x->mbuf[x->mlen] = '\0';
        ws_deliver(ws, mop, x->mbuf + from, x->mlen - from, fin);
        x->mlen = 0;
    } else if (fin) {
        x->mbuf[x->mlen] = '\0';
        ws_deliver(ws, mop, x->mbuf, x->mlen, true);
        x->mlen = 0;
    }
    if ((fin || o->on_fragment) && !(ws->flags & WS_F_GOT_CLOSE))
        ws_mbuf_free(x);
}

/* Answers a ping. While the send queue is at high water (a peer that sends
 * pings and does not read) the pong is held, replacing any held before, and
 * sent on drain: RFC 6455 section 5.5.3 allows answering only the most
 * recent ping, and the queue stays bounded. */
static void ws_pong(loom_ws_t *ws, const char *p, size_t n)
{
    loom__ws_more *x = ws->x;
    if (!loom__socket_high(ws->sock) && (x == NULL || x->pong == NULL)) {
        ws_write_frame(ws, 0xA, true, p, n);
        return;
    }
    x = loom__ws_more_get(ws);
    if (x == NULL)
        return; /* out of memory: this ping goes unanswered */
    if (x->pong == NULL && (x->pong = malloc(126)) == NULL)
        return;
    x->pong[0] = (unsigned char)n; /* a control payload is at most 125 bytes */
    memcpy(x->pong + 1, p, n);
}

/* One whole frame, payload unmasked, validated by the parser (opcode,
 * fragmentation, limits, UTF-8 of uncompressed text). */
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
            ws_pong(ws, p, n);
        if (cb) {
            loom__op_scope sc;
            loom_loop_t *loop = loom_socket_loop(ws->sock);
            loom__op_enter(loop, &sc, o->on_event, ws->data, ws);
            cb(ws, p, n, ws->data);
            loom__op_leave(loop, &sc);
        }
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
        ws_frame_z(ws, mop, fin, p, n);
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
    if (!ws_mbuf_append(ws, p, n)) {
        loom__ws_fail(ws, LOOM_WS_INTERNAL, false, "out of memory for a message");
        return;
    }
    if (fin) {
        loom__ws_more *x = ws->x;
        x->mbuf[x->mlen] = '\0';
        ws_deliver(ws, mop, x->mbuf, x->mlen, true);
        if (!(ws->flags & WS_F_GOT_CLOSE))
            ws_mbuf_free(x);
    }
}

/* A parser error: the close code and reason it calls for, with the sizes
 * for the limits. */
static void ws_parse_fail(loom_ws_t *ws, int err, const loom_ws_parse_out_t *out)
{
    int code = loom_ws_err_close_code(err);
    if (err == LOOM_WS_ERR_FRAME_TOO_BIG)
        loom__ws_fail(ws, code, false, "frame of %llu bytes over the %zu limit",
                      (unsigned long long)out->frame.payload_len, ws_max_frame(ws));
    else if (err == LOOM_WS_ERR_MESSAGE_TOO_BIG)
        loom__ws_fail(ws, code, false, "message larger than %zu bytes", ws_max_message(ws));
    else
        loom__ws_fail(ws, code ? code : LOOM_WS_PROTOCOL_ERROR, false, "%s", loom_ws_err_str(err));
}

/* The parser of a connection between frames and messages: made from the
 * options. Streamed messages (on_fragment) have no message limit here. */
static void ws_parser_init(loom_ws_t *ws, loom_ws_parser_t *ps)
{
    const loom_ws_opts *o = &ws->cls->o;
    loom_ws_parser_opts_t po = {
        .role = ws->cls->server ? LOOM_WS_ROLE_SERVER : LOOM_WS_ROLE_CLIENT,
        .flags = LOOM_WS_PARSE_UTF8 | (loom__ws_z(ws) ? LOOM_WS_PARSE_DEFLATE : 0),
        .max_frame = ws_max_frame(ws),
        .max_message = o->on_fragment ? 0 : ws_max_message(ws),
    };
    loom_ws_parser_init(ps, &po);
}

/* Parses p[0..n) until it ends, the connection pauses or closes. Returns the
 * bytes consumed. Frames that arrive whole are handled in place; the pieces
 * of one that does not are gathered in fbuf. */
static size_t ws_parse_buf(loom_ws_t *ws, loom_ws_parser_t *ps, char *p, size_t n)
{
    size_t off = 0;
    while (off < n && ws->state != WS_CLOSED && !(ws->flags & WS_F_PAUSED)) {
        loom_ws_parse_out_t out;
        int r = loom_ws_parse(ps, (uint8_t *)p + off, n - off, &out);
        if (LOOM__UNLIKELY(r < 0)) {
            ws_parse_fail(ws, r, &out);
            break;
        }
        off += (size_t)r;
        ws->flags |= WS_F_SEEN;
        char *d = (char *)out.data;
        size_t dl = out.data_len;
        loom__ws_more *x = ws->x;
        if (!(out.flags & LOOM_WS_OUT_FRAME_END) || (x && x->flen)) {
            /* A frame in pieces: gathered until its end. */
            if (dl) {
                x = loom__ws_more_get(ws);
                if (x == NULL || !ws_buf_reserve(&x->fbuf, &x->fcap, x->flen, dl, 512)) {
                    loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
                    break;
                }
                memcpy(x->fbuf + x->flen, d, dl);
                x->flen += (uint32_t)dl;
            }
            if (!(out.flags & LOOM_WS_OUT_FRAME_END))
                continue;
            d = x->fbuf;
            dl = x->flen;
        }
        ws_frame(ws, out.frame.opcode, out.frame.fin, (out.frame.rsv & 4) != 0, d, dl);
        x = ws->x;
        if (x && x->fbuf) {
            free(x->fbuf);
            x->fbuf = NULL;
            x->flen = x->fcap = 0;
        }
    }
    return off;
}

/* Keeps p[0..n) in front of the raw bytes waiting in rbuf. */
static bool ws_rbuf_prepend(loom_ws_t *ws, const char *p, size_t n)
{
    loom__ws_more *x = loom__ws_more_get(ws);
    if (x == NULL || !ws_buf_reserve(&x->rbuf, &x->rcap, x->rlen, n, 512))
        return false;
    memmove(x->rbuf + n, x->rbuf, x->rlen);
    memcpy(x->rbuf, p, n);
    x->rlen += (uint32_t)n;
    return true;
}

static bool ws_rbuf_append(loom_ws_t *ws, const char *p, size_t n)
{
    loom__ws_more *x = loom__ws_more_get(ws);
    if (x == NULL || !ws_buf_reserve(&x->rbuf, &x->rcap, x->rlen, n, 512))
        return false;
    memcpy(x->rbuf + x->rlen, p, n);
    x->rlen += (uint32_t)n;
    return true;
}

/* Parses one buffer with the connection's parser (its kept state, or a new
 * one between messages), then keeps that state only if a frame or message
 * is in progress, and what was not parsed (a pause) in rbuf. */
static void ws_feed_buf(loom_ws_t *ws, char *p, size_t n)
{
    loom_ws_parser_t tmp, *ps = &tmp;
    if (ws->x && ws->x->live)
        ps = &ws->x->ps;
    else
        ws_parser_init(ws, &tmp);
    ws->flags |= WS_F_IN_FEED;
    size_t off = ws_parse_buf(ws, ps, p, n);
    ws->flags &= (uint8_t)~WS_F_IN_FEED;
    if (ws->state == WS_CLOSED) {
        if (ws->x) {
            ws->x->live = false;
            free(ws->x->rbuf);
            ws->x->rbuf = NULL;
            ws->x->rlen = ws->x->rcap = 0;
        }
        return;
    }
    bool live = !loom_ws_parser_idle(ps) || loom_ws_parser_in_message(ps);
    if (live || ws->x) {
        loom__ws_more *x = loom__ws_more_get(ws);
        if (x == NULL) {
            loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
            return;
        }
        if (live && ps != &x->ps)
            x->ps = *ps;
        x->live = live;
    }
    if (off < n && !ws_rbuf_prepend(ws, p + off, n - off))
        loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
}

void loom__ws_feed(loom_ws_t *ws, char *p, size_t n)
{
    if (ws->state == WS_CLOSED)
        return;
    if ((ws->x && ws->x->rlen) || (ws->flags & (WS_F_PAUSED | WS_F_IN_FEED))) {
        /* Behind kept bytes, paused or reentrant: kept in order. */
        if (n && !ws_rbuf_append(ws, p, n)) {
            loom__ws_fail(ws, LOOM_WS_INTERNAL, true, "out of memory for a frame");
            return;
        }
        if (ws->flags & WS_F_PAUSED) {
            /* Reading restarted behind the pause (the takeover restarts it
             * once the bytes read with the request are delivered): it stops
             * again, so a paused connection buffers at most one more read. */
            if (ws->sock && loom__socket_reading(ws->sock))
                loom_socket_disable(ws->sock, LOOM_READABLE);
            return;
        }
        if (ws->flags & WS_F_IN_FEED)
            return;
    } else {
        ws_feed_buf(ws, p, n);
    }
    /* Kept bytes, while the connection reads: parsed from a buffer taken
     * off the connection (a reentrant feed appends to a new one). */
    while (ws->state != WS_CLOSED && !(ws->flags & WS_F_PAUSED) && ws->x && ws->x->rlen) {
        loom__ws_more *x = ws->x;
        char *b = x->rbuf;
        size_t bn = x->rlen;
        x->rbuf = NULL;
        x->rlen = x->rcap = 0;
        ws_feed_buf(ws, b, bn);
        free(b);
    }
    loom__ws_more_trim(ws);
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
    if (loom__ws_z(ws) && len >= LOOM_WS_DEFLATE_MIN) /* RSV1 marks a compressed message */
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
    if (loom__ws_z(ws)) {
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
    if (loom__ws_timer(ws))
        loom_timer_stop(ws->x->timer);
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
    if (ws->x && ws->x->rlen) {
        /* What was read behind the pause is processed from the loop. */
        int r = ws_timer(ws);
        if (r < 0)
            return r;
        ws->flags |= WS_F_RESUMED;
        loom_timer_start(ws->x->timer, 0, 0);
    }
    return loom_socket_enable(ws->sock, LOOM_READABLE);
}

size_t loom_ws_queued(const loom_ws_t *ws)
{
    return ws && ws->sock ? loom_socket_queued(ws->sock) : 0;
}

const char *loom_ws_protocol(const loom_ws_t *ws)
{
    if (ws == NULL || ws->proto == 0)
        return "";
    if (ws->proto <= WS_CLASS_PROTOS)
        return ws->cls->protos[ws->proto - 1];
    return ws->x && ws->x->protocol ? ws->x->protocol : "";
}

int loom_ws_compressed(const loom_ws_t *ws)
{
    return ws && loom__ws_z(ws) != NULL;
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
