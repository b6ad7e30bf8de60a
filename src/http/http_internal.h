/* http/http_internal.h - what the HTTP server and client share inside loom.
 * Not installed.
 *
 * The loop has one slot for HTTP state (loop->http) and one free hook
 * (loop->http_free). Both modules use them through loom__http_get(): it
 * creates a loom__http_loop that holds one pointer and one free hook per
 * module, and installs a loop->http_free that calls each hook. A module that
 * needs per-loop state stores it in its own member the first time and sets
 * its hook; nothing else in the loop is shared.
 *
 * Loop thread only.
 */
#ifndef LOOM_HTTP_INTERNAL_H
#define LOOM_HTTP_INTERNAL_H

#include "core/internal.h"
#include "loom/http.h"
#include "loom/http_parser.h"

typedef struct loom__http_loop {
    void *server; /* server.c: loom__hsrv_loop * */
    void *client; /* client.c */
    /* Called at loom_loop_free(), before the net layer closes the sockets
     * (so they may still be walked); each must free its module's state and
     * reset its member. */
    void (*server_free)(loom_loop_t *loop);
    void (*client_free)(loom_loop_t *loop);
} loom__http_loop;

/* The loop's shared HTTP state, created on first use (NULL on ENOMEM). */
loom__http_loop *loom__http_get(loom_loop_t *loop);

/* Field rules (common.c), the same for what the server sends, what the
 * client sends and what the client accepts from the caller: a name is one
 * or more token characters (RFC 9110 section 5.6.2); a value holds HTAB, SP,
 * visible ASCII and obs-text, no other control character (CR and LF above
 * all: no header injection) and no DEL. The tables are 1 for a byte that
 * stops the field, NUL included, so a scan of a C string needs no strlen(). */
extern const unsigned char loom__http_name_stop[256];
extern const unsigned char loom__http_value_stop[256];
bool loom__http_token_ok(const char *s, size_t n);
bool loom__http_value_ok(const char *s, size_t n);

/* Writes the chunk-size line "<hex>\r\n" for a chunk of n bytes into out
 * (LOOM__HTTP_CHUNK_LINE bytes hold any) and returns its length. */
#define LOOM__HTTP_CHUNK_LINE 20
size_t loom__http_chunk_line(char *out, uint64_t n);

/* Writes `status`'s status line "HTTP/1.1 200 OK\r\n" into buf (64 bytes
 * hold any) and returns its length. */
size_t loom__http_status_line(int status, char *buf);

/* The cached header line "Date: <IMF-fixdate>\r\n" (37 characters,
 * NUL-terminated), refreshed at most once a second. NULL on ENOMEM. */
const char *loom__http_date_now(loom_loop_t *loop);

/* ===========================================================================
 * Server internals (server*.c). The client does not need anything below.
 * ======================================================================== */

#include "net/net_internal.h"

/* A growable byte buffer for input that must outlive a read: a partial
 * head, or bytes that arrived behind a request still in flight. */
typedef struct loom__hbuf {
    uint32_t len;  /* bytes in data */
    uint32_t cap;  /* bytes allocated for data */
    uint32_t last; /* length at the last incomplete head parse (parser's last_len) */
    char data[];
} loom__hbuf;

/* Connection states (loom__hconn.state). */
enum {
    LOOM__HC_IDLE = 0, /* between requests, nothing buffered */
    LOOM__HC_HEAD,     /* a partial head waits in u.in */
    LOOM__HC_REQ,      /* a request is in flight: u.req */
    LOOM__HC_LINGER,   /* answered an error; discarding input until eof */
    LOOM__HC_DEAD      /* detached: the socket is closed or closing */
};

/* Connection flags (loom__hconn.flags). */
enum {
    LOOM__HCF_CLOSE = 1u << 0,  /* close once the current batch is written */
    LOOM__HCF_LINGER = 1u << 1, /* ... by lingering (an answered error) */
    /* Output above high water: reading and parsing stop (the unparsed input
     * waits in u.in, state HEAD) until the socket drains. */
    LOOM__HCF_FULL = 1u << 2
};

/* The per-connection state: 16 bytes in the socket's extension area, so an
 * idle keep-alive connection costs the socket and nothing else. */
typedef struct loom__hconn {
    union {
        loom__hbuf *in;       /* HEAD: the partial head */
        loom_http_req_t *req; /* REQ: the request in flight */
    } u;
    uint32_t t0; /* loop ms (low 32 bits) of the current head's first byte, or linger start */
    uint8_t state;
    uint8_t flags;
    uint16_t nreq; /* requests served (saturates) */
} loom__hconn;

/* Request body states. */
enum {
    LOOM__HB_NONE = 0, /* no body, or complete */
    LOOM__HB_READ      /* body bytes still to come */
};

/* Answer states. */
enum {
    LOOM__HA_NONE = 0, /* not answered yet */
    LOOM__HA_STREAM,   /* a streamed answer is in progress */
    LOOM__HA_DONE      /* answered (or released) */
};

/* Request flags. */
enum {
    LOOM__HR_DISPATCHED = 1u << 0,  /* on_request ran: the application owns it */
    LOOM__HR_GONE = 1u << 1,        /* the client went away */
    LOOM__HR_PERSIST = 1u << 2,     /* head (and body) copied into mem */
    LOOM__HR_PAUSED = 1u << 3,      /* streamed body: paused by the application */
    LOOM__HR_CLOSE = 1u << 4,       /* close the connection after the answer */
    LOOM__HR_NOBODY = 1u << 5,      /* the answer carries no body (HEAD, 204, 304) */
    LOOM__HR_CHUNKED = 1u << 6,     /* streamed answer: chunked */
    LOOM__HR_UNTIL_CLOSE = 1u << 7, /* streamed answer: delimited by closing */
    LOOM__HR_RESUMEQ = 1u << 8,     /* linked in the loop's resume queue */
    LOOM__HR_IN_CB = 1u << 10,      /* inside a callback that receives it */
    LOOM__HR_FREED = 1u << 11,      /* handed to the closing list */
    LOOM__HR_END_DUE = 1u << 13,    /* streamed body complete while paused: end call due */
    /* Expect: 100-continue and no 100 sent: the client may never send the
     * body, so an answer before it closes the connection. */
    LOOM__HR_NOCONT = 1u << 14,
    LOOM__HR_DISCARD = 1u << 15 /* answered: the rest of the body is read and dropped */
};

struct loom_http_req {
    loom__handle h; /* h.data: the application's slot; type LOOM__T_HTTP */
    loom_http_server_t *srv;
    loom_socket_t *sock; /* NULL once the connection is gone */
    loom__queue node;    /* in srv->reqs */
    loom__queue rnode;   /* in the loop's resume queue */
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
    loom__hbuf *in; /* input that arrived behind this request */
    loom_http_body_t bd;
    loom_http_framing_t fr;
    uint64_t out_left;    /* raw streamed answer: announced bytes not yet written */
    uint64_t discard_end; /* DISCARD: bd.total beyond which the connection closes */
    uint32_t flags;
    uint32_t xlen; /* bytes of srv->xbuf this request points into (path, host) */
    uint8_t bstate;
    uint8_t astate;
};

/* Per-loop server state (loom__http_loop.server). */
typedef struct loom__hsrv_loop {
    loom_loop_t *loop;
    loom__slab req_slab;
    loom__queue servers; /* open servers */
    /* Output: answers of the connection being processed (batch) gather here
     * and leave in one write when its input is done. */
    char *obuf;
    size_t olen, ocap;
    loom_socket_t *batch;
    /* The batch may gather this much before its connection is above high
     * water (high water minus what its socket already queues): no further
     * request is parsed once olen reaches it. */
    size_t olimit;
    /* Requests whose connection has more to do once this iteration's
     * callbacks are over (input behind an answered request, a resumed body). */
    loom__queue resume_q;
    loom__pending resume;
    bool resume_queued;
    /* "Date: ...\r\n" for the current second. */
    char date[40];
    uint64_t date_next; /* loop ms at which to refresh it */
    loom__handle *sentinel;
} loom__hsrv_loop;

typedef struct loom__hgroup loom__hgroup;

struct loom_http_server {
    loom__handle h;          /* h.data: the server's data slot */
    loom_tcp_server_t *lsrv; /* the listener (NULL once closed); accepts into cls */
    loom__hsrv_loop *hl;
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
    loom__queue node; /* in hl->servers */
    loom__queue reqs; /* live requests */
    loom__pending done_pend;
    loom_http_server_cb on_done;
    loom__hgroup *group; /* threads > 1: the group (on every member) */
    unsigned index;      /* thread index within the group */
};

/* server.c */
loom__hsrv_loop *loom__hsrv_loop_get(loom_loop_t *loop);
/* The connection state of a server socket: its extension bytes. */
static inline loom__hconn *loom__hconn_of(loom_socket_t *s)
{
    return (loom__hconn *)loom__socket_ext(s);
}
/* The request is answered (completely sent or dropped): decides keep-alive,
 * frees or keeps it for a resume. */
void loom__hreq_answered(loom_http_req_t *req);
/* Frees a request (through the closing list). */
void loom__hreq_free(loom_http_req_t *req);
/* Frees a finished server and runs on_done (see loom__hsrv_close_local). */
void loom__hsrv_finish(loom_http_server_t *srv);
/* Closes the connection of `s` now (detaching first). */
void loom__hconn_close(loom_socket_t *s, bool graceful);
/* Stops reading for a paused streamed body / restarts it. */
void loom__hreq_pause(loom_http_req_t *req);
void loom__hreq_resume(loom_http_req_t *req);
/* Graceful / forced close of one server (this thread). */
void loom__hsrv_close_local(loom_http_server_t *srv, bool force);

/* server_resp.c */
/* Ensures room for `n` more bytes in the output buffer. Returns 0 or
 * LOOM_ENOMEM. */
int loom__hout_reserve(loom__hsrv_loop *hl, size_t n);
/* Sends hl->obuf[start..olen) to s unless s is the connection being
 * processed (then it stays in the batch); truncates. Returns 0 or a
 * LOOM_E* code. */
int loom__hout_commit(loom__hsrv_loop *hl, loom_socket_t *s, size_t start);
/* Writes the batch (if it belongs to s) followed by `iov`, in one writev. */
int loom__hout_writev(loom__hsrv_loop *hl, loom_socket_t *s, const struct iovec *iov, int n);
/* Queues a canned error answer ("Connection: close") for `status`. */
int loom__hout_error(loom__hsrv_loop *hl, loom_socket_t *s, int status);
/* Queues "HTTP/1.1 100 Continue". */
int loom__hout_continue(loom__hsrv_loop *hl, loom_socket_t *s);

/* server_threads.c */
int loom__hgroup_start(loom_http_server_t *srv, const char *bind, unsigned threads);
/* Asks the other members to close (graceful or forced). */
void loom__hgroup_close(loom_http_server_t *srv, bool force);
/* Called by the caller's server once it finished locally: returns true if
 * every thread is done too (then the group is freed). */
bool loom__hgroup_local_done(loom_http_server_t *srv);
/* Loop free of the caller's loop: stops and joins the threads. */
void loom__hgroup_free(loom_http_server_t *srv);

#endif
