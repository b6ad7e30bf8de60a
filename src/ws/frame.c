/* src/ws/frame.c - the WebSocket frame parser and encoder (RFC 6455
 * section 5), close payloads and the layer's error table.
 *
 * The parser is a two-state machine: HEADER collects the 2 to 14 header bytes
 * into the parser's own hbuf (so a header split at any byte resumes), and is
 * validated as early as possible (the first two bytes carry FIN, RSV, opcode,
 * mask flag and the 7-bit length, which is enough for every check but the
 * extended length); PAYLOAD hands out slices of the caller's buffer, unmasked
 * in place. hbuf keeps the whole header while the payload runs, so the frame
 * is reported from it on every call without storing it twice.
 */
#include <limits.h>
#include <string.h>

#include "loom/error.h"
#include "loom/ws_frame.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

const char *loom_ws_err_str(int code)
{
    switch (code) {
#define LOOM__WS_ERR_STR(name, val, close, msg)                                                    \
    case val:                                                                                      \
        return msg;
        LOOM_WS_ERR_MAP(LOOM__WS_ERR_STR)
#undef LOOM__WS_ERR_STR
    default:
        return "unknown websocket error";
    }
}

int loom_ws_err_close_code(int code)
{
    switch (code) {
#define LOOM__WS_ERR_CLOSE(name, val, close, msg)                                                  \
    case val:                                                                                      \
        return close;
        LOOM_WS_ERR_MAP(LOOM__WS_ERR_CLOSE)
#undef LOOM__WS_ERR_CLOSE
    default:
        return 0;
    }
}

int loom_ws_close_code_valid(unsigned code)
{
    if (code >= 1000 && code <= 1003)
        return 1;
    if (code >= 1007 && code <= 1014)
        return 1;
    return code >= 3000 && code <= 4999;
}

/* ------------------------------------------------------------------------ */
/* Parser                                                                    */

enum { S_HEADER = 0, S_PAYLOAD, S_FAILED };

#define F_CLIENT 0x80 /* in p->flags: the parser is a client's */

/* The UTF-8 validator keeps its state in one byte; the parser stores it raw. */
static int utf8_feed(uint8_t *state, const uint8_t *d, size_t n)
{
    loom_ws_utf8_t u = {*state};
    int r = loom_ws_utf8_feed(&u, d, n, NULL);
    *state = u.state;
    return r;
}

void loom_ws_parser_init(loom_ws_parser_t *p, const loom_ws_parser_opts_t *opts)
{
    memset(p, 0, sizeof *p);
    if (opts) {
        p->max_frame = opts->max_frame;
        p->max_message = opts->max_message;
        p->flags = (uint8_t)(opts->flags & 0x7f);
        if (opts->role == LOOM_WS_ROLE_CLIENT)
            p->flags |= F_CLIENT;
    }
    p->state = S_HEADER;
}

void loom_ws_parser_set_flags(loom_ws_parser_t *p, unsigned flags)
{
    p->flags = (uint8_t)((p->flags & F_CLIENT) | (flags & 0x7f));
}

int loom_ws_parser_idle(const loom_ws_parser_t *p)
{
    return p->state == S_HEADER && p->hlen == 0;
}

int loom_ws_parser_in_message(const loom_ws_parser_t *p)
{
    return p->msg;
}

/* Header length once the first two bytes are known. */
static size_t header_need(const uint8_t *h)
{
    size_t n = 2;
    uint8_t l7 = h[1] & 0x7f;
    if (l7 == 126)
        n += 2;
    else if (l7 == 127)
        n += 8;
    if (h[1] & 0x80)
        n += 4;
    return n;
}

/* Decodes a complete header from hbuf (validated already). */
static void header_decode(const uint8_t *h, loom_ws_frame_t *f)
{
    size_t i = 2;
    uint8_t l7 = h[1] & 0x7f;
    f->fin = (h[0] >> 7) & 1;
    f->rsv = (h[0] >> 4) & 7;
    f->opcode = h[0] & 0x0f;
    f->masked = (h[1] >> 7) & 1;
    if (l7 == 126) {
        f->payload_len = ((uint64_t)h[2] << 8) | h[3];
        i = 4;
    } else if (l7 == 127) {
        uint64_t v = 0;
        for (int k = 0; k < 8; k++)
            v = (v << 8) | h[2 + k];
        f->payload_len = v;
        i = 10;
    } else {
        f->payload_len = l7;
    }
    if (f->masked)
        memcpy(f->mask, h + i, 4);
    else
        memset(f->mask, 0, 4);
}

/* The checks the first two bytes allow. */
static int check_first(const loom_ws_parser_t *p, uint8_t b0, uint8_t b1)
{
    unsigned fin = b0 >> 7, rsv = (b0 >> 4) & 7, op = b0 & 0x0f, masked = b1 >> 7;
    unsigned l7 = b1 & 0x7f;
    if (op >= 3 && op <= 7)
        return LOOM_WS_ERR_OPCODE;
    if (op > 0xA)
        return LOOM_WS_ERR_OPCODE;
    if (rsv & 3)
        return LOOM_WS_ERR_RSV;
    if (rsv & 4) {
        if (!(p->flags & LOOM_WS_PARSE_DEFLATE))
            return LOOM_WS_ERR_RSV;
        if (op == LOOM_WS_OP_CONT || LOOM_WS_OP_IS_CONTROL(op))
            return LOOM_WS_ERR_RSV1_PLACEMENT;
    }
    if (p->flags & F_CLIENT) {
        if (masked)
            return LOOM_WS_ERR_MASK_FORBIDDEN;
    } else if (!masked) {
        return LOOM_WS_ERR_MASK_REQUIRED;
    }
    if (LOOM_WS_OP_IS_CONTROL(op)) {
        if (!fin)
            return LOOM_WS_ERR_CONTROL_FRAGMENTED;
        if (l7 > LOOM_WS_MAX_CONTROL)
            return LOOM_WS_ERR_CONTROL_TOO_BIG;
        if (op == LOOM_WS_OP_CLOSE && l7 == 1)
            return LOOM_WS_ERR_CLOSE_PAYLOAD;
    } else if (op == LOOM_WS_OP_CONT) {
        if (!p->msg)
            return LOOM_WS_ERR_CONT_UNEXPECTED;
    } else if (p->msg) {
        return LOOM_WS_ERR_DATA_IN_MESSAGE;
    }
    return 0;
}

/* The wire-size limit of the current message: max_message, with room for
 * deflate's expansion of incompressible data when the message is compressed. */
static uint64_t message_limit(const loom_ws_parser_t *p)
{
    uint64_t m = p->max_message;
    if (!p->msg_rsv1)
        return m;
    uint64_t extra = m / 64 + 64;
    return m > UINT64_MAX - extra ? UINT64_MAX : m + extra;
}

/* Called once the whole header is in hbuf. */
static int header_done(loom_ws_parser_t *p, loom_ws_frame_t *f)
{
    header_decode(p->hbuf, f);
    if (f->payload_len >> 63)
        return LOOM_WS_ERR_LENGTH;
    if (p->flags & LOOM_WS_PARSE_STRICT_LENGTH) {
        uint8_t l7 = p->hbuf[1] & 0x7f;
        if ((l7 == 126 && f->payload_len < 126) || (l7 == 127 && f->payload_len <= 0xffff))
            return LOOM_WS_ERR_LENGTH_NOT_MINIMAL;
    }
    if (!LOOM_WS_OP_IS_CONTROL(f->opcode)) {
        if (p->max_frame && f->payload_len > p->max_frame)
            return LOOM_WS_ERR_FRAME_TOO_BIG;
        if (f->opcode != LOOM_WS_OP_CONT) {
            p->msg = f->opcode;
            p->msg_rsv1 = (f->rsv & 4) ? 1 : 0;
            p->msg_len = 0;
            p->utf8 = 0;
        }
        if (p->max_message) {
            uint64_t lim = message_limit(p);
            if (f->payload_len > lim - p->msg_len)
                return LOOM_WS_ERR_MESSAGE_TOO_BIG;
        }
        p->msg_len += f->payload_len;
    } else if (f->opcode == LOOM_WS_OP_CLOSE) {
        p->cpos = 0;
        p->ccode = 0;
        p->cutf8 = 0;
    }
    p->opcode = f->opcode;
    p->fin = f->fin;
    memcpy(p->mask, f->mask, 4);
    p->mask_off = 0;
    p->remaining = f->payload_len;
    p->state = S_PAYLOAD;
    return 0;
}

/* Close payload bytes (unmasked): the code, then the reason. */
static int close_bytes(loom_ws_parser_t *p, const uint8_t *d, size_t n)
{
    while (n > 0 && p->cpos < 2) {
        p->ccode = (uint16_t)((p->ccode << 8) | *d++);
        n--;
        if (++p->cpos == 2 && !loom_ws_close_code_valid(p->ccode))
            return LOOM_WS_ERR_CLOSE_CODE;
    }
    if (n > 0 && utf8_feed(&p->cutf8, d, n) < 0)
        return LOOM_WS_ERR_CLOSE_REASON;
    return 0;
}

static int fail(loom_ws_parser_t *p, int err)
{
    p->state = S_FAILED;
    return err;
}

int loom_ws_parse(loom_ws_parser_t *p, uint8_t *buf, size_t len, loom_ws_parse_out_t *out)
{
    size_t used = 0;
    int r;
    memset(out, 0, sizeof *out);
    if (p->state == S_FAILED)
        return LOOM_WS_ERR_STATE;
    if (len > (size_t)INT_MAX)
        len = (size_t)INT_MAX; /* the count must fit the return value */

    if (p->state == S_HEADER) {
        /* Collect the first two bytes, check them, then the rest. */
        while (p->hlen < 2 && used < len)
            p->hbuf[p->hlen++] = buf[used++];
        if (p->hlen < 2)
            return (int)used;
        if (p->hlen == 2 || used > 0) {
            /* First time the two bytes are complete (cheap to repeat). */
            r = check_first(p, p->hbuf[0], p->hbuf[1]);
            if (r < 0)
                return fail(p, r);
        }
        size_t need = header_need(p->hbuf);
        size_t take = need - p->hlen;
        if (take > len - used)
            take = len - used;
        memcpy(p->hbuf + p->hlen, buf + used, take);
        p->hlen = (uint8_t)(p->hlen + take);
        used += take;
        if (p->hlen < need)
            return (int)used;
        r = header_done(p, &out->frame);
        if (r < 0)
            return fail(p, r);
        out->flags |= LOOM_WS_OUT_HEADER;
    } else {
        header_decode(p->hbuf, &out->frame);
    }

    /* Payload. */
    size_t k = len - used;
    if (k > p->remaining)
        k = (size_t)p->remaining;
    uint8_t *d = buf + used;
    out->offset = out->frame.payload_len - p->remaining;
    if (k > 0) {
        if (!(p->flags & F_CLIENT)) /* client frames are masked, server frames not */
            p->mask_off = (uint8_t)loom_ws_mask(d, k, p->mask, p->mask_off);
        if (p->opcode == LOOM_WS_OP_CLOSE) {
            r = close_bytes(p, d, k);
            if (r < 0)
                return fail(p, r);
        } else if (!LOOM_WS_OP_IS_CONTROL(p->opcode) && p->msg == LOOM_WS_OP_TEXT && !p->msg_rsv1 &&
                   (p->flags & LOOM_WS_PARSE_UTF8)) {
            if (utf8_feed(&p->utf8, d, k) < 0)
                return fail(p, LOOM_WS_ERR_UTF8);
        }
        p->remaining -= k;
        used += k;
        out->data = d;
        out->data_len = k;
    }
    if (p->opcode == LOOM_WS_OP_CLOSE && p->cpos == 2)
        out->close_code = p->ccode;
    if (p->remaining == 0) {
        out->flags |= LOOM_WS_OUT_FRAME_END;
        if (p->opcode == LOOM_WS_OP_CLOSE) {
            if (p->cutf8 != 0)
                return fail(p, LOOM_WS_ERR_CLOSE_REASON);
            if (p->cpos == 0)
                out->close_code = LOOM_WS_CLOSE_NO_STATUS;
        } else if (!LOOM_WS_OP_IS_CONTROL(p->opcode) && p->fin) {
            if (p->msg == LOOM_WS_OP_TEXT && !p->msg_rsv1 && (p->flags & LOOM_WS_PARSE_UTF8) &&
                p->utf8 != 0)
                return fail(p, LOOM_WS_ERR_UTF8);
            out->flags |= LOOM_WS_OUT_MSG_END;
            p->msg = 0;
            p->msg_rsv1 = 0;
            p->msg_len = 0;
        }
        p->state = S_HEADER;
        p->hlen = 0;
    }
    return (int)used;
}

/* ------------------------------------------------------------------------ */
/* Encoder                                                                   */

size_t loom_ws_frame_header_len(uint64_t len, int masked)
{
    size_t n = len < 126 ? 2 : len <= 0xffff ? 4 : 10;
    return masked ? n + 4 : n;
}

int loom_ws_frame_header(uint8_t out[LOOM_WS_HEADER_MAX], const loom_ws_frame_t *f)
{
    uint64_t len = f->payload_len;
    size_t i;
    if (f->opcode > 15 || f->rsv > 7 || (len >> 63))
        return LOOM_EINVAL;
    if (LOOM_WS_OP_IS_CONTROL(f->opcode) && (!f->fin || len > LOOM_WS_MAX_CONTROL))
        return LOOM_EINVAL;
    out[0] = (uint8_t)((f->fin ? 0x80 : 0) | (f->rsv << 4) | f->opcode);
    uint8_t m = f->masked ? 0x80 : 0;
    if (len < 126) {
        out[1] = (uint8_t)(m | len);
        i = 2;
    } else if (len <= 0xffff) {
        out[1] = (uint8_t)(m | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        i = 4;
    } else {
        out[1] = (uint8_t)(m | 127);
        for (int k = 0; k < 8; k++)
            out[2 + k] = (uint8_t)(len >> (56 - 8 * k));
        i = 10;
    }
    if (f->masked) {
        memcpy(out + i, f->mask, 4);
        i += 4;
    }
    return (int)i;
}

int loom_ws_close_payload(uint8_t out[LOOM_WS_MAX_CONTROL], unsigned code, const char *reason,
                          size_t reason_len)
{
    if (code == 0)
        return 0;
    if (!loom_ws_close_code_valid(code))
        return LOOM_EINVAL;
    if (!reason)
        reason_len = 0;
    if (reason_len && !loom_ws_utf8_valid(reason, reason_len))
        return LOOM_EINVAL;
    if (reason_len > LOOM_WS_MAX_CLOSE_REASON) {
        /* Cut before the character that would cross the limit. */
        reason_len = LOOM_WS_MAX_CLOSE_REASON;
        while (reason_len > 0 && ((uint8_t)reason[reason_len] & 0xC0) == 0x80)
            reason_len--;
    }
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (reason_len)
        memcpy(out + 2, reason, reason_len);
    return (int)(2 + reason_len);
}

int loom_ws_close_parse(const uint8_t *d, size_t n, unsigned *code, const char **reason,
                        size_t *reason_len)
{
    *code = LOOM_WS_CLOSE_NO_STATUS;
    *reason = NULL;
    *reason_len = 0;
    if (n == 0)
        return 0;
    if (n > LOOM_WS_MAX_CONTROL)
        return LOOM_WS_ERR_CONTROL_TOO_BIG;
    if (n == 1)
        return LOOM_WS_ERR_CLOSE_PAYLOAD;
    unsigned c = ((unsigned)d[0] << 8) | d[1];
    if (!loom_ws_close_code_valid(c))
        return LOOM_WS_ERR_CLOSE_CODE;
    if (!loom_ws_utf8_valid(d + 2, n - 2))
        return LOOM_WS_ERR_CLOSE_REASON;
    *code = c;
    *reason = (const char *)d + 2;
    *reason_len = n - 2;
    return 0;
}
