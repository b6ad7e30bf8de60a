/* examples/hello.c - loom-hello: the smallest HTTP server, and the one the
 * benchmarks run. Every request gets 200, "Content-Type: text/plain" and the
 * body "omglolwtf" through the ordinary loom_http_respond().
 *
 *   loom-hello [--port P] [--bind ADDR] [--threads N]
 *              [--tls-cert FILE --tls-key FILE] [--h2c] [--idle-timeout SECONDS]
 *
 * With --tls-cert and --tls-key (PEM: the chain, leaf first, and its key) it
 * serves HTTPS on the same port option, HTTP/2 or HTTP/1.1 as ALPN decides
 * (h2 preferred). With --h2c a plain server also takes HTTP/2 with prior
 * knowledge (a connection that opens with the HTTP/2 preface) and by
 * "Upgrade: h2c" (curl --http2 http://..., nghttp -u).
 * --idle-timeout sets the keep-alive idle timeout (default: the server's,
 * 60 s); the idle-memory benchmarks hold their connections longer than that.
 *
 * GET /bulk/N streams N bytes ("x"), in 64 KiB writes paced by on_drain:
 * the bulk-download benchmark's route (bench/tls_bench.py). HEAD /bulk/N
 * gets the same head and no body is made.
 *
 * SIGINT or SIGTERM closes the server gracefully (answers in flight are
 * finished) and the program exits when the loop has nothing left.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "example_tls.h"
#include "loom.h"

static const char *const hello_headers[] = {"Content-Type", "text/plain", NULL};

/* The bulk route's source: one static block written again and again. */
static char bulk_block[64 * 1024];

/* Writes the rest of a /bulk/N answer (its count in the request's data
 * slot) until the socket's queue is above high water or the body is done. */
static void bulk_pump(loom_http_req_t *req, void *data)
{
    (void)data;
    uint64_t *left = loom_http_req_data(req);
    while (*left > 0) {
        size_t n = *left < sizeof bulk_block ? (size_t)*left : sizeof bulk_block;
        int r = loom_http_response_write(req, bulk_block, n);
        if (r < 0) {
            /* LOOM_ECLOSED (the client went away) or LOOM_ENOBODY (no
             * body goes out): either way the answer is over. */
            free(left);
            loom_http_req_release(req);
            return;
        }
        *left -= n;
        if (r == 1 && *left > 0)
            return; /* on_drain resumes */
    }
    free(left);
    loom_http_response_end(req);
}

/* The client of a /bulk/N answer went away. */
static void bulk_close(loom_http_req_t *req, void *data)
{
    (void)data;
    free(loom_http_req_data(req));
    loom_http_req_release(req);
}

static void on_request(loom_http_req_t *req, void *data)
{
    size_t plen;
    const char *path = loom_http_req_path(req, &plen);
    if (plen > 6 && memcmp(path, "/bulk/", 6) == 0) {
        char len[24];
        uint64_t *left = malloc(sizeof *left);
        unsigned long long n = strtoull(path + 6, NULL, 10);
        if (!left || n > (1ull << 40)) {
            free(left);
            loom_http_respond(req, 400, hello_headers, "bad size\n", 9);
            return;
        }
        *left = n;
        snprintf(len, sizeof len, "%llu", n);
        const char *hdrs[] = {"Content-Type", "application/octet-stream", "Content-Length", len,
                              NULL};
        loom_http_req_set_data(req, left);
        if (loom_http_response_start(req, 200, hdrs) < 0) {
            free(left);
            loom_http_req_release(req);
            return;
        }
        if (loom_http_req_method(req) == LOOM_HTTP_METHOD_HEAD) {
            /* The head (with the length a GET gets) is the whole answer:
             * no body is made. */
            free(left);
            loom_http_response_end(req);
            return;
        }
        bulk_pump(req, data);
        return;
    }
    loom_http_respond(req, 200, hello_headers, "omglolwtf", 9);
}

typedef struct {
    loom_loop_t *loop;
    loom_http_server_t *srv;
} hello_app;

/* SIGINT/SIGTERM: graceful close; the handlers go too, so the loop ends
 * once the last answer is out. */
static void on_signal(loom_signal_t *sig, int signum, void *data)
{
    hello_app *app = data;
    (void)sig;
    (void)signum;
    if (app->srv)
        loom_http_server_close(app->srv, 0, NULL);
    app->srv = NULL;
    loom_signal_clear(app->loop);
}

static void usage(void)
{
    fprintf(stderr, "usage: loom-hello [--port P] [--bind ADDR] [--threads N]\n"
                    "                  [--tls-cert FILE --tls-key FILE] [--h2c]\n"
                    "                  [--idle-timeout SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 8080;
    unsigned threads = 1;
    const char *bind = NULL, *cert = NULL, *key = NULL;
    bool h2c = false;
    uint32_t idle_ms = 0; /* the server's default */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc)
            cert = argv[++i];
        else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc)
            key = argv[++i];
        else if (strcmp(argv[i], "--h2c") == 0)
            h2c = true;
        else if (strcmp(argv[i], "--idle-timeout") == 0 && i + 1 < argc)
            idle_ms = (uint32_t)atoi(argv[++i]) * 1000u;
        else
            usage();
    }
    loom_tls_ctx_t *tls = example_tls_server("loom-hello", cert, key);
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-hello: %s\n", loom_strerror(r));
        loom_tls_ctx_free(tls);
        return 1;
    }
    hello_app app = {.loop = loop};
    memset(bulk_block, 'x', sizeof bulk_block);
    loom_http_server_opts opts = {.threads = threads,
                                  .max_connections = 100000,
                                  .idle_timeout_ms = idle_ms,
                                  .tls = tls,
                                  .on_drain = bulk_pump,
                                  .on_close = bulk_close,
                                  .http2 = {.h2c = h2c}};
    r = loom_http_server(loop, bind, port, on_request, &opts, &app.srv);
    loom_tls_ctx_free(tls); /* the server holds its own reference */
    if (r < 0) {
        fprintf(stderr, "loom-hello: cannot listen on port %d: %s\n", port, loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    if (loom_signal_handler(loop, SIGINT, on_signal, &app, NULL) < 0 ||
        loom_signal_handler(loop, SIGTERM, on_signal, &app, NULL) < 0) {
        fprintf(stderr, "loom-hello: cannot install signal handlers\n");
        loom_loop_free(loop);
        return 1;
    }
    fprintf(stderr, "loom-hello: listening on port %d (%s, %u thread%s, %s)\n",
            loom_http_server_port(app.srv),
            tls   ? "https, h2 and http/1.1"
            : h2c ? "http, h2c (prior knowledge or Upgrade) and http/1.1"
                  : "http",
            threads ? threads : 1, threads > 1 ? "s" : "", loom_loop_backend(loop));
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
