/* test_tcp_reentry: callbacks that close what is running them, or its
 * neighbours, in the middle of a batch:
 *  - a server closed from its own on_connect while more connections wait in
 *    its backlog: no further on_connect, and the waiting clients see the
 *    listener go;
 *  - a socket closed from on_read while more data is buffered: no further
 *    on_read;
 *  - on_read of one socket aborting another socket that is readable in the
 *    same poll batch: the other's callback never runs;
 *  - a socket closed from its own eof event and from on_write.
 * The sanitizer build checks that no callback touches freed memory. */
/* LOOM_TEST_NO_TRANSPORT: a server closed from its first accept callback must see no other; under a
 * handshaking transport the connections accepted in the same batch are already accepted
 * (handshaking) and are reported later. */
#include "test_tcp_util.h"

/* --- A server closed from on_connect ------------------------------------------------ */
static int srv_connects, cli_done;
static loom_tcp_server_t *srv;

static void close_srv_on_connect(loom_socket_t *s, void *data)
{
    srv_connects++;
    loom_tcp_server_close(srv);
    CHECK_OK(loom_socket_close(s));
}

static void cli_event(const loom_event_t *ev, void *data)
{
    cli_done++;
}

static void cli_connected(loom_socket_t *s, void *data)
{
    loom_socket_close(s);
    cli_done++;
}

static void phase_server_close(loom_loop_t *loop)
{
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = close_srv_on_connect}, &srv));
    int port = loom_tcp_server_port(srv);
    for (int i = 0; i < 8; i++)
        CHECK_OK(loom_tcp_connect(
            loop, "127.0.0.1", port,
            &(loom_tcp_opts){.on_connect = cli_connected, .on_event = cli_event}, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(srv_connects, 1);
    CHECK_EQ(cli_done, 8);
}

/* --- Closing from on_read with more buffered ---------------------------------------- */
static int reads_after_close;
static int closed_in_read;

static void read_then_close(loom_socket_t *s, const char *b, size_t n, void *data)
{
    if (closed_in_read)
        reads_after_close++;
    closed_in_read = 1;
    CHECK_OK(loom_socket_close(s));
    CHECK_EQ(loom_socket_close(s), LOOM_ECLOSED);
}

/* Server-side sockets, forgotten when loom closes them. */
static loom_socket_t *accepted[2];
static int naccepted;

static void keep_accepted(loom_socket_t *s, void *data)
{
    accepted[naccepted++] = s;
}

static void forget_accepted(const loom_event_t *ev, void *data)
{
    for (int i = 0; i < 2; i++)
        if (accepted[i] == ev->object)
            accepted[i] = NULL;
}

static void close_accepted(void)
{
    for (int i = 0; i < 2; i++)
        if (accepted[i] != NULL)
            loom_socket_close(accepted[i]);
    memset(accepted, 0, sizeof accepted);
}

static void ignore_event(const loom_event_t *ev, void *data) {}

static void phase_read_close(loom_loop_t *loop)
{
    /* The peer sends 256 KiB at once: more than one read's worth. */
    naccepted = 0;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = keep_accepted, .on_event = forget_accepted}, &srv));
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", loom_tcp_server_port(srv),
        &(loom_tcp_opts){.on_read = read_then_close, .on_event = ignore_event}, NULL));
    while (naccepted < 1)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    static char big[256 * 1024];
    memset(big, 'b', sizeof big);
    CHECK(loom_socket_write(accepted[0], big, sizeof big) >= 0);
    close_accepted();
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(closed_in_read, 1);
    CHECK_EQ(reads_after_close, 0);
}

/* Two clients whose data arrives in the same poll batch: the first to read
 * aborts the other, whose callback must then never run. */
static loom_socket_t *pair[2];
static int pair_open[2], pair_reads[2], reads_after_abort;

static void read_abort_other(loom_socket_t *s, const char *b, size_t n, void *data)
{
    int me = s == pair[1];
    if (!pair_open[me])
        reads_after_abort++;
    pair_reads[me]++;
    if (pair_open[!me]) {
        CHECK_OK(loom_socket_abort(pair[!me]));
        pair_open[!me] = 0;
    }
    CHECK_OK(loom_socket_close(s));
    pair_open[me] = 0;
}

static void phase_abort_neighbour(loom_loop_t *loop)
{
    naccepted = 0;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = keep_accepted, .on_event = forget_accepted}, &srv));
    loom_tcp_opts o = {.on_read = read_abort_other, .on_event = ignore_event};
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv), &o, &pair[0]));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv), &o, &pair[1]));
    pair_open[0] = pair_open[1] = 1;
    while (naccepted < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(loom_socket_write(accepted[0], "x", 1) >= 0);
    CHECK(loom_socket_write(accepted[1], "y", 1) >= 0);
    usleep(20000); /* both are readable before the next poll */
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    CHECK_EQ(pair_reads[0] + pair_reads[1], 1);
    CHECK_EQ(reads_after_abort, 0);
    close_accepted();
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(pair_reads[0] + pair_reads[1], 1);
}

/* --- Closing from the eof event and from on_write ------------------------------------- */
static int eofs, writes;

static void close_on_eof(const loom_event_t *ev, void *data)
{
    if (ev->kind == LOOM_EV_TCP_EOF) {
        eofs++;
        CHECK_OK(loom_socket_close(ev->object));
    }
}

static void close_on_write(loom_socket_t *s, void *data)
{
    writes++;
    CHECK_OK(loom_socket_close(s));
}

static void accept_then_stop(loom_socket_t *s, void *data)
{
    loom_tcp_server_close(srv);
}

static void write_on_connect(loom_socket_t *s, void *data)
{
    CHECK(loom_socket_write(s, "hello", 5) >= 0);
}

static void phase_eof_write(loom_loop_t *loop)
{
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = accept_then_stop,
                                                     .on_event = close_on_eof,
                                                     .allow_half_open = true},
                             &srv));
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = write_on_connect,
                                               .on_write = close_on_write,
                                               .on_event = ignore_event},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(writes, 1);
    CHECK_EQ(eofs, 1);
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();
    phase_server_close(loop);
    phase_read_close(loop);
    phase_abort_neighbour(loop);
    phase_eof_write(loop);
    test_loop_free_clean(loop);
    return 0;
}
