/* tests/ws/test_ws_frame.c - the WebSocket frame parser, encoder, close
 * payloads and masking.
 *
 * LOOM_TEST_NO_BACKEND: pure code, no event loop, so it runs once.
 *
 * Every stream is parsed whole, split at every point into two reads, and fed
 * one byte per read; each read is first copied so that it ends right before a
 * PROT_NONE page (a read past the end crashes the test). All ways must give
 * the same frames, payload bytes, close codes and error. The error cases
 * cover every LOOM_WS_ERR_* the parser returns, and check that limits fail on
 * the header alone, before any payload arrives.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loom/ws_frame.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Guard pages                                                               */

static struct {
    uint8_t *map;
    size_t len;
} gslot;

/* Copies s[0..n) so that it ends right before an inaccessible page. The
 * copy is writable (the parser unmasks in place). */
static uint8_t *guard(const void *s, size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (n + pg - 1) / pg + 1;
    if (gslot.map)
        munmap(gslot.map, gslot.len);
    uint8_t *map =
        mmap(NULL, (pages + 1) * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(map != MAP_FAILED);
    CHECK(mprotect(map + pages * pg, pg, PROT_NONE) == 0);
    gslot.map = map;
    gslot.len = (pages + 1) * pg;
    uint8_t *dst = map + pages * pg - n;
    if (n)
        memcpy(dst, s, n);
    return dst;
}

/* ------------------------------------------------------------------------ */
/* Building streams                                                          */

typedef struct {
    uint8_t b[300000];
    size_t n;
} stream_t;

static const uint8_t KEY[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Appends a frame; masked frames get KEY and a masked payload. */
static void put_frame(stream_t *s, int fin, int rsv, int op, int masked, const void *pl, size_t n)
{
    /* Built by hand (so invalid frames can be made too), and compared with
     * the encoder's output where the encoder accepts the frame. */
    uint8_t h[LOOM_WS_HEADER_MAX];
    int hl = 2;
    h[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv << 4) | op);
    h[1] = masked ? 0x80 : 0;
    if (n < 126) {
        h[1] |= (uint8_t)n;
    } else if (n < 65536) {
        h[1] |= 126;
        h[2] = (uint8_t)(n >> 8), h[3] = (uint8_t)n;
        hl = 4;
    } else {
        h[1] |= 127;
        for (int k = 0; k < 8; k++)
            h[2 + k] = (uint8_t)((uint64_t)n >> (56 - 8 * k));
        hl = 10;
    }
    if (masked) {
        memcpy(h + hl, KEY, 4);
        hl += 4;
    }
    loom_ws_frame_t f = {.payload_len = n,
                         .fin = (uint8_t)fin,
                         .rsv = (uint8_t)rsv,
                         .opcode = (uint8_t)op,
                         .masked = (uint8_t)masked};
    memcpy(f.mask, KEY, 4);
    uint8_t e[LOOM_WS_HEADER_MAX];
    int el = loom_ws_frame_header(e, &f);
    if (el != LOOM_EINVAL) {
        CHECK_EQ(el, hl);
        CHECK(memcmp(e, h, (size_t)hl) == 0);
        CHECK((size_t)hl == loom_ws_frame_header_len(n, masked));
    } else {
        CHECK(LOOM_WS_OP_IS_CONTROL(op) && (!fin || n > 125));
    }
    CHECK(s->n + (size_t)hl + n <= sizeof s->b);
    memcpy(s->b + s->n, h, (size_t)hl);
    s->n += (size_t)hl;
    if (masked)
        loom_ws_mask_copy(s->b + s->n, pl, n, KEY, 0);
    else if (n)
        memcpy(s->b + s->n, pl, n);
    s->n += n;
}

/* Appends raw bytes (for hand-made headers). */
static void put_raw(stream_t *s, const void *p, size_t n)
{
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

/* ------------------------------------------------------------------------ */
/* Parsing a stream in reads                                                 */

#define MAXF 64

typedef struct {
    int err;
    size_t nframes;
    struct {
        int fin, rsv, op, masked, msg_end;
        uint64_t len;
        unsigned close_code;
    } f[MAXF];
    uint8_t data[300000];
    size_t ndata;
    size_t consumed;
} result_t;

static result_t R1, R2;

/* Parses s in reads cut at the given points (sorted, within 0..n). */
static void run(const stream_t *s, const loom_ws_parser_opts_t *o, const size_t *cuts, size_t ncuts,
                result_t *r)
{
    loom_ws_parser_t p;
    loom_ws_parser_init(&p, o);
    memset(r, 0, sizeof *r);
    size_t start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : s->n;
        if (end < start)
            end = start;
        uint8_t *buf = guard(s->b + start, end - start);
        size_t len = end - start, pos = 0;
        while (pos < len) {
            loom_ws_parse_out_t out;
            int n = loom_ws_parse(&p, buf + pos, len - pos, &out);
            if (n < 0) {
                r->err = n;
                CHECK(loom_ws_parse(&p, buf, len, &out) == LOOM_WS_ERR_STATE);
                return;
            }
            CHECK(n > 0);
            CHECK((size_t)n <= len - pos);
            if (out.flags & LOOM_WS_OUT_HEADER) {
                CHECK(r->nframes < MAXF);
                size_t i = r->nframes++;
                r->f[i].fin = out.frame.fin;
                r->f[i].rsv = out.frame.rsv;
                r->f[i].op = out.frame.opcode;
                r->f[i].masked = out.frame.masked;
                r->f[i].len = out.frame.payload_len;
                CHECK(out.offset == 0);
            }
            if (r->nframes == 0) {
                CHECK(out.flags == 0 && out.data_len == 0);
                pos += (size_t)n;
                r->consumed += (size_t)n;
                continue;
            }
            if (out.data_len) {
                CHECK(out.data >= buf + pos && out.data + out.data_len <= buf + pos + (size_t)n);
                memcpy(r->data + r->ndata, out.data, out.data_len);
                r->ndata += out.data_len;
            }
            if (out.frame.opcode == LOOM_WS_OP_CLOSE && out.close_code)
                r->f[r->nframes - 1].close_code = out.close_code;
            if (out.flags & LOOM_WS_OUT_MSG_END)
                r->f[r->nframes - 1].msg_end = 1;
            if (out.flags & LOOM_WS_OUT_FRAME_END)
                CHECK(out.offset + out.data_len == out.frame.payload_len);
            pos += (size_t)n;
            r->consumed += (size_t)n;
        }
        start = end;
    }
}

static int same(const result_t *a, const result_t *b)
{
    /* On an error, the frames and data before it may differ by where the
     * reads ended (the header of the failing frame is reported or not). */
    if (a->err || b->err)
        return a->err == b->err;
    if (a->nframes != b->nframes)
        return 0;
    if (memcmp(a->f, b->f, sizeof a->f[0] * a->nframes) != 0)
        return 0;
    return a->ndata == b->ndata && memcmp(a->data, b->data, a->ndata) == 0;
}

/* Parses whole, at every single split point and byte by byte; all must
 * agree. Returns the one-shot result in R1. */
static void parse_all_ways(const stream_t *s, const loom_ws_parser_opts_t *o)
{
    run(s, o, NULL, 0, &R1);
    size_t step = s->n > 2000 ? s->n / 97 : 1;
    for (size_t k = 0; k <= s->n; k += step) {
        run(s, o, &k, 1, &R2);
        if (!same(&R1, &R2)) {
            fprintf(stderr, "split at %zu: err %d vs %d, frames %zu vs %zu\n", k, R1.err, R2.err,
                    R1.nframes, R2.nframes);
            CHECK(0);
        }
    }
    if (s->n <= 4096) {
        static size_t cuts[4096];
        for (size_t k = 0; k < s->n; k++)
            cuts[k] = k + 1;
        run(s, o, cuts, s->n, &R2);
        CHECK(same(&R1, &R2));
    }
}

static const loom_ws_parser_opts_t SERVER = {.role = LOOM_WS_ROLE_SERVER,
                                             .flags = LOOM_WS_PARSE_UTF8};
static const loom_ws_parser_opts_t CLIENT = {.role = LOOM_WS_ROLE_CLIENT,
                                             .flags = LOOM_WS_PARSE_UTF8};

/* Expects `err` from the stream, parsed all ways. */
static void expect_err(const stream_t *s, const loom_ws_parser_opts_t *o, int err)
{
    parse_all_ways(s, o);
    if (R1.err != err) {
        fprintf(stderr, "expected %d (%s), got %d (%s)\n", err, loom_ws_err_str(err), R1.err,
                loom_ws_err_str(R1.err));
        CHECK(0);
    }
}

/* ------------------------------------------------------------------------ */
/* Valid streams                                                             */

static stream_t S;

static void test_rfc_examples(void)
{
    /* RFC 6455 section 5.7. */
    static const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                     0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t frag[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
    static const uint8_t ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                   0x7f, 0x9f, 0x4d, 0x51, 0x58};
    static const uint8_t b256[] = {0x82, 0x7E, 0x01, 0x00};
    static const uint8_t b64k[] = {0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0};

    S.n = 0;
    put_raw(&S, unmasked, sizeof unmasked);
    parse_all_ways(&S, &CLIENT);
    CHECK_EQ(R1.err, 0);
    CHECK_EQ(R1.nframes, 1);
    CHECK(R1.ndata == 5 && memcmp(R1.data, "Hello", 5) == 0);
    CHECK(R1.f[0].fin && R1.f[0].msg_end && R1.f[0].op == 1 && !R1.f[0].masked);

    S.n = 0;
    put_raw(&S, masked, sizeof masked);
    parse_all_ways(&S, &SERVER);
    CHECK_EQ(R1.err, 0);
    CHECK(R1.ndata == 5 && memcmp(R1.data, "Hello", 5) == 0);
    CHECK(R1.f[0].masked);

    S.n = 0;
    put_raw(&S, frag, sizeof frag);
    put_raw(&S, ping, sizeof ping);
    parse_all_ways(&S, &CLIENT);
    CHECK_EQ(R1.err, 0);
    CHECK_EQ(R1.nframes, 3);
    CHECK(!R1.f[0].fin && !R1.f[0].msg_end && R1.f[1].op == 0 && R1.f[1].msg_end);
    CHECK(R1.f[2].op == LOOM_WS_OP_PING);
    CHECK(R1.ndata == 10 && memcmp(R1.data, "HelloHello", 10) == 0);

    S.n = 0;
    put_raw(&S, pong, sizeof pong);
    parse_all_ways(&S, &SERVER);
    CHECK(R1.err == 0 && R1.f[0].op == LOOM_WS_OP_PONG);

    /* 256 bytes (16-bit length) and 64 KiB (64-bit length), unmasked. */
    static uint8_t payload[65536];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 7);
    S.n = 0;
    put_raw(&S, b256, sizeof b256);
    put_raw(&S, payload, 256);
    put_raw(&S, b64k, sizeof b64k);
    put_raw(&S, payload, 65536);
    parse_all_ways(&S, &CLIENT);
    CHECK_EQ(R1.err, 0);
    CHECK_EQ(R1.nframes, 2);
    CHECK(R1.f[0].len == 256 && R1.f[1].len == 65536);
    CHECK(R1.ndata == 256 + 65536);
    CHECK(memcmp(R1.data, payload, 256) == 0 && memcmp(R1.data + 256, payload, 65536) == 0);
}

static void test_valid_mix(void)
{
    static uint8_t big[70000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)('a' + i % 26);
    for (int role = 0; role < 2; role++) {
        int m = role == 0;
        const loom_ws_parser_opts_t *o = role == 0 ? &SERVER : &CLIENT;
        S.n = 0;
        put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, m, "", 0);         /* empty text */
        put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, m, big, 125);    /* 7-bit max */
        put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, m, big, 126);    /* 16-bit min */
        put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, m, big, 65535);  /* 16-bit max */
        put_frame(&S, 0, 0, LOOM_WS_OP_TEXT, m, "κό", 4);       /* split char... */
        put_frame(&S, 0, 0, LOOM_WS_OP_CONT, m, "\xcf\x83", 1); /* ...across frames */
        put_frame(&S, 1, 0, LOOM_WS_OP_PING, m, "p", 1);        /* control inside */
        put_frame(&S, 0, 0, LOOM_WS_OP_CONT, m, "\x83", 1);     /* ends σ */
        put_frame(&S, 1, 0, LOOM_WS_OP_CONT, m, "", 0);         /* empty final */
        put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, m, big, 65536);  /* 64-bit min */
        put_frame(&S, 1, 0, LOOM_WS_OP_PONG, m, big, 125);      /* control max */
        put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, m,
                  "\x03\xe8"
                  "bye \xc3\xa9",
                  8);
        put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, m, "", 0);
        put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, m, "\x0f\xa0", 2); /* 4000, no reason */
        parse_all_ways(&S, o);
        CHECK_EQ(R1.err, 0);
        CHECK_EQ(R1.nframes, 14);
        CHECK_EQ(R1.consumed, S.n);
        CHECK(R1.f[0].msg_end && R1.f[3].len == 65535 && R1.f[9].len == 65536);
        CHECK(!R1.f[4].msg_end && !R1.f[7].msg_end && R1.f[8].msg_end);
        CHECK_EQ(R1.f[11].close_code, 1000);
        CHECK_EQ(R1.f[12].close_code, LOOM_WS_CLOSE_NO_STATUS);
        CHECK_EQ(R1.f[13].close_code, 4000);
        CHECK_EQ(R1.f[9].masked, m);
    }
}

static void test_idle_and_state(void)
{
    loom_ws_parser_t p;
    loom_ws_parser_init(&p, &CLIENT);
    CHECK(loom_ws_parser_idle(&p));
    uint8_t b[] = {0x01, 0x02, 'a'};
    loom_ws_parse_out_t out;
    CHECK_EQ(loom_ws_parse(&p, b, 1, &out), 1);
    CHECK(!loom_ws_parser_idle(&p));
    CHECK_EQ(out.flags, 0);
    CHECK_EQ(loom_ws_parse(&p, b + 1, 2, &out), 2);
    CHECK(out.flags & LOOM_WS_OUT_HEADER);
    CHECK(!(out.flags & LOOM_WS_OUT_FRAME_END));
    CHECK_EQ(out.data_len, 1);
    CHECK_EQ(loom_ws_parser_in_message(&p), LOOM_WS_OP_TEXT);
    CHECK_EQ(loom_ws_parse(&p, b, 0, &out), 0);
    uint8_t c = 'b';
    CHECK_EQ(loom_ws_parse(&p, &c, 1, &out), 1);
    CHECK(out.flags == LOOM_WS_OUT_FRAME_END && out.offset == 1 && out.frame.payload_len == 2);
    CHECK(loom_ws_parser_idle(&p));
    CHECK_EQ(loom_ws_parser_in_message(&p), LOOM_WS_OP_TEXT);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

static void test_errors(void)
{
    uint8_t big[200];
    memset(big, 'x', sizeof big);

    /* Role. */
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 0, "hi", 2);
    expect_err(&S, &SERVER, LOOM_WS_ERR_MASK_REQUIRED);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 1, "hi", 2);
    expect_err(&S, &CLIENT, LOOM_WS_ERR_MASK_FORBIDDEN);

    /* Reserved bits. */
    for (int rsv = 1; rsv < 8; rsv++) {
        S.n = 0;
        put_frame(&S, 1, rsv, LOOM_WS_OP_BINARY, 1, "hi", 2);
        expect_err(&S, &SERVER, LOOM_WS_ERR_RSV);
    }
    loom_ws_parser_opts_t defl = SERVER;
    defl.flags |= LOOM_WS_PARSE_DEFLATE;
    S.n = 0;
    put_frame(&S, 0, 4, LOOM_WS_OP_TEXT, 1, "hi", 2);
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, "hi", 2);
    parse_all_ways(&S, &defl);
    CHECK_EQ(R1.err, 0);
    CHECK_EQ(R1.f[0].rsv, 4);
    S.n = 0;
    put_frame(&S, 0, 4, LOOM_WS_OP_TEXT, 1, "hi", 2);
    put_frame(&S, 1, 4, LOOM_WS_OP_CONT, 1, "hi", 2);
    expect_err(&S, &defl, LOOM_WS_ERR_RSV1_PLACEMENT);
    S.n = 0;
    put_frame(&S, 1, 4, LOOM_WS_OP_PING, 1, "hi", 2);
    expect_err(&S, &defl, LOOM_WS_ERR_RSV1_PLACEMENT);
    S.n = 0;
    put_frame(&S, 1, 2, LOOM_WS_OP_TEXT, 1, "hi", 2);
    expect_err(&S, &defl, LOOM_WS_ERR_RSV);

    /* Opcodes. */
    for (int op = 3; op <= 15; op++) {
        if (op >= 8 && op <= 10)
            continue;
        S.n = 0;
        put_frame(&S, 1, 0, op, 1, "", 0);
        expect_err(&S, &SERVER, LOOM_WS_ERR_OPCODE);
    }

    /* Control frames. */
    S.n = 0;
    put_frame(&S, 0, 0, LOOM_WS_OP_PING, 1, "a", 1);
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, "b", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_CONTROL_FRAGMENTED);
    S.n = 0;
    put_raw(&S, "\x89\xfe\x00\x7e", 4); /* ping, masked, 16-bit length 126 */
    expect_err(&S, &SERVER, LOOM_WS_ERR_CONTROL_TOO_BIG);
    S.n = 0;
    put_raw(&S, "\x88\x7e\x00\x7d", 4); /* 125 in the 16-bit form: still the 7-bit check */
    expect_err(&S, &CLIENT, LOOM_WS_ERR_CONTROL_TOO_BIG);

    /* Fragmentation. */
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, "a", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_CONT_UNEXPECTED);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 1, "a", 1);
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, "a", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_CONT_UNEXPECTED);
    S.n = 0;
    put_frame(&S, 0, 0, LOOM_WS_OP_TEXT, 1, "a", 1);
    put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, 1, "a", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_DATA_IN_MESSAGE);

    /* Lengths: 2^63 and above; the error comes before any payload. */
    S.n = 0;
    put_raw(&S, "\x82\x7f\x80\x00\x00\x00\x00\x00\x00\x00", 10);
    expect_err(&S, &CLIENT, LOOM_WS_ERR_LENGTH);
    S.n = 0;
    put_raw(&S, "\x82\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x02\x03\x04", 14);
    expect_err(&S, &SERVER, LOOM_WS_ERR_LENGTH);
    /* Non-minimal lengths: accepted by default, refused when strict. */
    S.n = 0;
    put_raw(&S, "\x82\x7e\x00\x05hello", 9);
    parse_all_ways(&S, &CLIENT);
    CHECK(R1.err == 0 && R1.f[0].len == 5);
    loom_ws_parser_opts_t strict = CLIENT;
    strict.flags |= LOOM_WS_PARSE_STRICT_LENGTH;
    expect_err(&S, &strict, LOOM_WS_ERR_LENGTH_NOT_MINIMAL);
    S.n = 0;
    put_raw(&S, "\x82\x7f\x00\x00\x00\x00\x00\x00\xff\xff", 10);
    expect_err(&S, &strict, LOOM_WS_ERR_LENGTH_NOT_MINIMAL);

    /* Close payloads. */
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, 1, "\x03", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_CLOSE_PAYLOAD);
    static const unsigned bad_codes[] = {0,    999,  1004, 1005, 1006, 1015,
                                         1016, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        uint8_t c[3] = {(uint8_t)(bad_codes[i] >> 8), (uint8_t)bad_codes[i], 'x'};
        S.n = 0;
        put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, 1, c, 3);
        expect_err(&S, &SERVER, LOOM_WS_ERR_CLOSE_CODE);
    }
    static const unsigned good_codes[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                          1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        uint8_t c[2] = {(uint8_t)(good_codes[i] >> 8), (uint8_t)good_codes[i]};
        S.n = 0;
        put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, 0, c, 2);
        parse_all_ways(&S, &CLIENT);
        CHECK_EQ(R1.err, 0);
        CHECK_EQ(R1.f[0].close_code, good_codes[i]);
    }
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, 1, "\x03\xe8\xce\xba\xe1\xbd", 6); /* truncated */
    expect_err(&S, &SERVER, LOOM_WS_ERR_CLOSE_REASON);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_CLOSE, 1, "\x03\xe8\xed\xa0\x80", 5); /* surrogate */
    expect_err(&S, &SERVER, LOOM_WS_ERR_CLOSE_REASON);

    /* Limits, checked on the header: the payload never arrives here. */
    loom_ws_parser_opts_t lim = {.role = LOOM_WS_ROLE_SERVER, .max_frame = 100, .max_message = 150};
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, 1, big, 101);
    S.n -= 101;
    expect_err(&S, &lim, LOOM_WS_ERR_FRAME_TOO_BIG);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, 1, big, 100); /* at the limit: fine */
    put_frame(&S, 0, 0, LOOM_WS_OP_BINARY, 1, big, 100);
    put_frame(&S, 1, 0, LOOM_WS_OP_PING, 1, big, 100); /* control: not counted */
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, big, 50);  /* 150 = the limit */
    parse_all_ways(&S, &lim);
    CHECK_EQ(R1.err, 0);
    S.n = 0;
    put_frame(&S, 0, 0, LOOM_WS_OP_BINARY, 1, big, 100);
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, big, 51);
    S.n -= 51;
    expect_err(&S, &lim, LOOM_WS_ERR_MESSAGE_TOO_BIG);
    CHECK_EQ(loom_ws_err_close_code(R1.err), 1009);
    /* Compressed: the wire bound is max_message + max_message / 64 + 64. */
    loom_ws_parser_opts_t climit = {
        .role = LOOM_WS_ROLE_SERVER, .flags = LOOM_WS_PARSE_DEFLATE, .max_message = 128};
    S.n = 0;
    put_frame(&S, 1, 4, LOOM_WS_OP_BINARY, 1, big, 194);
    parse_all_ways(&S, &climit);
    CHECK_EQ(R1.err, 0);
    S.n = 0;
    put_frame(&S, 1, 4, LOOM_WS_OP_BINARY, 1, big, 195);
    expect_err(&S, &climit, LOOM_WS_ERR_MESSAGE_TOO_BIG);

    /* UTF-8 in uncompressed text, across frames and fail-fast. */
    S.n = 0;
    put_frame(&S, 0, 0, LOOM_WS_OP_TEXT, 1, "ok \xce", 4);
    put_frame(&S, 1, 0, LOOM_WS_OP_CONT, 1, "\x41", 1);
    expect_err(&S, &SERVER, LOOM_WS_ERR_UTF8);
    CHECK_EQ(loom_ws_err_close_code(R1.err), 1007);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 1, "ok \xce", 4); /* truncated at the end */
    expect_err(&S, &SERVER, LOOM_WS_ERR_UTF8);
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_BINARY, 1, "ok \xce", 4); /* binary: not checked */
    parse_all_ways(&S, &SERVER);
    CHECK_EQ(R1.err, 0);
    loom_ws_parser_opts_t noutf8 = {.role = LOOM_WS_ROLE_SERVER};
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 1, "ok \xce", 4);
    parse_all_ways(&S, &noutf8);
    CHECK_EQ(R1.err, 0);
    /* Fail-fast: a 64 KiB frame whose first bytes are invalid fails while only
     * its first bytes have arrived. */
    static uint8_t fr[70000];
    memset(fr, 'a', sizeof fr);
    fr[10] = 0xc0;
    S.n = 0;
    put_frame(&S, 1, 0, LOOM_WS_OP_TEXT, 1, fr, 65536);
    S.n -= 65536 - 11;
    expect_err(&S, &SERVER, LOOM_WS_ERR_UTF8);
}

static void test_err_table(void)
{
    static const int codes[] = {
#define X(name, val, close, msg) LOOM_WS_ERR_##name,
        LOOM_WS_ERR_MAP(X)
#undef X
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = loom_ws_err_str(codes[i]);
        CHECK(strlen(s) > 0 && strlen(s) <= LOOM_WS_MAX_CLOSE_REASON);
        int c = loom_ws_err_close_code(codes[i]);
        CHECK(c == 1002 || c == 1007 || c == 1009 || c == 1010 || c == 1011);
        for (size_t j = 0; j < i; j++)
            CHECK(codes[j] != codes[i]);
    }
    CHECK_STR(loom_ws_err_str(0), "unknown websocket error");
    CHECK_EQ(loom_ws_err_close_code(LOOM_EINVAL), 0);
}

/* ------------------------------------------------------------------------ */
/* Encoder and close payloads                                                */

static void test_encoder(void)
{
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 1ull << 32, (1ull << 63) - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        for (int m = 0; m < 2; m++) {
            loom_ws_frame_t f = {.payload_len = lens[i],
                                 .fin = 1,
                                 .opcode = 2,
                                 .masked = (uint8_t)m,
                                 .mask = {1, 2, 3, 4}};
            uint8_t h[LOOM_WS_HEADER_MAX];
            int n = loom_ws_frame_header(h, &f);
            CHECK_EQ(n, (int)loom_ws_frame_header_len(lens[i], m));
            /* Parse the header back (the payload is not there). */
            loom_ws_parser_t p;
            loom_ws_parser_init(&p, m ? &SERVER : &CLIENT);
            loom_ws_parse_out_t out;
            CHECK_EQ(loom_ws_parse(&p, h, (size_t)n, &out), n);
            CHECK(out.flags & LOOM_WS_OUT_HEADER);
            CHECK(out.frame.payload_len == lens[i]);
            CHECK(out.frame.masked == m && out.frame.fin == 1 && out.frame.opcode == 2);
            if (m)
                CHECK(memcmp(out.frame.mask, f.mask, 4) == 0);
        }
    }
    uint8_t h[LOOM_WS_HEADER_MAX];
    loom_ws_frame_t f = {.payload_len = 1ull << 63, .fin = 1, .opcode = 2};
    CHECK_EQ(loom_ws_frame_header(h, &f), LOOM_EINVAL);
    f = (loom_ws_frame_t){.payload_len = 126, .fin = 1, .opcode = LOOM_WS_OP_PING};
    CHECK_EQ(loom_ws_frame_header(h, &f), LOOM_EINVAL);
    f = (loom_ws_frame_t){.payload_len = 1, .fin = 0, .opcode = LOOM_WS_OP_CLOSE};
    CHECK_EQ(loom_ws_frame_header(h, &f), LOOM_EINVAL);
    f = (loom_ws_frame_t){.payload_len = 1, .fin = 1, .opcode = 16};
    CHECK_EQ(loom_ws_frame_header(h, &f), LOOM_EINVAL);
    f = (loom_ws_frame_t){.payload_len = 3, .fin = 1, .rsv = 4, .opcode = 1};
    CHECK_EQ(loom_ws_frame_header(h, &f), 2);
    CHECK(h[0] == 0xC1 && h[1] == 3);
}

static void test_close_payload(void)
{
    uint8_t out[LOOM_WS_MAX_CONTROL];
    CHECK_EQ(loom_ws_close_payload(out, 0, "ignored", 7), 0);
    CHECK_EQ(loom_ws_close_payload(out, 1000, NULL, 0), 2);
    CHECK(out[0] == 0x03 && out[1] == 0xe8);
    CHECK_EQ(loom_ws_close_payload(out, 4001, "bye", 3), 5);
    CHECK(memcmp(out + 2, "bye", 3) == 0);
    CHECK_EQ(loom_ws_close_payload(out, 1005, NULL, 0), LOOM_EINVAL);
    CHECK_EQ(loom_ws_close_payload(out, 1006, NULL, 0), LOOM_EINVAL);
    CHECK_EQ(loom_ws_close_payload(out, 999, NULL, 0), LOOM_EINVAL);
    CHECK_EQ(loom_ws_close_payload(out, 1000, "\xff", 1), LOOM_EINVAL);
    /* 200 bytes of 2-byte characters: cut to 122 (61 characters), never
     * inside one. */
    char reason[200];
    for (int i = 0; i < 200; i += 2)
        reason[i] = (char)0xc3, reason[i + 1] = (char)0xa9;
    int n = loom_ws_close_payload(out, 1000, reason, sizeof reason);
    CHECK_EQ(n, 2 + 122);
    CHECK(loom_ws_utf8_valid(out + 2, 122));
    /* ASCII is cut at exactly 123. */
    memset(reason, 'r', sizeof reason);
    CHECK_EQ(loom_ws_close_payload(out, 1000, reason, sizeof reason), 125);

    unsigned code;
    const char *r;
    size_t rl;
    CHECK_EQ(loom_ws_close_parse(out, 125, &code, &r, &rl), 0);
    CHECK(code == 1000 && rl == 123 && r == (const char *)out + 2);
    CHECK_EQ(loom_ws_close_parse(out, 0, &code, &r, &rl), 0);
    CHECK_EQ(code, 1005);
    CHECK_EQ(loom_ws_close_parse(out, 1, &code, &r, &rl), LOOM_WS_ERR_CLOSE_PAYLOAD);
    uint8_t big[126] = {0x03, 0xe8};
    memset(big + 2, 'a', 124);
    CHECK_EQ(loom_ws_close_parse(big, 126, &code, &r, &rl), LOOM_WS_ERR_CONTROL_TOO_BIG);
    uint8_t bad[3] = {0x03, 0xed, 'a'};
    CHECK_EQ(loom_ws_close_parse(bad, 3, &code, &r, &rl), LOOM_WS_ERR_CLOSE_CODE);
    uint8_t badr[4] = {0x03, 0xe8, 0xc0, 0x80};
    CHECK_EQ(loom_ws_close_parse(badr, 4, &code, &r, &rl), LOOM_WS_ERR_CLOSE_REASON);
}

/* ------------------------------------------------------------------------ */
/* Masking                                                                   */

static void test_mask(void)
{
    static uint8_t src[320 + 16], ref[320], buf[320 + 32], cp[320 + 32];
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 31 + 7);
    for (size_t len = 0; len <= 300; len++) {
        for (unsigned off = 0; off < 4; off++) {
            for (size_t k = 0; k < len; k++)
                ref[k] = src[k] ^ key[(off + k) % 4];
            for (size_t align = 0; align < 16; align += (len > 40 ? 5 : 1)) {
                /* In place, at every alignment. */
                memcpy(buf + align, src, len);
                CHECK_EQ(loom_ws_mask(buf + align, len, key, off), (off + len) % 4);
                CHECK(memcmp(buf + align, ref, len) == 0);
                /* Copy, from a differently aligned source. */
                memset(cp, 0, sizeof cp);
                CHECK_EQ(loom_ws_mask_copy(cp + align, src + (15 - align), len, key, off),
                         (off + len) % 4);
                for (size_t k = 0; k < len; k++)
                    CHECK(cp[align + k] == (src[15 - align + k] ^ key[(off + k) % 4]));
                CHECK(cp[align + len] == 0);
            }
            /* Split into two calls at every point, chaining the offset. */
            for (size_t cut = 0; cut <= len; cut += (len > 40 ? 7 : 1)) {
                memcpy(buf, src, len);
                unsigned o = loom_ws_mask(buf, cut, key, off);
                loom_ws_mask(buf + cut, len - cut, key, o);
                CHECK(memcmp(buf, ref, len) == 0);
            }
        }
    }
}

int main(void)
{
    test_timeout(60);
    test_rfc_examples();
    test_valid_mix();
    test_idle_and_state();
    test_errors();
    test_err_table();
    test_encoder();
    test_close_payload();
    test_mask();
    if (gslot.map)
        munmap(gslot.map, gslot.len);
    printf("ok\n");
    return 0;
}
