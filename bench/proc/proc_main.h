/* bench/proc/proc_main.h - the child-process benchmarks, shared by loom's
 * program and libuv's (each defines IMPL_NAME, impl_spawn_true() and
 * impl_pipe() and includes this once).
 *
 *   --spawn N   spawn /bin/true and wait for its exit, N times, one after
 *               the other: spawns per second (wall clock) and the parent's
 *               CPU per spawn;
 *   --pipe B    spawn this program as `--writer B`, which writes B bytes of
 *               zeros to its stdout (a pipe: a socketpair for both loom and
 *               libuv) in 256 KiB writes, and read them all: MiB per
 *               parent CPU-second, and per parent+child CPU-second;
 *   --writer B  (the child of --pipe).
 * One JSON line on stdout. */
#ifndef BENCH_PROC_MAIN_H
#define BENCH_PROC_MAIN_H

#include <sched.h>
#include <sys/resource.h>

#include "bench.h"

static const char *self_path;

/* Runs n spawn-and-wait rounds; returns 0 or -1. */
static int impl_spawn_true(long n);
/* Reads `bytes` from a `--writer bytes` child; returns the bytes read, or
 * -1. */
static long long impl_pipe(long long bytes);

static uint64_t children_cpu_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (uint64_t)ru.ru_utime.tv_sec * 1000000000u + (uint64_t)ru.ru_utime.tv_usec * 1000u +
           (uint64_t)ru.ru_stime.tv_sec * 1000000000u + (uint64_t)ru.ru_stime.tv_usec * 1000u;
}

static int writer(long long bytes)
{
    static char buf[256 * 1024];
    /* The harness puts the writer on the load core, the reader (the
     * program measured) stays on the server core. */
    const char *core = getenv("BENCH_WRITER_CORE");
    if (core && *core) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(atoi(core), &set);
        sched_setaffinity(0, sizeof set, &set);
    }
    while (bytes > 0) {
        size_t n = bytes < (long long)sizeof buf ? (size_t)bytes : sizeof buf;
        ssize_t w = write(1, buf, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        bytes -= w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 3 && strcmp(argv[1], "--writer") == 0)
        return writer(atoll(argv[2]));
    if (argc == 3 && strcmp(argv[1], "--spawn") == 0) {
        long n = atol(argv[2]);
        uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns();
        if (impl_spawn_true(n) != 0)
            return 1;
        double wall = (double)(bench_now_ns() - t0) / 1e9;
        double cpu = (double)(bench_cpu_ns() - c0) / 1e9;
        printf("{\"impl\":\"%s\",\"spawns\":%ld,\"wall_s\":%.4f,\"spawns_per_s\":%.1f,"
               "\"parent_cpu_us_per_spawn\":%.2f}\n",
               IMPL_NAME, n, wall, (double)n / wall, cpu * 1e6 / (double)n);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--pipe") == 0) {
        long long bytes = atoll(argv[2]);
        uint64_t t0 = bench_now_ns(), c0 = bench_cpu_ns(), k0 = children_cpu_ns();
        long long got = impl_pipe(bytes);
        if (got != bytes) {
            fprintf(stderr, "%s: read %lld of %lld bytes\n", IMPL_NAME, got, bytes);
            return 1;
        }
        double wall = (double)(bench_now_ns() - t0) / 1e9;
        double cpu = (double)(bench_cpu_ns() - c0) / 1e9;
        double kid = (double)(children_cpu_ns() - k0) / 1e9;
        double mib = (double)bytes / (1024.0 * 1024.0);
        printf("{\"impl\":\"%s\",\"bytes\":%lld,\"wall_s\":%.4f,\"parent_cpu_s\":%.4f,"
               "\"child_cpu_s\":%.4f,\"mib_per_cpu_s\":%.1f,\"mib_per_total_cpu_s\":%.1f,"
               "\"mib_per_s\":%.1f}\n",
               IMPL_NAME, bytes, wall, cpu, kid, mib / cpu, mib / (cpu + kid), mib / wall);
        return 0;
    }
    fprintf(stderr, "usage: %s --spawn N | --pipe BYTES\n", argv[0]);
    return 2;
}

#endif
