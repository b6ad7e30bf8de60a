/* bench/ws/ws_common.h - the pieces of WebSocket the bench programs written
 * by hand share (the raw limit probe and the load generator): SHA-1 and
 * base64 for the handshake's Sec-WebSocket-Accept, and frame headers.
 * Written for the benchmark only: straightforward, not hardened.
 */
#ifndef BENCH_WS_COMMON_H
#define BENCH_WS_COMMON_H

#include <stdint.h>
#include <string.h>
#include <strings.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static inline uint32_t ws_rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static inline void ws_sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = ws_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t t = ws_rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = ws_rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

/* SHA-1 of a message shorter than 120 bytes (a key and the GUID). */
static inline void ws_sha1_short(const uint8_t *msg, size_t len, uint8_t out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint8_t buf[128] = {0};
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    size_t total = len + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        buf[total - 1 - i] = (uint8_t)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64)
        ws_sha1_block(h, buf + off);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(h[i] >> 8);
        out[4 * i + 3] = (uint8_t)h[i];
    }
}

static inline size_t ws_base64(const uint8_t *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

/* Sec-WebSocket-Accept for a key (at most 60 bytes): 28 characters + NUL. */
static inline void ws_accept_for(const char *key, size_t klen, char out[29])
{
    uint8_t buf[120], dig[20];
    if (klen > 60)
        klen = 60;
    memcpy(buf, key, klen);
    memcpy(buf + klen, WS_GUID, 36);
    ws_sha1_short(buf, klen + 36, dig);
    ws_base64(dig, 20, out);
}

/* Writes a frame header (FIN set) for opcode and payload length; with a
 * mask, the 4 key bytes follow. Returns its length (at most 14). */
static inline size_t ws_frame_header(uint8_t *h, int opcode, int rsv1, uint64_t len,
                                     const uint8_t *mask)
{
    size_t n = 0;
    h[n++] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | opcode);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        h[n++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        h[n++] = m | 126;
        h[n++] = (uint8_t)(len >> 8);
        h[n++] = (uint8_t)len;
    } else {
        h[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            h[n++] = (uint8_t)(len >> (8 * i));
    }
    if (mask) {
        memcpy(h + n, mask, 4);
        n += 4;
    }
    return n;
}

/* A parsed frame header. ws_frame_parse() returns the header length, 0 if
 * more bytes are needed. */
typedef struct {
    int fin, rsv1, opcode, masked;
    uint8_t mask[4];
    uint64_t len;
} ws_hdr_t;

static inline size_t ws_frame_parse(const uint8_t *p, size_t avail, ws_hdr_t *h)
{
    if (avail < 2)
        return 0;
    h->fin = p[0] >> 7;
    h->rsv1 = (p[0] >> 6) & 1;
    h->opcode = p[0] & 15;
    h->masked = p[1] >> 7;
    uint64_t len = p[1] & 127;
    size_t n = 2;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        n = 4;
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        n = 10;
    }
    if (h->masked) {
        if (avail < n + 4)
            return 0;
        memcpy(h->mask, p + n, 4);
        n += 4;
    }
    h->len = len;
    return n;
}

/* Unmasks (or masks) in place, a word at a time. */
static inline void ws_mask(uint8_t *p, uint64_t len, const uint8_t mask[4], uint64_t off)
{
    uint8_t m[8];
    for (int i = 0; i < 8; i++)
        m[i] = mask[(off + (uint64_t)i) & 3];
    uint64_t m64;
    memcpy(&m64, m, 8);
    uint64_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v ^= m64;
        memcpy(p + i, &v, 8);
    }
    for (; i < len; i++)
        p[i] ^= m[i & 7];
}

/* Finds a header's value in a request or response head (case-insensitive
 * name); returns a pointer to the value and its length, or NULL. */
static inline const char *ws_header(const char *head, size_t hlen, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *end = head + hlen;
    const char *p = memchr(head, '\n', hlen);
    while (p && p + 1 < end) {
        p++;
        if ((size_t)(end - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = v;
            while (e < end && *e != '\r' && *e != '\n')
                e++;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            *vlen = (size_t)(e - v);
            return v;
        }
        p = memchr(p, '\n', (size_t)(end - p));
    }
    return NULL;
}

#endif
