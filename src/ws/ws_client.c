/* ws/ws_client.c - loom_ws_connect(): a TCP (or TLS) connection through
 * loom_tcp_connect(), the opening handshake sent as the connection's first
 * bytes, and the validation of the server's 101 (RFC 6455 section 4.1). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/ws_internal.h"

#define WS_HANDSHAKE_MAX   8192
#define WS_DEFAULT_TIMEOUT 10000u

struct loom__ws_client {
    char accept[29];
    char target[264]; /* "host:port" as asked, for messages before the connection is up */
    uint32_t len;
    char buf[]; /* the answer so far, WS_HANDSHAKE_MAX bytes */
};

const char *loom__ws_client_target(const loom__ws_client *c)
{
    return c->target;
}

void loom__ws_client_free(loom__ws_client *c)
{
    free(c);
}

static bool ws_buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap * 2 : 512;
        while (c < *len + n + 1)
            c *= 2;
        char *nb = realloc(*b, c);
        if (nb == NULL)
            return false;
        *b = nb;
        *cap = c;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
    return true;
}

#define ADD(s, n)                                                                                  \
    do {                                                                                           \
        if (!ws_buf_add(&req, &len, &cap, (s), (n)))                                               \
            goto fail_nomem;                                                                       \
    } while (0)
#define ADDS(s) ADD((s), strlen(s))

int loom_ws_connect(loom_loop_t *loop, const char *url, const loom_ws_opts *opts, loom_ws_t **out)
{
    if (out)
        *out = NULL;
    if (loop == NULL || url == NULL)
        return LOOM_EINVAL;
    loom_url_t u;
    if (loom_url_parse(url, (size_t)-1, &u) < 0 || u.host_len == 0 || u.host_len > 255)
        return LOOM_EURL;
    bool tls;
    if (u.scheme_len == 2 && strncasecmp(u.scheme, "ws", 2) == 0)
        tls = false;
    else if (u.scheme_len == 3 && strncasecmp(u.scheme, "wss", 3) == 0)
        tls = true;
    else
        return LOOM_EURL;
    loom_ws_opts zero = {0};
    const loom_ws_opts *o = opts ? opts : &zero;
    if (tls && o->tls == NULL)
        return LOOM_EINVAL;
    char host[256];
    memcpy(host, u.host, u.host_len);
    host[u.host_len] = '\0';
    int port = loom_url_port(&u);

    /* The key: 16 random bytes in base64, and the answer it calls for. */
    unsigned char raw[16];
    arc4random_buf(raw, sizeof raw);
    char key[25];
    loom__ws_base64(raw, sizeof raw, key);

    char *req = NULL;
    size_t len = 0, cap = 0;
    ADDS("GET ");
    if (u.path_len)
        ADD(u.path, u.path_len);
    else
        ADDS("/");
    if (u.query) {
        ADDS("?");
        ADD(u.query, u.query_len);
    }
    ADDS(" HTTP/1.1\r\nHost: ");
    bool v6 = memchr(host, ':', u.host_len) != NULL;
    if (v6)
        ADDS("[");
    ADDS(host);
    if (v6)
        ADDS("]");
    if (u.port >= 0) {
        char p[16];
        snprintf(p, sizeof p, ":%d", u.port);
        ADDS(p);
    }
    ADDS("\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: "
         "13\r\nSec-WebSocket-Key: ");
    ADDS(key);
    ADDS("\r\n");
    if (o->protocols && o->protocols[0]) {
        ADDS("Sec-WebSocket-Protocol: ");
        for (size_t i = 0; o->protocols[i]; i++) {
            if (i)
                ADDS(", ");
            ADDS(o->protocols[i]);
        }
        ADDS("\r\n");
    }
    if (o->deflate) {
        char ext[LOOM_WS_DEFLATE_HEADER_MAX];
        if (loom_ws_deflate_offer(&o->deflate_opts, ext, sizeof ext) < 0) {
            free(req);
            return LOOM_EINVAL;
        }
        ADDS("Sec-WebSocket-Extensions: ");
        ADDS(ext);
        ADDS("\r\n");
    }
    for (size_t i = 0; o->headers && o->headers[i] && o->headers[i + 1]; i += 2) {
        if (strpbrk(o->headers[i], "\r\n:") || strpbrk(o->headers[i + 1], "\r\n")) {
            free(req);
            return LOOM_EINVAL;
        }
        ADDS(o->headers[i]);
        ADDS(": ");
        ADDS(o->headers[i + 1]);
        ADDS("\r\n");
    }
    ADDS("\r\n");

    loom__ws_class *c = loom__ws_class_get(o, false);
    if (c == NULL)
        goto fail_nomem;
    loom_ws_t *ws = loom__ws_new(c);
    loom__ws_class_unref(c);
    if (ws == NULL)
        goto fail_nomem;
    loom__ws_more *x = loom__ws_more_get(ws);
    loom__ws_client *hc = x ? malloc(sizeof *hc + WS_HANDSHAKE_MAX) : NULL;
    if (hc == NULL) {
        loom__ws_free(ws);
        goto fail_nomem;
    }
    x->client = hc;
    hc->len = 0;
    snprintf(hc->target, sizeof hc->target, memchr(host, ':', u.host_len) ? "[%s]:%d" : "%s:%d",
             host, port);
    loom__ws_accept_key(key, 24, hc->accept);

    loom_tcp_opts t;
    loom__ws_tcp_opts(ws, &t);
    t.initial = req;
    t.initial_len = len;
    t.tls = tls ? o->tls : NULL;
    t.server_name = o->server_name;
    t.connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : WS_DEFAULT_TIMEOUT;
    t.read_timeout_ms = o->handshake_timeout_ms ? o->handshake_timeout_ms : WS_DEFAULT_TIMEOUT;
    ws->state = WS_CONNECTING;
    int r = loom_tcp_connect(loop, host, port, &t, &ws->sock);
    free(req);
    if (r < 0) {
        loom__ws_client_free(x->client);
        x->client = NULL;
        ws->sock = NULL;
        loom__ws_free(ws);
        return r;
    }
    if (out)
        *out = ws;
    return 0;

fail_nomem:
    free(req);
    return LOOM_ENOMEM;
}

/* The value of the `nth` (from 0) line of header `name` in the header block
 * [p, end), or NULL. */
static const char *ws_hdr_nth(const char *p, const char *end, const char *name, int nth,
                              size_t *vlen)
{
    size_t nl = strlen(name);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
            const char *v = p + nl + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            if (nth-- == 0) {
                *vlen = (size_t)(ve - v);
                return v;
            }
        }
        p = eol + 1;
    }
    return NULL;
}

/* The value of header `name` (its first line), or NULL. */
static const char *ws_hdr(const char *p, const char *end, const char *name, size_t *vlen)
{
    return ws_hdr_nth(p, end, name, 0, vlen);
}

/* Whether any line of the list field `name` holds `token` (RFC 9110
 * section 5.3: a list field may be split over several lines, and they mean
 * their concatenation, so "Connection: keep-alive" then "Connection:
 * Upgrade" carries the upgrade option). */
static bool ws_hdr_has_token(const char *p, const char *end, const char *name, const char *token)
{
    size_t vl;
    const char *v;
    for (int i = 0; (v = ws_hdr_nth(p, end, name, i, &vl)) != NULL; i++)
        if (loom_http_token_list_has(v, vl, token))
            return true;
    return false;
}

/* A list field (RFC 9110 section 5.3; RFC 6455 section 9.1 and erratum
 * 3433 for Sec-WebSocket-Extensions in the 101): every line of `name`, the
 * empty ones skipped, joined with ", " into out[0..size) (the header block
 * is smaller than out). Returns the length, or 0 if the field is absent or
 * empty. */
static size_t ws_hdr_list(const char *p, const char *end, const char *name, char *out, size_t size)
{
    size_t k = 0, vl;
    const char *v;
    for (int i = 0; (v = ws_hdr_nth(p, end, name, i, &vl)) != NULL; i++) {
        if (vl == 0)
            continue;
        if (k + 2 + vl > size)
            break; /* cannot happen: out is as large as the whole block */
        if (k) {
            memcpy(out + k, ", ", 2);
            k += 2;
        }
        memcpy(out + k, v, vl);
        k += vl;
    }
    return k;
}

void loom__ws_client_read(loom_ws_t *ws, const char *p, size_t n)
{
    loom__ws_client *c = ws->x->client;
    if (ws->state == WS_CLOSED)
        return;
    size_t take = n;
    if (take > WS_HANDSHAKE_MAX - c->len)
        take = WS_HANDSHAKE_MAX - c->len;
    memcpy(c->buf + c->len, p, take);
    size_t old = c->len;
    c->len += (uint32_t)take;
    /* Where the header block ends (searching from a little before the new
     * bytes, which may complete a "\r\n\r\n"). */
    size_t from = old > 3 ? old - 3 : 0;
    const char *e = memmem(c->buf + from, c->len - from, "\r\n\r\n", 4);
    if (e == NULL) {
        if (c->len >= WS_HANDSHAKE_MAX)
            loom__ws_fail(ws, 0, true, "handshake answer over %d bytes", WS_HANDSHAKE_MAX);
        return;
    }
    size_t hend = (size_t)(e - c->buf) + 4;
    const char *b = c->buf, *end = c->buf + hend;
    int status = 0;
    if (hend < 12 || memcmp(b, "HTTP/1.1 ", 9) != 0 || !isdigit((unsigned char)b[9])) {
        loom__ws_fail(ws, 0, true, "handshake: not an HTTP/1.1 answer");
        return;
    }
    status = atoi(b + 9);
    if (status != 101) {
        loom__ws_fail(ws, 0, true, "handshake: status %d instead of 101", status);
        return;
    }
    const char *line = memchr(b, '\n', hend);
    const char *hb = line ? line + 1 : end;
    size_t vl;
    const char *v;
    /* Section 4.1, points 2 and 3; either field may be a list split over
     * several lines. */
    if (!ws_hdr_has_token(hb, end, "Upgrade", "websocket")) {
        loom__ws_fail(ws, 0, true, "handshake: no Upgrade: websocket");
        return;
    }
    if (!ws_hdr_has_token(hb, end, "Connection", "upgrade")) {
        loom__ws_fail(ws, 0, true, "handshake: no Connection: upgrade");
        return;
    }
    v = ws_hdr(hb, end, "Sec-WebSocket-Accept", &vl);
    if (v == NULL || vl != 28 || memcmp(v, c->accept, 28) != 0) {
        loom__ws_fail(ws, 0, true, "handshake: wrong Sec-WebSocket-Accept");
        return;
    }
    /* RFC 6455 sections 11.3.3 and 11.3.4: neither may appear twice in a
     * response (which of two would count is anyone's guess). */
    size_t dl;
    if (ws_hdr_nth(hb, end, "Sec-WebSocket-Accept", 1, &dl) ||
        ws_hdr_nth(hb, end, "Sec-WebSocket-Protocol", 1, &dl)) {
        loom__ws_fail(ws, 0, true, "handshake: Sec-WebSocket-%s appears more than once",
                      ws_hdr_nth(hb, end, "Sec-WebSocket-Accept", 1, &dl) ? "Accept" : "Protocol");
        return;
    }
    /* Extensions: every line, as one list (RFC 6455 section 9.1); an
     * extension that was not offered fails the handshake (section 4.1). */
    char exts[WS_HANDSHAKE_MAX];
    vl = ws_hdr_list(hb, end, "Sec-WebSocket-Extensions", exts, sizeof exts);
    v = exts;
    if (vl) {
        loom_ws_deflate_params_t agreed;
        const loom_ws_opts *o = &ws->cls->o;
        int r = o->deflate ? loom_ws_deflate_check_response(v, vl, &o->deflate_opts, &agreed)
                           : LOOM_WS_ERR_EXTENSION;
        if (r < 0) {
            loom__ws_fail(ws, 0, true, "handshake: an extension that was not offered: %.*s",
                          (int)(vl > 80 ? 80 : vl), v);
            return;
        }
        if (r == 1 && loom__ws_deflate_start(ws, LOOM_WS_ROLE_CLIENT, &agreed) < 0) {
            loom__ws_fail(ws, 0, true, "out of memory");
            return;
        }
    }
    v = ws_hdr(hb, end, "Sec-WebSocket-Protocol", &vl);
    if (v && vl) {
        const char *const *pr = ws->cls->o.protocols;
        const char *match = NULL;
        for (; pr && *pr; pr++)
            if (strlen(*pr) == vl && memcmp(*pr, v, vl) == 0)
                match = *pr;
        if (match == NULL) {
            loom__ws_fail(ws, 0, true, "handshake: subprotocol %.*s was not offered", (int)vl, v);
            return;
        }
        loom__ws_set_protocol(ws, match); /* no memory: reported as "" */
    }
    /* Open: the handshake timeout gives way to the idle timeout. */
    if (loom_socket_set_timeouts(ws->sock, ws->cls->o.idle_timeout_ms, 0) < 0) {
        loom__ws_fail(ws, 0, true, "cannot set the idle timeout");
        return;
    }
    size_t rest = c->len - hend;
    char *tail = NULL;
    size_t tail_n = 0;
    if (rest || take < n) {
        /* Frames behind the 101: this copy (the buffer goes now), then the
         * rest of this read. */
        tail_n = rest + (n - take);
        tail = malloc(tail_n ? tail_n : 1);
        if (tail == NULL) {
            loom__ws_fail(ws, 0, true, "out of memory");
            return;
        }
        memcpy(tail, c->buf + hend, rest);
        memcpy(tail + rest, p + take, n - take);
    }
    loom__ws_client_free(c);
    ws->x->client = NULL;
    loom__ws_more_trim(ws);
    loom__ws_opened(ws);
    if (ws->cls->o.on_open) {
        loom__op_scope sc;
        loom_loop_t *loop = loom_socket_loop(ws->sock);
        loom__op_enter(loop, &sc, ws->cls->o.on_event, ws->data, ws);
        ws->cls->o.on_open(ws, ws->data);
        loom__op_leave(loop, &sc);
    }
    if (tail) {
        loom__ws_feed(ws, tail, tail_n);
        free(tail);
    }
}
