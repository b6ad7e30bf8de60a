/* src/http/parser.c - the HTTP/1.1 head parsers, framing rules and body decoder.
 *
 * The head parsers are stateless, like picohttpparser: each call parses the
 * whole head from the start of the buffer, so nothing has to be remembered
 * between reads, and `last_len` lets a call on a still-unterminated head look
 * only at the new bytes. All limits are checked by position ("the header
 * section would have to be longer than N bytes"), never by buffer length, so
 * the result for a prefix of the input is either LOOM_HTTP_INCOMPLETE or the
 * same as the result for the whole input.
 *
 * The byte scanners (field values, request targets) have a portable scalar
 * form and, where the compiler targets SSE2, a 16-bytes-at-a-time form; the
 * limits flag LOOM_HTTP_LIMIT_SCALAR selects the scalar one so tests cover
 * both.
 */
#include <limits.h>
#include <string.h>

#include "loom/http_parser.h"

#if defined(__SSE2__) && !defined(LOOM_HTTP_NO_SIMD)
#include <emmintrin.h>
#define LOOM_HTTP_HAVE_SSE2 1
#else
#define LOOM_HTTP_HAVE_SSE2 0
#endif

#define DEFAULT_MAX_REQUEST_LINE 8192u
#define DEFAULT_MAX_HEADER_BYTES 16384u
#define DEFAULT_MAX_HEADERS      100u
#define DEFAULT_MAX_CHUNK_EXT    1024u
#define DEFAULT_MAX_BODY_SIZE    (1024u * 1024u)
/* Keeps head lengths representable in the int the parsers return. */
#define LIMIT_CAP (1u << 29)
/* Chunked framing overhead (loom_http_body_parse() in the header): free
 * bytes per chunk, and the bound on the rest in units of max_ext. */
#define OVERHEAD_FREE   32u
#define OVERHEAD_FACTOR 16u

/* Internal flags, kept above the public LOOM_HTTP_F_* bits. */
#define F_CHUNKED_NOT_LAST (1u << 20) /* "chunked" followed by another coding */
#define F_CHUNKED_TWICE    (1u << 21)

#define LIKELY(x)   __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

const char *loom_http_perr_str(int code)
{
    switch (code) {
    case LOOM_HTTP_INCOMPLETE:
        return "incomplete";
#define XX(name, val, status, msg)                                                                 \
    case val:                                                                                      \
        return msg;
        LOOM_HTTP_PERR_MAP(XX)
#undef XX
    default:
        return "unknown parser error";
    }
}

int loom_http_perr_status(int code)
{
    switch (code) {
#define XX(name, val, status, msg)                                                                 \
    case val:                                                                                      \
        return status;
        LOOM_HTTP_PERR_MAP(XX)
#undef XX
    default:
        return 0;
    }
}

const char *loom_http_method_str(loom_http_method_t m)
{
    static const char *const names[] = {"OTHER",  "GET",     "HEAD",    "POST",  "PUT",
                                        "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"};
    return (unsigned)m < sizeof names / sizeof names[0] ? names[m] : "OTHER";
}

/* ------------------------------------------------------------------------ */
/* Character classes                                                         */

/* tchar (RFC 9110 section 5.6.2): "!#$%&'*+-.^_`|~", digits and letters. */
static const unsigned char token_char[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1};

/* A byte allowed in a field value or reason phrase: HTAB, SP, VCHAR, obs-text. */
static inline int is_value_char(unsigned char c)
{
    return (c >= 0x20 && c != 0x7f) || c == '\t';
}

/* A byte allowed in a request-target: visible ASCII. */
static inline int is_target_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f;
}

static inline int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static inline int is_digit(char c)
{
    return (unsigned char)(c - '0') < 10;
}

static inline int is_token_char(unsigned char c)
{
    return token_char[c];
}

/* The scalar scanners: each returns the first byte in [p, end) outside its
 * class, or end. Four bytes per round, the tail one by one. */
#define LOOM__HTTP_SCANNER(name, ok)                                                               \
    static const char *name(const char *p, const char *end)                                        \
    {                                                                                              \
        while (end - p >= 4) {                                                                     \
            if (!ok((unsigned char)p[0]))                                                          \
                return p;                                                                          \
            if (!ok((unsigned char)p[1]))                                                          \
                return p + 1;                                                                      \
            if (!ok((unsigned char)p[2]))                                                          \
                return p + 2;                                                                      \
            if (!ok((unsigned char)p[3]))                                                          \
                return p + 3;                                                                      \
            p += 4;                                                                                \
        }                                                                                          \
        while (p < end && ok((unsigned char)*p))                                                   \
            p++;                                                                                   \
        return p;                                                                                  \
    }

LOOM__HTTP_SCANNER(scan_token, is_token_char)
LOOM__HTTP_SCANNER(scan_value_scalar, is_value_char)
LOOM__HTTP_SCANNER(scan_target_scalar, is_target_char)
#undef LOOM__HTTP_SCANNER

#if LOOM_HTTP_HAVE_SSE2
/* Bytes are compared as signed after flipping the top bit, which turns the
 * unsigned order into the signed order SSE2 compares in. Only 16-byte blocks
 * that lie wholly inside [p, end) are loaded, so there is no over-read. */
static const char *scan_value_sse2(const char *p, const char *end)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i sp = _mm_set1_epi8((char)(0x20 ^ 0x80));
    const __m128i del = _mm_set1_epi8(0x7f);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i ctl = _mm_cmplt_epi8(_mm_xor_si128(v, flip), sp);
        unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_cmpeq_epi8(v, del)));
        if (LIKELY(m == 0)) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(m);
        if (*p != '\t')
            return p;
        p++; /* HTAB is allowed; rare enough to restart the block after it */
    }
    return scan_value_scalar(p, end);
}

static const char *scan_target_sse2(const char *p, const char *end)
{
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i lo = _mm_set1_epi8((char)(0x21 ^ 0x80));
    const __m128i hi = _mm_set1_epi8((char)(0x7e ^ 0x80));
    while (end - p >= 16) {
        __m128i v = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(const void *)p), flip);
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, lo), _mm_cmpgt_epi8(v, hi));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
    return scan_target_scalar(p, end);
}
#endif

static inline const char *scan_value(const char *p, const char *end, int simd)
{
#if LOOM_HTTP_HAVE_SSE2
    if (LIKELY(simd))
        return scan_value_sse2(p, end);
#endif
    (void)simd;
    return scan_value_scalar(p, end);
}

static inline const char *scan_target(const char *p, const char *end, int simd)
{
#if LOOM_HTTP_HAVE_SSE2
    if (LIKELY(simd))
        return scan_target_sse2(p, end);
#endif
    (void)simd;
    return scan_target_scalar(p, end);
}

/* Case-insensitive compare of a token against a lowercase literal. OR-ing
 * 0x20 folds letters; the literals hold only letters, digits and '-', and no
 * other token byte folds onto one of those. */
static inline int token_ieq(const char *s, const char *lower, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((s[i] | 0x20) != lower[i])
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                    */

typedef struct {
    uint32_t max_line, max_header_bytes, max_headers, max_ext;
    uint64_t max_body;
    int simd;
    int allow_no_host;
    int obs_fold; /* responses only: LOOM_HTTP_LIMIT_OBS_FOLD */
} limits_t;

static uint32_t pick(uint32_t v, uint32_t dflt)
{
    if (v == 0)
        return dflt;
    return v > LIMIT_CAP ? LIMIT_CAP : v;
}

static void limits_load(limits_t *l, const loom_http_limits_t *in)
{
    static const loom_http_limits_t zero;
    if (in == NULL)
        in = &zero;
    l->max_line = pick(in->max_request_line, DEFAULT_MAX_REQUEST_LINE);
    l->max_header_bytes = pick(in->max_header_bytes, DEFAULT_MAX_HEADER_BYTES);
    l->max_headers = pick(in->max_headers, DEFAULT_MAX_HEADERS);
    l->max_ext = pick(in->max_chunk_ext, DEFAULT_MAX_CHUNK_EXT);
    l->max_body = in->max_body_size ? in->max_body_size : DEFAULT_MAX_BODY_SIZE;
    l->simd = !(in->flags & LOOM_HTTP_LIMIT_SCALAR);
    l->allow_no_host = !!(in->flags & LOOM_HTTP_LIMIT_ALLOW_NO_HOST);
    l->obs_fold = !!(in->flags & LOOM_HTTP_LIMIT_OBS_FOLD);
}

/* ------------------------------------------------------------------------ */
/* Header fields                                                             */

/* What the header loop learns about the fields that decide framing. */
typedef struct {
    unsigned flags;
    uint64_t content_length;
    const char *host;
    size_t host_len;
} hinfo_t;

static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
    uint64_t x = 0;
    if (n == 0)
        return LOOM_HTTP_PERR_CONTENT_LENGTH;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit(v[i]))
            return LOOM_HTTP_PERR_CONTENT_LENGTH;
        if (x > (UINT64_MAX - 9) / 10)
            return LOOM_HTTP_PERR_CONTENT_LENGTH;
        x = x * 10 + (uint64_t)(v[i] - '0');
    }
    *out = x;
    return 0;
}

/* Skips a quoted-string starting at the DQUOTE at *p; returns 0 or -1. */
static int skip_quoted(const char **pp, const char *end)
{
    const char *p = *pp + 1;
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            *pp = p + 1;
            return 0;
        }
        if (c == '\\') {
            if (p + 1 >= end || !is_value_char((unsigned char)p[1]))
                return -1;
            p += 2;
            continue;
        }
        if (!is_value_char(c))
            return -1;
        p++;
    }
    return -1;
}

/* Transfer-Encoding = #transfer-coding, possibly over several fields. */
static int parse_transfer_encoding(const char *p, const char *end, hinfo_t *h)
{
    h->flags |= LOOM_HTTP_F_TE;
    while (p < end) {
        if (*p == ',' || is_ows(*p)) {
            p++;
            continue;
        }
        const char *tok = p;
        p = scan_token(p, end);
        if (p == tok)
            return LOOM_HTTP_PERR_TRANSFER_ENCODING;
        size_t n = (size_t)(p - tok);
        int params = 0;
        while (p < end && *p != ',') {
            /* transfer-parameter: OWS ";" OWS token BWS "=" BWS (token / quoted-string) */
            if (is_ows(*p)) {
                p++;
            } else if (*p == ';' || *p == '=') {
                params = 1;
                p++;
            } else if (*p == '"') {
                if (!params || skip_quoted(&p, end) < 0)
                    return LOOM_HTTP_PERR_TRANSFER_ENCODING;
            } else if (params && token_char[(unsigned char)*p]) {
                p = scan_token(p, end);
            } else {
                return LOOM_HTTP_PERR_TRANSFER_ENCODING;
            }
        }
        if (h->flags & LOOM_HTTP_F_CHUNKED)
            h->flags |= F_CHUNKED_NOT_LAST;
        if (n == 7 && !params && token_ieq(tok, "chunked", 7)) {
            if (h->flags & (LOOM_HTTP_F_CHUNKED | F_CHUNKED_NOT_LAST))
                h->flags |= F_CHUNKED_TWICE;
            h->flags |= LOOM_HTTP_F_CHUNKED;
        } else {
            h->flags &= ~(unsigned)LOOM_HTTP_F_CHUNKED;
            h->flags |= LOOM_HTTP_F_TE_OTHER;
        }
    }
    return 0;
}

/* Connection = #connection-option; only close, keep-alive and upgrade matter.
 * An option counts only when it is a whole list element: "keep-alive upgrade"
 * (no comma) is one malformed element, not an upgrade, as llhttp reads it;
 * seeing an upgrade or a close that the peer's other parsers do not see
 * would split the connection's message boundaries between them. */
static void parse_connection(const char *p, const char *end, hinfo_t *h)
{
    while (p < end) {
        if (*p == ',' || is_ows(*p)) {
            p++;
            continue;
        }
        const char *tok = p;
        while (p < end && *p != ',' && !is_ows(*p))
            p++;
        size_t n = (size_t)(p - tok);
        const char *q = p;
        while (q < end && is_ows(*q))
            q++;
        if (q < end && *q != ',') {
            /* More than one word in this element: skip all of it. */
            while (p < end && *p != ',')
                p++;
            continue;
        }
        if (n == 5 && token_ieq(tok, "close", 5))
            h->flags |= LOOM_HTTP_F_CONN_CLOSE;
        else if (n == 10 && token_ieq(tok, "keep-alive", 10))
            h->flags |= LOOM_HTTP_F_CONN_KEEP_ALIVE;
        else if (n == 7 && token_ieq(tok, "upgrade", 7))
            h->flags |= LOOM_HTTP_F_CONN_UPGRADE;
    }
}

/* Looks at a field whose name might matter for framing. Dispatching on the
 * length first keeps this to one switch for the common headers. */
static int classify(const char *name, size_t nlen, const char *v, size_t vlen, hinfo_t *h)
{
    switch (nlen) {
    case 4:
        if (token_ieq(name, "host", 4)) {
            if (h->flags & LOOM_HTTP_F_HOST)
                return LOOM_HTTP_PERR_HOST_DUP;
            h->flags |= LOOM_HTTP_F_HOST;
            h->host = v;
            h->host_len = vlen;
        }
        return 0;
    case 6:
        if (token_ieq(name, "expect", 6) && vlen == 12 && token_ieq(v, "100-continue", 12))
            h->flags |= LOOM_HTTP_F_EXPECT_CONTINUE;
        return 0;
    case 7:
        if (token_ieq(name, "upgrade", 7))
            h->flags |= LOOM_HTTP_F_UPGRADE;
        return 0;
    case 10:
        if (token_ieq(name, "connection", 10))
            parse_connection(v, v + vlen, h);
        return 0;
    case 14:
        if (token_ieq(name, "content-length", 14)) {
            if (h->flags & LOOM_HTTP_F_CONTENT_LENGTH)
                return LOOM_HTTP_PERR_CONTENT_LENGTH_DUP;
            h->flags |= LOOM_HTTP_F_CONTENT_LENGTH;
            return parse_content_length(v, vlen, &h->content_length);
        }
        return 0;
    case 17:
        if (token_ieq(name, "transfer-encoding", 17))
            return parse_transfer_encoding(v, v + vlen, h);
        return 0;
    default:
        return 0;
    }
}

/* A field the head parser interprets itself (classify()): folding one is
 * refused even where obs-fold is accepted, since a peer or an intermediary
 * that unfolds differently would frame or route the message differently. */
static int field_interpreted(const char *name, size_t n)
{
    switch (n) {
    case 4:
        return token_ieq(name, "host", 4);
    case 6:
        return token_ieq(name, "expect", 6);
    case 7:
        return token_ieq(name, "upgrade", 7);
    case 10:
        return token_ieq(name, "connection", 10);
    case 14:
        return token_ieq(name, "content-length", 14);
    case 17:
        return token_ieq(name, "transfer-encoding", 17);
    default:
        return 0;
    }
}

/* Parses field lines and the final empty line starting at p. The section may
 * be at most max_bytes long. On success stores the fields, sets *nheaders and
 * *out (just past the empty line) and returns 0. With h == NULL (trailers)
 * fields are not classified; with headers == NULL they are only counted.
 * With `fold`, a line that starts with whitespace continues the previous
 * field's value (obs-fold, RFC 9112 section 5.2): the value's slice then
 * spans the CRLFs, and h->flags gets LOOM_HTTP_F_OBS_FOLD. */
static int parse_fields(const char *p, const char *buf_end, uint32_t max_bytes, uint32_t max_count,
                        int simd, int fold, loom_http_header_t *headers, size_t *nheaders,
                        hinfo_t *h, const char **out)
{
    const char *start = p;
    int at_limit = (size_t)(buf_end - p) >= max_bytes;
    const char *end = at_limit ? p + max_bytes : buf_end;
    size_t cap = headers ? *nheaders : SIZE_MAX;
    size_t n = 0;
    (void)start;

    if (cap > max_count)
        cap = max_count;

#define RUN_OUT() return at_limit ? LOOM_HTTP_PERR_HEADERS_TOO_LARGE : LOOM_HTTP_INCOMPLETE
    for (;;) {
        if (UNLIKELY(p == end))
            RUN_OUT();
        if (*p == '\r') {
            if (p + 1 == end)
                RUN_OUT();
            if (p[1] != '\n')
                return LOOM_HTTP_PERR_LINE_ENDING;
            p += 2;
            break;
        }
        if (UNLIKELY(*p == '\n'))
            return LOOM_HTTP_PERR_LINE_ENDING;
        if (UNLIKELY(is_ows(*p)))
            return LOOM_HTTP_PERR_OBS_FOLD;

        const char *name = p;
        p = scan_token(p, end);
        if (UNLIKELY(p == end))
            RUN_OUT();
        if (UNLIKELY(*p != ':' || p == name)) {
            if (p != name && is_ows(*p))
                return LOOM_HTTP_PERR_SPACE_BEFORE_COLON;
            return LOOM_HTTP_PERR_HEADER_NAME;
        }
        size_t name_len = (size_t)(p - name);
        p++;
        while (p < end && is_ows(*p))
            p++;
        const char *value = p;
        int folded = 0;
        for (;;) {
            p = scan_value(p, end, simd);
            if (UNLIKELY(end - p < 2)) {
                if (p < end && *p != '\r')
                    return *p == '\n' ? LOOM_HTTP_PERR_LINE_ENDING : LOOM_HTTP_PERR_HEADER_VALUE;
                RUN_OUT();
            }
            if (UNLIKELY(p[0] != '\r' || p[1] != '\n')) {
                if (*p == '\r' || *p == '\n')
                    return LOOM_HTTP_PERR_LINE_ENDING;
                return LOOM_HTTP_PERR_HEADER_VALUE;
            }
            if (LIKELY(!fold))
                break;
            if (end - p < 3)
                RUN_OUT(); /* the next line's first byte decides */
            if (!is_ows(p[2]))
                break;
            folded = 1; /* CRLF WSP: the value goes on */
            p += 3;
        }
        const char *vend = p;
        if (UNLIKELY(folded)) {
            /* Folds at either end are whitespace of the value: trimmed. */
            while (vend > value && (is_ows(vend[-1]) || vend[-1] == '\r' || vend[-1] == '\n'))
                vend--;
            while (value < vend && (is_ows(*value) || *value == '\r' || *value == '\n'))
                value++;
            if (h) {
                if (field_interpreted(name, name_len))
                    return LOOM_HTTP_PERR_OBS_FOLD;
                h->flags |= LOOM_HTTP_F_OBS_FOLD;
            }
        } else {
            while (vend > value && is_ows(vend[-1]))
                vend--;
        }
        p += 2;

        if (UNLIKELY(n >= cap))
            return LOOM_HTTP_PERR_TOO_MANY_HEADERS;
        if (headers) {
            headers[n].name = name;
            headers[n].name_len = name_len;
            headers[n].value = value;
            headers[n].value_len = (size_t)(vend - value);
        }
        n++;
        if (h) {
            int r = classify(name, name_len, value, (size_t)(vend - value), h);
            if (UNLIKELY(r != 0))
                return r;
        }
    }
#undef RUN_OUT
    *nheaders = n;
    *out = p;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Start lines                                                               */

static loom_http_method_t method_lookup(const char *m, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(m, "GET", 3) == 0)
            return LOOM_HTTP_METHOD_GET;
        if (memcmp(m, "PUT", 3) == 0)
            return LOOM_HTTP_METHOD_PUT;
        break;
    case 4:
        if (memcmp(m, "POST", 4) == 0)
            return LOOM_HTTP_METHOD_POST;
        if (memcmp(m, "HEAD", 4) == 0)
            return LOOM_HTTP_METHOD_HEAD;
        break;
    case 5:
        if (memcmp(m, "PATCH", 5) == 0)
            return LOOM_HTTP_METHOD_PATCH;
        if (memcmp(m, "TRACE", 5) == 0)
            return LOOM_HTTP_METHOD_TRACE;
        break;
    case 6:
        if (memcmp(m, "DELETE", 6) == 0)
            return LOOM_HTTP_METHOD_DELETE;
        break;
    case 7:
        if (memcmp(m, "OPTIONS", 7) == 0)
            return LOOM_HTTP_METHOD_OPTIONS;
        if (memcmp(m, "CONNECT", 7) == 0)
            return LOOM_HTTP_METHOD_CONNECT;
        break;
    default:
        break;
    }
    return LOOM_HTTP_METHOD_OTHER;
}

/* Skips empty lines (CRLF) before a start line. */
static int skip_empty_lines(const char **pp, const char *end)
{
    const char *p = *pp;
    while (p < end && *p == '\r') {
        if (p + 1 == end)
            return LOOM_HTTP_INCOMPLETE;
        if (p[1] != '\n')
            return LOOM_HTTP_PERR_LINE_ENDING;
        p += 2;
    }
    *pp = p;
    return 0;
}

/* Parses "HTTP/" DIGIT "." DIGIT at *pp. Returns 0, a code, or
 * LOOM_HTTP_INCOMPLETE when the buffer ends inside it. */
static int parse_version(const char **pp, const char *end, int *major, int *minor)
{
    static const char prefix[5] = {'H', 'T', 'T', 'P', '/'};
    const char *p = *pp;
    if (LIKELY(end - p >= 8)) {
        if (memcmp(p, prefix, 5) != 0 || !is_digit(p[5]) || p[6] != '.' || !is_digit(p[7]))
            goto slow;
        *major = p[5] - '0';
        *minor = p[7] - '0';
        *pp = p + 8;
        return 0;
    }
slow:
    for (int i = 0; i < 8; i++, p++) {
        if (p == end)
            return LOOM_HTTP_INCOMPLETE;
        int ok = i < 5 ? *p == prefix[i] : i == 6 ? *p == '.' : is_digit(*p);
        if (!ok)
            return LOOM_HTTP_PERR_VERSION;
    }
    return LOOM_HTTP_INCOMPLETE; /* unreachable: the fast path took 8 bytes */
}

/* Expects CRLF at *pp. */
static int expect_crlf(const char **pp, const char *end, int other_err)
{
    const char *p = *pp;
    if (p == end)
        return LOOM_HTTP_INCOMPLETE;
    if (*p != '\r')
        return *p == '\n' ? LOOM_HTTP_PERR_LINE_ENDING : other_err;
    if (p + 1 == end)
        return LOOM_HTTP_INCOMPLETE;
    if (p[1] != '\n')
        return LOOM_HTTP_PERR_LINE_ENDING;
    *pp = p + 2;
    return 0;
}

/* Quick test for a possibly complete head in buf[0..len) when the caller has
 * already seen buf[0..last_len): an LF that ends an empty line (or any "\n\n",
 * which the full parse will reject) at or after last_len. */
static int head_may_be_complete(const char *buf, size_t len, size_t last_len, uint32_t max_line)
{
    size_t s = last_len >= 3 ? last_len - 3 : 0;
    const char *end = buf + len;
    /* Crossing the start-line limit without an LF is an error to report now. */
    if (last_len < max_line && len >= max_line && memchr(buf, '\n', max_line) == NULL)
        return 1;
    for (const char *q = buf + s; q < end; q++) {
        q = memchr(q, '\n', (size_t)(end - q));
        if (q == NULL)
            return 0;
        if (q > buf && (q[-1] == '\n' || (q - 1 > buf && q[-1] == '\r' && q[-2] == '\n')))
            return 1;
    }
    return 0;
}

/* The start shared by both head parsers: loads the limits, answers
 * LOOM_HTTP_INCOMPLETE at once when the new bytes cannot complete the head
 * (see head_may_be_complete()), bounds the start line by its limit
 * (*end, *line_at_limit) and skips the empty lines before it (*p). Returns 0,
 * LOOM_HTTP_INCOMPLETE, or a LOOM_HTTP_PERR_* code. */
static inline int head_start(const char *buf, size_t len, size_t last_len,
                             const loom_http_limits_t *limits, limits_t *lim, const char **p,
                             const char **end, int *line_at_limit)
{
    limits_load(lim, limits);
    if (last_len != 0 && last_len < len &&
        (size_t)(len) < (size_t)lim->max_line + lim->max_header_bytes &&
        !head_may_be_complete(buf, len, last_len, lim->max_line))
        return LOOM_HTTP_INCOMPLETE;
    *p = buf;
    *line_at_limit = len >= lim->max_line;
    *end = *line_at_limit ? buf + lim->max_line : buf + len;
    int r = skip_empty_lines(p, *end);
    if (UNLIKELY(r == LOOM_HTTP_INCOMPLETE && *line_at_limit))
        return LOOM_HTTP_PERR_LINE_TOO_LONG;
    return r;
}

int loom_http_parse_request(const char *buf, size_t len, size_t last_len, loom_http_request_t *req,
                            loom_http_header_t *headers, size_t *nheaders,
                            const loom_http_limits_t *limits)
{
    limits_t lim;
    const char *p, *end;
    int line_at_limit;
    int r = head_start(buf, len, last_len, limits, &lim, &p, &end, &line_at_limit);
    if (r != 0)
        return r;
    const char *buf_end = buf + len;
    int major, minor;
#define LINE_RUN_OUT() return line_at_limit ? LOOM_HTTP_PERR_LINE_TOO_LONG : LOOM_HTTP_INCOMPLETE
    /* method SP */
    const char *method = p;
    p = scan_token(p, end);
    if (UNLIKELY(p == end))
        LINE_RUN_OUT();
    if (UNLIKELY(*p != ' ' || p == method))
        return (p == method && *p == '\n') ? LOOM_HTTP_PERR_LINE_ENDING : LOOM_HTTP_PERR_METHOD;
    req->method_str = method;
    req->method_len = (size_t)(p - method);
    req->method = method_lookup(method, req->method_len);
    /* "PRI" is reserved for the HTTP/2 connection preface (RFC 9113
     * section 3.4) and is never a valid HTTP/1.1 request. */
    if (UNLIKELY(req->method == LOOM_HTTP_METHOD_OTHER && req->method_len == 3 &&
                 memcmp(method, "PRI", 3) == 0))
        return LOOM_HTTP_PERR_METHOD;
    p++;
    /* request-target SP */
    const char *target = p;
    p = scan_target(p, end, lim.simd);
    if (UNLIKELY(p == end))
        LINE_RUN_OUT();
    if (UNLIKELY(p == target))
        return LOOM_HTTP_PERR_TARGET;
    if (UNLIKELY(*p != ' '))
        return (*p == '\r' || *p == '\n') ? LOOM_HTTP_PERR_VERSION : LOOM_HTTP_PERR_TARGET;
    req->target = target;
    req->target_len = (size_t)(p - target);
    p++;
    /* HTTP-version CRLF */
    r = parse_version(&p, end, &major, &minor);
    if (r == 0 && UNLIKELY(major != 1))
        return LOOM_HTTP_PERR_VERSION_UNSUPPORTED;
    if (r == 0)
        r = expect_crlf(&p, end, LOOM_HTTP_PERR_VERSION);
    if (UNLIKELY(r != 0)) {
        if (r == LOOM_HTTP_INCOMPLETE)
            LINE_RUN_OUT();
        return r;
    }
#undef LINE_RUN_OUT
    req->minor_version = minor;

    hinfo_t h = {0, 0, NULL, 0};
    const char *head_end;
    r = parse_fields(p, buf_end, lim.max_header_bytes, lim.max_headers, lim.simd, 0, headers,
                     nheaders, &h, &head_end);
    if (r != 0)
        return r;

    /* Framing rules that need the whole section (RFC 9112 sections 6.1-6.3). */
    if (h.flags & LOOM_HTTP_F_TE) {
        if (h.flags & LOOM_HTTP_F_CONTENT_LENGTH)
            return LOOM_HTTP_PERR_CL_WITH_TE;
        if (minor == 0)
            return LOOM_HTTP_PERR_TRANSFER_ENCODING;
        if (!(h.flags & LOOM_HTTP_F_CHUNKED) || (h.flags & (F_CHUNKED_NOT_LAST | F_CHUNKED_TWICE)))
            return LOOM_HTTP_PERR_TRANSFER_ENCODING;
        if (h.flags & LOOM_HTTP_F_TE_OTHER)
            return LOOM_HTTP_PERR_TE_UNSUPPORTED;
    }
    if (minor >= 1 && !(h.flags & LOOM_HTTP_F_HOST) && !lim.allow_no_host)
        return LOOM_HTTP_PERR_HOST_MISSING;

    req->flags = h.flags & 0xffffu;
    req->content_length = h.content_length;
    req->host = h.host;
    req->host_len = h.host_len;
    return (int)(head_end - buf);
}

int loom_http_parse_response(const char *buf, size_t len, size_t last_len,
                             loom_http_response_t *res, loom_http_header_t *headers,
                             size_t *nheaders, const loom_http_limits_t *limits)
{
    limits_t lim;
    const char *p, *end;
    int line_at_limit;
    int r = head_start(buf, len, last_len, limits, &lim, &p, &end, &line_at_limit);
    if (r != 0)
        return r;
    const char *buf_end = buf + len;
    int major, minor;
#define LINE_RUN_OUT() return line_at_limit ? LOOM_HTTP_PERR_LINE_TOO_LONG : LOOM_HTTP_INCOMPLETE
    r = parse_version(&p, end, &major, &minor);
    if (UNLIKELY(r != 0)) {
        if (r == LOOM_HTTP_INCOMPLETE)
            LINE_RUN_OUT();
        return r;
    }
    if (UNLIKELY(major != 1))
        return LOOM_HTTP_PERR_VERSION_UNSUPPORTED;
    /* SP 3DIGIT */
    if (UNLIKELY(end - p < 4)) {
        for (int i = 0; p + i < end; i++)
            if (i == 0 ? p[i] != ' ' : (!is_digit(p[i]) || (i == 1 && p[i] == '0')))
                return i == 0 && p[0] != '\r' && p[0] != '\n' ? LOOM_HTTP_PERR_VERSION
                                                              : LOOM_HTTP_PERR_STATUS;
        LINE_RUN_OUT();
    }
    if (UNLIKELY(p[0] != ' '))
        return (p[0] == '\r' || p[0] == '\n') ? LOOM_HTTP_PERR_STATUS : LOOM_HTTP_PERR_VERSION;
    if (UNLIKELY(!is_digit(p[1]) || p[1] == '0' || !is_digit(p[2]) || !is_digit(p[3])))
        return LOOM_HTTP_PERR_STATUS;
    res->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
    p += 4;
    /* [SP reason-phrase] CRLF */
    res->reason = p;
    res->reason_len = 0;
    if (p < end && *p == ' ') {
        p++;
        res->reason = p;
        p = scan_value(p, end, lim.simd);
        res->reason_len = (size_t)(p - res->reason);
    }
    r = expect_crlf(&p, end, LOOM_HTTP_PERR_STATUS);
    if (UNLIKELY(r != 0)) {
        if (r == LOOM_HTTP_INCOMPLETE)
            LINE_RUN_OUT();
        return r;
    }
#undef LINE_RUN_OUT
    res->minor_version = minor;

    hinfo_t h = {0, 0, NULL, 0};
    const char *head_end;
    r = parse_fields(p, buf_end, lim.max_header_bytes, lim.max_headers, lim.simd, lim.obs_fold,
                     headers, nheaders, &h, &head_end);
    if (r != 0)
        return r;
    if ((h.flags & LOOM_HTTP_F_TE) && (h.flags & LOOM_HTTP_F_CONTENT_LENGTH))
        return LOOM_HTTP_PERR_CL_WITH_TE;

    res->flags = h.flags & 0xffffu & ~(unsigned)LOOM_HTTP_F_HOST;
    res->content_length = h.content_length;
    return (int)(head_end - buf);
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                   */

static int keep_alive_from(unsigned flags, int minor)
{
    if (flags & LOOM_HTTP_F_CONN_CLOSE)
        return 0;
    if (minor >= 1)
        return 1;
    return (flags & LOOM_HTTP_F_CONN_KEEP_ALIVE) != 0;
}

void loom_http_request_framing(const loom_http_request_t *req, loom_http_framing_t *out)
{
    memset(out, 0, sizeof *out);
    out->keep_alive = keep_alive_from(req->flags, req->minor_version);
    if (req->method == LOOM_HTTP_METHOD_CONNECT) {
        /* CONNECT has no content; what follows is tunnel data. */
        out->tunnel = 1;
        return;
    }
    out->upgrade = (req->flags & LOOM_HTTP_F_CONN_UPGRADE) && (req->flags & LOOM_HTTP_F_UPGRADE);
    if (req->flags & LOOM_HTTP_F_CHUNKED) {
        out->kind = LOOM_HTTP_BODY_CHUNKED;
    } else if ((req->flags & LOOM_HTTP_F_CONTENT_LENGTH) && req->content_length > 0) {
        out->kind = LOOM_HTTP_BODY_LENGTH;
        out->length = req->content_length;
    }
}

void loom_http_response_framing(const loom_http_response_t *res, loom_http_method_t req_method,
                                loom_http_framing_t *out)
{
    int s = res->status;
    memset(out, 0, sizeof *out);
    out->keep_alive = keep_alive_from(res->flags, res->minor_version);
    if (s == 101) {
        out->upgrade = 1;
        out->keep_alive = 0;
        return;
    }
    if (s < 200) {
        /* The final response follows on the same connection. */
        out->informational = 1;
        return;
    }
    if (req_method == LOOM_HTTP_METHOD_CONNECT && s < 300) {
        out->tunnel = 1;
        out->keep_alive = 0;
        return;
    }
    if (req_method == LOOM_HTTP_METHOD_HEAD || s == 204 || s == 304)
        return;
    if (res->flags & LOOM_HTTP_F_TE) {
        /* An HTTP/1.0 message with Transfer-Encoding has faulty framing:
         * decode it, but do not reuse the connection (RFC 9112 section 6.1). */
        if (res->minor_version == 0)
            out->keep_alive = 0;
        if (res->flags & LOOM_HTTP_F_CHUNKED) {
            out->kind = LOOM_HTTP_BODY_CHUNKED;
            return;
        }
    } else if (res->flags & LOOM_HTTP_F_CONTENT_LENGTH) {
        if (res->content_length > 0) {
            out->kind = LOOM_HTTP_BODY_LENGTH;
            out->length = res->content_length;
        }
        return;
    }
    out->kind = LOOM_HTTP_BODY_UNTIL_CLOSE;
    out->keep_alive = 0;
}

/* ------------------------------------------------------------------------ */
/* Body decoder                                                              */

enum { B_DONE, B_LENGTH, B_UNTIL_CLOSE, B_CHUNK_LINE, B_CHUNK_DATA, B_CHUNK_DATA_END, B_TRAILERS };

int loom_http_body_init(loom_http_body_t *b, const loom_http_framing_t *framing,
                        const loom_http_limits_t *limits)
{
    limits_t lim;
    limits_load(&lim, limits);
    memset(b, 0, sizeof *b);
    b->max_body = lim.max_body;
    b->max_ext = lim.max_ext;
    b->max_header_bytes = lim.max_header_bytes;
    b->max_headers = lim.max_headers;
    b->kind = (uint8_t)framing->kind;
    switch (framing->kind) {
    case LOOM_HTTP_BODY_LENGTH:
        if (framing->length > lim.max_body)
            return LOOM_HTTP_PERR_BODY_TOO_LARGE;
        b->remaining = framing->length;
        b->state = framing->length ? B_LENGTH : B_DONE;
        return 0;
    case LOOM_HTTP_BODY_CHUNKED:
        b->state = B_CHUNK_LINE;
        return 0;
    case LOOM_HTTP_BODY_UNTIL_CLOSE:
        b->state = B_UNTIL_CLOSE;
        return 0;
    default:
        b->state = B_DONE;
        return 0;
    }
}

static int hex_val(char c)
{
    if (is_digit(c))
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Parses chunk extensions: *( BWS ";" BWS name [ BWS "=" BWS value ] ).
 * Returns 0 with *pp at the byte after them (which must be CR), a code, or
 * LOOM_HTTP_INCOMPLETE. */
static int parse_chunk_ext(const char **pp, const char *end)
{
    const char *p = *pp;
#define NEED()                                                                                     \
    do {                                                                                           \
        if (p == end)                                                                              \
            return LOOM_HTTP_INCOMPLETE;                                                           \
    } while (0)
    for (;;) {
        const char *ws = p;
        while (p < end && is_ows(*p))
            p++;
        NEED();
        if (*p != ';') {
            /* The line must end here; whitespace alone is not a chunk-ext. */
            if (*p != '\r' || p != ws)
                return LOOM_HTTP_PERR_CHUNK_EXT;
            *pp = p;
            return 0;
        }
        p++;
        while (p < end && is_ows(*p))
            p++;
        const char *name = p;
        p = scan_token(p, end);
        NEED();
        if (p == name)
            return LOOM_HTTP_PERR_CHUNK_EXT;
        while (p < end && is_ows(*p))
            p++;
        NEED();
        if (*p != '=')
            continue;
        p++;
        while (p < end && is_ows(*p))
            p++;
        NEED();
        if (*p == '"') {
            const char *q = p + 1;
            for (;;) {
                if (q >= end)
                    return LOOM_HTTP_INCOMPLETE;
                unsigned char c = (unsigned char)*q;
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (q + 1 >= end)
                        return LOOM_HTTP_INCOMPLETE;
                    if (!is_value_char((unsigned char)q[1]))
                        return LOOM_HTTP_PERR_CHUNK_EXT;
                    q += 2;
                    continue;
                }
                if (!is_value_char(c))
                    return LOOM_HTTP_PERR_CHUNK_EXT;
                q++;
            }
            p = q + 1;
        } else {
            const char *v = p;
            p = scan_token(p, end);
            NEED();
            if (p == v)
                return LOOM_HTTP_PERR_CHUNK_EXT;
        }
    }
#undef NEED
}

/* Parses one chunk line "hex [ext] CRLF" at p. Returns the line length (> 0),
 * 0 if incomplete, or a code. */
static int parse_chunk_line(loom_http_body_t *b, const char *p, const char *end,
                            loom_http_body_out_t *out)
{
    const char *start = p;
    uint64_t size = 0;
    int digits = 0, d;
    while (p < end && (d = hex_val(*p)) >= 0) {
        /* More than 16 hex digits cannot be a sane size (leading zeros included). */
        if (++digits > 16)
            return LOOM_HTTP_PERR_CHUNK_SIZE;
        size = size * 16 + (uint64_t)d;
        p++;
    }
    if (p == end)
        return 0;
    if (digits == 0)
        return *p == '\n' ? LOOM_HTTP_PERR_LINE_ENDING : LOOM_HTTP_PERR_CHUNK_SIZE;
    const char *ext = p;
    if (*p == ';' || is_ows(*p)) {
        /* Bound the scan so a long extension fails at max_ext + 1 bytes. */
        const char *lim = (size_t)(end - p) > b->max_ext ? p + b->max_ext + 1 : end;
        int r = parse_chunk_ext(&p, lim);
        if (r == LOOM_HTTP_INCOMPLETE)
            return lim != end ? LOOM_HTTP_PERR_CHUNK_EXT_TOO_LONG : 0;
        if (r != 0)
            return r;
        if ((size_t)(p - ext) > b->max_ext)
            return LOOM_HTTP_PERR_CHUNK_EXT_TOO_LONG;
    }
    if (*p != '\r')
        return *p == '\n' ? LOOM_HTTP_PERR_LINE_ENDING : LOOM_HTTP_PERR_CHUNK_SIZE;
    if (p + 1 == end)
        return 0;
    if (p[1] != '\n')
        return LOOM_HTTP_PERR_LINE_ENDING;
    if (p > ext) {
        out->ext = ext;
        out->ext_len = (size_t)(p - ext);
    }
    /* Framing overhead: this line and the CRLF after its data, less the
     * allowance of OVERHEAD_FREE bytes per chunk plus one per data byte. */
    uint64_t cost = (uint64_t)(p + 2 - start) + (size ? 2 : 0);
    uint64_t credit = OVERHEAD_FREE + (size < LIMIT_CAP ? size : LIMIT_CAP);
    uint64_t excess = (uint64_t)b->excess + cost;
    excess = excess > credit ? excess - credit : 0;
    uint64_t bound = (uint64_t)b->max_ext * OVERHEAD_FACTOR;
    if (excess > (bound < UINT32_MAX ? bound : UINT32_MAX))
        return LOOM_HTTP_PERR_CHUNK_OVERHEAD;
    b->excess = (uint32_t)excess;
    if (size == 0) {
        b->state = B_TRAILERS;
    } else {
        if (size > b->max_body - b->total)
            return LOOM_HTTP_PERR_BODY_TOO_LARGE;
        b->total += size;
        b->remaining = size;
        b->state = B_CHUNK_DATA;
    }
    return (int)(p + 2 - start);
}

int loom_http_body_parse(loom_http_body_t *b, const char *buf, size_t len,
                         loom_http_body_out_t *out)
{
    size_t tcap = out->trailers ? out->ntrailers : 0;
    loom_http_header_t *trailers = out->trailers;
    if (len > INT_MAX)
        len = INT_MAX;
    const char *p = buf, *end = buf + len;
    int r;

    out->data = NULL;
    out->data_len = 0;
    out->ext = NULL;
    out->ext_len = 0;
    out->ntrailers = 0;
    out->done = 0;

    switch (b->state) {
    case B_DONE:
        out->done = 1;
        return 0;
    case B_LENGTH: {
        size_t n = b->remaining < len ? (size_t)b->remaining : len;
        out->data = p;
        out->data_len = n;
        b->remaining -= n;
        b->total += n;
        if (b->remaining == 0) {
            b->state = B_DONE;
            out->done = 1;
        }
        return (int)n;
    }
    case B_UNTIL_CLOSE: {
        /* Deliver up to the limit, and fail only on a byte beyond it, so the
         * outcome does not depend on how the input was split into reads. */
        uint64_t room = b->max_body - b->total;
        size_t n = room < len ? (size_t)room : len;
        if (n == 0 && len > 0)
            return LOOM_HTTP_PERR_BODY_TOO_LARGE;
        b->total += n;
        out->data = p;
        out->data_len = n;
        return (int)n;
    }
    case B_CHUNK_DATA_END:
        if (len < 2) {
            if (len == 1 && *p != '\r')
                return LOOM_HTTP_PERR_CHUNK_DATA_END;
            return 0;
        }
        if (p[0] != '\r' || p[1] != '\n')
            return LOOM_HTTP_PERR_CHUNK_DATA_END;
        p += 2;
        b->state = B_CHUNK_LINE;
        /* fall through */
    case B_CHUNK_LINE:
        r = parse_chunk_line(b, p, end, out);
        if (r <= 0)
            return r < 0 ? r : (int)(p - buf);
        p += r;
        if (b->state == B_TRAILERS)
            goto trailers;
        /* fall through */
    case B_CHUNK_DATA: {
        size_t avail = (size_t)(end - p);
        size_t n = b->remaining < avail ? (size_t)b->remaining : avail;
        out->data = p;
        out->data_len = n;
        p += n;
        b->remaining -= n;
        if (b->remaining == 0) {
            b->state = B_CHUNK_DATA_END;
            /* Take the CRLF now if it is here; any problem with it is reported
             * by the next call, so the data above is never lost. */
            if (end - p >= 2 && p[0] == '\r' && p[1] == '\n') {
                p += 2;
                b->state = B_CHUNK_LINE;
            }
        }
        return (int)(p - buf);
    }
    case B_TRAILERS:
    trailers : {
        const char *after;
        size_t n = tcap;
        r = parse_fields(p, end, b->max_header_bytes, b->max_headers, 0, 0, trailers, &n, NULL,
                         &after);
        /* An error right after the last-chunk line is reported by the next
         * call, so the line's extensions are not lost. */
        if (r == LOOM_HTTP_INCOMPLETE || (r != 0 && p != buf))
            return (int)(p - buf);
        if (r != 0)
            return r;
        out->ntrailers = trailers ? n : 0;
        b->state = B_DONE;
        out->done = 1;
        return (int)(after - buf);
    }
    default:
        return LOOM_HTTP_PERR_STATE;
    }
}

int loom_http_body_finish(loom_http_body_t *b)
{
    if (b->state == B_UNTIL_CLOSE)
        b->state = B_DONE;
    return b->state == B_DONE ? 0 : LOOM_HTTP_PERR_UNEXPECTED_EOF;
}

int loom_http_body_done(const loom_http_body_t *b)
{
    return b->state == B_DONE;
}

int loom_http_chunk_ext_next(const char *ext, size_t ext_len, size_t *pos, loom_http_header_t *out)
{
    if (ext == NULL || *pos >= ext_len)
        return 0;
    const char *p = ext + *pos, *end = ext + ext_len;
    while (p < end && is_ows(*p))
        p++;
    if (p >= end || *p != ';')
        return 0;
    p++;
    while (p < end && is_ows(*p))
        p++;
    out->name = p;
    p = scan_token(p, end);
    out->name_len = (size_t)(p - out->name);
    out->value = p;
    out->value_len = 0;
    const char *q = p;
    while (q < end && is_ows(*q))
        q++;
    if (q < end && *q == '=') {
        q++;
        while (q < end && is_ows(*q))
            q++;
        const char *v = q;
        if (q < end && *q == '"') {
            if (skip_quoted(&q, end) < 0)
                q = end;
        } else {
            q = scan_token(q, end);
        }
        out->value = v;
        out->value_len = (size_t)(q - v);
        p = q;
    }
    *pos = (size_t)(p - ext);
    return 1;
}
