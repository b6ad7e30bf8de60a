/* bench/peers/udp_uv.c - the libuv UDP peer, written as libuv's docs
 * suggest for speed.
 *
 * Echo server (default): uv_udp_init_ex(..., AF_INET | UV_UDP_RECVMMSG), an
 * alloc_cb handing out a buffer of 16 datagram slots (libuv reads with
 * recvmmsg into 64 KiB chunks of it and calls recv_cb per datagram with
 * UV_UDP_MMSG_CHUNK), and a uv_udp_send() of a copy per datagram: sends made
 * while libuv processes a read are queued and flushed together (sendmmsg).
 *
 *   bench-udp-uv --port P
 *
 * Bulk sender (--bulk): N datagrams of S bytes to 127.0.0.1:PORT with 256
 * uv_udp_send() requests in flight (each completion queues the next), then
 * reports its CPU time as bench-udp-bulk does.
 *
 *   bench-udp-uv --bulk --to PORT [--count 200000] [--size 1400]
 */
#include <uv.h>

#include "bench.h"

#define SLOTS    16
#define INFLIGHT 256

typedef struct {
    uv_udp_send_t req;
    uv_buf_t buf;
    char data[];
} echo_req_t;

static uv_udp_t udp;

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    size_t n = SLOTS * 65536;
    buf->base = malloc(n);
    buf->len = n;
}

static void echo_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    free(req);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    if (nread > 0 && addr) {
        echo_req_t *r = malloc(sizeof *r + (size_t)nread);
        memcpy(r->data, buf->base, (size_t)nread);
        r->buf = uv_buf_init(r->data, (unsigned)nread);
        uv_udp_send(&r->req, h, &r->buf, 1, addr, echo_sent);
    }
    /* Chunks of a recvmmsg batch share the buffer: it is freed once, by the
     * call without UV_UDP_MMSG_CHUNK. */
    if (!(flags & UV_UDP_MMSG_CHUNK))
        free(buf->base);
}

/* --- Bulk -------------------------------------------------------------------------- */
static long count, sent, done;
static uv_buf_t payload;
static struct sockaddr_in dest;
static uv_udp_send_t reqs[INFLIGHT];

static void bulk_sent(uv_udp_send_t *req, int status)
{
    (void)status;
    done++;
    if (sent < count) {
        sent++;
        uv_udp_send(req, &udp, &payload, 1, (struct sockaddr *)&dest, bulk_sent);
    } else if (done == count) {
        uv_close((uv_handle_t *)&udp, NULL);
    }
}

static int bulk(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--to", 0);
    count = bench_arg_long(argc, argv, "--count", 200000);
    size_t size = (size_t)bench_arg_long(argc, argv, "--size", 1400);
    static char buf[65536];
    if (port <= 0 || size > sizeof buf)
        return 2;
    memset(buf, 'b', size);
    payload = uv_buf_init(buf, (unsigned)size);
    uv_ip4_addr("127.0.0.1", port, &dest);
    uv_loop_t *loop = uv_default_loop();
    uv_udp_init(loop, &udp);
    struct sockaddr_in any;
    uv_ip4_addr("127.0.0.1", 0, &any);
    uv_udp_bind(&udp, (struct sockaddr *)&any, 0);
    int big = 4 << 20;
    uv_send_buffer_size((uv_handle_t *)&udp, &big);
    uint64_t c0 = bench_cpu_ns(), t0 = bench_now_ns();
    for (int i = 0; i < INFLIGHT && sent < count; i++) {
        sent++;
        uv_udp_send(&reqs[i], &udp, &payload, 1, (struct sockaddr *)&dest, bulk_sent);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uint64_t c1 = bench_cpu_ns(), t1 = bench_now_ns();
    double cpu = (double)(c1 - c0) / 1e9, secs = (double)(t1 - t0) / 1e9;
    double bytes = (double)done * (double)size;
    printf("{\"bytes\":%.0f,\"seconds\":%.3f,\"cpu_s\":%.3f,\"mib_per_cpu_s\":%.1f}\n", bytes, secs,
           cpu, bytes / 1048576.0 / cpu);
    return 0;
}

int main(int argc, char **argv)
{
    if (bench_flag(argc, argv, "--help")) {
        fprintf(stderr, "usage: bench-udp-uv --port P | --bulk --to PORT [--count N] "
                        "[--size S]\n");
        return 2;
    }
    if (bench_flag(argc, argv, "--bulk"))
        return bulk(argc, argv);
    int port = (int)bench_arg_long(argc, argv, "--port", 9005);
    uv_loop_t *loop = uv_default_loop();
    int r = uv_udp_init_ex(loop, &udp, AF_INET | UV_UDP_RECVMMSG);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    if (r == 0)
        r = uv_udp_bind(&udp, (struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_udp_recv_start(&udp, alloc_cb, recv_cb);
    if (r != 0) {
        fprintf(stderr, "udp-uv: %s\n", uv_strerror(r));
        return 1;
    }
    return uv_run(loop, UV_RUN_DEFAULT);
}
