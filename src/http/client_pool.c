/* http/client_pool.c - the HTTP client's pools: one per origin, with its
 * idle connections (most recently used first), its busy ones and the
 * requests waiting for a connection; the per-host limit, the idle LRU and
 * its cap, opening, assigning, releasing and closing connections. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/client_internal.h"

/* Writes "host:port" ("[v6]:port") of the pool to buf; returns buf. */
const char *loom__hc_where(const hc_pool *pool, char *buf, size_t size)
{
    bool v6 = strchr(pool->host, ':') != NULL;
    snprintf(buf, size, "%s%s%s:%d", v6 ? "[" : "", pool->host, v6 ? "]" : "", pool->port);
    return buf;
}

/* FNV-1a over the lower-cased host, seeded with the rest of the key. */
static uint32_t hc_hash(const char *h, size_t n, uint32_t seed)
{
    uint32_t x = 2166136261u ^ seed;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        x = (x ^ c) * 16777619u;
    }
    return x;
}

hc_pool *loom__hc_pool_get(hc_state *st, const hc_origin *o)
{
    const char *host = o->host;
    size_t n = o->host_len;
    uint32_t seed = (uint32_t)(o->port * 31 + o->family) ^ ((uint32_t)o->scheme << 24) ^
                    ((uint32_t)o->ver << 20) ^ (uint32_t)(o->tls.id * 0x9e3779b97f4a7c15ull >> 32);
    uint32_t b = hc_hash(host, n, seed) % HC_BUCKETS;
    for (hc_pool *p = st->buckets[b]; p; p = p->next)
        if (p->port == o->port && p->family == o->family && p->scheme == o->scheme &&
            p->ver == o->ver && p->tls.id == o->tls.id && strlen(p->host) == n &&
            strncasecmp(p->host, host, n) == 0)
            return p;
    hc_pool *p = calloc(1, sizeof *p + n + 1);
    if (p == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        p->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
    }
    p->host[n] = '\0';
    p->scheme = o->scheme;
    p->port = o->port;
    p->family = o->family;
    p->ver = o->ver;
    p->tls = o->tls;
    p->ctx = o->ctx;
    if (p->ctx)
        loom_tls_ctx_ref(p->ctx);
    loom__queue_init(&p->idle);
    loom__queue_init(&p->busy);
    loom__queue_init(&p->waiters);
    p->next = st->buckets[b];
    st->buckets[b] = p;
    return p;
}

/* Switches the connection's read and write timeouts. Returns 0, or
 * LOOM_ETOOMANY when a value would be the loop's 64th distinct one (a
 * request's values are checked when it starts, so only the pool's idle
 * timeout can meet this), or LOOM_ENOMEM. */
int loom__hc_conn_timeouts(hc_conn *c, uint32_t rt, uint32_t wt)
{
    if (c->rt == rt && c->wt == wt)
        return 0;
    int r = loom_socket_set_timeouts(c->s, rt, wt);
    if (r == 0) {
        c->rt = rt;
        c->wt = wt;
    }
    return r;
}

void loom__hc_conn_close(hc_conn *c, bool reset)
{
    if (c->dead)
        return;
    hc_state *st = c->st;
    hc_pool *pool = c->pool;
    c->dead = 1;
    if (pool->h2 == c)
        pool->h2 = NULL;
    if (c->idle) {
        loom__queue_remove(&c->lru);
        st->stats.idle--;
        c->idle = 0;
    }
    loom__queue_remove(&c->node);
    pool->nconns--;
    st->stats.open--;
    /* Requests still on it that saw no byte go back to the queue. */
    while (!loom__queue_empty(&c->reqs)) {
        hc_req *r = hc_req_of(c->reqs.next);
        loom__queue_remove(&r->node);
        c->nreqs--;
        r->conn = NULL;
        r->state = RQ_NEW;
        if (loom__hc_body_rewind(r) < 0) {
            loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR, LOOM_ECONNRESET,
                                "connection closed and the streamed body cannot be sent again");
            continue;
        }
        loom__hc_dispatch(r);
    }
    if (!loom__socket_closing(c->s))
        loom__socket_close_now(c->s, reset);
    c->ops->closed(c);
    /* A slot opened up: a waiter may connect. */
    if (!loom__queue_empty(&pool->waiters) && pool->nconns < st->max_per_host) {
        hc_req *w = hc_req_of(pool->waiters.next);
        loom__queue_remove(&w->node);
        st->stats.queued--;
        w->state = RQ_NEW;
        loom__hc_dispatch(w);
    }
}

void loom__hc_on_connect(loom_socket_t *s, void *data)
{
    (void)data;
    hc_conn *c = hc_conn_of(s);
    c->connected = 1;
    c->st->stats.connections++;
    if (c->ops->connected)
        c->ops->connected(c);
}

/* Puts r on connection c and sends it. */
void loom__hc_assign(hc_conn *c, hc_req *r)
{
    r->conn = c;
    r->reused = c->uses > 0;
    if (r->reused)
        r->st->stats.reused++;
    c->uses++;
    loom__queue_insert_tail(&c->reqs, &r->node);
    c->nreqs++;
    c->ops->submit(c, r);
}

static int hc_conn_new(hc_pool *pool, hc_req *r)
{
    hc_state *st = r->st;
    loom_loop_t *loop = st->loop;
    loom_tcp_opts o = {.connect_timeout_ms = r->connect_to, .family = pool->family};
    loom__sock_class *cls = &st->cls;
    if (pool->scheme == HC_SCHEME_HTTPS) {
        /* The handshake is part of connecting: on_connect runs after it,
         * and the connect timeout covers it. */
        o.tls = pool->ctx;
        o.server_name = pool->host;
        cls = pool->ver == HC_V_ALPN     ? &st->tls_h2_cls
              : pool->ver == HC_V_H2ONLY ? &st->tls_h2o_cls
                                         : &st->tls_cls;
    }
    loom_socket_t *s;
    int rc = loom__tcp_connect_cls(loop, pool->host, pool->port, &o, cls, &s);
    if (rc < 0)
        return rc;
    /* loom's own: the request is the live object that keeps the loop up. */
    loom__handle_own(&s->h);
    hc_conn *c = hc_conn_of(s);
    memset(c, 0, sizeof *c);
    c->s = s;
    /* HTTP/2 operations wait for the connect (and ALPN) and then speak
     * HTTP/2 or hand the connection to HTTP/1's. */
    c->ops = pool->ver == HC_V_H1 ? &loom__hc_h1_ops : &loom__hc_h2_ops;
    c->pool = pool;
    c->st = st;
    loom__queue_init(&c->reqs);
    loom__queue_init(&c->lru);
    c->ops->opened(c);
    loom__queue_insert_tail(&pool->busy, &c->node);
    pool->nconns++;
    st->stats.open++;
    st->stats.connect_attempts++;
    loom__hc_assign(c, r);
    return 0;
}

/* Finds r a connection: an idle one, a new one under the per-host limit, a
 * pipelining slot, or a place in the queue. */
void loom__hc_dispatch(hc_req *r)
{
    hc_state *st = r->st;
    hc_pool *pool = r->pool;
    if (pool->ver != HC_V_H1 && pool->proto != HC_PROTO_H1) {
        /* HTTP/2 (or not known yet): one connection, multiplexed. */
        hc_conn *c = pool->h2;
        if (c && c->idle) {
            loom__queue_remove(&c->node);
            loom__queue_remove(&c->lru);
            c->idle = 0;
            st->stats.idle--;
            loom__queue_insert_tail(&pool->busy, &c->node);
            loom__hc_assign(c, r);
            return;
        }
        if (c && c->ops->can_take(c, r)) {
            loom__hc_assign(c, r);
            return;
        }
        if (c || pool->h2_wait > 0) {
            /* All streams busy, or the first connection is still
             * negotiating: wait for it (curl's "wait for multiplexing"). */
            r->state = RQ_QUEUED;
            loom__queue_insert_tail(&pool->waiters, &r->node);
            st->stats.queued++;
            return;
        }
    }
    /* An idle HTTP/1 connection on which anything came while it was parked
     * (bytes nobody asked for, a "408" before the server's close, the close
     * itself, a reset) and that the loop has not read yet is closed, never
     * reused: its next request would take those bytes for its answer (curl
     * and browsers drop such a connection too). The check is one MSG_PEEK
     * (loom__socket_quiet); a close that races the request after it is the
     * stale-connection retry's (client_h1.c). */
    while (!loom__queue_empty(&pool->idle) && !r->retried) {
        hc_conn *c = LOOM__CONTAINER_OF(pool->idle.next, hc_conn, node);
        if (c->ops == &loom__hc_h1_ops && !loom__socket_quiet(c->s)) {
            st->stats.stale_dropped++;
            loom__hc_conn_close(c, true);
            continue;
        }
        loom__queue_remove(&c->node);
        loom__queue_remove(&c->lru);
        c->idle = 0;
        st->stats.idle--;
        loom__queue_insert_tail(&pool->busy, &c->node);
        loom__hc_assign(c, r);
        return;
    }
    if (pool->nconns < st->max_per_host) {
        int rc = hc_conn_new(pool, r);
        if (rc < 0) {
            r->state = RQ_NEW;
            loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR, rc, loom_strerror(rc));
        }
        return;
    }
    /* O(busy connections), at most the per-host limit, and only when the
     * pool is full. */
    for (loom__queue *q = pool->busy.next; q != &pool->busy; q = q->next) {
        hc_conn *c = LOOM__CONTAINER_OF(q, hc_conn, node);
        if (c->ops->can_take(c, r)) {
            loom__hc_assign(c, r);
            return;
        }
    }
    r->state = RQ_QUEUED;
    loom__queue_insert_tail(&pool->waiters, &r->node);
    st->stats.queued++;
}

/* A connection finished its requests and may be reused: hand it to a waiter
 * or park it. */
void loom__hc_conn_release(hc_conn *c)
{
    hc_state *st = c->st;
    hc_pool *pool = c->pool;
    if (c->dead)
        return;
    if (!loom__queue_empty(&pool->waiters)) {
        hc_req *w = hc_req_of(pool->waiters.next);
        loom__queue_remove(&w->node);
        st->stats.queued--;
        loom__hc_assign(c, w);
        /* Fill the pipeline with more waiters. */
        while (!loom__queue_empty(&pool->waiters)) {
            hc_req *n = hc_req_of(pool->waiters.next);
            if (!c->ops->can_take(c, n))
                break;
            loom__queue_remove(&n->node);
            st->stats.queued--;
            loom__hc_assign(c, n);
        }
        return;
    }
    if (loom__hc_conn_timeouts(c, st->idle_ms, 0) < 0) {
        /* Parked without its idle timeout it could stay open for ever. */
        loom__hc_conn_close(c, false);
        return;
    }
    loom__queue_remove(&c->node);
    hc_queue_insert_head(&pool->idle, &c->node);
    loom__queue_insert_tail(&st->idle_lru, &c->lru);
    c->idle = 1;
    st->stats.idle++;
    if (st->stats.idle > st->max_idle) {
        hc_conn *old = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        loom__hc_conn_close(old, false);
    }
}

bool loom__hc_tls_snap(hc_conn *c, hc_tls_snap *snap)
{
    if (loom_socket_tls_info(c->s, &snap->info) < 0)
        return false;
    loom_tls_info *i = &snap->info;
    size_t n = i->alpn_len < sizeof snap->alpn ? i->alpn_len : sizeof snap->alpn - 1;
    if (i->alpn)
        memcpy(snap->alpn, i->alpn, n);
    snap->alpn[n] = '\0';
    i->alpn = n ? snap->alpn : NULL;
    i->alpn_len = n;
    if (i->sni) {
        snprintf(snap->sni, sizeof snap->sni, "%s", i->sni);
        i->sni = snap->sni;
    }
    return true;
}
