/* net/transport_test.c - the test transports, which prove the socket's
 * transport seam (net_internal.h, "Transports") before TLS exists. Internal
 * only; chosen per class by loom__class_set_transport() or, for every class
 * a process creates, by the environment (LOOM_TEST_TRANSPORT=split|xor).
 *
 * "split" is wire-transparent (any peer works) but behaves as a decoding
 * layer does: it copies every read into its own buffer, passes on only the
 * first half at once and holds the rest for the pending phase (and across the
 * application's pause), copies every write before it is sent, and fakes a
 * handshake: on_connect and accept are reported one loop turn after the
 * connection is up, while peer bytes that arrive meanwhile are read and
 * held. "xor" transforms every byte both ways, and changes the length as TLS
 * records do: each application byte goes on the wire twice (the reader checks
 * that both copies agree), so the water marks must count application bytes,
 * not wire bytes. It has a real handshake: each
 * side sends one hello byte and reports the connection only once the peer's
 * has arrived; a wrong one fails the socket with a message. Writes made
 * before its handshake ends (a connect's initial bytes) are held and sent
 * after the hello; the hello goes out even while the application has
 * disabled writing (wants() says LOOM_WRITABLE during the handshake). Its
 * shutdown hook sends a close notify (a pair of differing bytes) after every
 * application byte, and waits for the handshake if it holds any; bytes after
 * a peer's close notify are an error. Both are slow on purpose (a copy and an allocation per
 * read and write); they exist for tests.
 */
#include <stdlib.h>
#include <string.h>

#include "net/net_internal.h"

#define TT_HELLO 0x5a /* the xor transport's hello byte */
#define TT_KEY   0xa5 /* the xor transport's key */
/* xor's close notify, sent by its shutdown hook before the fd's write side
 * is shut: a pair whose two bytes differ (no data byte looks like it). */
#define TT_BYE0 0xb0
#define TT_BYE1 0x0b

enum { TT_NEW, TT_WAIT, TT_UP };

/* Per-socket state (cls->tr_extra bytes, zeroed with the socket). */
typedef struct tt_state {
    loom__bytes *in;  /* application bytes held back */
    loom__bytes *out; /* xor: wire bytes written before the handshake ended */
    uint8_t hs;       /* TT_NEW, TT_WAIT (handshaking), TT_UP */
    bool has_half;    /* xor: the first wire copy of a byte came alone */
    char half;
    bool eof; /* the peer's end, reported once `in` is delivered */
    bool bye_sent, bye_got; /* xor: its close notify (TT_BYE) */
} tt_state;

static bool tt_is_xor(const loom_socket_t *s)
{
    return s->cls->tr == &loom__transport_xor;
}

/* xor's encoding: each byte, transformed, twice (dst holds 2 * n). */
static void tt_xor_encode(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[2 * i] = dst[2 * i + 1] = (char)(src[i] ^ TT_KEY);
}

/* A pair whose copies differ: the close notify (noted; nothing may follow
 * it), else corruption. Returns 0 or -1. */
static int tt_xor_odd_pair(tt_state *t, char a, char b, size_t after)
{
    if ((unsigned char)a != TT_BYE0 || (unsigned char)b != TT_BYE1 || after != 0)
        return -1;
    t->bye_got = true;
    return 0;
}

/* Decodes wire bytes in place (a byte whose second copy has not come yet
 * waits in the state). Returns the application bytes now at buf, or -1 if
 * the two copies of a byte differ (other than the close notify) or bytes
 * follow the close notify. */
static ptrdiff_t tt_xor_decode(tt_state *t, char *buf, size_t n)
{
    size_t i = 0, k = 0;
    if (n > 0 && t->bye_got)
        return -1;
    if (t->has_half && n > 0) {
        t->has_half = false;
        if (buf[0] != t->half)
            return tt_xor_odd_pair(t, t->half, buf[0], n - 1) < 0 ? -1 : 0;
        buf[k++] = (char)(buf[0] ^ TT_KEY);
        i = 1;
    }
    for (; i + 1 < n; i += 2) {
        if (buf[i] != buf[i + 1])
            return tt_xor_odd_pair(t, buf[i], buf[i + 1], n - i - 2) < 0 ? -1 : (ptrdiff_t)k;
        buf[k++] = (char)(buf[i] ^ TT_KEY);
    }
    if (i < n) {
        t->has_half = true;
        t->half = buf[i];
    }
    return (ptrdiff_t)k;
}

/* Gives the detached block `b` back to the state once a delivery returned,
 * unless the socket closed meanwhile (tt_free ran without it). An emptied
 * block that took large reads is kept for the next (a stream allocates once,
 * not per read); a small one is freed (an idle connection keeps nothing). */
static void tt_keep(loom_socket_t *s, loom__bytes *b, size_t delivered)
{
    tt_state *t = loom__socket_tr(s);
    loom__bytes_consume(&b, delivered);
    bool small = b->cap < 16384 && loom__bytes_size(b) == 0;
    if (loom__socket_closing(s) || t->in != NULL || small)
        loom__bytes_free(&b);
    else
        t->in = b; /* nothing can have arrived during the call */
}

/* Delivers held bytes while the application reads, then a held end. The
 * block is detached during each delivery: a callback may close the socket,
 * which frees the state's blocks (tt_free). */
static void tt_drain(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    while (loom__bytes_size(t->in) && loom__socket_reading(s) && !loom__socket_dead(s)) {
        loom__bytes *b = t->in;
        size_t n = loom__bytes_size(b);
        t->in = NULL;
        loom__socket_deliver_app(s, loom__bytes_data(b), n);
        tt_keep(s, b, n);
    }
    if (t->eof && loom__bytes_size(t->in) == 0 && loom__socket_reading(s) &&
        !loom__socket_dead(s)) {
        t->eof = false;
        loom__socket_eof_report(s);
    }
}

/* The handshake is over: send what was held, then report the connection. */
static void tt_up(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    t->hs = TT_UP;
    if (loom__bytes_size(t->out)) {
        size_t n = loom__bytes_size(t->out);
        struct iovec iov = {.iov_base = loom__bytes_data(t->out), .iov_len = n};
        int r = loom__socket_out(s, &iov, 1, n, false, NULL, NULL, n / 2);
        loom__bytes_free(&t->out);
        if (r < 0) {
            loom__socket_fail(s, r);
            return;
        }
    }
    loom__bytes_free(&t->out);
    loom__socket_ready(s);
}

static int tt_attach(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    t->hs = TT_WAIT;
    if (!tt_is_xor(s)) {
        loom__socket_pending_soon(s); /* the fake handshake ends there */
        return 1;
    }
    /* The hello goes first, before writes held while connecting. */
    char hello = TT_HELLO;
    struct iovec iov = {.iov_base = &hello, .iov_len = 1};
    int r = loom__socket_out(s, &iov, 1, 1, false, NULL, NULL, 0);
    return r < 0 ? r : 1;
}

static void tt_read(loom_socket_t *s, char *buf, size_t n)
{
    tt_state *t = loom__socket_tr(s);
    if (buf == NULL) {
        t->eof = true;
        if (t->hs == TT_UP)
            tt_drain(s);
        return;
    }
    bool xor = tt_is_xor(s);
    if (xor&&t->hs == TT_WAIT) {
        if ((unsigned char)buf[0] != TT_HELLO) {
            loom__socket_fail_msg(s, LOOM_EPROTO, "xor transport: bad handshake from the peer");
            return;
        }
        buf++;
        n--;
    }
    if (xor) {
        ptrdiff_t k = tt_xor_decode(t, buf, n);
        if (k < 0) {
            loom__socket_fail_msg(s, LOOM_EPROTO, "xor transport: corrupt byte pair from the peer");
            return;
        }
        n = (size_t)k;
    }
    size_t before = loom__bytes_size(t->in);
    if (xor&&before == 0 && t->hs == TT_UP && loom__socket_reading(s)) {
        loom__socket_deliver_app(s, buf, n); /* transformed in place */
        return;
    }
    if (n && loom__bytes_append(&t->in, buf, n) < 0) {
        loom__socket_fail(s, LOOM_ENOMEM);
        return;
    }
    if (t->hs == TT_WAIT) {
        if (xor)
            tt_up(s); /* delivers what followed the hello from the pending phase */
        return;
    }
    if (before == 0 && loom__socket_reading(s)) {
        /* split: the first half now, the rest from the pending phase. */
        size_t half = (n + 1) / 2;
        loom__bytes *b = t->in;
        t->in = NULL;
        loom__socket_deliver_app(s, loom__bytes_data(b), half);
        tt_keep(s, b, half);
    }
    if (loom__bytes_size(t->in))
        loom__socket_pending_soon(s);
}

/* A write's copy. The application's buffer of a zero-copy write is released
 * with the copy, once its bytes are sent, as on a plain socket. */
typedef struct tt_copy {
    loom_release_cb release;
    const void *buf;
    size_t len;
    void *rdata;
    char data[];
} tt_copy;

static void tt_release_copy(const void *buf, size_t len, void *data)
{
    (void)buf;
    (void)len;
    tt_copy *c = data;
    loom_release_cb release = c->release;
    const void *abuf = c->buf;
    size_t alen = c->len;
    void *rdata = c->rdata;
    free(c);
    if (release)
        release(abuf, alen, rdata);
}

static int tt_write(loom_socket_t *s, const struct iovec *iov, int n, loom_release_cb release,
                    void *rdata)
{
    tt_state *t = loom__socket_tr(s);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (tt_is_xor(s) && t->hs != TT_UP) {
        /* Held until the hello is out (tt_up). */
        int r = loom__bytes_reserve(&t->out, 2 * total);
        if (r == 0) {
            for (int i = 0; i < n; i++) {
                char *dst = loom__bytes_data(t->out) + loom__bytes_size(t->out);
                tt_xor_encode(dst, iov[i].iov_base, iov[i].iov_len);
                t->out->len += 2 * iov[i].iov_len;
            }
        }
        if (release)
            release(iov[0].iov_base, total, rdata);
        return r;
    }
    size_t wire = tt_is_xor(s) ? 2 * total : total;
    tt_copy *c = malloc(sizeof *c + wire);
    if (c == NULL)
        return LOOM_ENOMEM;
    *c = (tt_copy){.release = release, .buf = iov[0].iov_base, .len = total, .rdata = rdata};
    char *p = c->data;
    for (int i = 0; i < n; i++) {
        if (tt_is_xor(s))
            tt_xor_encode(p, iov[i].iov_base, iov[i].iov_len);
        else
            memcpy(p, iov[i].iov_base, iov[i].iov_len);
        p += tt_is_xor(s) ? 2 * iov[i].iov_len : iov[i].iov_len;
    }
    struct iovec one = {.iov_base = c->data, .iov_len = wire};
    return loom__socket_out(s, &one, 1, wire, true, tt_release_copy, c, total);
}

static unsigned tt_wants(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    return t->hs == TT_WAIT ? LOOM_READABLE | LOOM_WRITABLE : 0;
}

static void tt_pending(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    if (t->hs == TT_WAIT && !tt_is_xor(s)) {
        tt_up(s); /* schedules another pending for what it held */
        return;
    }
    if (t->hs == TT_UP)
        tt_drain(s);
}

/* xor: the close notify goes after every application byte, so not before
 * the handshake has sent the held ones. split: nothing to say. */
static int tt_shutdown(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    if (!tt_is_xor(s) || t->bye_sent)
        return 0;
    if (t->hs != TT_UP)
        return 1;
    unsigned char bye[2] = {TT_BYE0, TT_BYE1};
    struct iovec iov = {.iov_base = bye, .iov_len = 2};
    int r = loom__socket_out(s, &iov, 1, 2, false, NULL, NULL, 0);
    if (r < 0) {
        loom__socket_fail(s, r);
        return 1;
    }
    t->bye_sent = true;
    return 0;
}

static void tt_free(loom_socket_t *s)
{
    tt_state *t = loom__socket_tr(s);
    loom__bytes_free(&t->in);
    loom__bytes_free(&t->out);
}

/* The two differ only in their name: the hooks test it (tt_is_xor). */
#define TT_OPS(nm)                                                                                 \
    {                                                                                              \
        .name = nm, .state_size = sizeof(tt_state), .attach = tt_attach, .read = tt_read,          \
        .write = tt_write, .wants = tt_wants, .pending = tt_pending, .shutdown = tt_shutdown,      \
        .free = tt_free,                                                                           \
    }
const loom__transport loom__transport_split = TT_OPS("split");
const loom__transport loom__transport_xor = TT_OPS("xor");

const loom__transport *loom__transport_by_name(const char *name)
{
    if (name == NULL)
        return NULL;
    if (strcmp(name, "split") == 0)
        return &loom__transport_split;
    if (strcmp(name, "xor") == 0)
        return &loom__transport_xor;
    return NULL;
}
