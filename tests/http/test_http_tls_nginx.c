/* test_http_tls_nginx: loom's client against a real nginx with `ssl` (the
 * test certificate) started on loopback: keep-alive over TLS (nginx's
 * $connection stays the same and the request is marked reused), ALPN
 * http/1.1, a chunked body (sub_filter drops the length), a 404, and an
 * 8 MiB file streamed over TLS. Skipped when /usr/sbin/nginx is missing.
 * LOOM_TEST_NO_TRANSPORT: TLS is the transport. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../tls/tls_test_util.h"
#include "hc_test.h"

#define NGINX    "/usr/sbin/nginx"
#define BIG_SIZE (8u << 20)

static char dir[256];
static pid_t ngx = -1;
static int port;

static void stop_nginx(void)
{
    if (ngx > 0) {
        kill(ngx, SIGTERM);
        waitpid(ngx, NULL, 0);
        ngx = -1;
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (dir[0])
        (void)!system(cmd);
}

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    return ntohs(a.sin_port);
}

static void write_file(const char *name, const char *text)
{
    char p[400];
    snprintf(p, sizeof p, "%s/html/%s", dir, name);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

typedef struct {
    hc_result r;
    char alpn[32];
    uint64_t got;
    int streamed;
} ngx_result;

static void on_response(loom_http_client_req_t *req, const loom_http_client_response_t *res,
                        void *data)
{
    ngx_result *t = data;
    loom_tls_info info;
    if (loom_http_client_tls_info(req, &info) == 0)
        snprintf(t->alpn, sizeof t->alpn, "%.*s", (int)info.alpn_len, info.alpn ? info.alpn : "");
    hc_on_response(req, res, &t->r);
}

static void on_event(const loom_event_t *ev, void *data)
{
    hc_on_event(ev, &((ngx_result *)data)->r);
}

static int on_body(loom_http_client_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)req;
    ngx_result *t = data;
    for (size_t i = 0; i < len; i++)
        CHECK_EQ(chunk[i], 0); /* a sparse file */
    t->got += len;
    t->streamed++;
    return 0;
}

static void get(loom_loop_t *loop, const char *path, ngx_result *t, loom_tls_ctx_t *cctx,
                bool stream)
{
    char url[256];
    snprintf(url, sizeof url, "https://localhost:%d%s", port, path);
    memset(t, 0, sizeof *t);
    t->r.loop = loop;
    CHECK_OK(loom_http_request(loop, url,
                               &(loom_http_request_opts){.tls = cctx,
                                                         .on_response = on_response,
                                                         .on_event = on_event,
                                                         .on_body = stream ? on_body : NULL,
                                                         .data = t},
                               NULL));
    hc_run_until(loop, &t->r.done, 20000);
}

/* Starts nginx on a free port; false if it did not come up there. */
static bool try_nginx(loom_loop_t *loop, loom_tls_ctx_t *cctx)
{
    port = free_port();
    char p[400];
    char conf[4096];
    snprintf(conf, sizeof conf,
             "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\n"
             "pid %s/nginx.pid;\nerror_log %s/logs/error.log;\n"
             "events { worker_connections 256; }\n"
             "http {\n access_log off;\n"
             " client_body_temp_path %s/t1; proxy_temp_path %s/t2; fastcgi_temp_path %s/t3;\n"
             " uwsgi_temp_path %s/t4; scgi_temp_path %s/t5;\n"
             " server {\n  listen 127.0.0.1:%d ssl;\n  root %s/html;\n"
             "  ssl_certificate %s;\n  ssl_certificate_key %s;\n"
             "  location = /conn { add_header X-Conn $connection; return 200 \"c\"; }\n"
             "  location = /sub.html { sub_filter 'hello' 'HELLO'; sub_filter_once off;\n"
             "                         sub_filter_types *; }\n"
             " }\n}\n",
             dir, dir, dir, dir, dir, dir, dir, port, dir, tls_path("server.pem"),
             tls_path("server.key"));
    snprintf(p, sizeof p, "%s/nginx.conf", dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs(conf, f);
    fclose(f);
    ngx = fork();
    CHECK(ngx >= 0);
    if (ngx == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 1);
        dup2(dn, 2);
        execl(NGINX, "nginx", "-p", dir, "-c", p, (char *)NULL);
        _exit(127);
    }
    /* Wait until it listens, then ask for the index page over https. */
    for (int i = 0; i < 200; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok) {
            ngx_result t;
            get(loop, "/", &t, cctx, false);
            bool ours = t.r.done == 1 && t.r.body && strstr(t.r.body, "hello from nginx");
            hc_result_free(&t.r);
            loom_http_client_close_idle(loop);
            if (ours)
                return true;
            break;
        }
        if (waitpid(ngx, NULL, WNOHANG) == ngx) {
            ngx = -1;
            return false;
        }
        usleep(20000); /* nginx is another process: no event to wait for */
    }
    kill(ngx, SIGTERM);
    waitpid(ngx, NULL, 0);
    ngx = -1;
    return false;
}

int main(void)
{
    test_timeout(90);
    if (access(NGINX, X_OK) != 0)
        TEST_SKIP("%s is missing (Debian package nginx-light)", NGINX);
    loom_loop_t *loop = test_loop_new();
    loom_tls_ctx_t *cctx = tls_client_ctx(&(loom_tls_opts){.alpn = "http/1.1"});
    snprintf(dir, sizeof dir, "/tmp/loom-tls-nginx-XXXXXX");
    CHECK(mkdtemp(dir));
    char p[400];
    snprintf(p, sizeof p, "%s/html", dir);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/logs", dir);
    CHECK(mkdir(p, 0755) == 0);
    atexit(stop_nginx);
    write_file("index.html", "hello from nginx\n");
    char *sub = malloc(64 * 2000 + 1);
    CHECK(sub);
    sub[0] = '\0';
    for (int i = 0; i < 2000; i++)
        strcat(sub, "line with hello in it, and more text to make it longer\n");
    write_file("sub.html", sub);
    free(sub);
    snprintf(p, sizeof p, "%s/html/big.bin", dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)BIG_SIZE) == 0);
    close(fd);
    bool up = false;
    for (int attempt = 0; attempt < 5 && !up; attempt++)
        up = try_nginx(loop, cctx);
    if (!up)
        TEST_SKIP("nginx did not come up on a free port (see %s/logs/error.log)", dir);

    /* Keep-alive: the same nginx connection twice, ALPN http/1.1. */
    ngx_result t;
    char first[64] = "";
    for (int i = 0; i < 2; i++) {
        get(loop, "/conn", &t, cctx, false);
        CHECK_EQ(t.r.done, 1);
        CHECK_EQ(t.r.status, 200);
        CHECK_STR(t.alpn, "http/1.1");
        const char *c = strstr(t.r.headers, "X-Conn: ");
        CHECK(c != NULL);
        if (i == 0) {
            snprintf(first, sizeof first, "%.20s", c);
        } else {
            CHECK(strncmp(first, c, strlen(first)) == 0);
            CHECK_EQ(t.r.reused, 1);
        }
        hc_result_free(&t.r);
    }

    /* A chunked body. */
    get(loop, "/sub.html", &t, cctx, false);
    CHECK_EQ(t.r.done, 1);
    CHECK(strstr(t.r.headers, "Transfer-Encoding: chunked") != NULL);
    CHECK_EQ(t.r.body_len, (size_t)2000 * 55);
    CHECK(strstr(t.r.body, "HELLO") != NULL);
    hc_result_free(&t.r);

    /* A 404. */
    get(loop, "/missing", &t, cctx, false);
    CHECK_EQ(t.r.done, 1);
    CHECK_EQ(t.r.status, 404);
    hc_result_free(&t.r);

    /* A large body streamed over TLS. */
    get(loop, "/big.bin", &t, cctx, true);
    CHECK_EQ(t.r.done, 1);
    CHECK_EQ(t.got, BIG_SIZE);
    CHECK(t.streamed > 1);
    hc_result_free(&t.r);

    loom_tls_ctx_free(cctx);
    hc_loop_done(loop);
    printf("http tls nginx: ok\n");
    return 0;
}
