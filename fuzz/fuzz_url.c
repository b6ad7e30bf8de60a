/* fuzz/fuzz_url.c - libFuzzer target for the URL functions.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (see fuzz/run.sh).
 * LOOM_FUZZ_SOURCES: src/http/url.c
 *
 * The input is split at its first NUL into a base and a reference. Every
 * buffer handed to loom is a heap block of exactly its length, so any
 * over-read or over-write is caught. Checks: slices lie inside the input;
 * loom_url_resolve() follows the snprintf rule for every output size and
 * its result parses again; decode(encode(x)) == x; decoding in place works;
 * the query iterator covers only the query.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loom/error.h"
#include "loom/url.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            __builtin_trap();                                                                      \
    } while (0)

static void check_slice(const char *s, size_t len, const char *p, size_t n)
{
    if (p == NULL) {
        ASSERT(n == 0);
        return;
    }
    ASSERT(p >= s && p + n <= s + len);
}

static void check_url(const char *s, size_t len, const loom_url_t *u)
{
    check_slice(s, len, u->scheme, u->scheme_len);
    check_slice(s, len, u->userinfo, u->userinfo_len);
    check_slice(s, len, u->host, u->host_len);
    check_slice(s, len, u->path, u->path_len);
    check_slice(s, len, u->query, u->query_len);
    check_slice(s, len, u->fragment, u->fragment_len);
    ASSERT(u->port >= -1 && u->port <= 65535);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nul = memchr(data, 0, size);
    size_t blen = nul ? (size_t)(nul - (const char *)data) : size;
    size_t rlen = nul ? size - blen - 1 : 0;
    char *base = malloc(blen ? blen : 1);
    char *ref = malloc(rlen ? rlen : 1);
    memcpy(base, data, blen);
    if (rlen)
        memcpy(ref, nul + 1, rlen);

    loom_url_t u;
    if (loom_url_parse(base, blen, &u) == 0) {
        check_url(base, blen, &u);
        (void)loom_url_port(&u);
        int need = loom_url_resolve(&u, ref, rlen, rlen & 1, NULL, 0);
        if (need >= 0) {
            char *full = malloc((size_t)need + 1);
            int got = loom_url_resolve(&u, ref, rlen, rlen & 1, full, (size_t)need + 1);
            ASSERT(got >= 0 && got <= need);
            ASSERT(full[got] == '\0');
            ASSERT(strlen(full) == (size_t)got);
            /* Smaller buffers: never written past, and the result is a
             * prefix when it is NUL-terminated... */
            for (size_t sz = 1; sz <= (size_t)need && sz < 64; sz++) {
                char *small = malloc(sz);
                int r = loom_url_resolve(&u, ref, rlen, rlen & 1, small, sz);
                ASSERT(r >= 0);
                if ((size_t)r < sz) {
                    ASSERT(r == got);
                    ASSERT(memcmp(small, full, (size_t)r + 1) == 0);
                }
                free(small);
            }
            loom_url_t v;
            char *copy = malloc((size_t)got ? (size_t)got : 1);
            memcpy(copy, full, (size_t)got);
            if (loom_url_parse(copy, (size_t)got, &v) == 0)
                check_url(copy, (size_t)got, &v);
            free(copy);
            free(full);
        }
        if (u.query) {
            size_t pos = 0;
            loom_url_param_t p;
            int n = 0;
            while (loom_url_query_next(u.query, u.query_len, &pos, &p) && n++ < 1000) {
                check_slice(u.query, u.query_len, p.name, p.name_len);
                check_slice(u.query, u.query_len, p.value, p.value_len);
            }
            char name[4] = "a";
            int need2 = loom_url_query_get(u.query, u.query_len, name, NULL, 0);
            if (need2 >= 0) {
                char *vb = malloc((size_t)need2 + 1);
                int g = loom_url_query_get(u.query, u.query_len, name, vb, (size_t)need2 + 1);
                ASSERT(g == LOOM_EURL || (g >= 0 && g <= need2));
                free(vb);
            }
        }
    }

    /* Encoding round trip, all flag combinations. */
    for (unsigned f = 0; f < 4; f++) {
        int need = loom_url_encode(NULL, 0, ref, rlen, f);
        ASSERT(need >= 0 && (size_t)need <= 3 * rlen);
        char *enc = malloc((size_t)need + 1);
        ASSERT(loom_url_encode(enc, (size_t)need + 1, ref, rlen, f) == need);
        ASSERT(enc[need] == '\0');
        for (size_t sz = 1; sz <= (size_t)need && sz < 16; sz++) {
            char *small = malloc(sz);
            ASSERT(loom_url_encode(small, sz, ref, rlen, f) == need);
            ASSERT(memchr(small, 0, sz) != NULL);
            free(small);
        }
        char *dec = malloc(rlen + 1);
        unsigned df = LOOM_URL_DEC_ALLOW_NUL | ((f & LOOM_URL_ENC_FORM) ? LOOM_URL_DEC_PLUS : 0);
        int d = loom_url_decode(dec, rlen + 1, enc, (size_t)need, df);
        /* A literal '+' kept by ENC_PATH decodes to a space with DEC_PLUS. */
        if (!((f & LOOM_URL_ENC_PATH) && (f & LOOM_URL_ENC_FORM) && memchr(ref, '+', rlen))) {
            ASSERT(d == (int)rlen);
            ASSERT(rlen == 0 || memcmp(dec, ref, rlen) == 0);
        }
        free(dec);
        free(enc);
    }
    /* Decoding in place and into exact and short buffers. */
    {
        char *buf = malloc(blen + 1);
        memcpy(buf, base, blen);
        int a = loom_url_decode(buf, blen + 1, buf, blen, LOOM_URL_DEC_LENIENT | LOOM_URL_DEC_PLUS);
        ASSERT(a == LOOM_EURL || (a >= 0 && (size_t)a <= blen));
        free(buf);
        char *buf2 = malloc(blen + 1);
        int b = loom_url_decode(buf2, blen + 1, base, blen, 0);
        if (b >= 0) {
            ASSERT(buf2[b] == '\0');
            char *tight = malloc((size_t)b + 1);
            ASSERT(loom_url_decode(tight, (size_t)b + 1, base, blen, 0) == b);
            free(tight);
            if (b > 0) {
                char *shortb = malloc((size_t)b);
                ASSERT(loom_url_decode(shortb, (size_t)b, base, blen, 0) == LOOM_ENOSPC);
                free(shortb);
            }
        }
        free(buf2);
        (void)loom_url_decoded_equals(base, blen, "x y", LOOM_URL_DEC_PLUS);
    }
    free(base);
    free(ref);
    return 0;
}
