/* test_udp_errors: ICMP port unreachable on a connected socket arrives as a
 * connection error event (LOOM_ECONNREFUSED) naming the peer, and the socket
 * stays open; on an unconnected socket with icmp_errors, the event names the
 * destination; a socket error of an unconnected socket names the socket's
 * own address; with no handler at all such errors are logged and never end
 * loom_run(). */
#include <poll.h>
#include <stdbool.h>

#include "test.h"

static int events, logged;
static char want[64];

static void on_event(const loom_event_t *ev, void *data)
{
    loom_udp_t *u = data;
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK_EQ(ev->code, LOOM_ECONNREFUSED);
    CHECK(ev->object == u);
    CHECK(strstr(ev->msg, want) != NULL);
    CHECK(strstr(ev->msg, "refused") != NULL);
    events++;
    CHECK(loom_udp_fd(u) >= 0); /* still open */
}

static void on_log(int level, const char *msg, void *data)
{
    (void)level;
    (void)data;
    if (strstr(msg, want) && strstr(msg, "refused"))
        logged++;
}

/* A port nobody listens on. */
static int dead_port(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *u;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0, NULL, &u));
    int port = loom_udp_port(u);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return port;
}

static void run_until(loom_loop_t *loop, int *counter, int n)
{
    for (int i = 0; i < 2000 && *counter < n; i++) {
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }
    CHECK(*counter >= n);
}

static void connected(void)
{
    int port = dead_port();
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *u;
    loom_udp_opts o = {.on_event = on_event};
    CHECK_OK(loom_udp_connect(loop, "127.0.0.1", port, &o, &u));
    loom_udp_set_data(u, u);
    events = 0;
    CHECK_EQ(loom_udp_send(u, NULL, "ping", 4), 0);
    run_until(loop, &events, 1);
    /* Again: the socket still works and reports again. */
    CHECK_EQ(loom_udp_send(u, NULL, "ping", 4), 0);
    run_until(loop, &events, 2);
    loom_udp_stats_t st;
    CHECK_OK(loom_udp_stats(u, &st));
    CHECK(st.icmp_errors >= 2);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void unconnected(void)
{
    int port = dead_port();
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *u;
    CHECK_OK(loom_udp_bind(loop, "127.0.0.1", 0,
                           &(loom_udp_opts){.on_event = on_event, .icmp_errors = true}, &u));
    loom_udp_set_data(u, u);
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", port, &ss, NULL));
    events = 0;
    CHECK_EQ(loom_udp_send(u, (struct sockaddr *)&ss, "ping", 4), 0);
    run_until(loop, &events, 1);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* A pending socket error on a socket loom has unconnected and without
 * icmp_errors (set here behind loom's back: the fd is connected to a dead
 * port, sent to, then disconnected, which leaves the error pending): the
 * event names the socket's own address, as nothing else names it. It
 * surfaces as the fd's error condition or as the next receive's failure
 * (a datagram is sent to the socket too), whichever the backend sees first. */
static char got[256];
static int sock_events;

static void on_sock_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK(loom_event_is(ev, LOOM_EV_CONN_ERROR));
    CHECK_EQ(ev->code, LOOM_ECONNREFUSED);
    snprintf(got, sizeof got, "%s", ev->msg);
    sock_events++;
}

static void unconnected_sock_error(void)
{
    int port = dead_port();
    /* Bound to a port of its own choosing, not 0: a disconnect keeps only
     * an explicitly bound port. */
    int mine = dead_port();
    loom_loop_t *loop = test_loop_new();
    loom_udp_t *u;
    CHECK_OK(
        loom_udp_bind(loop, "127.0.0.1", mine, &(loom_udp_opts){.on_event = on_sock_event}, &u));
    loom_run(loop, LOOM_RUN_NOWAIT); /* registered with every backend */
    int fd = loom_udp_fd(u);
    struct sockaddr_storage ss;
    CHECK_OK(loom_udp_addr("127.0.0.1", port, &ss, NULL));
    CHECK(connect(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 0);
    CHECK(send(fd, "ping", 4, 0) == 4);
    struct pollfd pfd = {.fd = fd, .events = 0};
    CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLERR));
    struct sockaddr un = {.sa_family = AF_UNSPEC};
    CHECK(connect(fd, &un, sizeof un) == 0);
    /* Readable as well. */
    int other = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(other >= 0);
    CHECK_OK(loom_udp_addr("127.0.0.1", loom_udp_port(u), &ss, NULL));
    CHECK(sendto(other, "x", 1, 0, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)) == 1);
    close(other);
    sock_events = 0;
    run_until(loop, &sock_events, 1);
    char want1[128], want2[128];
    snprintf(want1, sizeof want1, "udp socket on 127.0.0.1:%d: socket error: connection refused",
             loom_udp_port(u));
    snprintf(want2, sizeof want2, "udp socket on 127.0.0.1:%d: receive failed: connection refused",
             loom_udp_port(u));
    if (strcmp(got, want1) != 0 && strcmp(got, want2) != 0)
        fprintf(stderr, "got \"%s\"\nwant \"%s\"\n  or \"%s\"\n", got, want1, want2);
    CHECK(strcmp(got, want1) == 0 || strcmp(got, want2) == 0);
    CHECK_EQ(sock_events, 1);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* No handler anywhere: logged, and loom_run() goes on. */
static void unhandled(void)
{
    int port = dead_port();
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    loom_loop_t *loop;
    CHECK_OK(
        loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log, .log_level = LOOM_LOG_DEBUG}));
    loom_udp_t *u;
    CHECK_OK(loom_udp_connect(loop, "127.0.0.1", port, NULL, &u));
    logged = 0;
    CHECK_EQ(loom_udp_send(u, NULL, "ping", 4), 0);
    run_until(loop, &logged, 1);
    CHECK(loom_udp_fd(u) >= 0);
    loom_udp_close(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    connected();
    unconnected();
    unconnected_sock_error();
    unhandled();
    return 0;
}
