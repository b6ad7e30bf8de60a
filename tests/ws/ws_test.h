/* tests/ws/ws_test.h - helpers of the WebSocket tests: real peers (Python's
 * websockets with /usr/bin/python3, node's ws installed with npm into the
 * build tree) run as child processes, a raw blocking socket client for
 * hand-framed bytes, and frame encoding for it. */
#ifndef LOOM_WS_TEST_H
#define LOOM_WS_TEST_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

#define WS_PY "/usr/bin/python3"

/* --- Child processes ---------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int out;    /* its stdout (read end), or -1 */
    int status; /* its wait status once it exited, else -1 */
} ws_child;

static ws_child *ws_children_[8];
static int ws_nchildren_;

static void ws_children_kill_(void)
{
    for (int i = 0; i < ws_nchildren_; i++) {
        ws_child *c = ws_children_[i];
        if (c->pid > 0 && c->status < 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->status = 0;
        }
    }
}

/* Runs argv[0] (a path) with argv; its stdout is a pipe (c->out). */
static inline void ws_child_start(ws_child *c, char *const argv[])
{
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    c->status = -1;
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pfd[1]);
    c->out = pfd[0];
    if (ws_nchildren_ == 0)
        atexit(ws_children_kill_);
    CHECK(ws_nchildren_ < 8);
    ws_children_[ws_nchildren_++] = c;
}

/* Reads the child's first line (a port); 0 if none within 10 s. */
static inline int ws_child_port(ws_child *c)
{
    char buf[64] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1) {
        struct pollfd p = {.fd = c->out, .events = POLLIN};
        if (poll(&p, 1, 10000) <= 0)
            break;
        ssize_t k = read(c->out, buf + n, 1);
        if (k <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    return atoi(buf);
}

/* Non-blocking: true once the child has exited (status in c->status). */
static inline bool ws_child_done(ws_child *c)
{
    if (c->status >= 0)
        return true;
    int st;
    if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
        c->status = st;
        return true;
    }
    return false;
}

/* The exit code of an exited child (-1 for a signal). */
static inline int ws_child_code(const ws_child *c)
{
    return WIFEXITED(c->status) ? WEXITSTATUS(c->status) : -1;
}

static inline void ws_child_stop(ws_child *c)
{
    if (c->status < 0) {
        kill(c->pid, SIGTERM);
        int st;
        waitpid(c->pid, &st, 0);
        c->status = st;
    }
    if (c->out >= 0)
        close(c->out);
    c->out = -1;
}

/* Python's websockets, or skip. */
static inline void ws_need_python(void)
{
    if (access(WS_PY, X_OK) != 0)
        TEST_SKIP("%s is missing", WS_PY);
    if (system(WS_PY " -c 'import websockets' 2>/dev/null") != 0)
        TEST_SKIP("python3-websockets is missing (scripts/install-deps.sh)");
}

/* The directory holding node_modules/ws (installed by npm into the build
 * tree on first use, under a lock: the tests run in parallel). Skips only
 * when node is missing or npm cannot reach its registry. */
static inline const char *ws_node_dir(void)
{
    static char dir[512];
    if (access("/usr/bin/node", X_OK) != 0)
        TEST_SKIP("node is missing");
    snprintf(dir, sizeof dir, "%s/tests/ws/node", LOOM_BINARY_DIR);
    char mod[600];
    snprintf(mod, sizeof mod, "%s/node_modules/ws/package.json", dir);
    if (access(mod, R_OK) == 0)
        return dir;
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && flock '%s/.lock' sh -c "
             "'test -f node_modules/ws/package.json || npm install --no-audit --no-fund "
             "--silent ws@8 >npm.log 2>&1'",
             dir, dir, dir);
    if (system(cmd) != 0 || access(mod, R_OK) != 0)
        TEST_SKIP("npm could not install ws (see %s/npm.log)", dir);
    return dir;
}

/* --- Running the loop until a condition ---------------------------------------- */

static void ws_tick_(loom_timer_t *t, void *d)
{
    (void)t, (void)d;
}

/* A 5 ms unreferenced ticker, so that LOOM_RUN_ONCE never sleeps long while
 * a test waits for a condition; close it with loom_timer_close(). */
static inline loom_timer_t *ws_ticker(loom_loop_t *loop)
{
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, ws_tick_, NULL));
    CHECK_OK(loom_timer_start(t, 5, 5));
    loom_timer_unref(t);
    return t;
}

/* Runs the loop once at a time until *flag becomes nonzero (or 15 s). */
static inline void ws_run_until(loom_loop_t *loop, volatile int *flag)
{
    time_t t0 = time(NULL);
    while (!*flag) {
        loom_run(loop, LOOM_RUN_ONCE);
        CHECK(time(NULL) - t0 < 15);
    }
}

/* Runs the loop (in short slices) until the child exits. */
static inline void ws_run_child(loom_loop_t *loop, ws_child *c)
{
    time_t t0 = time(NULL);
    while (!ws_child_done(c)) {
        loom_run(loop, LOOM_RUN_NOWAIT);
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        CHECK(time(NULL) - t0 < 20);
    }
}

/* --- Raw peers --------------------------------------------------------------------- */

/* A blocking TCP connection to 127.0.0.1:port with a 5 s receive timeout. */
static inline int ws_raw_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

static inline void ws_raw_send(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return; /* the peer may have closed already: the test reads why */
        c += k;
        n -= (size_t)k;
    }
}

/* Encodes a frame into out (returns its length): b0 is FIN|RSV|opcode as
 * sent; masked with a fixed key when `mask`. len64 forces the 8-byte length
 * form. */
static inline size_t ws_frame_enc(unsigned char *out, unsigned b0, bool mask, const void *data,
                                  size_t len)
{
    size_t hl = 2;
    out[0] = (unsigned char)b0;
    if (len < 126)
        out[1] = (unsigned char)len;
    else if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        hl = 4;
    } else {
        out[1] = 127;
        for (int k = 0; k < 8; k++)
            out[2 + k] = (unsigned char)((uint64_t)len >> (56 - 8 * k));
        hl = 10;
    }
    static const unsigned char key[4] = {0x37, 0xfa, 0x21, 0x3d};
    if (mask) {
        out[1] |= 0x80;
        memcpy(out + hl, key, 4);
        hl += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[hl + i] = (unsigned char)(((const unsigned char *)data)[i] ^ (mask ? key[i & 3] : 0));
    return hl + len;
}

/* Reads one whole frame (unmasking it): returns the opcode byte (b0), or -1
 * on eof / timeout. */
static inline int ws_raw_read_frame(int fd, unsigned char *payload, size_t cap, size_t *len)
{
    unsigned char h[14];
    size_t got = 0, need = 2;
    while (got < need) {
        ssize_t k = recv(fd, h + got, need - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
        if (got == 2) {
            size_t l7 = h[1] & 0x7F;
            need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((h[1] & 0x80) ? 4 : 0);
        }
    }
    uint64_t l = h[1] & 0x7F;
    size_t off = 2;
    if (l == 126) {
        l = ((uint64_t)h[2] << 8) | h[3];
        off = 4;
    } else if (l == 127) {
        l = 0;
        for (int k = 0; k < 8; k++)
            l = (l << 8) | h[2 + k];
        off = 10;
    }
    CHECK(l <= cap);
    got = 0;
    while (got < l) {
        ssize_t k = recv(fd, payload + got, (size_t)l - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    if (h[1] & 0x80)
        for (size_t i = 0; i < l; i++)
            payload[i] ^= h[off + (i & 3)];
    *len = (size_t)l;
    return h[0];
}

/* Sends a client opening handshake and reads the answer's head into buf;
 * returns the status. */
static inline int ws_raw_handshake(int fd, const char *extra, char *buf, size_t cap)
{
    char req[1024];
    snprintf(req, sizeof req,
             "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: "
             "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\n%s\r\n",
             extra ? extra : "");
    ws_raw_send(fd, req, strlen(req));
    size_t n = 0;
    while (n < cap - 1) {
        ssize_t k = recv(fd, buf + n, 1, 0); /* byte by byte: frames may follow */
        if (k <= 0)
            break;
        n++;
        if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    buf[n] = '\0';
    return n > 12 ? atoi(buf + 9) : -1;
}

#endif
