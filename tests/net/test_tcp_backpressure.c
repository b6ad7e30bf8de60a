/* test_tcp_backpressure: a peer that sends without ever reading.
 *
 * 1. The write timeout counts time without write progress, whatever the
 *    peer sends: a server that keeps reading (and has bytes queued that
 *    never leave) still times out, with a tcp timeout event. Before, every
 *    read restarted the one inactivity clock and it never fired.
 * 2. The read timeout keeps its meaning: it does not fire while the peer
 *    keeps sending, even with bytes queued (test_tcp_timeout covers it
 *    firing).
 * 3. loom-echo follows the documented pattern (write returns 1 at high
 *    water -> loom_socket_disable(LOOM_READABLE) -> on_drain -> enable): its
 *    RSS stays flat and it stops reading (the attacker's sends stall). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "test_tcp_util.h"

#define QUEUE_CAP (8u << 20) /* the naive server stops queueing here */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- The attacker: sends a pattern without ever reading --------------------------- */

typedef struct {
    int port;
    atomic_int stop;
    atomic_int ended;
    atomic_long sent;
    pthread_t th;
} flood_t;

static void *flood_main(void *arg)
{
    flood_t *f = arg;
    static char buf[65536];
    memset(buf, 'x', sizeof buf);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    int small = 4096;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    while (!atomic_load(&f->stop)) {
        ssize_t n = send(fd, buf, sizeof buf, MSG_NOSIGNAL);
        if (n > 0) {
            atomic_fetch_add(&f->sent, n);
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

/* --- 1 and 2: a naive server that keeps reading --------------------------------- */

static loom_loop_t *loop;
static loom_tcp_server_t *srv;
static tcp_events ev;
static int closed;
static size_t nread;

static void naive_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)data;
    nread += n;
    /* Echoes until 8 MiB wait (bounded for the test), then just reads. */
    if (loom_socket_queued(s) < QUEUE_CAP)
        loom_socket_write(s, b, n);
}

static void naive_event(const loom_event_t *e, void *data)
{
    (void)data;
    tcp_count_event(e, &ev);
    closed = 1;
}

static void phase_write_timeout(void)
{
    memset(&ev, 0, sizeof ev);
    closed = 0;
    nread = 0;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_read = naive_read,
                                                     .on_event = naive_event,
                                                     .write_timeout_ms = 500},
                             &srv));
    flood_t f;
    flood_start(&f, loom_tcp_server_port(srv));
    uint64_t t0 = now_ms();
    tcp_run_until(loop, &closed, 8000);
    uint64_t took = now_ms() - t0;
    flood_stop(&f);
    fprintf(stderr, "write timeout: closed %d after %llu ms, %zu bytes read\n", closed,
            (unsigned long long)took, nread);
    CHECK(closed);
    CHECK_EQ(ev.count[LOOM_EV_TCP_TIMEOUT], 1);
    CHECK(nread > 0);
    loom_tcp_server_close(srv);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

static void phase_read_timeout_kept(void)
{
    /* A read timeout of 300 ms and no write timeout: the peer sends all the
     * time, so it never fires, although bytes stay queued. */
    memset(&ev, 0, sizeof ev);
    closed = 0;
    nread = 0;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_read = naive_read,
                                                     .on_event = naive_event,
                                                     .read_timeout_ms = 300},
                             &srv));
    flood_t f;
    flood_start(&f, loom_tcp_server_port(srv));
    tcp_run_until(loop, &closed, 1500);
    CHECK(!closed);
    CHECK(nread > 0);
    CHECK_EQ(ev.count[LOOM_EV_TCP_TIMEOUT], 0);
    /* The peer goes away (with unread bytes: a reset). */
    flood_stop(&f);
    tcp_run_until(loop, &closed, 8000);
    CHECK(closed);
    CHECK_EQ(ev.count[LOOM_EV_TCP_TIMEOUT], 0);
    loom_tcp_server_close(srv);
    loom_run(loop, LOOM_RUN_NOWAIT);
}

/* --- 3: loom-echo --------------------------------------------------------------------- */

static long rss_of(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return -1;
    long size = 0, res = -1;
    if (fscanf(fp, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(fp);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static void phase_echo(void)
{
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/examples/loom-echo", LOOM_BINARY_DIR);
    if (access(exe, X_OK) != 0) {
        fprintf(stderr, "%s not built: skipped\n", exe);
        return;
    }
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execl(exe, exe, "--bind", "127.0.0.1", "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    char line[512];
    size_t n = 0;
    while (n < sizeof line - 1) {
        struct pollfd p = {.fd = pfd[0], .events = POLLIN};
        if (poll(&p, 1, 5000) <= 0 || read(pfd[0], line + n, 1) <= 0)
            break;
        if (line[n++] == '\n')
            break;
    }
    line[n] = '\0';
    close(pfd[0]);
    const char *p = strstr(line, "port ");
    CHECK(p != NULL);
    int port = atoi(p + 5);
    CHECK(port > 0);
    usleep(50 * 1000);
    long idle = rss_of(pid), max = idle;
    CHECK(idle > 0);
    flood_t f;
    flood_start(&f, port);
    long sent_mid = 0;
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 2500) {
        usleep(20 * 1000);
        long r = rss_of(pid);
        if (r > max)
            max = r;
        if (max - idle > (64L << 20))
            break;
        if (sent_mid == 0 && now_ms() - t0 >= 1500)
            sent_mid = atomic_load(&f.sent);
    }
    long sent_end = atomic_load(&f.sent);
    flood_stop(&f);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fprintf(stderr, "loom-echo: RSS idle %ld KiB, max %ld KiB; sent %ld at 1.5 s, %ld at 2.5 s\n",
            idle >> 10, max >> 10, sent_mid, sent_end);
    CHECK(max - idle <= (16L << 20));
    /* Reading paused: once the windows are full nothing more gets through
     * (the server's kernel buffers are a few MiB at most). */
    CHECK(sent_end < (64L << 20));
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    loop = test_loop_new();
    phase_write_timeout();
    phase_read_timeout_kept();
    test_loop_free_clean(loop);
    phase_echo();
    return 0;
}
