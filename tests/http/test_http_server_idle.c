/* test_http_server_idle: 10,000 keep-alive clients (in a child process) make
 * one request each and then stay idle. The server holds them all, its RSS
 * grows by little more than the socket objects (the target is at most 128
 * bytes per idle connection; no buffer, timer or request is kept), and a
 * graceful close shuts every idle connection at once.
 * LOOM_TEST_SERIAL */
#include <sys/resource.h>

#include "test_http_server_util.h"

#define NCONN 10000

#if defined(__SANITIZE_ADDRESS__)
#define HS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HS_SANITIZED 1
#endif
#endif
#ifndef HS_SANITIZED
#define HS_SANITIZED 0
#endif

static int nreq;
static atomic_int done_flag;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    hs_reply(req, "omglolwtf");
}

static void on_done(loom_http_server_t *srv, void *data)
{
    (void)srv;
    (void)data;
    atomic_store(&done_flag, 1);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    CHECK(f != NULL);
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static int child_main(int port, int ready_fd)
{
    static int fds[NCONN];
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    char buf[512];
    /* Connect and ask in waves so that the listen backlog never overflows. */
    for (int base = 0; base < NCONN; base += 500) {
        int end = base + 500 < NCONN ? base + 500 : NCONN;
        for (int i = base; i < end; i++) {
            fds[i] = hs_connect(port);
            if (send(fds[i], req, sizeof req - 1, 0) != (ssize_t)sizeof req - 1)
                return 10;
        }
        for (int i = base; i < end; i++) {
            ssize_t n = recv(fds[i], buf, sizeof buf - 1, 0);
            if (n <= 0)
                return 11;
            buf[n] = '\0';
            if (strstr(buf, "omglolwtf") == NULL)
                return 12;
        }
    }
    (void)!write(ready_fd, "r", 1);
    /* Every connection is closed by the server's graceful close. */
    for (int i = 0; i < NCONN; i++) {
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        if (poll(&p, 1, 10000) != 1)
            return 13;
        if (recv(fds[i], buf, sizeof buf, 0) != 0)
            return 14;
        close(fds[i]);
    }
    return 0;
}

int main(void)
{
    test_timeout(60);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < NCONN + 100)
        TEST_SKIP("RLIMIT_NOFILE hard limit %ld is below %d", (long)rl.rlim_max, NCONN + 100);

    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.backlog = 4096, .max_connections = NCONN + 10};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);
    /* Warm up: one request, so lazily created state (scratch buffer, request
     * slab, output buffer) exists before the measurement. */
    hs_raw c;
    hs_raw_exchange(loop, &c, port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 1);
    CHECK_EQ(c.nresp, 1);
    hs_raw_free(&c);
    hs_run_for(loop, 20);
    long rss0 = rss_kb();

    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        hs_child_close_fds(pfd[1]);
        _exit(child_main(port, pfd[1]));
    }
    close(pfd[1]);
    loom_stats_t st;
    uint64_t end = hs_now_ms() + 40000;
    for (;;) {
        hs_run_for(loop, 20);
        loom_stats(loop, &st);
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (nreq >= NCONN + 1 && st.tcp_incoming >= NCONN && poll(&p, 1, 0) == 1)
            break;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "child exited early: %d\n", WEXITSTATUS(status));
            exit(1);
        }
        CHECK(hs_now_ms() < end);
    }
    CHECK_EQ(st.tcp_incoming, NCONN);
    long rss1 = rss_kb();
    double per = (double)(rss1 - rss0) * 1024.0 / NCONN;
    fprintf(stderr, "idle keep-alive connections: %d, RSS growth %ld kB, %.0f bytes each\n", NCONN,
            rss1 - rss0, per);
    /* The bound holds for the epoll backend in a plain build (poll keeps a
     * pollfd array per loop, and sanitizers pad every allocation). */
    if (strcmp(loom_loop_backend(loop), "epoll") == 0 && !HS_SANITIZED)
        CHECK(per < 192);

    atomic_store(&done_flag, 0);
    CHECK_OK(loom_http_server_close(srv, 0, on_done));
    CHECK(hs_run_until(loop, &done_flag, 10000));
    int status;
    end = hs_now_ms() + 20000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        hs_run_for(loop, 10);
        CHECK(hs_now_ms() < end);
    }
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    close(pfd[0]);
    test_loop_free_clean(loop);
    return 0;
}
