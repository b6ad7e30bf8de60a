/* src/ws/deflate.c - permessage-deflate (RFC 7692): the negotiation of the
 * Sec-WebSocket-Extensions header and the zlib codec.
 *
 * Negotiation parses the header grammar of RFC 6455 section 9.1 (a list of
 * extensions, each a token with ;-separated token[=token|quoted-string]
 * parameters) without allocating. The codec keeps one raw-deflate stream per
 * direction, created on first use. Without context takeover a stream holds
 * nothing between messages, so at the end of each message it leaves the
 * connection (an idle connection holds no zlib memory) for a small per-thread
 * cache of idle streams, from which the next message of any connection with
 * the same parameters takes it: no deflateInit2/inflateInit2 (and their
 * 300 KiB of calloc'd memory) per message, only a reset.
 */
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "loom/error.h"
#include "loom/ws_frame.h"

/* For ws.c, declared in ws_internal.h too (not included here: this file is
 * also built alone, by the fuzz target, without the build's configuration). */
void *loom__ws_zbuf(size_t n, int *owned);

/* ------------------------------------------------------------------------ */
/* Header grammar                                                            */

static int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(const char *v, size_t len, size_t *i)
{
    while (*i < len && (v[*i] == ' ' || v[*i] == '\t'))
        (*i)++;
}

/* Reads a token; returns its length (0 if none). */
static size_t read_token(const char *v, size_t len, size_t *i)
{
    size_t s = *i;
    while (*i < len && is_tchar((unsigned char)v[*i]))
        (*i)++;
    return *i - s;
}

static int name_is(const char *p, size_t n, const char *lit)
{
    size_t l = strlen(lit);
    if (n != l)
        return 0;
    for (size_t k = 0; k < n; k++)
        if ((p[k] | 0x20) != lit[k] && p[k] != lit[k])
            return 0;
    return 1;
}

/* Parses a window-bits value: a decimal 8..15 without leading zeros. */
static int window_bits(const char *p, size_t n)
{
    if (n == 1 && p[0] >= '8' && p[0] <= '9')
        return p[0] - '0';
    if (n == 2 && p[0] == '1' && p[1] >= '0' && p[1] <= '5')
        return 10 + (p[1] - '0');
    return -1;
}

/* One list element. is_pmd: the element is permessage-deflate; bad: one of
 * its parameters is unknown, duplicated or has a bad value (the element is
 * still consumed). Returns 1 for an element, 0 at the end, or
 * LOOM_WS_ERR_EXTENSION on a syntax error. */
static int parse_element(const char *v, size_t len, size_t *pos, int *is_pmd,
                         loom_ws_deflate_params_t *pp, int *bad)
{
    size_t i = *pos;
    memset(pp, 0, sizeof *pp);
    *bad = 0;
    *is_pmd = 0;
    /* Empty elements (", ,") are allowed by the list rule. */
    for (;;) {
        skip_ows(v, len, &i);
        if (i < len && v[i] == ',')
            i++;
        else
            break;
    }
    if (i >= len) {
        *pos = i;
        return 0;
    }
    size_t ns = i, nn = read_token(v, len, &i);
    if (nn == 0)
        return LOOM_WS_ERR_EXTENSION;
    *is_pmd = name_is(v + ns, nn, "permessage-deflate");
    uint8_t seen = 0;
    for (;;) {
        skip_ows(v, len, &i);
        if (i >= len || v[i] == ',')
            break;
        if (v[i] != ';')
            return LOOM_WS_ERR_EXTENSION;
        i++;
        skip_ows(v, len, &i);
        size_t ps = i, pn = read_token(v, len, &i);
        if (pn == 0)
            return LOOM_WS_ERR_EXTENSION;
        skip_ows(v, len, &i);
        const char *val = NULL;
        size_t vn = 0;
        char qbuf[8];
        int has_val = 0;
        if (i < len && v[i] == '=') {
            i++;
            skip_ows(v, len, &i);
            has_val = 1;
            if (i < len && v[i] == '"') {
                /* quoted-string; unescaped into qbuf (longer values are bad). */
                i++;
                int closed = 0, toolong = 0;
                while (i < len) {
                    unsigned char c = (unsigned char)v[i];
                    if (c == '"') {
                        i++;
                        closed = 1;
                        break;
                    }
                    if (c == '\\') {
                        if (++i >= len)
                            break;
                        c = (unsigned char)v[i];
                    }
                    if (c < 0x20 && c != '\t')
                        return LOOM_WS_ERR_EXTENSION;
                    if (c == 0x7f)
                        return LOOM_WS_ERR_EXTENSION;
                    if (vn < sizeof qbuf)
                        qbuf[vn] = (char)c;
                    else
                        toolong = 1;
                    vn++;
                    i++;
                }
                if (!closed)
                    return LOOM_WS_ERR_EXTENSION;
                val = qbuf;
                if (toolong)
                    vn = sizeof qbuf + 1; /* fails window_bits() */
            } else {
                size_t vs = i;
                vn = read_token(v, len, &i);
                if (vn == 0)
                    return LOOM_WS_ERR_EXTENSION;
                val = v + vs;
            }
        }
        if (!*is_pmd)
            continue;
        const char *pname = v + ps;
        int bit, wb;
        if (name_is(pname, pn, "server_no_context_takeover")) {
            bit = 1;
            if (has_val)
                *bad = 1;
            pp->server_no_context_takeover = 1;
        } else if (name_is(pname, pn, "client_no_context_takeover")) {
            bit = 2;
            if (has_val)
                *bad = 1;
            pp->client_no_context_takeover = 1;
        } else if (name_is(pname, pn, "server_max_window_bits")) {
            bit = 4;
            wb = has_val ? window_bits(val, vn) : -1;
            if (wb < 0)
                *bad = 1;
            else
                pp->server_max_window_bits = (uint8_t)wb;
        } else if (name_is(pname, pn, "client_max_window_bits")) {
            bit = 8;
            wb = has_val ? window_bits(val, vn) : LOOM_WS_DEFLATE_BITS_NOVALUE;
            if (wb < 0)
                *bad = 1;
            else
                pp->client_max_window_bits = (uint8_t)wb;
        } else {
            *bad = 1;
            continue;
        }
        if (seen & bit)
            *bad = 1;
        seen |= (uint8_t)bit;
    }
    if (i < len)
        i++; /* the comma */
    *pos = i;
    return 1;
}

int loom_ws_deflate_offer_next(const char *value, size_t len, size_t *pos,
                               loom_ws_deflate_params_t *out)
{
    for (;;) {
        int is_pmd, bad;
        loom_ws_deflate_params_t pp;
        int r = parse_element(value, len, pos, &is_pmd, &pp, &bad);
        if (r <= 0)
            return r;
        if (is_pmd && !bad) {
            *out = pp;
            return 1;
        }
    }
}

static uint8_t bits_or_15(uint8_t b)
{
    return (b >= 8 && b <= 15) ? b : 15;
}

static int write_params(const loom_ws_deflate_params_t *a, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "permessage-deflate%s%s",
                     a->server_no_context_takeover ? "; server_no_context_takeover" : "",
                     a->client_no_context_takeover ? "; client_no_context_takeover" : "");
    if (n < 0 || (size_t)n >= cap)
        return LOOM_EINVAL;
    size_t k = (size_t)n;
    if (a->server_max_window_bits) {
        n = snprintf(buf + k, cap - k, "; server_max_window_bits=%u", a->server_max_window_bits);
        if (n < 0 || (size_t)n >= cap - k)
            return LOOM_EINVAL;
        k += (size_t)n;
    }
    if (a->client_max_window_bits == LOOM_WS_DEFLATE_BITS_NOVALUE)
        n = snprintf(buf + k, cap - k, "; client_max_window_bits");
    else if (a->client_max_window_bits)
        n = snprintf(buf + k, cap - k, "; client_max_window_bits=%u", a->client_max_window_bits);
    else
        n = 0;
    if (n < 0 || (size_t)n >= cap - k)
        return LOOM_EINVAL;
    return (int)(k + (size_t)n);
}

static int opts_valid_bits(uint8_t b)
{
    return b == 0 || (b >= 8 && b <= 15);
}

int loom_ws_deflate_negotiate(const char *value, size_t len, const loom_ws_deflate_opts_t *server,
                              loom_ws_deflate_params_t *agreed, char *resp, size_t resp_cap)
{
    static const loom_ws_deflate_opts_t defaults;
    if (!server)
        server = &defaults;
    if (!opts_valid_bits(server->server_max_window_bits) ||
        !opts_valid_bits(server->client_max_window_bits))
        return LOOM_EINVAL;
    size_t pos = 0;
    loom_ws_deflate_params_t o;
    int r;
    while ((r = loom_ws_deflate_offer_next(value, len, &pos, &o)) == 1) {
        loom_ws_deflate_params_t a = {0};
        a.server_no_context_takeover =
            (uint8_t)(o.server_no_context_takeover | server->server_no_context_takeover);
        a.client_no_context_takeover =
            (uint8_t)(o.client_no_context_takeover | server->client_no_context_takeover);
        /* The server's window: ours, capped by the client's request. */
        uint8_t sb = bits_or_15(server->server_max_window_bits);
        if (o.server_max_window_bits && o.server_max_window_bits < sb)
            sb = o.server_max_window_bits;
        if (sb < 15 || o.server_max_window_bits)
            a.server_max_window_bits = sb;
        /* The client's window: only declarable if the client offered it. */
        uint8_t cb = bits_or_15(server->client_max_window_bits);
        if (o.client_max_window_bits) {
            if (o.client_max_window_bits != LOOM_WS_DEFLATE_BITS_NOVALUE &&
                o.client_max_window_bits < cb)
                cb = o.client_max_window_bits;
            if (cb < 15 || o.client_max_window_bits != LOOM_WS_DEFLATE_BITS_NOVALUE)
                a.client_max_window_bits = cb;
        } else if (cb < 15) {
            continue; /* we need a smaller client window than it can promise */
        }
        int n = write_params(&a, resp, resp_cap);
        if (n < 0)
            return n;
        *agreed = a;
        return 1;
    }
    return r;
}

int loom_ws_deflate_offer(const loom_ws_deflate_opts_t *client, char *buf, size_t cap)
{
    static const loom_ws_deflate_opts_t defaults;
    if (!client)
        client = &defaults;
    if (!opts_valid_bits(client->server_max_window_bits) ||
        !opts_valid_bits(client->client_max_window_bits))
        return LOOM_EINVAL;
    loom_ws_deflate_params_t a = {
        .server_no_context_takeover = client->server_no_context_takeover ? 1 : 0,
        .client_no_context_takeover = client->client_no_context_takeover ? 1 : 0,
        .server_max_window_bits = client->server_max_window_bits,
        .client_max_window_bits = client->client_max_window_bits ? client->client_max_window_bits
                                                                 : LOOM_WS_DEFLATE_BITS_NOVALUE,
    };
    return write_params(&a, buf, cap);
}

int loom_ws_deflate_check_response(const char *value, size_t len,
                                   const loom_ws_deflate_opts_t *client,
                                   loom_ws_deflate_params_t *agreed)
{
    static const loom_ws_deflate_opts_t defaults;
    if (!client)
        client = &defaults;
    size_t pos = 0;
    int is_pmd, bad;
    loom_ws_deflate_params_t a;
    int r = parse_element(value, len, &pos, &is_pmd, &a, &bad);
    if (r <= 0)
        return r;
    if (!is_pmd || bad)
        return LOOM_WS_ERR_EXTENSION;
    /* Exactly one extension: anything after it was never offered. */
    loom_ws_deflate_params_t b;
    int is2, bad2;
    r = parse_element(value, len, &pos, &is2, &b, &bad2);
    if (r != 0)
        return LOOM_WS_ERR_EXTENSION;
    /* client_max_window_bits: always offered, so allowed, but with a value
     * no larger than the one offered. */
    if (a.client_max_window_bits == LOOM_WS_DEFLATE_BITS_NOVALUE)
        return LOOM_WS_ERR_EXTENSION;
    uint8_t offered = bits_or_15(client->client_max_window_bits);
    if (a.client_max_window_bits > offered)
        return LOOM_WS_ERR_EXTENSION;
    if (!a.client_max_window_bits && client->client_max_window_bits)
        a.client_max_window_bits = client->client_max_window_bits; /* our own cap */
    /* RFC 7692 section 7.1.1.2: offering client_no_context_takeover tells
     * the server that the client will not use context takeover even if the
     * response leaves the parameter out; so the client's compressor is reset
     * per message whatever the answer (what the option promises). */
    if (client->client_no_context_takeover)
        a.client_no_context_takeover = 1;
    if (client->server_max_window_bits &&
        (!a.server_max_window_bits || a.server_max_window_bits > client->server_max_window_bits))
        return LOOM_WS_ERR_EXTENSION;
    *agreed = a;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Codec                                                                     */

static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};

/* The compression level and memLevel used when the options leave them 0.
 * Level 1 (zlib's deflate_fast, as libwebsockets): on JSON-like text it
 * compresses 2.5x (300-byte messages) to 5x (16 KiB) faster than zlib's
 * default 6, for output about a third larger. memLevel 5 (as Python's
 * websockets) instead of zlib's 8: the same speed and 1-2% more output, but
 * a compressor of 144 KiB instead of 256 KiB, and an idle connection with
 * context takeover keeps 40 KB of RSS instead of 99 KB (docs/WEBSOCKET.md
 * has the figures). */
#define WS_DEFAULT_LEVEL     1
#define WS_DEFAULT_MEM_LEVEL 5

/* --- The per-thread cache of idle streams -------------------------------- */

/* A stream with no context to keep, between two messages: reset and ready.
 * key: deflate: 0x10000 | level << 8 | memLevel << 4 | (bits - 8);
 * inflate: bits. Two of each per thread at most (bounded memory). */
typedef struct {
    z_stream *s;
    uint32_t key;
} ws_zslot;

typedef struct {
    ws_zslot tx[2], rx[2];
    uint8_t tx_next, rx_next; /* the slot replaced next when both are taken */
    /* Scratch memory for the compressed form of a message on its way to the
     * socket (loom__ws_zbuf()). */
    char *buf;
    size_t cap;
} ws_zcache;

/* Scratch buffers above this size are not kept between messages. */
#define WS_ZBUF_KEEP ((size_t)256 << 10)

static pthread_key_t zc_key;
static pthread_once_t zc_once = PTHREAD_ONCE_INIT;
static int zc_key_ok;

static void zc_destroy(void *p)
{
    ws_zcache *c = p;
    for (int i = 0; i < 2; i++) {
        if (c->tx[i].s) {
            deflateEnd(c->tx[i].s);
            free(c->tx[i].s);
        }
        if (c->rx[i].s) {
            inflateEnd(c->rx[i].s);
            free(c->rx[i].s);
        }
    }
    free(c->buf);
    free(c);
}

static void zc_init(void)
{
    zc_key_ok = pthread_key_create(&zc_key, zc_destroy) == 0;
}

static ws_zcache *zc_get(int create)
{
    pthread_once(&zc_once, zc_init);
    if (!zc_key_ok)
        return NULL;
    ws_zcache *c = pthread_getspecific(zc_key);
    if (c == NULL && create) {
        c = calloc(1, sizeof *c);
        if (c && pthread_setspecific(zc_key, c) != 0) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

static uint32_t tx_key(const loom_ws_deflate_t *d)
{
    return 0x10000u | (uint32_t)d->level << 8 | (uint32_t)d->mem_level << 4 |
           (uint32_t)(d->tx_bits - 8);
}

/* Takes a cached idle stream: a compressor (tx) or decompressor with this
 * key, or NULL. */
static z_stream *zc_take(int tx, uint32_t key)
{
    ws_zcache *c = zc_get(0);
    if (c == NULL)
        return NULL;
    ws_zslot *sl = tx ? c->tx : c->rx;
    for (int i = 0; i < 2; i++)
        if (sl[i].s && sl[i].key == key) {
            z_stream *s = sl[i].s;
            sl[i].s = NULL;
            return s;
        }
    return NULL;
}

/* Gives an idle stream (reset already) to the cache, or frees it when the
 * cache cannot take it. */
static void zc_put(int tx, uint32_t key, z_stream *s)
{
    ws_zcache *c = zc_get(1);
    if (c) {
        ws_zslot *sl = tx ? c->tx : c->rx;
        uint8_t *next = tx ? &c->tx_next : &c->rx_next;
        int k = sl[0].s == NULL ? 0 : sl[1].s == NULL ? 1 : *next;
        *next = (uint8_t)(k ^ 1);
        z_stream *old = sl[k].s;
        sl[k].s = s;
        sl[k].key = key;
        s = old;
    }
    if (s) {
        if (tx)
            deflateEnd(s);
        else
            inflateEnd(s);
        free(s);
    }
}

int loom_ws_deflate_init(loom_ws_deflate_t *d, loom_ws_role_t role,
                         const loom_ws_deflate_params_t *a, const loom_ws_deflate_opts_t *opts,
                         uint64_t max_message)
{
    memset(d, 0, sizeof *d);
    if (!a)
        return LOOM_EINVAL;
    uint8_t level = opts && opts->level ? opts->level : WS_DEFAULT_LEVEL;
    uint8_t mem = opts && opts->mem_level ? opts->mem_level : WS_DEFAULT_MEM_LEVEL;
    if (level > 9 || mem > 9)
        return LOOM_EINVAL;
    uint8_t sb = bits_or_15(a->server_max_window_bits);
    uint8_t cb = bits_or_15(a->client_max_window_bits);
    if (role == LOOM_WS_ROLE_SERVER) {
        d->tx_bits = sb, d->rx_bits = cb;
        d->tx_reset = a->server_no_context_takeover, d->rx_reset = a->client_no_context_takeover;
    } else {
        d->tx_bits = cb, d->rx_bits = sb;
        d->tx_reset = a->client_no_context_takeover, d->rx_reset = a->server_no_context_takeover;
    }
    /* zlib refuses raw deflate with windowBits 8; 9 is safe (see header). */
    if (d->tx_bits < 9)
        d->tx_bits = 9;
    d->level = level;
    d->mem_level = mem;
    d->max_message = max_message;
    return 0;
}

static void tx_free(loom_ws_deflate_t *d)
{
    if (d->tx) {
        deflateEnd(d->tx);
        free(d->tx);
        d->tx = NULL;
    }
    d->tx_open = 0;
}

static void rx_free(loom_ws_deflate_t *d)
{
    if (d->rx) {
        inflateEnd(d->rx);
        free(d->rx);
        d->rx = NULL;
    }
    d->rx_total = 0;
    d->rx_tail = 0;
}

void loom_ws_deflate_free(loom_ws_deflate_t *d)
{
    tx_free(d);
    rx_free(d);
}

/* The end of a message without context takeover: the stream goes to the
 * thread's cache, reset. */
static void tx_release(loom_ws_deflate_t *d)
{
    z_stream *s = d->tx;
    d->tx = NULL;
    d->tx_open = 0;
    if (deflateReset(s) == Z_OK) {
        zc_put(1, tx_key(d), s);
    } else {
        deflateEnd(s);
        free(s);
    }
}

static void rx_release(loom_ws_deflate_t *d)
{
    z_stream *s = d->rx;
    d->rx = NULL;
    d->rx_total = 0;
    d->rx_tail = 0;
    if (inflateReset(s) == Z_OK) {
        zc_put(0, d->rx_bits, s);
    } else {
        inflateEnd(s);
        free(s);
    }
}

void *loom__ws_zbuf(size_t n, int *owned)
{
    *owned = 0;
    ws_zcache *c = n <= WS_ZBUF_KEEP ? zc_get(1) : NULL;
    if (c == NULL) {
        *owned = 1;
        return malloc(n);
    }
    if (c->cap < n) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < n)
            cap *= 2;
        char *b = malloc(cap);
        if (b == NULL)
            return NULL;
        free(c->buf);
        c->buf = b;
        c->cap = cap;
    }
    return c->buf;
}

void loom_ws_deflate_cache_flush(void)
{
    ws_zcache *c = zc_get(0);
    if (c == NULL)
        return;
    pthread_setspecific(zc_key, NULL);
    zc_destroy(c);
}

size_t loom_ws_deflate_bound(size_t n)
{
    /* zlib's conservative deflateBound() for any window and memLevel, plus a
     * sync flush's empty stored block and the partial byte before it. */
    return n + ((n + 7) >> 3) + ((n + 63) >> 6) + 5 + 16;
}

size_t loom_ws_deflate_memory(const loom_ws_deflate_t *d)
{
    size_t m = 0;
    if (d->tx)
        m += ((size_t)1 << (d->tx_bits + 2)) + ((size_t)1 << (d->mem_level + 9)) + 6144 +
             sizeof(z_stream);
    if (d->rx)
        m += ((size_t)1 << d->rx_bits) + 7168 + sizeof(z_stream);
    return m;
}

int loom_ws_deflate_compress(loom_ws_deflate_t *d, const void *in, size_t in_len, int last,
                             void *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (in_len > UINT_MAX / 2)
        return LOOM_EMSGSIZE; /* one zlib call per piece: send larger ones in pieces */
    if (cap < loom_ws_deflate_bound(in_len))
        return LOOM_ENOBUFS;
    if (cap > UINT_MAX)
        cap = UINT_MAX;
    if (!d->tx && d->tx_reset)
        d->tx = zc_take(1, tx_key(d));
    if (!d->tx) {
        z_stream *s = calloc(1, sizeof *s);
        if (!s)
            return LOOM_ENOMEM;
        if (deflateInit2(s, d->level, Z_DEFLATED, -(int)d->tx_bits, d->mem_level,
                         Z_DEFAULT_STRATEGY) != Z_OK) {
            free(s);
            return LOOM_ENOMEM;
        }
        d->tx = s;
    }
    z_stream *s = d->tx;
    s->next_in = (Bytef *)(uintptr_t)in;
    s->avail_in = (uInt)in_len;
    s->next_out = out;
    s->avail_out = (uInt)cap;
    d->tx_open = 1;
    int r = deflate(s, Z_SYNC_FLUSH);
    if ((r != Z_OK && r != Z_BUF_ERROR) || s->avail_in != 0 || s->avail_out == 0) {
        /* Cannot happen with cap >= the bound; the stream is unusable. */
        tx_free(d);
        return LOOM_ENOBUFS;
    }
    size_t n = cap - s->avail_out;
    if (last) {
        /* The sync flush ends in 00 00 ff ff: RFC 7692 strips it. */
        if (n >= 4 && memcmp((uint8_t *)out + n - 4, tail, 4) == 0)
            n -= 4;
        /* zlib writes nothing for an empty flush right after another; the
         * receiver still needs the start of a block for its appended tail to
         * complete: a single 0x00 (RFC 7692 section 7.2.3.6). */
        if (n == 0) {
            *(uint8_t *)out = 0x00;
            n = 1;
        }
        d->tx_open = 0;
        if (d->tx_reset)
            tx_release(d);
    }
    *out_len = n;
    return 0;
}

int loom_ws_inflate(loom_ws_deflate_t *d, const uint8_t **in, size_t *in_len, int last,
                    uint8_t *out, size_t *out_len)
{
    size_t cap = *out_len;
    *out_len = 0;
    if (!d->rx && d->rx_reset)
        d->rx = zc_take(0, d->rx_bits);
    if (!d->rx) {
        z_stream *s = calloc(1, sizeof *s);
        if (!s)
            return LOOM_ENOMEM;
        if (inflateInit2(s, -(int)d->rx_bits) != Z_OK) {
            free(s);
            return LOOM_ENOMEM;
        }
        d->rx = s;
    }
    z_stream *s = d->rx;
    /* Never offer zlib more room than max_message + 1 for this message: a
     * bomb is caught with at most one byte over the limit produced. */
    if (d->max_message) {
        uint64_t done = d->rx_total < d->max_message ? d->rx_total : d->max_message;
        uint64_t allowed = d->max_message - done + 1;
        if (cap > allowed)
            cap = (size_t)allowed;
    }
    if (cap > UINT_MAX)
        cap = UINT_MAX;
    size_t produced = 0;
    while (produced < cap) {
        const uint8_t *src;
        size_t avail;
        int from_tail = 0;
        if (*in_len > 0) {
            src = *in;
            avail = *in_len > UINT_MAX ? UINT_MAX : *in_len;
        } else if (last && d->rx_tail < 4) {
            src = tail + d->rx_tail;
            avail = 4u - d->rx_tail;
            from_tail = 1;
        } else {
            break; /* all input used: wait for the next frame */
        }
        /* The tail goes in with Z_BLOCK so that inflate stops right after
         * the tail's empty stored block, at a block boundary, which
         * data_type then shows. The data uses Z_SYNC_FLUSH. */
        s->next_in = (Bytef *)(uintptr_t)src;
        s->avail_in = (uInt)avail;
        s->next_out = out + produced;
        s->avail_out = (uInt)(cap - produced);
        int r = inflate(s, from_tail ? Z_BLOCK : Z_SYNC_FLUSH);
        size_t used = avail - s->avail_in;
        size_t made = (cap - produced) - s->avail_out;
        produced += made;
        d->rx_total += made;
        if (from_tail) {
            d->rx_tail = (uint8_t)(d->rx_tail + used);
        } else {
            *in += used;
            *in_len -= used;
        }
        *out_len = produced;
        if (d->max_message && d->rx_total > d->max_message)
            return LOOM_WS_ERR_MESSAGE_TOO_BIG;
        if (r == Z_STREAM_END) {
            /* The peer ended the stream (BFINAL): what follows is a new one. */
            inflateReset(s);
            continue;
        }
        if (r == Z_MEM_ERROR)
            return LOOM_ENOMEM;
        if (r != Z_OK && r != Z_BUF_ERROR)
            return LOOM_WS_ERR_INFLATE;
        if (from_tail && d->rx_tail == 4) {
            /* All output comes before the tail's block; if the tail did not
             * end exactly at a block boundary, the message was truncated. */
            if (!(s->data_type & 128))
                return LOOM_WS_ERR_INFLATE;
            d->rx_total = 0;
            d->rx_tail = 0;
            if (d->rx_reset)
                rx_release(d);
            return 1;
        }
        if (used == 0 && made == 0)
            break; /* no progress possible with this input and room */
    }
    return 0;
}
