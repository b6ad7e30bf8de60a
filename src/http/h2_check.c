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
 * - host at most once, not empty, with the characters of an authority. A
 *   host or :authority whose host and port (after any userinfo) have a
 *   bad port ("a:b", "a:1:2", "u@a:b"), a bad IP literal or a bad
 *   pct-encoding is malformed too (loom__h2chk_host_syntax).
 * - Connection-specific fields (connection, keep-alive, proxy-connection,
 *   transfer-encoding, upgrade) are malformed, and te is "trailers" only
 *   (section 8.2.2).
 * - content-length: digits, at most once, and the DATA received must add
 *   up to it at END_STREAM (section 8.1.1); on CONNECT it is ignored.
 * - Trailers end the stream (section 8.1).
 */
#include <arpa/inet.h>
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
    LOOM__H2C_SLASH = 1u << 9,      /* :path starts with "/" */
    LOOM__H2C_STAR = 1u << 10,      /* :path is "*" */
    LOOM__H2C_HTTP = 1u << 11,      /* :scheme is http or https */
    LOOM__H2C_AUTH_HOST = 1u << 12, /* :authority is a valid uri-host[:port] */
    LOOM__H2C_HOST_HOST = 1u << 13, /* host is a valid uri-host[:port] */
};

/* Character classes. */
enum {
    C_NAME = 1,    /* a field name: tchar but uppercase */
    C_TOKEN = 2,   /* tchar (a method) */
    C_PATH = 4,    /* visible ASCII and obs-text */
    C_AUTH = 8,    /* an authority (RFC 3986 reg-name, IP literal, port, userinfo) */
    C_VALUE = 16,  /* a field value: HTAB, SP, visible ASCII, obs-text */
    C_SCHEME = 32, /* ALPHA, DIGIT, "+", "-", "." */
    C_HOST = 64,   /* RFC 3986 uri-host and port: what loom__host_valid() (server.c) takes */
};

static const uint8_t loom__h2c_class[256] = {
    0,   0,   0,   0,   0,   0,   0,   0,   0,   16,  0,   0,   0,   0,   0,   0,   0,   0,   0,
    0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   0,   16,  95,  20,  23,  95,  95,
    95,  95,  92,  92,  95,  127, 92,  127, 127, 20,  127, 127, 127, 127, 127, 127, 127, 127, 127,
    127, 92,  92,  20,  92,  20,  20,  28,  126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126,
    126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 126, 92,  20,  92,  23,
    95,  23,  127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127, 127,
    127, 127, 127, 127, 127, 127, 127, 127, 127, 20,  23,  20,  95,  0,   20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,  20,
    20,  20,  20,  20,  20,  20,  20,  20,  20,
};

/* The classes every byte of p[0..n) is in: one pass answers every
 * question about a string (four bytes a step: this runs for every byte of
 * every field). */
static inline __attribute__((always_inline)) uint8_t loom__h2c_mask(const uint8_t *p, size_t n)
{
    const uint8_t *t = loom__h2c_class;
    uint8_t m = 0xff;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        m &= (uint8_t)(t[p[i]] & t[p[i + 1]] & t[p[i + 2]] & t[p[i + 3]]);
    for (; i < n; i++)
        m &= t[p[i]];
    return m;
}

/* True if v[0..n) is a field value's bytes: HTAB, SP, visible ASCII and
 * obs-text (C_VALUE). Eight bytes a step: a word with no byte below 0x20
 * and none equal to 0x7f is good as it is; one that has is looked at
 * byte by byte (an HTAB, or a bad byte). */
static bool loom__h2c_value(const uint8_t *v, size_t n)
{
    const uint64_t ones = UINT64_C(0x0101010101010101), highs = UINT64_C(0x8080808080808080);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, d;
        memcpy(&x, v + i, 8);
        uint64_t below = (x - ones * 0x20) & ~x & highs; /* some byte < 0x20 */
        d = x ^ (ones * 0x7f);
        uint64_t del = (d - ones) & ~d & highs; /* some byte == 0x7f */
        if ((below | del) != 0) {
            for (size_t j = i; j < i + 8; j++)
                if (!(loom__h2c_class[v[j]] & C_VALUE))
                    return false;
        }
    }
    for (; i < n; i++)
        if (!(loom__h2c_class[v[i]] & C_VALUE))
            return false;
    return true;
}

static bool loom__h2c_hex(uint8_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* The inside of an IP literal (RFC 3986 section 3.2.2): IPvFuture ("v"
 * 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )) or IPv6address. The
 * bytes are uri-host ones already (not "]"). */
static bool loom__h2c_ip_literal(const uint8_t *p, size_t n)
{
    if (n >= 1 && (p[0] | 0x20) == 'v') {
        size_t i = 1;
        while (i < n && loom__h2c_hex(p[i]))
            i++;
        if (i == 1 || i + 1 >= n || p[i] != '.')
            return false;
        for (i++; i < n; i++)
            if (p[i] == '%' || p[i] == '[')
                return false;
        return true;
    }
    char a[INET6_ADDRSTRLEN];
    unsigned char bin[16];
    if (n < 2 || n >= sizeof a)
        return false;
    memcpy(a, p, n);
    a[n] = '\0';
    return inet_pton(AF_INET6, a, bin) == 1;
}

bool loom__h2chk_host_syntax(const uint8_t *h, size_t n, bool port)
{
    size_t i = 0;
    if (n > 0 && h[0] == '[') {
        const uint8_t *rb = memchr(h, ']', n);
        if (rb == NULL || !loom__h2c_ip_literal(h + 1, (size_t)(rb - h) - 1))
            return false;
        i = (size_t)(rb - h) + 1;
    } else {
        for (; i < n && h[i] != ':'; i++) {
            if (h[i] == '[' || h[i] == ']')
                return false;
            if (h[i] == '%' && (n - i < 3 || !loom__h2c_hex(h[i + 1]) || !loom__h2c_hex(h[i + 2])))
                return false;
        }
    }
    if (i == n)
        return true;
    if (!port || h[i] != ':')
        return false;
    for (i++; i < n; i++)
        if (h[i] < '0' || h[i] > '9')
            return false;
    return true;
}

/* An authority (its bytes C_AUTH, mask m): the host and port after any
 * userinfo ("u@", the one byte C_AUTH has beyond C_HOST) must have their
 * structure. A userinfo itself is left to the server's check (400). */
static bool loom__h2c_auth_syntax(const uint8_t *v, size_t n, uint8_t m)
{
    if (!(m & C_HOST)) {
        size_t i = n;
        while (i > 0 && v[i - 1] != '@')
            i--;
        v += i;
        n -= i;
    }
    return loom__h2chk_host_syntax(v, n, true);
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
    uint8_t m = loom__h2c_mask(v, vl);
    if (nl == 7 && memcmp(n, ":method", 7) == 0) {
        if (!(m & C_TOKEN))
            return "invalid :method";
        bit = LOOM__H2C_METHOD;
        if (vl == 7 && memcmp(v, "CONNECT", 7) == 0)
            k->f |= LOOM__H2C_CONNECT;
        else if (vl == 7 && memcmp(v, "OPTIONS", 7) == 0)
            k->f |= LOOM__H2C_OPTIONS;
    } else if (nl == 5 && memcmp(n, ":path", 5) == 0) {
        if (!(m & C_PATH))
            return "invalid :path";
        bit = LOOM__H2C_PATH;
        if (vl > 0 && v[0] == '/')
            k->f |= LOOM__H2C_SLASH;
        else if (vl == 1 && v[0] == '*')
            k->f |= LOOM__H2C_STAR;
    } else if (nl == 7 && memcmp(n, ":scheme", 7) == 0) {
        if (!((v[0] | 0x20) >= 'a' && (v[0] | 0x20) <= 'z') || !(m & C_SCHEME))
            return "invalid :scheme";
        bit = LOOM__H2C_SCHEME;
        /* ("| 0x20" lowercases a letter and keeps the scheme's other
         * characters: digits, "+", "-" and "." have that bit.) */
        if ((vl == 4 || (vl == 5 && (v[4] | 0x20) == 's')) && (v[0] | 0x20) == 'h' &&
            (v[1] | 0x20) == 't' && (v[2] | 0x20) == 't' && (v[3] | 0x20) == 'p')
            k->f |= LOOM__H2C_HTTP;
    } else if (nl == 10 && memcmp(n, ":authority", 10) == 0) {
        if (!(m & C_AUTH))
            return "invalid :authority";
        bit = LOOM__H2C_AUTH;
        if (!loom__h2c_auth_syntax(v, vl, m))
            return "invalid :authority";
        if (m & C_HOST)
            k->f |= LOOM__H2C_AUTH_HOST;
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
    if (!(loom__h2c_mask(n, nl) & C_NAME))
        return "invalid field name";
    if (!loom__h2c_value(v, vl))
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
            uint8_t m = loom__h2c_mask(v, vl);
            if (vl == 0 || !(m & C_AUTH) || !loom__h2c_auth_syntax(v, vl, m))
                return "invalid host";
            k->f |= LOOM__H2C_HOST | ((m & C_HOST) ? LOOM__H2C_HOST_HOST : 0);
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

bool loom__h2chk_host_ok(const loom__h2chk *k, bool authority)
{
    if (!(k->f & (LOOM__H2C_SLASH | LOOM__H2C_STAR)) || (k->f & LOOM__H2C_CONNECT))
        return false;
    return (k->f & (authority ? LOOM__H2C_AUTH_HOST : LOOM__H2C_HOST_HOST)) != 0;
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
