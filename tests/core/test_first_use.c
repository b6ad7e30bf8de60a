/* First use of the core: error names for 0, constructors whose `out` may be
 * NULL (and the ones where NULL is refused, not a crash), every core object
 * reaches its loop, and LOOM_ENOPLUGIN comes with a log line naming the
 * paths searched. (LOOM_TEST_NO_BACKEND: nothing here depends on the
 * backend.) */
#include <signal.h>

#include "test.h"

static char logged[4096];
static int log_level_seen;

static void on_log(int level, const char *msg, void *data)
{
    (void)data;
    log_level_seen = level;
    snprintf(logged, sizeof logged, "%s", msg);
}

static void on_timer(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}
static void on_idle(loom_idle_t *i, void *data)
{
    (void)i;
    (void)data;
}
static void on_io(loom_io_t *io, unsigned events, void *data)
{
    (void)io;
    (void)events;
    (void)data;
}
static void on_signal(loom_signal_t *s, int signo, void *data)
{
    (void)s;
    (void)signo;
    (void)data;
}
static void work_fn(void *data)
{
    (void)data;
}
static int done;
static void done_fn(int status, void *data)
{
    (void)data;
    CHECK_EQ(status, 0);
    done++;
}

int main(void)
{
    test_timeout(20);

    /* 0 is success. */
    CHECK_STR(loom_strerror(0), "success");
    CHECK_STR(loom_err_name(0), "OK");
    CHECK_STR(loom_err_name(LOOM_ECLOSED), "ECLOSED");

    /* A loop nobody holds is refused. */
    CHECK_EQ(loom_loop_new(NULL, NULL), LOOM_EINVAL);
    loom_loop_t *loop = test_loop_new();

    /* Stopped objects nobody holds are refused, not a crash. */
    CHECK_EQ(loom_timer_new(loop, NULL, on_timer, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_idle_new(loop, NULL, on_idle, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_io_new(loop, NULL, 0, on_io, NULL), LOOM_EINVAL);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* Started objects may be made without keeping them. */
    CHECK_OK(loom_delay(loop, 1, on_timer, NULL, NULL));
    CHECK_OK(loom_work(loop, work_fn, done_fn, NULL, NULL));
    CHECK_OK(loom_signal_handler(loop, SIGUSR2, on_signal, NULL, NULL));
    loom_signal_clear(loop); /* the way to drop a handler nobody holds */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(done, 1);

    /* Every core object reaches its loop. */
    loom_timer_t *t;
    loom_idle_t *i;
    loom_io_t *io;
    loom_signal_t *sig;
    loom_work_t *w;
    CHECK_OK(loom_timer_new(loop, &t, on_timer, NULL));
    CHECK_OK(loom_idle_new(loop, &i, on_idle, NULL));
    CHECK_OK(loom_io_new(loop, &io, 0, on_io, NULL));
    CHECK_OK(loom_signal_handler(loop, SIGUSR2, on_signal, NULL, &sig));
    CHECK_OK(loom_work(loop, work_fn, done_fn, NULL, &w));
    CHECK(loom_timer_loop(t) == loop);
    CHECK(loom_idle_loop(i) == loop);
    CHECK(loom_io_loop(io) == loop);
    CHECK(loom_signal_loop(sig) == loop);
    CHECK(loom_work_loop(w) == loop);
    loom_timer_close(t);
    loom_idle_close(i);
    loom_io_close(io);
    loom_signal_free(sig);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(done, 2);
    test_loop_free_clean(loop);

    /* A missing plugin: LOOM_ENOPLUGIN and a log line with every path. */
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/loom-core-noplugin-%d", (int)getpid());
    setenv("LOOM_PLUGIN_PATH", dir, 1);
    loom_loop_t *none = NULL;
    CHECK_EQ(loom_loop_new(&none, &(loom_loop_opts){.backend = "nosuch", .on_log = on_log}),
             LOOM_ENOPLUGIN);
    CHECK(none == NULL);
    fprintf(stderr, "log: %s\n", logged);
    CHECK_EQ(log_level_seen, LOOM_LOG_ERR);
    CHECK(strstr(logged, "libloom-backend-nosuch.so") != NULL);
    CHECK(strstr(logged, dir) != NULL);
    /* The folder next to the libloom in use (here: this executable's). */
    CHECK(strstr(logged, "/tests/loom/libloom-backend-nosuch.so") != NULL);
    return 0;
}
