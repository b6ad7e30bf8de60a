/* test_tls_names: the names a TLS connection reports - which loom keeps in
 * OpenSSL or formats only when a message is made, not in fixed buffers of
 * its own - stay whole, on every backend:
 *  - a 255-byte server name (SNI's limit): the server's info.sni and the
 *    client's are the whole name, the client sees the server's subject;
 *  - a longer name is cut to 255 bytes, as it always was;
 *  - the same 255-byte name against a certificate for localhost: the
 *    client's verify error names "name:port" whole;
 *  - "localhost." (an absolute name): SNI "localhost", and the certificate
 *    for localhost verifies;
 *  - garbage instead of a ClientHello from a plain client on 127.0.0.1, then
 *    on ::1: the server's tls error names the client's address and port
 *    ("[::1]:port" for IPv6);
 *  - a client of the literal ::1 whose verify fails names "[::1]:port";
 *  - a client that resets in mid-handshake: the server's event still names
 *    its address (kept from accept: getpeername() fails after a reset);
 *  - a server that resets a client once the handshake is done: the
 *    client's tcp reset names the host it was asked for and the address it
 *    connected to ("localhost:port (127.0.0.1:port)"), which the socket
 *    kept from connect (the TLS session keeps no copy of its own);
 *  - garbage to a Unix server: the client's end is unnamed, the event names
 *    the server's path ("a connection accepted on /tmp/...");
 *  - every socket's on_close runs once and the loop ends clean.
 */
#include "tls_test_util.h"

#include <netinet/tcp.h>
#include <sys/un.h>

static loom_loop_t *loop;
static int closes, srv_accepts, cli_connects, cli_errs, srv_errs;
static char long_name[301];
static const char *want_sni; /* what the server must see */
static char srv_msg[1024], cli_msg[1024];
static int srv_kind, cli_kind;

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)d;
    srv_accepts++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    CHECK(info.sni != NULL);
    CHECK_EQ(strlen(info.sni), strlen(want_sni));
    CHECK_STR(info.sni, want_sni);
    CHECK_STR(info.peer_subject, ""); /* the client sent no certificate */
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    srv_errs++;
    srv_kind = ev->kind;
    snprintf(srv_msg, sizeof srv_msg, "%s", ev->msg ? ev->msg : "");
    fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), srv_msg);
}

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)d;
    cli_connects++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    CHECK(info.sni != NULL);
    CHECK_STR(info.sni, want_sni);
    CHECK(strstr(info.peer_subject, "CN=localhost") != NULL);
    CHECK_OK(loom_socket_close(s));
}

static void cli_event(const loom_event_t *ev, void *d)
{
    (void)d;
    cli_errs++;
    cli_kind = ev->kind;
    snprintf(cli_msg, sizeof cli_msg, "%s", ev->msg ? ev->msg : "");
    fprintf(stderr, "client event: %s: %s\n", loom_event_kind_name(ev->kind), cli_msg);
}

static void run_until_closes(int n)
{
    for (uint64_t end = tls_now_ms() + 5000; closes < n && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, n);
}

/* A TLS client of 127.0.0.1:port sending `name`. */
static void connect_named(loom_tls_ctx_t *cctx, int port, const char *name)
{
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.tls = cctx,
                                               .server_name = name,
                                               .on_connect = cli_connect,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              NULL));
}

/* The server of the reset case: resets every connection once secure. */
static void srv_reset(loom_socket_t *s, void *d)
{
    (void)d;
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(loom_socket_fd(s), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    CHECK_OK(loom_socket_abort(s));
}

static void cli_discard(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)s, (void)b, (void)n, (void)d;
}

/* A client of "localhost" whose server resets it after the handshake. */
static void client_reset(loom_tls_ctx_t *cctx)
{
    loom_tcp_server_t *rsrv =
        tls_server_on(loop, tls_server_ctx("server", NULL),
                      &(loom_tcp_server_opts){
                          .on_connect = srv_reset, .on_event = srv_event, .on_close = on_close});
    int port = loom_tcp_server_port(rsrv);
    int before = closes, errs = cli_errs;
    want_sni = "localhost";
    CHECK_OK(loom_tcp_connect(loop, "localhost", port,
                              &(loom_tcp_opts){.tls = cctx,
                                               .family = AF_INET,
                                               .on_read = cli_discard,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              NULL));
    run_until_closes(before + 2); /* the server's abort, the client's reset */
    CHECK_EQ(cli_errs, errs + 1);
    CHECK_EQ(cli_kind, LOOM_EV_TCP_RESET);
    char want[160];
    snprintf(want, sizeof want,
             "connection reset by peer on the connection with localhost:%d (127.0.0.1:%d)", port,
             port);
    CHECK_STR(cli_msg, want);
    loom_tcp_server_close(rsrv);
}

/* A plain client of the server at `ip` (AF_INET or AF_INET6) port `port`:
 * its fd, and its own port in *local. */
static int raw_connect(int family, int port, int *local)
{
    int fd = socket(family, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    }
    CHECK(connect(fd, (struct sockaddr *)&ss, len) == 0);
    len = sizeof ss;
    CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
    *local = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                     : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

/* Garbage instead of a ClientHello: the server's tls error names the client
 * as `want` (a format taking the client's port). */
static void garbage(int family, int port, const char *want_fmt)
{
    int before = closes, errs = srv_errs, local;
    int fd = raw_connect(family, port, &local);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
    for (uint64_t end = tls_now_ms() + 5000; srv_errs == errs && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(srv_errs, errs + 1);
    CHECK_EQ(srv_kind, LOOM_EV_TLS_ERROR);
    char want[128];
    snprintf(want, sizeof want, want_fmt, local);
    CHECK(strstr(srv_msg, want) != NULL);
    run_until_closes(before + 1);
    close(fd);
}

int main(void)
{
    test_timeout(60);
    loop = test_loop_new();
    /* 255 bytes: four labels of 63, dotted. */
    char *p = long_name;
    for (int i = 0; i < 4; i++) {
        memset(p, 'a' + i, 63);
        p[63] = i < 3 ? '.' : '\0';
        p += 64;
    }
    CHECK_EQ(strlen(long_name), 255);

    loom_tls_ctx_t *sctx = tls_server_ctx("server", &(loom_tls_opts){.handshake_timeout_ms = 5000});
    loom_tcp_server_t *srv =
        tls_server_on(loop, sctx,
                      &(loom_tcp_server_opts){
                          .on_connect = srv_connect, .on_event = srv_event, .on_close = on_close});
    int port = loom_tcp_server_port(srv);
    loom_tls_ctx_t *insecure = tls_client_ctx(&(loom_tls_opts){.insecure = true});
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);

    /* The whole 255-byte name, both ends. */
    want_sni = long_name;
    connect_named(insecure, port, long_name);
    run_until_closes(2);
    CHECK_EQ(srv_accepts, 1);
    CHECK_EQ(cli_connects, 1);

    /* A longer name is cut to 255 bytes. */
    char longer[400];
    snprintf(longer, sizeof longer, "%s.example.org", long_name);
    connect_named(insecure, port, longer);
    run_until_closes(4);
    CHECK_EQ(srv_accepts, 2);
    CHECK_EQ(cli_connects, 2);
    CHECK_EQ(cli_errs, 0);

    /* A verify error names the whole name and the port. */
    connect_named(cctx, port, long_name);
    run_until_closes(6);
    CHECK_EQ(cli_errs, 1);
    CHECK_EQ(cli_kind, LOOM_EV_TLS_VERIFY_ERROR);
    char want[400];
    snprintf(want, sizeof want, "certificate verify failed for %s:%d: ", long_name, port);
    CHECK(strstr(cli_msg, want) != NULL);
    CHECK_EQ(srv_accepts, 2);
    srv_errs = 0; /* the server saw the client's alert */

    /* An absolute name ("localhost.", one trailing dot) is the same name:
     * SNI carries it without the dot (RFC 6066 section 3) and the
     * certificate for localhost verifies. */
    want_sni = "localhost";
    connect_named(cctx, port, "localhost.");
    run_until_closes(8);
    CHECK_EQ(cli_errs, 1);
    CHECK_EQ(srv_accepts, 3);
    CHECK_EQ(cli_connects, 3);

    /* The server names a client by its address. */
    garbage(AF_INET, port, "tls handshake with 127.0.0.1:%d failed: ");

    /* A reset in mid-handshake: the address is still named. */
    int before = closes, local;
    int fd = raw_connect(AF_INET, port, &local);
    static const char part[] = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    CHECK_EQ(write(fd, part, sizeof part - 1), (ssize_t)(sizeof part - 1));
    for (uint64_t end = tls_now_ms() + 300; tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
    int errs = srv_errs;
    for (uint64_t end = tls_now_ms() + 5000; srv_errs == errs && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(srv_errs, errs + 1);
    snprintf(want, sizeof want, "127.0.0.1:%d", local);
    CHECK(strstr(srv_msg, want) != NULL);
    run_until_closes(before + 1);

    client_reset(cctx);

    /* A Unix server: the client's end is unnamed, so the server's path
     * names the connection. */
    {
        char path[64];
        snprintf(path, sizeof path, "/tmp/loom-test-tls-names-%d.sock", (int)getpid());
        unlink(path);
        loom_tcp_server_t *usrv;
        CHECK_OK(
            loom_unix_server(loop, path,
                             &(loom_tcp_server_opts){.tls = sctx = tls_server_ctx("server", NULL),
                                                     .on_event = srv_event,
                                                     .on_close = on_close},
                             &usrv));
        loom_tls_ctx_free(sctx);
        int b = closes, e = srv_errs;
        int ufd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
        CHECK(connect(ufd, (struct sockaddr *)&un, sizeof un) == 0);
        static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK_EQ(write(ufd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
        for (uint64_t end = tls_now_ms() + 5000; srv_errs == e && tls_now_ms() < end;)
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        CHECK_EQ(srv_errs, e + 1);
        snprintf(want, sizeof want,
                 "tls handshake with a connection accepted on %s failed: ", path);
        if (strstr(srv_msg, want) == NULL) {
            fprintf(stderr, "unix: \"%s\"\n", srv_msg);
            exit(1);
        }
        run_until_closes(b + 1);
        close(ufd);
        loom_tcp_server_close(usrv);
    }

    /* IPv6: "[::1]:port". */
    loom_tcp_server_t *srv6;
    int r = loom_tcp_server(loop, "::1", 0,
                            &(loom_tcp_server_opts){.tls = sctx = tls_server_ctx("server", NULL),
                                                    .on_event = srv_event,
                                                    .on_close = on_close},
                            &srv6);
    loom_tls_ctx_free(sctx);
    if (r == 0) {
        garbage(AF_INET6, loom_tcp_server_port(srv6), "tls handshake with [::1]:%d failed: ");
        loom_tcp_server_close(srv6);
        /* A client of the literal ::1 names its peer "[::1]:port" (its
         * session key is "::1:port"): a certificate for another name. */
        CHECK_OK(
            loom_tcp_server(loop, "::1", 0,
                            &(loom_tcp_server_opts){.tls = sctx = tls_server_ctx("other", NULL),
                                                    .on_event = srv_event,
                                                    .on_close = on_close},
                            &srv6));
        loom_tls_ctx_free(sctx);
        int port6 = loom_tcp_server_port(srv6), b6 = closes, e6 = cli_errs;
        CHECK_OK(loom_tcp_connect(loop, "::1", port6,
                                  &(loom_tcp_opts){.tls = cctx,
                                                   .on_connect = cli_connect,
                                                   .on_event = cli_event,
                                                   .on_close = on_close},
                                  NULL));
        run_until_closes(b6 + 2);
        CHECK_EQ(cli_errs, e6 + 1);
        CHECK_EQ(cli_kind, LOOM_EV_TLS_VERIFY_ERROR);
        snprintf(want, sizeof want, "certificate verify failed for [::1]:%d: ", port6);
        if (strstr(cli_msg, want) == NULL) {
            fprintf(stderr, "::1 client: \"%s\"\n", cli_msg);
            exit(1);
        }
        loom_tcp_server_close(srv6);
    } else {
        fprintf(stderr, "no ::1 (%s): the IPv6 case is skipped\n", loom_strerror(r));
    }

    loom_tcp_server_close(srv);
    loom_tls_ctx_free(insecure);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls names: ok\n");
    return 0;
}
