/* test_tcp_internal: the internal API the HTTP layer uses - a static class
 * with protocol hooks, extension bytes in the socket's slab object, buffers
 * written while writing is paused that leave together and in order once it
 * resumes (the release callback runs), pausing reads. */
/* LOOM_TEST_NO_TRANSPORT: the server answers per proto_read and expects "json" in one; the split
 * transport delivers half a read at once. */
#include "net/net_internal.h"
#include "test_tcp_util.h"

typedef struct ext {
    uint64_t magic;
    size_t reads;
} ext;

static int raw_events, released, got_reply;
static loom_event_kind_t last_kind;
static char reply[64];
static size_t reply_len;
static loom_tcp_server_t *srv;

static void on_release(const void *b, size_t len, void *data)
{
    released++;
}

static void srv_raw_read(loom_socket_t *s, char *buf, size_t len)
{
    ext *e = loom__socket_ext(s);
    if (e->magic == 0)
        e->magic = 0x10011001;
    CHECK_EQ(e->magic, 0x10011001);
    e->reads++;
    buf[0] = 'J'; /* the scratch buffer is ours to modify */
    CHECK_OK(loom_socket_disable(s, LOOM_WRITABLE));
    CHECK_EQ(loom_socket_write(s, buf, len), 0);
    CHECK_EQ(loom_socket_write_ref(s, "-ref", 4, on_release, NULL), 0);
    CHECK_EQ(loom_socket_write(s, "-end", 4), 0);
    CHECK_EQ(loom_socket_queued(s), len + 8);
    CHECK_EQ(released, 0);
    CHECK_OK(loom_socket_enable(s, LOOM_WRITABLE));
    loom__socket_read_stop(s);
    CHECK_EQ(s->io.bio.events & LOOM_READABLE, 0);
    loom__socket_read_start(s);
}

static void srv_raw_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    raw_events++;
    last_kind = kind;
}

static loom__sock_class srv_cls = {
    .proto_read = srv_raw_read,
    .proto_event = srv_raw_event,
    .extra = sizeof(ext),
    .is_static = true,
};

static void cli_connect(loom_socket_t *s, void *data)
{
    CHECK_EQ(loom_socket_write(s, "json", 4), 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    memcpy(reply + reply_len, b, n);
    reply_len += n;
    if (reply_len == 12) {
        CHECK(memcmp(reply, "Json-ref-end", 12) == 0);
        got_reply = 1;
        loom_socket_close(s);
        loom_tcp_server_close(srv);
    }
}

int main(void)
{
    test_timeout(10);
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom__tcp_server_cls(loop, "127.0.0.1", 0, NULL, &srv_cls, &srv));
    CHECK(loom__server_class(srv) == &srv_cls);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = cli_connect, .on_read = cli_read},
                              NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(got_reply);
    CHECK_EQ(released, 1);
    CHECK_EQ(raw_events, 1);
    CHECK_EQ(last_kind, LOOM_EV_TCP_EOF);
    test_loop_free_clean(loop);
    return 0;
}
