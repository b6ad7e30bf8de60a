/* http/server.c - the server object and the protocol-neutral request:
 * per-loop state, listening and accepting (connection count, the
 * max_connections pause), limits and timeouts, graceful and forced close,
 * and the request's life cycle: allocation from the loop's slab, the
 * host and target checks, persisting a head that outlives its read, the
 * buffered body, dispatch (on_request, on_body), gone (on_close) and free.
 * The wire protocol lives behind loom__hproto (server_h1.c for HTTP/1);
 * answers are framed in server_resp.c, accessors live in server_req.c and
 * the threads in server_threads.c.
 *
 * The listener is a TCP-layer server of the HTTP server's class
 * (loom__tcp_server_cls): it binds, accepts and backs off on EMFILE; the
 * class's proto_admit hook counts connections (from accept, handshakes too)
 * and pauses accepting at max_connections. The class's other hooks are
 * HTTP/1's.
 *
 * Only what must outlive a read is copied: the head and body of a request
 * the application keeps (loom__hreq_persist).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/h2_check.h"
#include "http/h2_mem.h"
#include "http/server_internal.h"
#include "net/tls_internal.h"

#define LOOM__HLINGER_MS 2000 /* linger: inactivity (the linger timeout group) */

/* --- Per-loop server state ------------------------------------------------------ */

static void loom__hsrv_sentinel_free(loom__handle *h)
{
    loom__hsrv_loop *sl = h->data;
    loom__slab_destroy(&sl->req_slab);
    free(sl->obuf);
    free(sl->h2_frame);
    loom__h2arena_destroy(sl->h2_arena);
    free(sl);
    free(h);
}

static void loom__hsrv_free_now(loom_http_server_t *srv);

/* loom__http_loop.server_free: frees every server without callbacks. The
 * requests and servers go to the closing list before the sentinel, whose
 * free function releases the slab they live in. */
static void loom__hsrv_loop_free(loom_loop_t *loop)
{
    loom__http_loop *L = loop->http;
    loom__hsrv_loop *sl = L->server;
    if (sl == NULL)
        return;
    while (!loom__queue_empty(&sl->servers))
        loom__hsrv_free_now(LOOM__CONTAINER_OF(sl->servers.next, loom_http_server_t, node));
    loom__h2arena_stop(sl->h2_arena);
    loom__handle_close(sl->sentinel);
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
    loom__hsrv_loop *sl = calloc(1, sizeof *sl);
    if (sl == NULL)
        return NULL;
    sl->sentinel = loom__sentinel_new(loop, sl, loom__hsrv_sentinel_free);
    if (sl->sentinel == NULL) {
        free(sl);
        return NULL;
    }
    sl->loop = loop;
    loom__slab_init(&sl->req_slab, sizeof(loom_http_req_t));
    loom__queue_init(&sl->servers);
    L->server = sl;
    L->server_free = loom__hsrv_loop_free;
    return sl;
}

/* --- Events ------------------------------------------------------------------------ */

/* Client trouble goes to the server's on_event or the loop default, and is
 * dropped (logged) when neither exists: a misbehaving client must never end
 * loom_run(). */
void loom__hsrv_emit(loom_http_server_t *srv, loom_event_kind_t kind, int code, const char *msg)
{
    loom_loop_t *loop = srv->h.loop;
    if (srv->o.on_event == NULL && loop->on_event == NULL) {
        loom_log(loop, LOOM_LOG_DEBUG, "http server: %s: %s", loom_event_kind_name(kind), msg);
        return;
    }
    loom__event_emit(loop, srv->o.on_event, srv->h.data, kind, code, msg, srv);
}

/* --- Requests ------------------------------------------------------------------------ */

static void loom__hreq_free_fn(loom__handle *h)
{
    loom_http_req_t *req = (loom_http_req_t *)h;
    loom__hsrv_loop *sl = req->srv->sl;
    if (LOOM__UNLIKELY(req->mem || req->bodybuf)) {
        if (req->mem_cap) /* HTTP/2's come from the block cache */
            loom__bc_free_sized(&sl->loop->bc, req->mem, req->mem_cap);
        else
            loom__bc_free(&sl->loop->bc, req->mem);
        free(req->bodybuf);
    }
    loom__slab_free(&sl->req_slab, req);
}

/* Frees a request (the protocol has released its part). `now`: at once, for a request answered
 * inside the state machine's own processing (nobody can hold it any more, and reusing it at once
 * keeps the hot path in one warm slab object); otherwise through the closing list at the end of the
 * iteration, since the application's call that answered it may still be on the stack. */
void loom__hreq_free_ex(loom_http_req_t *req, bool now)
{
    if (req->flags & LOOM__HR_FREED)
        return;
    loom_http_server_t *srv = req->srv;
    req->flags |= LOOM__HR_FREED;
    req->astate = LOOM__HA_DONE;
    if (req->flags & LOOM__H1R_DISCARD)
        srv->ndiscard--;
    loom__queue_remove(&req->node);
    if (req->flags & LOOM__HR_RESUMEQ) {
        loom__pending_cancel(&req->resume);
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

loom_http_req_t *loom__hreq_new(loom_http_server_t *srv, loom_socket_t *s,
                                const loom__hproto *proto)
{
    loom_http_req_t *req = loom__slab_alloc(&srv->sl->req_slab);
    if (req == NULL)
        return NULL;
    loom__handle_init(srv->h.loop, &req->h, LOOM__T_HTTP, loom__hreq_free_fn, false);
    req->srv = srv;
    req->proto = proto;
    req->sock = s;
    req->body_size = UINT64_MAX;
    loom__queue_insert_tail(&srv->reqs, &req->node);
    loom__queue_init(&req->resume.node);
    srv->nreqs++;
    return req;
}

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
int loom__hreq_persist(loom_http_req_t *req)
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
            if (req->body_size != UINT64_MAX && req->body_size <= req->srv->lim.max_body_size)
                cap = (size_t)req->body_size;
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
int loom__hreq_body_append(loom_http_req_t *req, const char *p, size_t n)
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
        if (req->body_size != UINT64_MAX && req->body_size <= req->srv->lim.max_body_size)
            cap = (size_t)req->body_size;
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
void loom__hreq_dispatch(loom_http_server_t *srv, loom_http_req_t *req)
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
int loom__hreq_on_body(loom_http_server_t *srv, loom_http_req_t *req, const char *p, size_t n)
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
void loom__hreq_gone(loom_http_req_t *req)
{
    loom_http_server_t *srv = req->srv;
    req->sock = NULL;
    if (req->flags & LOOM__HR_RESUMEQ) {
        loom__pending_cancel(&req->resume);
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

/* RFC 3986 uri-host, then [":" port] if `port`: unreserved, pct-encoded,
 * sub-delims, ':' and the brackets of an IP literal, in their structure
 * (loom__h2chk_host_syntax: the port digits only, an IP literal well
 * formed). No '@' (userinfo), no '/', no space. */
static bool loom__host_valid(const char *h, size_t n, bool port)
{
    /* One bit per byte value: ALPHA DIGIT -._~!$&'()*+,;=%:[] (this runs
     * for every request, so a bitmap rather than comparisons). */
    static const uint64_t ok[2] = {0x2fff7ff200000000u, 0x47fffffeaffffffeu};
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch >= 128 || !((ok[ch >> 6] >> (ch & 63)) & 1))
            return false;
    }
    return loom__h2chk_host_syntax((const uint8_t *)h, n, port);
}

/* The form of an HTTP/1 request-target (RFC 9112 section 3.2): origin-form
 * ("/p?q") for any method but CONNECT, whose target must be authority-form
 * ("host:port", section 3.2.3); asterisk-form ("*") for OPTIONS only
 * (section 3.2.4); else absolute-form, which starts with a scheme and, for
 * an HTTP server, names an authority ("scheme://"). Anything else ("x",
 * "?q", "*x", "a:b") is an invalid request-line (section 3: 400): letting
 * it through would hand the application a path that does not start with
 * '/', which prefix-based routing and access rules do not expect. Returns
 * true if the form is valid; the authority itself is checked by
 * loom__hreq_check_host(). */
bool loom__hreq_target_ok(const loom_http_request_t *rq)
{
    const char *t = rq->target;
    size_t n = rq->target_len;
    if (rq->method == LOOM_HTTP_METHOD_CONNECT) {
        /* uri-host ":" port, the port one or more digits. */
        size_t colon = n;
        while (colon > 0 && t[colon - 1] >= '0' && t[colon - 1] <= '9')
            colon--;
        if (colon < 2 || colon == n || t[colon - 1] != ':')
            return false;
        return loom__host_valid(t, colon - 1, false);
    }
    if (t[0] == '/')
        return true;
    if (n == 1 && t[0] == '*')
        return rq->method == LOOM_HTTP_METHOD_OPTIONS;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://". */
    size_t i = 0;
    while (i < n &&
           (((t[i] | 0x20) >= 'a' && (t[i] | 0x20) <= 'z') ||
            (i > 0 && ((t[i] >= '0' && t[i] <= '9') || t[i] == '+' || t[i] == '-' || t[i] == '.'))))
        i++;
    return i > 0 && n - i >= 3 && t[i] == ':' && t[i + 1] == '/' && t[i + 2] == '/';
}

/* Checks the request's host before a request is made of it: the Host value,
 * or an absolute-form target's authority, which replaces it (RFC 9112
 * section 3.2.2). Returns 0 or the status to answer (400, or 431 when no
 * field is left to carry the reconciled Host). */
int loom__hreq_check_host(loom_http_server_t *srv, const loom_http_request_t *rq, size_t nh)
{
    const char *a;
    size_t alen;
    if (loom__target_authority(rq->target, rq->target_len, &a, &alen)) {
        if (alen == 0 || !loom__host_valid(a, alen, true))
            return 400;
        /* The Host field is replaced, but an invalid one is still a bad
         * request (RFC 9112 section 3.2: "a Host header field with an
         * invalid field value", whatever the target's form). */
        if ((rq->flags & LOOM_HTTP_F_HOST) && !loom__host_valid(rq->host, rq->host_len, true))
            return 400;
        if (!(rq->flags & LOOM_HTTP_F_HOST) && nh >= srv->lim.max_headers)
            return 431;
        return 0;
    }
    if ((rq->flags & LOOM_HTTP_F_HOST) && !loom__host_valid(rq->host, rq->host_len, true))
        return 400;
    return 0;
}

/* Splits the target into path and query, all NUL-terminated. The origin
 * form "/p" is the common case: the path is the target itself. With a
 * query the path is copied into the server's xbuf; so is it for the
 * absolute form "http://h/p?q" (the path starts after the authority, "/"
 * if empty), whose authority also becomes the request's one host: the Host
 * field's value (a field is added if there was none) and rq.host. */
void loom__hreq_split_target(loom_http_req_t *req)
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
bool loom__hreq_bad_expect(const loom_http_header_t *h, size_t n)
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

void loom__hsrv_conn_gone(loom_http_server_t *srv)
{
    srv->nconns--;
    if (srv->paused && !srv->closing && srv->nconns < srv->max_conns) {
        srv->paused = false;
        loom__tcp_server_pause(srv->lsrv, false);
    }
    if (srv->closing)
        loom__hsrv_check_done(srv);
}

/* --- Listening ------------------------------------------------------------------------------ */

/* proto_admit of the class: the TCP layer accepted s, and will attach it
 * (a TLS handshake may come first). It counts from here, so handshakes
 * count towards max_connections. */
static void loom__hsrv_admit(loom_socket_t *s)
{
    loom_http_server_t *srv = s->h.data;
    if (++srv->nconns >= srv->max_conns) {
        srv->paused = true;
        loom__tcp_server_pause(srv->lsrv, true);
    }
}

/* proto_accept of the class: s is attached (and past its handshake). */
static void loom__hsrv_accepted(loom_socket_t *s)
{
    loom_http_server_t *srv = s->h.data;
    loom__h1_accepted(s);
    if (srv->o.tls && loom__h2_enabled(srv, true)) {
        loom_tls_info ti;
        if (loom_socket_tls_info(s, &ti) == 0 && ti.alpn_len == 2 &&
            memcmp(ti.alpn, "h2", 2) == 0) {
            loom__h1_accepted_h2(s);
            return;
        }
    }
    /* Until its first byte a connection is held to the header timeout, not
     * the idle one: idle sockets must not hold max_connections cheaply. */
    if (srv->g_head)
        loom__socket_set_rgroup(s, srv->g_head);
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
    if (opts->tls && !loom_tls_ctx_is_server(opts->tls))
        return LOOM_EINVAL;
    loom__hsrv_loop *sl = loom__hsrv_loop_get(loop);
    if (sl == NULL || loom__net_get(loop) == NULL || loom__net_scratch(loop) == NULL)
        return LOOM_ENOMEM;
    int r = LOOM_ENOMEM;
    loom_http_server_t *srv = calloc(1, sizeof *srv);
    if (srv == NULL)
        return LOOM_ENOMEM;
    srv->o = *opts;
    srv->server_name_len = opts->server_name ? (uint32_t)strlen(opts->server_name) : 0;
    srv->on_request = on_request;
    srv->sl = sl;
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
    loom__h1_class_init(cls);
    if (opts->tls) /* HTTPS: the class holds a reference to the context */
        loom__class_set_tls(cls, opts->tls);
    /* ALPN: HTTP/1.1 is what this server speaks, offered by default. */
    cls->alpn = (const unsigned char *)"\x08http/1.1";
    cls->alpn_len = 9;
    if (opts->tls && !opts->http2.disable) {
        /* HTTP/2 first, HTTP/1.1 as the fallback (docs/HTTP2.md). */
        cls->alpn = (const unsigned char *)"\x02h2\x08http/1.1";
        cls->alpn_len = 12;
    }
    cls->proto_admit = loom__hsrv_admit;
    cls->proto_accept = loom__hsrv_accepted;
    cls->proto_accept_error = loom__hsrv_accept_error;
    cls->read_timeout_ms = loom__ms_opt(opts->idle_timeout_ms, 60000);
    cls->write_timeout_ms = loom__ms_opt(opts->write_timeout_ms, 30000);
    cls->high_water = opts->high_water ? opts->high_water : 256 * 1024;
    cls->low_water = cls->high_water / 4;
    cls->refs = 1;
    cls->data = srv;
    srv->cls = cls;

    r = loom__hsrv_listen(srv, bind, port);
    if (r < 0)
        goto fail_cls;
    loom__handle_init(loop, &srv->h, LOOM__T_SERVER, loom__hsrv_free_fn, false);
    loom__handle_start(&srv->h);
    srv->h.data = opts->data;
    loom__queue_insert_tail(&sl->servers, &srv->node);
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
    loom__class_unref(srv->cls); /* and its context reference */
fail_srv:
    free(srv->hdrs);
    free(srv->xbuf);
    free(srv);
    return r;
}

void loom__hsrv_check_done(loom_http_server_t *srv)
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
    loom__h1_close_conn(s, a->force);
}

void loom__hsrv_close_local(loom_http_server_t *srv, bool force)
{
    if (srv->done)
        return;
    srv->closing = true;
    loom__hsrv_unlisten(srv);
    loom__hclose_arg a = {.srv = srv, .force = force};
    if (srv->nconns) /* handshakes included */
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
    loom__h1_drop_conn(s);
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
