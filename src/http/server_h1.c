/* http/server_h1.c - HTTP/1 on the server, the connection half: the
 * connection state machine (loom__hconn in the socket's extension bytes),
 * parsing requests in place, request bodies (buffered, streamed,
 * discarded), Expect: 100-continue, batching a connection's answers,
 * pipelining, keep-alive, lingering close, the resume phase and the
 * takeover of a connection by a new owner.
 * The neutral request (server.c, server_resp.c) reaches it through
 * loom__h1_proto; the server object sets its socket class's hooks with
 * loom__h1_class_init.
 *
 * A connection is a loom socket of the server's class (protocol hooks, 16
 * bytes of extension: loom__hconn). It reads into the loop's scratch buffer
 * (heads in small reads, bodies in large ones: loom__hconn_settle) and
 * parses requests in place; nothing is allocated for a request that
 * arrives in one read and is answered inside on_request. Only what must
 * outlive a read is copied: a partial head (into a loom__bytes), the
 * request the application keeps (loom__hreq_persist), and bytes that
 * arrive behind a request still in flight.
 *
 * One request at a time per connection: the next pipelined request is parsed
 * only when the current one has been answered. While the connection is being
 * processed (sl->batch == the socket) answers gather in the loop's output
 * buffer and leave in one write at the end (loom__hconn_batch_end). An
 * answer's bytes are written by server_h1_out.c (the write half).
 *
 * The one function that settles where a connection stands after any change
 * (reading on or off, which timeout applies, closing) is loom__hconn_settle.
 * The one path by which a connection leaves is loom__hconn_detach: it frees
 * what the connection holds and tells the application about a request it
 * still owns (on_close).
 *
 * Timeouts use the socket layer's timeout groups (no timer per
 * connection): the read timeout of a socket is switched between the idle,
 * header, body and linger groups as the state changes; the write timeout is
 * the class's. The header deadline is also checked against the head's first
 * byte on every read, so a trickling client is cut off.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http/server_internal.h"
#include "net/handoff.h"

#define LOOM__HIN_MAX (64 * 1024) /* input stored behind a request before reading stops */
/* Linger: inactivity is the server's linger timeout group (2 s, server.c). */
#define LOOM__HLINGER_TOTAL_MS 5000 /* linger: at most */
/* Discarding the rest of an answered request's body to keep the connection:
 * at most this many bytes, and at most the body timeout in all (each pause
 * too); beyond either the connection closes (by lingering), like nginx's
 * discarded bodies. */
#define LOOM__HDISCARD_MAX (1u << 20)

/* Connection states (loom__hconn.state). */
enum {
    LOOM__HC_NEW = 0, /* not accepted yet (a TLS handshake runs); counted */
    LOOM__HC_IDLE,    /* between requests, nothing buffered */
    LOOM__HC_HEAD,    /* a partial head waits in u.in */
    LOOM__HC_REQ,     /* a request is in flight: u.req */
    LOOM__HC_LINGER,  /* answered an error; discarding input until eof */
    LOOM__HC_DEAD,    /* detached: the socket is closed, closing or handed over */
    LOOM__HC_H2       /* an HTTP/2 connection: u.h2 (h2_server.c) does the rest */
};

/* Connection flags (loom__hconn.flags). */
enum {
    LOOM__HCF_CLOSE = 1u << 0,  /* close once the current batch is written */
    LOOM__HCF_LINGER = 1u << 1, /* ... by lingering (an answered error) */
    /* The batch's answers reached their limit or the socket queues output:
     * reading and parsing stop (the unparsed input waits in u.in, state
     * HEAD) until the socket's queue is empty (loom__hconn_written). */
    LOOM__HCF_FULL = 1u << 2,
    /* Taken over (state DEAD): input behind the request, still on the
     * state machine's stack, goes to the new owner. */
    LOOM__HCF_TAKEN = 1u << 3
};

/* The per-connection state: 16 bytes in the socket's extension area, so an
 * idle keep-alive connection costs the socket and nothing else. */
typedef struct loom__hconn {
    union {
        loom__bytes *in;      /* HEAD: the partial head (aux: the parser's last length) */
        loom_http_req_t *req; /* REQ: the request in flight */
        loom__h2conn *h2;     /* H2: the HTTP/2 connection */
    } u;
    uint32_t t0; /* loop ms (low 32 bits) of the current head's first byte, or linger start */
    uint8_t state;
    uint8_t flags;
    uint16_t nreq; /* requests served (saturates) */
} loom__hconn;

/* The connection state of a server socket: its extension bytes. */
static inline loom__hconn *loom__hconn_of(loom_socket_t *s)
{
    return (loom__hconn *)loom__socket_ext(s);
}

/* Appends p[0..n) to out (at *len, cap bytes in all), at most max bytes of
 * it: bytes outside printable ASCII (a target may carry obs-text, the event
 * goes to logs) as %XX, and "..." if cut. */
static void loom__hconn_quote(char *out, size_t *len, size_t cap, const char *p, size_t n,
                              size_t max)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = *len;
    for (size_t i = 0; i < n && i < max && o + 4 < cap; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch > 0x20 && ch < 0x7f) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (n > max && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    *len = o;
}

/* Reports trouble with the client of connection s, naming it: "http client
 * ADDR: why", or "http client ADDR: METHOD TARGET: why" once a request head
 * was read (rq; the target bounded). */
static void loom__hconn_report(loom_socket_t *s, const loom_http_request_t *rq,
                               loom_event_kind_t kind, int code, const char *why)
{
    char peer[128], msg[400];
    loom__socket_peer_name(s, peer, sizeof peer);
    size_t n = (size_t)snprintf(msg, sizeof msg, "http client %s: ", peer[0] ? peer : "?");
    if (n >= sizeof msg)
        n = sizeof msg - 1;
    if (rq != NULL && rq->method_str != NULL && rq->method_len) {
        loom__hconn_quote(msg, &n, sizeof msg, rq->method_str, rq->method_len, 24);
        if (rq->target != NULL && rq->target_len && n + 2 < sizeof msg) {
            msg[n++] = ' ';
            loom__hconn_quote(msg, &n, sizeof msg, rq->target, rq->target_len, 96);
        }
        snprintf(msg + n, sizeof msg - n, ": %s", why);
    } else {
        snprintf(msg + n, sizeof msg - n, "%s", why);
    }
    loom__hsrv_emit(s->h.data, kind, code, msg);
}

/* The head of the request in flight on connection s, for a report outside
 * the parse: only a persisted head is sure to outlive its input (an answered
 * request's may point into input since reused). NULL if none. */
static const loom_http_request_t *loom__hconn_rq(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_REQ && c->u.req != NULL && (c->u.req->flags & LOOM__HR_PERSIST))
        return &c->u.req->rq;
    return NULL;
}

static void loom__hconn_settle(loom_socket_t *s);
static void loom__hconn_detach(loom_socket_t *s);
static void loom__hconn_process_store(loom_http_server_t *srv, loom_socket_t *s, loom__bytes *b);
static void loom__h1_finished(loom_http_req_t *req);
static void loom__h1_resume_run(loom__pending *p);
static void loom__hconn_h2(loom_socket_t *s, char *buf, size_t len);
static bool loom__hconn_h2_stored(loom_socket_t *s, char *buf, size_t len);
static bool loom__hconn_h2c(loom_http_server_t *srv, loom_socket_t *s,
                            const loom_http_request_t *rq, size_t nh);
#define LOOM__H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

/* Queues the request's resume phase (once): the core's pending queue, one
 * entry per request, as the client does per connection. */
static void loom__hreq_queue_resume(loom_http_req_t *req)
{
    if (req->flags & LOOM__HR_RESUMEQ)
        return;
    req->flags |= LOOM__HR_RESUMEQ;
    req->resume.fn = loom__h1_resume_run;
    loom__pending_queue(req->h.loop, &req->resume);
}

/* --- Connections: leaving -------------------------------------------------------------- */

/* The request loses its connection: HTTP/1's part goes, then the neutral
 * part decides (on_close or free). */
static void loom__h1_req_gone(loom_http_req_t *req)
{
    loom__bytes_free(&req->p.h1.in);
    loom__hreq_gone(req);
}

/* The one way out: frees what the connection holds, hands its request to
 * loom__hreq_gone, and updates the server's count. Idempotent. The socket
 * itself is closed by the caller (or by the TCP layer after proto_event). */
static void loom__hconn_detach(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_DEAD)
        return;
    if (c->state == LOOM__HC_NEW) {
        /* It ends in its handshake: counted since accept, nothing held. */
        c->state = LOOM__HC_DEAD;
        loom__hsrv_conn_gone(s->h.data);
        return;
    }
    loom_http_server_t *srv = s->h.data;
    uint8_t st = c->state;
    c->state = LOOM__HC_DEAD;
    if (st == LOOM__HC_HEAD) {
        loom__bytes_free(&c->u.in);
    } else if (st == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        c->u.req = NULL;
        loom__h1_req_gone(req);
    } else if (st == LOOM__HC_H2) {
        loom__h2conn *h2 = c->u.h2;
        c->u.h2 = NULL;
        loom__h2_free(h2);
    }
    c->u.in = NULL;
    loom__hsrv_conn_gone(srv);
}

void loom__h1_close(loom_socket_t *s, bool graceful)
{
    loom__hconn_detach(s);
    if (loom_socket_closed(s))
        return;
    if (graceful)
        loom_socket_close(s);
    else
        loom_socket_abort(s);
}

/* Drops what the connection holds but keeps it counted: used before
 * lingering. */
static void loom__hconn_drop(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_HEAD) {
        loom__bytes_free(&c->u.in);
    } else if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        c->u.req = NULL;
        c->state = LOOM__HC_IDLE;
        loom__h1_req_gone(req);
    }
    c->u.in = NULL;
}

/* Lingering close: the answer (an error, or a last answer) is sent, then the
 * write side is shut down, and what the client still sends is read and
 * discarded until it closes, for at most LOOM__HLINGER_TOTAL_MS. Closing
 * with unread input would make the kernel reset the connection, and the
 * reset can destroy the answer before the client reads it. */
static void loom__hconn_linger(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hconn_drop(s);
    if (c->state == LOOM__HC_DEAD)
        return;
    c->state = LOOM__HC_LINGER;
    c->flags = 0;
    c->t0 = loom__now32(s->h.loop);
    if (loom_socket_shutdown(s) < 0) {
        loom__h1_close(s, false);
        return;
    }
    loom__hconn_settle(s);
}

/* --- Connections: settling --------------------------------------------------------------- */

/* Puts the connection where its state says: closes it if it must close,
 * else sets reading on or off and the read timeout that applies. */
static void loom__hconn_settle(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    if (c->state == LOOM__HC_DEAD || c->state == LOOM__HC_H2 || loom_socket_closed(s))
        return;
    if (c->flags & LOOM__HCF_CLOSE) {
        if (c->flags & LOOM__HCF_LINGER)
            loom__hconn_linger(s);
        else
            loom__h1_close(s, true);
        return;
    }
    if (srv->closing && c->state == LOOM__HC_IDLE) {
        loom__h1_close(s, true);
        return;
    }
    unsigned g = 0;
    bool rd = true, small = true;
    switch (c->state) {
    case LOOM__HC_IDLE:
        /* A connection that never sent a request has the header timeout. */
        g = c->nreq || !srv->g_head ? srv->g_idle : srv->g_head;
        break;
    case LOOM__HC_HEAD:
        if (c->flags & LOOM__HCF_FULL) {
            rd = false; /* the write timeout runs instead */
            break;
        }
        g = srv->g_head;
        break;
    case LOOM__HC_LINGER:
        g = srv->g_linger;
        small = false;
        break;
    default: {
        loom_http_req_t *req = c->u.req;
        if (req->flags & LOOM__H1R_DISCARD) {
            g = srv->g_body;
            small = false;
        } else if (req->astate == LOOM__HA_DONE) {
            rd = false; /* a resume is due */
        } else if (req->bstate == LOOM__HB_READ) {
            g = srv->g_body;
            small = false;
            rd = !(req->flags & LOOM__HR_PAUSED);
        } else {
            rd = !(req->flags & LOOM__HR_PAUSED) && loom__bytes_size(req->p.h1.in) < LOOM__HIN_MAX;
        }
        if (!rd)
            g = 0;
        break;
    }
    }
    /* Heads (and pipelined requests behind an answer) are read in small
     * pieces: input that has to wait (LOOM__HCF_FULL, or behind a request
     * in flight) is then at most one small read; bodies in large ones. */
    loom__socket_read_small(s, small);
    if (rd)
        loom__socket_read_start(s);
    else
        loom__socket_read_stop(s);
    loom__socket_set_rgroup(s, g);
}

/* The most answer bytes one batch of pipelined requests gathers before
 * parsing stops (and high water, if lower). */
#define LOOM__H1_BATCH_MAX (16 * 1024)

/* Starts processing a connection: its answers gather in the output buffer
 * until loom__hconn_batch_end(). Pipelined requests are parsed only while
 * the socket has nothing queued (the client takes what it is sent) and the
 * batch's answers are under LOOM__H1_BATCH_MAX; otherwise the rest waits,
 * unparsed, until the socket's queue is empty (loom__hconn_written). So a
 * client that pipelines and never reads makes the server hold one batch of
 * answers and the input of one read, which is small (LOOM__SOCKET_READ_SMALL,
 * loom__hconn_settle), not high water's worth. Measured (40 such clients,
 * loom-hello): 32 KiB batches and 64 KiB reads cost 60-65 KiB each, 16 KiB
 * and 16 KiB about 21, 16 KiB and 4 KiB about 15 (nginx 1.22: about 25).
 * Pipelining clients that read (wrk, 16 deep) gather under 2 KiB of answers
 * per read: neither limit is reached. */
static void loom__hconn_batch_begin(loom__hsrv_loop *sl, loom_socket_t *s)
{
    size_t hw = s->cls->high_water, q = s->wq ? loom_socket_queued(s) : 0;
    sl->batch = s;
    sl->olimit = q > 0 ? 0 : hw < LOOM__H1_BATCH_MAX ? hw : LOOM__H1_BATCH_MAX;
}

/* Input kept while the output was above high water: parse it now. */
static void loom__hconn_unfull(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    c->flags &= ~LOOM__HCF_FULL;
    if (c->state != LOOM__HC_HEAD)
        return;
    loom__bytes *b = c->u.in;
    c->u.in = NULL;
    c->state = LOOM__HC_IDLE;
    if (b == NULL)
        return;
    loom__hconn_batch_begin(srv->sl, s);
    loom__hconn_process_store(srv, s, b);
}

/* The end of processing a connection: its gathered answers leave in one
 * write, then it settles. If parsing stopped (LOOM__HCF_FULL) and the
 * kernel took the whole write, parsing goes on at once; otherwise it waits
 * for the socket's queue to empty (loom__hconn_written). */
static void loom__hconn_batch_end(loom__hsrv_loop *sl, loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    for (;;) {
        sl->batch = NULL;
        if (sl->olen) {
            if (!loom_socket_closed(s)) {
                int r = loom_socket_write(s, sl->obuf, sl->olen);
                if (r < 0 && loom_socket_closed(s))
                    loom__hconn_detach(s);
            }
            sl->olen = 0;
        }
        if (!(c->flags & LOOM__HCF_FULL) || c->state == LOOM__HC_DEAD || loom__socket_dead(s) ||
            loom_socket_queued(s) > 0)
            break;
        loom__hconn_unfull(s);
    }
    loom__hconn_settle(s);
}

/* --- Connections: the state machine ---------------------------------------------------- */

/* Answers a request that failed before the application saw it (or a body
 * that failed in buffered mode), reports it, and marks the connection to
 * linger-close after the batch. */
static void loom__hconn_fail(loom_socket_t *s, const loom_http_request_t *rq, int status,
                             const char *msg)
{
    loom_http_server_t *srv = s->h.data;
    loom__hconn *c = loom__hconn_of(s);
    int code = (status == 413 || status == 414 || status == 431) ? LOOM_ETOOBIG : LOOM_EHTTP;
    if (status == 0) /* out of memory */
        code = LOOM_ENOMEM;
    loom__hconn_report(s, rq, LOOM_EV_HTTP_ERROR, code, msg);
    if (c->state == LOOM__HC_DEAD)
        return;
    if (status)
        loom__h1_error(srv->sl, s, status);
    c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
}

/* The answered request leaves the connection; the next may begin. Returns
 * false if the connection must close now (it is marked so). */
static bool loom__hconn_next(loom_socket_t *s, loom_http_req_t *req, bool now)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    bool body_left = req->bstate == LOOM__HB_READ;
    bool close = (req->flags & LOOM__HR_CLOSE) || body_left;
    c->state = LOOM__HC_IDLE;
    c->u.in = NULL;
    loom__hreq_free_ex(req, now);
    if (c->nreq < UINT16_MAX)
        c->nreq++;
    if (close || srv->closing) {
        c->flags |= LOOM__HCF_CLOSE;
        if (close)
            c->flags |= LOOM__HCF_LINGER;
        return false;
    }
    return true;
}

/* An answered request whose body is still arriving: returns true if the
 * rest is to be read and dropped to keep the connection (then the request
 * is in DISCARD mode), false if the connection closes instead: it closes
 * anyway, or the announced rest is beyond the bound. */
static bool loom__hreq_discard_start(loom_socket_t *s, loom_http_req_t *req)
{
    if (req->flags & LOOM__H1R_DISCARD)
        return true;
    loom_http_server_t *srv = req->srv;
    if ((req->flags & (LOOM__HR_CLOSE | LOOM__HR_GONE)) || srv->closing)
        return false;
    if (req->p.h1.fr.kind == LOOM_HTTP_BODY_LENGTH && req->p.h1.bd.remaining > LOOM__HDISCARD_MAX)
        return false;
    req->flags |= LOOM__H1R_DISCARD;
    req->flags &= ~(LOOM__HR_PAUSED | LOOM__HR_END_DUE);
    srv->ndiscard++;
    req->p.h1.discard_end = req->p.h1.bd.total + LOOM__HDISCARD_MAX;
    loom__hconn_of(s)->t0 = loom__now32(s->h.loop);
    return true;
}

/* DISCARD mode: drops body bytes from p[0..n). Returns the bytes consumed
 * (the body is complete when bstate is no longer READ), or -1 if the
 * connection must close (bad body, or over the bound: marked so). */
static long loom__hreq_discard(loom_socket_t *s, loom_http_req_t *req, char *p, size_t n)
{
    loom__hconn *c = loom__hconn_of(s);
    size_t off = 0;
    for (;;) {
        loom_http_body_out_t out;
        memset(&out, 0, sizeof out);
        int k = loom_http_body_parse(&req->p.h1.bd, p + off, n - off, &out);
        if (k < 0 || req->p.h1.bd.total > req->p.h1.discard_end) {
            c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
            return -1;
        }
        off += (size_t)k;
        if (out.done) {
            req->bstate = LOOM__HB_NONE;
            req->flags &= ~LOOM__H1R_DISCARD;
            req->srv->ndiscard--;
            return (long)off;
        }
        if (k == 0 && out.data_len == 0)
            return (long)off; /* more bytes needed */
    }
}

/* Feeds body bytes p[0..n) to the request in flight. Returns the bytes
 * consumed, or -1 if the connection failed. Stops when the body is done,
 * when the application pauses or answers, or when more bytes are needed. */
static long loom__hreq_body(loom_http_server_t *srv, loom_socket_t *s, loom_http_req_t *req,
                            char *p, size_t n)
{
    loom__hconn *c = loom__hconn_of(s);
    bool stream = srv->o.on_body != NULL;
    size_t off = 0;
    if (req->flags & LOOM__HR_END_DUE) {
        /* The body ended while paused: its end call was held back. */
        req->flags &= ~LOOM__HR_END_DUE;
        req->bstate = LOOM__HB_NONE;
        if (req->astate != LOOM__HA_DONE) {
            req->flags |= LOOM__HR_IN_CB;
            loom__hreq_on_body(srv, req, NULL, 0);
            req->flags &= ~LOOM__HR_IN_CB;
        }
        return 0;
    }
    for (;;) {
        loom_http_body_out_t out;
        memset(&out, 0, sizeof out);
        int k = loom_http_body_parse(&req->p.h1.bd, p + off, n - off, &out);
        if (k < 0) {
            if (stream && (req->flags & LOOM__HR_DISPATCHED)) {
                /* The application owns the request: it hears on_close. */
                loom__hconn_report(s, &req->rq, LOOM_EV_HTTP_ERROR,
                                   k == LOOM_HTTP_PERR_BODY_TOO_LARGE ? LOOM_ETOOBIG : LOOM_EHTTP,
                                   loom_http_perr_str(k));
                if (req->astate == LOOM__HA_NONE) {
                    loom__h1_error(srv->sl, s, loom_http_perr_status(k));
                    c->flags |= LOOM__HCF_CLOSE | LOOM__HCF_LINGER;
                } else {
                    c->flags |= LOOM__HCF_CLOSE;
                }
            } else {
                loom__hconn_fail(s, &req->rq, loom_http_perr_status(k), loom_http_perr_str(k));
            }
            return -1;
        }
        off += (size_t)k;
        if (out.data_len) {
            if (stream) {
                if (req->astate != LOOM__HA_DONE) {
                    req->flags |= LOOM__HR_IN_CB;
                    int v = loom__hreq_on_body(srv, req, out.data, out.data_len);
                    req->flags &= ~LOOM__HR_IN_CB;
                    if (v == LOOM_HTTP_PAUSE)
                        req->flags |= LOOM__HR_PAUSED;
                }
            } else if (loom__hreq_body_append(req, out.data, out.data_len) < 0) {
                loom__hconn_fail(s, &req->rq, 0, "out of memory");
                c->flags &= ~LOOM__HCF_LINGER;
                return -1;
            }
        }
        if (out.done) {
            if (c->state == LOOM__HC_DEAD) {
                req->bstate = LOOM__HB_NONE;
                return (long)off;
            }
            if (req->flags & LOOM__HR_PAUSED) {
                req->flags |= LOOM__HR_END_DUE; /* delivered on resume */
                return (long)off;
            }
            req->bstate = LOOM__HB_NONE;
            if (stream) {
                if (req->astate != LOOM__HA_DONE) {
                    req->flags |= LOOM__HR_IN_CB;
                    loom__hreq_on_body(srv, req, NULL, 0);
                    req->flags &= ~LOOM__HR_IN_CB;
                }
            } else {
                loom__hreq_dispatch(srv, req);
            }
            return (long)off;
        }
        if (c->state == LOOM__HC_DEAD || (c->flags & LOOM__HCF_CLOSE) ||
            (req->flags & LOOM__HR_PAUSED) || req->astate == LOOM__HA_DONE)
            return (long)off;
        if (k == 0 && out.data_len == 0)
            return (long)off; /* more bytes needed */
    }
}

/* Upgrade: h2c (RFC 7540 section 3.2). If the request rq (fields in
 * srv->hdrs, NUL-terminated) asks for it in a way loom accepts
 * (h2_upgrade.c), answers 101, makes the connection HTTP/2 and serves the
 * request as its stream 1; the caller feeds what follows the head to the
 * HTTP/2 connection. Returns false to serve the request on HTTP/1.1. */
static bool loom__hconn_h2c(loom_http_server_t *srv, loom_socket_t *s,
                            const loom_http_request_t *rq, size_t nh)
{
    loom__hconn *c = loom__hconn_of(s);
    uint8_t set[LOOM__H2C_SETTINGS_MAX * 6];
    long setlen = loom__h2c_wanted(srv, rq, srv->hdrs, nh, set);
    if (setlen < 0)
        return false;
    /* Everything that can fail without a trace comes before the 101. */
    loom__h2conn *h2 = loom__h2_upgrade(s, rq, srv->hdrs, nh, set, (size_t)setlen);
    if (h2 == NULL)
        return false;
    int r = loom__h1_switch_h2c(srv->sl, s);
    if (r < 0) {
        loom__h2_free(h2);
        return r != LOOM_ENOMEM || c->state == LOOM__HC_DEAD; /* closed, or HTTP/1.1 */
    }
    c->state = LOOM__HC_H2;
    c->u.h2 = h2;
    loom__socket_read_small(s, false);
    if (c->nreq < UINT16_MAX)
        c->nreq++;
    loom__h2_upgrade_begin(h2);
    return true;
}

/* A complete head was parsed from p[0..head_len): sets the request up and,
 * unless the input is rejected, dispatches it or starts its body. Returns
 * false if the connection failed. */
static bool loom__hconn_begin(loom_http_server_t *srv, loom_socket_t *s, char *p, size_t head_len,
                              const loom_http_request_t *rq, size_t nh, bool more)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hsrv_loop *sl = srv->sl;
    loom_http_header_t *hdrs = srv->hdrs;

    if (rq->method == LOOM_HTTP_METHOD_OTHER) {
        loom__hconn_fail(s, rq, 501, "method not implemented");
        return false;
    }
    if (loom__hreq_bad_expect(hdrs, nh)) {
        loom__hconn_fail(s, rq, 417, "unsupported expectation");
        return false;
    }
    if (!loom__hreq_target_ok(rq)) {
        loom__hconn_fail(s, rq, 400, "invalid request target");
        return false;
    }
    int hst = loom__hreq_check_host(srv, rq, nh);
    if (hst) {
        loom__hconn_fail(s, rq, hst, hst == 400 ? "invalid host" : "too many header fields");
        return false;
    }
    /* NUL-terminate the strings in place: the head is ours and will not be
     * parsed again. Each terminator lands on the space, colon, CR or
     * whitespace that followed the token. */
    ((char *)rq->method_str)[rq->method_len] = '\0';
    ((char *)rq->target)[rq->target_len] = '\0';
    for (size_t i = 0; i < nh; i++) {
        ((char *)hdrs[i].name)[hdrs[i].name_len] = '\0';
        ((char *)hdrs[i].value)[hdrs[i].value_len] = '\0';
    }
    if (LOOM__UNLIKELY(rq->flags & LOOM_HTTP_F_UPGRADE) && loom__hconn_h2c(srv, s, rq, nh))
        return c->state != LOOM__HC_DEAD;
    loom_http_req_t *req = loom__hreq_new(srv, s, &loom__h1_proto);
    if (req == NULL) {
        loom__hconn_fail(s, rq, 0, "out of memory");
        c->flags &= ~LOOM__HCF_LINGER;
        return false;
    }
    req->rq = *rq;
    req->hdrs = hdrs;
    req->nhdrs = nh;
    req->head = p;
    req->head_len = head_len;
    loom__hreq_split_target(req);
    loom_http_request_framing(rq, &req->p.h1.fr);
    if (req->p.h1.fr.kind == LOOM_HTTP_BODY_LENGTH)
        req->body_size = req->p.h1.fr.length;
    if (req->p.h1.fr.tunnel)
        req->flags |= LOOM__HR_CLOSE; /* no tunnels: CONNECT's connection ends with its answer */
    if (srv->o.max_keepalive_requests && (uint32_t)c->nreq + 1 >= srv->o.max_keepalive_requests)
        req->flags |= LOOM__HR_CLOSE;
    c->state = LOOM__HC_REQ;
    c->u.req = req;
    if (req->p.h1.fr.kind == LOOM_HTTP_BODY_NONE) {
        req->bstate = LOOM__HB_NONE;
        loom__hreq_dispatch(srv, req);
        if (srv->o.on_body && req->astate != LOOM__HA_DONE && c->state == LOOM__HC_REQ) {
            req->flags |= LOOM__HR_IN_CB;
            loom__hreq_on_body(srv, req, NULL, 0);
            req->flags &= ~LOOM__HR_IN_CB;
        }
        return true;
    }
    int r = loom_http_body_init(&req->p.h1.bd, &req->p.h1.fr, &srv->lim);
    if (r < 0) {
        loom__hconn_fail(s, rq, loom_http_perr_status(r), loom_http_perr_str(r));
        return false;
    }
    req->bstate = LOOM__HB_READ;
    bool expect = (rq->flags & LOOM_HTTP_F_EXPECT_CONTINUE) && rq->minor_version >= 1;
    if (srv->o.on_body) {
        if (expect && !more)
            req->flags |= LOOM__H1R_NOCONT;
        loom__hreq_dispatch(srv, req);
        /* The application read the head and did not answer: it wants the
         * body, so the client may send it. */
        if (expect && !more && c->state == LOOM__HC_REQ && c->u.req == req &&
            req->astate == LOOM__HA_NONE && !(req->flags & LOOM__HR_GONE) &&
            !(req->flags & LOOM__HR_CONT_SENT)) {
            req->flags &= ~LOOM__H1R_NOCONT;
            req->flags |= LOOM__HR_CONT_SENT;
            loom__h1_continue(sl, s);
        }
    } else if (expect && !more) {
        req->flags |= LOOM__HR_CONT_SENT;
        loom__h1_continue(sl, s);
    }
    return true;
}

/* Runs the state machine over p[0..n) (the scratch buffer, or a detached
 * input store); `last` is the length of the same partial head at the
 * previous attempt. Returns the bytes consumed. Before returning, a request
 * that is still in flight is made independent of p. */
static size_t loom__hconn_process(loom_http_server_t *srv, loom_socket_t *s, char *p, size_t n,
                                  uint32_t last)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__hsrv_loop *sl = srv->sl;
    size_t off = 0;
    static char none[1];
    if (p == NULL)
        p = none; /* a resume without stored input: p + 0 on NULL is undefined */
    while (c->state != LOOM__HC_DEAD && !(c->flags & LOOM__HCF_CLOSE)) {
        if (c->state == LOOM__HC_REQ) {
            loom_http_req_t *req = c->u.req;
            if (req->astate == LOOM__HA_DONE && !(req->flags & LOOM__HR_IN_CB)) {
                if (req->bstate == LOOM__HB_READ && loom__hreq_discard_start(s, req)) {
                    if (off == n)
                        break; /* more of the body to drop */
                    long k = loom__hreq_discard(s, req, p + off, n - off);
                    if (k < 0)
                        break;
                    off += (size_t)k;
                    if (req->bstate == LOOM__HB_READ && off < n && k == 0)
                        break; /* a partial chunk line: kept until more arrives */
                    continue;
                }
                if (!loom__hconn_next(s, req, true))
                    break;
                continue;
            }
            if (req->bstate == LOOM__HB_READ && !(req->flags & LOOM__HR_PAUSED) &&
                (off < n || (req->flags & LOOM__HR_END_DUE))) {
                long k = loom__hreq_body(srv, s, req, p + off, n - off);
                if (k < 0)
                    break;
                off += (size_t)k;
                if (c->state == LOOM__HC_REQ && c->u.req == req && req->astate == LOOM__HA_DONE)
                    continue;
                if (req->bstate == LOOM__HB_READ &&
                    (k == 0 || (req->flags & LOOM__HR_PAUSED) || off == n))
                    break;
                continue;
            }
            break; /* waiting for the application */
        }
        if (off == n)
            break;
        if (LOOM__UNLIKELY(sl->olen >= sl->olimit || loom__socket_high(s))) {
            /* The answers so far fill the socket: the rest waits, unparsed,
             * until it drains (loom__hconn_batch_end, loom__hconn_drain). */
            c->flags |= LOOM__HCF_FULL;
            if (c->state == LOOM__HC_IDLE) {
                c->state = LOOM__HC_HEAD;
                c->t0 = loom__now32(srv->h.loop);
            }
            break;
        }
        if (c->state == LOOM__HC_IDLE)
            c->t0 = loom__now32(srv->h.loop);
        loom_http_request_t rq;
        rq.method_str = rq.target = NULL; /* set as far as the parse gets (for the report) */
        size_t nh = srv->lim.max_headers;
        int r = loom_http_parse_request(p + off, n - off, last, &rq, srv->hdrs, &nh, &srv->lim);
        last = 0;
        if (r == LOOM_HTTP_INCOMPLETE) {
            if (c->state == LOOM__HC_IDLE)
                c->state = LOOM__HC_HEAD;
            break;
        }
        if (r < 0) {
            loom__hconn_fail(s, &rq, loom_http_perr_status(r), loom_http_perr_str(r));
            break;
        }
        char *head = p + off;
        off += (size_t)r;
        if (!loom__hconn_begin(srv, s, head, (size_t)r, &rq, nh, off < n))
            break;
        if (LOOM__UNLIKELY(c->state == LOOM__HC_H2)) {
            /* Upgraded to h2c: what follows the request (the client's
             * preface, if it did not wait for the 101) is HTTP/2's. */
            if (off < n)
                loom__h2_read(c->u.h2, p + off, n - off);
            return n;
        }
    }
    if (LOOM__UNLIKELY(c->flags & LOOM__HCF_TAKEN)) {
        /* Taken over: what follows the request is the new owner's. */
        c->flags &= ~LOOM__HCF_TAKEN;
        if (off < n)
            loom__socket_handoff_hold(s, p + off, n - off);
        return n;
    }
    if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        if (req->astate != LOOM__HA_DONE && loom__hreq_persist(req) < 0) {
            loom__hconn_fail(s, &req->rq, 0, "out of memory");
            c->flags &= ~LOOM__HCF_LINGER;
        }
    }
    return off;
}

/* Stores bytes the state machine could not consume yet where the
 * connection's state keeps them: with the partial head (HEAD), or behind
 * the request in flight (REQ). `b` is a detached store that holds exactly
 * those bytes, or NULL (then rest[0..n) is copied). */
static void loom__hconn_store(loom_socket_t *s, loom__bytes *b, const char *rest, size_t n,
                              uint32_t last)
{
    loom__hconn *c = loom__hconn_of(s);
    if (n == 0 || c->state == LOOM__HC_DEAD || c->state == LOOM__HC_LINGER ||
        (c->flags & LOOM__HCF_CLOSE) || c->state == LOOM__HC_IDLE) {
        loom__bytes_free(&b);
        return;
    }
    loom__bytes **slot = c->state == LOOM__HC_HEAD ? &c->u.in : &c->u.req->p.h1.in;
    if (b == NULL) {
        if (loom__bytes_append(&b, rest, n) < 0) {
            loom__hconn_report(s, loom__hconn_rq(s), LOOM_EV_HTTP_ERROR, LOOM_ENOMEM,
                               "out of memory");
            loom__h1_close(s, false);
            return;
        }
    } else {
        loom__bytes_trim(&b); /* do not keep a large block for a few bytes */
    }
    b->aux = c->state == LOOM__HC_HEAD ? last : 0;
    *slot = b;
}

/* Processes a detached store (input kept from earlier reads, maybe with new
 * bytes appended) and puts back what is left. */
static void loom__hconn_process_store(loom_http_server_t *srv, loom_socket_t *s, loom__bytes *b)
{
    size_t n = loom__bytes_size(b);
    size_t used = loom__hconn_process(srv, s, loom__bytes_data(b), n, (uint32_t)b->aux);
    size_t rest = n - used;
    loom__hconn *c = loom__hconn_of(s);
    if (rest == 0 || c->state == LOOM__HC_DEAD) {
        loom__bytes_free(&b);
        return;
    }
    loom__bytes_consume(&b, used);
    /* The last head parse covered exactly these bytes (none if parsing
     * stopped at high water). */
    loom__hconn_store(s, b, NULL, rest, (c->flags & LOOM__HCF_FULL) ? 0 : (uint32_t)rest);
}

/* proto_read: new bytes in the loop's scratch buffer. */
static void loom__hconn_read(loom_socket_t *s, char *buf, size_t len)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    loom__hsrv_loop *sl = srv->sl;
    loom_loop_t *loop = s->h.loop;
    switch (c->state) {
    case LOOM__HC_DEAD:
        return;
    case LOOM__HC_H2:
        loom__h2_read(c->u.h2, buf, len);
        return;
    case LOOM__HC_IDLE:
        /* h2c with prior knowledge: the connection preface instead of a
         * first request. "PRI * HTTP/2.0" tells it from any HTTP/1 request
         * (four bytes at least: "PRI " is no method loom serves); nghttp2
         * checks the rest of the preface. */
        if (c->nreq == 0 && len >= 4 && memcmp(buf, "PRI ", 4) == 0 &&
            memcmp(buf, LOOM__H2_PREFACE, len < 14 ? len : 14) == 0 &&
            loom__h2_enabled(srv, false)) {
            loom__hconn_h2(s, buf, len);
            return;
        }
        break;
    case LOOM__HC_LINGER:
        if ((uint32_t)(loom__now32(loop) - c->t0) > LOOM__HLINGER_TOTAL_MS)
            loom__h1_close(s, false);
        return;
    case LOOM__HC_REQ:
        if (LOOM__UNLIKELY(c->u.req->flags & LOOM__H1R_DISCARD) && srv->ms_body &&
            (uint32_t)(loom__now32(loop) - c->t0) > srv->ms_body) {
            /* The dropped rest of a body came too slowly. */
            loom__hconn_report(s, loom__hconn_rq(s), LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                               "request body timeout");
            loom__h1_close(s, false);
            return;
        }
        break;
    case LOOM__HC_HEAD:
        if (c->nreq == 0 && !(c->flags & LOOM__HCF_FULL) && loom__h2_enabled(srv, false) &&
            loom__hconn_h2_stored(s, buf, len))
            return;
        if (srv->ms_header && (uint32_t)(loom__now32(loop) - c->t0) > srv->ms_header) {
            loom__hconn_report(s, NULL, LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT,
                               "request header timeout");
            loom__h1_close(s, false);
            return;
        }
        break;
    default:
        break;
    }
    loom__hconn_batch_begin(sl, s);
    loom__bytes **slot = NULL;
    if (c->state == LOOM__HC_HEAD)
        slot = &c->u.in;
    else if (c->state == LOOM__HC_REQ && c->u.req->p.h1.in != NULL)
        slot = &c->u.req->p.h1.in;
    if (slot != NULL && *slot != NULL) {
        /* Append to the store, then work from it. */
        loom__bytes *nb = *slot;
        *slot = NULL;
        if (loom__bytes_append(&nb, buf, len) < 0) {
            loom__bytes_free(&nb);
            loom__hconn_report(s, loom__hconn_rq(s), LOOM_EV_HTTP_ERROR, LOOM_ENOMEM,
                               "out of memory");
            loom__h1_close(s, false);
            sl->batch = NULL;
            return;
        }
        if (c->state == LOOM__HC_REQ &&
            (c->u.req->astate != LOOM__HA_DONE && c->u.req->bstate != LOOM__HB_READ)) {
            /* Still waiting for the application: just keep the bytes. */
            c->u.req->p.h1.in = nb;
        } else {
            loom__hconn_process_store(srv, s, nb);
        }
    } else {
        size_t used = loom__hconn_process(srv, s, buf, len, 0);
        if (used < len)
            loom__hconn_store(s, NULL, buf + used, len - used,
                              (c->flags & LOOM__HCF_FULL) ? 0 : (uint32_t)(len - used));
    }
    loom__hconn_batch_end(sl, s);
}

/* proto_event: the socket failed, timed out or saw eof; the TCP layer closes
 * it when this returns. Errors of an established connection (a reset, a
 * peer gone) are the client's business and not reported; timeouts are, as
 * HTTP timeouts. */
static void loom__hconn_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg)
{
    loom__hconn *c = loom__hconn_of(s);
    loom_http_server_t *srv = s->h.data;
    if (c->state == LOOM__HC_H2) {
        loom__h2_event(c->u.h2, kind, code, msg);
    } else if (c->state == LOOM__HC_NEW) {
        /* In its TLS handshake: failures, verification errors and the
         * handshake timeout reach the server's on_event as the transport
         * worded them (they name the peer and the reason). */
        if (kind != LOOM_EV_TCP_EOF)
            loom__hsrv_emit(srv, kind, code, msg ? msg : loom_strerror(code));
    } else if (kind == LOOM_EV_TCP_TIMEOUT) {
        const char *what = NULL;
        if (s->wq != NULL && loom_socket_queued(s) > 0)
            what = "response write timeout";
        else if (c->state == LOOM__HC_HEAD || (c->state == LOOM__HC_IDLE && c->nreq == 0))
            what = "request header timeout";
        else if (c->state == LOOM__HC_REQ && c->u.req->bstate == LOOM__HB_READ)
            what = "request body timeout";
        if (what)
            loom__hconn_report(s, loom__hconn_rq(s), LOOM_EV_HTTP_TIMEOUT, LOOM_ETIMEDOUT, what);
    }
    loom__hconn_detach(s);
}

/* on_drain of the class: the socket's queue fell back below low water. */
static void loom__hconn_drain(loom_socket_t *s, void *data)
{
    loom_http_server_t *srv = data;
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_H2) {
        loom__h2_drain(c->u.h2);
        return;
    }
    if (c->flags & LOOM__HCF_FULL) {
        /* Parsing resumes once the queue is empty (loom__hconn_written). */
        if (loom_socket_queued(s) == 0) {
            loom__hconn_unfull(s);
            loom__hconn_batch_end(srv->sl, s);
        }
        return;
    }
    if (c->state != LOOM__HC_REQ || srv->o.on_drain == NULL)
        return;
    loom_http_req_t *req = c->u.req;
    if (req->astate == LOOM__HA_STREAM)
        srv->o.on_drain(req, srv->h.data);
}

/* on_write of the class: the socket's queue is empty. Pipelined requests
 * that waited for it (LOOM__HCF_FULL) are parsed now. */
static void loom__hconn_written(loom_socket_t *s, void *data)
{
    loom_http_server_t *srv = data;
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_H2 || !(c->flags & LOOM__HCF_FULL) || srv->sl->batch == s)
        return;
    loom__hconn_unfull(s);
    loom__hconn_batch_end(srv->sl, s);
}

/* --- Answers finishing, pausing, resuming ------------------------------------------------- */

static void loom__h1_finished(loom_http_req_t *req)
{
    loom_socket_t *s = req->sock;
    req->astate = LOOM__HA_DONE;
    if (s == NULL || (req->flags & LOOM__HR_GONE)) {
        loom__hreq_free(req);
        return;
    }
    loom__hsrv_loop *sl = req->srv->sl;
    if (sl->batch == s)
        return; /* the state machine running this connection takes it from here */
    if (req->bstate == LOOM__HB_READ && loom__hreq_discard_start(s, req)) {
        /* Reading goes on (the rest of the body is dropped); input kept
         * behind the request is the body's. */
        if (loom__bytes_size(req->p.h1.in))
            loom__hreq_queue_resume(req);
        loom__hconn_settle(s);
        return;
    }
    if (loom__bytes_size(req->p.h1.in)) {
        loom__hreq_queue_resume(req);
        loom__hconn_settle(s);
        return;
    }
    loom__bytes_free(&req->p.h1.in);
    loom__hconn_next(s, req, false);
    loom__hconn_settle(s);
}

static void loom__h1_pause(loom_http_req_t *req)
{
    req->flags |= LOOM__HR_PAUSED;
    if (req->sock && req->srv->sl->batch != req->sock)
        loom__hconn_settle(req->sock);
}

static void loom__h1_resume(loom_http_req_t *req)
{
    req->flags &= ~LOOM__HR_PAUSED;
    if (req->sock == NULL)
        return;
    /* The resume phase feeds what was kept (and a held-back end call), then
     * settles the connection, which restarts reading. */
    loom__hreq_queue_resume(req);
}

/* The resume phase of one request: its connection has input kept behind
 * it that may go on now it is answered, or its paused body was resumed. */
static void loom__h1_resume_run(loom__pending *p)
{
    loom_http_req_t *req = LOOM__CONTAINER_OF(p, loom_http_req_t, resume);
    req->flags &= ~LOOM__HR_RESUMEQ;
    loom_socket_t *s = req->sock;
    if (s == NULL)
        return;
    loom_http_server_t *srv = s->h.data;
    loom__hsrv_loop *sl = srv->sl;
    loom__hconn_batch_begin(sl, s);
    loom__bytes *b = req->p.h1.in;
    req->p.h1.in = NULL;
    if (b != NULL)
        loom__hconn_process_store(srv, s, b);
    else
        loom__hconn_process(srv, s, NULL, 0, 0);
    loom__hconn_batch_end(sl, s);
}

/* --- The protocol operations ------------------------------------------------------------ */

/* takeover: the 101 goes out (behind any batched answers), then the socket
 * changes owner and leaves the server; the request is finished. */
static int loom__h1_takeover(loom_http_req_t *req, const loom__hhead *hd, const loom_tcp_opts *opts,
                             loom_socket_t **out)
{
    loom_socket_t *s = req->sock;
    loom__hconn *c = loom__hconn_of(s);
    if (req->rq.minor_version == 0)
        return LOOM_ENOTSUP; /* no 101 for HTTP/1.0 (RFC 9110 section 7.8) */
    /* One request in flight per connection is HTTP/1's rule; bytes behind
     * it are the new protocol's, but an unread body is this request's. */
    if (req->bstate == LOOM__HB_READ || c->state != LOOM__HC_REQ || c->u.req != req)
        return LOOM_EBUSY;
    loom_http_server_t *srv = req->srv;
    int r = loom__h1_upgrade_head(req, hd);
    if (r < 0)
        return r;
    loom__socket_read_small(s, false); /* the new owner reads as sockets do */
    r = loom__socket_handoff(s, opts);
    if (r < 0) {
        loom__h1_close(s, false); /* the 101 is out: the connection cannot go on */
        return r;
    }
    c->state = LOOM__HC_DEAD;
    c->u.req = NULL;
    c->flags = LOOM__HCF_TAKEN;
    loom__bytes *in = req->p.h1.in;
    req->p.h1.in = NULL;
    loom__socket_handoff_hold(s, loom__bytes_data(in), loom__bytes_size(in));
    loom__bytes_free(&in);
    req->sock = NULL;
    req->astate = LOOM__HA_DONE;
    loom__hreq_free(req);
    loom__hsrv_conn_gone(srv);
    *out = s;
    return 0;
}

const loom__hproto loom__h1_proto = {
    .start = loom__h1_start,
    .interim = loom__h1_interim,
    .body = loom__h1_body,
    .end = loom__h1_end,
    .finished = loom__h1_finished,
    .pause = loom__h1_pause,
    .resume = loom__h1_resume,
    .queued = loom__h1_queued,
    .takeover = loom__h1_takeover,
};

/* --- The server's side ------------------------------------------------------------------ */

void loom__h1_accepted(loom_socket_t *s)
{
    loom__hconn_of(s)->state = LOOM__HC_IDLE;
    loom__socket_read_small(s, true); /* heads come in small reads (loom__hconn_settle) */
}

/* Hands connection s (idle, before its first request) to HTTP/2 and feeds
 * it buf[0..len). */
static void loom__hconn_h2(loom_socket_t *s, char *buf, size_t len)
{
    loom__hconn *c = loom__hconn_of(s);
    loom__h2conn *h2 = loom__h2_new(s);
    if (h2 == NULL) {
        loom__hconn_report(s, NULL, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        loom__h1_close(s, false);
        return;
    }
    c->state = LOOM__HC_H2;
    c->u.h2 = h2;
    loom__socket_read_small(s, false);
    if (len)
        loom__h2_read(h2, buf, len);
}

/* h2c: the first read was too short to tell the preface ("PRI ") from a
 * method and was stored as a partial head. Returns true if the stored
 * bytes and buf[0..len) open with the preface (the connection is HTTP/2
 * now), false to go on with HTTP/1. */
static bool loom__hconn_h2_stored(loom_socket_t *s, char *buf, size_t len)
{
    loom__hconn *c = loom__hconn_of(s);
    size_t n = loom__bytes_size(c->u.in);
    if (n == 0 || n >= 4 || memcmp(loom__bytes_data(c->u.in), "PRI ", n) != 0)
        return false;
    size_t k = n + len < 14 ? n + len : 14, m = k - n;
    if (k < 4 || memcmp(buf, &LOOM__H2_PREFACE[n], m) != 0)
        return false;
    loom__bytes *b = c->u.in;
    c->u.in = NULL;
    c->state = LOOM__HC_IDLE;
    if (loom__bytes_append(&b, buf, len) < 0) {
        loom__bytes_free(&b);
        loom__hconn_report(s, NULL, LOOM_EV_HTTP_ERROR, LOOM_ENOMEM, "out of memory");
        loom__h1_close(s, false);
        return true;
    }
    loom__hconn_h2(s, loom__bytes_data(b), loom__bytes_size(b));
    loom__bytes_free(&b);
    return true;
}

void loom__h1_accepted_h2(loom_socket_t *s)
{
    loom__hconn_h2(s, NULL, 0);
}

void loom__h1_class_init(loom__sock_class *cls)
{
    cls->proto_read = loom__hconn_read;
    cls->proto_event = loom__hconn_event;
    cls->on_drain = loom__hconn_drain;
    cls->on_write = loom__hconn_written;
    cls->extra = sizeof(loom__hconn);
}

void loom__h1_close_conn(loom_socket_t *s, bool force)
{
    if (loom__hconn_of(s)->state == LOOM__HC_H2) {
        loom__h2_close_conn(loom__hconn_of(s)->u.h2, force);
        return;
    }
    if (force || loom__hconn_of(s)->state == LOOM__HC_NEW) /* or mid-handshake */
        loom__h1_close(s, false);
    else if (loom__hconn_of(s)->state == LOOM__HC_IDLE)
        loom__h1_close(s, true);
}

void loom__h1_drop_conn(loom_socket_t *s)
{
    loom__hconn *c = loom__hconn_of(s);
    if (c->state == LOOM__HC_HEAD) {
        loom__bytes_free(&c->u.in);
    } else if (c->state == LOOM__HC_REQ) {
        loom_http_req_t *req = c->u.req;
        loom__bytes_free(&req->p.h1.in);
        req->sock = NULL;
    } else if (c->state == LOOM__HC_H2) {
        loom__h2_drop(c->u.h2);
    }
    c->u.in = NULL;
    c->state = LOOM__HC_DEAD;
}
