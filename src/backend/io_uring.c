/* backend/io_uring.c - Linux io_uring: readiness through poll requests,
 * sockets read by recv requests with provided buffers, listeners by
 * multishot accept.
 *
 * Every watcher is at most one IORING_OP_POLL_ADD request in the kernel.
 * The requests are one-shot: a completion reports the watcher ready, and
 * the watcher is re-armed by a new request that goes into the submission
 * queue and reaches the kernel with the next wait. Arming a poll request
 * checks the file's state at once, so a watcher whose data was not all read
 * completes again straight away: this is level-triggered readiness, the
 * contract every loom watcher relies on (sockets read at most 4 times per
 * readiness, servers accept at most 64 connections).
 *
 * Why not IORING_POLL_ADD_MULTI: a multishot poll posts a completion only
 * when the file's wait queue is woken, i.e. it is edge-triggered (a probe:
 * a pipe with one unread byte completes once, then never again; and
 * IORING_POLL_ADD_LEVEL is refused with EINVAL together with MULTI). Edge
 * readiness would stall every consumer that does not read to EAGAIN.
 * Sockets use recv requests with provided buffers instead (CAP_RECV,
 * below), which save the read() as well as the poll. The same holds for the core's own
 * drained-to-empty fds (wakeup eventfd, signal pipe): their one-shot re-arm costs nothing extra, as
 * they are re-armed in the batch of the next wait, so they stay on POLL_ADD.
 *
 * Multishot accept (LOOM_BACKEND_CAP_ACCEPT, kernel 5.19+, probed once per
 * process at init): accept_start() puts one IORING_OP_ACCEPT with
 * IORING_ACCEPT_MULTISHOT in the kernel for a listen socket; each
 * completion is a new socket (or an error) handed to the caller's callback.
 * A completion without IORING_CQE_F_MORE ended the request: it is armed
 * again with the next submission unless the callback stopped it.
 * accept_stop() cancels it and submits at once (the request holds the
 * listen file); sockets accepted in between, still in the ring or in the
 * batch being dispatched, carry an old generation and are closed.
 *
 * Costs: one io_uring_enter per iteration submits the re-arms and removals
 * and waits for completions with the timeout (IORING_FEAT_EXT_ARG), where
 * epoll needs epoll_wait plus an epoll_ctl per change. A removal is
 * submitted at once, because a poll request holds a reference on its file:
 * a socket closed right after it would otherwise not send its FIN until the
 * next wait.
 *
 * Watchers are kept in a table indexed by fd (16 bytes per fd, no
 * allocation per watcher), like the epoll backend's. A completion names the
 * fd and a generation in its user_data; a slot's generation is bumped
 * whenever its request goes stale (removal, change of events, the fd taken
 * over by a new watcher after a close), so late completions of cancelled
 * requests are recognised and dropped.
 *
 * Where io_uring cannot be set up (an old kernel, seccomp, io_uring_disabled,
 * locked memory), init replaces the backend with epoll and logs one line.
 */
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/internal.h"

#define LOOM__URING_SQ          256
#define LOOM__URING_CQ          4096
#define LOOM__URING_BATCH       256
#define LOOM__URING_UD_NONE     UINT64_MAX  /* removals: nothing to dispatch */
#define LOOM__URING_ACC_BIT     0x80000000u /* in the index: an accept request */
#define LOOM__URING_RCV_BIT     0x40000000u /* in the index: a recv request */
#define LOOM__URING_NBUFS       32          /* provided buffers, a power of 2 */
#define LOOM__URING_BUFSZ       (64 * 1024) /* bytes per provided buffer */
#define LOOM__URING_BGID        0           /* their buffer group */
#define LOOM__URING_STASH_PIECE (64 * 1024) /* kept bytes delivered per call */

typedef struct loom__uslot {
    loom_backend_io_t *io; /* NULL: no watcher on this fd */
    uint32_t gen;          /* generation of the current request */
    uint16_t armed;        /* poll mask of the request in flight, 0: none */
    uint8_t dirty;         /* listed in `dirty`: needs a request */
} loom__uslot;

typedef struct loom__uacc {
    loom_backend_io_t *io; /* NULL: free entry */
    loom_backend_accept_cb cb;
    uint32_t gen;
    bool armed;
} loom__uacc;

/* Bytes (and maybe the end) read for a socket while its reader was paused,
 * delivered first when it resumes, are kept in a loom__bytes (the stash):
 * data[off..len) is still to deliver, and its aux says whether the end came
 * after them (0: no; else 1 - code: 1 the end of the stream, more an error). */
static inline bool loom__ustash_has_end(const loom__bytes *st)
{
    return st->aux != 0;
}
static inline int loom__ustash_end(const loom__bytes *st)
{
    return (int)(1 - (long)st->aux);
}

/* One fd read by recv requests (CAP_RECV). */
typedef struct loom__urecv {
    loom_backend_io_t *io; /* NULL: nobody reads this fd */
    loom_backend_recv_cb cb;
    loom__bytes *stash; /* taken from the kernel, not yet delivered */
    uint32_t gen;       /* generation of the newest request */
    uint32_t base;      /* first generation of this owner */
    uint32_t live;      /* this owner's requests not seen to end: they hold the file */
    uint8_t want;       /* started and not stopped */
    uint8_t armed;      /* the request of generation `gen` is in the kernel */
    uint8_t queued;     /* listed in rdirty */
    uint8_t due;        /* listed in sdue */
    uint8_t ended;      /* the end or an error was taken: nothing follows */
    uint8_t oom;        /* bytes were lost to ENOMEM: the reader gets that */
} loom__urecv;

/* A growable list of fds. */
typedef struct loom__ulist {
    uint32_t *v;
    uint32_t n, cap;
} loom__ulist;

typedef struct loom__uring {
    struct io_uring ring;
    bool ring_ok;
    bool skip_success;  /* IOSQE_CQE_SKIP_SUCCESS for removals */
    bool defer;         /* IORING_SETUP_DEFER_TASKRUN: completions need an enter */
    bool single_issuer; /* IORING_SETUP_SINGLE_ISSUER: one submitting thread */
    loom__uslot *slots; /* by fd */
    size_t nslots;
    uint32_t *dirty; /* fds to (re-)arm at the next submission */
    uint32_t ndirty, cdirty;
    loom__uacc *acc; /* multishot accepts, few: searched linearly */
    uint32_t nacc;
    bool acc_dirty;  /* an accept request to (re-)arm */
    loom__urecv *rs; /* recv requests, by fd */
    size_t nrs;
    loom__ulist rdirty;           /* fds whose recv request is to be armed */
    loom__ulist sdue;             /* fds with a stash to deliver */
    struct io_uring_buf_ring *br; /* the provided buffers' ring */
    char *bufs;                   /* LOOM__URING_NBUFS * LOOM__URING_BUFSZ */
    bool br_ok;                   /* br registered with the current ring */
    uint32_t rings;               /* rings made again (renew) */
    struct {
        uint64_t ud;
        int32_t res;
        uint32_t flags;
    } done[LOOM__URING_BATCH];
} loom__uring;

static uint16_t loom__uring_mask(unsigned events)
{
    uint16_t m = 0;
    if (events & LOOM_READABLE)
        m |= POLLIN | POLLRDHUP;
    if (events & LOOM_WRITABLE)
        m |= POLLOUT;
    return m;
}

static uint64_t loom__uring_ud(uint32_t idx, uint32_t gen)
{
    return (uint64_t)gen << 32 | idx;
}

static int loom__ulist_push(loom__ulist *l, uint32_t v)
{
    if (l->n == l->cap) {
        uint32_t n = l->cap ? l->cap * 2 : 64;
        uint32_t *t = realloc(l->v, n * sizeof *t);
        if (t == NULL)
            return LOOM_ENOMEM;
        l->v = t;
        l->cap = n;
    }
    l->v[l->n++] = v;
    return 0;
}

static void loom__ulist_free(loom__ulist *l)
{
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* Sets up the ring with the cheapest task-work mode the kernel accepts:
 * DEFER_TASKRUN (6.1) runs completions only inside our own io_uring_enter,
 * COOP_TASKRUN (5.19) at least spares the interrupts. */
static int loom__uring_setup(loom__uring *u)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int r = -EINVAL;
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = modes[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = LOOM__URING_CQ;
        r = io_uring_queue_init_params(LOOM__URING_SQ, &u->ring, &p);
        if (r == -EINVAL)
            continue; /* a flag this kernel does not know */
        if (r < 0)
            return r;
        /* One wait with a timeout per iteration needs EXT_ARG (5.11);
         * NODROP (5.5) makes completions never get lost. */
        if (!(p.features & IORING_FEAT_EXT_ARG) || !(p.features & IORING_FEAT_NODROP)) {
            io_uring_queue_exit(&u->ring);
            return -ENOSYS;
        }
        u->skip_success = (p.features & IORING_FEAT_CQE_SKIP) != 0;
        u->defer = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
        u->single_issuer = (p.flags & IORING_SETUP_SINGLE_ISSUER) != 0;
        u->ring_ok = true;
        return 0;
    }
    return r;
}

static int loom__uring_fallback(loom_loop_t *loop, void *foreign, int why)
{
    const loom_backend_t *ep = loom_backend_find("epoll", NULL);
    if (ep == NULL)
        return loom__err(-why);
    void *priv = calloc(1, ep->loop_size ? ep->loop_size : 1);
    if (priv == NULL)
        return LOOM_ENOMEM;
    char msg[160];
    snprintf(msg, sizeof msg, "io_uring unavailable (%s): falling back to epoll", strerror(-why));
    loom_backend_log(loop, LOOM_LOG_NOTICE, msg);
    free(loop->backend_priv);
    loop->backend_priv = priv;
    loop->backend = ep;
    return ep->init(loop, foreign);
}

/* Submits a probe's request (user_data 1, already in the submission queue)
 * and waits, 1 s at most, for its first completion (*res, *flags), then
 * cancels it and waits for its end. `fds`: its completions are new fds,
 * closed here. Returns false if nothing completed; *live says whether the
 * request may still be in the kernel (the ring is then not clean). */
static bool loom__uring_probe_run(loom__uring *u, bool fds, int32_t *res, uint32_t *flags,
                                  bool *live)
{
    bool got = false;
    *live = false;
    if (io_uring_submit(&u->ring) != 1)
        return false;
    *live = true;
    struct __kernel_timespec ts = {.tv_sec = 1, .tv_nsec = 0};
    for (int round = 0; *live && round < 4; round++) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe_timeout(&u->ring, &cqe, &ts) < 0)
            break;
        if (cqe->user_data == 1) {
            if (fds && cqe->res >= 0)
                close(cqe->res);
            if (!got) {
                *res = cqe->res;
                *flags = cqe->flags;
                got = true;
            }
            *live = (cqe->flags & IORING_CQE_F_MORE) != 0;
            struct io_uring_sqe *sqe;
            if (*live && round == 0 && (sqe = io_uring_get_sqe(&u->ring)) != NULL) {
                io_uring_prep_cancel64(sqe, 1, 0);
                io_uring_sqe_set_data64(sqe, 2);
                (void)io_uring_submit(&u->ring);
            }
        }
        io_uring_cqe_seen(&u->ring, cqe);
    }
    return got;
}

/* Whether this kernel has multishot accept (5.19): one accept on a
 * listening Unix socket with a connection waiting must complete with a
 * socket and IORING_CQE_F_MORE; older kernels refuse the flag (EINVAL).
 * Runs on the new loop's ring, which is still empty. */
static bool loom__uring_probe_accept(loom__uring *u, bool *dirty)
{
    bool ok = false, live = false;
    *dirty = false;
    int c = -1, l = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l < 0)
        return false;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t len = sizeof a;
    /* Binding just the family autobinds an abstract name: no file. */
    if (bind(l, (struct sockaddr *)&a, sizeof(sa_family_t)) < 0 || listen(l, 1) < 0 ||
        getsockname(l, (struct sockaddr *)&a, &len) < 0)
        goto out;
    c = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&a, len) < 0)
        goto out;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL)
        goto out;
    io_uring_prep_multishot_accept(sqe, l, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, 1);
    int32_t res;
    uint32_t flags;
    ok = loom__uring_probe_run(u, true, &res, &flags, &live) && res >= 0 &&
         (flags & IORING_CQE_F_MORE);
out:
    if (c >= 0)
        close(c);
    close(l);
    /* A request that did not end in time: the ring is not clean. */
    *dirty = live;
    return ok && !live;
}

/* Whether this kernel reads sockets the way the recv path does: a
 * single-shot IORING_OP_RECV with IOSQE_BUFFER_SELECT from a registered
 * buffer ring (5.19; multishot recv, 6.0, is not used: see "Why not
 * multishot recv" below). A recv on a socket pair with one byte waiting
 * must complete with the byte in a provided buffer. Runs on the new loop's
 * ring, which is still empty; uses buffer group 1, unregistered after. */
static bool loom__uring_probe_recv(loom__uring *u, bool *dirty)
{
    static char bufs[2][64];
    bool ok = false, live = false;
    *dirty = false;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return false;
    void *mem = NULL;
    if (posix_memalign(&mem, 4096, 2 * sizeof(struct io_uring_buf)) != 0)
        goto out;
    memset(mem, 0, 2 * sizeof(struct io_uring_buf));
    struct io_uring_buf_ring *br = mem;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = 2, .bgid = 1};
    if (io_uring_register_buf_ring(&u->ring, &reg, 0) < 0)
        goto out;
    io_uring_buf_ring_init(br);
    for (int i = 0; i < 2; i++)
        io_uring_buf_ring_add(br, bufs[i], sizeof bufs[i], (unsigned short)i,
                              io_uring_buf_ring_mask(2), i);
    io_uring_buf_ring_advance(br, 2);
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL || write(sv[1], "x", 1) != 1)
        goto unreg;
    io_uring_prep_recv(sqe, sv[0], NULL, sizeof bufs[0], 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 1;
    io_uring_sqe_set_data64(sqe, 1);
    int32_t res;
    uint32_t flags;
    ok = loom__uring_probe_run(u, false, &res, &flags, &live) && res == 1 &&
         (flags & IORING_CQE_F_BUFFER);
unreg:
    (void)io_uring_unregister_buf_ring(&u->ring, 1);
out:
    free(mem);
    close(sv[0]);
    close(sv[1]);
    *dirty = live;
    return ok && !live;
}

static const loom_backend_t loom__backend_io_uring_accept;
static const loom_backend_t loom__backend_io_uring_recv;

/* Runs `probe` on the new loop's ring once per process (*cache: 0 not yet,
 * 1 the feature works, 2 it does not), making the ring again if the probe
 * left it unclean. Returns 1, 2 or a negative errno from the setup. */
static int loom__uring_probe_once(loom__uring *u, _Atomic int *cache,
                                  bool (*probe)(loom__uring *u, bool *dirty))
{
    int p = *cache;
    if (p != 0)
        return p;
    bool dirty;
    p = probe(u, &dirty) ? 1 : 2;
    if (dirty) {
        io_uring_queue_exit(&u->ring);
        u->ring_ok = false;
        int r = loom__uring_setup(u);
        if (r < 0)
            return r;
    }
    *cache = p;
    return p;
}

static int loom__uring_init(loom_loop_t *loop, void *foreign)
{
    static _Atomic int accept_probe, recv_probe;
    loom__uring *u = loom_backend_loop_priv(loop);
    int r = loom__uring_setup(u);
    if (r < 0)
        return loom__uring_fallback(loop, foreign, r);
    int acc = loom__uring_probe_once(u, &accept_probe, loom__uring_probe_accept);
    if (acc < 0)
        return loom__uring_fallback(loop, foreign, acc);
    int rcv = loom__uring_probe_once(u, &recv_probe, loom__uring_probe_recv);
    if (rcv < 0)
        return loom__uring_fallback(loop, foreign, rcv);
    /* LOOM_IO_URING_RECV=0 leaves sockets on readiness (to compare). */
    const char *env = getenv("LOOM_IO_URING_RECV");
    bool recv = rcv == 1 && !(env != NULL && strcmp(env, "0") == 0);
    if (acc == 1)
        loop->backend = recv ? &loom__backend_io_uring_recv : &loom__backend_io_uring_accept;
    return 0;
}

static void loom__uring_destroy(loom_loop_t *loop)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    if (u->ring_ok) {
        /* Sockets accepted but never dispatched are ours to close. */
        (void)io_uring_submit_and_get_events(&u->ring);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&u->ring, &cqe) == 0) {
            uint64_t ud = cqe->user_data;
            if (ud != LOOM__URING_UD_NONE && ((uint32_t)ud & LOOM__URING_ACC_BIT) && cqe->res >= 0)
                close(cqe->res);
            io_uring_cqe_seen(&u->ring, cqe);
        }
        io_uring_queue_exit(&u->ring); /* cancels every request */
    }
    u->ring_ok = false;
    for (uint32_t i = 0; i < u->nrs; i++)
        loom__bytes_free(&u->rs[i].stash);
    free(u->rs);
    u->rs = NULL;
    u->nrs = 0;
    loom__ulist_free(&u->rdirty);
    loom__ulist_free(&u->sdue);
    free(u->br);
    free(u->bufs);
    u->br = NULL;
    u->bufs = NULL;
    u->br_ok = false;
    free(u->slots);
    free(u->dirty);
    free(u->acc);
    u->slots = NULL;
    u->dirty = NULL;
    u->acc = NULL;
    u->nacc = 0;
    u->nslots = u->ndirty = u->cdirty = 0;
}

/* An SQE, submitting the full queue first if needed. */
static struct io_uring_sqe *loom__uring_sqe(loom__uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    while (sqe == NULL) {
        int r = io_uring_submit(&u->ring);
        if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
            return NULL;
        sqe = io_uring_get_sqe(&u->ring);
    }
    return sqe;
}

/* --- Recv with provided buffers (CAP_RECV) -----------------------------------
 *
 * One single-shot IORING_OP_RECV with IOSQE_BUFFER_SELECT per reading
 * socket is in the kernel; it completes with the bytes that arrived, in one
 * of the loop's provided buffers (a buffer ring of LOOM__URING_NBUFS
 * buffers, registered on first use), and is armed again with the next
 * submission while the reader wants data. The reader's callback runs on that buffer,
 * which then goes straight back to the ring: a socket holds no read memory,
 * as with the scratch buffer of the readiness path. Buffer rings need Linux
 * 5.19 (as multishot accept, which CAP_RECV comes with); init probes them
 * once per process (loom__uring_probe_recv()), else sockets are read on
 * readiness.
 *
 * Generations tell three kinds of completions apart: of the request in the
 * kernel (gen), of an earlier request of the same owner that was stopped
 * ([base, gen): its bytes are the owner's and are kept), and of a previous
 * owner of the fd ((before base): dropped). Bytes that arrive while the
 * reader is paused, or behind kept bytes, go to the stash, which is
 * delivered before anything else once the reader resumes. A completion
 * of -ENOBUFS (every buffer in the completion queue) is armed again with
 * the next submission, and the bytes wait in the socket meanwhile.
 *
 * Why not multishot recv (IORING_RECV_MULTISHOT, which this backend used
 * before and which saves one SQE per completion): it defeats backpressure.
 * A multishot recv that finds data receives inline or requeues itself
 * through task work, and is then not in the poll table, so cancelling it
 * when the reader stops fails with -ENOENT for as long as the peer keeps
 * sending (measured on 6.18); every byte then moves from the socket into
 * the stash, the TCP window never closes, and a peer that never reads its
 * answers makes the server hold megabytes per connection. A per-request
 * byte limit would need a newer kernel and liburing than Debian 12's 2.3.
 * A single-shot request ends with each completion: a reader that stops in
 * its callback has nothing in the kernel, and one that stops elsewhere
 * gets its request cancelled (it waits in the poll table) or receives at
 * most one more completion, one provided buffer (64 KiB), into the stash:
 * the bound of the readiness path's scratch read. The re-arm is an SQE
 * prepared without a system call and submitted by the io_uring_enter that
 * waits anyway. Bench (backends workload, 3 quick runs each way on a
 * shared 2-core machine): HTTP and 64 KiB echo within +-4% of multishot,
 * small-message echo -11% (median), while epoll's own figure moved 25%
 * between the same runs: not resolved by that noise. A request that finds the
 * socket empty costs one recv attempt before its poll is armed
 * (IORING_RECVSEND_POLL_FIRST would save it; not tried yet).
 * tests/backend/test_uring_backpressure.c checks the bound. */

static void loom__uring_flush(loom__uring *u);

/* Registers the provided buffers with the current ring (allocating them the
 * first time), every buffer available. */
static int loom__uring_bufs(loom__uring *u)
{
    if (u->br_ok)
        return 0;
    if (u->br == NULL) {
        void *br = NULL, *bufs = NULL;
        if (posix_memalign(&br, 4096, LOOM__URING_NBUFS * sizeof(struct io_uring_buf)) != 0)
            return LOOM_ENOMEM;
        if (posix_memalign(&bufs, 64, (size_t)LOOM__URING_NBUFS * LOOM__URING_BUFSZ) != 0) {
            free(br);
            return LOOM_ENOMEM;
        }
        u->br = br;
        u->bufs = bufs;
    }
    memset(u->br, 0, LOOM__URING_NBUFS * sizeof(struct io_uring_buf));
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)u->br,
        .ring_entries = LOOM__URING_NBUFS,
        .bgid = LOOM__URING_BGID,
    };
    int r = io_uring_register_buf_ring(&u->ring, &reg, 0);
    if (r < 0)
        return loom__err(-r);
    io_uring_buf_ring_init(u->br);
    int mask = io_uring_buf_ring_mask(LOOM__URING_NBUFS);
    for (int i = 0; i < LOOM__URING_NBUFS; i++)
        io_uring_buf_ring_add(u->br, u->bufs + (size_t)i * LOOM__URING_BUFSZ, LOOM__URING_BUFSZ,
                              (unsigned short)i, mask, i);
    io_uring_buf_ring_advance(u->br, LOOM__URING_NBUFS);
    u->br_ok = true;
    return 0;
}

/* Gives provided buffer `bid` back to the kernel. */
static void loom__uring_buf_put(loom__uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->br, u->bufs + (size_t)bid * LOOM__URING_BUFSZ, LOOM__URING_BUFSZ,
                          (unsigned short)bid, io_uring_buf_ring_mask(LOOM__URING_NBUFS), 0);
    io_uring_buf_ring_advance(u->br, 1);
}

static void loom__urecv_queue(loom__uring *u, uint32_t fd)
{
    loom__urecv *rs = &u->rs[fd];
    if (!rs->queued && loom__ulist_push(&u->rdirty, fd) == 0)
        rs->queued = 1;
}

static void loom__urecv_due(loom__uring *u, uint32_t fd)
{
    loom__urecv *rs = &u->rs[fd];
    if (!rs->due && loom__ulist_push(&u->sdue, fd) == 0)
        rs->due = 1;
}

/* Keeps bytes (or the end) for later. Out of memory, the bytes are lost
 * and the reader gets LOOM_ENOMEM in their place instead of a hole in its
 * stream. */
static void loom__urecv_keep(loom__urecv *rs, const char *p, size_t n, bool end, int code)
{
    int r = n > 0               ? loom__bytes_append(&rs->stash, p, n)
            : rs->stash == NULL ? loom__bytes_reserve(&rs->stash, 0)
                                : 0;
    if (r < 0) {
        rs->oom = 1;
        rs->ended = 1;
        return;
    }
    if (end && !loom__ustash_has_end(rs->stash))
        rs->stash->aux = (size_t)(1 - (long)code);
}

/* Queues a cancellation of fd's recv request; its late completions carry
 * an older generation. */
static void loom__urecv_cancel(loom__uring *u, uint32_t fd)
{
    loom__urecv *rs = &u->rs[fd];
    if (rs->armed) {
        struct io_uring_sqe *sqe = loom__uring_sqe(u);
        if (sqe != NULL) {
            io_uring_prep_cancel64(sqe, loom__uring_ud(fd | LOOM__URING_RCV_BIT, rs->gen), 0);
            io_uring_sqe_set_data64(sqe, LOOM__URING_UD_NONE);
            if (u->skip_success)
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        rs->armed = 0;
        rs->gen++;
    }
}

/* Forgets fd's owner: what is in flight for it is dropped on arrival. */
static void loom__urecv_forget(loom__uring *u, uint32_t fd)
{
    loom__urecv *rs = &u->rs[fd];
    loom__urecv_cancel(u, fd);
    rs->gen++;
    rs->base = rs->gen;
    rs->io = NULL;
    rs->cb = NULL;
    rs->want = 0;
    rs->ended = 0;
    rs->oom = 0;
    rs->live = 0;
    loom__bytes_free(&rs->stash);
}

static int loom__uring_recv_start(loom_loop_t *loop, loom_backend_io_t *io, loom_backend_recv_cb cb)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    if (io == NULL || io->fd < 0 || cb == NULL)
        return LOOM_EINVAL;
    int r = loom__uring_bufs(u);
    if (r < 0)
        return r;
    uint32_t fd = (uint32_t)io->fd;
    loom__urecv *t = loom__fd_table_fit(u->rs, &u->nrs, sizeof *t, fd);
    if (t == NULL)
        return LOOM_ENOMEM;
    u->rs = t;
    loom__urecv *rs = &u->rs[fd];
    if (rs->io != io) {
        if (rs->io != NULL)
            loom__urecv_forget(u, fd); /* its fd was closed without a drop */
        rs->io = io;
    }
    rs->cb = cb;
    if (rs->want)
        return 0;
    rs->want = 1;
    /* With kept bytes the request waits until they are delivered
     * (loom__urecv_deliver arms it): armed now, it would take all the
     * socket holds into the stash behind them, and a reader that pauses
     * again at its first piece would hold more at every resume, the
     * kernel's window never filling: no backpressure. */
    bool kept = rs->stash != NULL || rs->oom;
    if (!kept && !rs->armed && !rs->ended)
        loom__urecv_queue(u, fd);
    /* Outside loom_run() (an application embedding loom resumes a reader
     * from its own poller's callbacks) nothing else would put the request
     * in the kernel before the outer poller sleeps on the ring fd, and the
     * bytes that arrive would not wake it: it goes in now. Inside, the
     * next poll (or the end of this one) submits it. */
    bool submit = !loop->in_run && u->rdirty.n > 0;
    if (submit)
        loom__uring_flush(u);
    if (kept) {
        loom__urecv_due(u, fd);
        /* poll() delivers it without waiting, and loom_backend_timeout()
         * says not to sleep; outside loom_run(), an outer poller already
         * asleep on the ring fd needs a completion to wake up for. */
        struct io_uring_sqe *sqe = loop->in_run ? NULL : loom__uring_sqe(u);
        if (sqe != NULL) {
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, LOOM__URING_UD_NONE);
            submit = true;
        }
    }
    if (submit)
        (void)io_uring_submit(&u->ring);
    return 0;
}

static void loom__uring_recv_stop(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    uint32_t fd = (uint32_t)io->fd;
    if (fd >= u->nrs || u->rs[fd].io != io)
        return;
    u->rs[fd].want = 0;
    loom__urecv_cancel(u, fd);
}

static void loom__uring_recv_drop(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    uint32_t fd = (uint32_t)io->fd;
    if (fd >= u->nrs || u->rs[fd].io != io)
        return;
    /* Not only the armed request: one stopped since may not have ended
     * yet (its cancellation still in the submission queue, or its task
     * work not run). */
    bool live = u->rs[fd].live > 0;
    loom__urecv_forget(u, fd);
    /* A request holds the file: let go of it before the caller closes the
     * fd, so the peer sees the close at once. */
    if (live)
        (void)io_uring_submit_and_get_events(&u->ring);
}

/* Turns rdirty into recv requests (no system call). Returns false if the
 * submission queue could not take them all (the rest stay listed). */
static bool loom__urecv_flush(loom__uring *u)
{
    uint32_t i;
    for (i = 0; i < u->rdirty.n; i++) {
        uint32_t fd = u->rdirty.v[i];
        loom__urecv *rs = &u->rs[fd];
        if (rs->io == NULL || !rs->want || rs->armed || rs->ended) {
            rs->queued = 0;
            continue;
        }
        struct io_uring_sqe *sqe = loom__uring_sqe(u);
        if (sqe == NULL)
            break;
        rs->queued = 0;
        /* Single-shot: see "Why not multishot recv" above. */
        io_uring_prep_recv(sqe, rs->io->fd, NULL, LOOM__URING_BUFSZ, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = LOOM__URING_BGID;
        io_uring_sqe_set_data64(sqe, loom__uring_ud(fd | LOOM__URING_RCV_BIT, rs->gen));
        rs->armed = 1;
        rs->live++;
    }
    memmove(u->rdirty.v, u->rdirty.v + i, (u->rdirty.n - i) * sizeof *u->rdirty.v);
    u->rdirty.n -= i;
    return u->rdirty.n == 0;
}

/* Delivers the stashes of readers that resumed; returns how many ran. */
static int loom__urecv_deliver(loom__uring *u)
{
    int n = 0;
    /* Callbacks may list more: they are taken in the same pass. */
    for (uint32_t i = 0; i < u->sdue.n; i++) {
        uint32_t fd = u->sdue.v[i];
        loom__urecv *rs = &u->rs[fd];
        rs->due = 0;
        if (rs->io == NULL || !rs->want)
            continue;
        loom_backend_io_t *io = rs->io;
        loom__bytes *st = rs->stash;
        rs->stash = NULL;
        if (st != NULL) {
            /* In pieces, so that a reader pausing again stops it. */
            while (st->off < st->len) {
                size_t k = st->len - st->off;
                if (k > LOOM__URING_STASH_PIECE)
                    k = LOOM__URING_STASH_PIECE;
                st->off += k;
                rs->cb(io, st->data + st->off - k, k, 0);
                n++;
                rs = &u->rs[fd]; /* the table may have grown */
                if (rs->io != io || !rs->want)
                    break;
            }
            if (rs->io == io && st->off < st->len) {
                /* Paused again: nothing was kept meanwhile (completions
                 * are not reaped while stashes are delivered). */
                rs->stash = st;
                continue;
            }
            if (loom__ustash_has_end(st) && rs->io == io) {
                if (rs->want && rs->stash == NULL)
                    rs->cb(io, NULL, 0, loom__ustash_end(st));
                else
                    loom__urecv_keep(rs, NULL, 0, true, loom__ustash_end(st));
                rs = &u->rs[fd];
            }
            loom__bytes_free(&st);
        }
        if (rs->io == io && rs->oom && rs->want && rs->stash == NULL) {
            rs->oom = 0;
            rs->cb(io, NULL, 0, LOOM_ENOMEM);
            n++;
            rs = &u->rs[fd];
        }
        /* All delivered: the socket is read again. */
        if (rs->io == io && rs->want && rs->stash == NULL && !rs->armed && !rs->ended)
            loom__urecv_queue(u, fd);
    }
    u->sdue.n = 0;
    return n;
}

/* One completion of a recv request, reaped while u->rings was `rings`;
 * returns 1 if delivered. */
static int loom__uring_received(loom__uring *u, uint32_t fd, uint32_t gen, int32_t res,
                                uint32_t flags, uint32_t rings)
{
    int bid = (flags & IORING_CQE_F_BUFFER) ? (int)(flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    char *data = bid >= 0 ? u->bufs + (size_t)bid * LOOM__URING_BUFSZ : NULL;
    int delivered = 0;
    if (fd >= u->nrs)
        goto out;
    loom__urecv *rs = &u->rs[fd];
    if (rs->io == NULL || (int32_t)(gen - rs->base) < 0)
        goto out; /* a previous owner's */
    if (!(flags & IORING_CQE_F_MORE)) {
        /* A request of this owner ended (of this ring: renew forgot the
         * old one's). */
        if (rs->live > 0 && u->rings == rings)
            rs->live--;
        if (gen == rs->gen)
            rs->armed = 0;
    }
    if (res == -ENOBUFS || res == -ECANCELED || rs->ended) {
        /* No bytes; or the end was already taken (a resumed request
         * meeting the same end). */
    } else {
        bool end = res <= 0;
        int code = res < 0 ? loom__err(-res) : 0;
        if (end)
            rs->ended = 1;
        if (rs->want && rs->stash == NULL) {
            loom_backend_io_t *io = rs->io;
            if (end)
                rs->cb(io, NULL, 0, code);
            else
                rs->cb(io, data, (size_t)res, 0);
            delivered = 1;
            rs = &u->rs[fd];
        } else {
            loom__urecv_keep(rs, data, end ? 0 : (size_t)res, end, code);
        }
    }
    if (rs->io != NULL && rs->want && rs->stash == NULL && !rs->armed && !rs->ended)
        loom__urecv_queue(u, fd);
out:
    /* A ring made again meanwhile (loom_loop_fork() in a callback of this
     * batch) was given every buffer: this one is not ours to give back. */
    if (data != NULL && u->br_ok && u->rings == rings)
        loom__uring_buf_put(u, (unsigned)bid);
    return delivered;
}

static int loom__uring_mark(loom__uring *u, uint32_t idx)
{
    if (u->slots[idx].dirty)
        return 0;
    if (u->ndirty == u->cdirty) {
        uint32_t n = u->cdirty ? u->cdirty * 2 : 64;
        uint32_t *d = realloc(u->dirty, n * sizeof *d);
        if (d == NULL)
            return LOOM_ENOMEM;
        u->dirty = d;
        u->cdirty = n;
    }
    u->dirty[u->ndirty++] = idx;
    u->slots[idx].dirty = 1;
    return 0;
}

/* Queues a cancellation of slot idx's request; its late completion carries
 * the old generation and is dropped. */
static void loom__uring_cancel(loom__uring *u, uint32_t idx)
{
    loom__uslot *s = &u->slots[idx];
    if (s->armed) {
        struct io_uring_sqe *sqe = loom__uring_sqe(u);
        if (sqe != NULL) {
            io_uring_prep_poll_remove(sqe, loom__uring_ud(idx, s->gen));
            io_uring_sqe_set_data64(sqe, LOOM__URING_UD_NONE);
            if (u->skip_success)
                sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        }
        s->armed = 0;
    }
    s->gen++;
}

/* Turns the dirty list into poll requests (no system call). */
static void loom__uring_flush(loom__uring *u)
{
    for (uint32_t i = 0; i < u->ndirty; i++) {
        uint32_t idx = u->dirty[i];
        loom__uslot *s = &u->slots[idx];
        s->dirty = 0;
        if (s->io == NULL || s->io->events == 0 || s->armed)
            continue;
        struct io_uring_sqe *sqe = loom__uring_sqe(u);
        if (sqe == NULL) {
            /* Keep the rest for the next submission. */
            memmove(u->dirty, u->dirty + i, (u->ndirty - i) * sizeof *u->dirty);
            u->ndirty -= i;
            for (uint32_t j = 0; j < u->ndirty; j++)
                u->slots[u->dirty[j]].dirty = 1;
            return;
        }
        s->armed = loom__uring_mask(s->io->events);
        io_uring_prep_poll_add(sqe, s->io->fd, s->armed);
        io_uring_sqe_set_data64(sqe, loom__uring_ud(idx, s->gen));
    }
    u->ndirty = 0;
    if (u->rdirty.n > 0 && loom__uring_bufs(u) == 0)
        (void)loom__urecv_flush(u);
    if (u->acc_dirty) {
        u->acc_dirty = false;
        for (uint32_t i = 0; i < u->nacc; i++) {
            loom__uacc *a = &u->acc[i];
            if (a->io == NULL || a->armed)
                continue;
            struct io_uring_sqe *sqe = loom__uring_sqe(u);
            if (sqe == NULL) {
                u->acc_dirty = true;
                return;
            }
            io_uring_prep_multishot_accept(sqe, a->io->fd, NULL, NULL,
                                           SOCK_NONBLOCK | SOCK_CLOEXEC);
            io_uring_sqe_set_data64(sqe, loom__uring_ud(i | LOOM__URING_ACC_BIT, a->gen));
            a->armed = true;
        }
    }
}

static int loom__uring_add(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    uint32_t fd = (uint32_t)io->fd;
    loom__uslot *t = loom__fd_table_fit(u->slots, &u->nslots, sizeof *t, fd);
    if (t == NULL)
        return LOOM_ENOMEM;
    u->slots = t;
    /* A watcher still registered on this fd number belongs to a file that
     * was closed without removing it: its request goes (as epoll's
     * registration would be replaced). */
    loom__uring_cancel(u, fd);
    int r = loom__uring_mark(u, fd);
    if (r < 0)
        return r;
    u->slots[fd].io = io;
    (void)events; /* read from io->events when the request is made */
    return 0;
}

static int loom__uring_modify(loom_loop_t *loop, loom_backend_io_t *io, unsigned events)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    uint32_t fd = (uint32_t)io->fd;
    if (u->slots[fd].armed == loom__uring_mask(events))
        return 0;
    loom__uring_cancel(u, fd);
    return loom__uring_mark(u, fd);
}

static void loom__uring_remove(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    uint32_t fd = (uint32_t)io->fd;
    if (fd >= u->nslots || u->slots[fd].io != io)
        return; /* taken over by another watcher after a close */
    bool armed = u->slots[fd].armed != 0;
    loom__uring_cancel(u, fd);
    u->slots[fd].io = NULL;
    /* Let go of the file now: the caller is about to close the fd, and the
     * peer must see it closed (GETEVENTS runs the cancellation's task work,
     * which drops the request's file reference). */
    if (armed)
        (void)io_uring_submit_and_get_events(&u->ring);
}

static unsigned loom__uring_events(int32_t res)
{
    if (res < 0)
        return LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
    unsigned ev = 0;
    if (res & (POLLIN | POLLRDHUP | POLLPRI))
        ev |= LOOM_READABLE;
    if (res & POLLOUT)
        ev |= LOOM_WRITABLE;
    if (res & (POLLERR | POLLHUP))
        ev |= LOOM_HUP | LOOM_READABLE | LOOM_WRITABLE;
    return ev;
}

/* One completion of a multishot accept; returns 1 if delivered. */
static int loom__uring_accepted(loom__uring *u, uint32_t i, uint32_t gen, int32_t res,
                                uint32_t flags)
{
    if (i >= u->nacc || u->acc[i].io == NULL || u->acc[i].gen != gen) {
        if (res >= 0)
            close(res); /* accepted after accept_stop: nobody owns it */
        return 0;
    }
    loom__uacc *a = &u->acc[i];
    if (!(flags & IORING_CQE_F_MORE)) {
        a->armed = false;
        u->acc_dirty = true;
    }
    if (res == -ECANCELED)
        return 0;
    a->cb(a->io, res >= 0 ? res : loom__err(-res));
    return 1;
}

/* Copies out up to one batch of completions, then dispatches them: the
 * callbacks may submit (a removal) and so post new completions. Sets *more
 * when the batch was full. */
static int loom__uring_reap(loom_loop_t *loop, loom__uring *u, bool *more)
{
    struct io_uring_cqe *cqes[LOOM__URING_BATCH];
    unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, LOOM__URING_BATCH);
    for (unsigned i = 0; i < n; i++) {
        u->done[i].ud = cqes[i]->user_data;
        u->done[i].res = cqes[i]->res;
        u->done[i].flags = cqes[i]->flags;
    }
    io_uring_cq_advance(&u->ring, n);
    *more = n == LOOM__URING_BATCH;
    int dispatched = 0;
    uint32_t rings = u->rings;
    for (unsigned i = 0; i < n; i++) {
        uint64_t ud = u->done[i].ud;
        if (ud == LOOM__URING_UD_NONE)
            continue;
        uint32_t idx = (uint32_t)ud, gen = (uint32_t)(ud >> 32);
        if (idx & LOOM__URING_RCV_BIT) {
            dispatched += loom__uring_received(u, idx & ~LOOM__URING_RCV_BIT, gen, u->done[i].res,
                                               u->done[i].flags, rings);
            continue;
        }
        if (idx & LOOM__URING_ACC_BIT) {
            dispatched += loom__uring_accepted(u, idx & ~LOOM__URING_ACC_BIT, gen, u->done[i].res,
                                               u->done[i].flags);
            continue;
        }
        if (idx >= u->nslots)
            continue;
        loom__uslot *s = &u->slots[idx];
        if (s->gen != gen || s->io == NULL)
            continue; /* stale: cancelled, changed or removed */
        s->armed = 0;
        /* Re-armed at the next submission unless the callback removes it. */
        if (loom__uring_mark(u, idx) < 0)
            continue;
        loom_backend_io_ready(loop, s->io, loom__uring_events(u->done[i].res));
        dispatched++;
    }
    return dispatched;
}

/* Replaces the ring by a new one and arms every watcher again. */
static int loom__uring_renew(loom__uring *u)
{
    if (u->ring_ok)
        io_uring_queue_exit(&u->ring);
    u->ring_ok = false;
    int r = loom__uring_setup(u);
    if (r < 0)
        return loom__err(-r);
    u->rings++;
    u->ndirty = 0;
    for (uint32_t i = 0; i < u->nslots; i++) {
        u->slots[i].armed = 0;
        u->slots[i].dirty = 0;
    }
    for (uint32_t i = 0; i < u->nslots; i++)
        if (u->slots[i].io != NULL && (r = loom__uring_mark(u, i)) < 0)
            return r;
    for (uint32_t i = 0; i < u->nacc; i++) {
        u->acc[i].armed = false;
        u->acc[i].gen++; /* the old ring's completions are gone with it */
    }
    u->acc_dirty = true;
    /* The provided buffers go to the new ring; every reader's request is
     * made again (the old ring's completions are gone with it). */
    u->br_ok = false;
    u->rdirty.n = 0;
    for (uint32_t i = 0; i < u->nrs; i++) {
        loom__urecv *rs = &u->rs[i];
        rs->armed = 0;
        rs->queued = 0;
        rs->live = 0;
        rs->gen++;
        if (rs->io != NULL && rs->want && rs->stash == NULL && !rs->ended)
            loom__urecv_queue(u, i);
    }
    if (u->br != NULL && (r = loom__uring_bufs(u)) < 0)
        return r;
    return 0;
}

/* The child shares the parent's ring (its memory is MAP_SHARED). */
static int loom__uring_fork(loom_loop_t *loop)
{
    return loom__uring_renew(loom_backend_loop_priv(loop));
}

static int loom__uring_poll(loom_loop_t *loop, int timeout_ms)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    loom__uring_flush(u);
    if (u->sdue.n > 0)
        timeout_ms = 0; /* kept bytes to deliver */
    int r;
    if (timeout_ms == 0) {
        /* Without DEFER_TASKRUN, completions show up in the ring without
         * a system call; with it, only inside io_uring_enter. */
        if (io_uring_sq_ready(&u->ring) || u->defer || io_uring_cq_has_overflow(&u->ring))
            r = io_uring_submit_and_get_events(&u->ring);
        else
            r = 0;
    } else {
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                       .tv_nsec = (long long)(timeout_ms % 1000) * 1000000};
        r = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, timeout_ms > 0 ? &ts : NULL, NULL);
    }
    if (r == -EEXIST && u->single_issuer) {
        /* A SINGLE_ISSUER ring belongs to the thread that made it: the
         * loop was created on one thread and runs on another. Make this
         * thread a ring of its own; the next poll submits to it. What the
         * old ring already completed (bytes read into provided buffers,
         * sockets accepted, posted by an enter on the old thread) would go
         * with it: it is dispatched first, kept bytes before it. Its
         * callbacks cannot submit to the old ring from here, so it only
         * drains. */
        u->single_issuer = false;
        int total = 0;
        loom_update_time(loop);
        if (u->sdue.n > 0)
            total += loom__urecv_deliver(u);
        bool more;
        while (io_uring_cq_ready(&u->ring) > 0)
            total += loom__uring_reap(loop, u, &more);
        r = loom__uring_renew(u);
        return r < 0 ? r : total;
    }
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
        return loom__err(-r);
    int total = 0;
    if (u->sdue.n > 0) {
        /* Before the completions: they come after these bytes. */
        loom_update_time(loop);
        total += loom__urecv_deliver(u);
    }
    if (io_uring_cq_ready(&u->ring) > 0) {
        loom_update_time(loop);
        /* Bounded: completions posted by the callbacks themselves wait for
         * the next iteration, like the rest of epoll's batch. */
        bool more = true;
        for (int round = 0; more && round < 16; round++)
            total += loom__uring_reap(loop, u, &more);
    }
    /* An embedding poller sleeps on the ring fd after a non-blocking run:
     * the re-arms must be in the kernel by then. */
    if (timeout_ms == 0 && (u->ndirty || u->rdirty.n)) {
        loom__uring_flush(u);
        (void)io_uring_submit(&u->ring);
    }
    return total;
}

static int loom__uring_accept_start(loom_loop_t *loop, loom_backend_io_t *io,
                                    loom_backend_accept_cb cb)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    if (io == NULL || io->fd < 0 || cb == NULL)
        return LOOM_EINVAL;
    uint32_t slot = u->nacc;
    for (uint32_t i = 0; i < u->nacc; i++) {
        if (u->acc[i].io == io) {
            u->acc[i].cb = cb;
            return 0;
        }
        if (u->acc[i].io == NULL && slot == u->nacc)
            slot = i;
    }
    if (slot == u->nacc) {
        loom__uacc *t = realloc(u->acc, (u->nacc + 1) * sizeof *t);
        if (t == NULL)
            return LOOM_ENOMEM;
        memset(&t[u->nacc], 0, sizeof *t);
        u->acc = t;
        u->nacc++;
    }
    u->acc[slot].io = io;
    u->acc[slot].cb = cb;
    u->acc[slot].armed = false;
    u->acc_dirty = true; /* armed with the next submission */
    return 0;
}

static void loom__uring_accept_stop(loom_loop_t *loop, loom_backend_io_t *io)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    for (uint32_t i = 0; i < u->nacc; i++) {
        loom__uacc *a = &u->acc[i];
        if (a->io != io)
            continue;
        bool armed = a->armed;
        if (armed) {
            struct io_uring_sqe *sqe = loom__uring_sqe(u);
            if (sqe != NULL) {
                io_uring_prep_cancel64(sqe, loom__uring_ud(i | LOOM__URING_ACC_BIT, a->gen), 0);
                io_uring_sqe_set_data64(sqe, LOOM__URING_UD_NONE);
                if (u->skip_success)
                    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
            }
        }
        a->gen++;
        a->armed = false;
        a->io = NULL;
        a->cb = NULL;
        /* The request holds the listen file: drop it before the caller
         * closes the fd, so the port is free at once. */
        if (armed)
            (void)io_uring_submit_and_get_events(&u->ring);
        return;
    }
}

/* Embedding (loom_backend_timeout): queued requests go into the kernel now;
 * kept bytes to deliver or completions already posted mean no sleep. */
static int loom__uring_flush_op(loom_loop_t *loop)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    loom__uring_flush(u);
    if (io_uring_sq_ready(&u->ring) > 0)
        (void)io_uring_submit(&u->ring);
    return u->sdue.n > 0 || io_uring_cq_ready(&u->ring) > 0;
}

static int loom__uring_fd(loom_loop_t *loop)
{
    loom__uring *u = loom_backend_loop_priv(loop);
    return u->ring.ring_fd;
}

#define LOOM__URING_OPS                                                                            \
    .name = "io_uring", .loop_size = sizeof(loom__uring), .io_size = 0, .init = loom__uring_init,  \
    .destroy = loom__uring_destroy, .io_add = loom__uring_add, .io_modify = loom__uring_modify,    \
    .io_remove = loom__uring_remove, .poll = loom__uring_poll, .wakeup = NULL,                     \
    .backend_fd = loom__uring_fd, .arm = NULL, .fork = loom__uring_fork,                           \
    .flush = loom__uring_flush_op

const loom_backend_t loom__backend_io_uring = {
    LOOM__URING_OPS,
    .caps = LOOM_BACKEND_CAP_FD | LOOM_BACKEND_CAP_ONESHOT_FD,
};

/* What a loop runs on once init found multishot accept in the kernel. */
static const loom_backend_t loom__backend_io_uring_accept = {
    LOOM__URING_OPS,
    .caps = LOOM_BACKEND_CAP_FD | LOOM_BACKEND_CAP_ONESHOT_FD | LOOM_BACKEND_CAP_ACCEPT,
    .accept_start = loom__uring_accept_start,
    .accept_stop = loom__uring_accept_stop,
};

/* ... and recv with provided buffers too (a buffer ring, 5.19). */
static const loom_backend_t loom__backend_io_uring_recv = {
    LOOM__URING_OPS,
    .caps = LOOM_BACKEND_CAP_FD | LOOM_BACKEND_CAP_ONESHOT_FD | LOOM_BACKEND_CAP_ACCEPT |
            LOOM_BACKEND_CAP_RECV,
    .accept_start = loom__uring_accept_start,
    .accept_stop = loom__uring_accept_stop,
    .recv_start = loom__uring_recv_start,
    .recv_stop = loom__uring_recv_stop,
    .recv_drop = loom__uring_recv_drop,
};

#ifdef LOOM_BACKEND_PLUGIN
__attribute__((visibility("default"))) const loom_backend_t *loom_backend_plugin(void);
const loom_backend_t *loom_backend_plugin(void)
{
    return &loom__backend_io_uring;
}
#endif
