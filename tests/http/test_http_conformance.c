/* tests/http/test_http_conformance.c - loom's parser against llhttp's test cases.
 *
 * LOOM_TEST_NO_BACKEND: this test uses no event loop, so it runs once.
 *
 * Every case in ../shared/conformance/llhttp/{request,response}/ *.md (except
 * lenient-*.md, pausing.md and cases whose meta type names one of llhttp's
 * lenient switches) is normalised as the corpus README says, fed to loom as a
 * connection would be, and compared with llhttp's log:
 *
 *   - accepted or rejected;
 *   - per message: method, target, version (status and reason for
 *     responses), header names and values, body bytes, trailer fields, chunk
 *     extension names and values, and whether the message completed.
 *
 * How llhttp's log maps to loom:
 *   - Spans are taken from the input at the logged offset and length, so the
 *     log's own escaping never matters. Split spans are joined.
 *   - Header values: loom strips trailing whitespace (RFC 9110 section 5.5),
 *     llhttp keeps it in its span, so trailing SP/HTAB are stripped from the
 *     expected value.
 *   - "Pause on CONNECT/Upgrade" (code 22) is not an error: it matches loom's
 *     framing.upgrade / framing.tunnel, after which the runner stops, as a
 *     server that accepts the upgrade would. Any other error code is a
 *     rejection (including "Pause on PRI/Upgrade", which delivers no message).
 *   - "Data after Connection: close": loom's parser handles one message at a
 *     time; a message whose framing says !keep_alive is the last one the
 *     connection reads, so non-CRLF bytes after it count as rejected.
 *   - "skipBody" cases (llhttp's on_headers_complete returning 1) read no body.
 *   - "*-finish" cases: llhttp_finish() returning an error maps to
 *     loom_http_body_finish() failing or a head being incomplete at EOF.
 *
 * Cases where loom is stricter than llhttp by design are listed in
 * `stricter[]` with the error loom must give; where it relaxes only the Host
 * rule, the case is run again with LOOM_HTTP_LIMIT_ALLOW_NO_HOST and must then
 * match llhttp exactly. Cases where loom accepts what llhttp rejects are in
 * `laxer[]` with the reason. A listed case that stops differing fails as
 * stale, so the lists stay true.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/http_parser.h"
#include "test.h"

#define MAX_MSGS   8
#define MAX_FIELDS 64
#define MAX_EXTS   32

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        CHECK(b->p != NULL);
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
}

static void sb_free(sbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

static int sb_eq(const sbuf *a, const sbuf *b)
{
    return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

typedef struct {
    sbuf name, value;
} kv_t;

typedef struct {
    int started, have_head, complete;
    sbuf method, url, reason;
    int major, minor, status;
    kv_t fields[MAX_FIELDS];
    int nfields;
    kv_t trailers[MAX_FIELDS];
    int ntrailers;
    kv_t exts[MAX_EXTS];
    int nexts;
    sbuf body;
} msg_t;

typedef struct {
    msg_t m[MAX_MSGS];
    int n;
    int error, errcode, paused;
    int finish; /* -1: no finish; 0: ok; 1: error */
} outcome_t;

static void outcome_free(outcome_t *o)
{
    for (int i = 0; i < MAX_MSGS; i++) {
        msg_t *m = &o->m[i];
        sb_free(&m->method);
        sb_free(&m->url);
        sb_free(&m->reason);
        sb_free(&m->body);
        for (int j = 0; j < MAX_FIELDS; j++) {
            sb_free(&m->fields[j].name);
            sb_free(&m->fields[j].value);
            sb_free(&m->trailers[j].name);
            sb_free(&m->trailers[j].value);
        }
        for (int j = 0; j < MAX_EXTS; j++) {
            sb_free(&m->exts[j].name);
            sb_free(&m->exts[j].value);
        }
    }
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------------------ */
/* Lists of deliberate differences                                           */

typedef struct {
    const char *file, *heading;
    int code;        /* the error loom must give */
    unsigned relax;  /* limits flags with which the case must then match llhttp */
    const char *why; /* the reason */
    int seen;
} stricter_t;

#define NO_HOST(file, heading)                                                                     \
    {                                                                                              \
        file, heading, LOOM_HTTP_PERR_HOST_MISSING, LOOM_HTTP_LIMIT_ALLOW_NO_HOST,                 \
            "HTTP/1.1 request without Host: RFC 9112 section 3.2 requires 400", 0                  \
    }

static stricter_t stricter[] = {
    NO_HOST("request/method.md", "REPORT request"),
    {"request/method.md", "SOURCE request with ICE", LOOM_HTTP_PERR_VERSION, 0,
     "loom parses HTTP only: ICE/1.0 is not an HTTP-version", 0},
    {"request/method.md", "OPTIONS request with RTSP", LOOM_HTTP_PERR_VERSION, 0,
     "loom parses HTTP only: RTSP/1.0 is not an HTTP-version", 0},
    {"request/method.md", "ANNOUNCE request with RTSP", LOOM_HTTP_PERR_VERSION, 0,
     "loom parses HTTP only: RTSP/1.0 is not an HTTP-version", 0},
    {"response/sample.md", "RTSP response", LOOM_HTTP_PERR_VERSION, 0,
     "loom parses HTTP only: RTSP/1.1 is not an HTTP-version", 0},
    {"response/sample.md", "ICE response", LOOM_HTTP_PERR_VERSION, 0,
     "loom parses HTTP only: ICE/1.1 is not an HTTP-version", 0},
    {"request/sample.md", "No HTTP version", LOOM_HTTP_PERR_VERSION, 0,
     "HTTP/0.9 simple requests (no version) are not supported", 0},
    {"response/sample.md", "HTTP version 0.9", LOOM_HTTP_PERR_VERSION_UNSUPPORTED, 0,
     "only HTTP/1.x is supported; a 0.9 status line is not a real HTTP/0.9 response either", 0},
    {"request/transfer-encoding.md", "POST with `chunked` as last transfer-encoding",
     LOOM_HTTP_PERR_TE_UNSUPPORTED, 0,
     "loom cannot decode deflate; RFC 9112 section 6.1: answer 501 to an unknown coding", 0},
    {"request/transfer-encoding.md",
     "POST with `chunked` as last transfer-encoding (multiple headers)",
     LOOM_HTTP_PERR_TE_UNSUPPORTED, 0,
     "loom cannot decode deflate; RFC 9112 section 6.1: answer 501 to an unknown coding", 0},
    NO_HOST("request/connection.md", "Setting flag"),
    NO_HOST("request/connection.md", "Restarting when keep-alive is explicitly"),
    NO_HOST("request/connection.md", "Setting flag on `close`"),
    NO_HOST("request/connection.md", "Setting flag on `close` followed by tab"),
    NO_HOST("request/connection.md", "Sample"),
    NO_HOST("request/connection.md", "Multiple tokens with folding and LWS"),
    NO_HOST("request/connection.md", "Setting a flag and pausing"),
    NO_HOST("request/connection.md", "Emitting part of body and pausing"),
    NO_HOST("request/content-length.md", "`Content-Length` with zeroes"),
    NO_HOST("request/content-length.md", "`Content-Length` with follow-up headers"),
    NO_HOST("request/content-length.md", "Spaces in `Content-Length` (surrounding)"),
    NO_HOST("request/content-length.md", "Tabs in `Content-Length` (surrounding)"),
    NO_HOST("request/content-length.md", "Content-Length reset when no body is received"),
    NO_HOST("request/finish.md", "It should be safe to finish after GET request"),
    NO_HOST("request/pipelining.md", "Should parse multiple events"),
    NO_HOST("request/sample.md", "Simple request"),
    NO_HOST("request/sample.md", "Request with method starting with `H`"),
    NO_HOST("request/sample.md", "DUMBPACK"),
    NO_HOST("request/sample.md", "No headers and no body"),
    NO_HOST("request/sample.md", "One header and no body"),
    NO_HOST("request/sample.md", "Prefix newline"),
    NO_HOST("request/sample.md", "Request starting with CRLF"),
    NO_HOST("request/sample.md", "Extended Characters"),
    NO_HOST("request/sample.md", "255 ASCII in header value"),
    NO_HOST("request/transfer-encoding.md", "Parsing and setting flag"),
    NO_HOST("request/transfer-encoding.md", "Parse chunks with lowercase size"),
    NO_HOST("request/transfer-encoding.md", "Parse chunks with uppercase size"),
    NO_HOST("request/transfer-encoding.md", "POST with `Transfer-Encoding: chunked`"),
    NO_HOST("request/transfer-encoding.md", "Two chunks and triple zero prefixed end chunk"),
    NO_HOST("request/transfer-encoding.md", "Trailing headers"),
    NO_HOST("request/transfer-encoding.md", "Chunk extensions"),
    NO_HOST("request/transfer-encoding.md", "Chunk extensions quoting"),
    NO_HOST("request/uri.md", "Quotes in URI"),
    NO_HOST("request/uri.md", "Query URL with question mark"),
    NO_HOST("request/uri.md", "Host terminated by a query string"),
    NO_HOST("request/uri.md", "`host:port` terminated by a query string"),
    NO_HOST("request/uri.md", "Query URL with vertical bar character"),
    NO_HOST("request/uri.md", "`host:port` terminated by a space"),
    NO_HOST("request/uri.md", "Fragment in URI"),
    NO_HOST("request/uri.md", "`host:port` and basic auth"),
};

typedef struct {
    const char *file, *heading;
    unsigned relax; /* limits flags for the run that must accept */
    const char *why;
    int seen;
} laxer_t;

static laxer_t laxer[] = {
    {"request/invalid.md", "Invalid method", LOOM_HTTP_LIMIT_ALLOW_NO_HOST,
     "any token is a method (RFC 9110 section 9.1); loom reports MKCOLA as "
     "LOOM_HTTP_METHOD_OTHER and the server answers 501, llhttp only knows a fixed list",
     0},
    {"request/invalid.md", "HTTP protocol and ANNOUNCE method", 0,
     "ANNOUNCE is a valid method token for HTTP too (RFC 9110 section 9.1); llhttp ties it to "
     "RTSP",
     0},
};

/* ------------------------------------------------------------------------ */
/* Reading the corpus                                                        */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    CHECK(s != NULL);
    CHECK(fread(s, 1, (size_t)n, f) == (size_t)n);
    s[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return s;
}

static int hexv(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The README's normalisation: drop the final newline, join lines ending in a
 * backslash, newline -> CRLF, then expand \r \n \t \f \xHH. */
static void normalise(const char *s, size_t n, sbuf *out)
{
    sbuf a = {0};
    if (n && s[n - 1] == '\n')
        n--;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\n') {
            i++;
            continue;
        }
        if (s[i] == '\n')
            sb_add(&a, "\r\n", 2);
        else
            sb_add(&a, &s[i], 1);
    }
    for (size_t i = 0; i < a.n; i++) {
        char c = a.p[i];
        if (c == '\\' && i + 1 < a.n) {
            char e = a.p[i + 1];
            char r = 0;
            if (e == 'r')
                r = '\r';
            else if (e == 'n')
                r = '\n';
            else if (e == 't')
                r = '\t';
            else if (e == 'f')
                r = '\f';
            else if (e == 'x' && i + 3 < a.n && hexv(a.p[i + 2]) >= 0 && hexv(a.p[i + 3]) >= 0) {
                char x = (char)(hexv(a.p[i + 2]) * 16 + hexv(a.p[i + 3]));
                sb_add(out, &x, 1);
                i += 3;
                continue;
            }
            if (r) {
                sb_add(out, &r, 1);
                i++;
                continue;
            }
        }
        sb_add(out, &c, 1);
    }
    if (out->p == NULL)
        sb_add(out, "", 0);
    sb_free(&a);
}

static void trim_trailing_ows(sbuf *b)
{
    while (b->n && (b->p[b->n - 1] == ' ' || b->p[b->n - 1] == '\t'))
        b->p[--b->n] = 0;
}

/* The bytes of a logged span. llhttp's log prints them raw apart from \t,
 * \r, \n and \f (and single CR or LF bytes as cr / lf), so the printed
 * text is decoded and checked against the input at the logged offset. They
 * differ only after a \xHH escape above 0x7f: llhttp's runner feeds such a
 * character UTF-8 encoded (two bytes), while the corpus README, which loom
 * follows, makes it one byte; the printed character is then folded back to
 * that byte (U+0080..U+00FF -> one byte). */
static size_t span_text(const char *rest, const sbuf *in, long off, long len, char *out, size_t cap)
{
    const char *eq = strstr(rest, "]=");
    CHECK(eq != NULL);
    eq += 2;
    if (strcmp(eq, "cr") == 0 || strcmp(eq, "lf") == 0) {
        out[0] = eq[0] == 'c' ? '\r' : '\n';
        return 1;
    }
    CHECK(*eq == '"');
    const char *a = eq + 1, *b = eq + strlen(eq) - 1;
    CHECK(b >= a && *b == '"');
    size_t n = 0;
    for (const char *p = a; p < b; p++) {
        CHECK(n + 1 < cap);
        if (*p == '\\' && p + 1 < b && strchr("trnf", p[1])) {
            out[n++] = p[1] == 't' ? '\t' : p[1] == 'r' ? '\r' : p[1] == 'n' ? '\n' : '\f';
            p++;
        } else {
            out[n++] = *p;
        }
    }
    if (off >= 0 && (size_t)off + n <= in->n && (long)n == len && memcmp(in->p + off, out, n) == 0)
        return n;
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if ((c == 0xc2 || c == 0xc3) && i + 1 < n) {
            out[m++] = (char)(((c & 0x03) << 6) | ((unsigned char)out[i + 1] & 0x3f));
            i++;
        } else {
            out[m++] = out[i];
        }
    }
    return m;
}

/* Builds the expected outcome from llhttp's log. */
static void parse_log(const char *log, size_t loglen, const sbuf *in, outcome_t *o)
{
    const char *p = log, *end = log + loglen;
    msg_t *m = NULL;
    enum { K_NONE, K_FIELD, K_VALUE, K_EXTN, K_EXTV } last = K_NONE;
    o->finish = -1;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        char line[4096];
        size_t ln = (size_t)(eol - p);
        if (ln >= sizeof line)
            ln = sizeof line - 1;
        memcpy(line, p, ln);
        line[ln] = 0;
        p = eol + 1;

        long off = -1, len = -1;
        char kind[64];
        int code;
        if (sscanf(line, "off=NULL finish=%d", &code) == 1) {
            o->finish = code == 2;
            continue;
        }
        if (sscanf(line, "off=%ld", &off) != 1)
            continue;
        const char *rest = strchr(line, ' ');
        if (!rest)
            continue;
        rest++;
        if (strcmp(rest, "message begin") == 0) {
            CHECK(o->n < MAX_MSGS);
            m = &o->m[o->n++];
            m->started = 1;
            last = K_NONE;
        } else if (strncmp(rest, "headers complete", 16) == 0 && m) {
            m->have_head = 1;
            const char *v = strstr(rest, " v=");
            CHECK(v && sscanf(v, " v=%d/%d", &m->major, &m->minor) == 2);
            const char *st = strstr(rest, "status=");
            if (st)
                m->status = atoi(st + 7);
            last = K_NONE;
        } else if (strstr(rest, "_complete") == NULL && strstr(rest, " complete") &&
                   strncmp(rest, "message", 7) != 0 && strncmp(rest, "headers", 7) != 0) {
            last = K_NONE; /* "header_field complete" and the like end a span */
        } else if (strcmp(rest, "message complete") == 0 && m) {
            m->complete = 1;
        } else if (sscanf(rest, "error code=%d", &code) == 1) {
            if (code == 22) {
                o->paused = 1;
            } else {
                o->error = 1;
                o->errcode = code;
            }
        } else if (sscanf(rest, "len=%ld span[%63[^]]]", &len, kind) == 2 && m) {
            char text[4096];
            size_t n = span_text(rest, in, off, len, text, sizeof text);
            const char *s = text;
            if (strcmp(kind, "method") == 0) {
                sb_add(&m->method, s, n);
            } else if (strcmp(kind, "url") == 0) {
                sb_add(&m->url, s, n);
            } else if (strcmp(kind, "status") == 0) {
                sb_add(&m->reason, s, n);
            } else if (strcmp(kind, "body") == 0) {
                sb_add(&m->body, s, n);
            } else if (strcmp(kind, "header_field") == 0) {
                kv_t *arr = m->have_head ? m->trailers : m->fields;
                int *cnt = m->have_head ? &m->ntrailers : &m->nfields;
                if (last != K_FIELD) {
                    CHECK(*cnt < MAX_FIELDS);
                    (*cnt)++;
                    sb_add(&arr[*cnt - 1].value, "", 0);
                }
                sb_add(&arr[*cnt - 1].name, s, n);
                last = K_FIELD;
            } else if (strcmp(kind, "header_value") == 0) {
                kv_t *arr = m->have_head ? m->trailers : m->fields;
                int cnt = m->have_head ? m->ntrailers : m->nfields;
                CHECK(cnt > 0);
                sb_add(&arr[cnt - 1].value, s, n);
                last = K_VALUE;
            } else if (strcmp(kind, "chunk_extension_name") == 0) {
                if (last != K_EXTN) {
                    CHECK(m->nexts < MAX_EXTS);
                    m->nexts++;
                    sb_add(&m->exts[m->nexts - 1].value, "", 0);
                }
                sb_add(&m->exts[m->nexts - 1].name, s, n);
                last = K_EXTN;
            } else if (strcmp(kind, "chunk_extension_value") == 0) {
                CHECK(m->nexts > 0);
                sb_add(&m->exts[m->nexts - 1].value, s, n);
                last = K_EXTV;
            }
            /* protocol and version spans: the version comes from "headers complete". */
        }
    }
    for (int i = 0; i < o->n; i++) {
        for (int j = 0; j < o->m[i].nfields; j++)
            trim_trailing_ows(&o->m[i].fields[j].value);
        for (int j = 0; j < o->m[i].ntrailers; j++)
            trim_trailing_ows(&o->m[i].trailers[j].value);
    }
}

/* ------------------------------------------------------------------------ */
/* Running loom over a case                                                  */

static size_t skip_crlf(const sbuf *in, size_t pos)
{
    while (pos + 1 < in->n && in->p[pos] == '\r' && in->p[pos + 1] == '\n')
        pos += 2;
    return pos;
}

static void run_loom(const sbuf *in, int is_request, int skip_body, int finish, unsigned lflags,
                     outcome_t *o)
{
    loom_http_limits_t lim = {.flags = lflags};
    size_t pos = 0;
    o->finish = -1;
    for (;;) {
        size_t q = skip_crlf(in, pos);
        if (q >= in->n || (q + 1 == in->n && in->p[q] == '\r'))
            break; /* nothing (but empty lines) left: no message started */
        if (o->n == MAX_MSGS)
            break;
        msg_t *m = &o->m[o->n++];
        m->started = 1;
        loom_http_header_t h[MAX_FIELDS];
        size_t nh = MAX_FIELDS;
        loom_http_framing_t fr;
        int r;
        if (is_request) {
            loom_http_request_t req;
            r = loom_http_parse_request(in->p + pos, in->n - pos, 0, &req, h, &nh, &lim);
            if (r > 0) {
                sb_add(&m->method, req.method_str, req.method_len);
                sb_add(&m->url, req.target, req.target_len);
                m->major = 1;
                m->minor = req.minor_version;
                if (req.method != LOOM_HTTP_METHOD_OTHER)
                    CHECK(strcmp(loom_http_method_str(req.method), m->method.p) == 0);
                loom_http_request_framing(&req, &fr);
            }
        } else {
            loom_http_response_t res;
            r = loom_http_parse_response(in->p + pos, in->n - pos, 0, &res, h, &nh, &lim);
            if (r > 0) {
                sb_add(&m->reason, res.reason, res.reason_len);
                m->major = 1;
                m->minor = res.minor_version;
                m->status = res.status;
                loom_http_response_framing(&res, LOOM_HTTP_METHOD_GET, &fr);
            }
        }
        if (r == LOOM_HTTP_INCOMPLETE) {
            if (finish)
                o->finish = 1;
            return;
        }
        if (r < 0) {
            o->error = 1;
            o->errcode = r;
            return;
        }
        m->have_head = 1;
        for (size_t i = 0; i < nh; i++) {
            sb_add(&m->fields[i].name, h[i].name, h[i].name_len);
            sb_add(&m->fields[i].value, h[i].value, h[i].value_len);
        }
        m->nfields = (int)nh;
        pos += (size_t)r;

        if (skip_body)
            fr.kind = LOOM_HTTP_BODY_NONE;
        loom_http_body_t body;
        r = loom_http_body_init(&body, &fr, &lim);
        if (r < 0) {
            o->error = 1;
            o->errcode = r;
            return;
        }
        loom_http_body_out_t out;
        for (;;) {
            loom_http_header_t tr[MAX_FIELDS];
            memset(&out, 0, sizeof out);
            out.trailers = tr;
            out.ntrailers = MAX_FIELDS;
            r = loom_http_body_parse(&body, in->p + pos, in->n - pos, &out);
            if (r < 0) {
                o->error = 1;
                o->errcode = r;
                return;
            }
            pos += (size_t)r;
            if (out.data_len)
                sb_add(&m->body, out.data, out.data_len);
            size_t epos = 0;
            loom_http_header_t e;
            while (loom_http_chunk_ext_next(out.ext, out.ext_len, &epos, &e)) {
                CHECK(m->nexts < MAX_EXTS);
                kv_t *x = &m->exts[m->nexts++];
                sb_add(&x->name, e.name, e.name_len);
                sb_add(&x->value, e.value, e.value_len);
            }
            for (size_t i = 0; i < out.ntrailers; i++) {
                kv_t *x = &m->trailers[m->ntrailers++];
                sb_add(&x->name, tr[i].name, tr[i].name_len);
                sb_add(&x->value, tr[i].value, tr[i].value_len);
            }
            if (out.done || r == 0)
                break;
        }
        if (!out.done) {
            if (finish)
                o->finish = loom_http_body_finish(&body) != 0;
            return;
        }
        m->complete = 1;
        if (fr.upgrade || fr.tunnel) {
            o->paused = 1;
            return;
        }
        if (fr.informational)
            continue;
        if (!fr.keep_alive) {
            if (skip_crlf(in, pos) < in->n) {
                o->error = 1;
                o->errcode = 0; /* data after the last message */
            }
            return;
        }
    }
    if (finish)
        o->finish = 0;
}

/* ------------------------------------------------------------------------ */
/* Comparing                                                                 */

static char why_buf[1024];

static void why(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why_buf, sizeof why_buf, fmt, ap);
    va_end(ap);
}

static int kv_eq(const kv_t *a, int na, const kv_t *b, int nb, const char *what, int msg)
{
    if (na != nb) {
        why("message %d: %d %s expected, loom has %d", msg, na, what, nb);
        return 0;
    }
    for (int i = 0; i < na; i++) {
        if (!sb_eq(&a[i].name, &b[i].name) || !sb_eq(&a[i].value, &b[i].value)) {
            why("message %d: %s %d: expected '%s: %s', loom has '%s: %s'", msg, what, i,
                a[i].name.p ? a[i].name.p : "", a[i].value.p ? a[i].value.p : "",
                b[i].name.p ? b[i].name.p : "", b[i].value.p ? b[i].value.p : "");
            return 0;
        }
    }
    return 1;
}

static int count_complete(const outcome_t *o)
{
    int n = 0;
    for (int i = 0; i < o->n; i++)
        n += o->m[i].complete;
    return n;
}

/* Compares one message; with head_only, only the start line and fields. */
static int msg_eq(const msg_t *x, const msg_t *y, int i, int is_request, int head_only)
{
    if (x->have_head != y->have_head) {
        why("message %d: llhttp %s the head, loom %s", i, x->have_head ? "parsed" : "did not parse",
            y->have_head ? "did" : "did not");
        return 0;
    }
    if (!x->have_head)
        return 1;
    if (is_request && (!sb_eq(&x->method, &y->method) || !sb_eq(&x->url, &y->url))) {
        why("message %d: request line differs ('%s %s' vs '%s %s')", i, x->method.p, x->url.p,
            y->method.p, y->url.p);
        return 0;
    }
    if (!is_request && (x->status != y->status || !sb_eq(&x->reason, &y->reason))) {
        why("message %d: status line differs (%d '%s' vs %d '%s')", i, x->status,
            x->reason.p ? x->reason.p : "", y->status, y->reason.p ? y->reason.p : "");
        return 0;
    }
    if (x->major != y->major || x->minor != y->minor) {
        why("message %d: version %d.%d vs %d.%d", i, x->major, x->minor, y->major, y->minor);
        return 0;
    }
    if (!kv_eq(x->fields, x->nfields, y->fields, y->nfields, "fields", i))
        return 0;
    if (head_only)
        return 1;
    if (!kv_eq(x->trailers, x->ntrailers, y->trailers, y->ntrailers, "trailers", i) ||
        !kv_eq(x->exts, x->nexts, y->exts, y->nexts, "chunk extensions", i))
        return 0;
    if (!sb_eq(&x->body, &y->body)) {
        why("message %d: body differs (%zu vs %zu bytes)", i, x->body.n, y->body.n);
        return 0;
    }
    if (x->complete != y->complete) {
        why("message %d: llhttp %s it, loom %s", i, x->complete ? "completes" : "does not complete",
            y->complete ? "does" : "does not");
        return 0;
    }
    return 1;
}

/* Accepted or rejected must agree, and so must every message. When both
 * reject, the message in which the error happens is compared only as far as
 * its head, and only if both parsed the head: how much of a broken body
 * llhttp streams before it notices is not loom's concern (loom checks a whole
 * chunk line before reporting it), and where llhttp reports a head and then
 * rejects it (an invalid Transfer-Encoding), loom rejects the head itself. */
static int compare(const outcome_t *e, const outcome_t *a, int is_request)
{
    if (e->error != a->error) {
        why("llhttp %s (code %d), loom %s (%s)", e->error ? "rejects" : "accepts", e->errcode,
            a->error ? "rejects" : "accepts",
            a->errcode ? loom_http_perr_str(a->errcode) : "data after last message");
        return 0;
    }
    if (e->paused != a->paused) {
        why("llhttp %s for upgrade/CONNECT, loom %s", e->paused ? "stops" : "goes on",
            a->paused ? "stops" : "goes on");
        return 0;
    }
    if (count_complete(e) != count_complete(a)) {
        why("llhttp completed %d messages, loom %d", count_complete(e), count_complete(a));
        return 0;
    }
    if (e->error) {
        int n = count_complete(e);
        for (int i = 0; i < n; i++)
            if (!msg_eq(&e->m[i], &a->m[i], i, is_request, 0))
                return 0;
        if (e->n > n && a->n > n && e->m[n].have_head && a->m[n].have_head &&
            !msg_eq(&e->m[n], &a->m[n], n, is_request, 1))
            return 0;
        return 1;
    }
    if (e->n != a->n) {
        why("llhttp started %d messages, loom %d", e->n, a->n);
        return 0;
    }
    for (int i = 0; i < e->n; i++)
        if (!msg_eq(&e->m[i], &a->m[i], i, is_request, 0))
            return 0;
    if (e->finish >= 0 && e->finish != a->finish) {
        why("finish: llhttp %s, loom %s", e->finish ? "error" : "ok", a->finish ? "error" : "ok");
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------------ */

/* llhttp never asks for Host, so with that one rule relaxed every request
 * case must match too; this also runs the body decoder on the cases that the
 * Host rule would otherwise stop at the head. */
static int relaxed_same(const sbuf *in, int skip_body, int finish, const outcome_t *exp)
{
    outcome_t again;
    memset(&again, 0, sizeof again);
    run_loom(in, 1, skip_body, finish, LOOM_HTTP_LIMIT_ALLOW_NO_HOST, &again);
    int same = compare(exp, &again, 1);
    outcome_free(&again);
    return same;
}

static int ncases, npassed, nstricter, nlaxer, nskipped, nfailed;
static int verbose;

static void run_case(const char *file, const char *heading, const char *type, int skip_body,
                     const sbuf *raw, const char *log, size_t loglen)
{
    int is_request = strncmp(type, "request", 7) == 0;
    const char *mode = type + (is_request ? 7 : 8);
    int finish = strcmp(mode, "-finish") == 0;
    if (*mode && !finish) {
        nskipped++; /* one of llhttp's lenient switches */
        if (verbose)
            printf("skip  %s: %s (type %s)\n", file, heading, type);
        return;
    }
    ncases++;
    sbuf in = {0};
    normalise(raw->p, raw->n, &in);

    outcome_t exp, act;
    memset(&exp, 0, sizeof exp);
    memset(&act, 0, sizeof act);
    parse_log(log, loglen, &in, &exp);
    run_loom(&in, is_request, skip_body, finish, 0, &act);
    int same = compare(&exp, &act, is_request);

    stricter_t *st = NULL;
    for (size_t i = 0; i < sizeof stricter / sizeof stricter[0]; i++)
        if (strcmp(stricter[i].file, file) == 0 && strcmp(stricter[i].heading, heading) == 0)
            st = &stricter[i];
    laxer_t *lx = NULL;
    for (size_t i = 0; i < sizeof laxer / sizeof laxer[0]; i++)
        if (strcmp(laxer[i].file, file) == 0 && strcmp(laxer[i].heading, heading) == 0)
            lx = &laxer[i];

    if (st) {
        st->seen = 1;
        if (same || !act.error || act.errcode != st->code) {
            nfailed++;
            printf("FAIL  %s: %s: listed as stricter (%s) but loom gives %s\n", file, heading,
                   loom_http_perr_str(st->code),
                   same        ? "the same result as llhttp"
                   : act.error ? loom_http_perr_str(act.errcode)
                               : "no error");
        } else if (st->relax) {
            outcome_t again;
            memset(&again, 0, sizeof again);
            run_loom(&in, is_request, skip_body, finish, st->relax, &again);
            if (compare(&exp, &again, is_request)) {
                nstricter++;
            } else {
                nfailed++;
                printf("FAIL  %s: %s: relaxed run differs: %s\n", file, heading, why_buf);
            }
            outcome_free(&again);
        } else {
            nstricter++;
        }
    } else if (lx) {
        lx->seen = 1;
        outcome_t again;
        memset(&again, 0, sizeof again);
        run_loom(&in, is_request, skip_body, finish, lx->relax, &again);
        if (exp.error && !again.error) {
            nlaxer++;
        } else {
            nfailed++;
            printf("FAIL  %s: %s: listed as laxer but %s\n", file, heading,
                   again.error ? "loom rejects it" : "llhttp accepts it");
        }
        outcome_free(&again);
    } else if (same && is_request && !relaxed_same(&in, skip_body, finish, &exp)) {
        nfailed++;
        printf("FAIL  %s: %s: with LOOM_HTTP_LIMIT_ALLOW_NO_HOST: %s\n", file, heading, why_buf);
    } else if (same) {
        npassed++;
        if (verbose)
            printf("ok    %s: %s\n", file, heading);
    } else {
        nfailed++;
        printf("FAIL  %s: %s: %s\n", file, heading, why_buf);
        if (act.error && !exp.error)
            printf("      (loom error: %s)\n", loom_http_perr_str(act.errcode));
    }
    outcome_free(&exp);
    outcome_free(&act);
    sb_free(&in);
}

/* Walks one markdown file: headings, meta comments, http and log blocks. */
static void run_file(const char *dir, const char *sub, const char *name)
{
    char path[4096], file[512];
    snprintf(path, sizeof path, "%s/llhttp/%s/%s", dir, sub, name);
    snprintf(file, sizeof file, "%s/%s", sub, name);
    size_t len;
    char *s = read_file(path, &len);
    CHECK(s != NULL);

    char heading[512] = "", type[128] = "";
    int skip_body = 0, have_meta = 0, have_http = 0;
    sbuf raw = {0};
    /* Headings that repeat in a file get " #2", " #3" so each case has a name. */
    char seen[64][512];
    int nseen = 0;
    char name_buf[600];

    const char *p = s, *end = s + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        size_t ln = (size_t)(eol - p);
        if (ln > 0 && p[0] == '#') {
            const char *h = p;
            while (h < eol && (*h == '#' || *h == ' '))
                h++;
            snprintf(heading, sizeof heading, "%.*s", (int)(eol - h), h);
        } else if (ln > 12 && strncmp(p, "<!-- meta=", 10) == 0) {
            const char *t = strstr(p, "\"type\"");
            CHECK(t && t < eol);
            t = strchr(t + 6, '"');
            CHECK(t != NULL);
            const char *te = strchr(t + 1, '"');
            snprintf(type, sizeof type, "%.*s", (int)(te - t - 1), t + 1);
            const char *sb = strstr(p, "skipBody");
            skip_body = sb && sb < eol;
            have_meta = 1;
            have_http = 0;
        } else if (have_meta && ln >= 7 && strncmp(p, "```http", 7) == 0) {
            const char *b = eol + 1;
            const char *q = b;
            while (q < end && !(strncmp(q, "```", 3) == 0 && (q == b || q[-1] == '\n')))
                q++;
            sb_free(&raw);
            sb_add(&raw, b, (size_t)(q - b));
            have_http = 1;
            eol = memchr(q, '\n', (size_t)(end - q));
            if (!eol)
                eol = end;
        } else if (have_meta && have_http && ln >= 6 && strncmp(p, "```log", 6) == 0) {
            const char *b = eol + 1;
            const char *q = strstr(b, "\n```");
            CHECK(q != NULL);
            int dup = 1;
            for (int i = 0; i < nseen; i++)
                dup += strcmp(seen[i], heading) == 0;
            if (nseen < 64)
                snprintf(seen[nseen++], sizeof seen[0], "%s", heading);
            if (dup > 1)
                snprintf(name_buf, sizeof name_buf, "%s #%d", heading, dup);
            else
                snprintf(name_buf, sizeof name_buf, "%s", heading);
            run_case(file, name_buf, type, skip_body, &raw, b, (size_t)(q + 1 - b));
            have_meta = have_http = 0;
            eol = strchr(q + 1, '\n');
            if (!eol)
                eol = end;
        }
        p = eol + 1;
    }
    sb_free(&raw);
    free(s);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void run_dir(const char *dir, const char *sub)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/llhttp/%s", dir, sub);
    DIR *d = opendir(path);
    CHECK(d != NULL);
    char *names[128];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 4 || strcmp(de->d_name + l - 3, ".md") != 0)
            continue;
        if (strncmp(de->d_name, "lenient-", 8) == 0 || strcmp(de->d_name, "pausing.md") == 0)
            continue;
        CHECK(n < 128);
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_names);
    for (int i = 0; i < n; i++) {
        run_file(dir, sub, names[i]);
        free(names[i]);
    }
}

int main(int argc, char **argv)
{
    test_timeout(60);
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    const char *dir = getenv("LOOM_CONFORMANCE_DIR");
#ifdef LOOM_CONFORMANCE_DIR
    if (!dir || !*dir)
        dir = LOOM_CONFORMANCE_DIR;
#endif
    char probe[4096];
    snprintf(probe, sizeof probe, "%s/llhttp/request", dir ? dir : "");
    DIR *d = dir ? opendir(probe) : NULL;
    if (!d) {
        printf("conformance: corpus not found at %s, skipping\n", dir ? dir : "(unset)");
        return 77;
    }
    closedir(d);

    run_dir(dir, "request");
    run_dir(dir, "response");

    for (size_t i = 0; i < sizeof stricter / sizeof stricter[0]; i++)
        if (!stricter[i].seen) {
            nfailed++;
            printf("FAIL  stricter list names a missing case: %s: %s\n", stricter[i].file,
                   stricter[i].heading);
        }
    for (size_t i = 0; i < sizeof laxer / sizeof laxer[0]; i++)
        if (!laxer[i].seen) {
            nfailed++;
            printf("FAIL  laxer list names a missing case: %s: %s\n", laxer[i].file,
                   laxer[i].heading);
        }
    if (verbose) {
        for (size_t i = 0; i < sizeof stricter / sizeof stricter[0]; i++)
            printf("stricter  %s: %s: %s\n", stricter[i].file, stricter[i].heading,
                   stricter[i].why);
        for (size_t i = 0; i < sizeof laxer / sizeof laxer[0]; i++)
            printf("laxer     %s: %s: %s\n", laxer[i].file, laxer[i].heading, laxer[i].why);
    }
    printf("conformance: %d cases, %d passed, %d stricter-by-design, %d laxer-by-design, "
           "%d failed (%d lenient-mode cases skipped)\n",
           ncases, npassed, nstricter, nlaxer, nfailed, nskipped);
    return nfailed ? 1 : 0;
}
