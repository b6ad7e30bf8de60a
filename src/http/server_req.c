/* http/server_req.c - the request accessors (cl-async's http-request
 * readers), percent-decoding and query parameters (through loom/url.h),
 * the request printer, pausing, resuming and releasing.
 *
 * Every accessor reads the request's own fields: slices of the scratch
 * buffer while on_request runs synchronously, of the request's private
 * copy once it outlives the read (see loom__hreq_persist in server.c).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/server_internal.h"
#include "loom/url.h"

loom_http_method_t loom_http_req_method(const loom_http_req_t *req)
{
    return req->rq.method;
}

const char *loom_http_req_method_str(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->rq.method_len;
    return req->rq.method_str;
}

const char *loom_http_req_target(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->rq.target_len;
    return req->rq.target;
}

const char *loom_http_req_host(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->rq.host_len;
    return (req->rq.flags & LOOM_HTTP_F_HOST) ? req->rq.host : NULL;
}

const char *loom_http_req_path(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->path_len;
    return req->path;
}

const char *loom_http_req_query(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->query_len;
    return req->query;
}

int loom_http_req_version(const loom_http_req_t *req)
{
    if (req->proto == &loom__h2_proto)
        return 20;
    /* HTTP/1.2 and above are served as 1.1 (RFC 9112 section 2.3). */
    return req->rq.minor_version >= 1 ? 11 : 10;
}

uint32_t loom_http_req_stream_id(const loom_http_req_t *req)
{
    return req->proto == &loom__h2_proto ? loom__h2_stream_id(req) : 0;
}

int loom_http_req_path_decoded(const loom_http_req_t *req, char *buf, size_t size)
{
    int r = loom_url_decode(buf, size, req->path, req->path_len, 0);
    if (r >= 0 && (size_t)r >= size)
        return LOOM_ENOSPC;
    return r;
}

int loom_http_req_query_param(const loom_http_req_t *req, const char *name, char *buf, size_t size)
{
    return loom_url_query_get(req->query, req->query_len, name, buf, size);
}

const loom_http_header_t *loom_http_req_headers(const loom_http_req_t *req, size_t *n)
{
    if (n)
        *n = req->nhdrs;
    return req->hdrs;
}

const char *loom_http_req_header(const loom_http_req_t *req, const char *name, size_t *len)
{
    const loom_http_header_t *h = loom_http_header_find(req->hdrs, req->nhdrs, name, NULL);
    if (h == NULL) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = h->value_len;
    return h->value;
}

const char *loom_http_req_body(const loom_http_req_t *req, size_t *len)
{
    if (len)
        *len = req->body ? req->body_len : 0;
    return req->body;
}

int loom_http_req_peer(const loom_http_req_t *req, char *buf, size_t size, int *port)
{
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    int r = loom_socket_peer_name(req->sock, buf, size, port);
    /* A TCP client's address is kept from accept, so it is named even
     * after a reset; a Unix client that reset before loom saw it has no
     * name left: gone too. */
    return r == LOOM_ENOTCONN ? LOOM_ECLOSED : r;
}

bool loom_http_req_is_tls(const loom_http_req_t *req)
{
    return req->srv != NULL && req->srv->o.tls != NULL; /* the pointer only: a flag */
}

int loom_http_req_tls_info(const loom_http_req_t *req, loom_tls_info *info)
{
    if (info == NULL)
        return LOOM_EINVAL;
    if (!loom_http_req_is_tls(req))
        return LOOM_EPROTOCOL;
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    return loom_socket_tls_info(req->sock, info);
}

void *loom_http_req_data(const loom_http_req_t *req)
{
    return req->h.data;
}

void loom_http_req_set_data(loom_http_req_t *req, void *data)
{
    req->h.data = data;
}

loom_http_server_t *loom_http_req_server(const loom_http_req_t *req)
{
    return req->srv;
}

loom_loop_t *loom_http_req_loop(const loom_http_req_t *req)
{
    return req->h.loop;
}

int loom_http_req_closed(const loom_http_req_t *req)
{
    return req->sock == NULL || (req->flags & LOOM__HR_GONE) ? 1 : 0;
}

int loom_http_req_pause(loom_http_req_t *req)
{
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    if (req->bstate != LOOM__HB_READ)
        return LOOM_ESTATE;
    req->proto->pause(req);
    return 0;
}

int loom_http_req_resume(loom_http_req_t *req)
{
    if (req->sock == NULL || (req->flags & LOOM__HR_GONE))
        return LOOM_ECLOSED;
    if (req->bstate != LOOM__HB_READ)
        return LOOM_ESTATE;
    if (req->flags & LOOM__HR_PAUSED)
        req->proto->resume(req);
    return 0;
}

int loom_http_req_release(loom_http_req_t *req)
{
    /* An answer without a body is whole once its head is out: releasing it
     * (after a write said LOOM_ENOBODY) ends it, and the connection goes on. */
    if (req->astate == LOOM__HA_STREAM && (req->flags & LOOM__HR_NOBODY) && req->sock != NULL &&
        !(req->flags & LOOM__HR_GONE)) {
        (void)loom_http_response_end(req);
        return 0;
    }
    /* A streamed answer in progress is ended, not dropped - unless its
     * client is gone: a write that returned LOOM_ECLOSED because a send had
     * failed (before the loop reports it and on_close runs) leaves the
     * request to be ended or released, like every LOOM_ECLOSED. */
    if (req->astate == LOOM__HA_STREAM && req->sock != NULL && !(req->flags & LOOM__HR_GONE) &&
        !loom__hsock_broken(req->sock))
        return LOOM_ESTATE;
    if (req->astate == LOOM__HA_DONE)
        return LOOM_ESTATE;
    /* Nothing was (or can be) answered: the connection cannot carry on. */
    req->flags |= LOOM__HR_CLOSE;
    req->proto->finished(req);
    return 0;
}

/* --- The printer ----------------------------------------------------------------- */

/* snprintf into a buffer that may run out: keeps counting. */
typedef struct {
    char *buf;
    size_t size, len;
} loom__fmt;

__attribute__((format(printf, 2, 3))) static void loom__fmt_add(loom__fmt *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = f->len < f->size ? f->size - f->len : 0;
    int n = vsnprintf(room ? f->buf + f->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        f->len += (size_t)n;
}

/* Appends s[0..n) with non-printable bytes escaped. */
static void loom__fmt_escaped(loom__fmt *f, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\\')
            loom__fmt_add(f, "\\\\");
        else if (ch == '\n')
            loom__fmt_add(f, "\\n");
        else if (ch == '\r')
            loom__fmt_add(f, "\\r");
        else if (ch == '\t')
            loom__fmt_add(f, "\\t");
        else if (ch < 0x20 || ch >= 0x7f)
            loom__fmt_add(f, "\\x%02x", ch);
        else
            loom__fmt_add(f, "%c", ch);
    }
}

#define LOOM__PRINT_BODY_MAX 256

int loom_http_req_format(const loom_http_req_t *req, char *buf, size_t size)
{
    loom__fmt f = {.buf = buf, .size = size, .len = 0};
    if (size)
        buf[0] = '\0';
    int v = loom_http_req_version(req);
    loom__fmt_add(&f, "#<http-request %s %s HTTP/%d.%d>\n", req->rq.method_str, req->rq.target,
                  v / 10, v % 10);
    loom__fmt_add(&f, "  method: %s\n", req->rq.method_str);
    loom__fmt_add(&f, "  uri: %s\n", req->rq.target);
    loom__fmt_add(&f, "  resource: %.*s\n", (int)req->path_len, req->path);
    loom__fmt_add(&f, "  querystring: %s\n", req->query);
    if (req->query_len) {
        size_t pos = 0;
        loom_url_param_t p;
        while (loom_url_query_next(req->query, req->query_len, &pos, &p)) {
            loom__fmt_add(&f, "    %.*s = %.*s\n", (int)p.name_len, p.name, (int)p.value_len,
                          p.value);
        }
    }
    loom__fmt_add(&f, "  headers: %zu\n", req->nhdrs);
    for (size_t i = 0; i < req->nhdrs; i++) {
        loom__fmt_add(&f, "    %s: ", req->hdrs[i].name);
        loom__fmt_escaped(&f, req->hdrs[i].value, req->hdrs[i].value_len);
        loom__fmt_add(&f, "\n");
    }
    size_t bl = req->body ? req->body_len : 0;
    loom__fmt_add(&f, "  body: %zu bytes", bl);
    if (bl) {
        loom__fmt_add(&f, " \"");
        loom__fmt_escaped(&f, req->body, bl < LOOM__PRINT_BODY_MAX ? bl : LOOM__PRINT_BODY_MAX);
        loom__fmt_add(&f, bl > LOOM__PRINT_BODY_MAX ? "\"...\n" : "\"\n");
    } else {
        loom__fmt_add(&f, "\n");
    }
    if (size && f.len >= size)
        buf[size - 1] = '\0';
    return f.len > (size_t)INT32_MAX ? INT32_MAX : (int)f.len;
}

int loom_http_req_print(const loom_http_req_t *req, FILE *fp)
{
    char stackbuf[2048];
    int n = loom_http_req_format(req, stackbuf, sizeof stackbuf);
    char *buf = stackbuf;
    if ((size_t)n >= sizeof stackbuf) {
        buf = malloc((size_t)n + 1);
        if (buf == NULL)
            return LOOM_ENOMEM;
        loom_http_req_format(req, buf, (size_t)n + 1);
    }
    size_t w = fwrite(buf, 1, (size_t)n, fp);
    if (buf != stackbuf)
        free(buf);
    return w == (size_t)n ? n : LOOM_EIO;
}
