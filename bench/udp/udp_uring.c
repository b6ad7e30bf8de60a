/* bench/udp/udp_uring.c - the UDP echo limit probe on io_uring: what an
 * io_uring design can reach at best, to compare with the recvmmsg/sendmmsg
 * probe (bench-udp-raw) before building it into a library.
 *
 * One socket, one ring (SINGLE_ISSUER | DEFER_TASKRUN where the kernel has
 * them), one multishot IORING_OP_RECVMSG with provided buffers: each
 * datagram arrives as a completion without a system call of its own. Each
 * one is answered by an IORING_OP_SENDMSG (CQE_SKIP_SUCCESS) that goes into
 * the kernel with the next io_uring_enter, the same call that waits: one
 * system call per wakeup, against epoll_wait + recvmmsg + sendmmsg. No
 * library, no callbacks; the payload is copied once into the send slot (its
 * buffer goes straight back to the ring).
 *
 *   bench-udp-uring --port P
 */
#include <liburing.h>
#include <signal.h>

#include "bench.h"

#define NBUFS   256  /* provided buffers, a power of 2 */
#define BUFSZ   2048 /* bytes per buffer: header, name and payload */
#define NSLOTS  4096 /* send slots (ring of them; > CQ batch) */
#define RECV_UD 1
#define SEND_UD 2

typedef struct {
    struct msghdr m;
    struct iovec iov;
    struct sockaddr_in to;
    char data[BUFSZ];
} slot_t;

static int setup(struct io_uring *ring)
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
        p.cq_entries = 8192;
        int r = io_uring_queue_init_params(256, ring, &p);
        if (r == 0)
            return 0;
        if (r != -EINVAL)
            return r;
    }
    return -EINVAL;
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--port", 9005);
    if (bench_flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: bench-udp-uring --port P\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("udp-uring: bind");
        return 1;
    }
    struct io_uring ring;
    int r = setup(&ring);
    if (r < 0) {
        fprintf(stderr, "udp-uring: io_uring: %s\n", strerror(-r));
        return 1;
    }
    void *brmem = NULL;
    char *bufs = malloc((size_t)NBUFS * BUFSZ);
    slot_t *slots = calloc(NSLOTS, sizeof *slots);
    if (posix_memalign(&brmem, 4096, NBUFS * sizeof(struct io_uring_buf)) != 0 || !bufs || !slots) {
        fprintf(stderr, "udp-uring: out of memory\n");
        return 1;
    }
    struct io_uring_buf_ring *br = brmem;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = 0};
    if ((r = io_uring_register_buf_ring(&ring, &reg, 0)) < 0) {
        fprintf(stderr, "udp-uring: provided buffers: %s\n", strerror(-r));
        return 1;
    }
    io_uring_buf_ring_init(br);
    int mask = io_uring_buf_ring_mask(NBUFS);
    for (int i = 0; i < NBUFS; i++)
        io_uring_buf_ring_add(br, bufs + (size_t)i * BUFSZ, BUFSZ, (unsigned short)i, mask, i);
    io_uring_buf_ring_advance(br, NBUFS);
    struct msghdr tmpl = {.msg_namelen = sizeof(struct sockaddr_in)};
    bool armed = false;
    unsigned next = 0;
    for (;;) {
        if (!armed) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (sqe == NULL) {
                io_uring_submit(&ring);
                continue;
            }
            io_uring_prep_recvmsg_multishot(sqe, fd, &tmpl, 0);
            sqe->flags |= IOSQE_BUFFER_SELECT;
            sqe->buf_group = 0;
            io_uring_sqe_set_data64(sqe, RECV_UD);
            armed = true;
        }
        r = io_uring_submit_and_wait(&ring, 1);
        if (r < 0 && r != -EINTR && r != -ETIME && r != -EAGAIN && r != -EBUSY) {
            fprintf(stderr, "udp-uring: io_uring_enter: %s\n", strerror(-r));
            return 1;
        }
        struct io_uring_cqe *cqes[256];
        unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 256);
        for (unsigned i = 0; i < n; i++) {
            struct io_uring_cqe *c = cqes[i];
            if (c->user_data != RECV_UD)
                continue; /* a failed send: dropped, as UDP does */
            if (!(c->flags & IORING_CQE_F_MORE))
                armed = false; /* ENOBUFS or an error: armed again */
            if (!(c->flags & IORING_CQE_F_BUFFER))
                continue;
            unsigned bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
            char *b = bufs + (size_t)bid * BUFSZ;
            struct io_uring_recvmsg_out *o =
                c->res > 0 ? io_uring_recvmsg_validate(b, c->res, &tmpl) : NULL;
            if (o != NULL && o->namelen == sizeof(struct sockaddr_in)) {
                slot_t *s = &slots[next++ % NSLOTS];
                unsigned len = io_uring_recvmsg_payload_length(o, c->res, &tmpl);
                memcpy(&s->to, io_uring_recvmsg_name(o), sizeof s->to);
                memcpy(s->data, io_uring_recvmsg_payload(o, &tmpl), len);
                s->iov.iov_base = s->data;
                s->iov.iov_len = len;
                memset(&s->m, 0, sizeof s->m);
                s->m.msg_name = &s->to;
                s->m.msg_namelen = sizeof s->to;
                s->m.msg_iov = &s->iov;
                s->m.msg_iovlen = 1;
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                if (sqe == NULL) {
                    io_uring_submit(&ring);
                    sqe = io_uring_get_sqe(&ring);
                }
                if (sqe != NULL) {
                    io_uring_prep_sendmsg(sqe, fd, &s->m, 0);
                    io_uring_sqe_set_data64(sqe, SEND_UD);
                    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
                }
            }
            io_uring_buf_ring_add(br, b, BUFSZ, (unsigned short)bid, mask, 0);
            io_uring_buf_ring_advance(br, 1);
        }
        io_uring_cq_advance(&ring, n);
    }
}
