/* The timing wheel against a brute-force model: random starts, stops, time
 * jumps (small, across level boundaries, and huge) and runs. After every step
 * the wheel's next deadline must never be later than the true earliest one,
 * and every run must fire exactly the due timers, in (deadline, start order)
 * order. LOOM_TEST_NO_BACKEND: it drives the wheel directly. */
#include "core/internal.h"
#include "test.h"

#define N 3000

static loom_timer_t *ts[N];
static uint64_t start_seq[N], seq;
static uint64_t last_deadline, last_seq;
static int fired_bad, fired_count;

static void on_fire(loom_timer_t *t, void *data)
{
    size_t i = (size_t)(uintptr_t)data;
    /* Non-decreasing (deadline, start sequence) across one run. */
    if (t->deadline < last_deadline || (t->deadline == last_deadline && start_seq[i] < last_seq))
        fired_bad++;
    if (t->deadline > t->h.loop->now)
        fired_bad++; /* fired early */
    last_deadline = t->deadline;
    last_seq = start_seq[i];
    fired_count++;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

int main(void)
{
    test_timeout(60);
    loom_loop_t *loop = test_loop_new();
    /* The model moves loop->now itself: as inside loom_run(), so that
     * loom_timer_start() does not refresh it from the clock. */
    loop->in_run = true;
    for (size_t i = 0; i < N; i++)
        CHECK_OK(loom_timer_new(loop, &ts[i], on_fire, (void *)(uintptr_t)i));
    for (long iter = 0; iter < 150000; iter++) {
        unsigned op = (unsigned)(next_rand() % 16);
        if (op < 7) {
            size_t i = next_rand() % N;
            uint64_t r = next_rand() % 100;
            uint64_t d = r < 60   ? next_rand() % 5000            /* level 0 and 1 */
                         : r < 90 ? next_rand() % 300000          /* a few levels up */
                         : r < 98 ? next_rand() % 100000000000ull /* days */
                                  : 0;                            /* delay 0 */
            CHECK_OK(loom_timer_start(ts[i], d, 0));
            start_seq[i] = ++seq;
        } else if (op < 10) {
            CHECK_OK(loom_timer_stop(ts[next_rand() % N]));
        } else if (op < 14) {
            uint64_t r = next_rand() % 100;
            loop->now += r < 80 ? next_rand() % 200 : r < 98 ? next_rand() % 70000 : 1ull << 33;
        } else {
            /* Count the due timers, run, and compare. */
            int due = 0;
            for (size_t i = 0; i < N; i++)
                if (loom_timer_active(ts[i]) && ts[i]->deadline <= loop->now)
                    due++;
            fired_count = 0;
            last_deadline = 0;
            last_seq = 0;
            loom__timers_run(loop);
            CHECK_EQ(fired_count, due);
        }
        uint64_t mn = UINT64_MAX;
        for (size_t i = 0; i < N; i++)
            if (loom_timer_active(ts[i]) && ts[i]->deadline < mn)
                mn = ts[i]->deadline;
        int64_t next = loom__timers_next(loop);
        if (mn == UINT64_MAX) {
            CHECK_EQ(next, -1);
        } else {
            int64_t want = mn <= loop->now ? 0 : (int64_t)(mn - loop->now);
            CHECK(next >= 0 && next <= want);
        }
    }
    CHECK_EQ(fired_bad, 0);
    loop->in_run = false;
    for (size_t i = 0; i < N; i++)
        loom_timer_close(ts[i]);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
    return 0;
}
