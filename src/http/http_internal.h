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

/* Field rules (common.c), the same for what the server sends, what the
 * client sends and what the client accepts from the caller: a name is one
 * or more token characters (RFC 9110 section 5.6.2); a value holds HTAB, SP,
 * visible ASCII and obs-text, no other control character (CR and LF above
 * all: no header injection) and no DEL. The tables are 1 for a byte that
 * stops the field, NUL included, so a scan of a C string needs no strlen(). */
extern const unsigned char loom__http_name_stop[256];
extern const unsigned char loom__http_value_stop[256];
bool loom__http_token_ok(const char *s, size_t n);
bool loom__http_value_ok(const char *s, size_t n);

/* Writes the chunk-size line "<hex>\r\n" for a chunk of n bytes into out
 * (LOOM__HTTP_CHUNK_LINE bytes hold any) and returns its length. */
#define LOOM__HTTP_CHUNK_LINE 20
size_t loom__http_chunk_line(char *out, uint64_t n);

/* Writes `status`'s status line "HTTP/1.1 200 OK\r\n" into buf (64 bytes
 * hold any) and returns its length. */
size_t loom__http_status_line(int status, char *buf);

/* The cached header line "Date: <IMF-fixdate>\r\n" (37 characters,
 * NUL-terminated), refreshed at most once a second. NULL on ENOMEM. */
const char *loom__http_date_now(loom_loop_t *loop);
/* Server internals: http/server_internal.h (server*.c only). */

#endif
