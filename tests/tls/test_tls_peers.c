/* test_tls_peers: loom's TLS against real peers started by the test on
 * 127.0.0.1, both directions, TLS 1.3 and TLS 1.2, on every backend:
 *  - `openssl s_server -www` (its default certificate is for another name;
 *    the right one is chosen by SNI) fetched by a loom client that verifies
 *    against the test CA and offers ALPN; then `s_server` in its echo mode
 *    (stdin to the client, the client's bytes to stdout), data both ways;
 *  - `openssl s_client -CAfile ca.pem` against a loom echo server: a
 *    greeting, data both ways, then s_client's close (close_notify: a clean
 *    end for the server);
 *  - /usr/bin/python3's ssl module as the client of a loom server and as the
 *    server of a loom client, each ending with close_notify both ways.
 */
#include "tls_test_util.h"

static loom_loop_t *loop;
static int closes, srv_eofs, srv_errs, cli_eofs, cli_truncs, cli_errs;
static char srv_version[32], cli_version[32], cli_subject[256], cli_alpn[32];
static char got[65536];
static size_t got_len;
static const char *close_on; /* a client closes once it got this */

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

static void got_add(const char *b, size_t n)
{
    CHECK(got_len + n < sizeof got);
    memcpy(got + got_len, b, n);
    got_len += n;
    got[got_len] = 0;
}

/* --- loom clients ----------------------------------------------------------------- */

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)d;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    snprintf(cli_version, sizeof cli_version, "%s", info.version);
    snprintf(cli_subject, sizeof cli_subject, "%s", info.peer_subject);
    snprintf(cli_alpn, sizeof cli_alpn, "%.*s", (int)info.alpn_len, info.alpn ? info.alpn : "");
    CHECK(info.peer_verified);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    got_add(b, n);
    if (close_on && strstr(got, close_on)) {
        close_on = NULL;
        CHECK_OK(loom_socket_close(s));
    }
}

static void cli_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        cli_eofs++;
        return;
    }
    if (ev->kind == LOOM_EV_TLS_ERROR && ev->code == LOOM_ETRUNCATED)
        cli_truncs++;
    else
        cli_errs++;
    fprintf(stderr, "client event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static const loom_tcp_opts cli_cbs = {
    .on_connect = cli_connect, .on_read = cli_read, .on_event = cli_event, .on_close = on_close};

static loom_socket_t *cli_open(loom_tls_ctx_t *cctx, int port, const char *initial)
{
    got_len = 0;
    got[0] = 0;
    cli_version[0] = cli_subject[0] = cli_alpn[0] = 0;
    return tls_client_on(loop, cctx, port, initial, &cli_cbs);
}

typedef struct {
    tls_proc *p;
    const char *s; /* the child printed this */
    const char *g; /* loom received this */
    int closes;    /* closes reached this */
    int *status;   /* the child ended */
} want;

static bool want_met(void *arg)
{
    want *w = arg;
    if (w->p && w->s && !tls_proc_has(w->p, w->s))
        return false;
    if (w->g && strstr(got, w->g) == NULL)
        return false;
    if (closes < w->closes)
        return false;
    if (w->status && !tls_proc_done(w->p, w->status))
        return false;
    return true;
}

static void run_for(want w)
{
    if (!tls_run_pred(loop, want_met, &w, 10000)) {
        fprintf(stderr, "peer printed: %s\nloom got: %s\n", w.p ? w.p->buf : "", got);
        CHECK(!"timed out");
    }
}

/* s_server; with `www`, in its -www mode with `other` as its default
 * certificate and `server` for the SNI name localhost (ALPN is then not
 * answered: s_server sets it on its first context only); else in echo mode
 * with `server` and ALPN. */
static bool start_s_server_on(tls_proc *p, int port, bool www, bool tls12)
{
    char portbuf[32];
    snprintf(portbuf, sizeof portbuf, "127.0.0.1:%d", port);
    char *argv[32];
    int i = 0;
    argv[i++] = "openssl";
    argv[i++] = "s_server";
    argv[i++] = "-accept";
    argv[i++] = portbuf;
    argv[i++] = "-cert";
    argv[i++] = (char *)tls_path(www ? "other.pem" : "server.pem");
    argv[i++] = "-key";
    argv[i++] = (char *)tls_path(www ? "other.key" : "server.key");
    if (www) {
        argv[i++] = "-cert2";
        argv[i++] = (char *)tls_path("server.pem");
        argv[i++] = "-key2";
        argv[i++] = (char *)tls_path("server.key");
        argv[i++] = "-servername";
        argv[i++] = "localhost";
        argv[i++] = "-www";
    } else {
        argv[i++] = "-alpn";
        argv[i++] = "x,http/1.1";
    }
    argv[i++] = tls12 ? "-tls1_2" : "-tls1_3";
    argv[i++] = NULL;
    tls_spawn(p, argv);
    if (tls_proc_wait_for(p, "ACCEPT", 10000))
        return true;
    tls_proc_kill(p);
    return false;
}

/* Starts s_server on a free port, returned; another if the port was taken
 * meanwhile (the port is found by binding port 0, then released). */
static int start_s_server(tls_proc *p, bool www, bool tls12)
{
    for (int i = 0; i < 5; i++) {
        int port = tls_free_port();
        if (start_s_server_on(p, port, www, tls12))
            return port;
    }
    CHECK(!"s_server did not start");
    return 0;
}

static void with_s_server(loom_tls_ctx_t *cctx, bool tls12)
{
    const char *ver = tls12 ? "TLSv1.2" : "TLSv1.3";
    tls_proc p;

    /* -www: a page that describes the session, ended by close_notify. */
    int port = start_s_server(&p, true, tls12);
    int before = closes, eofs = cli_eofs;
    cli_open(cctx, port, "GET / HTTP/1.0\r\n\r\n");
    run_for((want){.closes = before + 1});
    CHECK(strstr(got, "HTTP/1.0 200 ok") != NULL);
    CHECK(strstr(got, ver) != NULL);
    CHECK(strstr(got, "</HTML>") != NULL);
    CHECK_STR(cli_version, ver);
    CHECK(strstr(cli_subject, "CN=localhost") != NULL); /* SNI chose it */
    CHECK_EQ(cli_eofs, eofs + 1);
    tls_proc_kill(&p);

    /* Echo mode: loom -> stdout, stdin -> loom, then loom's close. */
    port = start_s_server(&p, false, tls12);
    before = closes;
    loom_socket_t *s = cli_open(cctx, port, "hello from loom\n");
    run_for((want){.p = &p, .s = "hello from loom"});
    CHECK_STR(cli_version, ver);
    CHECK_STR(cli_alpn, "http/1.1");
    tls_proc_send(&p, "hello from s_server\n");
    run_for((want){.g = "hello from s_server\n"});
    CHECK_OK(loom_socket_close(s));
    run_for((want){.p = &p, .s = "DONE", .closes = before + 1}); /* it saw close_notify */
    tls_proc_kill(&p);
}

/* --- A loom echo server ---------------------------------------------------------- */

static void srv_connect(loom_socket_t *s, void *d)
{
    (void)d;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    snprintf(srv_version, sizeof srv_version, "%s", info.version);
    CHECK(loom_socket_write(s, "welcome\n", 8) >= 0);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        srv_eofs++;
        return;
    }
    srv_errs++;
    fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static void with_s_client(int port, bool tls12)
{
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    char *argv[] = {"openssl",
                    "s_client",
                    "-connect",
                    addr,
                    "-CAfile",
                    (char *)tls_path("ca.pem"),
                    "-servername",
                    "localhost",
                    "-verify_hostname",
                    "localhost",
                    "-verify_return_error",
                    "-brief",
                    "-no_ign_eof",
                    tls12 ? "-tls1_2" : "-tls1_3",
                    NULL};
    tls_proc p;
    int before = closes, eofs = srv_eofs;
    srv_version[0] = 0;
    tls_spawn(&p, argv);
    tls_proc_send(&p, "ping from s_client\n");
    run_for((want){.p = &p, .s = "ping from s_client"});
    CHECK(tls_proc_has(&p, "welcome\n"));
    CHECK_STR(srv_version, tls12 ? "TLSv1.2" : "TLSv1.3");
    close(p.in); /* s_client sends close_notify and exits */
    p.in = -1;
    int status = -2;
    run_for((want){.p = &p, .status = &status, .closes = before + 1});
    CHECK_EQ(status, 0);
    CHECK_EQ(srv_eofs, eofs + 1);
    tls_proc_end(&p, 1000);
}

/* --- Python's ssl ---------------------------------------------------------------- */

static const char py_client[] = "import ssl, socket, sys\n"
                                "ctx = ssl.create_default_context(cafile=sys.argv[1])\n"
                                "raw = socket.create_connection(('127.0.0.1', int(sys.argv[2])))\n"
                                "s = ctx.wrap_socket(raw, server_hostname='localhost')\n"
                                "s.sendall(b'py ping\\n')\n"
                                "buf = b''\n"
                                "while buf.count(b'\\n') < 2:\n"
                                "    d = s.recv(4096)\n"
                                "    if not d: break\n"
                                "    buf += d\n"
                                "print(s.version(), buf.decode().replace('\\n', '|'), flush=True)\n"
                                "s.unwrap()\n"
                                "s.close()\n"
                                "print('CLEAN', flush=True)\n";

static const char py_server[] =
    TLS_PY_ACCEPT "buf = b''\n"
                  "while not buf.endswith(b'\\n'):\n"
                  "    d = s.recv(4096)\n"
                  "    if not d: break\n"
                  "    buf += d\n"
                  "s.sendall(b'py:' + buf)\n"
                  "print('GOT', buf.decode().strip(), s.version(), flush=True)\n"
                  "s.unwrap()\n"
                  "s.close()\n"
                  "print('CLEAN', flush=True)\n";

static void with_python(loom_tls_ctx_t *cctx, int srv_port)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", srv_port);
    tls_proc p;
    int status = -2, before = closes, eofs = srv_eofs;

    /* Python's client, loom's server. */
    char *cargv[] = {"/usr/bin/python3",         "-c",    (char *)py_client,
                     (char *)tls_path("ca.pem"), portbuf, NULL};
    tls_spawn(&p, cargv);
    run_for((want){.p = &p, .status = &status, .closes = before + 1});
    CHECK(strstr(p.buf, "TLSv1.3 welcome|py ping|") != NULL);
    CHECK(strstr(p.buf, "CLEAN") != NULL);
    CHECK_EQ(status, 0);
    CHECK_EQ(srv_eofs, eofs + 1);
    tls_proc_end(&p, 1000);

    /* Python's server, loom's client. */
    int port = tls_py_server(&p, py_server, NULL);
    before = closes;
    int ceofs = cli_eofs;
    close_on = "py:loom\n"; /* before python's close_notify */
    cli_open(cctx, port, "loom\n");
    status = -2;
    run_for((want){.p = &p, .status = &status, .closes = before + 1});
    CHECK(strstr(p.buf, "GOT loom TLSv1.3") != NULL);
    CHECK_STR(cli_version, "TLSv1.3");
    CHECK(strstr(p.buf, "CLEAN") != NULL);
    CHECK_EQ(status, 0);
    CHECK_EQ(cli_eofs, ceofs); /* loom closed first: no event */
    tls_proc_end(&p, 1000);
}

static const loom_tcp_server_opts srv_cbs = {
    .on_connect = srv_connect, .on_read = srv_read, .on_event = srv_event, .on_close = on_close};

int main(void)
{
    test_timeout(90);
    if (!tls_have("openssl") || access("/usr/bin/python3", X_OK) != 0)
        TEST_SKIP("openssl or /usr/bin/python3 missing");
    loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(&(loom_tls_opts){.alpn = "http/1.1"});
    loom_tls_ctx_t *sctx = tls_server_ctx("server", NULL);
    loom_tcp_server_t *srv = tls_server_on(loop, sctx, &srv_cbs);
    int port = loom_tcp_server_port(srv);

    with_s_server(cctx, false);
    with_s_server(cctx, true);
    with_s_client(port, false);
    with_s_client(port, true);
    with_python(cctx, port);
    CHECK_EQ(srv_errs, 0);
    CHECK_EQ(cli_errs, 0);

    loom_tcp_server_close(srv);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls peers: ok\n");
    return 0;
}
