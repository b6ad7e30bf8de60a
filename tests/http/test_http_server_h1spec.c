/* test_http_server_h1spec: the real loom-http-echo binary (default mode:
 * buffered, validated body) against the cases of the h1spec conformance
 * suite and more of the same kind. Each case is one raw request on a fresh
 * connection; the status is taken from the first line of the answer.
 *
 * A fragment of a request must get no answer at all while the client waits
 * (h1spec waits 500 ms); every other case must get an answer whose status
 * lies in one of its ranges. All cases run at once; an answer may take up to
 * 5 s (a loaded machine), the silence is checked over 700 ms. Then a few
 * exchanges check the echo itself (decoded body, Content-Length, keep-alive
 * after a body, pipelining). */
#include "test_http_server_util.h"

typedef struct {
    const char *desc;
    const char *req;
    size_t len;   /* 0: strlen(req) */
    int lo1, hi1; /* expected status ranges; lo1 -1: no answer expected */
    int lo2, hi2;
} h1case;

#define SILENT(d, r)                                                                               \
    {                                                                                              \
        d, r, 0, -1, -1, 0, 0                                                                      \
    }
#define STATUS(d, r, l, h)                                                                         \
    {                                                                                              \
        d, r, 0, l, h, 0, 0                                                                        \
    }
#define STATUS2(d, r, l, h, l2, h2)                                                                \
    {                                                                                              \
        d, r, 0, l, h, l2, h2                                                                      \
    }

static const h1case cases[] = {
    /* h1spec: fragments get no answer. */
    SILENT("fragmented method", "G"),
    SILENT("fragmented URL 1", "GET "),
    SILENT("fragmented URL 2", "GET /hello"),
    SILENT("fragmented URL 3", "GET /hello "),
    SILENT("fragmented HTTP version", "GET /hello HTTP"),
    SILENT("fragmented request line", "GET /hello HTTP/1.1"),
    SILENT("fragmented request line newline 1", "GET /hello HTTP/1.1\r"),
    SILENT("fragmented request line newline 2", "GET /hello HTTP/1.1\r\n"),
    SILENT("fragmented field name", "GET /hello HTTP/1.1\r\nHos"),
    SILENT("fragmented field value 1", "GET /hello HTTP/1.1\r\nHost:"),
    SILENT("fragmented field value 2", "GET /hello HTTP/1.1\r\nHost: "),
    SILENT("fragmented field value 3", "GET /hello HTTP/1.1\r\nHost: localhost"),
    SILENT("fragmented field value 4", "GET /hello HTTP/1.1\r\nHost: localhost\r"),
    SILENT("fragmented request", "GET /hello HTTP/1.1\r\nHost: localhost\r\n"),
    SILENT("fragmented request termination", "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r"),
    /* h1spec: answered ones. */
    STATUS("request without HTTP version", "GET / \r\n\r\n", 400, 599),
    STATUS2("request with Expect header",
            "GET / HTTP/1.1\r\nHost: example.com\r\nExpect: 100-continue\r\n\r\n", 100, 100, 200,
            299),
    STATUS("valid GET request", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 200, 299),
    STATUS("valid GET request with edge cases",
           "GET / HTTP/1.1\r\nhoSt:\texample.com\r\nempty:\r\n\r\n", 200, 299),
    STATUS("invalid header characters",
           "GET / HTTP/1.1\r\nHost: example.com\r\nX-Invalid[]: test\r\n\r\n", 400, 499),
    STATUS("missing Host header", "GET / HTTP/1.1\r\nContent-Length: 5\r\n\r\n", 400, 499),
    STATUS("multiple Host headers",
           "GET / HTTP/1.1\r\nHost: example.com\r\nHost: example.org\r\n\r\n", 400, 499),
    STATUS("overflowing negative Content-Length",
           "GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: "
           "-123456789123456789123456789\r\n\r\n",
           400, 499),
    STATUS("negative Content-Length",
           "GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: -1234\r\n\r\n", 400, 499),
    STATUS("non-numeric Content-Length",
           "GET / HTTP/1.1\r\nHost: example.com\r\nContent-Length: abc\r\n\r\n", 400, 499),
    STATUS("empty header value", "GET / HTTP/1.1\r\nHost: example.com\r\nX-Empty-Header: \r\n\r\n",
           200, 299),
    STATUS("header with a control character",
           "GET / HTTP/1.1\r\nHost: example.com\r\nX-Bad-Control-Char: test\x07\r\n\r\n", 400, 499),
    STATUS2("invalid HTTP version", "GET / HTTP/9.9\r\nHost: example.com\r\n\r\n", 400, 499, 500,
            599),
    STATUS2("invalid prefix of request", "Extra lineGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
            400, 499, 500, 599),
    STATUS("invalid line ending",
           "GET / HTTP/1.1\r\nHost: example.com\r\n\rSome-Header: Test\r\n\r\n", 400, 499),
    STATUS2("valid POST request with body",
            "POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello", 200, 299, 404,
            404),
    STATUS("conflicting Transfer-Encoding and Content-Length",
           "GET / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n"
           "Content-Length: 5\r\n\r\n",
           400, 499),
    /* More of the same kind. */
    SILENT("body still to come", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel"),
    SILENT("chunked body still to come",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    SILENT("leading empty line", "\r\n"),
    STATUS(
        "valid chunked POST",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        200, 299),
    STATUS(
        "bad chunk size",
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400, 499),
    STATUS("chunk without its CRLF",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
           400, 499),
    STATUS("two different Content-Lengths",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
           400, 499),
    STATUS("Content-Length with a plus sign",
           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400, 499),
    STATUS("header value with DEL", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", 400, 499),
    STATUS("header value with NUL", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, 499),
    STATUS("space before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, 499),
    STATUS("obsolete line folding", "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, 499),
    STATUS("bare LF in a field", "GET / HTTP/1.1\r\nHost: a\r\nX: a\nY: b\r\n\r\n", 400, 499),
    STATUS("empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", 400, 499),
    STATUS("space in the target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, 499),
    STATUS2("HTTP/2.0 request line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 400, 499, 500, 599),
    STATUS("lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, 499),
    STATUS("Host with a bad character", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, 499),
    STATUS("HTTP/1.0 without Host", "GET / HTTP/1.0\r\n\r\n", 200, 299),
    STATUS("absolute-form target", "GET http://example.com/x HTTP/1.1\r\nHost: other\r\n\r\n", 200,
           299),
    STATUS("unknown Transfer-Encoding",
           "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400, 501),
    STATUS("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 200, 299),
    STATUS("HEAD", "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", 200, 299),
    /* Request-target forms (RFC 9112 section 3.2): origin-form starts with
     * '/', asterisk-form is OPTIONS only, authority-form is CONNECT only,
     * absolute-form starts with "scheme://"; anything else is 400. */
    STATUS("target without a leading slash", "GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("target that is only a query", "GET ?a=b HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("asterisk and more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("scheme without authority", "GET http:/x HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("authority-form with GET", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("CONNECT with origin-form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("CONNECT without a port", "CONNECT a HTTP/1.1\r\nHost: a\r\n\r\n", 400, 400),
    STATUS("double slash origin-form", "GET //x HTTP/1.1\r\nHost: a\r\n\r\n", 200, 299),
};
#define NCASES (sizeof cases / sizeof cases[0])

static int parse_status(const char *buf, size_t len)
{
    if (len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[8] != ' ')
        return 0;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return 0;
        st = st * 10 + (buf[i] - '0');
    }
    return st;
}

static int in_range(const h1case *c, int st)
{
    return (st >= c->lo1 && st <= c->hi1) || (c->lo2 && st >= c->lo2 && st <= c->hi2);
}

static void run_cases(int port)
{
    int fds[NCASES];
    int status[NCASES];
    size_t got[NCASES];
    char buf[NCASES][256];
    for (size_t i = 0; i < NCASES; i++) {
        fds[i] = hs_connect(port);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].req);
        if (strcmp(cases[i].desc, "header value with NUL") == 0)
            len = strlen(cases[i].req) + 1 + strlen(cases[i].req + strlen(cases[i].req) + 1);
        CHECK(send(fds[i], cases[i].req, len, MSG_NOSIGNAL) == (ssize_t)len);
        status[i] = -1;
        got[i] = 0;
    }
    /* Read what arrives: the silent cases for 700 ms, the others until their
     * status line is complete (5 s at most). */
    uint64_t start = hs_now_ms();
    for (;;) {
        uint64_t t = hs_now_ms() - start;
        int waiting = 0;
        struct pollfd p[NCASES];
        for (size_t i = 0; i < NCASES; i++) {
            p[i].fd = -1;
            p[i].events = POLLIN;
            bool silent = cases[i].lo1 < 0;
            if (got[i] >= 12 || status[i] == 0 || (silent && t >= 700) || t >= 5000)
                continue;
            p[i].fd = fds[i];
            waiting++;
        }
        if (!waiting)
            break;
        if (poll(p, NCASES, 50) <= 0)
            continue;
        for (size_t i = 0; i < NCASES; i++) {
            if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(fds[i], buf[i] + got[i], sizeof buf[i] - 1 - got[i], 0);
            if (n <= 0) {
                status[i] = 0; /* closed without a (complete) status line */
                continue;
            }
            got[i] += (size_t)n;
        }
    }
    int fails = 0;
    for (size_t i = 0; i < NCASES; i++) {
        int st = got[i] > 0 ? parse_status(buf[i], got[i]) : -1;
        bool ok = cases[i].lo1 < 0 ? got[i] == 0 : in_range(&cases[i], st);
        if (!ok) {
            fails++;
            fprintf(stderr, "FAIL %s: got %d (%zu bytes)\n", cases[i].desc, st, got[i]);
        }
        close(fds[i]);
    }
    fprintf(stderr, "%zu of %zu cases passed\n", NCASES - (size_t)fails, NCASES);
    CHECK_EQ(fails, 0);
}

/* Reads from fd until `want` complete answers are in buf (5 s at most).
 * Returns the bytes read. */
static size_t read_answers(int fd, char *buf, size_t size, int want)
{
    size_t n = 0;
    uint64_t end = hs_now_ms() + 5000;
    while (n < size - 1 && hs_now_ms() < end &&
           hs_count_responses(buf, n, LOOM_HTTP_METHOD_POST, NULL, want) < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t k = recv(fd, buf + n, size - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    return n;
}

static void check_echo(int port)
{
    char buf[8192];
    int fd = hs_connect(port);
    /* A chunked body comes back decoded, with a Content-Length, and the
     * connection stays open for a pipelined request behind it. */
    const char *two = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
                      "PUT /y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    CHECK(send(fd, two, strlen(two), MSG_NOSIGNAL) == (ssize_t)strlen(two));
    size_t n = read_answers(fd, buf, sizeof buf, 2);
    int st[2] = {0, 0};
    CHECK_EQ(hs_count_responses(buf, n, LOOM_HTTP_METHOD_POST, st, 2), 2);
    CHECK_EQ(st[0], 200);
    CHECK_EQ(st[1], 200);
    char *second = strstr(buf + 1, "HTTP/1.1 ");
    CHECK(second != NULL);
    CHECK(strstr(buf, "Content-Length: 7\r\n") != NULL);
    CHECK(strstr(buf, "\r\n\r\nabcdefg") != NULL);
    CHECK(strstr(second, "Content-Length: 5\r\n") != NULL);
    CHECK(strstr(second, "\r\n\r\nhello") != NULL);
    CHECK(strcasestr(buf, "Connection: close") == NULL);
    close(fd);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    int port;
    pid_t pid = hs_start_binary("loom-http-echo", NULL, 2, &port);
    if (pid == 0)
        TEST_SKIP("loom-http-echo is not built");
    run_cases(port);
    check_echo(port);
    kill(pid, SIGTERM);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    return 0;
}
