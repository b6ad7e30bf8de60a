/* http/h2_check.c - the HTTP rules of an HTTP/2 request (RFC 9113 section
 * 8): see h2_check.h.
 *
 * Decisions:
 * - Field names must be lowercase tokens and values free of NUL, CR, LF
 *   and other controls but HTAB, without white space at either end (RFC
 *   9113 section 8.2.1). A field that breaks this makes the request
 *   malformed, pseudo or not, as the RFC says (nghttp2's own checks drop
 *   a bad regular field silently instead).
 * - Pseudo-header fields: only :method, :scheme, :path and :authority (no
 *   extended CONNECT), each at most once and not empty, all before the regular fields,
 *   none in trailers. CONNECT has :authority and neither :scheme nor
 *   :path; any other request has :method, :scheme and :path, and
 *   :authority or host. An http(s) :path starts with "/", or is "*" for
 *   OPTIONS (section 8.3.1).
 * - host at most once, not empty, with the characters of an authority.
 * - Connection-specific fields (connection, keep-alive, proxy-connection,
 *   transfer-encoding, upgrade) are malformed, and te is "trailers" only
 *   (section 8.2.2).
 * - content-length: digits, at most once, and the DATA received must add
 *   up to it at END_STREAM (section 8.1.1); on CONNECT it is ignored.
 * - Trailers end the stream (section 8.1).
 */
#include <string.h>
#include <strings.h>

#include "http/h2_check.h"

enum {
    LOOM__H2C_REGULAR = 1u << 0, /* a regular field was seen */
    LOOM__H2C_METHOD = 1u << 1,
    LOOM__H2C_PATH = 1u << 2,
    LOOM__H2C_SCHEME = 1u << 3,
    LOOM__H2C_AUTH = 1u << 4,
    LOOM__H2C_HOST = 1u << 5,
    LOOM__H2C_CL = 1u << 6,
    LOOM__H2C_CONNECT = 1u << 7,
    LOOM__H2C_OPTIONS = 1u << 8,
    LOOM__H2C_SLASH = 1u << 9, /* :path starts with "/" */
    LOOM__H2C_STAR = 1u << 10, /* :path is "*" */
    LOOM__H2C_HTTP = 1u << 11, /* :scheme is http or https */
};

/* Character classes. */
enum {
    C_NAME = 1,    /* a field name: tchar but uppercase */
    C_TOKEN = 2,   /* tchar (a method) */
    C_PATH = 4,    /* visible ASCII and obs-text */
    C_AUTH = 8,    /* an authority (RFC 3986 reg-name, IP literal, port, userinfo) */
    C_VALUE = 16,  /* a field value: HTAB, SP, visible ASCII, obs-text */
    C_SCHEME = 32, /* ALPHA, DIGIT, "+", "-", "." */
};

static const uint8_t loom__h2c_class[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  16, 0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,
    0,  0,  0,  0,  0,  0,  0,  0,  16, 31, 20, 23, 31, 31, 31, 31, 28, 28, 31, 63, 28, 63, 63, 20,
    63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 28, 28, 20, 28, 20, 20, 28, 62, 62, 62, 62, 62, 62, 62,
    62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 62, 28, 20, 28, 23, 31,
    23, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 63,
    63, 63, 63, 20, 23, 20, 31, 0,  20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
};

static bool loom__h2c_all(const uint8_t *p, size_t n, uint8_t cls)
{
    for (size_t i = 0; i < n; i++)
        if (!(loom__h2c_class[p[i]] & cls))
            return false;
    return true;
}

void loom__h2chk_init(loom__h2chk *k)
{
    k->f = 0;
    k->clen = -1;
    k->rlen = 0;
}

static const char *loom__h2chk_pseudo(loom__h2chk *k, const uint8_t *n, size_t nl, const uint8_t *v,
                                      size_t vl)
{
    uint32_t bit = 0;
    if (vl == 0)
        return "empty pseudo-header field";
    if (nl == 7 && memcmp(n, ":method", 7) == 0) {
        if (vl == 0 || !loom__h2c_all(v, vl, C_TOKEN))
            return "invalid :method";
        bit = LOOM__H2C_METHOD;
        if (vl == 7 && memcmp(v, "CONNECT", 7) == 0)
            k->f |= LOOM__H2C_CONNECT;
        else if (vl == 7 && memcmp(v, "OPTIONS", 7) == 0)
            k->f |= LOOM__H2C_OPTIONS;
    } else if (nl == 5 && memcmp(n, ":path", 5) == 0) {
        if (!loom__h2c_all(v, vl, C_PATH))
            return "invalid :path";
        bit = LOOM__H2C_PATH;
        if (vl > 0 && v[0] == '/')
            k->f |= LOOM__H2C_SLASH;
        else if (vl == 1 && v[0] == '*')
            k->f |= LOOM__H2C_STAR;
    } else if (nl == 7 && memcmp(n, ":scheme", 7) == 0) {
        if (vl == 0 || !((v[0] | 0x20) >= 'a' && (v[0] | 0x20) <= 'z') ||
            !loom__h2c_all(v, vl, C_SCHEME))
            return "invalid :scheme";
        bit = LOOM__H2C_SCHEME;
        if ((vl == 4 && strncasecmp((const char *)v, "http", 4) == 0) ||
            (vl == 5 && strncasecmp((const char *)v, "https", 5) == 0))
            k->f |= LOOM__H2C_HTTP;
    } else if (nl == 10 && memcmp(n, ":authority", 10) == 0) {
        if (!loom__h2c_all(v, vl, C_AUTH))
            return "invalid :authority";
        bit = LOOM__H2C_AUTH;
    } else {
        return "unknown pseudo-header field";
    }
    if (k->f & bit)
        return "repeated pseudo-header field";
    k->f |= bit;
    return NULL;
}

const char *loom__h2chk_field(loom__h2chk *k, const uint8_t *n, size_t nl, const uint8_t *v,
                              size_t vl, bool trailer)
{
    if (nl == 0)
        return "empty field name";
    if (n[0] == ':') {
        if (trailer)
            return "pseudo-header field in trailers";
        if (k->f & LOOM__H2C_REGULAR)
            return "pseudo-header field after a regular field";
        return loom__h2chk_pseudo(k, n, nl, v, vl);
    }
    k->f |= LOOM__H2C_REGULAR;
    if (!loom__h2c_all(n, nl, C_NAME))
        return "invalid field name";
    if (!loom__h2c_all(v, vl, C_VALUE))
        return "invalid field value";
    if (vl > 0 && (v[0] == ' ' || v[0] == '\t' || v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        return "white space around a field value";
    switch (nl) {
    case 2:
        if (n[0] == 't' && n[1] == 'e' &&
            !(vl == 8 && strncasecmp((const char *)v, "trailers", 8) == 0))
            return "te other than trailers";
        break;
    case 4:
        if (memcmp(n, "host", 4) == 0) {
            if (k->f & LOOM__H2C_HOST)
                return "repeated host";
            if (vl == 0 || !loom__h2c_all(v, vl, C_AUTH))
                return "invalid host";
            k->f |= LOOM__H2C_HOST;
        }
        break;
    case 7:
        if (memcmp(n, "upgrade", 7) == 0)
            return "connection-specific field";
        break;
    case 10:
        if (memcmp(n, "connection", 10) == 0 || memcmp(n, "keep-alive", 10) == 0)
            return "connection-specific field";
        break;
    case 14:
        if (memcmp(n, "content-length", 14) == 0) {
            if (k->f & LOOM__H2C_CL)
                return "repeated content-length";
            if (vl == 0 || vl > 18)
                return "invalid content-length";
            int64_t x = 0;
            for (size_t i = 0; i < vl; i++) {
                if (v[i] < '0' || v[i] > '9')
                    return "invalid content-length";
                x = x * 10 + (v[i] - '0');
            }
            k->f |= LOOM__H2C_CL;
            k->clen = x;
        }
        break;
    case 16:
        if (memcmp(n, "proxy-connection", 16) == 0)
            return "connection-specific field";
        break;
    case 17:
        if (memcmp(n, "transfer-encoding", 17) == 0)
            return "connection-specific field";
        break;
    default:
        break;
    }
    return NULL;
}

const char *loom__h2chk_head(loom__h2chk *k, bool end)
{
    if (k->f & LOOM__H2C_CONNECT) {
        if ((k->f & (LOOM__H2C_SCHEME | LOOM__H2C_PATH)) || !(k->f & LOOM__H2C_AUTH))
            return "CONNECT without :authority, or with :scheme or :path";
        k->clen = -1; /* a tunnel: its DATA is not a body */
    } else {
        uint32_t need = LOOM__H2C_METHOD | LOOM__H2C_SCHEME | LOOM__H2C_PATH;
        if ((k->f & need) != need)
            return "missing :method, :scheme or :path";
        if (!(k->f & (LOOM__H2C_AUTH | LOOM__H2C_HOST)))
            return "neither :authority nor host";
        if ((k->f & LOOM__H2C_HTTP) && !(k->f & LOOM__H2C_SLASH) &&
            !((k->f & LOOM__H2C_OPTIONS) && (k->f & LOOM__H2C_STAR)))
            return "invalid :path";
    }
    return end ? loom__h2chk_end(k) : NULL;
}

const char *loom__h2chk_trailers(loom__h2chk *k, bool end)
{
    if (!end)
        return "trailers without END_STREAM";
    return loom__h2chk_end(k);
}

const char *loom__h2chk_data(loom__h2chk *k, size_t n)
{
    k->rlen += n;
    if (k->clen >= 0 && k->rlen > (uint64_t)k->clen)
        return "more DATA than content-length";
    return NULL;
}

const char *loom__h2chk_end(const loom__h2chk *k)
{
    if (k->clen >= 0 && k->rlen != (uint64_t)k->clen)
        return "DATA short of content-length";
    return NULL;
}
