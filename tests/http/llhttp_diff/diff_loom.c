/* tests/http/llhttp_diff/diff_loom.c - loom's side of the HTTP/1 differential
 * against llhttp (see diff_run.py; not part of the unit tests).
 *
 * Build: cc -O1 -g -fsanitize=address,undefined -Iinclude src/http/parser.c \
 *            tests/http/llhttp_diff/diff_loom.c -o diff_loom
 *
 * stdin: cases, each a 4-byte little-endian length, a mode byte ('q'
 * request, 'r' response to GET, 'h' response to HEAD, 'c' response to
 * CONNECT) and the bytes. stdout: one line per case, the messages as JSON
 * (start line, fields with trimmed values, body, trailers, done) and then
 * how the input ended: ok, upgrade, closed, eof-in-head, eof-in-body or
 * "err <message>|<code>". Requests without Host are accepted
 * (LOOM_HTTP_LIMIT_ALLOW_NO_HOST) unless STRICT_HOST is set, since llhttp
 * does not check Host.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/http_parser.h"

static void esc(const char *p, size_t n, int trim)
{
    if (trim) {
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        while (n && (p[0] == ' ' || p[0] == '\t')) {
            p++;
            n--;
        }
    }
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void fields(const char *key, const loom_http_header_t *h, size_t n)
{
    printf(",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        printf(i ? ",[" : "[");
        esc(h[i].name, h[i].name_len, 0);
        putchar(',');
        esc(h[i].value, h[i].value_len, 1);
        putchar(']');
    }
    putchar(']');
}

/* Only CR and LF bytes remain: the input ended between messages. */
static int only_eols(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n')
            return 0;
    return 1;
}

static void run(char mode, const char *buf, size_t len)
{
    size_t off = 0;
    int nmsg = 0;
    const char *status = "ok";
    char err[96] = "";
    loom_http_limits_t hl = {0};
    hl.flags = getenv("STRICT_HOST") ? 0 : LOOM_HTTP_LIMIT_ALLOW_NO_HOST;
    printf("[");
    while (off < len) {
        loom_http_header_t h[128];
        size_t nh = 128;
        loom_http_framing_t fr;
        loom_http_request_t q;
        loom_http_response_t s;
        int r = mode == 'q' ? loom_http_parse_request(buf + off, len - off, 0, &q, h, &nh, &hl)
                            : loom_http_parse_response(buf + off, len - off, 0, &s, h, &nh, NULL);
        if (r == LOOM_HTTP_INCOMPLETE) {
            status = only_eols(buf + off, len - off) ? "ok" : "eof-in-head";
            break;
        }
        if (r < 0) {
            status = "err";
            snprintf(err, sizeof err, "%s|%d", loom_http_perr_str(r), r);
            break;
        }
        printf(nmsg++ ? ",{" : "{");
        if (mode == 'q') {
            printf("\"m\":");
            esc(q.method_str, q.method_len, 0);
            printf(",\"t\":");
            esc(q.target, q.target_len, 0);
            printf(",\"v\":\"1.%d\"", q.minor_version);
            loom_http_request_framing(&q, &fr);
        } else {
            printf("\"s\":%d,\"reason\":", s.status);
            esc(s.reason, s.reason_len, 0);
            printf(",\"v\":\"1.%d\"", s.minor_version);
            loom_http_response_framing(&s,
                                       mode == 'h'   ? LOOM_HTTP_METHOD_HEAD
                                       : mode == 'c' ? LOOM_HTTP_METHOD_CONNECT
                                                     : LOOM_HTTP_METHOD_GET,
                                       &fr);
        }
        fields("h", h, nh);
        off += (size_t)r;
        if (fr.upgrade || fr.tunnel) {
            printf(",\"up\":1}");
            status = "upgrade";
            break;
        }
        loom_http_body_t b;
        loom_http_limits_t bl = {0};
        bl.max_body_size = UINT64_MAX;
        loom_http_body_init(&b, &fr, &bl);
        char *body = malloc(len + 1);
        size_t blen = 0, ntr = 0;
        loom_http_header_t tr[64];
        int berr = 0;
        for (;;) {
            loom_http_body_out_t o;
            memset(&o, 0, sizeof o);
            o.trailers = tr;
            o.ntrailers = 64;
            int k = loom_http_body_parse(&b, buf + off, len - off, &o);
            if (k < 0) {
                berr = k;
                break;
            }
            if (o.data_len)
                memcpy(body + blen, o.data, o.data_len);
            blen += o.data_len;
            off += (size_t)k;
            if (o.ntrailers)
                ntr = o.ntrailers;
            if (o.done || (k == 0 && o.data_len == 0))
                break;
        }
        printf(",\"bd\":");
        esc(body, blen, 0);
        fields("tr", tr, ntr);
        free(body);
        if (berr) {
            printf("}");
            status = "err";
            snprintf(err, sizeof err, "%s|%d", loom_http_perr_str(berr), berr);
            break;
        }
        if (!loom_http_body_done(&b)) {
            int f = loom_http_body_finish(&b);
            printf(",\"done\":%d}", f == 0);
            status = f == 0 ? "ok" : "eof-in-body";
            break;
        }
        printf(",\"done\":1}");
        if (!fr.keep_alive) {
            status = only_eols(buf + off, len - off) ? "ok" : "closed";
            break;
        }
    }
    printf("] %s %s\n", status, err);
}

int main(void)
{
    unsigned char hdr[5];
    while (fread(hdr, 1, 5, stdin) == 5) {
        size_t n = hdr[0] | hdr[1] << 8 | hdr[2] << 16 | (size_t)hdr[3] << 24;
        char *b = malloc(n ? n : 1);
        if (fread(b, 1, n, stdin) != n) {
            free(b);
            break;
        }
        run((char)hdr[4], b, n);
        free(b);
        fflush(stdout);
    }
    return 0;
}
