/* proc/process.c - child processes: loom_spawn(), exit through a pidfd or
 * SIGCHLD, kill, and the process handle's one close path.
 *
 * Spawning: everything the child needs (its stdio socketpairs, the fd
 * plan, the environment) is prepared in the parent, then posix_spawn()
 * starts it. glibc's posix_spawn() runs the child on clone(CLONE_VM |
 * CLONE_VFORK) with a stack of its own: no page tables are copied, nothing
 * is allocated and no lock is taken between the clone and the exec, and the
 * exec's error comes back as its return value - so a missing binary is an
 * error of loom_spawn() itself. uid and gid, which posix_spawn() cannot
 * set, take a fork() path whose child makes only async-signal-safe calls
 * and reports a failed exec through a CLOEXEC pipe (libuv's way).
 *
 * The fd plan: the child's fd t (0, 1, 2, then 3... for extra fds) is
 * dup2()ed from a parent fd. A parent fd that is itself one of the targets
 * (and not its own) would be overwritten before its turn, so it is first
 * duplicated above every target (F_DUPFD_CLOEXEC). A target that is its
 * own source (inherited stdio) is dup2(t, t), which clears FD_CLOEXEC.
 *
 * Exit: a pidfd per child (pidfd_open, Linux 5.3), watched by the loop
 * like any fd (readable once the child has ended), then waitpid(pid,
 * WNOHANG) reaps exactly that child. Without pidfds (or with
 * LOOM_TEST_NO_PIDFD set when the loop first spawns, for the tests), one
 * SIGCHLD handler per loop (loom/signal.h, unref'd and owned) triggers
 * waitpid(pid, WNOHANG) for each child the loop watches: O(children) per
 * SIGCHLD, never waitpid(-1).
 *
 * A closed handle whose child runs stays allocated (an "orphan"), watched
 * without callbacks, and is freed when the child is reaped or the loop is
 * freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc/proc_internal.h"

extern char **environ;

enum { LOOM__P_RUNNING = 0, LOOM__P_EXITED, LOOM__P_FOREIGN };

struct loom_process {
    loom__handle h;
    loom__io io;       /* the pidfd (bio.fd -1 without one) */
    loom__queue wnode; /* st->watched while not reaped */
    loom__queue onode; /* st->open while the handle is open */
    loom__proc_state *st;
    pid_t pid;
    int exit_status, term_signal;
    loom_process_exit_cb on_exit;
    loom_process_cb on_close;
    uint8_t state;
    bool orphan; /* closed, child still running: freed when reaped */
};

/* --- Per-loop state ----------------------------------------------------------- */

static void proc_state_free(loom__handle *h)
{
    loom__proc_state *st = h->data;
    st->loop->proc = NULL;
    st->loop->proc_free = NULL;
    st->loop->proc_fork = NULL;
    free(st);
    free(h);
}

static void proc_unwatch(loom_process_t *p);

/* loop->proc_free: the loop's signal handlers are gone already (they were
 * freed before this hook), so they are forgotten, not freed. Open handles
 * close (on_close runs from the closing list, as for sockets); orphans are
 * reaped if they are done and dropped either way: loom_loop_free() cannot
 * wait for them. */
static void proc_loop_free(loom_loop_t *loop)
{
    loom__proc_state *st = loop->proc;
    st->freeing = true;
    st->sigchld = NULL;
    st->sigwinch = NULL;
    loom__pending_cancel(&st->scan);
    while (!loom__queue_empty(&st->open))
        loom_process_close(LOOM__CONTAINER_OF(st->open.next, loom_process_t, onode));
    loom__queue *q = st->watched.next;
    while (q != &st->watched) {
        loom_process_t *p = LOOM__CONTAINER_OF(q, loom_process_t, wnode);
        q = q->next;
        if (p->orphan) {
            int status;
            (void)waitpid(p->pid, &status, WNOHANG);
            proc_unwatch(p);
            free(p);
        }
    }
    loom__handle_close(st->sentinel);
}

/* loop->proc_fork: in the child of a fork(), the parent's children are not
 * ours: stop watching them (their pidfds are the parent's too). */
static void proc_loop_fork(loom_loop_t *loop)
{
    loom__proc_state *st = loop->proc;
    loom__pending_cancel(&st->scan);
    st->scan_queued = false;
    while (!loom__queue_empty(&st->watched)) {
        loom_process_t *p = LOOM__CONTAINER_OF(st->watched.next, loom_process_t, wnode);
        proc_unwatch(p);
        if (p->orphan) {
            free(p);
            continue;
        }
        p->state = LOOM__P_FOREIGN;
        loom__handle_stop(&p->h);
    }
}

static void proc_scan_pending(loom__pending *pe);

loom__proc_state *loom__proc_state_get(loom_loop_t *loop)
{
    if (loop->proc)
        return loop->proc;
    loom__proc_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->sentinel = loom__sentinel_new(loop, st, proc_state_free);
    if (st->sentinel == NULL) {
        free(st);
        return NULL;
    }
    st->loop = loop;
    st->pidfd = -1;
    loom__queue_init(&st->watched);
    loom__queue_init(&st->open);
    loom__queue_init(&st->ttys);
    loom__queue_init(&st->scan.node);
    st->scan.fn = proc_scan_pending;
    loop->proc = st;
    loop->proc_free = proc_loop_free;
    loop->proc_fork = proc_loop_fork;
    return st;
}

/* --- Exit ------------------------------------------------------------------------ */

static void proc_unwatch(loom_process_t *p)
{
    loom_loop_t *loop = p->h.loop;
    if (p->io.bio.fd >= 0) {
        loom__io_set(loop, &p->io, 0);
        loom__io_deinit(loop, &p->io);
        close(p->io.bio.fd);
        p->io.bio.fd = -1;
    }
    loom__queue_remove(&p->wnode);
}

/* Reaps p if it has ended: waitpid() on its pid only. Returns true if it
 * was reaped (p may be freed then: an orphan). */
static bool proc_reap(loom_process_t *p)
{
    int status = 0;
    pid_t r;
    do
        r = waitpid(p->pid, &status, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return false;
    if (r < 0) {
        /* ECHILD: someone else reaped it (a waitpid(-1) of the
         * application's); its status is lost. */
        loom_log(p->h.loop, LOOM_LOG_WARNING, "child %d was reaped by someone else: exit unknown",
                 (int)p->pid);
        status = 0;
    }
    proc_unwatch(p);
    if (p->orphan) {
        free(p);
        return true;
    }
    p->state = LOOM__P_EXITED;
    if (WIFSIGNALED(status))
        p->term_signal = WTERMSIG(status);
    else
        p->exit_status = WEXITSTATUS(status);
    loom__handle_stop(&p->h);
    if (p->on_exit) {
        loom__op_scope sc;
        loom__op_enter(p->h.loop, &sc, NULL, NULL, p);
        p->on_exit(p, p->exit_status, p->term_signal, p->h.data);
        loom__op_leave(p->h.loop, &sc);
    }
    return true;
}

static void proc_pidfd_cb(loom__io *w, unsigned events)
{
    (void)events;
    loom_process_t *p = LOOM__CONTAINER_OF(w, loom_process_t, io);
    (void)proc_reap(p);
}

/* SIGCHLD: every watched child is asked. The list is moved aside first so
 * that on_exit may spawn or close anything. O(children). */
static void proc_scan(loom__proc_state *st)
{
    loom__queue todo;
    loom__queue_init(&todo);
    loom__queue_splice_tail(&todo, &st->watched);
    while (!loom__queue_empty(&todo)) {
        loom_process_t *p = LOOM__CONTAINER_OF(todo.next, loom_process_t, wnode);
        loom__queue_remove(&p->wnode);
        loom__queue_insert_tail(&st->watched, &p->wnode);
        if (p->io.bio.fd < 0)
            (void)proc_reap(p);
    }
}

static void proc_sigchld_cb(loom_signal_t *sig, int signo, void *data)
{
    (void)sig;
    (void)signo;
    proc_scan(data);
}

static void proc_scan_pending(loom__pending *pe)
{
    loom__proc_state *st = LOOM__CONTAINER_OF(pe, loom__proc_state, scan);
    st->scan_queued = false;
    proc_scan(st);
}

/* The loop's SIGCHLD handler, owned by loom: it neither keeps the loop
 * alive nor counts as the application's. */
static int proc_sigchld_install(loom__proc_state *st)
{
    if (st->sigchld)
        return 0;
    int r = loom_signal_handler(st->loop, SIGCHLD, proc_sigchld_cb, st, &st->sigchld);
    if (r < 0)
        return r;
    loom__handle_own((loom__handle *)st->sigchld);
    return 0;
}

static bool proc_have_pidfd(loom__proc_state *st)
{
    if (st->pidfd < 0) {
        const char *no = getenv("LOOM_TEST_NO_PIDFD");
        st->pidfd = 0;
        if (no == NULL || no[0] == '\0' || no[0] == '0') {
            int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
            if (fd >= 0) {
                close(fd);
                st->pidfd = 1;
            }
        }
    }
    return st->pidfd == 1;
}

/* Starts watching p (just spawned): its pidfd, else SIGCHLD. */
static void proc_watch(loom__proc_state *st, loom_process_t *p)
{
    loom_loop_t *loop = st->loop;
    loom__queue_insert_tail(&st->watched, &p->wnode);
    p->io.bio.fd = -1;
    if (st->pidfd == 1) {
        int fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        if (fd >= 0) {
            if (loom__io_init(loop, &p->io, fd, proc_pidfd_cb) == 0) {
                if (loom__io_set(loop, &p->io, LOOM_READABLE) == 0)
                    return;
                loom__io_deinit(loop, &p->io);
            }
            close(fd);
            p->io.bio.fd = -1;
        }
        /* No pidfd for this one (EMFILE...): SIGCHLD, with a scan now in
         * case it has already ended. */
        if (proc_sigchld_install(st) < 0)
            loom_log(loop, LOOM_LOG_ERR, "child %d: no pidfd and no SIGCHLD handler", (int)p->pid);
        if (!st->scan_queued) {
            st->scan_queued = true;
            loom__pending_queue(loop, &st->scan);
        }
    }
    /* Without pidfds the handler was installed before the spawn: a SIGCHLD
     * from this child cannot be missed. */
}

/* --- The handle ------------------------------------------------------------------ */

static void proc_free(loom__handle *h)
{
    loom_process_t *p = (loom_process_t *)h;
    if (p->on_close) {
        loom__op_scope sc;
        loom__op_enter(h->loop, &sc, NULL, NULL, p);
        p->on_close(p, h->data);
        loom__op_leave(h->loop, &sc);
    }
    if (p->state == LOOM__P_RUNNING && !p->st->freeing) {
        p->orphan = true; /* reaped (and freed) later */
        return;
    }
    if (p->state == LOOM__P_RUNNING)
        proc_unwatch(p);
    free(p);
}

void loom_process_close(loom_process_t *p)
{
    if (p == NULL || loom__handle_closing(&p->h))
        return;
    loom__queue_remove(&p->onode);
    loom__handle_close(&p->h);
}

static int proc_signal(loom_process_t *p, pid_t target, int signo)
{
    if (loom__handle_closing(&p->h))
        return LOOM_ECLOSED;
    if (signo < 0 || signo >= NSIG)
        return LOOM_EINVAL;
    if (p->state != LOOM__P_RUNNING)
        return LOOM_ESTATE;
    /* Not reaped yet, so the pid (and its group) cannot have been reused. */
    if (kill(target, signo) < 0)
        return errno == ESRCH ? LOOM_ESTATE : loom__err(errno);
    return 0;
}

int loom_process_kill(loom_process_t *p, int signo)
{
    return proc_signal(p, p->pid, signo);
}

int loom_process_kill_group(loom_process_t *p, int signo)
{
    pid_t g = getpgid(p->pid);
    if (g < 0)
        return p->state != LOOM__P_RUNNING ? LOOM_ESTATE : loom__err(errno);
    if (g == getpgrp())
        return LOOM_EINVAL; /* our own group: not the child's */
    return proc_signal(p, -g, signo);
}

pid_t loom_process_pid(const loom_process_t *p)
{
    return p->pid;
}

int loom_process_exited(const loom_process_t *p)
{
    return p->state == LOOM__P_EXITED;
}

void loom_process_unref(loom_process_t *p)
{
    loom__handle_unref(&p->h);
}

void loom_process_ref(loom_process_t *p)
{
    loom__handle_ref(&p->h);
}

void *loom_process_data(const loom_process_t *p)
{
    return p->h.data;
}

void loom_process_set_data(loom_process_t *p, void *data)
{
    p->h.data = data;
}

loom_loop_t *loom_process_loop(const loom_process_t *p)
{
    return p->h.loop;
}

/* --- Spawning --------------------------------------------------------------------- */

#define LOOM__DEVNULL (-2) /* a plan source: open /dev/null */

typedef struct spawn_plan {
    int n;       /* targets: 3 + extra fds */
    int *src;    /* src[t]: parent fd for child fd t, or LOOM__DEVNULL */
    int *tmp;    /* fds to close after the spawn (-1: none) */
    char **envp; /* the child's environment */
    char **envbuf;
} spawn_plan;

/* The environment for LOOM_ENV_EXTEND: environ without the names `env`
 * sets, then `env`. One array, the strings are not copied. */
static char **spawn_env_extend(char *const *env)
{
    size_t ne = 0, nx = 0;
    while (environ && environ[ne])
        ne++;
    while (env && env[nx])
        nx++;
    char **out = malloc((ne + nx + 1) * sizeof *out);
    if (out == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < ne; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t len = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        bool replaced = false;
        for (size_t j = 0; j < nx && !replaced; j++)
            replaced = strncmp(env[j], environ[i], len) == 0 && env[j][len] == '=';
        if (!replaced)
            out[k++] = environ[i];
    }
    for (size_t j = 0; j < nx; j++)
        out[k++] = env[j];
    out[k] = NULL;
    return out;
}

/* posix_spawn() with the plan. Returns 0 or a positive errno. */
static int spawn_posix(const loom_spawn_opts *o, const spawn_plan *pl, const char *file, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int r = posix_spawn_file_actions_init(&fa);
    if (r)
        return r;
    r = posix_spawnattr_init(&at);
    if (r) {
        posix_spawn_file_actions_destroy(&fa);
        return r;
    }
    short flags = POSIX_SPAWN_SETSIGMASK;
    sigset_t none;
    sigemptyset(&none);
    r = posix_spawnattr_setsigmask(&at, &none);
    if (o->detached)
        flags |= POSIX_SPAWN_SETSID;
    else if (o->set_pgroup) {
        flags |= POSIX_SPAWN_SETPGROUP;
        if (!r)
            r = posix_spawnattr_setpgroup(&at, o->pgroup);
    }
    if (!r)
        r = posix_spawnattr_setflags(&at, flags);
    for (int t = 0; t < pl->n && !r; t++) {
        if (pl->src[t] == LOOM__DEVNULL)
            r = posix_spawn_file_actions_addopen(&fa, t, "/dev/null", t == 0 ? O_RDONLY : O_RDWR,
                                                 0);
        else
            r = posix_spawn_file_actions_adddup2(&fa, pl->src[t], t);
    }
    if (!r && o->cwd)
        r = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    if (!r) {
        if (strchr(file, '/'))
            r = posix_spawn(pid, file, &fa, &at, o->argv, pl->envp);
        else
            r = posix_spawnp(pid, file, &fa, &at, o->argv, pl->envp);
    }
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return r;
}

/* The fork() path's child: async-signal-safe calls only, then exec; a
 * failure is written to `errfd` as an int and the child exits 127. */
static void spawn_child(const loom_spawn_opts *o, const spawn_plan *pl, const char *file, int errfd)
{
    int err = 0;
    sigset_t none;
    /* Handlers of the parent must not run here: back to the defaults
     * (ignored signals stay ignored, as across exec). */
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sigaction(sig, NULL, &sa) == 0 && sa.sa_handler != SIG_IGN &&
            sa.sa_handler != SIG_DFL) {
            sa.sa_handler = SIG_DFL;
            sa.sa_flags = 0;
            sigaction(sig, &sa, NULL);
        }
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (o->detached && setsid() < 0)
        goto fail;
    if (!o->detached && o->set_pgroup && setpgid(0, o->pgroup) < 0)
        goto fail;
    for (int t = 0; t < pl->n; t++) {
        if (pl->src[t] == LOOM__DEVNULL) {
            int fd = open("/dev/null", t == 0 ? O_RDONLY : O_RDWR);
            if (fd < 0)
                goto fail;
            if (fd != t) {
                if (dup2(fd, t) < 0)
                    goto fail;
                close(fd);
            }
        } else if (pl->src[t] == t) {
            int fl = fcntl(t, F_GETFD);
            if (fl < 0 || fcntl(t, F_SETFD, fl & ~FD_CLOEXEC) < 0)
                goto fail;
        } else if (dup2(pl->src[t], t) < 0) {
            goto fail;
        }
    }
    if (o->cwd && chdir(o->cwd) < 0)
        goto fail;
    if (o->set_gid && (setgroups(0, NULL) < 0 || setgid(o->gid) < 0))
        goto fail;
    if (o->set_uid && setuid(o->uid) < 0)
        goto fail;
    if (strchr(file, '/'))
        execve(file, o->argv, pl->envp);
    else
        execvpe(file, o->argv, pl->envp);
fail:
    err = errno;
    (void)!write(errfd, &err, sizeof err);
    _exit(127);
}

/* fork() for uid and gid. Returns 0 or a positive errno. */
static int spawn_fork(const loom_spawn_opts *o, const spawn_plan *pl, const char *file, pid_t *pid)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC) < 0)
        return errno;
    /* Every signal blocked across fork(), so that no handler of ours runs
     * in the child before it resets them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t c = fork();
    if (c == 0) {
        close(ep[0]);
        spawn_child(o, pl, file, ep[1]);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    if (c < 0) {
        close(ep[0]);
        return e;
    }
    int err = 0;
    ssize_t n;
    do
        n = read(ep[0], &err, sizeof err);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof err) {
        /* The exec failed: the child has exited; reap it now. */
        int status;
        while (waitpid(c, &status, 0) < 0 && errno == EINTR)
            ;
        return err ? err : EIO;
    }
    *pid = c;
    return 0;
}

static void spawn_msg(const loom_spawn_opts *o, const char *file, int code, int e)
{
    if (o->errbuf == NULL || o->errbuf_size == 0)
        return;
    /* An errno loom has no code for (ENOEXEC: "exec format error")
     * became LOOM_EIO; the message keeps the system's words. */
    char sys[128];
    const char *why = loom_strerror(code);
    if (code == LOOM_EIO && e != EIO)
        why = strerror_r(e, sys, sizeof sys);
    struct stat stt;
    if (o->cwd && (stat(o->cwd, &stt) < 0 || !S_ISDIR(stt.st_mode)))
        snprintf(o->errbuf, o->errbuf_size, "spawn of %s failed: cwd %s: %s", file, o->cwd, why);
    else
        snprintf(o->errbuf, o->errbuf_size, "spawn of %s failed: %s", file, why);
}

int loom_spawn(loom_loop_t *loop, const loom_spawn_opts *o, loom_process_t **out)
{
    if (out)
        *out = NULL;
    if (o == NULL || o->argv == NULL || o->argv[0] == NULL || o->nextra_fds < 0 ||
        (o->nextra_fds > 0 && o->extra_fds == NULL))
        return LOOM_EINVAL;
    if (o->errbuf && o->errbuf_size)
        o->errbuf[0] = '\0';
    if (loop->freeing)
        return LOOM_ECLOSED;
    const char *file = o->file ? o->file : o->argv[0];
    loom__proc_state *st = loom__proc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    int r = 0;
    if (!proc_have_pidfd(st) && (r = proc_sigchld_install(st)) < 0)
        return r;

    spawn_plan pl = {.n = 3 + o->nextra_fds};
    int src_buf[16], tmp_buf[16];
    int *mem = NULL;
    if (pl.n <= 16) {
        pl.src = src_buf;
        pl.tmp = tmp_buf;
    } else {
        mem = malloc(2 * (size_t)pl.n * sizeof *mem);
        if (mem == NULL)
            return LOOM_ENOMEM;
        pl.src = mem;
        pl.tmp = mem + pl.n;
    }
    int parent_end[3] = {-1, -1, -1}, child_end[3] = {-1, -1, -1};
    loom_socket_t *socks[3] = {NULL, NULL, NULL};
    loom_process_t *p = NULL;
    for (int t = 0; t < pl.n; t++)
        pl.tmp[t] = -1;

    for (int t = 0; t < 3; t++) {
        const loom_stdio_t *sd = &o->stdio[t];
        switch (sd->kind) {
        case LOOM_STDIO_INHERIT:
            /* A parent that has no fd t (a daemon closed it): /dev/null,
             * rather than failing every spawn or handing the child a
             * closed fd that its first open() would take. */
            pl.src[t] = fcntl(t, F_GETFD) < 0 ? LOOM__DEVNULL : t;
            break;
        case LOOM_STDIO_IGNORE:
            pl.src[t] = LOOM__DEVNULL;
            break;
        case LOOM_STDIO_FD:
            if (sd->fd < 0 || fcntl(sd->fd, F_GETFD) < 0) {
                r = LOOM_EBADF;
                goto fail;
            }
            pl.src[t] = sd->fd;
            break;
        case LOOM_STDIO_PIPE: {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
                r = loom__err(errno);
                goto fail;
            }
            parent_end[t] = sv[0];
            child_end[t] = sv[1];
            /* 1 MiB of send buffer each way (AF_UNIX charges the queue to
             * the sender): a child writing bulk output blocks, and wakes
             * its reader, a quarter as often as with the default. */
            int big = 1 << 20;
            (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            (void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof big);
            /* Ours non-blocking; the child's stays blocking, as programs
             * expect of their stdio. */
            int fl = fcntl(sv[0], F_GETFL);
            if (fl < 0 || fcntl(sv[0], F_SETFL, fl | O_NONBLOCK) < 0) {
                r = loom__err(errno);
                goto fail;
            }
            pl.src[t] = sv[1];
            loom__sock_class *cls = loom__proc_class_new(sd->pipe, sizeof *cls);
            if (cls == NULL) {
                r = LOOM_ENOMEM;
                goto fail;
            }
            socks[t] = loom__socket_new(loop, cls, -1);
            if (socks[t] == NULL) {
                free(cls);
                r = LOOM_ENOMEM;
                goto fail;
            }
            break;
        }
        default:
            r = LOOM_EINVAL;
            goto fail;
        }
    }
    for (int k = 0; k < o->nextra_fds; k++) {
        if (o->extra_fds[k] < 0 || fcntl(o->extra_fds[k], F_GETFD) < 0) {
            r = LOOM_EBADF;
            goto fail;
        }
        pl.src[3 + k] = o->extra_fds[k];
    }
    /* Sources that another target would overwrite go above every target. */
    for (int t = 0; t < pl.n; t++) {
        int s = pl.src[t];
        if (s >= 0 && s < pl.n && s != t) {
            int d = fcntl(s, F_DUPFD_CLOEXEC, pl.n);
            if (d < 0) {
                r = loom__err(errno);
                goto fail;
            }
            pl.tmp[t] = d;
            pl.src[t] = d;
        }
    }
    switch (o->env_mode) {
    case LOOM_ENV_INHERIT:
        pl.envp = environ;
        break;
    case LOOM_ENV_REPLACE:
        pl.envp = (char **)(o->env ? o->env : (char *const[]){NULL});
        break;
    case LOOM_ENV_EXTEND:
        pl.envbuf = pl.envp = spawn_env_extend(o->env);
        if (pl.envp == NULL) {
            r = LOOM_ENOMEM;
            goto fail;
        }
        break;
    default:
        r = LOOM_EINVAL;
        goto fail;
    }
    p = calloc(1, sizeof *p);
    if (p == NULL) {
        r = LOOM_ENOMEM;
        goto fail;
    }

    pid_t pid = 0;
    int e = (o->set_uid || o->set_gid) ? spawn_fork(o, &pl, file, &pid)
                                       : spawn_posix(o, &pl, file, &pid);
    if (e != 0) {
        r = loom__err(e);
        spawn_msg(o, file, r, e);
        goto fail;
    }

    /* Started: from here nothing fails. */
    for (int t = 0; t < pl.n; t++)
        if (pl.tmp[t] >= 0)
            close(pl.tmp[t]);
    for (int t = 0; t < 3; t++)
        if (child_end[t] >= 0)
            close(child_end[t]);
    free(pl.envbuf);
    free(mem);

    loom__handle_init(loop, &p->h, LOOM__T_OTHER, proc_free, false);
    loom__handle_start(&p->h);
    p->h.data = o->data;
    p->st = st;
    p->pid = pid;
    p->on_exit = o->on_exit;
    p->on_close = o->on_close;
    loom__queue_insert_tail(&st->open, &p->onode);
    proc_watch(st, p);
    for (int t = 0; t < 3; t++) {
        if (socks[t] == NULL)
            continue;
        if (o->stdio[t].sock)
            *o->stdio[t].sock = socks[t];
        static const char *const which[3] = {"stdin", "stdout", "stderr"};
        loom__proc_class_name(socks[t]->cls, "%s of process %ld (%s)", which[t], (long)pid,
                              o->file ? o->file : o->argv[0]);
        loom__proc_socket_open(socks[t], parent_end[t], false, o->stdio[t].pipe);
    }
    if (out)
        *out = p;
    return 0;

fail:
    free(p);
    for (int t = 0; t < pl.n; t++)
        if (pl.tmp[t] >= 0)
            close(pl.tmp[t]);
    for (int t = 0; t < 3; t++) {
        if (child_end[t] >= 0)
            close(child_end[t]);
        if (socks[t]) {
            /* Never the application's: out of the live count at once. */
            loom__handle_own(&socks[t]->h);
            socks[t]->io.bio.fd = parent_end[t];
            loom__socket_discard(socks[t]); /* closes parent_end[t] */
        } else if (parent_end[t] >= 0) {
            close(parent_end[t]);
        }
    }
    free(pl.envbuf);
    free(mem);
    return r;
}
