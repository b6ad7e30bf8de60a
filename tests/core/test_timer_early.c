/* No timer fires before its delay has passed, measured with CLOCK_MONOTONIC
 * from just before the start call, when timers are started outside loom's
 * callbacks after the loop's cached time has gone stale: before loom_run()
 * and while embedded in an outer poller (loom_backend_fd() and
 * loom_backend_timeout()). Every backend.
 *
 * The cached time is made stale on purpose (a busy wait of STALE_MS), so the
 * early fire this catches does not depend on the machine's load: a timer
 * counted from the stale time would fire up to STALE_MS early. On a foreign
 * backend (uv, event, ev) loom_timer_start() must refresh the time itself
 * (the application's own callbacks run outside loom's); on an owning one the
 * documented rule applies, loom_update_time() after long work, and the test
 * follows it. Lateness is never asserted. With millisecond resolution a
 * timer may fire up to 1 ms short of its delay (the start time is rounded
 * down), hence `delay - 1`. */
#include <poll.h>
#include <time.h>

#include "test.h"

#define NTIMERS  20
#define STALE_MS 25

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void busy_wait_ms(unsigned ms)
{
    uint64_t end = mono_ns() + (uint64_t)ms * 1000000u;
    while (mono_ns() < end)
        ;
}

typedef struct early {
    uint64_t started_ns;
    unsigned delay_ms;
    int fired;
} early_t;

static early_t timers[NTIMERS];
static int nfired;

static void on_fire(loom_timer_t *t, void *data)
{
    early_t *e = data;
    uint64_t elapsed = mono_ns() - e->started_ns;
    if (elapsed + 1000000u < (uint64_t)e->delay_ms * 1000000u) {
        fprintf(stderr, "a %u ms timer fired after %.3f ms\n", e->delay_ms, elapsed / 1e6);
        CHECK(!"timer fired early");
    }
    e->fired++;
    nfired++;
    (void)t;
}

static int foreign;

/* Makes the cached time stale, then starts timers of 1..NTIMERS ms. */
static void start_stale(loom_loop_t *loop)
{
    loom_update_time(loop);
    busy_wait_ms(STALE_MS);
    /* On an owning backend the delays count from the time cached here (the
     * documented rule), so they are measured from here too: the test may be
     * descheduled between the starts. On a foreign one each start refreshes
     * the time, and each is measured from just before its call. */
    uint64_t ref_ns = mono_ns();
    if (!foreign)
        loom_update_time(loop);
    nfired = 0;
    for (unsigned i = 0; i < NTIMERS; i++) {
        timers[i] = (early_t){.delay_ms = i + 1, .started_ns = foreign ? mono_ns() : ref_ns};
        CHECK_OK(loom_delay(loop, timers[i].delay_ms, on_fire, &timers[i], NULL));
    }
}

int main(void)
{
    test_timeout(30);
    loom_loop_t *loop = test_loop_new();
    const loom_backend_t *be = loom_backend_find(loom_loop_backend(loop), NULL);
    CHECK(be != NULL);
    foreign = (be->caps & LOOM_BACKEND_CAP_FOREIGN) != 0;

    /* 1. Started before loom_run(). */
    start_stale(loop);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(nfired, NTIMERS);

    /* 2. Started between runs of an outer poller that embeds loom. */
    int fd = loom_backend_fd(loop);
    if (fd >= 0) {
        start_stale(loop);
        for (int rounds = 0; nfired < NTIMERS && rounds < 10000; rounds++) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            poll(&pfd, 1, loom_backend_timeout(loop));
            loom_run(loop, LOOM_RUN_NOWAIT);
            if (rounds % 3 == 0)
                busy_wait_ms(1); /* the outer poller's own work */
        }
        CHECK_EQ(nfired, NTIMERS);
    } else {
        CHECK_EQ(fd, LOOM_ENOTSUP);
    }
    test_loop_free_clean(loop);
    return 0;
}
