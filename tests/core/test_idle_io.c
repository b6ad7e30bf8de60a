/* Idle callbacks and fd watchers on application-owned fds. */
#include <fcntl.h>

#include "test.h"

static int idle_runs;
static void on_idle(loom_idle_t *i, void *data)
{
    if (++idle_runs == 10)
        loom_idle_close(i);
    (void)data;
}

static int reads;
static char got[16];
static void on_readable(loom_io_t *io, unsigned events, void *data)
{
    CHECK(events & LOOM_READABLE);
    ssize_t n = read(loom_io_fd(io), got, sizeof got);
    CHECK(n > 0);
    reads++;
    CHECK(loom_io_data(io) == data);
    loom_io_close(io); /* the fd stays ours */
}

static int writes;
static void on_writable(loom_io_t *io, unsigned events, void *data)
{
    CHECK(events & LOOM_WRITABLE);
    writes++;
    loom_io_stop(io);
    (void)data;
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();

    /* An idle callback runs once per iteration while active and keeps the
     * loop from sleeping. */
    loom_idle_t *idle;
    CHECK_OK(loom_idle_new(loop, &idle, on_idle, NULL));
    CHECK_OK(loom_idle_start(idle));
    loom_stats_t st0, st1;
    loom_stats(loop, &st0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    loom_stats(loop, &st1);
    CHECK_EQ(idle_runs, 10);
    CHECK(st1.iterations - st0.iterations >= 10);

    /* A stopped idle does not run. */
    CHECK_OK(loom_idle_new(loop, &idle, on_idle, NULL));
    CHECK_OK(loom_idle_start(idle));
    CHECK_OK(loom_idle_stop(idle));
    idle_runs = 0;
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(idle_runs, 0);
    loom_idle_close(idle);
    CHECK_EQ(loom_idle_start(idle), LOOM_ECLOSED);

    /* fd watchers: readable on a pipe, writable at once. */
    int fds[2];
    CHECK(pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0);
    loom_io_t *r, *w;
    CHECK_EQ(loom_io_new(loop, &r, -1, on_readable, NULL), LOOM_EBADF);
    CHECK_OK(loom_io_new(loop, &r, fds[0], on_readable, &reads));
    CHECK_OK(loom_io_start(r, LOOM_READABLE));
    CHECK_OK(loom_io_new(loop, &w, fds[1], on_writable, NULL));
    CHECK_OK(loom_io_start(w, LOOM_WRITABLE));
    loom_stats(loop, &st0);
    CHECK_EQ(st0.fd_watchers, 2);
    CHECK(write(fds[1], "hello", 5) == 5);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(reads, 1);
    CHECK_EQ(writes, 1);
    CHECK(memcmp(got, "hello", 5) == 0);
    loom_stats(loop, &st0);
    CHECK_EQ(st0.fd_watchers, 0);
    loom_io_close(w);
    CHECK_EQ(loom_io_start(w, LOOM_READABLE), LOOM_ECLOSED);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);

    /* Freeing a loop with watchers, idles and timers still open frees them
     * (ASan and valgrind check that nothing leaks); the fds stay ours. */
    loop = test_loop_new();
    CHECK_OK(loom_io_new(loop, &r, fds[0], on_readable, NULL));
    CHECK_OK(loom_io_start(r, LOOM_READABLE));
    CHECK_OK(loom_io_new(loop, &w, fds[1], on_writable, NULL));
    CHECK_OK(loom_idle_new(loop, &idle, on_idle, NULL));
    CHECK_OK(loom_idle_start(idle));
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, NULL, NULL));
    CHECK_OK(loom_timer_start(t, 1000, 0));
    CHECK_EQ(loom_loop_live(loop), 4);
    loom_loop_free(loop);
    CHECK(write(fds[1], "x", 1) == 1); /* still open */
    close(fds[0]);
    close(fds[1]);
    return 0;
}
