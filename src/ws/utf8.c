/* src/ws/utf8.c - incremental UTF-8 validation for WebSocket text messages.
 *
 * A byte-wise state machine over the well-formed byte sequences of Unicode
 * (Table 3-7 of the Unicode standard): the second byte's range depends on the
 * lead byte, which is how overlongs (E0 80..9F, F0 80..8F), surrogates
 * (ED A0..BF) and code points above U+10FFFF (F4 90.., F5..FF) are rejected
 * at the first byte that cannot continue a valid sequence. C0, C1 and stray
 * continuation bytes are rejected as lead bytes. Between characters, ASCII
 * runs are skipped 16 bytes per step. The state is one byte, kept by the
 * caller across frames and reads.
 */
#include <string.h>

#include "loom/ws_frame.h"

enum {
    U_ACCEPT = 0, /* between characters */
    U_1,          /* one more 80..BF */
    U_2,          /* two more 80..BF */
    U_3,          /* three more 80..BF */
    U_E0,         /* A0..BF, then one more */
    U_ED,         /* 80..9F, then one more */
    U_F0,         /* 90..BF, then two more */
    U_F4,         /* 80..8F, then two more */
    U_FAIL
};

/* Lead byte -> state. */
static uint8_t lead_state(uint8_t b)
{
    if (b < 0x80)
        return U_ACCEPT;
    if (b < 0xC2)
        return U_FAIL;
    if (b < 0xE0)
        return U_1;
    if (b == 0xE0)
        return U_E0;
    if (b == 0xED)
        return U_ED;
    if (b < 0xF0)
        return U_2;
    if (b == 0xF0)
        return U_F0;
    if (b < 0xF4)
        return U_3;
    if (b == 0xF4)
        return U_F4;
    return U_FAIL;
}

static uint8_t step(uint8_t s, uint8_t b)
{
    switch (s) {
    case U_ACCEPT:
        return lead_state(b);
    case U_1:
    case U_2:
    case U_3:
        return (b & 0xC0) == 0x80 ? (uint8_t)(s - 1) : U_FAIL;
    case U_E0:
        return (b >= 0xA0 && b <= 0xBF) ? U_1 : U_FAIL;
    case U_ED:
        return (b >= 0x80 && b <= 0x9F) ? U_1 : U_FAIL;
    case U_F0:
        return (b >= 0x90 && b <= 0xBF) ? U_2 : U_FAIL;
    case U_F4:
        return (b >= 0x80 && b <= 0x8F) ? U_2 : U_FAIL;
    default:
        return U_FAIL;
    }
}

void loom_ws_utf8_init(loom_ws_utf8_t *u)
{
    u->state = U_ACCEPT;
}

int loom_ws_utf8_feed(loom_ws_utf8_t *u, const void *pv, size_t n, size_t *bad)
{
    const uint8_t *p = pv;
    uint8_t s = u->state;
    size_t i = 0;
    if (s == U_FAIL) {
        if (bad)
            *bad = 0;
        return LOOM_WS_ERR_UTF8;
    }
    while (i < n) {
        if (s == U_ACCEPT) {
            /* ASCII fast path: 16 bytes per step while no byte has bit 7. */
            while (n - i >= 16) {
                uint64_t a, b;
                memcpy(&a, p + i, 8);
                memcpy(&b, p + i + 8, 8);
                if (((a | b) & 0x8080808080808080ull) != 0)
                    break;
                i += 16;
            }
            while (i < n && p[i] < 0x80)
                i++;
            if (i == n)
                break;
        }
        s = step(s, p[i]);
        if (s == U_FAIL) {
            u->state = U_FAIL;
            if (bad)
                *bad = i;
            return LOOM_WS_ERR_UTF8;
        }
        i++;
    }
    u->state = s;
    return 0;
}

int loom_ws_utf8_finish(loom_ws_utf8_t *u)
{
    if (u->state != U_ACCEPT)
        return LOOM_WS_ERR_UTF8;
    return 0;
}

int loom_ws_utf8_valid(const void *p, size_t n)
{
    loom_ws_utf8_t u = {U_ACCEPT};
    return loom_ws_utf8_feed(&u, p, n, NULL) == 0 && u.state == U_ACCEPT;
}
