/* Timers: 1,000,000 timers, equal-deadline order, repeat, unref, delay 0,
 * restart and close from callbacks. */
#include "test.h"

#define N 1000000

static unsigned count, order_next, order_bad;
static uint64_t last_deadline_seen;

static void on_count(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    count++;
}

static void on_order(loom_timer_t *t, void *data)
{
    unsigned idx = (unsigned)(uintptr_t)data;
    if (idx != order_next)
        order_bad++;
    order_next++;
    loom_timer_close(t);
}

static uint64_t group_target;
static unsigned *group_idx;
static int group_started;
static void on_start_group(loom_timer_t *g, void *data)
{
    loom_loop_t *loop = loom_timer_loop(g);
    (void)data;
    if (group_target == 0)
        group_target = loom_now(loop) + 1000; /* crosses several level-0 rounds */
    for (int k = 0; k < 100; k++) {
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(loop, &t, on_order, (void *)(uintptr_t)(*group_idx)++));
        CHECK(group_target > loom_now(loop));
        CHECK_OK(loom_timer_start(t, group_target - loom_now(loop), 0));
    }
    group_started = 1;
}

static unsigned rep;
static void on_repeat(loom_timer_t *t, void *data)
{
    if (++rep == 5)
        loom_timer_close(t);
    (void)data;
}

static int zero_ran;
static void on_zero(loom_timer_t *t, void *data)
{
    zero_ran++;
    (void)t;
    (void)data;
}

static void on_restart_self(loom_timer_t *t, void *data)
{
    int *n = data;
    if (++*n < 3)
        loom_timer_start(t, 0, 0); /* runs on a later iteration, not in this phase */
}

static int delay_runs, after_delay_seen;
static loom_timer_t *delay_t;
static void on_delay_restart_once(loom_timer_t *t, void *data)
{
    (void)data;
    CHECK(t == delay_t);
    if (++delay_runs == 1)
        CHECK_OK(loom_timer_start(t, 1, 0)); /* stays alive */
}
static loom_timer_t *closed_t;
static void on_plain(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}
static void on_after_delay(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    /* Same deadline, started after closed_t: the same timer phase, so
     * closed_t's memory is still the loop's. */
    after_delay_seen = loom_timer_stop(closed_t);
}
static void on_setup(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    CHECK_OK(loom_delay(loom_timer_loop(t), 5, on_plain, NULL, &closed_t));
    CHECK_OK(loom_delay(loom_timer_loop(t), 5, on_after_delay, NULL, NULL));
}

static uint64_t rng = 88172645463325252ull;
static uint64_t xorshift(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void on_sorted(loom_timer_t *t, void *data)
{
    uint64_t d = (uint64_t)(uintptr_t)data;
    if (d < last_deadline_seen)
        order_bad++;
    last_deadline_seen = d;
    loom_timer_close(t);
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();

    /* One million timers with random deadlines in [0, 300) ms: all fire, and
     * in deadline order. */
    loom_timer_t **ts = malloc(sizeof *ts * N);
    CHECK(ts != NULL);
    for (unsigned i = 0; i < N; i++) {
        uint64_t d = xorshift() % 300;
        CHECK_OK(loom_timer_new(loop, &ts[i], on_sorted, NULL));
        CHECK_OK(loom_timer_start(ts[i], d, 0));
        /* The deadline counts from the loop's time at the start (outside
         * loom_run(), start refreshes it). */
        loom_timer_set_data(ts[i], (void *)(uintptr_t)(loom_now(loop) + d));
    }
    loom_stats_t st;
    loom_stats(loop, &st);
    CHECK_EQ(st.timers, N);
    /* Start then stop half of them again: O(1) each. */
    for (unsigned i = 0; i < N; i += 2)
        CHECK_OK(loom_timer_stop(ts[i]));
    for (unsigned i = 0; i < N; i += 2)
        loom_timer_close(ts[i]);
    last_deadline_seen = 0;
    order_bad = 0;
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(order_bad, 0);
    loom_stats(loop, &st);
    CHECK_EQ(st.timers, 0);
    free(ts);
    CHECK_EQ(loom_loop_live(loop), 0);

    /* Equal deadlines fire in the order they were set, including timers that
     * were placed at level 1 and cascaded while later ones went straight to
     * level 0: four groups, started 25 ms apart, all due at the same instant
     * 1000 ms ahead (several level-0 rounds away). */
    order_next = 0;
    order_bad = 0;
    unsigned idx = 0;
    group_target = 0; /* set by the first group, from the loop's time */
    for (int phase = 0; phase < 4; phase++) {
        /* Started from a callback: there loom_now() stays put, so each
         * timer's delay lands it exactly on the target (outside loom_run()
         * every start would count from the clock, a little later each). */
        group_idx = &idx;
        group_started = 0;
        CHECK_OK(loom_delay(loop, 0, on_start_group, NULL, NULL));
        while (!group_started)
            loom_run(loop, LOOM_RUN_NOWAIT);
        /* Let some time pass (without reaching the target). */
        loom_timer_t *w;
        CHECK_OK(loom_timer_new(loop, &w, on_count, NULL));
        CHECK_OK(loom_timer_start(w, 25, 0));
        count = 0;
        /* NOWAIT, not ONCE: ONCE may run `w` at the top of its iteration and
         * then block until the next timer, the group's own deadline. */
        while (count == 0) {
            loom_run(loop, LOOM_RUN_NOWAIT);
            usleep(1000);
        }
        loom_timer_close(w);
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(order_next, 400);
    CHECK_EQ(order_bad, 0);

    /* Repeat: fires 5 times, then closes itself. */
    rep = 0;
    loom_timer_t *r;
    CHECK_OK(loom_interval(loop, 2, on_repeat, NULL, &r));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(rep, 5);

    /* Unref: an unref'd timer does not keep the loop alive. */
    count = 0;
    loom_timer_t *u;
    CHECK_OK(loom_timer_new(loop, &u, on_count, NULL));
    CHECK_OK(loom_timer_start(u, 50, 0));
    loom_timer_unref(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(count, 0);
    CHECK(loom_timer_active(u));
    loom_timer_ref(u);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(count, 1);
    loom_timer_close(u);

    /* Delay 0 runs as soon as the loop gets control, not inside start. */
    zero_ran = 0;
    CHECK_OK(loom_delay(loop, 0, on_zero, NULL, NULL));
    CHECK_EQ(zero_ran, 0);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 0);
    CHECK_EQ(zero_ran, 1);

    /* A timer restarting itself with delay 0 runs once per iteration. */
    int n = 0;
    loom_timer_t *self;
    CHECK_OK(loom_timer_new(loop, &self, on_restart_self, &n));
    CHECK_OK(loom_timer_start(self, 0, 0));
    loom_run(loop, LOOM_RUN_NOWAIT);
    CHECK_EQ(n, 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(n, 3);
    loom_timer_close(self);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 0); /* frees it */

    /* A delay's callback is its close notification: it runs once, and the
     * timer is closed when it returns (calls on it say LOOM_ECLOSED for the
     * rest of the iteration); restarting it from the callback keeps it
     * alive until the next run. */
    delay_runs = 0;
    CHECK_OK(loom_delay(loop, 1, on_delay_restart_once, NULL, &delay_t));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(delay_runs, 2);
    CHECK_OK(loom_delay(loop, 0, on_setup, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(after_delay_seen, LOOM_ECLOSED);

    /* Far deadlines (days) are placed and stopped without trouble. */
    loom_timer_t *far;
    CHECK_OK(loom_timer_new(loop, &far, on_count, NULL));
    CHECK_OK(loom_timer_start(far, 86400000ull * 30, 0));
    CHECK_OK(loom_timer_start(far, UINT64_MAX / 2, 0));
    CHECK(loom_backend_timeout(loop) > 1000);
    loom_timer_close(far);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
