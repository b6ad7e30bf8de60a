/* loom-watch - re-runs a command when something under a directory changes,
 * like entr(1).
 *
 *   loom-watch [-d MS] [-g MS] [-p PREFIX] [-q] [-x GLOB]... DIR [DIR...] -- CMD ARGS...
 *
 * The command runs once at the start and again after every burst of
 * changes under the directories (watched recursively), once the burst has
 * been quiet for the debounce time (-d, 100 ms). A run still going when the
 * next one is due is stopped first: SIGTERM to its process group, SIGKILL
 * after the grace time (-g, 2000 ms). Its stdout and stderr are streamed to
 * ours, each line prefixed (-p, "[CMD] ", where CMD is the command's base
 * name). Status lines ("loom-watch: ...") go to stderr; -q keeps only the
 * errors. -x GLOB (repeatable) ignores changes to paths of which a component
 * matches GLOB (-x .git -x '*.swp'). SIGINT or SIGTERM stops the run, waits
 * for it, and exits 0.
 *
 * It is loom's fs watch (loom/fs_watch.h), process spawning with pipes as
 * sockets (loom/process.h), timers and signals, together.
 */
#include <loom.h>
#include <loom/process.h>

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#define LINE_MAX_KEEP (64 * 1024) /* a longer partial line is written as is */

typedef struct run run;

typedef struct out_stream {
    run *r;
    int fd; /* ours: 1 or 2 */
    char *partial;
    size_t len;
    bool open;
} out_stream;

struct run {
    unsigned n;
    loom_process_t *proc;
    out_stream out[2]; /* stdout, stderr */
    bool exited;
    bool closed; /* the process handle */
};

static struct {
    loom_loop_t *loop;
    char **argv;
    const char *prefix;
    size_t prefix_len;
    uint64_t debounce_ms, grace_ms;
    bool quiet;
    const char **excludes; /* -x GLOB */
    int nexcludes;
    loom_timer_t *debounce, *grace;
    run *current;  /* the running command, or NULL */
    unsigned runs; /* started so far */
    bool due;      /* a run is due once the current one has ended */
    bool stopping; /* SIGINT/SIGTERM: no more runs */
    unsigned changes;
    char first_change[512];
    loom_fs_watch_t **watches;
    int nwatches, open_watches;
    loom_signal_t *sigs[2];
    int status;
} g;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    if (g.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("loom-watch: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* our output is gone: nothing to do about it */
        }
        p += w;
        n -= (size_t)w;
    }
}

static void emit_line(out_stream *o, const char *line, size_t n)
{
    struct iovec iov[3] = {{(void *)g.prefix, g.prefix_len}, {(void *)line, n}, {"\n", 1}};
    /* One write per line keeps lines of stdout and stderr whole. */
    char buf[4096];
    size_t total = g.prefix_len + n + 1;
    if (total <= sizeof buf) {
        size_t k = 0;
        for (int i = 0; i < 3; i++) {
            memcpy(buf + k, iov[i].iov_base, iov[i].iov_len);
            k += iov[i].iov_len;
        }
        write_all(o->fd, buf, total);
    } else {
        for (int i = 0; i < 3; i++)
            write_all(o->fd, iov[i].iov_base, iov[i].iov_len);
    }
}

static void flush_partial(out_stream *o)
{
    if (o->len) {
        emit_line(o, o->partial, o->len);
        o->len = 0;
    }
}

static void maybe_free_run(run *r);

static void on_out_read(loom_socket_t *s, const char *bytes, size_t len, void *data)
{
    out_stream *o = data;
    (void)s;
    while (len > 0) {
        const char *nl = memchr(bytes, '\n', len);
        size_t n = nl ? (size_t)(nl - bytes) : len;
        if (nl && o->len == 0) {
            emit_line(o, bytes, n);
        } else {
            char *p = realloc(o->partial, o->len + n);
            if (p == NULL)
                return;
            o->partial = p;
            memcpy(o->partial + o->len, bytes, n);
            o->len += n;
            if (nl || o->len >= LINE_MAX_KEEP)
                flush_partial(o);
        }
        if (!nl)
            break;
        bytes += n + 1;
        len -= n + 1;
    }
}

static void on_out_event(const loom_event_t *ev, void *data)
{
    out_stream *o = data;
    /* eof (the command closed its end) or an error: this stream is done. */
    if (!loom_event_is(ev, LOOM_EV_TCP_EOF))
        say("run %u: output: %s", o->r->n, ev->msg);
    loom_socket_close((loom_socket_t *)ev->object);
}

static void on_out_close(loom_socket_t *s, void *data)
{
    out_stream *o = data;
    (void)s;
    flush_partial(o);
    free(o->partial);
    o->partial = NULL;
    o->open = false;
    maybe_free_run(o->r);
}

static void maybe_free_run(run *r)
{
    if (r->closed && !r->out[0].open && !r->out[1].open)
        free(r);
}

static void start_run(void);

static void on_proc_close(loom_process_t *p, void *data)
{
    run *r = data;
    (void)p;
    r->closed = true;
    maybe_free_run(r);
}

static void stop_all(void)
{
    for (int i = 0; i < g.nwatches; i++) {
        loom_fs_watch_close(g.watches[i]);
        g.watches[i] = NULL;
    }
    g.nwatches = 0;
    loom_timer_close(g.debounce);
    loom_timer_close(g.grace);
    g.debounce = g.grace = NULL;
    for (int i = 0; i < 2; i++) {
        loom_signal_free(g.sigs[i]);
        g.sigs[i] = NULL;
    }
}

static void on_proc_exit(loom_process_t *p, int status, int sig, void *data)
{
    run *r = data;
    r->exited = true;
    if (sig)
        say("run %u killed by signal %d (%s)", r->n, sig, strsignal(sig));
    else
        say("run %u exited with status %d", r->n, status);
    if (g.current == r) {
        g.current = NULL;
        loom_timer_stop(g.grace);
    }
    loom_process_close(p);
    if (g.stopping) {
        stop_all();
        return;
    }
    if (g.due)
        start_run();
}

static void on_grace(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    if (g.current && !g.current->exited) {
        say("run %u still going after %llu ms: SIGKILL", g.current->n,
            (unsigned long long)g.grace_ms);
        loom_process_kill_group(g.current->proc, SIGKILL);
    }
}

/* Stops the current run: SIGTERM now, SIGKILL after the grace time. */
static void stop_current(void)
{
    run *r = g.current;
    if (r == NULL || r->exited)
        return;
    say("stopping run %u (SIGTERM)", r->n);
    if (loom_process_kill_group(r->proc, SIGTERM) < 0)
        loom_process_kill(r->proc, SIGTERM);
    if (!loom_timer_active(g.grace))
        loom_timer_start(g.grace, g.grace_ms, 0);
}

static void start_run(void)
{
    g.due = false;
    run *r = calloc(1, sizeof *r);
    if (r == NULL) {
        fprintf(stderr, "loom-watch: out of memory\n");
        return;
    }
    r->n = ++g.runs;
    loom_socket_t *socks[2] = {NULL, NULL};
    loom_tcp_opts pipe_opts[2];
    for (int i = 0; i < 2; i++) {
        r->out[i] = (out_stream){.r = r, .fd = i + 1};
        pipe_opts[i] = (loom_tcp_opts){.on_read = on_out_read,
                                       .on_event = on_out_event,
                                       .on_close = on_out_close,
                                       .data = &r->out[i]};
    }
    char err[512] = "";
    loom_spawn_opts so = {
        .argv = g.argv,
        .set_pgroup = true, /* its own group: stopping it stops what it started */
        .stdio = {{.kind = LOOM_STDIO_INHERIT},
                  {.kind = LOOM_STDIO_PIPE, .pipe = &pipe_opts[0], .sock = &socks[0]},
                  {.kind = LOOM_STDIO_PIPE, .pipe = &pipe_opts[1], .sock = &socks[1]}},
        .on_exit = on_proc_exit,
        .on_close = on_proc_close,
        .data = r,
        .errbuf = err,
        .errbuf_size = sizeof err,
    };
    if (g.changes)
        say("run %u after %u change%s (%s%s)", r->n, g.changes, g.changes == 1 ? "" : "s",
            g.first_change, g.changes > 1 ? ", ..." : "");
    else
        say("run %u", r->n);
    g.changes = 0;
    int rc = loom_spawn(g.loop, &so, &r->proc);
    if (rc < 0) {
        fprintf(stderr, "loom-watch: %s\n", err[0] ? err : loom_strerror(rc));
        free(r);
        return; /* the next change tries again */
    }
    r->out[0].open = r->out[1].open = true;
    g.current = r;
}

static void on_debounce(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    if (g.stopping)
        return;
    if (g.current) {
        g.due = true;
        stop_current();
    } else {
        start_run();
    }
}

/* -x GLOB: the path, or one of its components, matches a pattern. */
static bool excluded(const char *path)
{
    if (path == NULL || g.nexcludes == 0)
        return false;
    for (int i = 0; i < g.nexcludes; i++) {
        if (fnmatch(g.excludes[i], path, 0) == 0)
            return true;
        char comp[NAME_MAX + 1];
        for (const char *p = path; *p;) {
            const char *e = strchr(p, '/');
            size_t n = e ? (size_t)(e - p) : strlen(p);
            if (n < sizeof comp) {
                memcpy(comp, p, n);
                comp[n] = 0;
                if (fnmatch(g.excludes[i], comp, 0) == 0)
                    return true;
            }
            p += n + (e != NULL);
        }
    }
    return false;
}

static void on_change(loom_fs_watch_t *w, const loom_fs_event_t *ev, void *data)
{
    const char *root = data;
    switch (ev->type) {
    case LOOM_FS_CLOSED:
        /* Closed by stop_all(), or its root went away (deleted, moved). */
        for (int i = 0; i < g.nwatches; i++) {
            if (g.watches[i] == w) {
                g.watches[i] = NULL;
                if (--g.open_watches == 0 && !g.stopping) {
                    fprintf(stderr, "loom-watch: nothing left to watch\n");
                    g.status = 1;
                    g.stopping = true;
                    if (g.current)
                        stop_current(); /* on_proc_exit() stops the rest */
                    else
                        stop_all();
                }
            }
        }
        return;
    case LOOM_FS_ERROR:
        fprintf(stderr, "loom-watch: %s\n", ev->msg);
        return;
    case LOOM_FS_OVERFLOW:
        say("%s: too many changes at once (events were lost)", root);
        break;
    default:
        break;
    }
    if (ev->path[0] && excluded(ev->path) && (ev->to == NULL || excluded(ev->to)))
        return;
    if ((ev->type == LOOM_FS_DELETE || ev->type == LOOM_FS_MOVED_OUT) && ev->path[0] == 0) {
        fprintf(stderr, "loom-watch: %s was %s\n", loom_fs_watch_path(w),
                ev->type == LOOM_FS_DELETE ? "deleted" : "moved away");
        return;
    }
    if (g.changes++ == 0)
        snprintf(g.first_change, sizeof g.first_change, "%s %s%s%s", loom_fs_event_name(ev->type),
                 root, ev->path[0] ? "/" : "", ev->path);
    loom_timer_start(g.debounce, g.debounce_ms, 0);
}

static void on_signal(loom_signal_t *s, int signo, void *data)
{
    (void)s;
    (void)data;
    if (g.stopping) {
        /* A second ^C: no more waiting. */
        if (g.current)
            loom_process_kill_group(g.current->proc, SIGKILL);
        return;
    }
    say("%s: stopping", strsignal(signo));
    g.stopping = true;
    if (g.current) {
        stop_current();
        return; /* on_proc_exit() stops the rest */
    }
    stop_all();
}

static void on_log(int level, const char *msg, void *data)
{
    (void)data;
    if (level <= LOOM_LOG_ERR)
        fprintf(stderr, "loom-watch: %s\n", msg);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: loom-watch [-d MS] [-g MS] [-p PREFIX] [-q] [-x GLOB]... DIR [DIR...] -- CMD "
            "[ARGS...]\n"
            "  re-runs CMD when something under a DIR changes\n"
            "  -d MS      debounce: wait for MS quiet milliseconds (default 100)\n"
            "  -g MS      grace between SIGTERM and SIGKILL (default 2000)\n"
            "  -p PREFIX  prefix of CMD's output lines (default \"[CMD] \")\n"
            "  -q         quiet: no status lines\n"
            "  -x GLOB    ignore changes to paths with a component matching GLOB\n"
            "             (repeatable: -x .git -x '*.swp')\n");
    return 2;
}

static bool parse_ms(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || v > 86400000ull)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    g.debounce_ms = 100;
    g.grace_ms = 2000;
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && strcmp(argv[i], "--") != 0; i++) {
        const char *o = argv[i];
        if (strcmp(o, "-q") == 0) {
            g.quiet = true;
        } else if (strcmp(o, "-x") == 0 && i + 1 < argc) {
            const char **x = realloc(g.excludes, (size_t)(g.nexcludes + 1) * sizeof *x);
            if (x == NULL)
                return 1;
            g.excludes = x;
            g.excludes[g.nexcludes++] = argv[++i];
        } else if ((strcmp(o, "-d") == 0 || strcmp(o, "-g") == 0) && i + 1 < argc) {
            if (!parse_ms(argv[++i], o[1] == 'd' ? &g.debounce_ms : &g.grace_ms))
                return usage();
        } else if (strcmp(o, "-p") == 0 && i + 1 < argc) {
            g.prefix = argv[++i];
        } else {
            return usage();
        }
    }
    int dirs = i;
    while (i < argc && strcmp(argv[i], "--") != 0)
        i++;
    int ndirs = i - dirs;
    if (ndirs == 0 || i + 1 >= argc)
        return usage();
    g.argv = argv + i + 1;
    char defprefix[256];
    if (g.prefix == NULL) {
        const char *base = strrchr(g.argv[0], '/');
        snprintf(defprefix, sizeof defprefix, "[%s] ", base ? base + 1 : g.argv[0]);
        g.prefix = defprefix;
    }
    g.prefix_len = strlen(g.prefix);

    int rc = loom_loop_new(&g.loop, &(loom_loop_opts){.on_log = on_log});
    if (rc < 0) {
        fprintf(stderr, "loom-watch: cannot create a loop: %s\n", loom_strerror(rc));
        return 1;
    }
    g.watches = calloc((size_t)ndirs, sizeof *g.watches);
    if (g.watches == NULL)
        return 1;
    for (int k = 0; k < ndirs; k++) {
        rc = loom_fs_watch(g.loop, argv[dirs + k], LOOM_FS_WATCH_RECURSIVE, on_change,
                           argv[dirs + k], &g.watches[k]);
        if (rc < 0) {
            /* The logger said which path and why. */
            loom_loop_free(g.loop);
            return 1;
        }
        g.nwatches++;
        g.open_watches++;
        say("watching %s (%zu director%s)", argv[dirs + k], loom_fs_watch_dirs(g.watches[k]),
            loom_fs_watch_dirs(g.watches[k]) == 1 ? "y" : "ies");
    }
    if (loom_timer_new(g.loop, &g.debounce, on_debounce, NULL) < 0 ||
        loom_timer_new(g.loop, &g.grace, on_grace, NULL) < 0 ||
        loom_signal_handler(g.loop, SIGINT, on_signal, NULL, &g.sigs[0]) < 0 ||
        loom_signal_handler(g.loop, SIGTERM, on_signal, NULL, &g.sigs[1]) < 0) {
        fprintf(stderr, "loom-watch: cannot set up timers and signals\n");
        loom_loop_free(g.loop);
        return 1;
    }
    /* Output to a closed pipe must not kill us mid-run. */
    signal(SIGPIPE, SIG_IGN);
    start_run();
    rc = loom_run(g.loop, LOOM_RUN_DEFAULT);
    loom_loop_free(g.loop);
    free(g.watches);
    free(g.excludes);
    if (rc < 0) {
        fprintf(stderr, "loom-watch: %s\n", loom_strerror(rc));
        return 1;
    }
    return g.status;
}
