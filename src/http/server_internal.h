/* http/server_internal.h - what the server's files (server.c, server_req.c,
 * server_resp.c, server_h1.c, server_threads.c) share. Not installed.
 *
 * A request (loom_http_req) is a protocol-neutral core - the parsed head,
 * path and query, body, answer and body states, the application's flags -
 * plus `proto`, the const operations of the protocol that carries it
 * (loom__h1_proto today; HTTP/2 adds the second), plus the protocol's own
 * per-request state (`h1`, one member of a union that has room for an h2
 * stream later). The neutral part (server.c, server_req.c, server_resp.c)
 * validates and frames answers and calls the operations; only server_h1.c
 * writes bytes or drives a connection.
 *
 * Loop thread only.
 */
#ifndef LOOM_HTTP_SERVER_INTERNAL_H
#define LOOM_HTTP_SERVER_INTERNAL_H

#include <string.h>
#include <sys/uio.h>

#include "http/http_internal.h"
#include "net/net_internal.h"

/* Request body states (neutral). */
enum {
    LOOM__HB_NONE = 0, /* no body, or complete */
    LOOM__HB_READ      /* body bytes still to come */
};

/* Answer states (neutral). */
enum {
    LOOM__HA_NONE = 0, /* not answered yet */
    LOOM__HA_STREAM,   /* a streamed answer is in progress */
    LOOM__HA_DONE      /* answered (or released) */
};

/* Request flags. Bits 0..15 are the neutral core's; bits 16..31 belong to
 * the protocol that carries the request (LOOM__H1R_* for HTTP/1). */
enum {
    LOOM__HR_DISPATCHED = 1u << 0, /* on_request ran: the application owns it */
    LOOM__HR_GONE = 1u << 1,       /* the client went away */
    LOOM__HR_PERSIST = 1u << 2,    /* head (and body) copied into mem */
    LOOM__HR_PAUSED = 1u << 3,     /* streamed body: paused by the application */
    /* The connection (HTTP/1) or stream cannot carry on after the answer. */
    LOOM__HR_CLOSE = 1u << 4,
    LOOM__HR_NOBODY = 1u << 5,   /* the answer carries no body (HEAD, 204, 304) */
    LOOM__HR_RESUMEQ = 1u << 8,  /* req->resume is queued */
    LOOM__HR_IN_CB = 1u << 10,   /* inside a callback that receives it */
    LOOM__HR_FREED = 1u << 11,   /* handed to the closing list */
    LOOM__HR_END_DUE = 1u << 13, /* streamed body complete while paused: end call due */
    /* A 100 Continue (interim) answer was sent for this request. */
    LOOM__HR_CONT_SENT = 1u << 14,

    /* HTTP/1 (server_h1.c). */
    LOOM__H1R_CHUNKED = 1u << 16,     /* streamed answer: chunked */
    LOOM__H1R_UNTIL_CLOSE = 1u << 17, /* streamed answer: delimited by closing */
    /* Expect: 100-continue and no 100 sent: the client may never send the
     * body, so an answer before it closes the connection. */
    LOOM__H1R_NOCONT = 1u << 18,
    LOOM__H1R_DISCARD = 1u << 19 /* answered: the rest of the body is read and dropped */
};

/* How the neutral part frames an answer (loom__hhead.framing). */
enum {
    LOOM__HF_NONE = 0, /* no body and no length (204, a 304 without one) */
    LOOM__HF_LENGTH,   /* Content-Length: hd->length */
    LOOM__HF_STREAM    /* streamed, length unknown: the protocol delimits it */
};

/* What a pass over the application's fields found. The lengths of the
 * first LOOM__HSCAN_MAX fields are kept for the second pass (the
 * protocol's head writer). */
#define LOOM__HSCAN_MAX 16
typedef struct {
    size_t len;      /* bytes of the fields passed through, as "name: value\r\n" */
    int64_t app_cl;  /* Content-Length given, or -1 */
    bool has_date;   /* a Date was given */
    bool conn_close; /* Connection: close was given */
    bool upgrade;    /* an Upgrade field was given (Connection gets the option) */
    unsigned n;      /* fields seen so far (across both lists) */
    struct {
        uint32_t nl, vl;
        uint8_t kind;
    } f[LOOM__HSCAN_MAX];
} loom__hscan;

/* Kinds of answer fields loom treats itself (loom__hdr_kind). */
enum { LOOM__HK_OTHER = 0, LOOM__HK_CL, LOOM__HK_TE, LOOM__HK_CONN, LOOM__HK_DATE };

/* An answer head as the neutral part decided it, for loom__hproto.start. */
typedef struct {
    int status;
    const char *const *pre;  /* loom's own fields before the application's (SSE) */
    const char *const *hdrs; /* the application's fields */
    const loom__hscan *sc;   /* the scan of pre then hdrs */
    int framing;             /* LOOM__HF_* */
    uint64_t length;         /* LOOM__HF_LENGTH: the Content-Length */
    const void *body;        /* a whole answer's body (NULL when streamed) */
    size_t len;              /* its length (0 when nobody) */
    bool stream;             /* a streamed answer (body and end calls follow) */
} loom__hhead;

/* The protocol operations of a request. Each returns 0 or a LOOM_E* code
 * where it returns int. The neutral part has checked the request's state
 * and the arguments; the request still has its connection. */
typedef struct loom__hproto {
    /* Writes the final answer's head (and a whole answer's body). */
    int (*start)(loom_http_req_t *req, const loom__hhead *hd);
    /* Writes an interim (1xx) answer; LOOM_ENOTSUP where the peer cannot
     * take one (HTTP/1.0). */
    int (*interim)(loom_http_req_t *req, int status, const char *const *hdrs,
                   const loom__hscan *sc);
    /* Writes body bytes of a streamed answer, framed by the protocol. */
    int (*body)(loom_http_req_t *req, const struct iovec *iov, int n);
    /* Ends a streamed answer (the last chunk, or nothing). */
    int (*end)(loom_http_req_t *req);
    /* The answer is complete (or dropped): the next request may begin, or
     * the stream closes. Frees the request or keeps it for a resume. */
    void (*finished)(loom_http_req_t *req);
    /* Stops / restarts reading a streamed body. */
    void (*pause)(loom_http_req_t *req);
    void (*resume)(loom_http_req_t *req);
    /* Bytes queued for the peer and not yet taken by the kernel. */
    size_t (*queued)(const loom_http_req_t *req);
    /* Sends the 101 head `hd`, then hands the connection to a new owner as
     * a plain socket with `opts` (*out); the request is finished. NULL
     * where a connection cannot change owner (HTTP/2 multiplexes). */
    int (*takeover)(loom_http_req_t *req, const loom__hhead *hd, const loom_tcp_opts *opts,
                    loom_socket_t **out);
} loom__hproto;

/* HTTP/1's per-request state. */
typedef struct loom__h1req {
    loom__bytes *in; /* input that arrived behind this request */
    loom_http_body_t bd;
    loom_http_framing_t fr;
    uint64_t discard_end; /* DISCARD: bd.total beyond which the connection closes */
} loom__h1req;

struct loom_http_req {
    loom__handle h; /* h.data: the application's slot; type LOOM__T_HTTP */
    loom_http_server_t *srv;
    const loom__hproto *proto;
    /* The connection's socket (HTTP/1's, or the one an HTTP/2 stream is
     * multiplexed on); NULL once the connection is gone. */
    loom_socket_t *sock;
    loom__queue node; /* in srv->reqs */
    /* The protocol's resume phase for this request: more to do once this
     * iteration's callbacks are over (input behind an answered request, a
     * resumed body). Queued while LOOM__HR_RESUMEQ. */
    loom__pending resume;
    loom_http_request_t rq;
    loom_http_header_t *hdrs;
    size_t nhdrs;
    const char *path;
    size_t path_len;
    const char *query;
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *head; /* the head's bytes, for persisting */
    size_t head_len;
    char *mem;     /* persisted head, fields and body */
    char *bodybuf; /* buffered body being assembled */
    size_t body_cap;
    uint64_t body_size; /* the announced body length, or UINT64_MAX */
    uint64_t out_left;  /* streamed answer with a length: announced bytes not yet written */
    uint32_t flags;
    uint32_t xlen; /* bytes of srv->xbuf this request points into (path, host) */
    uint8_t bstate;
    uint8_t astate;
    /* HTTP/2: the stream id, kept after the stream is gone so that
     * loom_http_req_stream_id() still names it in on_close. */
    uint32_t h2_id;
    uint32_t mem_cap; /* HTTP/2: mem's size as allocated from the block cache, or 0 */
    union {
        loom__h1req h1;
        struct loom__h2stream *h2; /* HTTP/2: the stream (h2_server.c) */
    } p;                           /* the protocol's part */
};

/* Per-loop server state (loom__http_loop.server). */
typedef struct loom__hsrv_loop {
    loom_loop_t *loop;
    loom__slab req_slab;
    loom__queue servers; /* open servers */
    /* HTTP/1 output: answers of the connection being processed (batch)
     * gather here and leave in one write when its input is done. */
    char *obuf;
    size_t olen, ocap;
    loom_socket_t *batch;
    /* The batch may gather this much before its connection is above high
     * water (high water minus what its socket already queues): no further
     * request is parsed once olen reaches it. */
    size_t olimit;
    /* "Date: ...\r\n" for the current second. */
    char date[40];
    uint64_t date_next; /* loop ms at which to refresh it */
    loom__handle *sentinel;
    /* HTTP/2 (h2_server.c): nghttp2's output frame buffer, one per loop
     * and shared by the loop's connections (loom__h2_mem_malloc). */
    void *h2_frame;
    size_t h2_frame_len;
    /* nghttp2's page-sized zeroed allocations (h2_mem.c), made on first
     * use, and the slot the last one got. */
    struct loom__h2arena *h2_arena;
    struct loom__h2slot *h2_slot;
    bool h2_making;  /* inside nghttp2_session_server_new3 */
    bool h2_sending; /* a flush is using the frame buffer */
} loom__hsrv_loop;

typedef struct loom__hgroup loom__hgroup;

struct loom_http_server {
    loom__handle h;          /* h.data: the server's data slot */
    loom_tcp_server_t *lsrv; /* the listener (NULL once closed); accepts into cls */
    loom__hsrv_loop *sl;
    loom__sock_class *cls;
    loom_http_req_cb on_request;
    loom_http_server_opts o;
    loom_http_limits_t lim;
    /* Header fields of the head being parsed (lim.max_headers of them). The
     * server's own, never reallocated: a request points into it until it
     * is persisted, and no other server's creation can move it. */
    loom_http_header_t *hdrs;
    /* NUL-terminated copies the head has no room for: the path of a target
     * with a query or in absolute form, and an absolute-form target's
     * authority (the reconciled Host). lim.max_request_line + 2 bytes, never
     * reallocated; a request points into it until it is persisted. */
    char *xbuf;
    uint32_t ms_header;
    uint32_t ms_body;
    uint8_t g_idle, g_head, g_body, g_linger; /* socket timeout groups */
    uint32_t nconns, nreqs, max_conns;
    uint32_t ndiscard; /* answered requests whose body is being dropped (in nreqs) */
    uint32_t server_name_len;
    int port;
    bool paused;      /* accepting paused: max_connections reached */
    bool closing;     /* graceful close in progress */
    bool done;        /* everything finished, on_done queued or run */
    loom__queue node; /* in sl->servers */
    loom__queue reqs; /* live requests */
    loom__pending done_pend;
    loom_http_server_cb on_done;
    loom__hgroup *group; /* threads > 1: the group (on every member) */
    unsigned index;      /* thread index within the group */
};

/* Whether a write to `s` has failed (the peer reset it, EPIPE): the socket
 * layer drops the bytes, returns 0 and reports the error from the loop, so
 * until then only this says the client is gone. Both protocols' streamed
 * writes return LOOM_ECLOSED then. */
static inline bool loom__hsock_broken(const loom_socket_t *s)
{
    return s != NULL && s->wq != NULL && s->wq->error != 0;
}

static inline uint32_t loom__now32(const loom_loop_t *loop)
{
    return (uint32_t)loop->now;
}

/* Copies n bytes to o and returns the end. */
static inline char *loom__put(char *o, const char *s, size_t n)
{
    memcpy(o, s, n);
    return o + n;
}

/* Writes v in decimal at o (no NUL) and returns the end. */
static inline char *loom__put_u64(char *o, uint64_t v)
{
    char tmp[20];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *o++ = tmp[--i];
    return o;
}

/* Writes a status code as three digits at o (no NUL). */
static inline void loom__put_status(char *o, int status)
{
    o[0] = (char)('0' + status / 100 % 10);
    o[1] = (char)('0' + status / 10 % 10);
    o[2] = (char)('0' + status % 10);
}

/* --- server.c: the server object and the neutral request ------------------ */

/* The loop's server state, created on first use (NULL on ENOMEM). */
loom__hsrv_loop *loom__hsrv_loop_get(loom_loop_t *loop);
/* Reports client trouble to the server's on_event, the loop default, or
 * the debug log. */
void loom__hsrv_emit(loom_http_server_t *srv, loom_event_kind_t kind, int code, const char *msg);
/* Queues on_done if a closing server has nothing left. */
void loom__hsrv_check_done(loom_http_server_t *srv);
/* Frees a finished server and runs on_done (see loom__hsrv_close_local). */
void loom__hsrv_finish(loom_http_server_t *srv);
/* Graceful / forced close of one server (this thread). */
void loom__hsrv_close_local(loom_http_server_t *srv, bool force);
/* The connection of `s` left the server (closed or handed over): updates
 * the count, resumes accepting, and may finish a closing server. */
void loom__hsrv_conn_gone(loom_http_server_t *srv);

/* A new request on connection `s`, carried by `proto`. NULL on ENOMEM. */
loom_http_req_t *loom__hreq_new(loom_http_server_t *srv, loom_socket_t *s,
                                const loom__hproto *proto);
/* Frees a request: `now` at once (answered inside the state machine's own
 * processing), else through the closing list. */
void loom__hreq_free_ex(loom_http_req_t *req, bool now);
void loom__hreq_free(loom_http_req_t *req);
/* Copies what still points into a transient buffer into the request's own
 * allocation. Returns 0 or LOOM_ENOMEM. */
int loom__hreq_persist(loom_http_req_t *req);
/* Appends a piece of a buffered body. Returns 0 or LOOM_ENOMEM. */
int loom__hreq_body_append(loom_http_req_t *req, const char *p, size_t n);
/* Runs on_request. */
void loom__hreq_dispatch(loom_http_server_t *srv, loom_http_req_t *req);
/* Runs on_body (streaming mode; p NULL is the end call) and returns its
 * verdict. */
int loom__hreq_on_body(loom_http_server_t *srv, loom_http_req_t *req, const char *p, size_t n);
/* The client went away: on_close for a request the application owns and
 * has not answered, else the request is freed. */
void loom__hreq_gone(loom_http_req_t *req);
/* Whether an HTTP/1 request-target has a form its method allows. */
bool loom__hreq_target_ok(const loom_http_request_t *rq);
/* Checks the host of a parsed head: 0, or the status to answer. */
int loom__hreq_check_host(loom_http_server_t *srv, const loom_http_request_t *rq, size_t nh);
/* Splits the target into path and query (see server.c). */
void loom__hreq_split_target(loom_http_req_t *req);
/* True if the head has an Expect other than 100-continue. */
bool loom__hreq_bad_expect(const loom_http_header_t *h, size_t n);

/* --- server_resp.c: answer fields -------------------------------------------- */

/* Which of loom's own fields a name is (LOOM__HK_*). */
int loom__hdr_kind(const char *name, size_t nl);
/* The cached "Date: ...\r\n" line (37 bytes) of this second. */
const char *loom__hsrv_date(loom__hsrv_loop *sl);

/* --- server_h1.c: HTTP/1 ------------------------------------------------------ */

extern const loom__hproto loom__h1_proto;
/* Sets the HTTP/1 connection hooks on a server's socket class. */
void loom__h1_class_init(loom__sock_class *cls);
/* The connection was accepted (after the TLS handshake, on an HTTPS
 * server): from now on it counts and its events are the connection's. A
 * socket that fails before (its handshake) is closed quietly: it never was
 * a connection of the server. */
void loom__h1_accepted(loom_socket_t *s);
/* The connection was accepted with ALPN "h2": it is HTTP/2 from the start. */
void loom__h1_accepted_h2(loom_socket_t *s);
/* Graceful server close: closes the connection if it is between requests
 * (force: closes it anyway). */
void loom__h1_close_conn(loom_socket_t *s, bool force);
/* Loop free: drops what the connection holds, without callbacks. */
void loom__h1_drop_conn(loom_socket_t *s);
/* Closes the connection of `s` now (detaching first). */
void loom__h1_close(loom_socket_t *s, bool graceful);

/* --- server_h1_out.c: HTTP/1's write half -------------------------------------- */

/* loom__h1_proto's start, interim, body, end and queued (see loom__hproto). */
int loom__h1_start(loom_http_req_t *req, const loom__hhead *hd);
int loom__h1_interim(loom_http_req_t *req, int status, const char *const *hdrs,
                     const loom__hscan *sc);
int loom__h1_body(loom_http_req_t *req, const struct iovec *iov, int n);
int loom__h1_end(loom_http_req_t *req);
size_t loom__h1_queued(const loom_http_req_t *req);
/* Queues a canned error answer ("Connection: close") for `status` on s:
 * in the batch if s is being processed, else sent now. Returns 0 or a
 * LOOM_E* code. */
int loom__h1_error(loom__hsrv_loop *sl, loom_socket_t *s, int status);
/* Writes the 101 head `hd` and sends it now, behind everything batched for
 * the connection (nothing stays in the batch). Returns 0 or a LOOM_E* code. */
int loom__h1_upgrade_head(loom_http_req_t *req, const loom__hhead *hd);
/* Queues "HTTP/1.1 100 Continue" the same way. */
int loom__h1_continue(loom__hsrv_loop *sl, loom_socket_t *s);
/* Upgrade: h2c: sends "HTTP/1.1 101 Switching Protocols" on s now, behind
 * everything batched for it. Returns 0, LOOM_ENOMEM (nothing was sent), or
 * another LOOM_E* code (the connection is closed). */
int loom__h1_switch_h2c(loom__hsrv_loop *sl, loom_socket_t *s);

/* --- h2_server.c: HTTP/2 ------------------------------------------------------ */

typedef struct loom__h2conn loom__h2conn;
extern const loom__hproto loom__h2_proto;
/* Whether an HTTPS server offers h2 / a plain one takes h2c. */
bool loom__h2_enabled(const loom_http_server_t *srv, bool tls);
/* Serves connection s as HTTP/2 from now on: sends the server's SETTINGS
 * and feeds buf[0..len) (the preface and what followed; may be empty).
 * Returns the connection state, or NULL (out of memory: nothing sent). */
loom__h2conn *loom__h2_new(loom_socket_t *s);
void loom__h2_read(loom__h2conn *c, char *buf, size_t len);
/* The socket failed, timed out or saw eof (proto_event). */
void loom__h2_event(loom__h2conn *c, loom_event_kind_t kind, int code, const char *msg);
/* The socket's queue fell below low water. */
void loom__h2_drain(loom__h2conn *c);
/* Graceful server close: GOAWAY, streams finish (force: close now). */
void loom__h2_close_conn(loom__h2conn *c, bool force);
/* The connection leaves (the one way out, from loom__hconn_detach): its
 * requests hear on_close, everything is freed (later if inside nghttp2). */
void loom__h2_free(loom__h2conn *c);
/* Loop free: drops everything without callbacks. */
void loom__h2_drop(loom__h2conn *c);
uint32_t loom__h2_stream_id(const loom_http_req_t *req);
/* Upgrade: h2c, before the 101: a session for s whose stream 1 is the
 * HTTP/1.1 request rq (fields h[0..nh), NUL-terminated; connection fields
 * left out), with the client's settings set[0..setlen) applied. Nothing is
 * sent or dispatched yet. NULL if it cannot be made (out of memory, or
 * nghttp2 refused): the request stays on HTTP/1.1. */
loom__h2conn *loom__h2_upgrade(loom_socket_t *s, const loom_http_request_t *rq,
                               const loom_http_header_t *h, size_t nh, const uint8_t *set,
                               size_t setlen);
/* After the 101 (the connection is HTTP/2 now): dispatches stream 1's
 * request and sends the server's SETTINGS and whatever the application
 * answered. */
void loom__h2_upgrade_begin(loom__h2conn *c);

/* --- h2_upgrade.c: Upgrade: h2c, the HTTP/1.1 side ------------------------------ */

/* HTTP2-Settings carries at most this many settings (nghttp2's bound on a
 * SETTINGS frame, nghttp2_option_set_max_settings in h2_server.c). */
#define LOOM__H2C_SETTINGS_MAX 32
/* Whether the parsed request rq (fields h[0..nh)) asks for h2c in a way
 * loom accepts on this server: returns the length of its decoded
 * HTTP2-Settings payload (in out, LOOM__H2C_SETTINGS_MAX * 6 bytes), or -1
 * to serve it on HTTP/1.1. */
long loom__h2c_wanted(const loom_http_server_t *srv, const loom_http_request_t *rq,
                      const loom_http_header_t *h, size_t nh, uint8_t *out);
/* True if field f of the head h[0..nh) belongs to the HTTP/1 connection
 * (Connection, Upgrade, HTTP2-Settings, ..., and the fields Connection
 * names), not to the request that becomes stream 1. */
bool loom__h2c_hop_field(const loom_http_header_t *h, size_t nh, const loom_http_header_t *f);

/* --- server_threads.c ------------------------------------------------------- */

int loom__hgroup_start(loom_http_server_t *srv, const char *bind, unsigned threads);
/* Asks the other members to close (graceful or forced). */
void loom__hgroup_close(loom_http_server_t *srv, bool force);
/* Called by the caller's server once it finished locally: returns true if
 * every thread is done too (then the group is freed). */
bool loom__hgroup_local_done(loom_http_server_t *srv);
/* Loop free of the caller's loop: stops and joins the threads. */
void loom__hgroup_free(loom_http_server_t *srv);

#endif
