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
 *
 * fork(): the child has none of the workers. loom_loop_fork() calls
 * loom__work_loop_fork() once the child has its own wakeup fd (the new
 * workers wake the loop through it), which starts new ones; a job that was running at
 * fork time never finishes in the child and is delivered LOOM_ECANCELED, and
 * a finished one not yet delivered is delivered normally.
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
    int state;  /* JOB_*; under pool->lock until DONE or CANCELED */
    int status; /* for delivery from the pending phase: 0 or LOOM_ECANCELED */
};

typedef struct loom__pool {
    loom_loop_t *loop;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    loom__queue queue;    /* QUEUED jobs, FIFO */
    loom__queue running;  /* RUNNING jobs (so a forked child can find them) */
    loom__queue done;     /* DONE jobs, in order of completion */
    loom__queue canceled; /* jobs waiting for their pending callback (w->status) */
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
        loom__queue_insert_tail(&pool->running, n);
        loom_work_t *w = LOOM__CONTAINER_OF(n, loom_work_t, node);
        w->state = JOB_RUNNING;
        pthread_mutex_unlock(&pool->lock);

        w->work_fn(w->h.data);

        pthread_mutex_lock(&pool->lock);
        loom__queue_remove(&w->node);
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

/* Starts up to n workers; returns how many started (fewer still make a
 * working pool), with *err the failure that stopped it. */
static unsigned pool_start(loom__pool *pool, unsigned n, int *err)
{
    sigset_t all, old;
    unsigned started = 0;

    /* Workers start with every signal blocked, so signals go to the
     * application's threads and blocking work is never interrupted. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (; started < n; started++) {
        int r = pthread_create(&pool->threads[started], NULL, worker_main, pool);
        if (r != 0) {
            *err = loom__err(r);
            break;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

static int pool_create(loom_loop_t *loop, loom__pool **out)
{
    unsigned n = loop->pool_threads ? loop->pool_threads : LOOM__POOL_DEFAULT_THREADS;
    loom__pool *pool;
    int r;

    pool = calloc(1, sizeof *pool + n * sizeof(pthread_t));
    if (pool == NULL)
        return LOOM_ENOMEM;
    pool->loop = loop;
    loom__queue_init(&pool->queue);
    loom__queue_init(&pool->running);
    loom__queue_init(&pool->done);
    loom__queue_init(&pool->canceled);
    r = pthread_mutex_init(&pool->lock, NULL);
    if (r != 0) {
        r = loom__err(r);
        goto fail_mutex;
    }
    r = pthread_cond_init(&pool->cond, NULL);
    if (r != 0) {
        r = loom__err(r);
        goto fail_cond;
    }
    pool->nthreads = pool_start(pool, n, &r);
    if (pool->nthreads == 0)
        goto fail_threads;
    *out = pool;
    return 0;

fail_threads:
    pthread_cond_destroy(&pool->cond);
fail_cond:
    pthread_mutex_destroy(&pool->lock);
fail_mutex:
    free(pool);
    return r;
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

/* Delivers a job from the canceled list (w->status). */
static void work_on_pending(loom__pending *p)
{
    loom_work_t *w = LOOM__CONTAINER_OF(p, loom_work_t, pending);
    loom__queue_remove(&w->node);
    work_deliver(w->h.loop, w, w->status);
}

/* Moves w to the canceled list, to be delivered with `status` from the
 * pending phase. */
static void work_defer(loom__pool *pool, loom_work_t *w, int status)
{
    loom__queue_remove(&w->node);
    loom__queue_insert_tail(&pool->canceled, &w->node);
    w->state = JOB_CANCELED;
    w->status = status;
    w->pending.fn = work_on_pending;
    loom__pending_queue(pool->loop, &w->pending);
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
    } else if (pool->nthreads == 0) {
        /* A forked child that could not start its workers: try again. */
        r = 0;
        pool->nthreads = pool_start(
            pool, loop->pool_threads ? loop->pool_threads : LOOM__POOL_DEFAULT_THREADS, &r);
        if (pool->nthreads == 0)
            return r;
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

loom_loop_t *loom_work_loop(const loom_work_t *work)
{
    return work->h.loop;
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
        work_defer(pool, work, LOOM_ECANCELED);
        r = 0;
    }
    pthread_mutex_unlock(&pool->lock);
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

void loom__work_loop_fork(loom_loop_t *loop)
{
    loom__pool *pool = loop->pool;
    int err = 0;
    if (pool == NULL)
        return;
    /* Only this thread exists in the child, and a worker may have held the
     * lock at fork time: start the lock and condition afresh. */
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->cond, NULL);
    pool->stop = false;
    /* What the parent's workers were running never finishes here; what
     * they finished is delivered from the loop (no wakeup is on its way). */
    while (!loom__queue_empty(&pool->running))
        work_defer(pool, LOOM__CONTAINER_OF(pool->running.next, loom_work_t, node), LOOM_ECANCELED);
    while (!loom__queue_empty(&pool->done))
        work_defer(pool, LOOM__CONTAINER_OF(pool->done.next, loom_work_t, node), 0);
    unsigned n = loop->pool_threads ? loop->pool_threads : LOOM__POOL_DEFAULT_THREADS;
    pool->nthreads = pool_start(pool, n, &err);
    if (pool->nthreads == 0) {
        /* No worker: the queued jobs cannot run either; loom_work() tries
         * to start workers again. */
        loom_log(loop, LOOM_LOG_ERR, "worker pool: no thread after fork: %s", loom_strerror(err));
        while (!loom__queue_empty(&pool->queue))
            work_defer(pool, LOOM__CONTAINER_OF(pool->queue.next, loom_work_t, node),
                       LOOM_ECANCELED);
    }
}
