/* Backend selection ($LOOM_BACKEND and the option), unknown and missing
 * backends, and embedding loom in an outside poll() through the backend fd. */
#include <poll.h>
#include <stdlib.h>

#include <time.h>

#include "test.h"

static int fired;
static void on_timer(loom_timer_t *t, void *data)
{
    fired++;
    (void)t;
    (void)data;
}

static void on_post(void *data)
{
    (*(int *)data)++;
}

int main(void)
{
    test_timeout(20);
    const char *env = getenv("LOOM_BACKEND");

    /* The option wins over the environment; both built-ins are available. */
    const char *const *names = loom_backend_builtin();
    CHECK(names[0] != NULL);
    int have_epoll = 0, have_poll = 0;
    for (size_t i = 0; names[i]; i++) {
        have_epoll |= strcmp(names[i], "epoll") == 0;
        have_poll |= strcmp(names[i], "poll") == 0;
        CHECK(loom_backend_find(names[i], NULL) != NULL);
    }
    CHECK(have_poll);
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "poll"}));
    CHECK_STR(loom_loop_backend(loop), "poll");
    loom_loop_free(loop);
    if (have_epoll) {
        CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "epoll"}));
        CHECK_STR(loom_loop_backend(loop), "epoll");
        loom_loop_free(loop);
    }

    /* No option: $LOOM_BACKEND, else the best built-in (epoll on Linux). */
    CHECK_OK(loom_loop_new(&loop, NULL));
    CHECK_STR(loom_loop_backend(loop), env ? env : names[0]);
    loom_loop_free(loop);

    /* A name that is not built in and has no plugin: a clear code. */
    loop = NULL;
    CHECK_EQ(loom_loop_new(&loop, &(loom_loop_opts){.backend = "nosuchbackend"}), LOOM_ENOPLUGIN);
    CHECK(loop == NULL);
    CHECK_EQ(loom_loop_new(&loop, &(loom_loop_opts){.backend = "../etc/passwd"}), LOOM_EBACKEND);
    CHECK_STR(loom_err_name(LOOM_ENOPLUGIN), "ENOPLUGIN");
    setenv("LOOM_BACKEND", "nosuchbackend", 1);
    CHECK_EQ(loom_loop_new(&loop, NULL), LOOM_ENOPLUGIN);
    if (env)
        setenv("LOOM_BACKEND", env, 1);
    else
        unsetenv("LOOM_BACKEND");

    /* Embedding: an outside poll() waits on the backend fd with
     * loom_backend_timeout(), then runs loom with NOWAIT. */
    loop = test_loop_new();
    int fd = loom_backend_fd(loop);
    if (fd == LOOM_ENOTSUP) {
        /* poll has no kernel object to wait on: it says so. */
        CHECK_STR(loom_loop_backend(loop), "poll");
        test_loop_free_clean(loop);
        return 0;
    }
    CHECK(fd >= 0);
    CHECK_EQ(loom_backend_timeout(loop), -1); /* nothing to do */
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_timer, NULL));
    /* A timer counts from the loop's cached time (libuv's rule, see
     * timer.h), which loom_backend_timeout() above refreshed. The delay is
     * measured with the system's clock from a point before that time:
     * read after the refresh, a loaded machine could deschedule the test
     * between the two for milliseconds, and the timer looked early by that
     * much (seen once in ten ASan runs). */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    loom_update_time(loop);
    CHECK_OK(loom_timer_start(t, 30, 0));
    int posted = 0;
    int timeout = loom_backend_timeout(loop);
    CHECK(timeout >= 0 && timeout <= 30);
    int rounds = 0;
    while (fired == 0 && rounds++ < 1000) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, loom_backend_timeout(loop));
        loom_run(loop, LOOM_RUN_NOWAIT);
    }
    CHECK_EQ(fired, 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* 1 ms resolution: the start time is rounded down. */
    CHECK((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec) >= 29000000LL);
    CHECK(rounds < 20); /* it slept, it did not spin */
    /* A post from "another poller's thread" wakes the outside poll. */
    CHECK_OK(loom_post(loop, on_post, &posted));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&pfd, 1, 1000), 1);
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(posted, 1);
    loom_timer_close(t);
    loom_run(loop, LOOM_RUN_NOWAIT);
    test_loop_free_clean(loop);
    return 0;
}
