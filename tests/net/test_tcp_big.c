/* test_tcp_big: 8 MiB in both directions at once, through partial writes:
 * the client in many small writes of varying sizes (queued remainders are
 * coalesced), the server in one write; checksums on both sides. Then the
 * same over a Unix-domain socket. */
#include "test_tcp_util.h"

#define SIZE (8u << 20)

static char *buf;
static uint64_t expect;
static loom_tcp_server_t *srv;
static size_t srv_got, cli_got;
static uint64_t srv_sum, cli_sum;
static int done;

static void srv_connect(loom_socket_t *s, void *data)
{
    CHECK(loom_socket_write(s, buf, SIZE) >= 0);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    srv_sum = tcp_fnv(srv_sum, b, n);
    srv_got += n;
    CHECK(srv_got <= SIZE);
}

static void cli_connect(loom_socket_t *s, void *data)
{
    size_t off = 0, step = 1;
    while (off < SIZE) {
        size_t n = (step * 7919) % 40000 + 1;
        if (n > SIZE - off)
            n = SIZE - off;
        CHECK(loom_socket_write(s, buf + off, n) >= 0);
        off += n;
        step++;
    }
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    cli_sum = tcp_fnv(cli_sum, b, n);
    cli_got += n;
    CHECK(cli_got <= SIZE);
    if (cli_got == SIZE && srv_got == SIZE) {
        done = 1;
        loom_socket_close(s);
        loom_tcp_server_close(srv);
    }
}

static void srv_read_done(loom_socket_t *s, const char *b, size_t n, void *data)
{
    srv_read(s, b, n, data);
    if (cli_got == SIZE && srv_got == SIZE) {
        done = 1;
        loom_socket_close(s);
        loom_tcp_server_close(srv);
    }
}

static void on_event(const loom_event_t *ev, void *data)
{
    /* The only event allowed: the peer's close at the end. */
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    CHECK(done);
}

static void run(loom_loop_t *loop, const char *unix_path)
{
    srv_got = cli_got = 0;
    srv_sum = cli_sum = TCP_FNV_INIT;
    done = 0;
    loom_tcp_server_opts so = {
        .on_connect = srv_connect, .on_read = srv_read_done, .on_event = on_event};
    loom_tcp_opts co = {.on_connect = cli_connect, .on_read = cli_read, .on_event = on_event};
    if (unix_path) {
        CHECK_OK(loom_unix_server(loop, unix_path, &so, &srv));
        CHECK_OK(loom_unix_connect(loop, unix_path, &co, NULL));
    } else {
        CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &so, &srv));
        CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv), &co, NULL));
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(done);
    CHECK_EQ(srv_got, SIZE);
    CHECK_EQ(cli_got, SIZE);
    CHECK_EQ(srv_sum, expect);
    CHECK_EQ(cli_sum, expect);
}

int main(void)
{
    test_timeout(25);
    buf = malloc(SIZE);
    for (size_t i = 0; i < SIZE; i++)
        buf[i] = (char)tcp_pattern(i);
    expect = tcp_fnv(TCP_FNV_INIT, buf, SIZE);
    loom_loop_t *loop = test_loop_new();
    run(loop, NULL);
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-test-big-%d.sock", (int)getpid());
    run(loop, path);
    CHECK(access(path, F_OK) != 0); /* unlinked when the server closed */
    test_loop_free_clean(loop);
    free(buf);
    return 0;
}
