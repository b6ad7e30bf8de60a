/* The loop: natural exit, loom_stop with work pending, run modes, loom_start. */
#include "test.h"

static int fired;

static void on_timer(loom_timer_t *t, void *data)
{
    fired++;
    (void)t;
    (void)data;
}

static void on_stop_timer(loom_timer_t *t, void *data)
{
    loom_stop(t ? ((loom_loop_t *)data) : NULL);
}

static void start_fn(loom_loop_t *loop, void *data)
{
    int *flag = data;
    *flag = 1;
    CHECK_OK(loom_delay(loop, 1, on_timer, NULL, NULL));
}

int main(void)
{
    test_timeout(20);

    /* Natural exit: an empty loop returns 0 at once. */
    loom_loop_t *loop = test_loop_new();
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    /* It runs until the last timer has fired, then exits by itself. */
    fired = 0;
    CHECK_OK(loom_delay(loop, 5, on_timer, NULL, NULL));
    CHECK_OK(loom_delay(loop, 10, on_timer, NULL, NULL));
    uint64_t t0 = loom_now(loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(fired, 2);
    CHECK(loom_now(loop) - t0 >= 10);
    test_loop_free_clean(loop);

    /* loom_stop with work pending: run returns 1 (alive), the pending timer
     * has not fired; freeing the loop frees it. */
    loop = test_loop_new();
    fired = 0;
    loom_timer_t *late;
    CHECK_OK(loom_timer_new(loop, &late, on_timer, NULL));
    CHECK_OK(loom_timer_start(late, 10000, 0));
    CHECK_OK(loom_delay(loop, 1, on_stop_timer, loop, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 1);
    CHECK_EQ(fired, 0);
    CHECK_EQ(loom_loop_live(loop), 1);
    loom_loop_free(loop); /* frees the live timer: no leak under ASan */

    /* NOWAIT does not block; ONCE waits for the timer. */
    loop = test_loop_new();
    fired = 0;
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_timer, NULL));
    CHECK_OK(loom_timer_start(t, 20, 0));
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 1);
    CHECK_EQ(fired, 0);
    while (fired == 0)
        loom_run(loop, LOOM_RUN_ONCE);
    CHECK_EQ(fired, 1);
    CHECK_EQ(loom_run(loop, LOOM_RUN_NOWAIT), 0);
    loom_timer_close(t);
    loom_timer_close(t); /* harmless twice */
    CHECK_EQ(loom_timer_start(t, 1, 0), LOOM_ECLOSED);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);

    /* loom_start: create, run, free. */
    int flag = 0;
    fired = 0;
    CHECK_EQ(loom_start(start_fn, &flag, NULL), 0);
    CHECK_EQ(flag, 1);
    CHECK_EQ(fired, 1);

    /* User slot and backend name. */
    loop = test_loop_new();
    loom_loop_set_data(loop, &flag);
    CHECK(loom_loop_data(loop) == &flag);
    const char *be = getenv("LOOM_BACKEND");
    if (be)
        CHECK_STR(loom_loop_backend(loop), be);
    test_loop_free_clean(loop);
    return 0;
}
