/* bench/timers/timers_ev.c - the timer benchmark on libev (ev_timer). */
#include "bench.h"
#include <ev.h>

#define IMPL_NAME "libev"

static struct ev_loop *loop;
static ev_timer *timers;

static void timers_fired(void);

static void on_timer(struct ev_loop *l, ev_timer *t, int revents)
{
    (void)l;
    (void)t;
    (void)revents;
    timers_fired();
}

static int impl_init(size_t n)
{
    loop = EV_DEFAULT;
    timers = calloc(n, sizeof *timers);
    if (!loop || !timers)
        return -1;
    for (size_t i = 0; i < n; i++)
        ev_timer_init(&timers[i], on_timer, 0., 0.);
    return 0;
}

static void impl_start(size_t i, uint64_t ms)
{
    ev_timer_set(&timers[i], (double)ms / 1000., 0.);
    ev_timer_start(loop, &timers[i]);
}

static void impl_stop(size_t i)
{
    ev_timer_stop(loop, &timers[i]);
}

static void impl_update_time(void)
{
    ev_now_update(loop);
}

static void impl_run(void)
{
    ev_run(loop, 0);
}

static void impl_break(void)
{
    ev_break(loop, EVBREAK_ALL);
}

static void impl_fini(void)
{
    free(timers);
}

static const char *impl_detail(void)
{
    static char v[32];
    snprintf(v, sizeof v, "%d.%d", ev_version_major(), ev_version_minor());
    return v;
}

#include "timers_main.h"
