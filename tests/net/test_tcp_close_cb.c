/* test_tcp_close_cb: the close notification (on_close) runs exactly once
 * for every socket, client, accepted and Unix, whatever closed it: a
 * graceful close after its flush, an abort, loom after eof, reset, timeout,
 * a failed connect or a failed lookup, and loom_loop_free(). It runs from the
 * loop, never inside the call that closed the socket, after every other
 * callback of the socket; calls on the socket there return LOOM_ECLOSED (a
 * write too). Closes from inside on_read, on_event and on_close. */
/* LOOM_TEST_NO_TRANSPORT: the server closes in its first on_read and expects the whole "ping" in
 * it; the split transport delivers half a read at once. */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test_tcp_util.h"

/* One per socket: every callback checks that on_close has not run yet. */
typedef struct tracker {
    int closes;
    int events[LOOM_EV__COUNT];
    size_t got;
    int role; /* what the test does with it, see below */
} tracker;

enum { R_PLAIN, R_CLOSE_IN_READ, R_CLOSE_IN_EVENT, R_CLOSE_OTHER_IN_CLOSE, R_CONNECT_IN_CLOSE };

#define MAX_TRACKERS 64
static tracker trackers[MAX_TRACKERS];
static int ntrackers;
static int in_close_call; /* inside one of the test's own close calls */
static loom_loop_t *loop;
static loom_socket_t *other; /* closed by R_CLOSE_OTHER_IN_CLOSE's on_close */
static int connect_in_close_result = 1;

static tracker *tracker_new(int role)
{
    CHECK(ntrackers < MAX_TRACKERS);
    tracker *t = &trackers[ntrackers++];
    memset(t, 0, sizeof *t);
    t->role = role;
    return t;
}

static void check_alive(loom_socket_t *s, void *data)
{
    tracker *t = data;
    CHECK(t != NULL);
    CHECK_EQ(t->closes, 0);
    CHECK(loom_socket_data(s) == t);
}

static int close_sock(loom_socket_t *s)
{
    in_close_call++;
    int r = loom_socket_close(s);
    in_close_call--;
    return r;
}

static int abort_sock(loom_socket_t *s)
{
    in_close_call++;
    int r = loom_socket_abort(s);
    in_close_call--;
    return r;
}

static void on_close(loom_socket_t *s, void *data)
{
    tracker *t = data;
    CHECK_EQ(in_close_call, 0); /* from the loop, not from inside a close call */
    CHECK(loom_socket_data(s) == t);
    CHECK(loom_socket_loop(s) == loop);
    CHECK_EQ(loom_socket_closed(s), 1);
    CHECK_EQ(loom_socket_write(s, "late", 4), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_close(s), LOOM_ECLOSED);
    CHECK_EQ(loom_socket_abort(s), LOOM_ECLOSED);
    t->closes++;
    if (t->role == R_CLOSE_OTHER_IN_CLOSE && other) {
        CHECK_OK(close_sock(other));
        other = NULL;
    }
    if (t->role == R_CONNECT_IN_CLOSE)
        connect_in_close_result = loom_tcp_connect(loop, "127.0.0.1", 9, NULL, NULL);
}

static void on_event(const loom_event_t *ev, void *data)
{
    tracker *t = data;
    check_alive(ev->object, data);
    t->events[ev->kind]++;
    if (t->role == R_CLOSE_IN_EVENT && ev->kind == LOOM_EV_TCP_EOF) {
        CHECK_OK(close_sock(ev->object)); /* before loom's own close */
        CHECK_EQ(close_sock(ev->object), LOOM_ECLOSED);
    }
}

static void on_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    tracker *t = data;
    check_alive(s, data);
    t->got += n;
    if (t->role == R_CLOSE_IN_READ) {
        CHECK(loom_socket_write(s, b, n) >= 0);
        CHECK_OK(close_sock(s));
        CHECK_EQ(close_sock(s), LOOM_ECLOSED);
        CHECK_EQ(loom_socket_write(s, b, n), LOOM_ECLOSED);
    }
}

static void on_write(loom_socket_t *s, void *data)
{
    check_alive(s, data);
}

/* Accepted sockets get a tracker of the server's role (its data slot). */
static void srv_connect(loom_socket_t *s, void *data)
{
    intptr_t role = (intptr_t)data;
    tracker *t = tracker_new((int)role);
    CHECK_OK(loom_socket_set_data(s, t));
}

static loom_tcp_server_opts srv_opts(int role)
{
    return (loom_tcp_server_opts){.on_connect = srv_connect,
                                  .on_read = on_read,
                                  .on_write = on_write,
                                  .on_event = on_event,
                                  .on_close = on_close,
                                  .data = (void *)(intptr_t)role};
}

static loom_tcp_opts cli_opts(tracker *t)
{
    return (loom_tcp_opts){.on_read = on_read,
                           .on_write = on_write,
                           .on_event = on_event,
                           .on_close = on_close,
                           .data = t};
}

static void check_all_closed_once(void)
{
    for (int i = 0; i < ntrackers; i++) {
        if (trackers[i].closes != 1)
            fprintf(stderr, "tracker %d: %d closes\n", i, trackers[i].closes);
        CHECK_EQ(trackers[i].closes, 1);
    }
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof in) == 0);
    return fd;
}

static void reset_fd(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

/* --- A graceful close after a big flush; loom's close after eof ------------ */
#define BIG (4u << 20)
static char *big;

static void big_srv_connect(loom_socket_t *s, void *data)
{
    srv_connect(s, data);
    CHECK(loom_socket_write(s, big, BIG) >= 0);
    CHECK(loom_socket_queued(s) > 0); /* the close must flush it */
    CHECK_OK(close_sock(s));
    CHECK_EQ(loom_socket_write(s, "x", 1), LOOM_ECLOSED);
}

static void phase_graceful(void)
{
    ntrackers = 0;
    loom_tcp_server_t *srv;
    loom_tcp_server_opts so = srv_opts(R_PLAIN);
    so.on_connect = big_srv_connect;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &so, &srv));
    tracker *c = tracker_new(R_PLAIN);
    loom_tcp_opts co = cli_opts(c);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv), &co, NULL));
    while (ntrackers < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(ntrackers, 2);
    CHECK_EQ(c->got, BIG); /* everything arrived before the eof */
    CHECK_EQ(c->events[LOOM_EV_TCP_EOF], 1);
    check_all_closed_once();
}

/* --- Abort, reset, timeout ------------------------------------------------- */
static void abort_on_connect(loom_socket_t *s, void *data)
{
    check_alive(s, data);
    CHECK_OK(abort_sock(s));
    CHECK_EQ(abort_sock(s), LOOM_ECLOSED);
}

static void phase_abort_reset_timeout(void)
{
    ntrackers = 0;
    loom_tcp_server_t *srv;
    loom_tcp_server_opts so = srv_opts(R_PLAIN);
    so.read_timeout_ms = 500;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &so, &srv));
    int port = loom_tcp_server_port(srv);

    /* A client that aborts as soon as it is connected. */
    tracker *a = tracker_new(R_PLAIN);
    loom_tcp_opts co = cli_opts(a);
    co.on_connect = abort_on_connect;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port, &co, NULL));
    /* A raw client that resets, and one that stays silent (read timeout). */
    int rst = raw_connect(port);
    int silent = raw_connect(port);
    while (ntrackers < 4)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    reset_fd(rst);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(silent);
    CHECK_EQ(ntrackers, 4);
    int resets = 0, timeouts = 0, eofs = 0;
    for (int i = 1; i < 4; i++) {
        resets += trackers[i].events[LOOM_EV_TCP_RESET];
        timeouts += trackers[i].events[LOOM_EV_TCP_TIMEOUT];
        eofs += trackers[i].events[LOOM_EV_TCP_EOF];
    }
    /* The silent one times out; the reset one resets (unless the machine
     * was so slow that it timed out first); the aborted client's peer sees
     * an eof or a reset. One terminal event each. */
    CHECK(timeouts >= 1);
    CHECK(resets >= 1 || timeouts == 2);
    CHECK_EQ(resets + timeouts + eofs, 3);
    check_all_closed_once();
}

/* --- Failed connects: refused, and a lookup that fails -------------------- */
static void phase_failed_connect(void)
{
    ntrackers = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    CHECK(bind(fd, (struct sockaddr *)&in, sizeof in) == 0); /* bound, not listening */
    CHECK(getsockname(fd, (struct sockaddr *)&in, &len) == 0);
    tracker *r = tracker_new(R_PLAIN);
    loom_tcp_opts co = cli_opts(r);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", ntohs(in.sin_port), &co, NULL));
    tracker *d = tracker_new(R_PLAIN);
    co = cli_opts(d);
    co.family = AF_INET6; /* an IPv4 literal has no IPv6 address: dns error */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", ntohs(in.sin_port), &co, NULL));
    /* Closed while connecting. */
    tracker *k = tracker_new(R_PLAIN);
    co = cli_opts(k);
    loom_socket_t *s;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", ntohs(in.sin_port), &co, &s));
    CHECK_OK(close_sock(s));
    /* Refused synchronously: no socket, no on_close. */
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    co = cli_opts(NULL);
    CHECK_EQ(loom_tcp_connect(loop, longname, 80, &co, NULL), LOOM_ENAMETOOLONG);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(fd);
    CHECK_EQ(r->events[LOOM_EV_TCP_REFUSED], 1);
    CHECK_EQ(d->events[LOOM_EV_DNS_ERROR], 1);
    CHECK_EQ(k->events[LOOM_EV_TCP_REFUSED], 0);
    check_all_closed_once();
}

/* --- Reentrant closes, over a Unix socket ---------------------------------- */
static void phase_reentrant_unix(void)
{
    ntrackers = 0;
    char name[64];
    snprintf(name, sizeof name, "@loom-test-close-cb-%d", (int)getpid());
    loom_tcp_server_t *srv;
    loom_tcp_server_opts so = srv_opts(R_CLOSE_IN_READ); /* echoes once and closes */
    CHECK_OK(loom_unix_server(loop, name, &so, &srv));

    /* The client closes in its eof event; its on_close closes `other`. */
    tracker *c = tracker_new(R_CLOSE_IN_EVENT);
    loom_tcp_opts co = cli_opts(c);
    co.initial = "ping";
    co.initial_len = 4;
    CHECK_OK(loom_unix_connect(loop, name, &co, NULL));
    tracker *o = tracker_new(R_CLOSE_OTHER_IN_CLOSE);
    co = cli_opts(o);
    co.initial = "ping";
    co.initial_len = 4;
    CHECK_OK(loom_unix_connect(loop, name, &co, NULL));
    tracker *x = tracker_new(R_PLAIN); /* closed by o's on_close */
    co = cli_opts(x);
    CHECK_OK(loom_unix_connect(loop, name, &co, &other));
    while (ntrackers < 6)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(other == NULL);
    CHECK_EQ(c->got, 4);
    CHECK_EQ(c->events[LOOM_EV_TCP_EOF], 1);
    CHECK_EQ(o->got, 4);
    check_all_closed_once();
}

/* --- Loop free with sockets open -------------------------------------------- */
static void phase_loop_free(void)
{
    ntrackers = 0;
    loom_loop_t *saved = loop;
    loop = test_loop_new();
    loom_tcp_server_t *srv;
    loom_tcp_server_opts so = srv_opts(R_CONNECT_IN_CLOSE);
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &so, &srv));
    tracker *c = tracker_new(R_PLAIN);
    loom_tcp_opts co = cli_opts(c);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv), &co, NULL));
    while (ntrackers < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_loop_free(loop); /* both sockets are still open */
    loop = saved;
    check_all_closed_once();
    CHECK_EQ(connect_in_close_result, LOOM_ECLOSED);
}

int main(void)
{
    test_timeout(30);
    big = calloc(1, BIG);
    loop = test_loop_new();
    phase_graceful();
    phase_abort_reset_timeout();
    phase_failed_connect();
    phase_reentrant_unix();
    test_loop_free_clean(loop);
    loop = NULL;
    phase_loop_free();
    free(big);
    return 0;
}
