/* loom-ws-echo - a WebSocket echo server: every message comes back whole,
 * with its type (text stays text, binary stays binary).
 *
 *   loom-ws-echo [--port P] [--bind ADDR] [--tls-cert FILE --tls-key FILE]
 *                [--max-message BYTES] [--no-deflate]
 *
 * permessage-deflate is accepted when a client offers it (--no-deflate
 * declines it). Any path upgrades ("ws://host:P/" or "/echo"); a plain HTTP request that
 * is not an upgrade gets 426. With --tls-cert and --tls-key (PEM) it serves
 * wss://. A client that sends faster than it reads is paused: reading stops
 * while the echoes queued for it are above high water, and resumes on drain.
 * SIGINT or SIGTERM stops it. The benchmarks (bench/ws) drive this program.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_tls.h"
#include "loom.h"

static void on_message(loom_ws_t *ws, loom_ws_type_t type, const char *msg, size_t len, void *data)
{
    (void)data;
    if (loom_ws_send(ws, type, msg, len) == 1)
        loom_ws_pause(ws); /* the peer reads slower than it writes */
}

static void on_drain(loom_ws_t *ws, void *data)
{
    (void)data;
    loom_ws_resume(ws);
}

static loom_ws_opts ws_opts = {.on_message = on_message, .on_drain = on_drain, .deflate = true};

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
    int port = 8080;
    const char *bind = NULL, *cert = NULL, *key = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else if (strcmp(argv[i], "--no-deflate") == 0) {
            ws_opts.deflate = false;
        } else if (strcmp(argv[i], "--max-message") == 0 && i + 1 < argc) {
            ws_opts.max_message = (size_t)strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: loom-ws-echo [--port P] [--bind ADDR] [--max-message BYTES] "
                            "[--no-deflate]\n"
                            "                    [--tls-cert FILE --tls-key FILE]\n");
            return 2;
        }
    }
    loom_tls_ctx_t *tls = example_tls_server("loom-ws-echo", cert, key);
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-ws-echo: %s\n", loom_strerror(r));
        loom_tls_ctx_free(tls);
        return 1;
    }
    loom_http_server_t *srv;
    loom_http_server_opts opts = {.max_connections = 200000, .tls = tls};
    r = loom_http_server(loop, bind, port, on_request, &opts, &srv);
    loom_tls_ctx_free(tls); /* the server holds its own reference */
    if (r < 0) {
        fprintf(stderr, "loom-ws-echo: cannot listen on port %d: %s\n", port, loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    if (loom_signal_handler(loop, SIGINT, on_signal, loop, NULL) < 0 ||
        loom_signal_handler(loop, SIGTERM, on_signal, loop, NULL) < 0) {
        fprintf(stderr, "loom-ws-echo: cannot install signal handlers\n");
        loom_loop_free(loop);
        return 1;
    }
    fprintf(stderr, "loom-ws-echo: listening on port %d%s\n", loom_http_server_port(srv),
            tls ? " (wss)" : "");
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
