/* tests/http/hc_h2_gateway.h - the scripted peer of hc_test.h in the HTTP/2
 * run of a test (http_version.h): the peer's listening socket then speaks
 * h2c (prior knowledge, nghttp2 as a server) and each stream of a
 * connection becomes one HTTP/1.1 exchange with the test's script, which
 * runs unchanged on its own thread with one end of a socketpair as its
 * "connection" (its index counts streams, not TCP connections).
 *
 *  - The request: once the stream's request ends (END_STREAM), the script
 *    reads "METHOD :path HTTP/1.1", Host from :authority, the fields as
 *    received (lower-case names), a Content-Length when there is a body,
 *    and the body; once its answer is complete, the end of its input (its
 *    connection carries one request, so a keep-alive loop in the script
 *    ends).
 *  - The answer: what the script writes is parsed as an HTTP/1.1 response
 *    with loom's parser (1xx as interim HEADERS, then the final head without
 *    its connection-specific fields, then the decoded body in DATA frames as
 *    it arrives); a body delimited by the close ends with the script.
 *  - A script that closes (or resets) before its answer is complete makes
 *    the stream end with RST_STREAM (INTERNAL_ERROR), what HTTP/2 has for a
 *    connection that broke off; a reset from the client (a cancel) closes
 *    the script's socket.
 *
 * So the same script serves the request semantics over HTTP/2: statuses,
 * fields, bodies (buffered or streamed, with their pauses), interim
 * answers, redirects, timeouts by a silent or slow script, and failures as
 * stream errors. Byte-level HTTP/1 matters (chunk framing, pipelining,
 * keep-alive rules, malformed heads) do not carry over. */
#ifndef LOOM_HC_H2_GATEWAY_H
#define LOOM_HC_H2_GATEWAY_H

#include <ctype.h>
#include <fcntl.h>
#include <nghttp2/nghttp2.h>

typedef struct hc_gw_stream {
    int32_t id;
    int fd; /* the gateway's end of the script's socketpair, -1 before/after */
    char *method, *path, *auth;
    char *hd; /* "name: value\r\n" lines */
    size_t hd_len, hd_cap;
    char *body;
    size_t body_len, body_cap;
    int has_len;
    /* The request text still to write to the script. */
    char *req;
    size_t req_len, req_off;
    /* The script's answer. */
    char *in;
    size_t in_len, in_cap;
    int head_done, body_done, rst, closed, deferred, is_head, script_eof, shut;
    int rst_due; /* reset once the body bytes that came are sent */
    loom_http_method_t m;
    loom_http_framing_t fr;
    loom_http_body_t bd;
    char *out; /* decoded body bytes not yet in DATA frames */
    size_t out_len, out_off, out_cap;
    struct hc_gw_stream *next;
} hc_gw_stream;

typedef struct {
    hc_peer *p;
    int fd;
    nghttp2_session *ng;
    hc_gw_stream *streams;
} hc_gw;

static void hc_gw_grow(char **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    *b = realloc(*b, c);
    CHECK(*b != NULL);
    *cap = c;
}

static void hc_gw_append(char **b, size_t *len, size_t *cap, const void *p, size_t n)
{
    hc_gw_grow(b, cap, *len + n + 1);
    memcpy(*b + *len, p, n);
    *len += n;
    (*b)[*len] = '\0';
}

static int hc_gw_on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    hc_gw *g = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    hc_gw_stream *st = calloc(1, sizeof *st);
    CHECK(st != NULL);
    st->id = f->hd.stream_id;
    st->fd = -1;
    st->next = g->streams;
    g->streams = st;
    nghttp2_session_set_stream_user_data(ng, st->id, st);
    return 0;
}

static int hc_gw_on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name,
                           size_t nl, const uint8_t *value, size_t vl, uint8_t flags, void *ud)
{
    (void)flags;
    (void)ud;
    hc_gw_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
    if (st == NULL)
        return 0;
    if (nl == 7 && memcmp(name, ":method", 7) == 0)
        st->method = strndup((const char *)value, vl);
    else if (nl == 5 && memcmp(name, ":path", 5) == 0)
        st->path = strndup((const char *)value, vl);
    else if (nl == 10 && memcmp(name, ":authority", 10) == 0)
        st->auth = strndup((const char *)value, vl);
    else if (name[0] != ':') {
        if (nl == 14 && memcmp(name, "content-length", 14) == 0)
            st->has_len = 1;
        hc_gw_append(&st->hd, &st->hd_len, &st->hd_cap, name, nl);
        hc_gw_append(&st->hd, &st->hd_len, &st->hd_cap, ": ", 2);
        hc_gw_append(&st->hd, &st->hd_len, &st->hd_cap, value, vl);
        hc_gw_append(&st->hd, &st->hd_len, &st->hd_cap, "\r\n", 2);
    }
    return 0;
}

static int hc_gw_on_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    (void)ud;
    hc_gw_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st)
        hc_gw_append(&st->body, &st->body_len, &st->body_cap, data, len);
    return 0;
}

/* The request is complete: hand it to a new run of the script. */
static void hc_gw_start_script(hc_gw *g, hc_gw_stream *st)
{
    hc_peer *p = g->p;
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    size_t cap = 0;
    st->req_len = 0;
    char line[2048];
    int n = snprintf(line, sizeof line, "%s %s HTTP/1.1\r\nHost: %s\r\n",
                     st->method ? st->method : "GET", st->path ? st->path : "/",
                     st->auth ? st->auth : "");
    hc_gw_append(&st->req, &st->req_len, &cap, line, (size_t)n);
    if (st->hd_len)
        hc_gw_append(&st->req, &st->req_len, &cap, st->hd, st->hd_len);
    if (st->body_len && !st->has_len) {
        n = snprintf(line, sizeof line, "Content-Length: %zu\r\n", st->body_len);
        hc_gw_append(&st->req, &st->req_len, &cap, line, (size_t)n);
    }
    hc_gw_append(&st->req, &st->req_len, &cap, "\r\n", 2);
    if (st->body_len)
        hc_gw_append(&st->req, &st->req_len, &cap, st->body, st->body_len);
    st->is_head = st->method && strcmp(st->method, "HEAD") == 0;
    st->m = st->is_head ? LOOM_HTTP_METHOD_HEAD : LOOM_HTTP_METHOD_GET;
    st->fd = sv[0];
    fcntl(st->fd, F_SETFL, O_NONBLOCK);
    pthread_mutex_lock(&p->lock);
    CHECK(p->nconn < HC_PEER_MAX_CONNS);
    hc_peer_job *j = malloc(sizeof *j);
    CHECK(j != NULL);
    j->p = p;
    j->fd = sv[1];
    j->index = p->nscripts++;
    atomic_fetch_add(&p->streams, 1);
    CHECK(pthread_create(&p->conn[p->nconn], NULL, hc_peer_conn_main, j) == 0);
    p->nconn++;
    pthread_mutex_unlock(&p->lock);
}

static int hc_gw_on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
    hc_gw *g = ud;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        hc_gw_stream *st = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
        if (st && st->fd < 0 && !st->closed)
            hc_gw_start_script(g, st);
    }
    return 0;
}

static int hc_gw_on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
    (void)code;
    (void)ud;
    hc_gw_stream *st = nghttp2_session_get_stream_user_data(ng, id);
    if (st == NULL)
        return 0;
    st->closed = 1;
    if (st->fd >= 0) {
        close(st->fd); /* the script sees its client go away */
        st->fd = -1;
    }
    return 0;
}

static ssize_t hc_gw_read_data(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t len,
                               uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    (void)ng;
    (void)id;
    (void)ud;
    hc_gw_stream *st = src->ptr;
    size_t have = st->out_len - st->out_off;
    if (have == 0) {
        if (st->rst_due)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM INTERNAL_ERROR */
        if (st->body_done) {
            *flags |= NGHTTP2_DATA_FLAG_EOF;
            return 0;
        }
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t n = have < len ? have : len;
    memcpy(buf, st->out + st->out_off, n);
    st->out_off += n;
    if (st->out_off == st->out_len)
        st->out_off = st->out_len = 0;
    if (st->out_len == 0 && st->body_done)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static void hc_gw_rst(hc_gw *g, hc_gw_stream *st)
{
    if (st->rst || st->closed)
        return;
    st->rst = 1;
    nghttp2_submit_rst_stream(g->ng, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
}

/* Sends a head the script wrote (1xx or final) as HEADERS. */
static int hc_gw_submit_head(hc_gw *g, hc_gw_stream *st, const loom_http_response_t *res,
                             const loom_http_header_t *h, size_t nh, int final, int data)
{
    nghttp2_nv nv[80];
    char low[80][64];
    char sv[8];
    snprintf(sv, sizeof sv, "%03d", res->status);
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)sv, 7, 3, NGHTTP2_NV_FLAG_NONE};
    static const char *const drop[] = {"connection", "keep-alive",        "proxy-connection",
                                       "upgrade",    "transfer-encoding", NULL};
    for (size_t i = 0; i < nh && k < 80; i++) {
        int skip = 0;
        for (int d = 0; drop[d]; d++)
            if (strlen(drop[d]) == h[i].name_len &&
                strncasecmp(drop[d], h[i].name, h[i].name_len) == 0)
                skip = 1;
        if (skip || h[i].name_len >= sizeof low[0])
            continue;
        for (size_t j = 0; j < h[i].name_len; j++)
            low[k][j] = (char)tolower((unsigned char)h[i].name[j]);
        nv[k] = (nghttp2_nv){(uint8_t *)low[k], (uint8_t *)h[i].value, h[i].name_len,
                             h[i].value_len, NGHTTP2_NV_FLAG_NONE};
        k++;
    }
    if (!final)
        return nghttp2_submit_headers(g->ng, NGHTTP2_FLAG_NONE, st->id, NULL, nv, k, NULL);
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = hc_gw_read_data};
    return nghttp2_submit_response(g->ng, st->id, nv, k, data ? &dp : NULL);
}

/* Works through what the script wrote. */
static void hc_gw_script_input(hc_gw *g, hc_gw_stream *st)
{
    while (!st->rst && !st->closed) {
        if (!st->head_done) {
            loom_http_response_t res;
            loom_http_header_t h[64];
            size_t nh = 64;
            int r = loom_http_parse_response(st->in, st->in_len, 0, &res, h, &nh, NULL);
            if (r == LOOM_HTTP_INCOMPLETE)
                return;
            if (r < 0) {
                hc_gw_rst(g, st);
                return;
            }
            loom_http_response_framing(&res, st->m, &st->fr);
            if (st->fr.informational || res.status == 101) {
                hc_gw_submit_head(g, st, &res, h, nh, 0, 0);
            } else {
                int data = st->fr.kind != LOOM_HTTP_BODY_NONE && !st->is_head;
                loom_http_limits_t lim = {.max_body_size = UINT64_MAX};
                CHECK_OK(loom_http_body_init(&st->bd, &st->fr, &lim));
                st->head_done = 1;
                if (!data)
                    st->body_done = 1;
                if (hc_gw_submit_head(g, st, &res, h, nh, 1, data) != 0)
                    hc_gw_rst(g, st);
            }
            memmove(st->in, st->in + r, st->in_len - (size_t)r);
            st->in_len -= (size_t)r;
            continue;
        }
        if (st->body_done) {
            st->in_len = 0; /* bytes after the answer: nobody reads them */
            return;
        }
        loom_http_body_out_t o = {0};
        int r = loom_http_body_parse(&st->bd, st->in, st->in_len, &o);
        if (r < 0) {
            hc_gw_rst(g, st);
            return;
        }
        if (o.data_len)
            hc_gw_append(&st->out, &st->out_len, &st->out_cap, o.data, o.data_len);
        memmove(st->in, st->in + r, st->in_len - (size_t)r);
        st->in_len -= (size_t)r;
        if (o.done)
            st->body_done = 1;
        if ((o.data_len || o.done) && st->deferred) {
            st->deferred = 0;
            nghttp2_session_resume_data(g->ng, st->id);
        }
        if (!o.done && r == 0 && o.data_len == 0)
            return;
    }
}

static void hc_gw_script_eof(hc_gw *g, hc_gw_stream *st)
{
    st->script_eof = 1;
    if (st->head_done && !st->body_done && loom_http_body_finish(&st->bd) == 0) {
        st->body_done = 1; /* delimited by the close */
        if (st->deferred) {
            st->deferred = 0;
            nghttp2_session_resume_data(g->ng, st->id);
        }
    }
    if (!st->head_done) {
        hc_gw_rst(g, st);
    } else if (!st->body_done) {
        st->rst_due = 1; /* after the bytes that came */
        if (st->deferred) {
            st->deferred = 0;
            nghttp2_session_resume_data(g->ng, st->id);
        }
    }
    close(st->fd);
    st->fd = -1;
}

static int hc_gw_flush(hc_gw *g)
{
    for (;;) {
        const uint8_t *d;
        ssize_t n = nghttp2_session_mem_send(g->ng, &d);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (hc_write(g->fd, d, (size_t)n) < 0)
            return -1;
    }
}

/* One h2c connection of the peer: runs until the client closes it (or the
 * peer stops). */
static void hc_gw_main(hc_peer *p, int fd)
{
    hc_gw g = {.p = p, .fd = fd};
    nghttp2_session_callbacks *cb;
    CHECK(nghttp2_session_callbacks_new(&cb) == 0);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cb, hc_gw_on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cb, hc_gw_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, hc_gw_on_data);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, hc_gw_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, hc_gw_on_stream_close);
    CHECK(nghttp2_session_server_new(&g.ng, cb, &g) == 0);
    nghttp2_session_callbacks_del(cb);
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, p->h2_max_streams ? p->h2_max_streams : 100}};
    nghttp2_submit_settings(g.ng, NGHTTP2_FLAG_NONE, iv, 1);
    int alive = hc_gw_flush(&g) == 0;
    char buf[65536];
    while (alive && !atomic_load(&p->stop)) {
        struct pollfd pf[HC_PEER_MAX_CONNS + 1];
        hc_gw_stream *sp[HC_PEER_MAX_CONNS + 1];
        int n = 0;
        pf[n] = (struct pollfd){.fd = fd, .events = POLLIN};
        sp[n++] = NULL;
        for (hc_gw_stream *st = g.streams; st && n <= HC_PEER_MAX_CONNS; st = st->next) {
            if (st->fd < 0)
                continue;
            /* HTTP/2 flow control reaches the script: what the client does
             * not take stays in the script's socket. */
            short ev = st->out_len - st->out_off < 65536 && st->in_len < 65536 ? POLLIN : 0;
            if (st->req_off < st->req_len)
                ev |= POLLOUT;
            pf[n] = (struct pollfd){.fd = st->fd, .events = ev};
            sp[n++] = st;
        }
        if (poll(pf, (nfds_t)n, 20) < 0)
            continue;
        if (pf[0].revents) {
            ssize_t r = recv(fd, buf, sizeof buf, 0);
            if (r <= 0 || nghttp2_session_mem_recv(g.ng, (const uint8_t *)buf, (size_t)r) < 0)
                alive = 0;
        }
        for (int i = 1; i < n && alive; i++) {
            hc_gw_stream *st = sp[i];
            if (st->fd < 0 || !pf[i].revents)
                continue;
            if ((pf[i].revents & POLLOUT) && st->req_off < st->req_len) {
                ssize_t w =
                    send(st->fd, st->req + st->req_off, st->req_len - st->req_off, MSG_NOSIGNAL);
                if (w > 0)
                    st->req_off += (size_t)w;
            }
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                hc_gw_grow(&st->in, &st->in_cap, st->in_len + 16384);
                ssize_t r = recv(st->fd, st->in + st->in_len, 16384, 0);
                if (r > 0) {
                    st->in_len += (size_t)r;
                    hc_gw_script_input(&g, st);
                } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    hc_gw_script_input(&g, st);
                    hc_gw_script_eof(&g, st);
                }
            }
        }
        /* One request per script run: once its answer is complete, the
         * script's next read sees the end (a keep-alive loop ends). */
        for (hc_gw_stream *st = g.streams; st; st = st->next)
            if (st->fd >= 0 && !st->shut && st->body_done && st->req_off == st->req_len) {
                shutdown(st->fd, SHUT_WR);
                st->shut = 1;
            }
        if (alive && hc_gw_flush(&g) < 0)
            alive = 0;
    }
    nghttp2_session_del(g.ng);
    while (g.streams) {
        hc_gw_stream *st = g.streams;
        g.streams = st->next;
        if (st->fd >= 0)
            close(st->fd);
        free(st->method);
        free(st->path);
        free(st->auth);
        free(st->hd);
        free(st->body);
        free(st->req);
        free(st->in);
        free(st->out);
        free(st);
    }
}

#endif
