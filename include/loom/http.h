/* loom/http.h - the HTTP/1.1 server (cl-async's http-server, http-response,
 * close-http-server and the http-request accessors), and HTTP helpers shared
 * with the client.
 *
 * A server sits on loom's TCP layer. Every request is parsed in place by the
 * strict parser of loom/http_parser.h; bad input is answered (400, 413, 414,
 * 417, 431, 501, 505) and the connection closed before the application sees
 * anything. Keep-alive, pipelining (answers go out in request order, batched
 * into one write), HEAD, Expect: 100-continue, a cached Date header and an
 * automatic Content-Length are handled by loom.
 *
 * Requests. on_request(req, data) runs once per request, with data = the
 * server's data slot. By default the body has been read into memory by then
 * (up to limits.max_body_size, else 413). With opts.on_body set, on_request
 * runs as soon as the head is complete and the body then arrives in pieces
 * through on_body (see loom_http_body_cb), with backpressure.
 *
 * Ownership: a request is the application's from on_request until it has
 * been answered or released, and loom never frees it before that (this is
 * the request's close notification: "answered or released" ends it, exactly
 * once, and on_close tells of a client gone before it):
 *  - answered: loom_http_respond(), or loom_http_response_end() after
 *    loom_http_response_start() / loom_http_sse_start(), returned (whatever
 *    it returned, LOOM_ECLOSED included);
 *  - released: loom_http_req_release() (drops it without an answer; the
 *    connection is closed if it was still waiting for that answer).
 * After that the pointer is dead. An answer may be given inside on_request or
 * at any later time from any callback on the same loop (deferred answers,
 * long-poll). If the client goes away first, on_close(req, data) runs once
 * and every later call on the request returns LOOM_ECLOSED, but the request
 * stays valid until the application answers or releases it; answering it
 * (with LOOM_ECLOSED as the result) or releasing it from on_close itself is
 * the usual thing to do. A request counts in loom_loop_live() until then.
 *
 * Strings the accessors return live in the request: valid until it is
 * answered or released. One rule for every text accessor: it returns a
 * NUL-terminated string, and its length too where it has a `len`
 * out-parameter (method, target, path, query, host, header names and
 * values). Only the body is bytes, not NUL-terminated: use its length.
 *
 * Connections are processed one request at a time: the next pipelined
 * request is parsed only once the previous one has been answered, so
 * ordering is natural and a client cannot pile up requests.
 *
 * Backpressure: while a connection's socket queues unsent output, or the
 * answers gathered in the current batch reach 16 KiB (or opts.high_water, if
 * lower), loom neither parses its next pipelined request nor reads from it;
 * it goes on when the socket's queue is empty. A client that sends requests
 * but does not read the answers therefore fills its own TCP windows and
 * stops, and meets the write timeout, which counts time without write
 * progress whatever the client sends. Request heads are read in pieces of
 * at most 4 KiB (bodies in larger ones), so such a connection costs the
 * server one batch of answers and at most 4 KiB of input (on the io_uring
 * backend, which reads into its own buffers, the rest of one 64 KiB read).
 *
 * An answer that ends before the request body was fully read does not close
 * the connection by itself: loom then reads and drops the rest of the body,
 * up to 1 MiB and for at most the body timeout in all, and keeps the
 * connection if that completes (it closes it otherwise, and at once when the
 * announced Content-Length leaves more than 1 MiB). Exception: a request
 * with "Expect: 100-continue" answered before any 100 Continue was sent
 * closes the connection (its client may never send the body).
 *
 * Connections: every connection ends through one path, exactly once; a
 * request in flight on it hears on_close (above) if not yet answered.
 * Client trouble (bad requests, timeouts, resets) is reported through
 * opts.on_event, else the loop's default callback, else a debug log line;
 * it never ends loom_run().
 *
 * Host: the request's host is one value. An absolute-form target
 * ("GET http://example.com/x HTTP/1.1") names it, and its authority replaces
 * the Host field (RFC 9112 section 3.2.2): loom_http_req_host(),
 * loom_http_req_header(req, "Host") and loom_http_header_find() on the
 * request's fields all return it. A Host value (or authority) that is not a
 * valid host[:port] gets 400, as do a missing Host in HTTP/1.1 and two of
 * them.
 *
 * Threads: with opts.threads = N > 1, loom_http_server() starts N - 1 more
 * threads, each with its own loop (the same backend) and its own server on
 * the same port (SO_REUSEPORT); the kernel spreads connections over the N
 * loops. on_request and every other callback run on the thread that owns the
 * connection, so they must be thread-safe with respect to the application's
 * shared state; a request must be answered on its own loop's thread (use
 * loom_post() to get there; loom_http_req_loop() says which loop). The
 * server returned is the one on the caller's loop; loom_http_server_close()
 * on it closes all of them.
 *
 * Unless stated otherwise, every function is for the loop's thread only.
 */
#ifndef LOOM_HTTP_H
#define LOOM_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loom/common.h"
#include "loom/event.h"
#include "loom/http_parser.h"
#include "loom/tcp.h"
#include "loom/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_http_server loom_http_server_t;
typedef struct loom_http_req loom_http_req_t;

/* on_request, on_close and on_drain: cb(req, data), data = the server's data
 * slot (loom_http_server_data(); see loom_http_req_data() for the request's
 * own slot). */
typedef void (*loom_http_req_cb)(loom_http_req_t *req, void *data);

/* Streaming request bodies: called with each piece of the body as it
 * arrives (`chunk` valid only during the call; chunked coding already
 * removed), then once with `chunk` NULL and `len` 0 when the body is
 * complete (also for requests without a body). Return 0 to go on, or
 * LOOM_HTTP_PAUSE to stop reading until loom_http_req_resume(). The
 * application may answer at any point; once the answer is complete the rest
 * of the body is not delivered: loom reads and drops it to keep the
 * connection, within a bound (see "An answer that ends before ..." above). */
typedef int (*loom_http_body_cb)(loom_http_req_t *req, const char *chunk, size_t len, void *data);
#define LOOM_HTTP_PAUSE 1

/* The graceful close's completion callback: runs once every server thread
 * and connection is gone. data = the server's data slot. */
typedef void (*loom_http_server_cb)(loom_http_server_t *srv, void *data);

/* Per-thread setup for opts.threads > 1: runs on each extra thread with its
 * loop before it serves, `index` 1..N-1 (the caller's loop is index 0 and
 * gets no call). */
typedef void (*loom_http_thread_cb)(loom_loop_t *loop, unsigned index, void *data);

/* HTTP/2 options of a server (loom_http_server_opts.http2). A zeroed
 * struct gives the defaults; see docs/HTTP2.md. */
typedef struct loom_http2_opts {
    /* An HTTPS server offers "h2" by ALPN (before "http/1.1") unless this
     * is set; a TLS context with its own ALPN list decides instead. */
    bool disable;
    /* h2c on a plain-TCP server (never over TLS), off by default. Both
     * ways a client asks for it are taken: prior knowledge (a connection
     * that opens with the HTTP/2 preface, "PRI * HTTP/2.0...", is served as
     * HTTP/2) and "Upgrade: h2c" (a body-less HTTP/1.1 request with a valid
     * HTTP2-Settings gets 101 and is served as stream 1 of the HTTP/2
     * connection; any other is answered on HTTP/1.1). See docs/HTTP2.md. */
    bool h2c;
    /* With h2c: ignore "Upgrade: h2c" (prior knowledge only; RFC 9113
     * deprecates the upgrade). */
    bool no_upgrade;
    /* SETTINGS_MAX_CONCURRENT_STREAMS. 0: 100. */
    uint32_t max_concurrent_streams;
    /* SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may send
     * ahead of the application (a paused on_body stops the window). 0:
     * 65535. The connection's window is 16 times this. */
    uint32_t initial_window;
    /* SETTINGS_MAX_FRAME_SIZE (16384..16777215). 0: 16384. */
    uint32_t max_frame_size;
    /* SETTINGS_MAX_HEADER_LIST_SIZE, enforced on decoded fields (name +
     * value + 32 per field, RFC 9113). 0: limits.max_header_bytes
     * (default 16384). */
    uint32_t max_header_list;
    /* Rapid reset: stream resets the client may cause, as a token bucket
     * of `reset_burst` refilled at `reset_rate` per second; beyond it the
     * connection gets GOAWAY ENHANCE_YOUR_CALM. Counted: the client's
     * RST_STREAM frames, and the server's for the client's errors
     * (MadeYouReset). 0: 200 and 50. */
    uint32_t reset_burst;
    uint32_t reset_rate;
} loom_http2_opts;

/* Options for loom_http_server(). A zeroed struct gives the defaults. */
typedef struct loom_http_server_opts {
    void *data; /* the server's data slot, passed to every callback */
    /* HTTPS (loom/tls.h): a server context makes every connection a TLS
     * one (the server holds a reference, so the caller may free its own
     * after the call; a client context is LOOM_EINVAL). ALPN: what the
     * context says (give it .alpn = "http/1.1"). A client whose handshake
     * fails or that leaves without close_notify is treated as one that
     * closed or reset the connection: no event. Works with `threads`. */
    loom_tls_ctx_t *tls;
    /* Events: http errors of clients (LOOM_EV_HTTP_ERROR for bad requests,
     * LOOM_EV_HTTP_TIMEOUT for timeouts; object = the server) and tcp
     * accept errors. NULL routes them to the loop's default callback; with
     * neither they are dropped: a misbehaving client never ends loom_run(). */
    loom_event_cb on_event;
    /* Streaming mode for request bodies (see loom_http_body_cb). */
    loom_http_body_cb on_body;
    /* The client went away (reset, eof, timeout, forced close) while the
     * request was not yet answered; runs at most once per request, never
     * after the request was answered or released. See the ownership rules
     * above. */
    loom_http_req_cb on_close;
    /* A streamed response's queued bytes fell back below low water after a
     * write returned 1 (see loom_http_response_write()). */
    loom_http_req_cb on_drain;

    /* Parser limits (loom/http_parser.h): request line (414), header bytes
     * and count (431), and for buffered bodies max_body_size (413; default
     * 1 MiB; for streamed bodies the default is no limit). */
    loom_http_limits_t limits;

    /* Timeouts in ms; 0 gives the default, UINT32_MAX disables one.
     * header: a request head must be complete within this time of its
     *   first byte, and the connection must not stall longer than this
     *   while a head is incomplete (a slowloris is cut off after at most
     *   twice this); a new connection must send its first request within
     *   it too (idle connections cannot hold max_connections cheaply).
     *   Default 10000.
     * body: longest pause between two pieces of a request body; also bounds
     *   the whole discarding of an unread body after an early answer.
     *   Default 30000.
     * idle: a keep-alive connection with no request in flight, after its
     *   first request. Default 60000.
     * write: longest time without write progress while output waits
     *   (whatever the client sends meanwhile). Default 30000.
     * A request the application has not answered has no timeout. */
    uint32_t header_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t idle_timeout_ms;
    uint32_t write_timeout_ms;

    /* Open connections per server (per thread); beyond it accepting pauses
     * until one closes. 0: 10000. */
    uint32_t max_connections;
    /* Requests per keep-alive connection before loom answers with
     * Connection: close. 0 (or above 65535): no limit. */
    uint32_t max_keepalive_requests;
    /* Output high water per connection: streamed-response writes return 1
     * once this many bytes wait in the socket's queue, and on_drain runs
     * when it falls to a quarter; a connection's next pipelined request is
     * parsed only while its socket queues nothing and its current batch of
     * answers is under 16 KiB or high water, if lower (see Backpressure).
     * 0: 256 KiB. */
    uint32_t high_water;

    int backlog;    /* listen() backlog; 0: 511 */
    bool v6only;    /* a NULL bind address listens on IPv6 only */
    bool reuseport; /* SO_REUSEPORT even for one thread */
    /* Loops (threads) serving the port; 0 or 1: just the caller's loop. */
    unsigned threads;
    loom_http_thread_cb on_thread;
    /* Adds "Server: <server_name>" to every answer; NULL: none. Not copied. */
    const char *server_name;
    /* HTTP/2 (docs/HTTP2.md). Requests of an HTTP/2 connection are the
     * same loom_http_req_t, one per stream, answered with the same calls. */
    loom_http2_opts http2;
} loom_http_server_opts;

/* --- Servers --------------------------------------------------------------- */

/* Listens on `bind`:`port` (a numeric IPv4/IPv6 address, "localhost", or NULL
 * for every address: dual-stack [::] if possible, else 0.0.0.0; port 0 picks
 * a free port, see loom_http_server_port()) and serves HTTP/1.1, calling
 * on_request(req, opts->data) for every request. `opts` may be NULL (then
 * the defaults apply; on_request still gets data NULL). With opts->threads >
 * 1 the extra threads are started here (see the threading rules above).
 * Returns 0 with the server in `*out` (`out` may be NULL), or LOOM_EINVAL,
 * LOOM_EADDRINUSE, LOOM_ENOMEM or another LOOM_E* code (then nothing was
 * started). The server keeps the loop alive until it is closed. */
LOOM_EXTERN int loom_http_server(loom_loop_t *loop, const char *bind, int port,
                                 loom_http_req_cb on_request, const loom_http_server_opts *opts,
                                 loom_http_server_t **out);

/* Closing flags. */
enum {
    /* Closes every connection at once: requests in flight get on_close
     * (and must still be answered or released), nothing more is sent. */
    LOOM_HTTP_CLOSE_FORCE = 1u << 0
};

/* cl-async's close-http-server. Stops accepting at once (on every thread);
 * idle keep-alive connections close right away; connections with a request
 * in flight (deferred ones included) finish it, their last answer carrying
 * "Connection: close", and then close. When every connection of every
 * thread is gone, the extra threads are joined, the server is freed and
 * on_done(srv, data) runs (if not NULL) on this loop. With
 * LOOM_HTTP_CLOSE_FORCE connections are closed at once instead. The server
 * pointer stays valid until on_done has returned (without on_done: until
 * this loop's iteration in which everything finished ends); calling close
 * again meanwhile (e.g. to force a graceful close) is allowed. Returns 0,
 * or LOOM_ECLOSED if the server is already fully closed. Loop thread of the
 * caller's loop (the one loom_http_server() ran on). */
LOOM_EXTERN int loom_http_server_close(loom_http_server_t *srv, unsigned flags,
                                       loom_http_server_cb on_done);

/* The bound port, or LOOM_ECLOSED. */
LOOM_EXTERN int loom_http_server_port(const loom_http_server_t *srv);

/* The loop the server runs on (the caller's loop for a threaded server), or
 * NULL for NULL. */
LOOM_EXTERN loom_loop_t *loom_http_server_loop(const loom_http_server_t *srv);

/* The server's data slot (shared by the threads; set it before serving). */
LOOM_EXTERN void *loom_http_server_data(const loom_http_server_t *srv);

/* Number of requests received and not yet answered or released on this
 * server (this thread only). */
LOOM_EXTERN size_t loom_http_server_pending(const loom_http_server_t *srv);

/* --- Requests: accessors ------------------------------------------------------
 * All accessors work until the request is answered or released, also after
 * the client went away. The `len` out-parameters may be NULL. */

/* The method as an enum (LOOM_HTTP_METHOD_OTHER for unknown tokens), and the
 * raw token as sent (NUL-terminated). */
LOOM_EXTERN loom_http_method_t loom_http_req_method(const loom_http_req_t *req);
LOOM_EXTERN const char *loom_http_req_method_str(const loom_http_req_t *req, size_t *len);

/* The request target as sent ("/a%20b?x=1"; cl-async's request-uri),
 * NUL-terminated. */
LOOM_EXTERN const char *loom_http_req_target(const loom_http_req_t *req, size_t *len);

/* The path (cl-async's request-resource): the target up to '?' (for an
 * absolute-form target "http://host/p?q", from the path's '/', and "/" if it
 * has none), still percent-encoded, NUL-terminated. */
LOOM_EXTERN const char *loom_http_req_path(const loom_http_req_t *req, size_t *len);

/* The query string after '?' without the '?' (cl-async's
 * request-querystring), still encoded, NUL-terminated; "" if none. */
LOOM_EXTERN const char *loom_http_req_query(const loom_http_req_t *req, size_t *len);

/* The request's host as sent (host[:port]): the absolute-form target's
 * authority if the target has one, else the Host field's value; NULL (length
 * 0) if there is neither (HTTP/1.0). NUL-terminated. Agrees with
 * loom_http_req_header(req, "Host"). */
LOOM_EXTERN const char *loom_http_req_host(const loom_http_req_t *req, size_t *len);

/* The protocol version as 10 * major + minor: 10 (HTTP/1.0), 11 (HTTP/1.1
 * and above) or 20 (a stream of an HTTP/2 connection). */
LOOM_EXTERN int loom_http_req_version(const loom_http_req_t *req);

/* The HTTP/2 stream id of the request (for logging), or 0 for HTTP/1. */
LOOM_EXTERN uint32_t loom_http_req_stream_id(const loom_http_req_t *req);

/* Percent-decodes the path into buf[0..size), NUL-terminated ("%2F" stays a
 * decoded '/', "%00" is refused). Returns the decoded length, LOOM_ENOSPC
 * (size = path length + 1 always suffices) or LOOM_EURL. */
LOOM_EXTERN int loom_http_req_path_decoded(const loom_http_req_t *req, char *buf, size_t size);

/* Looks up the first query parameter named `name` (compared after decoding)
 * and decodes its value ('+' is a space) into buf[0..size), NUL-terminated.
 * Returns the decoded length, LOOM_ENOENT (no such parameter), LOOM_ENOSPC
 * or LOOM_EURL. buf NULL with size 0 tests for presence. */
LOOM_EXTERN int loom_http_req_query_param(const loom_http_req_t *req, const char *name, char *buf,
                                          size_t size);

/* The header fields in order, duplicates kept, as slices with lengths (the
 * names and values are also NUL-terminated). `*n` receives the count. */
LOOM_EXTERN const loom_http_header_t *loom_http_req_headers(const loom_http_req_t *req, size_t *n);

/* The value of the first field named `name` (case-insensitive), or NULL.
 * NUL-terminated. */
LOOM_EXTERN const char *loom_http_req_header(const loom_http_req_t *req, const char *name,
                                             size_t *len);

/* The buffered body (NULL with length 0 when there is none, or in streaming
 * mode); not NUL-terminated. */
LOOM_EXTERN const char *loom_http_req_body(const loom_http_req_t *req, size_t *len);

/* The peer's address as a string and port (see loom_socket_peer_name()).
 * Returns 0, LOOM_ECLOSED (client gone) or LOOM_ENOSPC. */
LOOM_EXTERN int loom_http_req_peer(const loom_http_req_t *req, char *buf, size_t size, int *port);

/* Whether the request came over TLS (an https:// server). */
LOOM_EXTERN bool loom_http_req_is_tls(const loom_http_req_t *req);

/* What the handshake of the request's connection negotiated: version,
 * cipher, ALPN, the SNI name the client asked for, the client certificate's
 * subject (see loom_socket_tls_info()). Returns 0, LOOM_EPROTOCOL (not
 * TLS) or LOOM_ECLOSED (client gone). */
LOOM_EXTERN int loom_http_req_tls_info(const loom_http_req_t *req, loom_tls_info *info);

/* Writes a readable dump of the request (request line, path, query, headers,
 * body size and a printable excerpt of the body: cl-async's pretty-print of
 * http-request) into buf[0..size), NUL-terminated, truncated if needed.
 * Returns the full length (snprintf's rule). */
LOOM_EXTERN int loom_http_req_format(const loom_http_req_t *req, char *buf, size_t size);
/* The same, to a stdio stream. Returns the bytes written or LOOM_EIO. */
LOOM_EXTERN int loom_http_req_print(const loom_http_req_t *req, FILE *fp);

/* The request's own user slot (NULL at first), its server and its loop. */
LOOM_EXTERN void *loom_http_req_data(const loom_http_req_t *req);
LOOM_EXTERN void loom_http_req_set_data(loom_http_req_t *req, void *data);
LOOM_EXTERN loom_http_server_t *loom_http_req_server(const loom_http_req_t *req);
LOOM_EXTERN loom_loop_t *loom_http_req_loop(const loom_http_req_t *req);

/* Returns 1 once the client has gone away (on_close ran or is due), else 0. */
LOOM_EXTERN int loom_http_req_closed(const loom_http_req_t *req);

/* Streaming bodies: stop and restart reading the request body (the body
 * timeout does not run while paused). Returns 0, LOOM_ECLOSED, or
 * LOOM_ESTATE if the body is already complete. */
LOOM_EXTERN int loom_http_req_pause(loom_http_req_t *req);
LOOM_EXTERN int loom_http_req_resume(loom_http_req_t *req);

/* Drops the request without answering (the connection is closed if it still
 * waits for the answer). The pointer is dead afterwards. Returns 0, or
 * LOOM_ESTATE if a streamed answer is in progress (end it instead) and its
 * client is still there: after any call on the request returned
 * LOOM_ECLOSED, releasing it is always accepted (and on_close does not run
 * for it afterwards). A streamed answer without a body (a write returned
 * LOOM_ENOBODY) is complete with its head: releasing it ends it, as
 * loom_http_response_end() does, and the connection goes on. */
LOOM_EXTERN int loom_http_req_release(loom_http_req_t *req);

/* --- Responses ------------------------------------------------------------------
 * `headers` is a NULL-terminated list of name, value pairs:
 *     (const char *[]){"Content-Type", "text/plain", NULL}
 * or NULL. Names and values must not contain CR, LF or NUL (LOOM_EINVAL).
 * loom adds Date, Content-Length (or Transfer-Encoding: chunked) and
 * Connection as needed; a Date or Connection in `headers` replaces loom's
 * ("Connection: close" also closes the connection after the answer). */

/* cl-async's http-response: answers with `status` (0: 200), `headers` and
 * body[0..len) (copied or sent before it returns; body may be NULL when len
 * is 0). Content-Length is computed; one in `headers` is ignored, except when
 * len is 0 for a HEAD request or a 304 (the length of the representation).
 * `status` is a final one, 200-999 (interim 1xx answers go through
 * loom_http_respond_interim()). No body is sent for HEAD, 204 and 304. The
 * request is answered (and
 * dead) after this call, whatever it returns, except for LOOM_EINVAL (bad
 * status or headers: nothing was sent, the request is still yours) and
 * LOOM_ESTATE (already answering: nothing changed). Returns 0, LOOM_ECLOSED
 * (the client went away: the answer is dropped), LOOM_EINVAL, LOOM_ESTATE or
 * LOOM_ENOMEM (then the connection is closed). */
LOOM_EXTERN int loom_http_respond(loom_http_req_t *req, int status, const char *const *headers,
                                  const void *body, size_t len);

/* Sends an interim answer (RFC 9110 section 15.2) before the final one:
 * `status` 100-199 except 101 (103 Early Hints with Link fields, 100
 * Continue, 102), with `headers` (may be NULL; Content-Length,
 * Transfer-Encoding and Connection in it are dropped, and no Date is
 * added). May be called several times before loom_http_respond() or
 * loom_http_response_start(). It goes out at once (at the latest when the
 * callback that sends it returns), in order with the request's final answer.
 * A 100 Continue is sent at most once per request: loom sends one itself
 * for "Expect: 100-continue" when the application reads the body (see
 * on_body) and none after the application's own. Returns 0, LOOM_ENOTSUP
 * (an HTTP/1.0 client, which must not get a 1xx: nothing was sent),
 * LOOM_EINVAL (bad status or headers), LOOM_ESTATE (the final answer has
 * started), LOOM_ECLOSED or LOOM_ENOMEM. The request stays yours. */
LOOM_EXTERN int loom_http_respond_interim(loom_http_req_t *req, int status,
                                          const char *const *headers);

/* Takes the connection of an upgrade request over (WebSocket and other
 * protocols started with "Upgrade"): answers `status` with `headers` -
 * only 101 (Switching Protocols) is accepted, the request must carry an
 * Upgrade field and `headers` must name the protocol in an Upgrade field;
 * loom adds Date and "Connection: upgrade" - then hands the connection to
 * the caller as a plain loom socket (*out) with the callbacks, timeouts,
 * water marks and data slot of `opts` (its socket options stay the
 * server's; on_connect is not called). Bytes the client sent behind the
 * request, already read by the server, reach the new on_read first, in the
 * pending phase of this iteration; reading resumes after them. The
 * connection no longer belongs to the server: it leaves its connection
 * count, and a graceful close of the server does not wait for it. The
 * request is finished (as after an answer: do not use it once the callback
 * returns); close the socket with loom_socket_close(), and its on_close
 * runs once. CONNECT tunnels are not supported.
 * Returns 0, LOOM_EINVAL (another status, no Upgrade field in the request
 * or in `headers`, bad headers: nothing was sent), LOOM_ESTATE (answered or
 * answering), LOOM_EBUSY (the request's body is still unread, or the
 * request is not the connection's only one in flight), LOOM_ENOTSUP (an
 * HTTP/1.0 request, which cannot switch protocols, or a connection that
 * cannot change owner), LOOM_ECLOSED (the client went away), or
 * LOOM_ENOMEM / LOOM_ETOOMANY after the 101 was written (then the
 * connection is closed as if the client went away: on_close follows). */
LOOM_EXTERN int loom_http_req_takeover(loom_http_req_t *req, int status, const char *const *headers,
                                       const loom_tcp_opts *opts, loom_socket_t **out);

/* Starts a streamed answer: status (0: 200) and headers go out now. With a
 * Content-Length in `headers` the body is sent raw and must have exactly that
 * length; otherwise it is chunked (HTTP/1.1 clients) or delimited by closing
 * the connection (HTTP/1.0). Returns 0, LOOM_ECLOSED (the request is still
 * yours: end or release it), LOOM_EINVAL or LOOM_ESTATE. */
LOOM_EXTERN int loom_http_response_start(loom_http_req_t *req, int status,
                                         const char *const *headers);

/* Sends data[0..len) of a streamed answer (copied if it cannot be sent at
 * once; len 0 does nothing and returns 0). Returns 0, 1 when the socket's
 * queue is above high water (wait for on_drain before writing more),
 * LOOM_ECLOSED (the client is gone, also as soon as a send to it has
 * failed: end or release the request), LOOM_ENOBODY, LOOM_ESTATE (not
 * started, or more than the announced Content-Length) or LOOM_ENOMEM.
 * LOOM_ENOBODY: the answer has no body - it answers HEAD, or its status is
 * 204 or 304, or it is a 2xx to CONNECT - so nothing is sent, ever; the
 * answer is complete with its head: end it (loom_http_response_end(), or
 * loom_http_req_release(), which ends such an answer too). Every write of
 * such an answer returns it, the first one included, so a producer that
 * writes until the call returns non-zero stops at once on a HEAD request
 * instead of making a body nobody gets. The same on HTTP/1 and HTTP/2. */
LOOM_EXTERN int loom_http_response_write(loom_http_req_t *req, const void *data, size_t len);

/* Finishes a streamed answer (the final chunk, or nothing for a raw body;
 * a raw body shorter than its Content-Length closes the connection). The
 * request is answered and dead after this call whatever it returns, unless
 * LOOM_ESTATE (not started). Returns 0, LOOM_ECLOSED or LOOM_ESTATE. */
LOOM_EXTERN int loom_http_response_end(loom_http_req_t *req);

/* Server-Sent Events: starts a streamed 200 answer with
 * "Content-Type: text/event-stream", "Cache-Control: no-cache" and the
 * extra `headers` (may be NULL). Returns like loom_http_response_start(). */
LOOM_EXTERN int loom_http_sse_start(loom_http_req_t *req, const char *const *headers);

/* Sends one event: "event: <event>\n" (if event is not NULL), one
 * "data: <line>\n" per line of `data` (NULL: an empty data line), and a
 * blank line. Returns like loom_http_response_write(). End the stream with
 * loom_http_response_end(). */
LOOM_EXTERN int loom_http_sse_send(loom_http_req_t *req, const char *event, const char *data);

/* Sends an SSE comment line (": <text>\n\n"), e.g. a heartbeat that keeps
 * proxies from timing the stream out. Returns like loom_http_response_write(). */
LOOM_EXTERN int loom_http_sse_comment(loom_http_req_t *req, const char *text);

/* --- Shared helpers (any thread) ---------------------------------------------- */

/* Finds the next field named `name` (NUL-terminated, compared
 * case-insensitively) in headers[*pos..n), starting at *pos (0 the first
 * time) and leaving *pos after the match, so that repeated calls visit the
 * duplicates in order. `pos` may be NULL (first match). Returns the field or
 * NULL. */
LOOM_EXTERN const loom_http_header_t *
loom_http_header_find(const loom_http_header_t *headers, size_t n, const char *name, size_t *pos);

/* Returns 1 if the comma-separated list value[0..len) (a Connection or
 * Accept-Encoding style field) contains `token`, case-insensitively. */
LOOM_EXTERN int loom_http_token_list_has(const char *value, size_t len, const char *token);

/* The standard reason phrase of `status` ("Not Found"), or "Unknown". */
LOOM_EXTERN const char *loom_http_status_reason(int status);

/* Formats `t` (seconds since the epoch) as an IMF-fixdate ("Sun, 06 Nov 1994
 * 08:49:37 GMT", 29 characters) into buf, which must hold 30 bytes. Returns
 * 29. */
LOOM_EXTERN int loom_http_date(int64_t t, char *buf);

#ifdef __cplusplus
}
#endif
#endif
