/* tests/ws/test_ws_deflate.c - permessage-deflate (RFC 7692): negotiation and
 * the codec.
 *
 * LOOM_TEST_NO_BACKEND: pure code, no event loop, so it runs once.
 *
 * Negotiation: offers with every parameter, quoted values, several offers,
 * bad and duplicate parameters (the offer is declined, the next one taken),
 * syntax errors; the server's choice for its options; the client's offer and
 * its check of the response. Codec: the RFC's examples, round trips for every
 * window size (8 included: the compressor uses 9) with and without context
 * takeover, fed in pieces and inflated into tiny output chunks, a
 * decompression bomb stopped at max_message with at most one byte over it
 * produced, corrupt and truncated data, and the zlib memory released between
 * messages without context takeover; the per-thread cache of idle streams
 * (a reused stream compresses as a fresh one, fragmented messages keep
 * theirs while other codecs work in between, the cache flush).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/ws_frame.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Negotiation                                                               */

static int offer(const char *v, size_t *pos, loom_ws_deflate_params_t *o)
{
    return loom_ws_deflate_offer_next(v, strlen(v), pos, o);
}

static void test_offers(void)
{
    loom_ws_deflate_params_t o;
    size_t pos = 0;
    const char *v = "permessage-deflate";
    CHECK_EQ(offer(v, &pos, &o), 1);
    CHECK(o.server_no_context_takeover == 0 && o.client_max_window_bits == 0);
    CHECK_EQ(offer(v, &pos, &o), 0);

    pos = 0;
    v = "x-webkit-deflate-frame, permessage-deflate; client_max_window_bits; "
        "server_max_window_bits=10 ; server_no_context_takeover;client_no_context_takeover, "
        "permessage-deflate; client_max_window_bits=\"9\"";
    CHECK_EQ(offer(v, &pos, &o), 1);
    CHECK_EQ(o.client_max_window_bits, LOOM_WS_DEFLATE_BITS_NOVALUE);
    CHECK_EQ(o.server_max_window_bits, 10);
    CHECK(o.server_no_context_takeover && o.client_no_context_takeover);
    CHECK_EQ(offer(v, &pos, &o), 1);
    CHECK_EQ(o.client_max_window_bits, 9);
    CHECK_EQ(offer(v, &pos, &o), 0);

    /* Bad offers are skipped; the good one after them is found. */
    static const char *bad[] = {
        "permessage-deflate; server_max_window_bits",     /* needs a value */
        "permessage-deflate; server_max_window_bits=7",   /* below 8 */
        "permessage-deflate; server_max_window_bits=16",  /* above 15 */
        "permessage-deflate; server_max_window_bits=08",  /* leading zero */
        "permessage-deflate; client_max_window_bits=abc", /* not a number */
        "permessage-deflate; client_max_window_bits=\"123456789012\"",
        "permessage-deflate; server_no_context_takeover=1", /* no value allowed */
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=11",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[256];
        snprintf(buf, sizeof buf, "%s, permessage-deflate; client_no_context_takeover", bad[i]);
        pos = 0;
        CHECK_EQ(offer(buf, &pos, &o), 1);
        CHECK(o.client_no_context_takeover == 1 && o.client_max_window_bits == 0 &&
              o.server_max_window_bits == 0 && o.server_no_context_takeover == 0);
        CHECK_EQ(offer(buf, &pos, &o), 0);
        pos = 0;
        CHECK_EQ(offer(bad[i], &pos, &o), 0);
    }

    /* Syntax errors. */
    static const char *syntax[] = {
        "permessage-deflate;",       "permessage-deflate; =1",
        "permessage-deflate x",      "permessage-deflate; a=\"open",
        "permessage-deflate; a=",    "\"quoted\"",
        "permessage-deflate; a=b c", "; a",
    };
    for (size_t i = 0; i < sizeof syntax / sizeof syntax[0]; i++) {
        pos = 0;
        int r = offer(syntax[i], &pos, &o);
        if (r != LOOM_WS_ERR_EXTENSION) {
            fprintf(stderr, "syntax case %zu (%s): %d\n", i, syntax[i], r);
            CHECK(0);
        }
    }
    /* Empty list elements and whitespace are fine. */
    pos = 0;
    CHECK_EQ(offer(" ,  , permessage-deflate ,", &pos, &o), 1);
    CHECK_EQ(offer(" ,  , permessage-deflate ,", &pos, &o), 0);
    pos = 0;
    CHECK_EQ(offer("", &pos, &o), 0);
    /* Names are case-insensitive. */
    pos = 0;
    CHECK_EQ(offer("PerMessage-Deflate; Client_Max_Window_Bits=12", &pos, &o), 1);
    CHECK_EQ(o.client_max_window_bits, 12);
}

static void negotiate(const char *v, const loom_ws_deflate_opts_t *s, int want,
                      const char *want_resp)
{
    loom_ws_deflate_params_t a;
    char resp[LOOM_WS_DEFLATE_HEADER_MAX];
    int r = loom_ws_deflate_negotiate(v, strlen(v), s, &a, resp, sizeof resp);
    if (r != want || (r == 1 && strcmp(resp, want_resp) != 0)) {
        fprintf(stderr, "negotiate(%s): %d \"%s\", want %d \"%s\"\n", v, r, r == 1 ? resp : "",
                want, want_resp ? want_resp : "");
        CHECK(0);
    }
    if (r == 1) {
        /* The response parses back as what was agreed. */
        size_t pos = 0;
        loom_ws_deflate_params_t b;
        CHECK_EQ(loom_ws_deflate_offer_next(resp, strlen(resp), &pos, &b), 1);
        CHECK(memcmp(&a, &b, sizeof a) == 0);
    }
}

static void test_negotiate(void)
{
    loom_ws_deflate_opts_t def = {0};
    negotiate("permessage-deflate", &def, 1, "permessage-deflate");
    negotiate("permessage-deflate; client_max_window_bits", &def, 1, "permessage-deflate");
    negotiate("permessage-deflate; client_max_window_bits=10", &def, 1,
              "permessage-deflate; client_max_window_bits=10");
    negotiate("permessage-deflate; server_max_window_bits=12; server_no_context_takeover", &def, 1,
              "permessage-deflate; server_no_context_takeover; server_max_window_bits=12");
    negotiate("permessage-deflate; client_no_context_takeover", &def, 1,
              "permessage-deflate; client_no_context_takeover");
    negotiate("foo, bar; baz=1", &def, 0, NULL);
    negotiate("", &def, 0, NULL);
    negotiate("permessage-deflate;;", &def, LOOM_WS_ERR_EXTENSION, NULL);

    loom_ws_deflate_opts_t small = {.server_no_context_takeover = 1,
                                    .client_no_context_takeover = 1,
                                    .server_max_window_bits = 10,
                                    .client_max_window_bits = 11};
    /* The first offer lacks client_max_window_bits, so the server cannot
     * limit the client's window: it is declined, the second taken. */
    negotiate("permessage-deflate, permessage-deflate; client_max_window_bits", &small, 1,
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
              "server_max_window_bits=10; client_max_window_bits=11");
    negotiate("permessage-deflate", &small, 0, NULL);
    /* The client asks for less than our maximum: honoured. */
    negotiate("permessage-deflate; server_max_window_bits=8; client_max_window_bits=9", &small, 1,
              "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
              "server_max_window_bits=8; client_max_window_bits=9");

    /* Invalid server options. */
    loom_ws_deflate_params_t a;
    char resp[LOOM_WS_DEFLATE_HEADER_MAX];
    loom_ws_deflate_opts_t bad = {.server_max_window_bits = 7};
    CHECK_EQ(loom_ws_deflate_negotiate("permessage-deflate", 18, &bad, &a, resp, sizeof resp),
             LOOM_EINVAL);
    /* The longest response fits LOOM_WS_DEFLATE_HEADER_MAX. */
    CHECK_EQ(loom_ws_deflate_negotiate("permessage-deflate; client_max_window_bits=15", 45, &small,
                                       &a, resp, 20),
             LOOM_EINVAL);
}

static void test_client_side(void)
{
    char buf[LOOM_WS_DEFLATE_HEADER_MAX];
    CHECK(loom_ws_deflate_offer(NULL, buf, sizeof buf) > 0);
    CHECK_STR(buf, "permessage-deflate; client_max_window_bits");
    loom_ws_deflate_opts_t c = {.client_no_context_takeover = 1,
                                .server_max_window_bits = 12,
                                .client_max_window_bits = 10};
    CHECK(loom_ws_deflate_offer(&c, buf, sizeof buf) > 0);
    CHECK_STR(buf, "permessage-deflate; client_no_context_takeover; server_max_window_bits=12; "
                   "client_max_window_bits=10");

    loom_ws_deflate_params_t a;
#define RESP(s, opts) loom_ws_deflate_check_response(s, strlen(s), opts, &a)
    CHECK_EQ(RESP("", NULL), 0);
    CHECK_EQ(RESP("permessage-deflate", NULL), 1);
    CHECK_EQ(RESP("permessage-deflate; server_no_context_takeover", NULL), 1);
    CHECK(a.server_no_context_takeover == 1);
    CHECK_EQ(RESP("permessage-deflate; client_max_window_bits=9", NULL), 1);
    CHECK_EQ(a.client_max_window_bits, 9);
    CHECK_EQ(RESP("permessage-deflate; server_max_window_bits=9", NULL), 1); /* allowed */
    CHECK_EQ(RESP("permessage-deflate; client_max_window_bits", NULL), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate; foo", NULL), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(
        RESP("permessage-deflate; server_no_context_takeover; server_no_context_takeover", NULL),
        LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("x-other", NULL), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate, permessage-deflate", NULL), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate; client_max_window_bits=16", NULL), LOOM_WS_ERR_EXTENSION);
    /* With c: the server must answer server_max_window_bits <= 12, and
     * client_max_window_bits <= 10. */
    CHECK_EQ(RESP("permessage-deflate", &c), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate; server_max_window_bits=13", &c), LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate; server_max_window_bits=12", &c), 1);
    CHECK_EQ(a.client_max_window_bits, 10); /* our own cap stays */
    /* RFC 7692 section 7.1.1.2: the client offered client_no_context_takeover,
     * so it keeps no context even though the answer leaves it out. */
    CHECK_EQ(a.client_no_context_takeover, 1);
    CHECK_EQ(a.server_no_context_takeover, 0);
    CHECK_EQ(RESP("permessage-deflate; server_max_window_bits=11; client_max_window_bits=11", &c),
             LOOM_WS_ERR_EXTENSION);
    CHECK_EQ(RESP("permessage-deflate; server_max_window_bits=11; client_max_window_bits=8", &c),
             1);
    CHECK(a.server_max_window_bits == 11 && a.client_max_window_bits == 8);
#undef RESP
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                     */

/* Inflates a whole message given as `nin` input pieces into output chunks of
 * `chunk` bytes; returns the result of the last call, the output in out. */
static int inflate_msg(loom_ws_deflate_t *d, const uint8_t *in, size_t n, size_t pieces,
                       size_t chunk, uint8_t *out, size_t out_cap, size_t *out_len)
{
    *out_len = 0;
    size_t start = 0;
    for (size_t k = 0; k < pieces; k++) {
        size_t end = k + 1 == pieces ? n : n * (k + 1) / pieces;
        const uint8_t *p = in + start;
        size_t left = end - start;
        int last = k + 1 == pieces;
        for (int guard = 0;; guard++) {
            CHECK(guard < 10000000);
            size_t room = chunk;
            if (room > out_cap - *out_len)
                room = out_cap - *out_len;
            uint8_t *dst = out + *out_len;
            int r = loom_ws_inflate(d, &p, &left, last, dst, &room);
            CHECK(room <= chunk);
            *out_len += room;
            if (r != 0)
                return r;
            if (!last && left == 0)
                break;
            CHECK(*out_len < out_cap || room == 0);
            if (*out_len == out_cap)
                return -1; /* out of test buffer */
        }
        start = end;
    }
    return 0;
}

static void test_rfc_examples(void)
{
    /* RFC 7692 section 7.2.3.1 and 7.2.3.2: "Hello" twice with context
     * takeover, the second referring to the first. */
    static const uint8_t m1[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    static const uint8_t m2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    /* 7.2.3.3: a stored block. */
    static const uint8_t m3[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00};
    /* 7.2.3.4 style: BFINAL set on the last block. */
    static const uint8_t m4[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    loom_ws_deflate_params_t a = {0};
    loom_ws_deflate_t d;
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    uint8_t out[64];
    size_t n;
    CHECK_EQ(inflate_msg(&d, m1, sizeof m1, 1, 64, out, sizeof out, &n), 1);
    CHECK(n == 5 && memcmp(out, "Hello", 5) == 0);
    CHECK_EQ(inflate_msg(&d, m2, sizeof m2, 1, 64, out, sizeof out, &n), 1);
    CHECK(n == 5 && memcmp(out, "Hello", 5) == 0);
    CHECK_EQ(inflate_msg(&d, m3, sizeof m3, 2, 1, out, sizeof out, &n), 1);
    CHECK(n == 5 && memcmp(out, "Hello", 5) == 0);
    CHECK_EQ(inflate_msg(&d, m4, sizeof m4, 3, 2, out, sizeof out, &n), 1);
    CHECK(n == 5 && memcmp(out, "Hello", 5) == 0);
    loom_ws_deflate_free(&d);

    /* Compressing "Hello" on a fresh stream gives the RFC's bytes. */
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    uint8_t c[64];
    CHECK_OK(loom_ws_deflate_compress(&d, "Hello", 5, 1, c, sizeof c, &n));
    CHECK(n == sizeof m1 && memcmp(c, m1, n) == 0);
    loom_ws_deflate_free(&d);
}

static uint32_t rng = 99;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* A message of n bytes: text-like (compressible) or random. */
static void make_msg(uint8_t *p, size_t n, int kind)
{
    static const char *words[] = {"loom ", "socket ", "frame ", "deflate ", "window ", "bits "};
    size_t i = 0;
    while (i < n) {
        if (kind == 0) {
            const char *w = words[rnd() % 6];
            size_t l = strlen(w);
            if (l > n - i)
                l = n - i;
            memcpy(p + i, w, l);
            i += l;
        } else {
            p[i++] = (uint8_t)rnd();
        }
    }
}

static uint8_t msg[200000], comp[260000], back[200000];

/* A server and a client talking both ways for the agreed parameters. */
static void roundtrip(const loom_ws_deflate_params_t *a, const loom_ws_deflate_opts_t *o)
{
    loom_ws_deflate_t srv, cli;
    CHECK_OK(loom_ws_deflate_init(&srv, LOOM_WS_ROLE_SERVER, a, o, sizeof msg));
    CHECK_OK(loom_ws_deflate_init(&cli, LOOM_WS_ROLE_CLIENT, a, o, sizeof msg));
    static const size_t sizes[] = {0, 1, 5, 100, 1000, 16384, 70000, 199999};
    for (size_t k = 0; k < 2 * sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k % 8];
        int kind = (int)(k / 8 + k) % 2;
        make_msg(msg, n, kind);
        loom_ws_deflate_t *tx = (k & 1) ? &srv : &cli, *rx = (k & 1) ? &cli : &srv;
        /* Compress in up to three pieces (fragments). */
        size_t pieces = 1 + k % 3, clen = 0, start = 0;
        for (size_t i = 0; i < pieces; i++) {
            size_t end = i + 1 == pieces ? n : n * (i + 1) / pieces, got;
            CHECK(clen + loom_ws_deflate_bound(end - start) <= sizeof comp);
            CHECK_OK(loom_ws_deflate_compress(tx, msg + start, end - start, i + 1 == pieces,
                                              comp + clen, loom_ws_deflate_bound(end - start),
                                              &got));
            CHECK(got <= loom_ws_deflate_bound(end - start));
            clen += got;
            start = end;
        }
        if (kind == 0 && n >= 1000)
            CHECK(clen < n / 2);
        size_t outn;
        size_t chunk = (k % 4 == 0) ? 1 : (k % 4 == 1) ? 7 : 4096;
        if (n > 20000 && chunk < 100)
            chunk = 1000;
        int ir = inflate_msg(rx, comp, clen, 1 + k % 4, chunk, back, sizeof back, &outn);
        if (ir != 1)
            fprintf(stderr, "k=%zu n=%zu kind=%d clen=%zu chunk=%zu sb=%d cb=%d\n", k, n, kind,
                    clen, chunk, a->server_max_window_bits, a->client_max_window_bits);
        CHECK_EQ(ir, 1);
        CHECK_EQ(outn, n);
        CHECK(memcmp(back, msg, n) == 0);
        /* Without context takeover nothing stays allocated between messages. */
        int tx_reset = (tx == &srv) ? a->server_no_context_takeover : a->client_no_context_takeover;
        int rx_reset = (tx == &srv) ? a->server_no_context_takeover : a->client_no_context_takeover;
        if (tx_reset)
            CHECK(tx->tx == NULL);
        else
            CHECK(tx->tx != NULL);
        if (rx_reset)
            CHECK(rx->rx == NULL);
        else
            CHECK(rx->rx != NULL && loom_ws_deflate_memory(rx) > 0);
    }
    loom_ws_deflate_free(&srv);
    loom_ws_deflate_free(&cli);
    CHECK(srv.tx == NULL && srv.rx == NULL && loom_ws_deflate_memory(&srv) == 0);
}

static void test_roundtrips(void)
{
    for (int bits = 8; bits <= 15; bits++) {
        for (int reset = 0; reset < 4; reset++) {
            loom_ws_deflate_params_t a = {.server_no_context_takeover = (uint8_t)(reset & 1),
                                          .client_no_context_takeover = (uint8_t)(reset >> 1),
                                          .server_max_window_bits = (uint8_t)bits,
                                          .client_max_window_bits = (uint8_t)(23 - bits)};
            loom_ws_deflate_opts_t o = {.level = (uint8_t)(1 + bits % 9),
                                        .mem_level = (uint8_t)(1 + (bits + reset) % 9)};
            roundtrip(&a, &o);
        }
    }
}

/* The peer keeps its context across messages and we keep ours: repeated
 * messages get smaller, and still decode. */
static void test_context_takeover(void)
{
    loom_ws_deflate_params_t a = {0};
    loom_ws_deflate_t srv, cli;
    CHECK_OK(loom_ws_deflate_init(&srv, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_OK(loom_ws_deflate_init(&cli, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    make_msg(msg, 3000, 1);
    size_t first = 0;
    for (int i = 0; i < 3; i++) {
        size_t clen, outn;
        CHECK_OK(loom_ws_deflate_compress(&srv, msg, 3000, 1, comp, sizeof comp, &clen));
        if (i == 0)
            first = clen;
        else
            CHECK(clen < first / 10); /* refers back to the previous copy */
        CHECK_EQ(inflate_msg(&cli, comp, clen, 1, 500, back, sizeof back, &outn), 1);
        CHECK(outn == 3000 && memcmp(back, msg, 3000) == 0);
    }
    loom_ws_deflate_free(&srv);
    loom_ws_deflate_free(&cli);
}

static void test_bomb(void)
{
    /* 16 MiB of zeros compress to about 16 KiB at level 9 (an attacker's
     * choice; loom's default level 1 makes about 70 KiB). */
    size_t big = 16u << 20;
    uint8_t *zeros = calloc(1, big);
    uint8_t *c = malloc(loom_ws_deflate_bound(big));
    CHECK(zeros && c);
    loom_ws_deflate_params_t a = {0};
    loom_ws_deflate_opts_t best = {.level = 9};
    loom_ws_deflate_t tx, rx;
    CHECK_OK(loom_ws_deflate_init(&tx, LOOM_WS_ROLE_CLIENT, &a, &best, 0));
    size_t clen;
    CHECK_OK(loom_ws_deflate_compress(&tx, zeros, big, 1, c, loom_ws_deflate_bound(big), &clen));
    CHECK(clen < 64 * 1024);
    loom_ws_deflate_free(&tx);

    const uint64_t max = 64 * 1024;
    CHECK_OK(loom_ws_deflate_init(&rx, LOOM_WS_ROLE_SERVER, &a, NULL, max));
    size_t total = 0, chunks = 0;
    const uint8_t *p = c;
    size_t left = clen;
    int r;
    for (;;) {
        uint8_t out[16384];
        size_t room = sizeof out;
        r = loom_ws_inflate(&rx, &p, &left, 1, out, &room);
        total += room;
        chunks++;
        CHECK(chunks < 100);
        if (r != 0)
            break;
    }
    CHECK_EQ(r, LOOM_WS_ERR_MESSAGE_TOO_BIG);
    CHECK(total <= max + 1);
    CHECK(left > 0); /* stopped long before the input was used up */
    loom_ws_deflate_free(&rx);

    /* A message of exactly max is fine. */
    CHECK_OK(loom_ws_deflate_init(&tx, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    CHECK_OK(loom_ws_deflate_compress(&tx, zeros, max, 1, c, loom_ws_deflate_bound(max), &clen));
    CHECK_OK(loom_ws_deflate_init(&rx, LOOM_WS_ROLE_SERVER, &a, NULL, max));
    static uint8_t out[70000];
    size_t outn;
    CHECK_EQ(inflate_msg(&rx, c, clen, 1, 4096, out, sizeof out, &outn), 1);
    CHECK_EQ(outn, max);
    /* The limit is per message: the same again passes. */
    CHECK_OK(loom_ws_deflate_compress(&tx, zeros, max, 1, c, loom_ws_deflate_bound(max), &clen));
    CHECK_EQ(inflate_msg(&rx, c, clen, 1, 70000, out, sizeof out, &outn), 1);
    CHECK_EQ(outn, max);
    /* One byte more is not. */
    CHECK_OK(
        loom_ws_deflate_compress(&tx, zeros, max + 1, 1, c, loom_ws_deflate_bound(max + 1), &clen));
    CHECK_EQ(inflate_msg(&rx, c, clen, 1, 70000, out, sizeof out, &outn),
             LOOM_WS_ERR_MESSAGE_TOO_BIG);
    loom_ws_deflate_free(&tx);
    loom_ws_deflate_free(&rx);
    free(zeros);
    free(c);
}

static void test_corrupt(void)
{
    loom_ws_deflate_params_t a = {0};
    loom_ws_deflate_t d;
    uint8_t out[4096];
    size_t n;
    /* Reserved block type 3. */
    static const uint8_t bad_type[] = {0x07, 0x00};
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_EQ(inflate_msg(&d, bad_type, sizeof bad_type, 1, 100, out, sizeof out, &n),
             LOOM_WS_ERR_INFLATE);
    loom_ws_deflate_free(&d);
    /* A stored block whose length check fails. */
    static const uint8_t bad_len[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'H', 'e', 'l', 'l', 'o'};
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_EQ(inflate_msg(&d, bad_len, sizeof bad_len, 1, 100, out, sizeof out, &n),
             LOOM_WS_ERR_INFLATE);
    loom_ws_deflate_free(&d);
    /* A distance beyond the start of the data. */
    static const uint8_t far[] = {0x63, 0x00, 0x02, 0x00};
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    int r = inflate_msg(&d, far, sizeof far, 1, 100, out, sizeof out, &n);
    CHECK(r < 0);
    loom_ws_deflate_free(&d);
    /* Truncated: a valid message cut short never ends at a block boundary. */
    make_msg(msg, 5000, 0);
    loom_ws_deflate_t tx;
    CHECK_OK(loom_ws_deflate_init(&tx, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    size_t clen;
    CHECK_OK(loom_ws_deflate_compress(&tx, msg, 5000, 1, comp, sizeof comp, &clen));
    loom_ws_deflate_free(&tx);
    for (size_t cut = 1; cut < clen; cut += 1 + clen / 50) {
        CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
        r = inflate_msg(&d, comp, cut, 1, 4096, back, sizeof back, &n);
        CHECK(r < 0 || n < 5000);
        if (r == 1)
            CHECK(0); /* a truncated message must not pass as complete */
        loom_ws_deflate_free(&d);
    }
    /* Bad arguments. */
    CHECK_EQ(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, NULL, NULL, 0), LOOM_EINVAL);
    loom_ws_deflate_opts_t bo = {.level = 10};
    CHECK_EQ(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, &bo, 0), LOOM_EINVAL);
    CHECK_OK(loom_ws_deflate_init(&d, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_EQ(loom_ws_deflate_compress(&d, msg, 1000, 1, comp, 1000, &n), LOOM_ENOBUFS);
    loom_ws_deflate_free(&d);
    loom_ws_deflate_free(&d); /* twice is fine */
}

/* Without context takeover the streams of finished messages are reset and
 * cached per thread: a cached stream compresses exactly as a fresh one, a
 * fragmented message keeps its own stream while other codecs compress and
 * inflate whole messages in between, and the cache can be flushed. */
static void test_cache(void)
{
    loom_ws_deflate_params_t a = {.server_no_context_takeover = 1, .client_no_context_takeover = 1};
    loom_ws_deflate_t s1, s2, c1, c2;
    CHECK_OK(loom_ws_deflate_init(&s1, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_OK(loom_ws_deflate_init(&s2, LOOM_WS_ROLE_SERVER, &a, NULL, 0));
    CHECK_OK(loom_ws_deflate_init(&c1, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    CHECK_OK(loom_ws_deflate_init(&c2, LOOM_WS_ROLE_CLIENT, &a, NULL, 0));
    static uint8_t fresh[8192], reused[8192], piece[8192];
    make_msg(msg, 5000, 0);
    size_t fl, rl, pl, outn;
    loom_ws_deflate_cache_flush();
    CHECK_OK(loom_ws_deflate_compress(&s1, msg, 5000, 1, fresh, sizeof fresh, &fl));
    CHECK(s1.tx == NULL && loom_ws_deflate_memory(&s1) == 0);
    /* s2 takes s1's stream from the cache: the same bytes. */
    CHECK_OK(loom_ws_deflate_compress(&s2, msg, 5000, 1, reused, sizeof reused, &rl));
    CHECK(rl == fl && memcmp(fresh, reused, fl) == 0);
    /* A fragmented message on s1 while s2 sends whole ones. */
    CHECK_OK(loom_ws_deflate_compress(&s1, msg, 2000, 0, piece, sizeof piece, &pl));
    CHECK(s1.tx != NULL);
    for (int i = 0; i < 3; i++) {
        CHECK_OK(loom_ws_deflate_compress(&s2, msg, 5000, 1, reused, sizeof reused, &rl));
        CHECK(rl == fl && memcmp(fresh, reused, fl) == 0);
        CHECK_EQ(inflate_msg(&c2, reused, rl, 1, 4096, back, sizeof back, &outn), 1);
        CHECK(outn == 5000 && memcmp(back, msg, 5000) == 0);
        CHECK(c2.rx == NULL);
    }
    size_t more;
    CHECK_OK(
        loom_ws_deflate_compress(&s1, msg + 2000, 3000, 1, piece + pl, sizeof piece - pl, &more));
    CHECK(s1.tx == NULL);
    /* Inflated in two calls (the first not the last piece), with another
     * codec inflating a whole message in between. */
    const uint8_t *in = piece;
    size_t left = pl, room = sizeof back;
    CHECK_EQ(loom_ws_inflate(&c1, &in, &left, 0, back, &room), 0);
    CHECK(c1.rx != NULL && left == 0);
    size_t done = room;
    CHECK_EQ(inflate_msg(&c2, fresh, fl, 1, 4096, back + 6000, sizeof back - 6000, &outn), 1);
    CHECK(outn == 5000 && memcmp(back + 6000, msg, 5000) == 0);
    in = piece + pl;
    left = more;
    room = sizeof back - done;
    CHECK_EQ(loom_ws_inflate(&c1, &in, &left, 1, back + done, &room), 1);
    CHECK(done + room == 5000 && memcmp(back, msg, 5000) == 0);
    CHECK(c1.rx == NULL);
    loom_ws_deflate_cache_flush();
    loom_ws_deflate_cache_flush(); /* twice is fine */
    CHECK_OK(loom_ws_deflate_compress(&s2, msg, 5000, 1, reused, sizeof reused, &rl));
    CHECK(rl == fl && memcmp(fresh, reused, fl) == 0);
    loom_ws_deflate_free(&s1);
    loom_ws_deflate_free(&s2);
    loom_ws_deflate_free(&c1);
    loom_ws_deflate_free(&c2);
}

int main(void)
{
    test_timeout(60);
    test_offers();
    test_negotiate();
    test_client_side();
    test_rfc_examples();
    test_roundtrips();
    test_context_takeover();
    test_bomb();
    test_corrupt();
    test_cache();
    printf("ok\n");
    return 0;
}
