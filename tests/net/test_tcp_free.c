/* test_tcp_free: loom_loop_free() with everything still open - a server, an
 * accepted and a connected socket with a queued zero-copy buffer, a socket
 * still connecting, a socket in a graceful close, and sockets with
 * timeouts - closes it all without callbacks except the buffer's release,
 * and leaks nothing (checked by the sanitizer build). */
#include "test_tcp_util.h"

#define BIG (16u << 20)

static int released, accepted, connected;
static char *buf;

static void on_release(const void *b, size_t len, void *data)
{
    released++;
}

static void srv_connect(loom_socket_t *s, void *data)
{
    accepted++;
    loom_socket_disable(s, LOOM_READABLE); /* let the client's queue fill */
}

static void cli_connect(loom_socket_t *s, void *data)
{
    connected++;
    CHECK_EQ(loom_socket_write_ref(s, buf, BIG, on_release, NULL), 1);
}

static void flush_cli_connect(loom_socket_t *s, void *data)
{
    connected++;
    CHECK_EQ(loom_socket_write(s, buf, BIG), 1);
    CHECK_OK(loom_socket_close(s)); /* still flushing at loop free */
}

static void no_event(const loom_event_t *ev, void *data)
{
    CHECK(!"no event expected");
}

int main(void)
{
    test_timeout(10);
    buf = calloc(1, BIG);
    loom_loop_t *loop = test_loop_new();
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                     .on_event = no_event,
                                                     .read_timeout_ms = 5000},
                             &srv));
    int port = loom_tcp_server_port(srv);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.on_connect = cli_connect,
                                               .on_event = no_event,
                                               .read_timeout_ms = 7000,
                                               .write_timeout_ms = 9000},
                              NULL));
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", port,
        &(loom_tcp_opts){.on_connect = flush_cli_connect, .on_event = no_event}, NULL));
    while (accepted < 2 || connected < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    /* One more that has not even started connecting. */
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port,
                              &(loom_tcp_opts){.on_connect = cli_connect, .on_event = no_event},
                              NULL));
    CHECK(loom_loop_live(loop) > 0);
    loom_loop_free(loop);
    CHECK_EQ(released, 1);
    free(buf);
    return 0;
}
