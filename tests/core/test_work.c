/* tests/core/test_work.c - the worker pool: jobs run off the loop thread and
 * complete on it in order of completion, cancellation, pool size, timers not
 * stalled by blocking work, stats, loom_raise routing, and freeing a loop
 * with jobs still queued. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>

#include "test.h"

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static pthread_t g_loop_thread;

/* --- Off-thread work, on-thread completion, completion order ------------- */

typedef struct {
    unsigned sleep_ms;
    int id;
    pthread_t worker;
    int status;
    int *order;
    int *norder;
} job_t;

static void job_work(void *data)
{
    job_t *j = data;
    j->worker = pthread_self();
    sleep_ms(j->sleep_ms);
}

static void job_done(int status, void *data)
{
    job_t *j = data;
    CHECK(pthread_equal(pthread_self(), g_loop_thread));
    j->status = status;
    j->order[(*j->norder)++] = j->id;
}

static void test_order(void)
{
    loom_loop_t *loop = test_loop_new();
    int order[3], n = 0;
    job_t jobs[3] = {
        {.sleep_ms = 300, .id = 0, .order = order, .norder = &n},
        {.sleep_ms = 20, .id = 1, .order = order, .norder = &n},
        {.sleep_ms = 150, .id = 2, .order = order, .norder = &n},
    };
    loom_stats_t st;

    for (int i = 0; i < 3; i++)
        CHECK_OK(loom_work(loop, job_work, job_done, &jobs[i], NULL));
    loom_stats(loop, &st);
    CHECK_EQ(st.work_pending, 3);
    /* Jobs are not application objects: the live count stays 0. */
    CHECK_EQ(loom_loop_live(loop), 0);

    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(n, 3);
    CHECK_EQ(order[0], 1);
    CHECK_EQ(order[1], 2);
    CHECK_EQ(order[2], 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(jobs[i].status, 0);
        CHECK(!pthread_equal(jobs[i].worker, g_loop_thread));
    }
    loom_stats(loop, &st);
    CHECK_EQ(st.work_pending, 0);
    test_loop_free_clean(loop);
}

/* --- Cancellation ---------------------------------------------------------- */

typedef struct {
    atomic_int started;
    atomic_int release;
    atomic_int ran;
    int done_calls;
    int status;
    loom_work_t *self;
} gate_t;

static void gate_work(void *data)
{
    gate_t *g = data;
    atomic_store(&g->started, 1);
    atomic_fetch_add(&g->ran, 1);
    while (!atomic_load(&g->release))
        sleep_ms(1);
}

static void gate_done(int status, void *data)
{
    gate_t *g = data;
    g->done_calls++;
    g->status = status;
    /* Finished (and being delivered): no longer cancellable. */
    CHECK_EQ(loom_work_cancel(g->self), LOOM_EBUSY);
}

static void release_gate(loom_timer_t *t, void *data)
{
    (void)t;
    atomic_store(&((gate_t *)data)->release, 1);
}

static void test_cancel(void)
{
    loom_loop_t *loop;
    gate_t first = {0}, second = {0}, third = {0};
    loom_stats_t st;

    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = 1}));
    CHECK_OK(loom_work(loop, gate_work, gate_done, &first, &first.self));
    CHECK_OK(loom_work(loop, gate_work, gate_done, &second, &second.self));
    CHECK_OK(loom_work(loop, gate_work, gate_done, &third, &third.self));
    atomic_store(&third.release, 1);
    while (!atomic_load(&first.started))
        sleep_ms(1);

    /* The one thread is busy with `first`: `second` has not started. */
    CHECK_EQ(loom_work_cancel(first.self), LOOM_EBUSY);
    CHECK_EQ(loom_work_cancel(second.self), 0);
    CHECK_EQ(second.done_calls, 0); /* never from inside loom_work_cancel */
    CHECK_EQ(loom_work_cancel(second.self), LOOM_EBUSY);
    loom_stats(loop, &st);
    CHECK_EQ(st.work_pending, 3); /* the canceled one until its done_fn ran */

    CHECK_OK(loom_delay(loop, 30, release_gate, &first, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(second.done_calls, 1);
    CHECK_EQ(second.status, LOOM_ECANCELED);
    CHECK_EQ(atomic_load(&second.ran), 0);
    CHECK_EQ(first.done_calls, 1);
    CHECK_EQ(first.status, 0);
    CHECK_EQ(third.done_calls, 1);
    CHECK_EQ(third.status, 0);
    CHECK_EQ(atomic_load(&third.ran), 1);
    loom_stats(loop, &st);
    CHECK_EQ(st.work_pending, 0);
    test_loop_free_clean(loop);
}

/* --- Pool size --------------------------------------------------------------- */

static atomic_int g_running, g_max_running;

static void count_work(void *data)
{
    int now = atomic_fetch_add(&g_running, 1) + 1;
    int max = atomic_load(&g_max_running);
    while (now > max && !atomic_compare_exchange_weak(&g_max_running, &max, now))
        ;
    sleep_ms(data ? *(unsigned *)data : 30);
    atomic_fetch_sub(&g_running, 1);
}

static void count_done(int status, void *data)
{
    (void)data;
    CHECK_EQ(status, 0);
}

static void check_pool_size(unsigned threads, int expect)
{
    loom_loop_t *loop;
    atomic_store(&g_running, 0);
    atomic_store(&g_max_running, 0);
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = threads}));
    for (int i = 0; i < 3 * expect; i++)
        CHECK_OK(loom_work(loop, count_work, count_done, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    /* Sleeping jobs overlap as far as the pool allows, and no further. */
    CHECK_EQ(atomic_load(&g_max_running), expect);
    test_loop_free_clean(loop);
}

static void test_pool_size(void)
{
    check_pool_size(2, 2);
    check_pool_size(1, 1);
    check_pool_size(0, 4); /* the default */
}

/* --- Blocking work does not stall timers ------------------------------------- */

typedef struct {
    unsigned sleep_ms; /* first: count_work reads it */
    uint64_t last, max_gap;
    int ticks;
    int done;
    loom_timer_t *tick;
} stall_t;

static void on_tick(loom_timer_t *t, void *data)
{
    stall_t *s = data;
    uint64_t now = mono_ms();
    if (now - s->last > s->max_gap)
        s->max_gap = now - s->last;
    s->last = now;
    s->ticks++;
    (void)t;
}

static void stall_done(int status, void *data)
{
    stall_t *s = data;
    CHECK_EQ(status, 0);
    if (++s->done == 4)
        loom_timer_close(s->tick);
}

static void test_no_stall(void)
{
    loom_loop_t *loop = test_loop_new();
    /* 1 s each: one after another would take 4 s, side by side 1 s, which
     * leaves a loaded machine seconds of slack in the bounds below. */
    stall_t s = {.sleep_ms = 1000};

    atomic_store(&g_running, 0);
    atomic_store(&g_max_running, 0);
    CHECK_OK(loom_interval(loop, 10, on_tick, &s, &s.tick));
    s.last = mono_ms();
    uint64_t t0 = s.last;
    for (int i = 0; i < 4; i++)
        CHECK_OK(loom_work(loop, count_work, stall_done, &s, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    uint64_t elapsed = mono_ms() - t0;

    CHECK_EQ(s.done, 4);
    CHECK_EQ(atomic_load(&g_max_running), 4);
    CHECK(elapsed >= 1000);
    CHECK(elapsed < 3500); /* the four ran side by side, not one after another */
    /* A 10 ms interval kept firing while every worker slept: a loop blocked
     * by the work would show a gap of a whole sleep (1 s). The bounds are
     * loose because the machine is shared. */
    CHECK(s.ticks >= 10);
    if (s.max_gap >= 500)
        fprintf(stderr, "max gap between ticks: %llu ms\n", (unsigned long long)s.max_gap);
    CHECK(s.max_gap < 500);
    test_loop_free_clean(loop);
}

/* --- done_fn may submit more work, and loom_raise routes to the default ------ */

static int g_events;
static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK_EQ(ev->kind, LOOM_EV_APP_ERROR);
    CHECK_EQ(ev->code, LOOM_EAPP);
    CHECK_STR(ev->msg, "from done");
    g_events++;
}

typedef struct {
    loom_loop_t *loop;
    int remaining;
    int done;
} chain_t;

static void chain_work(void *data)
{
    (void)data;
}

static void chain_done(int status, void *data)
{
    chain_t *c = data;
    CHECK_EQ(status, 0);
    c->done++;
    if (--c->remaining > 0)
        CHECK_OK(loom_work(c->loop, chain_work, chain_done, c, NULL));
    else
        CHECK_OK(loom_raise(c->loop, LOOM_EAPP, "from done", NULL));
}

static void test_chain_and_raise(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.on_event = on_event}));
    chain_t c = {.loop = loop, .remaining = 5};
    CHECK_OK(loom_work(loop, chain_work, chain_done, &c, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(c.done, 5);
    CHECK_EQ(g_events, 1);
    /* A NULL done_fn is allowed. */
    CHECK_OK(loom_work(loop, chain_work, NULL, NULL, NULL));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(loom_work(loop, NULL, chain_done, &c, NULL), LOOM_EINVAL);
    test_loop_free_clean(loop);
}

/* --- Freeing a loop with jobs queued, running and finished ------------------ */

static atomic_int g_free_ran;
static int g_free_done;

static void slow_work(void *data)
{
    (void)data;
    atomic_fetch_add(&g_free_ran, 1);
    sleep_ms(100);
}

static void never_done(int status, void *data)
{
    (void)status, (void)data;
    g_free_done++;
}

static void test_free_with_queued(void)
{
    loom_loop_t *loop;
    gate_t canceled = {0};
    loom_work_t *w;

    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = 1}));
    for (int i = 0; i < 10; i++)
        CHECK_OK(loom_work(loop, slow_work, never_done, NULL, NULL));
    CHECK_OK(loom_work(loop, gate_work, gate_done, &canceled, &w));
    CHECK_EQ(loom_work_cancel(w), 0);
    while (atomic_load(&g_free_ran) == 0)
        sleep_ms(1);
    /* One job runs; nine wait; one canceled job waits for delivery. */
    test_loop_free_clean(loop);
    CHECK_EQ(atomic_load(&g_free_ran), 1);
    CHECK_EQ(g_free_done, 0);
    CHECK_EQ(canceled.done_calls, 0);

    /* A finished but undelivered job is freed too. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = 1}));
    atomic_store(&g_free_ran, 0);
    CHECK_OK(loom_work(loop, chain_work, never_done, NULL, NULL));
    sleep_ms(50);
    test_loop_free_clean(loop);
    CHECK_EQ(g_free_done, 0);
}

/* --- fork ------------------------------------------------------------------
 * The child has none of the parent's worker threads. After loom_loop_fork()
 * its pool works again: a job that was running in the parent at fork time
 * ends with LOOM_ECANCELED (it never finishes in the child), queued ones
 * run, and new ones run. */
static atomic_int f_started;
static int f_status[3], f_calls;

static void f_long_work(void *data)
{
    (void)data;
    atomic_store(&f_started, 1);
    sleep_ms(300);
}

static void f_quick_work(void *data)
{
    (void)data;
}

static void f_done(int status, void *data)
{
    f_status[(intptr_t)data] = status;
    f_calls++;
}

static void test_fork(void)
{
#ifdef __SANITIZE_THREAD__
    return; /* ThreadSanitizer cannot start threads after a threaded fork */
#endif
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.pool_threads = 1}));
    CHECK_OK(loom_work(loop, f_long_work, f_done, (void *)0, NULL));
    CHECK_OK(loom_work(loop, f_quick_work, f_done, (void *)1, NULL));
    while (atomic_load(&f_started) == 0)
        sleep_ms(1);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(10);
        g_loop_thread = pthread_self();
        if (loom_loop_fork(loop) != 0)
            _exit(10);
        if (loom_work(loop, f_quick_work, f_done, (void *)2, NULL) != 0)
            _exit(11);
        if (loom_run(loop, LOOM_RUN_DEFAULT) != 0)
            _exit(12);
        if (f_calls != 3)
            _exit(13);
        if (f_status[0] != LOOM_ECANCELED || f_status[1] != 0 || f_status[2] != 0)
            _exit(14);
        if (loom_loop_live(loop) != 0)
            _exit(15);
        loom_loop_free(loop);
        _exit(0);
    }
    int status = 0;
    CHECK_EQ(waitpid(pid, &status, 0), pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    /* The parent's pool is untouched. */
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(f_calls, 2);
    CHECK_EQ(f_status[0], 0);
    CHECK_EQ(f_status[1], 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(25);
    g_loop_thread = pthread_self();
    test_order();
    test_cancel();
    test_pool_size();
    test_no_stall();
    test_chain_and_raise();
    test_free_with_queued();
    test_fork();
    return 0;
}
