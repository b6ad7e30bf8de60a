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

/* Once the held bytes are delivered (in the pending phase), s moves from
 * its own class to the one in *slot, shared by every socket given the same
 * options: the class is made (and stored in *slot, which then owns one
 * reference, dropped by the slot's owner with loom__class_unref()) when
 * *slot is NULL or differs (another server's extension size, transport or
 * options); without memory the socket keeps its own class. *slot must
 * outlive the socket's handoff (its owner outlives the socket). Call right
 * after loom__socket_handoff(), in the same callback. */
void loom__socket_handoff_share(loom_socket_t *s, loom__sock_class **slot);

/* Keeps p[0..n) (read before the handoff, not yet consumed) to be delivered
 * to the new owner before anything read later. Valid between
 * loom__socket_handoff() and the end of the current callback. Returns 0 or
 * LOOM_ENOMEM (then the socket is aborted: bytes cannot be dropped). */
int loom__socket_handoff_hold(loom_socket_t *s, const char *p, size_t n);

#endif
