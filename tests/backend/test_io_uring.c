/* test_io_uring: what is particular to the io_uring backend.
 * (LOOM_TEST_NO_BACKEND: the test picks the backend itself; the whole suite
 * also runs on io_uring through LOOM_BACKEND.)
 *
 * - Where io_uring_setup is refused (seccomp here, as in many container
 *   runtimes), the loop falls back to epoll and says so in one log line.
 * - A watcher removed just before its fd is closed does not keep the file
 *   open: the peer sees the close at once, without another loop iteration
 *   (a poll request holds a reference on its file).
 * - Level-triggered readiness: data left unread is reported again.
 * - The ring fd can be waited on from outside (embedding).
 * - After fork() the child re-creates its ring and its watchers work.
 * - A loop created on one thread and run on another works (a ring set up
 *   with IORING_SETUP_SINGLE_ISSUER belongs to the thread that made it).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "loom_config.h"
#include "test.h"

#if defined(__linux__)
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#endif

static int logs;
static char last_log[512];
static void on_log(int level, const char *msg, void *data)
{
    (void)level;
    (void)data;
    logs++;
    snprintf(last_log, sizeof last_log, "%s", msg);
}

static int reads;
static void on_readable(loom_io_t *io, unsigned events, void *data)
{
    (void)io;
    (void)data;
    CHECK(events & LOOM_READABLE);
    reads++;
}

static int fired;
static void on_timer(loom_timer_t *t, void *data)
{
    fired++;
    (void)t;
    (void)data;
}

/* Refuses io_uring_setup with ENOSYS for this process, as an old kernel
 * would; returns 0, or -1 where the filter cannot be built. */
static int deny_io_uring(void)
{
#if defined(__linux__) && defined(SYS_io_uring_setup) &&                                           \
    (defined(__x86_64__) || defined(__aarch64__))
#if defined(__x86_64__)
    const unsigned arch = AUDIT_ARCH_X86_64;
#else
    const unsigned arch = AUDIT_ARCH_AARCH64;
#endif
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arch, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -1 : 0;
#else
    return -1;
#endif
}

static void test_fallback(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (deny_io_uring() < 0)
            _exit(77);
        loom_loop_t *loop;
        CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring", .on_log = on_log}));
        CHECK_STR(loom_loop_backend(loop), "epoll");
        CHECK_EQ(logs, 1);
        CHECK(strstr(last_log, "io_uring") != NULL);
        CHECK(strstr(last_log, "epoll") != NULL);
        CHECK_OK(loom_delay(loop, 1, on_timer, NULL, NULL));
        CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
        CHECK_EQ(fired, 1);
        test_loop_free_clean(loop);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77)
        fprintf(stderr, "note: no seccomp here, fallback not tested\n");
    else
        CHECK_EQ(WEXITSTATUS(status), 0);
}

/* The peer sees a close at once, even though the watcher's poll request was
 * in the kernel. */
static void test_prompt_close(loom_loop_t *loop)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, sv[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    loom_run(loop, LOOM_RUN_NOWAIT); /* the request is now in the kernel */
    loom_io_close(io);
    close(sv[0]);
    char c;
    CHECK_EQ(read(sv[1], &c, 1), 0); /* EOF now, not EAGAIN */
    close(sv[1]);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

/* Level-triggered: a byte left unread is reported again and again. */
static void test_level(loom_loop_t *loop)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    CHECK(write(p[1], "x", 1) == 1);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, p[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    reads = 0;
    for (int i = 0; i < 5; i++)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK(reads >= 4);
    /* Changing the events while a request is in flight (a non-blocking
     * run leaves the re-arm submitted, for embedding), whose completion is
     * then stale and must be dropped. */
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_OK(loom_io_start(io, LOOM_READABLE | LOOM_WRITABLE));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    reads = 0;
    loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(reads, 1);
    loom_io_close(io);
    close(p[0]);
    close(p[1]);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static void test_embed(loom_loop_t *loop)
{
    int fd = loom_backend_fd(loop);
    CHECK(fd >= 0);
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, p[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    loom_run(loop, LOOM_RUN_NOWAIT); /* a run also submits the request */
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 0), 0); /* nothing yet */
    CHECK(write(p[1], "x", 1) == 1);
    CHECK_EQ(poll(&pfd, 1, 1000), 1);
    reads = 0;
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(reads, 1);
    loom_io_close(io);
    close(p[0]);
    close(p[1]);
    loom_run(loop, LOOM_RUN_NOWAIT);

    /* Started from the application's own code, outside loom_run(): the
     * documented sleep, poll(fd, loom_backend_timeout()), must see it. */
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    CHECK_OK(loom_io_new(loop, &io, p[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    int t = loom_backend_timeout(loop);
    CHECK(t != 0); /* nothing to do yet */
    CHECK(write(p[1], "x", 1) == 1);
    CHECK_EQ(poll(&pfd, 1, 1000), 1);
    reads = 0;
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(reads, 1);
    loom_io_close(io);
    close(p[0]);
    close(p[1]);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static void test_fork(loom_loop_t *loop)
{
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, p[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    loom_run(loop, LOOM_RUN_NOWAIT);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        CHECK_OK(loom_loop_fork(loop));
        CHECK_STR(loom_loop_backend(loop), "io_uring");
        CHECK(write(p[1], "x", 1) == 1);
        reads = 0;
        for (int i = 0; i < 100 && reads == 0; i++)
            loom_run(loop, LOOM_RUN_ONCE);
        CHECK(reads >= 1);
        loom_io_close(io);
        loom_run(loop, LOOM_RUN_NOWAIT);
        test_loop_free_clean(loop);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's ring is untouched: the byte the child wrote (and read
     * through its own ring, without consuming it) is seen here too. */
    reads = 0;
    for (int i = 0; i < 100 && reads == 0; i++)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK(reads >= 1);
    loom_io_close(io);
    close(p[0]);
    close(p[1]);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static void *run_elsewhere(void *arg)
{
    loom_loop_t *loop = arg;
    reads = 0;
    for (int i = 0; i < 100 && reads == 0; i++)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    return NULL;
}

static void test_other_thread(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    int p[2];
    CHECK(pipe2(p, O_NONBLOCK) == 0);
    CHECK(write(p[1], "x", 1) == 1);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, p[0], on_readable, NULL));
    CHECK_OK(loom_io_start(io, LOOM_READABLE));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_elsewhere, loop) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(reads >= 1);
    loom_io_close(io);
    /* And back on this thread. */
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    test_loop_free_clean(loop);
    close(p[0]);
    close(p[1]);
}

int main(void)
{
    test_timeout(20);
    if (loom_backend_find("io_uring", NULL) == NULL)
        TEST_SKIP("no io_uring backend");
    test_fallback();

    logs = 0;
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring", .on_log = on_log}));
    if (strcmp(loom_loop_backend(loop), "io_uring") != 0) {
        /* This kernel or sandbox has no io_uring: the fallback was taken. */
        CHECK_EQ(logs, 1);
        loom_loop_free(loop);
        TEST_SKIP("io_uring unavailable here: %s", last_log);
    }
    CHECK_EQ(logs, 0);
    test_prompt_close(loop);
    test_level(loop);
    test_embed(loop);
    test_fork(loop);
    test_loop_free_clean(loop);
    test_other_thread();
    return 0;
}
