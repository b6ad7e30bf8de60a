/* tests/net/test_tcp_util.h - small helpers shared by the test_tcp_* tests. */
#ifndef LOOM_TEST_TCP_UTIL_H
#define LOOM_TEST_TCP_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "test.h"

/* Counts events by kind; remembers the last one. */
typedef struct tcp_events {
    int count[LOOM_EV__COUNT];
    int last_kind;
    int last_code;
    void *last_object;
} tcp_events;

static inline void tcp_count_event(const loom_event_t *ev, tcp_events *e)
{
    e->count[ev->kind]++;
    e->last_kind = (int)ev->kind;
    e->last_code = ev->code;
    e->last_object = ev->object;
}

/* FNV-1a, to compare streams without keeping them. */
static inline uint64_t tcp_fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}
#define TCP_FNV_INIT 14695981039346656037ull

/* A deterministic pattern byte for offset i. */
static inline unsigned char tcp_pattern(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* Runs the loop until *flag becomes non-zero or `ms` pass. */
static inline void tcp_run_until(loom_loop_t *loop, volatile int *flag, unsigned ms)
{
    uint64_t end = loom_now(loop) + ms;
    while (!*flag && loom_now(loop) < end) {
        int r = loom_run(loop, LOOM_RUN_ONCE);
        CHECK(r >= 0);
    }
}

#endif
