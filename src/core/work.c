/* core/work.c - the worker pool behind loom_work().
 *
 * Each loop has its own pool, created on the first loom_work() with
 * loop->pool_threads threads (4 when 0); nothing is shared between loops.
 * Jobs wait in a FIFO queue under a mutex and condition variable. A worker
 * runs work_fn, appends the job to the pool's done list and wakes the loop
 * (loom__wakeup, coalesced). The loop's wakeup handler calls loom__work_drain,
 * which takes the whole done list under the lock and runs each done_fn on the
 * loop thread, in order of completion.
 *
 * Liveness: each job carries an internal handle (not counted by
 * loom_loop_live(), which counts the application's objects) that is started,
 * and so keeps the loop alive, from loom_work() until its done_fn has
 * returned; the handle then goes through the ordinary close path, which frees
 * the job at the end of the iteration.
 *
 * States, and who may change them: QUEUED -> RUNNING -> DONE (workers, under
 * the lock), QUEUED -> CANCELED (loom_work_cancel, under the lock), and DONE
 * or CANCELED -> DELIVERED (loop thread, when done_fn runs).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>

#include "core/internal.h"

#define LOOM__POOL_DEFAULT_THREADS 4

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELED, JOB_DELIVERED };

struct loom_work {
    loom__handle h;
    loom__queue node; /* pool queue, done list or canceled list */
    loom__pending pending;
    loom_work_fn work_fn;
    loom_done_fn done_fn;
    int state; /* JOB_*; under pool->lock until DONE or CANCELED */
};

typedef struct loom__pool {
    loom_loop_t *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    loom__queue queue;    /* QUEUED jobs, FIFO */
    loom__queue done;     /* DONE jobs, in order of completion */
    loom__queue canceled; /* CANCELED jobs waiting for their pending callback */
    bool stop;            /* workers exit when they see it */
    unsigned nthreads;
    pthread_t threads[];
} loom__pool;

static void *worker_main(void *arg)
{
    loom__pool *pool = arg;

    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (loom__queue_empty(&pool->queue) && !pool->stop)
            pthread_cond_wait(&pool->cond, &pool->lock);
        if (pool->stop)
            break;
        loom__queue *n = pool->queue.next;
        loom__queue_remove(n);
        loom_work_t *w = LOOM__CONTAINER_OF(n, loom_work_t, node);
        w->state = JOB_RUNNING;
        pthread_mutex_unlock(&pool->lock);

        w->work_fn(w->h.data);

        pthread_mutex_lock(&pool->lock);
        w->state = JOB_DONE;
        bool was_empty = loom__queue_empty(&pool->done);
        loom__queue_insert_tail(&pool->done, &w->node);
        /* While the loop is being freed it drains nothing and joins us, so
         * there is no one to wake. A non-empty done list means a wakeup is
         * already on its way. */
        if (was_empty && !pool->stop) {
            pthread_mutex_unlock(&pool->lock);
            loom__wakeup(pool->loop);
            pthread_mutex_lock(&pool->lock);
        }
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Stops and joins the first n workers. */
static void pool_join(loom__pool *pool, unsigned n)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = true;
    pthread_cond_broadcast(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned i = 0; i < n; i++)
        pthread_join(pool->threads[i], NULL);
}

static int pool_create(loom_loop_t *loop, loom__pool **out)
{
    unsigned n = loop->pool_threads ? loop->pool_threads : LOOM__POOL_DEFAULT_THREADS;
    loom__pool *pool;
    sigset_t all, old;
    unsigned started = 0;
    int r;

    pool = calloc(1, sizeof *pool + n * sizeof(pthread_t));
    if (pool == NULL)
        return LOOM_ENOMEM;
    pool->loop = loop;
    loom__queue_init(&pool->queue);
    loom__queue_init(&pool->done);
    loom__queue_init(&pool->canceled);
    r = pthread_mutex_init(&pool->lock, NULL);
    if (r != 0)
        goto fail_mutex;
    r = pthread_cond_init(&pool->cond, NULL);
    if (r != 0)
        goto fail_cond;

    /* Workers start with every signal blocked, so signals go to the
     * application's threads and blocking work is never interrupted. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < n; started++) {
        r = pthread_create(&pool->threads[started], NULL, worker_main, pool);
        if (r != 0)
            break;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started == 0)
        goto fail_threads;
    /* Fewer threads than asked for still make a working pool. */
    pool->nthreads = started;
    *out = pool;
    return 0;

fail_threads:
    pthread_cond_destroy(&pool->cond);
fail_cond:
    pthread_mutex_destroy(&pool->lock);
fail_mutex:
    free(pool);
    return loom__err(r);
}

static void work_free_mem(loom__handle *h)
{
    free(LOOM__CONTAINER_OF(h, loom_work_t, h));
}

/* Runs done_fn on the loop thread, then lets the job go. */
static void work_deliver(loom_loop_t *loop, loom_work_t *w, int status)
{
    loom__op_scope scope;

    w->state = JOB_DELIVERED;
    loop->stats.work_pending--;
    if (w->done_fn != NULL) {
        loom__op_enter(loop, &scope, NULL, NULL, NULL);
        w->done_fn(status, w->h.data);
        loom__op_leave(loop, &scope);
    }
    loom__handle_stop(&w->h);
    loom__handle_close(&w->h);
}

static void work_on_canceled(loom__pending *p)
{
    loom_work_t *w = LOOM__CONTAINER_OF(p, loom_work_t, pending);
    loom__queue_remove(&w->node);
    work_deliver(w->h.loop, w, LOOM_ECANCELED);
}

int loom_work(loom_loop_t *loop, loom_work_fn work_fn, loom_done_fn done_fn, void *data,
              loom_work_t **out)
{
    loom__pool *pool = loop->pool;
    loom_work_t *w;
    int r;

    if (work_fn == NULL)
        return LOOM_EINVAL;
    if (pool == NULL) {
        r = pool_create(loop, &pool);
        if (r != 0)
            return r;
        loop->pool = pool;
    }
    w = calloc(1, sizeof *w);
    if (w == NULL)
        return LOOM_ENOMEM;
    loom__handle_init(loop, &w->h, LOOM__T_OTHER, work_free_mem, true);
    w->h.data = data;
    w->work_fn = work_fn;
    w->done_fn = done_fn;
    w->state = JOB_QUEUED;
    loom__queue_init(&w->pending.node);
    loom__handle_start(&w->h);
    loop->stats.work_pending++;

    pthread_mutex_lock(&pool->lock);
    loom__queue_insert_tail(&pool->queue, &w->node);
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    if (out != NULL)
        *out = w;
    return 0;
}

int loom_work_cancel(loom_work_t *work)
{
    loom__pool *pool;
    int r = LOOM_EBUSY;

    if (work == NULL)
        return LOOM_EINVAL;
    pool = work->h.loop->pool;
    pthread_mutex_lock(&pool->lock);
    if (work->state == JOB_QUEUED) {
        loom__queue_remove(&work->node);
        loom__queue_insert_tail(&pool->canceled, &work->node);
        work->state = JOB_CANCELED;
        r = 0;
    }
    pthread_mutex_unlock(&pool->lock);
    if (r == 0) {
        work->pending.fn = work_on_canceled;
        loom__pending_queue(work->h.loop, &work->pending);
    }
    return r;
}

void loom__work_drain(loom_loop_t *loop)
{
    loom__pool *pool = loop->pool;
    loom__queue done;

    if (pool == NULL)
        return;
    loom__queue_init(&done);
    pthread_mutex_lock(&pool->lock);
    loom__queue_splice_tail(&done, &pool->done);
    pthread_mutex_unlock(&pool->lock);
    /* Every job taken here is delivered, even if a done_fn stops the loop:
     * the jobs are finished and their callbacks are not "pending" ones. */
    while (!loom__queue_empty(&done)) {
        loom_work_t *w = LOOM__CONTAINER_OF(done.next, loom_work_t, node);
        loom__queue_remove(&w->node);
        work_deliver(loop, w, 0);
    }
}

/* Frees a job that will never be delivered, without callbacks. */
static void work_drop(loom_loop_t *loop, loom_work_t *w)
{
    loom__queue_remove(&w->node);
    loom__pending_cancel(&w->pending);
    loop->stats.work_pending--;
    loom__handle_stop(&w->h);
    loom__handle_close(&w->h);
}

void loom__work_loop_free(loom_loop_t *loop)
{
    loom__pool *pool = loop->pool;
    if (pool == NULL)
        return;
    /* Unstarted jobs are dropped first so the workers do not start them;
     * running ones finish, land on the done list and are dropped there. */
    pthread_mutex_lock(&pool->lock);
    while (!loom__queue_empty(&pool->queue))
        work_drop(loop, LOOM__CONTAINER_OF(pool->queue.next, loom_work_t, node));
    pthread_mutex_unlock(&pool->lock);
    pool_join(pool, pool->nthreads);
    while (!loom__queue_empty(&pool->done))
        work_drop(loop, LOOM__CONTAINER_OF(pool->done.next, loom_work_t, node));
    while (!loom__queue_empty(&pool->canceled))
        work_drop(loop, LOOM__CONTAINER_OF(pool->canceled.next, loom_work_t, node));
    pthread_cond_destroy(&pool->cond);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
    loop->pool = NULL;
}
