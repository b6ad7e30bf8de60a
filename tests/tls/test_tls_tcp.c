/* test_tls_tcp: TLS sockets between loom and loom, on every backend:
 *  - a client's initial bytes wait for the handshake; on_connect and the
 *    server's accept run after it; the echo arrives whole;
 *  - what was negotiated: TLS 1.3, ALPN (the server's preference among the
 *    client's offers), the SNI name, the peer's subject;
 *  - loom_socket_close() sends close_notify: the peer sees a clean end (tcp
 *    eof); an abort sends none: the peer sees truncation (a tls error with
 *    LOOM_ETRUNCATED);
 *  - a second connection resumes the session (ticket);
 *  - a certificate for another name fails the client's handshake with a tls
 *    verify error naming the host and the reason, and the server keeps
 *    serving;
 *  - every socket's on_close runs once and the loop ends clean.
 */
#include "tls_test_util.h"

static loom_loop_t *loop;
static int closes, accepts, srv_eofs, srv_truncs, cli_done, cli_err, cli_connects;
static int last_kind, last_code;
static char last_msg[512];
static char got[256];
static size_t got_len;
static bool resumed;

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)d;
    accepts++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    CHECK(info.sni != NULL && strcmp(info.sni, "localhost") == 0);
    CHECK(info.alpn_len == 1 && info.alpn[0] == 'b');
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_TCP_EOF)
        srv_eofs++;
    else if (ev->kind == LOOM_EV_TLS_ERROR && ev->code == LOOM_ETRUNCATED)
        srv_truncs++;
    else
        fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)d;
    cli_connects++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    fprintf(stderr, "client: %s %s alpn=%.*s peer=%s resumed=%d\n", info.version, info.cipher,
            (int)info.alpn_len, info.alpn ? info.alpn : "", info.peer_subject, info.resumed);
    CHECK(strcmp(info.version, "TLSv1.3") == 0);
    CHECK(info.alpn_len == 1 && info.alpn[0] == 'b');
    CHECK(strstr(info.peer_subject, "CN=localhost") != NULL);
    CHECK(info.peer_verified);
    resumed = info.resumed;
    CHECK(loom_socket_write(s, " world", 6) >= 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    CHECK(got_len + n < sizeof got);
    memcpy(got + got_len, b, n);
    got_len += n;
    if (got_len == 11) {
        CHECK(memcmp(got, "hello world", 11) == 0);
        cli_done = 1;
    }
    (void)s;
}

static void cli_event(const loom_event_t *ev, void *d)
{
    (void)d;
    last_kind = ev->kind;
    last_code = ev->code;
    snprintf(last_msg, sizeof last_msg, "%s", ev->msg ? ev->msg : "");
    fprintf(stderr, "client event: %s: %s\n", loom_event_kind_name(ev->kind), last_msg);
    cli_err = 1;
}

/* One echo over a new connection; `abort` ends it without close_notify. */
static void echo_once(loom_tls_ctx_t *cctx, int port, bool abort)
{
    got_len = 0;
    cli_done = 0;
    int eofs = srv_eofs, truncs = srv_truncs, before = closes;
    loom_socket_t *s;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.tls = cctx,
                                               .server_name = "localhost",
                                               .initial = "hello",
                                               .initial_len = 5,
                                               .on_connect = cli_connect,
                                               .on_read = cli_read,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              &s));
    CHECK(tls_run_until(loop, &cli_done, 5000));
    if (abort)
        CHECK_OK(loom_socket_abort(s));
    else
        CHECK_OK(loom_socket_close(s));
    for (uint64_t end = tls_now_ms() + 5000; closes < before + 2 && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, before + 2);
    CHECK_EQ(srv_eofs, eofs + (abort ? 0 : 1));
    CHECK_EQ(srv_truncs, truncs + (abort ? 1 : 0));
}

int main(void)
{
    test_timeout(60);
    loop = test_loop_new();
    loom_tls_ctx_t *sctx = tls_server_ctx("server", &(loom_tls_opts){.alpn = "b,a"});
    loom_tls_ctx_t *cctx = tls_client_ctx(&(loom_tls_opts){.alpn = "a,b"});
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = sctx,
                                                     .on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_event = srv_event,
                                                     .on_close = on_close},
                             &srv));
    loom_tls_ctx_free(sctx); /* the server holds its own reference */
    int port = loom_tcp_server_port(srv);

    echo_once(cctx, port, false);
    CHECK(!resumed);
    echo_once(cctx, port, false);
    CHECK(resumed); /* the ticket of the first connection */
    echo_once(cctx, port, true);
    CHECK_EQ(accepts, 3);
    CHECK_EQ(cli_err, 0);

    /* A certificate for another name. */
    loom_tls_ctx_t *octx = tls_server_ctx("other", NULL);
    loom_tcp_server_t *srv2;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = octx, .on_close = on_close}, &srv2));
    loom_tls_ctx_free(octx);
    int before = closes;
    CHECK_OK(loom_tcp_connect(loop, "localhost", loom_tcp_server_port(srv2),
                              &(loom_tcp_opts){.tls = cctx,
                                               .family = AF_INET,
                                               .on_connect = cli_connect,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              NULL));
    CHECK(tls_run_until(loop, &cli_err, 5000));
    CHECK_EQ(last_kind, LOOM_EV_TLS_VERIFY_ERROR);
    CHECK_EQ(last_code, LOOM_ECERT);
    char want[128];
    snprintf(want, sizeof want, "certificate verify failed for localhost:%d: hostname mismatch",
             loom_tcp_server_port(srv2));
    CHECK(strstr(last_msg, want) != NULL);
    for (uint64_t end = tls_now_ms() + 5000; closes < before + 2 && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, before + 2);
    CHECK_EQ(cli_connects, 3);

    /* The first server still serves. */
    cli_err = 0;
    echo_once(cctx, port, false);

    loom_tcp_server_close(srv);
    loom_tcp_server_close(srv2);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls tcp: ok\n");
    return 0;
}
