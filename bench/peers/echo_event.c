/* bench/peers/echo_event.c - an echo server on libevent, written the
 * idiomatic way (and the way cl-async used libevent): an evconnlistener and
 * one bufferevent per connection whose input is moved to its output.
 *
 * Usage: bench-echo-event --port P
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "bench.h"

static void on_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    evbuffer_add_buffer(bufferevent_get_output(bev), bufferevent_get_input(bev));
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_free(bev);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    (void)sa;
    (void)len;
    (void)arg;
    struct event_base *base = evconnlistener_get_base(l);
    struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!bev) {
        close(fd);
        return;
    }
    bench_nodelay(fd);
    bufferevent_setcb(bev, on_read, NULL, on_event, NULL);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    bench_raise_nofile();
    int fd = bench_listen(port, bench_flag(argc, argv, "--reuseport"), SOCK_NONBLOCK);
    if (fd < 0)
        return 1;
    struct event_base *base = event_base_new();
    struct evconnlistener *l =
        evconnlistener_new(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (!base || !l) {
        fprintf(stderr, "echo-event: cannot listen\n");
        return 1;
    }
    return event_base_dispatch(base);
}
