/* test_http_server_backpressure: a client that pipelines requests as fast as
 * it can and never reads (with a small receive buffer) cannot make the
 * server buffer without bound. The server stops reading and parsing while
 * its unsent output is above high water, so its RSS stays within 16 MiB of
 * its idle RSS, and since the client never reads, the write timeout (which
 * counts time without write progress, whatever the client sends) ends the
 * connection with an http timeout event.
 *
 * The same attack then runs for a while against the real loom-hello and
 * loom-http-echo binaries (their RSS from /proc/<pid>/statm), which must hold
 * flat too; and from 64 connections at once against loom-hello, where each
 * may cost the server at most 48 KiB (io_uring: 128 KiB and its share of the
 * provided buffers).
 *
 * HTTP/2 (h2c): a client that opens 100 streams of a streamed download and
 * reads nothing (no WINDOW_UPDATE either). The producer writes 16 KiB pieces
 * until a write returns 1 and goes on from on_drain. What it was let write
 * is what the server holds, less the 64 KiB the client's window took: it
 * must stay within high water and one write per stream. It was high water
 * per stream (100 x 256 KiB: 26 MB per connection; loom-hello held 1.3 GB
 * for 50 such connections). */
#include <signal.h>
#include <sys/types.h>

#include "test_http_server_util.h"

#define RSS_LIMIT  (16L << 20) /* the bound */
#define RSS_ABORT  (64L << 20) /* stop the attack early when clearly unbounded */
#define ATTACK_MS  10000       /* the longest attack on the in-process server */
#define BINARY_MS  2500        /* the attack on each binary */
#define WTIMEOUT   2000        /* the in-process server's write timeout */
#define FLOOD_REQS 2048

/* --- The attacker: pipelines GETs without ever reading ------------------------ */

typedef struct {
    int port;
    atomic_int stop;
    atomic_int ended; /* the server closed the connection */
    atomic_long sent;
    pthread_t th;
} flood_t;

static void *flood_main(void *arg)
{
    flood_t *f = arg;
    static const char one[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    size_t unit = sizeof one - 1, len = unit * FLOOD_REQS;
    char *buf = malloc(len);
    CHECK(buf != NULL);
    for (size_t i = 0; i < FLOOD_REQS; i++)
        memcpy(buf + i * unit, one, unit);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int small = 4096;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    size_t off = 0;
    while (!atomic_load(&f->stop)) {
        ssize_t n = send(fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            atomic_fetch_add(&f->sent, n);
            off = (off + (size_t)n) % len;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            atomic_store(&f->ended, 1);
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        poll(&p, 1, 20);
        if (p.revents & (POLLERR | POLLHUP)) {
            atomic_store(&f->ended, 1);
            break;
        }
    }
    close(fd);
    free(buf);
    return NULL;
}

static void flood_start(flood_t *f, int port)
{
    memset(f, 0, sizeof *f);
    f->port = port;
    CHECK(pthread_create(&f->th, NULL, flood_main, f) == 0);
}

static void flood_stop(flood_t *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
}

/* --- In-process server ----------------------------------------------------------- */

static int ntimeout, nreq;
static atomic_int timed_out;
static long rss_idle, rss_max;
static int aborted;
static flood_t flood;

static void on_request(loom_http_req_t *req, void *data)
{
    (void)data;
    nreq++;
    loom_http_respond(req, 200, (const char *[]){"Content-Type", "text/plain", NULL}, "omglolwtf",
                      9);
}

static void on_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_HTTP_TIMEOUT) {
        ntimeout++;
        atomic_store(&timed_out, 1);
    }
}

static void on_sample(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    long r = hs_rss(0);
    if (r > rss_max)
        rss_max = r;
    if (r - rss_idle > RSS_ABORT && !aborted) {
        aborted = 1;
        atomic_store(&flood.stop, 1);
        atomic_store(&timed_out, 1); /* ends the run: the check below fails */
    }
}

static void test_in_process(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(
        loop, "127.0.0.1", 0, on_request,
        &(loom_http_server_opts){.on_event = on_event, .write_timeout_ms = WTIMEOUT}, &srv));
    int port = loom_http_server_port(srv);
    /* Warm up (the output buffer, the scratch buffer, slabs) before the
     * idle figure is taken. */
    {
        int fd = hs_connect(port);
        static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1));
        hs_run_for(loop, 100);
        close(fd);
        hs_run_for(loop, 50);
    }
    rss_idle = rss_max = hs_rss(0);
    loom_timer_t *sample;
    CHECK_OK(loom_timer_new(loop, &sample, on_sample, NULL));
    CHECK_OK(loom_timer_start(sample, 20, 20));
    flood_start(&flood, port);
    int got = hs_run_until(loop, &timed_out, ATTACK_MS);
    /* Give the client a moment to see the close, then stop it. */
    for (int i = 0; i < 100 && !atomic_load(&flood.ended) && !aborted; i++)
        hs_run_for(loop, 20);
    flood_stop(&flood);
    loom_timer_close(sample);
    fprintf(stderr,
            "in-process: %d requests answered, %ld bytes sent, RSS idle %ld KiB, max %ld "
            "KiB (+%ld KiB), timeout events %d, connection ended %d\n",
            nreq, atomic_load(&flood.sent), rss_idle >> 10, rss_max >> 10,
            (rss_max - rss_idle) >> 10, ntimeout, atomic_load(&flood.ended));
    CHECK(!aborted);
    CHECK(rss_max - rss_idle <= RSS_LIMIT);
    CHECK(got);
    CHECK_EQ(ntimeout, 1);
    CHECK(atomic_load(&flood.ended));
    CHECK(nreq > 0);
    atomic_int done = 0;
    loom_http_server_close(srv, 0, NULL);
    hs_run_until(loop, &done, 200);
    test_loop_free_clean(loop);
}

/* --- The binaries ------------------------------------------------------------------- */

static void test_binary(const char *name)
{
    int port;
    pid_t pid = hs_start_binary(name, NULL, 2, &port);
    if (pid == 0) {
        fprintf(stderr, "%s not built: skipped\n", name);
        return;
    }
    /* Warm up with one request read back. */
    int fd = hs_connect(port);
    static const char req[] = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    CHECK(write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1));
    char buf[1024];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pf, 1, 5000) == 1);
    CHECK(read(fd, buf, sizeof buf) > 0);
    close(fd);
    usleep(50 * 1000);
    long idle = hs_rss(pid), max = idle;
    CHECK(idle > 0);
    flood_t f;
    flood_start(&f, port);
    uint64_t end = hs_now_ms() + BINARY_MS;
    while (hs_now_ms() < end) {
        usleep(20 * 1000);
        long r = hs_rss(pid);
        if (r > max)
            max = r;
        if (max - idle > RSS_ABORT)
            break;
    }
    flood_stop(&f);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fprintf(stderr, "%s: %ld bytes sent, RSS idle %ld KiB, max %ld KiB (+%ld KiB)\n", name,
            atomic_load(&f.sent), idle >> 10, max >> 10, (max - idle) >> 10);
    CHECK(max - idle <= RSS_LIMIT);
}

/* --- Many such clients at once: what each costs ------------------------------------ *
 * 64 connections pipeline GETs for a second and never read. The server
 * parses a connection's pipelined requests only while its socket queues
 * nothing, one batch of answers (at most 16 KiB) at a time, and reads
 * between requests at most 4 KiB at once, so each holds one batch and at
 * most 4 KiB of input: about 15 KiB here (nginx 1.22: about 25 KiB). With
 * 32 KiB batches and 64 KiB reads it was about 60 KiB each; parsing up to
 * high water (256 KiB) made it 312 KiB. io_uring receives into its own
 * 64 KiB buffers (no small reads there): each connection may hold the rest
 * of one, as before. */

#define SLOW_CONNS          64
#define SLOW_PER_CONN       (48L << 10)
#define SLOW_PER_CONN_URING (128L << 10)

static void test_many_slow(const char *name)
{
    int port;
    pid_t pid = hs_start_binary(name, NULL, 2, &port);
    if (pid == 0) {
        fprintf(stderr, "%s not built: skipped\n", name);
        return;
    }
    static const char one[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    char buf[sizeof one * 256];
    for (size_t i = 0; i < 256; i++)
        memcpy(buf + i * (sizeof one - 1), one, sizeof one - 1);
    size_t len = 256 * (sizeof one - 1);
    usleep(50 * 1000);
    long idle = hs_rss(pid), max = idle;
    CHECK(idle > 0);
    int fds[SLOW_CONNS];
    size_t offs[SLOW_CONNS] = {0};
    for (int i = 0; i < SLOW_CONNS; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        CHECK(fds[i] >= 0);
        int small = 4096;
        CHECK(setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof a) == 0);
        CHECK(fcntl(fds[i], F_SETFL, O_NONBLOCK) == 0);
    }
    /* Each sends until the server stops taking its requests. */
    uint64_t end = hs_now_ms() + 1500;
    long sent = 0;
    while (hs_now_ms() < end) {
        for (int i = 0; i < SLOW_CONNS; i++) {
            ssize_t n = send(fds[i], buf + offs[i], len - offs[i], MSG_NOSIGNAL);
            if (n > 0) {
                sent += n;
                offs[i] = (offs[i] + (size_t)n) % len;
            }
        }
        usleep(5 * 1000);
        long r = hs_rss(pid);
        if (r > max)
            max = r;
    }
    for (int i = 0; i < 10; i++) {
        usleep(20 * 1000);
        long r = hs_rss(pid);
        if (r > max)
            max = r;
    }
    for (int i = 0; i < SLOW_CONNS; i++)
        close(fds[i]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fprintf(
        stderr,
        "%s: %d pipelining clients that never read, %ld bytes sent: RSS +%ld KiB, %ld KiB each\n",
        name, SLOW_CONNS, sent, (max - idle) >> 10, (max - idle) / SLOW_CONNS >> 10);
    CHECK(sent > (long)SLOW_CONNS * 64 * 1024); /* each filled the socket buffers and more */
    /* A test transport (LOOM_TEST_TRANSPORT) copies every write and holds
     * half of every read on purpose: there the bound only shows that the
     * cost stays bounded (it measured 93-514 KiB each). */
    long per = getenv("LOOM_TEST_TRANSPORT") ? 1L << 20 : SLOW_PER_CONN;
#if defined(__SANITIZE_ADDRESS__)
    /* ASan's allocator keeps freed blocks in quarantine and pads every
     * block: RSS says nothing of loom's figure there (800-900 KiB each
     * measured), which the Release build checks; here the attack runs for
     * its memory errors and leaks, bounded loosely. */
    per = 4L << 20;
#endif
    /* io_uring's provided buffers (32 x 64 KiB per loop) are touched by the
     * attack and counted in the RSS: their share is allowed on top of its
     * own bound (its reads are not small, see above). (Its
     * multishot recv, before 1064e25, went on receiving after a stop: 227
     * KiB each here.) */
    const char *be = getenv("LOOM_BACKEND");
    const char *rcv = getenv("LOOM_IO_URING_RECV");
    if (be && strcmp(be, "io_uring") == 0 && !(rcv && strcmp(rcv, "0") == 0) &&
        per < SLOW_PER_CONN_URING + (2L << 20) / SLOW_CONNS)
        per = SLOW_PER_CONN_URING + (2L << 20) / SLOW_CONNS;
    CHECK((max - idle) / SLOW_CONNS <= per);
}

/* --- HTTP/2: many streams, nothing read ---------------------------------------- */

#define H2_STREAMS 100
#define H2_PIECE   16384

static size_t h2_written;
static int h2_started;
static char h2_piece[H2_PIECE];

static void h2_pump(loom_http_req_t *req, void *data)
{
    (void)data;
    for (int i = 0; i < 4096; i++) { /* bounded: a regression fails, not hangs */
        int r = loom_http_response_write(req, h2_piece, sizeof h2_piece);
        if (r < 0) {
            loom_http_req_release(req);
            return;
        }
        h2_written += sizeof h2_piece;
        if (r == 1)
            return;
    }
}

static void h2_on_request(loom_http_req_t *req, void *data)
{
    h2_started++;
    CHECK_OK(loom_http_response_start(req, 200, NULL));
    h2_pump(req, data);
}

static void h2_on_close(loom_http_req_t *req, void *data)
{
    (void)data;
    loom_http_req_release(req);
}

static void test_h2_streams(void)
{
    loom_loop_t *loop = test_loop_new();
    loom_http_server_t *srv;
    CHECK_OK(loom_http_server(loop, "127.0.0.1", 0, h2_on_request,
                              &(loom_http_server_opts){.on_drain = h2_pump,
                                                       .on_close = h2_on_close,
                                                       .http2 = {.h2c = true}},
                              &srv));
    int port = loom_http_server_port(srv);
    /* The preface, an empty SETTINGS, its ACK for the server's (sent
     * blind: nothing is ever read), then 100 GETs (HPACK: :method GET,
     * :scheme http, :path /, :authority a). */
    static char out[64 + H2_STREAMS * 32];
    size_t n = 0;
    memcpy(out, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
    n = 24;
    static const unsigned char settings[] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0};
    memcpy(out + n, settings, sizeof settings);
    n += sizeof settings;
    for (uint32_t k = 0; k < H2_STREAMS; k++) {
        uint32_t id = 1 + 2 * k;
        unsigned char h[] = {0,
                             0,
                             6,
                             1,
                             5,
                             (unsigned char)(id >> 24),
                             (unsigned char)(id >> 16),
                             (unsigned char)(id >> 8),
                             (unsigned char)id,
                             0x82,
                             0x86,
                             0x84,
                             0x41,
                             1,
                             'a'};
        memcpy(out + n, h, sizeof h);
        n += sizeof h;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int small = 4096;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK_EQ(write(fd, out, n), (ssize_t)n);
    uint64_t end = hs_now_ms() + 5000;
    while (h2_started < H2_STREAMS && hs_now_ms() < end)
        hs_run_for(loop, 20);
    hs_run_for(loop, 300); /* whatever could be drained has been */
    size_t bound = (256u << 10) + H2_STREAMS * H2_PIECE + 65535 + (256u << 10);
    fprintf(stderr, "h2: %d streams, %zu bytes written by the producer (bound %zu)\n", h2_started,
            h2_written, bound);
    CHECK_EQ(h2_started, H2_STREAMS);
    CHECK(h2_written <= bound);
    close(fd);
    hs_run_for(loop, 100);
    hs_close_server(loop, srv);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    test_in_process();
    test_h2_streams();
    test_binary("loom-hello");
    test_binary("loom-http-echo");
    test_many_slow("loom-hello");
    return 0;
}
