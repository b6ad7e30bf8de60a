/* loom/http_client.h - the HTTP/1.1 and HTTP/2 client (cl-async's
 * http-client, without its limits: keep-alive pooling, streaming in both
 * directions, timeouts, redirects and cancellation; HTTP/2 below).
 *
 * loom_http_request(loop, url, &opts) starts a request and returns a handle.
 * Exactly one of these ends it, exactly once (the request's close
 * notification, like uv_close's callback: the handle is dead after it):
 *  - on_response(req, res, data): the whole response arrived. In buffered
 *    mode (no on_body) res->body holds the body: cl-async's
 *    request-cb (status headers body). In streaming mode on_headers ran
 *    first, then on_body for each piece as it downloaded, and res->body is
 *    NULL.
 *  - an error event on on_event (else on the loop's default event callback):
 *    LOOM_EV_HTTP_TIMEOUT (connect, first byte, read, write, idle or total
 *    timeout), LOOM_EV_HTTP_REFUSED (connection refused), LOOM_EV_DNS_ERROR
 *    (the name does not resolve), LOOM_EV_HTTP_ERROR (malformed response, a
 *    size limit, too many 1xx answers, a reset or early close, an
 *    unsupported scheme such as ftp, an https body cut short without
 *    close_notify, a refused https -> http redirect), LOOM_EV_TLS_ERROR and
 *    LOOM_EV_TLS_VERIFY_ERROR (an https handshake failed; the TLS layer's
 *    message). The event's object is the request,
 *    its msg names what failed, where (host:port) and why, e.g. "connect to
 *    127.0.0.1:9 refused", "dns lookup of nohost.invalid failed: ...",
 *    "read timeout after 5000 ms waiting for 127.0.0.1:8080 (first byte
 *    timeout)".
 *  - loom_http_client_cancel(req): the caller ends it; no callback runs for
 *    it afterwards (neither on_response nor an event), and the handle is
 *    dead when cancel returns.
 * The handle is valid until then: until on_response or the event callback
 * returns, or until cancel returns. loom_loop_free() ends requests still
 * alive without a callback, like cancel. While a request is alive it counts in
 * loom_loop_live() and keeps the loop running.
 *
 * Connections: each loop keeps a pool per origin (scheme, host, port; and
 * the address family asked for and, for https, the client context) of
 * keep-alive
 * connections, with a per-host connection limit (requests beyond it wait in
 * a queue), an idle timeout and a cap on idle connections (see
 * loom_http_client_configure()). Idle pooled connections do not keep the loop
 * alive and are not counted as live objects. An HTTP/1 connection is reused
 * only if nothing came on it since its last response ended: bytes after that
 * response, or bytes, the server's close or a reset while it was idle, close
 * it instead (its next request would take them for its answer;
 * stats.stale_dropped counts these). A reused connection that the server
 * closed before sending any byte of the response is retried once on a
 * new connection if the method is idempotent (GET, HEAD, PUT, DELETE,
 * OPTIONS, TRACE; RFC 9110 section 9.2.2), or if the caller set
 * opts.retry_non_idempotent; a streamed body also needs on_body_rewind.
 * Otherwise the request ends with an http error event saying it was not
 * retried.
 *
 * Responses: bodies delimited by Content-Length, chunked coding or the
 * connection closing; 1xx answers are skipped (at most 16 before the final
 * answer, more is an http error; they do not extend the first byte
 * timeout), except 101 Switching Protocols, which is a final answer:
 * on_response gets it and the connection is closed, not followed; HEAD, 204
 * and 304 have no body. Pipelining is off unless
 * loom_http_client_opts.pipeline_depth > 1.
 *
 * Text: every string the client hands out is NUL-terminated (the reason
 * phrase, header names and values, the URL, the request head), and a length
 * comes with it where the struct has one. Bodies are bytes with a length.
 *
 * Every function is for the loop's thread only.
 */
#ifndef LOOM_HTTP_CLIENT_H
#define LOOM_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loom/common.h"
#include "loom/event.h"
#include "loom/http_parser.h"
#include "loom/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_http_client_req loom_http_client_req_t;

/* A response as the callbacks see it. Every pointer is valid only during the
 * callback that receives it: copy what you keep. */
typedef struct loom_http_client_response {
    int status;         /* 200 */
    int minor_version;  /* HTTP/1.<minor_version> */
    const char *reason; /* the reason phrase as sent, NUL-terminated ("" if none) */
    size_t reason_len;
    /* The header fields in order, duplicates kept; each name and value is
     * NUL-terminated (and has its length); see loom_http_client_header(). */
    const loom_http_header_t *headers;
    size_t nheaders;
    /* Buffered mode: the decoded body (chunked coding removed; not
     * NUL-terminated), NULL with length 0 if empty. Streaming mode: NULL. */
    const char *body;
    size_t body_len;
    /* The URL that answered (after redirects), NUL-terminated. */
    const char *url;
    unsigned redirects; /* redirects followed */
    bool reused;        /* the connection had served an earlier request */
    /* The Content-Length the head announced (also for HEAD and 304, whose
     * answer has no body), or -1 when there is none or the body is chunked.
     * Same as loom_http_client_content_length(). */
    int64_t content_length;
    /* The protocol that answered: 11 (HTTP/1.1), 10 (HTTP/1.0) or 20
     * (HTTP/2). Same as loom_http_client_response_version(). */
    int version;
} loom_http_client_response_t;

/* on_response and on_headers: cb(req, res, data), data = opts.data. */
typedef void (*loom_http_client_response_cb)(loom_http_client_req_t *req,
                                             const loom_http_client_response_t *res, void *data);

/* Streamed response body: each decoded piece as it arrives (`chunk` valid
 * only during the call). Return 0 to go on, or LOOM_HTTP_CLIENT_PAUSE to stop
 * reading until loom_http_client_resume() (the same as calling
 * loom_http_client_pause()). */
typedef int (*loom_http_client_body_cb)(loom_http_client_req_t *req, const char *chunk, size_t len,
                                        void *data);
#define LOOM_HTTP_CLIENT_PAUSE 1

/* Streamed request body: fill buf[0..size) with the next bytes. Return the
 * count (> 0), 0 at the end of the body, LOOM_EAGAIN when nothing is ready
 * yet (then call loom_http_client_body_ready() when there is), or another
 * negative LOOM_E* code to fail the request (an http error event). */
typedef ssize_t (*loom_http_client_source_cb)(loom_http_client_req_t *req, char *buf, size_t size,
                                              void *data);
/* Rewinds a streamed request body to its start so it can be sent again (a
 * retry or a 307/308 redirect). Return 0, or a negative code if it cannot. */
typedef int (*loom_http_client_rewind_cb)(loom_http_client_req_t *req, void *data);

/* The HTTP version a request may use (loom_http_request_opts.version).
 * HTTP/2 requests are streams of one connection per origin (see "HTTP/2"
 * below); the request API and its callbacks are the same for both. */
typedef enum {
    /* https: ALPN offers "h2,http/1.1" and the server chooses; http:
     * HTTP/1.1. */
    LOOM_HTTP_VERSION_AUTO = 0,
    /* HTTP/1.1 only (https: ALPN "http/1.1"). */
    LOOM_HTTP_VERSION_1_1 = 1,
    /* https: as AUTO (h2 by ALPN, HTTP/1.1 when the server does not choose
     * it, like curl --http2); http: h2c with prior knowledge (loom does not
     * send Upgrade: h2c). */
    LOOM_HTTP_VERSION_2 = 2,
    /* HTTP/2 without falling back: http: h2c with prior knowledge; https:
     * ALPN offers "h2" only, and a server that does not choose it ends the
     * request with an http error (LOOM_EPROTOCOL). */
    LOOM_HTTP_VERSION_2_PRIOR_KNOWLEDGE = 3
} loom_http_version_t;

/* Options for loom_http_request(). A zeroed struct means a GET with the
 * defaults. */
typedef struct loom_http_request_opts {
    /* The method token ("GET", "POST", "PROPFIND"); NULL means GET, or POST
     * when a body is given. Copied. */
    const char *method;
    /* https:// URLs: the client context to use (a reference is held while
     * needed; pools are per context). NULL: the loop's client's own
     * (loom_http_client_opts.tls, else a default one made on first use:
     * verification on, against the system's store). */
    loom_tls_ctx_t *tls;
    /* Follow a redirect from https:// to http://; refused by default (an
     * http error event that says why). */
    bool allow_insecure_redirect;
    /* Extra header fields as a NULL-terminated list of name, value pairs:
     * (const char *[]){"Accept", "text/html", NULL}. Copied. Host,
     * User-Agent, Content-Length, Transfer-Encoding and Connection here
     * replace loom's own. Names must be tokens and values may not hold a
     * control character other than HTAB (CR, LF, VT, DEL...: LOOM_EINVAL). A
     * Content-Length must state the body's length (a buffer's body_len, a
     * streamed body's body_length, 0 without a body; never with a chunked
     * upload), else LOOM_EINVAL and nothing is sent. Authorization,
     * Proxy-Authorization, Cookie and Host are dropped on a redirect to
     * another origin unless redirect_keep_credentials is set. */
    const char *const *headers;

    /* Request body from a buffer: NOT copied; it must stay valid and
     * unchanged until the request ends (response, error event or cancel). */
    const void *body;
    size_t body_len;
    /* Or a streamed body pulled from on_body_source: with body_length >= 0
     * it is sent raw with that Content-Length, with body_length < 0 as
     * chunked upload. */
    loom_http_client_source_cb on_body_source;
    loom_http_client_rewind_cb on_body_rewind;
    int64_t body_length;

    loom_http_client_response_cb on_response; /* the end of a successful request */
    loom_http_client_response_cb on_headers;  /* streaming: the head (res->body NULL) */
    loom_http_client_body_cb on_body;         /* set: streaming mode */
    loom_event_cb on_event;                   /* NULL: the loop's default */
    void *data;

    /* Timeouts in ms, 0 for none. connect: to establish a connection.
     * first_byte: from the request being sent until the first byte of the
     * response. idle: the longest stall while sending the request or reading
     * the response. total: the whole request, queueing and redirects
     * included. All end the request with LOOM_EV_HTTP_TIMEOUT. */
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t total_timeout_ms;

    /* Redirects: with follow_redirects, 301, 302 and 303 are followed with
     * GET and no body (a HEAD stays HEAD; 301 and 302 keep a method other than
     * POST, as browsers and curl do), 307 and 308 keep the method and the body
     * (a streamed body needs on_body_rewind). At most max_redirects hops
     * (0: 10); one more is an http error. A redirect to another origin
     * (scheme, host or port differ) drops the caller's Authorization,
     * Proxy-Authorization, Cookie and Host fields and the userinfo of the
     * URL, as curl does; they stay dropped for the rest of the chain. */
    bool follow_redirects;
    unsigned max_redirects;
    /* Keeps those fields on a redirect to another origin (curl's
     * --location-trusted): only for a caller that trusts every host the
     * chain may lead to. */
    bool redirect_keep_credentials;
    /* Lets a request with a method other than GET, HEAD, PUT, DELETE,
     * OPTIONS or TRACE (a POST, PATCH...) be sent again on a new connection
     * when a reused one closes before any byte of the response: only if the
     * server handles a repeat safely. */
    bool retry_non_idempotent;

    /* Limits for the response head and, in buffered mode, the body:
     * limits.max_body_size 0 means 64 MiB in buffered mode and no limit in
     * streaming mode (see loom/http_parser.h for the others). */
    loom_http_limits_t limits;

    /* Sends "Connection: close" and does not reuse the connection. */
    bool no_keepalive;
    /* Address family for the host: 0 (any), AF_INET or AF_INET6 (curl's -4
     * and -6). A host with no address of that family is a dns error.
     * Connections are pooled per family too. */
    int family;
    /* The HTTP version (loom_http_version_t; 0: AUTO). Connections are
     * pooled per version choice too. */
    loom_http_version_t version;
} loom_http_request_opts;

/* Starts a request for the absolute `url` ("http://host[:port]/path?query";
 * userinfo becomes an Authorization: Basic header, the fragment is not
 * sent). The outcome arrives later (see the top of this file); no callback
 * runs before this returns. `*out` (if `out` is not NULL) receives the
 * handle. Returns 0, LOOM_EURL (a malformed URL or no host), LOOM_EINVAL
 * (bad options, such as a control character in a header value, a
 * Content-Length that disagrees with the body or a server context in
 * opts.tls), LOOM_ETOOMANY (the first byte
 * or idle timeout would be the loop's 64th distinct socket timeout value, see
 * loom_socket_set_timeouts()), or LOOM_ENOMEM. An
 * unsupported scheme is not an error here: it ends the request with an http
 * error event (LOOM_EPROTOCOL, "unsupported URL scheme \"ftp\"").
 *
 * https:// URLs: the connection is TLS with the request's context (see
 * opts.tls), its name checked against the URL's host (an address literal
 * against the certificate's addresses). A failed handshake ends the request
 * with the TLS layer's event and message: LOOM_EV_TLS_VERIFY_ERROR
 * ("certificate verify failed for localhost:8443: ...") or
 * LOOM_EV_TLS_ERROR. A response whose body ends with the connection (no
 * Content-Length, not chunked) is complete only if the server ended the TLS
 * stream with close_notify: a bare close is a truncation (an http error,
 * LOOM_ETRUNCATED), never a complete body. Pools are per scheme, host, port
 * and context. */
LOOM_EXTERN int loom_http_request(loom_loop_t *loop, const char *url,
                                  const loom_http_request_opts *opts, loom_http_client_req_t **out);

/* Cancels the request at any stage: waiting for a connection, connecting,
 * sending, or reading the response. No callback runs for it afterwards and
 * the handle is dead when this returns. A connection it was using is closed
 * (mid-message it cannot be reused). Returns 0, or LOOM_ECLOSED if the
 * request has already ended. Safe from inside the request's own callbacks. */
LOOM_EXTERN int loom_http_client_cancel(loom_http_client_req_t *req);

/* Backpressure for streamed responses: stops reading the response (no
 * on_body runs and the idle and first-byte timeouts stop) until resume.
 * Resuming delivers what was already read from the loop, never inside the
 * call. Return 0, LOOM_ECLOSED, or LOOM_ESTATE while the request is not on a
 * connection yet or its head and body are still being sent. */
LOOM_EXTERN int loom_http_client_pause(loom_http_client_req_t *req);
LOOM_EXTERN int loom_http_client_resume(loom_http_client_req_t *req);

/* Streamed request bodies: data became available after on_body_source
 * returned LOOM_EAGAIN; loom asks for it again from the loop. Returns 0 or
 * LOOM_ECLOSED. */
LOOM_EXTERN int loom_http_client_body_ready(loom_http_client_req_t *req);

/* The loop the request runs on. */
LOOM_EXTERN loom_loop_t *loom_http_client_loop(const loom_http_client_req_t *req);

/* The request head as loom sends it on the current hop (request line,
 * header fields and the empty line; rebuilt for each redirect),
 * NUL-terminated; `*len` (may be NULL) receives its length. Valid until the
 * next redirect or the end of the request. The head is rendered when the
 * request is first sent, or by this call if it comes first (NULL then on
 * ENOMEM). */
LOOM_EXTERN const char *loom_http_client_request_head(const loom_http_client_req_t *req,
                                                      size_t *len);

/* What the TLS handshake of an https request's connection negotiated:
 * version, cipher, ALPN, the name sent (SNI) and the server certificate's
 * subject (see loom_tls_info). Available from on_headers and on_body (while
 * the response arrives on the connection) and during on_response; the
 * strings are valid during the callback. Returns 0, LOOM_EPROTOCOL (an
 * http:// request), LOOM_ESTATE (no connection yet, or its handshake is not
 * done), LOOM_ECLOSED (the request ended) or LOOM_EINVAL. */
LOOM_EXTERN int loom_http_client_tls_info(const loom_http_client_req_t *req, loom_tls_info *info);

/* The request's data slot (opts.data at first). */
LOOM_EXTERN void *loom_http_client_data(const loom_http_client_req_t *req);
LOOM_EXTERN void loom_http_client_set_data(loom_http_client_req_t *req, void *data);

/* The value of the first header field named `name` (case-insensitive) in
 * `res`, or NULL; `*len` (may be NULL) receives its length. The value is
 * NUL-terminated and valid during the callback. */
LOOM_EXTERN const char *loom_http_client_header(const loom_http_client_response_t *res,
                                                const char *name, size_t *len);

/* The parsed Content-Length of `res` (res->content_length): -1 when the
 * head has none or the body is chunked. */
LOOM_EXTERN int64_t loom_http_client_content_length(const loom_http_client_response_t *res);

/* The version of the protocol that answered `res` (res->version): 11, 10
 * or 20. */
LOOM_EXTERN int loom_http_client_response_version(const loom_http_client_response_t *res);

/* --- HTTP/2 ---------------------------------------------------------------------
 *
 * An https:// request offers h2 by ALPN (unless opts.version says
 * otherwise); an http:// one speaks h2c with prior knowledge when
 * opts.version is LOOM_HTTP_VERSION_2 or _2_PRIOR_KNOWLEDGE. When a server
 * speaks HTTP/2 the origin's pool keeps ONE connection and multiplexes the
 * requests over it as streams, up to the server's
 * SETTINGS_MAX_CONCURRENT_STREAMS; the rest wait in the pool's queue and
 * take the streams that end. Until the first connection to an origin has
 * negotiated (its TLS handshake is done), further requests to that origin
 * wait for it instead of opening connections of their own (curl's "wait for
 * multiplexing"); a server that chooses http/1.1 gets the HTTP/1.1 pool
 * (max_per_host connections). Per-request behaviour is the same as
 * HTTP/1.1: streamed bodies both ways (HTTP/2 flow control: a paused
 * on_body stops the stream's WINDOW_UPDATEs, a source that has nothing
 * defers the stream's DATA), timeouts per stream (first byte, idle, total;
 * connect for the connection), cancel (RST_STREAM CANCEL, the connection
 * stays), redirects. A stream the server resets ends its request with an
 * http error naming the host and the HTTP/2 error code; REFUSED_STREAM and
 * streams above a GOAWAY's last stream id (never processed) are retried
 * once on a new connection if their body can be sent again. */

/* --- The per-loop pool -------------------------------------------------------- */

/* Pool settings; a zeroed struct gives the defaults. */
typedef struct loom_http_client_opts {
    uint32_t max_per_host;    /* connections per (host, port); 0: 8 */
    uint32_t max_idle;        /* idle connections kept over all hosts; 0: 64 */
    uint32_t idle_timeout_ms; /* an idle pooled connection closes after this; 0: 30000 */
    /* Requests in flight on one connection; 0 or 1 turns pipelining off.
     * Only requests without a streamed body are pipelined. */
    uint32_t pipeline_depth;
    const char *user_agent; /* the default User-Agent; NULL: "loom/0.1". Copied. */
    /* The client context for https:// requests that name none (a reference
     * is taken). NULL: a default one, made on first use (verification on,
     * against the system's store). */
    loom_tls_ctx_t *tls;
} loom_http_client_opts;

/* Applies `opts` to the loop's client (for connections and requests made
 * from now on; the limit applies at once). Returns 0, LOOM_EINVAL (a bad
 * user agent, or a server context in opts.tls) or LOOM_ENOMEM. */
LOOM_EXTERN int loom_http_client_configure(loom_loop_t *loop, const loom_http_client_opts *opts);

/* Closes every idle pooled connection now. */
LOOM_EXTERN void loom_http_client_close_idle(loom_loop_t *loop);

/* Counters of the loop's client. */
typedef struct loom_http_client_stats {
    uint64_t requests;         /* started */
    uint64_t responses;        /* completed with on_response */
    uint64_t errors;           /* ended with an error event */
    uint64_t connections;      /* connections established */
    uint64_t reused;           /* requests sent on a reused connection */
    uint64_t retries;          /* requests retried after a stale connection */
    uint64_t redirects;        /* redirects followed */
    uint64_t idle;             /* idle pooled connections now */
    uint64_t open;             /* open client connections now (idle included) */
    uint64_t queued;           /* requests waiting for a connection now */
    uint64_t connect_attempts; /* connections started (dns lookup and connect) */
    uint64_t connect_failures; /* attempts that failed: dns, refused, timeout, error */
    /* Idle HTTP/1 connections closed instead of reused because something
     * came on them while they were parked (bytes, the server's close, a
     * reset) that the loop had not read yet, or bytes followed a response
     * that ended them. */
    uint64_t stale_dropped;
} loom_http_client_stats_t;

/* Fills `*out`; all zero if the client was never used on this loop. */
LOOM_EXTERN void loom_http_client_stats(loom_loop_t *loop, loom_http_client_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
