/* tests/core/test_post.c - cross-thread posts: 8 threads post 10,000 items
 * each; every item arrives, each thread's in order, on the loop thread, and
 * the loop exits by itself after the last one. Also posts from the loop
 * thread itself. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"

#define THREADS    8
#define PER_THREAD 10000

static loom_loop_t *g_loop;
static pthread_t g_loop_thread;
static long g_next[THREADS]; /* next sequence number expected per thread */
static long g_total;
static loom_timer_t *g_keeper;
static atomic_int g_go;

static void on_item(void *data)
{
    uintptr_t v = (uintptr_t)data;
    int t = (int)(v >> 20);
    long seq = (long)(v & 0xfffff);

    CHECK(pthread_equal(pthread_self(), g_loop_thread));
    CHECK(t >= 0 && t < THREADS);
    CHECK_EQ(seq, g_next[t]);
    g_next[t]++;
    /* The last item: nothing but this post kept the loop alive besides the
     * keeper, so closing it lets loom_run() return. */
    if (++g_total == (long)THREADS * PER_THREAD)
        loom_timer_close(g_keeper);
}

static void *poster(void *arg)
{
    uintptr_t t = (uintptr_t)arg;
    while (!atomic_load(&g_go))
        sched_yield();
    for (uintptr_t seq = 0; seq < PER_THREAD; seq++)
        CHECK_OK(loom_post(g_loop, on_item, (void *)(t << 20 | seq)));
    return NULL;
}

static void never(loom_timer_t *t, void *data)
{
    (void)t, (void)data;
    CHECK(!"the keeper timer must not fire");
}

static void test_many_threads(void)
{
    pthread_t th[THREADS];

    g_loop = test_loop_new();
    g_loop_thread = pthread_self();
    /* While posters may still be starting, the queue can be empty: a ref'd
     * timer keeps the loop alive until the last item has arrived. */
    CHECK_OK(loom_timer_new(g_loop, &g_keeper, never, NULL));
    CHECK_OK(loom_timer_start(g_keeper, 60000, 0));
    for (uintptr_t i = 0; i < THREADS; i++)
        CHECK_EQ(pthread_create(&th[i], NULL, poster, (void *)i), 0);
    atomic_store(&g_go, 1);

    CHECK_EQ(loom_run(g_loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(g_total, (long)THREADS * PER_THREAD);
    for (int i = 0; i < THREADS; i++) {
        CHECK_EQ(pthread_join(th[i], NULL), 0);
        CHECK_EQ(g_next[i], PER_THREAD);
    }
    loom_stats_t st;
    loom_stats(g_loop, &st);
    CHECK_EQ(st.posts_pending, 0);
    test_loop_free_clean(g_loop);
}

/* --- Posting from the loop thread ----------------------------------------- */

typedef struct {
    loom_loop_t *loop;
    int order[4];
    int n;
    int in_post; /* set while loom_post() runs: fn must not run inside it */
} self_t;

static void self_second(void *data)
{
    self_t *s = data;
    CHECK(!s->in_post);
    s->order[s->n++] = 2;
}

static void self_first(void *data)
{
    self_t *s = data;
    CHECK(!s->in_post);
    s->order[s->n++] = 1;
    /* A post from a post callback runs later, not now. */
    s->in_post = 1;
    CHECK_OK(loom_post(s->loop, self_second, s));
    s->in_post = 0;
    CHECK_EQ(s->n, 1);
}

static void test_self_post(void)
{
    self_t s = {0};
    s.loop = test_loop_new();
    s.in_post = 1;
    CHECK_OK(loom_post(s.loop, self_first, &s));
    s.in_post = 0;
    CHECK_EQ(s.n, 0);
    loom_stats_t st;
    loom_stats(s.loop, &st);
    CHECK_EQ(st.posts_pending, 1);
    /* A pending post alone keeps the loop alive, and the one it posts too. */
    CHECK_EQ(loom_run(s.loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(s.n, 2);
    CHECK_EQ(s.order[0], 1);
    CHECK_EQ(s.order[1], 2);
    test_loop_free_clean(s.loop);

    /* Posts still queued when the loop is freed are dropped without a call. */
    s.n = 0;
    s.loop = test_loop_new();
    CHECK_OK(loom_post(s.loop, self_first, &s));
    test_loop_free_clean(s.loop);
    CHECK_EQ(s.n, 0);
}

int main(void)
{
    test_timeout(20);
    test_self_post();
    test_many_threads();
    return 0;
}
