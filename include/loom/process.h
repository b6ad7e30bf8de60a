/* loom/process.h - child processes (cl-async's spawn), any fd as a stream
 * (cl-async's pipe-connect and its streams) and terminals.
 *
 * loom_spawn() starts a program and returns at once with a process handle.
 * Its stdin, stdout and stderr are each inherited, ignored (/dev/null),
 * redirected to an fd of the parent, or a pipe whose parent end is a loom
 * socket (loom/tcp.h: the whole socket API, backpressure included; the pipe
 * is an AF_UNIX socketpair, as libuv's). Failures to start the program
 * (a missing binary, no permission, a bad working directory) are returned
 * by loom_spawn() itself, with the path in opts.errbuf; nothing is
 * started then.
 *
 * Exit: on_exit(proc, exit_status, term_signal, data) runs once, from the
 * loop, when the child has ended and been reaped. The handle stays valid
 * after that until loom_process_close(), whose on_close runs once, at the
 * end of that iteration (the one close path; loom_loop_free() closes the
 * handles still open). A running process keeps the loop alive (unless
 * unref'd); an exited one does not.
 *
 * Closing a handle whose child still runs does NOT kill the child (call
 * loom_process_kill() first if that is what you want): loom keeps watching
 * it without callbacks and reaps it when it ends, so it never lingers as a
 * zombie while the loop runs.
 *
 * Mechanism: the child is started with posix_spawn() (glibc's uses
 * clone(CLONE_VM | CLONE_VFORK): nothing is allocated and no lock is taken
 * between the clone and the exec, so spawning is safe from any thread's
 * loop; options it cannot express, uid and gid, use fork() with only
 * async-signal-safe calls before exec, and report exec errors through a
 * CLOEXEC pipe). Exit is seen through a pidfd (pidfd_open, Linux 5.3)
 * watched by the loop like any fd, so it works on every backend, foreign
 * loops included; without pidfds, through SIGCHLD (loom/signal.h: the loop
 * then owns its SIGCHLD handler) and waitpid(pid, WNOHANG) for each child
 * the loop started. loom never calls waitpid(-1) and never reaps a child it
 * did not start.
 *
 * After fork() and loom_loop_fork(), the child process's loop no longer
 * watches the processes the parent started (they are not its children):
 * their handles stay open, never get on_exit, and loom_process_kill()
 * returns LOOM_ESTATE; close them. The parent's loop is unaffected.
 *
 * Every function here is for the loop's thread only, unless it says
 * otherwise.
 */
#ifndef LOOM_PROCESS_H
#define LOOM_PROCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "loom/common.h"
#include "loom/tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_process loom_process_t;

/* on_exit: exit_status is the child's exit code (0..255) when it exited,
 * term_signal the signal that ended it (then exit_status is 0), else 0. */
typedef void (*loom_process_exit_cb)(loom_process_t *proc, int exit_status, int term_signal,
                                     void *data);
/* on_close: the handle is dead once this returns. */
typedef void (*loom_process_cb)(loom_process_t *proc, void *data);

/* What one of the child's fds 0, 1 and 2 is. */
typedef enum loom_stdio_kind {
    LOOM_STDIO_INHERIT = 0, /* the parent's same fd (/dev/null if the parent has none) */
    LOOM_STDIO_IGNORE,      /* /dev/null */
    LOOM_STDIO_FD,          /* the parent's fd `fd` (it stays the parent's) */
    LOOM_STDIO_PIPE         /* a pipe whose parent end is a loom socket */
} loom_stdio_kind_t;

typedef struct loom_stdio {
    loom_stdio_kind_t kind;
    int fd; /* LOOM_STDIO_FD */
    /* LOOM_STDIO_PIPE: the parent end's callbacks and settings (on_read,
     * on_drain, on_event, on_close, water marks, timeouts, data; may be
     * NULL); on_connect is not called (the pipe is connected at once).
     * `sock` receives the socket, which is the application's to close
     * like any socket (closing it, or loom_socket_shutdown(), gives the
     * child eof on its end). The socket is independent of the process
     * handle: either may be closed first. The child's eof on stdout is a
     * tcp eof event; a write to a stdin the child has closed is a
     * connection error naming the pipe ("stdin of process 4711 (cat):
     * reader closed (EPIPE)"), not a tcp reset. */
    const loom_tcp_opts *pipe;
    loom_socket_t **sock;
} loom_stdio_t;

typedef enum loom_env_mode {
    LOOM_ENV_INHERIT = 0, /* the parent's environ; `env` is ignored */
    LOOM_ENV_REPLACE,     /* exactly `env` */
    LOOM_ENV_EXTEND       /* the parent's environ, with `env`'s entries added or replacing */
} loom_env_mode_t;

typedef struct loom_spawn_opts {
    /* The program: a path, or a name searched in the parent's PATH. NULL:
     * argv[0]. */
    const char *file;
    /* NULL-terminated; argv[0] is required. Copied as needed: nothing
     * needs to outlive the call. */
    char *const *argv;
    /* NAME=value strings, NULL-terminated (see env_mode). */
    char *const *env;
    loom_env_mode_t env_mode;
    /* The child's working directory; NULL: the parent's. */
    const char *cwd;
    /* setgid()/setuid() in the child (needs the privilege; uses the fork()
     * path: slower). Supplementary groups are dropped when set_gid. */
    bool set_uid, set_gid;
    uid_t uid;
    gid_t gid;
    /* setsid(): the child leads a new session (and process group), with
     * no controlling terminal, so a terminal's job control signals do not
     * reach it. */
    bool detached;
    /* setpgid(0, pgroup) in the child: pgroup 0 makes it lead a new group
     * of its own (see loom_process_kill_group()). Ignored with `detached`. */
    bool set_pgroup;
    pid_t pgroup;
    /* fds 0, 1, 2 of the child. */
    loom_stdio_t stdio[3];
    /* Further parent fds passed as the child's 3, 4, ... (they stay the
     * parent's). */
    const int *extra_fds;
    int nextra_fds;

    loom_process_exit_cb on_exit;
    loom_process_cb on_close;
    void *data; /* the handle's data slot */

    /* When not NULL, receives a message on failure, naming the path and
     * the reason: "spawn of /no/such/file failed: no such file or
     * directory", "spawn of ls failed: cwd /nope: no such file or
     * directory". */
    char *errbuf;
    size_t errbuf_size;
} loom_spawn_opts;

/* Starts a child process (see the top of this file). `*out` (if `out` is
 * not NULL) receives its handle, owned by the loop until on_close. Returns
 * 0, or: LOOM_EINVAL (no argv[0], a bad stdio kind or fd), LOOM_ENOENT,
 * LOOM_EACCES, LOOM_ENOTDIR, LOOM_EPERM... (the program could not be
 * started: errbuf says which path), LOOM_EMFILE, LOOM_ENOMEM, LOOM_EAGAIN
 * (process limit), LOOM_ECLOSED (the loop is being freed), LOOM_EEXIST
 * (no pidfd support and the loop's SIGCHLD handler is the application's).
 * On failure no callback runs and no pipe socket is created. */
LOOM_EXTERN int loom_spawn(loom_loop_t *loop, const loom_spawn_opts *opts, loom_process_t **out);

/* Sends `signo` to the child (0 checks that it runs). Returns 0,
 * LOOM_ESTATE once it has been reaped (its pid may belong to another
 * process by then; loom never signals it) or after loom_loop_fork(),
 * LOOM_ECLOSED, LOOM_EINVAL or a system error. */
LOOM_EXTERN int loom_process_kill(loom_process_t *proc, int signo);

/* Sends `signo` to the child's process group (which is its own with
 * `detached` or `set_pgroup` and pgroup 0). Returns like
 * loom_process_kill(). */
LOOM_EXTERN int loom_process_kill_group(loom_process_t *proc, int signo);

/* The child's pid (valid until it is reaped; afterwards the last value). */
LOOM_EXTERN pid_t loom_process_pid(const loom_process_t *proc);

/* 1 once on_exit has run (the child was reaped), else 0. */
LOOM_EXTERN int loom_process_exited(const loom_process_t *proc);

/* Closes the handle (the one close path; harmless twice): on_exit never
 * runs after this, on_close runs at the end of the iteration. A child
 * still running is not killed (see the top of this file). */
LOOM_EXTERN void loom_process_close(loom_process_t *proc);

/* An unref'd running process does not keep the loop alive. Idempotent. */
LOOM_EXTERN void loom_process_unref(loom_process_t *proc);
LOOM_EXTERN void loom_process_ref(loom_process_t *proc);

/* The data slot and the loop. */
LOOM_EXTERN void *loom_process_data(const loom_process_t *proc);
LOOM_EXTERN void loom_process_set_data(loom_process_t *proc, void *data);
LOOM_EXTERN loom_loop_t *loom_process_loop(const loom_process_t *proc);

/* --- Any fd as a stream ----------------------------------------------------- */

/* Terminal window sizes: cb(sock, cols, rows, data). */
typedef void (*loom_tty_resize_cb)(loom_socket_t *sock, int cols, int rows, void *data);

typedef struct loom_stream_opts {
    /* The socket's callbacks and settings, as for loom_tcp_connect() (may
     * be NULL; on_connect is not called: the stream is open at once). */
    const loom_tcp_opts *sock;
    /* Terminals: runs from the loop after SIGWINCH when the window size
     * changed (the loop then owns its SIGWINCH handler; it does not keep
     * the loop alive). */
    loom_tty_resize_cb on_resize;
    /* loom closes the fd with the socket unless this is set; then it is
     * left open (and its O_NONBLOCK flag restored) when the socket closes,
     * as for the process's own 0, 1 and 2. */
    bool keep_fd;
} loom_stream_opts;

/* Wraps an open fd (a pipe or FIFO, a terminal, a character device, a
 * stream socket or socketpair end: stdin and stdout are typical) as a loom
 * socket: reading, writing with backpressure, on_drain, timeouts and the
 * one close path work as for TCP. The fd is made non-blocking. Its access
 * mode decides the start: a write-only fd starts with reading disabled.
 * On a pipe, writes to a closed reader are an EPIPE error event, a
 * LOOM_EV_CONN_ERROR naming the fd ("fd 5 (pipe): reader closed (EPIPE)";
 * SIGPIPE is held off during the write); loom_socket_shutdown() does not end a
 * pipe: close it. Address functions return LOOM_ENOTSOCK on non-sockets.
 * Returns 0, LOOM_EBADF, LOOM_EINVAL for a regular file or a directory
 * (readiness polling cannot watch them: they are always "ready"; read them
 * from the worker pool, loom_work() in loom/loop.h), LOOM_ENOMEM, or
 * LOOM_ECLOSED. On failure the fd is left as it was. */
LOOM_EXTERN int loom_stream_open(loom_loop_t *loop, int fd, const loom_stream_opts *opts,
                                 loom_socket_t **out);

typedef enum loom_tty_mode {
    LOOM_TTY_NORMAL = 0, /* the mode the terminal had when first changed */
    LOOM_TTY_RAW,        /* cfmakeraw(): bytes as typed, no echo, no signals */
    LOOM_TTY_RAW_VT      /* raw, but Ctrl-C and friends still raise signals */
} loom_tty_mode_t;

/* Sets a terminal stream's mode (the first change saves the terminal's
 * mode; LOOM_TTY_NORMAL restores it). Returns 0, LOOM_ENOTSUP (not a
 * terminal), LOOM_ECLOSED, LOOM_EINVAL or a system error. Closing the
 * socket does not restore the mode by itself: set LOOM_TTY_NORMAL first,
 * or call loom_tty_reset_mode(). */
LOOM_EXTERN int loom_tty_set_mode(loom_socket_t *sock, loom_tty_mode_t mode);

/* The terminal's window size. Returns 0, LOOM_ENOTSUP or a system error. */
LOOM_EXTERN int loom_tty_get_winsize(loom_socket_t *sock, int *cols, int *rows);

/* Restores the mode saved by the last loom_tty_set_mode() that changed it
 * (meant for exit paths and signal handlers: any thread, async-signal-safe).
 * Returns 0, or LOOM_ESTATE when no mode was saved. */
LOOM_EXTERN int loom_tty_reset_mode(void);

#ifdef __cplusplus
}
#endif
#endif
