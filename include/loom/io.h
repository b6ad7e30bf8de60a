/* loom/io.h - readiness watchers on file descriptors the application owns. */
#ifndef LOOM_IO_H
#define LOOM_IO_H

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LOOM_READABLE = 1,
    LOOM_WRITABLE = 2,
    LOOM_HUP = 4, /* delivered, never requested: peer hung up or error */
};

/* cb(io, events, data): `events` is a mask of LOOM_READABLE, LOOM_WRITABLE and
 * LOOM_HUP. Level-triggered: it repeats while the condition holds. */
typedef void (*loom_io_cb)(loom_io_t *io, unsigned events, void *data);

/* Creates a stopped watcher on `fd` (which stays the caller's: loom never
 * closes it). Returns 0, LOOM_EBADF, LOOM_ENOMEM, or LOOM_EINVAL when `out`
 * is NULL (a stopped watcher nobody holds could never start). Loop
 * thread only. */
LOOM_EXTERN int loom_io_new(loom_loop_t *loop, loom_io_t **out, int fd, loom_io_cb cb, void *data);

/* Watches for `events` (LOOM_READABLE | LOOM_WRITABLE); 0 stops. Returns 0,
 * LOOM_ECLOSED after close, or the backend's error. */
LOOM_EXTERN int loom_io_start(loom_io_t *io, unsigned events);
LOOM_EXTERN int loom_io_stop(loom_io_t *io);

/* The loop the watcher belongs to. */
LOOM_EXTERN loom_loop_t *loom_io_loop(const loom_io_t *io);

/* The watched fd, and the user slot. */
LOOM_EXTERN int loom_io_fd(const loom_io_t *io);
LOOM_EXTERN void *loom_io_data(const loom_io_t *io);

/* Stops and closes the watcher (not the fd). One close path; harmless twice. */
LOOM_EXTERN void loom_io_close(loom_io_t *io);

#ifdef __cplusplus
}
#endif
#endif
