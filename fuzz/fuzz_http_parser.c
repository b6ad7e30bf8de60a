/* fuzz/fuzz_http_parser.c - libFuzzer target for the HTTP/1.1 parser.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_SOURCES: src/http/parser.c
 *
 * The first input byte picks options (scalar scanner, small limits, obs-fold
 * in responses); the rest is fed to the request parser, the response parser
 * and the chunked decoder.
 * Besides memory errors (ASan: every buffer handed to the parser is a heap
 * block of exactly its length), the target checks that incremental parsing
 * agrees with one-shot parsing:
 *   - a head parsed from a prefix is LOOM_HTTP_INCOMPLETE or the same result;
 *   - a head fed in growing pieces with the last_len hint ends the same way;
 *   - the body decoder gives the same data, extensions, trailers and result
 *     whatever the split of its input into reads.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loom/http_parser.h"

#define MAXH 24

typedef struct {
    int r, method, minor, status;
    size_t a, b, c, d;
    unsigned flags;
    uint64_t cl;
    size_t nh;
    size_t h[MAXH][4];
} snap_t;

static snap_t parse(int req, const char *buf, size_t len, size_t last, const loom_http_limits_t *l)
{
    snap_t s;
    loom_http_header_t h[MAXH];
    size_t nh = MAXH;
    memset(&s, 0, sizeof s);
    if (req) {
        loom_http_request_t q;
        s.r = loom_http_parse_request(buf, len, last, &q, h, &nh, l);
        if (s.r > 0) {
            s.method = q.method;
            s.minor = q.minor_version;
            s.a = (size_t)(q.method_str - buf);
            s.b = q.method_len;
            s.c = (size_t)(q.target - buf);
            s.d = q.target_len;
            s.flags = q.flags;
            s.cl = q.content_length;
        }
    } else {
        loom_http_response_t p;
        s.r = loom_http_parse_response(buf, len, last, &p, h, &nh, l);
        if (s.r > 0) {
            s.status = p.status;
            s.minor = p.minor_version;
            s.a = (size_t)(p.reason - buf);
            s.b = p.reason_len;
            s.flags = p.flags;
            s.cl = p.content_length;
        }
    }
    if (s.r > 0) {
        if ((size_t)s.r > len)
            __builtin_trap();
        s.nh = nh;
        for (size_t i = 0; i < nh; i++) {
            s.h[i][0] = (size_t)(h[i].name - buf);
            s.h[i][1] = h[i].name_len;
            s.h[i][2] = (size_t)(h[i].value - buf);
            s.h[i][3] = h[i].value_len;
            if (s.h[i][0] + s.h[i][1] > len || s.h[i][2] + s.h[i][3] > len)
                __builtin_trap();
        }
    }
    return s;
}

/* A heap copy of exactly n bytes, so ASan flags any read past it. */
static char *dup_exact(const uint8_t *p, size_t n)
{
    char *d = malloc(n ? n : 1);
    if (n)
        memcpy(d, p, n);
    return d;
}

static uint32_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static void check_head(int req, const uint8_t *data, size_t n, const loom_http_limits_t *l)
{
    char *full = dup_exact(data, n);
    snap_t one = parse(req, full, n, 0, l);
    free(full);

    /* A few prefixes. */
    for (int i = 0; i < 4 && n; i++) {
        size_t k = rnd() % n;
        char *p = dup_exact(data, k);
        snap_t s = parse(req, p, k, 0, l);
        free(p);
        if (s.r != LOOM_HTTP_INCOMPLETE && memcmp(&s, &one, sizeof s) != 0)
            __builtin_trap();
    }
    /* Growing pieces with the hint. A malformed head may stay INCOMPLETE
     * while it is unterminated (documented); anything else must agree. */
    size_t last = 0, k = 0;
    snap_t s;
    memset(&s, 0, sizeof s);
    s.r = LOOM_HTTP_INCOMPLETE;
    while (k < n) {
        k += 1 + rnd() % 64;
        if (k > n)
            k = n;
        char *p = dup_exact(data, k);
        s = parse(req, p, k, last, l);
        free(p);
        last = k;
        if (s.r != LOOM_HTTP_INCOMPLETE)
            break;
    }
    if (n && !(one.r < 0 && s.r == LOOM_HTTP_INCOMPLETE) && memcmp(&s, &one, sizeof s) != 0)
        __builtin_trap();
}

typedef struct {
    int r;
    size_t consumed;
    uint64_t hash; /* of data, extensions and trailers, in order */
    size_t ndata;
} body_res_t;

/* FNV-1a over body bytes: independent of how the data was split. */
static uint64_t mix_data(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* An extension or trailer item: always whole, so its length is mixed in. */
static uint64_t mix(uint64_t h, const char *p, size_t n)
{
    return mix_data(h, p, n) * 31 + n + 1;
}

/* Decodes with reads of random sizes (max_step 0: all at once). */
static body_res_t decode(const loom_http_framing_t *f, const loom_http_limits_t *l,
                         const uint8_t *in, size_t n, size_t max_step)
{
    body_res_t res = {0, 0, 1469598103934665603ull, 0};
    loom_http_body_t b;
    res.r = loom_http_body_init(&b, f, l);
    if (res.r < 0)
        return res;
    size_t pos = 0, avail = max_step ? 1 + rnd() % max_step : n;
    if (avail > n)
        avail = n;
    for (int guard = 0; guard < 100000; guard++) {
        loom_http_header_t tr[8];
        loom_http_body_out_t out = {.trailers = tr, .ntrailers = 8};
        char *p = dup_exact(in + pos, avail - pos);
        int r = loom_http_body_parse(&b, p, avail - pos, &out);
        if (r < 0) {
            free(p);
            res.r = r;
            return res;
        }
        if ((size_t)r > avail - pos)
            __builtin_trap();
        /* A call reports a chunk line's extensions, then that chunk's data. */
        size_t ep = 0;
        loom_http_header_t e;
        while (loom_http_chunk_ext_next(out.ext, out.ext_len, &ep, &e)) {
            res.hash = mix(res.hash, e.name, e.name_len);
            res.hash = mix(res.hash, e.value, e.value_len);
        }
        if (out.data_len) {
            if (out.data < p || out.data + out.data_len > p + (avail - pos))
                __builtin_trap();
            res.hash = mix_data(res.hash, out.data, out.data_len);
            res.ndata += out.data_len;
        }
        for (size_t i = 0; i < out.ntrailers; i++) {
            res.hash = mix(res.hash, tr[i].name, tr[i].name_len);
            res.hash = mix(res.hash, tr[i].value, tr[i].value_len);
        }
        free(p);
        pos += (size_t)r;
        if (out.done) {
            res.consumed = pos;
            return res;
        }
        if (r == 0) {
            if (avail == n) {
                res.r = LOOM_HTTP_INCOMPLETE;
                return res;
            }
            avail += max_step ? 1 + rnd() % max_step : n;
            if (avail > n)
                avail = n;
        }
    }
    __builtin_trap(); /* no progress */
}

static void check_body(const loom_http_framing_t *f, const loom_http_limits_t *l, const uint8_t *in,
                       size_t n)
{
    body_res_t one = decode(f, l, in, n, 0);
    for (int i = 0; i < 2; i++) {
        body_res_t s = decode(f, l, in, n, i ? 3 : 97);
        if (s.r != one.r || s.hash != one.hash || s.ndata != one.ndata ||
            s.consumed != one.consumed)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t opt = data[0];
    data++;
    size--;
    rng_state = (uint32_t)size * 2654435761u ^ opt;

    loom_http_limits_t l = {0};
    if (opt & 1)
        l.flags |= LOOM_HTTP_LIMIT_SCALAR;
    if (opt & 2)
        l.flags |= LOOM_HTTP_LIMIT_ALLOW_NO_HOST;
    if (opt & 16)
        l.flags |= LOOM_HTTP_LIMIT_OBS_FOLD; /* the client's: responses unfold */
    if (opt & 4) {
        l.max_request_line = 64;
        l.max_header_bytes = 128;
        l.max_headers = 4;
        l.max_chunk_ext = 16;
        l.max_body_size = 64;
    }

    check_head(1, data, size, &l);
    check_head(0, data, size, &l);

    /* The body after a parsed head, framed as the head says. */
    char *full = dup_exact(data, size);
    loom_http_request_t req;
    loom_http_response_t res;
    loom_http_header_t h[MAXH];
    size_t nh = MAXH;
    loom_http_framing_t f;
    int r = loom_http_parse_request(full, size, 0, &req, h, &nh, &l);
    if (r > 0) {
        loom_http_request_framing(&req, &f);
        check_body(&f, &l, data + r, size - (size_t)r);
    }
    nh = MAXH;
    r = loom_http_parse_response(full, size, 0, &res, h, &nh, &l);
    if (r > 0) {
        /* Values are trimmed: no fold (or whitespace) at either end, and
         * CR or LF inside one only when folding was asked for and seen. */
        for (size_t i = 0; i < nh; i++) {
            const char *v = h[i].value;
            size_t vl = h[i].value_len;
            if (vl &&
                (v[0] == ' ' || v[0] == '\t' || v[0] == '\r' || v[0] == '\n' || v[vl - 1] == ' ' ||
                 v[vl - 1] == '\t' || v[vl - 1] == '\r' || v[vl - 1] == '\n'))
                __builtin_trap();
            if (!(res.flags & LOOM_HTTP_F_OBS_FOLD) && (memchr(v, '\r', vl) || memchr(v, '\n', vl)))
                __builtin_trap();
        }
        loom_http_response_framing(&res, (opt & 8) ? LOOM_HTTP_METHOD_HEAD : LOOM_HTTP_METHOD_GET,
                                   &f);
        check_body(&f, &l, data + r, size - (size_t)r);
    }
    free(full);

    /* The whole input as a chunked body. */
    loom_http_framing_t ch = {.kind = LOOM_HTTP_BODY_CHUNKED};
    check_body(&ch, &l, data, size);
    return 0;
}
