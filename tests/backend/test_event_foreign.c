/* test_event_foreign: loom on the application's own libevent event_base.
 * (LOOM_TEST_NO_BACKEND: the test picks the "event" backend itself.)
 *
 * The application's timer and fd event keep working next to loom; loom's
 * timers, signals, DNS, TCP and cross-thread posts run inside
 * event_base_dispatch(); the base keeps running exactly while loom has live
 * work; loom_loop_free() leaves the base as found (the same number of added
 * events, the application's still working), also when called from inside
 * one of the application's callbacks. */
#include "loom_config.h"
#include "test.h"

#if LOOM_WITH_LIBEVENT
#include <event2/event.h>

#include "foreign.h"

static struct event_base *base;
static struct event *app_timer, *app_read;
static int app_pipe[2];
static int app_ticks, app_reads, app_tick_limit, added_while_live;

static void app_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    app_ticks++;
    CHECK(write(app_pipe[1], "x", 1) == 1);
    if (app_ticks == 1)
        added_while_live = event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
    if (app_ticks == app_tick_limit)
        event_del(app_timer);
}

static void app_read_cb(evutil_socket_t fd, short what, void *arg)
{
    char c;
    (void)arg;
    CHECK(what & EV_READ);
    CHECK(read(fd, &c, 1) == 1);
    if (++app_reads == app_tick_limit)
        event_del(app_read);
}

static void app_start(int limit)
{
    struct timeval tv = {0, 5000};
    app_tick_limit = limit;
    app_ticks = app_reads = 0;
    CHECK_EQ(event_add(app_timer, &tv), 0);
    CHECK_EQ(event_add(app_read, NULL), 0);
}

static int added(void)
{
    return event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED);
}

static loom_loop_t *inner_loop;
static void app_free_loom_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
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
    base = event_base_new();
    CHECK(base != NULL);
    CHECK(pipe(app_pipe) == 0);
    app_timer = event_new(base, -1, EV_PERSIST, app_timer_cb, NULL);
    app_read = event_new(base, app_pipe[0], EV_READ | EV_PERSIST, app_read_cb, NULL);
    CHECK(app_timer && app_read);
    CHECK_EQ(added(), 0);

    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "event", .foreign_loop = base}));
    CHECK_STR(loom_loop_backend(loop), "event");
    CHECK_EQ(added(), 0); /* loom's own watchers do not count */

    /* 1. Everything at once; the application dispatches as usual. Its own
     * work ends after 15 ms, loom's at 150 ms. */
    fw_t w;
    app_start(3);
    fw_start(&w, loop);
    CHECK_EQ(event_base_dispatch(base), 1); /* 1: no events left */
    CHECK_EQ(app_ticks, 3);
    CHECK_EQ(app_reads, 3);
    CHECK_EQ(added_while_live, 3); /* the application's two, loom's timer */
    fw_check_done(&w);
    CHECK_EQ(added(), 0);

    /* 2. Nothing live in loom, an unref'd loom timer: dispatch returns. */
    uint64_t t0 = fw_clock_ms();
    loom_timer_t *lazy;
    CHECK_OK(loom_timer_new(loop, &lazy, never, NULL));
    CHECK_OK(loom_timer_start(lazy, 20000, 0));
    loom_timer_unref(lazy);
    CHECK_EQ(event_base_dispatch(base), 1);
    CHECK(fw_clock_ms() - t0 < 5000);
    loom_timer_close(lazy);
    CHECK_EQ(event_base_dispatch(base), 1);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* 3. Destroy: the base is as found, and still works. */
    loom_loop_free(loop);
    CHECK_EQ(added(), 0);
    CHECK_EQ(event_base_loop(base, EVLOOP_NONBLOCK), 1);
    app_start(2);
    CHECK_EQ(event_base_dispatch(base), 1);
    CHECK_EQ(app_ticks, 2);
    CHECK_EQ(app_reads, 2);

    /* 4. Freed from inside the application's callback, with live work. */
    CHECK_OK(
        loom_loop_new(&inner_loop, &(loom_loop_opts){.backend = "event", .foreign_loop = base}));
    CHECK_OK(loom_delay(inner_loop, 20000, never, NULL, NULL));
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(inner_loop, "127.0.0.1", 0, NULL, &srv));
    CHECK_EQ(added(), 1);
    struct timeval tv = {0, 10000};
    CHECK_EQ(event_base_once(base, -1, EV_TIMEOUT, app_free_loom_cb, NULL, &tv), 0);
    t0 = fw_clock_ms();
    CHECK_EQ(event_base_dispatch(base), 1);
    CHECK(inner_loop == NULL);
    CHECK(fw_clock_ms() - t0 < 5000);
    CHECK_EQ(added(), 0);

    /* 5. A private base: loom creates, runs and frees its own. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "event"}));
    fw_start(&w, loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    fw_check_done(&w);
    test_loop_free_clean(loop);

    event_free(app_timer);
    event_free(app_read);
    event_base_free(base);
    close(app_pipe[0]);
    close(app_pipe[1]);
    return 0;
}

#else
int main(void)
{
    TEST_SKIP("built without libevent");
}
#endif
