/* test_tls_bad: hostile and broken TLS peers, on every backend. Each case
 * ends with one clear event (kind, code, and a message naming the peer and
 * OpenSSL's reason), no leak, and the server still serves a good client:
 *  - garbage instead of a ClientHello (an HTTP request);
 *  - half a ClientHello, then silence: the handshake timeout (300 ms), a tcp
 *    timeout "tls handshake with ... timed out";
 *  - a client offering only TLS 1.0 (openssl s_client -tls1): refused;
 *  - the client's certificate checks: expired, another host, self-signed, a
 *    CA it does not trust; `insecure` accepts the self-signed one;
 *  - client certificates: REQUIRED without one fails on both sides, with one
 *    works (the server sees the client's subject); OPTIONAL works without;
 *  - a peer (python) that resets in the middle of a record: an error, no
 *    crash; a peer that ends with a FIN and no close_notify after data:
 *    LOOM_ETRUNCATED once every byte was delivered;
 *  - re-entrancy: a client that closes in on_connect, a server that closes
 *    or aborts inside on_read in the middle of a large read;
 *  - ALPN with nothing in common (RFC 7301 section 3.2): a server with a
 *    list answers the fatal no_application_protocol alert (it used to go
 *    on without ALPN), one tls error event naming the client and the
 *    reason, for `openssl s_client -alpn foo` and for a loom client (whose
 *    own event names the alert); a client that offers no ALPN, or one the
 *    server speaks, still connects; a server without any list ignores the
 *    client's offer.
 */
#include "tls_test_util.h"

static loom_loop_t *loop;
static int closes;

/* The last event of a side. */
typedef struct {
    int n, kind, code;
    char msg[512];
    size_t got_at; /* client bytes received when it came */
} side;
static side srv_ev, cli_ev;
static int srv_accepts, cli_connects, good_done;
static char srv_subject[256];
static size_t got_len;
static char got[256];
static bool ack_good; /* a client answers "good" with "ack" */
static enum { R_ECHO, R_CLOSE, R_ABORT } srv_mode;

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void note(side *sd, const loom_event_t *ev, const char *who)
{
    sd->n++;
    sd->kind = ev->kind;
    sd->code = ev->code;
    sd->got_at = got_len;
    snprintf(sd->msg, sizeof sd->msg, "%s", ev->msg);
    fprintf(stderr, "%s event: %s (%s): %s\n", who, loom_event_kind_name(ev->kind),
            loom_strerror(ev->code), ev->msg);
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    note(&srv_ev, ev, "server");
}

static void cli_event(const loom_event_t *ev, void *d)
{
    (void)d;
    note(&cli_ev, ev, "client");
}

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)d;
    srv_accepts++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    snprintf(srv_subject, sizeof srv_subject, "%s", info.peer_subject);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    if (srv_mode == R_CLOSE) {
        CHECK_OK(loom_socket_close(s));
        CHECK(loom_socket_write(s, b, n) < 0); /* closed: refused, no crash */
        return;
    }
    if (srv_mode == R_ABORT) {
        CHECK_OK(loom_socket_abort(s));
        return;
    }
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    cli_connects++;
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    if (got_len + n < sizeof got)
        memcpy(got + got_len, b, n);
    got_len += n;
    if (!good_done && got_len >= 4 && memcmp(got, "good", 4) == 0) {
        good_done = 1;
        if (ack_good)
            CHECK(loom_socket_write(s, "ack\n", 4) >= 0);
    }
}

static void wait_closes(int n)
{
    for (uint64_t end = tls_now_ms() + 5000; closes < n && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, n);
}

static void wait_event(side *sd, int n)
{
    for (uint64_t end = tls_now_ms() + 5000; sd->n < n && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(sd->n, n);
}

static const loom_tcp_opts cli_cbs = {
    .on_connect = cli_connect, .on_read = cli_read, .on_event = cli_event, .on_close = on_close};
static const loom_tcp_server_opts srv_cbs = {
    .on_connect = srv_connect, .on_read = srv_read, .on_event = srv_event, .on_close = on_close};

static loom_socket_t *cli_open(loom_tls_ctx_t *cctx, int port, const char *initial)
{
    got_len = 0;
    good_done = 0;
    return tls_client_on(loop, cctx, port, initial, &cli_cbs);
}

/* A good client gets its echo and closes cleanly. */
static void good_client(loom_tls_ctx_t *cctx, int port)
{
    int before = closes, sn = srv_ev.n, cn = cli_ev.n;
    loom_socket_t *s = cli_open(cctx, port, "good");
    CHECK(tls_run_until(loop, &good_done, 5000));
    CHECK_OK(loom_socket_close(s));
    wait_closes(before + 2);
    CHECK_EQ(cli_ev.n, cn);
    CHECK_EQ(srv_ev.n, sn + 1);
    CHECK_EQ(srv_ev.kind, LOOM_EV_TCP_EOF);
}

static void check_msg(const side *sd, int kind, int code, const char *a, const char *b)
{
    CHECK_EQ(sd->kind, kind);
    CHECK_EQ(sd->code, code);
    if (strstr(sd->msg, a) == NULL || (b && strstr(sd->msg, b) == NULL)) {
        fprintf(stderr, "message \"%s\" lacks \"%s\" / \"%s\"\n", sd->msg, a, b ? b : "");
        CHECK(!"message");
    }
}

/* A blocking plain TCP connection to 127.0.0.1:port. */
static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

/* A real ClientHello: what a loom client sends to a plain listener. */
static size_t client_hello(loom_tls_ctx_t *cctx, char *buf, size_t cap)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(lfd, 1) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
    int before = closes;
    loom_socket_t *s = cli_open(cctx, ntohs(a.sin_port), NULL);
    size_t n = 0;
    int fd = -1;
    for (uint64_t end = tls_now_ms() + 5000; tls_now_ms() < end;) {
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        if (fd < 0) {
            fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
            continue;
        }
        ssize_t r = recv(fd, buf + n, cap - n, 0);
        if (r > 0)
            n += (size_t)r;
        /* A whole record: its 5-byte header gives the length. */
        if (n >= 5 && n >= 5 + (((size_t)(uint8_t)buf[3] << 8) | (uint8_t)buf[4]))
            break;
    }
    CHECK(n > 100);
    CHECK_EQ(buf[0], 0x16); /* a handshake record */
    CHECK_OK(loom_socket_abort(s));
    wait_closes(before + 1);
    close(fd);
    close(lfd);
    return n;
}

/* --- Server-side cases ------------------------------------------------------------- */

static void server_cases(loom_tls_ctx_t *cctx)
{
    loom_tls_ctx_t *sctx = tls_server_ctx("server", &(loom_tls_opts){.handshake_timeout_ms = 300});
    loom_tcp_server_t *srv = tls_server_on(loop, sctx, &srv_cbs);
    int port = loom_tcp_server_port(srv);
    good_client(cctx, port);

    /* Garbage instead of a ClientHello. */
    int n = srv_ev.n, before = closes;
    int fd = raw_connect(port);
    const char *get = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    CHECK_EQ(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
    wait_event(&srv_ev, n + 1);
    check_msg(&srv_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS,
              "tls handshake with 127.0.0.1:", "http request");
    wait_closes(before + 1);
    close(fd);
    good_client(cctx, port);

    /* Half a ClientHello, then silence: the handshake timeout. */
    char hello[4096];
    size_t hn = client_hello(cctx, hello, sizeof hello);
    n = srv_ev.n, before = closes;
    fd = raw_connect(port);
    CHECK_EQ(send(fd, hello, hn / 2, 0), (ssize_t)(hn / 2));
    uint64_t t0 = tls_now_ms();
    wait_event(&srv_ev, n + 1);
    uint64_t took = tls_now_ms() - t0;
    check_msg(&srv_ev, LOOM_EV_TCP_TIMEOUT, LOOM_ETIMEDOUT,
              "tls handshake with 127.0.0.1:", "timed out after 300 ms");
    CHECK(took >= 250 && took < 3000);
    wait_closes(before + 1);
    close(fd);
    good_client(cctx, port);

    /* A client offering only TLS 1.0. */
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_client", "-connect",           addr,
                    "-tls1",   "-cipher",  "DEFAULT@SECLEVEL=0", NULL};
    tls_proc p;
    n = srv_ev.n, before = closes;
    tls_spawn(&p, argv);
    wait_event(&srv_ev, n + 1);
    check_msg(&srv_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS,
              "tls handshake with 127.0.0.1:", "unsupported protocol");
    wait_closes(before + 1);
    CHECK(tls_proc_end(&p, 5000) != 0); /* it failed too */
    good_client(cctx, port);

    loom_tcp_server_close(srv);
}

/* --- Certificates ---------------------------------------------------------------- */

/* A loom client of a server with certificate `name` fails with `reason`. */
static void verify_fails(loom_tls_ctx_t *cctx, const char *name, const char *reason)
{
    loom_tls_ctx_t *sctx = tls_server_ctx(name, NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.tls = sctx, .on_event = srv_event, .on_close = on_close}, &srv));
    loom_tls_ctx_free(sctx);
    int port = loom_tcp_server_port(srv);
    int n = cli_ev.n, sn = srv_ev.n, before = closes, connects = cli_connects;
    cli_open(cctx, port, "never sent");
    wait_event(&cli_ev, n + 1);
    char want[64];
    snprintf(want, sizeof want, "certificate verify failed for localhost:%d: ", port);
    check_msg(&cli_ev, LOOM_EV_TLS_VERIFY_ERROR, LOOM_ECERT, want, reason);
    wait_closes(before + 2);
    CHECK_EQ(cli_connects, connects);
    /* The server saw the client's alert. */
    CHECK_EQ(srv_ev.n, sn + 1);
    CHECK(loom_event_is(&(loom_event_t){.kind = srv_ev.kind}, LOOM_EV_TLS_ERROR));
    loom_tcp_server_close(srv);
}

static void cert_cases(loom_tls_ctx_t *cctx)
{
    verify_fails(cctx, "expired", "certificate has expired");
    verify_fails(cctx, "other", "hostname mismatch");
    verify_fails(cctx, "self", "self-signed certificate");
    loom_tls_ctx_t *c2 = tls_client_ctx(&(loom_tls_opts){.ca_file = tls_path("ca2.pem")});
    verify_fails(c2, "server", "unable to get local issuer certificate");
    loom_tls_ctx_free(c2);

    /* insecure accepts the self-signed one. */
    loom_tls_ctx_t *ictx = tls_client_ctx(&(loom_tls_opts){.insecure = true});
    loom_tls_ctx_t *sctx = tls_server_ctx("self", NULL);
    loom_tcp_server_t *srv;
    srv_mode = R_ECHO;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){
            .tls = sctx, .on_read = srv_read, .on_event = srv_event, .on_close = on_close},
        &srv));
    loom_tls_ctx_free(sctx);
    good_client(ictx, loom_tcp_server_port(srv));
    loom_tcp_server_close(srv);
    loom_tls_ctx_free(ictx);
}

/* verify_client: REQUIRED without and with a certificate, OPTIONAL without. */
static void client_cert_cases(loom_tls_ctx_t *cctx)
{
    loom_tls_ctx_t *req =
        tls_server_ctx("server", &(loom_tls_opts){.verify_client = LOOM_TLS_VERIFY_REQUIRED,
                                                  .ca_file = tls_path("ca.pem")});
    loom_tcp_server_t *srv = tls_server_on(loop, req, &srv_cbs);
    int port = loom_tcp_server_port(srv);

    /* Without: the server fails the handshake; the client (TLS 1.3: done
     * on its side already) gets the alert. */
    int n = cli_ev.n, sn = srv_ev.n, before = closes, accepts = srv_accepts;
    cli_open(cctx, port, "hello");
    wait_event(&cli_ev, n + 1);
    wait_event(&srv_ev, sn + 1);
    check_msg(&srv_ev, LOOM_EV_TLS_VERIFY_ERROR, LOOM_ECERT,
              "tls handshake with 127.0.0.1:", "no client certificate");
    check_msg(&cli_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS, "localhost:", "certificate required");
    wait_closes(before + 2);
    CHECK_EQ(srv_accepts, accepts);

    /* With. */
    loom_tls_ctx_t *cc = tls_client_ctx(&(loom_tls_opts){
        .cert = {.cert_file = tls_path("client.pem"), .key_file = tls_path("client.key")}});
    srv_subject[0] = 0;
    good_client(cc, port);
    CHECK(strstr(srv_subject, "CN=loom client") != NULL);
    loom_tcp_server_close(srv);

    /* OPTIONAL: works without. */
    loom_tls_ctx_t *opt =
        tls_server_ctx("server", &(loom_tls_opts){.verify_client = LOOM_TLS_VERIFY_OPTIONAL,
                                                  .ca_file = tls_path("ca.pem")});
    srv = tls_server_on(loop, opt, &srv_cbs);
    srv_subject[0] = 'x';
    good_client(cctx, loom_tcp_server_port(srv));
    CHECK_STR(srv_subject, "");
    srv_subject[0] = 0;
    good_client(cc, loom_tcp_server_port(srv));
    CHECK(strstr(srv_subject, "CN=loom client") != NULL);
    loom_tcp_server_close(srv);
    loom_tls_ctx_free(cc);
}

/* --- A python peer that resets mid-record or truncates ----------------------------- */

static const char py_bad[] =
    TLS_PY_ACCEPT "buf = b''\n"
                  "while not buf.endswith(b'\\n'):\n"
                  "    buf += s.recv(4096)\n"
                  "if sys.argv[3] == 'reset':\n"
                  "    s.sendall(b'good')\n"
                  "    while not buf.endswith(b'ack\\n'):\n"
                  "        buf += s.recv(4096)\n"
                  "    socket.socket.sendall(s, b'\\x17\\x03\\x03\\x40\\x11' + b'x' * 1000)\n"
                  "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
                  "else:\n"
                  "    s.sendall(b'good' + b'y' * 99996)\n"
                  "    s.shutdown(socket.SHUT_RDWR)\n"
                  "s.close()\n"
                  "print('DONE', flush=True)\n";

static void python_case(loom_tls_ctx_t *cctx, const char *mode)
{
    tls_proc p;
    int port = tls_py_server(&p, py_bad, mode);
    int n = cli_ev.n, before = closes;
    ack_good = true;
    cli_open(cctx, port, "line\n");
    wait_event(&cli_ev, n + 1);
    wait_closes(before + 1);
    CHECK_EQ(tls_proc_end(&p, 5000), 0);
    CHECK(good_done);
    ack_good = false;
    if (strcmp(mode, "reset") == 0) {
        /* The socket layer's reset, or OpenSSL's view of it: either way the
         * message names the peer (the TLS transport keeps its name; the
         * kernel forgets it after a reset). */
        CHECK(cli_ev.kind == LOOM_EV_TCP_RESET || cli_ev.kind == LOOM_EV_TLS_ERROR);
        CHECK(cli_ev.code == LOOM_ECONNRESET || cli_ev.code == LOOM_ETLS);
        char want[64];
        snprintf(want, sizeof want, "localhost:%d", port);
        if (strstr(cli_ev.msg, want) == NULL)
            fprintf(stderr, "reset: \"%s\" does not name %s\n", cli_ev.msg, want);
        CHECK(strstr(cli_ev.msg, want) != NULL);
    } else {
        char want[64];
        snprintf(want, sizeof want, "tls connection with localhost:%d closed", port);
        check_msg(&cli_ev, LOOM_EV_TLS_ERROR, LOOM_ETRUNCATED, want, "without close_notify");
        CHECK_EQ(cli_ev.got_at, 100000); /* after every byte */
    }
}

/* --- Re-entrancy -------------------------------------------------------------------- */

static void close_in_connect(loom_socket_t *s, void *d)
{
    (void)d;
    cli_connects++;
    CHECK_OK(loom_socket_close(s));
    CHECK(loom_socket_write(s, "x", 1) < 0);
}

static void reentry_cases(loom_tls_ctx_t *cctx)
{
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tcp_server_t *srv = tls_server_on(loop, sctx, &srv_cbs);
    int port = loom_tcp_server_port(srv);

    /* A client that closes inside on_connect. */
    int before = closes, connects = cli_connects;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.tls = cctx,
                                               .server_name = "localhost",
                                               .on_connect = close_in_connect,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              NULL));
    wait_closes(before + 2);
    CHECK_EQ(cli_connects, connects + 1);

    /* A server that closes (then aborts) inside on_read, with many records
     * in one read still to deliver. */
    static char big[256 * 1024];
    memset(big, 'z', sizeof big);
    for (int mode = R_CLOSE; mode <= R_ABORT; mode++) {
        srv_mode = mode;
        before = closes;
        loom_socket_t *s = cli_open(cctx, port, NULL);
        CHECK_OK(loom_socket_write(s, big, sizeof big));
        wait_closes(before + 2);
    }
    srv_mode = R_ECHO;
    good_client(cctx, port);
    loom_tcp_server_close(srv);
}

/* --- ALPN ------------------------------------------------------------------------- */

/* `openssl s_client -alpn <offer>` (NULL: no ALPN) against port, run
 * beside the loop: 0 if its line came back (the echo server), else 1. */
static int s_client_alpn(int port, const char *offer)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char *argv[] = {"openssl", "s_client", "-connect", addr, "-alpn", (char *)offer, NULL};
    char *noalpn[] = {"openssl", "s_client", "-connect", addr, NULL};
    tls_proc p;
    tls_spawn(&p, offer ? argv : noalpn);
    bool sent = false, done = false;
    int st, ok = 1;
    for (uint64_t end = tls_now_ms() + 5000; tls_now_ms() < end;) {
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        if (tls_proc_has(&p, "hello alpn")) {
            ok = 0;
            break;
        }
        if (!sent && tls_proc_has(&p, "Verify return code")) {
            sent = true; /* handshake over (or failed: then nothing comes back) */
            (void)!write(p.in, "hello alpn\n", 11);
        }
        if (tls_proc_done(&p, &st)) {
            done = true;
            break;
        }
        usleep(2000);
    }
    if (done) {
        close(p.in);
        if (p.out >= 0)
            close(p.out);
    } else {
        (void)tls_proc_end(&p, 5000);
    }
    return ok;
}

static void alpn_cases(loom_tls_ctx_t *cctx)
{
    loom_tls_ctx_t *sctx = tls_server_ctx("server", &(loom_tls_opts){.alpn = "echo"});
    loom_tcp_server_t *srv = tls_server_on(loop, sctx, &srv_cbs);
    int port = loom_tcp_server_port(srv);
    good_client(cctx, port); /* no ALPN offered: connects */

    /* s_client offering only "foo". */
    int n = srv_ev.n, before = closes;
    CHECK(s_client_alpn(port, "foo") != 0);
    wait_event(&srv_ev, n + 1);
    check_msg(&srv_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS,
              "tls handshake with 127.0.0.1:", "no application protocol");
    wait_closes(before + 1);
    for (int i = 0; i < 20; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    CHECK_EQ(srv_ev.n, n + 1); /* one event */

    /* Offering "foo" and "echo": "echo" is chosen. */
    CHECK_EQ(s_client_alpn(port, "foo,echo"), 0);
    /* No ALPN at all: connects. */
    CHECK_EQ(s_client_alpn(port, NULL), 0);

    /* A loom client offering "foo": both sides fail, each with one event. */
    volatile int never = 0;
    (void)tls_run_until(loop, &never, 200); /* the s_clients' connections end */
    loom_tls_ctx_t *foo = tls_client_ctx(&(loom_tls_opts){.alpn = "foo"});
    n = srv_ev.n;
    int cn = cli_ev.n;
    before = closes;
    (void)cli_open(foo, port, "good");
    wait_event(&srv_ev, n + 1);
    wait_event(&cli_ev, cn + 1);
    check_msg(&srv_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS, "127.0.0.1:", "no application protocol");
    check_msg(&cli_ev, LOOM_EV_TLS_ERROR, LOOM_ETLS,
              "tls handshake with localhost:", "alert no application protocol");
    wait_closes(before + 2);
    CHECK_EQ(good_done, 0);
    loom_tls_ctx_free(foo);
    good_client(cctx, port);
    loom_tcp_server_close(srv);

    /* A server with no ALPN list does not take part: "foo" connects. */
    sctx = tls_server_ctx("server", NULL);
    srv = tls_server_on(loop, sctx, &srv_cbs);
    port = loom_tcp_server_port(srv);
    n = srv_ev.n;
    CHECK_EQ(s_client_alpn(port, "foo"), 0);
    loom_tcp_server_close(srv);
}

int main(void)
{
    test_timeout(90);
    if (!tls_have("openssl") || access("/usr/bin/python3", X_OK) != 0)
        TEST_SKIP("openssl or /usr/bin/python3 missing");
    loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    server_cases(cctx);
    cert_cases(cctx);
    client_cert_cases(cctx);
    python_case(cctx, "reset");
    python_case(cctx, "trunc");
    reentry_cases(cctx);
    alpn_cases(cctx);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls bad: ok\n");
    return 0;
}
