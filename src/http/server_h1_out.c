/* http/server_h1_out.c - what HTTP/1 writes on the server: the output
 * buffer (the loop's obuf, where the answers of the connection being
 * processed gather and leave in one write), answer heads (status line,
 * Date, Server, the application's fields, Content-Length or chunked,
 * Connection), whole bodies (copied behind a small head, or one writev),
 * chunk framing of streamed bodies, interim (1xx) answers, 100 Continue and
 * the canned error answers. These are the write half of loom__h1_proto;
 * the connection machine is server_h1.c.
 */
#include <stdlib.h>
#include <string.h>

#include "http/server_internal.h"

#define LOOM__HINLINE_MAX (16 * 1024) /* a whole answer's body copied behind its head */

/* --- The output buffer ------------------------------------------------------------- */

static int loom__hout_reserve(loom__hsrv_loop *sl, size_t n)
{
    if (LOOM__LIKELY(sl->ocap - sl->olen >= n))
        return 0;
    size_t cap = sl->ocap ? sl->ocap : 16 * 1024;
    while (cap - sl->olen < n)
        cap *= 2;
    char *b = realloc(sl->obuf, cap);
    if (b == NULL)
        return LOOM_ENOMEM;
    sl->obuf = b;
    sl->ocap = cap;
    return 0;
}

/* Sends obuf[from..olen) followed by `iov`: from 0 when `s` is the batch's
 * connection (its earlier answers go first), else from `start`. */
static int loom__hout_send(loom__hsrv_loop *sl, loom_socket_t *s, size_t start,
                           const struct iovec *iov, int n)
{
    size_t from = sl->batch == s ? 0 : start;
    struct iovec v[8];
    int k = 0;
    if (sl->olen > from) {
        v[k].iov_base = sl->obuf + from;
        v[k].iov_len = sl->olen - from;
        k++;
    }
    for (int i = 0; i < n && k < 8; i++)
        v[k++] = iov[i];
    int r = 0;
    if (k)
        r = loom_socket_writev(s, v, k);
    sl->olen = from;
    if (r < 0 && loom_socket_closed(s))
        loom__h1_close(s, false);
    return r;
}

static int loom__hout_commit(loom__hsrv_loop *sl, loom_socket_t *s, size_t start)
{
    if (sl->batch == s)
        return 0; /* leaves with the batch */
    return loom__hout_send(sl, s, start, NULL, 0);
}

static int loom__hout_writev(loom__hsrv_loop *sl, loom_socket_t *s, const struct iovec *iov, int n)
{
    return loom__hout_send(sl, s, sl->olen, iov, n);
}

int loom__h1_error(loom__hsrv_loop *sl, loom_socket_t *s, int status)
{
    if (loom_socket_closed(s))
        return LOOM_ECLOSED;
    const char *reason = loom_http_status_reason(status);
    size_t rl = strlen(reason);
    if (loom__hout_reserve(sl, 256 + 2 * rl) < 0)
        return LOOM_ENOMEM;
    size_t start = sl->olen;
    char *o = sl->obuf + start;
    o += loom__http_status_line(status, o);
    o = loom__put(o, loom__hsrv_date(sl), 37);
    o = loom__put(o, "Content-Type: text/plain\r\nContent-Length: ", 42);
    o = loom__put_u64(o, 4 + rl + 1);
    o = loom__put(o, "\r\nConnection: close\r\n\r\n", 23);
    /* The body: "413 Content Too Large\n". */
    o[0] = (char)('0' + status / 100 % 10);
    o[1] = (char)('0' + status / 10 % 10);
    o[2] = (char)('0' + status % 10);
    o[3] = ' ';
    o = loom__put(o + 4, reason, rl);
    *o++ = '\n';
    sl->olen = (size_t)(o - sl->obuf);
    return loom__hout_commit(sl, s, start);
}

int loom__h1_continue(loom__hsrv_loop *sl, loom_socket_t *s)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (loom__hout_reserve(sl, sizeof msg) < 0)
        return LOOM_ENOMEM;
    size_t start = sl->olen;
    memcpy(sl->obuf + start, msg, sizeof msg - 1);
    sl->olen += sizeof msg - 1;
    return loom__hout_commit(sl, s, start);
}

int loom__h1_switch_h2c(loom__hsrv_loop *sl, loom_socket_t *s)
{
    static const char msg[] =
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    if (loom_socket_closed(s))
        return LOOM_ECLOSED;
    if (loom__hout_reserve(sl, sizeof msg) < 0)
        return LOOM_ENOMEM;
    size_t start = sl->olen;
    memcpy(sl->obuf + start, msg, sizeof msg - 1);
    sl->olen += sizeof msg - 1;
    int r = loom__hout_send(sl, s, start, NULL, 0);
    return r < 0 ? r : 0;
}

/* The second pass: writes the fields loom passes through. `*idx` counts
 * fields across both lists, to find the lengths the scan kept. */
static char *loom__hdr_write(char *o, const char *const *h, const loom__hscan *sc, unsigned *idx)
{
    for (size_t i = 0; h && h[i]; i += 2, (*idx)++) {
        size_t nl, vl;
        int kind;
        if (*idx < LOOM__HSCAN_MAX) {
            nl = sc->f[*idx].nl;
            vl = sc->f[*idx].vl;
            kind = sc->f[*idx].kind;
        } else {
            nl = strlen(h[i]);
            vl = strlen(h[i + 1]);
            kind = loom__hdr_kind(h[i], nl);
        }
        if (kind != LOOM__HK_OTHER && kind != LOOM__HK_DATE)
            continue;
        o = loom__put(o, h[i], nl);
        *o++ = ':';
        *o++ = ' ';
        o = loom__put(o, h[i + 1], vl);
        *o++ = '\r';
        *o++ = '\n';
    }
    return o;
}

/* Writes an answer head into the output buffer (reserving `extra` more
 * bytes behind it). Returns the offset where it starts, or LOOM_ENOMEM. */
static long loom__hresp_head(loom_http_req_t *req, const loom__hhead *hd, size_t extra)
{
    const loom__hscan *sc = hd->sc;
    loom_http_server_t *srv = req->srv;
    loom__hsrv_loop *sl = srv->sl;
    size_t sn = srv->server_name_len;
    size_t need = 64 + 40 + (sn ? sn + 10 : 0) + sc->len + 48 + 32 + extra;
    if (loom__hout_reserve(sl, need) < 0)
        return LOOM_ENOMEM;
    size_t start = sl->olen;
    char *o = sl->obuf + start;
    o += loom__http_status_line(hd->status, o);
    if (!sc->has_date)
        o = loom__put(o, loom__hsrv_date(sl), 37);
    if (sn) {
        o = loom__put(o, "Server: ", 8);
        o = loom__put(o, srv->o.server_name, sn);
        o = loom__put(o, "\r\n", 2);
    }
    unsigned idx = 0;
    o = loom__hdr_write(o, hd->pre, sc, &idx);
    o = loom__hdr_write(o, hd->hdrs, sc, &idx);
    if (hd->framing == LOOM__HF_LENGTH) {
        o = loom__put(o, "Content-Length: ", 16);
        o = loom__put_u64(o, hd->length);
        o = loom__put(o, "\r\n", 2);
    } else if (req->flags & LOOM__H1R_CHUNKED) {
        o = loom__put(o, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (LOOM__UNLIKELY(hd->status == 101)) {
        o = loom__put(o, "Connection: upgrade\r\n\r\n", 23);
    } else if (LOOM__UNLIKELY(sc->upgrade)) {
        /* An Upgrade field (a 426) goes with the upgrade option (RFC 9110
         * section 7.8), so that intermediaries do not forward it. */
        o = loom__put(o, "Connection: upgrade", 19);
        if (req->flags & LOOM__HR_CLOSE)
            o = loom__put(o, ", close", 7);
        else if (req->rq.minor_version == 0)
            o = loom__put(o, ", keep-alive", 12);
        o = loom__put(o, "\r\n\r\n", 4);
    } else if (req->flags & LOOM__HR_CLOSE) {
        o = loom__put(o, "Connection: close\r\n\r\n", 21);
    } else if (req->rq.minor_version == 0) {
        o = loom__put(o, "Connection: keep-alive\r\n\r\n", 26);
    } else {
        o = loom__put(o, "\r\n", 2);
    }
    sl->olen = (size_t)(o - sl->obuf);
    return (long)start;
}

/* Decides whether the connection ends with this answer. */
static void loom__hresp_close(loom_http_req_t *req, const loom__hscan *sc)
{
    /* A body still arriving does not decide it: once the answer is complete
     * the rest is read and dropped (loom__hreq_discard), within a bound. A
     * client waiting for 100 Continue may never send it, though. */
    if (!req->p.h1.fr.keep_alive || req->srv->closing || sc->conn_close ||
        (req->bstate == LOOM__HB_READ && (req->flags & LOOM__H1R_NOCONT)))
        req->flags |= LOOM__HR_CLOSE;
}

/* --- The protocol operations ------------------------------------------------------------ */

/* start: the head of the final answer, and a whole answer's body. */
int loom__h1_start(loom_http_req_t *req, const loom__hhead *hd)
{
    loom__hsrv_loop *sl = req->srv->sl;
    loom_socket_t *s = req->sock;
    if (hd->framing == LOOM__HF_STREAM) {
        if (req->rq.minor_version >= 1)
            req->flags |= LOOM__H1R_CHUNKED;
        else
            req->flags |= LOOM__H1R_UNTIL_CLOSE | LOOM__HR_CLOSE;
    }
    loom__hresp_close(req, hd->sc);
    bool inl = hd->len <= LOOM__HINLINE_MAX;
    long start = loom__hresp_head(req, hd, inl ? hd->len : 0);
    if (start < 0)
        return LOOM_ENOMEM;
    if (hd->len == 0)
        return loom__hout_commit(sl, s, (size_t)start);
    if (inl) {
        memcpy(sl->obuf + sl->olen, hd->body, hd->len);
        sl->olen += hd->len;
        return loom__hout_commit(sl, s, (size_t)start);
    }
    struct iovec iov = {.iov_base = (void *)hd->body, .iov_len = hd->len};
    return loom__hout_send(sl, s, (size_t)start, &iov, 1);
}

int loom__h1_upgrade_head(loom_http_req_t *req, const loom__hhead *hd)
{
    loom__hsrv_loop *sl = req->srv->sl;
    long start = loom__hresp_head(req, hd, 0);
    if (start < 0)
        return LOOM_ENOMEM;
    int r = loom__hout_send(sl, req->sock, (size_t)start, NULL, 0);
    return r < 0 ? r : 0;
}

/* interim: "HTTP/1.1 1xx Reason", the application's fields, no Date. An
 * HTTP/1.0 client gets none (RFC 9110 section 15.2). A second 100 for the
 * same request is not sent. */
int loom__h1_interim(loom_http_req_t *req, int status, const char *const *hdrs,
                     const loom__hscan *sc)
{
    if (req->rq.minor_version == 0)
        return LOOM_ENOTSUP;
    if (status == 100) {
        if (req->flags & LOOM__HR_CONT_SENT)
            return 0;
        /* The client may send the body now: an answer before it no
         * longer has to close the connection. */
        req->flags |= LOOM__HR_CONT_SENT;
        req->flags &= ~LOOM__H1R_NOCONT;
    }
    loom__hsrv_loop *sl = req->srv->sl;
    if (loom__hout_reserve(sl, 64 + sc->len + 2) < 0)
        return LOOM_ENOMEM;
    size_t start = sl->olen;
    char *o = sl->obuf + start;
    o += loom__http_status_line(status, o);
    unsigned idx = 0;
    o = loom__hdr_write(o, hdrs, sc, &idx);
    o = loom__put(o, "\r\n", 2);
    sl->olen = (size_t)(o - sl->obuf);
    int r = loom__hout_commit(sl, req->sock, start);
    return r < 0 ? r : 0;
}

static int loom__h1_body_send(loom_http_req_t *req, const struct iovec *iov, int n);

/* body: the pieces as one chunk (chunked), or raw; one writev behind any
 * batched bytes of the connection. A write that failed, or follows one that
 * failed, returns LOOM_ECLOSED at once: a producer that writes until
 * loom_http_response_write() returns non-zero must not spin inside its
 * callback on a connection the client has reset. */
int loom__h1_body(loom_http_req_t *req, const struct iovec *iov, int n)
{
    if (LOOM__UNLIKELY(loom__hsock_broken(req->sock)))
        return LOOM_ECLOSED;
    int r = loom__h1_body_send(req, iov, n);
    if (LOOM__UNLIKELY(r >= 0 && loom__hsock_broken(req->sock)))
        return LOOM_ECLOSED;
    return r;
}

static int loom__h1_body_send(loom_http_req_t *req, const struct iovec *iov, int n)
{
    loom__hsrv_loop *sl = req->srv->sl;
    if (!(req->flags & LOOM__H1R_CHUNKED))
        return loom__hout_writev(sl, req->sock, iov, n);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    char hex[LOOM__HTTP_CHUNK_LINE];
    struct iovec v[6];
    int k = 0;
    v[k++] = (struct iovec){.iov_base = hex, .iov_len = loom__http_chunk_line(hex, total)};
    for (int i = 0; i < n && k < 5; i++)
        v[k++] = iov[i];
    v[k++] = (struct iovec){.iov_base = (void *)"\r\n", .iov_len = 2};
    return loom__hout_writev(sl, req->sock, v, k);
}

/* end: the last chunk of a chunked body. */
int loom__h1_end(loom_http_req_t *req)
{
    if ((req->flags & (LOOM__H1R_CHUNKED | LOOM__HR_NOBODY)) != LOOM__H1R_CHUNKED)
        return 0;
    loom__hsrv_loop *sl = req->srv->sl;
    if (loom__hout_reserve(sl, 5) < 0) {
        req->flags |= LOOM__HR_CLOSE;
        return LOOM_ENOMEM;
    }
    size_t start = sl->olen;
    memcpy(sl->obuf + start, "0\r\n\r\n", 5);
    sl->olen += 5;
    return loom__hout_commit(sl, req->sock, start);
}

size_t loom__h1_queued(const loom_http_req_t *req)
{
    loom_socket_t *s = req->sock;
    return s != NULL && s->wq != NULL ? loom_socket_queued(s) : 0;
}
