/* test_io_uring_accept: TCP servers on io_uring's multishot accept
 * (LOOM_BACKEND_CAP_ACCEPT). A forked child opens 1,000 connections in a
 * burst and the server accepts them all; then a server is closed while a
 * child keeps connecting, and no descriptor leaks (/proc/self/fd is counted
 * before and after). Skips where the loop does not get the capability.
 * LOOM_TEST_NO_BACKEND LOOM_TEST_SERIAL */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "../net/test_tcp_util.h"
#include "core/internal.h"

#define BURST 1000

static loom_tcp_server_t *srv;
static int accepted, close_at;

static void srv_connect(loom_socket_t *s, void *data)
{
    (void)s;
    (void)data;
    if (++accepted == close_at) {
        loom_tcp_server_close_connections(srv);
        loom_tcp_server_close(srv);
        srv = NULL;
    }
}

static void srv_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK(ev->kind != LOOM_EV_TCP_ACCEPT_ERROR);
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* The child: `n` connections (0: until refused), then waits for the parent
 * to close `hold`. */
static pid_t spawn_clients(loom_tcp_server_t *s, int n, int *hold)
{
    int p[2];
    CHECK(pipe(p) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid > 0) {
        close(p[0]);
        *hold = p[1];
        return pid;
    }
    close(p[1]);
    int port = loom_tcp_server_port(s);
    close(loom_tcp_server_fd(s)); /* or the listen socket outlives the server */
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; n == 0 || i < n; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            _exit(2);
        if (connect(fd, (struct sockaddr *)&in, sizeof in) < 0) {
            close(fd);
            if (n == 0)
                break; /* the server is gone */
            _exit(3);
        }
        if (n == 0)
            close(fd);
    }
    char c;
    (void)read(p[0], &c, 1);
    _exit(0);
}

static void on_elapsed(loom_timer_t *t, void *data)
{
    (void)t;
    *(int *)data = 1;
}

static void run_until(loom_loop_t *loop, int *cond_count, int want, unsigned ms)
{
    int elapsed = 0;
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_elapsed, &elapsed));
    CHECK_OK(loom_timer_start(t, ms, 0));
    while (!elapsed && *cond_count < want)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(t);
}

static loom_tcp_server_t *start_server(loom_loop_t *loop)
{
    loom_tcp_server_t *s;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = srv_connect, .on_event = srv_event, .backlog = 1024},
        &s));
    return s;
}

int main(void)
{
    test_timeout(25);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < 4096 && rl.rlim_max >= 4096) {
        rl.rlim_cur = 4096;
        CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    }
    if (rl.rlim_cur < 2 * BURST + 100)
        return 77;
    int fds0 = count_fds();
    loom_loop_t *loop = NULL;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    if (!(loop->backend->caps & LOOM_BACKEND_CAP_ACCEPT)) {
        fprintf(stderr, "skip: %s has no multishot accept\n", loom_loop_backend(loop));
        loom_loop_free(loop);
        return 77;
    }

    /* A burst of 1,000 connections. */
    srv = start_server(loop);
    close_at = -1;
    int hold;
    pid_t child = spawn_clients(srv, BURST, &hold);
    run_until(loop, &accepted, BURST, 15000);
    CHECK_EQ(accepted, BURST);
    CHECK_EQ(loom_tcp_server_close_connections(srv), BURST);
    loom_tcp_server_close(srv);
    srv = NULL;
    close(hold);
    int status;
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);

    /* Closed from a connect callback while connections keep arriving:
     * those accepted in between are closed, not leaked. */
    accepted = 0;
    close_at = 50;
    srv = start_server(loop);
    child = spawn_clients(srv, 0, &hold);
    run_until(loop, &accepted, close_at, 10000);
    CHECK_EQ(accepted, close_at);
    CHECK(srv == NULL);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(hold);
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    test_loop_free_clean(loop);
    CHECK_EQ(count_fds(), fds0);
    return 0;
}
