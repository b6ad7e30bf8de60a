/* tests/tls/tls_test_util.h - helpers of the TLS tests: certificates made
 * fresh per process (mkcerts.sh, with the openssl CLI, into a temporary
 * directory removed at exit), contexts from them, and running the loop. */
#ifndef LOOM_TLS_TEST_UTIL_H
#define LOOM_TLS_TEST_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static char tls_dir_[64];

static void tls_certs_rm_(void)
{
    if (tls_dir_[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tls_dir_);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", tls_dir_);
    }
}

/* Makes the certificates (once per process); returns their directory. */
static inline const char *tls_certs(void)
{
    if (tls_dir_[0])
        return tls_dir_;
    snprintf(tls_dir_, sizeof tls_dir_, "/tmp/loom-tls-XXXXXX");
    CHECK(mkdtemp(tls_dir_) != NULL);
    atexit(tls_certs_rm_);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/tls/mkcerts.sh' '%s'", LOOM_SOURCE_DIR, tls_dir_);
    CHECK_EQ(system(cmd), 0);
    return tls_dir_;
}

/* The path of certificate file `name` ("server.pem"): a static buffer of
 * four, used in turn. */
static inline const char *tls_path(const char *name)
{
    static char buf[4][160];
    static int i;
    char *p = buf[i++ & 3];
    snprintf(p, 160, "%s/%s", tls_certs(), name);
    return p;
}

/* A server context with the certificate `name` ("server", "expired"...). */
static inline loom_tls_ctx_t *tls_server_ctx(const char *name, const loom_tls_opts *more)
{
    loom_tls_opts o = more ? *more : (loom_tls_opts){0};
    char cert[32], key[32];
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    o.server = true;
    o.cert.cert_file = tls_path(cert);
    o.cert.key_file = tls_path(key);
    loom_tls_ctx_t *ctx;
    char err[256];
    int r = loom_tls_ctx_new(&o, &ctx, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "server context: %s\n", err);
    CHECK_OK(r);
    return ctx;
}

/* A client context trusting the test CA. */
static inline loom_tls_ctx_t *tls_client_ctx(const loom_tls_opts *more)
{
    loom_tls_opts o = more ? *more : (loom_tls_opts){0};
    if (o.ca_file == NULL && !o.insecure)
        o.ca_file = tls_path("ca.pem");
    loom_tls_ctx_t *ctx;
    char err[256];
    int r = loom_tls_ctx_new(&o, &ctx, err, sizeof err);
    if (r < 0)
        fprintf(stderr, "client context: %s\n", err);
    CHECK_OK(r);
    return ctx;
}

static inline uint64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tls_tick_(loom_timer_t *t, void *d)
{
    (void)t, (void)d;
}

/* Runs the loop until *flag or `ms` pass (a 5 ms tick bounds each turn).
 * Returns whether the flag was set. */
static inline bool tls_run_until(loom_loop_t *loop, volatile int *flag, unsigned ms)
{
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, tls_tick_, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = tls_now_ms() + ms;
    while (!*flag && tls_now_ms() < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(tick);
    return *flag != 0;
}

/* --- Peer processes (openssl s_server/s_client, python) ------------------------- */

/* A child process with its stdin and stdout on pipes; what it printed so far
 * is in buf (NUL-terminated, the first 64 KiB). */
typedef struct tls_proc {
    pid_t pid;
    int in, out;
    char buf[65536];
    size_t len;
} tls_proc;

static pid_t tls_kids_[16];

/* At exit (a failed CHECK too), no peer is left running. */
static void tls_kids_kill_(void)
{
    for (int i = 0; i < 16; i++)
        if (tls_kids_[i] > 0 && kill(tls_kids_[i], SIGKILL) == 0)
            (void)waitpid(tls_kids_[i], NULL, 0);
}

/* Starts argv[0] (a full path or a name in PATH); stderr is inherited. */
static inline void tls_spawn(tls_proc *p, char *const argv[])
{
    static bool once;
    if (!once)
        atexit(tls_kids_kill_);
    once = true;
    int in[2], out[2];
    CHECK(pipe(in) == 0 && pipe(out) == 0);
    signal(SIGPIPE, SIG_IGN);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]), close(in[1]), close(out[0]), close(out[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    for (int i = 0; i < 16; i++)
        if (tls_kids_[i] <= 0 || waitpid(tls_kids_[i], NULL, WNOHANG) != 0) {
            tls_kids_[i] = pid;
            break;
        }
    memset(p, 0, sizeof *p);
    p->pid = pid;
    p->in = in[1];
    p->out = out[0];
    fcntl(p->out, F_SETFL, fcntl(p->out, F_GETFL) | O_NONBLOCK);
    fcntl(p->out, F_SETFD, FD_CLOEXEC);
    fcntl(p->in, F_SETFD, FD_CLOEXEC);
}

/* Reads what the child printed, without blocking; returns whether `s`
 * appeared in it. */
static inline bool tls_proc_has(tls_proc *p, const char *s)
{
    while (p->out >= 0 && p->len + 1 < sizeof p->buf) {
        ssize_t n = read(p->out, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (n > 0) {
            p->len += (size_t)n;
            continue;
        }
        if (n == 0) {
            close(p->out);
            p->out = -1;
        }
        break;
    }
    p->buf[p->len] = 0;
    return strstr(p->buf, s) != NULL;
}

/* Waits (blocking, at most `ms`) until the child printed `s`. */
static inline bool tls_proc_wait_for(tls_proc *p, const char *s, unsigned ms)
{
    uint64_t end = tls_now_ms() + ms;
    while (!tls_proc_has(p, s)) {
        if (p->out < 0 || tls_now_ms() >= end)
            return false;
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        (void)poll(&pfd, 1, 20);
    }
    return true;
}

static inline void tls_proc_send(tls_proc *p, const char *s)
{
    CHECK_EQ(write(p->in, s, strlen(s)), (ssize_t)strlen(s));
}

/* Closes the child's stdin (its EOF) and waits at most `ms` for it to end
 * (then kills it). Returns its exit status, or -1 when it was killed. */
static inline int tls_proc_end(tls_proc *p, unsigned ms)
{
    if (p->in >= 0)
        close(p->in);
    p->in = -1;
    int st = 0;
    uint64_t end = tls_now_ms() + ms;
    for (;;) {
        (void)tls_proc_has(p, "");
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid)
            break;
        if (tls_now_ms() >= end) {
            kill(p->pid, SIGKILL);
            CHECK(waitpid(p->pid, &st, 0) == p->pid);
            st = -1;
            break;
        }
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        (void)poll(&pfd, p->out >= 0 ? 1 : 0, 10);
    }
    if (p->out >= 0)
        close(p->out);
    p->out = -1;
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Whether the child ended (without blocking); its exit status in *status
 * (-1: killed by a signal). */
static inline bool tls_proc_done(tls_proc *p, int *status)
{
    int st;
    (void)tls_proc_has(p, "");
    if (waitpid(p->pid, &st, WNOHANG) != p->pid)
        return false;
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    p->pid = -1;
    return true;
}

/* Kills the child (a server that never ends by itself). */
static inline void tls_proc_kill(tls_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        (void)waitpid(p->pid, NULL, 0);
    }
    if (p->in >= 0)
        close(p->in);
    if (p->out >= 0)
        close(p->out);
    p->in = p->out = -1;
}

/* A free TCP port on 127.0.0.1 (bound to port 0, then released) for a peer
 * that needs its port on the command line. */
static inline int tls_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Whether `tool` can be run (else the test skips). */
static inline bool tls_have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v '%s' >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Runs the loop until pred(arg) or `ms` pass (a 5 ms tick bounds each turn,
 * so that pred may poll a child's output). Returns pred's last answer. */
static inline bool tls_run_pred(loom_loop_t *loop, bool (*pred)(void *), void *arg, unsigned ms)
{
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(loop, &tick, tls_tick_, NULL));
    CHECK_OK(loom_timer_start(tick, 5, 5));
    uint64_t end = tls_now_ms() + ms;
    bool ok;
    while (!(ok = pred(arg)) && tls_now_ms() < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(tick);
    return ok;
}

/* A TLS server on 127.0.0.1, port 0, with the callbacks of `cbs` and the
 * context `sctx`, whose reference it takes over. */
static inline loom_tcp_server_t *tls_server_on(loom_loop_t *loop, loom_tls_ctx_t *sctx,
                                               const loom_tcp_server_opts *cbs)
{
    loom_tcp_server_opts o = *cbs;
    o.tls = sctx;
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0, &o, &srv));
    loom_tls_ctx_free(sctx);
    return srv;
}

/* A TLS client of 127.0.0.1:port, for the name localhost, sending `initial`
 * (or nothing) once secure, with the callbacks of `cbs`. */
static inline loom_socket_t *tls_client_on(loom_loop_t *loop, loom_tls_ctx_t *cctx, int port,
                                           const char *initial, const loom_tcp_opts *cbs)
{
    loom_tcp_opts o = *cbs;
    o.tls = cctx;
    o.server_name = "localhost";
    o.initial = initial;
    o.initial_len = initial ? strlen(initial) : 0;
    loom_socket_t *s;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", port, &o, &s));
    return s;
}

/* The start of a python TLS server script: the server certificate and key
 * from argv[1] and argv[2], a listener on 127.0.0.1 port 0 (printed as
 * "PORT n."), one connection accepted and wrapped as `s`. */
#define TLS_PY_ACCEPT                                                                              \
    "import ssl, socket, struct, sys\n"                                                            \
    "ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"                                              \
    "ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n"                                              \
    "ls = socket.socket()\n"                                                                       \
    "ls.bind(('127.0.0.1', 0))\n"                                                                  \
    "ls.listen(1)\n"                                                                               \
    "print('PORT %d.' % ls.getsockname()[1], flush=True)\n"                                        \
    "s = ctx.wrap_socket(ls.accept()[0], server_side=True)\n"

/* Starts /usr/bin/python3 with `script` (which begins with TLS_PY_ACCEPT)
 * and the server certificate, plus `arg` if not NULL; returns its port. */
static inline int tls_py_server(tls_proc *p, const char *script, const char *arg)
{
    char *argv[] = {"/usr/bin/python3",
                    "-c",
                    (char *)script,
                    (char *)tls_path("server.pem"),
                    (char *)tls_path("server.key"),
                    (char *)arg,
                    NULL};
    tls_spawn(p, argv);
    CHECK(tls_proc_wait_for(p, ".", 10000));
    int port = 0;
    CHECK(sscanf(strstr(p->buf, "PORT "), "PORT %d.", &port) == 1);
    return port;
}

#endif
