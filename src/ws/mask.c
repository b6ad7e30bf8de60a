/* src/ws/mask.c - WebSocket masking (RFC 6455 section 5.3), word at a time.
 *
 * Masking XORs the payload with a repeating 4-byte key. The key is widened to
 * a 64-bit word rotated to the current offset, so after a byte-wise prologue
 * that aligns the destination, 8 bytes (or 16 with SSE2, which every x86_64
 * has, so no run-time check is needed) go per step. AVX2 did not pay here: the
 * loop is bound by memory bandwidth well before 16 bytes per cycle, and the
 * payloads are mostly small. The key offset is carried across calls so a
 * payload split over reads is unmasked by chaining calls.
 */
#include <string.h>

#include "loom/ws_frame.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#define LOOM_WS_MASK_SSE2 1
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

unsigned loom_ws_mask_copy(void *dstv, const void *srcv, size_t n, const uint8_t key[4],
                           unsigned off)
{
    uint8_t *dst = dstv;
    const uint8_t *src = srcv;
    off &= 3;
    unsigned end = (unsigned)((off + n) & 3);
    /* Prologue: bytes until dst is 16-byte aligned (or all of a short run). */
    while (n > 0 && ((uintptr_t)dst & 15) != 0) {
        *dst++ = *src++ ^ key[off];
        off = (off + 1) & 3;
        n--;
    }
    if (n >= 8) {
        uint64_t kw = key_word(key, off);
#ifdef LOOM_WS_MASK_SSE2
        __m128i kv = _mm_set1_epi64x((long long)kw);
        while (n >= 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(src + 48));
            _mm_store_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
            _mm_store_si128((__m128i *)(void *)(dst + 16), _mm_xor_si128(b, kv));
            _mm_store_si128((__m128i *)(void *)(dst + 32), _mm_xor_si128(c, kv));
            _mm_store_si128((__m128i *)(void *)(dst + 48), _mm_xor_si128(d, kv));
            src += 64, dst += 64, n -= 64;
        }
        while (n >= 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)src);
            _mm_store_si128((__m128i *)(void *)dst, _mm_xor_si128(a, kv));
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
