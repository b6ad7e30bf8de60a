/* http/h2_upgrade.c - "Upgrade: h2c" (RFC 7540 sections 3.2 and 3.2.1),
 * the HTTP/1.1 side: whether a request asks for it in a way loom accepts,
 * the decoding and checking of its HTTP2-Settings, and which of its fields
 * are HTTP/1 connection fields that the stream-1 request does not carry.
 *
 * The switch itself is server_h1.c's (loom__hconn_h2c: the 101, then the
 * connection is HTTP/2) and h2_server.c's (loom__h2_upgrade: the session,
 * stream 1 made from the HTTP/1.1 request). Anything loom does not accept
 * leaves the request on HTTP/1.1, as RFC 9110 section 7.8 lets a server
 * ignore Upgrade: nothing here fails a request.
 *
 * Pure functions of the parsed head; loop thread only like the rest.
 */
#include <string.h>
#include <strings.h>

#include "http/server_internal.h"

/* One base64url character's value, or -1 (RFC 4648 section 5). */
static int loom__b64url(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

/* Decodes base64url v[0..n) (token68: no padding, though trailing '=' are
 * tolerated) into out[0..cap). Returns the decoded length, or -1 if it is
 * not base64url or does not fit. */
static long loom__b64url_decode(const char *v, size_t n, uint8_t *out, size_t cap)
{
    while (n > 0 && v[n - 1] == '=')
        n--;
    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; i++) {
        int d = loom__b64url((unsigned char)v[i]);
        if (d < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* The bits left over must be zero (a canonical encoding). */
    if (acc & ((1u << bits) - 1))
        return -1;
    return (long)o;
}

/* True if the SETTINGS payload p[0..n) is one nghttp2 takes without a
 * connection error: a whole number of 6-byte entries, each known value in
 * its range (RFC 9113 section 6.5.2, RFC 8441, RFC 9218); unknown ids are
 * ignored, as in a SETTINGS frame. A bad value sent after the 101 would
 * end the connection the client asked to upgrade, so it is refused here
 * and the request stays on HTTP/1.1. */
static bool loom__h2c_settings_ok(const uint8_t *p, size_t n)
{
    if (n % 6 != 0 || n / 6 > LOOM__H2C_SETTINGS_MAX)
        return false;
    for (size_t i = 0; i < n; i += 6) {
        uint16_t id = (uint16_t)(p[i] << 8 | p[i + 1]);
        uint32_t v = (uint32_t)p[i + 2] << 24 | (uint32_t)p[i + 3] << 16 | (uint32_t)p[i + 4] << 8 |
                     p[i + 5];
        switch (id) {
        case 0x2: /* ENABLE_PUSH */
        case 0x8: /* ENABLE_CONNECT_PROTOCOL */
        case 0x9: /* NO_RFC7540_PRIORITIES */
            if (v > 1)
                return false;
            break;
        case 0x4: /* INITIAL_WINDOW_SIZE */
            if (v > 0x7fffffffu)
                return false;
            break;
        case 0x5: /* MAX_FRAME_SIZE */
            if (v < 16384 || v > 16777215)
                return false;
            break;
        default:
            break;
        }
    }
    return true;
}

/* True if some field named `name` lists `token`. */
static bool loom__h2c_lists(const loom_http_header_t *h, size_t nh, const char *name,
                            const char *token)
{
    size_t pos = 0;
    const loom_http_header_t *f;
    while ((f = loom_http_header_find(h, nh, name, &pos)) != NULL)
        if (loom_http_token_list_has(f->value, f->value_len, token))
            return true;
    return false;
}

long loom__h2c_wanted(const loom_http_server_t *srv, const loom_http_request_t *rq,
                      const loom_http_header_t *h, size_t nh, uint8_t *out)
{
    const loom_http2_opts *o = &srv->o.http2;
    /* h2c is for cleartext connections only (RFC 7540 section 3.3: over
     * TLS, h2 is chosen by ALPN and Upgrade: h2c must be ignored). */
    if (!o->h2c || o->no_upgrade || srv->o.tls != NULL || srv->closing)
        return -1;
    if ((rq->flags & (LOOM_HTTP_F_UPGRADE | LOOM_HTTP_F_CONN_UPGRADE)) !=
            (LOOM_HTTP_F_UPGRADE | LOOM_HTTP_F_CONN_UPGRADE) ||
        rq->minor_version < 1)
        return -1;
    /* A request with a body is answered on HTTP/1.1 (as h2o does): its
     * body would have to be read whole before the switch. */
    if ((rq->flags & LOOM_HTTP_F_TE) ||
        ((rq->flags & LOOM_HTTP_F_CONTENT_LENGTH) && rq->content_length > 0))
        return -1;
    /* Stream 1 needs an origin-form target (or "*" for OPTIONS) as its
     * :path; CONNECT has none. */
    if (rq->method == LOOM_HTTP_METHOD_CONNECT || rq->target_len == 0 ||
        (rq->target[0] != '/' && !(rq->target_len == 1 && rq->target[0] == '*')))
        return -1;
    if (!loom__h2c_lists(h, nh, "upgrade", "h2c") ||
        !loom__h2c_lists(h, nh, "connection", "http2-settings"))
        return -1;
    /* Exactly one HTTP2-Settings (RFC 7540 section 3.2.1). */
    size_t pos = 0;
    const loom_http_header_t *f = loom_http_header_find(h, nh, "http2-settings", &pos);
    if (f == NULL || loom_http_header_find(h, nh, "http2-settings", &pos) != NULL)
        return -1;
    long n = loom__b64url_decode(f->value, f->value_len, out, LOOM__H2C_SETTINGS_MAX * 6);
    if (n < 0 || !loom__h2c_settings_ok(out, (size_t)n))
        return -1;
    return n;
}

bool loom__h2c_hop_field(const loom_http_header_t *h, size_t nh, const loom_http_header_t *f)
{
    static const char *const hop[] = {"connection",       "upgrade", "http2-settings",
                                      "keep-alive",       "te",      "transfer-encoding",
                                      "proxy-connection", NULL};
    for (size_t i = 0; hop[i]; i++) {
        if (f->name_len == strlen(hop[i]) && strncasecmp(f->name, hop[i], f->name_len) == 0) {
            /* TE: trailers is the one value HTTP/2 keeps (RFC 9113 8.2.2). */
            return !(i == 4 && f->value_len == 8 && strncasecmp(f->value, "trailers", 8) == 0);
        }
    }
    /* Fields the Connection field names are this connection's too (RFC
     * 9110 section 7.6.1). The names are NUL-terminated by now. */
    return loom__h2c_lists(h, nh, "connection", f->name);
}
