/* test_tcp_timeout: read timeouts (an idle peer; activity postpones the
 * timeout), write timeouts (a peer that never reads, socket buffer full),
 * and per-socket timeouts set with loom_socket_set_timeouts(). */
#include <arpa/inet.h>
#include <netinet/in.h>

#include "test_tcp_util.h"

static loom_tcp_server_t *srv;
static loom_loop_t *loop;

/* --- Read timeout --------------------------------------------------------------- */
static uint64_t accepted_at, timeout_at, last_ping;
static int timeouts, pings;
static loom_socket_t *pinger;

static void rt_srv_connect(loom_socket_t *s, void *data)
{
    accepted_at = loom_now(loop);
}

static void rt_srv_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_TIMEOUT);
    CHECK(loom_event_is(ev, LOOM_EV_TCP_ERROR));
    CHECK_EQ(ev->code, LOOM_ETIMEDOUT);
    timeouts++;
    timeout_at = loom_now(loop);
    loom_tcp_server_close(srv);
}

static void rt_srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    last_ping = loom_now(loop);
}

static void ping(loom_timer_t *t, void *data)
{
    if (++pings == 6) {
        loom_timer_close(t); /* then go quiet */
        return;
    }
    CHECK_EQ(loom_socket_write(pinger, "p", 1), 0);
}

static void rt_cli_event(const loom_event_t *ev, void *data)
{
    /* The server closes after its timeout. */
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
}

static void phase_read_timeout(void)
{
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = rt_srv_connect,
                                                     .on_read = rt_srv_read,
                                                     .on_event = rt_srv_event,
                                                     .read_timeout_ms = 100},
                             &srv));
    /* An idle client: the server times it out after 100 ms (at most 100 +
     * 2 * 100/16 ms, plus scheduling). */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_event = rt_cli_event}, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(timeouts, 1);
    CHECK(timeout_at - accepted_at >= 100);
    CHECK(timeout_at - accepted_at < 3000); /* generous: loaded CI machines stall */

    /* A client that writes every 50 ms for 250 ms: no timeout until 800 ms
     * after its last write (the margin over the ping interval absorbs the
     * stalls of a loaded machine running sanitizers). */
    timeouts = 0;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = rt_srv_connect,
                                                     .on_read = rt_srv_read,
                                                     .on_event = rt_srv_event,
                                                     .read_timeout_ms = 800},
                             &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_event = rt_cli_event}, &pinger));
    CHECK_OK(loom_interval(loop, 50, ping, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(timeouts, 1);
    CHECK_EQ(pings, 6);
    CHECK(timeout_at - accepted_at >= 1000);
    CHECK(timeout_at - last_ping >= 800);
    CHECK(timeout_at - last_ping < 4000);
}

/* --- Write timeout ----------------------------------------------------------------- */
static int wt_events;
static uint64_t wt_start;

static void wt_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_TIMEOUT);
    wt_events++;
    CHECK(loom_now(loop) - wt_start >= 200);
}

static char *big;

static void wt_connect(loom_socket_t *s, void *data)
{
    wt_start = loom_now(loop);
    /* Far more than the socket buffers hold; the peer never reads. */
    CHECK_EQ(loom_socket_write(s, big, 32u << 20), 1);
}

static void phase_write_timeout(void)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    CHECK(bind(lfd, (struct sockaddr *)&in, sizeof in) == 0);
    CHECK(listen(lfd, 8) == 0); /* the kernel completes the handshake; nobody reads */
    CHECK(getsockname(lfd, (struct sockaddr *)&in, &len) == 0);
    big = calloc(1, 32u << 20);
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", ntohs(in.sin_port),
        &(loom_tcp_opts){.on_connect = wt_connect, .on_event = wt_event, .write_timeout_ms = 200},
        NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(wt_events, 1);
    close(lfd);
    free(big);
}

/* --- Per-socket timeouts ------------------------------------------------------------- */
static int st_events;
static uint64_t st_start;

static void st_connect(loom_socket_t *s, void *data)
{
    st_start = loom_now(loop);
    CHECK_OK(loom_socket_set_timeouts(s, 80, 0));
}

static void st_event(const loom_event_t *ev, void *data)
{
    if (ev->kind == LOOM_EV_TCP_TIMEOUT) {
        st_events++;
        CHECK(loom_now(loop) - st_start >= 80);
        loom_tcp_server_close(srv);
    }
}

static void phase_set_timeouts(void)
{
    CHECK_OK(
        loom_tcp_server(loop, "127.0.0.1", 0, &(loom_tcp_server_opts){.on_event = st_event}, &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = st_connect, .on_event = st_event},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(st_events, 1);
}

/* --- Phase 4: out of timeout groups ---------------------------------------------------
 * A loop has room for 63 distinct timeout values. A connect or a server
 * whose timeouts would need one more is refused with LOOM_ETOOMANY instead
 * of running silently without them; values already in use still work. */
static void tg_event(const loom_event_t *ev, void *data) {}

static void phase_too_many_values(void)
{
    loom_loop_t *l = test_loop_new();
    loom_tcp_server_t *s;
    CHECK_OK(loom_tcp_server(l, "127.0.0.1", 0, &(loom_tcp_server_opts){.on_event = tg_event}, &s));
    int port = loom_tcp_server_port(s);
    loom_socket_t *c;
    CHECK_OK(loom_tcp_connect(l, "127.0.0.1", port, &(loom_tcp_opts){.on_event = tg_event}, &c));
    for (uint32_t i = 0; i < 63; i++)
        CHECK_OK(loom_socket_set_timeouts(c, 1000 + i, 0));
    CHECK_EQ(loom_socket_set_timeouts(c, 5000, 0), LOOM_ETOOMANY);

    loom_socket_t *d = NULL;
    CHECK_EQ(loom_tcp_connect(l, "127.0.0.1", port,
                              &(loom_tcp_opts){.read_timeout_ms = 5000, .on_event = tg_event}, &d),
             LOOM_ETOOMANY);
    CHECK(d == NULL);
    CHECK_EQ(loom_tcp_connect(l, "127.0.0.1", port,
                              &(loom_tcp_opts){.write_timeout_ms = 5001, .on_event = tg_event}, &d),
             LOOM_ETOOMANY);
    /* Unique per process: every backend's run of this test goes in parallel. */
    char name[64];
    snprintf(name, sizeof name, "@loom-test-tg-%d", (int)getpid());
    CHECK_EQ(loom_unix_connect(l, name,
                               &(loom_tcp_opts){.read_timeout_ms = 5002, .on_event = tg_event}, &d),
             LOOM_ETOOMANY);
    loom_tcp_server_t *s2 = NULL;
    CHECK_EQ(
        loom_tcp_server(l, "127.0.0.1", 0, &(loom_tcp_server_opts){.read_timeout_ms = 5003}, &s2),
        LOOM_ETOOMANY);
    CHECK(s2 == NULL);
    CHECK_EQ(loom_unix_server(l, name, &(loom_tcp_server_opts){.write_timeout_ms = 5004}, &s2),
             LOOM_ETOOMANY);
    /* A value in use is fine. */
    CHECK_OK(loom_tcp_connect(l, "127.0.0.1", port,
                              &(loom_tcp_opts){.read_timeout_ms = 1010, .on_event = tg_event}, &d));
    loom_socket_abort(d);
    loom_socket_abort(c);
    loom_tcp_server_close(s);
    CHECK_EQ(loom_run(l, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(l);
}

int main(void)
{
    test_timeout(20);
    loop = test_loop_new();
    phase_read_timeout();
    phase_write_timeout();
    phase_set_timeouts();
    test_loop_free_clean(loop);
    phase_too_many_values();
    return 0;
}
