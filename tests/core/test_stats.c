/* loom_stats: every counter moves as the loop works - TCP in and out, timers,
 * signals, fd watchers, DNS, posts, pool jobs, iterations, bytes and lag. */
#include <pthread.h>
#include <signal.h>
#include <time.h>

#include "test.h"

static loom_stats_t mid;
static int got_reply, dns_done, work_done;

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    loom_socket_write(s, b, n);
    (void)d;
}

static void cli_connect(loom_socket_t *s, void *d)
{
    loom_socket_write(s, "ping", 4);
    (void)d;
}

static void cli_read(loom_socket_t *s, const char *b, size_t n, void *d)
{
    loom_loop_t *loop = loom_socket_loop(s);
    loom_stats(loop, &mid); /* both ends open now */
    got_reply = 1;
    loom_socket_close(s);
    loom_tcp_server_close(d);
    (void)b;
    (void)n;
}

static void on_dns(loom_dns_query_t *q, const loom_dns_result_t *r, void *d)
{
    dns_done = 1;
    (void)q;
    (void)r;
    (void)d;
}

static void busy_timer(loom_timer_t *t, void *d)
{
    /* Hold the loop for 30 ms: it must show up as lag. */
    struct timespec ts = {0, 30 * 1000000};
    nanosleep(&ts, NULL);
    (void)t;
    (void)d;
}

static void slow_work(void *d)
{
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    (void)d;
}

static void work_fin(int status, void *d)
{
    work_done = status == 0;
    (void)d;
}

static void on_post(void *d)
{
    (void)d;
}

static void on_sig(loom_signal_t *s, int signo, void *d)
{
    (void)s;
    (void)signo;
    (void)d;
}

static void on_io(loom_io_t *io, unsigned ev, void *d)
{
    (void)io;
    (void)ev;
    (void)d;
}

int main(void)
{
    test_timeout(20);
    loom_loop_t *loop = test_loop_new();
    loom_stats_t s;
    loom_stats(loop, &s);
    CHECK_EQ(s.timers + s.signals + s.fd_watchers + s.dns_pending + s.posts_pending, 0);
    CHECK_EQ(s.tcp_incoming + s.tcp_outgoing + s.bytes_read + s.bytes_written, 0);

    /* Live counts of timers, signals, watchers, queued posts and jobs. */
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, busy_timer, NULL));
    CHECK_OK(loom_timer_start(t, 1, 0));
    loom_signal_t *sig;
    CHECK_OK(loom_signal_handler(loop, SIGUSR2, on_sig, NULL, &sig));
    int fds[2];
    CHECK(pipe(fds) == 0);
    loom_io_t *io;
    CHECK_OK(loom_io_new(loop, &io, fds[1], on_io, NULL));
    CHECK_OK(loom_io_start(io, LOOM_WRITABLE));
    CHECK_OK(loom_post(loop, on_post, NULL));
    CHECK_OK(loom_work(loop, slow_work, work_fin, NULL, NULL));
    CHECK_OK(loom_dns_lookup(loop, "127.0.0.1", LOOM_DNS_INET, on_dns, NULL, NULL));
    loom_stats(loop, &s);
    CHECK_EQ(s.timers, 1);
    CHECK_EQ(s.signals, 1);
    CHECK_EQ(s.fd_watchers, 1);
    CHECK_EQ(s.posts_pending, 1);
    CHECK_EQ(s.work_pending, 1);
    CHECK_EQ(s.dns_pending, 1);
    loom_io_close(io);
    loom_signal_free(sig);

    /* TCP: one connection each way through the loop, 4 bytes each way. */
    loom_tcp_server_t *srv;
    CHECK_OK(
        loom_tcp_server(loop, "127.0.0.1", 0, &(loom_tcp_server_opts){.on_read = srv_read}, &srv));
    loom_socket_t *c;
    CHECK_OK(loom_tcp_connect(
        loop, "127.0.0.1", loom_tcp_server_port(srv),
        &(loom_tcp_opts){.on_connect = cli_connect, .on_read = cli_read, .data = srv}, &c));
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK(got_reply && dns_done && work_done);
    CHECK_EQ(mid.tcp_incoming, 1);
    CHECK_EQ(mid.tcp_outgoing, 1);

    loom_stats(loop, &s);
    CHECK_EQ(s.tcp_incoming, 0); /* closed again */
    CHECK_EQ(s.tcp_outgoing, 0);
    CHECK_EQ(s.tcp_incoming_total, 1);
    CHECK_EQ(s.tcp_outgoing_total, 1);
    CHECK_EQ(s.bytes_written, 8); /* "ping" out and echoed back */
    CHECK_EQ(s.bytes_read, 8);
    CHECK_EQ(s.timers + s.signals + s.fd_watchers + s.dns_pending + s.posts_pending, 0);
    CHECK_EQ(s.work_pending, 0);
    CHECK(s.iterations >= 2);
    CHECK(s.lag_max_ns >= 25 * 1000000ull); /* the busy timer */
    CHECK(s.lag_total_ns >= s.lag_max_ns);
    loom_timer_close(t);
    loom_run(loop, LOOM_RUN_DEFAULT);
    close(fds[0]);
    close(fds[1]);
    test_loop_free_clean(loop);
    return 0;
}
