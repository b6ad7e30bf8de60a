/* examples/http_echo.c - loom-http-echo: answers any method with 200 and
 * the request body echoed back.
 *
 *   loom-http-echo [--port P] [--bind ADDR] [--stream]
 *                  [--tls-cert FILE --tls-key FILE]
 *
 * By default the server reads and validates the whole request body first
 * (chunked coding removed, at most 1 MiB: the server's default limit), then
 * answers 200 with a Content-Length and the decoded body. A malformed body,
 * like any bad request, gets loom's 4xx answer and never reaches the echo.
 *
 * With --stream the server runs in streaming mode instead: the body is not
 * buffered, each piece goes straight back out as it arrives (chunked, or
 * with the request's Content-Length when it had one), and when the client
 * reads more slowly than it sends, reading pauses until the answer drains.
 *
 * With --tls-cert and --tls-key (PEM: the chain, leaf first, and its key) it
 * serves HTTPS (ALPN http/1.1).
 *
 * Either way a client that sends without reading cannot make it buffer
 * without bound (the server stops reading while its answers wait). SIGINT or
 * SIGTERM closes the server gracefully.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_tls.h"
#include "loom.h"

/* Default mode: the whole body is here. */
static void on_request_whole(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t len;
    const char *body = loom_http_req_body(req, &len);
    static const char *const h[] = {"Content-Type", "application/octet-stream", NULL};
    loom_http_respond(req, 200, h, body, len);
}

/* --stream: the answer starts with the request (so a HEAD or a bodiless request gets
 * its empty answer too); the body follows piece by piece. */
static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    size_t len;
    const char *cl = loom_http_req_header(req, "Content-Length", &len);
    const char *h[] = {"Content-Type", "application/octet-stream", "Content-Length", cl, NULL};
    if (cl == NULL)
        h[2] = NULL;
    loom_http_response_start(req, 200, h);
}

static int on_body(loom_http_req_t *req, const char *chunk, size_t len, void *data)
{
    (void)data;
    if (chunk == NULL) {
        loom_http_response_end(req);
        return 0;
    }
    /* 1: the client is behind; stop reading until on_drain. */
    if (loom_http_response_write(req, chunk, len) == 1)
        return LOOM_HTTP_PAUSE;
    return 0;
}

static void on_drain(loom_http_req_t *req, void *data)
{
    (void)data;
    loom_http_req_resume(req);
}

/* The client went away mid-echo: drop the request. */
static void on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    loom_http_response_end(req);
}

typedef struct {
    loom_loop_t *loop;
    loom_http_server_t *srv;
} echo_app;

static void on_signal(loom_signal_t *sig, int signum, void *data)
{
    echo_app *app = data;
    (void)sig;
    (void)signum;
    if (app->srv)
        loom_http_server_close(app->srv, 0, NULL);
    app->srv = NULL;
    loom_signal_clear(app->loop);
}

int main(int argc, char **argv)
{
    int port = 8080;
    const char *bind = NULL, *cert = NULL, *key = NULL;
    int stream = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc) {
            bind = argv[++i];
        } else if (strcmp(argv[i], "--stream") == 0) {
            stream = 1;
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            key = argv[++i];
        } else {
            fprintf(stderr, "usage: loom-http-echo [--port P] [--bind ADDR] [--stream]\n"
                            "                      [--tls-cert FILE --tls-key FILE]\n");
            return 2;
        }
    }
    loom_tls_ctx_t *tls = example_tls_server("loom-http-echo", cert, key);
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-http-echo: %s\n", loom_strerror(r));
        loom_tls_ctx_free(tls);
        return 1;
    }
    echo_app app = {.loop = loop};
    loom_http_server_opts opts = {.max_connections = 100000, .tls = tls};
    if (stream) {
        opts.on_body = on_body;
        opts.on_drain = on_drain;
        opts.on_close = on_close;
    }
    r = loom_http_server(loop, bind, port, stream ? on_request : on_request_whole, &opts, &app.srv);
    loom_tls_ctx_free(tls); /* the server holds its own reference */
    if (r < 0) {
        fprintf(stderr, "loom-http-echo: cannot listen on port %d: %s\n", port, loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    if (loom_signal_handler(loop, SIGINT, on_signal, &app, NULL) < 0 ||
        loom_signal_handler(loop, SIGTERM, on_signal, &app, NULL) < 0) {
        fprintf(stderr, "loom-http-echo: cannot install signal handlers\n");
        loom_loop_free(loop);
        return 1;
    }
    fprintf(stderr, "loom-http-echo: listening on port %d%s%s\n", loom_http_server_port(app.srv),
            tls ? " (https)" : "", stream ? " (streaming)" : "");
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
