/* net/handoff.h - giving a socket of a protocol class (an HTTP server's
 * connection) to a new owner as a plain loom socket: the upgrade path of
 * loom_http_req_takeover() (WebSocket). Not installed. Loop thread only. */
#ifndef LOOM_NET_HANDOFF_H
#define LOOM_NET_HANDOFF_H

#include "net/net_internal.h"

/* Re-classes s: its class becomes a new one built from `opts` (callbacks,
 * read and write timeouts, water marks, data; the connection keeps its
 * socket options, and on_connect is not called), with the old class's
 * extension size, so the socket keeps its slab object. The old class's
 * reference is dropped. Reading restarts in the pending phase of this
 * iteration, after the bytes given to loom__socket_handoff_hold() have been
 * delivered to the new on_read. Returns 0, or LOOM_ENOMEM / LOOM_ETOOMANY
 * (nothing changed). */
int loom__socket_handoff(loom_socket_t *s, const loom_tcp_opts *opts);

/* Keeps p[0..n) (read before the handoff, not yet consumed) to be delivered
 * to the new owner before anything read later. Valid between
 * loom__socket_handoff() and the end of the current callback. Returns 0 or
 * LOOM_ENOMEM (then the socket is aborted: bytes cannot be dropped). */
int loom__socket_handoff_hold(loom_socket_t *s, const char *p, size_t n);

#endif
