/* fuzz/fuzz_ws_frame.c - libFuzzer target for the WebSocket frame parser.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_SOURCES: src/ws/frame.c src/ws/mask.c src/ws/utf8.c
 *
 * The first input byte picks the role (server or client), the flags
 * (deflate, UTF-8 validation, strict lengths) and small limits; the rest is
 * the byte stream. Besides memory errors (every buffer handed to the parser is
 * a heap block of exactly its length), the target checks that:
 *   - every call with bytes consumes at least one and at most all of them,
 *     and payload slices lie inside the bytes of that call;
 *   - parsing in random reads gives the same frames, payload bytes, close
 *     codes and error as parsing in one read;
 *   - every reported header re-encodes (loom_ws_frame_header) to a header
 *     that parses back to the same frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loom/ws_frame.h"

typedef struct {
    int err;
    uint64_t hash; /* headers, payload bytes, flags and close codes */
    uint64_t data; /* payload bytes only */
} res_t;

static uint32_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 1099511628211ull;
}

static void check_reencode(const loom_ws_frame_t *f, int role)
{
    uint8_t h[LOOM_WS_HEADER_MAX];
    int n = loom_ws_frame_header(h, f);
    if (n < 0)
        __builtin_trap(); /* the parser only reports valid frames */
    loom_ws_parser_t p;
    loom_ws_parser_init(
        &p, &(loom_ws_parser_opts_t){.role = (loom_ws_role_t)role, .flags = LOOM_WS_PARSE_DEFLATE});
    /* A continuation needs a message in progress: start one. */
    if (f->opcode == LOOM_WS_OP_CONT) {
        uint8_t start[6] = {0x01, (uint8_t)(role == LOOM_WS_ROLE_SERVER ? 0x80 : 0), 0, 0, 0, 0};
        loom_ws_parse_out_t o;
        if (loom_ws_parse(&p, start, role == LOOM_WS_ROLE_SERVER ? 6 : 2, &o) < 0)
            __builtin_trap();
    }
    uint8_t *b = malloc((size_t)n);
    memcpy(b, h, (size_t)n);
    loom_ws_parse_out_t o;
    int r = loom_ws_parse(&p, b, (size_t)n, &o);
    free(b);
    if (r != n || !(o.flags & LOOM_WS_OUT_HEADER) || o.frame.payload_len != f->payload_len ||
        o.frame.fin != f->fin || o.frame.rsv != f->rsv || o.frame.opcode != f->opcode ||
        o.frame.masked != f->masked || memcmp(o.frame.mask, f->mask, 4) != 0)
        __builtin_trap();
}

static res_t run(const uint8_t *data, size_t size, const loom_ws_parser_opts_t *o, int split,
                 int reencode)
{
    res_t res = {0, 1469598103934665603ull, 1469598103934665603ull};
    loom_ws_parser_t p;
    loom_ws_parser_init(&p, o);
    size_t pos = 0;
    while (pos < size) {
        size_t n = split ? 1 + rnd() % (rnd() % 4 == 0 ? 64 : 4) : size - pos;
        if (n > size - pos)
            n = size - pos;
        uint8_t *buf = malloc(n);
        memcpy(buf, data + pos, n);
        size_t off = 0;
        while (off < n) {
            loom_ws_parse_out_t out;
            int r = loom_ws_parse(&p, buf + off, n - off, &out);
            if (r < 0) {
                free(buf);
                res.err = r;
                if (loom_ws_err_close_code(r) == 0)
                    __builtin_trap();
                return res;
            }
            if (r == 0 || (size_t)r > n - off)
                __builtin_trap();
            if (out.flags & LOOM_WS_OUT_HEADER) {
                res.hash = mix(res.hash, out.frame.payload_len);
                res.hash = mix(res.hash, (uint64_t)out.frame.opcode << 8 | out.frame.fin << 4 |
                                             out.frame.rsv);
                if (reencode)
                    check_reencode(&out.frame, o->role);
            }
            if (out.data_len) {
                if (out.data < buf + off || out.data + out.data_len > buf + off + (size_t)r)
                    __builtin_trap();
                for (size_t i = 0; i < out.data_len; i++) {
                    res.hash = mix(res.hash, out.data[i]);
                    res.data = mix(res.data, out.data[i]);
                }
            }
            if (out.flags & LOOM_WS_OUT_FRAME_END) {
                res.hash = mix(res.hash, 0x100000u | (out.flags & ~LOOM_WS_OUT_HEADER) << 16 |
                                             out.close_code);
                if (out.offset + out.data_len != out.frame.payload_len)
                    __builtin_trap();
            }
            off += (size_t)r;
        }
        free(buf);
        pos += n;
    }
    return res;
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
    loom_ws_parser_opts_t o = {
        .role = (opt & 1) ? LOOM_WS_ROLE_CLIENT : LOOM_WS_ROLE_SERVER,
        .flags = (unsigned)((opt >> 1) & 7),
    };
    if (opt & 16) {
        o.max_frame = 64;
        o.max_message = 200;
    }
    res_t one = run(data, size, &o, 0, 1);
    for (int i = 0; i < 2; i++) {
        res_t s = run(data, size, &o, 1, 0);
        /* Before an error, how much was delivered depends on the reads. */
        if (s.err != one.err || (!one.err && (s.hash != one.hash || s.data != one.data)))
            __builtin_trap();
    }
    return 0;
}
