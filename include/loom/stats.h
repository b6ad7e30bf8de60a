/* loom/stats.h - cl-async's `stats`: counters cheap enough to leave on. */
#ifndef LOOM_STATS_H
#define LOOM_STATS_H

#include <stdint.h>

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_stats {
    uint64_t tcp_incoming;       /* incoming TCP connections open now */
    uint64_t tcp_outgoing;       /* outgoing TCP connections open now */
    uint64_t tcp_incoming_total; /* accepted since the loop started */
    uint64_t tcp_outgoing_total; /* connected since the loop started */
    uint64_t timers;             /* live (started) timers */
    uint64_t signals;            /* live signal handlers */
    uint64_t fd_watchers;        /* live application fd watchers */
    uint64_t dns_pending;        /* DNS queries in flight */
    uint64_t posts_pending;      /* posts queued, not yet run */
    uint64_t work_pending;       /* pool jobs queued or running */
    uint64_t iterations;         /* loop iterations */
    uint64_t bytes_read;         /* bytes read from sockets */
    uint64_t bytes_written;      /* bytes written to sockets */
    uint64_t lag_max_ns;         /* longest time callbacks held the loop in one iteration */
    uint64_t lag_total_ns;       /* total time callbacks held the loop */
} loom_stats_t;

/* Fills `*out` with the loop's counters. Loop thread only. */
LOOM_EXTERN void loom_stats(const loom_loop_t *loop, loom_stats_t *out);

#ifdef __cplusplus
}
#endif
#endif
