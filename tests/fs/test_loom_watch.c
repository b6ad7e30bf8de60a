/* tests/fs/test_loom_watch.c - loom-watch end to end (LOOM_TEST_NO_BACKEND:
 * it drives the binary, which picks its own backend): it runs the command
 * once at the start, again when a file changes, once for a burst, prefixes
 * the command's stdout and stderr, stops a run that ignores SIGTERM with
 * SIGKILL after the grace time before the next one, reaps every run, exits 0
 * on SIGINT, and names a missing directory. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

#define WATCH_BIN LOOM_BINARY_DIR "/examples/loom-watch"

typedef struct child {
    pid_t pid;
    int fd; /* its stdout and stderr */
    char out[65536];
    size_t len;
} child;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void start(child *c, char *const argv[])
{
    int p[2];
    CHECK(pipe(p) == 0);
    memset(c, 0, sizeof *c);
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        close(p[1]);
        signal(SIGINT, SIG_DFL);
        execv(WATCH_BIN, argv);
        _exit(127);
    }
    close(p[1]);
    c->fd = p[0];
    fcntl(c->fd, F_SETFL, O_NONBLOCK);
}

/* Reads what is there, waiting up to `secs`. */
static void pump(child *c, double secs)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(secs * 1000)) <= 0)
        return;
    ssize_t n = read(c->fd, c->out + c->len, sizeof c->out - 1 - c->len);
    if (n > 0)
        c->len += (size_t)n;
    c->out[c->len] = 0;
}

static int count(const child *c, const char *needle)
{
    int k = 0;
    for (const char *p = c->out; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        k++;
    return k;
}

/* Waits until `needle` occurs `n` times; fails with the output if not. */
static void wait_count(child *c, const char *needle, int n, double secs)
{
    double end = now_s() + secs;
    while (count(c, needle) < n && now_s() < end)
        pump(c, 0.05);
    if (count(c, needle) < n) {
        fprintf(stderr, "expected %d x \"%s\" in:\n%s\n", n, needle, c->out);
        exit(1);
    }
}

static int finish(child *c, int signo)
{
    if (signo)
        kill(c->pid, signo);
    double end = now_s() + 10;
    int status = 0;
    pid_t r;
    while ((r = waitpid(c->pid, &status, WNOHANG)) == 0 && now_s() < end)
        pump(c, 0.05);
    if (r == 0) {
        kill(c->pid, SIGKILL);
        waitpid(c->pid, &status, 0);
        fprintf(stderr, "loom-watch did not exit:\n%s\n", c->out);
        exit(1);
    }
    while (c->len < sizeof c->out - 1) {
        ssize_t n = read(c->fd, c->out + c->len, sizeof c->out - 1 - c->len);
        if (n <= 0)
            break;
        c->len += (size_t)n;
    }
    c->out[c->len] = 0;
    close(c->fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void touch(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    CHECK(write(fd, "x", 1) == 1);
    close(fd);
}

/* The pid printed after "[sh] run " the n-th time (1-based), once its
 * line is complete. */
static pid_t run_pid(child *c, int n)
{
    double end = now_s() + 10;
    for (;;) {
        const char *p = c->out;
        for (int i = 0; i < n && p; i++)
            if ((p = strstr(p, "[sh] run ")) != NULL)
                p += 9;
        if (p && strchr(p, '\n'))
            return (pid_t)atoi(p);
        CHECK(now_s() < end);
        pump(c, 0.05);
    }
}

int main(void)
{
    test_timeout(60);
    if (access(WATCH_BIN, X_OK) != 0)
        TEST_SKIP("%s is not built", WATCH_BIN);
    char tmpl[] = "/tmp/loom-watch-test-XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);

    /* --- Runs: at the start, on a change, once per burst. --------------- */
    child c;
    start(&c, (char *const[]){"loom-watch", "-d", "300", "-p", "[t] ", dir, "--", "/bin/sh", "-c",
                              "echo tick; echo oops >&2", NULL});
    wait_count(&c, "[t] tick\n", 1, 10);
    wait_count(&c, "[t] oops\n", 1, 10); /* stderr is prefixed too */
    wait_count(&c, "run 1 exited with status 0", 1, 10);
    touch(dir, "a");
    wait_count(&c, "[t] tick\n", 2, 10);
    wait_count(&c, "run 2 after", 1, 10);
    wait_count(&c, "run 2 exited with status 0", 1, 10);
    /* A burst of 50 files made at once is one run (two at most should the
     * test be held up longer than the debounce time in the middle). */
    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "burst%d", i);
        touch(dir, name);
    }
    wait_count(&c, "[t] tick\n", 3, 10);
    wait_count(&c, "run 3 exited", 1, 10);
    double end = now_s() + 0.8;
    while (now_s() < end)
        pump(&c, 0.05);
    CHECK(count(&c, "[t] tick\n") <= 4);
    /* A new subdirectory is watched: a file in it is a change. */
    int runs = count(&c, "[t] tick\n");
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    CHECK(mkdir(sub, 0755) == 0);
    wait_count(&c, "[t] tick\n", runs + 1, 10);
    char exited[64];
    snprintf(exited, sizeof exited, "run %d exited", runs + 1);
    wait_count(&c, exited, 1, 10);
    touch(sub, "deep");
    wait_count(&c, "[t] tick\n", runs + 2, 10);
    CHECK_EQ(finish(&c, SIGINT), 0);
    CHECK(strstr(c.out, "Interrupt") != NULL);

    /* --- -x GLOB: ignored paths do not start a run. ------------------------ */
    char xdir[600];
    snprintf(xdir, sizeof xdir, "%s/x", dir);
    CHECK(mkdir(xdir, 0755) == 0);
    start(&c, (char *const[]){"loom-watch", "-d", "50", "-x", "*.tmp", "-x", ".hidden", xdir, "--",
                              "/bin/sh", "-c", "echo tick", NULL});
    wait_count(&c, "run 1 exited with status 0", 1, 10);
    touch(xdir, "a.tmp");
    char hidden[700];
    snprintf(hidden, sizeof hidden, "%s/.hidden", xdir);
    CHECK(mkdir(hidden, 0755) == 0);
    touch(hidden, "f");
    end = now_s() + 0.6;
    while (now_s() < end)
        pump(&c, 0.05);
    CHECK_EQ(count(&c, "[sh] tick\n"), 1);
    touch(xdir, "b.c");
    wait_count(&c, "[sh] tick\n", 2, 10);
    CHECK(strstr(c.out, "b.c") != NULL); /* the status line names the change */
    CHECK_EQ(finish(&c, SIGINT), 0);

    /* --- A run that ignores SIGTERM: SIGKILL after the grace time. ------ */
    start(&c, (char *const[]){"loom-watch", "-d", "50", "-g", "300", dir, "--", "/bin/sh", "-c",
                              "trap '' TERM; echo run $$; exec sleep 30", NULL});
    wait_count(&c, "[sh] run ", 1, 10);
    pid_t first = run_pid(&c, 1);
    CHECK(first > 0);
    touch(dir, "b");
    wait_count(&c, "stopping run 1 (SIGTERM)", 1, 10);
    wait_count(&c, "SIGKILL", 1, 10);
    wait_count(&c, "run 1 killed by signal 9", 1, 10);
    wait_count(&c, "[sh] run ", 2, 10);
    /* Reaped: no zombie left behind. */
    CHECK(kill(first, 0) == -1 && errno == ESRCH);
    pid_t second = run_pid(&c, 2);
    CHECK(second > 0 && second != first);
    CHECK_EQ(finish(&c, SIGINT), 0);
    CHECK(strstr(c.out, "run 2 killed by signal 9") != NULL);
    CHECK(kill(second, 0) == -1 && errno == ESRCH);

    /* --- The watched directory deleted: nothing left, exit 1. ----------- */
    char gone[600];
    snprintf(gone, sizeof gone, "%s/gone", dir);
    CHECK(mkdir(gone, 0755) == 0);
    start(&c, (char *const[]){"loom-watch", gone, "--", "/bin/true", NULL});
    wait_count(&c, "run 1 exited with status 0", 1, 10);
    CHECK(rmdir(gone) == 0);
    CHECK_EQ(finish(&c, 0), 1);
    CHECK(strstr(c.out, "was deleted") != NULL);
    CHECK(strstr(c.out, "nothing left to watch") != NULL);

    /* --- A missing directory is named. ---------------------------------- */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing", dir);
    start(&c, (char *const[]){"loom-watch", missing, "--", "/bin/true", NULL});
    CHECK_EQ(finish(&c, 0), 1);
    CHECK(strstr(c.out, missing) != NULL);
    CHECK(strstr(c.out, "no such file") != NULL);
    /* And usage errors exit 2. */
    start(&c, (char *const[]){"loom-watch", dir, NULL});
    CHECK_EQ(finish(&c, 0), 2);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return 0;
}
