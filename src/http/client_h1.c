/* http/client_h1.c - HTTP/1 for the client: rendering the request head,
 * sending it, parsing responses in place (or from the request's own buffer
 * once a message spans reads), framing bodies, pipelining, 1xx answers,
 * the connection's socket hooks and the stale-connection retry. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/client_internal.h"

static void hc_put_u64(hc_w *w, uint64_t v)
{
    char b[24];
    int k = (int)sizeof b;
    do {
        b[--k] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    hc_put(w, b + k, sizeof b - (size_t)k);
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int hc_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Writes the Base64 of the percent-decoding of s[0..n) (a malformed escape
 * stays as it is), decoding on the fly: no buffer, so credentials of any
 * length go out. */
void loom__hc_put_b64_decoded(hc_w *w, const char *s, size_t n)
{
    unsigned v = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int hi, lo;
        if (c == '%' && i + 2 < n && (hi = hc_hexval(s[i + 1])) >= 0 &&
            (lo = hc_hexval(s[i + 2])) >= 0) {
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        }
        v = v << 8 | c;
        if (++k == 3) {
            char o[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63], b64[(v >> 6) & 63], b64[v & 63]};
            hc_put(w, o, 4);
            v = k = 0;
        }
    }
    if (k) {
        v <<= 8 * (3 - k);
        char o[4] = {b64[(v >> 18) & 63], b64[(v >> 12) & 63], k > 1 ? b64[(v >> 6) & 63] : '=',
                     '='};
        hc_put(w, o, 4);
    }
}

static bool hc_is_body_header(const char *line, size_t n)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "content-type"};
    for (size_t k = 0; k < 3; k++) {
        size_t nl = strlen(names[k]);
        if (n > nl && line[nl] == ':' && strncasecmp(line, names[k], nl) == 0)
            return true;
    }
    return false;
}

/* Renders r's HTTP/1 head from its description (measures when w->out is
 * NULL). */
static void hc_render_head(hc_req *r, hc_w *w)
{
    const char *method = r->buf;
    const char *lines = r->buf + r->method_len;
    hc_state *st = r->st;
    const loom_url_t *u = &r->u;
    hc_put(w, method, r->method_len);
    hc_put(w, " ", 1);
    /* The target: path (or "/") and query, with bytes a request line may not
     * carry percent-encoded. */
    static const char hex[] = "0123456789ABCDEF";
    const char *parts[2] = {u->path, u->query};
    size_t plen[2] = {u->path_len, u->query_len};
    if (u->path_len == 0)
        hc_put(w, "/", 1);
    for (int k = 0; k < 2; k++) {
        if (k == 1) {
            if (!(u->flags & LOOM_URL_F_QUERY))
                break;
            hc_put(w, "?", 1);
        }
        if (plen[k] == 0)
            continue; /* p may be NULL ("http://host" has no path) */
        const char *p = parts[k];
        size_t i = 0, start = 0;
        for (; i < plen[k]; i++) {
            unsigned char c = (unsigned char)p[i];
            if (c > 0x20 && c < 0x7f)
                continue;
            hc_put(w, p + start, i - start);
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            hc_put(w, e, 3);
            start = i + 1;
        }
        hc_put(w, p + start, i - start);
    }
    hc_puts(w, " HTTP/1.1\r\n");
    if (!r->user_host) {
        hc_puts(w, "Host: ");
        if (u->flags & LOOM_URL_F_IPV6)
            hc_put(w, "[", 1);
        hc_put(w, u->host, u->host_len);
        if (u->flags & LOOM_URL_F_IPV6)
            hc_put(w, "]", 1);
        if ((u->flags & LOOM_URL_F_PORT) && u->port != 80) {
            hc_put(w, ":", 1);
            hc_put_u64(w, (uint64_t)u->port);
        }
        hc_puts(w, "\r\n");
    }
    if (!r->user_ua) {
        hc_puts(w, "User-Agent: ");
        hc_put(w, st->ua ? st->ua : HC_DEFAULT_UA, st->ua_len);
        hc_puts(w, "\r\n");
    }
    if (!r->user_auth && (u->flags & LOOM_URL_F_USERINFO)) {
        hc_puts(w, "Authorization: Basic ");
        loom__hc_put_b64_decoded(w, u->userinfo, u->userinfo_len);
        hc_puts(w, "\r\n");
    }
    for (size_t i = 0; i < r->hdr_len;) {
        const char *e = memchr(lines + i, '\n', r->hdr_len - i);
        size_t end = (size_t)(e - lines) + 1;
        if (!(r->strip_body_headers && hc_is_body_header(lines + i, end - i)))
            hc_put(w, lines + i, end - i);
        i = end;
    }
    bool has_body = r->body != NULL || r->on_source != NULL;
    if (has_body && !r->user_cl && !r->user_te) {
        if (r->on_source && r->body_length < 0) {
            hc_puts(w, "Transfer-Encoding: chunked\r\n");
        } else {
            hc_puts(w, "Content-Length: ");
            hc_put_u64(w, r->on_source ? (uint64_t)r->body_length : r->body_len);
            hc_puts(w, "\r\n");
        }
    }
    if (r->no_keepalive && !r->user_conn)
        hc_puts(w, "Connection: close\r\n");
    hc_puts(w, "\r\n");
}

int loom__hc_h1_head(hc_req *r)
{
    if (r->head != NULL)
        return 0; /* rendered: a retry sends the same bytes */
    size_t used = r->method_len + r->hdr_len + r->url_len + 1;
    hc_w m = {NULL, 0};
    hc_render_head(r, &m); /* measures */
    int rc = loom__hc_req_reserve(r, used, m.n + 1);
    if (rc < 0)
        return rc;
    char *out = r->buf + used;
    hc_w w = {out, 0};
    hc_render_head(r, &w);
    out[w.n] = '\0'; /* for loom_http_client_request_head() */
    r->head = out;
    r->head_len = w.n;
    return 0;
}

/* The first byte clock of c's first request starts once it is sent and
 * first in line for an answer (a pipelined request does not wait for the
 * answers before its own on its clock). */
static void hc_h1_await(hc_conn *c)
{
    if (c->dead || loom__queue_empty(&c->reqs))
        return;
    hc_req *r = hc_req_of(c->reqs.next);
    if (r->state != RQ_SENT || r->first_byte_at || !r->first_to)
        return;
    r->sent_at = loom_now(r->st->loop);
    if (loom__hc_req_first_byte_by(r, r->sent_at + r->first_to) < 0)
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
}

static void hc_send(hc_req *r)
{
    hc_conn *c = r->conn;
    loom_socket_t *s = c->s;
    int rc = loom__hc_h1_head(r);
    if (rc < 0) {
        loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request");
        return;
    }
    r->state = RQ_SENDING;
    r->uploaded = 0;
    r->upload_done = 0;
    r->sent_at = loom_now(r->st->loop);
    if (r->body && r->body_len) {
        if (r->body_len <= HC_SMALL_BODY) {
            struct iovec iov[2] = {{(void *)r->head, r->head_len}, {(void *)r->body, r->body_len}};
            rc = loom_socket_writev(s, iov, 2);
        } else {
            rc = loom_socket_write(s, r->head, r->head_len);
            if (rc >= 0)
                rc = loom_socket_write_ref(s, r->body, r->body_len, NULL, NULL);
        }
    } else {
        rc = loom_socket_write(s, r->head, r->head_len);
    }
    if (rc < 0) {
        loom__hc_fail_later(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request");
        return;
    }
    if (r->on_source) {
        /* The source is the application's code: pull from the loop, never
         * from inside loom_http_request() or another request's cancel. */
        loom__hc_defer(r, PD_UPLOAD);
        return;
    }
    r->upload_done = 1;
    r->state = RQ_SENT;
    hc_h1_await(c);
}

void loom__hc_view(hc_req *r, loom_http_client_response_t *v, const loom_http_header_t *h,
                   size_t nh)
{
    memset(v, 0, sizeof *v);
    v->status = r->res.status;
    v->minor_version = r->res.minor_version;
    v->reason = r->res.reason ? r->res.reason : "";
    v->reason_len = r->res.reason_len;
    v->headers = h;
    v->nheaders = nh;
    v->url = r->url;
    v->redirects = r->redirects;
    v->reused = r->reused;
    v->version = r->res.minor_version >= 0 ? 10 + r->res.minor_version : 11;
    bool cl = (r->res.flags & (LOOM_HTTP_F_CONTENT_LENGTH | LOOM_HTTP_F_TE)) ==
              LOOM_HTTP_F_CONTENT_LENGTH;
    v->content_length =
        cl && r->res.content_length <= INT64_MAX ? (int64_t)r->res.content_length : -1;
}

/* NUL-terminates the reason phrase and the header names and values of a
 * parsed head in place, for the callbacks: each terminator lands on the
 * colon, on the CR, or on the whitespace after a value, all inside the head.
 * The bytes overwritten are kept in st->saved so that hc_unterminate() can
 * put them back when the head may be parsed again (hc_stash()). O(fields),
 * over a head the parser has just walked. */
void loom__hc_terminate(hc_state *st, hc_req *r, const loom_http_header_t *h, size_t nh, bool save)
{
    if (r->res.reason) {
        char *reason_end = (char *)r->res.reason + r->res.reason_len;
        if (save)
            st->saved_reason = *reason_end;
        *reason_end = '\0';
    }
    for (size_t i = 0; i < nh; i++) {
        char *ve = (char *)h[i].value + h[i].value_len;
        if (save)
            st->saved[i] = *ve;
        *ve = '\0';
        ((char *)h[i].name)[h[i].name_len] = '\0';
    }
}

static void hc_unterminate(hc_state *st, hc_req *r, const loom_http_header_t *h, size_t nh)
{
    if (r->res.reason)
        ((char *)r->res.reason)[r->res.reason_len] = st->saved_reason;
    for (size_t i = 0; i < nh; i++) {
        ((char *)h[i].value)[h[i].value_len] = st->saved[i];
        ((char *)h[i].name)[h[i].name_len] = ':';
    }
}

/* The message no longer fits in this read: copy its head (and, buffered,
 * its body so far) into the request's own buffer. */
static int hc_stash(hc_req *r)
{
    if (r->in_rbuf)
        return 0;
    bool buffered = r->on_body == NULL && !r->redirecting;
    size_t body = buffered ? r->msg_body : 0;
    size_t want = r->msg_head + body;
    if (buffered && r->fr.kind == LOOM_HTTP_BODY_LENGTH && r->fr.length < (64u << 20))
        want = r->msg_head + (size_t)r->fr.length;
    loom__bytes_consume(&r->rbuf, loom__bytes_size(r->rbuf)); /* empty, memory kept */
    if (loom__bytes_reserve(&r->rbuf, want) < 0 ||
        loom__bytes_append(&r->rbuf, r->msg, r->msg_head + body) < 0)
        return LOOM_ENOMEM;
    r->in_rbuf = 1;
    r->msg = NULL;
    return 0;
}

/* The response of r (the first request on c) is complete. */
void loom__hc_complete(hc_conn *c, hc_req *r)
{
    hc_state *st = r->st;
    loom_loop_t *loop = st->loop;
    bool reuse = !c->no_reuse && r->fr.keep_alive && !r->no_keepalive && r->upload_done &&
                 !r->fr.upgrade && !r->fr.tunnel;
    /* https: loom_http_client_tls_info() in on_response, whatever becomes
     * of the connection below. */
    hc_tls_snap snap;
    bool snapped = c->pool->scheme == HC_SCHEME_HTTPS && r->on_response && !r->redirecting &&
                   loom__hc_tls_snap(c, &snap);
    loom__queue_remove(&r->node);
    c->nreqs--;
    r->conn = NULL;
    r->state = RQ_DONE;
    /* The view: from this buffer, or from rbuf (parsed again). */
    const loom_http_header_t *hdrs = st->hdrs;
    size_t nh;
    const char *body = NULL;
    size_t blen = 0;
    if (r->in_rbuf) {
        nh = HC_MAX_HEADERS;
        loom_http_response_t res2;
        int rc = loom_http_parse_response(loom__bytes_data(r->rbuf), r->msg_head, 0, &res2,
                                          st->hdrs, &nh, &r->limits);
        if (rc < 0) {
            /* Cannot happen (the same bytes parsed before); never leave
             * pointers into the old buffer. */
            nh = 0;
            r->res.reason = NULL;
            r->res.reason_len = 0;
        } else {
            r->res = res2;
        }
        body = loom__bytes_data(r->rbuf) + r->msg_head;
        blen = loom__bytes_size(r->rbuf) - r->msg_head;
    } else {
        nh = r->nhdrs;
        body = r->msg + r->msg_head;
        blen = r->msg_body;
    }
    /* Bytes after the response that no request on c asked for: the server
     * sent more than it was asked, and a request sent on c now would take
     * them for its answer (a redirect, or one made from on_response). */
    bool unsolicited = c->rx_more && c->nreqs == 0;
    c->rx_more = 0;
    if (unsolicited)
        st->stats.stale_dropped++;
    if (!reuse || unsolicited)
        loom__hc_conn_close(c, unsolicited); /* pipelined followers go back to the queue */
    else if (c->nreqs == 0)
        loom__hc_conn_release(c);
    else
        hc_h1_await(c); /* the next one's turn */
    if (r->redirecting) {
        r->state = RQ_NEW;
        loom__hc_redirect(r);
        return;
    }
    st->stats.responses++;
    loom_http_client_response_t v;
    loom__hc_view(r, &v, hdrs, nh);
    /* The head is consumed and never parsed again: no need to restore it. */
    loom__hc_terminate(st, r, hdrs, nh, false);
    if (r->on_body == NULL) {
        v.body = blen ? body : NULL;
        v.body_len = blen;
    }
    if (r->on_response) {
        loom__op_scope sc;
        loom__op_enter(loop, &sc, r->on_event, r->h.data, r);
        r->tls_snap = snapped ? &snap.info : NULL;
        r->on_response(r, &v, r->h.data);
        r->tls_snap = NULL;
        loom__op_leave(loop, &sc);
    }
    loom__hc_req_end(r);
}

/* A 1xx answer was parsed (rare: kept out of the hot path). 1xx answers are
 * bounded in number, and they do not move the first byte deadline: after
 * the first one, the rest of it holds until the final head (the idle clock
 * alone would let a peer stall with 1xx for ever). Returns 0, or -1 when r
 * failed. */
static __attribute__((cold, noinline)) int hc_interim(hc_req *r)
{
    hc_state *st = r->st;
    char where[300];
    r->scan = 0;
    if (++r->interim > HC_MAX_INTERIM) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY,
                      "more than %d interim (1xx) responses from %s", HC_MAX_INTERIM,
                      loom__hc_where(r->pool, where, sizeof where));
        return -1;
    }
    if (r->interim == 1 && r->first_to) {
        uint64_t spent = loom_now(st->loop) - r->sent_at;
        if (spent >= r->first_to) {
            loom__hc_fail_first_byte(r);
            return -1;
        }
        int trc = loom__hc_req_first_byte_by(r, r->sent_at + r->first_to);
        if (trc < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, trc, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Parses r's response head from buf[0..len). Returns the bytes consumed
 * (> 0), 0 when more are needed, or -1 when r failed. */
/* RFC 9112 section 5.2: a user agent replaces each obs-fold of a response
 * with SP before interpreting the value. The parser (LOOM_HTTP_LIMIT_OBS_FOLD)
 * left the folds inside the values' slices; each CR and LF becomes SP, in
 * place, so the head keeps its length and parses the same (unfolded) if it
 * is parsed again from a copy (hc_stash()). */
static void hc_unfold(const loom_http_header_t *h, size_t nh)
{
    for (size_t i = 0; i < nh; i++) {
        char *v = (char *)h[i].value;
        for (size_t k = 0; k < h[i].value_len; k++)
            if (v[k] == '\r' || v[k] == '\n')
                v[k] = ' ';
    }
}

static long hc_head(hc_conn *c, hc_req *r, char *buf, size_t len)
{
    hc_state *st = r->st;
    if (r->state < RQ_HEAD) {
        /* The first byte: from here, stalls are the idle clock's. */
        r->state = RQ_HEAD;
        int trc = loom__hc_req_first_byte_by(r, 0);
        if (trc == 0)
            trc = loom__hc_req_idle(r, true);
        if (trc < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, trc, "out of memory");
            return -1;
        }
    }
    size_t nh = HC_MAX_HEADERS;
    int rc = loom_http_parse_response(buf, len, r->scan, &r->res, st->hdrs, &nh, &r->limits);
    if (rc == LOOM_HTTP_INCOMPLETE) {
        r->scan = len;
        return 0;
    }
    if (rc < 0) {
        bool big = rc == LOOM_HTTP_PERR_HEADERS_TOO_LARGE || rc == LOOM_HTTP_PERR_LINE_TOO_LONG ||
                   rc == LOOM_HTTP_PERR_TOO_MANY_HEADERS;
        char where[300];
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, big ? LOOM_ETOOBIG : LOOM_EHTTP,
                      "malformed response: %s (from %s)", loom_http_perr_str(rc),
                      loom__hc_where(r->pool, where, sizeof where));
        return -1;
    }
    if (LOOM__UNLIKELY(r->res.flags & LOOM_HTTP_F_OBS_FOLD))
        hc_unfold(st->hdrs, nh);
    loom_http_response_framing(&r->res, r->method, &r->fr);
    if (r->fr.informational)
        return hc_interim(r) < 0 ? -1 : rc; /* 1xx: the final answer follows */
    if (r->first_byte_at)
        (void)loom__hc_req_first_byte_by(r, 0); /* clears: cannot fail */
    if (r->fr.upgrade || r->fr.tunnel) {
        /* No protocol switch in this client: the answer has no body and the
         * connection is not reused. */
        r->fr.kind = LOOM_HTTP_BODY_NONE;
        c->no_reuse = 1;
    }
    if (!r->fr.keep_alive)
        c->no_reuse = 1;
    loom_http_limits_t lim = r->limits;
    if (lim.max_body_size == 0)
        lim.max_body_size = r->on_body ? UINT64_MAX : HC_DEFAULT_BUF_MAX;
    int brc = loom_http_body_init(&r->bd, &r->fr, &lim);
    if (brc < 0) {
        char where[300];
        loom__hc_fail(
            r, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG,
            "response body of %" PRIu64 " bytes exceeds the limit of %" PRIu64 " bytes (from %s)",
            r->fr.length, lim.max_body_size, loom__hc_where(r->pool, where, sizeof where));
        return -1;
    }
    r->state = RQ_BODY;
    r->scan = 0;
    r->nhdrs = nh;
    r->msg = buf;
    r->msg_head = (size_t)rc;
    r->msg_body = 0;
    r->in_rbuf = 0;
    r->redirecting = 0;
    int s = r->res.status;
    if (r->follow && (s == 301 || s == 302 || s == 303 || s == 307 || s == 308)) {
        const loom_http_header_t *loc = loom_http_header_find(st->hdrs, nh, "location", NULL);
        if (loc && loc->value_len) {
            if (r->redirects >= r->max_redirects) {
                char where[300];
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY,
                              "too many redirects (more than %u; the last from %s)",
                              (unsigned)r->max_redirects,
                              loom__hc_where(r->pool, where, sizeof where));
                return -1;
            }
            free(r->location);
            r->location = strndup(loc->value, loc->value_len);
            if (r->location == NULL) {
                loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
                return -1;
            }
            r->redirecting = 1;
        }
    }
    if (r->on_headers && !r->redirecting) {
        loom_http_client_response_t v;
        loom__hc_view(r, &v, st->hdrs, nh);
        loom__op_scope sc;
        loom__op_enter(st->loop, &sc, r->on_event, r->h.data, r);
        r->in_cb = 1;
        loom__hc_terminate(st, r, st->hdrs, nh, true);
        r->on_headers(r, &v, r->h.data);
        hc_unterminate(st, r, st->hdrs, nh);
        r->in_cb = 0;
        loom__op_leave(st->loop, &sc);
        if (r->state == RQ_DONE)
            return -1;
    }
    return rc;
}

/* Decodes r's body from buf[0..len). Returns the bytes consumed; sets *done
 * when the message is complete; -1 when r failed or was cancelled. */
static long hc_body(hc_conn *c, hc_req *r, char *buf, size_t len, bool *done)
{
    hc_state *st = r->st;
    size_t off = 0;
    *done = false;
    for (;;) {
        if (r->paused)
            return (long)off;
        loom_http_body_out_t out = {0};
        int n = loom_http_body_parse(&r->bd, buf + off, len - off, &out);
        if (n < 0) {
            bool big = n == LOOM_HTTP_PERR_BODY_TOO_LARGE;
            char where[300];
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, big ? LOOM_ETOOBIG : LOOM_EHTTP, "%s%s (from %s)",
                          big ? "response body exceeds the size limit: "
                              : "malformed response body: ",
                          loom_http_perr_str(n), loom__hc_where(r->pool, where, sizeof where));
            return -1;
        }
        off += (size_t)n;
        r->received += out.data_len;
        if (out.data_len) {
            if (r->redirecting) {
                /* The body of a redirect is dropped. */
            } else if (r->on_body) {
                loom__op_scope sc;
                loom__op_enter(st->loop, &sc, r->on_event, r->h.data, r);
                r->in_cb = 1;
                int rc = r->on_body(r, out.data, out.data_len, r->h.data);
                r->in_cb = 0;
                loom__op_leave(st->loop, &sc);
                if (r->state == RQ_DONE || c->dead)
                    return -1;
                if (rc == LOOM_HTTP_CLIENT_PAUSE && !r->paused) {
                    r->paused = 1;
                    loom__socket_read_stop(c->s);
                }
            } else if (r->in_rbuf) {
                if (loom__bytes_append(&r->rbuf, out.data, out.data_len) < 0) {
                    loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the body");
                    return -1;
                }
            } else {
                /* In place: move the piece next to the head (chunked). */
                char *dst = r->msg + r->msg_head + r->msg_body;
                if (dst != out.data)
                    memmove(dst, out.data, out.data_len);
                r->msg_body += out.data_len;
            }
        }
        if (out.done) {
            *done = true;
            return (long)off;
        }
        if (n == 0 || off == len || r->paused)
            return (long)off;
    }
}

/* Processes buf[0..len) on c. Returns the bytes consumed; the caller keeps
 * the rest (a partial head or chunk line, or what a paused request has not
 * taken yet). */
static size_t hc_process(hc_conn *c, char *buf, size_t len)
{
    size_t off = 0;
    while (off < len && !c->dead) {
        if (loom__queue_empty(&c->reqs)) {
            /* Bytes nobody asked for: the connection is unusable. */
            loom__hc_conn_close(c, true);
            return len;
        }
        hc_req *r = hc_req_of(c->reqs.next);
        if (r->state < RQ_BODY && !r->paused) {
            long n = hc_head(c, r, buf + off, len - off);
            if (n < 0)
                return len;
            if (n == 0)
                return off;
            off += (size_t)n;
            if (r->state < RQ_BODY)
                continue; /* 1xx */
        }
        if (r->state == RQ_BODY && !r->paused) {
            bool done;
            long n = hc_body(c, r, buf + off, len - off, &done);
            if (n < 0)
                return len;
            off += (size_t)n;
            if (done) {
                c->rx_more = off < len;
                loom__hc_complete(c, r);
                continue;
            }
        }
        /* Out of bytes, or paused, inside the message: keep its head. */
        if (r->state == RQ_BODY && !r->in_rbuf && hc_stash(r) < 0) {
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the response");
            return len;
        }
        return off;
    }
    return off;
}

/* Makes the carry hold `more` bytes after the kept ones. Out of memory,
 * the connection cannot go on: its first request fails, it closes, and this
 * returns false. */
static bool hc_carry_reserve(hc_conn *c, size_t more)
{
    if (loom__bytes_reserve(&c->carry, more) == 0)
        return true;
    if (!loom__queue_empty(&c->reqs))
        loom__hc_fail(hc_req_of(c->reqs.next), LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
    loom__hc_conn_close(c, true);
    return false;
}

/* Feeds bytes to c: appended to the carry if one is kept. The carry keeps
 * its memory while the connection lives (as before: no allocation per
 * message that spans reads). */
void loom__hc_process_conn(hc_conn *c, char *buf, size_t len, bool from_carry)
{
    c->in_read++;
    if (!loom__queue_empty(&c->reqs))
        hc_req_of(c->reqs.next)->rx_at = loom_now(c->st->loop); /* its idle clock */
    char *data = buf;
    size_t n = len;
    if (!from_carry && loom__bytes_size(c->carry)) {
        if (!hc_carry_reserve(c, len))
            goto out;
        (void)loom__bytes_append(&c->carry, buf, len); /* room reserved */
        from_carry = true;
    }
    if (from_carry) {
        data = loom__bytes_data(c->carry);
        n = loom__bytes_size(c->carry);
    }
    size_t used = hc_process(c, data, n);
    if (c->dead)
        goto out;
    size_t rest = n - used;
    if (from_carry) {
        loom__bytes_consume(&c->carry, used);
    } else if (rest) {
        if (!hc_carry_reserve(c, rest))
            goto out;
        (void)loom__bytes_append(&c->carry, data + used, rest);
    }
out:
    c->in_read--;
    if (c->dead && !c->in_read)
        loom__bytes_free(&c->carry);
}

void loom__hc_proto_read(loom_socket_t *s, char *buf, size_t len)
{
    hc_conn *c = hc_conn_of(s);
    if (c->ops->read) {
        c->ops->read(c, buf, len);
        return;
    }
    loom__hc_process_conn(c, buf, len, false);
}

void loom__hc_conn_pending(loom__pending *p)
{
    hc_conn *c = LOOM__CONTAINER_OF(p, hc_conn, pend);
    c->pend_queued = 0;
    if (c->dead)
        return;
    if (loom__bytes_size(c->carry))
        loom__hc_process_conn(c, NULL, 0, true);
    if (!c->dead && !loom__queue_empty(&c->reqs) && !hc_req_of(c->reqs.next)->paused)
        loom__socket_read_start(c->s);
}

/* The connection failed or closed (the socket layer closes it after this). */
/* A server may answer before it has read the whole request body (a 413, a
 * 401) and close; the unread body makes its kernel reset the connection, and
 * a send of the rest of the body fails. The answer is still in our socket's
 * receive queue (Linux keeps it readable after the reset), and it is what the
 * caller needs, not "connection reset" (curl gets it too). On a plain
 * connection read by readiness, read what is left and parse it; returns true
 * if that ended the request (the connection is then closed). */
static bool hc_read_after_reset(hc_conn *c, hc_req *r)
{
    loom_socket_t *s = c->s;
    if (c->pool->scheme != HC_SCHEME_HTTP || s->io.bio.fd < 0 || (s->h.flags & LOOM__S_RECV) ||
        r->state < RQ_SENDING || r->state > RQ_BODY || c->ops != &loom__hc_h1_ops)
        return false;
    char buf[16384];
    for (int i = 0; i < 1024 && !c->dead; i++) { /* at most 16 MiB here */
        ssize_t n = recv(s->io.bio.fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0)
            break;
        loom__hc_process_conn(c, buf, (size_t)n, false);
    }
    return c->dead;
}

/* `where` ("localhost:8080") and, when the host is a name, the address the
 * connection had, kept from connect ("localhost:8080 (127.0.0.1:8080)"):
 * what a reset names. */
static const char *hc_where_addr(hc_conn *c, char *buf, size_t size)
{
    char where[300], addr[64];
    loom__hc_where(c->pool, where, sizeof where);
    if (!loom__socket_kept_peer_name(c->s, addr, sizeof addr) || strcmp(addr, where) == 0)
        snprintf(buf, size, "%s", where); /* none kept, or the host is the address */
    else
        snprintf(buf, size, "%s (%s)", where, addr);
    return buf;
}

void loom__hc_proto_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    hc_conn *c = hc_conn_of(s);
    if (c->dead)
        return;
    if (c->ops->event && c->ops->event(c, kind, code, msg))
        return;
    if (loom__queue_empty(&c->reqs)) {
        loom__hc_conn_close(c, false); /* an idle connection went away */
        return;
    }
    hc_req *r = hc_req_of(c->reqs.next);
    hc_pool *pool = c->pool;
    char where[300];
    if (kind == LOOM_EV_TCP_RESET && hc_read_after_reset(c, r))
        return; /* the answer was there: it ended the request and the connection */
    /* TLS: a connection that ended without close_notify may have been cut
     * short by anyone on the path; it is an end, never a clean one. */
    bool truncated = kind == LOOM_EV_TLS_ERROR && code == LOOM_ETRUNCATED;
    if (truncated && r->state == RQ_BODY) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETRUNCATED,
                      "response from %s truncated: the connection closed without close_notify "
                      "(%" PRIu64 " body bytes received)",
                      loom__hc_where(pool, where, sizeof where), r->received);
        if (!c->dead)
            loom__hc_conn_close(c, false);
        return;
    }
    if (kind == LOOM_EV_TCP_EOF && r->state == RQ_BODY) {
        /* The end of a body delimited by the close, or a cut-off one. */
        if (loom_http_body_finish(&r->bd) == 0) {
            c->no_reuse = 1;
            loom__hc_complete(c, r); /* closes c: the body is in rbuf, stashed */
            return;
        }
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF,
                      "connection closed by %s before the response was complete (%" PRIu64
                      " body bytes received)",
                      loom__hc_where(pool, where, sizeof where), r->received);
        return;
    }
    bool nothing = r->state == RQ_SENDING || r->state == RQ_SENT;
    /* RFC 9110 section 9.2.2: only idempotent methods are sent again by
     * themselves; others only when the caller said so. A streamed body also
     * needs its rewind (loom__hc_conn_close() checks). */
    bool may_retry = hc_idempotent(r->method) || r->retry_unsafe;
    bool stale =
        nothing && r->reused && (kind == LOOM_EV_TCP_EOF || kind == LOOM_EV_TCP_RESET || truncated);
    if (stale && may_retry && !r->retried) {
        /* A stale keep-alive connection: try once more on a fresh one. */
        r->retried = 1;
        c->st->stats.retries++;
        loom__hc_conn_close(c, false); /* requeues r and any followers */
        return;
    }
    if (!c->connected)
        c->st->stats.connect_failures++; /* dns, refused, timeout, error */
    loom__hc_where(pool, where, sizeof where);
    /* Why a failed request on a reused connection was not sent again. */
    char why[96] = "";
    if (stale && !may_retry)
        snprintf(why, sizeof why, " (a reused connection; %.*s is not retried by itself)",
                 (int)r->method_len, r->buf);
    switch (kind) {
    case LOOM_EV_DNS_ERROR:
        if (msg != NULL) /* the host and c-ares's reason */
            loom__hc_fail(r, LOOM_EV_DNS_ERROR, code, "%s", msg);
        else
            loom__hc_fail(r, LOOM_EV_DNS_ERROR, code, "dns lookup of %s failed: %s", pool->host,
                          loom_strerror(code));
        break;
    case LOOM_EV_TCP_REFUSED:
        /* The socket layer names every address it tried. */
        if (msg != NULL)
            loom__hc_fail(r, LOOM_EV_HTTP_REFUSED, code, "%s", msg);
        else
            loom__hc_fail(r, LOOM_EV_HTTP_REFUSED, code, "connect to %s refused", where);
        break;
    case LOOM_EV_TLS_ERROR:
    case LOOM_EV_TLS_VERIFY_ERROR:
        /* The TLS layer's message names the peer and OpenSSL's reason
         * ("certificate verify failed for localhost:8443: ..."). */
        if (truncated)
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETRUNCATED,
                          "connection closed by %s without close_notify %s%s", where,
                          r->state == RQ_HEAD ? "inside the response head" : "before any response",
                          why);
        else
            loom__hc_fail(r, kind, code, "%s", msg ? msg : loom_strerror(code));
        break;
    case LOOM_EV_TCP_TIMEOUT:
        if (!c->connected && msg != NULL && strncmp(msg, "tls ", 4) == 0)
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, "%s", msg); /* handshake */
        else if (!c->connected && r->connect_to == 0)
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "connect to %s timed out (no answer; the system's limit)", where);
        else if (!c->connected)
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "connect timeout after %" PRIu32 " ms connecting to %s", r->connect_to,
                          where);
        else if (r->state == RQ_SENT && loom_socket_queued(s) > 0 &&
                 (r->body_len > 0 || r->on_source))
            /* A body handed over whole (or a source's last piece) is still
             * queued and no response byte came: the same words as the idle
             * timer's for this state (client_req.c), not the kernel-buffer
             * message below, which a loaded machine used to pick when an
             * early answer had not been read yet. */
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "write timeout after %" PRIu32
                          " ms sending the request body to %s (idle timeout; no response yet)",
                          r->idle_to, where);
        else if (r->state <= RQ_SENT && loom_socket_queued(s) > 0)
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "write timeout after %" PRIu32
                          " ms sending the request to %s (idle timeout)",
                          r->idle_to, where);
        else if (r->state >= RQ_HEAD && (!r->upload_done || loom_socket_queued(s) > 0))
            /* An early answer began; the body has not all gone. */
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "write timeout after %" PRIu32
                          " ms sending the request body to %s (idle timeout; the response had "
                          "begun)",
                          r->idle_to, where);
        else /* the write side stalled, with bytes in the kernel's buffer */
            loom__hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                          "write timeout after %" PRIu32
                          " ms on the connection to %s (idle timeout)",
                          r->idle_to, where);
        break;
    case LOOM_EV_TCP_EOF:
        if (r->state == RQ_HEAD)
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF,
                          "connection closed by %s inside the response head", where);
        else
            loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF,
                          "connection closed by %s without a response%s", where, why);
        break;
    case LOOM_EV_TCP_RESET: {
        char named[400];
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, code ? code : LOOM_ECONNRESET,
                      "connection reset by %s %s%s", hc_where_addr(c, named, sizeof named),
                      r->state >= RQ_HEAD ? "while reading the response" : "before any response",
                      why);
        break;
    }
    default:
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, code, "connection to %s failed: %s", where,
                      loom_strerror(code));
        break;
    }
    if (!c->dead)
        loom__hc_conn_close(c, false);
}

/* --- Streamed bodies ---------------------------------------------------------------- */

void loom__hc_on_drain(loom_socket_t *s, void *data)
{
    (void)data;
    hc_conn *c = hc_conn_of(s);
    if (!c->dead && c->ops->drain) {
        c->ops->drain(c);
        return;
    }
    if (c->dead || loom__queue_empty(&c->reqs))
        return;
    hc_req *r = hc_req_of(c->reqs.next);
    if (r->state == RQ_SENDING && r->on_source)
        loom__hc_pump(r);
}

/* A write of the request body was refused by the socket. */
static void hc_body_send_fail(hc_req *r, int rc)
{
    char where[300];
    loom__hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request body to %s: %s",
                  loom__hc_where(r->pool, where, sizeof where), loom_strerror(rc));
}

void loom__hc_pump(hc_req *r)
{
    hc_state *st = r->st;
    hc_conn *c = r->conn;
    if (c && c->ops->pump) {
        c->ops->pump(c, r);
        return;
    }
    if (st->upload == NULL && (st->upload = malloc(HC_UPLOAD_CHUNK)) == NULL) {
        loom__hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the request body");
        return;
    }
    bool chunked = r->body_length < 0;
    for (;;) {
        if (r->state != RQ_SENDING || c->dead || r->conn != c)
            return;
        if (loom_socket_queued(c->s) >= HC_HIGH_WATER)
            return; /* on_drain resumes */
        /* A send failed (a reset): the socket layer dropped the bytes and
         * reports it from the loop. Pulling more from the source meanwhile
         * would drain it for nothing, and spin for ever on an endless one. */
        if (c->s->wq != NULL && c->s->wq->error != 0)
            return;
        size_t n;
        bool eof;
        if (loom__hc_body_read(r, st->upload, HC_UPLOAD_CHUNK, &n, &eof) < 0)
            return; /* nothing now (body_ready resumes), or r ended */
        int rc;
        if (eof) {
            rc = chunked ? loom_socket_write(c->s, "0\r\n\r\n", 5) : 0;
            if (rc < 0) {
                hc_body_send_fail(r, rc);
                return;
            }
            r->upload_done = 1;
            r->state = RQ_SENT;
            hc_h1_await(c);
            return;
        }
        if (chunked) {
            char line[LOOM__HTTP_CHUNK_LINE];
            size_t ll = loom__http_chunk_line(line, (uint64_t)n);
            struct iovec iov[3] = {{line, ll}, {st->upload, n}, {"\r\n", 2}};
            rc = loom_socket_writev(c->s, iov, 3);
        } else {
            rc = loom_socket_write(c->s, st->upload, n);
        }
        if (rc < 0) {
            hc_body_send_fail(r, rc);
            return;
        }
    }
}

/* --- Connection operations ---------------------------------------------------------- */

/* Pipelining: r may follow the requests on busy connection c when the
 * depth allows it and neither r nor any of them is unsafe to send again
 * (a streamed body, a non-idempotent method, a last request). */
static bool hc_h1_can_take(hc_conn *c, hc_req *r)
{
    if (c->dead || c->no_reuse || c->nreqs == 0 || c->nreqs >= c->st->depth)
        return false;
    if (r->on_source || !hc_idempotent(r->method) || r->no_keepalive)
        return false;
    for (loom__queue *q = c->reqs.next; q != &c->reqs; q = q->next) {
        hc_req *o = hc_req_of(q);
        if (o->on_source || !hc_idempotent(o->method) || o->no_keepalive)
            return false;
    }
    return true;
}

/* r is last on c->reqs: its response is the one after those of the
 * requests before it (FIFO). Resets its response state, switches the
 * socket's timeouts to r's and sends it. */
static void hc_h1_submit(hc_conn *c, hc_req *r)
{
    r->scan = 0;
    r->in_rbuf = 0;
    loom__bytes_consume(&r->rbuf, loom__bytes_size(r->rbuf));
    r->received = 0;
    r->interim = 0;
    r->idle_on = 0;
    if (r->first_byte_at)
        (void)loom__hc_req_first_byte_by(r, 0); /* clears: cannot fail */
    /* The socket times only a stall in sending (its group was made at the
     * start); the reading deadlines are r's own. */
    (void)loom__hc_conn_timeouts(c, 0, r->idle_to);
    hc_send(r);
}

/* Mid-message, the connection cannot carry anything else: it is reset.
 * Others on it that saw no byte are requeued (by the close); a partly
 * answered one fails from the loop. */
static void hc_h1_cancel(hc_conn *c, hc_req *r)
{
    (void)r;
    if (!loom__queue_empty(&c->reqs)) {
        hc_req *h = hc_req_of(c->reqs.next);
        if (h->state >= RQ_HEAD) {
            loom__queue_remove(&h->node);
            c->nreqs--;
            h->conn = NULL;
            h->state = RQ_NEW;
            loom__hc_fail_later(h, LOOM_EV_HTTP_ERROR, LOOM_ECANCELED,
                                "connection closed: a pipelined request on it was cancelled");
        }
    }
    loom__hc_conn_close(c, true);
}

static void hc_h1_opened(hc_conn *c)
{
    c->pend.fn = loom__hc_conn_pending;
}

/* Drops the deferred processing and the carry (unless a read is on the
 * stack: loom__hc_process_conn frees it when it unwinds). */
static void hc_h1_closed(hc_conn *c)
{
    if (c->pend_queued)
        loom__pending_cancel(&c->pend);
    c->pend_queued = 0;
    if (!c->in_read)
        loom__bytes_free(&c->carry);
}

const hc_conn_ops loom__hc_h1_ops = {
    .name = "http/1.1",
    .opened = hc_h1_opened,
    .can_take = hc_h1_can_take,
    .submit = hc_h1_submit,
    .cancel = hc_h1_cancel,
    .closed = hc_h1_closed,
};
