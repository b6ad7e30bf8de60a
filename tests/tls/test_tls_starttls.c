/* test_tls_starttls: loom_socket_starttls() with a line protocol, on every
 * backend. The client says "STARTTLS", the server answers "GO" and upgrades
 * (server context); the client upgrades on "GO" (client context, name
 * localhost); on_secure runs on both; then lines echo, encrypted. A relay
 * of the test's own between them records the bytes on the wire: the lines
 * before the upgrade are there in the clear, the secret ones are not.
 * A STARTTLS against a peer that answers "GO" but does not speak TLS fails
 * with one tls error; loom_socket_starttls() on a TLS socket is LOOM_ESTATE.
 */
#include "tls_test_util.h"

static loom_loop_t *loop;
static loom_tls_ctx_t *sctx, *cctx;
static int closes, srv_secure_n, cli_secure_n, cli_events, srv_events, echoed;
static int last_kind, last_code;
static char last_msg[512];

/* A line buffer per socket (the data slot). */
typedef struct {
    char buf[1024];
    size_t len;
} lines;
static lines srv_lines, cli_lines;

static void on_close(loom_socket_t *s, void *d)
{
    (void)s, (void)d;
    closes++;
}

/* Calls fn for each whole line ("\r\n" stripped) in l after adding b. */
static void lines_add(lines *l, loom_socket_t *s, const char *b, size_t n,
                      void (*fn)(loom_socket_t *, const char *))
{
    CHECK(l->len + n < sizeof l->buf);
    memcpy(l->buf + l->len, b, n);
    l->len += n;
    l->buf[l->len] = 0;
    char *nl;
    while ((nl = strstr(l->buf, "\r\n")) != NULL) {
        *nl = 0;
        char line[1024];
        snprintf(line, sizeof line, "%s", l->buf);
        size_t used = (size_t)(nl + 2 - l->buf);
        memmove(l->buf, nl + 2, l->len - used + 1);
        l->len -= used;
        fn(s, line);
        if (loom_socket_closed(s))
            return;
    }
}

/* --- The server ------------------------------------------------------------------- */

static void srv_secure(loom_socket_t *s, void *d)
{
    (void)d;
    srv_secure_n++;
    CHECK(loom_socket_is_tls(s));
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    CHECK(info.sni && strcmp(info.sni, "localhost") == 0);
}

static void srv_line(loom_socket_t *s, const char *line)
{
    if (strcmp(line, "STARTTLS") == 0) {
        CHECK(!loom_socket_is_tls(s));
        CHECK(loom_socket_write(s, "GO\r\n", 4) >= 0);
        CHECK_OK(loom_socket_starttls(s, sctx, &(loom_tls_start_opts){.on_secure = srv_secure}));
        return;
    }
    char out[1100];
    int n = snprintf(out, sizeof out, "echo %s\r\n", line);
    CHECK(loom_socket_write(s, out, (size_t)n) >= 0);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    lines_add(&srv_lines, s, b, n, srv_line);
}

static void srv_event(const loom_event_t *ev, void *d)
{
    (void)d;
    if (ev->kind != LOOM_EV_TCP_EOF)
        srv_events++;
    fprintf(stderr, "server event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

/* --- The client ------------------------------------------------------------------- */

static void cli_secure(loom_socket_t *s, void *d)
{
    (void)d;
    cli_secure_n++;
    loom_tls_info info;
    CHECK_OK(loom_socket_tls_info(s, &info));
    CHECK(info.peer_verified);
    CHECK(strstr(info.peer_subject, "CN=localhost") != NULL);
    /* Already TLS. */
    CHECK_EQ(loom_socket_starttls(s, cctx, NULL), LOOM_ESTATE);
    CHECK(loom_socket_write(s, "secret one\r\n", 12) >= 0);
    CHECK(loom_socket_write(s, "secret two\r\n", 12) >= 0);
}

static void cli_line(loom_socket_t *s, const char *line)
{
    if (strcmp(line, "echo hello") == 0) {
        CHECK(loom_socket_write(s, "STARTTLS\r\n", 10) >= 0);
    } else if (strcmp(line, "GO") == 0) {
        CHECK_OK(loom_socket_starttls(
            s, cctx, &(loom_tls_start_opts){.server_name = "localhost", .on_secure = cli_secure}));
    } else if (strcmp(line, "echo secret one") == 0 || strcmp(line, "echo secret two") == 0) {
        CHECK(loom_socket_is_tls(s));
        echoed++;
    } else {
        fprintf(stderr, "client: unexpected line \"%s\"\n", line);
        CHECK(!"line");
    }
}

static void cli_connect(loom_socket_t *s, void *d)
{
    (void)d;
    CHECK(!loom_socket_is_tls(s));
    CHECK_EQ(loom_socket_tls_info(s, &(loom_tls_info){0}), LOOM_EPROTOCOL);
    CHECK(loom_socket_write(s, "hello\r\n", 7) >= 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    (void)d;
    lines_add(&cli_lines, s, b, n, cli_line);
}

static void cli_event(const loom_event_t *ev, void *d)
{
    (void)d;
    cli_events++;
    last_kind = ev->kind;
    last_code = ev->code;
    snprintf(last_msg, sizeof last_msg, "%s", ev->msg);
    fprintf(stderr, "client event: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

/* --- A relay that records the wire, or a fake server ------------------------------ */

typedef struct {
    int lfd, a, b, port, to;
    bool fake, said_go, said_junk;
    char seen[256 * 1024];
    size_t seen_len;
} relay;

static void relay_open(relay *r, int to, bool fake)
{
    memset(r, 0, sizeof *r);
    r->a = r->b = -1;
    r->to = to;
    r->fake = fake;
    r->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    CHECK(bind(r->lfd, (struct sockaddr *)&a, sizeof a) == 0 && listen(r->lfd, 1) == 0);
    CHECK(getsockname(r->lfd, (struct sockaddr *)&a, &alen) == 0);
    r->port = ntohs(a.sin_port);
}

static void relay_close(relay *r)
{
    if (r->a >= 0)
        close(r->a);
    if (r->b >= 0)
        close(r->b);
    close(r->lfd);
}

/* Moves what is there from one side to the other; false at its end. */
static bool relay_move(relay *r, int from, int to)
{
    char buf[16384];
    ssize_t n = recv(from, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) {
        shutdown(to, SHUT_WR);
        return false;
    }
    if (n < 0)
        return errno == EAGAIN;
    CHECK(r->seen_len + (size_t)n <= sizeof r->seen);
    memcpy(r->seen + r->seen_len, buf, (size_t)n);
    r->seen_len += (size_t)n;
    if (to >= 0)
        CHECK_EQ(send(to, buf, (size_t)n, MSG_NOSIGNAL), n);
    return true;
}

static bool relay_pump(relay *r)
{
    if (r->a < 0) {
        r->a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (r->a < 0)
            return false;
        if (!r->fake) {
            r->b = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in a = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)r->to),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            CHECK(connect(r->b, (struct sockaddr *)&a, sizeof a) == 0);
        }
    }
    if (r->fake) {
        size_t before = r->seen_len;
        (void)relay_move(r, r->a, -1);
        if (!r->said_go && memmem(r->seen, r->seen_len, "STARTTLS\r\n", 10)) {
            r->said_go = true;
            CHECK_EQ(send(r->a, "GO\r\n", 4, MSG_NOSIGNAL), 4);
        } else if (r->said_go && !r->said_junk && r->seen_len > before) {
            r->said_junk = true; /* the ClientHello: answered in plain text */
            const char *no = "500 what is this?\r\n";
            (void)send(r->a, no, strlen(no), MSG_NOSIGNAL);
        }
        return true;
    }
    (void)relay_move(r, r->a, r->b);
    (void)relay_move(r, r->b, r->a);
    return true;
}

typedef struct {
    relay *r;
    int *flag;
    int want;
} pump_until;

static bool pump_pred(void *arg)
{
    pump_until *p = arg;
    (void)relay_pump(p->r);
    return *p->flag >= p->want;
}

int main(void)
{
    test_timeout(60);
    loop = test_loop_new();
    sctx = tls_server_ctx("server", NULL);
    cctx = tls_client_ctx(NULL);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_read = srv_read, .on_event = srv_event, .on_close = on_close},
        &srv));

    /* The exchange, through the recording relay. */
    static relay r;
    relay_open(&r, loom_tcp_server_port(srv), false);
    loom_socket_t *c;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", r.port,
                              &(loom_tcp_opts){.on_connect = cli_connect,
                                               .on_read = cli_read,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              &c));
    CHECK(tls_run_pred(loop, pump_pred, &(pump_until){&r, &echoed, 2}, 10000));
    CHECK_EQ(srv_secure_n, 1);
    CHECK_EQ(cli_secure_n, 1);
    CHECK_OK(loom_socket_close(c));
    CHECK(tls_run_pred(loop, pump_pred, &(pump_until){&r, &closes, 2}, 10000));
    CHECK(memmem(r.seen, r.seen_len, "hello\r\n", 7) != NULL);
    CHECK(memmem(r.seen, r.seen_len, "STARTTLS\r\n", 10) != NULL);
    CHECK(memmem(r.seen, r.seen_len, "GO\r\n", 4) != NULL);
    CHECK(memmem(r.seen, r.seen_len, "secret", 6) == NULL); /* encrypted */
    CHECK(r.seen_len > 500);                                /* the handshake went through */
    CHECK_EQ(cli_events, 0);
    CHECK_EQ(srv_events, 0);
    relay_close(&r);

    /* A peer that says GO but does not speak TLS. */
    relay_open(&r, 0, true);
    cli_lines.len = 0;
    int before = closes;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", r.port,
                              &(loom_tcp_opts){.initial = "STARTTLS\r\n",
                                               .initial_len = 10,
                                               .on_read = cli_read,
                                               .on_event = cli_event,
                                               .on_close = on_close},
                              NULL));
    CHECK(tls_run_pred(loop, pump_pred, &(pump_until){&r, &cli_events, 1}, 10000));
    CHECK(tls_run_pred(loop, pump_pred, &(pump_until){&r, &closes, before + 1}, 10000));
    CHECK_EQ(cli_events, 1);
    CHECK_EQ(last_kind, LOOM_EV_TLS_ERROR);
    CHECK_EQ(last_code, LOOM_ETLS);
    char want[64];
    snprintf(want, sizeof want, "tls handshake with localhost:%d failed: ", r.port);
    CHECK(strstr(last_msg, want) != NULL);
    CHECK_EQ(cli_secure_n, 1);
    relay_close(&r);

    /* A socket that is TLS from the start. */
    loom_tcp_server_t *tsrv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.tls = sctx, .on_close = on_close}, &tsrv));
    loom_socket_t *t;
    before = closes;
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", loom_tcp_server_port(tsrv),
        &(loom_tcp_opts){.tls = cctx, .server_name = "localhost", .on_close = on_close}, &t));
    CHECK_EQ(loom_socket_starttls(t, cctx, NULL), LOOM_ESTATE); /* connecting, and TLS */
    CHECK_OK(loom_socket_close(t));
    for (uint64_t end = tls_now_ms() + 5000; closes < before + 1 && tls_now_ms() < end;)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(closes, before + 1);

    loom_tcp_server_close(srv);
    loom_tcp_server_close(tsrv);
    loom_tls_ctx_free(sctx);
    loom_tls_ctx_free(cctx);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    printf("tls starttls: ok\n");
    return 0;
}
