/* test_http_server_graceful: loom_http_server_close() with 1,000 long-polls
 * pending: it stops accepting at once, closes idle keep-alive connections
 * right away, lets every pending request be answered (each answer carries
 * Connection: close), and only then runs on_done. The clients live in a
 * child process. Then a forced close with requests in flight: on_close for
 * each, and the server finishes once the application released them.
 * LOOM_TEST_SERIAL
 *
 * LOOM_TEST_H2: run once more over h2c (http_version.h), smaller: 150
 * long-polls as streams of three connections (loom's client, through the
 * raw client's h2 mode), a graceful close that stops accepting at once and
 * lets all of them be answered before on_done (GOAWAY instead of
 * Connection: close; idle connections and GOAWAY's last stream id are
 * test_h2_server_python's), then a forced close with 20 streams in flight:
 * on_close for each. */
#include <sys/resource.h>

#include "test_http_server_util.h"

#define NPOLL 1000
#define NIDLE 10

static loom_http_req_t *held[NPOLL];
static int nheld, nidle_served, nclosed;
static atomic_int done_flag;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    HV_CHECK_REQ(req);
    size_t pl;
    const char *path = loom_http_req_path(req, &pl);
    if (pl == 5 && memcmp(path, "/poll", 5) == 0) {
        CHECK(nheld < NPOLL);
        held[nheld++] = req;
        return;
    }
    nidle_served++;
    hs_reply(req, "hi");
}

static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    nclosed++;
    CHECK_OK(loom_http_req_release(req));
}

static void on_done(loom_http_server_t *srv, void *data)
{
    (void)srv;
    (void)data;
    atomic_store(&done_flag, 1);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    rl.rlim_cur = rl.rlim_max;
    CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
    if (rl.rlim_cur < 2 * NPOLL + 200)
        TEST_SKIP("RLIMIT_NOFILE too low");
}

/* The child: NIDLE keep-alive connections that make one request each, then
 * NPOLL long-polls. Exits 0 if every long-poll got "bye" with Connection:
 * close and every idle connection saw the server close it. */
static int child_main(int port, int ready_fd)
{
    static int idle[NIDLE], polls[NPOLL];
    static char buf[4096];
    for (int i = 0; i < NIDLE; i++) {
        idle[i] = hs_connect(port);
        const char *r = "GET /hi HTTP/1.1\r\nHost: x\r\n\r\n";
        if (send(idle[i], r, strlen(r), 0) < 0)
            return 10;
        ssize_t n = recv(idle[i], buf, sizeof buf, 0);
        if (n <= 0 || strstr(buf, "200 OK") == NULL)
            return 11;
    }
    for (int i = 0; i < NPOLL; i++) {
        polls[i] = hs_connect(port);
        const char *r = "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n";
        if (send(polls[i], r, strlen(r), 0) < 0)
            return 12;
    }
    (void)!write(ready_fd, "r", 1);
    /* Idle connections: closed by the server soon after the close starts. */
    for (int i = 0; i < NIDLE; i++) {
        struct pollfd p = {.fd = idle[i], .events = POLLIN};
        if (poll(&p, 1, 5000) != 1)
            return 13;
        if (recv(idle[i], buf, sizeof buf, 0) != 0)
            return 14;
    }
    /* Long-polls: each answered, then closed. */
    for (int i = 0; i < NPOLL; i++) {
        size_t got = 0;
        for (;;) {
            struct pollfd p = {.fd = polls[i], .events = POLLIN};
            if (poll(&p, 1, 5000) != 1)
                return 15;
            ssize_t n = recv(polls[i], buf + got, sizeof buf - 1 - got, 0);
            if (n < 0)
                return 16;
            if (n == 0)
                break;
            got += (size_t)n;
        }
        buf[got] = '\0';
        if (strstr(buf, "\r\n\r\nbye") == NULL || strstr(buf, "Connection: close") == NULL)
            return 17;
        close(polls[i]);
    }
    return 0;
}

static void answer_all(loom_timer_t *t, void *data)
{
    (void)data;
    for (int i = 0; i < nheld; i++) {
        CHECK_OK(loom_http_respond(held[i], 200, NULL, "bye", 3));
        held[i] = NULL;
    }
    loom_timer_close(t);
}

/* The HTTP/2 run: long-polls as streams of a few connections. */
#define H2_CONNS   3
#define H2_STREAMS 50

static void h2_polls(hs_raw *c, int port, int n, char *req)
{
    const char *one = "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n";
    req[0] = '\0';
    for (int i = 0; i < n; i++)
        strcat(req, one);
    memset(c, 0, sizeof *c);
    c->port = port;
    c->req = req;
    c->req_len = strlen(req);
    c->want = n;
    c->timeout_ms = 10000;
    hs_raw_start(c);
}

static int main_h2(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, hv_server_opts(&o), &srv));
    int port = loom_http_server_port(srv);
    static hs_raw c[H2_CONNS];
    static char reqs[H2_CONNS][H2_STREAMS * 40];
    for (int i = 0; i < H2_CONNS; i++)
        h2_polls(&c[i], port, H2_STREAMS, reqs[i]);
    uint64_t end = hs_now_ms() + 10000;
    while (nheld < H2_CONNS * H2_STREAMS && hs_now_ms() < end)
        hs_run_for(loop, 10);
    CHECK_EQ(nheld, H2_CONNS * H2_STREAMS);

    atomic_store(&done_flag, 0);
    CHECK_OK(loom_http_server_close(srv, 0, on_done));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);
    hs_run_for(loop, 100);
    CHECK(!atomic_load(&done_flag));
    CHECK_EQ(loom_http_server_pending(srv), H2_CONNS * H2_STREAMS);
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, answer_all, NULL));
    CHECK_OK(loom_timer_start(t, 1, 0));
    CHECK(hs_run_until(loop, &done_flag, 20000));
    for (int i = 0; i < H2_CONNS; i++) {
        hs_raw_finish(loop, &c[i]);
        CHECK_EQ(c[i].nresp, H2_STREAMS);
        CHECK(!c[i].closed);
        int nbye = 0;
        for (const char *p = strstr(c[i].resp, "\r\n\r\nbye"); p; p = strstr(p + 1, "\r\n\r\nbye"))
            nbye++;
        CHECK_EQ(nbye, H2_STREAMS);
        hs_raw_free(&c[i]);
    }
    CHECK_EQ(nclosed, 0);

    /* A forced close with 20 streams in flight. */
    nheld = 0;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    h2_polls(&c[0], loom_http_server_port(srv), 20, reqs[0]);
    end = hs_now_ms() + 5000;
    while (nheld < 20 && hs_now_ms() < end)
        hs_run_for(loop, 10);
    CHECK_EQ(nheld, 20);
    hs_close_server_flags(loop, srv, LOOM_HTTP_CLOSE_FORCE);
    CHECK_EQ(nclosed, 20);
    hs_raw_finish(loop, &c[0]);
    CHECK_EQ(c[0].nresp, 0);
    CHECK(c[0].closed);
    hs_raw_free(&c[0]);
    test_loop_free_clean(loop);
    return 0;
}

int main(void)
{
    test_timeout(60);
    if (hv_h2())
        return main_h2();
    raise_nofile();
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    loom_http_server_opts o = {.on_close = on_close, .backlog = 2048};
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    int port = loom_http_server_port(srv);

    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        hs_child_close_fds(pfd[1]);
        _exit(child_main(port, pfd[1]));
    }
    close(pfd[1]);
    /* Wait until every long-poll is held. */
    uint64_t end = hs_now_ms() + 20000;
    while (nheld < NPOLL && hs_now_ms() < end)
        hs_run_for(loop, 20);
    CHECK_EQ(nheld, NPOLL);
    CHECK_EQ(nidle_served, NIDLE);

    /* Close gracefully; answer everything 100 ms later. */
    atomic_store(&done_flag, 0);
    CHECK_OK(loom_http_server_close(srv, 0, on_done));
    /* Accepting stopped at once. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) < 0);
    close(fd);
    hs_run_for(loop, 100);
    CHECK(!atomic_load(&done_flag));
    CHECK_EQ(loom_http_server_pending(srv), NPOLL);
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, answer_all, NULL));
    CHECK_OK(loom_timer_start(t, 1, 0));
    CHECK(hs_run_until(loop, &done_flag, 20000));

    int status;
    end = hs_now_ms() + 20000;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        CHECK(hs_now_ms() < end);
        usleep(10000);
    }
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed with %d\n", WEXITSTATUS(status));
        exit(1);
    }
    close(pfd[0]);
    CHECK_EQ(nclosed, 0);

    /* A forced close: on_close for every request in flight. */
    nheld = 0;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, on_request, &o, &srv));
    port = loom_http_server_port(srv);
    int fds[20];
    for (int i = 0; i < 20; i++) {
        fds[i] = hs_connect(port);
        const char *r = "GET /poll HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(send(fds[i], r, strlen(r), 0) > 0);
    }
    end = hs_now_ms() + 5000;
    while (nheld < 20 && hs_now_ms() < end)
        hs_run_for(loop, 10);
    CHECK_EQ(nheld, 20);
    hs_close_server_flags(loop, srv, LOOM_HTTP_CLOSE_FORCE);
    CHECK_EQ(nclosed, 20);
    for (int i = 0; i < 20; i++)
        close(fds[i]);

    test_loop_free_clean(loop);
    return 0;
}
