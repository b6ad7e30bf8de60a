/* http/server.c - the HTTP/1.1 server: connection state machine,
 * request life cycle and closing. Answers are built in server_resp.c, the
 * request accessors live in server_req.c and the threads in
 * server_threads.c.
 *
 * The listener is a TCP-layer server of the HTTP server's class
 * (loom__tcp_server_cls): it binds, accepts and backs off on EMFILE; the
 * class's proto_accept hook counts connections and pauses accepting at
 * max_connections.
 *
 * A connection is a loom socket of the server's class (protocol hooks, 16 bytes
 * of extension: loom__hconn). It reads into the loop's scratch buffer and
 * parses requests in place; nothing is allocated for a request that arrives
 * in one read and is answered inside on_request. Only what must outlive a
 * read is copied: a partial head (into a small loom__hbuf), the head and body
 * of a request the application keeps (loom__hreq_persist), and bytes that
 * arrive behind a request still in flight.
 *
 * One request at a time per connection: the next pipelined request is parsed
 * only when the current one has been answered. While the connection is being
 * processed (loop->batch == the socket) answers gather in the loop's output
 * buffer and leave in one write at the end (loom__hconn_batch_end).
 *
 * The one function that settles where a connection stands after any change
 * (reading on or off, which timeout applies, closing) is loom__hconn_settle.
 * The one path by which a connection leaves is loom__hconn_detach: it frees
 * what the connection holds and tells the application about a request it
 * still owns (on_close).
 *
 * Timeouts use the socket layer's timeout groups (no timer per
 * connection): the read timeout of a socket is switched between the idle,
 * header, body and linger groups as the state changes; the write timeout is
 * the class's. The header deadline is also checked against the head's first
 * byte on every read, so a trickling client is cut off.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

#define LOOM__HIN_MAX          (64 * 1024) /* input stored behind a request before reading stops */
#define LOOM__HLINGER_MS       2000        /* linger: inactivity */
#define LOOM__HLINGER_TOTAL_MS 5000        /* linger: at most */
/* Discarding the rest of an answered request's body to keep the connection:
 * at most this many bytes, and at most the body timeout in all (each pause
 * too); beyond either the connection closes (by lingering), like nginx's
 * discarded bodies. */
#define LOOM__HDISCARD_MAX (1u << 20)

static void loom__hconn_read(loom_socket_t *s, char *buf, size_t len);
static void loom__hconn_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);
static void loom__hconn_drain(loom_socket_t *s, void *data);
static void loom__hconn_settle(loom_socket_t *s);
static void loom__hconn_detach(loom_socket_t *s);
static void loom__hsrv_check_done(loom_http_server_t *srv);
static void loom__hconn_process_store(loom_http_server_t *srv, loom_socket_t *s, loom__hbuf *b);

/* --- Shared per-loop HTTP state ------------------------------------------------ */

/* --- Per-loop server state ------------------------------------------------------ */

static void loom__hsrv_sentinel_free(loom__handle *h)
{
    loom__hsrv_loop *hl = h->data;
    loom__slab_destroy(&hl->req_slab);
    free(hl->obuf);
    free(hl);
    free(h);
}

static void loom__hsrv_resume_run(loom__pending *p);
static void loom__hsrv_free_now(loom_http_server_t *srv);

/* loom__http_loop.server_free: frees every server without callbacks. The
 * requests and servers go to the closing list before the sentinel, whose
 * free function releases the slab they live in. */
static void loom__hsrv_loop_free(loom_loop_t *loop)
{
    loom__http_loop *L = loop->http;
    loom__hsrv_loop *hl = L->server;
    if (hl == NULL)
        return;
    while (!loom__queue_empty(&hl->servers))
        loom__hsrv_free_now(LOOM__CONTAINER_OF(hl->servers.next, loom_http_server_t, node));
    loom__pending_cancel(&hl->resume);
    loom__handle_close(hl->sentinel);
    L->server = NULL;
    L->server_free = NULL;
}

loom__hsrv_loop *loom__hsrv_loop_get(loom_loop_t *loop)
{
    loom__http_loop *L = loom__http_get(loop);
    if (L == NULL)
        return NULL;
    if (LOOM__LIKELY(L->server != NULL))
        return L->server;
    loom__hsrv_loop *hl = calloc(1, sizeof *hl);
    if (hl == NULL)
        return NULL;
    hl->sentinel = loom__sentinel_new(loop, hl, loom__hsrv_sentinel_free);
    if (hl->sentinel == NULL) {
        free(hl);
        return NULL;
    }
    hl->loop = loop;
    loom__slab_init(&hl->req_slab, sizeof(loom_http_req_t));
    loom__queue_init(&hl->servers);
    loom__queue_init(&hl->resume_q);
    hl->resume.fn = loom__hsrv_resume_run;
    loom__queue_init(&hl->resume.node);
    L->server = hl;
    L->server_free = loom__hsrv_loop_free;
    return hl;
}

/* --- Events ------------------------------------------------------------------------ */

/* Client trouble goes to the server's on_event or the loop default, and is
 * dropped (logged) when neither exists: a misbehaving client must never end
 * loom_run(). */
static void loom__hsrv_emit(loom_http_server_t *srv, loom_event_kind_t kind, int code,
                            const char *msg)
{
    loom_loop_t *loop = srv->h.loop;
    if (srv->o.on_event == NULL && loop->on_event == NULL) {
        loom_log(loop, LOOM_LOG_DEBUG, "http server: %s: %s", loom_event_kind_name(kind), msg);
        return;
    }
    loom__event_emit(loop, srv->o.on_event, srv->h.data, kind, code, msg, srv);
}

static inline uint32_t loom__now32(const loom_loop_t *loop)
{
    return (uint32_t)loop->now;
}

/* --- Requests ------------------------------------------------------------------------ */

static void loom__hreq_free_fn(loom__handle *h)
{
    loom_http_req_t *req = (loom_http_req_t *)h;
    loom__hsrv_loop *hl = req->srv->hl;
    if (LOOM__UNLIKELY(req->mem || req->bodybuf || req->in)) {
        free(req->mem);
        free(req->bodybuf);
        free(req->in);
    }
    loom__slab_free(&hl->req_slab, req);
}

/* Frees a request. `now`: at once, for a request answered inside the
 * state machine's own processing (nobody can hold it any more, and reusing
 * it at once keeps the hot path in one warm slab object); otherwise through
 * the closing list at the end of the iteration, since the application's
 * call that answered it may still be on the stack. */
static void loom__hreq_free_ex(loom_http_req_t *req, bool now)
{
    if (req->flags & LOOM__HR_FREED)
        return;
    loom_http_server_t *srv = req->srv;
    req->flags |= LOOM__HR_FREED;
    req->astate = LOOM__HA_DONE;
    if (req->flags & LOOM__HR_DISCARD)
        srv->ndiscard--;
    loom__queue_remove(&req->node);
    if (req->flags & LOOM__HR_RESUMEQ) {
        loom__queue_remove(&req->rnode);
        req->flags &= ~LOOM__HR_RESUMEQ;
    }
    srv->nreqs--;
    if (now) {
        loom__handle_forget(&req->h);
        loom__hreq_free_fn(&req->h);
    } else {
        loom__handle_close(&req->h);
    }
    if (srv->closing)
        loom__hsrv_check_done(srv);
}

void loom__hreq_free(loom_http_req_t *req)
{
    loom__hreq_free_ex(req, false);
}

static loom_http_req_t *loom__hreq_new(loom_http_server_t *srv, loom_socket_t *s)
{
    loom_http_req_t *req = loom__slab_alloc(&srv->hl->req_slab);
    if (req == NULL)
        return NULL;
    loom__handle_init(srv->h.loop, &req->h, LOOM__T_HTTP, loom__hreq_free_fn, false);
    req->srv = srv;
    req->sock = s;
    loom__queue_insert_tail(&srv->reqs, &req->node);
    loom__queue_init(&req->rnode);
    srv->nreqs++;
    return req;
}

static void loom__hreq_queue_resume(loom_http_req_t *req)
{
    loom__hsrv_loop *hl = req->srv->hl;
    if (req->flags & LOOM__HR_RESUMEQ)
        return;
    req->flags |= LOOM__HR_RESUMEQ;
    loom__queue_insert_tail(&hl->resume_q, &req->rnode);
    if (!hl->resume_queued) {
        hl->resume_queued = true;
        loom__pending_queue(hl->loop, &hl->resume);
    }
}

/* Rebases a slice from the old buffer to its copy. */
/* Rebases a slice of the head (or of the server's xbuf) to its copy; any
 * other pointer (a static string) stays. */
typedef struct {
    const char *head, *xbuf;
    size_t head_len, xlen;
    char *nhead, *nx;
} loom__rebaser;

static const char *loom__rebase(const loom__rebaser *rb, const char *p)
{
    if (p >= rb->head && p <= rb->head + rb->head_len)
        return rb->nhead + (p - rb->head);
    if (rb->xlen && p >= rb->xbuf && p < rb->xbuf + rb->xlen)
        return rb->nx + (p - rb->xbuf);
    return p;
}

/* Copies the head, the header array and a body slice that still point into
 * a transient buffer (the scratch buffer or a connection's input store) into
 * one allocation owned by the request. Returns 0 or LOOM_ENOMEM. */
static int loom__hreq_persist(loom_http_req_t *req)
{
    if (req->flags & LOOM__HR_PERSIST)
        return 0;
    size_t hsz = req->nhdrs * sizeof(loom_http_header_t);
    bool body_slice = req->body != NULL && req->bodybuf == NULL;
    size_t bsz = body_slice && req->bstate == LOOM__HB_NONE ? req->body_len : 0;
    char *m = malloc(hsz + req->head_len + req->xlen + bsz + 1);
    if (m == NULL)
        return LOOM_ENOMEM;
    loom_http_header_t *h = (loom_http_header_t *)(void *)m;
    char *head = m + hsz;
    loom__rebaser rb = {.head = req->head,
                        .head_len = req->head_len,
                        .xbuf = req->srv->xbuf,
                        .xlen = req->xlen,
                        .nhead = head,
                        .nx = head + req->head_len};
    memcpy(head, req->head, req->head_len);
    if (req->xlen)
        memcpy(rb.nx, rb.xbuf, req->xlen);
    for (size_t i = 0; i < req->nhdrs; i++) {
        h[i].name = loom__rebase(&rb, req->hdrs[i].name);
        h[i].name_len = req->hdrs[i].name_len;
        h[i].value = loom__rebase(&rb, req->hdrs[i].value);
        h[i].value_len = req->hdrs[i].value_len;
    }
    loom_http_request_t *rq = &req->rq;
    rq->method_str = loom__rebase(&rb, rq->method_str);
    rq->target = loom__rebase(&rb, rq->target);
    if (rq->host)
        rq->host = loom__rebase(&rb, rq->host);
    req->path = loom__rebase(&rb, req->path);
    req->query = loom__rebase(&rb, req->query);
    req->head = head;
    req->hdrs = h;
    req->xlen = 0;
    if (body_slice) {
        if (bsz) {
            char *b = rb.nx + rb.xlen;
            memcpy(b, req->body, bsz);
            req->body = b;
        } else {
            /* The body is still arriving: continue it in a buffer of its own. */
            size_t cap = req->body_len < 4096 ? 4096 : req->body_len * 2;
            if (req->fr.kind == LOOM_HTTP_BODY_LENGTH &&
                req->fr.length <= req->srv->lim.max_body_size)
                cap = (size_t)req->fr.length;
            char *b = malloc(cap ? cap : 1);
            if (b == NULL) {
                free(m);
                return LOOM_ENOMEM;
            }
            memcpy(b, req->body, req->body_len);
            req->bodybuf = b;
            req->body_cap = cap;
            req->body = b;
        }
    }
    req->mem = m;
    req->flags |= LOOM__HR_PERSIST;
    return 0;
}

/* Appends a piece of a buffered body. Returns 0 or LOOM_ENOMEM. */
static int loom__hreq_body_append(loom_http_req_t *req, const char *p, size_t n)
{
    if (req->body == NULL && !(req->flags & LOOM__HR_PERSIST)) {
        /* Zero-copy until a second piece arrives, or until the window ends
         * (loom__hreq_persist copies it then). */
        req->body = p;
        req->body_len = n;
        return 0;
    }
    if (req->bodybuf == NULL) {
        size_t cap = (req->body_len + n) * 2;
        if (req->fr.kind == LOOM_HTTP_BODY_LENGTH && req->fr.length <= req->srv->lim.max_body_size)
            cap = (size_t)req->fr.length;
        if (cap < 4096)
            cap = 4096;
        char *b = malloc(cap);
        if (b == NULL)
            return LOOM_ENOMEM;
        if (req->body_len)
            memcpy(b, req->body, req->body_len);
        req->bodybuf = b;
        req->body_cap = cap;
    }
    if (req->body_len + n > req->body_cap) {
        size_t cap = req->body_cap * 2;
        while (cap < req->body_len + n)
            cap *= 2;
        char *b = realloc(req->bodybuf, cap);
        if (b == NULL)
            return LOOM_ENOMEM;
        req->bodybuf = b;
        req->body_cap = cap;
    }
    memcpy(req->bodybuf + req->body_len, p, n);
    req->body_len += n;
    req->body = req->bodybuf;
    return 0;
}

/* Runs on_request inside an op scope (loom_raise() routes to on_event). */
static void loom__hreq_dispatch(loom_http_server_t *srv, loom_http_req_t *req)
{
    loom_loop_t *loop = srv->h.loop;
    req->flags |= LOOM__HR_DISPATCHED | LOOM__HR_IN_CB;
    loom__op_scope sc;
    loom__op_enter(loop, &sc, srv->o.on_event, srv->h.data, req);
    srv->on_request(req, srv->h.data);
    loom__op_leave(loop, &sc);
    req->flags &= ~LOOM__HR_IN_CB;
}

/* Streaming mode: one on_body call. Returns its verdict. */
static int loom__hreq_on_body(loom_http_server_t *srv, loom_http_req_t *req, const char *p,
                              size_t n)
{
    loom_loop_t *loop = srv->h.loop;
    loom__op_scope sc;
    loom__op_enter(loop, &sc, srv->o.on_event, srv->h.data, req);
    int r = srv->o.on_body(req, p, n, srv->h.data);
    loom__op_leave(loop, &sc);
    return r;
}

/* The client went away (or the connection is being dropped): the request
 * loses its socket. A request the application owns and has not answered
 * gets on_close; any other is freed now. */
static void loom__hreq_gone(loom_http_req_t *req)
{
    loom_http_server_t *srv = req->srv;
    req->sock = NULL;
    free(req->in);
    req->in = NULL;
    if (req->flags & LOOM__HR_RESUMEQ) {
        loom__queue_remove(&req->rnode);
        req->flags &= ~LOOM__HR_RESUMEQ;
    }
    if (req->astate == LOOM__HA_DONE || !(req->flags & LOOM__HR_DISPATCHED)) {
        loom__hreq_free(req);
        return;
    }
    req->flags |= LOOM__HR_GONE;
    if (srv->o.on_close) {
        loom_loop_t *loop = srv->h.loop;
        loom__op_scope sc;
        loom__op_enter(loop, &sc, srv->o.on_event, srv->h.data, req);
        srv->o.on_close(req, srv->h.data);
        loom__op_leave(loop, &sc);
    }
}

/* --- Connections: leaving -------------------------------------------------------------- */

/* The one way out: frees what the connection holds, hands its request to
 * loom__hreq_gone, and updates the server's count. Idempotent. The socket
 * itself is closed by the caller (or by the TCP layer after proto_event). */
static void loom__hconn_detach(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_DEAD)
        return;
    loom_http_server_t *srv = s->h.data;
    uint8_t st = c->state;
    c->state = LOOM__HC_DEAD;
    if (st == LOOM__HC_HEAD) {
        free(c->u.in);
    } else if (st == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        c->u.req = NULL;
        loom__hreq_gone(req);
    }
    c->u.in = NULL;
    srv->nconns--;
    if (srv->paused && !srv->closing && srv->nconns < srv->max_conns) {
        srv->paused = false;
        loom__tcp_server_pause(srv->lsrv, false);
    }
    if (srv->closing)
        loom__hsrv_check_done(srv);
}

void loom__hconn_close(loom_socket_t *s, bool graceful)
{
    loom__hconn_detach(s);
    if (loom_socket_closed(s))
        return;
    if (graceful)
        loom_socket_close(s);
    else
        loom_socket_abort(s);
}

/* Drops what the connection holds but keeps it counted: used before
 * lingering. */
static void loom__hconn_drop(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_HEAD) {
        free(c->u.in);
    } else if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        c->u.req = NULL;
        c->state = LOOM__HC_IDLE;
        loom__hreq_gone(req);
    }
    c->u.in = NULL;
}

/* Lingering close: the answer (an error, or a last answer) is sent, then the
 * write side is shut down, and what the client still sends is read and
 * discarded until it closes, for at most LOOM__HLINGER_TOTAL_MS. Closing
 * with unread input would make the kernel reset the connection, and the
 * reset can destroy the answer before the client reads it. */
static void loom__hconn_linger(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hconn_drop(s);
    if (c->state == LOOM__HC_DEAD)
        return;
    c->state = LOOM__HC_LINGER;
    c->flags = 0;
    c->t0 = loom__now32(s->h.loop);
    if (loom_socket_shutdown(s) < 0) {
        loom__hconn_close(s, false);
        return;
    }
    loom__hconn_settle(s);
}

/* --- Connections: settling --------------------------------------------------------------- */

/* Puts the connection where its state says: closes it if it must close,
 * else sets reading on or off and the read timeout that applies. */
static void loom__hconn_settle(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    if (c->state == LOOM__HC_DEAD || loom_socket_closed(s))
        return;
    if (c->flags & LOOM__HCF_CLOSE) {
        if (c->flags & LOOM__HCF_LINGER)
            loom__hconn_linger(s);
        else
            loom__hconn_close(s, true);
        return;
    }
    if (srv->closing && c->state == LOOM__HC_IDLE) {
        loom__hconn_close(s, true);
        return;
    }
    unsigned g = 0;
    bool rd = true;
    switch (c->state) {
    case LOOM__HC_IDLE:
        /* A connection that never sent a request has the header timeout. */
        g = c->nreq || !srv->g_head ? srv->g_idle : srv->g_head;
        break;
    case LOOM__HC_HEAD:
        if (c->flags & LOOM__HCF_FULL) {
            rd = false; /* the write timeout runs instead */
            break;
        }
        g = srv->g_head;
        break;
    case LOOM__HC_LINGER:
        g = srv->g_linger;
        break;
    default: {
        loom_http_req_t *req = c->u.req;
        if (req->flags & LOOM__HR_DISCARD) {
            g = srv->g_body;
        } else if (req->astate == LOOM__HA_DONE) {
            rd = false; /* a resume is due */
        } else if (req->bstate == LOOM__HB_READ) {
            g = srv->g_body;
            rd = !(req->flags & LOOM__HR_PAUSED);
        } else {
            rd = !(req->flags & LOOM__HR_PAUSED) &&
                 (req->in == NULL || req->in->len < LOOM__HIN_MAX);
        }
        if (!rd)
            g = 0;
        break;
    }
    }
    if (rd)
        loom__socket_read_start(s);
    else
        loom__socket_read_stop(s);
    loom__socket_set_rgroup(s, g);
}

/* Starts processing a connection: its answers gather in the output buffer
 * until loom__hconn_batch_end(), and parsing stops once they (plus what its
 * socket already queues) reach high water. */
static void loom__hconn_batch_begin(loom__hsrv_loop *hl, loom_socket_t *s)
{
    size_t hw = s->cls->high_water, q = s->wq ? loom_socket_queued(s) : 0;
    hl->batch = s;
    hl->olimit = q < hw ? hw - q : 0;
}

/* Input kept while the output was above high water: parse it now. */
static void loom__hconn_unfull(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    c->flags &= ~LOOM__HCF_FULL;
    if (c->state != LOOM__HC_HEAD)
        return;
    loom__hbuf *b = c->u.in;
    c->u.in = NULL;
    c->state = LOOM__HC_IDLE;
    if (b == NULL)
        return;
    loom__hconn_batch_begin(srv->hl, s);
    loom__hconn_process_store(srv, s, b);
}

/* The end of processing a connection: its gathered answers leave in one
 * write, then it settles. If parsing stopped at high water and the write
 * left the socket below it (the kernel took most), parsing goes on at once;
 * otherwise it waits for the socket's drain (loom__hconn_drain). */
static void loom__hconn_batch_end(loom_socket_t *s)
{
    loom__hsrv_loop *hl = ((loom_http_server_t *)s->h.data)->hl;
    loom__hconn *c = loom__hconn_of(s);
    for (;;) {
        hl->batch = NULL;
        if (hl->olen) {
            if (!loom_socket_closed(s)) {
                int r = loom_socket_write(s, hl->obuf, hl->olen);
                if (r < 0 && loom_socket_closed(s))
                    loom__hconn_detach(s);
            }
            hl->olen = 0;
        }
        if (!(c->flags & LOOM__HCF_FULL) || c->state == LOOM__HC_DEAD || loom__socket_dead(s) ||
            loom__socket_high(s))
            break;
        loom__hconn_unfull(s);
    }
    loom__hconn_settle(s);
}

/* --- Connections: the state machine ---------------------------------------------------- */

/* Answers a request that failed before the application saw it (or a body
 * that failed in buffered mode), reports it, and marks the connection to
 * linger-close after the batch. */
static void loom__hconn_fail(loom_socket_t *s, int status, const char *msg)
{
    loom_http_server_t *srv = s->h.data;
    loom__hconn *c = loom__hconn_of(s);
    int code = (status == 413 || status == 414 || status == 431) ? LOOM_ETOOBIG : LOOM_EHTTP;
    loom__hsrv_emit(srv, LOOM_EV_HTTP_ERROR, code, msg);
    if (c->state == LOOM__HC_DEAD)
        return;
    if (status)
        loom__hout_error(srv->hl, s, status);
    c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
}

/* The answered request leaves the connection; the next may begin. Returns
 * false if the connection must close now (it is marked so). */
static bool loom__hconn_next(loom_socket_t *s, loom_http_req_t *req, bool now)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    bool body_left = req->bstate == LOOM__HB_READ;
    bool close = (req->flags & LOOM__HR_CLOSE) || body_left;
    c->state = LOOM__HC_IDLE;
    c->u.in = NULL;
    loom__hreq_free_ex(req, now);
    if (c->nreq < UINT16_MAX)
        c->nreq++;
    if (close || srv->closing) {
        c->flags |= LOOM__HCF_CLOSE;
        if (close)
            c->flags |= LOOM__HCF_LINGER;
        return false;
    }
    return true;
}

/* An answered request whose body is still arriving: returns true if the
 * rest is to be read and dropped to keep the connection (then the request
 * is in DISCARD mode), false if the connection closes instead: it closes
 * anyway, or the announced rest is beyond the bound. */
static bool loom__hreq_discard_start(loom_socket_t *s, loom_http_req_t *req)
{
    if (req->flags & LOOM__HR_DISCARD)
        return true;
    loom_http_server_t *srv = req->srv;
    if ((req->flags & (LOOM__HR_CLOSE | LOOM__HR_GONE)) || srv->closing)
        return false;
    if (req->fr.kind == LOOM_HTTP_BODY_LENGTH && req->bd.remaining > LOOM__HDISCARD_MAX)
        return false;
    req->flags |= LOOM__HR_DISCARD;
    req->flags &= ~(LOOM__HR_PAUSED | LOOM__HR_END_DUE);
    srv->ndiscard++;
    req->discard_end = req->bd.total + LOOM__HDISCARD_MAX;
    loom__hconn_of(s)->t0 = loom__now32(s->h.loop);
    return true;
}

/* DISCARD mode: drops body bytes from p[0..n). Returns the bytes consumed
 * (the body is complete when bstate is no longer READ), or -1 if the
 * connection must close (bad body, or over the bound: marked so). */
static long loom__hreq_discard(loom_socket_t *s, loom_http_req_t *req, char *p, size_t n)
{
    loom__hconn *c = loom__hconn_of(s);
    size_t off = 0;
    for (;;) {
        loom_http_body_out_t out;
        memset(&out, 0, sizeof out);
        int k = loom_http_body_parse(&req->bd, p + off, n - off, &out);
        if (k < 0 || req->bd.total > req->discard_end) {
            c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
            return -1;
        }
        off += (size_t)k;
        if (out.done) {
            req->bstate = LOOM__HB_NONE;
            req->flags &= ~LOOM__HR_DISCARD;
            req->srv->ndiscard--;
            return (long)off;
        }
        if (k == 0 && out.data_len == 0)
            return (long)off; /* more bytes needed */
    }
}

/* The authority of an absolute-form target ("http://host:port/p?q"):
 * sets *a and *alen and returns true, or returns false for any other form. */
static bool loom__target_authority(const char *t, size_t tl, const char **a, size_t *alen)
{
    if (tl == 0 || *t == '/' || *t == '*')
        return false;
    const char *end = t + tl, *sch = memchr(t, ':', tl);
    if (sch == NULL || end - sch < 3 || sch[1] != '/' || sch[2] != '/')
        return false;
    const char *h = sch + 3, *e = h;
    while (e < end && *e != '/' && *e != '?' && *e != '#')
        e++;
    *a = h;
    *alen = (size_t)(e - h);
    return true;
}

/* RFC 3986 uri-host [":" port]: unreserved, pct-encoded, sub-delims, ':'
 * and the brackets of an IP literal. No '@' (userinfo), no '/', no space. */
static bool loom__host_valid(const char *h, size_t n)
{
    /* One bit per byte value: ALPHA DIGIT -._~!$&'()*+,;=%:[] (this runs
     * for every request, so a bitmap rather than comparisons). */
    static const uint64_t ok[2] = {0x2fff7ff200000000u, 0x47fffffeaffffffeu};
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch >= 128 || !((ok[ch >> 6] >> (ch & 63)) & 1))
            return false;
    }
    return true;
}

/* Checks the request's host before a request is made of it: the Host value,
 * or an absolute-form target's authority, which replaces it (RFC 9112
 * section 3.2.2). Returns 0 or the status to answer (400, or 431 when no
 * field is left to carry the reconciled Host). */
static int loom__hreq_check_host(loom_http_server_t *srv, const loom_http_request_t *rq, size_t nh)
{
    const char *a;
    size_t alen;
    if (loom__target_authority(rq->target, rq->target_len, &a, &alen)) {
        if (alen == 0 || !loom__host_valid(a, alen))
            return 400;
        if (!(rq->flags & LOOM_HTTP_F_HOST) && nh >= srv->lim.max_headers)
            return 431;
        return 0;
    }
    if ((rq->flags & LOOM_HTTP_F_HOST) && !loom__host_valid(rq->host, rq->host_len))
        return 400;
    return 0;
}

/* Splits the target into path and query, all NUL-terminated. The origin
 * form "/p" is the common case: the path is the target itself. With a
 * query the path is copied into the server's xbuf; so is it for the
 * absolute form "http://h/p?q" (the path starts after the authority, "/"
 * if empty), whose authority also becomes the request's one host: the Host
 * field's value (a field is added if there was none) and rq.host. */
static void loom__hreq_split_target(loom_http_req_t *req)
{
    loom_http_server_t *srv = req->srv;
    const char *t = req->rq.target, *end = t + req->rq.target_len;
    const char *p = t, *a = NULL;
    size_t alen = 0;
    bool absolute = loom__target_authority(t, req->rq.target_len, &a, &alen);
    if (absolute)
        p = a + alen;
    /* Targets are short: a plain loop beats a memchr call here. */
    const char *q = p;
    while (q < end && *q != '?')
        q++;
    if (q == end)
        q = NULL;
    req->path = p;
    req->path_len = (size_t)((q ? q : end) - p);
    if (q) {
        req->query = q + 1;
        req->query_len = (size_t)(end - q - 1);
    } else {
        req->query = end; /* the NUL written over the space after the target */
        req->query_len = 0;
    }
    if (LOOM__LIKELY(!q && !absolute))
        return;
    char *x = srv->xbuf;
    if (absolute && req->path_len == 0) {
        req->path = "/";
        req->path_len = 1;
    } else {
        memcpy(x, req->path, req->path_len);
        x[req->path_len] = '\0';
        req->path = x;
        x += req->path_len + 1;
    }
    if (absolute) {
        memcpy(x, a, alen);
        x[alen] = '\0';
        req->rq.host = x;
        req->rq.host_len = alen;
        req->rq.flags |= LOOM_HTTP_F_HOST;
        x += alen + 1;
        loom_http_header_t *h = NULL;
        for (size_t i = 0; i < req->nhdrs; i++)
            if (req->hdrs[i].name_len == 4 && strncasecmp(req->hdrs[i].name, "host", 4) == 0)
                h = &req->hdrs[i];
        if (h == NULL) {
            h = &req->hdrs[req->nhdrs++]; /* room checked by loom__hreq_check_host */
            h->name = "Host";
            h->name_len = 4;
        }
        h->value = req->rq.host;
        h->value_len = alen;
    }
    req->xlen = (uint32_t)(x - srv->xbuf);
}

/* Looks at an Expect field other than "100-continue". */
static bool loom__hreq_bad_expect(const loom_http_header_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].name_len == 6 && (h[i].name[0] | 0x20) == 'e' &&
            strncasecmp(h[i].name, "expect", 6) == 0) {
            if (!(h[i].value_len == 12 && strncasecmp(h[i].value, "100-continue", 12) == 0))
                return true;
        }
    }
    return false;
}

/* Feeds body bytes p[0..n) to the request in flight. Returns the bytes
 * consumed, or -1 if the connection failed. Stops when the body is done,
 * when the application pauses or answers, or when more bytes are needed. */
static long loom__hreq_body(loom_http_server_t *srv, loom_socket_t *s, loom_http_req_t *req,
                            char *p, size_t n)
{
    loom__hconn *c = loom__hconn_of(s);
    bool stream = srv->o.on_body != NULL;
    size_t off = 0;
    if (req->flags & LOOM__HR_END_DUE) {
        /* The body ended while paused: its end call was held back. */
        req->flags &= ~LOOM__HR_END_DUE;
        req->bstate = LOOM__HB_NONE;
        if (req->astate != LOOM__HA_DONE) {
            req->flags |= LOOM__HR_IN_CB;
            loom__hreq_on_body(srv, req, NULL, 0);
            req->flags &= ~LOOM__HR_IN_CB;
        }
        return 0;
    }
    for (;;) {
        loom_http_body_out_t out;
        memset(&out, 0, sizeof out);
        int k = loom_http_body_parse(&req->bd, p + off, n - off, &out);
        if (k < 0) {
            if (stream && (req->flags & LOOM__HR_DISPATCHED)) {
                /* The application owns the request: it hears on_close. */
                loom__hsrv_emit(srv, LOOM_EV_HTTP_ERROR,
                                k == LOOM_HTTP_PERR_BODY_TOO_LARGE ? LOOM_ETOOBIG : LOOM_EHTTP,
                                loom_http_perr_str(k));
                if (req->astate == LOOM__HA_NONE) {
                    loom__hout_error(srv->hl, s, loom_http_perr_status(k));
                    c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
                } else {
                    c->flags |= LOOM__HCF_CLOSE;
                }
            } else {
                loom__hconn_fail(s, loom_http_perr_status(k), loom_http_perr_str(k));
            }
            return -1;
        }
        off += (size_t)k;
        if (out.data_len) {
            if (stream) {
                if (req->astate != LOOM__HA_DONE) {
                    req->flags |= LOOM__HR_IN_CB;
                    int v = loom__hreq_on_body(srv, req, out.data, out.data_len);
                    req->flags &= ~LOOM__HR_IN_CB;
                    if (v == LOOM_HTTP_PAUSE)
                        req->flags |= LOOM__HR_PAUSED;
                }
            } else if (loom__hreq_body_append(req, out.data, out.data_len) < 0) {
                loom__hconn_fail(s, 0, "out of memory");
                c->flags &= ~LOOM__HCF_LINGER;
                return -1;
            }
        }
        if (out.done) {
            if (c->state == LOOM__HC_DEAD) {
                req->bstate = LOOM__HB_NONE;
                return (long)off;
            }
            if (req->flags & LOOM__HR_PAUSED) {
                req->flags |= LOOM__HR_END_DUE; /* delivered on resume */
                return (long)off;
            }
            req->bstate = LOOM__HB_NONE;
            if (stream) {
                if (req->astate != LOOM__HA_DONE) {
                    req->flags |= LOOM__HR_IN_CB;
                    loom__hreq_on_body(srv, req, NULL, 0);
                    req->flags &= ~LOOM__HR_IN_CB;
                }
            } else {
                loom__hreq_dispatch(srv, req);
            }
            return (long)off;
        }
        if (c->state == LOOM__HC_DEAD || (c->flags & LOOM__HCF_CLOSE) ||
            (req->flags & LOOM__HR_PAUSED) || req->astate == LOOM__HA_DONE)
            return (long)off;
        if (k == 0 && out.data_len == 0)
            return (long)off; /* more bytes needed */
    }
}

/* A complete head was parsed from p[0..head_len): sets the request up and,
 * unless the input is rejected, dispatches it or starts its body. Returns
 * false if the connection failed. */
static bool loom__hconn_begin(loom_http_server_t *srv, loom_socket_t *s, char *p, size_t head_len,
                              const loom_http_request_t *rq, size_t nh, bool more)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hsrv_loop *hl = srv->hl;
    loom_http_header_t *hdrs = srv->hdrs;

    if (rq->method == LOOM_HTTP_METHOD_OTHER) {
        loom__hconn_fail(s, 501, "method not implemented");
        return false;
    }
    if (loom__hreq_bad_expect(hdrs, nh)) {
        loom__hconn_fail(s, 417, "unsupported expectation");
        return false;
    }
    int hst = loom__hreq_check_host(srv, rq, nh);
    if (hst) {
        loom__hconn_fail(s, hst, hst == 400 ? "invalid host" : "too many header fields");
        return false;
    }
    loom_http_req_t *req = loom__hreq_new(srv, s);
    if (req == NULL) {
        loom__hconn_fail(s, 0, "out of memory");
        c->flags &= ~LOOM__HCF_LINGER;
        return false;
    }
    req->rq = *rq;
    req->hdrs = hdrs;
    req->nhdrs = nh;
    req->head = p;
    req->head_len = head_len;
    /* NUL-terminate the strings in place: the head is ours and will not be
     * parsed again. Each terminator lands on the space, colon, CR or
     * whitespace that followed the token. */
    ((char *)rq->method_str)[rq->method_len] = '\0';
    ((char *)rq->target)[rq->target_len] = '\0';
    for (size_t i = 0; i < nh; i++) {
        ((char *)hdrs[i].name)[hdrs[i].name_len] = '\0';
        ((char *)hdrs[i].value)[hdrs[i].value_len] = '\0';
    }
    loom__hreq_split_target(req);
    loom_http_request_framing(rq, &req->fr);
    if (req->fr.tunnel)
        req->flags |= LOOM__HR_CLOSE; /* no tunnels: CONNECT's connection ends with its answer */
    if (srv->o.max_keepalive_requests && (uint32_t)c->nreq + 1 >= srv->o.max_keepalive_requests)
        req->flags |= LOOM__HR_CLOSE;
    c->state = LOOM__HC_REQ;
    c->u.req = req;
    if (req->fr.kind == LOOM_HTTP_BODY_NONE) {
        req->bstate = LOOM__HB_NONE;
        loom__hreq_dispatch(srv, req);
        if (srv->o.on_body && req->astate != LOOM__HA_DONE && c->state == LOOM__HC_REQ) {
            req->flags |= LOOM__HR_IN_CB;
            loom__hreq_on_body(srv, req, NULL, 0);
            req->flags &= ~LOOM__HR_IN_CB;
        }
        return true;
    }
    int r = loom_http_body_init(&req->bd, &req->fr, &srv->lim);
    if (r < 0) {
        loom__hconn_fail(s, loom_http_perr_status(r), loom_http_perr_str(r));
        return false;
    }
    req->bstate = LOOM__HB_READ;
    bool expect = (rq->flags & LOOM_HTTP_F_EXPECT_CONTINUE) && rq->minor_version >= 1;
    if (srv->o.on_body) {
        if (expect && !more)
            req->flags |= LOOM__HR_NOCONT;
        loom__hreq_dispatch(srv, req);
        /* The application read the head and did not answer: it wants the
         * body, so the client may send it. */
        if (expect && !more && c->state == LOOM__HC_REQ && c->u.req == req &&
            req->astate == LOOM__HA_NONE && !(req->flags & LOOM__HR_GONE)) {
            req->flags &= ~LOOM__HR_NOCONT;
            loom__hout_continue(hl, s);
        }
    } else if (expect && !more) {
        loom__hout_continue(hl, s);
    }
    return true;
}

/* Runs the state machine over p[0..n) (the scratch buffer, or a detached
 * input store); `last` is the length of the same partial head at the
 * previous attempt. Returns the bytes consumed. Before returning, a request
 * that is still in flight is made independent of p. */
static size_t loom__hconn_process(loom_http_server_t *srv, loom_socket_t *s, char *p, size_t n,
                                  uint32_t last)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hsrv_loop *hl = srv->hl;
    size_t off = 0;
    static char none[1];
    if (p == NULL)
        p = none; /* a resume without stored input: p + 0 on NULL is undefined */
    while (c->state != LOOM__HC_DEAD && !(c->flags & LOOM__HCF_CLOSE)) {
        if (c->state == LOOM__HC_REQ) {
            loom_http_req_t *req = c->u.req;
            if (req->astate == LOOM__HA_DONE && !(req->flags & LOOM__HR_IN_CB)) {
                if (req->bstate == LOOM__HB_READ && loom__hreq_discard_start(s, req)) {
                    if (off == n)
                        break; /* more of the body to drop */
                    long k = loom__hreq_discard(s, req, p + off, n - off);
                    if (k < 0)
                        break;
                    off += (size_t)k;
                    if (req->bstate == LOOM__HB_READ && off < n && k == 0)
                        break; /* a partial chunk line: kept until more arrives */
                    continue;
                }
                if (!loom__hconn_next(s, req, true))
                    break;
                continue;
            }
            if (req->bstate == LOOM__HB_READ && !(req->flags & LOOM__HR_PAUSED) &&
                (off < n || (req->flags & LOOM__HR_END_DUE))) {
                long k = loom__hreq_body(srv, s, req, p + off, n - off);
                if (k < 0)
                    break;
                off += (size_t)k;
                if (c->state == LOOM__HC_REQ && c->u.req == req && req->astate == LOOM__HA_DONE)
                    continue;
                if (req->bstate == LOOM__HB_READ &&
                    (k == 0 || (req->flags & LOOM__HR_PAUSED) || off == n))
                    break;
                continue;
            }
            break; /* waiting for the application */
        }
        if (off == n)
            break;
        if (LOOM__UNLIKELY(hl->olen >= hl->olimit || loom__socket_high(s))) {
            /* The answers so far fill the socket: the rest waits, unparsed,
             * until it drains (loom__hconn_batch_end, loom__hconn_drain). */
            c->flags |= LOOM__HCF_FULL;
            if (c->state == LOOM__HC_IDLE) {
                c->state = LOOM__HC_HEAD;
                c->t0 = loom__now32(srv->h.loop);
            }
            break;
        }
        if (c->state == LOOM__HC_IDLE)
            c->t0 = loom__now32(srv->h.loop);
        loom_http_request_t rq;
        size_t nh = srv->lim.max_headers;
        int r = loom_http_parse_request(p + off, n - off, last, &rq, srv->hdrs, &nh, &srv->lim);
        last = 0;
        if (r == LOOM_HTTP_INCOMPLETE) {
            if (c->state == LOOM__HC_IDLE)
                c->state = LOOM__HC_HEAD;
            break;
        }
        if (r < 0) {
            loom__hconn_fail(s, loom_http_perr_status(r), loom_http_perr_str(r));
            break;
        }
        char *head = p + off;
        off += (size_t)r;
        if (!loom__hconn_begin(srv, s, head, (size_t)r, &rq, nh, off < n))
            break;
    }
    if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        if (req->astate != LOOM__HA_DONE && loom__hreq_persist(req) < 0) {
            loom__hconn_fail(s, 0, "out of memory");
            c->flags &= ~LOOM__HCF_LINGER;
        }
    }
    return off;
}

static loom__hbuf *loom__hbuf_grow(loom__hbuf *b, size_t need)
{
    size_t have = b ? b->cap : 0;
    if (need <= have)
        return b;
    size_t cap = have ? have : 256;
    while (cap < need)
        cap *= 2;
    loom__hbuf *nb = realloc(b, sizeof *nb + cap);
    if (nb == NULL)
        return NULL;
    if (b == NULL) {
        nb->len = 0;
        nb->last = 0;
    }
    nb->cap = (uint32_t)cap;
    return nb;
}

/* Stores bytes the state machine could not consume yet where the
 * connection's state keeps them: with the partial head (HEAD), or behind
 * the request in flight (REQ). `b` is a detached store to reuse, or NULL. */
static void loom__hconn_store(loom_socket_t *s, loom__hbuf *b, const char *rest, size_t n,
                              uint32_t last)
{
    loom__hconn *c = loom__hconn_of(s);
    if (n == 0 || c->state == LOOM__HC_DEAD || c->state == LOOM__HC_LINGER ||
        (c->flags & LOOM__HCF_CLOSE) || c->state == LOOM__HC_IDLE) {
        free(b);
        return;
    }
    loom__hbuf **slot = c->state == LOOM__HC_HEAD ? &c->u.in : &c->u.req->in;
    if (b != NULL && rest != NULL && rest != b->data) {
        memmove(b->data, rest, n);
        rest = b->data;
    }
    if (b == NULL || b->cap < n) {
        loom__hbuf *nb = loom__hbuf_grow(b, n);
        if (nb == NULL) {
            free(b);
            loom__hsrv_emit(s->h.data, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
            loom__hconn_close(s, false);
            return;
        }
        b = nb;
        if (rest != NULL && rest != b->data)
            memcpy(b->data, rest, n);
    }
    if (b->cap > 4096 && b->cap / 4 > n) {
        /* Do not keep a large buffer for a few bytes. */
        loom__hbuf *nb = realloc(b, sizeof *nb + n * 2);
        if (nb != NULL) {
            b = nb;
            b->cap = (uint32_t)(n * 2);
        }
    }
    b->len = (uint32_t)n;
    b->last = c->state == LOOM__HC_HEAD ? last : 0;
    *slot = b;
}

/* Processes a detached store (input kept from earlier reads, maybe with new
 * bytes appended) and puts back what is left. */
static void loom__hconn_process_store(loom_http_server_t *srv, loom_socket_t *s, loom__hbuf *b)
{
    uint32_t last = b->last;
    size_t used = loom__hconn_process(srv, s, b->data, b->len, last);
    size_t rest = b->len - used;
    loom__hconn *c = loom__hconn_of(s);
    if (rest == 0 || c->state == LOOM__HC_DEAD) {
        free(b);
        return;
    }
    if (used)
        memmove(b->data, b->data + used, rest);
    /* The last head parse covered exactly these bytes (none if parsing
     * stopped at high water). */
    loom__hconn_store(s, b, b->data, rest, (c->flags & LOOM__HCF_FULL) ? 0 : (uint32_t)rest);
}

/* proto_read: new bytes in the loop's scratch buffer. */
static void loom__hconn_read(loom_socket_t *s, char *buf, size_t len)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    loom__hsrv_loop *hl = srv->hl;
    loom_loop_t *loop = s->h.loop;
    switch (c->state) {
    case LOOM__HC_DEAD:
        return;
    case LOOM__HC_LINGER:
        if ((uint32_t)(loom__now32(loop) - c->t0) > LOOM__HLINGER_TOTAL_MS)
            loom__hconn_close(s, false);
        return;
    case LOOM__HC_REQ:
        if (LOOM__UNLIKELY(c->u.req->flags & LOOM__HR_DISCARD) && srv->ms_body &&
            (uint32_t)(loom__now32(loop) - c->t0) > srv->ms_body) {
            loom__hconn_close(s, false);
            return;
        }
        break;
    case LOOM__HC_HEAD:
        if (srv->ms_header && (uint32_t)(loom__now32(loop) - c->t0) > srv->ms_header) {
            loom__hsrv_emit(srv, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, "request header timeout");
            loom__hconn_close(s, false);
            return;
        }
        break;
    default:
        break;
    }
    loom__hconn_batch_begin(hl, s);
    loom__hbuf **slot = NULL;
    if (c->state == LOOM__HC_HEAD)
        slot = &c->u.in;
    else if (c->state == LOOM__HC_REQ && c->u.req->in != NULL)
        slot = &c->u.req->in;
    if (slot != NULL && *slot != NULL) {
        /* Append to the store, then work from it. */
        loom__hbuf *b = *slot;
        *slot = NULL;
        loom__hbuf *nb = loom__hbuf_grow(b, (size_t)b->len + len);
        if (nb == NULL) {
            free(b);
            loom__hsrv_emit(srv, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
            loom__hconn_close(s, false);
            hl->batch = NULL;
            return;
        }
        memcpy(nb->data + nb->len, buf, len);
        nb->len += (uint32_t)len;
        if (c->state == LOOM__HC_REQ &&
            (c->u.req->astate != LOOM__HA_DONE && c->u.req->bstate != LOOM__HB_READ)) {
            /* Still waiting for the application: just keep the bytes. */
            c->u.req->in = nb;
        } else {
            loom__hconn_process_store(srv, s, nb);
        }
    } else {
        size_t used = loom__hconn_process(srv, s, buf, len, 0);
        if (used < len)
            loom__hconn_store(s, NULL, buf + used, len - used,
                              (c->flags & LOOM__HCF_FULL) ? 0 : (uint32_t)(len - used));
    }
    loom__hconn_batch_end(s);
}

/* proto_event: the socket failed, timed out or saw eof; the TCP layer closes
 * it when this returns. */
static void loom__hconn_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    (void)code;
    (void)msg;
    if (kind == LOOM_EV_TCP_TIMEOUT) {
        const char *what = NULL;
        if (s->wq != NULL && loom_socket_queued(s) > 0)
            what = "response write timeout";
        else if (c->state == LOOM__HC_HEAD || (c->state == LOOM__HC_IDLE && c->nreq == 0))
            what = "request header timeout";
        else if (c->state == LOOM__HC_REQ && c->u.req->bstate == LOOM__HB_READ)
            what = "request body timeout";
        if (what)
            loom__hsrv_emit(srv, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, what);
    }
    loom__hconn_detach(s);
}

/* on_drain of the class: the socket's queue fell back below low water. */
static void loom__hconn_drain(loom_socket_t *s, void *data)
{
    loom_http_server_t *srv = data;
    loom__hconn *c = loom__hconn_of(s);
    if (c->flags & LOOM__HCF_FULL) {
        loom__hconn_unfull(s);
        loom__hconn_batch_end(s);
        return;
    }
    if (c->state != LOOM__HC_REQ || srv->o.on_drain == NULL)
        return;
    loom_http_req_t *req = c->u.req;
    if (req->astate == LOOM__HA_STREAM)
        srv->o.on_drain(req, srv->h.data);
}

/* --- Answers finishing, pausing, resuming ------------------------------------------------- */

void loom__hreq_answered(loom_http_req_t *req)
{
    loom_socket_t *s = req->sock;
    req->astate = LOOM__HA_DONE;
    if (s == NULL || (req->flags & LOOM__HR_GONE)) {
        loom__hreq_free(req);
        return;
    }
    loom__hsrv_loop *hl = req->srv->hl;
    if (hl->batch == s)
        return; /* the state machine running this connection takes it from here */
    if (req->bstate == LOOM__HB_READ && loom__hreq_discard_start(s, req)) {
        /* Reading goes on (the rest of the body is dropped); input kept
         * behind the request is the body's. */
        if (req->in && req->in->len)
            loom__hreq_queue_resume(req);
        loom__hconn_settle(s);
        return;
    }
    if (req->in && req->in->len) {
        loom__hreq_queue_resume(req);
        loom__hconn_settle(s);
        return;
    }
    free(req->in);
    req->in = NULL;
    loom__hconn_next(s, req, false);
    loom__hconn_settle(s);
}

void loom__hreq_pause(loom_http_req_t *req)
{
    req->flags |= LOOM__HR_PAUSED;
    if (req->sock && req->srv->hl->batch != req->sock)
        loom__hconn_settle(req->sock);
}

void loom__hreq_resume(loom_http_req_t *req)
{
    req->flags &= ~LOOM__HR_PAUSED;
    if (req->sock == NULL)
        return;
    /* The resume phase feeds what was kept (and a held-back end call), then
     * settles the connection, which restarts reading. */
    loom__hreq_queue_resume(req);
}

/* The resume phase: connections with input kept behind a request that is
 * now answered, or whose paused body was resumed. */
static void loom__hsrv_resume_run(loom__pending *p)
{
    loom__hsrv_loop *hl = LOOM__CONTAINER_OF(p, loom__hsrv_loop, resume);
    hl->resume_queued = false;
    loom__queue q;
    loom__queue_init(&q);
    loom__queue_splice_tail(&q, &hl->resume_q);
    while (!loom__queue_empty(&q)) {
        loom_http_req_t *req = LOOM__CONTAINER_OF(q.next, loom_http_req_t, rnode);
        loom__queue_remove(&req->rnode);
        req->flags &= ~LOOM__HR_RESUMEQ;
        loom_socket_t *s = req->sock;
        if (s == NULL)
            continue;
        loom_http_server_t *srv = s->h.data;
        loom__hconn_batch_begin(hl, s);
        loom__hbuf *b = req->in;
        req->in = NULL;
        if (b != NULL)
            loom__hconn_process_store(srv, s, b);
        else
            loom__hconn_process(srv, s, NULL, 0, 0);
        loom__hconn_batch_end(s);
    }
}

/* --- Listening ------------------------------------------------------------------------------ */

/* proto_accept of the class: the TCP layer accepted and attached s. */
static void loom__hsrv_accepted(loom_socket_t *s)
{
    loom_http_server_t *srv = s->h.data;
    /* Until its first byte a connection is held to the header timeout, not
     * the idle one: idle sockets must not hold max_connections cheaply. */
    if (srv->g_head)
        loom__socket_set_rgroup(s, srv->g_head);
    if (++srv->nconns >= srv->max_conns) {
        srv->paused = true;
        loom__tcp_server_pause(srv->lsrv, true);
    }
}

/* proto_accept_error of the class: out of descriptors or memory (the TCP
 * layer retries after a pause), or a broken listen socket. */
static void loom__hsrv_accept_error(loom_tcp_server_t *lsrv, int code)
{
    loom__hsrv_emit(loom__server_class(lsrv)->data, LOOM_EV_TCP_ACCEPT_ERROR, code,
                    loom_strerror(code));
}

/* Listens through the TCP layer: bind, backlog, v6only, dual stack, accept
 * and its EMFILE back-off, TCP_NODELAY inherited by accepted sockets. */
static int loom__hsrv_listen(loom_http_server_t *srv, const char *bind_addr, int port)
{
    loom_tcp_server_opts to = {
        .backlog = srv->o.backlog,
        .reuseport = srv->o.reuseport || srv->o.threads > 1,
        .v6only = srv->o.v6only,
    };
    int r = loom__tcp_server_cls(srv->h.loop, bind_addr, port, &to, srv->cls, &srv->lsrv);
    if (r < 0)
        return r;
    loom__tcp_server_own(srv->lsrv);
    srv->port = loom_tcp_server_port(srv->lsrv);
    return 0;
}

static void loom__hsrv_unlisten(loom_http_server_t *srv)
{
    loom_tcp_server_close(srv->lsrv);
    srv->lsrv = NULL;
}

/* --- Servers ------------------------------------------------------------------------------------
 */

static void loom__hsrv_free_fn(loom__handle *h)
{
    loom_http_server_t *srv = (loom_http_server_t *)h;
    loom__class_unref(srv->cls);
    free(srv->hdrs);
    free(srv->xbuf);
    free(srv);
}

static uint32_t loom__ms_opt(uint32_t v, uint32_t def)
{
    if (v == 0)
        return def;
    if (v == UINT32_MAX)
        return 0;
    return v;
}

static int loom__hsrv_group_of(loom_loop_t *loop, uint32_t ms, uint8_t *out)
{
    int g = loom__tgroup_get(loop, ms);
    if (g < 0)
        return g;
    *out = (uint8_t)g;
    return 0;
}

static void loom__hsrv_done_cb(loom__pending *p);

int loom_http_server(loom_loop_t *loop, const char *bind, int port, loom_http_req_cb on_request,
                     const loom_http_server_opts *opts, loom_http_server_t **out)
{
    static const loom_http_server_opts defaults;
    if (opts == NULL)
        opts = &defaults;
    if (loop == NULL || on_request == NULL || port < 0 || port > 65535)
        return LOOM_EINVAL;
    loom__hsrv_loop *hl = loom__hsrv_loop_get(loop);
    if (hl == NULL || loom__net_get(loop) == NULL || loom__net_scratch(loop) == NULL)
        return LOOM_ENOMEM;
    int r = LOOM_ENOMEM;
    loom_http_server_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return LOOM_ENOMEM;
    srv->o = *opts;
    srv->server_name_len = opts->server_name ? (uint32_t)strlen(opts->server_name) : 0;
    srv->on_request = on_request;
    srv->hl = hl;
    srv->h.loop = loop;
    loom__queue_init(&srv->reqs);
    loom__queue_init(&srv->node);
    srv->done_pend.fn = loom__hsrv_done_cb;
    loom__queue_init(&srv->done_pend.node);

    /* Limits: the parser's defaults, except that streamed bodies have none
     * unless asked. */
    srv->lim = opts->limits;
    if (srv->lim.max_request_line == 0)
        srv->lim.max_request_line = 8192;
    if (srv->lim.max_header_bytes == 0)
        srv->lim.max_header_bytes = 16384;
    if (srv->lim.max_headers == 0)
        srv->lim.max_headers = 100;
    if (srv->lim.max_body_size == 0)
        srv->lim.max_body_size = opts->on_body ? UINT64_MAX : (uint64_t)1 << 20;
    srv->hdrs = malloc(srv->lim.max_headers * sizeof *srv->hdrs);
    srv->xbuf = malloc((size_t)srv->lim.max_request_line + 2);
    if (srv->hdrs == NULL || srv->xbuf == NULL)
        goto fail_srv;
    srv->max_conns = opts->max_connections ? opts->max_connections : 10000;
    srv->ms_header = loom__ms_opt(opts->header_timeout_ms, 10000);
    srv->ms_body = loom__ms_opt(opts->body_timeout_ms, 30000);
    if ((r = loom__hsrv_group_of(loop, srv->ms_header, &srv->g_head)) < 0 ||
        (r = loom__hsrv_group_of(loop, srv->ms_body, &srv->g_body)) < 0 ||
        (r = loom__hsrv_group_of(loop, loom__ms_opt(opts->idle_timeout_ms, 60000), &srv->g_idle)) <
            0 ||
        (r = loom__hsrv_group_of(loop, LOOM__HLINGER_MS, &srv->g_linger)) < 0)
        goto fail_srv;

    r = LOOM_ENOMEM;
    loom__sock_class *cls = calloc(1, sizeof *cls);
    if (cls == NULL)
        goto fail_srv;
    cls->proto_read = loom__hconn_read;
    cls->proto_event = loom__hconn_event;
    cls->proto_accept = loom__hsrv_accepted;
    cls->proto_accept_error = loom__hsrv_accept_error;
    cls->on_drain = loom__hconn_drain;
    cls->read_timeout_ms = loom__ms_opt(opts->idle_timeout_ms, 60000);
    cls->write_timeout_ms = loom__ms_opt(opts->write_timeout_ms, 30000);
    cls->high_water = opts->high_water ? opts->high_water : 256 * 1024;
    cls->low_water = cls->high_water / 4;
    cls->extra = sizeof(loom__hconn);
    cls->refs = 1;
    cls->data = srv;
    srv->cls = cls;

    r = loom__hsrv_listen(srv, bind, port);
    if (r < 0)
        goto fail_cls;
    loom__handle_init(loop, &srv->h, LOOM__T_SERVER, loom__hsrv_free_fn, false);
    loom__handle_start(&srv->h);
    srv->h.data = opts->data;
    loom__queue_insert_tail(&hl->servers, &srv->node);
    if (opts->threads > 1) {
        r = loom__hgroup_start(srv, bind, opts->threads);
        if (r < 0) {
            loom__hsrv_unlisten(srv);
            loom__queue_remove(&srv->node);
            loom__handle_close(&srv->h);
            return r;
        }
    }
    if (out)
        *out = srv;
    return 0;

fail_cls:
    free(srv->cls);
fail_srv:
    free(srv->hdrs);
    free(srv->xbuf);
    free(srv);
    return r;
}

static void loom__hsrv_check_done(loom_http_server_t *srv)
{
    if (!srv->closing || srv->done || srv->nconns || srv->nreqs)
        return;
    srv->done = true;
    loom__pending_queue(srv->h.loop, &srv->done_pend);
}

/* Everything of this server (and, for the caller's server of a group, of
 * every thread) is finished: free it and tell the application. */
void loom__hsrv_finish(loom_http_server_t *srv)
{
    loom_loop_t *loop = srv->h.loop;
    loom__queue_remove(&srv->node);
    loom__handle_close(&srv->h);
    if (srv->group != NULL && srv->index > 0) {
        loom_stop(loop); /* a worker's loop ends with its server */
        return;
    }
    if (srv->on_done) {
        loom__op_scope sc;
        loom__op_enter(loop, &sc, srv->o.on_event, srv->h.data, srv);
        srv->on_done(srv, srv->h.data);
        loom__op_leave(loop, &sc);
    }
}

static void loom__hsrv_done_cb(loom__pending *p)
{
    loom_http_server_t *srv = LOOM__CONTAINER_OF(p, loom_http_server_t, done_pend);
    if (srv->group != NULL && srv->index == 0 && !loom__hgroup_local_done(srv))
        return; /* the last thread to finish calls loom__hsrv_finish */
    loom__hsrv_finish(srv);
}

typedef struct {
    loom_http_server_t *srv;
    bool force;
} loom__hclose_arg;

static void loom__hsrv_close_conn(loom_socket_t *s, void *arg)
{
    loom__hclose_arg *a = arg;
    if (s->cls != a->srv->cls || loom__socket_dead(s))
        return;
    loom__hconn *c = loom__hconn_of(s);
    if (a->force)
        loom__hconn_close(s, false);
    else if (c->state == LOOM__HC_IDLE)
        loom__hconn_close(s, true);
}

void loom__hsrv_close_local(loom_http_server_t *srv, bool force)
{
    if (srv->done)
        return;
    srv->closing = true;
    loom__hsrv_unlisten(srv);
    loom__hclose_arg a = {.srv = srv, .force = force};
    if (srv->nconns)
        loom__net_foreach_socket(srv->h.loop, loom__hsrv_close_conn, &a);
    loom__hsrv_check_done(srv);
}

int loom_http_server_close(loom_http_server_t *srv, unsigned flags, loom_http_server_cb on_done)
{
    if (srv == NULL || loom__handle_closing(&srv->h))
        return LOOM_ECLOSED;
    if (on_done)
        srv->on_done = on_done;
    bool force = (flags & LOOM_HTTP_CLOSE_FORCE) != 0;
    if (srv->group)
        loom__hgroup_close(srv, force);
    loom__hsrv_close_local(srv, force);
    return 0;
}

/* Loop free: everything goes without callbacks. */
static void loom__hsrv_drop_conn(loom_socket_t *s, void *arg)
{
    loom_http_server_t *srv = arg;
    if (s->cls != srv->cls)
        return;
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_HEAD) {
        free(c->u.in);
    } else if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        req->sock = NULL;
    }
    c->u.in = NULL;
    c->state = LOOM__HC_DEAD;
}

static void loom__hsrv_free_now(loom_http_server_t *srv)
{
    if (srv->group && srv->index == 0)
        loom__hgroup_free(srv);
    loom__hsrv_unlisten(srv);
    loom__net_foreach_socket(srv->h.loop, loom__hsrv_drop_conn, srv);
    while (!loom__queue_empty(&srv->reqs)) {
        loom_http_req_t *req = LOOM__CONTAINER_OF(srv->reqs.next, loom_http_req_t, node);
        req->sock = NULL;
        loom__hreq_free(req);
    }
    loom__pending_cancel(&srv->done_pend);
    loom__queue_remove(&srv->node);
    loom__handle_close(&srv->h);
}

int loom_http_server_port(const loom_http_server_t *srv)
{
    if (srv == NULL || srv->closing)
        return LOOM_ECLOSED;
    return srv->port;
}

loom_loop_t *loom_http_server_loop(const loom_http_server_t *srv)
{
    return srv ? srv->h.loop : NULL;
}

void *loom_http_server_data(const loom_http_server_t *srv)
{
    return srv ? srv->h.data : NULL;
}

size_t loom_http_server_pending(const loom_http_server_t *srv)
{
    return srv ? srv->nreqs - srv->ndiscard : 0;
}
