/* tests/proc/test_stream.c - any fd as a loom socket: both ends of a pipe
 * (1 MiB through it with backpressure, eof, the writer's EPIPE when the
 * reader goes, as an event naming the fd and not a SIGPIPE), a socketpair, a regular
 * file and a directory refused, keep_fd, and a terminal (a pty) in raw
 * mode and back, with its window size. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <termios.h>

#include "test.h"

/* --- A pipe, both ends ------------------------------------------------------------ */

#define PIPE_BYTES (1u << 20)

typedef struct {
    loom_socket_t *w, *r;
    size_t sent, got;
    int drains, eof, closes, errs, last_err, last_kind;
    char last_msg[256];
} pp_t;

static void pp_pump(pp_t *p)
{
    static char chunk[32768];
    while (p->sent < PIPE_BYTES) {
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = (char)(p->sent + i);
        p->sent += sizeof chunk;
        int r = loom_socket_write(p->w, chunk, sizeof chunk);
        CHECK(r >= 0);
        if (r == 1)
            return;
    }
    CHECK_OK(loom_socket_close(p->w)); /* flushes, then the reader sees eof */
}

static void pp_drain(loom_socket_t *s, void *data)
{
    (void)s;
    pp_t *p = data;
    p->drains++;
    pp_pump(p);
}

static void pp_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    pp_t *p = data;
    for (size_t i = 0; i < n; i++)
        CHECK_EQ((uint8_t)b[i], (uint8_t)(p->got + i));
    p->got += n;
}

static void pp_event(const loom_event_t *ev, void *data)
{
    pp_t *p = data;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        p->eof++;
        return;
    }
    p->errs++;
    p->last_err = ev->code;
    p->last_kind = ev->kind;
    snprintf(p->last_msg, sizeof p->last_msg, "%s", ev->msg);
}

static void pp_close(loom_socket_t *s, void *data)
{
    (void)s;
    ((pp_t *)data)->closes++;
}

static void test_pipe(void)
{
    loom_loop_t *loop = test_loop_new();
    int fds[2];
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    pp_t p = {0};
    loom_tcp_opts o = {.on_read = pp_read,
                       .on_drain = pp_drain,
                       .on_event = pp_event,
                       .on_close = pp_close,
                       .high_water = 128 * 1024,
                       .data = &p};
    CHECK_OK(loom_stream_open(loop, fds[0], &(loom_stream_opts){.sock = &o}, &p.r));
    CHECK_OK(loom_stream_open(loop, fds[1], &(loom_stream_opts){.sock = &o}, &p.w));
    /* Not sockets: the address calls say so and nothing breaks. */
    char name[64];
    CHECK(loom_socket_peer_name(p.r, name, sizeof name, NULL) < 0);
    CHECK_EQ(loom_socket_set_nodelay(p.r, 1), LOOM_ENOTSUP);
    CHECK(loom_socket_fd(p.r) == fds[0]);
    pp_pump(&p);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(p.got, PIPE_BYTES);
    CHECK(p.drains > 0);
    CHECK_EQ(p.eof, 1);
    CHECK_EQ(p.errs, 0);
    CHECK_EQ(p.closes, 2);
    CHECK(fcntl(fds[0], F_GETFD) < 0); /* loom closed both */
    test_loop_free_clean(loop);
}

/* The reader goes away: the writer gets an error event (EPIPE), the
 * process no SIGPIPE (default disposition: it would die). */
static void test_pipe_epipe(void)
{
    signal(SIGPIPE, SIG_DFL);
    loom_loop_t *loop = test_loop_new();
    int fds[2];
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    close(fds[0]);
    pp_t p = {0};
    loom_tcp_opts o = {.on_event = pp_event, .on_close = pp_close, .data = &p};
    CHECK_OK(loom_stream_open(loop, fds[1], &(loom_stream_opts){.sock = &o}, &p.w));
    CHECK(loom_socket_write(p.w, "x", 1) >= 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(p.errs, 1);
    CHECK_EQ(p.last_err, LOOM_EPIPE);
    CHECK_EQ(p.last_kind, LOOM_EV_CONN_ERROR); /* a closed pipe, not a tcp reset */
    /* The message names the fd, which has no peer address. */
    char want[64];
    snprintf(want, sizeof want, "fd %d (pipe): reader closed (EPIPE)", fds[1]);
    if (strcmp(p.last_msg, want) != 0) {
        fprintf(stderr, "EPIPE message \"%s\", want \"%s\"\n", p.last_msg, want);
        exit(1);
    }
    CHECK_EQ(p.closes, 1);
    sigset_t pend;
    sigpending(&pend);
    CHECK(!sigismember(&pend, SIGPIPE));
    test_loop_free_clean(loop);
}

/* --- A socketpair ------------------------------------------------------------------- */

typedef struct {
    char buf[64];
    size_t len;
    int eof;
} sp_t;

static void sp_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    sp_t *p = data;
    CHECK(p->len + n < sizeof p->buf);
    memcpy(p->buf + p->len, b, n);
    p->len += n;
    if (p->len == 5)
        CHECK_OK(loom_socket_write(s, "pong", 4)); /* back, through loom */
}

static void sp_event(const loom_event_t *ev, void *data)
{
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
    ((sp_t *)data)->eof++;
}

static void test_socketpair(void)
{
    loom_loop_t *loop = test_loop_new();
    int sv[2];
    CHECK_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
    sp_t p = {0};
    loom_socket_t *s;
    loom_tcp_opts o = {.on_read = sp_read, .on_event = sp_event, .data = &p};
    CHECK_OK(loom_stream_open(loop, sv[0], &(loom_stream_opts){.sock = &o}, &s));
    CHECK_EQ(write(sv[1], "ping!", 5), 5);
    CHECK_OK(loom_run(loop, LOOM_RUN_ONCE));
    CHECK_EQ(p.len, 5);
    char got[8] = {0};
    CHECK_EQ(read(sv[1], got, sizeof got), 4);
    CHECK_STR(got, "pong");
    close(sv[1]);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(p.eof, 1);
    test_loop_free_clean(loop);
}

/* --- Refused: regular files, directories, bad fds ------------------------------------ */

static char g_log[512];

static void on_log(int level, const char *msg, void *data)
{
    (void)level;
    (void)data;
    snprintf(g_log, sizeof g_log, "%s", msg);
}

static void test_refused(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_log = on_log}));
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-stream-%d", (int)getpid());
    int fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    unlink(path);
    int fl = fcntl(fd, F_GETFL);
    loom_socket_t *s = (loom_socket_t *)1;
    CHECK_EQ(loom_stream_open(loop, fd, NULL, &s), LOOM_EINVAL);
    CHECK(s == NULL);
    CHECK(strstr(g_log, "worker pool") != NULL); /* the log says where to go */
    CHECK_EQ(fcntl(fd, F_GETFL), fl);            /* left as it was */
    close(fd);
    int d = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_EQ(loom_stream_open(loop, d, NULL, NULL), LOOM_EINVAL);
    close(d);
    CHECK_EQ(loom_stream_open(loop, 9999, NULL, NULL), LOOM_EBADF);
    CHECK_EQ(loom_stream_open(loop, -1, NULL, NULL), LOOM_EBADF);
    test_loop_free_clean(loop);
}

/* --- keep_fd ------------------------------------------------------------------------- */

static void test_keep_fd(void)
{
    loom_loop_t *loop = test_loop_new();
    int fds[2];
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    loom_socket_t *s;
    CHECK_OK(loom_stream_open(loop, fds[1], &(loom_stream_opts){.keep_fd = true}, &s));
    CHECK(loom_socket_fd(s) != fds[1]);
    CHECK_OK(loom_socket_write(s, "abc", 3));
    CHECK_OK(loom_socket_close(s));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    /* Still open, blocking again, and the bytes went through. */
    CHECK(fcntl(fds[1], F_GETFD) >= 0);
    CHECK_EQ(fcntl(fds[1], F_GETFL) & O_NONBLOCK, 0);
    char got[4] = {0};
    CHECK_EQ(read(fds[0], got, 3), 3);
    CHECK_STR(got, "abc");
    close(fds[0]);
    close(fds[1]);
    test_loop_free_clean(loop);
}

/* --- A terminal ------------------------------------------------------------------------ */

typedef struct {
    char buf[64];
    size_t len;
    int resizes, cols, rows;
} tty_t;

static void tty_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    tty_t *t = data;
    if (t->len + n < sizeof t->buf) {
        memcpy(t->buf + t->len, b, n);
        t->len += n;
    }
}

static void tty_resize(loom_socket_t *s, int cols, int rows, void *data)
{
    (void)s;
    tty_t *t = data;
    t->resizes++;
    t->cols = cols;
    t->rows = rows;
}

static void tty_timer(loom_timer_t *tm, void *data)
{
    (void)tm;
    loom_socket_close(data);
}

static void test_tty(void)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
        fprintf(stderr, "no pty: terminal part skipped\n");
        if (m >= 0)
            close(m);
        return;
    }
    int sl = open(ptsname(m), O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(sl >= 0);
    struct winsize ws = {.ws_row = 24, .ws_col = 80};
    CHECK_OK(ioctl(m, TIOCSWINSZ, &ws));

    loom_loop_t *loop = test_loop_new();
    tty_t t = {0};
    loom_socket_t *s;
    loom_tcp_opts o = {.on_read = tty_read, .data = &t};
    CHECK_OK(
        loom_stream_open(loop, sl, &(loom_stream_opts){.sock = &o, .on_resize = tty_resize}, &s));
    int cols = 0, rows = 0;
    CHECK_OK(loom_tty_get_winsize(s, &cols, &rows));
    CHECK_EQ(cols, 80);
    CHECK_EQ(rows, 24);

    /* Raw: bytes as typed, no line buffering, no echo. */
    struct termios before;
    CHECK_OK(tcgetattr(sl, &before));
    CHECK(before.c_lflag & ICANON);
    CHECK_OK(loom_tty_set_mode(s, LOOM_TTY_RAW));
    struct termios raw;
    CHECK_OK(tcgetattr(sl, &raw));
    CHECK(!(raw.c_lflag & (ICANON | ECHO)));
    CHECK_EQ(write(m, "ab", 2), 2); /* no newline: canonical mode would hold it */
    for (int i = 0; i < 50 && t.len < 2; i++)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(t.len, 2);
    CHECK(memcmp(t.buf, "ab", 2) == 0);

    /* The window changes: SIGWINCH (sent by hand: the pty is not our
     * controlling terminal) reports the new size once. */
    ws.ws_col = 132;
    ws.ws_row = 43;
    CHECK_OK(ioctl(m, TIOCSWINSZ, &ws));
    CHECK_OK(kill(getpid(), SIGWINCH));
    for (int i = 0; i < 50 && t.resizes == 0; i++)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(t.resizes, 1);
    CHECK_EQ(t.cols, 132);
    CHECK_EQ(t.rows, 43);

    /* Back to normal, and loom_tty_reset_mode() works too. */
    CHECK_OK(loom_tty_set_mode(s, LOOM_TTY_NORMAL));
    struct termios after;
    CHECK_OK(tcgetattr(sl, &after));
    CHECK_EQ(after.c_lflag, before.c_lflag);
    CHECK_OK(loom_tty_set_mode(s, LOOM_TTY_RAW));
    CHECK_OK(loom_tty_reset_mode());
    CHECK_OK(tcgetattr(sl, &after));
    CHECK_EQ(after.c_lflag, before.c_lflag);

    /* A pipe is no terminal. */
    int fds[2];
    CHECK_OK(pipe2(fds, O_CLOEXEC));
    loom_socket_t *ps;
    CHECK_OK(loom_stream_open(loop, fds[0], NULL, &ps));
    CHECK_EQ(loom_tty_set_mode(ps, LOOM_TTY_RAW), LOOM_ENOTSUP);
    CHECK_EQ(loom_tty_get_winsize(ps, &cols, &rows), LOOM_ENOTSUP);
    loom_socket_close(ps);
    close(fds[1]);

    CHECK_OK(loom_delay(loop, 1, tty_timer, s, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    close(m);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(20);
    test_pipe();
    test_pipe_epipe();
    test_socketpair();
    test_refused();
    test_keep_fd();
    test_tty();
    return 0;
}
