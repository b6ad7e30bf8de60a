/* test_tls_keyupdate: TLS 1.3 key updates from the peer, on every backend.
 * The peer is OpenSSL in this process over memory BIOs, so that it decides
 * which records share one send(): a KeyUpdate asking for loom's own and an
 * application record leave together, and loom's server reads both at once.
 *  - loom answers with its own KeyUpdate, on that connection, before the
 *    next record it writes there (OpenSSL 3.0 sends it with that record;
 *    should OpenSSL write it while loom reads, loom sends it at once: it
 *    must not wait in the loop's shared output block, where another
 *    connection's write would carry it away);
 *  - a second connection writing right after gets only its own records;
 *  - after the update both directions work under the new keys (an echo),
 *    with a key update asked for alone in its own send() as well;
 *  - the peers close with close_notify: clean ends, every on_close once, the
 *    loop ends clean.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls_test_util.h"

static loom_loop_t *loop;
static int closes, accepts, holds, srv_eofs, srv_errs;

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    accepts++;
}

/* Echoes, except what starts with "hold" (counted, not answered). */
static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    if (n >= 4 && memcmp(b, "hold", 4) == 0) {
        holds++;
        return;
    }
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        srv_eofs++;
        return;
    }
    fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
    srv_errs++;
}

/* --- The peer: OpenSSL over memory BIOs on a plain TCP socket --------------------- */

typedef struct peer {
    int fd;
    SSL *ssl;
    BIO *rbio, *wbio; /* network -> ssl, ssl -> network */
    char got[256];
    size_t got_len;
} peer;

/* Sends all the ciphertext OpenSSL wrote, in one send(). */
static void peer_flush(peer *p)
{
    char buf[16384];
    size_t n = 0;
    int k;
    while (n < sizeof buf && (k = BIO_read(p->wbio, buf + n, (int)(sizeof buf - n))) > 0)
        n += (size_t)k;
    CHECK(BIO_ctrl_pending(p->wbio) == 0);
    if (n)
        CHECK_EQ(send(p->fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Runs the loop a turn, then hands what arrived to OpenSSL. */
static void peer_turn(peer *p)
{
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    if (poll(&pfd, 1, 2) <= 0)
        return;
    char buf[16384];
    ssize_t n = recv(p->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0)
        CHECK_EQ(BIO_write(p->rbio, buf, (int)n), (int)n);
}

static void peer_open(peer *p, SSL_CTX *ctx, int port)
{
    memset(p, 0, sizeof *p);
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(p->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(p->fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    p->ssl = SSL_new(ctx);
    p->rbio = BIO_new(BIO_s_mem());
    p->wbio = BIO_new(BIO_s_mem());
    CHECK(p->ssl && p->rbio && p->wbio);
    SSL_set_bio(p->ssl, p->rbio, p->wbio);
    CHECK(SSL_set_tlsext_host_name(p->ssl, "localhost") == 1);
    CHECK(SSL_set1_host(p->ssl, "localhost") == 1);
    SSL_set_connect_state(p->ssl);
    uint64_t end = tls_now_ms() + 5000;
    int r;
    while ((r = SSL_do_handshake(p->ssl)) != 1) {
        CHECK_EQ(SSL_get_error(p->ssl, r), SSL_ERROR_WANT_READ);
        peer_flush(p);
        CHECK(tls_now_ms() < end);
        peer_turn(p);
    }
    peer_flush(p);
    CHECK(strcmp(SSL_get_version(p->ssl), "TLSv1.3") == 0);
}

/* Reads until the plaintext received ends with `want`; what OpenSSL writes
 * meanwhile (nothing expected) is sent. */
static void peer_expect(peer *p, const char *want)
{
    size_t wl = strlen(want);
    uint64_t end = tls_now_ms() + 5000;
    for (;;) {
        int n = SSL_read(p->ssl, p->got + p->got_len, (int)(sizeof p->got - 1 - p->got_len));
        if (n > 0) {
            p->got_len += (size_t)n;
            p->got[p->got_len] = '\0';
            if (p->got_len >= wl && strcmp(p->got + p->got_len - wl, want) == 0)
                return;
            continue;
        }
        int e = SSL_get_error(p->ssl, n);
        if (e != SSL_ERROR_WANT_READ) {
            char why[256];
            ERR_error_string_n(ERR_get_error(), why, sizeof why);
            fprintf(stderr, "peer: SSL_read failed (%d): %s; got \"%s\"\n", e, why, p->got);
            CHECK(!"the peer reads loom's records");
        }
        peer_flush(p);
        CHECK(tls_now_ms() < end);
        peer_turn(p);
    }
}

static void peer_write(peer *p, const char *s)
{
    CHECK_EQ(SSL_write(p->ssl, s, (int)strlen(s)), (int)strlen(s));
}

static void peer_close(peer *p)
{
    (void)SSL_shutdown(p->ssl);
    peer_flush(p);
    SSL_free(p->ssl);
    close(p->fd);
}

int main(void)
{
    test_timeout(60);
    loop = test_loop_new();
    loom_tcp_server_t *srv = tls_server_on(loop, tls_server_ctx("server", NULL),
                                           &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                                   .on_read = srv_read,
                                                                   .on_event = srv_event,
                                                                   .on_close = on_close});
    int port = loom_tcp_server_port(srv);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    CHECK(ctx != NULL);
    CHECK(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) == 1);
    CHECK(SSL_CTX_load_verify_locations(ctx, tls_path("ca.pem"), NULL) == 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    peer a, b;
    peer_open(&a, ctx, port);
    peer_open(&b, ctx, port);
    int none = 0;
    for (uint64_t end = tls_now_ms() + 5000; accepts < 2 && tls_now_ms() < end;)
        (void)tls_run_until(loop, &none, 5);
    CHECK_EQ(accepts, 2);

    peer_write(&a, "one");
    peer_flush(&a);
    peer_expect(&a, "one");

    /* A: a key update asking for loom's, and a record loom does not answer,
     * in one send(). */
    CHECK(SSL_key_update(a.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
    peer_write(&a, "hold");
    peer_flush(&a);
    for (uint64_t end = tls_now_ms() + 5000; holds < 1 && tls_now_ms() < end;)
        (void)tls_run_until(loop, &none, 5);
    CHECK_EQ(holds, 1);

    /* B writes next: its echo carries B's records only. */
    peer_write(&b, "two");
    peer_flush(&b);
    peer_expect(&b, "two");

    /* A under the new keys, both ways (A reads loom's KeyUpdate first). */
    peer_write(&a, "three");
    peer_flush(&a);
    peer_expect(&a, "three");

    /* B: a key update asked for alone, then an echo. */
    CHECK(SSL_key_update(b.ssl, SSL_KEY_UPDATE_REQUESTED) == 1);
    CHECK(SSL_do_handshake(b.ssl) == 1); /* sends it */
    peer_flush(&b);
    (void)tls_run_until(loop, &none, 100); /* loom reads it alone, and answers */
    peer_write(&b, "four");
    peer_flush(&b);
    peer_expect(&b, "four");
    CHECK_EQ(srv_errs, 0);

    int before = closes;
    peer_close(&a);
    peer_close(&b);
    for (uint64_t end = tls_now_ms() + 5000; closes < before + 2 && tls_now_ms() < end;)
        (void)tls_run_until(loop, &none, 5);
    CHECK_EQ(closes, before + 2);
    CHECK_EQ(srv_eofs, 2);
    CHECK_EQ(srv_errs, 0);

    SSL_CTX_free(ctx);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls keyupdate: ok\n");
    return 0;
}
