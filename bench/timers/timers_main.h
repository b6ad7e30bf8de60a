/* bench/timers/timers_main.h - the one timer benchmark, shared by the loom,
 * libuv and libev programs so that all three run exactly the same logic.
 *
 * Each program defines, before including this file:
 *   IMPL_NAME                         "loom", "libuv" or "libev"
 *   static int impl_init(size_t n)    create the loop and n stopped timers
 *                                     (outside every timed region)
 *   static void impl_start(size_t i, uint64_t ms)   start timer i, one-shot
 *   static void impl_stop(size_t i)
 *   static void impl_update_time(void)              refresh the cached clock
 *   static void impl_run(void)        run the loop until impl_break()
 *   static void impl_break(void)      make impl_run() return
 *   static void impl_fini(void)
 *   static const char *impl_detail(void)  backend or library version, for
 *                                     the JSON line
 * and calls timers_fired() from each timer's callback.
 *
 * Phase (a): start every timer, then stop every timer; wall-clock ns per
 * timer for the start + stop pair. Phase (b): start every timer, then run the
 * loop until all have fired; process CPU ns per timer (the loop sleeps
 * between deadlines, so wall time would measure the sleeping).
 *
 * Deadlines are pseudo-random in [0, 1000) ms from a fixed seed.
 */
#include "bench.h"

static size_t timers_n, timers_fired_count;
static uint64_t *timers_delay;

static void timers_fired(void)
{
    if (++timers_fired_count == timers_n)
        impl_break();
}

int main(int argc, char **argv)
{
    size_t n = (size_t)bench_arg_long(argc, argv, "--timers", 1000000);
    uint64_t seed = (uint64_t)bench_arg_long(argc, argv, "--seed", 12345);
    timers_n = n;
    timers_delay = malloc(n * sizeof *timers_delay);
    if (!timers_delay || impl_init(n) != 0) {
        fprintf(stderr, "%s: cannot set up %zu timers\n", IMPL_NAME, n);
        return 1;
    }
    uint64_t state = seed ? seed : 1;
    for (size_t i = 0; i < n; i++)
        timers_delay[i] = bench_rand(&state) % 1000;

    /* (a) start all, then stop all. */
    impl_update_time();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        impl_start(i, timers_delay[i]);
    for (size_t i = 0; i < n; i++)
        impl_stop(i);
    uint64_t t1 = bench_now_ns();

    /* (b) start all, then run until every one has fired. */
    timers_fired_count = 0;
    impl_update_time();
    uint64_t c0 = bench_cpu_ns(), w0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        impl_start(i, timers_delay[i]);
    impl_run();
    uint64_t c1 = bench_cpu_ns(), w1 = bench_now_ns();

    if (timers_fired_count != n) {
        fprintf(stderr, "%s: only %zu of %zu timers fired\n", IMPL_NAME, timers_fired_count, n);
        return 1;
    }
    printf("{\"impl\":\"%s\",\"detail\":\"%s\",\"timers\":%zu,\"start_stop_ns\":%.1f,"
           "\"fire_cpu_ns\":%.1f,\"fire_wall_ms\":%.1f}\n",
           IMPL_NAME, impl_detail(), n, (double)(t1 - t0) / (double)n,
           (double)(c1 - c0) / (double)n, (double)(w1 - w0) / 1e6);
    impl_fini();
    free(timers_delay);
    return 0;
}
