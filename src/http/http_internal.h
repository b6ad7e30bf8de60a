/* http/http_internal.h - what the HTTP server and client share inside loom.
 * Not installed.
 *
 * The loop has one slot for HTTP state (loop->http) and one free hook
 * (loop->http_free). Both modules use them through loom__http_get(): it
 * creates a loom__http_loop that holds one pointer and one free hook per
 * module, and installs a loop->http_free that calls each hook. A module that
 * needs per-loop state stores it in its own member the first time and sets
 * its hook; nothing else in the loop is shared.
 *
 * Loop thread only.
 */
#ifndef LOOM_HTTP_INTERNAL_H
#define LOOM_HTTP_INTERNAL_H

#include "core/internal.h"
#include "loom/http.h"
#include "loom/http_parser.h"

typedef struct loom__http_loop {
    void *server; /* server.c: loom__hsrv_loop * */
    void *client; /* client.c */
    /* Called at loom_loop_free(), before the net layer closes the sockets
     * (so they may still be walked); each must free its module's state and
     * reset its member. */
    void (*server_free)(loom_loop_t *loop);
    void (*client_free)(loom_loop_t *loop);
} loom__http_loop;

/* The loop's shared HTTP state, created on first use (NULL on ENOMEM). */
loom__http_loop *loom__http_get(loom_loop_t *loop);

/* Writes `status`'s status line "HTTP/1.1 200 OK\r\n" into buf (64 bytes
 * hold any) and returns its length. */
size_t loom__http_status_line(int status, char *buf);

/* The cached IMF-fixdate for loop->now (refreshed at most once a second;
 * 29 characters, NUL-terminated). */
const char *loom__http_date_now(loom_loop_t *loop);

#endif
