/* test_uv_foreign: loom on the application's own uv_loop_t.
 * (LOOM_TEST_NO_BACKEND: the test picks the "uv" backend itself.)
 *
 * The application's timer and fd watcher keep working next to loom; loom's
 * timers, signals, DNS, TCP and cross-thread posts run inside uv_run(); the
 * uv loop stays alive exactly while loom has live work; loom_loop_free()
 * leaves no handle of loom's once the application's loop has turned once
 * more, and uv_loop_close() then succeeds; freeing loom from inside one of
 * the application's callbacks works too. */
#include "loom_config.h"
#include "test.h"

#if LOOM_WITH_LIBUV
#include <uv.h>

#include "foreign.h"

static uv_loop_t uv;
static uv_timer_t app_timer;
static uv_poll_t app_poll;
static int app_pipe[2];
static int app_ticks, app_reads, app_tick_limit;

static void app_timer_cb(uv_timer_t *t)
{
    app_ticks++;
    CHECK(write(app_pipe[1], "x", 1) == 1);
    if (app_ticks == app_tick_limit)
        uv_timer_stop(t);
}

static void app_poll_cb(uv_poll_t *p, int status, int events)
{
    char c;
    CHECK_EQ(status, 0);
    CHECK(events & UV_READABLE);
    CHECK(read(app_pipe[0], &c, 1) == 1);
    if (++app_reads == app_tick_limit)
        uv_poll_stop(p);
}

static void count_cb(uv_handle_t *h, void *arg)
{
    int *n = arg;
    if (!uv_is_closing(h))
        n[0]++;
    n[1]++;
}

/* n[0]: handles not closing; n[1]: all handles still in the loop. */
static void count_handles(int n[2])
{
    n[0] = n[1] = 0;
    uv_walk(&uv, count_cb, n);
}

static void app_start(int limit)
{
    app_tick_limit = limit;
    app_ticks = app_reads = 0;
    CHECK_EQ(uv_timer_start(&app_timer, app_timer_cb, 5, 5), 0);
    CHECK_EQ(uv_poll_start(&app_poll, UV_READABLE, app_poll_cb), 0);
}

static loom_loop_t *inner_loop;
static void app_free_loom_cb(uv_timer_t *t)
{
    /* The application frees loom from inside its own callback. */
    loom_loop_free(inner_loop);
    inner_loop = NULL;
    uv_timer_stop(t);
}

static void never_mind(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}

static void never(loom_timer_t *t, void *data)
{
    CHECK(!"loom timer of a freed loop ran");
    (void)t;
    (void)data;
}

/* 4b. Timers started from the application's own callback, after loom's
 * cached time went stale (25 ms of the application's work): none fires
 * before its delay, measured with the system's clock. */
static loom_loop_t *early_loop;
static uint64_t early_start_ns[10];
static int early_fired;

static uint64_t early_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void early_on_fire(loom_timer_t *t, void *data)
{
    unsigned i = (unsigned)(uintptr_t)data;
    uint64_t elapsed = early_ns() - early_start_ns[i];
    if (elapsed + 1000000u < (i + 1) * 1000000u) /* 1 ms resolution */
        fprintf(stderr, "a %u ms timer fired after %.3f ms\n", i + 1, elapsed / 1e6);
    CHECK(elapsed + 1000000u >= (i + 1) * 1000000u);
    early_fired++;
    (void)t;
}

static void app_start_timers_cb(uv_timer_t *t)
{
    uint64_t end = early_ns() + 25000000u;
    while (early_ns() < end)
        ; /* the application's own work */
    for (unsigned i = 0; i < 10; i++) {
        early_start_ns[i] = early_ns();
        CHECK_OK(loom_delay(early_loop, i + 1, early_on_fire, (void *)(uintptr_t)i, NULL));
    }
    uv_timer_stop(t);
}

int main(void)
{
    test_timeout(20);
    CHECK_EQ(uv_loop_init(&uv), 0);
    CHECK(pipe(app_pipe) == 0);
    CHECK_EQ(uv_timer_init(&uv, &app_timer), 0);
    CHECK_EQ(uv_poll_init(&uv, &app_poll, app_pipe[0]), 0);
    int before[2], n[2];
    count_handles(before);
    CHECK_EQ(before[0], 2);

    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "uv", .foreign_loop = &uv}));
    CHECK_STR(loom_loop_backend(loop), "uv");

    /* 1. Everything at once; the application runs its loop as usual. The
     * application's work ends after 3 ticks (15 ms), loom's at 150 ms: the
     * loop must stay alive for loom, then return by itself. */
    fw_t w;
    app_start(3);
    fw_start(&w, loop);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK_EQ(app_ticks, 3);
    CHECK_EQ(app_reads, 3);
    fw_check_done(&w);

    /* 2. Nothing live in loom: uv_run returns at once, even with an unref'd
     * loom timer far away; loom_run on the same loop agrees. */
    uint64_t t0 = fw_clock_ms();
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    loom_timer_t *lazy;
    CHECK_OK(loom_timer_new(loop, &lazy, never, NULL));
    CHECK_OK(loom_timer_start(lazy, 20000, 0));
    loom_timer_unref(lazy);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK(fw_clock_ms() - t0 < 5000);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    loom_timer_close(lazy);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0); /* frees the closed timer */
    CHECK_EQ(loom_loop_live(loop), 0);

    /* 3. Destroy: none of loom's handles is left open, and after one more
     * turn of the application's loop none is left at all. */
    loom_loop_free(loop);
    count_handles(n);
    CHECK_EQ(n[0], before[0]);
    CHECK_EQ(uv_run(&uv, UV_RUN_NOWAIT), 0);
    count_handles(n);
    CHECK_EQ(n[1], before[1]);

    /* The application's own handles still work. */
    app_start(2);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK_EQ(app_ticks, 2);
    CHECK_EQ(app_reads, 2);

    /* 4. A loom loop freed from inside the application's callback, with
     * live work (a timer, a listening server) still on it. */
    CHECK_OK(loom_loop_new(&inner_loop, &(loom_loop_opts){.backend = "uv", .foreign_loop = &uv}));
    CHECK_OK(loom_delay(inner_loop, 20000, never, NULL, NULL));
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(inner_loop, "127.0.0.1", 0, NULL, &srv));
    CHECK_EQ(uv_timer_start(&app_timer, app_free_loom_cb, 10, 0), 0);
    t0 = fw_clock_ms();
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK(inner_loop == NULL);
    CHECK(fw_clock_ms() - t0 < 5000);
    count_handles(n);
    CHECK_EQ(n[1], before[1]);

    /* 4b. (See early_on_fire.) */
    CHECK_OK(loom_loop_new(&early_loop, &(loom_loop_opts){.backend = "uv", .foreign_loop = &uv}));
    CHECK_OK(loom_delay(early_loop, 1, never_mind, NULL, NULL)); /* loom's time is cached */
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_timer_start(&app_timer, app_start_timers_cb, 1, 0), 0);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK_EQ(early_fired, 10);
    test_loop_free_clean(early_loop);

    /* 5. A private loop: loom creates, runs and closes its own uv loop. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "uv"}));
    fw_start(&w, loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    fw_check_done(&w);
    test_loop_free_clean(loop);

    /* The application's usual shutdown. */
    uv_close((uv_handle_t *)&app_timer, NULL);
    uv_close((uv_handle_t *)&app_poll, NULL);
    CHECK_EQ(uv_run(&uv, UV_RUN_DEFAULT), 0);
    CHECK_EQ(uv_loop_close(&uv), 0);
    close(app_pipe[0]);
    close(app_pipe[1]);
    return 0;
}

#else
int main(void)
{
    TEST_SKIP("built without libuv");
}
#endif
