/* bench/ws/micro_ws.c - micro-benchmarks of the pure WebSocket layer:
 * masking (against a byte-wise loop), UTF-8 validation (ASCII and mixed
 * text), and the frame parser on 64-byte masked frames.
 *
 *   bench-ws-micro [--seconds S]     (default 0.3 s per row)
 *
 * Prints one line per row: name, bytes per call, and MiB/s (or frames/s).
 * Single-threaded, no I/O: run it pinned (taskset -c 0) on a quiet machine.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loom/ws_frame.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile uint8_t sink;

/* The byte-wise reference that word-at-a-time masking replaces. */
static unsigned mask_bytewise(uint8_t *p, size_t n, const uint8_t key[4], unsigned off)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= key[(off + i) & 3];
    return (unsigned)((off + n) & 3);
}

typedef void (*fn_t)(uint8_t *buf, size_t n);

static const uint8_t KEY[4] = {1, 2, 3, 4};

static void f_mask(uint8_t *b, size_t n)
{
    loom_ws_mask(b, n, KEY, 1);
}
static void f_mask_ref(uint8_t *b, size_t n)
{
    mask_bytewise(b, n, KEY, 1);
}
static uint8_t copy_dst[1 << 17];
static void f_mask_copy(uint8_t *b, size_t n)
{
    loom_ws_mask_copy(copy_dst, b, n, KEY, 0);
}
static void f_utf8(uint8_t *b, size_t n)
{
    loom_ws_utf8_t u = {0};
    if (loom_ws_utf8_feed(&u, b, n, NULL) != 0)
        abort();
}

static double run(const char *name, fn_t f, uint8_t *buf, size_t n, double secs)
{
    long iters = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 64; i++)
            f(buf, n);
        iters += 64;
        t = now();
    } while (t - t0 < secs);
    sink = buf[0];
    double mibs = (double)iters * (double)n / (t - t0) / (1024.0 * 1024.0);
    printf("%-24s %7zu B  %10.0f MiB/s\n", name, n, mibs);
    return mibs;
}

int main(int argc, char **argv)
{
    double secs = 0.3;
    if (argc == 3 && strcmp(argv[1], "--seconds") == 0)
        secs = atof(argv[2]);
    static uint8_t buf[1 << 17];
    static const size_t sizes[] = {64, 1024, 65536};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)('a' + i % 26);
    for (size_t s = 0; s < 3; s++) {
        run("mask (loom)", f_mask, buf + 1, sizes[s], secs);
        run("mask (byte-wise)", f_mask_ref, buf + 1, sizes[s], secs);
        run("mask_copy (loom)", f_mask_copy, buf + 1, sizes[s], secs);
    }
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)('a' + i % 26);
    for (size_t s = 0; s < 3; s++)
        run("utf8 ascii", f_utf8, buf, sizes[s], secs);
    /* Mixed: Greek (2-byte) words between ASCII. */
    static const char *greek = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5 text ";
    size_t gl = strlen(greek);
    for (size_t i = 0; i + gl <= sizeof buf; i += gl)
        memcpy(buf + i, greek, gl);
    size_t mixed = (65536 / gl) * gl;
    run("utf8 mixed", f_utf8, buf, mixed, secs);

    /* The parser on back-to-back 64-byte masked binary frames. */
    enum { FRAMES = 1024, PAY = 64 };
    static uint8_t wire[FRAMES * (PAY + 6)], work[FRAMES * (PAY + 6)];
    size_t wn = 0;
    for (int i = 0; i < FRAMES; i++) {
        loom_ws_frame_t f = {
            .fin = 1, .opcode = 2, .masked = 1, .payload_len = PAY, .mask = {9, 8, 7, 6}};
        wn += (size_t)loom_ws_frame_header(wire + wn, &f);
        memset(wire + wn, 'x', PAY);
        loom_ws_mask(wire + wn, PAY, f.mask, 0);
        wn += PAY;
    }
    loom_ws_parser_t p;
    loom_ws_parser_init(&p, &(loom_ws_parser_opts_t){.role = LOOM_WS_ROLE_SERVER});
    long frames = 0;
    double t0 = now(), t;
    do {
        memcpy(work, wire, wn);
        size_t pos = 0;
        while (pos < wn) {
            loom_ws_parse_out_t out;
            int r = loom_ws_parse(&p, work + pos, wn - pos, &out);
            if (r <= 0)
                abort();
            pos += (size_t)r;
            frames += (out.flags & LOOM_WS_OUT_FRAME_END) != 0;
        }
        t = now();
    } while (t - t0 < secs);
    printf("%-24s %7d B  %10.1f M frames/s (incl. a memcpy of the input)\n", "parse 64 B masked",
           PAY, (double)frames / (t - t0) / 1e6);
    return 0;
}
