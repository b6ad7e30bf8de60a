/* bench/timers/timers_uv.c - the timer benchmark on libuv (uv_timer_t). */
#include "bench.h"
#include <uv.h>

#define IMPL_NAME "libuv"

static uv_loop_t *loop;
static uv_timer_t *timers;

static void timers_fired(void);

static void on_timer(uv_timer_t *t)
{
    (void)t;
    timers_fired();
}

static int impl_init(size_t n)
{
    loop = uv_default_loop();
    timers = calloc(n, sizeof *timers);
    if (!loop || !timers)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (uv_timer_init(loop, &timers[i]) != 0)
            return -1;
    return 0;
}

static void impl_start(size_t i, uint64_t ms)
{
    uv_timer_start(&timers[i], on_timer, ms, 0);
}

static void impl_stop(size_t i)
{
    uv_timer_stop(&timers[i]);
}

static void impl_update_time(void)
{
    uv_update_time(loop);
}

static void impl_run(void)
{
    uv_run(loop, UV_RUN_DEFAULT);
}

static void impl_break(void)
{
    uv_stop(loop);
}

static void impl_fini(void)
{
    /* The process exits next; libuv's handles need no tidying for that. */
}

static const char *impl_detail(void)
{
    return uv_version_string();
}

#include "timers_main.h"
