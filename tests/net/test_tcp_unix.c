/* test_tcp_unix: Unix-domain stream sockets through the same API: echo,
 * addresses, a stale socket file unlinked on bind, a live one refused
 * (EADDRINUSE), a regular file refused (EEXIST), the file unlinked on
 * close, a missing socket giving a tcp refused event, and an abstract
 * ('@') name. */
/* LOOM_TEST_NO_TRANSPORT: the client checks that the echo arrives in one on_read (n == 4); the
 * split transport delivers half a read at once. */
#include <fcntl.h>
#include <sys/un.h>

#include "test_tcp_util.h"

static loom_tcp_server_t *srv;
static char path[96];
static int echoed, srv_closed;
static tcp_events cev;

static void srv_connect(loom_socket_t *s, void *data)
{
    char name[128];
    int port = -1;
    CHECK_OK(loom_socket_local_name(s, name, sizeof name, &port));
    CHECK_STR(name, (const char *)data);
    CHECK_EQ(port, 0);
    /* TCP options make no sense here. */
    CHECK_EQ(loom_socket_set_nodelay(s, 1), LOOM_ENOTSUP);
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK(loom_socket_write(s, b, n) >= 0);
}

static void srv_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    srv_closed++;
}

static void cli_connect(loom_socket_t *s, void *data)
{
    char name[128];
    CHECK_OK(loom_socket_peer_name(s, name, sizeof name, NULL));
    CHECK_STR(name, (const char *)data);
    CHECK_EQ(loom_socket_write(s, "unix", 4), 0);
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    CHECK_EQ(n, 4);
    CHECK(memcmp(b, "unix", 4) == 0);
    echoed++;
    loom_socket_close(s);
    loom_tcp_server_close(srv);
}

static void cli_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &cev);
}

static void echo_once(loom_loop_t *loop, const char *name)
{
    loom_tcp_server_opts so = {.on_connect = srv_connect,
                               .on_read = srv_read,
                               .on_event = srv_event,
                               .data = (void *)name};
    CHECK_OK(loom_unix_server(loop, name, &so, &srv));
    CHECK_EQ(loom_tcp_server_port(srv), 0);
    /* A second server on a live path is refused. (Finding out that the
     * path is live costs its server one probe connection, closed at once.) */
    loom_tcp_server_t *other;
    CHECK_EQ(loom_unix_server(loop, name, &so, &other), LOOM_EADDRINUSE);
    CHECK_OK(loom_unix_connect(loop, name,
                               &(loom_tcp_opts){.on_connect = cli_connect,
                                                .on_read = cli_read,
                                                .on_event = cli_event,
                                                .data = (void *)name},
                               NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
}

int main(void)
{
    test_timeout(10);
    snprintf(path, sizeof path, "/tmp/loom-test-unix-%d.sock", (int)getpid());
    unlink(path);
    loom_loop_t *loop = test_loop_new();

    echo_once(loop, path);
    CHECK_EQ(echoed, 1);
    CHECK_EQ(srv_closed, 2);        /* the probe and the client */
    CHECK(access(path, F_OK) != 0); /* unlinked on close */

    /* A stale socket file (bound, never unlinked, nobody listening). */
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, path);
    CHECK(bind(fd, (struct sockaddr *)&un, sizeof un) == 0);
    close(fd);
    CHECK(access(path, F_OK) == 0);
    echo_once(loop, path);
    CHECK_EQ(echoed, 2);

    /* A regular file is never removed. */
    fd = open(path, O_CREAT | O_WRONLY, 0600);
    CHECK(fd >= 0);
    close(fd);
    CHECK_EQ(loom_unix_server(loop, path, NULL, &srv), LOOM_EEXIST);
    CHECK(access(path, F_OK) == 0);
    unlink(path);

    /* Nothing there: a tcp refused event. */
    CHECK_OK(loom_unix_connect(loop, path, &(loom_tcp_opts){.on_event = cli_event}, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(cev.count[LOOM_EV_TCP_REFUSED], 1);

    /* Abstract names leave no file. */
    char abstract[64];
    snprintf(abstract, sizeof abstract, "@loom-test-%d", (int)getpid());
    echo_once(loop, abstract);
    CHECK_EQ(echoed, 3);

    /* Bad paths. */
    char longpath[200];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    CHECK_EQ(loom_unix_server(loop, longpath, NULL, &srv), LOOM_ENAMETOOLONG);
    CHECK_EQ(loom_unix_connect(loop, "", NULL, NULL), LOOM_EINVAL);
    test_loop_free_clean(loop);
    return 0;
}
