/* test_io_uring_recv: sockets read by io_uring's recv requests (single-shot
 * IORING_OP_RECV with provided buffers, LOOM_BACKEND_CAP_RECV), whose bytes
 * are taken from the kernel before the reader asks for them. Checks that
 * nothing is lost, reordered, repeated or delivered to the wrong socket:
 *  - LOOM_IO_URING_RECV=0 gives a loop without the capability;
 *  - 8 MiB read with a pause every 128 KiB: no on_read while paused, and
 *    the stream arrives whole and in order;
 *  - the end of the stream while paused: the rest of the bytes, then one
 *    eof event;
 *  - 64 senders of 512 KiB at once, more than the provided buffers hold
 *    (the requests end with ENOBUFS and are armed again);
 *  - 300 connections in a row, each aborted by the server while its bytes
 *    are still arriving, so the next one usually gets the same fd: every
 *    socket sees only its own bytes;
 *  - embedded through the ring fd: a reader resumed from outside loom_run()
 *    with bytes and the end kept wakes the outer poller, and gets them;
 *  - a loop created on one thread and run on another (the ring is made
 *    again there) with a reader armed.
 * Skips where the kernel has no buffer rings (5.19): no LOOM_BACKEND_CAP_RECV.
 * LOOM_TEST_NO_BACKEND LOOM_TEST_SERIAL */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "../net/test_tcp_util.h"
#include "core/internal.h"

#define BIG       (8u << 20)
#define PAUSE_AT  (128u * 1024)
#define NSEND     64
#define SEND_EACH (512u * 1024)
#define NREUSE    300

static unsigned char big[BIG];
static loom_loop_t *g_loop;

/* --- A reader that checks the pattern and pauses ------------------------- */

typedef struct reader {
    size_t got;
    uint64_t pauses;
    int paused;
    int eofs;
    int errors;
    int bad; /* bytes out of pattern */
    size_t pause_every;
    unsigned pause_ms; /* 0: stay paused, in `held` */
    loom_socket_t *held;
} reader;

static void resume_cb(loom_timer_t *t, void *data)
{
    loom_socket_t *s = data;
    reader *r = loom_socket_data(s);
    r->paused = 0;
    CHECK_OK(loom_socket_enable(s, LOOM_READABLE));
    loom_timer_close(t);
}

static void rd_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    reader *r = data;
    CHECK(!r->paused);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != tcp_pattern(r->got + i))
            r->bad++;
    size_t before = r->got;
    r->got += n;
    if (r->pause_every && before / r->pause_every != r->got / r->pause_every) {
        r->paused = 1;
        r->pauses++;
        CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
        if (r->pause_ms == 0) {
            r->held = s; /* resumed by the test itself */
            return;
        }
        loom_timer_t *t;
        CHECK_OK(loom_timer_new(g_loop, &t, resume_cb, s));
        CHECK_OK(loom_timer_start(t, r->pause_ms, 0));
    }
}

static void rd_event(const loom_event_t *ev, void *data)
{
    reader *r = data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        r->eofs++;
    else
        r->errors++;
}

static reader *cur_reader;

static void srv_connect(loom_socket_t *s, void *data)
{
    (void)data;
    CHECK_OK(loom_socket_set_data(s, cur_reader));
}

/* A sender: writes `len` pattern bytes, then closes (gracefully). */
static void snd_connect(loom_socket_t *s, void *data)
{
    size_t len = (size_t)(uintptr_t)data;
    CHECK_OK(loom_socket_write_ref(s, big, len, NULL, NULL));
    CHECK_OK(loom_socket_close(s));
}

static void snd_event(const loom_event_t *ev, void *data)
{
    (void)data;
    CHECK(ev->kind == LOOM_EV_TCP_EOF);
}

static loom_tcp_server_t *server(loom_loop_t *loop, loom_socket_cb on_connect,
                                 loom_socket_read_cb on_read, loom_event_cb on_event)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){
            .on_connect = on_connect, .on_read = on_read, .on_event = on_event, .backlog = 512},
        &srv));
    return srv;
}

static void send_to(loom_loop_t *loop, loom_tcp_server_t *srv, size_t len)
{
    loom_socket_t *c;
    CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                              &(loom_tcp_opts){.on_connect = snd_connect,
                                               .on_event = snd_event,
                                               .data = (void *)(uintptr_t)len},
                              &c));
}

/* One stream of `len` bytes through a pausing reader. */
static void one_stream(loom_loop_t *loop, size_t len, size_t pause_every, unsigned pause_ms,
                       reader *r)
{
    memset(r, 0, sizeof *r);
    r->pause_every = pause_every;
    r->pause_ms = pause_ms;
    cur_reader = r;
    loom_tcp_server_t *srv = server(loop, srv_connect, rd_read, rd_event);
    send_to(loop, srv, len);
    uint64_t end = loom_now(loop) + 20000;
    while (r->eofs + r->errors == 0 && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(r->errors, 0);
    CHECK_EQ(r->eofs, 1);
    CHECK_EQ(r->bad, 0);
    CHECK_EQ(r->got, len);
}

/* --- Many senders at once ---------------------------------------------------- */

typedef struct multi {
    size_t got[NSEND];
    int bad, eofs, errors, next;
} multi;
static multi mt;

static void mt_connect(loom_socket_t *s, void *data)
{
    (void)data;
    CHECK(mt.next < NSEND);
    CHECK_OK(loom_socket_set_data(s, (void *)(uintptr_t)mt.next++));
}

static void mt_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    size_t k = (size_t)(uintptr_t)data;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != tcp_pattern(mt.got[k] + i))
            mt.bad++;
    mt.got[k] += n;
}

static void mt_event(const loom_event_t *ev, void *data)
{
    (void)data;
    if (ev->kind == LOOM_EV_TCP_EOF)
        mt.eofs++;
    else
        mt.errors++;
}

/* --- fd reuse ------------------------------------------------------------------ */

typedef struct reuse {
    int tag;  /* the byte this connection's sender sends, 0: not seen yet */
    int done; /* aborted */
} reuse;
static reuse ru[NREUSE];
static int ru_accepted, ru_bad, ru_aborted;
static unsigned char tags[NREUSE][64 * 1024];

static void ru_connect(loom_socket_t *s, void *data)
{
    (void)data;
    CHECK(ru_accepted < NREUSE);
    CHECK_OK(loom_socket_set_data(s, &ru[ru_accepted++]));
}

static void ru_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    reuse *r = data;
    CHECK(!r->done);
    if (r->tag == 0)
        r->tag = (unsigned char)b[0];
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != r->tag)
            ru_bad++;
    /* Gone with bytes still arriving. */
    r->done = 1;
    ru_aborted++;
    loom_socket_abort(s);
}

static void ru_event(const loom_event_t *ev, void *data)
{
    (void)ev;
    (void)data;
}

static void ru_snd_connect(loom_socket_t *s, void *data)
{
    int i = (int)(uintptr_t)data;
    (void)loom_socket_write_ref(s, tags[i], sizeof tags[i], NULL, NULL);
}

static int ru_cli_gone[NREUSE];

static void ru_snd_event(const loom_event_t *ev, void *data)
{
    /* Reset by the server's abort, as expected; loom closes it. */
    (void)ev;
    ru_cli_gone[(uintptr_t)data] = 1;
}

static void ru_snd_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)s;
    (void)b;
    (void)n;
    (void)data;
}

/* --- Another thread ----------------------------------------------------------- */

static void *run_thread(void *arg)
{
    loom_loop_t *loop = arg;
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    return NULL;
}

int main(void)
{
    test_timeout(60);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < BIG; i++)
        big[i] = tcp_pattern(i);

    /* Turned off by the environment. */
    loom_loop_t *loop = NULL;
    CHECK(setenv("LOOM_IO_URING_RECV", "0", 1) == 0);
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    CHECK(!(loop->backend->caps & LOOM_BACKEND_CAP_RECV));
    loom_loop_free(loop);
    CHECK(unsetenv("LOOM_IO_URING_RECV") == 0);

    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    g_loop = loop;
    if (!(loop->backend->caps & LOOM_BACKEND_CAP_RECV)) {
        fprintf(stderr, "skip: %s has no recv with provided buffers\n", loom_loop_backend(loop));
        loom_loop_free(loop);
        return 77;
    }

    /* 8 MiB with a 2 ms pause every 128 KiB. */
    reader r;
    one_stream(loop, BIG, PAUSE_AT, 2, &r);
    CHECK(r.pauses >= BIG / PAUSE_AT - 1);

    /* The end arrives while paused (50 ms after the first bytes). */
    one_stream(loop, 100 * 1024, 1, 50, &r);
    CHECK(r.pauses >= 1);

    /* More senders at once than the provided buffers hold. */
    memset(&mt, 0, sizeof mt);
    loom_tcp_server_t *srv = server(loop, mt_connect, mt_read, mt_event);
    for (int i = 0; i < NSEND; i++)
        send_to(loop, srv, SEND_EACH);
    uint64_t end = loom_now(loop) + 20000;
    while (mt.eofs + mt.errors < NSEND && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(mt.errors, 0);
    CHECK_EQ(mt.eofs, NSEND);
    CHECK_EQ(mt.bad, 0);
    for (int i = 0; i < NSEND; i++)
        CHECK_EQ(mt.got[i], SEND_EACH);

    /* Aborted while bytes arrive; the fd is taken again at once. */
    for (int i = 0; i < NREUSE; i++)
        memset(tags[i], 1 + i % 255, sizeof tags[i]);
    srv = server(loop, ru_connect, ru_read, ru_event);
    for (int i = 0; i < NREUSE; i++) {
        loom_socket_t *c;
        CHECK_OK(loom_tcp_connect(loop, "127.0.0.1", loom_tcp_server_port(srv),
                                  &(loom_tcp_opts){.on_connect = ru_snd_connect,
                                                   .on_read = ru_snd_read,
                                                   .on_event = ru_snd_event,
                                                   .data = (void *)(uintptr_t)i},
                                  &c));
        end = loom_now(loop) + 5000;
        while (ru_aborted <= i && loom_now(loop) < end)
            CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        CHECK_EQ(ru_aborted, i + 1);
        if (!ru_cli_gone[i])
            CHECK_OK(loom_socket_abort(c));
    }
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    CHECK_EQ(ru_bad, 0);
    CHECK_EQ(ru_accepted, NREUSE);
    test_loop_free_clean(loop);

    /* Embedded in an outer poller: bytes and the end are all taken in one
     * burst while the reader pauses at its first bytes; resumed from
     * outside loom_run(), the ring fd must wake the poller to deliver them. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    g_loop = loop;
    memset(&r, 0, sizeof r);
    r.pause_every = 1;
    r.pause_ms = 0;
    cur_reader = &r;
    srv = server(loop, srv_connect, rd_read, rd_event);
    {
        /* Connected, written and shut before loom reads anything. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in in = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&in, sizeof in) == 0);
        CHECK(write(fd, big, 100 * 1024) == 100 * 1024);
        close(fd);
    }
    int bfd = loom_backend_fd(loop);
    CHECK(bfd >= 0);
    end = loom_now(loop) + 5000;
    while (r.held == NULL && loom_now(loop) < end) {
        struct pollfd p = {.fd = bfd, .events = POLLIN};
        (void)poll(&p, 1, 100);
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    CHECK(r.held != NULL);
    CHECK(r.got < 100 * 1024);
    /* Whatever is still in flight lands in the stash. */
    for (int i = 0; i < 5; i++) {
        struct pollfd p = {.fd = bfd, .events = POLLIN};
        (void)poll(&p, 1, 10);
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    r.paused = 0;
    r.pause_every = 0;
    CHECK_OK(loom_socket_enable(r.held, LOOM_READABLE));
    {
        struct pollfd p = {.fd = bfd, .events = POLLIN};
        CHECK_EQ(poll(&p, 1, 2000), 1);
    }
    end = loom_now(loop) + 5000;
    while (r.eofs == 0 && loom_now(loop) < end) {
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        struct pollfd p = {.fd = bfd, .events = POLLIN};
        (void)poll(&p, 1, 10);
    }
    CHECK_EQ(r.got, 100 * 1024);
    CHECK_EQ(r.eofs, 1);
    CHECK_EQ(r.bad, 0);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);

    /* Created here, run on another thread, a reader already armed. */
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    g_loop = loop;
    memset(&r, 0, sizeof r);
    r.pause_every = PAUSE_AT;
    r.pause_ms = 1;
    cur_reader = &r;
    srv = server(loop, srv_connect, rd_read, rd_event);
    send_to(loop, srv, BIG);
    end = loom_now(loop) + 5000;
    while (r.got == 0 && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(r.got > 0);
    loom_tcp_server_close(srv);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, run_thread, loop) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_EQ(r.errors, 0);
    CHECK_EQ(r.eofs, 1);
    CHECK_EQ(r.bad, 0);
    CHECK_EQ(r.got, BIG);
    test_loop_free_clean(loop);
    return 0;
}
