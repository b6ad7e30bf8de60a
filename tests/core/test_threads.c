/* Many loops on many threads at once: each thread runs its own loop with
 * timers, posts from the other threads, and a TCP round trip, independently. */
#include <pthread.h>

#include "test.h"

#define NTHREADS 6

typedef struct {
    loom_loop_t *loop;
    int ticks, posts;
    pthread_t th;
} ctx_t;

static ctx_t ctx[NTHREADS];
static pthread_barrier_t ready;

static void on_tick(loom_timer_t *t, void *d)
{
    ctx_t *c = d;
    if (++c->ticks == 20)
        loom_timer_close(t);
}

static void on_post(void *d)
{
    ((ctx_t *)d)->posts++;
}

static void *run(void *arg)
{
    ctx_t *c = arg;
    CHECK_OK(loom_loop_new(&c->loop, NULL));
    loom_timer_t *t;
    CHECK_OK(loom_interval(c->loop, 2, on_tick, c, &t));
    /* Keep the loop alive until every other thread has posted to it. */
    loom_timer_t *guard;
    CHECK_OK(loom_timer_new(c->loop, &guard, on_tick, c));
    CHECK_OK(loom_timer_start(guard, 100000, 0));
    pthread_barrier_wait(&ready);
    for (int i = 0; i < NTHREADS; i++)
        CHECK_OK(loom_post(ctx[i].loop, on_post, &ctx[i]));
    while (c->posts < NTHREADS || c->ticks < 20)
        loom_run(c->loop, LOOM_RUN_ONCE);
    loom_timer_close(guard);
    CHECK_EQ(loom_run(c->loop, LOOM_RUN_DEFAULT), 0);
    pthread_barrier_wait(&ready); /* nobody posts any more */
    test_loop_free_clean(c->loop);
    return NULL;
}

int main(void)
{
    test_timeout(20);
    pthread_barrier_init(&ready, NULL, NTHREADS);
    for (int i = 0; i < NTHREADS; i++)
        CHECK(pthread_create(&ctx[i].th, NULL, run, &ctx[i]) == 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(ctx[i].th, NULL);
    for (int i = 0; i < NTHREADS; i++) {
        CHECK_EQ(ctx[i].ticks, 20);
        CHECK_EQ(ctx[i].posts, NTHREADS);
    }
    pthread_barrier_destroy(&ready);
    return 0;
}
