/* tests/http/test_http_parser.c - the HTTP/1.1 parser, framing and body decoder.
 *
 * LOOM_TEST_NO_BACKEND: this test uses no event loop, so it runs once.
 *
 * Every input handed to the parser is first copied so that it ends right
 * before a PROT_NONE page: a read past the end of the input crashes the test.
 * Every head case runs with the SIMD scanner and with LOOM_HTTP_LIMIT_SCALAR,
 * one-shot, at every split point (the prefix must give LOOM_HTTP_INCOMPLETE
 * or the one-shot result), and fed byte by byte with the last_len hint.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loom/http_parser.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Guard pages                                                               */

#define GUARD_SLOTS 2

static struct {
    char *map;
    size_t len;
} guard_slot[GUARD_SLOTS];

/* Copies s[0..n) into slot `slot` so that its last byte is the last byte
 * before an inaccessible page. The previous copy in that slot is unmapped. */
static const char *guard(int slot, const void *s, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + pg - 1) / pg + 1;
    if (guard_slot[slot].map)
        munmap(guard_slot[slot].map, guard_slot[slot].len);
    char *map =
        mmap(NULL, (pages + 1) * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    CHECK(mprotect(map + pages * pg, pg, PROT_NONE) == 0);
    guard_slot[slot].map = map;
    guard_slot[slot].len = (pages + 1) * pg;
    char *dst = map + pages * pg - n;
    if (n)
        memcpy(dst, s, n);
    return dst;
}

static void guard_free_all(void)
{
    for (int i = 0; i < GUARD_SLOTS; i++)
        if (guard_slot[i].map) {
            munmap(guard_slot[i].map, guard_slot[i].len);
            guard_slot[i].map = NULL;
        }
}

/* ------------------------------------------------------------------------ */
/* Snapshots: results as offsets, so results over different copies compare   */

#define MAXH 32

typedef struct {
    int r;
    int method, minor, status;
    size_t m_off, m_len, t_off, t_len, reason_off, reason_len;
    unsigned flags;
    uint64_t cl;
    size_t nh;
    size_t h[MAXH][4];
} snap_t;

static int is_request_mode;
static unsigned mode_flags; /* LOOM_HTTP_LIMIT_SCALAR or 0 */
static const char *case_name = "";

static snap_t parse_at(const char *buf, size_t len, size_t last_len, const loom_http_limits_t *l)
{
    snap_t s;
    memset(&s, 0, sizeof s);
    loom_http_header_t h[MAXH];
    size_t nh = MAXH;
    loom_http_limits_t lim = l ? *l : (loom_http_limits_t){0};
    lim.flags |= mode_flags;
    if (is_request_mode) {
        loom_http_request_t req;
        s.r = loom_http_parse_request(buf, len, last_len, &req, h, &nh, &lim);
        if (s.r > 0) {
            s.method = req.method;
            s.minor = req.minor_version;
            s.m_off = (size_t)(req.method_str - buf);
            s.m_len = req.method_len;
            s.t_off = (size_t)(req.target - buf);
            s.t_len = req.target_len;
            s.flags = req.flags;
            s.cl = req.content_length;
        }
    } else {
        loom_http_response_t res;
        s.r = loom_http_parse_response(buf, len, last_len, &res, h, &nh, &lim);
        if (s.r > 0) {
            s.status = res.status;
            s.minor = res.minor_version;
            s.reason_off = (size_t)(res.reason - buf);
            s.reason_len = res.reason_len;
            s.flags = res.flags;
            s.cl = res.content_length;
        }
    }
    if (s.r > 0) {
        s.nh = nh;
        for (size_t i = 0; i < nh; i++) {
            s.h[i][0] = (size_t)(h[i].name - buf);
            s.h[i][1] = h[i].name_len;
            s.h[i][2] = (size_t)(h[i].value - buf);
            s.h[i][3] = h[i].value_len;
        }
    }
    return s;
}

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL [%s, %s, %s]: ", case_name, is_request_mode ? "request" : "response",
            mode_flags ? "scalar" : "simd");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

/* Parses `in` one-shot, at every split point and byte by byte with last_len;
 * checks the result is `want` (> 0: a complete head of that many bytes, which
 * is -1 for "the whole input") and returns the one-shot snapshot. */
static snap_t check_head(const char *in, size_t n, int want, const loom_http_limits_t *l)
{
    const char *g = guard(0, in, n);
    snap_t full = parse_at(g, n, 0, l);
    if (want == -1)
        want = (int)n;
    if (full.r != want)
        fail("one-shot gives %d (%s), want %d (%s)", full.r, loom_http_perr_str(full.r), want,
             loom_http_perr_str(want));
    for (size_t k = 0; k < n; k++) {
        const char *p = guard(1, in, k);
        snap_t s = parse_at(p, k, 0, l);
        if (s.r == LOOM_HTTP_INCOMPLETE)
            continue;
        if (memcmp(&s, &full, sizeof s) != 0)
            fail("prefix of %zu bytes gives %d (%s), one-shot %d", k, s.r, loom_http_perr_str(s.r),
                 full.r);
    }
    /* Byte by byte with the hint: complete heads must come out the same. */
    size_t last = 0;
    snap_t s = {0};
    for (size_t k = 1; k <= n; k++) {
        const char *p = guard(1, in, k);
        s = parse_at(p, k, last, l);
        last = k;
        if (s.r != LOOM_HTTP_INCOMPLETE)
            break;
    }
    if (n && !(full.r < 0 && s.r == LOOM_HTTP_INCOMPLETE) && memcmp(&s, &full, sizeof s) != 0)
        fail("fed byte by byte with last_len gives %d (%s), one-shot %d", s.r,
             loom_http_perr_str(s.r), full.r);
    return full;
}

#define REQ(name, str, want)                                                                       \
    do {                                                                                           \
        case_name = name;                                                                          \
        check_head(str, sizeof str - 1, want, NULL);                                               \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Head parsing                                                              */

static const char get5[] = "GET /index.html?q=1 HTTP/1.1\r\n"
                           "Host: example.com\r\n"
                           "User-Agent: loom-test/1.0\r\n"
                           "Accept: */*\r\n"
                           "Accept-Encoding: gzip, deflate\r\n"
                           "Connection: keep-alive\r\n"
                           "\r\n";

static void test_request_basic(void)
{
    is_request_mode = 1;
    case_name = "5-header GET";
    snap_t s = check_head(get5, sizeof get5 - 1, -1, NULL);
    const char *b = get5;
    CHECK_EQ(s.method, LOOM_HTTP_METHOD_GET);
    CHECK(s.m_len == 3 && memcmp(b + s.m_off, "GET", 3) == 0);
    CHECK(s.t_len == 15 && memcmp(b + s.t_off, "/index.html?q=1", 15) == 0);
    CHECK_EQ(s.minor, 1);
    CHECK_EQ(s.nh, 5);
    CHECK(s.h[3][1] == 15 && memcmp(b + s.h[3][0], "Accept-Encoding", 15) == 0);
    CHECK(s.h[3][3] == 13 && memcmp(b + s.h[3][2], "gzip, deflate", 13) == 0);
    CHECK(s.flags & LOOM_HTTP_F_HOST);
    CHECK(s.flags & LOOM_HTTP_F_CONN_KEEP_ALIVE);

    /* Values lose surrounding whitespace but keep inner whitespace; empty values are fine. */
    static const char ws[] = "GET / HTTP/1.1\r\nHost: a\r\nX: \t a  b \t\r\nY:\r\nZ: \r\n\r\n";
    case_name = "value whitespace";
    s = check_head(ws, sizeof ws - 1, -1, NULL);
    CHECK_EQ(s.nh, 4);
    CHECK(s.h[1][3] == 4 && memcmp(ws + s.h[1][2], "a  b", 4) == 0);
    CHECK_EQ(s.h[2][3], 0);
    CHECK_EQ(s.h[3][3], 0);

    /* Methods: the enum for the known ones, OTHER with the token for the rest. */
    static const struct {
        const char *m;
        int e;
    } methods[] = {{"GET", LOOM_HTTP_METHOD_GET},         {"HEAD", LOOM_HTTP_METHOD_HEAD},
                   {"POST", LOOM_HTTP_METHOD_POST},       {"PUT", LOOM_HTTP_METHOD_PUT},
                   {"DELETE", LOOM_HTTP_METHOD_DELETE},   {"CONNECT", LOOM_HTTP_METHOD_CONNECT},
                   {"OPTIONS", LOOM_HTTP_METHOD_OPTIONS}, {"TRACE", LOOM_HTTP_METHOD_TRACE},
                   {"PATCH", LOOM_HTTP_METHOD_PATCH},     {"get", LOOM_HTTP_METHOD_OTHER},
                   {"PROPFIND", LOOM_HTTP_METHOD_OTHER},  {"M-SEARCH", LOOM_HTTP_METHOD_OTHER}};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        char buf[128];
        int n = snprintf(buf, sizeof buf, "%s * HTTP/1.1\r\nHost: h\r\n\r\n", methods[i].m);
        case_name = methods[i].m;
        s = check_head(buf, (size_t)n, n, NULL);
        CHECK_EQ(s.method, methods[i].e);
        CHECK_EQ(s.m_len, strlen(methods[i].m));
        if (methods[i].e)
            CHECK(strcmp(loom_http_method_str((loom_http_method_t)methods[i].e), methods[i].m) ==
                  0);
    }

    /* Empty lines before the request line are skipped and counted. */
    REQ("leading CRLF", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -1);
    REQ("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", -1);
    REQ("HTTP/1.2 is 1.x", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", -1);
    REQ("obs-text in value", "GET / HTTP/1.1\r\nHost: a\r\nX: D\xc3\xbc\xff\r\n\r\n", -1);
    REQ("long target (SIMD blocks)",
        "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaa?b=%20&c=|{}\"~ HTTP/1.1\r\nHost: a\r\nX: "
        "0123456789abcdef0123456789abcdef\t0123456789"
        "abcdef0123456789abcdef0123456789abcdef\r\n\r\n",
        -1);
}

static void test_request_strict(void)
{
    is_request_mode = 1;
    REQ("bare LF ends request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare LF ends field", "GET / HTTP/1.1\r\nHost: a\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare LF ends head", "GET / HTTP/1.1\r\nHost: a\r\n\n", LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare CR in value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n",
        LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare CR ends head", "GET / HTTP/1.1\r\nHost: a\r\n\rX", LOOM_HTTP_PERR_LINE_ENDING);
    REQ("bare LF before request", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        LOOM_HTTP_PERR_LINE_ENDING);
    REQ("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", LOOM_HTTP_PERR_OBS_FOLD);
    REQ("space after start line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", LOOM_HTTP_PERR_OBS_FOLD);
    REQ("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        LOOM_HTTP_PERR_SPACE_BEFORE_COLON);
    REQ("tab before colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n",
        LOOM_HTTP_PERR_SPACE_BEFORE_COLON);
    REQ("empty name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", LOOM_HTTP_PERR_HEADER_NAME);
    REQ("@ in name", "GET / HTTP/1.1\r\nHost: a\r\nFo@: b\r\n\r\n", LOOM_HTTP_PERR_HEADER_NAME);
    REQ("no colon", "GET / HTTP/1.1\r\nHost: a\r\nFoo\r\n\r\n", LOOM_HTTP_PERR_HEADER_NAME);
    REQ("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
        LOOM_HTTP_PERR_HEADER_VALUE);
    REQ("DEL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n",
        LOOM_HTTP_PERR_HEADER_VALUE);
    REQ("ESC in long value",
        "GET / HTTP/1.1\r\nHost: a\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaa\x1b\r\n\r\n",
        LOOM_HTTP_PERR_HEADER_VALUE);
    REQ("bad method char", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_METHOD);
    REQ("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_METHOD);
    REQ("PRI", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", LOOM_HTTP_PERR_METHOD);
    REQ("two spaces", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_TARGET);
    REQ("utf-8 in target", "GET /\xce\xb4 HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_TARGET);
    REQ("tab in target", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_TARGET);
    REQ("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("HTTP/0.9", "GET /\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("lowercase http", "GET / http/1.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("HTTP/11.1", "GET / HTTP/11.1\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("HTTP/1.01", "GET / HTTP/1.01\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    REQ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", LOOM_HTTP_PERR_VERSION_UNSUPPORTED);
    REQ("HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", LOOM_HTTP_PERR_VERSION_UNSUPPORTED);

    /* Framing fields. */
    REQ("CL and TE",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        LOOM_HTTP_PERR_CL_WITH_TE);
    REQ("TE and CL",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        LOOM_HTTP_PERR_CL_WITH_TE);
    REQ("CL twice, same value",
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH_DUP);
    REQ("CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL negative", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL plus", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL hex", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL inner space", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL overflow", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH);
    REQ("CL max", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551609\r\n\r\n", -1);
    REQ("TE not chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE chunked not last",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE chunked not last (2 fields)",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: "
        "gzip\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE chunked twice",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE empty", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE chunkedchunked",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunkedchunked\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE bad syntax", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chun\"ked\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE unknown coding",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        LOOM_HTTP_PERR_TE_UNSUPPORTED);
    REQ("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        LOOM_HTTP_PERR_TRANSFER_ENCODING);
    REQ("TE case and spaces",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,  CHUNKED ,\r\n\r\n", -1);
    REQ("missing Host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", LOOM_HTTP_PERR_HOST_MISSING);
    REQ("Host twice", "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", LOOM_HTTP_PERR_HOST_DUP);
    REQ("Content-Length-X is not CL",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length-X: 1\r\nContent-Length: 2\r\n\r\n", -1);

    loom_http_limits_t nohost = {.flags = LOOM_HTTP_LIMIT_ALLOW_NO_HOST};
    case_name = "missing Host allowed";
    check_head("GET / HTTP/1.1\r\n\r\n", 18, 18, &nohost);
}

static void test_request_limits(void)
{
    is_request_mode = 1;
    char buf[4096];
    /* Request line exactly at the limit (including CRLF) passes; one more byte is 414. */
    loom_http_limits_t l = {.max_request_line = 32};
    int n = snprintf(buf, sizeof buf, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", "aaaaaaaaaaaaaaaa");
    case_name = "request line at limit";
    check_head(buf, (size_t)n, n, &l); /* 5 + 16 + 11 = 32 bytes */
    n = snprintf(buf, sizeof buf, "GET /%s HTTP/1.1\r\nHost: a\r\n\r\n", "aaaaaaaaaaaaaaaaa");
    case_name = "request line over limit";
    check_head(buf, (size_t)n, LOOM_HTTP_PERR_LINE_TOO_LONG, &l);
    case_name = "unterminated request line over limit";
    memset(buf, 'a', 100);
    memcpy(buf, "GET /", 5);
    check_head(buf, 100, LOOM_HTTP_PERR_LINE_TOO_LONG, &l);

    /* Header section: field lines + final CRLF. "Host: a\r\n" (9) + "\r\n" = 11. */
    loom_http_limits_t hl = {.max_header_bytes = 11};
    case_name = "headers at limit";
    check_head("GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, 27, &hl);
    case_name = "headers over limit";
    check_head("GET / HTTP/1.1\r\nHost: ab\r\n\r\n", 28, LOOM_HTTP_PERR_HEADERS_TOO_LARGE, &hl);

    /* Count: by limit and by the caller's array. */
    loom_http_limits_t cl = {.max_headers = 2};
    case_name = "2 headers at count limit";
    check_head("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n", 33, 33, &cl);
    case_name = "3 headers over count limit";
    check_head("GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n", 39,
               LOOM_HTTP_PERR_TOO_MANY_HEADERS, &cl);
    loom_http_request_t req;
    loom_http_header_t h[1];
    size_t nh = 1;
    const char *g = guard(0, "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n", 33);
    CHECK_EQ(loom_http_parse_request(g, 33, 0, &req, h, &nh, NULL),
             LOOM_HTTP_PERR_TOO_MANY_HEADERS);

    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_LINE_TOO_LONG), 414);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_HEADERS_TOO_LARGE), 431);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_TOO_MANY_HEADERS), 431);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_BODY_TOO_LARGE), 413);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_TE_UNSUPPORTED), 501);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_VERSION_UNSUPPORTED), 505);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_PERR_OBS_FOLD), 400);
    CHECK_EQ(loom_http_perr_status(LOOM_HTTP_INCOMPLETE), 0);
    CHECK(strcmp(loom_http_perr_str(LOOM_HTTP_PERR_HOST_MISSING),
                 "HTTP/1.1 request without Host") == 0);
    CHECK(strcmp(loom_http_perr_str(12345), "unknown parser error") == 0);
}

#define RES(name, str, want)                                                                       \
    do {                                                                                           \
        case_name = name;                                                                          \
        is_request_mode = 0;                                                                       \
        check_head(str, sizeof str - 1, want, NULL);                                               \
    } while (0)

static void test_response_head(void)
{
    is_request_mode = 0;
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\n";
    case_name = "200";
    snap_t s = check_head(ok, sizeof ok - 1, -1, NULL);
    CHECK_EQ(s.status, 200);
    CHECK(s.reason_len == 2 && memcmp(ok + s.reason_off, "OK", 2) == 0);
    CHECK_EQ(s.cl, 5);
    CHECK(s.flags & LOOM_HTTP_F_CONTENT_LENGTH);

    RES("no reason", "HTTP/1.1 301\r\n\r\n", -1);
    RES("empty reason", "HTTP/1.1 200 \r\n\r\n", -1);
    RES("reason with obs-text", "HTTP/1.1 500 Ori\xc3\xabntatie probleem\r\n\r\n", -1);
    RES("leading CRLF", "\r\nHTTP/1.0 200 OK\r\n\r\n", -1);
    RES("no Host needed", "HTTP/1.1 204 No Content\r\n\r\n", -1);
    RES("two digits", "HTTP/1.1 20 OK\r\n\r\n", LOOM_HTTP_PERR_STATUS);
    RES("leading zero", "HTTP/1.1 099 OK\r\n\r\n", LOOM_HTTP_PERR_STATUS);
    RES("four digits", "HTTP/1.1 2000 OK\r\n\r\n", LOOM_HTTP_PERR_STATUS);
    RES("two spaces", "HTTP/1.1  200 OK\r\n\r\n", LOOM_HTTP_PERR_STATUS);
    RES("tab after version", "HTTP/1.1\t200 OK\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    RES("ctl in reason", "HTTP/1.1 200 O\x01K\r\n\r\n", LOOM_HTTP_PERR_STATUS);
    RES("bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n", LOOM_HTTP_PERR_LINE_ENDING);
    RES("bare CR", "HTTP/1.1 200 OK\r\rContent-Length: 0\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    RES("HTTP/2", "HTTP/2.0 200 OK\r\n\r\n", LOOM_HTTP_PERR_VERSION_UNSUPPORTED);
    RES("RTSP", "RTSP/1.0 200 OK\r\n\r\n", LOOM_HTTP_PERR_VERSION);
    RES("CL and TE", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        LOOM_HTTP_PERR_CL_WITH_TE);
    RES("CL twice", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        LOOM_HTTP_PERR_CONTENT_LENGTH_DUP);
    RES("TE gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", -1);
    RES("obs-fold", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", LOOM_HTTP_PERR_OBS_FOLD);
}

#define RESF(name, str, want)                                                                      \
    do {                                                                                           \
        case_name = name;                                                                          \
        is_request_mode = 0;                                                                       \
        check_head(str, sizeof str - 1, want, &fold);                                              \
    } while (0)

/* The value of header i of a snapshot over `in`. */
static int value_is(const snap_t *s, const char *in, size_t i, const char *want)
{
    return i < s->nh && s->h[i][3] == strlen(want) &&
           memcmp(in + s->h[i][2], want, s->h[i][3]) == 0;
}

/* RFC 9112 section 5.2: a user agent accepts obs-fold in a response
 * (LOOM_HTTP_LIMIT_OBS_FOLD); the slice spans the folds, trimmed at both
 * ends, and LOOM_HTTP_F_OBS_FOLD says so. Requests never accept it. */
static void test_response_obs_fold(void)
{
    static const loom_http_limits_t fold = {.flags = LOOM_HTTP_LIMIT_OBS_FOLD};
    static const char one[] = "HTTP/1.1 200 OK\r\nA: b\r\n c\r\nContent-Length: 2\r\n\r\n";
    case_name = "fold";
    is_request_mode = 0;
    snap_t s = check_head(one, sizeof one - 1, -1, &fold);
    CHECK_EQ(s.nh, 2);
    CHECK(value_is(&s, one, 0, "b\r\n c"));
    CHECK(value_is(&s, one, 1, "2"));
    CHECK(s.flags & LOOM_HTTP_F_OBS_FOLD);
    CHECK_EQ(s.cl, 2);

    static const char many[] = "HTTP/1.1 200 OK\r\nA:\r\n \t x \r\n\ty\r\n  \r\nB: z\r\n\r\n";
    case_name = "folds at both ends";
    s = check_head(many, sizeof many - 1, -1, &fold);
    CHECK_EQ(s.nh, 2);
    CHECK(value_is(&s, many, 0, "x \r\n\ty"));
    CHECK(value_is(&s, many, 1, "z"));

    static const char none[] = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
    case_name = "no fold";
    s = check_head(none, sizeof none - 1, -1, &fold);
    CHECK(!(s.flags & LOOM_HTTP_F_OBS_FOLD));

    RESF("space after status line", "HTTP/1.1 200 OK\r\n A: b\r\n\r\n", LOOM_HTTP_PERR_OBS_FOLD);
    RESF("folded Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n 2\r\n\r\n",
         LOOM_HTTP_PERR_OBS_FOLD);
    RESF("folded Transfer-Encoding",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip,\r\n chunked\r\n\r\n",
         LOOM_HTTP_PERR_OBS_FOLD);
    RESF("folded Connection", "HTTP/1.1 200 OK\r\nConnection:\r\n close\r\n\r\n",
         LOOM_HTTP_PERR_OBS_FOLD);
    RESF("bare LF in a fold", "HTTP/1.1 200 OK\r\nA: b\n c\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    RESF("CR LF CR in a fold", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\r\n\r\n",
         LOOM_HTTP_PERR_LINE_ENDING);
    RESF("control in a fold", "HTTP/1.1 200 OK\r\nA: b\r\n \x01\r\n\r\n",
         LOOM_HTTP_PERR_HEADER_VALUE);
    /* The flag is for responses: a request with it set is still 400. */
    case_name = "request with the flag";
    is_request_mode = 1;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n";
    check_head(req, sizeof req - 1, LOOM_HTTP_PERR_OBS_FOLD, &fold);
    is_request_mode = 0;
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                   */

static loom_http_framing_t req_framing(const char *s)
{
    loom_http_request_t req;
    loom_http_header_t h[MAXH];
    size_t nh = MAXH, n = strlen(s);
    const char *g = guard(0, s, n);
    CHECK_EQ(loom_http_parse_request(g, n, 0, &req, h, &nh, NULL), (int)n);
    loom_http_framing_t f;
    loom_http_request_framing(&req, &f);
    return f;
}

static loom_http_framing_t res_framing(const char *s, loom_http_method_t m)
{
    loom_http_response_t res;
    loom_http_header_t h[MAXH];
    size_t nh = MAXH, n = strlen(s);
    const char *g = guard(0, s, n);
    CHECK_EQ(loom_http_parse_response(g, n, 0, &res, h, &nh, NULL), (int)n);
    loom_http_framing_t f;
    loom_http_response_framing(&res, m, &f);
    return f;
}

static void test_framing(void)
{
    loom_http_framing_t f;
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.keep_alive && !f.upgrade && !f.tunnel);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n");
    CHECK(!f.keep_alive);
    f = req_framing("GET / HTTP/1.0\r\n\r\n");
    CHECK(!f.keep_alive);
    f = req_framing("GET / HTTP/1.0\r\nConnection: foo,keep-alive\r\n\r\n");
    CHECK(f.keep_alive);
    f = req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n");
    CHECK(f.kind == LOOM_HTTP_BODY_LENGTH && f.length == 12);
    f = req_framing("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    CHECK(f.kind == LOOM_HTTP_BODY_NONE);
    f = req_framing("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    CHECK(f.kind == LOOM_HTTP_BODY_CHUNKED);
    f = req_framing("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n");
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.tunnel);
    f = req_framing(
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
    CHECK(f.upgrade && f.keep_alive);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    CHECK(!f.upgrade);
    /* Connection options count only as whole list elements (RFC 9110
     * section 7.6.1): "keep-alive upgrade" is one malformed element, as llhttp
     * reads it, so it neither upgrades nor closes. */
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive upgrade\r\n"
                    "Upgrade: websocket\r\n\r\n");
    CHECK(!f.upgrade && f.keep_alive);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo close\r\n\r\n");
    CHECK(f.keep_alive);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: close foo\r\n\r\n");
    CHECK(f.keep_alive);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: x y, close \t, z\r\n\r\n");
    CHECK(!f.keep_alive);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive ,\tupgrade\r\n"
                    "Upgrade: websocket\r\n\r\n");
    CHECK(f.upgrade);
    f = req_framing("GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\n\r\n");
    (void)f;

    f = res_framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_LENGTH && f.length == 3 && f.keep_alive);
    f = res_framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", LOOM_HTTP_METHOD_HEAD);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.keep_alive);
    f = res_framing("HTTP/1.1 200 OK\r\n\r\n", LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_UNTIL_CLOSE && !f.keep_alive);
    f = res_framing("HTTP/1.1 204 No Content\r\n\r\n", LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.keep_alive);
    f = res_framing("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                    LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.keep_alive);
    f = res_framing("HTTP/1.1 100 Continue\r\n\r\n", LOOM_HTTP_METHOD_POST);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.informational);
    f = res_framing("HTTP/1.1 101 Switching Protocols\r\nContent-Length: 4\r\n\r\n",
                    LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.upgrade && !f.keep_alive);
    f = res_framing("HTTP/1.1 200 OK\r\n\r\n", LOOM_HTTP_METHOD_CONNECT);
    CHECK(f.kind == LOOM_HTTP_BODY_NONE && f.tunnel);
    f = res_framing("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", LOOM_HTTP_METHOD_CONNECT);
    CHECK(f.kind == LOOM_HTTP_BODY_LENGTH && !f.tunnel);
    f = res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                    LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_CHUNKED && f.keep_alive);
    f = res_framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                    LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_UNTIL_CLOSE && !f.keep_alive);
    f = res_framing("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_LENGTH && !f.keep_alive);
    f = res_framing("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n",
                    LOOM_HTTP_METHOD_GET);
    CHECK(f.keep_alive);
    f = res_framing("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_UNTIL_CLOSE && !f.keep_alive);
    f = res_framing(
        "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
        LOOM_HTTP_METHOD_GET);
    CHECK(f.kind == LOOM_HTTP_BODY_CHUNKED && !f.keep_alive);
}

/* ------------------------------------------------------------------------ */
/* Body decoder                                                              */

typedef struct {
    int r; /* 0: done, INCOMPLETE: ran out of input, or an error code */
    char data[4096];
    size_t ndata;
    char exts[4096]; /* "name=value;" joined */
    size_t nexts;
    char trailers[1024]; /* "name: value\n" joined */
    size_t ntrailers;
    size_t consumed;
} body_result_t;

static void add(char *dst, size_t *n, size_t cap, const char *s, size_t len)
{
    if (len == 0)
        return;
    CHECK(*n + len < cap);
    memcpy(dst + *n, s, len);
    *n += len;
}

/* Decodes `in` as a caller would that receives it in two reads split at
 * `split` (or byte by byte if split == (size_t)-1), keeping unconsumed bytes.
 * Every call sees its input right before a guard page. */
static body_result_t decode(const loom_http_framing_t *f, const loom_http_limits_t *l,
                            const char *in, size_t n, size_t split)
{
    body_result_t res;
    memset(&res, 0, sizeof res);
    loom_http_body_t b;
    res.r = loom_http_body_init(&b, f, l);
    if (res.r < 0)
        return res;
    size_t pos = 0, avail = split == (size_t)-1 ? (n ? 1 : 0) : split;
    for (;;) {
        loom_http_header_t tr[8];
        loom_http_body_out_t out = {.trailers = tr, .ntrailers = 8};
        const char *g = guard(1, in + pos, avail - pos);
        int r = loom_http_body_parse(&b, g, avail - pos, &out);
        if (r < 0) {
            res.r = r;
            return res;
        }
        CHECK((size_t)r <= avail - pos);
        pos += (size_t)r;
        add(res.data, &res.ndata, sizeof res.data, out.data, out.data_len);
        size_t ep = 0;
        loom_http_header_t e;
        while (loom_http_chunk_ext_next(out.ext, out.ext_len, &ep, &e)) {
            add(res.exts, &res.nexts, sizeof res.exts, e.name, e.name_len);
            add(res.exts, &res.nexts, sizeof res.exts, "=", 1);
            add(res.exts, &res.nexts, sizeof res.exts, e.value, e.value_len);
            add(res.exts, &res.nexts, sizeof res.exts, ";", 1);
        }
        for (size_t i = 0; i < out.ntrailers; i++) {
            add(res.trailers, &res.ntrailers, sizeof res.trailers, tr[i].name, tr[i].name_len);
            add(res.trailers, &res.ntrailers, sizeof res.trailers, ": ", 2);
            add(res.trailers, &res.ntrailers, sizeof res.trailers, tr[i].value, tr[i].value_len);
            add(res.trailers, &res.ntrailers, sizeof res.trailers, "\n", 1);
        }
        if (out.done) {
            CHECK(loom_http_body_done(&b));
            res.r = 0;
            res.consumed = pos;
            return res;
        }
        if (r == 0) {
            if (avail == n) {
                res.r = LOOM_HTTP_INCOMPLETE;
                res.consumed = pos;
                return res;
            }
            avail = split == (size_t)-1 ? avail + 1 : n;
        }
    }
}

static int body_eq(const body_result_t *a, const body_result_t *b)
{
    return a->r == b->r && a->ndata == b->ndata && memcmp(a->data, b->data, a->ndata) == 0 &&
           a->nexts == b->nexts && memcmp(a->exts, b->exts, a->nexts) == 0 &&
           a->ntrailers == b->ntrailers && memcmp(a->trailers, b->trailers, a->ntrailers) == 0 &&
           (a->r != 0 || a->consumed == b->consumed);
}

/* One-shot, every split point, and byte by byte must agree. */
static body_result_t check_body(const char *name, const loom_http_framing_t *f,
                                const loom_http_limits_t *l, const char *in, size_t n, int want)
{
    case_name = name;
    body_result_t one = decode(f, l, in, n, n);
    if (one.r != want)
        fail("body one-shot gives %d (%s), want %d", one.r, loom_http_perr_str(one.r), want);
    for (size_t k = 0; k <= n; k++) {
        body_result_t s = decode(f, l, in, n, k);
        if (!body_eq(&s, &one))
            fail("body split at %zu gives %d, one-shot %d", k, s.r, one.r);
    }
    body_result_t s = decode(f, l, in, n, (size_t)-1);
    if (!body_eq(&s, &one))
        fail("body byte by byte gives %d, one-shot %d", s.r, one.r);
    return one;
}

#define BODY(name, f, l, str, want) check_body(name, f, l, str, sizeof str - 1, want)

/* For longer inputs: one-shot, byte by byte and a few split points. */
static void check_body_quick(const char *name, const loom_http_framing_t *f,
                             const loom_http_limits_t *l, const char *in, size_t n, int want)
{
    case_name = name;
    body_result_t one = decode(f, l, in, n, n);
    if (one.r != want)
        fail("body one-shot gives %d (%s), want %d", one.r, loom_http_perr_str(one.r), want);
    for (size_t k = 1; k < n; k = k * 3 + 1) {
        body_result_t s = decode(f, l, in, n, k);
        if (!body_eq(&s, &one))
            fail("body split at %zu gives %d, one-shot %d", k, s.r, one.r);
    }
    body_result_t s = decode(f, l, in, n, (size_t)-1);
    if (!body_eq(&s, &one))
        fail("body byte by byte gives %d, one-shot %d", s.r, one.r);
}
#define BODY_N(name, f, l, buf, n, want) check_body_quick(name, f, l, buf, n, want)

/* Writes `count` chunks of `size` bytes, each with an extension of
 * `ext` bytes (";" and a name of zeros) if ext > 0, and the last chunk if
 * `end`. Returns the length. */
static size_t chunks(char *out, size_t cap, int count, int size, int ext, int end)
{
    size_t n = 0;
    for (int i = 0; i < count; i++) {
        CHECK(n + 16 + (size_t)ext + (size_t)size + 4 < cap);
        n += (size_t)snprintf(out + n, cap - n, "%x", size);
        if (ext > 0) {
            out[n++] = ';';
            memset(out + n, '0', (size_t)ext - 1);
            n += (size_t)ext - 1;
        }
        memcpy(out + n, "\r\n", 2);
        memset(out + n + 2, 'x', (size_t)size);
        memcpy(out + n + 2 + size, "\r\n", 2);
        n += 4 + (size_t)size;
    }
    if (end) {
        CHECK(n + 5 <= cap);
        memcpy(out + n, "0\r\n\r\n", 5);
        n += 5;
    }
    return n;
}

static void test_body(void)
{
    loom_http_framing_t ch = {.kind = LOOM_HTTP_BODY_CHUNKED};
    body_result_t r;

    static const char c1[] = "5;a=1; b = \"x;\\\"y\" ;c\r\nhello\r\n"
                             "6\r\n world\r\n"
                             "000\r\n"
                             "Vary: *\r\n"
                             "X-Sum:  abc \r\n"
                             "\r\nNEXT";
    r = BODY("chunked with extensions and trailers", &ch, NULL, c1, 0);
    CHECK(r.ndata == 11 && memcmp(r.data, "hello world", 11) == 0);
    CHECK(r.nexts == strlen("a=1;b=\"x;\\\"y\";c=;") &&
          memcmp(r.exts, "a=1;b=\"x;\\\"y\";c=;", r.nexts) == 0);
    CHECK(r.ntrailers == strlen("Vary: *\nX-Sum: abc\n") &&
          memcmp(r.trailers, "Vary: *\nX-Sum: abc\n", r.ntrailers) == 0);
    CHECK_EQ(r.consumed, sizeof c1 - 1 - 4); /* NEXT belongs to the next message */

    r = BODY("upper-case hex", &ch, NULL, "A\r\n0123456789\r\n0\r\n\r\n", 0);
    CHECK_EQ(r.ndata, 10);
    r = BODY("incomplete", &ch, NULL, "5\r\nhel", LOOM_HTTP_INCOMPLETE);
    CHECK_EQ(r.ndata, 3);
    BODY("no digits", &ch, NULL, "\r\nabc", LOOM_HTTP_PERR_CHUNK_SIZE);
    BODY("bad hex", &ch, NULL, "5g\r\nhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_CHUNK_SIZE);
    BODY("17 hex digits", &ch, NULL, "00000000000000001\r\nx\r\n0\r\n\r\n",
         LOOM_HTTP_PERR_CHUNK_SIZE);
    BODY("space after size", &ch, NULL, "5 \r\nhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_CHUNK_EXT);
    BODY("no semicolon", &ch, NULL, "5 x\r\nhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_CHUNK_EXT);
    BODY("empty ext name", &ch, NULL, "5;\r\nhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_CHUNK_EXT);
    BODY("ext BWS before ;", &ch, NULL, "5 ;a\r\nhello\r\n0\r\n\r\n", 0);
    BODY("unterminated quote", &ch, NULL, "5;a=\"b\r\nhello\r\n0\r\n\r\n",
         LOOM_HTTP_PERR_CHUNK_EXT);
    BODY("bare LF after size", &ch, NULL, "5\nhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    BODY("bare CR after size", &ch, NULL, "5\rhello\r\n0\r\n\r\n", LOOM_HTTP_PERR_LINE_ENDING);
    r = BODY("data not followed by CRLF", &ch, NULL, "5\r\nhelloX\r\n0\r\n\r\n",
             LOOM_HTTP_PERR_CHUNK_DATA_END);
    BODY("bad trailer", &ch, NULL, "0\r\nBad Name: x\r\n\r\n", LOOM_HTTP_PERR_SPACE_BEFORE_COLON);
    BODY("obs-fold trailer", &ch, NULL, "0\r\nA: x\r\n y\r\n\r\n", LOOM_HTTP_PERR_OBS_FOLD);

    /* Chunk extension length limit: 8 bytes pass, 9 fail, also when unterminated. */
    loom_http_limits_t el = {.max_chunk_ext = 8};
    BODY("ext at limit", &ch, &el, "1;abc=def\r\nx\r\n0\r\n\r\n", 0);
    BODY("ext over limit", &ch, &el, "1;abcd=def\r\nx\r\n0\r\n\r\n",
         LOOM_HTTP_PERR_CHUNK_EXT_TOO_LONG);
    BODY("unterminated ext over limit", &ch, &el, "1;abcdefghijklmnop",
         LOOM_HTTP_PERR_CHUNK_EXT_TOO_LONG);

    /* Framing overhead: with max_chunk_ext 64 the bound is 1024 bytes. A
     * 1-byte chunk with a 63-byte extension (";" and 62 bytes) costs 68
     * framing bytes (line 66, CRLF after the data 2) against an allowance
     * of 32 + 1: 35 beyond it
     * per chunk, so 29 such chunks pass and the 30th fails (CVE-2023-39326:
     * a kilobyte of extensions per body byte). Data pays for framing, and
     * plain small chunks never come near the bound. */
    {
        static char in[8192];
        loom_http_limits_t ol = {.max_chunk_ext = 64};
        size_t n = chunks(in, sizeof in, 29, 1, 63, 1);
        BODY_N("29 1-byte chunks with 63-byte extensions", &ch, &ol, in, n, 0);
        n = chunks(in, sizeof in, 30, 1, 63, 1);
        BODY_N("30 1-byte chunks with 63-byte extensions", &ch, &ol, in, n,
               LOOM_HTTP_PERR_CHUNK_OVERHEAD);
        n = chunks(in, sizeof in, 40, 64, 63, 1);
        BODY_N("40 64-byte chunks with 63-byte extensions", &ch, &ol, in, n, 0);
        n = chunks(in, sizeof in, 400, 1, 0, 1);
        BODY_N("400 1-byte chunks", &ch, NULL, in, n, 0);
        n = chunks(in, sizeof in, 1, 1, 1000, 1);
        BODY_N("one 1000-byte extension", &ch, NULL, in, n, 0);
    }

    /* Body size limit: per chunk line, cumulative, Content-Length, until close. */
    loom_http_limits_t bl = {.max_body_size = 10};
    BODY("chunked at body limit", &ch, &bl, "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 0);
    BODY("chunked over body limit", &ch, &bl, "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n",
         LOOM_HTTP_PERR_BODY_TOO_LARGE);
    BODY("huge chunk", &ch, NULL, "ffffffffffffffff\r\n", LOOM_HTTP_PERR_BODY_TOO_LARGE);
    loom_http_framing_t cl = {.kind = LOOM_HTTP_BODY_LENGTH, .length = 11};
    BODY("content-length over limit", &cl, &bl, "hello world", LOOM_HTTP_PERR_BODY_TOO_LARGE);
    r = BODY("content-length", &cl, NULL, "hello worldGET", 0);
    CHECK(r.ndata == 11 && r.consumed == 11);
    loom_http_framing_t uc = {.kind = LOOM_HTTP_BODY_UNTIL_CLOSE};
    r = BODY("until close", &uc, NULL, "0123456789", LOOM_HTTP_INCOMPLETE);
    CHECK_EQ(r.ndata, 10);
    r = BODY("until close over limit", &uc, &bl, "0123456789A", LOOM_HTTP_PERR_BODY_TOO_LARGE);
    CHECK_EQ(r.ndata, 10);
    loom_http_framing_t none = {.kind = LOOM_HTTP_BODY_NONE};
    r = BODY("no body", &none, NULL, "GET", 0);
    CHECK_EQ(r.consumed, 0);
    loom_http_limits_t unlimited = {.max_body_size = UINT64_MAX};
    BODY("no limit", &ch, &unlimited, "ffffffffffffff\r\nabc", LOOM_HTTP_INCOMPLETE);

    /* finish(): until-close completes at EOF, the others do not. */
    loom_http_body_t b;
    CHECK_EQ(loom_http_body_init(&b, &uc, NULL), 0);
    CHECK_EQ(loom_http_body_finish(&b), 0);
    CHECK(loom_http_body_done(&b));
    CHECK_EQ(loom_http_body_init(&b, &cl, NULL), 0);
    CHECK_EQ(loom_http_body_finish(&b), LOOM_HTTP_PERR_UNEXPECTED_EOF);
    CHECK_EQ(loom_http_body_init(&b, &ch, NULL), 0);
    CHECK_EQ(loom_http_body_finish(&b), LOOM_HTTP_PERR_UNEXPECTED_EOF);

    /* Trailers without an array are checked and skipped. */
    CHECK_EQ(loom_http_body_init(&b, &ch, NULL), 0);
    loom_http_body_out_t out = {0};
    const char *g = guard(0, "0\r\nA: b\r\n\r\n", 11);
    CHECK_EQ(loom_http_body_parse(&b, g, 11, &out), 11);
    CHECK(out.done && out.ntrailers == 0);
}

/* ------------------------------------------------------------------------ */
/* Pipelining                                                                */

static void test_pipelining(void)
{
    static const char in[] = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nAAA"
                             "\r\n" /* an empty line between requests is skipped */
                             "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "2;x=y\r\nBB\r\n0\r\n\r\n"
                             "GET /c HTTP/1.1\r\nHost: h\r\n\r\n"
                             "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    static const char *targets[] = {"/a", "/b", "/c", "/d"};
    static const char *bodies[] = {"AAA", "BB", "", ""};
    size_t n = sizeof in - 1, pos = 0;
    const char *g = guard(0, in, n);
    for (int i = 0; i < 4; i++) {
        loom_http_request_t req;
        loom_http_header_t h[8];
        size_t nh = 8;
        int r = loom_http_parse_request(g + pos, n - pos, 0, &req, h, &nh, NULL);
        CHECK(r > 0);
        CHECK(req.target_len == strlen(targets[i]) &&
              memcmp(req.target, targets[i], req.target_len) == 0);
        pos += (size_t)r;
        loom_http_framing_t f;
        loom_http_request_framing(&req, &f);
        CHECK_EQ(f.keep_alive, i < 3);
        loom_http_body_t b;
        CHECK_EQ(loom_http_body_init(&b, &f, NULL), 0);
        char body[16];
        size_t nb = 0;
        for (;;) {
            loom_http_body_out_t out = {0};
            r = loom_http_body_parse(&b, g + pos, n - pos, &out);
            CHECK(r >= 0);
            pos += (size_t)r;
            if (out.data_len)
                memcpy(body + nb, out.data, out.data_len);
            nb += out.data_len;
            if (out.done)
                break;
            CHECK(r > 0);
        }
        CHECK(nb == strlen(bodies[i]) && memcmp(body, bodies[i], nb) == 0);
    }
    CHECK_EQ(pos, n);
}

static void test_chunk_ext_iter(void)
{
    static const char ext[] = " ; a ; b = c;d=\"e;f\"";
    size_t pos = 0;
    loom_http_header_t e;
    CHECK(loom_http_chunk_ext_next(ext, sizeof ext - 1, &pos, &e));
    CHECK(e.name_len == 1 && e.name[0] == 'a' && e.value_len == 0);
    CHECK(loom_http_chunk_ext_next(ext, sizeof ext - 1, &pos, &e));
    CHECK(e.name_len == 1 && e.name[0] == 'b' && e.value_len == 1 && e.value[0] == 'c');
    CHECK(loom_http_chunk_ext_next(ext, sizeof ext - 1, &pos, &e));
    CHECK(e.value_len == 5 && memcmp(e.value, "\"e;f\"", 5) == 0);
    CHECK(!loom_http_chunk_ext_next(ext, sizeof ext - 1, &pos, &e));
    pos = 0;
    CHECK(!loom_http_chunk_ext_next(NULL, 0, &pos, &e));
}

int main(void)
{
    test_timeout(60);
    for (int pass = 0; pass < 2; pass++) {
        mode_flags = pass ? LOOM_HTTP_LIMIT_SCALAR : 0;
        test_request_basic();
        test_request_strict();
        test_request_limits();
        test_response_head();
        test_response_obs_fold();
    }
    test_framing();
    test_body();
    test_pipelining();
    test_chunk_ext_iter();
    guard_free_all();
    printf("http parser: all tests passed\n");
    return 0;
}
