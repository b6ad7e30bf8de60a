/* bench/timers/timers_loom.c - the timer benchmark on loom's timing wheel. */
#include "bench.h"
#include <loom.h>

#define IMPL_NAME "loom"

static loom_loop_t *loop;
static loom_timer_t **timers;

static void timers_fired(void);

static void on_timer(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    timers_fired();
}

static int impl_init(size_t n)
{
    if (loom_loop_new(&loop, NULL) != 0)
        return -1;
    timers = calloc(n, sizeof *timers);
    if (!timers)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (loom_timer_new(loop, &timers[i], on_timer, NULL) != 0)
            return -1;
    return 0;
}

static void impl_start(size_t i, uint64_t ms)
{
    loom_timer_start(timers[i], ms, 0);
}

static void impl_stop(size_t i)
{
    loom_timer_stop(timers[i]);
}

static void impl_update_time(void)
{
    loom_update_time(loop);
}

static void impl_run(void)
{
    loom_run(loop, LOOM_RUN_DEFAULT);
}

static void impl_break(void)
{
    loom_stop(loop);
}

static void impl_fini(void)
{
    loom_loop_free(loop); /* closes the timers */
    free(timers);
}

static const char *impl_detail(void)
{
    return loom_loop_backend(loop);
}

#include "timers_main.h"
