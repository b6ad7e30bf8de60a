/* bench/peers/http_evhttp.c - the HTTP server of libevent (evhttp), one
 * generic callback answering every request with 200 "omglolwtf" text/plain.
 * The listening socket is made here so that it carries TCP_NODELAY, which
 * Linux copies to every accepted connection.
 *
 * Usage: bench-http-evhttp --port P [--reuseport]
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "bench.h"

static struct evbuffer *body;

static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    /* evhttp_send_reply() moves the bytes out of `body`, leaving it empty. */
    evbuffer_add(body, BENCH_HTTP_BODY, sizeof BENCH_HTTP_BODY - 1);
    evhttp_send_reply(req, 200, "OK", body);
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    bench_raise_nofile();
    int fd = bench_listen(port, bench_flag(argc, argv, "--reuseport"), SOCK_NONBLOCK);
    if (fd < 0)
        return 1;
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    body = evbuffer_new();
    if (!http || !body || evhttp_accept_socket(http, fd) != 0) {
        fprintf(stderr, "http-evhttp: cannot listen\n");
        return 1;
    }
    evhttp_set_default_content_type(http, "text/plain");
    evhttp_set_gencb(http, on_request, NULL);
    return event_base_dispatch(base);
}
