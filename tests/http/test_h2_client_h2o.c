/* test_h2_client_h2o: loom's client speaking HTTP/2 to a real h2o (TLS with
 * the test certificate, one thread) started on loopback: ALPN h2 and the
 * response version, 50 parallel GETs over ONE connection (one connection in
 * the client's stats), a 4 MiB file streamed, and a cancelled stream while
 * another completes on the same connection. Skipped when /usr/bin/h2o is
 * missing (Debian package h2o). LOOM_TEST_NO_TRANSPORT: TLS is the
 * transport. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hc_tls_test.h"
#include "nginx_test.h" /* ngx_free_port() */

#define H2O      "/usr/bin/h2o"
#define BIG_SIZE (4u << 20)
#define NPAR     50

static char dir[256];
static pid_t pid = -1;
static int port;

static void h2o_stop(void)
{
    if (pid > 0) {
        kill(pid, SIGTERM);
        waitpid(pid, NULL, 0);
        pid = -1;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0])
        (void)!system(cmd);
}

/* Starts h2o on a free port; 1 when it listens, 0 when it exited. */
static int h2o_spawn(void)
{
    port = ngx_free_port();
    char conf[2048], p[400];
    snprintf(conf, sizeof conf,
             "listen:\n  host: 127.0.0.1\n  port: %d\n  ssl:\n    certificate-file: %s\n"
             "    key-file: %s\nnum-threads: 1\n%serror-log: %s/error.log\n"
             "hosts:\n  default:\n    paths:\n      /:\n        file.dir: %s/html\n",
             port, tls_path("server.pem"), tls_path("server.key"),
             geteuid() == 0 ? "user: root\n" : "", dir, dir);
    snprintf(p, sizeof p, "%s/h2o.conf", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs(conf, f);
    fclose(f);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 1);
        dup2(dn, 2);
        execl(H2O, "h2o", "-c", p, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok)
            return 1;
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            pid = -1;
            return 0;
        }
        usleep(20000); /* another process: no event to wait for */
    }
    return 0;
}

typedef struct {
    tls_result t;
    int version;
    loom_http_client_req_t *req;
} h2_result;

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)req;
    h2_result *h = data;
    for (size_t i = 0; i < len; i++)
        CHECK_EQ(chunk[i], 0);
    h->t.got += len;
    return 0;
}

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    h2_result *h = data;
    h->version = res->version;
    tls_on_response(req, res, &h->t);
}

static void on_event(const loom_event_t *ev, void *data)
{
    tls_on_event(ev, &((h2_result *)data)->t);
}

static void start(loom_loop_t *loop, const char *path, h2_result *h, loom_tls_ctx_t *cctx,
                  bool stream)
{
    char url[256];
    snprintf(url, sizeof url, "https://localhost:%d%s", port, path);
    memset(h, 0, sizeof *h);
    h->t.r.loop = loop;
    loom_http_request_opts o = {.tls = cctx,
                                .on_response = on_response,
                                .on_body = stream ? on_body : NULL,
                                .on_event = on_event,
                                .data = h};
    CHECK_OK(loom_http_request(loop, url, &o, &h->req));
}

int main(void)
{
    test_timeout(60);
    if (access(H2O, X_OK) != 0)
        TEST_SKIP("%s is missing (Debian package h2o)", H2O);
    snprintf(dir, sizeof dir, "/tmp/loom-hc-h2o-XXXXXX");
    CHECK(mkdtemp(dir));
    atexit(h2o_stop);
    char p[400];
    snprintf(p, sizeof p, "%s/html", dir);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/html/index.html", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs("hello from h2o\n", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/html/big.bin", dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)BIG_SIZE) == 0);
    close(fd);
    bool up = false;
    for (int i = 0; i < 5 && !up; i++)
        up = h2o_spawn() == 1;
    if (!up)
        TEST_SKIP("h2o did not come up on a free port (see %s/error.log)", dir);

    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(NULL);
    static h2_result h[NPAR];

    start(loop, "/index.html", &h[0], cctx, false);
    hc_run_until(loop, &h[0].t.r.done, 20000);
    if (h[0].t.r.done == 2)
        fprintf(stderr, "error: %s\n", h[0].t.r.msg);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.r.status, 200);
    CHECK_EQ(h[0].version, 20);
    CHECK_STR(h[0].t.alpn, "h2");
    CHECK_STR(h[0].t.r.body, "hello from h2o\n");
    CHECK(strstr(h[0].t.r.headers, "content-length: 15\n") != NULL);
    hc_result_free(&h[0].t.r);

    /* 50 parallel over the one connection. */
    loom_http_client_stats_t s0, s1;
    loom_http_client_stats(loop, &s0);
    for (int i = 0; i < NPAR; i++)
        start(loop, "/index.html", &h[i], cctx, false);
    for (int i = 0; i < NPAR; i++)
        hc_run_until(loop, &h[i].t.r.done, 20000);
    for (int i = 0; i < NPAR; i++) {
        CHECK_EQ(h[i].t.r.done, 1);
        CHECK_EQ(h[i].version, 20);
        CHECK_EQ(h[i].t.r.reused, 1);
        hc_result_free(&h[i].t.r);
    }
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.connections, s0.connections);
    CHECK_EQ(s1.open, 1);

    /* A big file streamed, and one cancelled beside it. */
    start(loop, "/big.bin", &h[0], cctx, true);
    start(loop, "/big.bin", &h[1], cctx, true);
    loom_update_time(loop);
    uint64_t end = loom_now(loop) + 20000;
    while (h[1].t.got == 0 && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK_OK(loom_http_client_cancel(h[1].req));
    hc_run_until(loop, &h[0].t.r.done, 20000);
    CHECK_EQ(h[0].t.r.done, 1);
    CHECK_EQ(h[0].t.got, BIG_SIZE);
    CHECK_EQ(h[1].t.r.done, 0);
    hc_result_free(&h[0].t.r);
    loom_http_client_stats(loop, &s1);
    CHECK_EQ(s1.connections, s0.connections);

    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("h2 client h2o: ok\n");
    return 0;
}
