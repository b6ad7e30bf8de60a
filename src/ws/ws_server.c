/* ws/ws_server.c - loom_ws_accept(): the server's opening handshake (RFC
 * 6455 section 4.2) and the takeover of the HTTP connection. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/handoff.h"
#include "ws/ws_internal.h"

/* A Sec-WebSocket-Key: 24 base64 characters decoding to 16 bytes (so two
 * '=' of padding, and a last data character whose low 4 bits are zero). */
static bool ws_key_ok(const char *k, size_t n)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++) {
        const char *c = k[i] ? strchr(b64, k[i]) : NULL;
        if (c == NULL)
            return false;
        if (i == 21 && ((c - b64) & 0x0F))
            return false;
    }
    return true;
}

/* Answers `req` with `status` and the reason as its body, and returns
 * `rc`; or LOOM_ESTATE if the caller has begun an answer already (nothing
 * is sent then: the request stays the caller's), or LOOM_ECLOSED if the
 * client is gone (the request is finished all the same). */
static int ws_answer(loom_http_req_t *req, int status, const char *why, int rc)
{
    static const char *const h426[] = {
        "Sec-WebSocket-Version", "13", "Upgrade", "websocket", "Content-Type", "text/plain", NULL};
    static const char *const h400[] = {"Content-Type", "text/plain", NULL};
    int r = loom_http_respond(req, status, status == 426 ? h426 : h400, why, strlen(why));
    return r == LOOM_ESTATE || r == LOOM_ECLOSED ? r : rc;
}

static int ws_refuse(loom_http_req_t *req, int status, const char *why)
{
    return ws_answer(req, status, why, LOOM_EPROTOCOL);
}

/* The takeover failed with `r` (nothing was handed out): the request still
 * gets its one answer, unless the caller had begun one (LOOM_ESTATE). */
static int ws_takeover_failed(loom_http_req_t *req, int r)
{
    if (r == LOOM_ESTATE)
        return r;
    if (loom_http_req_closed(req)) { /* gone, or closed after a 101 that could not go on */
        loom_http_req_release(req);
        return r;
    }
    if (r == LOOM_EBUSY)
        return ws_answer(req, 400, "websocket: the opening handshake has a body\n", r);
    if (r == LOOM_EINVAL)
        return ws_answer(req, 500, "websocket: invalid subprotocol chosen by the server\n", r);
    if (r == LOOM_ENOTSUP)
        return ws_answer(req, 400, "websocket: this request cannot switch protocols\n", r);
    return ws_answer(req, 503, "websocket: cannot take the connection over\n", r);
}

/* The value of a field that must appear once (RFC 6455 section 11.3:
 * Sec-WebSocket-Key and Sec-WebSocket-Version MUST NOT appear more than
 * once in a request): NULL if it is missing, and *dup set if it is
 * repeated (two keys leave the accept ambiguous). */
static const char *ws_header_once(loom_http_req_t *req, const char *name, size_t *len, bool *dup)
{
    size_t nh, pos = 0;
    const loom_http_header_t *hs = loom_http_req_headers(req, &nh);
    const loom_http_header_t *h = loom_http_header_find(hs, nh, name, &pos);
    *dup = h && loom_http_header_find(hs, nh, name, &pos) != NULL;
    *len = h ? h->value_len : 0;
    return h ? h->value : NULL;
}

/* The value of a list field that may be split over several lines (RFC 6455
 * sections 9.1 and 11.3.4: Sec-WebSocket-Extensions, Sec-WebSocket-Protocol),
 * as one list: the field itself when it appears once, else the lines joined
 * with ", " into *own (malloc'd; the caller frees it). NULL if absent or on
 * ENOMEM (*nomem set). */
static const char *ws_header_list(loom_http_req_t *req, const char *name, size_t *len, char **own,
                                  bool *nomem)
{
    size_t nh, pos = 0, total = 0, count = 0;
    const loom_http_header_t *hs = loom_http_req_headers(req, &nh), *h, *first = NULL;
    *own = NULL;
    *nomem = false;
    while ((h = loom_http_header_find(hs, nh, name, &pos)) != NULL) {
        first = first ? first : h;
        total += h->value_len + 2;
        count++;
    }
    if (count <= 1) {
        *len = first ? first->value_len : 0;
        return first ? first->value : NULL;
    }
    char *b = malloc(total + 1);
    if (b == NULL) {
        *nomem = true;
        return NULL;
    }
    size_t k = 0;
    pos = 0;
    while ((h = loom_http_header_find(hs, nh, name, &pos)) != NULL) {
        if (h->value_len == 0)
            continue;
        if (k) {
            memcpy(b + k, ", ", 2);
            k += 2;
        }
        memcpy(b + k, h->value, h->value_len);
        k += h->value_len;
    }
    b[k] = '\0';
    *own = b;
    *len = k;
    return b;
}

/* Whether any line of the list field `name` holds `token` (RFC 9110 section
 * 5.3: lines of a list field mean their concatenation, so "Upgrade: foo"
 * then "Upgrade: websocket" asks for websocket). */
static bool ws_req_has_token(loom_http_req_t *req, const char *name, const char *token)
{
    size_t nh, pos = 0;
    const loom_http_header_t *hs = loom_http_req_headers(req, &nh), *h;
    while ((h = loom_http_header_find(hs, nh, name, &pos)) != NULL)
        if (loom_http_token_list_has(h->value, h->value_len, token))
            return true;
    return false;
}

/* The first protocol of `mine` that the client offers. */
static const char *ws_pick(const char *const *mine, const char *offered, size_t len)
{
    for (; mine && *mine; mine++)
        if (loom_http_token_list_has(offered, len, *mine))
            return *mine;
    return NULL;
}

int loom_ws_accept(loom_http_req_t *req, const loom_ws_opts *opts, loom_ws_t **out)
{
    if (out)
        *out = NULL;
    if (req == NULL)
        return LOOM_EINVAL;
    size_t n;
    const char *v;
    bool dup;
    if (loom_http_req_method(req) != LOOM_HTTP_METHOD_GET)
        return ws_refuse(req, 400, "websocket: the opening handshake must be a GET\n");
    /* RFC 6455 section 4.1: HTTP/1.1 or later (the version is 10 * major
     * + minor: 10 for HTTP/1.0). */
    if (loom_http_req_version(req) < 11)
        return ws_refuse(req, 400, "websocket: the opening handshake needs HTTP/1.1\n");
    /* HTTP/2 has no Upgrade (RFC 9113 section 8.6), so no 426 either (RFC
     * 9110 section 15.5.22 wants an Upgrade field in it), and loom offers
     * no RFC 8441 extended CONNECT: the client must use HTTP/1.1. */
    if (loom_http_req_version(req) >= 20)
        return ws_refuse(req, 400, "websocket: not offered over HTTP/2; use HTTP/1.1\n");
    if (!ws_req_has_token(req, "Upgrade", "websocket"))
        return ws_refuse(req, 426, "websocket: Upgrade: websocket required\n");
    v = ws_header_once(req, "Sec-WebSocket-Version", &n, &dup);
    if (dup)
        return ws_refuse(req, 400, "websocket: Sec-WebSocket-Version repeated\n");
    if (v == NULL || n != 2 || memcmp(v, "13", 2) != 0)
        return ws_refuse(req, 426, "websocket: Sec-WebSocket-Version 13 required\n");
    /* Connection may be repeated; any of them may carry the token. */
    if (!ws_req_has_token(req, "Connection", "upgrade"))
        return ws_refuse(req, 400, "websocket: Connection: upgrade required\n");
    const char *key = ws_header_once(req, "Sec-WebSocket-Key", &n, &dup);
    if (key == NULL || dup || !ws_key_ok(key, n))
        return ws_refuse(req, 400, "websocket: bad Sec-WebSocket-Key\n");
    char accept[29];
    loom__ws_accept_key(key, n, accept);

    loom_ws_opts zero = {0};
    const loom_ws_opts *o = opts ? opts : &zero;
    const char *proto = NULL;
    char *own; /* select_protocol may answer a pointer into it */
    bool nomem;
    v = ws_header_list(req, "Sec-WebSocket-Protocol", &n, &own, &nomem);
    if (nomem)
        return ws_answer(req, 503, "websocket: out of memory\n", LOOM_ENOMEM);
    if (v) {
        proto = o->select_protocol ? o->select_protocol(req, v, n, o->data)
                                   : ws_pick(o->protocols, v, n);
        /* RFC 6455 section 4.2.2: one of the values the client offered
         * (a client fails the connection on any other). */
        if (proto && !loom_http_token_list_has(v, n, proto)) {
            free(own);
            return ws_answer(req, 500, "websocket: invalid subprotocol chosen by the server\n",
                             LOOM_EINVAL);
        }
    }
    loom__ws_class *c = loom__ws_class_get(o, true);
    loom_ws_t *ws = c ? loom__ws_new(c) : NULL;
    if (c)
        loom__ws_class_unref(c);
    if (ws && proto && loom__ws_set_protocol(ws, proto) < 0) {
        loom__ws_free(ws);
        ws = NULL;
    }
    free(own);
    if (ws == NULL)
        return ws_answer(req, 503, "websocket: out of memory\n", LOOM_ENOMEM);
    const char *hdr[9] = {"Upgrade", "websocket", "Sec-WebSocket-Accept", accept, NULL};
    size_t nh2 = 4;
    if (proto) {
        hdr[nh2++] = "Sec-WebSocket-Protocol";
        hdr[nh2++] = loom_ws_protocol(ws);
    }
    /* permessage-deflate: the first acceptable offer, when enabled; an
     * unacceptable or malformed one is declined (RFC 7692 section 5). */
    char ext[LOOM_WS_DEFLATE_HEADER_MAX];
    loom_ws_deflate_params_t agreed;
    int agree = 0;
    if (o->deflate) {
        v = ws_header_list(req, "Sec-WebSocket-Extensions", &n, &own, &nomem);
        if (v)
            agree = loom_ws_deflate_negotiate(v, n, &o->deflate_opts, &agreed, ext, sizeof ext);
        free(own);
        if (nomem) {
            loom__ws_free(ws);
            return ws_answer(req, 503, "websocket: out of memory\n", LOOM_ENOMEM);
        }
    }
    if (agree == 1) {
        if (loom__ws_deflate_start(ws, LOOM_WS_ROLE_SERVER, &agreed) < 0) {
            loom__ws_free(ws);
            return ws_answer(req, 503, "websocket: out of memory\n", LOOM_ENOMEM);
        }
        hdr[nh2++] = "Sec-WebSocket-Extensions";
        hdr[nh2++] = ext;
    }
    hdr[nh2] = NULL;
    loom_tcp_opts t;
    loom__ws_tcp_opts(ws, &t);
    ws->state = WS_OPEN;
    int r = loom_http_req_takeover(req, 101, hdr, &t, &ws->sock);
    if (r < 0) {
        /* Nothing was handed out (after a 101 that could not be followed
         * through, the server closed the connection itself). */
        ws->sock = NULL;
        loom__ws_free(ws);
        return ws_takeover_failed(req, r);
    }
    /* Once the bytes read behind the request are delivered, the socket
     * shares one class with the other connections of these options. */
    loom__socket_handoff_share(ws->sock, &ws->cls->sock);
    loom__ws_opened(ws);
    if (out)
        *out = ws;
    return 0;
}
