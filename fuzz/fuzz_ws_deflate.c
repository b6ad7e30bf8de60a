/* fuzz/fuzz_ws_deflate.c - libFuzzer target for permessage-deflate: the
 * inflate path with its message limit, the codec's round trip, and the
 * Sec-WebSocket-Extensions negotiation.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_SOURCES: src/ws/deflate.c src/ws/utf8.c src/ws/frame.c src/ws/mask.c -lz
 *
 * The first input byte picks the window bits, context takeover and the
 * message limit; the rest is, at once:
 *   - a compressed message, inflated in one call and again in random input
 *     pieces into random small output chunks: the results must agree, and no
 *     more than max_message + 1 bytes may ever be produced;
 *   - a message compressed (in up to three pieces) and inflated back: it must
 *     come back equal (or exceed the limit exactly when it is larger);
 *   - a Sec-WebSocket-Extensions value for the offer parser, the server's
 *     negotiation (whose response must parse back as what was agreed) and the
 *     client's response check.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loom/ws_frame.h"

static uint32_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return rng_state >> 8;
}

typedef struct {
    int r;
    size_t n;
    uint64_t hash;
} inf_t;

#define OUT_MAX 300000

static inf_t inflate_all(loom_ws_deflate_t *d, const uint8_t *in, size_t n, int split, uint64_t max)
{
    inf_t res = {0, 0, 1469598103934665603ull};
    size_t pos = 0;
    static uint8_t out[4096];
    int guard = 0;
    while (guard++ < 1000000) {
        size_t piece = split ? 1 + rnd() % 300 : n - pos;
        if (piece > n - pos)
            piece = n - pos;
        uint8_t *copy = malloc(piece ? piece : 1);
        memcpy(copy, in + pos, piece);
        const uint8_t *p = copy;
        size_t left = piece;
        int last = pos + piece == n;
        for (;;) {
            size_t room = split ? 1 + rnd() % 200 : sizeof out;
            int r = loom_ws_inflate(d, &p, &left, last, out, &room);
            if (room > (split ? 200 : sizeof out))
                __builtin_trap();
            for (size_t i = 0; i < room; i++)
                res.hash = (res.hash ^ out[i]) * 1099511628211ull;
            res.n += room;
            if (max && res.n > max + 1)
                __builtin_trap(); /* the limit must stop a bomb */
            if (r != 0) {
                free(copy);
                res.r = r;
                return res;
            }
            if (left == 0 && !last)
                break;
            if (res.n > OUT_MAX * 20 && !max) {
                free(copy);
                res.r = -1; /* a large output without limit: stop here */
                return res;
            }
        }
        free(copy);
        pos += piece;
    }
    __builtin_trap();
}

static void fuzz_inflate(const uint8_t *data, size_t size, const loom_ws_deflate_params_t *a,
                         uint64_t max)
{
    loom_ws_deflate_t d1, d2;
    if (loom_ws_deflate_init(&d1, LOOM_WS_ROLE_SERVER, a, NULL, max) != 0 ||
        loom_ws_deflate_init(&d2, LOOM_WS_ROLE_SERVER, a, NULL, max) != 0)
        __builtin_trap();
    inf_t one = inflate_all(&d1, data, size, 0, max);
    inf_t two = inflate_all(&d2, data, size, 1, max);
    loom_ws_deflate_free(&d1);
    loom_ws_deflate_free(&d2);
    if (one.r == -1 || two.r == -1)
        return;
    if (one.r != two.r || (one.r == 1 && (one.n != two.n || one.hash != two.hash)))
        __builtin_trap();
}

static void fuzz_roundtrip(const uint8_t *data, size_t size, const loom_ws_deflate_params_t *a,
                           uint64_t max, int level)
{
    loom_ws_deflate_t tx, rx;
    loom_ws_deflate_opts_t o = {.level = (uint8_t)level, .mem_level = (uint8_t)(1 + level % 9)};
    if (loom_ws_deflate_init(&tx, LOOM_WS_ROLE_CLIENT, a, &o, 0) != 0 ||
        loom_ws_deflate_init(&rx, LOOM_WS_ROLE_SERVER, a, NULL, max) != 0)
        __builtin_trap();
    for (int round = 0; round < 2; round++) {
        size_t cap = 0, pieces = 1 + rnd() % 3, start = 0, clen = 0;
        for (size_t i = 0; i < pieces; i++)
            cap += loom_ws_deflate_bound(size);
        uint8_t *c = malloc(cap);
        for (size_t i = 0; i < pieces; i++) {
            size_t end = i + 1 == pieces ? size : size * (i + 1) / pieces, got;
            if (loom_ws_deflate_compress(&tx, data + start, end - start, i + 1 == pieces, c + clen,
                                         loom_ws_deflate_bound(end - start), &got) != 0)
                __builtin_trap();
            clen += got;
            start = end;
        }
        uint8_t *back = malloc(size + 2);
        const uint8_t *p = c;
        size_t left = clen, n = 0;
        int r;
        for (;;) {
            size_t room = size + 2 - n;
            if (room > 777)
                room = 777;
            r = loom_ws_inflate(&rx, &p, &left, 1, back + n, &room);
            n += room;
            if (r != 0 || n > size + 1)
                break;
        }
        if (max && size > max) {
            if (r != LOOM_WS_ERR_MESSAGE_TOO_BIG)
                __builtin_trap();
            free(c);
            free(back);
            break; /* the streams are unusable after an error */
        }
        if (r != 1 || n != size || memcmp(back, data, size) != 0)
            __builtin_trap();
        free(c);
        free(back);
    }
    loom_ws_deflate_free(&tx);
    loom_ws_deflate_free(&rx);
}

static void fuzz_negotiation(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    size_t pos = 0;
    loom_ws_deflate_params_t o;
    int guard = 0;
    while (loom_ws_deflate_offer_next(v, size, &pos, &o) == 1) {
        if (pos > size || guard++ > 10000)
            __builtin_trap();
    }
    loom_ws_deflate_opts_t srv = {.server_max_window_bits = (uint8_t)(size % 2 ? 0 : 9 + size % 7),
                                  .client_max_window_bits = (uint8_t)(size % 3 ? 0 : 10),
                                  .server_no_context_takeover = (uint8_t)(size & 1)};
    loom_ws_deflate_params_t a;
    char resp[LOOM_WS_DEFLATE_HEADER_MAX];
    if (loom_ws_deflate_negotiate(v, size, &srv, &a, resp, sizeof resp) == 1) {
        pos = 0;
        loom_ws_deflate_params_t b;
        if (loom_ws_deflate_offer_next(resp, strlen(resp), &pos, &b) != 1 ||
            memcmp(&a, &b, sizeof a) != 0)
            __builtin_trap();
        /* A client with default options accepts what the server answered
         * unless the server limited the client window it never offered... it
         * always offers client_max_window_bits, so it must accept. */
        if (loom_ws_deflate_check_response(resp, strlen(resp), NULL, &b) != 1)
            __builtin_trap();
    }
    loom_ws_deflate_check_response(v, size, NULL, &a);
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
    loom_ws_deflate_params_t a = {
        .client_max_window_bits = (uint8_t)(8 + (opt & 7)),
        .server_max_window_bits = (uint8_t)(8 + ((opt >> 3) & 7)),
        .client_no_context_takeover = (uint8_t)((opt >> 6) & 1),
    };
    uint64_t max = (opt & 0x80) ? 1000 : 0;
    fuzz_inflate(data, size, &a, max);
    fuzz_roundtrip(data, size, &a, max, 1 + opt % 9);
    fuzz_negotiation(data, size);
    return 0;
}
