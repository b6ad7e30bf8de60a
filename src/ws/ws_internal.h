/* ws/ws_internal.h - the WebSocket connection object shared by ws.c (frames,
 * messages, control, close), ws_server.c (the accept), ws_client.c (the
 * connect) and ws_topic.c (prepared messages, topics). Not installed. */
#ifndef LOOM_WS_INTERNAL_H
#define LOOM_WS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"
#include "loom/ws.h"
#include "loom/ws_frame.h"

/* The options of a set of connections, shared and reference-counted so that
 * a connection does not carry a copy of every callback (the idle memory
 * goal). Accepts with equal options share one class. `sock` is the socket
 * class their sockets share once taken over from the HTTP server (see
 * loom__socket_handoff_share()): a reference, NULL until the first. */
#define WS_CLASS_PROTOS 4

typedef struct loom__ws_class {
    loom_ws_opts o;
    uint32_t refs;
    bool server;
    struct loom__sock_class *sock;
    /* Negotiated subprotocols, interned (own copies) so that a connection
     * names one with an index (loom_ws.proto) instead of a string of its
     * own; a fifth distinct one goes to the connection's loom__ws_more. */
    char *protos[WS_CLASS_PROTOS];
} loom__ws_class;

/* States: one function (ws_set_closed) leaves OPEN for good. */
enum { WS_CONNECTING = 0, WS_OPEN, WS_CLOSE_SENT, WS_CLOSED };

typedef struct loom__ws_client loom__ws_client;
typedef struct loom__ws_sub loom__ws_sub;

/* What a connection holds only while it is not idle, or uses rarely: a
 * frame or message in progress, input kept behind a pause, the timer, the
 * client's handshake, subscriptions, an own subprotocol string,
 * permessage-deflate. Allocated on demand (loom__ws_more()) and freed when
 * it holds nothing (ws.c), so an idle connection is the 40 bytes of
 * loom_ws and nothing else. */
typedef struct loom__ws_more {
    /* The frame parser (ws_frame.h), while it is inside a frame or a
     * fragmented message (between those it is rebuilt from the options). */
    loom_ws_parser_t ps;
    /* Raw bytes read behind a pause (or by a reentrant feed), not parsed. */
    char *rbuf;
    uint32_t rlen, rcap;
    /* The payload of the current frame when it arrives in pieces. */
    char *fbuf;
    uint32_t flen, fcap;
    /* The message being reassembled, or after the close the peer's reason. */
    char *mbuf;
    uint32_t mlen, mcap;
    loom_timer_t *timer;     /* keepalive, or the deferred feed after resume */
    loom__ws_client *client; /* the client's handshake, until on_open */
    loom__ws_sub *subs;      /* the topics it is subscribed to */
    char *protocol;          /* the negotiated subprotocol (own copy), or NULL */
    loom_ws_deflate_t *z;    /* permessage-deflate, when negotiated */
    /* The pong owed to the latest ping while the send queue is at high
     * water: [length][payload], sent on drain (RFC 6455 section 5.5.3 lets
     * a pong answer only the most recent ping), so that a peer that sends
     * pings and never reads cannot grow the queue. */
    unsigned char *pong;
    bool live; /* ps holds state (a frame or message in progress) */
} loom__ws_more;

struct loom_ws {
    loom_socket_t *sock;
    loom__ws_class *cls;
    void *data;
    loom__ws_more *x;    /* NULL while idle (see loom__ws_more) */
    uint16_t close_code; /* what on_close reports */
    uint8_t state;
    uint8_t msg_op;    /* 0, or the opcode of the message in progress */
    uint8_t send_op;   /* 0, or the opcode of the fragmented message being sent
                          (| 0x40: it is compressed) */
    loom_ws_utf8_t u8; /* incremental UTF-8 validation of compressed text */
    uint8_t flags;
    uint8_t proto; /* subprotocol: 0 none, 1..4 cls->protos[proto - 1], else x->protocol */
};

/* The connection's rarely used part, allocated if needed; NULL on ENOMEM. */
loom__ws_more *loom__ws_more_get(loom_ws_t *ws);
/* Records the negotiated subprotocol. Returns 0 or LOOM_ENOMEM. */
int loom__ws_set_protocol(loom_ws_t *ws, const char *name);
/* Frees the rarely used part if it holds nothing. */
void loom__ws_more_trim(loom_ws_t *ws);

static inline loom_ws_deflate_t *loom__ws_z(const loom_ws_t *ws)
{
    return ws->x ? ws->x->z : NULL;
}

static inline loom__ws_sub *loom__ws_subs(const loom_ws_t *ws)
{
    return ws->x ? ws->x->subs : NULL;
}

static inline loom_timer_t *loom__ws_timer(const loom_ws_t *ws)
{
    return ws->x ? ws->x->timer : NULL;
}

/* flags */
#define WS_F_PAUSED    0x01
#define WS_F_SEEN      0x02 /* a frame arrived since the last keepalive tick */
#define WS_F_PING_OUT  0x04 /* a keepalive ping waits for its pong */
#define WS_F_UNUSED_08 0x08
#define WS_F_GOT_CLOSE 0x10 /* the peer's close frame arrived */
#define WS_F_IN_FEED   0x20
#define WS_F_MSG_Z     0x40 /* the message being received is compressed */
#define WS_F_RESUMED   0x80 /* the timer is set to feed what a pause kept */

loom__ws_class *loom__ws_class_get(const loom_ws_opts *o, bool server);
void loom__ws_class_unref(loom__ws_class *c);

/* A new connection object for class c (takes a reference); NULL on ENOMEM. */
loom_ws_t *loom__ws_new(loom__ws_class *c);
/* The socket options every WebSocket socket uses, with `ws` as data. */
void loom__ws_tcp_opts(loom_ws_t *ws, loom_tcp_opts *t);
/* Sets up permessage-deflate with the agreed parameters. Returns 0 or
 * LOOM_ENOMEM. */
int loom__ws_deflate_start(loom_ws_t *ws, loom_ws_role_t role, const loom_ws_deflate_params_t *a);
/* Frees a connection that never got a socket. */
void loom__ws_free(loom_ws_t *ws);
/* The connection is open: starts keepalive. */
void loom__ws_opened(loom_ws_t *ws);
/* Frames to process: bytes[0..n) are loom's read memory (unmasked in place). */
void loom__ws_feed(loom_ws_t *ws, char *p, size_t n);
/* Fails the connection: a websocket error event naming the peer and `why`,
 * a close frame with `code` (unless 0 or already sent), then the socket
 * closes (abort if `abort`). The event's code follows the close code:
 * LOOM_ETOOBIG for 1009, LOOM_ENOMEM for 1011, LOOM_ENOBUFS for 1008 (a
 * slow subscriber), else LOOM_EPROTOCOL (the peer's violation). */
void loom__ws_fail(loom_ws_t *ws, int code, bool abort, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The same with the event's code `err` given (LOOM_ETIMEDOUT: keepalive). */
void loom__ws_fail_err(loom_ws_t *ws, int code, int err, bool abort, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Emits an event concerning `ws` (routing as the header describes). */
void loom__ws_event(loom_ws_t *ws, loom_event_kind_t kind, int code, const char *msg);

/* Base64 of SHA-1(key || GUID), NUL-terminated (29 bytes). */
void loom__ws_accept_key(const char *key, size_t len, char out[29]);
/* SHA-1 of data[0..n) (sha1.c: no OpenSSL, see there). */
void loom__ws_sha1(const void *data, size_t n, uint8_t out[20]);
/* Base64 (with padding) of in[0..n) into out (4 * ((n + 2) / 3) + 1 bytes,
 * NUL-terminated); returns the length without the NUL. */
size_t loom__ws_base64(const uint8_t *in, size_t n, char *out);
/* Client handshake (ws_client.c): bytes read before the 101 is complete. */
void loom__ws_client_read(loom_ws_t *ws, const char *p, size_t n);
void loom__ws_client_free(loom__ws_client *c);
/* The "host:port" the client connects to (for messages). */
const char *loom__ws_client_target(const loom__ws_client *c);
/* Topics (ws_topic.c): drops every subscription of a closing connection. */
void loom__ws_unsubscribe_all(loom_ws_t *ws);

/* --- Sending, compression (ws.c's send side, deflate.c, ws_topic.c) --- */
/* Writes one frame; `op` may carry RSV1 (0x40). Payload masked into a copy
 * on a client. Returns like loom_socket_write(). */
int loom__ws_write_frame(loom_ws_t *ws, int op, bool fin, const void *data, size_t len);
/* Scratch memory of n bytes for a message being compressed, valid until the
 * next call on this thread: the thread's buffer (*owned = 0), or for a large
 * n a malloc'd one (*owned = 1: free it). NULL on ENOMEM. */
void *loom__ws_zbuf(size_t n, int *owned);
/* Sends a message compressed into a frame (a whole message: first and fin;
 * or one fragment of it). Returns like loom_socket_write(). */
int loom__ws_send_z(loom_ws_t *ws, int op, bool fin, const void *data, size_t len);

#endif
