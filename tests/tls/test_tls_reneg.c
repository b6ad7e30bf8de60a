/* test_tls_reneg: renegotiation asked for by the peer (TLS 1.2) ends the
 * connection with one event; it is never answered alert after alert.
 *  1. loom's client against a hostile server (OpenSSL in a thread, blocking)
 *     that sends HelloRequests in a loop after the handshake and never reads:
 *     the client fails at the first ("tls connection with localhost:P failed:
 *     renegotiation refused") and closes once. Before,
 *     each HelloRequest was answered with a no_renegotiation warning that
 *     counts as no application bytes, queued without bound (about 6 MB/s of
 *     growth) while the connection stayed open.
 *  2. loom's server against a client (OpenSSL in a thread) that asks for a
 *     renegotiation: one event naming the client's address, one close; a
 *     TLS 1.3 client with key updates is served as before (test_tls_keyupdate
 *     checks KeyUpdate itself).
 * The loop ends clean. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>

#include "tls_test_util.h"

static atomic_int hostile_sent, peer_done;
static int lfd, events, closes, connected;
static char last_msg[512];

static void on_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (loom_event_kind_is(ev->kind, LOOM_EV_ERROR)) {
        snprintf(last_msg, sizeof last_msg, "%s", ev->msg);
        events++;
    }
}

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void on_connect(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    connected++;
}

static void on_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)s, (void)b, (void)n, (void)d;
}

static SSL_CTX *ossl_ctx(bool server)
{
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    CHECK(c != NULL);
    SSL_CTX_set_max_proto_version(c, TLS1_2_VERSION);
    if (server) {
        CHECK(SSL_CTX_use_certificate_chain_file(c, tls_path("server.pem")) == 1);
        CHECK(SSL_CTX_use_PrivateKey_file(c, tls_path("server.key"), SSL_FILETYPE_PEM) == 1);
    }
    return c;
}

/* 1: HelloRequests in a loop, never reading, until the connection ends. */
static void *hostile_server(void *arg)
{
    (void)arg;
    SSL_CTX *c = ossl_ctx(true);
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    SSL *s = SSL_new(c);
    SSL_set_fd(s, fd);
    if (SSL_accept(s) == 1) {
        for (int i = 0; i < 2000000; i++) {
            if (SSL_renegotiate(s) != 1)
                break;
            int r = SSL_do_handshake(s);
            if (r != 1 && SSL_get_error(s, r) != SSL_ERROR_WANT_READ)
                break;
            hostile_sent++;
        }
    }
    SSL_free(s);
    close(fd);
    SSL_CTX_free(c);
    ERR_clear_error();
    peer_done = 1;
    return NULL;
}

/* 2: a client that asks for a renegotiation after the handshake. */
static int srv_port;
static void *reneg_client(void *arg)
{
    (void)arg;
    SSL_CTX *c = ossl_ctx(false);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL *s = SSL_new(c);
    SSL_set_fd(s, fd);
    CHECK(SSL_connect(s) == 1);
    CHECK(SSL_renegotiate(s) == 1);
    (void)SSL_do_handshake(s); /* refused: the server's alert, then its close */
    char b[64];
    while (SSL_read(s, b, sizeof b) > 0) {
    }
    SSL_free(s);
    close(fd);
    SSL_CTX_free(c);
    ERR_clear_error();
    peer_done = 1;
    return NULL;
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    (void)tls_certs(); /* made once, before the threads use them */
    loom_loop_t *loop = test_loop_new();

    /* 1. The client. */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 4) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &al) == 0);
    int hport = ntohs(a.sin_port);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, hostile_server, NULL) == 0);
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", hport,
                              &(loom_tcp_opts){.tls = cctx,
                                               .server_name = "localhost",
                                               .on_connect = on_connect,
                                               .on_read = on_read,
                                               .on_event = on_event,
                                               .on_close = on_close},
                              NULL));
    uint64_t end = tls_now_ms() + 5000;
    volatile int flag = 0;
    while (closes == 0 && tls_now_ms() < end)
        tls_run_until(loop, &flag, 5);
    fprintf(stderr, "client: %s (%d HelloRequests sent)\n", last_msg, (int)hostile_sent);
    CHECK_EQ(connected, 1);
    CHECK_EQ(closes, 1);
    CHECK_EQ(events, 1);
    CHECK(peer_done || hostile_sent < 2000000);
    char want[64];
    snprintf(want, sizeof want, "localhost:%d", hport);
    CHECK(strstr(last_msg, want) != NULL);
    CHECK(strstr(last_msg, "renegotiation refused") != NULL);
    pthread_join(th, NULL);
    close(lfd);

    /* 2. The server. */
    events = closes = connected = 0;
    peer_done = 0;
    last_msg[0] = '\0';
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = sctx,
                                                     .on_connect = on_connect,
                                                     .on_read = on_read,
                                                     .on_event = on_event,
                                                     .on_close = on_close},
                             &srv));
    loom_tls_ctx_free(sctx);
    srv_port = loom_tcp_server_port(srv);
    CHECK(pthread_create(&th, NULL, reneg_client, NULL) == 0);
    end = tls_now_ms() + 10000;
    while ((closes == 0 || !peer_done) && tls_now_ms() < end)
        tls_run_until(loop, &flag, 5);
    fprintf(stderr, "server: %s\n", last_msg);
    CHECK_EQ(connected, 1);
    CHECK_EQ(closes, 1);
    CHECK_EQ(events, 1);
    CHECK(strstr(last_msg, "127.0.0.1:") != NULL);
    CHECK(strstr(last_msg, "renegotiation refused") != NULL);
    pthread_join(th, NULL);

    loom_tcp_server_close(srv);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
