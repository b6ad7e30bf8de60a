/* bench/udp/udp_bulk.c - loom's bulk UDP sender: N datagrams of S bytes from
 * one socket to 127.0.0.1:PORT (a bench-udp-load --sink), as fast as the
 * queue allows: send until a send returns 1 (high water), go on from
 * on_drain. Reports the sender's own CPU time.
 *
 *   bench-udp-bulk --to PORT [--count 200000] [--size 1400] [--no-gso]
 *   prints {"bytes":B,"seconds":S,"cpu_s":C,"mib_per_cpu_s":M,"gso_batches":G,"send_calls":K}
 */
#include "bench.h"
#include "loom.h"

static loom_udp_t *udp;
static struct sockaddr_storage to;
static long count, sent;
static size_t size;
static char buf[65536];
static loom_timer_t *done_timer;
static loom_udp_stats_t final;
static uint64_t c1, t1;

static void pump(void)
{
    while (sent < count) {
        int r = loom_udp_send(udp, (struct sockaddr *)&to, buf, size);
        if (r < 0)
            return; /* the limit: wait for on_drain */
        sent++;
        if (r == 1)
            return;
    }
}

static void on_drain(loom_udp_t *u, void *data)
{
    (void)u;
    (void)data;
    pump();
}

static void on_tick(loom_timer_t *t, void *data)
{
    (void)data;
    if (sent < count) {
        pump();
        return;
    }
    if (loom_udp_queued(udp) == 0) {
        c1 = bench_cpu_ns();
        t1 = bench_now_ns();
        loom_udp_stats(udp, &final);
        loom_timer_close(t);
        loom_udp_close(udp);
    }
}

int main(int argc, char **argv)
{
    int port = (int)bench_arg_long(argc, argv, "--to", 0);
    count = bench_arg_long(argc, argv, "--count", 200000);
    size = (size_t)bench_arg_long(argc, argv, "--size", 1400);
    if (port <= 0 || size < 1 || size > sizeof buf) {
        fprintf(stderr, "usage: bench-udp-bulk --to PORT [--count N] [--size S] [--no-gso]\n");
        return 2;
    }
    memset(buf, 'b', size);
    loom_loop_t *loop;
    if (loom_loop_new(&loop, NULL) < 0)
        return 1;
    loom_udp_addr("127.0.0.1", port, &to, NULL);
    int r = loom_udp_bind(loop, "127.0.0.1", 0,
                          &(loom_udp_opts){.on_drain = on_drain,
                                           .no_gso = bench_flag(argc, argv, "--no-gso"),
                                           .sndbuf = 4 << 20},
                          &udp);
    if (r < 0) {
        fprintf(stderr, "bench-udp-bulk: %s\n", loom_strerror(r));
        return 1;
    }
    loom_timer_new(loop, &done_timer, on_tick, NULL);
    loom_timer_start(done_timer, 1, 1);
    uint64_t c0 = bench_cpu_ns(), t0 = bench_now_ns();
    pump();
    /* on_tick reads the counters and the clocks once the queue is sent. */
    loom_run(loop, LOOM_RUN_DEFAULT);
    loom_loop_free(loop);
    loom_udp_stats_t st = final;
    double cpu = (double)(c1 - c0) / 1e9, secs = (double)(t1 - t0) / 1e9;
    double bytes = (double)st.sent_bytes;
    printf("{\"bytes\":%.0f,\"seconds\":%.3f,\"cpu_s\":%.3f,\"mib_per_cpu_s\":%.1f,"
           "\"gso_batches\":%llu,\"send_calls\":%llu}\n",
           bytes, secs, cpu, bytes / 1048576.0 / cpu, (unsigned long long)st.gso_batches,
           (unsigned long long)st.send_calls);
    return 0;
}
