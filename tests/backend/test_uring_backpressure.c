/* test_uring_backpressure: a reader that stops must stop taking bytes from
 * the kernel, so that a peer that keeps sending meets a closed TCP window.
 * On io_uring (sockets read by recv requests, LOOM_BACKEND_CAP_RECV) the
 * bytes a request receives after its reader stopped are kept by the
 * backend (its stash); with a multishot recv that could not be cancelled
 * while the peer kept sending, that stash grew without bound.
 *
 * A client thread floods a loom TCP server for ~2 s; the server's reader
 * stops (loom_socket_disable) either in its first read callback or from a
 * timer while bytes are streaming in. Then, exactly:
 *   taken = sent - delivered - client's SIOCOUTQ - server's SIOCINQ
 * is what the server process took from the kernel without delivering it;
 * it must stay under 512 KiB (the target is one provided buffer, 64 KiB).
 * The reader then resumes and must get the whole stream, in order.
 * Registered for every backend. LOOM_TEST_SERIAL */
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../net/test_tcp_util.h"

#define FLOOD_MS  2000
#define CHUNK     (64 * 1024)
#define MAX_TAKEN (512 * 1024)

static loom_loop_t *g_loop;

typedef struct conn {
    loom_socket_t *sock;
    size_t got;
    int bad, eofs, errors;
    int stopped;
    int pause_in_cb; /* stop in the first read callback; else from a timer */
    int timer_armed;
} conn;
static conn cn;

/* --- The flooding client (a plain socket on a thread) ---------------------- */

typedef struct flood {
    int fd;
    uint16_t port;
    size_t sent;
    atomic_int done;
} flood;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *flood_main(void *arg)
{
    flood *f = arg;
    static unsigned char buf[CHUNK];
    uint64_t end = now_ms() + FLOOD_MS;
    while (now_ms() < end) {
        for (size_t k = 0; k < CHUNK; k++)
            buf[k] = tcp_pattern(f->sent + k);
        ssize_t w = send(f->fd, buf, CHUNK, MSG_NOSIGNAL);
        if (w > 0) {
            f->sent += (size_t)w;
            continue;
        }
        CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
        struct pollfd p = {.fd = f->fd, .events = POLLOUT};
        (void)poll(&p, 1, 20);
    }
    atomic_store(&f->done, 1);
    return NULL;
}

/* --- The server ------------------------------------------------------------ */

static void stop_reading(conn *c)
{
    c->stopped = 1;
    CHECK_OK(loom_socket_disable(c->sock, LOOM_READABLE));
}

static void stop_cb(loom_timer_t *t, void *data)
{
    (void)data;
    stop_reading(&cn);
    loom_timer_close(t);
}

static void srv_connect(loom_socket_t *s, void *data)
{
    (void)data;
    CHECK(cn.sock == NULL);
    cn.sock = s;
}

static void srv_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    (void)data;
    CHECK(!cn.stopped);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != tcp_pattern(cn.got + i))
            cn.bad++;
    cn.got += n;
    if (cn.pause_in_cb) {
        stop_reading(&cn);
    } else if (!cn.timer_armed) {
        /* Stopped from outside a read callback, bytes still streaming in
         * (a request of the backend is in the kernel then). */
        cn.timer_armed = 1;
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(g_loop, &t, stop_cb, NULL));
        CHECK_OK(loom_timer_start(t, 200, 0));
    }
}

static void srv_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        cn.eofs++;
    else
        cn.errors++;
}

static void tick_cb(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}

static void run_case(int pause_in_cb)
{
    memset(&cn, 0, sizeof cn);
    cn.pause_in_cb = pause_in_cb;
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(g_loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_connect = srv_connect,
                                                     .on_read = srv_read,
                                                     .on_event = srv_event},
                             &srv));
    /* The loop wakes up every 10 ms whatever the socket does. */
    loom_timer_t *tick;
    CHECK_OK(loom_timer_new(g_loop, &tick, tick_cb, NULL));
    CHECK_OK(loom_timer_start(tick, 10, 10));

    flood f = {.port = loom_tcp_server_port(srv)};
    f.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(f.fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(f.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(f.fd, (struct sockaddr *)&sa, sizeof sa) == 0);
    CHECK(fcntl(f.fd, F_SETFL, O_NONBLOCK) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, flood_main, &f) == 0);
    uint64_t end = loom_now(g_loop) + 20000;
    while (!atomic_load(&f.done) && loom_now(g_loop) < end)
        CHECK(loom_run(g_loop, LOOM_RUN_ONCE) >= 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK(cn.sock != NULL);
    CHECK(cn.stopped);
    /* Let what is on the wire land, then count where every byte is. */
    end = loom_now(g_loop) + 100;
    while (loom_now(g_loop) < end)
        CHECK(loom_run(g_loop, LOOM_RUN_ONCE) >= 0);
    int outq = 0, inq = 0;
    CHECK(ioctl(f.fd, SIOCOUTQ, &outq) == 0);
    CHECK(ioctl(loom_socket_fd(cn.sock), SIOCINQ, &inq) == 0);
    long long taken = (long long)f.sent - (long long)cn.got - outq - inq;
    fprintf(stderr,
            "%s: sent %zu, delivered %zu, client outq %d, server inq %d: taken and kept %lld\n",
            pause_in_cb ? "stopped in the callback" : "stopped by a timer", f.sent, cn.got, outq,
            inq, taken);
    CHECK(f.sent > cn.got);
    CHECK(taken < MAX_TAKEN);

    /* The rest of the stream, whole and in order, once the reader resumes. */
    CHECK(shutdown(f.fd, SHUT_WR) == 0);
    cn.stopped = 0;
    cn.pause_in_cb = 0;
    cn.timer_armed = 1;
    CHECK_OK(loom_socket_enable(cn.sock, LOOM_READABLE));
    end = loom_now(g_loop) + 20000;
    while (cn.eofs + cn.errors == 0 && loom_now(g_loop) < end)
        CHECK(loom_run(g_loop, LOOM_RUN_ONCE) >= 0);
    CHECK_EQ(cn.errors, 0);
    CHECK_EQ(cn.eofs, 1);
    CHECK_EQ(cn.bad, 0);
    CHECK_EQ(cn.got, f.sent);
    close(f.fd);
    loom_timer_close(tick);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(g_loop, LOOM_RUN_DEFAULT), 0);
}

int main(void)
{
    test_timeout(90);
    g_loop = test_loop_new();
    run_case(1);
    run_case(0);
    test_loop_free_clean(g_loop);
    return 0;
}
