/* net/net_internal.h - the socket layer's insides, for src/net and the HTTP
 * server and client. Not installed.
 *
 * The socket is kept small because an idle keep-alive connection should cost
 * little more than its kernel state: 88 bytes on x86-64 (a loom__handle, a
 * loom__io, the class pointer, the write-queue pointer and one list node),
 * followed in the same slab object by the backend's per-watcher area
 * (backend->io_size, 0 for epoll and poll), by `cls->extra` bytes that
 * belong to the class's owner (loom__socket_ext()) and by `cls->tr_extra`
 * bytes of its transport's state (loom__socket_tr(); none when plain).
 *
 * Everything a socket shares with its siblings lives in its class
 * (loom__sock_class): the callbacks, the timeouts, the water marks. Accepted
 * sockets point at their server's class; a client socket has its own. A
 * class is reference counted by its sockets and its server, so a server can
 * close while its connections carry on.
 *
 * Internal users (HTTP) get:
 *  - protocol hooks in the class (proto_read gets a mutable pointer into loom's
 *    read memory, proto_event gets the event kind) called directly, without
 *    the op scope and data indirection of the public callbacks;
 *  - per-socket extension bytes (cls->extra) in the same slab object;
 *  - a transport per class (cls->tr, see "Transports" below) between the fd
 *    and the protocol hooks, with its own per-socket bytes (cls->tr_extra);
 *  - loom__socket_read_stop()/loom__socket_read_start(): pause and resume
 *    reading (the same state as loom_socket_disable/enable(LOOM_READABLE));
 *  - loom__socket_touch(): restart the inactivity clock.
 * All loop thread only.
 */
#ifndef LOOM_NET_INTERNAL_H
#define LOOM_NET_INTERNAL_H

#include <sys/socket.h>

#include "core/internal.h"
#include "loom/tcp.h"

/* --- Classes --------------------------------------------------------------- */
typedef struct loom__sock_class loom__sock_class;
typedef struct loom__transport loom__transport;
struct loom__sock_class {
    /* Public callbacks: run inside an op scope so that loom_raise() routes
     * to on_event; they receive the socket's data slot. */
    loom_socket_read_cb on_read;
    loom_socket_cb on_connect;
    loom_socket_cb on_write;
    loom_socket_cb on_drain;
    loom_event_cb on_event;
    /* Runs once when a socket of the class is freed (loom__socket_free),
     * outside any op scope of the socket: the close notification. */
    loom_socket_cb on_close;

    /* Protocol hooks (proto_*) for the layer above the socket (HTTP today;
     * WebSocket and HTTP/2 later), fed application bytes after the
     * transport; when set they replace on_read and the
     * event delivery. proto_read's buffer (the loop's scratch buffer, or a
     * backend's recv buffer) is valid during the call and may be modified
     * in place. proto_event runs where an event would be emitted, with the
     * event's message (for errors always set, loom_strerror(code) at
     * least; NULL for an info event whose kind's name says it all);
     * loom then closes the socket as it would after the event. */
    void (*proto_read)(loom_socket_t *s, char *buf, size_t len);
    void (*proto_event)(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);
    /* Servers of this class: proto_accept runs for each accepted socket once
     * it is attached, in place of on_connect (it may pause the server);
     * proto_accept_error replaces the tcp accept error event (the server has
     * already stopped watching, and retries by itself after EMFILE & co). */
    void (*proto_accept)(loom_socket_t *s);
    /* Servers of this class: proto_admit runs for each accepted socket
     * before it is attached (before a transport's handshake), so that a
     * limit on connections counts handshakes too (it may pause the
     * server). */
    void (*proto_admit)(loom_socket_t *s);
    void (*proto_accept_error)(loom_tcp_server_t *srv, int code);

    uint32_t read_timeout_ms;
    uint32_t write_timeout_ms;
    uint32_t high_water; /* 0: LOOM__HIGH_WATER */
    uint32_t low_water;  /* used as is once high_water is set */
    uint32_t keepalive_s;
    uint32_t extra; /* bytes after the socket reserved for the class's owner */
    /* The transport under the protocol layer (TLS later; see "Transports"
     * below): NULL is plain TCP, at no cost. tr_extra bytes of per-socket
     * transport state follow the owner's extension bytes in the slab object
     * (loom__socket_tr()). tr_set: tr was decided (loom__socket_new() does
     * it once per class, from LOOM_TEST_TRANSPORT, unless already set). */
    const loom__transport *tr;
    uint32_t tr_extra;
    /* Transport bytes reserved even while plain (the TCP API's classes keep
     * room for loom_socket_starttls()); loom__class_set_transport() keeps
     * at least this many. */
    uint32_t tr_room;
    /* A TLS server class: its context (a reference, dropped with the
     * class). */
    struct loom_tls_ctx *tls;
    /* The protocols the layer above speaks, for ALPN (wire format:
     * length-prefixed names, a static string; NULL: any). A TLS server
     * offers these when its context names none, and never picks one of the
     * context's that the layer does not speak. */
    const unsigned char *alpn;
    uint32_t alpn_len;
    bool tr_set;
    /* The fd is not a socket (a pipe, a terminal: loom_stream_open()):
     * writes use writev() with SIGPIPE held off, reads are on readiness
     * (never the backend's recv), and no socket call is made on it. */
    bool stream;
    /* Reads per readiness before the loop moves on (0: 4, the fairness
     * the TCP layer wants between many connections; a process pipe, one
     * producer feeding one consumer, takes more, as libuv's 32). */
    uint8_t read_batch;
    bool nagle;
    bool half_open;
    bool is_static; /* owned by someone else: never freed by the refcount */
    /* Sockets of the class keep the peer's address (a loom__peer_addr at
     * the end of the slab object: loom__socket_kept_peer()): a TCP server's
     * as accept returned it, a TCP client's as it connected to it, because
     * getpeername() fails (ENOTCONN) once the peer has reset the
     * connection, and messages must still name it. The bytes kept: 0 (none:
     * a Unix socket, a pipe), 8 (an IPv4 server, or a client that can only
     * reach IPv4: family, port and 4 address bytes, the head of the struct)
     * or sizeof(loom__peer_addr) (an IPv6 or dual-stack server, any other
     * client). Set before the class's first socket. */
    uint8_t keep_peer;
    uint32_t refs;
    void *data; /* initial data slot of sockets created with this class */
    /* What the sockets of this class are, for messages, when they have no
     * peer address ("stdin of process 4711 (cat)", "fd 5 (pipe)"); NULL, or
     * inside the class's own allocation (freed with it). */
    const char *name;
    /* A loom_tcp_connect() client's class (its own): "host:port" as asked
     * for, when the host is a name, not an address literal, so that
     * messages name both ("localhost:8080 (127.0.0.1:8080)"); NULL
     * otherwise. Inside the class's own allocation (freed with it). */
    const char *host;
};

#define LOOM__HIGH_WATER (1u << 20)

/* loom_tcp_opts and loom_tcp_server_opts name the fields a class takes
 * alike; one macro copies them from either. */
#define LOOM__CLASS_FROM_OPTS(c, o)                                                                \
    do {                                                                                           \
        (c)->on_connect = (o)->on_connect;                                                         \
        (c)->on_read = (o)->on_read;                                                               \
        (c)->on_write = (o)->on_write;                                                             \
        (c)->on_drain = (o)->on_drain;                                                             \
        (c)->on_event = (o)->on_event;                                                             \
        (c)->on_close = (o)->on_close;                                                             \
        (c)->read_timeout_ms = (o)->read_timeout_ms;                                               \
        (c)->write_timeout_ms = (o)->write_timeout_ms;                                             \
        (c)->high_water = (o)->high_water;                                                         \
        (c)->low_water = (o)->low_water;                                                           \
        (c)->keepalive_s = (o)->keepalive_s;                                                       \
        (c)->nagle = (o)->nagle;                                                                   \
        (c)->half_open = (o)->allow_half_open;                                                     \
        (c)->data = (o)->data;                                                                     \
    } while (0)

/* Takes and drops a reference (the class is freed with free() at zero). */
void loom__class_ref(loom__sock_class *cls);
void loom__class_unref(loom__sock_class *cls);

/* --- Sockets --------------------------------------------------------------- */

/* A TCP socket's peer address, compact (formatted only when a message or
 * loom_socket_peer_addr() asks for it): 20 bytes, or only the first 8 in
 * the sockets of an IPv4 class (cls->keep_peer), which never touch the
 * rest of ip[]. */
typedef struct loom__peer_addr {
    uint8_t family; /* AF_INET, AF_INET6; 0: none kept */
    uint8_t unused;
    uint16_t port; /* host order */
    uint8_t ip[16];
} loom__peer_addr;

typedef struct loom__wq loom__wq;
typedef struct loom__connect loom__connect;

struct loom_socket {
    loom__handle h; /* h.data is the data slot; h.flags holds LOOM__S_* too */
    loom__io io;    /* fd -1 while connecting */
    loom__sock_class *cls;
    loom__wq *wq; /* NULL unless writes are queued or a deferred callback is due */
    union {
        loom__queue tnode;   /* in a timeout slot (LOOM__S_TLIST) */
        loom__connect *conn; /* while LOOM__S_CONNECTING */
    } u;
    /* Followed by backend->io_size bytes, then cls->extra bytes. */
};

/* Socket state bits in h.flags, above the LOOM__H_* bits. */
enum {
    LOOM__S_CONNECTING = 1u << 8,
    LOOM__S_INCOMING = 1u << 9, /* accepted (stats) */
    LOOM__S_RD_OFF = 1u << 10,  /* reading disabled */
    LOOM__S_WR_OFF = 1u << 11,  /* writing disabled */
    LOOM__S_SHUT = 1u << 12,    /* shutdown(SHUT_WR) once the queue is sent */
    LOOM__S_SHUT_DONE = 1u << 13,
    LOOM__S_FLUSHING = 1u << 14, /* graceful close: closed for the user, sending */
    LOOM__S_EOF = 1u << 15,      /* the peer's eof was read */
    LOOM__S_TLIST = 1u << 16,    /* u.tnode is linked */
    LOOM__S_UNIX = 1u << 17,
    LOOM__S_HIGH = 1u << 18, /* the queue reached high water: on_drain due */
    LOOM__S_OPEN = 1u << 19, /* counted in stats tcp_incoming/outgoing */
    /* Reading through the backend's recv_start (CAP_RECV), not on
     * readiness; in the handle's spare bits, as every bit above is taken. */
    LOOM__S_RECV = 1u << 7,
    /* Reads take at most LOOM__SOCKET_READ_SMALL bytes (loom__socket_read_small). */
    LOOM__S_RSMALL = 1u << 6,
};
/* Timeout group indices (1..63, 0: none) for the read and write timeouts. */
#define LOOM__S_RGROUP_SHIFT 20
#define LOOM__S_WGROUP_SHIFT 26
#define LOOM__S_GROUP_MASK   63u

/* Closed for the user: every public call returns LOOM_ECLOSED. */
static inline bool loom__socket_dead(const loom_socket_t *s)
{
    return (s->h.flags & (LOOM__H_CLOSING | LOOM__S_FLUSHING)) != 0;
}

/* The class owner's extension bytes (after the backend's watcher area). */
static inline void *loom__socket_ext(loom_socket_t *s)
{
    size_t io = (s->h.loop->backend->io_size + 15) & ~(size_t)15;
    return (char *)(s + 1) + io;
}

/* State queries for the socket's owner (HTTP), so that no file outside the
 * socket layer reads the LOOM__S_* bits. */
static inline bool loom__socket_reading(const loom_socket_t *s)
{
    return !(s->h.flags & LOOM__S_RD_OFF);
}
/* The queue reached high water and has not drained to low water yet. */
static inline bool loom__socket_high(const loom_socket_t *s)
{
    return (s->h.flags & LOOM__S_HIGH) != 0;
}
/* Closed and waiting to be freed (loom__socket_close_now() ran). */
static inline bool loom__socket_closing(const loom_socket_t *s)
{
    return (s->h.flags & LOOM__H_CLOSING) != 0;
}

/* The transport's per-socket state (cls->tr_extra bytes, after the
 * owner's extension bytes). O(1). */
static inline void *loom__socket_tr(loom_socket_t *s)
{
    size_t io = (s->h.loop->backend->io_size + 15) & ~(size_t)15;
    return (char *)(s + 1) + io + ((s->cls->extra + 15) & ~(size_t)15);
}

/* --- Transports ---------------------------------------------------------------
 * A transport sits between the fd and the protocol layer (TLS later; the
 * test transports of transport_test.c now). It is chosen per class, so a
 * plain socket pays nothing: every hook below is reached only through a
 * non-NULL cls->tr. All hooks run on the loop thread, never after free().
 *
 * Bytes in: the socket reads the fd (or the backend's recv hands bytes
 * over) and calls read() with them; the transport passes application bytes
 * up with loom__socket_deliver_app(), only while loom__socket_reading() (the
 * application may pause inside a delivery), and keeps the rest (in a
 * loom__bytes of its own). When reading is switched back on, the socket calls
 * pending() from the pending phase, before any new fd read, so held bytes
 * come first.
 *
 * Bytes out: loom_socket_write*() validate, then call write() with the
 * application's buffers (possibly while connecting: before attach()); the
 * transport hands the bytes to send to loom__socket_out(), which sends at
 * once when nothing is queued, else queues. A transport may call
 * loom__socket_out() at any time (handshake, alerts).
 *
 * Handshake: attach() runs for a connected or accepted socket before
 * on_connect / proto_accept / the accept callback; if it returns 1, those run
 * only when the transport calls loom__socket_ready(); a failure is
 * loom__socket_fail_msg() with a message (one event, one close).
 *
 * Water marks and loom_socket_queued() count application bytes: each
 * loom__socket_out() of a transport says how many application bytes its wire
 * bytes carry (`app`: 0 for a handshake or an alert, the plaintext length
 * for a TLS record), and they count as queued until the last of those wire
 * bytes is sent (wq->app). Plain sockets count wire bytes, which are the
 * application's. */
struct loom__transport {
    const char *name;
    uint32_t state_size; /* per-socket state: the class's tr_extra */
    /* A socket of the class is connected (client) or accepted (server).
     * Returns 0 (ready now), 1 (handshake started: report it later) or a
     * LOOM_E* code (the socket fails with it). */
    int (*attach)(loom_socket_t *s);
    /* `n` bytes from the fd in `buf` (mutable, valid during the call);
     * buf NULL: the peer's end (reading has stopped): the transport calls
     * loom__socket_eof_report() once it has delivered what it holds. */
    void (*read)(loom_socket_t *s, char *buf, size_t n);
    /* Application bytes (total > 0; the caller checked the socket is open).
     * `release` (may be NULL) belongs to iov[0] of a zero-copy write: the
     * transport runs it when it no longer needs the bytes. Returns 0, 1 (high
     * water) or a LOOM_E* code, as loom_socket_write(). */
    int (*write)(loom_socket_t *s, const struct iovec *iov, int n, loom_release_cb release,
                 void *rdata);
    /* LOOM_READABLE if the transport needs to read the fd although the
     * application paused reading, LOOM_WRITABLE if it needs to send although
     * the application disabled writing (a handshake: its bytes are all that
     * is queued then); may be NULL. */
    unsigned (*wants)(loom_socket_t *s);
    /* From the pending phase, after loom__socket_pending_soon() (which the
     * socket calls when reading is switched on again and after
     * loom__socket_ready()): deliver held bytes while loom__socket_reading(),
     * finish deferred work. May be NULL. */
    void (*pending)(loom_socket_t *s);
    /* Before the write side is shut (close_notify); may queue bytes with
     * loom__socket_out(). Returns 0 to go on (the fd's write side is shut
     * once the queue is empty: the hook is called again then, so it must be
     * idempotent), or 1 while it cannot end the stream yet (its handshake
     * holds application bytes): loom__socket_ready() calls it again. May be
     * NULL. */
    int (*shutdown)(loom_socket_t *s);
    /* The socket closes: free held memory. May be NULL. */
    void (*free)(loom_socket_t *s);
    /* The peer's name for messages ("host:port" as the client asked for
     * it, or the address), kept since attach; may be NULL (the socket asks
     * the kernel). */
    void (*peer)(loom_socket_t *s, char *buf, size_t len);
};

/* The peer address a TCP socket kept from accept or connect
 * (cls->keep_peer), NULL if it has none (a Unix connection, a pipe, a
 * client still connecting). O(1). */
const loom__peer_addr *loom__socket_kept_peer(const loom_socket_t *s);

/* Records `sa` as the socket's peer address if its class keeps one (an
 * AF_INET address, or AF_INET6 where the class keeps 20 bytes; anything
 * else, NULL too, clears it). */
void loom__socket_keep_peer(loom_socket_t *s, const struct sockaddr *sa, socklen_t len);

/* The kept address for messages ("1.2.3.4:80", "[::1]:80") into buf;
 * false if none is kept. */
bool loom__socket_kept_peer_name(const loom_socket_t *s, char *buf, size_t len);

/* The kept address as a sockaddr (sockaddr_in or sockaddr_in6) into
 * `addr`, of at most *len bytes. Returns 0 (and sets *len) or
 * LOOM_ENOTCONN (none kept) / LOOM_ENOSPC. */
int loom__peer_addr_get(const loom__peer_addr *p, struct sockaddr *addr, socklen_t *len);

/* The peer for messages: the transport's name for it, else the address the
 * socket kept from accept or connect, else the kernel's (getpeername():
 * "1.2.3.4:80", "[::1]:80" or a Unix path), else ""; a client that
 * connected to a name is named by both ("localhost:80 (127.0.0.1:80)", or
 * "localhost:80" alone without an address). */
void loom__socket_peer_name(loom_socket_t *s, char *buf, size_t len);

/* What an error message about `s` names: "the connection with <peer>";
 * else, for a socket without a peer address, the class's name (a process's
 * pipe, a wrapped fd) or "a connection accepted on <path>" (a Unix
 * server's); else "". */
void loom__socket_what(loom_socket_t *s, char *buf, size_t len);

/* Whether s is a pipe for messages: a named class (a process's stdio, a
 * wrapped fd: loom/process.h) and no peer address. Its other end going
 * away (EPIPE, ECONNRESET) is reported as a closed pipe naming it, a
 * connection error, not a tcp reset. */
bool loom__socket_is_pipe(loom_socket_t *s);

/* Reports the peer's end (the eof event; closes unless half_open). */
void loom__socket_eof_report(loom_socket_t *s);

/* Passes application bytes to proto_read or on_read (the transport's read
 * and pending hooks call it; plain sockets reach it directly). */
void loom__socket_deliver_app(loom_socket_t *s, char *buf, size_t n);

/* Bytes for the fd (after the transport): one sendmsg() at once if nothing
 * is queued and the socket can send (never while connecting), the rest queued
 * (copied, or referenced when `release` is set: one buffer, iov[0]). Returns 0,
 * 1 (queue at high water) or a LOOM_E* code; a send error is reported from
 * the loop. `app`: the application bytes these bytes carry (plain sockets:
 * `total`; see "Water marks" above). */
int loom__socket_out(loom_socket_t *s, const struct iovec *iov, int n, size_t total, bool ref,
                     loom_release_cb release, void *rdata, size_t app);

/* The connection is up and the transport's handshake (if any) done: runs
 * proto_accept or the accept callback (accepted sockets) or on_connect, then
 * sends what was queued meanwhile and delivers bytes the transport held.
 * tcp.c calls it when loom__socket_attach() returns 0; a transport calls it
 * when its handshake completes. */
void loom__socket_ready(loom_socket_t *s);

/* Asks for the transport's pending() hook in the pending phase (held bytes
 * while the application reads). */
void loom__socket_pending_soon(loom_socket_t *s);

/* Sets the class's transport (or plain, `tr` NULL) before its first socket;
 * LOOM_TEST_TRANSPORT is then not consulted for it. */
void loom__class_set_transport(loom__sock_class *cls, const loom__transport *tr);

/* The test transports (transport_test.c): wire-transparent "split" and the
 * byte-transforming "xor"; loom__transport_by_name() maps a name (env
 * LOOM_TEST_TRANSPORT) to one of them, NULL for none or unknown. */
extern const loom__transport loom__transport_split;
extern const loom__transport loom__transport_xor;
const loom__transport *loom__transport_by_name(const char *name);

/* Creates an unconnected socket object of `cls` (a new reference) on `loop`
 * for `fd` (-1: none yet). Counts as live and keeps the loop alive. Returns
 * NULL on ENOMEM (the fd is not closed). */
loom_socket_t *loom__socket_new(loom_loop_t *loop, loom__sock_class *cls, int fd);

/* Makes s a connected socket on `fd`: socket options, watcher, stats,
 * timeouts, the transport's attach(). Does not call on_connect. Returns 0
 * (call loom__socket_ready() now) or 1 (not now: the transport's handshake
 * runs, or it failed and the socket is closed). */
int loom__socket_attach(loom_socket_t *s, int fd, bool incoming);

/* Delivers an error or info event for s through the protocol hook, on_event or
 * the loop default (never for a socket the user closed). */
void loom__socket_event(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);

/* Reports `code` as the matching event (reset, timeout, refused, tcp error)
 * and aborts the socket. `msg` (NULL: loom_strerror(code)) says what failed;
 * it need only live during the call. */
void loom__socket_fail(loom_socket_t *s, int code);
void loom__socket_fail_msg(loom_socket_t *s, int code, const char *msg);

/* Closes a socket that its constructor never handed out (the constructor
 * returns an error): as loom__socket_close_now(), without on_close. */
void loom__socket_discard(loom_socket_t *s);

/* Closes at once (the one close path): drops the queue, stops everything
 * and hands the handle to loom__handle_close(). `reset` sets SO_LINGER 0. */
void loom__socket_close_now(loom_socket_t *s, bool reset);

/* --- The write queue (socket_write.c) -------------------------------------- */
typedef struct loom__wreq loom__wreq;
struct loom__wreq {
    loom__wreq *next;
    const char *base; /* unsent part */
    size_t len;
    loom_release_cb release; /* referenced buffers */
    void *rdata;
    const void *buf;
    size_t buflen;
    size_t cap; /* > 0: a copy; data[] holds cap bytes */
    size_t app; /* behind a transport: the application bytes it carries */
    char data[];
};

/* Deferred work of the write queue's pending node. */
enum {
    LOOM__WQ_FLUSH = 1,
    LOOM__WQ_WRITE = 2, /* on_write */
    LOOM__WQ_HELD = 4,  /* the transport's pending() hook */
    LOOM__WQ_ERROR = 8
};

struct loom__wq {
    loom__pending pend; /* deferred flush, callbacks or error */
    loom_socket_t *sock;
    loom__wreq *head, *tail;
    size_t bytes; /* queued, unsent */
    size_t app;   /* behind a transport: application bytes queued (water marks) */
    unsigned todo;
    int error;
    bool queued;       /* pend is queued */
    uint8_t wgroup;    /* the write clock's group while wnode is linked, else 0 */
    loom__queue wnode; /* the write clock: in a wslots slot of group wgroup */
};

/* The application bytes queued: what water marks and loom_socket_queued()
 * count (wire bytes on a plain socket). */
static inline size_t loom__wq_app(const loom_socket_t *s)
{
    if (s->wq == NULL)
        return 0;
    return s->cls->tr ? s->wq->app : s->wq->bytes;
}

/* Whether bytes may go to the fd, the queued ones and `app` more bytes of
 * the application's: the application has not disabled writing, or all of
 * them are the transport's own (a handshake, an alert), or the transport
 * needs to send anyway (wants() says LOOM_WRITABLE). */
static inline bool loom__socket_may_write(loom_socket_t *s, size_t app)
{
    if (!(s->h.flags & LOOM__S_WR_OFF))
        return true;
    const loom__transport *tr = s->cls->tr;
    if (tr == NULL)
        return false;
    if (app == 0 && (s->wq == NULL || s->wq->app == 0))
        return true;
    return tr->wants && (tr->wants(s) & LOOM_WRITABLE);
}

/* Schedules `what` (LOOM__WQ_*) for the pending phase; creates the queue
 * object if needed (on ENOMEM the notification is lost). */
void loom__wq_schedule(loom_socket_t *s, unsigned what);
/* Drops the queue: unsent bytes, deferred work; runs release callbacks. */
void loom__wq_destroy(loom_socket_t *s);
/* Sends what is queued: one sendmsg of up to 64 buffers, repeated while the
 * kernel takes everything offered (at most 4 times per call). Runs
 * on_drain / on_write when due. Returns 0, or -1 if the socket was closed
 * here (error, end of a graceful close, or by a callback). Loop context
 * only (callbacks run directly). */
int loom__socket_flush(loom_socket_t *s);
/* Shuts the write side if a shutdown was asked for and is not done (the
 * caller checked the queue is empty): the transport's shutdown hook first,
 * then shutdown(SHUT_WR) unless that queued bytes. The one place it is done. */
void loom__socket_shut_wr(loom_socket_t *s);

/* Runs a public socket callback inside an op scope (loom_raise() goes to
 * on_event). */
void loom__socket_call(loom_socket_t *s, loom_socket_cb cb);
/* Starts, stops or keeps the write clock as the socket's state requires;
 * `progress` (bytes left) restarts it. O(1). */
void loom__wclock_update(loom_socket_t *s, bool progress);
/* Unlinks the write clock. */
void loom__wclock_stop(loom__wq *wq);

/* Pause and resume reading; the read timeout stops while paused. */
void loom__socket_read_stop(loom_socket_t *s);
void loom__socket_read_start(loom_socket_t *s);
/* Small reads on or off: while on, one read() of the readiness path takes at
 * most LOOM__SOCKET_READ_SMALL bytes instead of the scratch buffer's 64 KiB.
 * For an owner whose input may have to wait unconsumed (the HTTP/1 server
 * between requests: a pipelining client that does not read its answers), so
 * that what it must keep of one read is small; the kernel keeps the rest,
 * and its window closes. A backend that reads for the socket (CAP_RECV)
 * still delivers up to one of its buffers. */
#define LOOM__SOCKET_READ_SMALL (4 * 1024)
static inline void loom__socket_read_small(loom_socket_t *s, bool on)
{
    if (on)
        s->h.flags |= LOOM__S_RSMALL;
    else
        s->h.flags &= ~LOOM__S_RSMALL;
}

/* For a connection its owner keeps idle (the HTTP client's pool): true while
 * nothing has come from the peer that the owner has not been handed yet, no
 * byte, no end and no error: the kernel's receive queue is empty (a
 * MSG_PEEK, which consumes nothing) and the peer's end was not read. A
 * backend that reads for the socket (LOOM__S_RECV, io_uring) takes the bytes
 * from the kernel itself and hands them over from the loop: what it holds is
 * not seen here. O(1), one system call. */
bool loom__socket_quiet(loom_socket_t *s);

/* Restarts the inactivity clock (links or unlinks the socket from its
 * timeout slot as its state requires). O(1). */
void loom__socket_touch(loom_socket_t *s);

/* Re-evaluates which fd events the socket needs. */
void loom__socket_update_io(loom_socket_t *s);

/* Timeout groups: returns the group index (1..63) for `ms` (creating it),
 * 0 for ms == 0, or LOOM_ETOOMANY / LOOM_ENOMEM. */
int loom__tgroup_get(loom_loop_t *loop, uint32_t ms);
/* Sets the socket's read and write timeout groups (indices from
 * loom__tgroup_get() on the socket's loop, 0: none) and restarts the clock.
 * O(1): resolve the groups once (per server), then switch sockets between
 * them cheaply (idle, reading a head, reading a body...). */
void loom__socket_set_groups(loom_socket_t *s, unsigned rgroup, unsigned wgroup);

/* Sets only the read timeout group (see loom__socket_set_groups); restarts
 * the clock if it changed. */
void loom__socket_set_rgroup(loom_socket_t *s, unsigned rgroup);

/* --- Per-loop state ------------------------------------------------------------ */
typedef struct loom__tgroup loom__tgroup;
typedef struct loom_tcp_server loom__server;

/* Socket object sizes per loop (class extension and transport bytes make
 * them differ: plain, HTTP server, HTTP client, and later TLS, WebSocket and
 * HTTP/2 variants of each). Looked up by a scan that stops at the first
 * unused entry: O(sizes in use). */
#define LOOM__NET_SLABS 16

typedef struct loom__net {
    loom_loop_t *loop;
    loom__slab wq_slab;  /* loom__wq */
    loom__slab ref_slab; /* referenced write requests */
    struct {
        size_t size; /* requested object size; 0: unused */
        loom__slab slab;
    } sock[LOOM__NET_SLABS];
    size_t nsockets;                              /* sockets allocated and not yet freed */
    loom__tgroup *groups[LOOM__S_GROUP_MASK + 1]; /* [0] unused */
    unsigned ngroups;
    loom__queue servers; /* open servers (for loop free) */
    /* TLS (net/tls.c), on first use: the ciphertext of the OpenSSL call in
     * progress, and one block for plaintext delivered to the application
     * and for small writes gathered into one record. */
    loom__bytes *tls_out;
    char *tls_buf;
    loom__handle *sentinel;
    /* UDP (net/udp.c), on first use: its per-loop state, and the hook that
     * closes its sockets at loop free (before the sentinel above). */
    void *udp;
    void (*udp_free)(loom_loop_t *loop);
} loom__net;

/* The loop's net state, created on first use (NULL on ENOMEM). */
loom__net *loom__net_get(loom_loop_t *loop);
/* The loop's scratch buffer (allocated on first use; NULL on ENOMEM). */
char *loom__net_scratch(loom_loop_t *loop);

/* Creates an internal timer: not counted as live, not keeping the loop
 * alive. Close with loom_timer_close(). */
int loom__net_timer_new(loom_loop_t *loop, loom_timer_t **out, loom_timer_cb cb, void *data);

/* Calls fn on every open socket of the loop (walks the socket slabs).
 * O(sockets); for shutdown paths only. fn may close the socket. */
void loom__net_foreach_socket(loom_loop_t *loop, void (*fn)(loom_socket_t *s, void *arg),
                              void *arg);

/* Clients and servers whose sockets use `cls` (a reference is taken; it
 * replaces the callbacks, timeouts and marks of `opts`, whose other fields -
 * initial data, attempt delay, connect timeout, family, backlog, reuseport,
 * v6only, nagle and keepalive of the listener, data of the server - still
 * apply). This is how the HTTP layer gets protocol hooks and extension bytes.
 * A client's class keeps its peer's address only if it says so
 * (cls->keep_peer, set before its first socket, as the HTTP client's
 * classes do); a server's class is set by the server. */
int loom__tcp_connect_cls(loom_loop_t *loop, const char *host, int port, const loom_tcp_opts *opts,
                          loom__sock_class *cls, loom_socket_t **out);
int loom__unix_connect_cls(loom_loop_t *loop, const char *path, const loom_tcp_opts *opts,
                           loom__sock_class *cls, loom_socket_t **out);
int loom__tcp_server_cls(loom_loop_t *loop, const char *bind, int port,
                         const loom_tcp_server_opts *opts, loom__sock_class *cls,
                         loom_tcp_server_t **out);
int loom__unix_server_cls(loom_loop_t *loop, const char *path, const loom_tcp_server_opts *opts,
                          loom__sock_class *cls, loom_tcp_server_t **out);
/* The class a server's connections use. */
loom__sock_class *loom__server_class(loom_tcp_server_t *srv);
/* Stops accepting (the listen fd stays open; connections wait in the
 * backlog) or starts again (unless an accept back-off is running: its retry
 * then resumes). Does nothing once the server is closed. */
void loom__tcp_server_pause(loom_tcp_server_t *srv, bool pause);
/* Makes srv part of the object that owns it (the HTTP server): it no longer
 * counts in loom_loop_live() nor keeps the loop alive by itself. The owner
 * still closes it with loom_tcp_server_close(). */
void loom__tcp_server_own(loom_tcp_server_t *srv);

/* Closes the connector state of a socket still connecting (tcp.c). */
void loom__connect_cancel(loom_socket_t *s);
/* Closes every server of the loop without callbacks (tcp.c, loop free). */
void loom__servers_free(loom_loop_t *loop);

/* Errors. */
static inline loom_event_kind_t loom__sock_err_kind(int code)
{
    switch (code) {
    case LOOM_ECONNRESET:
    case LOOM_EPIPE:
        return LOOM_EV_TCP_RESET;
    case LOOM_ETIMEDOUT:
        return LOOM_EV_TCP_TIMEOUT;
    case LOOM_ECONNREFUSED:
        return LOOM_EV_TCP_REFUSED;
    case LOOM_ETLS:
    case LOOM_ETRUNCATED:
        return LOOM_EV_TLS_ERROR;
    case LOOM_ECERT:
        return LOOM_EV_TLS_VERIFY_ERROR;
    default:
        return LOOM_EV_TCP_ERROR;
    }
}

#endif
