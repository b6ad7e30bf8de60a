/* http/client_req.c - the HTTP client's requests: the public API
 * (loom_http_request() and the calls on a request), the per-loop client
 * state, the request lifecycle (deferred work, failure, the end and the
 * free of a request), its timers, the redirect policy, configuration and
 * stats. Connections, protocol and bodies are in client_pool.c,
 * client_h1.c and client_body.c; client_internal.h has the interfaces. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "http/client_internal.h"
#include "net/tls_internal.h"

static loom_http_method_t hc_method_enum(const char *m, size_t n)
{
    static const struct {
        const char *s;
        loom_http_method_t m;
    } tab[] = {{"GET", LOOM_HTTP_METHOD_GET},         {"HEAD", LOOM_HTTP_METHOD_HEAD},
               {"POST", LOOM_HTTP_METHOD_POST},       {"PUT", LOOM_HTTP_METHOD_PUT},
               {"DELETE", LOOM_HTTP_METHOD_DELETE},   {"CONNECT", LOOM_HTTP_METHOD_CONNECT},
               {"OPTIONS", LOOM_HTTP_METHOD_OPTIONS}, {"TRACE", LOOM_HTTP_METHOD_TRACE},
               {"PATCH", LOOM_HTTP_METHOD_PATCH}};
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
        if (strlen(tab[i].s) == n && memcmp(tab[i].s, m, n) == 0)
            return tab[i].m;
    return LOOM_HTTP_METHOD_OTHER;
}

/* Is s an RFC 9110 token (section 5.6.2: a method or a field name)? The
 * one rule of common.c, which the server applies too. */
static bool hc_token(const char *s)
{
    return loom__http_token_ok(s, strlen(s));
}

/* Parses a Content-Length value of the caller's: 1 to 18 digits. Returns
 * the value or -1. */
static int64_t hc_parse_length(const char *s)
{
    int64_t v = 0;
    size_t n = 0;
    for (; s[n]; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 18)
            return -1;
        v = v * 10 + (s[n] - '0');
    }
    return n ? v : -1;
}

static void hc_state_destroy(loom__handle *h)
{
    hc_state *st = h->data;
    for (int i = 0; i < HC_BUCKETS; i++) {
        for (hc_pool *p = st->buckets[i], *n; p; p = n) {
            n = p->next;
            loom_tls_ctx_free(p->ctx);
            free(p);
        }
    }
    loom__slab_destroy(&st->req_slab);
    loom_tls_ctx_free(st->tls_conf);
    loom_tls_ctx_free(st->tls_def);
    free(st->upload);
    free(st->ua);
    free(st);
    free(h);
}

static void hc_req_free(loom__handle *h);

/* At loop free, before the net layer: ends every request without callbacks
 * and closes every connection, then lets a sentinel handle free the state
 * once the requests and sockets (whose class lives in the state) are freed:
 * the closing list is FIFO. */
static void hc_loop_free(loom_loop_t *loop)
{
    loom__http_loop *http = loop->http;
    hc_state *st = http->client;
    if (st == NULL)
        return;
    for (loom__queue *q = st->reqs.next; q != &st->reqs; q = q->next) {
        hc_req *r = LOOM__CONTAINER_OF(q, hc_req, anode);
        if (loom__handle_closing(&r->h))
            continue;
        if (r->state == RQ_QUEUED || r->conn)
            loom__queue_remove(&r->node);
        r->conn = NULL;
        r->state = RQ_DONE;
        loom__pending_cancel(&r->pend);
        if (r->timer)
            loom_timer_close(r->timer);
        r->timer = NULL;
        loom__handle_close(&r->h);
    }
    for (int i = 0; i < HC_BUCKETS; i++) {
        for (hc_pool *p = st->buckets[i]; p; p = p->next) {
            loom__queue_init(&p->waiters);
            loom__queue *lists[2] = {&p->idle, &p->busy};
            for (int k = 0; k < 2; k++) {
                while (!loom__queue_empty(lists[k])) {
                    hc_conn *c = LOOM__CONTAINER_OF(lists[k]->next, hc_conn, node);
                    loom__queue_init(&c->reqs);
                    c->nreqs = 0;
                    loom__hc_conn_close(c, false);
                }
            }
        }
    }
    http->client = NULL;
    loom__handle_close(st->sentinel);
}

hc_state *loom__hc_state_get(loom_loop_t *loop)
{
    loom__http_loop *http = loom__http_get(loop);
    if (http == NULL)
        return NULL;
    if (LOOM__LIKELY(http->client != NULL))
        return http->client;
    hc_state *st = calloc(1, sizeof *st);
    if (st == NULL)
        return NULL;
    st->sentinel = loom__sentinel_new(loop, st, hc_state_destroy);
    if (st->sentinel == NULL) {
        free(st);
        return NULL;
    }
    st->loop = loop;
    loom__slab_init(&st->req_slab, sizeof(hc_req));
    loom__queue_init(&st->idle_lru);
    loom__queue_init(&st->reqs);
    st->cls.proto_read = loom__hc_proto_read;
    st->cls.proto_event = loom__hc_proto_event;
    st->cls.on_connect = loom__hc_on_connect;
    st->cls.on_drain = loom__hc_on_drain;
    st->cls.high_water = HC_HIGH_WATER;
    st->cls.low_water = HC_HIGH_WATER / 4;
    st->cls.extra = sizeof(hc_conn);
    st->cls.is_static = true;
    /* A connection keeps its server's address (20 bytes: either family),
     * so that a reset names it (getpeername() no longer can then). */
    st->cls.keep_peer = (uint8_t)sizeof(loom__peer_addr);
    st->tls_cls = st->cls;
    loom__class_set_tls(&st->tls_cls, NULL);                  /* the context is each pool's */
    st->tls_cls.alpn = (const unsigned char *)"\x08http/1.1"; /* ALPN: what it speaks */
    st->tls_cls.alpn_len = 9;
    st->tls_h2_cls = st->tls_cls;
    st->tls_h2_cls.alpn = (const unsigned char *)"\x02h2\x08http/1.1";
    st->tls_h2_cls.alpn_len = 12;
    st->tls_h2o_cls = st->tls_cls;
    st->tls_h2o_cls.alpn = (const unsigned char *)"\x02h2";
    st->tls_h2o_cls.alpn_len = 3;
    st->max_per_host = HC_DEFAULT_PERHOST;
    st->max_idle = HC_DEFAULT_IDLE;
    st->idle_ms = HC_DEFAULT_IDLE_MS;
    st->depth = 1;
    st->ua_len = strlen(HC_DEFAULT_UA);
    http->client = st;
    http->client_free = hc_loop_free;
    return st;
}

/* Does the stored header line block hold a field named `name`? */
static bool hc_lines_have(const char *lines, size_t len, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < len;) {
        const char *e = memchr(lines + i, '\n', len - i);
        size_t end = e ? (size_t)(e - lines) + 1 : len;
        if (end - i > nl && lines[i + nl] == ':' && strncasecmp(lines + i, name, nl) == 0)
            return true;
        i = end;
    }
    return false;
}

/* Is the header line one that carries credentials or names the origin,
 * dropped on a redirect to another origin? */
static bool hc_is_origin_header(const char *line, size_t n)
{
    static const char *const names[] = {"authorization", "proxy-authorization", "cookie", "host"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t nl = strlen(names[k]);
        if (n > nl && line[nl] == ':' && strncasecmp(line, names[k], nl) == 0)
            return true;
    }
    return false;
}

/* Copies the header line block src[0..len) to dst, without the origin
 * headers if `strip`. Returns the bytes copied. */
static size_t hc_copy_lines(char *dst, const char *src, size_t len, bool strip)
{
    if (!strip) {
        memcpy(dst, src, len);
        return len;
    }
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        const char *e = memchr(src + i, '\n', len - i);
        size_t end = (size_t)(e - src) + 1;
        if (!hc_is_origin_header(src + i, end - i)) {
            memcpy(dst + out, src + i, end - i);
            out += end - i;
        }
        i = end;
    }
    return out;
}

/* Moves r's URL (and its slices) from `from` to `to`. */
static void hc_rebase(hc_req *r, const char *from, const char *to)
{
    const char **sl[] = {&r->url,    &r->u.scheme, &r->u.userinfo, &r->u.host,
                         &r->u.path, &r->u.query,  &r->u.fragment};
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++)
        if (*sl[i])
            *sl[i] = to + (*sl[i] - from);
}

int loom__hc_req_reserve(hc_req *r, size_t used, size_t more)
{
    if (r->buf_cap - used >= more)
        return 0;
    char *nb = malloc(used + more);
    if (nb == NULL)
        return LOOM_ENOMEM;
    memcpy(nb, r->buf, used);
    const char *old = r->buf;
    if (r->buf != r->inl)
        free(r->buf);
    r->buf = nb;
    r->buf_cap = used + more;
    hc_rebase(r, old, nb);
    return 0;
}

/* (Re)stores r's description: buf = [method][lines][url NUL] and the URL's
 * slices; the head is rendered when the request is sent. `method`, `lines`
 * and `url` must not point into r->buf. Returns 0, LOOM_EURL or
 * LOOM_ENOMEM. */
static int hc_build(hc_req *r, const char *method, size_t method_len, const char *lines,
                    size_t lines_len, const char *url, size_t url_len, const loom_url_t *parsed)
{
    if (parsed) {
        r->u = *parsed;
    } else {
        int rc = loom_url_parse(url, url_len, &r->u);
        if (rc < 0)
            return rc;
    }
    size_t need = method_len + lines_len + url_len + 1;
    /* Room for the HTTP/1 head too, which is rendered into the same buffer
     * at send time: inline for the usual sizes; a large one gets a bound
     * of the head's size (percent-encoding at most triples the target) so
     * that rendering it does not allocate again. */
    size_t ua_len = r->st->ua_len;
    size_t bound = need + method_len + lines_len + 3 * url_len + ua_len + 192;
    char *nb;
    size_t cap;
    if (need <= HC_INLINE) {
        nb = r->inl;
        cap = HC_INLINE;
    } else if (r->buf != r->inl && r->buf_cap >= bound) {
        nb = r->buf;
        cap = r->buf_cap;
    } else {
        nb = malloc(bound);
        if (nb == NULL)
            return LOOM_ENOMEM;
        cap = bound;
    }
    if (r->buf != r->inl && r->buf != nb)
        free(r->buf);
    r->buf = nb;
    r->buf_cap = cap;
    r->method_len = method_len;
    r->hdr_len = lines_len;
    memcpy(nb, method, method_len);
    memcpy(nb + method_len, lines, lines_len);
    char *ub = nb + method_len + lines_len;
    memcpy(ub, url, url_len);
    ub[url_len] = '\0';
    r->url = url;
    r->url_len = url_len;
    hc_rebase(r, url, ub); /* the slices now point into the copy */
    r->head = NULL;        /* rendered by the protocol at send time */
    r->head_len = 0;
    return 0;
}

void loom__hc_fail_first_byte(hc_req *r)
{
    char where[300];
    loom__hc_where(r->pool, where, sizeof where);
    if (r->interim)
        loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                      "read timeout after %" PRIu32
                      " ms waiting for %s (first byte timeout; %u interim "
                      "responses only)",
                      r->first_to, where, (unsigned)r->interim);
    else
        loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                      "read timeout after %" PRIu32 " ms waiting for %s (first byte timeout)",
                      r->first_to, where);
}

/* r's timer: the earliest of its deadlines passed. */
static void hc_timer_cb(loom_timer_t *t, void *data);

/* Arms r's timer for its earliest deadline, making the timer on first use;
 * stops it when r has none. Returns 0 or LOOM_ENOMEM. O(1). */
static int hc_req_arm(hc_req *r)
{
    uint64_t at = r->total_at;
    if (r->first_byte_at && (at == 0 || r->first_byte_at < at))
        at = r->first_byte_at;
    if (r->idle_on && !r->paused && r->idle_to) {
        uint64_t idle_at = r->rx_at + r->idle_to;
        if (at == 0 || idle_at < at)
            at = idle_at;
    }
    if (at == 0) {
        if (r->timer)
            loom_timer_stop(r->timer);
        return 0;
    }
    if (r->timer == NULL) {
        int rc = loom__net_timer_new(r->st->loop, &r->timer, hc_timer_cb, r);
        if (rc < 0)
            return rc;
    }
    uint64_t now = loom_now(r->st->loop);
    loom_timer_start(r->timer, at > now ? at - now : 0, 0);
    return 0;
}

/* Is r's body still being sent: not all of it handed over yet, or (HTTP/1,
 * where the connection carries r's bytes only) some still queued? */
static bool hc_req_sending(hc_req *r)
{
    if (!r->upload_done)
        return true;
    hc_conn *c = r->conn;
    return c && !c->dead && c->ops == &loom__hc_h1_ops && (r->body_len > 0 || r->on_source) &&
           loom_socket_queued(c->s) > 0;
}

static void hc_timer_cb(loom_timer_t *t, void *data)
{
    hc_req *r = data;
    (void)t;
    uint64_t now = loom_now(r->st->loop);
    if (r->total_at && now >= r->total_at) {
        char where[300];
        if (r->pool)
            loom__hc_where(r->pool, where, sizeof where);
        else
            snprintf(where, sizeof where, "%s", r->url);
        loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                      "request to %s timed out after %" PRIu32 " ms (total timeout)", where,
                      r->total_to);
    } else if (r->first_byte_at && now >= r->first_byte_at) {
        loom__hc_fail_first_byte(r);
    } else if (r->idle_on && !r->paused && r->idle_to && now >= r->rx_at + r->idle_to) {
        char where[300];
        loom__hc_where(r->pool, where, sizeof where);
        if (hc_req_sending(r))
            /* The body is not all sent (HTTP/2 from the start, HTTP/1 after
             * an early answer): the stall may be the upload's. */
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "write timeout after %" PRIu32
                          " ms sending the request body to %s (idle timeout; %s)",
                          r->idle_to, where,
                          r->state >= RQ_HEAD ? "the response had begun" : "no response yet");
        else
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "read timeout after %" PRIu32
                          " ms reading the response from %s (idle timeout)",
                          r->idle_to, where);
    } else {
        (void)hc_req_arm(r); /* a deadline moved (bytes came); the timer exists */
    }
}

int loom__hc_req_idle(hc_req *r, bool on)
{
    r->rx_at = loom_now(r->st->loop);
    if (r->idle_on == on)
        return 0;
    r->idle_on = on;
    return r->idle_to ? hc_req_arm(r) : 0;
}

int loom__hc_req_first_byte_by(hc_req *r, uint64_t at)
{
    if (r->first_byte_at == at)
        return 0;
    r->first_byte_at = at;
    return hc_req_arm(r);
}

static void hc_req_free(loom__handle *h)
{
    hc_req *r = (hc_req *)h;
    hc_state *st = r->st;
    if (r->buf != r->inl)
        free(r->buf);
    loom__bytes_free(&r->rbuf);
    loom__bytes_free(&r->h2_hdrs);
    free(r->location);
    loom_tls_ctx_free(r->tls);
    loom__queue_remove(&r->anode);
    r->h.type = 0;
    loom__slab_free(&st->req_slab, r);
}

/* Marks the request done and closes its handle; callbacks have run. */
void loom__hc_req_end(hc_req *r)
{
    r->state = RQ_DONE;
    loom__pending_cancel(&r->pend);
    r->pd_queued = 0;
    if (r->timer) {
        loom_timer_close(r->timer);
        r->timer = NULL;
    }
    loom__handle_close(&r->h);
}

/* Detaches r from its connection or wait queue. */
void loom__hc_detach(hc_req *r)
{
    if (r->state == RQ_QUEUED) {
        loom__queue_remove(&r->node);
        r->st->stats.queued--;
    } else if (r->conn) {
        loom__queue_remove(&r->node);
        r->conn->nreqs--;
    }
    r->conn = NULL;
}

void loom__hc_emit(hc_req *r, loom_event_kind_t kind, int code, const char *msg)
{
    r->st->stats.errors++;
    loom__event_emit(r->st->loop, r->on_event, r->h.data, kind, code, msg, r);
}

/* Ends r with an error event. If r is on a connection, that connection is
 * closed: a message was cut short. Requests after it on the same
 * connection (pipelining) that saw no byte are put back in the queue. */
void loom__hc_fail(hc_req *r, loom_event_kind_t kind, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->state == RQ_DONE)
        return;
    hc_conn *c = r->conn;
    loom__hc_detach(r);
    r->state = RQ_DONE;
    if (c && !c->dead) {
        if (c->ops->fail)
            c->ops->fail(c, r); /* HTTP/2: only r's stream */
        else
            loom__hc_conn_close(c, true);
    }
    loom__hc_emit(r, kind, code, msg);
    loom__hc_req_end(r);
}

static void hc_pending_cb(loom__pending *p)
{
    hc_req *r = LOOM__CONTAINER_OF(p, hc_req, pend);
    unsigned what = r->pd_what;
    r->pd_what = 0;
    r->pd_queued = 0;
    if (r->state == RQ_DONE)
        return;
    if (what & PD_FAIL) {
        loom__hc_fail(r, (loom_event_kind_t)r->pd_kind, r->pd_code, "%s", r->pd_msg);
        return;
    }
    if ((what & PD_UPLOAD) && r->state == RQ_SENDING)
        loom__hc_pump(r);
}

void loom__hc_defer(hc_req *r, unsigned what)
{
    r->pd_what |= what;
    if (!r->pd_queued) {
        r->pd_queued = 1;
        loom__pending_queue(r->st->loop, &r->pend);
    }
}

/* Fails r from the loop, not from inside the current call. */
void loom__hc_fail_later(hc_req *r, loom_event_kind_t kind, int code, const char *msg)
{
    r->pd_kind = (int)kind;
    r->pd_code = code;
    snprintf(r->pd_msg, sizeof r->pd_msg, "%.*s", (int)sizeof r->pd_msg - 1, msg);
    loom__hc_defer(r, PD_FAIL);
}

/* The client context of r's https requests: the request's, the client's
 * configured one, else the default one (made now on first use:
 * verification on, against the system's store). NULL on failure, with the
 * reason in err. */
static loom_tls_ctx_t *hc_tls_ctx(hc_req *r, char *err, size_t err_len)
{
    hc_state *st = r->st;
    if (r->tls)
        return r->tls;
    if (st->tls_conf)
        return st->tls_conf;
    if (st->tls_def == NULL) {
        char why[200] = "";
        int rc = loom_tls_ctx_new(&(loom_tls_opts){.server = false}, &st->tls_def, why, sizeof why);
        if (rc < 0) {
            st->tls_def = NULL;
            snprintf(err, err_len, "cannot make the default tls client context: %s",
                     why[0] ? why : loom_strerror(rc));
            return NULL;
        }
    }
    return st->tls_def;
}

/* The pool key of URL u for r: scheme, host, port, family and, for https,
 * the client context. Returns 0, or LOOM_EPROTOCOL (an unsupported scheme)
 * or LOOM_ETLS (no context) with the reason in err. */
static int hc_origin_of(hc_req *r, const loom_url_t *u, int family, hc_origin *o, char *err,
                        size_t err_len)
{
    *o = (hc_origin){.scheme = HC_SCHEME_HTTP,
                     .port = loom_url_port(u),
                     .family = family,
                     .host = u->host,
                     .host_len = u->host_len};
    if (hc_ieq(u->scheme, u->scheme_len, "http")) {
        o->ver = r->version >= LOOM_HTTP_VERSION_2 ? HC_V_H2C : HC_V_H1;
        return 0;
    }
    if (!hc_ieq(u->scheme, u->scheme_len, "https")) {
        snprintf(err, err_len, "unsupported URL scheme \"%.*s\"",
                 (int)(u->scheme_len > 16 ? 16 : u->scheme_len), u->scheme);
        return LOOM_EPROTOCOL;
    }
    o->scheme = HC_SCHEME_HTTPS;
    o->ver = r->version == LOOM_HTTP_VERSION_1_1                 ? HC_V_H1
             : r->version == LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE ? HC_V_H2ONLY
                                                                 : HC_V_ALPN;
    o->ctx = hc_tls_ctx(r, err, err_len);
    if (o->ctx == NULL)
        return LOOM_ETLS;
    o->tls.id = (uint64_t)(uintptr_t)o->ctx;
    return 0;
}

/* Starts over with the Location of a 3xx answer. */
void loom__hc_redirect(hc_req *r)
{
    hc_state *st = r->st;
    char *loc = r->location;
    r->location = NULL;
    int need = loom_url_resolve(&r->u, loc, (size_t)-1, 1, NULL, 0);
    char *nu = need >= 0 ? malloc((size_t)need + 1) : NULL;
    char where[300];
    if (need < 0 || nu == NULL) {
        free(nu);
        r->state = RQ_NEW;
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, need < 0 ? LOOM_EURL : LOOM_ENOMEM,
                      "bad redirect location \"%.200s\" from %s", loc,
                      loom__hc_where(r->pool, where, sizeof where));
        free(loc);
        return;
    }
    int n = loom_url_resolve(&r->u, loc, (size_t)-1, 1, nu, (size_t)need + 1);
    loom_url_t nu_u;
    if (n < 0 || loom_url_parse(nu, (size_t)n, &nu_u) < 0 || nu_u.host_len == 0) {
        free(nu);
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EURL, "bad redirect location \"%.200s\" from %s",
                      loc, loom__hc_where(r->pool, where, sizeof where));
        free(loc);
        return;
    }
    free(loc);
    r->redirects++;
    st->stats.redirects++;
    int status = r->res.status;
    /* Method and body rules (RFC 9110 section 15.4). */
    const char *method = r->buf;
    size_t mlen = r->method_len;
    bool to_get = status == 303
                      ? r->method != LOOM_HTTP_METHOD_HEAD
                      : (status == 301 || status == 302) && r->method == LOOM_HTTP_METHOD_POST;
    if (to_get) {
        method = "GET";
        mlen = 3;
        r->method = LOOM_HTTP_METHOD_GET;
        r->body = NULL;
        r->body_len = 0;
        r->on_source = NULL;
        r->strip_body_headers = 1;
        r->user_cl = r->user_te = 0;
    } else if (r->on_source) {
        if (loom__hc_body_rewind(r) < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ESTATE,
                          "cannot follow a %d redirect from %s: the streamed body cannot be "
                          "sent again (to %.120s)",
                          status, loom__hc_where(r->pool, where, sizeof where), nu);
            free(nu);
            return;
        }
    }
    /* Credentials do not follow to another origin (scheme, host, port), as
     * in curl: neither the caller's Authorization, Proxy-Authorization,
     * Cookie and Host fields nor userinfo, unless the caller keeps them. */
    bool same = nu_u.scheme_len == r->u.scheme_len &&
                strncasecmp(nu_u.scheme, r->u.scheme, nu_u.scheme_len) == 0 &&
                nu_u.host_len == r->u.host_len &&
                strncasecmp(nu_u.host, r->u.host, nu_u.host_len) == 0 &&
                loom_url_port(&nu_u) == loom_url_port(&r->u);
    bool strip = !same && !r->keep_creds;
    if (strip)
        r->user_auth = 1; /* no Authorization: Basic from userinfo either */
    hc_origin o;
    char err[256];
    int orc = hc_origin_of(r, &nu_u, r->pool->family, &o, err, sizeof err);
    if (orc < 0) {
        loom__hc_fail(r, orc == LOOM_ETLS ? LOOM_EV_TLS_ERROR : LOOM_EV_HTTP_ERROR, orc,
                      "cannot follow the redirect from %s to %.200s: %s",
                      loom__hc_where(r->pool, where, sizeof where), nu, err);
        free(nu);
        return;
    }
    if (r->pool->scheme == HC_SCHEME_HTTPS && o.scheme == HC_SCHEME_HTTP && !r->insecure_redirect) {
        /* The answer came over TLS: following it in the clear would expose
         * the request (and whatever the chain carries). */
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL,
                      "refused a redirect from https to http (from %s to %.200s): set "
                      "allow_insecure_redirect to follow it",
                      loom__hc_where(r->pool, where, sizeof where), nu);
        free(nu);
        return;
    }
    char *ml = malloc(mlen + r->hdr_len + 1);
    int rc = LOOM_ENOMEM;
    if (ml) {
        memcpy(ml, method, mlen);
        size_t ll = hc_copy_lines(ml + mlen, r->buf + r->method_len, r->hdr_len, strip);
        if (strip)
            r->user_host = 0; /* loom's own Host, from the new URL */
        rc = hc_build(r, ml, mlen, ml + mlen, ll, nu, (size_t)n, NULL);
        free(ml);
    }
    free(nu);
    if (rc < 0) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot follow the redirect from %s: %s",
                      loom__hc_where(r->pool, where, sizeof where), loom_strerror(rc));
        return;
    }
    r->redirecting = 0;
    r->in_rbuf = 0;
    loom__bytes_consume(&r->rbuf, loom__bytes_size(r->rbuf));
    r->msg = NULL;
    o.host = r->u.host; /* the URL was stored again: its slices moved */
    o.host_len = r->u.host_len;
    hc_pool *pool = loom__hc_pool_get(st, &o);
    if (pool == NULL) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        return;
    }
    r->pool = pool;
    r->state = RQ_NEW;
    loom__hc_dispatch(r);
}

/* --- Public API ------------------------------------------------------------------ */

int loom_http_request(loom_loop_t *loop, const char *url, const loom_http_request_opts *opts,
                      loom_http_client_req_t **out)
{
    static const loom_http_request_opts defaults;
    if (loop == NULL || url == NULL)
        return LOOM_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    if (opts->body && opts->on_body_source)
        return LOOM_EINVAL;
    if (opts->family != 0 && opts->family != AF_INET && opts->family != AF_INET6)
        return LOOM_EINVAL;
    if (opts->tls && loom_tls_ctx_is_server(opts->tls))
        return LOOM_EINVAL;
    if ((unsigned)opts->version > LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE)
        return LOOM_EINVAL;
    const char *method = opts->method;
    if (method == NULL)
        method = (opts->body || opts->on_body_source) ? "POST" : "GET";
    if (!hc_token(method))
        return LOOM_EINVAL;
    /* The body's length, which a Content-Length of the caller's must state
     * (-1: a chunked upload, which it cannot). */
    int64_t body_len = opts->body             ? (int64_t)opts->body_len
                       : opts->on_body_source ? (opts->body_length >= 0 ? opts->body_length : -1)
                                              : 0;
    /* Header lines, validated and measured. */
    size_t lines = 0;
    if (opts->headers) {
        for (size_t i = 0; opts->headers[i]; i += 2) {
            const char *n = opts->headers[i], *v = opts->headers[i + 1];
            if (v == NULL || !hc_token(n))
                return LOOM_EINVAL;
            size_t vl = strlen(v);
            if (!loom__http_value_ok(v, vl))
                return LOOM_EINVAL;
            /* A length that disagrees with the body would desynchronise the
             * connection: refused, never sent. */
            if (strcasecmp(n, "content-length") == 0 &&
                (body_len < 0 || hc_parse_length(v) != body_len))
                return LOOM_EINVAL;
            lines += strlen(n) + 2 + vl + 2;
        }
    }
    loom_url_t u;
    size_t url_len = strlen(url);
    int rc = loom_url_parse(url, url_len, &u);
    if (rc < 0)
        return rc;
    if (!(u.flags & LOOM_URL_F_AUTHORITY) || u.host_len == 0 || loom_url_port(&u) <= 0)
        return LOOM_EURL;
    hc_state *st = loom__hc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    /* A stall while sending is the socket's write timeout: make sure its
     * group exists now (groups stay for the loop's life), so a request never
     * runs without the timeout it asked for. The other deadlines are the
     * request's own timer. */
    if ((rc = loom__tgroup_get(loop, opts->idle_timeout_ms)) < 0)
        return rc;
    hc_req *r = loom__slab_alloc(&st->req_slab);
    if (r == NULL)
        return LOOM_ENOMEM;
    loom__handle_init(loop, &r->h, LOOM__T_HTTP, hc_req_free, false);
    loom__handle_start(&r->h);
    r->h.data = opts->data;
    r->st = st;
    loom__queue_init(&r->node);
    loom__queue_insert_tail(&st->reqs, &r->anode);
    r->pend.fn = hc_pending_cb;
    r->buf = r->inl;
    r->buf_cap = HC_INLINE;
    r->on_response = opts->on_response;
    r->on_headers = opts->on_headers;
    r->on_body = opts->on_body;
    r->on_source = opts->on_body_source;
    r->on_rewind = opts->on_body_rewind;
    r->on_event = opts->on_event;
    r->body = opts->body;
    r->body_len = opts->body ? opts->body_len : 0;
    if (opts->body && opts->body_len == 0)
        r->body = "";
    r->body_length = opts->on_body_source ? opts->body_length : 0;
    r->connect_to = opts->connect_timeout_ms;
    r->first_to = opts->first_byte_timeout_ms;
    r->idle_to = opts->idle_timeout_ms;
    r->total_to = opts->total_timeout_ms;
    r->limits = opts->limits;
    r->limits.flags |= LOOM_HTTP_LIMIT_OBS_FOLD; /* a user agent unfolds (RFC 9112 section 5.2) */
    if (r->limits.max_headers == 0)
        r->limits.max_headers = 100;
    if (r->limits.max_headers > HC_MAX_HEADERS)
        r->limits.max_headers = HC_MAX_HEADERS;
    r->follow = opts->follow_redirects;
    unsigned maxr = opts->max_redirects ? opts->max_redirects : 10;
    r->max_redirects = (uint8_t)(maxr > 255 ? 255 : maxr);
    r->no_keepalive = opts->no_keepalive;
    r->keep_creds = opts->redirect_keep_credentials;
    r->retry_unsafe = opts->retry_non_idempotent;
    r->insecure_redirect = opts->allow_insecure_redirect;
    r->version = (uint8_t)opts->version;
    if (opts->tls) {
        loom_tls_ctx_ref(opts->tls);
        r->tls = opts->tls;
    }
    size_t mlen = strlen(method);
    r->method = hc_method_enum(method, mlen);
    st->stats.requests++;

    /* Method and header lines go to a temporary block that hc_build copies. */
    char tmp_small[HC_INLINE];
    size_t tmp_need = mlen + lines;
    char *tmp = tmp_need <= sizeof tmp_small ? tmp_small : malloc(tmp_need);
    if (tmp == NULL) {
        rc = LOOM_ENOMEM;
        goto fail;
    }
    memcpy(tmp, method, mlen);
    {
        hc_w w = {tmp + mlen, 0};
        for (size_t i = 0; opts->headers && opts->headers[i]; i += 2) {
            hc_puts(&w, opts->headers[i]);
            hc_put(&w, ": ", 2);
            hc_puts(&w, opts->headers[i + 1]);
            hc_put(&w, "\r\n", 2);
        }
    }
    r->user_host = hc_lines_have(tmp + mlen, lines, "host");
    r->user_ua = hc_lines_have(tmp + mlen, lines, "user-agent");
    r->user_cl = hc_lines_have(tmp + mlen, lines, "content-length");
    r->user_te = hc_lines_have(tmp + mlen, lines, "transfer-encoding");
    r->user_conn = hc_lines_have(tmp + mlen, lines, "connection");
    r->user_auth = hc_lines_have(tmp + mlen, lines, "authorization");
    if (r->user_conn) {
        /* A Connection: close of the application's also ends reuse. */
        for (size_t i = 0; opts->headers[i]; i += 2)
            if (strcasecmp(opts->headers[i], "connection") == 0 &&
                loom_http_token_list_has(opts->headers[i + 1], strlen(opts->headers[i + 1]),
                                         "close"))
                r->no_keepalive = 1;
    }
    rc = hc_build(r, tmp, mlen, tmp + mlen, lines, url, url_len, &u);
    if (tmp != tmp_small)
        free(tmp);
    if (rc < 0)
        goto fail;
    if (r->total_to) {
        r->total_at = loom_now(loop) + r->total_to;
        if ((rc = hc_req_arm(r)) < 0)
            goto fail;
    }
    if (out)
        *out = r;
    hc_origin o;
    char err[256];
    int orc = hc_origin_of(r, &r->u, opts->family, &o, err, sizeof err);
    if (orc < 0) {
        loom__hc_fail_later(r, orc == LOOM_ETLS ? LOOM_EV_TLS_ERROR : LOOM_EV_HTTP_ERROR, orc, err);
        return 0;
    }
    r->pool = loom__hc_pool_get(st, &o);
    if (r->pool == NULL) {
        rc = LOOM_ENOMEM;
        goto fail;
    }
    loom__hc_dispatch(r);
    return 0;

fail:
    if (r->timer)
        loom_timer_close(r->timer);
    r->timer = NULL;
    st->stats.requests--;
    r->state = RQ_DONE;
    loom__handle_close(&r->h);
    return rc;
}

int loom_http_client_tls_info(const loom_http_client_req_t *r, loom_tls_info *info)
{
    if (r == NULL || info == NULL)
        return LOOM_EINVAL;
    if (r->tls_snap) {
        *info = *r->tls_snap;
        return 0;
    }
    if (r->state == RQ_DONE)
        return LOOM_ECLOSED;
    if (r->pool == NULL || r->pool->scheme != HC_SCHEME_HTTPS)
        return LOOM_EPROTOCOL;
    if (r->conn == NULL)
        return LOOM_ESTATE;
    return loom_socket_tls_info(r->conn->s, info);
}

int loom_http_client_cancel(loom_http_client_req_t *r)
{
    if (r == NULL || r->state == RQ_DONE || loom__handle_closing(&r->h))
        return LOOM_ECLOSED;
    hc_conn *c = r->conn;
    loom__hc_detach(r);
    r->state = RQ_DONE;
    if (c && !c->dead)
        c->ops->cancel(c, r);
    loom__hc_req_end(r);
    return 0;
}

int loom_http_client_pause(loom_http_client_req_t *r)
{
    if (r == NULL || r->state == RQ_DONE)
        return LOOM_ECLOSED;
    if (r->conn == NULL || r->state < RQ_SENT)
        return LOOM_ESTATE;
    if (!r->paused) {
        r->paused = 1;
        if (r->conn->ops->pause)
            r->conn->ops->pause(r->conn, r);
        else
            loom__socket_read_stop(r->conn->s);
    }
    return 0;
}

int loom_http_client_resume(loom_http_client_req_t *r)
{
    if (r == NULL || r->state == RQ_DONE)
        return LOOM_ECLOSED;
    if (r->conn == NULL)
        return LOOM_ESTATE;
    if (!r->paused)
        return 0;
    r->paused = 0;
    hc_conn *c = r->conn;
    if (r->idle_on && r->idle_to) {
        /* The idle clock starts again: a pause is the application's. */
        r->rx_at = loom_now(r->st->loop);
        if (hc_req_arm(r) < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
            return 0;
        }
    }
    if (c->ops->resume) {
        c->ops->resume(c, r);
        return 0;
    }
    if (loom__bytes_size(c->carry)) {
        /* Deliver what was read already from the loop; reading restarts
         * after it. */
        if (!c->pend_queued) {
            c->pend_queued = 1;
            loom__pending_queue(r->st->loop, &c->pend);
        }
    } else {
        loom__socket_read_start(c->s);
    }
    return 0;
}

int loom_http_client_body_ready(loom_http_client_req_t *r)
{
    if (r == NULL || r->state == RQ_DONE)
        return LOOM_ECLOSED;
    if (r->state == RQ_SENDING)
        loom__hc_defer(r, PD_UPLOAD);
    return 0;
}

loom_loop_t *loom_http_client_loop(const loom_http_client_req_t *r)
{
    return r ? r->st->loop : NULL;
}

const char *loom_http_client_request_head(const loom_http_client_req_t *r, size_t *len)
{
    if (r == NULL)
        return NULL;
    /* HTTP/1's head, rendered now if the request has not been sent yet. */
    if (loom__hc_h1_head((loom_http_client_req_t *)r) < 0)
        return NULL;
    if (len)
        *len = r->head_len;
    return r->head;
}

int64_t loom_http_client_content_length(const loom_http_client_response_t *res)
{
    return res ? res->content_length : -1;
}

void *loom_http_client_data(const loom_http_client_req_t *r)
{
    return r ? r->h.data : NULL;
}

void loom_http_client_set_data(loom_http_client_req_t *r, void *data)
{
    if (r)
        r->h.data = data;
}

const char *loom_http_client_header(const loom_http_client_response_t *res, const char *name,
                                    size_t *len)
{
    if (res == NULL || name == NULL)
        return NULL;
    const loom_http_header_t *h = loom_http_header_find(res->headers, res->nheaders, name, NULL);
    if (h == NULL)
        return NULL;
    if (len)
        *len = h->value_len;
    return h->value;
}

int loom_http_client_response_version(const loom_http_client_response_t *res)
{
    return res ? res->version : 0;
}

int loom_http_client_configure(loom_loop_t *loop, const loom_http_client_opts *opts)
{
    static const loom_http_client_opts defaults;
    if (loop == NULL)
        return LOOM_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    hc_state *st = loom__hc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    char *ua = NULL;
    if (opts->user_agent) {
        if (!loom__http_value_ok(opts->user_agent, strlen(opts->user_agent)))
            return LOOM_EINVAL;
        ua = strdup(opts->user_agent);
        if (ua == NULL)
            return LOOM_ENOMEM;
    }
    if (opts->tls && loom_tls_ctx_is_server(opts->tls)) {
        free(ua);
        return LOOM_EINVAL;
    }
    if (opts->tls)
        loom_tls_ctx_ref(opts->tls);
    loom_tls_ctx_free(st->tls_conf);
    st->tls_conf = opts->tls;
    free(st->ua);
    st->ua = ua;
    st->ua_len = strlen(ua ? ua : HC_DEFAULT_UA);
    st->max_per_host = opts->max_per_host ? opts->max_per_host : HC_DEFAULT_PERHOST;
    st->max_idle = opts->max_idle ? opts->max_idle : HC_DEFAULT_IDLE;
    st->idle_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : HC_DEFAULT_IDLE_MS;
    st->depth = opts->pipeline_depth > 1 ? opts->pipeline_depth : 1;
    while (st->stats.idle > st->max_idle) {
        hc_conn *old = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        loom__hc_conn_close(old, false);
    }
    return 0;
}

void loom_http_client_close_idle(loom_loop_t *loop)
{
    loom__http_loop *http = loop ? loop->http : NULL;
    hc_state *st = http ? http->client : NULL;
    if (st == NULL)
        return;
    while (!loom__queue_empty(&st->idle_lru)) {
        hc_conn *c = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        loom__hc_conn_close(c, false);
    }
}

void loom_http_client_stats(loom_loop_t *loop, loom_http_client_stats_t *out)
{
    memset(out, 0, sizeof *out);
    loom__http_loop *http = loop ? loop->http : NULL;
    hc_state *st = http ? http->client : NULL;
    if (st)
        *out = st->stats;
}
