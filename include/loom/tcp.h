/* loom/tcp.h - TCP and Unix-domain stream sockets: clients, servers and the
 * socket operations (cl-async's tcp-connect, tcp-server, close-tcp-server,
 * socket-data, write-socket-data, set-socket-timeouts, enable-socket,
 * disable-socket, socket-closed-p and close-socket).
 *
 * A socket is an opaque handle owned by its loop. Its callbacks receive the
 * socket and its data slot (loom_socket_data()). Asynchronous outcomes that
 * are not data arrive on the `on_event` callback as loom_event_t values whose
 * `object` is the socket (or the server, for accept errors): tcp eof, tcp
 * reset, tcp timeout, tcp refused, dns error, or a plain tcp error.
 *
 * Lifetime and the close notification (cl-async's socket-closed): every
 * socket, client, accepted or Unix, is closed exactly once, whatever closes
 * it: loom_socket_close() (after its flush), loom_socket_abort(), loom after
 * a tcp eof, reset, timeout or error event, a failed connect, or
 * loom_loop_free(). From that moment every operation on it returns
 * LOOM_ECLOSED and no other callback runs on it. Then, from the loop (at the
 * end of that iteration, never inside the call that closed it), its
 * `on_close` callback runs once, after every other callback of the socket
 * (events and release callbacks included). When on_close returns, or at the
 * end of that iteration if there is none, the pointer is dead and its memory
 * is reused: forget it there, as after uv_close()'s callback.
 * A socket that a constructor never handed out (it returned an error) gets
 * no on_close.
 *
 * No handler: an event of an accepted connection with no on_event and no
 * loop default is logged (loom_log: errors at LOOM_LOG_INFO, eof at
 * LOOM_LOG_DEBUG) and dropped, so one client's reset or timeout never ends
 * a server's loom_run(). A client socket's unhandled error still does (see
 * loom/event.h): it is the application's own connection.
 *
 * Event messages name what failed: "connect to 127.0.0.1:9 refused",
 * "connect to localhost:9 failed: [::1]:9 refused, 127.0.0.1:9 refused",
 * "dns lookup of nohost.invalid failed: Domain name not found",
 * "connect to 10.0.0.1:80 failed: connect timeout (3000 ms)",
 * "read timeout (5000 ms)", "write timeout (5000 ms)".
 *
 * Every function here is for the loop's thread only.
 */
#ifndef LOOM_TCP_H
#define LOOM_TCP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "loom/common.h"
#include "loom/event.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_socket loom_socket_t;
typedef struct loom_tcp_server loom_tcp_server_t;

/* on_connect, on_write and on_drain: cb(sock, data) with data = the socket's
 * data slot. */
typedef void (*loom_socket_cb)(loom_socket_t *sock, void *data);

/* on_read: `bytes` points into loom's read memory (a per-loop scratch buffer,
 * or on io_uring one of its provided buffers) that is valid only during the
 * call; copy what you keep. `len` is at least 1. */
typedef void (*loom_socket_read_cb)(loom_socket_t *sock, const char *bytes, size_t len, void *data);

/* Releases a caller-owned buffer given to loom_socket_write_ref() once loom no
 * longer needs it (sent, or dropped because the socket closed). */
typedef void (*loom_release_cb)(const void *buf, size_t len, void *data);

/* Options for loom_tcp_connect() and loom_unix_connect(). Zero means the
 * default everywhere. */
/* A TLS context (loom/tls.h). */
typedef struct loom_tls_ctx loom_tls_ctx_t;

typedef struct loom_tcp_opts {
    /* Data sent as soon as the connection is up (copied). */
    const void *initial;
    size_t initial_len;

    /* TLS (loom/tls.h): a client context makes this a TLS connection, and
     * on_connect runs once its handshake is done. server_name: the name
     * sent (SNI) and verified; NULL: `host` (an address literal is verified
     * against the certificate's IP addresses and sends no SNI). */
    loom_tls_ctx_t *tls;
    const char *server_name;

    loom_socket_cb on_connect; /* the connection is established */
    loom_socket_read_cb on_read;
    /* Everything written so far has been handed to the kernel (the outgoing
     * queue became empty). Coalesced: one call may cover several writes.
     * Never runs inside a write call. */
    loom_socket_cb on_write;
    /* The queued bytes fell to low_water after reaching high_water. */
    loom_socket_cb on_drain;
    /* Events for this socket; NULL routes them to the loop's default. */
    loom_event_cb on_event;

    /* cl-async's timeouts: the socket closes with a tcp timeout event after
     * this long without activity. The read timeout applies while reading is
     * enabled (reads and write progress restart it), the write timeout while
     * data is queued (only write progress restarts it: a peer that sends but
     * never reads meets it).
     * 0: none. Precision: fires between t and t + t/8 (see docs/NET.md). */
    uint32_t read_timeout_ms;
    uint32_t write_timeout_ms;
    /* Gives up connecting after this long (tcp timeout event). 0: the write
     * timeout if set, else none (the kernel's own SYN retries). */
    uint32_t connect_timeout_ms;
    /* Happy Eyeballs: the delay before the next address is tried while an
     * attempt is still pending. 0: 250 ms. */
    uint32_t attempt_delay_ms;

    /* Outgoing queue marks: writes return 1 once the queue holds high_water
     * bytes or more; on_drain runs when it falls back to low_water.
     * 0: 1 MiB and high_water / 4. */
    uint32_t high_water;
    uint32_t low_water;

    /* TCP keepalive: >0 enables it with this idle time in seconds. */
    uint32_t keepalive_s;
    /* TCP_NODELAY is on unless this is set. */
    bool nagle;
    /* On tcp eof, keep the socket open for writing (the application closes
     * it) instead of closing it after the eof event. */
    bool allow_half_open;
    /* Address family for names: 0 (any), AF_INET or AF_INET6. */
    int family;

    void *data; /* the socket's initial data slot */

    /* The close notification: runs exactly once, from the loop, after every
     * other callback of the socket, whatever closed it (see the top of this
     * file); the socket is dead when it returns. Calls on the socket return
     * LOOM_ECLOSED from here (a write too); loom_socket_data() still works.
     * loom_raise() from here goes to the loop's default handler, never to
     * on_event. Also runs from loom_loop_free() for sockets still open: there
     * it may only release the application's own state (loom's constructors
     * return LOOM_ECLOSED on a loop being freed). */
    loom_socket_cb on_close;
} loom_tcp_opts;

/* Options for loom_tcp_server() and loom_unix_server(). The callbacks and
 * settings are shared by every accepted connection (they are not copied per
 * connection). */
typedef struct loom_tcp_server_opts {
    int backlog; /* listen() backlog; 0: 511 */
    /* TLS (loom/tls.h): a server context makes every accepted connection a
     * TLS one; on_connect runs once its handshake is done. */
    loom_tls_ctx_t *tls;
    /* SO_REUSEPORT: several loops (threads) may each bind the same port and
     * the kernel spreads connections over them. */
    bool reuseport;
    /* For a NULL bind address: listen on IPv6 only, not dual-stack. */
    bool v6only;

    loom_socket_cb on_connect; /* a connection was accepted */
    loom_socket_read_cb on_read;
    loom_socket_cb on_write;
    loom_socket_cb on_drain;
    /* Events for the connections, and tcp accept errors (object = the
     * server, data = the server's data). NULL: the loop's default; with
     * neither, a connection's events are logged and dropped, and so are
     * accept errors that the server retries by itself (EMFILE and the
     * like), while a broken listening socket still ends loom_run(). */
    loom_event_cb on_event;

    uint32_t read_timeout_ms;
    uint32_t write_timeout_ms;
    uint32_t high_water;
    uint32_t low_water;
    uint32_t keepalive_s;
    bool nagle;
    bool allow_half_open;

    /* The server's data slot; each accepted socket's data slot starts with
     * this value too. */
    void *data;

    /* Each accepted connection's close notification, as loom_tcp_opts's
     * on_close. It is the connection's, not the server's: it still runs for
     * connections that outlive loom_tcp_server_close(). */
    loom_socket_cb on_close;
} loom_tcp_server_opts;

/* --- Clients ------------------------------------------------------------ */

/* Connects to `host`:`port`. `host` is an IPv4 or IPv6 literal or a name
 * resolved through loom's DNS; when a name has several addresses they are
 * tried in turn, Happy Eyeballs style (the next attempt starts after
 * attempt_delay_ms or as soon as one fails; the first to connect wins and the
 * others are closed). The outcome arrives later: on_connect, or an event
 * (tcp refused, tcp timeout, dns error, tcp error) after which the socket is
 * closed. Writes made before the connection is up are queued. `opts` may be
 * NULL. `*out` (if `out` is not NULL) receives the socket, owned by the loop.
 * Returns 0, LOOM_EINVAL (bad arguments), LOOM_ENAMETOOLONG (a host name
 * longer than 255 bytes), LOOM_ETOOMANY (a timeout would be the loop's 64th
 * distinct timeout value, see loom_socket_set_timeouts()), LOOM_ECLOSED (the
 * loop is being freed) or LOOM_ENOMEM; no callback runs before it returns.
 * Once it returned 0 the socket's on_close runs exactly once, even when the
 * connection never comes up. */
LOOM_EXTERN int loom_tcp_connect(loom_loop_t *loop, const char *host, int port,
                                 const loom_tcp_opts *opts, loom_socket_t **out);

/* Connects to the Unix-domain stream socket at `path` (a leading '@' names an
 * abstract socket). Like loom_tcp_connect(); a missing or dead socket file
 * gives a tcp refused event. Returns 0, LOOM_EINVAL, LOOM_ENAMETOOLONG,
 * LOOM_ETOOMANY or LOOM_ENOMEM. */
LOOM_EXTERN int loom_unix_connect(loom_loop_t *loop, const char *path, const loom_tcp_opts *opts,
                                  loom_socket_t **out);

/* --- Servers ------------------------------------------------------------ */

/* Listens on `bind`:`port` (a numeric address, "localhost", or NULL for
 * every address: one dual-stack [::] socket, else 0.0.0.0). Port 0 picks a
 * free port (see loom_tcp_server_port()). Accepted connections use the
 * options' callbacks. EMFILE/ENFILE while accepting become tcp accept error
 * events; the server stops accepting for 100 ms and retries by itself.
 * Returns 0 with the server in `*out` (if `out` is not NULL; the server is
 * the loop's either way), or a LOOM_E* code (LOOM_EADDRINUSE, LOOM_EINVAL,
 * LOOM_ETOOMANY for a 64th distinct timeout value, LOOM_ECLOSED on a loop
 * being freed, ...). `opts` may be NULL. */
LOOM_EXTERN int loom_tcp_server(loom_loop_t *loop, const char *bind, int port,
                                const loom_tcp_server_opts *opts, loom_tcp_server_t **out);

/* Listens on the Unix-domain path `path` (a leading '@' is an abstract
 * name). A stale socket file - one nobody listens on - is unlinked first; a
 * live one gives LOOM_EADDRINUSE, and any other file LOOM_EEXIST. The file
 * is unlinked again when the server closes. `out` may be NULL, as for
 * loom_tcp_server(). Returns 0 or a LOOM_E* code. */
LOOM_EXTERN int loom_unix_server(loom_loop_t *loop, const char *path,
                                 const loom_tcp_server_opts *opts, loom_tcp_server_t **out);

/* Stops accepting (cl-async's close-tcp-server). Connections already
 * accepted carry on. The one close path; closing twice is harmless. */
LOOM_EXTERN void loom_tcp_server_close(loom_tcp_server_t *srv);

/* Gracefully closes every open connection accepted by `srv` (each flushes
 * what it has queued first). O(sockets on the loop); meant for shutdown.
 * Returns the number of connections closed, or LOOM_ECLOSED. */
LOOM_EXTERN int loom_tcp_server_close_connections(loom_tcp_server_t *srv);

/* The bound port (useful after binding port 0), or LOOM_ECLOSED; 0 for a
 * Unix-domain server. */
LOOM_EXTERN int loom_tcp_server_port(const loom_tcp_server_t *srv);

/* The listening fd, or LOOM_ECLOSED. */
LOOM_EXTERN int loom_tcp_server_fd(const loom_tcp_server_t *srv);

/* The server's loop (valid until the server is freed, at the end of the
 * iteration in which it was closed). */
LOOM_EXTERN loom_loop_t *loom_tcp_server_loop(const loom_tcp_server_t *srv);

/* The server's data slot. */
LOOM_EXTERN void *loom_tcp_server_data(const loom_tcp_server_t *srv);
LOOM_EXTERN void loom_tcp_server_set_data(loom_tcp_server_t *srv, void *data);

/* --- The socket ---------------------------------------------------------- */

/* The data slot (cl-async's socket-data). Readable until the socket's memory
 * is released; set_data returns 0 or LOOM_ECLOSED. */
LOOM_EXTERN void *loom_socket_data(const loom_socket_t *sock);
LOOM_EXTERN int loom_socket_set_data(loom_socket_t *sock, void *data);

/* The socket's loop (valid until the socket is dead, on_close included). */
LOOM_EXTERN loom_loop_t *loom_socket_loop(const loom_socket_t *sock);

/* Copying write: tries to send at once (nothing queued: one writev); only the
 * unsent remainder is copied and queued. Returns 0, 1 when the queue now
 * holds high_water bytes or more (a hint to pause the producer until
 * on_drain), LOOM_ECLOSED, LOOM_EPIPE after loom_socket_shutdown(),
 * LOOM_EINVAL for a length (or iovec total) beyond SSIZE_MAX, or
 * LOOM_ENOMEM. Send errors arrive as events. */
LOOM_EXTERN int loom_socket_write(loom_socket_t *sock, const void *buf, size_t len);

/* Gather write of `iovcnt` buffers (copying, like loom_socket_write()). */
LOOM_EXTERN int loom_socket_writev(loom_socket_t *sock, const struct iovec *iov, int iovcnt);

/* Zero-copy write: `buf` stays the caller's and must stay unchanged until
 * release(buf, len, rdata) runs, exactly once, when loom no longer needs it
 * (sent, or dropped on close). release may run before this function returns
 * (when everything was sent at once) and may be NULL. On an error return
 * release is not called and the buffer stays the caller's. Returns like
 * loom_socket_write(). */
LOOM_EXTERN int loom_socket_write_ref(loom_socket_t *sock, const void *buf, size_t len,
                                      loom_release_cb release, void *rdata);

/* Bytes of the application's writes queued and not yet handed to the kernel
 * (the water marks count the same): while a graceful close flushes, what it
 * still has to send; 0 once the socket is closed for good. */
LOOM_EXTERN size_t loom_socket_queued(const loom_socket_t *sock);

/* cl-async's enable-socket / disable-socket: `what` is LOOM_READABLE and/or
 * LOOM_WRITABLE (loom/io.h). While reading is disabled no on_read runs, the
 * read timeout does not run and the kernel's receive window fills: the
 * backpressure lever. (On io_uring the kernel may already have handed loom
 * the bytes that arrived just before; they are kept, and come first when
 * reading is enabled again.)
 * While writing is disabled writes are queued and nothing is sent. Return 0
 * or LOOM_ECLOSED. */
LOOM_EXTERN int loom_socket_enable(loom_socket_t *sock, unsigned what);
LOOM_EXTERN int loom_socket_disable(loom_socket_t *sock, unsigned what);

/* cl-async's set-socket-timeouts: replaces the read and write timeouts (ms,
 * 0: none) of this socket. Returns 0, LOOM_ECLOSED, LOOM_ETOOMANY when the
 * loop already uses 63 distinct timeout values, or LOOM_ENOMEM. */
LOOM_EXTERN int loom_socket_set_timeouts(loom_socket_t *sock, uint32_t read_ms, uint32_t write_ms);

/* Returns 1 once the socket has been closed (by the application or by loom),
 * including while a graceful close is still flushing; else 0. */
LOOM_EXTERN int loom_socket_closed(const loom_socket_t *sock);

/* Graceful close: stops reading, sends what is queued, then closes (the
 * write timeout, if any, bounds the flush). A socket still connecting closes
 * at once, dropping what was queued. No callback runs on the socket after
 * this call but release callbacks and, once the flush has ended, on_close.
 * Returns 0 or LOOM_ECLOSED. */
LOOM_EXTERN int loom_socket_close(loom_socket_t *sock);

/* Closes at once: queued data is dropped (zero-copy buffers released) and
 * the connection is reset (SO_LINGER 0) if data was pending or unread.
 * Returns 0 or LOOM_ECLOSED. */
LOOM_EXTERN int loom_socket_abort(loom_socket_t *sock);

/* Half-close: once the queue is sent, shuts down the write side (the peer
 * sees eof); reading goes on. Later writes return LOOM_EPIPE. Returns 0,
 * LOOM_ECLOSED or LOOM_ENOTCONN (still connecting). */
LOOM_EXTERN int loom_socket_shutdown(loom_socket_t *sock);

/* TCP_NODELAY on or off (on by default). Returns 0, LOOM_ECLOSED or a
 * system error (LOOM_ENOTSUP for a Unix socket). */
LOOM_EXTERN int loom_socket_set_nodelay(loom_socket_t *sock, int on);

/* SO_KEEPALIVE with an idle time of `idle_s` seconds before the first probe
 * (0 keeps the system default); `on` 0 disables it. Returns 0, LOOM_ECLOSED
 * or a system error. */
LOOM_EXTERN int loom_socket_set_keepalive(loom_socket_t *sock, int on, unsigned idle_s);

/* The peer's and the local address. `*len` is the size of `addr` on entry
 * and the address length on return. An accepted TCP connection's peer is
 * the address accept returned, kept with the socket (8 bytes for an IPv4
 * server, 24 for an IPv6 one); a loom_tcp_connect() client's is the
 * address it connected to, kept the same way (8 bytes when it could only
 * reach IPv4: an IPv4 literal or family AF_INET; else 24). So it is still
 * known after the peer reset the connection, when the kernel no longer
 * says it. Return 0, LOOM_ECLOSED, LOOM_ENOTCONN (a client still
 * connecting), LOOM_ENOSPC or a system error. */
LOOM_EXTERN int loom_socket_peer_addr(const loom_socket_t *sock, struct sockaddr *addr,
                                      socklen_t *len);
LOOM_EXTERN int loom_socket_local_addr(const loom_socket_t *sock, struct sockaddr *addr,
                                       socklen_t *len);

/* The same as strings: the IP address ("127.0.0.1", "::1") or the socket path
 * into `buf` (NUL-terminated; 64 bytes hold any IP), and the port into
 * `*port` if not NULL (0 for Unix sockets). Return 0 or a LOOM_E* code
 * (LOOM_ENOSPC if `buf` is too small). */
LOOM_EXTERN int loom_socket_peer_name(const loom_socket_t *sock, char *buf, size_t size, int *port);
LOOM_EXTERN int loom_socket_local_name(const loom_socket_t *sock, char *buf, size_t size,
                                       int *port);

/* Formats a sockaddr the same way. Any thread. */
LOOM_EXTERN int loom_sockaddr_name(const struct sockaddr *addr, socklen_t len, char *buf,
                                   size_t size, int *port);

/* The socket's fd (-1 while connecting), or LOOM_ECLOSED. The fd stays
 * loom's: do not close it or change its flags. */
LOOM_EXTERN int loom_socket_fd(const loom_socket_t *sock);

#ifdef __cplusplus
}
#endif
#endif
