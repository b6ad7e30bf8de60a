/* bench/common/bench.h - small helpers shared by the benchmark programs (the
 * peers, the load generators and the timer benchmarks). Header-only: every
 * helper is static inline so that a program that does not use one does not
 * trip -Wunused-function.
 *
 * None of this is part of libloom. The programs print their result as one
 * JSON line on stdout and their complaints on stderr; bench/harness.py reads
 * the JSON.
 */
#ifndef LOOM_BENCH_H
#define LOOM_BENCH_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The fixed response every HTTP peer sends: cl-async's benchmark body. */
#define BENCH_HTTP_BODY "omglolwtf"
#define BENCH_HTTP_RESPONSE                                                                        \
    "HTTP/1.1 200 OK\r\n"                                                                          \
    "Content-Type: text/plain\r\n"                                                                 \
    "Content-Length: 9\r\n"                                                                        \
    "\r\n" BENCH_HTTP_BODY

static inline uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CPU time (user + system) consumed by the whole process so far. */
static inline uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Raises the soft open-file limit to the hard limit; returns the new limit. */
static inline long bench_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

static inline void bench_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Creates a listening TCP socket on 127.0.0.1:port with SO_REUSEADDR,
 * TCP_NODELAY (Linux copies it to every accepted socket) and, if asked,
 * SO_REUSEPORT. `flags` is or'ed into the socket type (SOCK_NONBLOCK).
 * Returns the fd, or -1 after printing why. */
static inline int bench_listen(int port, int reuseport, int flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (fd < 0) {
        perror("socket");
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    bench_nodelay(fd);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("bind");
        close(fd);
        return -1;
    }
    if (listen(fd, 4096) != 0) {
        perror("listen");
        close(fd);
        return -1;
    }
    return fd;
}

/* Arguments are "--name value" pairs; bench_arg() returns the value of
 * `name`, or `def` when absent. bench_flag() tells whether a bare flag is
 * present. */
static inline const char *bench_arg(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return def;
}

static inline int bench_flag(int argc, char **argv, const char *name)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

static inline long bench_arg_long(int argc, char **argv, const char *name, long def)
{
    const char *v = bench_arg(argc, argv, name, NULL);
    return v ? strtol(v, NULL, 10) : def;
}

static inline double bench_arg_double(int argc, char **argv, const char *name, double def)
{
    const char *v = bench_arg(argc, argv, name, NULL);
    return v ? strtod(v, NULL) : def;
}

/* Server CPU time in seconds: utime + stime of each pid in a comma-separated
 * list, read from /proc/<pid>/stat. Returns -1 if none could be read. */
static inline double bench_proc_cpu_s(const char *pids)
{
    double total = -1;
    long tck = sysconf(_SC_CLK_TCK);
    const char *p = pids;
    while (p && *p) {
        long pid = strtol(p, NULL, 10);
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            /* The command name may hold spaces: fields start after ')'. */
            char *s = strrchr(buf, ')');
            unsigned long ut = 0, st = 0;
            if (s && sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
                            &st) == 2) {
                if (total < 0)
                    total = 0;
                total += (double)(ut + st) / (double)tck;
            }
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return total;
}

/* Source addresses for load generators that open many connections to one
 * server port. With a single source address the kernel's ephemeral port
 * search walks the ports already in use for that destination, and connect()
 * grows to milliseconds past ~15,000 connections; rotating over 64 loopback
 * source addresses 127.<net>.0.1-64 keeps it O(1). net 0 means no binding.
 * Returns 0, or -1 if bind() failed. */
static inline int bench_bind_source(int fd, int net, unsigned *turn)
{
    if (net <= 0)
        return 0;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl((127u << 24) | ((unsigned)net << 16) | (*turn % 64u + 1u));
    ++*turn;
    return bind(fd, (struct sockaddr *)&sa, sizeof sa);
}

/* A small deterministic PRNG (xorshift64*), so that every timer benchmark
 * uses the same deadlines whatever the C library. */
static inline uint64_t bench_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

#endif
