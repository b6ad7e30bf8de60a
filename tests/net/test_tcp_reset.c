/* test_tcp_reset: the peer resets (SO_LINGER 0 close) in the middle of a
 * write - the writer gets a tcp reset event, its zero-copy buffer is
 * released once, nothing leaks; and a reader whose peer resets gets one
 * too. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>

#include "test_tcp_util.h"

#define SIZE (16u << 20)

static char *buf;
static loom_tcp_server_t *srv;
static loom_socket_t *victim;
static tcp_events ev_count;
static int released;

static void on_release(const void *b, size_t len, void *data)
{
    CHECK(b == buf);
    CHECK_EQ(len, SIZE);
    released++;
}

static void srv_connect(loom_socket_t *s, void *data)
{
    victim = s;
    CHECK_EQ(loom_socket_write_ref(s, buf, SIZE, on_release, NULL), 1);
    loom_tcp_server_close(srv);
}

static void on_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &ev_count);
    CHECK(ev->object == victim);
    if (ev->kind == LOOM_EV_TCP_RESET)
        CHECK(ev->code == LOOM_ECONNRESET || ev->code == LOOM_EPIPE);
}

static int raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&in, sizeof in) == 0 || errno == EINPROGRESS);
    return fd;
}

static void reset_fd(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(fd);
}

static int raw_fd;

static void reset_later(loom_timer_t *t, void *data)
{
    /* Read a little, so the writer is mid-stream, then reset. */
    char tmp[65536];
    CHECK(read(raw_fd, tmp, sizeof tmp) > 0);
    CHECK(loom_socket_queued(victim) > 0);
    reset_fd(raw_fd);
}

static void phase_writer(loom_loop_t *loop)
{
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = srv_connect, .on_event = on_event}, &srv));
    raw_fd = raw_connect(loom_tcp_server_port(srv));
    CHECK_OK(loom_delay(loop, 100, reset_later, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(ev_count.count[LOOM_EV_TCP_RESET], 1);
    CHECK_EQ(released, 1);
}

/* The reader side: a loom client whose server resets. */
static int lfd;
static int cli_reads;

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    cli_reads++;
}

static void accept_and_reset(loom_timer_t *t, void *data)
{
    int fd = accept(lfd, NULL, NULL);
    CHECK(fd >= 0);
    CHECK(write(fd, "hi", 2) == 2);
    reset_fd(fd);
}

static void phase_reader(loom_loop_t *loop)
{
    memset(&ev_count, 0, sizeof ev_count);
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof in;
    CHECK(bind(lfd, (struct sockaddr *)&in, sizeof in) == 0);
    CHECK(listen(lfd, 8) == 0);
    CHECK(getsockname(lfd, (struct sockaddr *)&in, &len) == 0);
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", ntohs(in.sin_port),
                              &(loom_tcp_opts){.on_read = cli_read, .on_event = on_event},
                              &victim));
    CHECK_OK(loom_delay(loop, 50, accept_and_reset, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(ev_count.count[LOOM_EV_TCP_RESET], 1);
    close(lfd);
}

int main(void)
{
    test_timeout(20);
    buf = calloc(1, SIZE);
    loom_loop_t *loop = test_loop_new();
    phase_writer(loop);
    phase_reader(loop);
    test_loop_free_clean(loop);
    free(buf);
    return 0;
}
