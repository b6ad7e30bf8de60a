/* test_tcp_watch_fail: readiness watchers that cannot be set up (epoll_ctl
 * failing with ENOSPC, as when fs.epoll.max_user_watches is reached):
 *  - an accepted socket fails with a tcp error event and is closed, instead
 *    of staying open with nobody watching it;
 *  - a server backing off after an accept error (EMFILE) that cannot watch
 *    its listener again reports it and retries, instead of going quiet for
 *    good.
 * The failures are injected by this executable's own epoll_ctl() and
 * accept4(), which the statically linked library calls instead of the C
 * library's; other backends skip (77). */
/* LOOM_TEST_NO_TRANSPORT: checks that accept is reported before the watcher failure; a handshaking
 * transport fails the connection before reporting it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "test_tcp_util.h"

static int fail_next_add;    /* the next EPOLL_CTL_ADD fails with ENOSPC */
static int fail_next_accept; /* the next accept4() fails with EMFILE */

int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags);
int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
    if (fail_next_accept) {
        fail_next_accept = 0;
        errno = EMFILE;
        return -1;
    }
    return (int)syscall(SYS_accept4, fd, addr, len, flags);
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev);
int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
    if (op == EPOLL_CTL_ADD && fail_next_add) {
        fail_next_add = 0;
        errno = ENOSPC;
        return -1;
    }
    return (int)syscall(SYS_epoll_ctl, epfd, op, fd, ev);
}

static tcp_events sev;
static int accepted;

static void on_accept(loom_socket_t *s, void *data)
{
    accepted++;
}

static void on_srv_event(const loom_event_t *ev, void *data)
{
    tcp_count_event(ev, &sev);
}

static void on_tick(loom_timer_t *t, void *data) {}

int main(void)
{
    test_timeout(10);
    loom_loop_t *loop = test_loop_new();
    if (strcmp(loom_loop_backend(loop), "epoll") != 0) {
        loom_loop_free(loop);
        TEST_SKIP("the failure is injected into epoll_ctl()");
    }
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = on_accept, .on_event = on_srv_event}, &srv));

    /* A plain client, outside the loop. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);

    /* The accepted socket's watcher is the next one added. A ticking timer
     * bounds each iteration, so a socket left hanging fails the checks
     * below instead of blocking the loop. */
    loom_timer_t *tick;
    CHECK_OK(loom_interval(loop, 20, on_tick, NULL, &tick));
    fail_next_add = 1;
    for (int i = 0; i < 50 && sev.count[LOOM_EV_TCP_ERROR] == 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(fail_next_add, 0);
    CHECK_EQ(accepted, 1);
    CHECK_EQ(sev.count[LOOM_EV_TCP_ERROR], 1);
    CHECK_EQ(sev.last_code, LOOM_ENOSPC);

    /* The peer sees the connection go. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 2000), 1);
    char b[16];
    CHECK(recv(fd, b, sizeof b, 0) <= 0);
    close(fd);

    /* The listener: accept fails (EMFILE), the server stops watching it and
     * retries after 100 ms; watching it again fails (ENOSPC): reported, and
     * retried after another 100 ms, which works. */
    memset(&sev, 0, sizeof sev);
    accepted = 0;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    fail_next_accept = 1;
    while (sev.count[LOOM_EV_TCP_ACCEPT_ERROR] == 0)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(sev.last_code, LOOM_EMFILE);
    fail_next_add = 1;
    for (int i = 0; i < 50 && accepted == 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(fail_next_add, 0);
    CHECK_EQ(sev.count[LOOM_EV_TCP_ACCEPT_ERROR], 2);
    CHECK_EQ(sev.last_code, LOOM_ENOSPC);
    CHECK_EQ(accepted, 1);
    close(fd);
    loom_timer_close(tick);

    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
