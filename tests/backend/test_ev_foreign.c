/* test_ev_foreign: loom on the application's own libev loop.
 * (LOOM_TEST_NO_BACKEND: the test picks the "ev" backend itself.)
 *
 * The application's timer and io watcher keep working next to loom; loom's
 * timers, signals, DNS, TCP and cross-thread posts run inside ev_run(); the
 * loop keeps running exactly while loom has live work; loom_loop_free()
 * leaves the loop as found (no active watcher of loom's, nothing counted in
 * the loop's reference count), also when called from inside the
 * application's callback. libev has no getter for the reference count:
 * ev_run(NOWAIT) returns it (non-zero while a ref'd watcher is active). */
#include "loom_config.h"
#include "test.h"

#if LOOM_WITH_LIBEV
#include <ev.h>

#include "foreign.h"

static struct ev_loop *evl;
static ev_timer app_timer;
static ev_io app_io;
static int app_pipe[2];
static int app_ticks, app_reads, app_tick_limit;

static void app_timer_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)revents;
    app_ticks++;
    CHECK(write(app_pipe[1], "x", 1) == 1);
    if (app_ticks == app_tick_limit)
        ev_timer_stop(l, t);
}

static void app_io_cb(struct ev_loop *l, ev_io *w, int revents)
{
    char c;
    CHECK(revents & EV_READ);
    CHECK(read(w->fd, &c, 1) == 1);
    if (++app_reads == app_tick_limit)
        ev_io_stop(l, w);
}

static void app_start(int limit)
{
    app_tick_limit = limit;
    app_ticks = app_reads = 0;
    ev_timer_set(&app_timer, 0.005, 0.005);
    ev_timer_start(evl, &app_timer);
    ev_io_start(evl, &app_io);
}

static int refs(void)
{
    return ev_run(evl, EVRUN_NOWAIT);
}

static loom_loop_t *inner_loop;
static void app_free_loom_cb(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    loom_loop_free(inner_loop);
    inner_loop = NULL;
}

static void never(loom_timer_t *t, void *data)
{
    CHECK(!"loom timer of a freed loop ran");
    (void)t;
    (void)data;
}

int main(void)
{
    test_timeout(20);
    evl = ev_loop_new(EVFLAG_AUTO);
    CHECK(evl != NULL);
    CHECK(pipe(app_pipe) == 0);
    ev_init(&app_timer, app_timer_cb);
    ev_io_init(&app_io, app_io_cb, app_pipe[0], EV_READ);
    CHECK_EQ(refs(), 0);

    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "ev", .foreign_loop = evl}));
    CHECK_STR(loom_loop_backend(loop), "ev");
    CHECK_EQ(refs(), 0); /* loom's watchers do not count */

    /* 1. Everything at once; the application runs its loop as usual. Its own
     * work ends after 15 ms, loom's at 150 ms. */
    fw_t w;
    app_start(3);
    fw_start(&w, loop);
    CHECK_EQ(ev_run(evl, 0), 0);
    CHECK_EQ(app_ticks, 3);
    CHECK_EQ(app_reads, 3);
    fw_check_done(&w);
    CHECK_EQ(refs(), 0);

    /* 2. Nothing live in loom, an unref'd loom timer: ev_run returns. */
    uint64_t t0 = fw_clock_ms();
    loom_timer_t *lazy;
    CHECK_OK(loom_timer_new(loop, &lazy, never, NULL));
    CHECK_OK(loom_timer_start(lazy, 20000, 0));
    loom_timer_unref(lazy);
    CHECK_EQ(ev_run(evl, 0), 0);
    CHECK(fw_clock_ms() - t0 < 5000);
    loom_timer_close(lazy);
    CHECK_EQ(ev_run(evl, 0), 0);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* 3. Destroy: the loop is as found, and still works. */
    loom_loop_free(loop);
    CHECK_EQ(refs(), 0);
    CHECK_EQ(ev_pending_count(evl), 0);
    app_start(2);
    CHECK_EQ(ev_run(evl, 0), 0);
    CHECK_EQ(app_ticks, 2);
    CHECK_EQ(app_reads, 2);

    /* 4. Freed from inside the application's callback, with live work. */
    CHECK_OK(loom_loop_new(&inner_loop, &(loom_loop_opts){.backend = "ev", .foreign_loop = evl}));
    CHECK_OK(loom_delay(inner_loop, 20000, never, NULL, NULL));
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(inner_loop, "127.0.0.1", 0, NULL, &srv));
    CHECK(refs() > 0); /* loom's live timer */
    ev_timer once;
    ev_timer_init(&once, app_free_loom_cb, 0.01, 0.);
    ev_timer_start(evl, &once);
    t0 = fw_clock_ms();
    CHECK_EQ(ev_run(evl, 0), 0);
    CHECK(inner_loop == NULL);
    CHECK(fw_clock_ms() - t0 < 5000);
    CHECK_EQ(refs(), 0);

    /* 5. A private loop: loom creates, runs and destroys its own. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "ev"}));
    fw_start(&w, loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    fw_check_done(&w);
    test_loop_free_clean(loop);

    ev_loop_destroy(evl);
    close(app_pipe[0]);
    close(app_pipe[1]);
    return 0;
}

#else
int main(void)
{
    TEST_SKIP("built without libev");
}
#endif
