/* loom-echo: cl-async's echo-server example, and the echo benchmark server.
 *
 *     loom-echo [--port P] [--bind ADDR] [--unix PATH] [--reuseport]
 *
 * Echoes every byte it reads, with one write (one writev) per read. When a
 * write returns 1 (the queue reached high water: a client that sends without
 * reading), reading stops until on_drain, so memory stays flat; such a
 * client is closed by the 30 s write timeout (docs/NET.md, Backpressure). Ctrl-C
 * (SIGINT) closes the server and its connections, and the loop then ends by
 * itself because nothing is left to run.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "loom.h"

static loom_tcp_server_t *server;

static void on_read(loom_socket_t *sock, const char *bytes, size_t len, void *data)
{
    (void)data;
    /* Sent at once if the kernel takes it; only a remainder is copied. 1:
     * the queue reached high water (a client that sends without reading):
     * stop reading until it drains, so memory stays flat. */
    if (loom_socket_write(sock, bytes, len) == 1)
        loom_socket_disable(sock, LOOM_READABLE);
}

static void on_drain(loom_socket_t *sock, void *data)
{
    (void)data;
    loom_socket_enable(sock, LOOM_READABLE);
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    /* eof, resets and timeouts close the connection; nothing else to do. */
    if (loom_event_is(ev, LOOM_EV_TCP_ACCEPT_ERROR))
        fprintf(stderr, "loom-echo: %s: %s\n", loom_event_kind_name(ev->kind), ev->msg);
}

static void on_sigint(loom_signal_t *sig, int signo, void *data)
{
    (void)signo;
    (void)data;
    fprintf(stderr, "loom-echo: closing\n");
    loom_tcp_server_close_connections(server);
    loom_tcp_server_close(server);
    loom_signal_free(sig);
}

/* A server of many connections wants every descriptor it may have. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: loom-echo [--port P] [--bind ADDR] [--unix PATH] [--reuseport]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 9003;
    bool reuseport = false;
    const char *bind = NULL, *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reuseport") == 0)
            reuseport = true;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--bind") == 0 && i + 1 < argc)
            bind = argv[++i];
        else if (strcmp(argv[i], "--unix") == 0 && i + 1 < argc)
            path = argv[++i];
        else
            usage();
    }
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-echo: %s\n", loom_strerror(r));
        return 1;
    }
    raise_nofile();
    loom_tcp_server_opts opts = {.on_read = on_read,
                                 .on_drain = on_drain,
                                 .on_event = on_event,
                                 .write_timeout_ms = 30000,
                                 .backlog = 4096,
                                 .reuseport = reuseport};
    r = path ? loom_unix_server(loop, path, &opts, &server)
             : loom_tcp_server(loop, bind, port, &opts, &server);
    if (r < 0) {
        fprintf(stderr, "loom-echo: cannot listen: %s\n", loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    loom_signal_t *sig;
    loom_signal_handler(loop, SIGINT, on_sigint, NULL, &sig);
    if (path)
        printf("loom-echo: listening on %s (%s)\n", path, loom_loop_backend(loop));
    else
        printf("loom-echo: listening on port %d (%s)\n", loom_tcp_server_port(server),
               loom_loop_backend(loop));
    fflush(stdout);
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
