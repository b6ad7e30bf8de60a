/* proc/proc_internal.h - state shared by the process and stream files of
 * src/proc. Not installed. Loop thread only. */
#ifndef LOOM_PROC_INTERNAL_H
#define LOOM_PROC_INTERNAL_H

#include "net/net_internal.h"

/* Per-loop state (loop->proc), created on first use, freed by a sentinel
 * after the loop's process handles at loom_loop_free(). */
typedef struct loom__proc_state {
    loom_loop_t *loop;
    loom__queue watched; /* children not reaped yet: loom_process.wnode */
    loom__queue open;    /* handles not closed yet: loom_process.onode */
    loom__handle *sentinel;
    int pidfd; /* 1: exits are seen through pidfds, 0: through SIGCHLD */
    loom_signal_t *sigchld;
    loom__pending scan; /* a SIGCHLD scan asked for outside the signal */
    bool scan_queued;
    bool freeing;
    /* Terminal streams with on_resize (loom__stream_class.tnode). */
    loom__queue ttys;
    loom_signal_t *sigwinch;
} loom__proc_state;

/* The loop's state (NULL on ENOMEM). */
loom__proc_state *loom__proc_state_get(loom_loop_t *loop);

/* A socket class made from the application's options (which may be NULL),
 * `size` bytes (>= sizeof(loom__sock_class): a wrapper with the class
 * first), plain (no test transport), without on_connect. Its name (empty
 * until loom__proc_class_name() writes one) lives in the same allocation.
 * NULL on ENOMEM. */
loom__sock_class *loom__proc_class_new(const loom_tcp_opts *o, size_t size);

/* Names the class's sockets for error messages, printf-style ("stdin of
 * process 4711 (cat)"); the name is cut at LOOM__PROC_NAME_MAX bytes. */
#define LOOM__PROC_NAME_MAX 160
void loom__proc_class_name(loom__sock_class *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Makes `s` (from loom__socket_new() on a class of loom__proc_class_new())
 * the open stream on `fd`, with reading off if `rd_off`, and writes the
 * options' initial bytes. */
void loom__proc_socket_open(loom_socket_t *s, int fd, bool rd_off, const loom_tcp_opts *o);

#endif
