/* net/net_internal.h - the socket layer's insides, for src/net and the HTTP
 * server and client. Not installed.
 *
 * The socket is kept small because an idle keep-alive connection should cost
 * little more than its kernel state: 88 bytes on x86-64 (a loom__handle, a
 * loom__io, the class pointer, the write-queue pointer and one list node),
 * followed in the same slab object by the backend's per-watcher area
 * (backend->io_size, 0 for epoll and poll) and by `cls->extra` bytes that
 * belong to the class's owner (loom__socket_ext()).
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
 *  - loom__socket_queue(): queue buffers (copied or referenced) and have them
 *    sent together by one writev in the pending phase of this iteration
 *    (loom__socket_flush_soon()), instead of one send per buffer;
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
     * event's message (NULL where the kind's name says it all);
     * loom then closes the socket as it would after the event. */
    void (*proto_read)(loom_socket_t *s, char *buf, size_t len);
    void (*proto_event)(loom_socket_t *s, loom_event_kind_t kind, int code, const char *msg);
    /* Servers of this class: proto_accept runs for each accepted socket once
     * it is attached, in place of on_connect (it may pause the server);
     * proto_accept_error replaces the tcp accept error event (the server has
     * already stopped watching, and retries by itself after EMFILE & co). */
    void (*proto_accept)(loom_socket_t *s);
    void (*proto_accept_error)(loom_tcp_server_t *srv, int code);

    uint32_t read_timeout_ms;
    uint32_t write_timeout_ms;
    uint32_t high_water; /* 0: LOOM__HIGH_WATER */
    uint32_t low_water;  /* used as is once high_water is set */
    uint32_t keepalive_s;
    uint32_t extra; /* bytes after the socket reserved for the class's owner */
    bool nagle;
    bool half_open;
    bool is_static; /* owned by someone else: never freed by the refcount */
    uint32_t refs;
    void *data; /* initial data slot of sockets created with this class */
};

#define LOOM__HIGH_WATER (1u << 20)

/* Takes and drops a reference (the class is freed with free() at zero). */
void loom__class_ref(loom__sock_class *cls);
void loom__class_unref(loom__sock_class *cls);

/* --- Sockets --------------------------------------------------------------- */
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

/* Creates an unconnected socket object of `cls` (a new reference) on `loop`
 * for `fd` (-1: none yet). Counts as live and keeps the loop alive. Returns
 * NULL on ENOMEM (the fd is not closed). */
loom_socket_t *loom__socket_new(loom_loop_t *loop, loom__sock_class *cls, int fd);

/* Makes s a connected socket on `fd`: socket options, watcher, stats,
 * timeouts. Does not call on_connect. Returns 0 or a LOOM_E* code. */
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

/* Runs the user's on_connect / flushes the queue / starts reading once the
 * connection is up (used by the connector). */
void loom__socket_connected(loom_socket_t *s);

/* Queues a buffer without trying to send it: copied if release is NULL
 * and copy is true, else referenced (release runs when sent or dropped).
 * Pair with loom__socket_flush_soon(). Returns 0, 1 (high water) or a
 * LOOM_E* code. */
int loom__socket_queue(loom_socket_t *s, const void *buf, size_t len, bool copy,
                       loom_release_cb release, void *rdata);
/* Sends everything queued with one writev in the pending phase of this
 * iteration (or the next, if called from the pending phase). */
int loom__socket_flush_soon(loom_socket_t *s);

/* Pause and resume reading; the read timeout stops while paused. */
void loom__socket_read_stop(loom_socket_t *s);
void loom__socket_read_start(loom_socket_t *s);

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

#define LOOM__NET_SLABS 4

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
    loom__handle *sentinel;
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
 * apply). This is how the HTTP layer gets protocol hooks and extension bytes. */
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
    default:
        return LOOM_EV_TCP_ERROR;
    }
}

#endif
