/* test_tcp_errmsg: event messages name what failed. A client that resets
 * before the server accepted it is named by its address; a server that
 * resets a client (loom_tcp_connect(), the HTTP client) is named by the
 * address connected to, and by the host asked for when it is a name. A
 * refused connection
 * names the address (or, for a name with several, each address tried and
 * why), a failed lookup names the host, a Unix connection names its path,
 * and a timeout says which one (read, write), how long it was and the
 * peer's address (for an accepted Unix connection, whose peer is unnamed,
 * the server's path). The
 * connect timeout's message is checked in test_tcp_eyeballs. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>

#include "test_tcp_util.h"

static loom_loop_t *loop;
static char msg[1024];
static int kind, events;

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    events++;
    kind = (int)ev->kind;
    snprintf(msg, sizeof msg, "%s", ev->msg);
}

static void expect(int want_kind, const char *want)
{
    if (strcmp(msg, want) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n", msg, want);
    CHECK_STR(msg, want);
    CHECK_EQ(kind, want_kind);
}

static void run_one(void)
{
    events = 0;
    msg[0] = '\0';
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(events, 1);
}

/* A socket bound to a free port of `family`'s loopback and not listening
 * (connecting to it is refused); `port` 0 picks one. Returns the fd, or -1
 * with errno. */
static int bound_fd(int family, int port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int r;
    if (family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6,
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                                   .sin6_port = htons((uint16_t)port)};
        r = bind(fd, (struct sockaddr *)&in6, sizeof in6);
    } else {
        struct sockaddr_in in = {.sin_family = AF_INET,
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                 .sin_port = htons((uint16_t)port)};
        r = bind(fd, (struct sockaddr *)&in, sizeof in);
    }
    if (r < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int fd_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    CHECK(getsockname(fd, (struct sockaddr *)&ss, &len) == 0);
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void phase_refused(void)
{
    int fd4 = bound_fd(AF_INET, 0);
    CHECK(fd4 >= 0);
    int port = fd_port(fd4);
    char want[512];

    CHECK_OK(
        loom_tcp_connect(loop, "127.0.0.1", port, &(loom_tcp_opts){.on_event = on_event}, NULL));
    run_one();
    snprintf(want, sizeof want, "connect to 127.0.0.1:%d refused", port);
    expect(LOOM_EV_TCP_REFUSED, want);

    /* localhost: ::1 then 127.0.0.1, both named. */
    int fd6 = bound_fd(AF_INET6, port);
    if (fd6 >= 0 || errno != EADDRINUSE) { /* else someone else has [::1]:port */
        CHECK_OK(loom_tcp_connect(loop, "localhost", port, &(loom_tcp_opts){.on_event = on_event},
                                  NULL));
        run_one();
        CHECK(loom_event_is_error(&(loom_event_t){.kind = kind}));
        if (fd6 >= 0) {
            snprintf(want, sizeof want,
                     "connect to localhost:%d failed: [::1]:%d refused, 127.0.0.1:%d refused", port,
                     port, port);
            expect(LOOM_EV_TCP_REFUSED, want);
        } else {
            /* No IPv6 here: ::1 fails another way, but is named too. */
            snprintf(want, sizeof want, "connect to localhost:%d failed: [::1]:%d ", port, port);
            CHECK(strncmp(msg, want, strlen(want)) == 0);
            snprintf(want, sizeof want, ", 127.0.0.1:%d refused", port);
            CHECK(strstr(msg, want) != NULL);
        }
    }

    /* A literal of the other family than asked for: the lookup fails. */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.on_event = on_event, .family = AF_INET6}, NULL));
    run_one();
    expect(LOOM_EV_DNS_ERROR, "dns lookup of 127.0.0.1 failed: no address of the requested family");

    /* A Unix path nobody listens on. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-test-errmsg-%d.sock", (int)getpid());
    unlink(path);
    CHECK_OK(loom_unix_connect(loop, path, &(loom_tcp_opts){.on_event = on_event}, NULL));
    run_one();
    snprintf(want, sizeof want, "connect to %s refused", path);
    expect(LOOM_EV_TCP_REFUSED, want);

    if (fd6 >= 0)
        close(fd6);
    close(fd4);
}

/* --- Timeouts --------------------------------------------------------------- */
static void phase_read_timeout(void)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.read_timeout_ms = 100, .on_event = on_event},
                             &srv));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof in) == 0);
    events = 0;
    while (events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    CHECK(getsockname(fd, (struct sockaddr *)&me, &ml) == 0);
    char want[128];
    snprintf(want, sizeof want, "read timeout (100 ms) on the connection with 127.0.0.1:%d",
             ntohs(me.sin_port));
    expect(LOOM_EV_TCP_TIMEOUT, want);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(fd);
}

/* An accepted Unix connection has no peer address (the client's end is
 * unnamed): the message names the server's path instead. */
static void phase_unix_accepted_timeout(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-test-errmsg-acc-%d.sock", (int)getpid());
    unlink(path);
    loom_tcp_server_t *srv;
    CHECK_OK(loom_unix_server(
        loop, path, &(loom_tcp_server_opts){.read_timeout_ms = 100, .on_event = on_event}, &srv));
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
    CHECK(connect(fd, (struct sockaddr *)&un, sizeof un) == 0);
    events = 0;
    while (events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    char want[160];
    snprintf(want, sizeof want, "read timeout (100 ms) on a connection accepted on %s", path);
    expect(LOOM_EV_TCP_TIMEOUT, want);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(fd);
}

/* --- A peer that resets at once ----------------------------------------------
 * A client connects and resets (SO_LINGER 0 close) before the server has
 * accepted: the kernel no longer says who the peer was (getpeername() fails
 * with ENOTCONN), yet the reset names it, as accept returned it. For an
 * IPv4 server (8 bytes kept) and, where there is IPv6, an IPv6 one (20). */
static void reset_at_once(int family, const char *bind_addr, const char *want_fmt)
{
    loom_tcp_server_t *srv;
    int r =
        loom_tcp_server(loop, bind_addr, 0, &(loom_tcp_server_opts){.on_event = on_event}, &srv);
    if (family == AF_INET6 && r < 0)
        return; /* no IPv6 loopback here */
    CHECK_OK(r);
    int fd = socket(family, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_storage to = {0};
    socklen_t tl;
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&to;
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_loopback;
        in6->sin6_port = htons((uint16_t)loom_tcp_server_port(srv));
        tl = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&to;
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        in->sin_port = htons((uint16_t)loom_tcp_server_port(srv));
        tl = sizeof *in;
    }
    CHECK(connect(fd, (struct sockaddr *)&to, tl) == 0);
    int port = fd_port(fd);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd); /* the RST is sent before the loop runs: before loom accepts */
    events = 0;
    msg[0] = '\0';
    while (events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    char want[160];
    snprintf(want, sizeof want, want_fmt, port);
    expect(LOOM_EV_TCP_RESET, want);
    CHECK(strchr(msg, '?') == NULL);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(events, 1);
}

static void phase_accepted_reset(void)
{
    reset_at_once(AF_INET, "127.0.0.1",
                  "connection reset by peer on the connection with 127.0.0.1:%d");
    reset_at_once(AF_INET6, "::1", "connection reset by peer on the connection with [::1]:%d");
}

/* --- A server that resets a client -------------------------------------------
 * Once the client's first bytes arrive (it is connected, and loom knows it),
 * the server resets the connection (SO_LINGER 0 close): the client's read
 * fails with ECONNRESET, when the kernel no longer says who the peer was
 * (getpeername() fails with ENOTCONN). The event still names the address
 * the client connected to, and the host it was asked for when that was a
 * name. The same for the HTTP client. */
static int peer_api_ok; /* loom_socket_peer_name() answered in the event */
static char peer_api[64];

static void on_event_peer(const loom_event_t *ev, void *data)
{
    int port = 0;
    on_event(ev, data);
    peer_api_ok =
        loom_socket_peer_name(ev->object, peer_api, sizeof peer_api, &port) == 0 && port > 0;
}

static void discard(loom_socket_t *s, const char *buf, size_t len, void *data)
{
    (void)s, (void)buf, (void)len, (void)data;
}

/* Runs the loop until the listener `lfd` has a connection whose peer sent a
 * byte; returns the accepted fd. */
static int accept_first_byte(int lfd)
{
    int afd = -1;
    for (;;) {
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        struct pollfd p = {.fd = afd >= 0 ? afd : lfd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0)
            continue;
        if (afd < 0) {
            afd = accept(lfd, NULL, NULL);
            CHECK(afd >= 0);
            continue;
        }
        char c;
        CHECK(recv(afd, &c, 1, MSG_PEEK) == 1);
        return afd;
    }
}

static void reset_fd(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

/* A listening socket of `family` on a free loopback port, or -1. */
static int listen_fd(int family)
{
    int fd = bound_fd(family, 0);
    if (fd >= 0)
        CHECK(listen(fd, 4) == 0);
    return fd;
}

static void client_reset(int family, const char *host, int family_opt, const char *want_fmt)
{
    int lfd = listen_fd(family);
    if (lfd < 0)
        return; /* no IPv6 loopback here */
    int port = fd_port(lfd);
    /* localhost tries [::1]:port first: a socket bound there and not
     * listening refuses it at once (and nobody else can take it). */
    int fd6 = -1;
    if (strcmp(host, "localhost") == 0 && family_opt != AF_INET) {
        fd6 = bound_fd(AF_INET6, port);
        if (fd6 < 0 && errno == EADDRINUSE) {
            close(lfd);
            return; /* someone else has [::1]:port */
        }
    }
    CHECK_OK(loom_tcp_connect(loop, host, port,
                              &(loom_tcp_opts){.on_event = on_event_peer,
                                               .on_read = discard,
                                               .family = family_opt,
                                               .initial = "x",
                                               .initial_len = 1},
                              NULL));
    events = 0;
    msg[0] = '\0';
    peer_api_ok = 0;
    reset_fd(accept_first_byte(lfd));
    while (events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    char want[256];
    snprintf(want, sizeof want, want_fmt, port, port);
    expect(LOOM_EV_TCP_RESET, want);
    /* The public call answers too, with the address. */
    CHECK(peer_api_ok);
    CHECK_STR(peer_api, family == AF_INET6 ? "::1" : "127.0.0.1");
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(events, 1);
    if (fd6 >= 0)
        close(fd6);
    close(lfd);
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    (void)req, (void)res, (void)data;
    events++;
    snprintf(msg, sizeof msg, "unexpected response");
}

/* The HTTP client's reset names the host and, as it is a name, the address
 * the connection had: over HTTP/1.1 and over HTTP/2. */
static void http_client_reset(int version, const char *want_fmt)
{
    int lfd = listen_fd(AF_INET);
    CHECK(lfd >= 0);
    int port = fd_port(lfd);
    char url[64];
    snprintf(url, sizeof url, "http://localhost:%d/", port);
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){.on_event = on_event,
                                                         .on_response = on_response,
                                                         .family = AF_INET,
                                                         .version = version},
                               NULL));
    events = 0;
    msg[0] = '\0';
    reset_fd(accept_first_byte(lfd)); /* the request's first bytes came */
    while (events == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    char want[256];
    snprintf(want, sizeof want, want_fmt, port, port);
    expect(LOOM_EV_HTTP_ERROR, want);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(events, 1);
    close(lfd);
}

static void phase_client_reset(void)
{
    client_reset(AF_INET, "127.0.0.1", 0,
                 "connection reset by peer on the connection with 127.0.0.1:%d");
    /* A name: the host as asked for, and the address (8 bytes kept with
     * family AF_INET, 20 otherwise). */
    client_reset(AF_INET, "localhost", AF_INET,
                 "connection reset by peer on the connection with localhost:%d (127.0.0.1:%d)");
    client_reset(AF_INET, "localhost", 0,
                 "connection reset by peer on the connection with localhost:%d (127.0.0.1:%d)");
    client_reset(AF_INET6, "::1", 0, "connection reset by peer on the connection with [::1]:%d");
    http_client_reset(LOOM_HTTP_VERSION_AUTO,
                      "connection reset by localhost:%d (127.0.0.1:%d) before any response");
    /* HTTP/2 (h2c with prior knowledge) names the address too. */
    http_client_reset(LOOM_HTTP_VERSION_2, "HTTP/2 connection to localhost:%d: connection reset "
                                           "by 127.0.0.1:%d (before any response)");
}

#define BIG (16u << 20)

static void phase_write_timeout(void)
{
    /* A peer that accepts (in the kernel's backlog) and never reads. The
     * connect timeout would otherwise be the write timeout: copying 16 MiB
     * on a loaded machine may take longer than that. */
    int lfd = bound_fd(AF_INET, 0);
    CHECK(lfd >= 0);
    CHECK(listen(lfd, 4) == 0);
    char *big = calloc(1, BIG);
    loom_socket_t *s;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", fd_port(lfd),
                              &(loom_tcp_opts){.write_timeout_ms = 200,
                                               .connect_timeout_ms = 10000,
                                               .on_event = on_event},
                              &s));
    CHECK(loom_socket_write(s, big, BIG) >= 0);
    run_one();
    char want[128];
    snprintf(want, sizeof want, "write timeout (200 ms) on the connection with 127.0.0.1:%d",
             fd_port(lfd));
    expect(LOOM_EV_TCP_TIMEOUT, want);
    free(big);
    close(lfd);
}

int main(void)
{
    test_timeout(20);
    loop = test_loop_new();
    phase_refused();
    phase_read_timeout();
    phase_unix_accepted_timeout();
    phase_accepted_reset();
    phase_client_reset();
    phase_write_timeout();
    test_loop_free_clean(loop);
    return 0;
}
