/* test_io_uring_recv_edge: corner cases of io_uring's recv requests
 * (single-shot IORING_OP_RECV with provided buffers, LOOM_BACKEND_CAP_RECV),
 * through the backend's recv ops on socket pairs where the state of the
 * ring must be known exactly, else through loom's TCP sockets:
 *  - completions already in the ring when the loop moves to another thread
 *    (the ring is made again there) are delivered, not dropped;
 *  - a child forked inside a reader's callback (loom_loop_fork() there makes
 *    its ring again) gets a sane buffer ring: the rest of the batch does
 *    not give buffers back a second time (the same buffer twice in the
 *    ring: two reads into it, the first one's bytes overwritten);
 *  - embedded through the ring fd: a reader resumed from outside loom_run()
 *    with nothing kept has its request in the kernel before the outer
 *    poller sleeps, so bytes arriving later wake it;
 *  - a reader paused and then closed in one callback lets go of its file
 *    at once: the peer sees the close without loom running again (the
 *    cancelled request held it);
 *  - a reader that pauses at every read, resumed each time, against a fast
 *    sender: the bytes loom holds for it stay bounded (a request armed
 *    again before the kept bytes were delivered took everything the socket
 *    had into the stash at every resume);
 *  - a loop freed with a paused reader holding kept bytes leaks nothing;
 *  - four readers stopped and started at random from their own and each
 *    other's callbacks and from timers while bytes and then the end
 *    arrive: every stream whole, in order, with one end.
 * Skips where the kernel has no buffer rings (5.19): no LOOM_BACKEND_CAP_RECV.
 * LOOM_TEST_NO_BACKEND LOOM_TEST_SERIAL */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../net/test_tcp_util.h"
#include "core/internal.h"

/* A reader of one socket pair: bytes collected in order, the end counted. */
typedef struct pair {
    loom_backend_io_t io; /* first: the callback gets it */
    int peer;
    char got[128 * 1024];
    size_t n;
    int ends, errs;
} pair;

static void pair_cb(loom_backend_io_t *io, char *buf, size_t len, int err)
{
    pair *p = (pair *)io;
    if (len > 0) {
        CHECK(p->n + len <= sizeof p->got);
        memcpy(p->got + p->n, buf, len);
        p->n += len;
    } else if (err == 0) {
        p->ends++;
    } else {
        p->errs++;
    }
}

static void pair_open(pair *p)
{
    memset(p, 0, sizeof *p);
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
    p->io.fd = sv[0];
    p->peer = sv[1];
}

static void pair_close(loom_loop_t *loop, pair *p)
{
    loop->backend->recv_drop(loop, &p->io);
    close(p->io.fd);
    close(p->peer);
}

static void on_timer(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
}

/* Runs the loop for `ms` at most, or until p has `want` bytes. */
static void run_for(loom_loop_t *loop, pair *p, size_t want, unsigned ms)
{
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, on_timer, NULL));
    CHECK_OK(loom_timer_start(t, 10, 10));
    uint64_t end = loom_now(loop) + ms;
    while (p->n < want && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    loom_timer_close(t);
    CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
}

static loom_loop_t *new_loop(void)
{
    loom_loop_t *loop;
    CHECK_OK(loom_loop_new(&loop, &(loom_loop_opts){.backend = "io_uring"}));
    return loop;
}

/* --- Completions in the ring when the loop changes threads ----------------- */

static pair th_a, th_b, th_c;

static void *thread_run(void *arg)
{
    run_for(arg, &th_a, 4, 1000);
    return NULL;
}

static void test_thread_pending(void)
{
    loom_loop_t *loop = new_loop();
    pair_open(&th_a);
    pair_open(&th_b);
    pair_open(&th_c);
    CHECK_OK(loop->backend->recv_start(loop, &th_a.io, pair_cb));
    CHECK_OK(loop->backend->recv_start(loop, &th_b.io, pair_cb));
    CHECK_OK(loop->backend->recv_start(loop, &th_c.io, pair_cb));
    run_for(loop, &th_a, 1, 20); /* both requests armed */
    /* Bytes for a arrive, then b is dropped (as a callback closing a
     * socket would): the drop's enter lets a's request read them into a
     * completion that nobody reaps on this thread. */
    CHECK(write(th_a.peer, "abcd", 4) == 4);
    pair_close(loop, &th_b);
    /* ... and c paused: its cancellation waits in the submission queue, so
     * the next poll enters the kernel (from the other thread). */
    loop->backend->recv_stop(loop, &th_c.io);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, thread_run, loop) == 0);
    CHECK(pthread_join(th, NULL) == 0);
    CHECK_EQ(th_a.n, (size_t)4);
    CHECK(memcmp(th_a.got, "abcd", 4) == 0);
    pair_close(loop, &th_a);
    pair_close(loop, &th_c);
    test_loop_free_clean(loop);
}

/* --- fork() inside a callback ------------------------------------------- */

static loom_loop_t *fk_loop;
static pid_t fk_pid = -1;
static int fk_child;

static void fork_cb(loom_backend_io_t *io, char *buf, size_t len, int err)
{
    pair_cb(io, buf, len, err);
    if (fk_pid >= 0 || fk_child || len != 1 || buf[0] == 'w')
        return;
    fk_pid = fork();
    CHECK(fk_pid >= 0);
    if (fk_pid == 0) {
        fk_child = 1;
        CHECK_OK(loom_loop_fork(fk_loop)); /* then back into the batch */
    }
}

static pair fk_a, fk_b;

static void test_fork_in_callback(void)
{
    loom_loop_t *loop = fk_loop = new_loop();
    pair_open(&fk_a);
    pair_open(&fk_b);
    CHECK_OK(loop->backend->recv_start(loop, &fk_a.io, fork_cb));
    CHECK_OK(loop->backend->recv_start(loop, &fk_b.io, fork_cb));
    /* Both requests armed, and a few buffers taken and given back, so that
     * the batch below uses buffers other than the new ring's first. */
    for (size_t i = 1; i <= 3; i++) {
        CHECK(write(fk_a.peer, "w", 1) == 1);
        run_for(loop, &fk_a, i, 1000);
    }
    fk_a.n = 0;
    /* One batch: a's bytes and b's; the child forks at the first. */
    CHECK(write(fk_a.peer, "a", 1) == 1);
    CHECK(write(fk_b.peer, "b", 1) == 1);
    run_for(loop, &fk_b, 1, 1000);
    CHECK(fk_pid >= 0 || fk_child);
    if (!fk_child) {
        int st;
        CHECK(waitpid(fk_pid, &st, 0) == fk_pid);
        CHECK(WIFEXITED(st));
        CHECK_EQ(WEXITSTATUS(st), 0);
        pair_close(loop, &fk_a);
        pair_close(loop, &fk_b);
        test_loop_free_clean(loop);
        return;
    }
    /* The child: a new pair read through the new ring, several buffers'
     * worth in one go. */
    static char out[64 * 1024];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = (char)tcp_pattern(i);
    pair_close(loop, &fk_a);
    pair_close(loop, &fk_b);
    static pair c;
    pair_open(&c);
    int big = 256 * 1024;
    CHECK(setsockopt(c.peer, SOL_SOCKET, SO_SNDBUF, &big, sizeof big) == 0);
    CHECK(write(c.peer, out, sizeof out) == (ssize_t)sizeof out);
    CHECK_OK(loop->backend->recv_start(loop, &c.io, pair_cb));
    run_for(loop, &c, sizeof out, 2000);
    CHECK_EQ(c.n, sizeof out);
    CHECK(memcmp(c.got, out, sizeof out) == 0);
    pair_close(loop, &c);
    test_loop_free_clean(loop);
    _exit(0);
}

/* --- Embedded: resumed from outside loom_run() --------------------------- */

typedef struct emb {
    loom_socket_t *held;
    size_t got;
    int pause;
    int close; /* pause, then close */
} emb;
static emb em;

static void em_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)data;
    CHECK(em.held == NULL || !em.pause);
    for (size_t i = 0; i < n; i++)
        CHECK_EQ((unsigned char)b[i], tcp_pattern(em.got + i));
    em.got += n;
    if (em.pause) {
        em.held = s;
        CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
    }
    if (em.close)
        CHECK_OK(loom_socket_close(s));
}

static void em_event(const loom_event_t *ev, void *data)
{
    (void)ev;
    (void)data;
}

static int outer_wait(int bfd, int ms)
{
    struct pollfd p = {.fd = bfd, .events = POLLIN};
    return poll(&p, 1, ms);
}

/* A server whose connections read through em_read/em_event. */
static loom_tcp_server_t *em_server(loom_loop_t *loop)
{
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(loop, "127.0.0.1", 0,
                             &(loom_tcp_server_opts){.on_read = em_read, .on_event = em_event},
                             &srv));
    return srv;
}

/* A plain blocking client socket connected to srv (the backlog holds it
 * until loom accepts). */
static int em_connect(loom_tcp_server_t *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&in, sizeof in) == 0);
    return fd;
}

static void test_embedded_resume(void)
{
    loom_loop_t *loop = new_loop();
    memset(&em, 0, sizeof em);
    em.pause = 1;
    loom_tcp_server_t *srv = em_server(loop);
    int fd = em_connect(srv);
    unsigned char out[200];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = tcp_pattern(i);
    CHECK(write(fd, out, 100) == 100);
    int bfd = loom_backend_fd(loop);
    CHECK(bfd >= 0);
    uint64_t end = loom_now(loop) + 5000;
    while (em.held == NULL && loom_now(loop) < end) {
        (void)outer_wait(bfd, 100);
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    CHECK(em.held != NULL);
    CHECK_EQ(em.got, (size_t)100);
    /* The pause reaches the kernel; nothing is kept. */
    for (int i = 0; i < 3; i++) {
        (void)outer_wait(bfd, 10);
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    CHECK_EQ(outer_wait(bfd, 0), 0);
    /* Resumed by the application from outside loom_run(); then bytes come:
     * the outer poller must wake for them. */
    em.pause = 0;
    CHECK_OK(loom_socket_enable(em.held, LOOM_READABLE));
    CHECK(write(fd, out + 100, 100) == 100);
    CHECK_EQ(outer_wait(bfd, 2000), 1);
    end = loom_now(loop) + 2000;
    while (em.got < 200 && loom_now(loop) < end) {
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
        (void)outer_wait(bfd, 10);
    }
    CHECK_EQ(em.got, (size_t)200);
    close(fd);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* --- Paused, then closed -------------------------------------------------- */

static void test_pause_close(void)
{
    loom_loop_t *loop = new_loop();
    memset(&em, 0, sizeof em);
    em.pause = 1;
    em.close = 1;
    loom_tcp_server_t *srv = em_server(loop);
    int fd = em_connect(srv);
    unsigned char out[100];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = tcp_pattern(i);
    CHECK(write(fd, out, sizeof out) == (ssize_t)sizeof out);
    int bfd = loom_backend_fd(loop);
    uint64_t end = loom_now(loop) + 5000;
    while (em.held == NULL && loom_now(loop) < end) {
        (void)outer_wait(bfd, 100);
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    CHECK(em.held != NULL);
    /* loom is not run again: the close must have reached the peer. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CHECK_EQ(poll(&p, 1, 1000), 1);
    char b[16];
    CHECK_EQ(read(fd, b, sizeof b), 0);
    close(fd);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* --- Freed with a paused reader holding kept bytes --------------------------- */

static void test_free_with_stash(void)
{
    loom_loop_t *loop = new_loop();
    memset(&em, 0, sizeof em);
    em.pause = 1;
    loom_tcp_server_t *srv = em_server(loop);
    int fd = em_connect(srv);
    static unsigned char out[256 * 1024];
    for (size_t i = 0; i < sizeof out; i++)
        out[i] = tcp_pattern(i);
    CHECK(write(fd, out, sizeof out) > 0);
    uint64_t end = loom_now(loop) + 5000;
    while (em.held == NULL && loom_now(loop) < end)
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    CHECK(em.held != NULL);
    for (int i = 0; i < 3; i++)
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    loom_loop_free(loop); /* the socket, its kept bytes and all */
    close(fd);
}

/* --- Backpressure: pausing at every read ----------------------------------- */

typedef struct bp {
    loom_socket_t *s;
    loom_timer_t *t;
    size_t got;
    int bad, cycles, done;
} bp;
static bp bpr;

static void bp_resume(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    CHECK_OK(loom_socket_enable(bpr.s, LOOM_READABLE));
}

static void bp_read(loom_socket_t *s, const char *b, size_t n, void *data)
{
    (void)data;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)b[i] != tcp_pattern(bpr.got + i))
            bpr.bad++;
    bpr.got += n;
    bpr.s = s;
    if (bpr.done)
        return;
    bpr.cycles++;
    CHECK_OK(loom_socket_disable(s, LOOM_READABLE));
    CHECK_OK(loom_timer_start(bpr.t, 1, 0));
}

static void bp_connect(loom_socket_t *s, void *data)
{
    (void)data;
    int small = 64 * 1024;
    CHECK(setsockopt(loom_socket_fd(s), SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
}

static void test_backpressure(void)
{
    loom_loop_t *loop = new_loop();
    memset(&bpr, 0, sizeof bpr);
    CHECK_OK(loom_timer_new(loop, &bpr.t, bp_resume, NULL));
    loom_tcp_server_t *srv;
    CHECK_OK(loom_tcp_server(
        loop, "127.0.0.1", 0,
        &(loom_tcp_server_opts){.on_connect = bp_connect, .on_read = bp_read, .on_event = em_event},
        &srv));
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int small = 64 * 1024;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
    struct sockaddr_in in = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)loom_tcp_server_port(srv)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(fd >= 0);
    int r = connect(fd, (struct sockaddr *)&in, sizeof in);
    CHECK(r == 0 || errno == EINPROGRESS);
    static unsigned char out[1 << 20];
    size_t sent = 0, most = 0;
    uint64_t end = loom_now(loop) + 1500;
    while (loom_now(loop) < end && sent < (64u << 20)) {
        for (;;) {
            size_t off = sent % sizeof out, k = sizeof out - off;
            for (size_t i = 0; i < k; i++)
                out[off + i] = tcp_pattern(sent + i);
            ssize_t w = write(fd, out + off, k);
            if (w <= 0)
                break;
            sent += (size_t)w;
        }
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
        if (sent - bpr.got > most)
            most = sent - bpr.got;
    }
    CHECK_EQ(bpr.bad, 0);
    CHECK(bpr.cycles > 50);
    /* Socket buffers and one wait's worth of provided buffers at most. */
    CHECK(most < (4u << 20));
    bpr.done = 1; /* reads on to the end */
    if (bpr.s != NULL)
        (void)loom_socket_enable(bpr.s, LOOM_READABLE);
    close(fd);
    loom_timer_close(bpr.t);
    loom_tcp_server_close(srv);
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

/* --- Random stops and starts -------------------------------------------------- */

#define NMIX 4

typedef struct mix {
    loom_backend_io_t io; /* first */
    int peer;
    size_t sent, got;
    int on, ends, errs, bad, shut;
} mix;
static mix mx[NMIX];
static loom_loop_t *mx_loop;
static uint64_t mx_rng = 88172645463325252ull;

static unsigned mx_rand(unsigned n)
{
    mx_rng ^= mx_rng << 13;
    mx_rng ^= mx_rng >> 7;
    mx_rng ^= mx_rng << 17;
    return (unsigned)(mx_rng % n);
}

static void mx_cb(loom_backend_io_t *io, char *buf, size_t len, int err);

static void mx_set(mix *m, int on)
{
    if (on && !m->on)
        CHECK_OK(mx_loop->backend->recv_start(mx_loop, &m->io, mx_cb));
    else if (!on && m->on)
        mx_loop->backend->recv_stop(mx_loop, &m->io);
    m->on = on;
}

static void mx_cb(loom_backend_io_t *io, char *buf, size_t len, int err)
{
    mix *m = (mix *)io;
    CHECK(m->on);
    CHECK_EQ(m->ends + m->errs, 0);
    if (len == 0) {
        if (err == 0)
            m->ends++;
        else
            m->errs++;
        return;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)buf[i] != tcp_pattern(m->got + i))
            m->bad++;
    m->got += len;
    /* Stop or start itself or another, maybe twice. */
    for (int k = 0; k < 2; k++) {
        unsigned r = mx_rand(8);
        mix *o = &mx[mx_rand(NMIX)];
        if (r == 0)
            mx_set(m, 0);
        else if (r == 1)
            mx_set(m, 1);
        else if (r == 2)
            mx_set(o, 0);
        else if (r == 3)
            mx_set(o, 1);
    }
}

static void mx_timer(loom_timer_t *t, void *data)
{
    (void)t;
    (void)data;
    for (int i = 0; i < NMIX; i++)
        if (mx_rand(2))
            mx_set(&mx[i], 1);
}

static void test_random_mix(void)
{
    loom_loop_t *loop = mx_loop = new_loop();
    static unsigned char out[64 * 1024];
    for (int i = 0; i < NMIX; i++) {
        pair p;
        pair_open(&p);
        memset(&mx[i], 0, sizeof mx[i]);
        mx[i].io = p.io;
        mx[i].peer = p.peer;
        mx_set(&mx[i], 1);
    }
    loom_timer_t *t;
    CHECK_OK(loom_timer_new(loop, &t, mx_timer, NULL));
    CHECK_OK(loom_timer_start(t, 1, 1));
    uint64_t end = loom_now(loop) + 1000;
    while (loom_now(loop) < end) {
        mix *m = &mx[mx_rand(NMIX)];
        size_t k = 1 + mx_rand(sizeof out);
        for (size_t i = 0; i < k; i++)
            out[i] = tcp_pattern(m->sent + i);
        ssize_t w = write(m->peer, out, k);
        if (w > 0)
            m->sent += (size_t)w;
        CHECK(loom_run(loop, LOOM_RUN_NOWAIT) >= 0);
    }
    for (int i = 0; i < NMIX; i++)
        CHECK(shutdown(mx[i].peer, SHUT_WR) == 0);
    end = loom_now(loop) + 5000;
    for (;;) {
        int done = 0;
        for (int i = 0; i < NMIX; i++)
            done += mx[i].ends + mx[i].errs;
        if (done == NMIX || loom_now(loop) >= end)
            break;
        CHECK(loom_run(loop, LOOM_RUN_ONCE) >= 0);
    }
    loom_timer_close(t);
    for (int i = 0; i < NMIX; i++) {
        CHECK_EQ(mx[i].bad, 0);
        CHECK_EQ(mx[i].errs, 0);
        CHECK_EQ(mx[i].ends, 1);
        CHECK_EQ(mx[i].got, mx[i].sent);
        loop->backend->recv_drop(loop, &mx[i].io);
        close(mx[i].io.fd);
        close(mx[i].peer);
    }
    CHECK_EQ(loom_run(loop, LOOM_RUN_DEFAULT), 0);
    test_loop_free_clean(loop);
}

int main(void)
{
    test_timeout(30);
    signal(SIGPIPE, SIG_IGN);
    loom_loop_t *loop = new_loop();
    if (!(loop->backend->caps & LOOM_BACKEND_CAP_RECV)) {
        fprintf(stderr, "skip: %s has no recv with provided buffers\n", loom_loop_backend(loop));
        loom_loop_free(loop);
        return 77;
    }
    loom_loop_free(loop);

    test_thread_pending();
    test_fork_in_callback();
    test_embedded_resume();
    test_pause_close();
    test_free_with_stash();
    test_backpressure();
    test_random_mix();
    return 0;
}
