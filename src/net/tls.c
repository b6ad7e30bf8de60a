/* net/tls.c - the TLS transport: a socket's TLS session on OpenSSL, in the
 * socket's transport slot (net_internal.h, "Transports"), so that every user
 * of sockets (TCP, the HTTP server and client) gets TLS without a second
 * copy of any I/O machinery. Contexts are net/tls_ctx.c.
 *
 * Reads: ciphertext read by the socket (the loop's scratch buffer, or a
 * backend's recv buffer) is fed to OpenSSL through a BIO of ours that reads
 * straight from that buffer; what OpenSSL does not take before the call
 * returns (the application paused) is copied into the session's `in` block,
 * so no buffer of the loop or of the ring is kept past a read. Plaintext is
 * delivered from one per-loop block; a record OpenSSL has decrypted but not
 * yet handed over stays inside OpenSSL and is delivered from the pending
 * phase once the application reads again. With SSL_MODE_RELEASE_BUFFERS an
 * idle connection holds no record buffer.
 *
 * Writes: the application's buffers (zero-copy ones too) are encrypted at
 * once; small buffers of one call are gathered into one record (chunk framing
 * does not make three tiny records); the ciphertext of the call leaves in
 * one loom__socket_out() (the one path to the fd), counted as the
 * application's bytes for the water marks.
 *
 * Handshake: attach() starts it (a client sends its hello) and arms the
 * handshake deadline; the socket reads for it whatever the application's
 * pause (wants()), and sends for it whatever its write switch; once it is
 * done, bytes written meanwhile are encrypted and sent, then the connection
 * is reported (loom__socket_ready(), or on_secure after STARTTLS).
 *
 * Ends: the shutdown hook sends close_notify (loom_socket_shutdown() and
 * loom_socket_close()); the peer's close_notify is the clean end; the
 * connection's end without it is LOOM_ETRUNCATED, a tls error.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls_internal.h"

#define TLS_REC  16384         /* the most plaintext in one record */
#define TLS_BUF  (2 * TLS_REC) /* per loop: [delivery][gather] */
#define TLS_NAME 255           /* the longest name a client sends (SNI's limit) */

/* What only the handshake needs: freed when it is done (tls_up), so that an
 * idle connection keeps neither the deadline's timer nor these pointers. */
typedef struct tls_hs {
    loom_timer_t *timer;
    loom__bytes *held;        /* plaintext written before the handshake ended */
    loom_socket_cb on_secure; /* STARTTLS */
} tls_hs;

/* Per-connection state; the socket's transport bytes hold a pointer to it.
 * Only what every connection needs is inline: the server name, the SNI and
 * the peer's subject are OpenSSL's (SSL_get_servername(), the peer
 * certificate), read when asked for; a client's name is its session key;
 * the peer's address is the socket's (kept from accept or connect, so it
 * outlives a reset: loom__socket_peer_name()). */
typedef struct loom__tls {
    loom_socket_t *s;
    loom_tls_ctx_t *ctx; /* a reference */
    SSL *ssl;
    const char *in_ptr; /* the read being fed to OpenSSL */
    size_t in_len;
    loom__bytes *in; /* ciphertext kept past a read */
    tls_hs *hs;      /* until the handshake is done */
    char *sess_key;  /* client: "name:port" (the resumption key, and the peer in messages) */
    uint16_t depth;  /* calls of ours in progress (free waits for them) */
    unsigned up : 1, eof : 1, notify : 1, eof_done : 1, shut : 1, doomed : 1, starttls : 1;
    unsigned client : 1;
    unsigned named : 1;   /* a client with a server name: sess_key names the peer */
    unsigned literal : 1; /* ... which is an address literal */
    unsigned reneg : 1;   /* the peer asked for a renegotiation (loom__tls_info_cb) */
} loom__tls;

/* Every TLS connection carries this (with OpenSSL's own, about 13 KB): it
 * was 887 bytes with fixed name buffers, 88 with its own copy of the peer's
 * address; keep it within 72 on LP64. */
_Static_assert(sizeof(loom__tls) <= 72 || sizeof(void *) != 8,
               "loom__tls grew: keep per-connection TLS state small");

static inline loom__tls **tls_slot(loom_socket_t *s)
{
    return loom__socket_tr(s);
}
static inline loom__tls *tls_of(loom_socket_t *s)
{
    return *tls_slot(s);
}

/* Before an OpenSSL call whose failure SSL_get_error() reads: the thread's
 * error queue must be empty. It nearly always is (every failure path of ours
 * clears it), and a peek costs much less than ERR_clear_error(), which
 * resets all of the queue's slots on each call. */
static inline void tls_err_reset(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* --- The BIO: OpenSSL reads our buffers, writes into the loop's out block ---------- */

static BIO_METHOD *tls_bio_method;
static pthread_once_t tls_bio_once = PTHREAD_ONCE_INIT;

static int tls_bio_read(BIO *b, char *out, int len)
{
    loom__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t want = (size_t)len, got = 0;
    size_t h = loom__bytes_size(t->in);
    if (h) {
        size_t n = h < want ? h : want;
        memcpy(out, loom__bytes_data(t->in), n);
        loom__bytes_consume(&t->in, n);
        loom__bytes_trim(&t->in);
        got = n;
    }
    if (got < want && t->in_len) {
        size_t n = t->in_len < want - got ? t->in_len : want - got;
        memcpy(out + got, t->in_ptr, n);
        t->in_ptr += n;
        t->in_len -= n;
        got += n;
    }
    if (got == 0) {
        BIO_set_retry_read(b);
        return -1;
    }
    return (int)got;
}

static int tls_bio_write(BIO *b, const char *in, int len)
{
    loom__tls *t = BIO_get_data(b);
    loom__net *net = t->s->h.loop->net;
    BIO_clear_retry_flags(b);
    if (loom__bytes_append(&net->tls_out, in, (size_t)len) < 0)
        return -1;
    return len;
}

static long tls_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int tls_bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void tls_bio_make(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "loom socket");
    if (m == NULL)
        return;
    BIO_meth_set_read(m, tls_bio_read);
    BIO_meth_set_write(m, tls_bio_write);
    BIO_meth_set_ctrl(m, tls_bio_ctrl);
    BIO_meth_set_create(m, tls_bio_create);
    tls_bio_method = m;
}

/* Frees the BIO method at exit (after OpenSSL's own cleanup is harmless: it
 * is a plain allocation), so that leak checkers see nothing. */
__attribute__((destructor)) static void tls_bio_free(void)
{
    if (tls_bio_method)
        BIO_meth_free(tls_bio_method);
}

/* --- State ---------------------------------------------------------------------------- */

static const char *tls_sess_key_of(SSL *ssl)
{
    loom__tls *t = SSL_get_app_data(ssl);
    return t ? t->sess_key : NULL;
}

const char *loom__tls_session_key(SSL *ssl)
{
    return tls_sess_key_of(ssl);
}

static void tls_timer_cb(loom_timer_t *timer, void *data);

static loom__tls *tls_new(loom_socket_t *s, loom_tls_ctx_t *ctx)
{
    loom__net *net = loom__net_get(s->h.loop);
    if (net == NULL)
        return NULL;
    if (net->tls_buf == NULL && (net->tls_buf = malloc(TLS_BUF)) == NULL)
        return NULL;
    pthread_once(&tls_bio_once, tls_bio_make);
    if (tls_bio_method == NULL)
        return NULL;
    loom__tls *t = calloc(1, sizeof *t);
    tls_hs *hs = t ? calloc(1, sizeof *hs) : NULL;
    if (hs == NULL) {
        free(t);
        return NULL;
    }
    t->s = s;
    t->hs = hs;
    t->ssl = SSL_new(loom__tls_ctx_ssl(ctx));
    BIO *bio = t->ssl ? BIO_new(tls_bio_method) : NULL;
    if (bio == NULL || loom__net_timer_new(s->h.loop, &hs->timer, tls_timer_cb, t) < 0) {
        BIO_free(bio);
        SSL_free(t->ssl);
        free(hs);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    SSL_set_app_data(t->ssl, t);
    loom_tls_ctx_ref(ctx);
    t->ctx = ctx;
    *tls_slot(s) = t;
    return t;
}

/* The handshake's state goes: its timer is closed, its held bytes freed. */
static void tls_hs_free(loom__tls *t)
{
    tls_hs *hs = t->hs;
    if (hs == NULL)
        return;
    t->hs = NULL;
    loom_timer_close(hs->timer);
    loom__bytes_free(&hs->held);
    free(hs);
}

static void tls_destroy(loom__tls *t)
{
    tls_hs_free(t);
    SSL_free(t->ssl);
    loom__bytes_free(&t->in);
    free(t->sess_key);
    loom_tls_ctx_free(t->ctx);
    free(t);
    ERR_clear_error();
}

/* Our calls nest (a delivery may close the socket, whose free hook then
 * waits): enter before touching the session, leave when done; false from
 * tls_leave() means t is gone. */
static inline void tls_enter(loom__tls *t)
{
    t->depth++;
}
static inline bool tls_leave(loom__tls *t)
{
    if (--t->depth == 0 && t->doomed) {
        tls_destroy(t);
        return false;
    }
    return !t->doomed;
}

/* --- Messages and failure ------------------------------------------------------------- */

/* The peer for messages: "name:port" for a client that named its server (as
 * it asked for it); "" otherwise (a server, a Unix socket): the socket layer
 * then names the address it kept from accept or connect, or asks the
 * kernel. */
static void tls_peer(const loom__tls *t, char *buf, size_t len)
{
    buf[0] = '\0';
    if (!t->named || !t->sess_key)
        return;
    /* An IPv6 literal's key is "::1:443": named "[::1]:443". */
    const char *port = strrchr(t->sess_key, ':');
    if (port && memchr(t->sess_key, ':', (size_t)(port - t->sess_key)))
        snprintf(buf, len, "[%.*s]%s", (int)(port - t->sess_key), t->sess_key, port);
    else
        snprintf(buf, len, "%s", t->sess_key);
}

/* tls_peer() for a message of ours: never empty. A Unix connection is
 * named by its path: the peer's, or (accepted, an unnamed peer) the
 * server's ("a connection accepted on /run/app.sock"). */
static void tls_peer_msg(const loom__tls *t, char *buf, size_t len)
{
    tls_peer(t, buf, len);
    if (buf[0] == '\0')
        loom__socket_peer_name(t->s, buf, len);
    if (buf[0] == '\0')
        loom__socket_what(t->s, buf, len);
    if (buf[0] == '\0')
        snprintf(buf, len, "?");
}

/* The session failed (`what`: "handshake" or "connection"): one event
 * naming the peer and OpenSSL's reason, then the close. */
static void tls_fail(loom__tls *t, const char *what)
{
    char peer[TLS_NAME + 16], why[256], msg[600];
    tls_peer_msg(t, peer, sizeof peer);
    long v = SSL_get_verify_result(t->ssl);
    unsigned long e = ERR_peek_last_error();
    int code = LOOM_ETLS;
    if (v != X509_V_OK && (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
        (t->client || SSL_get0_peer_certificate(t->ssl) != NULL)) {
        code = LOOM_ECERT;
        snprintf(msg, sizeof msg, "certificate verify failed for %s: %s", peer,
                 X509_verify_cert_error_string(v));
    } else if (e && ERR_GET_REASON(e) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        code = LOOM_ECERT;
        snprintf(msg, sizeof msg, "tls handshake with %s failed: no client certificate", peer);
    } else {
        if (e)
            loom__tls_reason(why, sizeof why);
        else
            snprintf(why, sizeof why, "protocol error");
        snprintf(msg, sizeof msg, "tls %s with %s failed: %s", what, peer, why);
    }
    ERR_clear_error();
    loom__socket_fail_msg(t->s, code, msg);
}

static void tls_timer_cb(loom_timer_t *timer, void *data)
{
    (void)timer;
    loom__tls *t = data;
    if (t->up || loom__socket_closing(t->s))
        return;
    char peer[TLS_NAME + 16], msg[400];
    tls_peer_msg(t, peer, sizeof peer);
    snprintf(msg, sizeof msg, "tls handshake with %s timed out after %u ms", peer,
             (unsigned)loom__tls_ctx_hs_ms(t->ctx));
    loom__socket_fail_msg(t->s, LOOM_ETIMEDOUT, msg);
}

/* Sends what the last OpenSSL call wrote (`app`: the application bytes it
 * carries). Returns 0, 1 (high water) or a LOOM_E* code. */
static int tls_out(loom__tls *t, size_t app)
{
    loom__net *net = t->s->h.loop->net;
    size_t n = loom__bytes_size(net->tls_out);
    if (n == 0)
        return 0;
    struct iovec iov = {.iov_base = loom__bytes_data(net->tls_out), .iov_len = n};
    int r = loom__socket_out(t->s, &iov, 1, n, false, NULL, NULL, app);
    loom__bytes_consume(&net->tls_out, n);
    if (net->tls_out->cap > 4 * TLS_BUF)
        loom__bytes_free(&net->tls_out); /* a large write's block is not kept */
    return r;
}

/* Encrypts iov[0..n) (total bytes) into records, small buffers gathered.
 * Returns 0, 1 (high water) or a LOOM_E* code. */
static int tls_encrypt(loom__tls *t, const struct iovec *iov, int n, size_t total)
{
    loom__net *net = t->s->h.loop->net;
    char *gather = net->tls_buf + TLS_REC;
    size_t fill = 0;
    tls_err_reset();
    for (int i = 0; i < n; i++) {
        const char *p = iov[i].iov_base;
        size_t len = iov[i].iov_len;
        while (len) {
            size_t k;
            if (fill == 0 && len >= TLS_REC) {
                k = len - len % TLS_REC;
                if (k > (size_t)INT32_MAX)
                    k = (size_t)INT32_MAX - (size_t)INT32_MAX % TLS_REC;
                if (SSL_write(t->ssl, p, (int)k) != (int)k)
                    return LOOM_ETLS;
            } else {
                k = TLS_REC - fill < len ? TLS_REC - fill : len;
                memcpy(gather + fill, p, k);
                fill += k;
                if (fill == TLS_REC) {
                    if (SSL_write(t->ssl, gather, (int)fill) != (int)fill)
                        return LOOM_ETLS;
                    fill = 0;
                }
            }
            p += k;
            len -= k;
        }
    }
    if (fill && SSL_write(t->ssl, gather, (int)fill) != (int)fill)
        return LOOM_ETLS;
    return tls_out(t, total);
}

/* --- The handshake -------------------------------------------------------------------- */

/* The handshake is done: held writes go out, then the connection is
 * reported (and, from the pending phase, what followed the handshake). */
static void tls_up(loom__tls *t)
{
    loom_socket_t *s = t->s;
    t->up = 1;
    loom_socket_cb on_secure = t->hs->on_secure;
    loom__bytes *held = t->hs->held;
    t->hs->held = NULL;
    tls_hs_free(t);
    size_t n = loom__bytes_size(held);
    if (n) {
        struct iovec iov = {.iov_base = loom__bytes_data(held), .iov_len = n};
        int r = tls_encrypt(t, &iov, 1, n);
        loom__bytes_free(&held);
        if (r < 0) {
            loom__socket_fail(s, r);
            return;
        }
    }
    loom__bytes_free(&held);
    loom__socket_update_io(s); /* the handshake's read and write needs end */
    if (t->starttls) {
        if (on_secure) {
            loom__socket_call(s, on_secure);
            if (loom__socket_dead(s))
                return;
        }
        loom__socket_pending_soon(s);
        /* A shutdown asked for during the handshake. */
        if (s->wq == NULL || s->wq->bytes == 0)
            loom__socket_shut_wr(s);
        return;
    }
    loom__socket_ready(s);
}

/* Steps the handshake. Returns 1 (done), 0 (more bytes needed) or -1
 * (failed: the socket is closed). */
static int tls_handshake(loom__tls *t)
{
    tls_err_reset();
    int r = SSL_do_handshake(t->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, r);
    int o = tls_out(t, 0); /* its flight, or an alert */
    if (o < 0) {
        loom__socket_fail(t->s, o);
        return -1;
    }
    if (r == 1)
        return 1;
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    tls_fail(t, "handshake");
    return -1;
}

/* Renegotiation is refused (SSL_OP_NO_RENEGOTIATION): OpenSSL answers each
 * request (a client's ClientHello, a server's HelloRequest) with a
 * no_renegotiation warning and goes on, so a peer that sends requests and
 * never reads would grow the queue with alerts that count as no
 * application bytes. The first request ends the connection instead, as
 * nginx does on a server and Go and BoringSSL do on a client. Seen here:
 * the warning written, or (TLS 1.2) a handshake starting after the first. */
void loom__tls_info_cb(const SSL *ssl, int where, int ret)
{
    loom__tls *t = SSL_get_app_data(ssl);
    if (t == NULL || !t->up)
        return;
    if (((where & SSL_CB_WRITE_ALERT) && (ret & 0xFF) == SSL_AD_NO_RENEGOTIATION) ||
        ((where & SSL_CB_HANDSHAKE_START) && SSL_version(ssl) < TLS1_3_VERSION))
        t->reneg = 1;
}

/* The peer asked for a renegotiation: one event, the close. */
static void tls_fail_reneg(loom__tls *t)
{
    char peer[TLS_NAME + 16], msg[400];
    tls_peer_msg(t, peer, sizeof peer);
    snprintf(msg, sizeof msg, "tls connection with %s failed: renegotiation refused", peer);
    ERR_clear_error();
    loom__socket_fail_msg(t->s, LOOM_ETLS, msg);
}

/* --- Reading ---------------------------------------------------------------------------- */

/* The peer's end, once everything before it was delivered: clean after its
 * close_notify, else truncation. */
static void tls_end(loom__tls *t)
{
    if (t->eof_done)
        return;
    t->eof_done = 1;
    if (t->notify) {
        loom__socket_eof_report(t->s);
        return;
    }
    char peer[TLS_NAME + 16], msg[400];
    tls_peer_msg(t, peer, sizeof peer);
    snprintf(msg, sizeof msg, "tls connection with %s closed without close_notify (truncated)",
             peer);
    loom__socket_fail_msg(t->s, LOOM_ETRUNCATED, msg);
}

/* Plaintext to the application while it reads, from the bytes fed (in_ptr)
 * and kept (in) and what OpenSSL holds. */
static void tls_pump(loom__tls *t)
{
    loom_socket_t *s = t->s;
    if (!t->up) {
        int r = tls_handshake(t);
        if (r <= 0)
            return;
        /* What followed the handshake: delivered from the pending phase,
         * after the connection is reported. */
        if (t->in_len && loom__bytes_append(&t->in, t->in_ptr, t->in_len) < 0) {
            loom__socket_fail(s, LOOM_ENOMEM);
            return;
        }
        t->in_len = 0;
        tls_up(t);
        return;
    }
    char *plain = ((loom__net *)s->h.loop->net)->tls_buf;
    while (!t->notify && loom__socket_reading(s) && !loom__socket_closing(s)) {
        /* OpenSSL is called only while it has something to work on: bytes
         * not fed to it yet, or plaintext it has not handed over. Without
         * read-ahead it takes no more than the record in hand needs, so once
         * all is fed one more call could only answer WANT_READ (after
         * allocating and releasing a record buffer for nothing). */
        if (t->in_len == 0 && loom__bytes_size(t->in) == 0 && SSL_pending(t->ssl) == 0)
            break;
        tls_err_reset();
        int n = SSL_read(t->ssl, plain, TLS_REC);
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(t->ssl, n);
        /* What the call wrote (an alert; whatever else an OpenSSL version
         * writes while reading) leaves now, on this connection, before
         * anything the application writes next. */
        int o = tls_out(t, 0);
        if (o < 0) {
            loom__socket_fail(s, o);
            return;
        }
        if (LOOM__UNLIKELY(t->reneg)) {
            tls_fail_reneg(t);
            return;
        }
        if (n > 0) {
            loom__socket_deliver_app(s, plain, (size_t)n);
            if (t->doomed)
                return;
            continue;
        }
        if (e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->notify = 1; /* the clean end: nothing may follow */
            t->in_len = 0;
            loom__bytes_free(&t->in);
            tls_end(t);
            return;
        }
        tls_fail(t, "connection");
        return;
    }
    if (t->eof && !t->notify && loom__socket_reading(s) && !loom__socket_closing(s) &&
        t->in_len == 0 && loom__bytes_size(t->in) == 0 && SSL_pending(t->ssl) == 0)
        tls_end(t);
}

static void tls_read(loom_socket_t *s, char *buf, size_t n)
{
    loom__tls *t = tls_of(s);
    if (buf == NULL) {
        if (!t->up) {
            char peer[TLS_NAME + 16], msg[400];
            tls_peer_msg(t, peer, sizeof peer);
            snprintf(msg, sizeof msg, "tls handshake with %s failed: connection closed by the peer",
                     peer);
            loom__socket_fail_msg(s, LOOM_ETLS, msg);
            return;
        }
        t->eof = 1;
    }
    if (t->notify)
        return; /* bytes after close_notify are ignored */
    tls_enter(t);
    t->in_ptr = buf;
    t->in_len = buf ? n : 0;
    tls_pump(t);
    if (!t->doomed && t->in_len && !loom__socket_closing(s)) {
        /* The application paused: keep the rest (the read's buffer goes
         * back to the loop or the ring). */
        if (loom__bytes_append(&t->in, t->in_ptr, t->in_len) < 0)
            loom__socket_fail(s, LOOM_ENOMEM);
    }
    t->in_ptr = NULL;
    t->in_len = 0;
    (void)tls_leave(t);
}

static void tls_pending(loom_socket_t *s)
{
    loom__tls *t = tls_of(s);
    if (t == NULL || !t->up || loom__socket_closing(s))
        return;
    tls_enter(t);
    if (!t->notify && (loom__bytes_size(t->in) || SSL_pending(t->ssl) || t->eof))
        tls_pump(t);
    (void)tls_leave(t);
}

static unsigned tls_wants(loom_socket_t *s)
{
    loom__tls *t = tls_of(s);
    return t && !t->up ? LOOM_READABLE | LOOM_WRITABLE : 0;
}

/* --- Writing and the end ---------------------------------------------------------------- */

static int tls_write(loom_socket_t *s, const struct iovec *iov, int n, loom_release_cb release,
                     void *rdata)
{
    loom__tls *t = tls_of(s);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    int r = 0;
    if (t == NULL) {
        r = LOOM_ESTATE; /* a server socket before its accept: cannot happen */
    } else if (!t->up) {
        /* Held until the handshake is done (tls_up). */
        r = loom__bytes_reserve(&t->hs->held, total);
        for (int i = 0; r == 0 && i < n; i++)
            (void)loom__bytes_append(&t->hs->held, iov[i].iov_base, iov[i].iov_len);
    } else if (t->shut) {
        r = LOOM_ESTATE;
    } else {
        tls_enter(t);
        r = tls_encrypt(t, iov, n, total);
        if (r < 0)
            ERR_clear_error();
        (void)tls_leave(t);
    }
    if (release)
        release(iov[0].iov_base, total, rdata); /* copied into records */
    return r;
}

static int tls_shutdown(loom_socket_t *s)
{
    loom__tls *t = tls_of(s);
    if (t == NULL || t->shut)
        return 0;
    if (!t->up)
        return 1; /* after the handshake (which may still fail) */
    t->shut = 1;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl); /* close_notify; we do not wait for the peer's */
    int r = tls_out(t, 0);
    ERR_clear_error();
    if (r < 0) {
        loom__socket_fail(s, r);
        return 1;
    }
    return 0;
}

static void tls_free(loom_socket_t *s)
{
    loom__tls *t = tls_of(s);
    if (t == NULL)
        return;
    *tls_slot(s) = NULL;
    if (t->depth) {
        t->doomed = 1; /* freed by the outermost call (tls_leave) */
        return;
    }
    tls_destroy(t);
}

static int tls_attach(loom_socket_t *s)
{
    loom__tls *t = tls_of(s);
    if (t == NULL) {
        /* An accepted connection: its session now. */
        if (s->cls->tls == NULL || (t = tls_new(s, s->cls->tls)) == NULL)
            return LOOM_ENOMEM;
        SSL_set_accept_state(t->ssl);
    }
    loom_timer_start(t->hs->timer, loom__tls_ctx_hs_ms(t->ctx), 0);
    tls_enter(t);
    if (t->client)
        (void)tls_handshake(t); /* its hello (a server waits for the client's) */
    (void)tls_leave(t);
    return 1; /* reported by tls_up(), or failed with its event */
}

/* The peer in the socket layer's messages (a reset, a timeout): a client's
 * "name:port" and, when the name is not an address literal, the address it
 * connected to ("localhost:443 (127.0.0.1:443)"), as a plain client's. */
static void tls_peer_of(loom_socket_t *s, char *buf, size_t len)
{
    loom__tls *t = tls_of(s);
    char addr[64];
    buf[0] = '\0';
    if (t == NULL)
        return;
    tls_peer(t, buf, len);
    if (buf[0] && !t->literal && loom__socket_kept_peer_name(s, addr, sizeof addr)) {
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, " (%s)", addr);
    }
}

const loom__transport loom__transport_tls = {
    .name = "tls",
    .state_size = sizeof(loom__tls *),
    .attach = tls_attach,
    .read = tls_read,
    .write = tls_write,
    .wants = tls_wants,
    .pending = tls_pending,
    .shutdown = tls_shutdown,
    .free = tls_free,
    .peer = tls_peer_of,
};

/* --- Set-up ------------------------------------------------------------------------------ */

void loom__tls_layer_alpn(SSL *ssl, const unsigned char **list, size_t *len)
{
    loom__tls *t = SSL_get_app_data(ssl);
    loom__sock_class *cls = t && t->s ? t->s->cls : NULL;
    *list = cls ? cls->alpn : NULL;
    *len = cls && cls->alpn ? cls->alpn_len : 0;
}

void loom__class_set_tls(loom__sock_class *cls, loom_tls_ctx_t *ctx)
{
    loom__class_set_transport(cls, &loom__transport_tls);
    if (ctx && loom_tls_ctx_is_server(ctx)) {
        loom_tls_ctx_ref(ctx);
        loom_tls_ctx_free(cls->tls);
        cls->tls = ctx;
    }
}

/* A client of a layer that names its protocols (the HTTP client: http/1.1)
 * offers those the context names that the layer speaks, or the layer's own
 * when the context names none of them: never a protocol the connection could
 * not speak. */
static int tls_client_alpn(loom__tls *t)
{
    const loom__sock_class *cls = t->s->cls;
    if (cls->alpn == NULL)
        return 0; /* the context's list, if any */
    const unsigned char *mine;
    size_t mine_len;
    loom__tls_ctx_alpn(t->ctx, &mine, &mine_len);
    unsigned char buf[256];
    size_t k = 0;
    for (size_t i = 0; mine && i < mine_len && i + 1u + mine[i] <= mine_len; i += 1u + mine[i]) {
        if (k + 1u + mine[i] > sizeof buf ||
            !loom__tls_alpn_has(cls->alpn, cls->alpn_len, mine + i + 1, mine[i]))
            continue;
        memcpy(buf + k, mine + i, 1u + mine[i]);
        k += 1u + mine[i];
    }
    const unsigned char *offer = k ? buf : cls->alpn;
    size_t offer_len = k ? k : cls->alpn_len;
    return SSL_set_alpn_protos(t->ssl, offer, (unsigned)offer_len) == 0 ? 0 : LOOM_ENOMEM;
}

/* A client's name (truncated to TLS_NAME bytes) is sent (SNI, unless an
 * address literal) and verified; it is kept once, as the session key
 * "name:port", which also names the peer in messages. */
static int tls_client_init(loom__tls *t, const char *name, int port)
{
    t->client = 1;
    name = name ? name : "";
    size_t n = strnlen(name, TLS_NAME), klen = n + 16;
    /* An absolute name ("example.com.") is the same name: SNI carries it
     * without the dot (RFC 6066 section 3), and the certificate names it
     * without one (RFC 6125 section 6.2.1), as curl does. */
    if (n >= 2 && name[n - 1] == '.' && name[n - 2] != '.')
        n--;
    char *key = malloc(klen);
    if (key == NULL)
        return LOOM_ENOMEM;
    memcpy(key, name, n);
    key[n] = '\0';
    t->sess_key = key; /* the name alone until the port is added below */
    t->named = n > 0;
    SSL_set_connect_state(t->ssl);
    unsigned char ip[16];
    bool literal = inet_pton(AF_INET, key, ip) == 1 || inet_pton(AF_INET6, key, ip) == 1;
    t->literal = literal;
    if (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = literal ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), key)
                         : SSL_set1_host(t->ssl, key);
        if (ok != 1)
            return LOOM_EINVAL;
    }
    if (!literal && n && SSL_set_tlsext_host_name(t->ssl, key) != 1)
        return LOOM_EINVAL;
    int r = tls_client_alpn(t);
    if (r < 0)
        return r;
    snprintf(key + n, klen - n, ":%d", port);
    SSL_SESSION *sess = loom__tls_ctx_session(t->ctx, t->sess_key);
    if (sess) {
        SSL_set_session(t->ssl, sess);
        SSL_SESSION_free(sess);
    }
    return 0;
}

int loom__tls_client_setup(loom_socket_t *s, loom_tls_ctx_t *ctx, const char *name, int port)
{
    if (s->cls->tr != &loom__transport_tls || ctx == NULL || loom_tls_ctx_is_server(ctx))
        return LOOM_EINVAL;
    if (tls_of(s) != NULL)
        return LOOM_ESTATE;
    loom__tls *t = tls_new(s, ctx);
    if (t == NULL)
        return LOOM_ENOMEM;
    int r = tls_client_init(t, name, port);
    ERR_clear_error();
    return r;
}

/* --- The API ------------------------------------------------------------------------------ */

bool loom_socket_is_tls(const loom_socket_t *sock)
{
    return sock && sock->cls->tr == &loom__transport_tls;
}

int loom_socket_tls_info(const loom_socket_t *sock, loom_tls_info *info)
{
    if (sock == NULL || info == NULL)
        return LOOM_EINVAL;
    if (loom__socket_dead(sock))
        return LOOM_ECLOSED;
    if (!loom_socket_is_tls(sock))
        return LOOM_EPROTOCOL;
    loom__tls *t = tls_of((loom_socket_t *)sock);
    if (t == NULL || !t->up)
        return LOOM_ESTATE;
    memset(info, 0, sizeof *info);
    info->version = SSL_get_version(t->ssl);
    info->cipher = SSL_get_cipher_name(t->ssl);
    const unsigned char *a = NULL;
    unsigned alen = 0;
    SSL_get0_alpn_selected(t->ssl, &a, &alen);
    if (alen) {
        info->alpn = (const char *)a;
        info->alpn_len = alen;
    }
    /* The name the client sent (a client sends none for an address), kept
     * by OpenSSL for the connection's life. */
    info->sni = SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
    info->resumed = SSL_session_reused(t->ssl) == 1;
    info->peer_verified = SSL_get0_peer_certificate(t->ssl) != NULL &&
                          (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) &&
                          SSL_get_verify_result(t->ssl) == X509_V_OK;
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer)
        X509_NAME_oneline(X509_get_subject_name(peer), info->peer_subject,
                          sizeof info->peer_subject);
    return 0;
}

int loom_socket_starttls(loom_socket_t *s, loom_tls_ctx_t *ctx, const loom_tls_start_opts *opts)
{
    if (s == NULL || ctx == NULL)
        return LOOM_EINVAL;
    if (loom__socket_dead(s))
        return LOOM_ECLOSED;
    loom__sock_class *old = s->cls;
    if ((s->h.flags & LOOM__S_CONNECTING) || s->io.bio.fd < 0 || old->tr != NULL ||
        old->tr_extra < sizeof(loom__tls *) || old->proto_read != NULL)
        return LOOM_ESTATE;
    /* The socket's class, with the TLS transport: same sizes, so the object
     * stays where it is (its kept peer address too). A client's host name
     * lives in its class's allocation: copied along. */
    size_t hn = old->host ? strlen(old->host) + 1 : 0;
    loom__sock_class *cls = malloc(sizeof *cls + hn);
    if (cls == NULL)
        return LOOM_ENOMEM;
    *cls = *old;
    if (hn)
        cls->host = memcpy(cls + 1, old->host, hn);
    cls->is_static = false;
    cls->refs = 1;
    cls->tls = NULL;
    cls->tr = &loom__transport_tls;
    cls->tr_set = true;
    if (loom_tls_ctx_is_server(ctx)) {
        loom_tls_ctx_ref(ctx);
        cls->tls = ctx;
    }
    s->cls = cls;
    loom__tls *t = tls_new(s, ctx);
    int r = t ? 0 : LOOM_ENOMEM;
    if (t && !loom_tls_ctx_is_server(ctx)) {
        const char *name = opts && opts->server_name ? opts->server_name : NULL;
        char addr[64] = "";
        int port = 0;
        loom_socket_peer_name(s, addr, sizeof addr, &port);
        r = tls_client_init(t, name ? name : addr, port);
    } else if (t) {
        SSL_set_accept_state(t->ssl);
    }
    if (r < 0) {
        if (t) {
            *tls_slot(s) = NULL;
            tls_destroy(t);
        }
        s->cls = old;
        loom__class_unref(cls);
        return r;
    }
    t->starttls = 1;
    t->hs->on_secure = opts ? opts->on_secure : NULL;
    loom__class_unref(old);
    loom__socket_update_io(s);
    (void)tls_attach(s);
    return 0;
}
