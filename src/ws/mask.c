/* src/ws/mask.c - WebSocket masking (RFC 6455 section 5.3), word at a time.
 *
 * Masking XORs the payload with a repeating 4-byte key. The key is widened to
 * a 64-bit word rotated to the current offset, and 8 bytes (or 16 with SSE2,
 * which every x86_64 has, so no run-time check is needed) go per step, with
 * unaligned loads and stores: on current x86_64 cores they cost the same as
 * aligned ones, and a byte-wise alignment prologue measurably slowed the
 * small (64-byte) payloads that dominate WebSocket traffic. Payloads of
 * 256 bytes and more use AVX2 (32 bytes per step) when the CPU has it,
 * checked at run time: on the (shared, noisy) development machine it took
 * 64 KiB from 11-15 to 16-18 GiB/s; below 256 bytes it made no difference
 * (bench/ws/micro_ws.c). The key offset is
 * carried across calls so a payload split over reads is unmasked by chaining
 * calls.
 */
#include <string.h>

#include "loom/ws_frame.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define LOOM_WS_MASK_SSE2 1
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LOOM_WS_MASK_AVX2 1
#endif

/* The key as a native-endian word whose bytes in memory order are
 * key[off], key[off+1], ... so that XOR with a loaded word is correct. */
static uint64_t key_word(const uint8_t key[4], unsigned off)
{
    uint8_t b[8];
    for (unsigned i = 0; i < 8; i++)
        b[i] = key[(off + i) & 3];
    uint64_t w;
    memcpy(&w, b, 8);
    return w;
}

#ifdef LOOM_WS_MASK_AVX2
/* XORs n bytes (a multiple of 64) with the key word; compiled for AVX2 and
 * only called when the CPU has it. Returns n. */
__attribute__((target("avx2"))) static size_t mask_avx2(uint8_t *dst, const uint8_t *src, size_t n,
                                                        uint64_t kw)
{
    __m256i kv = _mm256_set1_epi64x((long long)kw);
    for (size_t i = 0; i < n; i += 64) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
        __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_xor_si256(a, kv));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), _mm256_xor_si256(b, kv));
    }
    return n;
}
#endif

unsigned loom_ws_mask_copy(void *dstv, const void *srcv, size_t n, const uint8_t key[4],
                           unsigned off)
{
    uint8_t *dst = dstv;
    const uint8_t *src = srcv;
    off &= 3;
    unsigned end = (unsigned)((off + n) & 3);
    if (n >= 8) {
        uint64_t kw = key_word(key, off);
#ifdef LOOM_WS_MASK_AVX2
        if (n >= 256 && __builtin_cpu_supports("avx2")) {
            size_t done = mask_avx2(dst, src, n & ~(size_t)63, kw);
            src += done, dst += done, n -= done;
        }
#endif
#ifdef LOOM_WS_MASK_SSE2
        __m128i kv = _mm_set1_epi64x((long long)kw);
        while (n >= 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + 48));
            _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
            _mm_storeu_si128((__m128i *)(void *)(dst + 16), _mm_xor_si128(b, kv));
            _mm_storeu_si128((__m128i *)(void *)(dst + 32), _mm_xor_si128(c, kv));
            _mm_storeu_si128((__m128i *)(void *)(dst + 48), _mm_xor_si128(d, kv));
            src += 64, dst += 64, n -= 64;
        }
        while (n >= 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
            _mm_storeu_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
            src += 16, dst += 16, n -= 16;
        }
#endif
        while (n >= 8) {
            uint64_t w;
            memcpy(&w, src, 8);
            w ^= kw;
            memcpy(dst, &w, 8);
            src += 8, dst += 8, n -= 8;
        }
        /* Whole words leave the offset where it was (8 is a multiple of 4). */
    }
    while (n > 0) {
        *dst++ = *src++ ^ key[off];
        off = (off + 1) & 3;
        n--;
    }
    return end;
}

unsigned loom_ws_mask(void *p, size_t n, const uint8_t key[4], unsigned off)
{
    return loom_ws_mask_copy(p, p, n, key, off);
}
