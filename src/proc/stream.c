/* proc/stream.c - any fd as a loom socket (loom_stream_open), terminals
 * (raw mode, window size through SIGWINCH), and the socket classes of the
 * process pipes.
 *
 * A stream is a socket object whose class is marked `stream` (see
 * net/net_internal.h): reads on readiness with read(), writes with
 * writev() (SIGPIPE held off), no socket calls on the fd. Each stream has
 * its own class, wrapped in loom__stream_class, which keeps what the
 * terminal functions and the close need; the class is freed with the
 * socket (its one reference), so the wrapper is too.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "proc/proc_internal.h"

typedef struct loom__stream_class {
    loom__sock_class cls; /* first: freed as the class */
    loom__proc_state *st;
    loom_socket_t *sock;
    loom_socket_cb user_close;
    loom_tty_resize_cb on_resize;
    loom__queue tnode; /* st->ttys while on_resize is set */
    int user_fd;       /* keep_fd: the application's fd (the socket has a dup) */
    int user_fl;       /* its file status flags before */
    int cols, rows;
    bool keep_fd;
    bool tty;
    bool linked;
} loom__stream_class;

/* The process-wide saved terminal mode for loom_tty_reset_mode(): written
 * on the loop thread before the first mode change, read from anywhere. */
static struct termios loom__tty_orig;
static volatile sig_atomic_t loom__tty_orig_fd = -1;

loom__sock_class *loom__proc_class_new(const loom_tcp_opts *o, size_t size)
{
    loom__sock_class *c = calloc(1, size + LOOM__PROC_NAME_MAX);
    if (c == NULL)
        return NULL;
    c->name = (char *)c + size;
    if (o)
        LOOM__CLASS_FROM_OPTS(c, o);
    c->on_connect = NULL; /* open at once: nothing to wait for */
    c->read_batch = 16;
    loom__class_set_transport(c, NULL);
    return c;
}

void loom__proc_class_name(loom__sock_class *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf((char *)c->name, LOOM__PROC_NAME_MAX, fmt, ap);
    va_end(ap);
}

void loom__proc_socket_open(loom_socket_t *s, int fd, bool rd_off, const loom_tcp_opts *o)
{
    s->h.flags |= LOOM__S_UNIX | (rd_off ? LOOM__S_RD_OFF : 0);
    if (loom__socket_attach(s, fd, false) == 0)
        loom__socket_ready(s);
    if (o && o->initial && o->initial_len && !loom__socket_dead(s))
        (void)loom_socket_write(s, o->initial, o->initial_len);
}

/* --- Window size ------------------------------------------------------------- */

static int stream_winsize(int fd, int *cols, int *rows)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
        return loom__err(errno);
    *cols = ws.ws_col;
    *rows = ws.ws_row;
    return 0;
}

/* SIGWINCH: every terminal stream with on_resize whose size changed hears
 * it. The list is moved aside first so that callbacks may close streams.
 * O(terminal streams). */
static void stream_sigwinch_cb(loom_signal_t *sig, int signo, void *data)
{
    (void)sig;
    (void)signo;
    loom__proc_state *st = data;
    loom__queue todo;
    loom__queue_init(&todo);
    loom__queue_splice_tail(&todo, &st->ttys);
    while (!loom__queue_empty(&todo)) {
        loom__stream_class *sc = LOOM__CONTAINER_OF(todo.next, loom__stream_class, tnode);
        loom__queue_remove(&sc->tnode);
        loom__queue_insert_tail(&st->ttys, &sc->tnode);
        loom_socket_t *s = sc->sock;
        int cols = 0, rows = 0;
        if (loom__socket_dead(s) || stream_winsize(s->io.bio.fd, &cols, &rows) < 0)
            continue;
        if (cols == sc->cols && rows == sc->rows)
            continue;
        sc->cols = cols;
        sc->rows = rows;
        loom__op_scope scope;
        loom__op_enter(s->h.loop, &scope, sc->cls.on_event, s->h.data, s);
        sc->on_resize(s, cols, rows, s->h.data);
        loom__op_leave(s->h.loop, &scope);
    }
}

/* The class's on_close: unlinks the terminal, gives a kept fd its flags
 * back, then the application's on_close. */
static void stream_on_close(loom_socket_t *s, void *data)
{
    loom__stream_class *sc = (loom__stream_class *)s->cls;
    if (sc->linked) {
        loom__queue_remove(&sc->tnode);
        sc->linked = false;
    }
    if (sc->keep_fd)
        (void)fcntl(sc->user_fd, F_SETFL, sc->user_fl);
    if (sc->user_close)
        sc->user_close(s, data);
}

/* --- Opening ---------------------------------------------------------------- */

int loom_stream_open(loom_loop_t *loop, int fd, const loom_stream_opts *opts, loom_socket_t **out)
{
    static const loom_stream_opts defaults;
    if (out)
        *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    if (loop->freeing)
        return LOOM_ECLOSED;
    struct stat sb;
    int fl = fcntl(fd, F_GETFL);
    if (fd < 0 || fl < 0 || fstat(fd, &sb) < 0)
        return LOOM_EBADF;
    if (S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode)) {
        loom_log(loop, LOOM_LOG_NOTICE,
                 "loom_stream_open(%d): a regular file or directory cannot be polled "
                 "(it is always ready): read it on the worker pool (loom_work)",
                 fd);
        return LOOM_EINVAL;
    }
    bool is_sock = S_ISSOCK(sb.st_mode);
    if (is_sock) {
        int type = 0;
        socklen_t len = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
            return LOOM_EINVAL; /* datagrams are not a stream */
    }
    loom__proc_state *st = loom__proc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    loom__stream_class *sc = (loom__stream_class *)loom__proc_class_new(opts->sock, sizeof *sc);
    if (sc == NULL)
        return LOOM_ENOMEM;
    sc->st = st;
    sc->cls.stream = !is_sock;
    loom__proc_class_name(&sc->cls, "fd %d (%s)", fd,
                          isatty(fd) == 1        ? "terminal"
                          : S_ISFIFO(sb.st_mode) ? "pipe"
                          : is_sock              ? "socket"
                                                 : "device");
    sc->user_close = sc->cls.on_close;
    sc->cls.on_close = stream_on_close;
    sc->on_resize = opts->on_resize;
    sc->tty = isatty(fd) == 1;
    sc->keep_fd = opts->keep_fd;
    sc->user_fd = fd;
    sc->user_fl = fl;
    loom__queue_init(&sc->tnode);
    int r = 0;
    int sfd = fd;
    if (sc->keep_fd) {
        sfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (sfd < 0) {
            free(sc);
            return loom__err(errno);
        }
    }
    if (sc->tty && sc->on_resize) {
        if (st->sigwinch == NULL) {
            r = loom_signal_handler(loop, SIGWINCH, stream_sigwinch_cb, st, &st->sigwinch);
            if (r < 0)
                goto fail;
            loom__handle_own((loom__handle *)st->sigwinch);
        }
        (void)stream_winsize(fd, &sc->cols, &sc->rows);
    }
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = loom__err(errno);
        goto fail;
    }
    loom_socket_t *s = loom__socket_new(loop, &sc->cls, -1);
    if (s == NULL) {
        if (!(fl & O_NONBLOCK))
            (void)fcntl(fd, F_SETFL, fl);
        r = LOOM_ENOMEM;
        goto fail;
    }
    sc->sock = s;
    if (sc->tty && sc->on_resize) {
        loom__queue_insert_tail(&st->ttys, &sc->tnode);
        sc->linked = true;
    }
    if (out)
        *out = s;
    loom__proc_socket_open(s, sfd, (fl & O_ACCMODE) == O_WRONLY, opts->sock);
    return 0;

fail:
    if (sfd != fd)
        close(sfd);
    free(sc);
    return r;
}

/* --- Terminals ---------------------------------------------------------------- */

int loom_tty_set_mode(loom_socket_t *s, loom_tty_mode_t mode)
{
    if (loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (s->cls->on_close != stream_on_close || !((loom__stream_class *)s->cls)->tty)
        return LOOM_ENOTSUP;
    int fd = s->io.bio.fd;
    if (mode != LOOM_TTY_NORMAL && mode != LOOM_TTY_RAW && mode != LOOM_TTY_RAW_VT)
        return LOOM_EINVAL;
    if (loom__tty_orig_fd < 0) {
        if (mode == LOOM_TTY_NORMAL)
            return 0; /* never changed */
        if (tcgetattr(fd, &loom__tty_orig) < 0)
            return loom__err(errno);
        /* A kept fd outlives the socket: reset through it. */
        loom__tty_orig_fd =
            ((loom__stream_class *)s->cls)->keep_fd ? ((loom__stream_class *)s->cls)->user_fd : fd;
    }
    struct termios t = loom__tty_orig;
    if (mode != LOOM_TTY_NORMAL) {
        cfmakeraw(&t);
        if (mode == LOOM_TTY_RAW_VT) {
            t.c_lflag |= ISIG;
            t.c_oflag |= OPOST | ONLCR;
        }
    }
    int r;
    do
        r = tcsetattr(fd, TCSADRAIN, &t);
    while (r < 0 && errno == EINTR);
    return r < 0 ? loom__err(errno) : 0;
}

int loom_tty_get_winsize(loom_socket_t *s, int *cols, int *rows)
{
    if (loom__socket_dead(s))
        return LOOM_ECLOSED;
    if (cols == NULL || rows == NULL)
        return LOOM_EINVAL;
    if (!isatty(s->io.bio.fd))
        return LOOM_ENOTSUP;
    return stream_winsize(s->io.bio.fd, cols, rows);
}

int loom_tty_reset_mode(void)
{
    int fd = loom__tty_orig_fd;
    if (fd < 0)
        return LOOM_ESTATE;
    int saved = errno;
    int r = tcsetattr(fd, TCSANOW, &loom__tty_orig);
    int e = errno;
    errno = saved;
    return r < 0 ? loom__err(e) : 0;
}
