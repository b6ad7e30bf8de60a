/* http/url.c - URL parsing and resolution, percent-encoding, query strings.
 *
 * Pure functions over caller memory (see loom/url.h): no I/O, no allocation,
 * no global state, so every function is safe on any thread.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "loom/error.h"
#include "loom/url.h"

#define LOOM__URL_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Character classes (RFC 3986 section 2). */
enum {
    C_ALPHA = 1u << 0,
    C_DIGIT = 1u << 1,
    C_UNRES = 1u << 2, /* unreserved: ALPHA DIGIT - . _ ~ */
    C_SUB = 1u << 3,   /* sub-delims: ! $ & ' ( ) * + , ; = */
    C_HEX = 1u << 4,
    C_SCHEME = 1u << 5 /* ALPHA DIGIT + - . */
};

static unsigned char_class(unsigned char c)
{
    unsigned m = 0;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        m |= C_ALPHA | C_UNRES | C_SCHEME;
    if (c >= '0' && c <= '9')
        m |= C_DIGIT | C_UNRES | C_SCHEME | C_HEX;
    if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
        m |= C_HEX;
    switch (c) {
    case '-':
    case '.':
        m |= C_UNRES | C_SCHEME;
        break;
    case '_':
    case '~':
        m |= C_UNRES;
        break;
    case '+':
        m |= C_SUB | C_SCHEME;
        break;
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case ',':
    case ';':
    case '=':
        m |= C_SUB;
        break;
    default:
        break;
    }
    return m;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Bytes no part of a URL may hold: controls, space and DEL. */
static bool bad_byte(unsigned char c)
{
    return c <= 0x20 || c == 0x7f;
}

static bool ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z')
            x = (unsigned char)(x + 32);
        if (x != y)
            return false;
    }
    return true;
}

/* Validates a bracketed IP literal's inside: an IPv6 address, optionally
 * followed by a zone ("%25" then unreserved or pct-encoded, RFC 6874). */
static int check_ipv6(const char *p, size_t n)
{
    size_t addr_len = n;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            addr_len = i;
            if (n - i < 4 || p[i + 1] != '2' || p[i + 2] != '5')
                return LOOM_EURL;
            for (size_t j = i + 3; j < n; j++) {
                unsigned char c = (unsigned char)p[j];
                if (c == '%') {
                    if (j + 2 >= n || hexval((unsigned char)p[j + 1]) < 0 ||
                        hexval((unsigned char)p[j + 2]) < 0)
                        return LOOM_EURL;
                    j += 2;
                } else if (!(char_class(c) & C_UNRES)) {
                    return LOOM_EURL;
                }
            }
            break;
        }
    }
    char tmp[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    if (addr_len == 0 || addr_len >= sizeof tmp)
        return LOOM_EURL;
    /* inet_pton() reads a C string: a NUL (or any other byte) it would
     * stop at must not hide the rest of the literal. */
    for (size_t i = 0; i < addr_len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (!(char_class(c) & C_HEX) && c != ':' && c != '.')
            return LOOM_EURL;
    }
    memcpy(tmp, p, addr_len);
    tmp[addr_len] = '\0';
    if (inet_pton(AF_INET6, tmp, bin) != 1)
        return LOOM_EURL;
    return 0;
}

/* Checks that every '%' in s[0..n) starts a valid escape. */
static bool pct_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n)
                return false;
            if (hexval((unsigned char)s[i + 1]) < 0 || hexval((unsigned char)s[i + 2]) < 0)
                return false;
            i += 2;
        }
    }
    return true;
}

static int parse_authority(const char *a, size_t n, loom_url_t *out)
{
    /* userinfo: up to the last '@' (an '@' in a password is often left
     * unencoded in the wild; the host cannot contain one). */
    const char *at = NULL;
    for (size_t i = n; i > 0; i--) {
        if (a[i - 1] == '@') {
            at = a + i - 1;
            break;
        }
    }
    if (at) {
        out->userinfo = a;
        out->userinfo_len = (size_t)(at - a);
        out->flags |= LOOM_URL_F_USERINFO;
        for (size_t i = 0; i < out->userinfo_len; i++) {
            unsigned char c = (unsigned char)a[i];
            if (bad_byte(c) || c >= 0x80 || c == '[' || c == ']')
                return LOOM_EURL;
        }
        n -= (size_t)(at + 1 - a);
        a = at + 1;
    }
    const char *port = NULL;
    size_t port_len = 0;
    if (n > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return LOOM_EURL;
        out->host = a + 1;
        out->host_len = (size_t)(close - a - 1);
        out->flags |= LOOM_URL_F_IPV6;
        if (check_ipv6(out->host, out->host_len) < 0)
            return LOOM_EURL;
        size_t rest = n - (size_t)(close + 1 - a);
        if (rest > 0) {
            if (close[1] != ':')
                return LOOM_EURL;
            port = close + 2;
            port_len = rest - 1;
        }
    } else {
        const char *colon = memchr(a, ':', n);
        size_t hl = colon ? (size_t)(colon - a) : n;
        for (size_t i = 0; i < hl; i++) {
            unsigned char c = (unsigned char)a[i];
            if (!(char_class(c) & (C_UNRES | C_SUB)) && c != '%')
                return LOOM_EURL;
        }
        if (!pct_ok(a, hl))
            return LOOM_EURL;
        out->host = a;
        out->host_len = hl;
        if (colon) {
            port = colon + 1;
            port_len = n - hl - 1;
        }
    }
    if (port_len > 0) {
        long v = 0;
        if (port_len > 5)
            return LOOM_EURL;
        for (size_t i = 0; i < port_len; i++) {
            if (port[i] < '0' || port[i] > '9')
                return LOOM_EURL;
            v = v * 10 + (port[i] - '0');
        }
        if (v > 65535)
            return LOOM_EURL;
        out->port = (int)v;
        out->flags |= LOOM_URL_F_PORT;
    }
    return 0;
}

/* Returns the length of a leading "scheme:" (without the colon), or 0. */
static size_t scheme_len(const char *s, size_t len)
{
    if (len == 0 || !(char_class((unsigned char)s[0]) & C_ALPHA))
        return 0;
    for (size_t i = 1; i < len; i++) {
        if (s[i] == ':')
            return i;
        if (!(char_class((unsigned char)s[i]) & C_SCHEME))
            return 0;
    }
    return 0;
}

/* Parses an absolute URL (need_scheme) or any URI reference. */
static int parse_ref(const char *s, size_t len, loom_url_t *out, bool need_scheme)
{
    memset(out, 0, sizeof *out);
    out->port = -1;
    size_t i = 0;
    size_t sl = scheme_len(s, len);
    if (sl > 0) {
        out->scheme = s;
        out->scheme_len = sl;
        i = sl + 1;
    } else if (need_scheme) {
        return LOOM_EURL;
    }
    if (len - i >= 2 && s[i] == '/' && s[i + 1] == '/') {
        size_t a = i + 2, e = a;
        while (e < len && s[e] != '/' && s[e] != '?' && s[e] != '#')
            e++;
        out->flags |= LOOM_URL_F_AUTHORITY;
        int rc = parse_authority(s + a, e - a, out);
        if (rc < 0)
            return rc;
        i = e;
    }
    size_t p = i;
    while (i < len && s[i] != '?' && s[i] != '#')
        i++;
    out->path = s + p;
    out->path_len = i - p;
    if (i < len && s[i] == '?') {
        size_t q = ++i;
        while (i < len && s[i] != '#')
            i++;
        out->query = s + q;
        out->query_len = i - q;
        out->flags |= LOOM_URL_F_QUERY;
    }
    if (i < len && s[i] == '#') {
        out->fragment = s + i + 1;
        out->fragment_len = len - i - 1;
        out->flags |= LOOM_URL_F_FRAGMENT;
    }
    for (size_t k = p; k < len; k++) {
        if (bad_byte((unsigned char)s[k]))
            return LOOM_EURL;
    }
    /* A relative path's first segment must not look like a scheme; the
     * scheme test above already took any "x:" prefix, so nothing to do. */
    if (out->path_len == 0)
        out->path = NULL;
    if (!(out->flags & LOOM_URL_F_QUERY))
        out->query = NULL;
    if (!(out->flags & LOOM_URL_F_FRAGMENT))
        out->fragment = NULL;
    return 0;
}

int loom_url_parse(const char *s, size_t len, loom_url_t *out)
{
    if (!s || !out)
        return LOOM_EINVAL;
    if (len == (size_t)-1)
        len = strlen(s);
    return parse_ref(s, len, out, true);
}

int loom_url_port(const loom_url_t *url)
{
    if (url->port >= 0)
        return url->port;
    if (ieq(url->scheme, url->scheme_len, "http") || ieq(url->scheme, url->scheme_len, "ws"))
        return 80;
    if (ieq(url->scheme, url->scheme_len, "https") || ieq(url->scheme, url->scheme_len, "wss"))
        return 443;
    if (ieq(url->scheme, url->scheme_len, "ftp"))
        return 21;
    return 0;
}

/* --- Resolution ---------------------------------------------------------- */

typedef struct {
    char *out;
    size_t size;
    size_t n; /* bytes the full result needs so far */
} writer;

static void put(writer *w, const char *p, size_t len)
{
    if (len == 0)
        return; /* p may be NULL for an absent component */
    if (w->n < w->size) {
        size_t room = w->size - w->n;
        memcpy(w->out + w->n, p, len < room ? len : room);
    }
    w->n += len;
}

static void put_authority(writer *w, const loom_url_t *u)
{
    put(w, "//", 2);
    if (u->flags & LOOM_URL_F_USERINFO) {
        put(w, u->userinfo, u->userinfo_len);
        put(w, "@", 1);
    }
    if (u->flags & LOOM_URL_F_IPV6)
        put(w, "[", 1);
    put(w, u->host, u->host_len);
    if (u->flags & LOOM_URL_F_IPV6)
        put(w, "]", 1);
    if (u->flags & LOOM_URL_F_PORT) {
        char pb[8];
        int v = u->port, k = (int)sizeof pb;
        do {
            pb[--k] = (char)('0' + v % 10);
            v /= 10;
        } while (v > 0);
        put(w, ":", 1);
        put(w, pb + k, sizeof pb - (size_t)k);
    }
}

/* RFC 3986 section 5.2.4, in place: the output never outruns the input. */
static size_t remove_dots(char *b, size_t len)
{
    size_t r = 0, w = 0;
    while (r < len) {
        size_t left = len - r;
        const char *in = b + r;
        if (left >= 3 && memcmp(in, "../", 3) == 0) {
            r += 3;
        } else if (left >= 2 && memcmp(in, "./", 2) == 0) {
            r += 2;
        } else if (left >= 3 && memcmp(in, "/./", 3) == 0) {
            r += 2;
        } else if (left == 2 && memcmp(in, "/.", 2) == 0) {
            b[r + 1] = '/'; /* r + 1 > w: still input, safe to rewrite */
            r += 1;
        } else if ((left >= 4 && memcmp(in, "/../", 4) == 0) ||
                   (left == 3 && memcmp(in, "/..", 3) == 0)) {
            if (left == 3) {
                b[r + 2] = '/';
                r += 2;
            } else {
                r += 3;
            }
            while (w > 0 && b[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
        } else if ((left == 1 && in[0] == '.') || (left == 2 && memcmp(in, "..", 2) == 0)) {
            r = len;
        } else {
            if (b[r] == '/')
                b[w++] = b[r++];
            while (r < len && b[r] != '/')
                b[w++] = b[r++];
        }
    }
    return w;
}

int loom_url_resolve(const loom_url_t *base, const char *ref, size_t ref_len, int drop_fragment,
                     char *out, size_t size)
{
    if (!base || !ref || (!out && size > 0))
        return LOOM_EINVAL;
    if (ref_len == (size_t)-1)
        ref_len = strlen(ref);
    loom_url_t r;
    int rc = parse_ref(ref, ref_len, &r, false);
    if (rc < 0)
        return rc;
    writer w = {out, size, 0};
    const loom_url_t *scheme_src = r.scheme ? &r : base;
    const loom_url_t *auth_src;
    const char *q = NULL;
    size_t ql = 0;
    bool has_q = false;
    put(&w, scheme_src->scheme, scheme_src->scheme_len);
    put(&w, ":", 1);
    size_t path_start, path_len;
    if (r.scheme || (r.flags & LOOM_URL_F_AUTHORITY)) {
        auth_src = &r;
        if (auth_src->flags & LOOM_URL_F_AUTHORITY)
            put_authority(&w, auth_src);
        path_start = w.n;
        put(&w, r.path, r.path_len);
        has_q = r.flags & LOOM_URL_F_QUERY;
        q = r.query, ql = r.query_len;
    } else {
        if (base->flags & LOOM_URL_F_AUTHORITY)
            put_authority(&w, base);
        path_start = w.n;
        if (r.path_len == 0) {
            put(&w, base->path, base->path_len);
            if (r.flags & LOOM_URL_F_QUERY) {
                has_q = true;
                q = r.query, ql = r.query_len;
            } else {
                has_q = base->flags & LOOM_URL_F_QUERY;
                q = base->query, ql = base->query_len;
            }
        } else {
            if (r.path[0] != '/') {
                /* Merge (5.2.3): the base path up to its last '/', or "/"
                 * when the base has an authority and an empty path. */
                if ((base->flags & LOOM_URL_F_AUTHORITY) && base->path_len == 0) {
                    put(&w, "/", 1);
                } else {
                    size_t k = base->path_len;
                    while (k > 0 && base->path[k - 1] != '/')
                        k--;
                    put(&w, base->path, k);
                }
            }
            put(&w, r.path, r.path_len);
            has_q = r.flags & LOOM_URL_F_QUERY;
            q = r.query, ql = r.query_len;
        }
    }
    path_len = w.n - path_start;
    if (has_q) {
        put(&w, "?", 1);
        put(&w, q, ql);
    }
    if (!drop_fragment && (r.flags & LOOM_URL_F_FRAGMENT)) {
        put(&w, "#", 1);
        put(&w, r.fragment, r.fragment_len);
    }
    if (w.n > INT_MAX)
        return LOOM_ETOOBIG; /* the length would not fit the return value */
    if (w.n >= size)
        return (int)w.n; /* an upper bound: dot segments are not removed yet */
    size_t np = remove_dots(out + path_start, path_len);
    size_t tail = w.n - path_start - path_len;
    memmove(out + path_start + np, out + path_start + path_len, tail);
    size_t total = path_start + np + tail;
    out[total] = '\0';
    return (int)total;
}

/* --- Percent-encoding ------------------------------------------------------ */

int loom_url_encode(char *dst, size_t size, const char *src, size_t len, unsigned flags)
{
    static const char hex[] = "0123456789ABCDEF";
    if (!dst && size > 0)
        return LOOM_EINVAL;
    size_t n = 0, written = 0; /* written: the prefix that fits, never a split escape */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        unsigned cls = char_class(c);
        bool keep = (cls & C_UNRES) != 0;
        char e[3];
        size_t el = 1;
        if (!keep && (flags & LOOM_URL_ENC_PATH))
            keep = (cls & C_SUB) || c == '/' || c == ':' || c == '@';
        if (keep) {
            e[0] = (char)c;
        } else if (c == ' ' && (flags & LOOM_URL_ENC_FORM)) {
            e[0] = '+';
        } else {
            e[0] = '%';
            e[1] = hex[c >> 4];
            e[2] = hex[c & 15];
            el = 3;
        }
        if (written == n && n + el < size) {
            memcpy(dst + n, e, el);
            written += el;
        }
        n += el;
        if (LOOM__URL_UNLIKELY(n > INT_MAX))
            return LOOM_ETOOBIG; /* the length would not fit the return value */
    }
    if (size > 0)
        dst[written] = '\0';
    return (int)n;
}

int loom_url_decode(char *dst, size_t size, const char *src, size_t len, unsigned flags)
{
    size_t n = 0;
    if (!dst || !src)
        return LOOM_EINVAL;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            int hi = -1, lo = -1;
            if (i + 2 < len) {
                hi = hexval((unsigned char)src[i + 1]);
                lo = hexval((unsigned char)src[i + 2]);
            }
            if (hi < 0 || lo < 0) {
                if (!(flags & LOOM_URL_DEC_LENIENT))
                    return LOOM_EURL;
            } else {
                c = (unsigned char)(hi << 4 | lo);
                if (c == 0 && !(flags & LOOM_URL_DEC_ALLOW_NUL))
                    return LOOM_EURL;
                i += 2;
            }
        } else if (c == '+' && (flags & LOOM_URL_DEC_PLUS)) {
            c = ' ';
        }
        if (n + 1 >= size)
            return LOOM_ENOSPC;
        if (LOOM__URL_UNLIKELY(n >= INT_MAX))
            return LOOM_ETOOBIG;
        dst[n++] = (char)c;
    }
    if (n >= size)
        return LOOM_ENOSPC;
    dst[n] = '\0';
    return (int)n;
}

/* --- Query strings ------------------------------------------------------------ */

int loom_url_query_next(const char *query, size_t len, size_t *pos, loom_url_param_t *out)
{
    size_t i = *pos;
    while (i < len) {
        size_t s = i;
        while (i < len && query[i] != '&')
            i++;
        size_t e = i;
        if (i < len)
            i++; /* skip '&' */
        if (e == s)
            continue;
        const char *eq = memchr(query + s, '=', e - s);
        out->name = query + s;
        if (eq) {
            out->name_len = (size_t)(eq - (query + s));
            out->value = eq + 1;
            out->value_len = (size_t)(query + e - (eq + 1));
            out->has_value = 1;
        } else {
            out->name_len = e - s;
            out->value = query + e;
            out->value_len = 0;
            out->has_value = 0;
        }
        *pos = i;
        return 1;
    }
    *pos = len;
    return 0;
}

int loom_url_decoded_equals(const char *s, size_t len, const char *name, unsigned flags)
{
    size_t j = 0;
    for (size_t i = 0; i < len; i++, j++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%' && i + 2 < len) {
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (unsigned char)(hi << 4 | lo);
                i += 2;
            }
        } else if (c == '+' && (flags & LOOM_URL_DEC_PLUS)) {
            c = ' ';
        }
        if (name[j] == '\0' || (unsigned char)name[j] != c)
            return 0;
    }
    return name[j] == '\0';
}

int loom_url_query_get(const char *query, size_t len, const char *name, char *buf, size_t size)
{
    if (!query || !name || (!buf && size > 0))
        return LOOM_EINVAL;
    size_t pos = 0;
    loom_url_param_t p;
    while (loom_url_query_next(query, len, &pos, &p)) {
        if (!loom_url_decoded_equals(p.name, p.name_len, name, LOOM_URL_DEC_PLUS))
            continue;
        if (!buf)
            return p.value_len > INT_MAX ? LOOM_ETOOBIG : (int)p.value_len;
        return loom_url_decode(buf, size, p.value, p.value_len, LOOM_URL_DEC_PLUS);
    }
    return LOOM_ENOENT;
}
