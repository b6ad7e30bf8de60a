/* bench/ws/ws_bcast_loom.c - loom's server for the WebSocket benchmarks:
 * loom-ws-echo's echo plus the bench protocol's `subscribe` and
 * `broadcast <payload>` (bench/ws/README.md) on loom's topics, so that a
 * broadcast is framed once (a prepared message) and queued, zero-copy, to
 * every subscriber.
 *
 * Usage: bench-ws-loom --port P [--bind ADDR]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom.h"

static loom_ws_topics_t *topics;

static void on_message(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len, void *data)
{
    (void)data;
    if (type == LOOM_WS_TEXT && len == 9 && memcmp(msg, "subscribe", 9) == 0) {
        if (loom_ws_subscribe(topics, ws, "bench") == 0)
            loom_ws_send(ws, LOOM_WS_TEXT, "subscribed", 10);
        else
            loom_ws_close(ws, LOOM_WS_INTERNAL, "cannot subscribe");
        return;
    }
    if (type == LOOM_WS_TEXT && len >= 10 && memcmp(msg, "broadcast ", 10) == 0) {
        loom_ws_publish(topics, "bench", LOOM_WS_TEXT, msg + 10, len - 10);
        return;
    }
    if (loom_ws_send(ws, type, msg, len) == 1)
        loom_ws_pause(ws); /* the peer reads slower than it writes */
}

static void on_drain(loom_ws_t *ws, void *data)
{
    (void)data;
    loom_ws_resume(ws);
}

/* permessage-deflate accepted when offered, with loom's defaults (as
 * loom-ws-echo). */
static const loom_ws_opts ws_opts = {
    .on_message = on_message, .on_drain = on_drain, .deflate = true};

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    loom_ws_accept(req, &ws_opts, NULL); /* answers a bad handshake itself */
}

static void on_signal(loom_signal_t *sig, int signum, void *data)
{
    (void)sig;
    (void)signum;
    loom_stop(data);
}

int main(int argc, char **argv)
{
    int port = 0;
    const char *bind = "127.0.0.1";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else {
            fprintf(stderr, "usage: bench-ws-loom --port P [--bind ADDR]\n");
            return 2;
        }
    }
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "bench-ws-loom: %s\n", loom_strerror(r));
        return 1;
    }
    loom_ws_topics_opts topts = {.slow = LOOM_WS_SLOW_SKIP};
    loom_http_server_t *srv;
    loom_http_server_opts opts = {.max_connections = 200000};
    if ((r = loom_ws_topics_new(loop, &topts, &topics)) < 0 ||
        (r = loom_http_server(loop, bind, port, on_request, &opts, &srv)) < 0 ||
        (r = loom_signal_handler(loop, SIGINT, on_signal, loop, NULL)) < 0 ||
        (r = loom_signal_handler(loop, SIGTERM, on_signal, loop, NULL)) < 0) {
        fprintf(stderr, "bench-ws-loom: cannot start on port %d: %s\n", port, loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_ws_topics_free(topics);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
