/* loom/event.h - events: cl-async's conditions, as values.
 *
 * Every operation takes an event callback. Asynchronous outcomes that are not
 * plain data (end of file, timeouts, refusals, resets, resolver failures,
 * application errors) reach it as a loom_event_t whose kind sits in one
 * hierarchy:
 *
 *   info
 *     connection info
 *       tcp info
 *         tcp eof
 *       http info
 *   error
 *     connection error
 *       dns error
 *       tcp error
 *         tcp timeout, tcp refused, tcp reset, tcp accept error, socket closed
 *       tls error
 *         tls verify error
 *       http error
 *         http timeout, http refused
 *       websocket error (loom/ws.h: a peer's protocol violation, a limit,
 *         a keepalive timeout, a failed opening handshake)
 *     application error
 *
 * "socket closed" is cl-async's socket-closed condition, kept so that the
 * hierarchy maps one to one. No event of that kind is emitted: a socket's
 * close is not an error, so loom reports it through the socket's on_close
 * callback (loom_tcp_opts, loom_tcp_server_opts in loom/tcp.h), which runs
 * exactly once per socket whatever closed it, and a call on a closed socket
 * returns LOOM_ECLOSED.
 *
 * Routing: an event goes to the callback of the operation it concerns; if
 * that operation has none, to the loop's default event callback; if the loop
 * has none, info events are dropped (logged at debug level) and error events
 * end loom_run(), which returns the event's code after calling on_fatal. No
 * error is silently lost. Except for what a remote peer causes on a server:
 * an accepted connection's events (and accept errors the server recovers
 * from, EMFILE and the like), with neither handler, are logged (loom_log)
 * and dropped, so that no client can end a server's loom_run() (the HTTP
 * server does the same for its clients' errors).
 *
 * `msg` says what failed, naming the address, host or path and the reason
 * ("connect to 127.0.0.1:9 refused", "dns lookup of nohost.invalid
 * failed: Domain name not found", "read timeout (5000 ms)"). It is built
 * for the event in a bounded buffer and valid only during the callback.
 */
#ifndef LOOM_EVENT_H
#define LOOM_EVENT_H

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(NAME, PARENT, "name") - the kind hierarchy, parents before children. */
#define LOOM_EVENT_KIND_MAP(XX)                                                                    \
    XX(INFO, NONE, "info")                                                                         \
    XX(CONN_INFO, INFO, "connection info")                                                         \
    XX(TCP_INFO, CONN_INFO, "tcp info")                                                            \
    XX(TCP_EOF, TCP_INFO, "tcp eof")                                                               \
    XX(HTTP_INFO, CONN_INFO, "http info")                                                          \
    XX(ERROR, NONE, "error")                                                                       \
    XX(CONN_ERROR, ERROR, "connection error")                                                      \
    XX(DNS_ERROR, CONN_ERROR, "dns error")                                                         \
    XX(TCP_ERROR, CONN_ERROR, "tcp error")                                                         \
    XX(TCP_TIMEOUT, TCP_ERROR, "tcp timeout")                                                      \
    XX(TCP_REFUSED, TCP_ERROR, "tcp refused")                                                      \
    XX(TCP_RESET, TCP_ERROR, "tcp reset")                                                          \
    XX(TCP_ACCEPT_ERROR, TCP_ERROR, "tcp accept error")                                            \
    XX(SOCKET_CLOSED, TCP_ERROR, "socket closed")                                                  \
    XX(TLS_ERROR, CONN_ERROR, "tls error")                                                         \
    XX(TLS_VERIFY_ERROR, TLS_ERROR, "tls verify error")                                            \
    XX(HTTP_ERROR, CONN_ERROR, "http error")                                                       \
    XX(HTTP_TIMEOUT, HTTP_ERROR, "http timeout")                                                   \
    XX(HTTP_REFUSED, HTTP_ERROR, "http refused")                                                   \
    XX(APP_ERROR, ERROR, "application error")                                                      \
    XX(WS_ERROR, CONN_ERROR, "websocket error")

typedef enum {
    LOOM_EV_NONE = 0,
#define LOOM__EV_ENUM(name, parent, str) LOOM_EV_##name,
    LOOM_EVENT_KIND_MAP(LOOM__EV_ENUM)
#undef LOOM__EV_ENUM
        LOOM_EV__COUNT
} loom_event_kind_t;

/* An event. Valid only for the duration of the callback that receives it;
 * copy what you need. */
struct loom_event {
    loom_event_kind_t kind;
    int code;          /* a LOOM_E* code; 0 for info events without one */
    const char *msg;   /* human-readable message, never NULL */
    void *object;      /* the socket, server, query or request it concerns, or NULL */
    loom_loop_t *loop; /* the loop it happened on */
};

/* An event callback. `data` is the user data registered with the callback. */
typedef void (*loom_event_cb)(const loom_event_t *ev, void *data);

/* Returns 1 if `ev` is of kind `kind` or of a kind below it in the hierarchy
 * (a tcp timeout is a tcp error is a connection error is an error), else 0. */
LOOM_EXTERN int loom_event_is(const loom_event_t *ev, loom_event_kind_t kind);

/* Returns 1 if kind `kind` is `ancestor` or lies below it, else 0. */
LOOM_EXTERN int loom_event_kind_is(loom_event_kind_t kind, loom_event_kind_t ancestor);

/* Returns the parent of `kind` (LOOM_EV_NONE for the roots). */
LOOM_EXTERN loom_event_kind_t loom_event_kind_parent(loom_event_kind_t kind);

/* Returns the static name of `kind` ("tcp timeout"). */
LOOM_EXTERN const char *loom_event_kind_name(loom_event_kind_t kind);

/* Returns 1 for kinds under LOOM_EV_ERROR, 0 for info kinds. */
LOOM_EXTERN int loom_event_is_error(const loom_event_t *ev);

/* Reports an application error, cl-async's catch-app-errors. Call it from
 * inside any loom callback when the application hits an error it wants loom
 * to route: once that callback returns, the error is delivered as an
 * LOOM_EV_APP_ERROR event (with `code`, a copy of `msg`, and `object`) to the
 * event callback of the operation whose callback raised it, else to the
 * loop's default event callback, else loom_run() stops and returns `code`.
 * Called outside any callback, it goes straight to the default handler chain
 * on the next iteration. Returns 0, or LOOM_EINVAL if `code` is not negative.
 * Loop thread only. */
LOOM_EXTERN int loom_raise(loom_loop_t *loop, int code, const char *msg, void *object);

#ifdef __cplusplus
}
#endif
#endif
