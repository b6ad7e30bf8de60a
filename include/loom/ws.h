/* loom/ws.h - WebSocket connections (RFC 6455): the server side, taken over
 * from an HTTP request (loom_ws_accept()), the client side
 * (loom_ws_connect()), messages whole or streamed, control frames, the close
 * handshake, backpressure, prepared messages and topics for broadcast.
 *
 * A loom_ws_t is a WebSocket connection on one plain loom socket (the HTTP
 * server's own connection, handed over: never a second socket; TLS stays in
 * the socket, so wss works on every backend).
 *
 * Lifetime: every connection that a constructor handed out is closed exactly
 * once, whatever closes it (loom_ws_close(), the peer's close frame, a
 * protocol violation, a timeout, a reset, loom_loop_free()), and its
 * `on_close` runs once, from the loop, after every other callback of the
 * connection, with the close code and reason (see loom_ws_close_cb). When
 * on_close returns the pointer is dead. Between the close and on_close every
 * call on it returns LOOM_ECLOSED. Every callback may close the connection
 * (or any other one) reentrantly.
 *
 * Errors: protocol violations by the peer, limits exceeded, keepalive and
 * close timeouts arrive on `on_event` as LOOM_EV_WS_ERROR events whose
 * message names the peer and the reason ("websocket 127.0.0.1:51234: unmasked
 * client frame (1002)") and whose code is LOOM_EPROTOCOL (the peer's
 * violation), LOOM_ETOOBIG (a limit), LOOM_ETIMEDOUT (keepalive),
 * LOOM_ENOBUFS (a slow subscriber closed) or LOOM_ENOMEM; the socket's own
 * events (tcp reset, tcp timeout, tls error) are passed on with `object` the
 * connection, naming the peer once ("websocket 127.0.0.1:51234: connection
 * reset by peer"). Without on_event they go to the loop's default handler; a
 * server connection's events with no handler at all are logged and dropped
 * (a client cannot end a server's loom_run()).
 *
 * Everything here is for the loop's thread only.
 */
#ifndef LOOM_WS_H
#define LOOM_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loom/common.h"
#include "loom/event.h"
#include "loom/http.h"
#include "loom/tcp.h"
#include "loom/ws_frame.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_ws loom_ws_t;
typedef struct loom_ws_prepared loom_ws_prepared_t;
typedef struct loom_ws_topics loom_ws_topics_t;

/* Message types (the frame opcodes). */
typedef enum { LOOM_WS_TEXT = 1, LOOM_WS_BINARY = 2 } loom_ws_type_t;

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    LOOM_WS_NORMAL = 1000,
    LOOM_WS_GOING_AWAY = 1001,
    LOOM_WS_PROTOCOL_ERROR = 1002,
    LOOM_WS_UNSUPPORTED = 1003,
    LOOM_WS_NO_STATUS = 1005, /* reported only: the close frame had no code */
    LOOM_WS_ABNORMAL = 1006,  /* reported only: no close frame at all */
    LOOM_WS_INVALID_DATA = 1007,
    LOOM_WS_POLICY = 1008,
    LOOM_WS_TOO_BIG = 1009,
    LOOM_WS_INTERNAL = 1011
};

/* on_open, on_drain: cb(ws, data) with data = the connection's data slot. */
typedef void (*loom_ws_cb)(loom_ws_t *ws, void *data);
/* A whole message: data[0..len) is valid only during the call (text is
 * valid UTF-8, not NUL-terminated). */
typedef void (*loom_ws_message_cb)(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len,
                                   void *data);
/* One frame of a message in streaming mode: `type` is the message's type on
 * every piece, `fin` is true on its last piece. Text pieces are validated
 * incrementally (a piece may end inside a UTF-8 sequence that the next one
 * completes). */
typedef void (*loom_ws_fragment_cb)(loom_ws_t *ws, loom_ws_type_t type, const char *piece,
                                    size_t len, bool fin, void *data);
/* A ping or pong payload (at most 125 bytes), for information: loom answers
 * pings itself (while the send queue is at high water, only the latest
 * ping, once the queue drains: RFC 6455 section 5.5.3). */
typedef void (*loom_ws_control_cb)(loom_ws_t *ws, const char *payload, size_t len, void *data);
/* The close notification, once. `code`: the peer's close code when it sent a
 * close frame (LOOM_WS_NO_STATUS if it had none), else the code loom sent
 * when it failed the connection (1002, 1007, 1009, 1011...) or the
 * application's code from loom_ws_close() whose answer never came, else
 * LOOM_WS_ABNORMAL (the connection dropped without a close frame). `reason`
 * (reason_len bytes, NUL-terminated, valid during the call) goes with it. */
typedef void (*loom_ws_close_cb)(loom_ws_t *ws, int code, const char *reason, size_t reason_len,
                                 void *data);
/* Server: picks a subprotocol from the client's Sec-WebSocket-Protocol list
 * offered[0..len) (comma-separated). Returns a protocol (a token from that
 * list, which must stay valid until loom_ws_accept() returns) or NULL for
 * none. */
typedef const char *(*loom_ws_protocol_cb)(loom_http_req_t *req, const char *offered, size_t len,
                                           void *data);

/* Options for loom_ws_accept() and loom_ws_connect(). Zero means the default
 * everywhere. */
typedef struct loom_ws_opts {
    loom_ws_cb on_open; /* client: the handshake succeeded (server: not called) */
    /* Whole messages. Ignored when on_fragment is set. */
    loom_ws_message_cb on_message;
    /* Streaming: every data frame as it completes, no reassembly (the
     * message size limit then does not apply; the frame limit does, and with
     * permessage-deflate it bounds each frame's inflated size too). */
    loom_ws_fragment_cb on_fragment;
    loom_ws_control_cb on_ping, on_pong;
    /* The queued bytes fell to low_water after a send returned 1. */
    loom_ws_cb on_drain;
    loom_event_cb on_event;
    loom_ws_close_cb on_close;
    void *data; /* the connection's data slot */

    /* Largest message delivered whole (reassembled), in bytes. 0: 16 MiB.
     * A bigger one fails the connection with 1009. Not applied with
     * on_fragment (messages of any size are streamed). */
    size_t max_message;
    /* Largest frame payload accepted. 0: max_message (1009 beyond it).
     * With on_fragment and permessage-deflate, also the largest inflated
     * size of one frame (the bound on a decompression bomb). */
    size_t max_frame;

    /* Subprotocols. Server: the ones it speaks, in its order of preference
     * (the first one the client offers wins) unless select_protocol is set.
     * Client: the ones offered (Sec-WebSocket-Protocol); the server's pick
     * must be one of them. NULL-terminated. A client's array (not copied)
     * must stay valid until on_open or on_close. */
    const char *const *protocols;
    loom_ws_protocol_cb select_protocol;

    /* Keepalive: a ping every ping_interval_ms of silence from the peer; no
     * pong (or any frame) within pong_timeout_ms (0: ping_interval_ms) fails
     * the connection (a websocket error event, code 1006 reported). 0: off. */
    uint32_t ping_interval_ms;
    uint32_t pong_timeout_ms;
    /* How long to wait for the peer's close frame (and, for the client, for
     * the server to end the TCP connection) after loom sends one. 0: 5000. */
    uint32_t close_timeout_ms;
    /* The socket's read timeout: the connection closes after this long
     * without data (tcp timeout event). 0: none. */
    uint32_t idle_timeout_ms;
    /* Send queue marks, as loom_tcp_opts. 0: 1 MiB and high_water / 4. */
    uint32_t high_water;
    uint32_t low_water;
    /* permessage-deflate (RFC 7692, loom/ws_frame.h's codec). Server: a
     * client's offer is accepted; client: it is offered. deflate_opts
     * (zeroed: window 15, context takeover, level 1, memLevel 5) bounds
     * the memory: see docs/WEBSOCKET.md. What is compressed: see
     * LOOM_WS_DEFLATE_MIN below. max_message applies to the inflated size
     * (with on_fragment: max_frame, per frame). */
    bool deflate;
    loom_ws_deflate_opts_t deflate_opts;
    /* Text messages sent are checked to be valid UTF-8 (LOOM_EINVAL if
     * not). Costs a pass over each text message; off by default. */
    bool validate_utf8_send;

    /* --- Client only --- */
    /* Extra request header fields: name, value, ..., NULL. */
    const char *const *headers;
    /* TLS for wss:// (a client context, loom/tls.h; required for wss://).
     * server_name: the name sent (SNI) and verified (NULL: the URL's host). */
    loom_tls_ctx_t *tls;
    const char *server_name;
    uint32_t connect_timeout_ms;   /* 0: 10000 */
    uint32_t handshake_timeout_ms; /* until the 101 is read; 0: 10000 */
} loom_ws_opts;

/* --- Server ---------------------------------------------------------------- */

/* From an HTTP server's on_request: validates the opening handshake (RFC
 * 6455 section 4.2: GET, HTTP/1.1, "Upgrade: websocket", a Connection field
 * with the "upgrade" token, a Sec-WebSocket-Key of 16 bytes in base64,
 * Sec-WebSocket-Version 13), picks a subprotocol, answers 101 with the
 * Sec-WebSocket-Accept value and takes the connection over
 * (loom_http_req_takeover()): bytes the client sent behind the request reach
 * the connection first.
 * The request is finished by every return except LOOM_ESTATE: it got
 * exactly one answer (the 101, or a refusal with the reason as a text
 * body), or its client was gone. An invalid handshake gets 426 with
 * "Sec-WebSocket-Version: 13" for a missing or other version or a request
 * without "Upgrade: websocket", 400 for any other defect and for an HTTP/2
 * request (WebSocket needs HTTP/1.1 here), and the call returns
 * LOOM_EPROTOCOL. To refuse a valid one (a bad Origin, no authorisation),
 * answer the request normally instead of calling this.
 * Returns 0 with the connection in *out (if not NULL), or:
 *  - LOOM_EPROTOCOL: an invalid handshake, refused as above;
 *  - LOOM_EBUSY: the request's body is still unread (an on_body server),
 *    answered 400;
 *  - LOOM_EINVAL: `req` is NULL (nothing done), or the subprotocol chosen
 *    (opts.select_protocol) is not one the client offered or not a valid
 *    field value, answered 500;
 *  - LOOM_ENOMEM, LOOM_ETOOMANY: answered 503, or, when the 101 had gone
 *    out already, the server closed the connection: no connection was
 *    handed out;
 *  - LOOM_ECLOSED: the client has gone (a deferred accept): nothing sent,
 *    the request is finished all the same;
 *  - LOOM_ESTATE: the application had begun an answer: nothing is done and
 *    the request stays the caller's (end that answer). A request already
 *    answered is dead: do not pass it. */
LOOM_EXTERN int loom_ws_accept(loom_http_req_t *req, const loom_ws_opts *opts, loom_ws_t **out);

/* --- Client ---------------------------------------------------------------- */

/* Connects to `url` ("ws://host[:port]/path?query" or "wss://..."), sends
 * the opening handshake (with opts->headers and opts->protocols) and
 * validates the server's 101 (Sec-WebSocket-Accept, Upgrade, Connection, a
 * subprotocol among those offered, permessage-deflate only if offered). Redirects are not
 * followed: a 3xx fails the handshake like any other status. on_open runs
 * when it succeeds; a failure (dns, connect, tls, timeout, bad answer) is an
 * event (LOOM_EV_WS_ERROR for a bad answer) followed by on_close with
 * LOOM_WS_ABNORMAL. Messages may be sent before on_open: they are queued.
 * Returns 0 with the connection in *out (if not NULL), LOOM_EURL (a bad or
 * non-ws URL), LOOM_EINVAL (wss:// without opts->tls) or an error of
 * loom_tcp_connect(); no callback runs before it returns. */
LOOM_EXTERN int loom_ws_connect(loom_loop_t *loop, const char *url, const loom_ws_opts *opts,
                                loom_ws_t **out);

/* --- Sending --------------------------------------------------------------- */

/* Sends a whole message (copied when it cannot be sent at once). Returns 0,
 * 1 when the send queue is at or above high water (wait for on_drain before
 * sending more: the message was queued), LOOM_ECLOSED (closed or closing),
 * LOOM_ESTATE (a fragmented message is being sent), LOOM_EINVAL (bad type,
 * or invalid UTF-8 with validate_utf8_send) or LOOM_ENOMEM. */
LOOM_EXTERN int loom_ws_send(loom_ws_t *ws, loom_ws_type_t type, const void *msg, size_t len);

/* A fragmented message: begin sends the first frame, cont the next ones,
 * end the last one (data may be empty in each). Other messages cannot be
 * sent in between (LOOM_ESTATE); control frames can. Returns like
 * loom_ws_send(); LOOM_ESTATE for cont/end without begin or begin twice. */
LOOM_EXTERN int loom_ws_send_begin(loom_ws_t *ws, loom_ws_type_t type, const void *data,
                                   size_t len);
LOOM_EXTERN int loom_ws_send_cont(loom_ws_t *ws, const void *data, size_t len);
LOOM_EXTERN int loom_ws_send_end(loom_ws_t *ws, const void *data, size_t len);

/* Sends a ping (payload at most 125 bytes, else LOOM_EINVAL). Returns like
 * loom_ws_send(). */
LOOM_EXTERN int loom_ws_ping(loom_ws_t *ws, const void *payload, size_t len);

/* Starts the close handshake: sends a close frame with `code` (1000-1003,
 * 1007-1014 or 3000-4999; 0 sends none) and `reason` (NULL or at most 123
 * bytes of UTF-8), then waits up to close_timeout_ms for the peer's. No
 * message callback runs after this call; on_close follows. Returns 0,
 * LOOM_ECLOSED (closed or closing already) or LOOM_EINVAL (bad code or
 * reason: nothing happened). */
LOOM_EXTERN int loom_ws_close(loom_ws_t *ws, int code, const char *reason);

/* Closes at once without a close frame (the socket is aborted); on_close
 * follows with LOOM_WS_ABNORMAL. Returns 0 or LOOM_ECLOSED. */
LOOM_EXTERN int loom_ws_abort(loom_ws_t *ws);

/* --- Flow and state ------------------------------------------------------- */

/* Stops (pause) and restarts (resume) reading: while paused no message
 * callback runs and the kernel's window fills. Return 0 or LOOM_ECLOSED. */
LOOM_EXTERN int loom_ws_pause(loom_ws_t *ws);
LOOM_EXTERN int loom_ws_resume(loom_ws_t *ws);

/* Bytes queued on the socket and not yet sent. */
LOOM_EXTERN size_t loom_ws_queued(const loom_ws_t *ws);

/* The negotiated subprotocol ("" for none). Valid until on_close returns. */
LOOM_EXTERN const char *loom_ws_protocol(const loom_ws_t *ws);

/* 1 if permessage-deflate was negotiated for the connection, else 0. */
LOOM_EXTERN int loom_ws_compressed(const loom_ws_t *ws);

/* 1 once the connection is closed or closing, else 0. */
LOOM_EXTERN int loom_ws_closed(const loom_ws_t *ws);

/* The underlying socket (for its address, TLS information...); do not read,
 * write or close it directly. NULL before a client's TCP connection exists. */
LOOM_EXTERN loom_socket_t *loom_ws_socket(const loom_ws_t *ws);

/* The data slot, and the loop. */
LOOM_EXTERN void *loom_ws_data(const loom_ws_t *ws);
LOOM_EXTERN void loom_ws_set_data(loom_ws_t *ws, void *data);
LOOM_EXTERN loom_loop_t *loom_ws_loop(const loom_ws_t *ws);

/* --- Prepared messages (broadcast) ---------------------------------------- */

/* Compression (permessage-deflate) of what is sent:
 * - loom_ws_send() compresses messages of LOOM_WS_DEFLATE_MIN bytes or more;
 * - a fragmented message (loom_ws_send_begin()...) is compressed whatever its
 *   size (RSV1 on its first frame, one deflate stream across its frames);
 * - a prepared message of LOOM_WS_DEFLATE_MIN bytes or more, sent to a
 *   connection without context takeover in its sending direction
 *   (server_no_context_takeover on a server, client_no_context_takeover on a
 *   client), goes in a compressed form made once, on its first such send,
 *   with a fresh compressor (unless that form is no smaller); to a connection
 *   with context takeover it is compressed for that connection when it has
 *   LOOM_WS_PREPARED_DEFLATE_MIN bytes or more, else sent as it is (a
 *   compression per subscriber costs far more than the bytes it saves on a
 *   short message). */
#define LOOM_WS_DEFLATE_MIN          16
#define LOOM_WS_PREPARED_DEFLATE_MIN 1024

/* Frames msg[0..len) once (a server-side, unmasked frame), for sending to
 * many connections without copying or re-encoding (with permessage-deflate,
 * compressed once too where connections can share it: see
 * LOOM_WS_DEFLATE_MIN above). The result starts with
 * one reference, the caller's. Returns 0, LOOM_EINVAL or LOOM_ENOMEM. Any
 * thread (the reference count is not atomic: use one loop's prepared
 * messages on that loop only). */
LOOM_EXTERN int loom_ws_prepared_new(loom_ws_type_t type, const void *msg, size_t len,
                                     loom_ws_prepared_t **out);
LOOM_EXTERN void loom_ws_prepared_ref(loom_ws_prepared_t *p);
/* Drops a reference; the last one frees it (sends in flight hold theirs). */
LOOM_EXTERN void loom_ws_prepared_unref(loom_ws_prepared_t *p);

/* Sends a prepared message: zero-copy on a server connection (the frame, or
 * its shared compressed form, is referenced until sent), re-masked into a
 * copy on a client connection; compressed for the connection alone when it
 * has context takeover and the message LOOM_WS_PREPARED_DEFLATE_MIN bytes or
 * more. Returns like loom_ws_send(). */
LOOM_EXTERN int loom_ws_send_prepared(loom_ws_t *ws, loom_ws_prepared_t *p);

/* --- Topics (publish / subscribe) ----------------------------------------- */

/* What publish does with a subscriber whose send queue is at or above its
 * high water mark. */
typedef enum {
    LOOM_WS_SLOW_SKIP = 0, /* the message is not sent to it (counted) */
    LOOM_WS_SLOW_CLOSE = 1 /* the connection is closed with 1008 */
} loom_ws_slow_policy_t;

typedef struct loom_ws_topics_opts {
    loom_ws_slow_policy_t slow;
} loom_ws_topics_opts;

/* A set of named topics on one loop. Connections subscribe to topics and
 * leave them on their close by themselves. Returns 0, LOOM_EINVAL or
 * LOOM_ENOMEM. */
LOOM_EXTERN int loom_ws_topics_new(loom_loop_t *loop, const loom_ws_topics_opts *opts,
                                   loom_ws_topics_t **out);
/* Frees the set (subscriptions are dropped; the connections stay open). */
LOOM_EXTERN void loom_ws_topics_free(loom_ws_topics_t *t);

/* Subscribes `ws` to `topic` (copied). Returns 0 (also when already
 * subscribed), LOOM_ECLOSED or LOOM_ENOMEM. */
LOOM_EXTERN int loom_ws_subscribe(loom_ws_topics_t *t, loom_ws_t *ws, const char *topic);
/* Returns 0, or LOOM_ENOENT when `ws` was not subscribed. */
LOOM_EXTERN int loom_ws_unsubscribe(loom_ws_topics_t *t, loom_ws_t *ws, const char *topic);

/* Sends a message to every subscriber of `topic`, framed once (a prepared
 * message). Slow subscribers are handled by the set's policy. Returns the
 * number of connections it was sent to (>= 0), LOOM_EINVAL or LOOM_ENOMEM. */
LOOM_EXTERN int loom_ws_publish(loom_ws_topics_t *t, const char *topic, loom_ws_type_t type,
                                const void *msg, size_t len);
/* The same with a prepared message. */
LOOM_EXTERN int loom_ws_publish_prepared(loom_ws_topics_t *t, const char *topic,
                                         loom_ws_prepared_t *p);
/* Messages skipped for slow subscribers, and connections closed as slow,
 * since the set was made. */
LOOM_EXTERN uint64_t loom_ws_topics_skipped(const loom_ws_topics_t *t);
LOOM_EXTERN uint64_t loom_ws_topics_closed_slow(const loom_ws_topics_t *t);

#ifdef __cplusplus
}
#endif
#endif
