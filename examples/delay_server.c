/* loom-delay-server: the benchmark from cl-async's README.
 *
 *     loom-delay-server [--port P] [--delay SECONDS] [--quiet] [--reuseport]
 *
 * Every HTTP request (only the end of its head, "\r\n\r\n", is looked for)
 * is answered after the delay with a 200 "omglolwtf" response, and the
 * connection is then closed. Once a second it prints cl-async's stats:
 * connections incoming and outgoing (open now), requests finished, and the
 * rate over the last second. Ctrl-C stops it cleanly.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "loom.h"

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 9\r\n"
                               "\r\n"
                               "omglolwtf";

/* One per connection, on a list so SIGINT can cancel the delays. */
typedef struct conn {
    struct conn *prev, *next;
    loom_socket_t *sock;
    loom_timer_t *delay; /* running once the request is complete */
    int matched;         /* bytes of "\r\n\r\n" seen so far */
} conn;

static conn conns = {.prev = &conns, .next = &conns};
static loom_tcp_server_t *server;
static uint64_t delay_ms = 1000;
static uint64_t finished, finished_last;
static int quiet;

static void conn_free(conn *c)
{
    c->prev->next = c->next;
    c->next->prev = c->prev;
    if (c->delay)
        loom_timer_close(c->delay);
    free(c);
}

static void on_connect(loom_socket_t *sock, void *data)
{
    (void)data;
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        loom_socket_abort(sock);
        return;
    }
    c->sock = sock;
    c->next = &conns;
    c->prev = conns.prev;
    conns.prev->next = c;
    conns.prev = c;
    loom_socket_set_data(sock, c);
}

static void respond(loom_timer_t *t, void *data)
{
    conn *c = data;
    (void)t;
    c->delay = NULL; /* a loom_delay() timer closes itself */
    loom_socket_t *sock = c->sock;
    loom_socket_set_data(sock, NULL);
    loom_socket_write(sock, response, sizeof response - 1);
    loom_socket_close(sock); /* after the response is sent */
    conn_free(c);
    finished++;
}

static void on_read(loom_socket_t *sock, const char *bytes, size_t len, void *data)
{
    conn *c = data;
    static const char end[] = "\r\n\r\n";
    if (c == NULL || c->delay)
        return; /* already answering */
    for (size_t i = 0; i < len; i++) {
        if (bytes[i] == end[c->matched])
            c->matched++;
        else
            c->matched = bytes[i] == '\r' ? 1 : 0;
        if (c->matched == 4) {
            /* Reading stays on (an eof while waiting closes early); later
             * bytes are ignored above. */
            if (loom_delay(loom_socket_loop(sock), delay_ms, respond, c, &c->delay) < 0)
                loom_socket_abort(sock);
            return;
        }
    }
}

static void on_event(const loom_event_t *ev, void *data)
{
    /* eof, reset or timeout: loom closes the socket after this returns. */
    if (loom_event_is(ev, LOOM_EV_TCP_ACCEPT_ERROR)) {
        fprintf(stderr, "loom-delay-server: %s\n", ev->msg);
        return;
    }
    conn *c = data;
    if (c)
        conn_free(c);
}

static void print_stats(loom_timer_t *t, void *data)
{
    (void)t;
    loom_loop_t *loop = data;
    loom_stats_t st;
    loom_stats(loop, &st);
    if (!quiet) {
        printf("incoming: %llu\noutgoing: %llu\nfinished: %llu\nrate: %llu req/s\n\n",
               (unsigned long long)st.tcp_incoming, (unsigned long long)st.tcp_outgoing,
               (unsigned long long)finished, (unsigned long long)(finished - finished_last));
        fflush(stdout);
    }
    finished_last = finished;
}

static loom_timer_t *stats_timer;

static void on_sigint(loom_signal_t *sig, int signo, void *data)
{
    (void)signo;
    (void)data;
    while (conns.next != &conns) {
        conn *c = conns.next;
        loom_socket_abort(c->sock);
        conn_free(c);
    }
    loom_tcp_server_close(server);
    loom_timer_close(stats_timer);
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
    fprintf(stderr,
            "usage: loom-delay-server [--port P] [--delay SECONDS] [--quiet] [--reuseport]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 9009;
    bool reuseport = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reuseport") == 0)
            reuseport = true;
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (strcmp(argv[i], "--delay") == 0 && i + 1 < argc)
            delay_ms = (uint64_t)(atof(argv[++i]) * 1000.0 + 0.5);
        else if (strcmp(argv[i], "--quiet") == 0)
            quiet = 1;
        else
            usage();
    }
    raise_nofile();
    loom_loop_t *loop;
    int r = loom_loop_new(&loop, NULL);
    if (r < 0) {
        fprintf(stderr, "loom-delay-server: %s\n", loom_strerror(r));
        return 1;
    }
    r = loom_tcp_server(loop, NULL, port,
                        &(loom_tcp_server_opts){.on_connect = on_connect,
                                                .on_read = on_read,
                                                .on_event = on_event,
                                                .backlog = 4096,
                                                .reuseport = reuseport},
                        &server);
    if (r < 0) {
        fprintf(stderr, "loom-delay-server: cannot listen: %s\n", loom_strerror(r));
        loom_loop_free(loop);
        return 1;
    }
    loom_interval(loop, 1000, print_stats, loop, &stats_timer);
    loom_signal_t *sig;
    loom_signal_handler(loop, SIGINT, on_sigint, NULL, &sig);
    fprintf(stderr, "loom-delay-server: port %d, delay %llu ms\n", loom_tcp_server_port(server),
            (unsigned long long)delay_ms);
    r = loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    return r < 0 ? 1 : 0;
}
