/* http/client.c - the HTTP/1.1 client: requests, the keep-alive pool,
 * response parsing, timeouts, retries and redirects.
 *
 * Objects:
 *  - the per-loop state (hc_state), reached through loom__http_get(): the
 *    request slab, the socket class every client connection uses, the pool
 *    hash table, the idle LRU list and the counters;
 *  - a pool (hc_pool) per (host, port): its idle connections (most recently
 *    used first), its busy ones and the requests waiting for a connection;
 *  - a connection (hc_conn) lives in the extension bytes of its socket (one
 *    slab object, no allocation of its own) and holds the requests in flight
 *    on it in order (one, unless pipelining is on) and the bytes of an
 *    unfinished message head or chunk line (`carry`);
 *  - a request (loom_http_client_req) comes from the slab. Its URL and
 *    request head are rendered once into one buffer (inline for the usual
 *    sizes), so a keep-alive request in the steady state costs no malloc.
 *
 * Reading: the socket layer hands us the loop's scratch buffer. Responses are
 * parsed in place. A buffered response that is complete within one read is
 * delivered straight from that buffer (a chunked body is compacted in place);
 * only a response that spans reads is copied, head and body so far, into a
 * buffer of the request's own (`rbuf`), and its head is parsed again from
 * there when it completes. Streamed bodies are never copied.
 *
 * Connections are internal sockets: they are not counted as live objects
 * and do not keep the loop alive. The request does both.
 *
 * Timeouts: connect is the TCP layer's connect timeout; first byte and idle
 * are the socket's read and write inactivity timeouts, switched as the
 * request advances (no timer per request); total is a timer per request,
 * created only when asked for. The pool's idle timeout is the read timeout of
 * a parked connection.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http/http_internal.h"
#include "loom/http_client.h"
#include "loom/url.h"
#include "net/net_internal.h"

#define HC_INLINE          512 /* inline bytes for URL + header lines + head */
#define HC_MAX_HEADERS     128
#define HC_BUCKETS         64
#define HC_UPLOAD_CHUNK    (64 * 1024)
#define HC_SMALL_BODY      (16 * 1024) /* buffer bodies up to this go out with the head */
#define HC_HIGH_WATER      (256 * 1024)
#define HC_DEFAULT_PERHOST 8
#define HC_DEFAULT_IDLE    64
#define HC_DEFAULT_IDLE_MS 30000
#define HC_DEFAULT_BUF_MAX (64ull << 20)
#define HC_DEFAULT_UA      "loom/0.1"
#define HC_MAX_INTERIM     16 /* 1xx answers accepted before one final response */

typedef struct hc_state hc_state;
typedef struct hc_pool hc_pool;
typedef struct hc_conn hc_conn;
typedef loom_http_client_req_t hc_req;

enum {
    RQ_NEW = 0,
    RQ_QUEUED,  /* waiting for a connection */
    RQ_SENDING, /* on a connection, the body still being sent */
    RQ_SENT,    /* sent (or being flushed); no response byte yet */
    RQ_HEAD,    /* response bytes seen, head incomplete */
    RQ_BODY,    /* head parsed, body in progress */
    RQ_DONE     /* ended: the handle is closing */
};

/* Deferred work of a request (its pending node). */
enum { PD_FAIL = 1, PD_UPLOAD = 2 };

struct hc_pool {
    hc_pool *next;       /* hash chain */
    loom__queue idle;    /* idle connections, most recently used first */
    loom__queue busy;    /* connecting or in use */
    loom__queue waiters; /* requests waiting for a connection */
    uint32_t nconns;     /* idle + busy */
    int port;
    int family;
    char host[]; /* lower case, NUL-terminated */
};

struct hc_conn {
    loom_socket_t *s;
    hc_pool *pool;
    hc_state *st;
    loom__queue node;   /* pool->idle or pool->busy */
    loom__queue lru;    /* st->idle_lru while idle */
    loom__queue reqs;   /* in flight, in order */
    loom__pending pend; /* process `carry` after a resume */
    char *carry;
    size_t carry_len, carry_cap;
    uint32_t nreqs;
    uint32_t uses;   /* requests assigned so far */
    uint32_t rt, wt; /* the socket's current read and write timeouts */
    uint8_t idle, dead, in_read, connected, no_reuse, pend_queued;
};

struct loom_http_client_req {
    loom__handle h; /* h.data: the user's data slot */
    hc_state *st;
    loom__queue node;  /* pool->waiters or conn->reqs */
    loom__queue anode; /* st->reqs: every request not yet freed */
    hc_pool *pool;
    hc_conn *conn;
    loom__pending pend;
    loom_timer_t *timer;    /* total timeout */
    loom_timer_t *fb_timer; /* first byte deadline, made only once a 1xx arrives */

    loom_http_client_response_cb on_response, on_headers;
    loom_http_client_body_cb on_body;
    loom_http_client_source_cb on_source;
    loom_http_client_rewind_cb on_rewind;
    loom_event_cb on_event;

    const char *body;
    size_t body_len;
    int64_t body_length; /* streamed: -1 chunked */
    uint64_t uploaded;
    uint64_t received; /* body bytes that arrived in this response (decoded) */
    uint64_t sent_at;  /* loop time the request went on its connection */
    uint32_t connect_to, first_to, idle_to, total_to;
    loom_http_limits_t limits;
    loom_http_method_t method;

    /* buf: [method][header lines][url NUL][head]; inline unless large. */
    char *buf;
    size_t buf_cap;
    size_t method_len, hdr_len, url_len, head_len;
    const char *url; /* in buf */
    const char *head;
    loom_url_t u; /* slices of url */

    /* Response state. */
    loom_http_response_t res;
    loom_http_framing_t fr;
    loom_http_body_t bd;
    size_t scan;     /* head bytes already scanned (the parser's last_len) */
    size_t nhdrs;    /* header count of an in-place head */
    char *msg;       /* this buffer's message start (head) while parsing in place */
    size_t msg_head; /* head length */
    size_t msg_body; /* body bytes compacted after the head */
    char *rbuf;      /* the message once it spans reads: [head][body] */
    size_t rlen, rcap;
    char *location; /* a redirect's target, copied */

    int pd_kind, pd_code; /* deferred failure */
    char pd_msg[160];
    unsigned pd_what;

    uint8_t state, paused, retried, redirects, max_redirects, follow, no_keepalive;
    uint8_t reused, upload_done, user_host, user_ua, user_cl, user_te, user_conn, user_auth;
    uint8_t redirecting, in_rbuf, strip_body_headers, pd_queued, in_cb;
    uint8_t keep_creds, retry_unsafe, interim;
    char inl[HC_INLINE];
};

struct hc_state {
    loom_loop_t *loop;
    loom__slab req_slab;
    loom__sock_class cls;
    hc_pool *buckets[HC_BUCKETS];
    loom__queue idle_lru; /* idle connections, oldest first */
    loom__queue reqs;     /* every request not yet freed (for loop free) */
    uint32_t max_per_host, max_idle, idle_ms, depth;
    char *ua;
    size_t ua_len;
    char *upload; /* HC_UPLOAD_CHUNK bytes for streamed bodies, on first use */
    loom_http_client_stats_t stats;
    loom_http_header_t hdrs[HC_MAX_HEADERS];
    char saved[HC_MAX_HEADERS]; /* bytes under the terminators (hc_terminate) */
    char saved_reason;
    loom__handle *sentinel; /* frees the state after the sockets at loop free */
};

static void hc_process_conn(hc_conn *c, char *buf, size_t len, bool from_carry);
static void hc_dispatch(hc_req *r);
static void hc_conn_close(hc_conn *c, bool reset);
static void hc_conn_release(hc_conn *c);
static void hc_pump(hc_req *r);
static void hc_proto_read(loom_socket_t *s, char *buf, size_t len);
static void hc_proto_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);
static void hc_on_connect(loom_socket_t *s, void *data);
static void hc_on_drain(loom_socket_t *s, void *data);
static void hc_fail(hc_req *r, loom_event_kind_t kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- Small helpers ------------------------------------------------------------ */

static inline hc_req *hc_req_of(loom__queue *q)
{
    return LOOM__CONTAINER_OF(q, hc_req, node);
}

static inline hc_conn *hc_conn_of(loom_socket_t *s)
{
    return loom__socket_ext(s);
}

static inline void hc_queue_insert_head(loom__queue *h, loom__queue *n)
{
    n->next = h->next;
    n->prev = h;
    h->next->prev = n;
    h->next = n;
}

/* Writes "host:port" ("[v6]:port") of the pool to buf; returns buf. */
static const char *hc_where(const hc_pool *pool, char *buf, size_t size)
{
    bool v6 = strchr(pool->host, ':') != NULL;
    snprintf(buf, size, "%s%s%s:%d", v6 ? "[" : "", pool->host, v6 ? "]" : "", pool->port);
    return buf;
}

/* Does the comma-separated list `v` hold `token` (case-insensitive)? */
static bool hc_list_has(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (*v) {
        while (*v == ' ' || *v == '\t' || *v == ',')
            v++;
        const char *e = v;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - v) == tl && strncasecmp(v, token, tl) == 0)
            return true;
        v = e;
    }
    return false;
}

static bool hc_ieq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

static bool hc_idempotent(loom_http_method_t m)
{
    switch (m) {
    case LOOM_HTTP_METHOD_GET:
    case LOOM_HTTP_METHOD_HEAD:
    case LOOM_HTTP_METHOD_PUT:
    case LOOM_HTTP_METHOD_DELETE:
    case LOOM_HTTP_METHOD_OPTIONS:
    case LOOM_HTTP_METHOD_TRACE:
        return true;
    default:
        return false;
    }
}

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

static bool hc_token(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (*s == '\0')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c && strchr(extra, c))))
            return false;
    }
    return true;
}

/* A field value may hold HTAB, SP, visible ASCII and obs-text (RFC 9110
 * section 5.5): no other control character (CR, LF, VT, DEL...). */
static bool hc_field_value_ok(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c < 0x20 && c != '\t') || c == 0x7f)
            return false;
    }
    return true;
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

/* A writer that measures when `out` is NULL. */
typedef struct {
    char *out;
    size_t n;
} hc_w;

static inline void hc_put(hc_w *w, const void *p, size_t len)
{
    if (w->out)
        memcpy(w->out + w->n, p, len);
    w->n += len;
}

static inline void hc_puts(hc_w *w, const char *s)
{
    hc_put(w, s, strlen(s));
}

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

/* --- Per-loop state ------------------------------------------------------------- */

static void hc_state_destroy(loom__handle *h)
{
    hc_state *st = h->data;
    for (int i = 0; i < HC_BUCKETS; i++) {
        for (hc_pool *p = st->buckets[i], *n; p; p = n) {
            n = p->next;
            free(p);
        }
    }
    loom__slab_destroy(&st->req_slab);
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
    loom__http_loop *hl = loop->http;
    hc_state *st = hl->client;
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
        if (r->fb_timer)
            loom_timer_close(r->fb_timer);
        r->fb_timer = NULL;
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
                    hc_conn_close(c, false);
                }
            }
        }
    }
    hl->client = NULL;
    loom__handle_close(st->sentinel);
}

static hc_state *hc_state_get(loom_loop_t *loop)
{
    loom__http_loop *hl = loom__http_get(loop);
    if (hl == NULL)
        return NULL;
    if (LOOM__LIKELY(hl->client != NULL))
        return hl->client;
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
    st->cls.proto_read = hc_proto_read;
    st->cls.proto_event = hc_proto_event;
    st->cls.on_connect = hc_on_connect;
    st->cls.on_drain = hc_on_drain;
    st->cls.high_water = HC_HIGH_WATER;
    st->cls.low_water = HC_HIGH_WATER / 4;
    st->cls.extra = sizeof(hc_conn);
    st->cls.is_static = true;
    st->max_per_host = HC_DEFAULT_PERHOST;
    st->max_idle = HC_DEFAULT_IDLE;
    st->idle_ms = HC_DEFAULT_IDLE_MS;
    st->depth = 1;
    st->ua_len = strlen(HC_DEFAULT_UA);
    hl->client = st;
    hl->client_free = hc_loop_free;
    return st;
}

/* --- Pools ---------------------------------------------------------------------- */

static uint32_t hc_hash(const char *h, size_t n, int port)
{
    uint32_t x = 2166136261u ^ (uint32_t)port;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        x = (x ^ c) * 16777619u;
    }
    return x;
}

static hc_pool *hc_pool_get(hc_state *st, const char *host, size_t n, int port, int family)
{
    uint32_t b = hc_hash(host, n, port * 31 + family) % HC_BUCKETS;
    for (hc_pool *p = st->buckets[b]; p; p = p->next)
        if (p->port == port && p->family == family && strlen(p->host) == n &&
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
    p->port = port;
    p->family = family;
    loom__queue_init(&p->idle);
    loom__queue_init(&p->busy);
    loom__queue_init(&p->waiters);
    p->next = st->buckets[b];
    st->buckets[b] = p;
    return p;
}

/* --- Request heads ------------------------------------------------------------ */

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
static void hc_put_b64_decoded(hc_w *w, const char *s, size_t n)
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

/* Renders the request head (measures when w->out is NULL). */
static void hc_render_head(hc_req *r, hc_w *w, const char *method, const char *lines)
{
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
        hc_put_b64_decoded(w, u->userinfo, u->userinfo_len);
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

/* (Re)builds buf: [method][lines][url NUL][head]. `method`, `lines` and
 * `url` must not point into r->buf. Returns 0, LOOM_EURL or LOOM_ENOMEM. */
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
    r->method_len = method_len;
    r->hdr_len = lines_len;
    hc_w m = {NULL, 0};
    hc_render_head(r, &m, method, lines);                         /* measures */
    size_t need = method_len + lines_len + url_len + 1 + m.n + 1; /* two NULs */
    char *nb;
    size_t cap;
    if (need <= HC_INLINE) {
        nb = r->inl;
        cap = HC_INLINE;
    } else if (r->buf != r->inl && r->buf_cap >= need) {
        nb = r->buf;
        cap = r->buf_cap;
    } else {
        nb = malloc(need);
        if (nb == NULL)
            return LOOM_ENOMEM;
        cap = need;
    }
    if (r->buf != r->inl && r->buf != nb)
        free(r->buf);
    r->buf = nb;
    r->buf_cap = cap;
    memcpy(nb, method, method_len);
    memcpy(nb + method_len, lines, lines_len);
    char *ub = nb + method_len + lines_len;
    memcpy(ub, url, url_len);
    ub[url_len] = '\0';
    r->url = ub;
    r->url_len = url_len;
    /* The slices now point into the copy. */
    const char **sl[] = {&r->u.scheme, &r->u.userinfo, &r->u.host,
                         &r->u.path,   &r->u.query,    &r->u.fragment};
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++)
        if (*sl[i])
            *sl[i] = ub + (*sl[i] - url);
    hc_w w = {ub + url_len + 1, 0};
    hc_render_head(r, &w, nb, nb + method_len);
    ub[url_len + 1 + w.n] = '\0'; /* for loom_http_client_request_head() */
    r->head = ub + url_len + 1;
    r->head_len = w.n;
    return 0;
}

/* --- Timeouts --------------------------------------------------------------- */

/* Switches the connection's read and write timeouts. Returns 0, or
 * LOOM_ETOOMANY when a value would be the loop's 64th distinct one (a
 * request's values are checked when it starts, so only the pool's idle
 * timeout can meet this), or LOOM_ENOMEM. */
static int hc_conn_timeouts(hc_conn *c, uint32_t rt, uint32_t wt)
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

static void hc_total_cb(loom_timer_t *t, void *data)
{
    hc_req *r = data;
    (void)t;
    char where[300];
    if (r->pool)
        hc_where(r->pool, where, sizeof where);
    else
        snprintf(where, sizeof where, "%s", r->url);
    hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
            "request to %s timed out after %" PRIu32 " ms (total timeout)", where, r->total_to);
}

/* The first byte deadline passed while only 1xx answers came. */
static void hc_fb_cb(loom_timer_t *t, void *data)
{
    hc_req *r = data;
    (void)t;
    char where[300];
    hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
            "read timeout after %" PRIu32 " ms waiting for %s (first byte timeout; %u interim "
            "responses only)",
            r->first_to, hc_where(r->pool, where, sizeof where), (unsigned)r->interim);
}

/* --- Ending requests ----------------------------------------------------------- */

static void hc_req_free(loom__handle *h)
{
    hc_req *r = (hc_req *)h;
    hc_state *st = r->st;
    if (r->buf != r->inl)
        free(r->buf);
    free(r->rbuf);
    free(r->location);
    loom__queue_remove(&r->anode);
    r->h.type = 0;
    loom__slab_free(&st->req_slab, r);
}

/* Marks the request done and closes its handle; callbacks have run. */
static void hc_req_end(hc_req *r)
{
    r->state = RQ_DONE;
    loom__pending_cancel(&r->pend);
    r->pd_queued = 0;
    if (r->timer) {
        loom_timer_close(r->timer);
        r->timer = NULL;
    }
    if (r->fb_timer) {
        loom_timer_close(r->fb_timer);
        r->fb_timer = NULL;
    }
    loom__handle_close(&r->h);
}

/* Detaches r from its connection or wait queue. */
static void hc_detach(hc_req *r)
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

static void hc_emit(hc_req *r, loom_event_kind_t kind, int code, const char *msg)
{
    r->st->stats.errors++;
    loom__event_emit(r->st->loop, r->on_event, r->h.data, kind, code, msg, r);
}

/* Ends r with an error event. If r is on a connection, that connection is
 * closed: a message was cut short. Requests after it on the same
 * connection (pipelining) that saw no byte are put back in the queue. */
static void hc_fail(hc_req *r, loom_event_kind_t kind, int code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->state == RQ_DONE)
        return;
    hc_conn *c = r->conn;
    hc_detach(r);
    r->state = RQ_DONE;
    if (c && !c->dead)
        hc_conn_close(c, true);
    hc_emit(r, kind, code, msg);
    hc_req_end(r);
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
        hc_fail(r, (loom_event_kind_t)r->pd_kind, r->pd_code, "%s", r->pd_msg);
        return;
    }
    if ((what & PD_UPLOAD) && r->state == RQ_SENDING)
        hc_pump(r);
}

static void hc_defer(hc_req *r, unsigned what)
{
    r->pd_what |= what;
    if (!r->pd_queued) {
        r->pd_queued = 1;
        loom__pending_queue(r->st->loop, &r->pend);
    }
}

/* Fails r from the loop, not from inside the current call. */
static void hc_fail_later(hc_req *r, loom_event_kind_t kind, int code, const char *msg)
{
    r->pd_kind = (int)kind;
    r->pd_code = code;
    snprintf(r->pd_msg, sizeof r->pd_msg, "%s", msg);
    hc_defer(r, PD_FAIL);
}

/* --- Connections ------------------------------------------------------------ */

static void hc_conn_pending(loom__pending *p);

static void hc_conn_close(hc_conn *c, bool reset)
{
    if (c->dead)
        return;
    hc_state *st = c->st;
    hc_pool *pool = c->pool;
    c->dead = 1;
    if (c->idle) {
        loom__queue_remove(&c->lru);
        st->stats.idle--;
        c->idle = 0;
    }
    loom__queue_remove(&c->node);
    pool->nconns--;
    st->stats.open--;
    if (c->pend_queued)
        loom__pending_cancel(&c->pend);
    c->pend_queued = 0;
    /* Requests still on it that saw no byte go back to the queue. */
    while (!loom__queue_empty(&c->reqs)) {
        hc_req *r = hc_req_of(c->reqs.next);
        loom__queue_remove(&r->node);
        c->nreqs--;
        r->conn = NULL;
        r->state = RQ_NEW;
        if (r->on_source && (!r->on_rewind || r->on_rewind(r, r->h.data) < 0)) {
            hc_fail_later(r, LOOM_EV_HTTP_ERROR, LOOM_ECONNRESET,
                          "connection closed and the streamed body cannot be sent again");
            continue;
        }
        hc_dispatch(r);
    }
    if (!loom__socket_closing(c->s))
        loom__socket_close_now(c->s, reset);
    if (!c->in_read) {
        free(c->carry);
        c->carry = NULL;
        c->carry_len = c->carry_cap = 0;
    }
    /* A slot opened up: a waiter may connect. */
    if (!loom__queue_empty(&pool->waiters) && pool->nconns < st->max_per_host) {
        hc_req *w = hc_req_of(pool->waiters.next);
        loom__queue_remove(&w->node);
        st->stats.queued--;
        w->state = RQ_NEW;
        hc_dispatch(w);
    }
}

static void hc_on_connect(loom_socket_t *s, void *data)
{
    (void)data;
    hc_conn *c = hc_conn_of(s);
    c->connected = 1;
    c->st->stats.connections++;
}

static void hc_on_drain(loom_socket_t *s, void *data)
{
    (void)data;
    hc_conn *c = hc_conn_of(s);
    if (c->dead || loom__queue_empty(&c->reqs))
        return;
    hc_req *r = hc_req_of(c->reqs.next);
    if (r->state == RQ_SENDING && r->on_source)
        hc_pump(r);
}

/* Sends r's head and body on its connection. */
static void hc_send(hc_req *r)
{
    hc_conn *c = r->conn;
    loom_socket_t *s = c->s;
    int rc;
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
        hc_fail_later(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request");
        return;
    }
    if (r->on_source) {
        /* The source is the application's code: pull from the loop, never
         * from inside loom_http_request() or another request's cancel. */
        hc_defer(r, PD_UPLOAD);
        return;
    }
    r->upload_done = 1;
    r->state = RQ_SENT;
}

/* Pulls the streamed body and writes it until the socket's queue is above
 * high water (on_drain resumes), the source has nothing (body_ready
 * resumes), or the body ends. */
static void hc_pump(hc_req *r)
{
    hc_state *st = r->st;
    hc_conn *c = r->conn;
    if (st->upload == NULL && (st->upload = malloc(HC_UPLOAD_CHUNK)) == NULL) {
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the request body");
        return;
    }
    bool chunked = r->body_length < 0;
    for (;;) {
        if (r->state != RQ_SENDING || c->dead || r->conn != c)
            return;
        if (loom_socket_queued(c->s) >= HC_HIGH_WATER)
            return; /* on_drain resumes */
        size_t want = HC_UPLOAD_CHUNK;
        if (!chunked && (uint64_t)r->body_length - r->uploaded < want)
            want = (size_t)((uint64_t)r->body_length - r->uploaded);
        ssize_t n = 0;
        if (want > 0 || chunked) {
            r->in_cb = 1;
            n = r->on_source(r, st->upload, want, r->h.data);
            r->in_cb = 0;
            if (r->state == RQ_DONE || r->conn != c)
                return; /* cancelled from the callback */
        }
        if (n == LOOM_EAGAIN)
            return;
        if (n < 0) {
            hc_fail(r, LOOM_EV_HTTP_ERROR, (int)n, "request body source failed: %s",
                    loom_strerror((int)n));
            return;
        }
        if ((size_t)n > want) {
            hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                    "request body source returned more than asked");
            return;
        }
        int rc;
        if (n == 0) {
            if (!chunked && r->uploaded != (uint64_t)r->body_length) {
                hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EINVAL,
                        "request body ended after %" PRIu64 " of %" PRId64 " bytes", r->uploaded,
                        r->body_length);
                return;
            }
            rc = chunked ? loom_socket_write(c->s, "0\r\n\r\n", 5) : 0;
            if (rc < 0) {
                hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request body");
                return;
            }
            r->upload_done = 1;
            r->state = RQ_SENT;
            return;
        }
        if (chunked) {
            char line[24];
            int ll = snprintf(line, sizeof line, "%zx\r\n", (size_t)n);
            struct iovec iov[3] = {{line, (size_t)ll}, {st->upload, (size_t)n}, {"\r\n", 2}};
            rc = loom_socket_writev(c->s, iov, 3);
        } else {
            rc = loom_socket_write(c->s, st->upload, (size_t)n);
        }
        if (rc < 0) {
            hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot send the request body");
            return;
        }
        r->uploaded += (uint64_t)n;
        if (!chunked && r->uploaded == (uint64_t)r->body_length)
            continue; /* the next round asks for 0 bytes: skip the call */
    }
}

/* Puts r on connection c and sends it. */
static void hc_assign(hc_conn *c, hc_req *r)
{
    r->conn = c;
    r->reused = c->uses > 0;
    if (r->reused)
        r->st->stats.reused++;
    c->uses++;
    loom__queue_insert_tail(&c->reqs, &r->node);
    c->nreqs++;
    r->scan = 0;
    r->in_rbuf = 0;
    r->rlen = 0;
    r->received = 0;
    r->interim = 0;
    if (r->fb_timer)
        loom_timer_stop(r->fb_timer);
    (void)hc_conn_timeouts(c, r->first_to, r->idle_to); /* groups made at the start */
    hc_send(r);
}

static int hc_conn_new(hc_pool *pool, hc_req *r)
{
    hc_state *st = r->st;
    loom_loop_t *loop = st->loop;
    loom_tcp_opts o = {.connect_timeout_ms = r->connect_to, .family = pool->family};
    loom_socket_t *s;
    int rc = loom__tcp_connect_cls(loop, pool->host, pool->port, &o, &st->cls, &s);
    if (rc < 0)
        return rc;
    /* loom's own: the request is the live object that keeps the loop up. */
    loom__handle_own(&s->h);
    hc_conn *c = hc_conn_of(s);
    memset(c, 0, sizeof *c);
    c->s = s;
    c->pool = pool;
    c->st = st;
    c->pend.fn = hc_conn_pending;
    loom__queue_init(&c->reqs);
    loom__queue_init(&c->lru);
    loom__queue_insert_tail(&pool->busy, &c->node);
    pool->nconns++;
    st->stats.open++;
    st->stats.connect_attempts++;
    hc_assign(c, r);
    return 0;
}

/* Can r be pipelined onto busy connection c? */
static bool hc_can_pipeline(hc_conn *c, hc_req *r)
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

/* Finds r a connection: an idle one, a new one under the per-host limit, a
 * pipelining slot, or a place in the queue. */
static void hc_dispatch(hc_req *r)
{
    hc_state *st = r->st;
    hc_pool *pool = r->pool;
    if (!loom__queue_empty(&pool->idle) && !r->retried) {
        hc_conn *c = LOOM__CONTAINER_OF(pool->idle.next, hc_conn, node);
        loom__queue_remove(&c->node);
        loom__queue_remove(&c->lru);
        c->idle = 0;
        st->stats.idle--;
        loom__queue_insert_tail(&pool->busy, &c->node);
        hc_assign(c, r);
        return;
    }
    if (pool->nconns < st->max_per_host) {
        int rc = hc_conn_new(pool, r);
        if (rc < 0) {
            r->state = RQ_NEW;
            hc_fail_later(r, LOOM_EV_HTTP_ERROR, rc, loom_strerror(rc));
        }
        return;
    }
    if (st->depth > 1) {
        for (loom__queue *q = pool->busy.next; q != &pool->busy; q = q->next) {
            hc_conn *c = LOOM__CONTAINER_OF(q, hc_conn, node);
            if (hc_can_pipeline(c, r)) {
                hc_assign(c, r);
                return;
            }
        }
    }
    r->state = RQ_QUEUED;
    loom__queue_insert_tail(&pool->waiters, &r->node);
    st->stats.queued++;
}

/* A connection finished its requests and may be reused: hand it to a waiter
 * or park it. */
static void hc_conn_release(hc_conn *c)
{
    hc_state *st = c->st;
    hc_pool *pool = c->pool;
    if (c->dead)
        return;
    if (!loom__queue_empty(&pool->waiters)) {
        hc_req *w = hc_req_of(pool->waiters.next);
        loom__queue_remove(&w->node);
        st->stats.queued--;
        hc_assign(c, w);
        /* Fill the pipeline with more waiters. */
        while (st->depth > 1 && !loom__queue_empty(&pool->waiters)) {
            hc_req *n = hc_req_of(pool->waiters.next);
            if (!hc_can_pipeline(c, n))
                break;
            loom__queue_remove(&n->node);
            st->stats.queued--;
            hc_assign(c, n);
        }
        return;
    }
    if (hc_conn_timeouts(c, st->idle_ms, 0) < 0) {
        /* Parked without its idle timeout it could stay open for ever. */
        hc_conn_close(c, false);
        return;
    }
    loom__queue_remove(&c->node);
    hc_queue_insert_head(&pool->idle, &c->node);
    loom__queue_insert_tail(&st->idle_lru, &c->lru);
    c->idle = 1;
    st->stats.idle++;
    if (st->stats.idle > st->max_idle) {
        hc_conn *old = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        hc_conn_close(old, false);
    }
}

/* --- Responses ------------------------------------------------------------------ */

static void hc_view(hc_req *r, loom_http_client_response_t *v, const loom_http_header_t *h,
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
static void hc_terminate(hc_state *st, hc_req *r, const loom_http_header_t *h, size_t nh, bool save)
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

/* Ensures rbuf can take `more` bytes. */
static int hc_rbuf_reserve(hc_req *r, size_t more)
{
    if (r->rcap - r->rlen >= more)
        return 0;
    size_t cap = r->rcap ? r->rcap : 4096;
    while (cap - r->rlen < more)
        cap *= 2;
    char *nb = realloc(r->rbuf, cap);
    if (nb == NULL)
        return LOOM_ENOMEM;
    r->rbuf = nb;
    r->rcap = cap;
    return 0;
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
    r->rlen = 0;
    if (hc_rbuf_reserve(r, want) < 0)
        return LOOM_ENOMEM;
    memcpy(r->rbuf, r->msg, r->msg_head + body);
    r->rlen = r->msg_head + body;
    r->in_rbuf = 1;
    r->msg = NULL;
    return 0;
}

static void hc_redirect(hc_req *r);

/* The response of r (the first request on c) is complete. */
static void hc_complete(hc_conn *c, hc_req *r)
{
    hc_state *st = r->st;
    loom_loop_t *loop = st->loop;
    bool reuse = !c->no_reuse && r->fr.keep_alive && !r->no_keepalive && r->upload_done &&
                 !r->fr.upgrade && !r->fr.tunnel;
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
        int rc =
            loom_http_parse_response(r->rbuf, r->msg_head, 0, &res2, st->hdrs, &nh, &r->limits);
        if (rc < 0) {
            /* Cannot happen (the same bytes parsed before); never leave
             * pointers into the old buffer. */
            nh = 0;
            r->res.reason = NULL;
            r->res.reason_len = 0;
        } else {
            r->res = res2;
        }
        body = r->rbuf + r->msg_head;
        blen = r->rlen - r->msg_head;
    } else {
        nh = r->nhdrs;
        body = r->msg + r->msg_head;
        blen = r->msg_body;
    }
    if (!reuse)
        hc_conn_close(c, false); /* pipelined followers go back to the queue */
    else if (c->nreqs == 0)
        hc_conn_release(c);
    if (r->redirecting) {
        r->state = RQ_NEW;
        hc_redirect(r);
        return;
    }
    st->stats.responses++;
    loom_http_client_response_t v;
    hc_view(r, &v, hdrs, nh);
    /* The head is consumed and never parsed again: no need to restore it. */
    hc_terminate(st, r, hdrs, nh, false);
    if (r->on_body == NULL) {
        v.body = blen ? body : NULL;
        v.body_len = blen;
    }
    if (r->on_response) {
        loom__op_scope sc;
        loom__op_enter(loop, &sc, r->on_event, r->h.data, r);
        r->on_response(r, &v, r->h.data);
        loom__op_leave(loop, &sc);
    }
    hc_req_end(r);
}

/* Starts over with the Location of a 3xx answer. */
static void hc_redirect(hc_req *r)
{
    hc_state *st = r->st;
    char *loc = r->location;
    r->location = NULL;
    int need = loom_url_resolve(&r->u, loc, (size_t)-1, 1, NULL, 0);
    char *nu = need >= 0 ? malloc((size_t)need + 1) : NULL;
    if (need < 0 || nu == NULL) {
        free(loc);
        free(nu);
        r->state = RQ_NEW;
        hc_fail(r, LOOM_EV_HTTP_ERROR, need < 0 ? LOOM_EURL : LOOM_ENOMEM, "bad redirect location");
        return;
    }
    int n = loom_url_resolve(&r->u, loc, (size_t)-1, 1, nu, (size_t)need + 1);
    free(loc);
    loom_url_t nu_u;
    if (n < 0 || loom_url_parse(nu, (size_t)n, &nu_u) < 0 || nu_u.host_len == 0) {
        free(nu);
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EURL, "bad redirect location");
        return;
    }
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
        if (r->on_rewind == NULL || r->on_rewind(r, r->h.data) < 0) {
            free(nu);
            hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ESTATE,
                    "cannot follow a %d redirect: the streamed body cannot be sent again", status);
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
    if (!hc_ieq(nu_u.scheme, nu_u.scheme_len, "http")) {
        bool https = hc_ieq(nu_u.scheme, nu_u.scheme_len, "https");
        free(nu);
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL, "%s",
                https ? "https is not supported yet" : "unsupported URL scheme in redirect");
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
        hc_fail(r, LOOM_EV_HTTP_ERROR, rc, "cannot follow the redirect: %s", loom_strerror(rc));
        return;
    }
    r->redirecting = 0;
    r->in_rbuf = 0;
    r->rlen = 0;
    r->msg = NULL;
    hc_pool *pool =
        hc_pool_get(st, r->u.host, r->u.host_len, loom_url_port(&r->u), r->pool->family);
    if (pool == NULL) {
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        return;
    }
    r->pool = pool;
    r->state = RQ_NEW;
    hc_dispatch(r);
}

/* A 1xx answer was parsed (rare: kept out of the hot path). 1xx answers are
 * bounded in number, and they do not move the first byte deadline: each
 * read restarts the socket's clock, so after the first one a timer holds
 * the rest of it (a timer only for this rare case). Returns 0, or -1 when r
 * failed. */
static __attribute__((cold, noinline)) int hc_interim(hc_req *r)
{
    hc_state *st = r->st;
    char where[300];
    r->scan = 0;
    if (++r->interim > HC_MAX_INTERIM) {
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY,
                "more than %d interim (1xx) responses from %s", HC_MAX_INTERIM,
                hc_where(r->pool, where, sizeof where));
        return -1;
    }
    if (r->interim == 1 && r->first_to) {
        uint64_t spent = loom_now(st->loop) - r->sent_at;
        int trc = 0;
        if (spent < r->first_to && r->fb_timer == NULL)
            trc = loom__net_timer_new(st->loop, &r->fb_timer, hc_fb_cb, r);
        if (trc < 0) {
            hc_fail(r, LOOM_EV_HTTP_ERROR, trc, "out of memory");
            return -1;
        }
        if (spent >= r->first_to) {
            hc_fb_cb(NULL, r);
            return -1;
        }
        loom_timer_start(r->fb_timer, r->first_to - spent, 0);
    }
    return 0;
}

/* Parses r's response head from buf[0..len). Returns the bytes consumed
 * (> 0), 0 when more are needed, or -1 when r failed. */
static long hc_head(hc_conn *c, hc_req *r, char *buf, size_t len)
{
    hc_state *st = r->st;
    if (r->state < RQ_HEAD) {
        r->state = RQ_HEAD;
        (void)hc_conn_timeouts(c, r->idle_to, r->idle_to);
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
        hc_fail(r, LOOM_EV_HTTP_ERROR, big ? LOOM_ETOOBIG : LOOM_EHTTP, "malformed response: %s",
                loom_http_perr_str(rc));
        return -1;
    }
    loom_http_response_framing(&r->res, r->method, &r->fr);
    if (r->fr.informational)
        return hc_interim(r) < 0 ? -1 : rc; /* 1xx: the final answer follows */
    if (r->fb_timer)
        loom_timer_stop(r->fb_timer);
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
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOBIG,
                "response body of %" PRIu64 " bytes exceeds the limit of %" PRIu64 " bytes",
                r->fr.length, lim.max_body_size);
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
        const loom_http_header_t *loc = NULL;
        for (size_t i = 0; i < nh; i++)
            if (hc_ieq(st->hdrs[i].name, st->hdrs[i].name_len, "location")) {
                loc = &st->hdrs[i];
                break;
            }
        if (loc && loc->value_len) {
            if (r->redirects >= r->max_redirects) {
                hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ETOOMANY, "too many redirects (more than %u)",
                        (unsigned)r->max_redirects);
                return -1;
            }
            free(r->location);
            r->location = strndup(loc->value, loc->value_len);
            if (r->location == NULL) {
                hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
                return -1;
            }
            r->redirecting = 1;
        }
    }
    if (r->on_headers && !r->redirecting) {
        loom_http_client_response_t v;
        hc_view(r, &v, st->hdrs, nh);
        loom__op_scope sc;
        loom__op_enter(st->loop, &sc, r->on_event, r->h.data, r);
        r->in_cb = 1;
        hc_terminate(st, r, st->hdrs, nh, true);
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
            hc_fail(r, LOOM_EV_HTTP_ERROR, big ? LOOM_ETOOBIG : LOOM_EHTTP, "%s%s",
                    big ? "response body exceeds the size limit: " : "malformed response body: ",
                    loom_http_perr_str(n));
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
                if (hc_rbuf_reserve(r, out.data_len) < 0) {
                    hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the body");
                    return -1;
                }
                memcpy(r->rbuf + r->rlen, out.data, out.data_len);
                r->rlen += out.data_len;
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
            hc_conn_close(c, true);
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
                hc_complete(c, r);
                continue;
            }
        }
        /* Out of bytes, or paused, inside the message: keep its head. */
        if (r->state == RQ_BODY && !r->in_rbuf && hc_stash(r) < 0) {
            hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory for the response");
            return len;
        }
        return off;
    }
    return off;
}

/* Makes the carry hold at least `need` bytes. Out of memory, the
 * connection cannot go on: its first request fails, it closes, and this
 * returns false. */
static bool hc_carry_reserve(hc_conn *c, size_t need)
{
    if (c->carry_cap >= need)
        return true;
    size_t cap = c->carry_cap > 1024 ? c->carry_cap : 1024;
    while (cap < need)
        cap *= 2;
    char *nb = realloc(c->carry, cap);
    if (nb == NULL) {
        if (!loom__queue_empty(&c->reqs))
            hc_fail(hc_req_of(c->reqs.next), LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        hc_conn_close(c, true);
        return false;
    }
    c->carry = nb;
    c->carry_cap = cap;
    return true;
}

/* Feeds bytes to c: appended to the carry if one is kept. */
static void hc_process_conn(hc_conn *c, char *buf, size_t len, bool from_carry)
{
    c->in_read++;
    char *data = buf;
    size_t n = len;
    if (!from_carry && c->carry_len) {
        if (!hc_carry_reserve(c, c->carry_len + len))
            goto out;
        memcpy(c->carry + c->carry_len, buf, len);
        c->carry_len += len;
        from_carry = true;
    }
    if (from_carry) {
        data = c->carry;
        n = c->carry_len;
    }
    size_t used = hc_process(c, data, n);
    if (c->dead)
        goto out;
    size_t rest = n - used;
    if (from_carry) {
        memmove(c->carry, c->carry + used, rest);
        c->carry_len = rest;
    } else if (rest) {
        if (!hc_carry_reserve(c, rest))
            goto out;
        memcpy(c->carry, data + used, rest);
        c->carry_len = rest;
    }
out:
    c->in_read--;
    if (c->dead && !c->in_read) {
        free(c->carry);
        c->carry = NULL;
        c->carry_len = c->carry_cap = 0;
    }
}

static void hc_proto_read(loom_socket_t *s, char *buf, size_t len)
{
    hc_process_conn(hc_conn_of(s), buf, len, false);
}

static void hc_conn_pending(loom__pending *p)
{
    hc_conn *c = LOOM__CONTAINER_OF(p, hc_conn, pend);
    c->pend_queued = 0;
    if (c->dead)
        return;
    if (c->carry_len)
        hc_process_conn(c, c->carry, c->carry_len, true);
    if (!c->dead && !loom__queue_empty(&c->reqs) && !hc_req_of(c->reqs.next)->paused)
        loom__socket_read_start(c->s);
}

/* The connection failed or closed (the socket layer closes it after this). */
static void hc_proto_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    hc_conn *c = hc_conn_of(s);
    if (c->dead)
        return;
    if (loom__queue_empty(&c->reqs)) {
        hc_conn_close(c, false); /* an idle connection went away */
        return;
    }
    hc_req *r = hc_req_of(c->reqs.next);
    hc_pool *pool = c->pool;
    char where[300];
    if (kind == LOOM_EV_TCP_EOF && r->state == RQ_BODY) {
        /* The end of a body delimited by the close, or a cut-off one. */
        if (loom_http_body_finish(&r->bd) == 0) {
            c->no_reuse = 1;
            hc_complete(c, r); /* closes c: the body is in rbuf, stashed */
            return;
        }
        hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF,
                "connection closed by %s before the response was complete (%" PRIu64
                " body bytes received)",
                hc_where(pool, where, sizeof where), r->received);
        return;
    }
    bool nothing = r->state == RQ_SENDING || r->state == RQ_SENT;
    /* RFC 9110 section 9.2.2: only idempotent methods are sent again by
     * themselves; others only when the caller said so. A streamed body also
     * needs its rewind (hc_conn_close() checks). */
    bool may_retry = hc_idempotent(r->method) || r->retry_unsafe;
    bool stale = nothing && r->reused && (kind == LOOM_EV_TCP_EOF || kind == LOOM_EV_TCP_RESET);
    if (stale && may_retry && !r->retried) {
        /* A stale keep-alive connection: try once more on a fresh one. */
        r->retried = 1;
        c->st->stats.retries++;
        hc_conn_close(c, false); /* requeues r and any followers */
        return;
    }
    if (!c->connected)
        c->st->stats.connect_failures++; /* dns, refused, timeout, error */
    hc_where(pool, where, sizeof where);
    /* Why a failed request on a reused connection was not sent again. */
    char why[96] = "";
    if (stale && !may_retry)
        snprintf(why, sizeof why, " (a reused connection; %.*s is not retried by itself)",
                 (int)r->method_len, r->buf);
    switch (kind) {
    case LOOM_EV_DNS_ERROR:
        if (msg != NULL) /* the host and c-ares's reason */
            hc_fail(r, LOOM_EV_DNS_ERROR, code, "%s", msg);
        else
            hc_fail(r, LOOM_EV_DNS_ERROR, code, "dns lookup of %s failed: %s", pool->host,
                    loom_strerror(code));
        break;
    case LOOM_EV_TCP_REFUSED:
        /* The socket layer names every address it tried. */
        if (msg != NULL)
            hc_fail(r, LOOM_EV_HTTP_REFUSED, code, "%s", msg);
        else
            hc_fail(r, LOOM_EV_HTTP_REFUSED, code, "connect to %s refused", where);
        break;
    case LOOM_EV_TCP_TIMEOUT:
        if (!c->connected)
            hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                    "connect timeout after %" PRIu32 " ms connecting to %s", r->connect_to, where);
        else if (r->state == RQ_SENDING && loom_socket_queued(s) > 0)
            hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                    "write timeout after %" PRIu32 " ms sending the request to %s (idle timeout)",
                    r->idle_to, where);
        else if (r->state <= RQ_SENT)
            hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                    "read timeout after %" PRIu32 " ms waiting for %s (first byte timeout)",
                    r->first_to, where);
        else
            hc_fail(r, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                    "read timeout after %" PRIu32 " ms reading the response from %s (idle timeout)",
                    r->idle_to, where);
        break;
    case LOOM_EV_TCP_EOF:
        if (r->state == RQ_HEAD)
            hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF,
                    "connection closed by %s inside the response head", where);
        else
            hc_fail(r, LOOM_EV_HTTP_ERROR, LOOM_EOF, "connection closed by %s without a response%s",
                    where, why);
        break;
    case LOOM_EV_TCP_RESET:
        hc_fail(r, LOOM_EV_HTTP_ERROR, code ? code : LOOM_ECONNRESET, "connection reset by %s %s%s",
                where, r->state >= RQ_HEAD ? "while reading the response" : "before any response",
                why);
        break;
    default:
        hc_fail(r, LOOM_EV_HTTP_ERROR, code, "connection to %s failed: %s", where,
                loom_strerror(code));
        break;
    }
    if (!c->dead)
        hc_conn_close(c, false);
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
            if (v == NULL || !hc_token(n) || !hc_field_value_ok(v))
                return LOOM_EINVAL;
            /* A length that disagrees with the body would desynchronise the
             * connection: refused, never sent. */
            if (strcasecmp(n, "content-length") == 0 &&
                (body_len < 0 || hc_parse_length(v) != body_len))
                return LOOM_EINVAL;
            lines += strlen(n) + 2 + strlen(v) + 2;
        }
    }
    loom_url_t u;
    size_t url_len = strlen(url);
    int rc = loom_url_parse(url, url_len, &u);
    if (rc < 0)
        return rc;
    if (!(u.flags & LOOM_URL_F_AUTHORITY) || u.host_len == 0 || loom_url_port(&u) <= 0)
        return LOOM_EURL;
    hc_state *st = hc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    /* The first byte and idle timeouts are socket timeouts: make sure they
     * have their groups now (they stay for the loop's life), so a request
     * never runs without the timeouts it asked for. */
    if ((rc = loom__tgroup_get(loop, opts->first_byte_timeout_ms)) < 0 ||
        (rc = loom__tgroup_get(loop, opts->idle_timeout_ms)) < 0)
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
                hc_list_has(opts->headers[i + 1], "close"))
                r->no_keepalive = 1;
    }
    rc = hc_build(r, tmp, mlen, tmp + mlen, lines, url, url_len, &u);
    if (tmp != tmp_small)
        free(tmp);
    if (rc < 0)
        goto fail;
    if (r->total_to) {
        rc = loom__net_timer_new(loop, &r->timer, hc_total_cb, r);
        if (rc < 0)
            goto fail;
        loom_timer_start(r->timer, r->total_to, 0);
    }
    if (out)
        *out = r;
    if (!hc_ieq(u.scheme, u.scheme_len, "http")) {
        bool https = hc_ieq(u.scheme, u.scheme_len, "https");
        hc_fail_later(r, LOOM_EV_HTTP_ERROR, LOOM_EPROTOCOL,
                      https ? "https is not supported yet" : "unsupported URL scheme");
        return 0;
    }
    r->pool = hc_pool_get(st, r->u.host, r->u.host_len, loom_url_port(&r->u), opts->family);
    if (r->pool == NULL) {
        rc = LOOM_ENOMEM;
        goto fail;
    }
    hc_dispatch(r);
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

int loom_http_client_cancel(loom_http_client_req_t *r)
{
    if (r == NULL || r->state == RQ_DONE || loom__handle_closing(&r->h))
        return LOOM_ECLOSED;
    hc_conn *c = r->conn;
    hc_detach(r);
    r->state = RQ_DONE;
    if (c && !c->dead) {
        /* Mid-message: the connection cannot carry anything else. Others
         * on it that saw no byte are requeued; a partly answered one fails
         * from the loop. */
        if (!loom__queue_empty(&c->reqs)) {
            hc_req *h = hc_req_of(c->reqs.next);
            if (h->state >= RQ_HEAD) {
                loom__queue_remove(&h->node);
                c->nreqs--;
                h->conn = NULL;
                h->state = RQ_NEW;
                hc_fail_later(h, LOOM_EV_HTTP_ERROR, LOOM_ECANCELED,
                              "connection closed: a pipelined request on it was cancelled");
            }
        }
        hc_conn_close(c, true);
    }
    hc_req_end(r);
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
    if (c->carry_len) {
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
        hc_defer(r, PD_UPLOAD);
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
    for (size_t i = 0; i < res->nheaders; i++) {
        const loom_http_header_t *h = &res->headers[i];
        if (hc_ieq(h->name, h->name_len, name)) {
            if (len)
                *len = h->value_len;
            return h->value;
        }
    }
    return NULL;
}

int loom_http_client_configure(loom_loop_t *loop, const loom_http_client_opts *opts)
{
    static const loom_http_client_opts defaults;
    if (loop == NULL)
        return LOOM_EINVAL;
    if (opts == NULL)
        opts = &defaults;
    hc_state *st = hc_state_get(loop);
    if (st == NULL)
        return LOOM_ENOMEM;
    char *ua = NULL;
    if (opts->user_agent) {
        if (!hc_field_value_ok(opts->user_agent))
            return LOOM_EINVAL;
        ua = strdup(opts->user_agent);
        if (ua == NULL)
            return LOOM_ENOMEM;
    }
    free(st->ua);
    st->ua = ua;
    st->ua_len = strlen(ua ? ua : HC_DEFAULT_UA);
    st->max_per_host = opts->max_per_host ? opts->max_per_host : HC_DEFAULT_PERHOST;
    st->max_idle = opts->max_idle ? opts->max_idle : HC_DEFAULT_IDLE;
    st->idle_ms = opts->idle_timeout_ms ? opts->idle_timeout_ms : HC_DEFAULT_IDLE_MS;
    st->depth = opts->pipeline_depth > 1 ? opts->pipeline_depth : 1;
    while (st->stats.idle > st->max_idle) {
        hc_conn *old = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        hc_conn_close(old, false);
    }
    return 0;
}

void loom_http_client_close_idle(loom_loop_t *loop)
{
    loom__http_loop *hl = loop ? loop->http : NULL;
    hc_state *st = hl ? hl->client : NULL;
    if (st == NULL)
        return;
    while (!loom__queue_empty(&st->idle_lru)) {
        hc_conn *c = LOOM__CONTAINER_OF(st->idle_lru.next, hc_conn, lru);
        hc_conn_close(c, false);
    }
}

void loom_http_client_stats(loom_loop_t *loop, loom_http_client_stats_t *out)
{
    memset(out, 0, sizeof *out);
    loom__http_loop *hl = loop ? loop->http : NULL;
    hc_state *st = hl ? hl->client : NULL;
    if (st)
        *out = st->stats;
}
