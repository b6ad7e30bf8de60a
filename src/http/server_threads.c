/* http/server_threads.c - opts.threads: N loops on N threads sharing the
 * port through SO_REUSEPORT.
 *
 * The caller's server is member 0. loom_http_server() starts members
 * 1..N-1, each a thread with its own loop (on the same backend) and its own
 * server bound to the same port, and waits until every one listens (or
 * failed, then the ones started are stopped and the error returned). The
 * kernel spreads incoming connections over the N listeners; a connection
 * lives and dies on the thread that accepted it.
 *
 * Closing: loom_http_server_close() on member 0 posts a close to every
 * member's loop (loom_post() is the only cross-thread call). A member whose
 * server finished stops its loop; its thread frees the loop and posts
 * "finished" back to member 0's loop. When member 0 has finished locally and
 * every thread has reported, the threads are joined (they are exiting) and
 * on_done runs on the caller's loop.
 *
 * The group's lock guards the members' loop pointers against a post racing
 * with a member freeing its loop.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http/server_internal.h"

typedef struct loom__hmember {
    loom__hgroup *g;
    unsigned index;
    pthread_t thread;
    bool joinable;
    loom_loop_t *loop;       /* NULL once the member's loop is gone */
    loom_http_server_t *srv; /* valid while loop is not NULL */
    int start_result;
    bool started;
    bool force;
} loom__hmember;

struct loom__hgroup {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned n; /* members, the caller's included */
    loom_http_server_t *main;
    loom_loop_t *main_loop;
    const char *backend;
    char *bind;
    int port;
    loom_http_req_cb on_request;
    loom_http_server_opts opts;
    unsigned finished; /* threads that reported (main loop only) */
    bool main_done;
    bool no_report; /* being torn down synchronously: threads do not report */
    loom__hmember m[];
};

static void *loom__hmember_main(void *arg)
{
    loom__hmember *m = arg;
    loom__hgroup *g = m->g;
    loom_loop_t *loop = NULL;
    loom_http_server_t *srv = NULL;
    loom_loop_opts lo = {.backend = g->backend};
    int r = loom_loop_new(&loop, &lo);
    if (r == 0) {
        loom_http_server_opts o = g->opts;
        o.threads = 0;
        o.reuseport = true;
        r = loom_http_server(loop, g->bind, g->port, g->on_request, &o, &srv);
        if (r == 0) {
            srv->group = g;
            srv->index = m->index;
            if (g->opts.on_thread)
                g->opts.on_thread(loop, m->index, g->opts.data);
        }
    }
    pthread_mutex_lock(&g->lock);
    m->start_result = r;
    m->started = true;
    m->loop = r == 0 ? loop : NULL;
    m->srv = srv;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    if (r < 0) {
        loom_loop_free(loop);
        return NULL;
    }
    loom_run(loop, LOOM_RUN_DEFAULT);
    pthread_mutex_lock(&g->lock);
    m->loop = NULL;
    m->srv = NULL;
    pthread_mutex_unlock(&g->lock);
    loom_loop_free(loop);
    return NULL;
}

/* Runs on a member's loop: close its server. */
static void loom__hmember_close(void *arg)
{
    loom__hmember *m = arg;
    loom__hgroup *g = m->g;
    pthread_mutex_lock(&g->lock);
    loom_http_server_t *srv = m->srv;
    bool force = m->force;
    pthread_mutex_unlock(&g->lock);
    if (srv)
        loom__hsrv_close_local(srv, force);
}

static void loom__hgroup_free_all(loom__hgroup *g)
{
    for (unsigned i = 1; i < g->n; i++)
        if (g->m[i].joinable)
            pthread_join(g->m[i].thread, NULL);
    pthread_mutex_destroy(&g->lock);
    pthread_cond_destroy(&g->cond);
    loom_tls_ctx_free(g->opts.tls);
    free(g->bind);
    free(g);
}

/* Runs on the caller's loop when a member's loop has ended. */
static void loom__hmember_finished(void *arg)
{
    loom__hmember *m = arg;
    loom__hgroup *g = m->g;
    g->finished++;
    if (g->finished == g->n - 1 && g->main_done) {
        loom_http_server_t *srv = g->main;
        srv->group = NULL;
        loom__hgroup_free_all(g);
        loom__hsrv_finish(srv);
    }
}

/* The thread body ends by telling the caller's loop. Wraps
 * loom__hmember_main so that the report is the very last thing. */
static void *loom__hmember_thread(void *arg)
{
    loom__hmember *m = arg;
    loom__hgroup *g = m->g;
    loom__hmember_main(arg);
    pthread_mutex_lock(&g->lock);
    bool report = m->start_result == 0 && !g->no_report;
    pthread_mutex_unlock(&g->lock);
    if (report)
        loom_post(g->main_loop, loom__hmember_finished, m);
    return NULL;
}

static void loom__hgroup_post_close(loom__hgroup *g, bool force)
{
    pthread_mutex_lock(&g->lock);
    for (unsigned i = 1; i < g->n; i++) {
        loom__hmember *m = &g->m[i];
        if (force)
            m->force = true;
        if (m->loop)
            loom_post(m->loop, loom__hmember_close, m);
    }
    pthread_mutex_unlock(&g->lock);
}

int loom__hgroup_start(loom_http_server_t *srv, const char *bind, unsigned threads)
{
    loom__hgroup *g = calloc(1, sizeof *g + threads * sizeof(loom__hmember));
    if (g == NULL)
        return LOOM_ENOMEM;
    if (bind && (g->bind = strdup(bind)) == NULL) {
        free(g);
        return LOOM_ENOMEM;
    }
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    g->n = threads;
    g->main = srv;
    g->main_loop = srv->h.loop;
    g->backend = loom_loop_backend(srv->h.loop);
    g->port = srv->port;
    g->on_request = srv->on_request;
    g->opts = srv->o;
    g->opts.data = srv->h.data;
    if (g->opts.tls) /* every member's server takes it, later, on its thread */
        loom_tls_ctx_ref(g->opts.tls);
    srv->group = g;
    srv->index = 0;
    int r = 0;
    for (unsigned i = 1; i < threads; i++) {
        loom__hmember *m = &g->m[i];
        m->g = g;
        m->index = i;
        if (pthread_create(&m->thread, NULL, loom__hmember_thread, m) != 0) {
            r = LOOM_ENOMEM;
            break;
        }
        m->joinable = true;
        pthread_mutex_lock(&g->lock);
        while (!m->started)
            pthread_cond_wait(&g->cond, &g->lock);
        r = m->start_result;
        pthread_mutex_unlock(&g->lock);
        if (r < 0)
            break;
    }
    if (r == 0)
        return 0;
    /* Undo: the members that started stop at once and are joined. */
    pthread_mutex_lock(&g->lock);
    g->no_report = true;
    pthread_mutex_unlock(&g->lock);
    loom__hgroup_post_close(g, true);
    srv->group = NULL;
    loom__hgroup_free_all(g);
    return r;
}

void loom__hgroup_close(loom_http_server_t *srv, bool force)
{
    loom__hgroup_post_close(srv->group, force);
}

bool loom__hgroup_local_done(loom_http_server_t *srv)
{
    loom__hgroup *g = srv->group;
    g->main_done = true;
    if (g->finished < g->n - 1)
        return false;
    srv->group = NULL;
    loom__hgroup_free_all(g);
    return true;
}

void loom__hgroup_free(loom_http_server_t *srv)
{
    loom__hgroup *g = srv->group;
    pthread_mutex_lock(&g->lock);
    g->no_report = true;
    pthread_mutex_unlock(&g->lock);
    loom__hgroup_post_close(g, true);
    loom__hgroup_free_all(g);
    srv->group = NULL;
}
