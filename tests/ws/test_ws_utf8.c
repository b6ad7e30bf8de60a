/* tests/ws/test_ws_utf8.c - the incremental UTF-8 validator.
 *
 * LOOM_TEST_NO_BACKEND: pure code, no event loop, so it runs once.
 *
 * The cases follow the groups of Autobahn|Testsuite's case 6 (UTF-8 handling),
 * written here from the Unicode rules: valid text, first/last sequences of
 * each length, boundaries, stray continuations, lonely starts, truncations,
 * impossible bytes, overlongs, surrogates and noncharacters. Each case is fed
 * whole, split at every point into two pieces, and byte by byte; for invalid
 * cases the validator must fail at the expected byte (fail-fast: the first
 * byte that no valid text can continue). A reference validator, written
 * differently (decoding code points and checking value ranges), is compared
 * with loom's on the cases and on random inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/ws_frame.h"
#include "test.h"

/* ------------------------------------------------------------------------ */
/* Reference: the offset of the first byte at which p[0..i] stops being a
 * prefix of valid UTF-8, or -1 if it never does; *complete says whether the
 * input ends on a character boundary. */

static int seq_len(uint8_t b)
{
    if (b < 0x80)
        return 1;
    if ((b & 0xE0) == 0xC0)
        return 2;
    if ((b & 0xF0) == 0xE0)
        return 3;
    if ((b & 0xF8) == 0xF0)
        return 4;
    return 0;
}

/* Can the t bytes at p (lead + t-1 continuations, 1 <= t <= n) be completed
 * into a valid sequence of n bytes? Computes the range of code points that
 * the prefix allows and intersects it with the valid values of length n. */
static int prefix_ok(const uint8_t *p, int t, int n)
{
    static const uint32_t lead_mask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t lo = p[0] & lead_mask[n], hi = lo;
    for (int k = 1; k < n; k++) {
        if (k < t) {
            if ((p[k] & 0xC0) != 0x80)
                return 0;
            lo = (lo << 6) | (p[k] & 0x3F);
            hi = (hi << 6) | (p[k] & 0x3F);
        } else {
            lo = lo << 6;
            hi = (hi << 6) | 0x3F;
        }
    }
    static const uint32_t minv[5] = {0, 0, 0x80, 0x800, 0x10000};
    static const uint32_t maxv[5] = {0, 0x7F, 0x7FF, 0xFFFF, 0x10FFFF};
    if (lo < minv[n])
        lo = minv[n];
    if (hi > maxv[n])
        hi = maxv[n];
    if (lo > hi)
        return 0;
    /* Entirely within the surrogates? */
    if (lo >= 0xD800 && hi <= 0xDFFF)
        return 0;
    return 1;
}

static long ref_first_bad(const uint8_t *p, size_t len, int *complete)
{
    size_t i = 0;
    *complete = 1;
    while (i < len) {
        int n = seq_len(p[i]);
        if (n == 0)
            return (long)i;
        size_t avail = len - i < (size_t)n ? len - i : (size_t)n;
        for (size_t t = 1; t <= avail; t++)
            if (!prefix_ok(p + i, (int)t, n))
                return (long)(i + t - 1);
        if (avail < (size_t)n) {
            *complete = 0;
            return -1;
        }
        i += (size_t)n;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* loom's validator, fed in pieces                                           */

/* Returns the offset of the failing byte, or -1; *complete as above. */
static long loom_first_bad(const uint8_t *p, size_t len, const size_t *cuts, size_t ncuts,
                           int *complete)
{
    loom_ws_utf8_t u;
    loom_ws_utf8_init(&u);
    size_t start = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t end = c < ncuts ? cuts[c] : len;
        /* A heap copy of exactly the piece, so ASan sees any over-read. */
        uint8_t *piece = malloc(end - start + 1);
        memcpy(piece, p + start, end - start);
        size_t bad = 12345;
        int r = loom_ws_utf8_feed(&u, piece, end - start, &bad);
        free(piece);
        if (r < 0) {
            CHECK_EQ(r, LOOM_WS_ERR_UTF8);
            CHECK(bad < end - start);
            /* Stays failed. */
            CHECK_EQ(loom_ws_utf8_feed(&u, "a", 1, NULL), LOOM_WS_ERR_UTF8);
            CHECK_EQ(loom_ws_utf8_finish(&u), LOOM_WS_ERR_UTF8);
            *complete = 0;
            return (long)(start + bad);
        }
        start = end;
    }
    *complete = loom_ws_utf8_finish(&u) == 0;
    return -1;
}

static void check_all_splits(const uint8_t *p, size_t len, long want_bad, int want_complete,
                             const char *name)
{
    int complete;
    long bad = loom_first_bad(p, len, NULL, 0, &complete);
    if (bad != want_bad || (want_bad < 0 && complete != want_complete)) {
        fprintf(stderr, "case %s: first bad %ld (want %ld), complete %d (want %d)\n", name, bad,
                want_bad, complete, want_complete);
        CHECK(0);
    }
    CHECK_EQ(loom_ws_utf8_valid(p, len), want_bad < 0 && want_complete);
    for (size_t k = 0; k <= len; k++) {
        int c2;
        CHECK_EQ(loom_first_bad(p, len, &k, 1, &c2), bad);
        if (bad < 0)
            CHECK_EQ(c2, complete);
    }
    static size_t cuts[1024];
    if (len <= 1024) {
        for (size_t k = 0; k < len; k++)
            cuts[k] = k + 1;
        int c3;
        CHECK_EQ(loom_first_bad(p, len, cuts, len, &c3), bad);
    }
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */

typedef struct {
    const char *name;
    const char *bytes;
    size_t len; /* 0: strlen */
    long bad;   /* offset of the first invalid byte, -1 if none */
    int complete;
} ucase_t;

#define OK(name, s)                                                                                \
    {                                                                                              \
        name, s, 0, -1, 1                                                                          \
    }
#define BAD(name, s, at)                                                                           \
    {                                                                                              \
        name, s, 0, at, 0                                                                          \
    }
#define TRUNC(name, s)                                                                             \
    {                                                                                              \
        name, s, 0, -1, 0                                                                          \
    }

static const ucase_t cases[] = {
    /* 6.1 empty */
    {"6.1 empty", "", 0, -1, 1},
    /* 6.2, 6.3 valid text */
    OK("6.2 mixed", "Hello-\xc2\xb5@\xc3\x9f\xc3\xb6\xc3\xa4\xc3\xbc\xc3\xa0\xc3\xa1-UTF-8!!"),
    OK("6.3 kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"),
    /* 6.4 fail fast: valid text, then a surrogate, then more text */
    BAD("6.4.1 kosme+surrogate",
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
        "edited",
        12),
    BAD("6.4.2 F4 90",
        "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80"
        "edited",
        12),
    BAD("6.4.3 kosme+cont", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\x80\x80", 11),
    /* 6.5 first possible sequence of each length */
    {"6.5.1 U+0000", "\x00", 1, -1, 1},
    OK("6.5.2 U+0080", "\xc2\x80"),
    OK("6.5.3 U+0800", "\xe0\xa0\x80"),
    OK("6.5.4 U+10000", "\xf0\x90\x80\x80"),
    BAD("6.5.5 5-byte U+200000", "\xf8\x88\x80\x80\x80", 0),
    BAD("6.5.6 6-byte", "\xfc\x84\x80\x80\x80\x80", 0),
    /* 6.6 last possible sequence of each length */
    OK("6.6.1 U+007F", "\x7f"),
    OK("6.6.2 U+07FF", "\xdf\xbf"),
    OK("6.6.3 U+FFFF", "\xef\xbf\xbf"),
    OK("6.6.4 U+10FFFF", "\xf4\x8f\xbf\xbf"),
    BAD("6.6.5 U+110000", "\xf4\x90\x80\x80", 1),
    BAD("6.6.6 U+1FFFFF", "\xf7\xbf\xbf\xbf", 0),
    /* 6.7 other boundaries */
    OK("6.7.1 U+D7FF", "\xed\x9f\xbf"),
    OK("6.7.2 U+E000", "\xee\x80\x80"),
    OK("6.7.3 U+FFFD", "\xef\xbf\xbd"),
    /* 6.8 unexpected continuation bytes */
    BAD("6.8.1 first cont", "\x80", 0),
    BAD("6.8.2 last cont", "\xbf", 0),
    BAD("6.8.3 2 cont", "\x80\xbf", 0),
    BAD("6.8.4 3 cont after text", "ab\x80\xbf\x80", 2),
    BAD("6.8.5 cont after 2-byte", "\xc2\x80\x80", 2),
    /* 6.9 lonely start characters followed by a space */
    BAD("6.9.1 C0 sp", "\xc0 ", 0),
    BAD("6.9.2 C2 sp", "\xc2 ", 1),
    BAD("6.9.3 DF sp", "\xdf ", 1),
    BAD("6.9.4 E0 sp", "\xe0 ", 1),
    BAD("6.9.5 EF sp", "\xef ", 1),
    BAD("6.9.6 F0 sp", "\xf0 ", 1),
    BAD("6.9.7 F4 sp", "\xf4 ", 1),
    BAD("6.9.8 F8 sp", "\xf8 ", 0),
    /* 6.10 sequences with the last continuation byte missing (at the end:
     * valid so far, incomplete) */
    TRUNC("6.10.1 C2", "\xc2"),
    TRUNC("6.10.2 E0 A0", "\xe0\xa0"),
    TRUNC("6.10.3 EF BF", "\xef\xbf"),
    TRUNC("6.10.4 F0 90 80", "\xf0\x90\x80"),
    TRUNC("6.10.5 F4 8F BF", "\xf4\x8f\xbf"),
    TRUNC("6.10.6 text then E1", "hello \xe1"),
    /* 6.11 truncated sequences followed by more text */
    BAD("6.11.1 E0 A0 then A",
        "\xe0\xa0"
        "A",
        2),
    BAD("6.11.2 F0 90 80 then C2 80", "\xf0\x90\x80\xc2\x80", 3),
    BAD("6.11.3 concatenation of truncations", "\xc2\xe0\x80\xf0\x80\x80", 1),
    /* 6.12 impossible bytes */
    BAD("6.12.1 FE", "\xfe", 0),
    BAD("6.12.2 FF", "\xff", 0),
    BAD("6.12.3 FE FE FF FF", "\xfe\xfe\xff\xff", 0),
    BAD("6.12.4 text FF", "abc\xff", 3),
    /* 6.13 overlong forms of "/" and of the maximum values */
    BAD("6.13.1 overlong / 2", "\xc0\xaf", 0),
    BAD("6.13.2 overlong / 3", "\xe0\x80\xaf", 1),
    BAD("6.13.3 overlong / 4", "\xf0\x80\x80\xaf", 1),
    BAD("6.13.4 overlong / 5", "\xf8\x80\x80\x80\xaf", 0),
    BAD("6.13.5 max overlong 2", "\xc1\xbf", 0),
    BAD("6.13.6 max overlong 3", "\xe0\x9f\xbf", 1),
    BAD("6.13.7 max overlong 4", "\xf0\x8f\xbf\xbf", 1),
    BAD("6.13.8 overlong NUL 2", "\xc0\x80", 0),
    BAD("6.13.9 overlong NUL 3", "\xe0\x80\x80", 1),
    /* 6.14 single UTF-16 surrogates */
    BAD("6.14.1 U+D800", "\xed\xa0\x80", 1),
    BAD("6.14.2 U+DB7F", "\xed\xad\xbf", 1),
    BAD("6.14.3 U+DB80", "\xed\xae\x80", 1),
    BAD("6.14.4 U+DBFF", "\xed\xaf\xbf", 1),
    BAD("6.14.5 U+DC00", "\xed\xb0\x80", 1),
    BAD("6.14.6 U+DF80", "\xed\xbe\x80", 1),
    BAD("6.14.7 U+DFFF", "\xed\xbf\xbf", 1),
    /* 6.15 paired surrogates (CESU-8) */
    BAD("6.15.1 D800 DC00", "\xed\xa0\x80\xed\xb0\x80", 1),
    BAD("6.15.2 DBFF DFFF", "\xed\xaf\xbf\xed\xbf\xbf", 1),
    /* 6.16 noncharacters are valid UTF-8 */
    OK("6.16.1 U+FFFE", "\xef\xbf\xbe"),
    OK("6.16.2 U+FFFF", "\xef\xbf\xbf"),
    OK("6.16.3 U+1FFFE", "\xf0\x9f\xbf\xbe"),
    OK("6.16.4 U+10FFFF", "\xf4\x8f\xbf\xbf"),
    OK("6.16.5 U+FDD0", "\xef\xb7\x90"),
    /* 6.17 assorted valid text: emoji, CJK, long ASCII around multibyte */
    OK("6.17.1 emoji", "\xf0\x9f\x98\x80\xf0\x9f\x8e\x89"),
    OK("6.17.2 CJK", "\xe4\xb8\xad\xe6\x96\x87"),
    OK("6.17.3 long ascii + multibyte",
       "The quick brown fox jumps over the lazy dog 0123456789 \xc3\xa9\xe2\x82\xac "
       "and then some more ASCII to cross several 16-byte blocks \xf0\x9f\x98\x80 end"),
    BAD("6.17.4 long ascii + bad at 40", "0123456789012345678901234567890123456789\xc0xyz", 40),
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ucase_t *c = &cases[i];
        size_t len = c->len ? c->len : strlen(c->bytes);
        int rc;
        long rb = ref_first_bad((const uint8_t *)c->bytes, len, &rc);
        if (rb != c->bad || (rb < 0 && rc != c->complete)) {
            fprintf(stderr, "reference disagrees on %s: %ld %d\n", c->name, rb, rc);
            CHECK(0);
        }
        check_all_splits((const uint8_t *)c->bytes, len, c->bad, c->complete, c->name);
    }
}

/* Every code point, encoded, is valid; every one prefixed to a long ASCII run
 * still is. Surrogates encoded as if they were code points are not. */
static void test_all_code_points(void)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n;
        if (cp < 0x80)
            b[0] = (uint8_t)cp, n = 1;
        else if (cp < 0x800)
            b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), n = 2;
        else if (cp < 0x10000)
            b[0] = (uint8_t)(0xE0 | cp >> 12), b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
            b[2] = (uint8_t)(0x80 | (cp & 0x3F)), n = 3;
        else
            b[0] = (uint8_t)(0xF0 | cp >> 18), b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
            b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (uint8_t)(0x80 | (cp & 0x3F)),
            n = 4;
        int want = !(cp >= 0xD800 && cp <= 0xDFFF);
        if (loom_ws_utf8_valid(b, n) != want) {
            fprintf(stderr, "U+%04X: %d\n", (unsigned)cp, !want);
            CHECK(0);
        }
    }
}

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* Random inputs made of UTF-8-ish pieces, against the reference. */
static void test_random(void)
{
    static const uint8_t interesting[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                          0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed,
                                          0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff};
    uint8_t buf[64];
    for (int iter = 0; iter < 40000; iter++) {
        size_t len = rnd() % sizeof buf;
        for (size_t i = 0; i < len; i++) {
            uint32_t r = rnd();
            buf[i] = (r & 1) ? interesting[(r >> 1) % sizeof interesting] : (uint8_t)(r >> 8);
            if ((r >> 20) % 3 == 0)
                buf[i] = (uint8_t)(0x80 | ((r >> 8) & 0x3f));
        }
        int rc, lc;
        long rb = ref_first_bad(buf, len, &rc);
        size_t cut = len ? rnd() % len : 0;
        long lb = loom_first_bad(buf, len, &cut, 1, &lc);
        if (rb != lb || (rb < 0 && rc != lc)) {
            fprintf(stderr, "random input disagrees: ref %ld/%d loom %ld/%d\n", rb, rc, lb, lc);
            CHECK(0);
        }
    }
}

int main(void)
{
    test_timeout(60);
    test_cases();
    test_all_code_points();
    test_random();
    printf("ok\n");
    return 0;
}
