/* http/client_internal.h - the interfaces between the four parts of the
 * HTTP client (not installed):
 *  - client_req.c: the public API, the per-loop state, the request
 *    lifecycle, timers, the redirect policy;
 *  - client_pool.c: pools per origin and their connections;
 *  - client_h1.c: HTTP/1 rendering, parsing, framing, pipelining, retry;
 *  - client_body.c: request bodies.
 *
 * Objects:
 *  - the per-loop state (hc_state), reached through loom__http_get(): the
 *    request slab, the socket class every client connection uses, the pool
 *    hash table, the idle LRU list and the counters;
 *  - a pool (hc_pool) per origin (hc_origin): its idle connections (most recently used
 *    first), its busy ones and the requests waiting for a connection;
 *  - a connection (hc_conn) lives in the extension bytes of its socket (one
 *    slab object, no allocation of its own) and holds the requests in flight
 *    on it in order (one, unless pipelining is on) and the bytes of an
 *    unfinished message head or chunk line (`carry`);
 *  - a request (loom_http_client_req) comes from the slab. Its method,
 *    header list and URL are stored in one buffer (inline for the usual
 *    sizes) and its HTTP/1 head is rendered after them at first send, so a
 *    keep-alive request in the steady state costs no malloc.
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
 * request advances (they need the loop's timeout groups, which a request
 * reserves when it starts); the request's own deadlines (total, and the rest
 * of the first byte deadline after a 1xx) share one timer per request, made
 * only when the first one is set. The pool's idle timeout is the read
 * timeout of a parked connection.
 *
 * Loop thread only.
 */
#ifndef LOOM_HTTP_CLIENT_INTERNAL_H
#define LOOM_HTTP_CLIENT_INTERNAL_H

#include <strings.h>

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

/* The schemes a pool may serve. */
typedef enum { HC_SCHEME_HTTP = 0, HC_SCHEME_HTTPS = 1 } hc_scheme;

/* What a pool's connections speak (part of the pool's key): HTTP/1.1 only;
 * https with ALPN "h2,http/1.1"; https with ALPN "h2" only; h2c with prior
 * knowledge. */
enum { HC_V_H1 = 0, HC_V_ALPN = 1, HC_V_H2ONLY = 2, HC_V_H2C = 3 };
/* What a pool learnt its server speaks (pool->proto). */
enum { HC_PROTO_UNKNOWN = 0, HC_PROTO_H1 = 1, HC_PROTO_H2 = 2 };

/* The TLS settings a connection is made with, as a key: connections made
 * with different settings (trust store, client certificate, SNI, ALPN list)
 * are never shared. The client context's address (0 for http): an https
 * pool holds a reference to its context, so the address cannot be reused by
 * another context while the pool lives. */
typedef struct {
    uint64_t id;
} hc_tls_key;

/* What a pool is keyed by: the origin (scheme, host, port), the address
 * family asked for, and the TLS settings. host[0..host_len) is compared
 * case-insensitively. */
typedef struct {
    hc_scheme scheme;
    int port;
    int family; /* 0, AF_INET or AF_INET6 */
    int ver;    /* HC_V_* */
    hc_tls_key tls;
    loom_tls_ctx_t *ctx; /* https: the context (the pool takes a reference) */
    const char *host;
    size_t host_len;
} hc_origin;

struct hc_pool {
    hc_pool *next;       /* hash chain */
    loom__queue idle;    /* idle connections, most recently used first */
    loom__queue busy;    /* connecting or in use */
    loom__queue waiters; /* requests waiting for a connection */
    uint32_t nconns;     /* idle + busy */
    hc_scheme scheme;
    int port;
    int family;
    int ver;          /* HC_V_* */
    uint8_t proto;    /* HC_PROTO_*: what the server chose last */
    uint32_t h2_wait; /* connections still negotiating (h2 operations, undecided) */
    hc_conn *h2;      /* the HTTP/2 connection new requests go to, or NULL */
    hc_tls_key tls;
    loom_tls_ctx_t *ctx; /* https: the client context (a reference) */
    char host[];         /* lower case, NUL-terminated */
};

/* A connection's protocol, as operations the pool dispatches through, so
 * that the pool never assumes how a protocol carries requests or matches
 * responses to them (HTTP/1: one at a time, or pipelined, answered in
 * order; HTTP/2 will add a second implementation). The pool has already
 * linked r on c->reqs and counted it in c->nreqs when it calls submit. */
typedef struct hc_conn_ops {
    const char *name;
    /* c was just made (zeroed, its socket connecting): set up the
     * protocol's state. */
    void (*opened)(hc_conn *c);
    /* May busy connection c take r besides the requests it carries? */
    bool (*can_take)(hc_conn *c, hc_req *r);
    /* r was put on c: send it. Its response is matched to it by the
     * protocol, which completes or fails it. */
    void (*submit)(hc_conn *c, hc_req *r);
    /* r, which was on c, was cancelled by the caller and is detached: leave
     * c consistent (closing it if a message was cut short). */
    void (*cancel)(hc_conn *c, hc_req *r);
    /* c is dead (its requests requeued, its socket closing): release what
     * the protocol keeps for it. */
    void (*closed)(hc_conn *c);
    /* Optional (NULL: HTTP/1's behaviour in the shared code). */
    /* r, on c, failed and is detached: NULL closes c (HTTP/1), else the
     * protocol ends only r's part (HTTP/2: RST_STREAM). */
    void (*fail)(hc_conn *c, hc_req *r);
    /* The socket hooks: the connection is up; bytes read; the write queue
     * drained; a failure or close (returns false to let the HTTP/1 code
     * report it). */
    void (*connected)(hc_conn *c);
    void (*read)(hc_conn *c, char *buf, size_t len);
    void (*drain)(hc_conn *c);
    bool (*event)(hc_conn *c, loom_event_kind_t kind, int code, const char *msg);
    /* loom_http_client_pause/resume of r on c, and r's body source has more
     * (loom__hc_pump). */
    void (*pause)(hc_conn *c, hc_req *r);
    void (*resume)(hc_conn *c, hc_req *r);
    void (*pump)(hc_conn *c, hc_req *r);
} hc_conn_ops;

/* The generic part (pool, socket, lists, counts) and the HTTP/1 part (the
 * carry and its pending node, the read nesting count). */
struct hc_conn {
    loom_socket_t *s;
    const hc_conn_ops *ops;
    hc_pool *pool;
    hc_state *st;
    loom__queue node;   /* pool->idle or pool->busy */
    loom__queue lru;    /* st->idle_lru while idle */
    loom__queue reqs;   /* the requests on it (HTTP/1: in order) */
    loom__pending pend; /* process `carry` after a resume */
    loom__bytes *carry; /* unprocessed bytes (NULL until first needed) */
    uint32_t nreqs;
    uint32_t uses;   /* requests assigned so far */
    uint32_t rt, wt; /* the socket's current read and write timeouts */
    uint8_t idle, dead, in_read, connected, no_reuse, pend_queued;
    /* Bytes follow, in the read being processed, the response that is
     * completing: if no request on c is waiting for them, c is not reused. */
    uint8_t rx_more;
    void *h2; /* the HTTP/2 state (h2_client.c), or NULL */
};

struct loom_http_client_req {
    loom__handle h; /* h.data: the user's data slot */
    hc_state *st;
    loom__queue node;  /* pool->waiters or conn->reqs */
    loom__queue anode; /* st->reqs: every request not yet freed */
    hc_pool *pool;
    hc_conn *conn;
    loom__pending pend;
    /* The request's own timer, made only when it first has a deadline,
     * armed for the earliest of: the total timeout, the first byte deadline
     * (from when the request is sent and first in line for an answer until
     * the first byte, or the final head after a 1xx) and the idle deadline
     * (rx_at + idle_to while the response arrives, not while paused). Reads
     * only store rx_at: the timer, armed for an earlier deadline, finds the
     * later one when it fires. Loop times; 0: none. A stall while sending is
     * the socket's write timeout (write progress is the connection's). */
    loom_timer_t *timer;
    uint64_t total_at, first_byte_at, rx_at;

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
    uint64_t sent_at;  /* loop time the first byte clock started */
    uint32_t connect_to, first_to, idle_to, total_to;
    loom_http_limits_t limits;
    loom_http_method_t method;

    /* The request, described without a protocol: buf holds [method][header
     * lines "Name: value\r\n", the caller's, validated][url NUL], inline
     * unless large, and the URL's slices (u) point into it. The protocol
     * renders its head from it when the request is first sent (HTTP/1: after
     * the URL in buf, [head NUL]); head is NULL until then. */
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
    size_t scan;       /* head bytes already scanned (the parser's last_len) */
    size_t nhdrs;      /* header count of an in-place head */
    char *msg;         /* this buffer's message start (head) while parsing in place */
    size_t msg_head;   /* head length */
    size_t msg_body;   /* body bytes compacted after the head */
    loom__bytes *rbuf; /* the message once it spans reads: [head][body] */
    char *location;    /* a redirect's target, copied */

    int pd_kind, pd_code; /* deferred failure */
    char pd_msg[160];
    unsigned pd_what;

    uint8_t state, paused, retried, redirects, max_redirects, follow, no_keepalive;
    uint8_t reused, upload_done, user_host, user_ua, user_cl, user_te, user_conn, user_auth;
    uint8_t redirecting, in_rbuf, strip_body_headers, pd_queued, in_cb;
    uint8_t keep_creds, retry_unsafe, interim, idle_on, insecure_redirect;
    uint8_t version;      /* loom_http_request_opts.version */
    uint8_t h2_eos;       /* HTTP/2: END_STREAM came while the body was held back (paused) */
    int32_t h2_sid;       /* HTTP/2: the stream id on r->conn (0: none yet) */
    uint32_t h2_nhdrs;    /* HTTP/2: header fields in h2_hdrs */
    loom__bytes *h2_hdrs; /* HTTP/2: the response's fields, "name\0value\0" each */
    loom_tls_ctx_t *tls;  /* loom_http_request_opts.tls (a reference), or NULL */
    /* During on_response of an https request: what its connection's
     * handshake negotiated (the connection may be closed or reused by then). */
    const loom_tls_info *tls_snap;
    char inl[HC_INLINE];
};

struct hc_state {
    loom_loop_t *loop;
    loom__slab req_slab;
    loom__sock_class cls;         /* http connections */
    loom__sock_class tls_cls;     /* https connections: the same hooks, over TLS */
    loom__sock_class tls_h2_cls;  /* the same, ALPN "h2,http/1.1" */
    loom__sock_class tls_h2o_cls; /* the same, ALPN "h2" */
    loom_tls_ctx_t *tls_conf;     /* loom_http_client_opts.tls (a reference), or NULL */
    loom_tls_ctx_t *tls_def;      /* the default client context, made on first use */
    hc_pool *buckets[HC_BUCKETS];
    loom__queue idle_lru; /* idle connections, oldest first */
    loom__queue reqs;     /* every request not yet freed (for loop free) */
    uint32_t max_per_host, max_idle, idle_ms, depth;
    char *ua;
    size_t ua_len;
    char *upload; /* HC_UPLOAD_CHUNK bytes for streamed bodies, on first use */
    loom_http_client_stats_t stats;
    loom_http_header_t hdrs[HC_MAX_HEADERS];
    char saved[HC_MAX_HEADERS]; /* bytes under the terminators (loom__hc_terminate) */
    char saved_reason;
    loom__handle *sentinel; /* frees the state after the sockets at loop free */
};

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

static inline bool hc_ieq(const char *a, size_t alen, const char *b)
{
    return strlen(b) == alen && strncasecmp(a, b, alen) == 0;
}

static inline bool hc_idempotent(loom_http_method_t m)
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

/* --- client_req.c: the lifecycle ---------------------------------------------- */

/* The loop's client state, created on first use (NULL on ENOMEM). */
hc_state *loom__hc_state_get(loom_loop_t *loop);
/* Marks r done (cancelling its deferred work and timers) and closes its
 * handle; its callbacks have run. */
void loom__hc_req_end(hc_req *r);
/* Detaches r from its connection or from its pool's wait queue. */
void loom__hc_detach(hc_req *r);
/* Counts an error and emits it on r's event callback. */
void loom__hc_emit(hc_req *r, loom_event_kind_t kind, int code, const char *msg);
/* Ends r with an error event (a no-op once r is done). If r is on a
 * connection, that connection is closed: a message was cut short, and the
 * requests after r on it that saw no byte go back to the queue. */
void loom__hc_fail(hc_req *r, loom_event_kind_t kind, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Queues deferred work for r (PD_* bits), run from the loop's pending phase. */
void loom__hc_defer(hc_req *r, unsigned what);
/* Fails r from the loop, not from inside the current call. */
void loom__hc_fail_later(hc_req *r, loom_event_kind_t kind, int code, const char *msg);
/* Sets (at != 0) or clears r's first byte deadline and re-arms its timer.
 * Returns 0 or LOOM_ENOMEM (no timer could be made). */
int loom__hc_req_first_byte_by(hc_req *r, uint64_t at);
/* Starts (from now) or stops r's idle clock (no byte of the response for
 * idle_to ms) and re-arms its timer. Returns 0 or LOOM_ENOMEM. */
int loom__hc_req_idle(hc_req *r, bool on);
/* Fails r: its first byte deadline passed (with r->interim 1xx answers
 * only, if any came). */
void loom__hc_fail_first_byte(hc_req *r);
/* Starts r over with the Location of a 3xx answer (r->location). */
void loom__hc_redirect(hc_req *r);

/* --- client_pool.c: pools and connections ------------------------------------- */

/* The pool of origin o, made on first use (NULL on ENOMEM). */
hc_pool *loom__hc_pool_get(hc_state *st, const hc_origin *o);
/* Writes "host:port" ("[v6]:port") of the pool to buf; returns buf. */
const char *loom__hc_where(const hc_pool *pool, char *buf, size_t size);
/* Finds r a connection: an idle one, a new one under the per-host limit, a
 * pipelining slot, or a place in the queue. */
void loom__hc_dispatch(hc_req *r);
/* Puts r on connection c and submits it through c's operations. */
void loom__hc_assign(hc_conn *c, hc_req *r);
/* Closes c once (reset: abortively). The requests on it that saw no byte go
 * back to the queue (or fail, a streamed body that cannot be rewound), and
 * a waiter of the pool may take the freed slot. */
void loom__hc_conn_close(hc_conn *c, bool reset);
/* c finished its requests and may be reused: hands it to a waiter or parks
 * it as idle. */
void loom__hc_conn_release(hc_conn *c);
/* Switches c's socket read and write timeouts. Returns 0, LOOM_ETOOMANY or
 * LOOM_ENOMEM. */
int loom__hc_conn_timeouts(hc_conn *c, uint32_t rt, uint32_t wt);
/* A copy of what a TLS connection's handshake negotiated, with the strings
 * that live in the connection copied. */
typedef struct {
    loom_tls_info info;
    char alpn[256];
    char sni[256];
} hc_tls_snap;

/* Fills `snap` from c's socket. Returns true, or false when c is not a
 * TLS connection that completed its handshake. */
bool loom__hc_tls_snap(hc_conn *c, hc_tls_snap *snap);

/* The socket class hook: the connection is up. */
void loom__hc_on_connect(loom_socket_t *s, void *data);

/* --- client_h1.c: HTTP/1 ------------------------------------------------------- */

/* The HTTP/1 connection operations. */
extern const hc_conn_ops loom__hc_h1_ops;
/* Renders r's HTTP/1 request head once (after the description in r->buf,
 * which grows if it must). Returns 0 or LOOM_ENOMEM. */
int loom__hc_h1_head(hc_req *r);
/* Pulls r's streamed body and writes it, framed, until the socket's queue
 * is above high water (on_drain resumes), the source has nothing
 * (body_ready resumes), or the body ends. */
void loom__hc_pump(hc_req *r);
/* The socket class hook: the write queue drained below low water. */
void loom__hc_on_drain(loom_socket_t *s, void *data);
/* Fills the public view of r's response with the headers h[0..nh). */
void loom__hc_view(hc_req *r, loom_http_client_response_t *v, const loom_http_header_t *h,
                   size_t nh);
/* NUL-terminates the reason phrase and header names and values of a parsed
 * head in place (saving the bytes when `save`, for hc_unterminate). */
void loom__hc_terminate(hc_state *st, hc_req *r, const loom_http_header_t *h, size_t nh, bool save);
/* The response of r (the first request on c) is complete: deliver it. */
void loom__hc_complete(hc_conn *c, hc_req *r);
/* Feeds bytes to c (appended to its carry if it keeps one). */
void loom__hc_process_conn(hc_conn *c, char *buf, size_t len, bool from_carry);
/* The connection's pending node: processes the carry after a resume. */
void loom__hc_conn_pending(loom__pending *p);
/* The socket class hooks: bytes read, and failure or close. */
void loom__hc_proto_read(loom_socket_t *s, char *buf, size_t len);
void loom__hc_proto_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);

/* --- h2_client.c: HTTP/2 ------------------------------------------------------- */

/* The HTTP/2 connection operations: a connection made with them waits for
 * its connect (and ALPN) and then speaks HTTP/2, or switches itself to
 * loom__hc_h1_ops when the server chose http/1.1. */
extern const hc_conn_ops loom__hc_h2_ops;
/* Writes the Base64 of the percent-decoded userinfo s[0..n) (client_h1.c). */
void loom__hc_put_b64_decoded(hc_w *w, const char *s, size_t n);

/* --- client_body.c: request bodies -------------------------------------------- */

/* Pulls the next piece of r's body (a buffer, or the caller's on_source)
 * into buf[0..len), the form an HTTP/2 data provider will want too.
 * Returns 0 with *n bytes (> 0), or with *eof set and *n == 0 at the end of
 * the body; LOOM_EAGAIN when the source has nothing now
 * (loom_http_client_body_ready() resumes); LOOM_ECANCELED when r failed here
 * (a source error or a short or long body) or was cancelled or moved from
 * the callback: the caller stops. */
int loom__hc_body_read(hc_req *r, char *buf, size_t len, size_t *n, bool *eof);
/* Prepares r's body to be sent again from its start (a retry or a
 * redirect): a buffer always can; a streamed body needs the caller's
 * on_rewind. Returns 0, or < 0 when it cannot be sent again. */
int loom__hc_body_rewind(hc_req *r);

/* --- client_req.c: the request's buffer ---------------------------------------- */

/* Makes room for `more` bytes after the used part of r->buf (`used`
 * bytes), moving it and rebasing the URL's slices if it must. Returns 0 or
 * LOOM_ENOMEM (r unchanged). */
int loom__hc_req_reserve(hc_req *r, size_t used, size_t more);

#endif
