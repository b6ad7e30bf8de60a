/* test_tcp_nohandler: a TCP server with no event handler, on a loop with no
 * default handler, keeps running when one client resets (SO_LINGER 0) and
 * another times out: each connection's error is a log line naming the peer
 * and what failed, never the end of loom_run(). Also: loom_tcp_server() and
 * loom_unix_server() take a NULL `out` (the README's echo example), and
 * loom_tcp_server_loop(). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "test_tcp_util.h"

static char logbuf[8192];
static size_t loglen;

static void on_log(int level, const char *msg, void *data)
{
    (void)data;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%d %s\n", level, msg);
    if (n > 0 && (size_t)n < sizeof logbuf - loglen)
        loglen += (size_t)n;
}

static uint64_t incoming(loom_loop_t *loop)
{
    loom_stats_t st;
    loom_stats(loop, &st);
    return st.tcp_incoming;
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

static void phase_no_handlers(void)
{
    loom_loop_t *loop;
    CHECK_OK(
        loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log, .log_level = LOOM_LOG_DEBUG}));
    loom_tcp_server_t *a, *b;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, NULL, &a));
    CHECK(loom_tcp_server_loop(a) == loop);
    CHECK_OK(
        loom_tcp_server(loop, "127.0.0.1", 0, &(loom_tcp_server_opts){.read_timeout_ms = 200}, &b));

    int rst = raw_connect(loom_tcp_server_port(a));
    int silent = raw_connect(loom_tcp_server_port(b));
    /* Let the server accept both, then reset the first. */
    while (incoming(loop) < 2)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    CHECK(setsockopt(rst, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
    close(rst);

    /* Each run returns without an error while both connections end. */
    for (int i = 0; i < 100000 && incoming(loop) > 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(incoming(loop), 0);
    CHECK(strstr(logbuf, "tcp connection from 127.0.0.1 port ") != NULL);
    CHECK(strstr(logbuf, ": tcp timeout: read timeout (200 ms)") != NULL);
    /* The reset one: a reset, or (if the machine was slow) an eof. */
    CHECK(strstr(logbuf, ": tcp reset: ") != NULL || strstr(logbuf, ": tcp eof") != NULL);

    /* The servers still accept. */
    int again = raw_connect(loom_tcp_server_port(a));
    while (incoming(loop) < 1)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    close(again);
    close(silent);
    loom_tcp_server_close(a);
    loom_tcp_server_close(b);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

static void phase_null_out(void)
{
    loom_loop_t *loop = test_loop_new();
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, NULL, NULL));
    CHECK_EQ(loom_loop_live(loop), 1);
    char path[64];
    snprintf(path, sizeof path, "@loom-test-nohandler-%d", (int)getpid());
    CHECK_OK(loom_unix_server(loop, path, NULL, NULL));
    CHECK_EQ(loom_loop_live(loop), 2);
    /* The Unix one listens: a connection is accepted. */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    memcpy(un.sun_path + 1, path + 1, strlen(path) - 1);
    CHECK(connect(fd, (struct sockaddr *)&un,
                  (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))) == 0);
    while (incoming(loop) < 1)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    close(fd);
    /* Nothing but loom_loop_free() can close them now. */
    loom_loop_free(loop);
}

int main(void)
{
    test_timeout(20);
    phase_no_handlers();
    phase_null_out();
    return 0;
}
