/* tests/http/nginx_test.h - a real nginx for the client tests
 * (test_http_client_nginx, test_http_tls_nginx): a directory of its own
 * (html/ with the tests' files, logs/), a config written from the test's
 * server block, the process started on a free loopback port and stopped
 * (and the directory removed) at exit. */
#ifndef LOOM_TEST_NGINX_H
#define LOOM_TEST_NGINX_H

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hc_test.h"

#define NGINX "/usr/sbin/nginx"

static char ngx_dir[256];
static pid_t ngx_pid = -1;
static int ngx_port;

static inline void ngx_kill(void)
{
    if (ngx_pid > 0) {
        kill(ngx_pid, SIGTERM);
        waitpid(ngx_pid, NULL, 0);
        ngx_pid = -1;
    }
}

static void ngx_stop(void)
{
    ngx_kill();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", ngx_dir);
    if (ngx_dir[0])
        (void)!system(cmd);
}

/* Skips the test without nginx; makes the directory (html/, logs/). */
static inline void ngx_setup(void)
{
    if (access(NGINX, X_OK) != 0)
        TEST_SKIP("%s is missing (Debian package nginx-light)", NGINX);
    snprintf(ngx_dir, sizeof ngx_dir, "/tmp/loom-hc-nginx-XXXXXX");
    CHECK(mkdtemp(ngx_dir));
    char p[400];
    snprintf(p, sizeof p, "%s/html", ngx_dir);
    CHECK(mkdir(p, 0755) == 0);
    snprintf(p, sizeof p, "%s/logs", ngx_dir);
    CHECK(mkdir(p, 0755) == 0);
    atexit(ngx_stop);
}

static inline void ngx_write_file(const char *name, const char *text)
{
    char p[400];
    snprintf(p, sizeof p, "%s/html/%s", ngx_dir, name);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs(text, f);
    fclose(f);
}

/* The tests' files: index.html ("hello from nginx"), sub.html (2000 lines
 * for sub_filter: the answer goes out chunked) and big.bin (`big` zero
 * bytes, sparse). */
static inline void ngx_fill_html(uint64_t big)
{
    ngx_write_file("index.html", "hello from nginx\n");
    char *sub = malloc(64 * 2000 + 1);
    CHECK(sub);
    sub[0] = '\0';
    for (int i = 0; i < 2000; i++)
        strcat(sub, "line with hello in it, and more text to make it longer\n");
    ngx_write_file("sub.html", sub);
    free(sub);
    char p[400];
    snprintf(p, sizeof p, "%s/html/big.bin", ngx_dir);
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, (off_t)big) == 0);
    close(fd);
}

/* The locations both tests use: /conn answers with nginx's connection
 * number (X-Conn), /sub.html goes through sub_filter. */
#define NGX_LOCATIONS                                                                              \
    "  location = /conn { add_header X-Conn $connection; return 200 \"c\"; }\n"                    \
    "  location = /sub.html { sub_filter 'hello' 'HELLO'; sub_filter_once off;\n"                  \
    "                         sub_filter_types *; }\n"

static inline int ngx_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(bind(s, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t len = sizeof a;
    CHECK(getsockname(s, (struct sockaddr *)&a, &len) == 0);
    close(s);
    return ntohs(a.sin_port);
}

/* Starts nginx on a new free port (ngx_port) with `server`, the body of the
 * server block after its listen and root lines (`listen_extra`: " ssl" or
 * ""). The port is free when chosen, but another process may bind it before
 * nginx does: the caller probes and calls ngx_kill() and this again. */
static inline void ngx_spawn(const char *listen_extra, const char *server)
{
    ngx_port = ngx_free_port();
    char p[400];
    char conf[4096];
    snprintf(conf, sizeof conf,
             "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\n"
             "pid %s/nginx.pid;\nerror_log %s/logs/error.log;\n"
             "events { worker_connections 256; }\n"
             "http {\n access_log off;\n"
             " client_body_temp_path %s/t1; proxy_temp_path %s/t2; fastcgi_temp_path %s/t3;\n"
             " uwsgi_temp_path %s/t4; scgi_temp_path %s/t5;\n"
             " server {\n  listen 127.0.0.1:%d%s;\n  root %s/html;\n%s }\n}\n",
             ngx_dir, ngx_dir, ngx_dir, ngx_dir, ngx_dir, ngx_dir, ngx_dir, ngx_port, listen_extra,
             ngx_dir, server);
    snprintf(p, sizeof p, "%s/nginx.conf", ngx_dir);
    FILE *f = fopen(p, "w");
    CHECK(f);
    fputs(conf, f);
    fclose(f);
    ngx_pid = fork();
    CHECK(ngx_pid >= 0);
    if (ngx_pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        dup2(dn, 1);
        dup2(dn, 2);
        execl(NGINX, "nginx", "-p", ngx_dir, "-c", p, (char *)NULL);
        _exit(127);
    }
}

/* Waits until something listens on ngx_port: 1, or 0 when nginx exited
 * (the port was taken), or -1 when it never came up. */
static inline int ngx_wait_listen(void)
{
    for (int i = 0; i < 200; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET,
                                .sin_port = htons((uint16_t)ngx_port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (ok)
            return 1;
        if (waitpid(ngx_pid, NULL, WNOHANG) == ngx_pid) {
            ngx_pid = -1;
            return 0;
        }
        usleep(20000); /* nginx is another process: no event to wait for */
    }
    return -1;
}

#endif
