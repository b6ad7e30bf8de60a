/* bench/peers/ws_raw_uring.c - the WebSocket limit probe on io_uring: what
 * an io_uring design can reach at best on the ws workloads, beside the epoll
 * probe (bench-ws-raw), before building anything like it into loom. Frames
 * and handshake by hand as in ws_raw.c (no UTF-8 check, no extensions, no
 * fragmented messages); it speaks the bench protocol of bench/ws/README.md.
 *
 * One ring (SINGLE_ISSUER | DEFER_TASKRUN where the kernel has them):
 *  - a multishot accept on the listening socket;
 *  - per connection one multishot IORING_OP_RECV with provided buffers: data
 *    arrives as completions, no system call of its own;
 *  - every send is an IORING_OP_SEND SQE (MSG_WAITALL: the kernel finishes a
 *    short send itself), queued while completions are handled and submitted
 *    by the io_uring_enter that also waits: one system call per loop turn;
 *  - a broadcast queues one SEND per subscriber, all pointing at the one
 *    frame, and the ring is big enough (--sq, default 16384) for 10,000 of
 *    them to go in with one io_uring_enter.
 * A connection has at most one send in flight (the kernel may run two sends
 * on one socket out of order); what is produced meanwhile is appended to its
 * pending buffer and sent when the completion comes. A send's buffer lives
 * until its completion; with --skip-cqe successful sends post no completion
 * at all (IOSQE_CQE_SKIP_SUCCESS), which is only safe here because a client
 * of this bench never has two messages in flight: the lower bound.
 * --fixed registers every accepted socket in the ring's file table
 * (IOSQE_FIXED_FILE: no file reference taken per operation).
 * --batch N --wait-us U waits for N completions or U microseconds, whichever
 * first (instead of for the first completion): fewer wakeups for more
 * latency, an experiment (no library can wait like this at low load).
 *
 * Usage: bench-ws-raw-uring --port P [--sq N] [--fixed] [--skip-cqe]
 *                           [--batch N --wait-us U]
 */
#include <liburing.h>
#include <signal.h>
#include <sys/resource.h>

#include "../ws/ws_common.h"
#include "bench.h"

#define MAX_FDS 65536
#define MAX_MSG (1u << 20)
#define NBUFS   1024 /* provided receive buffers, a power of 2 */
#define BUFSZ   4096

enum { UD_ACCEPT = 1, UD_RECV, UD_SEND, UD_BCAST };
#define UD(fd, kind) (((uint64_t)(fd) << 8) | (kind))

typedef struct {
    uint8_t *in; /* unparsed bytes kept between completions */
    size_t inlen;
    uint8_t *pend; /* produced, not handed to the kernel yet */
    size_t plen, pcap;
    uint8_t *fl; /* owned by the kernel while a send is in flight */
    size_t fllen, flcap, floff;
    unsigned open : 1, upgraded : 1, subscribed : 1, recv_armed : 1, inflight : 1, closing : 1,
        dirty : 1;
} conn_t;

static conn_t conns[MAX_FDS];
static int subs[MAX_FDS], nsubs;
static int dirty[MAX_FDS], ndirty;
static struct io_uring ring;
static struct io_uring_buf_ring *br;
static uint8_t bufs[(size_t)NBUFS * BUFSZ]; /* the provided receive buffers */
static int bmask;
static bool fixed, skip_cqe;
static uint8_t bframe[14 + 1024]; /* the broadcast frame, shared by every send */
static size_t bframe_len;

static struct io_uring_sqe *sqe_get(void)
{
    struct io_uring_sqe *s = io_uring_get_sqe(&ring);
    while (s == NULL) { /* the ring is full: in it goes, then there is room */
        io_uring_submit(&ring);
        s = io_uring_get_sqe(&ring);
    }
    return s;
}

static void sqe_fd(struct io_uring_sqe *s, int fd)
{
    if (fixed)
        s->flags |= IOSQE_FIXED_FILE; /* the table index is the fd */
    (void)fd;
}

static void recv_arm(int fd)
{
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_recv_multishot(s, fd, NULL, 0, 0);
    sqe_fd(s, fd);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = 0;
    io_uring_sqe_set_data64(s, UD(fd, UD_RECV));
    conns[fd].recv_armed = 1;
}

static void send_sqe(int fd, const void *p, size_t len, int kind)
{
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_send(s, fd, p, len, MSG_NOSIGNAL | MSG_WAITALL);
    sqe_fd(s, fd);
    if (skip_cqe)
        s->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(s, UD(fd, kind));
    conns[fd].inflight = !skip_cqe;
}

static void conn_free(int fd)
{
    conn_t *c = &conns[fd];
    free(c->in);
    free(c->pend);
    free(c->fl);
    memset(c, 0, sizeof *c);
    if (fixed) {
        int none = -1;
        io_uring_register_files_update(&ring, (unsigned)fd, &none, 1);
    }
    close(fd);
}

/* Closing: out of the group, the socket shut down so that the multishot
 * receive ends; the fd is closed (and may be reused) only when nothing of
 * it is left in the ring. */
static void conn_close(int fd)
{
    conn_t *c = &conns[fd];
    if (c->closing)
        return;
    c->closing = 1;
    if (c->subscribed) {
        for (int i = 0; i < nsubs; i++)
            if (subs[i] == fd) {
                subs[i] = subs[--nsubs];
                break;
            }
        c->subscribed = 0;
    }
    shutdown(fd, SHUT_RDWR);
}

static int grow(uint8_t **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap ? *cap : 256;
    while (n < need)
        n *= 2;
    uint8_t *q = realloc(*p, n);
    if (!q)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

/* Appends to the pending buffer; sent when this batch of completions is done. */
static int conn_write(int fd, const void *buf, size_t len)
{
    conn_t *c = &conns[fd];
    if (grow(&c->pend, &c->pcap, c->plen + len) != 0)
        return -1;
    memcpy(c->pend + c->plen, buf, len);
    c->plen += len;
    if (!c->dirty) {
        c->dirty = 1;
        dirty[ndirty++] = fd;
    }
    return 0;
}

/* The pending bytes become the in-flight buffer and one SEND goes out. */
static void conn_flush(int fd)
{
    conn_t *c = &conns[fd];
    if (c->inflight || c->plen == 0 || c->closing)
        return;
    uint8_t *t = c->fl;
    size_t tc = c->flcap;
    c->fl = c->pend;
    c->flcap = c->pcap;
    c->fllen = c->plen;
    c->floff = 0;
    c->pend = t;
    c->pcap = tc;
    c->plen = 0;
    send_sqe(fd, c->fl, c->fllen, UD_SEND);
}

static int send_msg(int fd, int opcode, const uint8_t *p, size_t len)
{
    uint8_t frame[14];
    size_t h = ws_frame_header(frame, opcode, 0, len, NULL);
    if (conn_write(fd, frame, h) != 0)
        return -1;
    return conn_write(fd, p, len);
}

static long handshake(int fd, uint8_t *buf, size_t len)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    if (!end)
        return len > 8192 ? -1 : 0;
    size_t hlen = (size_t)(end - (const char *)buf) + 4;
    size_t klen;
    const char *key = ws_header((const char *)buf, hlen, "Sec-WebSocket-Key", &klen);
    if (!key)
        return -1;
    char acc[29], resp[256];
    ws_accept_for(key, klen, acc);
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     acc);
    if (conn_write(fd, resp, (size_t)n) != 0)
        return -1;
    conns[fd].upgraded = 1;
    return (long)hlen;
}

static void broadcast(const uint8_t *p, size_t plen)
{
    bframe_len = ws_frame_header(bframe, 1, 0, plen, NULL);
    memcpy(bframe + bframe_len, p, plen);
    bframe_len += plen;
    for (int i = 0; i < nsubs; i++) {
        int s = subs[i];
        conn_t *c = &conns[s];
        if (c->inflight || c->plen) /* behind its own queue: copied */
            conn_write(s, bframe, bframe_len);
        else
            send_sqe(s, bframe, bframe_len, UD_BCAST);
    }
}

static int on_message(int fd, int opcode, uint8_t *p, size_t len)
{
    conn_t *c = &conns[fd];
    if (opcode == 1 && len == 9 && memcmp(p, "subscribe", 9) == 0) {
        if (!c->subscribed) {
            c->subscribed = 1;
            subs[nsubs++] = fd;
        }
        return send_msg(fd, 1, (const uint8_t *)"subscribed", 10);
    }
    if (opcode == 1 && len >= 10 && memcmp(p, "broadcast ", 10) == 0) {
        if (len - 10 > 1024)
            return -1;
        broadcast(p + 10, len - 10);
        return 0;
    }
    return send_msg(fd, opcode, p, len);
}

#include "ws_raw_frames.h"

/* One receive completion's bytes: parsed in the provided buffer itself when
 * nothing is held, else after what is held. */
static void on_data(int fd, uint8_t *data, size_t n)
{
    conn_t *c = &conns[fd];
    uint8_t *buf = data;
    size_t len = n;
    if (c->inlen) {
        uint8_t *q = realloc(c->in, c->inlen + n);
        if (!q) {
            conn_close(fd);
            return;
        }
        memcpy(q + c->inlen, data, n);
        c->in = q;
        buf = q;
        len = c->inlen + n;
    }
    size_t off = 0;
    if (!c->upgraded) {
        long k = handshake(fd, buf, len);
        if (k < 0) {
            conn_close(fd);
            return;
        }
        off = (size_t)k;
    }
    if (c->upgraded && off < len) {
        long k = frames(fd, buf + off, len - off);
        if (k < 0) {
            conn_flush(fd); /* the close frame, if any */
            conn_close(fd);
            return;
        }
        off += (size_t)k;
    }
    if (off == len) {
        free(c->in);
        c->in = NULL;
        c->inlen = 0;
    } else if (buf == data) {
        c->in = malloc(len - off);
        if (!c->in) {
            conn_close(fd);
            return;
        }
        memcpy(c->in, buf + off, len - off);
        c->inlen = len - off;
    } else {
        memmove(c->in, c->in + off, len - off);
        c->inlen = len - off;
    }
}

static void on_cqe(int lfd, struct io_uring_cqe *cqe)
{
    int kind = (int)(cqe->user_data & 0xff);
    int fd = (int)(cqe->user_data >> 8);
    int res = cqe->res;
    conn_t *c = &conns[fd];
    switch (kind) {
    case UD_ACCEPT:
        if (!(cqe->flags & IORING_CQE_F_MORE)) { /* armed again */
            struct io_uring_sqe *s = sqe_get();
            io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
            io_uring_sqe_set_data64(s, UD(lfd, UD_ACCEPT));
        }
        if (res < 0)
            return;
        if (res >= MAX_FDS) {
            close(res);
            return;
        }
        if (fixed && io_uring_register_files_update(&ring, (unsigned)res, &res, 1) != 1) {
            close(res);
            return;
        }
        memset(&conns[res], 0, sizeof conns[res]);
        conns[res].open = 1;
        recv_arm(res);
        return;
    case UD_RECV:
        if (!(cqe->flags & IORING_CQE_F_MORE))
            c->recv_armed = 0;
        if (cqe->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
            uint8_t *b = bufs + (size_t)bid * BUFSZ;
            if (res > 0 && !c->closing)
                on_data(fd, b, (size_t)res);
            io_uring_buf_ring_add(br, b, BUFSZ, (unsigned short)bid, bmask, 0);
            io_uring_buf_ring_advance(br, 1);
        }
        if (res == 0 || (res < 0 && res != -ENOBUFS))
            conn_close(fd);
        else if (!c->recv_armed && !c->closing)
            recv_arm(fd); /* out of buffers, or the kernel ended it: again */
        break;
    case UD_SEND:
    case UD_BCAST:
        c->inflight = 0;
        if (res < 0) { /* with --skip-cqe only failures get here */
            conn_close(fd);
        } else if (res >= 0 && kind == UD_SEND && (size_t)res < c->fllen - c->floff &&
                   !c->closing) {
            c->floff += (size_t)res; /* MSG_WAITALL makes this rare */
            send_sqe(fd, c->fl + c->floff, c->fllen - c->floff, UD_SEND);
            return;
        } else if (res >= 0 && kind == UD_BCAST && (size_t)res < bframe_len && !c->closing) {
            conn_write(fd, bframe + res, bframe_len - (size_t)res);
        }
        if (c->plen)
            conn_flush(fd);
        break;
    }
    if (c->closing && !c->recv_armed && !c->inflight)
        conn_free(fd); /* nothing of it left in the ring */
}

static int setup(unsigned sq)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = modes[i] | IORING_SETUP_CQSIZE;
        p.cq_entries = 2 * sq < 32768 ? 32768 : 2 * sq;
        int r = io_uring_queue_init_params(sq, &ring, &p);
        if (r == 0)
            return 0;
        if (r != -EINVAL)
            return r;
    }
    return -EINVAL;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 0);
    unsigned sq = (unsigned)bench_arg_long(argc, argv, "--sq", 16384);
    fixed = bench_flag(argc, argv, "--fixed");
    skip_cqe = bench_flag(argc, argv, "--skip-cqe");
    unsigned batch = (unsigned)bench_arg_long(argc, argv, "--batch", 1);
    long wait_us = bench_arg_long(argc, argv, "--wait-us", 0);
    signal(SIGPIPE, SIG_IGN);
    bench_raise_nofile();
    int lfd = bench_listen(port, 0, 0);
    if (port <= 0 || lfd < 0 || sq < 8) {
        fprintf(stderr, "usage: bench-ws-raw-uring --port P [--sq N] [--fixed] [--skip-cqe] "
                        "[--batch N --wait-us U]\n");
        return 2;
    }
    int r = setup(sq);
    if (r < 0) {
        fprintf(stderr, "ws-raw-uring: io_uring: %s\n", strerror(-r));
        return 1;
    }
    /* Every fd is below the open-file limit: a table of that size holds all. */
    struct rlimit rl;
    unsigned nfiles = MAX_FDS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nfiles)
        nfiles = (unsigned)rl.rlim_cur;
    if (fixed && (r = io_uring_register_files_sparse(&ring, nfiles)) < 0) {
        fprintf(stderr, "ws-raw-uring: registered files: %s\n", strerror(-r));
        return 1;
    }
    void *brmem = NULL;
    if (posix_memalign(&brmem, 4096, NBUFS * sizeof(struct io_uring_buf)) != 0) {
        fprintf(stderr, "ws-raw-uring: out of memory\n");
        return 1;
    }
    br = brmem;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = 0};
    if ((r = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
        fprintf(stderr, "ws-raw-uring: provided buffers: %s\n", strerror(-r));
        return 1;
    }
    io_uring_buf_ring_init(br);
    bmask = io_uring_buf_ring_mask(NBUFS);
    for (int i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i, bmask, i);
    io_uring_buf_ring_advance(br, NBUFS);
    struct io_uring_sqe *s = sqe_get();
    io_uring_prep_multishot_accept(s, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(s, UD(lfd, UD_ACCEPT));
    for (;;) {
        if (batch > 1 && wait_us > 0) {
            struct __kernel_timespec ts = {.tv_sec = wait_us / 1000000,
                                           .tv_nsec = (wait_us % 1000000) * 1000};
            struct io_uring_cqe *first;
            r = io_uring_submit_and_wait_timeout(&ring, &first, batch, &ts, NULL);
        } else {
            r = io_uring_submit_and_wait(&ring, 1);
        }
        if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "ws-raw-uring: io_uring_enter: %s\n", strerror(-r));
            return 1;
        }
        struct io_uring_cqe *cqes[512];
        unsigned n;
        while ((n = io_uring_peek_batch_cqe(&ring, cqes, 512)) > 0) {
            for (unsigned i = 0; i < n; i++)
                on_cqe(lfd, cqes[i]);
            io_uring_cq_advance(&ring, n);
        }
        for (int i = 0; i < ndirty; i++) {
            int fd = dirty[i];
            conns[fd].dirty = 0;
            conn_flush(fd);
        }
        ndirty = 0;
    }
}
