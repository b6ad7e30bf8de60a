/* loom/udp.h - UDP sockets: bound and connected datagram sockets, batched
 * receive (recvmmsg) and send (sendmmsg, UDP GSO), multicast, and counters.
 *
 * A UDP socket is an opaque handle owned by its loop. Datagrams arrive on
 * `on_recv`, each with its sender's address; a datagram longer than the
 * receive slot (loom_udp_opts.max_datagram) is delivered cut short with
 * LOOM_UDP_TRUNCATED set, never silently.
 *
 * Sending: loom_udp_send() and loom_udp_sendv() copy the datagram into the
 * socket's queue; the queue is sent with one sendmmsg() per batch - after
 * each batch of received datagrams of the same socket (so an echo answers a
 * whole batch with one system call), else in the loop's pending phase of the
 * next iteration - and consecutive datagrams to one destination with equal
 * sizes go as one UDP GSO super-datagram (UDP_SEGMENT) where the kernel
 * has it. Backpressure: once the queue holds high_water bytes a send returns 1
 * ("behind") and on_drain follows when it has been sent; past `queue_limit`
 * a send returns LOOM_EAGAIN and nothing is queued. Memory is bounded.
 *
 * Errors: ICMP errors (port unreachable: LOOM_ECONNREFUSED, host
 * unreachable...) on a connected socket - and on any socket with
 * `icmp_errors` - arrive as LOOM_EV_CONN_ERROR events whose message names the
 * peer ("udp send to 127.0.0.1:9 failed: connection refused"); another
 * error of a socket with no peer names the socket's own address ("udp
 * socket on 0.0.0.0:5353: receive failed: ..."). The socket stays open.
 * With no on_event and no loop default such events are logged and dropped:
 * a remote peer can never end loom_run(). A send that fails for the
 * datagram itself (LOOM_EMSGSIZE, LOOM_EPERM) drops it and is reported the
 * same way.
 *
 * Close: loom_udp_close() is the one close path (loom_loop_free() closes the
 * sockets still open). From then on every call returns LOOM_ECLOSED, queued
 * datagrams are dropped, and `on_close` runs once from the loop, at the end of
 * the iteration, after every other callback of the socket. It may be called
 * from inside on_recv: the rest of the batch is not delivered.
 *
 * An open socket keeps the loop alive. Every function here is for the loop's
 * thread only. The I/O runs through the loop's readiness watchers, so every
 * backend works (epoll, poll, io_uring and the foreign loops).
 */
#ifndef LOOM_UDP_H
#define LOOM_UDP_H

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

typedef struct loom_udp loom_udp_t;

/* on_recv flags. */
enum {
    LOOM_UDP_TRUNCATED = 1, /* the datagram was longer than max_datagram: cut short */
};

/* on_recv: one datagram. `bytes` points into loom's per-loop receive memory,
 * valid only during the call (copy what you keep); `len` may be 0 (an empty
 * datagram). `from` is the sender (sockaddr_in or sockaddr_in6; a v4 sender
 * on a dual-stack socket is a v4-mapped v6 address), valid during the call.
 * `data` is the socket's data slot. */
typedef void (*loom_udp_recv_cb)(loom_udp_t *udp, const char *bytes, size_t len,
                                 const struct sockaddr *from, unsigned flags, void *data);
/* on_drain and on_close: cb(udp, data). */
typedef void (*loom_udp_cb)(loom_udp_t *udp, void *data);

/* Options for loom_udp_bind() and loom_udp_connect(). Zero means the default
 * everywhere. */
typedef struct loom_udp_opts {
    loom_udp_recv_cb on_recv; /* NULL: datagrams are read and dropped (counted) */
    /* The queue fell to empty after a send returned 1. */
    loom_udp_cb on_drain;
    /* ICMP and send errors (LOOM_EV_CONN_ERROR, object = the socket). */
    loom_event_cb on_event;
    /* The close notification (see the top of this file). */
    loom_udp_cb on_close;
    void *data; /* the socket's data slot */

    /* For a NULL address: AF_INET (0.0.0.0, the default) or AF_INET6 ([::]).
     * Otherwise the address decides. */
    int family;
    /* An IPv6 socket also takes IPv4 (IPV6_V6ONLY off). Default: v6 only. */
    bool dual_stack;
    bool reuseaddr; /* SO_REUSEADDR */
    bool reuseport; /* SO_REUSEPORT: several sockets (loops) share a port */
    bool broadcast; /* SO_BROADCAST */
    /* UDP_GRO: the kernel may coalesce a burst of equal datagrams from one
     * sender into one receive; loom splits it again, so on_recv still sees
     * every datagram. Ignored where the kernel lacks it. */
    bool gro;
    /* Never send with UDP GSO (for measurements; default: GSO when the
     * kernel has it). */
    bool no_gso;
    /* Report ICMP errors on an unconnected socket too (IP_RECVERR); they
     * name the destination that failed. Connected sockets always do. */
    bool icmp_errors;
    int sndbuf; /* SO_SNDBUF; 0: the kernel's */
    int rcvbuf; /* SO_RCVBUF; 0: the kernel's */
    int ttl;    /* unicast TTL / hop limit; 0: the kernel's */
    /* Multicast: TTL / hop limit (0: the kernel's, 1), loopback of own
     * datagrams (0: the kernel's, on; 1 on; -1 off) and the outgoing
     * interface, by its address ("127.0.0.1") for v4, by name ("lo") or
     * index for v6; NULL: the kernel's choice. */
    int multicast_ttl;
    int multicast_loop;
    const char *multicast_if;

    /* Receive slot size: longer datagrams are truncated (LOOM_UDP_TRUNCATED).
     * 0: 65536, which holds any UDP datagram. Smaller slots let one
     * recvmmsg() take more datagrams (up to 64). */
    uint32_t max_datagram;
    /* Fairness: at most this many datagrams are read per readiness before
     * other work runs. 0: 256. */
    uint32_t max_per_wakeup;
    /* Queue marks, in bytes (each datagram counts its length plus 64):
     * sends return 1 from high_water on; past queue_limit they fail with
     * LOOM_EAGAIN. 0: 256 KiB and 4 * high_water. */
    uint32_t high_water;
    uint32_t queue_limit;

    /* loom_udp_connect() only: the local address and port to bind first
     * (NULL / 0: any). */
    const char *bind;
    int bind_port;
} loom_udp_opts;

/* Counters of one socket (loom_udp_stats()). */
typedef struct loom_udp_stats {
    uint64_t recv_datagrams; /* delivered to on_recv (GRO-split ones each count) */
    uint64_t recv_bytes;
    uint64_t recv_truncated; /* delivered with LOOM_UDP_TRUNCATED */
    uint64_t recv_calls;     /* recvmmsg() calls */
    uint64_t gro_batches;    /* receives that held several datagrams (GRO), split */
    /* Datagrams the kernel dropped because the receive buffer was full
     * (SO_MEMINFO's drop count, else the last SO_RXQ_OVFL value seen). */
    uint64_t recv_dropped;
    uint64_t sent_datagrams; /* handed to the kernel */
    uint64_t sent_bytes;
    uint64_t send_calls;   /* sendmmsg() calls */
    uint64_t gso_batches;  /* messages sent as one GSO super-datagram */
    uint64_t send_errors;  /* datagrams dropped by a send error (reported as events) */
    uint64_t send_refused; /* sends that returned LOOM_EAGAIN (queue_limit) */
    uint64_t icmp_errors;  /* ICMP errors reported */
    uint64_t queued_bytes; /* in the queue now (as the marks count them) */
} loom_udp_stats_t;

/* Binds a UDP socket to `addr`:`port`. `addr` is a numeric IPv4 or IPv6
 * address, "localhost" (127.0.0.1), or NULL for every address (see
 * opts.family); port 0 picks a free port (loom_udp_port()). `opts` may be
 * NULL. On success `*out` (if `out` is not NULL) receives the socket, owned by
 * the loop, and on_close will run once. Returns 0, LOOM_EINVAL (bad address
 * or option), LOOM_EADDRINUSE, LOOM_ECLOSED (the loop is being freed),
 * LOOM_ENOMEM, or another system error. No callback runs before it returns. */
LOOM_EXTERN int loom_udp_bind(loom_loop_t *loop, const char *addr, int port,
                              const loom_udp_opts *opts, loom_udp_t **out);

/* Creates a connected UDP socket: datagrams go to `addr`:`port` (a numeric
 * address or "localhost"; resolve names with loom/dns.h first) with a NULL
 * destination, only datagrams from there are received, and ICMP errors for
 * it arrive as events. opts.bind / opts.bind_port choose the local end.
 * Returns as loom_udp_bind(). */
LOOM_EXTERN int loom_udp_connect(loom_loop_t *loop, const char *addr, int port,
                                 const loom_udp_opts *opts, loom_udp_t **out);

/* Fills `*out` with `ip`:`port` (a numeric IPv4 or IPv6 address, with an
 * optional %scope for v6, or "localhost") for loom_udp_send(), and `*len`
 * (if not NULL) with its length. Returns 0 or LOOM_EINVAL. Any thread. */
LOOM_EXTERN int loom_udp_addr(const char *ip, int port, struct sockaddr_storage *out,
                              socklen_t *len);

/* Queues one datagram of `len` bytes (copied) to `to` (a sockaddr_in or
 * sockaddr_in6; NULL on a connected socket). It is sent within this loop
 * iteration or the next (see the top of this file). Returns 0 (queued), 1
 * (queued, but the queue is at high water: on_drain follows), LOOM_EAGAIN
 * (the queue is at its limit: not queued), LOOM_EMSGSIZE (longer than
 * 65507 bytes), LOOM_EINVAL (bad address, or NULL on an unconnected socket),
 * LOOM_EISCONN (an address on a connected socket), LOOM_ENOMEM or
 * LOOM_ECLOSED. */
LOOM_EXTERN int loom_udp_send(loom_udp_t *udp, const struct sockaddr *to, const void *bytes,
                              size_t len);

/* As loom_udp_send(), with the datagram gathered from `iovcnt` buffers. */
LOOM_EXTERN int loom_udp_sendv(loom_udp_t *udp, const struct sockaddr *to, const struct iovec *iov,
                               int iovcnt);

/* Sends what is queued now, instead of at the end of the batch or in the
 * next pending phase. Returns 0 (all sent), 1 (some remain: the kernel's
 * buffer is full, the rest goes when it can) or LOOM_ECLOSED. Never runs a
 * callback. */
LOOM_EXTERN int loom_udp_flush(loom_udp_t *udp);

/* The bytes queued, as the marks count them. 0 on a closed socket. */
LOOM_EXTERN size_t loom_udp_queued(const loom_udp_t *udp);

/* Multicast membership of `group` (an IPv4 or IPv6 multicast address) on the
 * interface `iface` (v4: its address; v6: its name or index; NULL: the
 * kernel's choice). Return 0, LOOM_EINVAL, LOOM_ECLOSED or the system's
 * error (LOOM_EADDRNOTAVAIL, LOOM_ENODEV...). */
LOOM_EXTERN int loom_udp_join(loom_udp_t *udp, const char *group, const char *iface);
LOOM_EXTERN int loom_udp_leave(loom_udp_t *udp, const char *group, const char *iface);

/* Source-specific membership: datagrams to `group` from `source` only
 * (IP_ADD_SOURCE_MEMBERSHIP for v4, MCAST_JOIN_SOURCE_GROUP for v6). */
LOOM_EXTERN int loom_udp_join_source(loom_udp_t *udp, const char *group, const char *source,
                                     const char *iface);
LOOM_EXTERN int loom_udp_leave_source(loom_udp_t *udp, const char *group, const char *source,
                                      const char *iface);

/* Changes an option after creation, as the field of loom_udp_opts with the
 * same name. Return 0, LOOM_ECLOSED or the system's error. */
LOOM_EXTERN int loom_udp_set_broadcast(loom_udp_t *udp, bool on);
LOOM_EXTERN int loom_udp_set_ttl(loom_udp_t *udp, int ttl);
LOOM_EXTERN int loom_udp_set_multicast_ttl(loom_udp_t *udp, int ttl);
LOOM_EXTERN int loom_udp_set_multicast_loop(loom_udp_t *udp, bool on);
LOOM_EXTERN int loom_udp_set_multicast_if(loom_udp_t *udp, const char *iface);

/* The local address (`*len`: size of `addr` on entry, the length on return)
 * and the local port. Return 0 / the port, LOOM_ECLOSED or a system error. */
LOOM_EXTERN int loom_udp_local_addr(const loom_udp_t *udp, struct sockaddr *addr, socklen_t *len);
LOOM_EXTERN int loom_udp_port(const loom_udp_t *udp);

/* The socket's fd, for options loom has no call for (setsockopt), or
 * LOOM_ECLOSED. It stays loom's: do not close it, read from it or change its
 * flags. */
LOOM_EXTERN int loom_udp_fd(const loom_udp_t *udp);

/* Fills `*out` with the socket's counters. Returns 0 or LOOM_ECLOSED. */
LOOM_EXTERN int loom_udp_stats(const loom_udp_t *udp, loom_udp_stats_t *out);

/* The loop, and the data slot (works until on_close returns). */
LOOM_EXTERN loom_loop_t *loom_udp_loop(const loom_udp_t *udp);
LOOM_EXTERN void *loom_udp_data(const loom_udp_t *udp);
LOOM_EXTERN void loom_udp_set_data(loom_udp_t *udp, void *data);

/* Closes the socket: the one close path, harmless twice (see the top of this
 * file). Queued datagrams are dropped; call loom_udp_flush() first to try to
 * send them. */
LOOM_EXTERN void loom_udp_close(loom_udp_t *udp);

#ifdef __cplusplus
}
#endif
#endif
