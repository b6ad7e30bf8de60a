/* tests/proc/test_spawn.c - child processes: /bin/cat piping 8 MiB both
 * ways, exit codes and signals, a missing binary and a bad cwd (synchronous
 * errors naming the path), env and cwd and extra fds, 1,000 spawns with no
 * fd and no zombie left, a child that closes its stdout early, a write to
 * the stdin of a child that has exited (EPIPE naming the pipe and the
 * process), spawning from
 * a worker-pool done callback, closing a running handle (the child is still
 * reaped), loom_loop_fork(), and all of it again through SIGCHLD instead of
 * pidfds (LOOM_TEST_NO_PIDFD). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int count_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Children of ours that are zombies (state Z in /proc/<pid>/stat). */
static int count_zombies(void)
{
    int n = 0;
    DIR *d = opendir("/proc");
    CHECK(d != NULL);
    struct dirent *e;
    char path[300], buf[512];
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[len] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() && state == 'Z')
            n++;
    }
    closedir(d);
    return n;
}

/* --- Exit codes and signals ----------------------------------------------------- */

typedef struct {
    int exits, closes;
    int status, sig;
} ex_t;

static void ex_exit(loom_process_t *p, int status, int sig, void *data)
{
    ex_t *e = data;
    e->exits++;
    e->status = status;
    e->sig = sig;
    CHECK(loom_process_exited(p));
    CHECK_EQ(loom_process_kill(p, SIGTERM), LOOM_ESTATE);
    loom_process_close(p);
}

static void ex_close(loom_process_t *p, void *data)
{
    (void)p;
    ((ex_t *)data)->closes++;
}

static void test_exit_codes(void)
{
    loom_loop_t *loop = test_loop_new();
    ex_t e[3] = {{0}};
    char *a0[] = {"/bin/sh", "-c", "exit 7", NULL};
    char *a1[] = {"/bin/sleep", "10", NULL};
    char *a2[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    loom_process_t *p1;
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = a0, .on_exit = ex_exit, .on_close = ex_close, .data = &e[0]},
        NULL));
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = a1, .on_exit = ex_exit, .on_close = ex_close, .data = &e[1]},
        &p1));
    CHECK(loom_process_pid(p1) > 0);
    CHECK_OK(loom_process_kill(p1, 0));
    CHECK_OK(loom_process_kill(p1, SIGTERM));
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = a2, .on_exit = ex_exit, .on_close = ex_close, .data = &e[2]},
        NULL));
    /* A group of its own: loom_process_kill_group() reaches the shell and
     * its child; a child in our own group is refused. */
    ex_t g = {0}, g4 = {0};
    char *a3[] = {"/bin/sh", "-c", "sleep 10 & wait", NULL};
    loom_process_t *p3, *p4;
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){
            .argv = a3, .set_pgroup = true, .on_exit = ex_exit, .on_close = ex_close, .data = &g},
        &p3));
    CHECK_OK(loom_spawn(
        loop, &(loom_spawn_opts){.argv = a1, .on_exit = ex_exit, .on_close = ex_close, .data = &g4},
        &p4));
    CHECK_EQ(loom_process_kill_group(p4, SIGTERM), LOOM_EINVAL); /* shares ours */
    CHECK_OK(loom_process_kill(p4, SIGKILL));
    /* setpgid happens in the child before exec: once the pid leads its
     * group, signal the group. */
    for (int i = 0; i < 1000 && getpgid(loom_process_pid(p3)) != loom_process_pid(p3); i++)
        usleep(1000);
    CHECK_OK(loom_process_kill_group(p3, SIGTERM));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(e[i].exits, 1);
        CHECK_EQ(e[i].closes, 1);
    }
    CHECK_EQ(e[0].status, 7);
    CHECK_EQ(e[0].sig, 0);
    CHECK_EQ(e[1].sig, SIGTERM);
    CHECK_EQ(e[2].sig, SIGKILL);
    CHECK_EQ(g.exits, 1);
    CHECK_EQ(g.sig, SIGTERM);
    CHECK_EQ(g.closes, 1);
    CHECK_EQ(g4.exits, 1);
    CHECK_EQ(g4.sig, SIGKILL);
    CHECK_EQ(g4.closes, 1);
    test_loop_free_clean(loop);
}

/* --- Synchronous errors ----------------------------------------------------------- */

static void test_errors(void)
{
    loom_loop_t *loop = test_loop_new();
    char msg[256];
    /* The baseline after the loop's first spawn (without pidfds, that
     * installs its SIGCHLD handler and the signal pipe). */
    char *z[] = {"/no/such", NULL};
    CHECK_EQ(loom_spawn(loop, &(loom_spawn_opts){.argv = z}, NULL), LOOM_ENOENT);
    int fds = count_fds();
    char *a[] = {"/no/such/binary", NULL};
    loom_socket_t *out = NULL;
    int r = loom_spawn(loop,
                       &(loom_spawn_opts){.argv = a,
                                          .stdio[1] = {.kind = LOOM_STDIO_PIPE, .sock = &out},
                                          .errbuf = msg,
                                          .errbuf_size = sizeof msg},
                       NULL);
    CHECK_EQ(r, LOOM_ENOENT);
    CHECK(out == NULL);
    CHECK(strstr(msg, "/no/such/binary") != NULL);
    char *b[] = {"no-such-program-in-path-xyz", NULL};
    CHECK_EQ(loom_spawn(loop, &(loom_spawn_opts){.argv = b}, NULL), LOOM_ENOENT);
    char *c[] = {"/bin/true", NULL};
    r = loom_spawn(loop,
                   &(loom_spawn_opts){
                       .argv = c, .cwd = "/no/such/dir", .errbuf = msg, .errbuf_size = sizeof msg},
                   NULL);
    CHECK_EQ(r, LOOM_ENOENT);
    CHECK(strstr(msg, "cwd /no/such/dir") != NULL);
    /* Not executable (mode 0644; EACCES even for root). */
    char path[64];
    snprintf(path, sizeof path, "/tmp/loom-spawn-%d.txt", (int)getpid());
    int tf = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(tf >= 0);
    close(tf);
    char *d[] = {path, NULL};
    r = loom_spawn(loop, &(loom_spawn_opts){.argv = d, .errbuf = msg, .errbuf_size = sizeof msg},
                   NULL);
    unlink(path);
    CHECK_EQ(r, LOOM_EACCES);
    CHECK(strstr(msg, path) != NULL);
    /* Executable but no program: ENOEXEC has no loom code (LOOM_EIO), the
     * message keeps the system's words. */
    tf = open(path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0755);
    CHECK(tf >= 0);
    CHECK_EQ(write(tf,
                   "\x7f"
                   "ELF junk",
                   9),
             9);
    close(tf);
    r = loom_spawn(loop, &(loom_spawn_opts){.argv = d, .errbuf = msg, .errbuf_size = sizeof msg},
                   NULL);
    unlink(path);
    CHECK_EQ(r, LOOM_EIO);
    CHECK(strstr(msg, "format") != NULL);
    CHECK_EQ(loom_spawn(loop, &(loom_spawn_opts){.argv = NULL}, NULL), LOOM_EINVAL);
    CHECK_EQ(
        loom_spawn(loop,
                   &(loom_spawn_opts){.argv = c, .stdio[0] = {.kind = LOOM_STDIO_FD, .fd = 999}},
                   NULL),
        LOOM_EBADF);
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(count_zombies(), 0);
    test_loop_free_clean(loop);
}

/* --- /bin/cat, 8 MiB both ways -------------------------------------------------------- */

#define CAT_BYTES (8u << 20)

typedef struct {
    loom_socket_t *in, *out;
    size_t sent, got;
    uint32_t sum_sent, sum_got;
    int drains, eof, exits, closes;
    int status;
} cat_t;

static uint8_t pattern(size_t i)
{
    return (uint8_t)((i * 7) ^ (i >> 11));
}

static void cat_pump(cat_t *c)
{
    static char chunk[65536];
    while (c->sent < CAT_BYTES) {
        size_t n = CAT_BYTES - c->sent < sizeof chunk ? CAT_BYTES - c->sent : sizeof chunk;
        for (size_t i = 0; i < n; i++) {
            chunk[i] = (char)pattern(c->sent + i);
            c->sum_sent = c->sum_sent * 31 + (uint8_t)chunk[i];
        }
        c->sent += n;
        int r = loom_socket_write(c->in, chunk, n);
        CHECK(r >= 0);
        if (r == 1)
            return; /* high water: on_drain resumes */
    }
    CHECK_OK(loom_socket_shutdown(c->in)); /* cat sees eof */
}

static void cat_drain(loom_socket_t *s, void *data)
{
    (void)s;
    cat_t *c = data;
    c->drains++;
    cat_pump(c);
}

static void cat_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    cat_t *c = data;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ((uint8_t)b[i], pattern(c->got + i));
        c->sum_got = c->sum_got * 31 + (uint8_t)b[i];
    }
    c->got += n;
}

static void cat_event(const loom_event_t *ev, void *data)
{
    cat_t *c = data;
    if (ev->kind == LOOM_EV_TCP_EOF) {
        c->eof++;
        return;
    }
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "cat event: %s %s\n", loom_event_kind_name(ev->kind), ev->msg);
    CHECK(0);
}

static void cat_exit(loom_process_t *p, int status, int sig, void *data)
{
    cat_t *c = data;
    c->exits++;
    c->status = status + sig * 1000;
    loom_process_close(p);
}

static void cat_sock_close(loom_socket_t *s, void *data)
{
    (void)s;
    ((cat_t *)data)->closes++;
}

static void test_cat(void)
{
    loom_loop_t *loop = test_loop_new();
    cat_t c = {0};
    char *argv[] = {"cat", NULL};
    loom_tcp_opts in_o = {.on_drain = cat_drain,
                          .on_event = cat_event,
                          .on_close = cat_sock_close,
                          .high_water = 256 * 1024,
                          .data = &c};
    loom_tcp_opts out_o = {
        .on_read = cat_read, .on_event = cat_event, .on_close = cat_sock_close, .data = &c};
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = argv,
                           .stdio = {{.kind = LOOM_STDIO_PIPE, .pipe = &in_o, .sock = &c.in},
                                     {.kind = LOOM_STDIO_PIPE, .pipe = &out_o, .sock = &c.out},
                                     {.kind = LOOM_STDIO_INHERIT}},
                           .on_exit = cat_exit,
                           .data = &c},
        NULL));
    CHECK(c.in != NULL && c.out != NULL);
    cat_pump(&c);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.got, CAT_BYTES);
    CHECK_EQ(c.sum_got, c.sum_sent);
    CHECK(c.drains > 0); /* backpressure was met */
    /* Both ends read eof when cat exits (stdin's too: it is a socketpair
     * still open for reading), and close. */
    CHECK_EQ(c.eof, 2);
    CHECK_EQ(c.exits, 1);
    CHECK_EQ(c.status, 0);
    CHECK_EQ(c.closes, 2);
    test_loop_free_clean(loop);
}

/* --- env, cwd, extra fds, ignore, redirect -------------------------------------------- */

typedef struct {
    char buf[4096];
    size_t len;
    int exits;
} cap_t;

static void cap_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    cap_t *c = data;
    CHECK(c->len + n < sizeof c->buf);
    memcpy(c->buf + c->len, b, n);
    c->len += n;
}

static void cap_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
}

static void cap_exit(loom_process_t *p, int status, int sig, void *data)
{
    cap_t *c = data;
    CHECK_EQ(status, 0);
    CHECK_EQ(sig, 0);
    c->exits++;
    loom_process_close(p);
}

static void run_capture(loom_loop_t *loop, loom_spawn_opts *o, cap_t *c)
{
    loom_tcp_opts po = {.on_read = cap_read, .on_event = cap_event, .data = c};
    o->stdio[1] = (loom_stdio_t){.kind = LOOM_STDIO_PIPE, .pipe = &po};
    o->on_exit = cap_exit;
    o->data = c;
    CHECK_OK(loom_spawn(loop, o, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c->exits, 1);
    c->buf[c->len] = '\0';
}

static void test_options(void)
{
    loom_loop_t *loop = test_loop_new();
    /* env replace */
    cap_t c1 = {0};
    char *a1[] = {"/bin/sh", "-c", "echo \"$FOO/$HOME\"", NULL};
    char *env1[] = {"FOO=bar", NULL};
    run_capture(loop, &(loom_spawn_opts){.argv = a1, .env = env1, .env_mode = LOOM_ENV_REPLACE},
                &c1);
    CHECK_STR(c1.buf, "bar/\n");
    /* env extend: the parent's stays, FOO added, LOOM_T_X replaced */
    setenv("LOOM_T_X", "old", 1);
    cap_t c2 = {0};
    char *a2[] = {"/bin/sh", "-c", "echo \"$FOO/$LOOM_T_X/${PATH:+path}\"", NULL};
    char *env2[] = {"FOO=baz", "LOOM_T_X=new", NULL};
    run_capture(loop, &(loom_spawn_opts){.argv = a2, .env = env2, .env_mode = LOOM_ENV_EXTEND},
                &c2);
    CHECK_STR(c2.buf, "baz/new/path\n");
    /* cwd */
    cap_t c3 = {0};
    char *a3[] = {"pwd", NULL};
    run_capture(loop, &(loom_spawn_opts){.argv = a3, .cwd = "/"}, &c3);
    CHECK_STR(c3.buf, "/\n");
    /* Inheriting an fd the parent does not have: /dev/null. */
    int saved0 = dup(0);
    CHECK(saved0 >= 0);
    close(0);
    cap_t c3b = {0};
    char *a3b[] = {"/bin/sh", "-c", "cat; echo done", NULL};
    run_capture(loop, &(loom_spawn_opts){.argv = a3b}, &c3b);
    CHECK_EQ(dup2(saved0, 0), 0);
    close(saved0);
    CHECK_STR(c3b.buf, "done\n");
    /* extra fds: the child writes to its fd 3, the write end of our pipe;
     * its stdin ignored (reads eof), stderr redirected to the same pipe. */
    int pp[2];
    CHECK_OK(pipe2(pp, O_CLOEXEC));
    cap_t c4 = {0};
    char *a4[] = {"/bin/sh", "-c", "echo three >&3; echo two >&2; cat; echo one", NULL};
    run_capture(loop,
                &(loom_spawn_opts){.argv = a4,
                                   .stdio[0] = {.kind = LOOM_STDIO_IGNORE},
                                   .stdio[2] = {.kind = LOOM_STDIO_FD, .fd = pp[1]},
                                   .extra_fds = &pp[1],
                                   .nextra_fds = 1},
                &c4);
    CHECK_STR(c4.buf, "one\n");
    close(pp[1]);
    char got[64] = {0};
    size_t n = 0;
    ssize_t k;
    while ((k = read(pp[0], got + n, sizeof got - 1 - n)) > 0)
        n += (size_t)k;
    close(pp[0]);
    CHECK_STR(got, "three\ntwo\n");
    /* detached: its own session */
    cap_t c5 = {0};
    char *a5[] = {"/bin/sh", "-c", "ps -o sid= -p $$ 2>/dev/null || cat /proc/$$/stat", NULL};
    (void)a5;
    char *a6[] = {"/bin/sh", "-c", "echo $$ $(cut -d' ' -f6 /proc/$$/stat)", NULL};
    run_capture(loop, &(loom_spawn_opts){.argv = a6, .detached = true}, &c5);
    int pid = 0, sid = 0;
    CHECK_EQ(sscanf(c5.buf, "%d %d", &pid, &sid), 2);
    CHECK_EQ(pid, sid);
    /* uid and gid (the fork path): as root only. Its exec errors are
     * synchronous too. */
    if (geteuid() == 0) {
        cap_t c6 = {0};
        char *a7[] = {"/bin/sh", "-c", "echo $(id -u) $(id -g) $FOO", NULL};
        char *env7[] = {"FOO=x", NULL};
        run_capture(loop,
                    &(loom_spawn_opts){.argv = a7,
                                       .set_uid = true,
                                       .uid = 65534,
                                       .set_gid = true,
                                       .gid = 65534,
                                       .env = env7,
                                       .env_mode = LOOM_ENV_EXTEND,
                                       .stdio[0] = {.kind = LOOM_STDIO_IGNORE}},
                    &c6);
        CHECK_STR(c6.buf, "65534 65534 x\n");
        char *a8[] = {"/no/such/prog", NULL};
        char msg[200];
        CHECK_EQ(loom_spawn(loop,
                            &(loom_spawn_opts){.argv = a8,
                                               .set_uid = true,
                                               .uid = 65534,
                                               .errbuf = msg,
                                               .errbuf_size = sizeof msg},
                            NULL),
                 LOOM_ENOENT);
        CHECK(strstr(msg, "/no/such/prog") != NULL);
        CHECK_EQ(count_zombies(), 0);
    }
    test_loop_free_clean(loop);
}

/* --- 1,000 spawns --------------------------------------------------------------------- */

typedef struct {
    loom_loop_t *loop;
    int started, exited, total, inflight;
} many_t;

static void many_exit(loom_process_t *p, int status, int sig, void *data);

static void many_start(many_t *m)
{
    static char *argv[] = {"/bin/true", NULL};
    while (m->started < m->total && m->inflight < 32) {
        loom_socket_t *o = NULL;
        loom_tcp_opts po = {0};
        /* every fourth child with a stdout pipe: no fd may leak either */
        bool pipe = m->started % 4 == 0;
        CHECK_OK(loom_spawn(
            m->loop,
            &(loom_spawn_opts){.argv = argv,
                               .stdio[1] = {.kind = pipe ? LOOM_STDIO_PIPE : LOOM_STDIO_IGNORE,
                                            .pipe = &po,
                                            .sock = &o},
                               .on_exit = many_exit,
                               .data = m},
            NULL));
        if (pipe)
            CHECK(o != NULL);
        m->started++;
        m->inflight++;
    }
}

static void many_exit(loom_process_t *p, int status, int sig, void *data)
{
    many_t *m = data;
    CHECK_EQ(status, 0);
    CHECK_EQ(sig, 0);
    m->exited++;
    m->inflight--;
    loom_process_close(p);
    many_start(m);
}

static void many_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK_EQ(ev->kind, LOOM_EV_TCP_EOF);
}

static void test_many(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = many_event}));
    char *z[] = {"/no/such", NULL};
    CHECK_EQ(loom_spawn(loop, &(loom_spawn_opts){.argv = z}, NULL), LOOM_ENOENT);
    int fds = count_fds(); /* after the first spawn: see test_errors */
    /* 1,000 once (pidfds, the default backend); spawning costs a few ms
     * per child on a loaded machine, so the other backends and the
     * SIGCHLD pass run 50. */
    const char *be = getenv("LOOM_BACKEND");
    bool full = (be == NULL || strcmp(be, "epoll") == 0) && getenv("LOOM_TEST_NO_PIDFD") == NULL;
    many_t m = {.loop = loop, .total = full ? 1000 : 50};
    many_start(&m);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(m.exited, m.total);
    CHECK_EQ(count_fds(), fds);
    CHECK_EQ(count_zombies(), 0);
    test_loop_free_clean(loop);
}

/* --- A child that closes its stdout early ----------------------------------------------- */

typedef struct {
    int eof, exits, errs, closes;
    size_t got;
} early_t;

static void early_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    (void)b;
    ((early_t *)data)->got += n;
}

static void early_event(const loom_event_t *ev, void *data)
{
    early_t *e = data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        e->eof++;
    else
        e->errs++;
}

static void early_exit(loom_process_t *p, int status, int sig, void *data)
{
    early_t *e = data;
    CHECK_EQ(status, 3);
    CHECK_EQ(sig, 0);
    e->exits++;
    loom_process_close(p);
}

static void early_close(loom_socket_t *s, void *data)
{
    (void)s;
    ((early_t *)data)->closes++;
}

static void test_early_close(void)
{
    loom_loop_t *loop = test_loop_new();
    early_t e = {0};
    /* Closes stdout, then keeps running for a while: eof arrives long
     * before the exit. Its stdin is a pipe we write into after it closed
     * its stdout, which must not hurt either. */
    char *argv[] = {"/bin/sh", "-c", "echo hi; exec 1>&-; sleep 0.2; exit 3", NULL};
    loom_tcp_opts po = {
        .on_read = early_read, .on_event = early_event, .on_close = early_close, .data = &e};
    loom_socket_t *in = NULL;
    loom_tcp_opts io = {.on_event = early_event, .on_close = early_close, .data = &e};
    CHECK_OK(
        loom_spawn(loop,
                   &(loom_spawn_opts){.argv = argv,
                                      .stdio = {{.kind = LOOM_STDIO_PIPE, .pipe = &io, .sock = &in},
                                                {.kind = LOOM_STDIO_PIPE, .pipe = &po}},
                                      .on_exit = early_exit,
                                      .data = &e},
                   NULL));
    CHECK(loom_socket_write(in, "data", 4) >= 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(e.got, 3);
    CHECK_EQ(e.exits, 1);
    CHECK_EQ(e.closes, 2);
    test_loop_free_clean(loop);
}

/* --- Writing to a child that has gone ------------------------------------------------------ */

/* The child exits without reading its stdin; a write after the exit fails
 * with EPIPE, an event whose message names the pipe and the process (a
 * socketpair end has no peer address to name). */
typedef struct {
    loom_socket_t *in;
    pid_t pid;
    int errs, closes, exits;
    int want_code;
    const char *late; /* written after the exit (NULL: a big write) */
    char msg[256];
} gone_t;

static void gone_event(const loom_event_t *ev, void *data)
{
    gone_t *g = data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        return; /* the child's end closed (half open: stays writable until EPIPE) */
    CHECK(loom_event_is_error(ev));
    /* A closed pipe, not a tcp reset. */
    CHECK_EQ(ev->kind, LOOM_EV_CONN_ERROR);
    CHECK_EQ(ev->code, g->want_code);
    g->errs++;
    snprintf(g->msg, sizeof g->msg, "%s", ev->msg);
}

static void gone_close(loom_socket_t *s, void *data)
{
    (void)s;
    ((gone_t *)data)->closes++;
}

static void gone_exit(loom_process_t *p, int status, int sig, void *data)
{
    (void)status, (void)sig;
    gone_t *g = data;
    g->exits++;
    g->pid = loom_process_pid(p);
    static char big[256 * 1024];
    if (g->want_code == LOOM_EPIPE)
        CHECK(loom_socket_write(g->in, big, sizeof big) >= 0);
    loom_process_close(p);
}

static void test_stdin_gone(void)
{
    loom_loop_t *loop = test_loop_new();
    gone_t g = {.want_code = LOOM_EPIPE};
    char *argv[] = {"true", NULL};
    loom_tcp_opts io = {
        .on_event = gone_event, .on_close = gone_close, .allow_half_open = true, .data = &g};
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = argv,
                           .stdio = {{.kind = LOOM_STDIO_PIPE, .pipe = &io, .sock = &g.in}},
                           .on_exit = gone_exit,
                           .data = &g},
        NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(g.exits, 1);
    CHECK_EQ(g.errs, 1);
    CHECK_EQ(g.closes, 1);
    char want[96];
    snprintf(want, sizeof want, "stdin of process %ld (true): reader closed (EPIPE)", (long)g.pid);
    if (strcmp(g.msg, want) != 0) {
        fprintf(stderr, "stdin EPIPE message \"%s\", want \"%s\"\n", g.msg, want);
        exit(1);
    }
    test_loop_free_clean(loop);
}

/* The child reads one line (sh's read takes it byte by byte) and exits
 * with the rest of its input unread: its end of the socketpair resets
 * ours (ECONNRESET), again a closed pipe naming the process. */
static void test_stdin_unread(void)
{
    loom_loop_t *loop = test_loop_new();
    gone_t g = {.want_code = LOOM_ECONNRESET};
    char *argv[] = {"sh", "-c", "read x", NULL};
    loom_tcp_opts io = {
        .on_event = gone_event, .on_close = gone_close, .allow_half_open = true, .data = &g};
    CHECK_OK(loom_spawn(
        loop,
        &(loom_spawn_opts){.argv = argv,
                           .stdio = {{.kind = LOOM_STDIO_PIPE, .pipe = &io, .sock = &g.in}},
                           .on_exit = gone_exit,
                           .data = &g},
        NULL));
    CHECK(loom_socket_write(g.in, "line\nunread\n", 12) >= 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(g.exits, 1);
    CHECK_EQ(g.errs, 1);
    CHECK_EQ(g.closes, 1);
    char want[128];
    snprintf(want, sizeof want,
             "stdin of process %ld (sh): reader closed with data unread (ECONNRESET)", (long)g.pid);
    if (strcmp(g.msg, want) != 0) {
        fprintf(stderr, "stdin ECONNRESET message \"%s\", want \"%s\"\n", g.msg, want);
        exit(1);
    }
    test_loop_free_clean(loop);
}

/* --- Spawning from a worker-pool done callback ------------------------------------------- */

static int w_exits;
static pthread_t w_loop_thread;

static void w_exit(loom_process_t *p, int status, int sig, void *data)
{
    (void)data;
    CHECK(pthread_equal(pthread_self(), w_loop_thread));
    CHECK_EQ(status, 5);
    CHECK_EQ(sig, 0);
    w_exits++;
    loom_process_close(p);
}

static void w_work(void *data)
{
    (void)data;
}

static void w_done(int status, void *data)
{
    CHECK_EQ(status, 0);
    loom_loop_t *loop = data;
    char *argv[] = {"/bin/sh", "-c", "exit 5", NULL};
    for (int i = 0; i < 3; i++)
        CHECK_OK(loom_spawn(loop, &(loom_spawn_opts){.argv = argv, .on_exit = w_exit}, NULL));
}

static void test_from_work(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = 2}));
    w_loop_thread = pthread_self();
    for (int i = 0; i < 4; i++)
        CHECK_OK(loom_work(loop, w_work, w_done, loop, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(w_exits, 12);
    test_loop_free_clean(loop);
}

/* --- Closing a running handle; unref; loop free with children -------------------------- */

static int r_closes;

static pid_t g_pid;
static int g_polls;

static void poll_gone(loom_timer_t *t, void *data)
{
    (void)data;
    if ((kill(g_pid, 0) < 0 && errno == ESRCH) || ++g_polls > 1000)
        loom_timer_close(t);
}

static void r_close(loom_process_t *p, void *data)
{
    (void)p;
    (void)data;
    r_closes++;
}

static void test_close_running(void)
{
    loom_loop_t *loop = test_loop_new();
    char *argv[] = {"/bin/sleep", "0.1", NULL};
    loom_process_t *p;
    CHECK_OK(loom_spawn(loop, &(loom_spawn_opts){.argv = argv, .on_close = r_close}, &p));
    pid_t pid = loom_process_pid(p);
    loom_process_close(p);
    loom_process_close(p); /* harmless twice */
    /* The closed handle keeps nothing alive; a timer polls until the
     * child is gone, which it only is once loom reaped it (a zombie still
     * answers kill(pid, 0)). Bounded: 10 s. */
    g_pid = pid;
    g_polls = 0;
    CHECK_OK(loom_interval(loop, 10, poll_gone, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r_closes, 1);
    CHECK(kill(pid, 0) < 0 && errno == ESRCH);
    CHECK_EQ(count_zombies(), 0);

    /* unref: a running child does not keep the loop alive; loom_loop_free
     * closes the handle (its on_close runs). */
    char *argv2[] = {"/bin/sleep", "0.2", NULL};
    CHECK_OK(loom_spawn(loop, &(loom_spawn_opts){.argv = argv2, .on_close = r_close}, &p));
    loom_process_unref(p);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r_closes, 1);
    pid = loom_process_pid(p);
    loom_loop_free(loop);
    CHECK_EQ(r_closes, 2);
    int st;
    CHECK_EQ(waitpid(pid, &st, 0), pid); /* loom let go of it */
}

/* --- loom_loop_fork() ------------------------------------------------------------------ */

static int f_exits;

static void f_exit(loom_process_t *p, int status, int sig, void *data)
{
    (void)sig;
    f_exits += 1 + status;
    loom_process_close(p);
}

static void test_fork(void)
{
    loom_loop_t *loop = test_loop_new();
    char *argv[] = {"/bin/sh", "-c", "sleep 0.2; exit 1", NULL};
    loom_process_t *p;
    CHECK_OK(loom_spawn(loop, &(loom_spawn_opts){.argv = argv, .on_exit = f_exit}, &p));
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        if (loom_loop_fork(loop) != 0)
            _exit(10);
        /* The parent's child is not ours. */
        if (loom_process_kill(p, 0) != LOOM_ESTATE)
            _exit(11);
        /* ... and does not keep our loop alive; our own children work. */
        char *a2[] = {"/bin/sh", "-c", "exit 2", NULL};
        if (loom_spawn(loop, &(loom_spawn_opts){.argv = a2, .on_exit = f_exit}, NULL) != 0)
            _exit(12);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0)
            _exit(13);
        if (f_exits != 3)
            _exit(14);
        loom_process_close(p);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0 || loom_loop_live(loop) != 0)
            _exit(15);
        loom_loop_free(loop);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* The parent's loop still sees its child end. */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(f_exits, 2);
    test_loop_free_clean(loop);
}

static void run_all(void)
{
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "exit_codes\n");
    test_exit_codes();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "errors\n");
    test_errors();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "cat\n");
    test_cat();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "options\n");
    test_options();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "many\n");
    test_many();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "early\n");
    test_early_close();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "stdin gone\n");
    test_stdin_gone();
    test_stdin_unread();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "work\n");
    test_from_work();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "close_running\n");
    test_close_running();
    fprintf(stderr, "%.3f ", now_s());
    fprintf(stderr, "fork\n");
    test_fork();
}

int main(void)
{
    test_timeout(110); /* ctest allows 120; 1,000 spawns take 15-40 s on a loaded machine */
    run_all();
    /* Again without pidfds: SIGCHLD and waitpid(pid) per child. */
    setenv("LOOM_TEST_NO_PIDFD", "1", 1);
    w_exits = 0;
    r_closes = 0;
    f_exits = 0;
    run_all();
    return 0;
}
