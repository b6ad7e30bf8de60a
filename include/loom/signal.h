/* loom/signal.h - signal handlers, cl-async's signal-handler.
 *
 * A loop has at most one handler per signal number; several loops, on one
 * thread or many, may each have one for the same signal, and each of them
 * gets every delivery. The first handler for a signal in the process saves
 * its disposition and installs loom's own (SA_RESTART, every signal blocked
 * while it runs); freeing the last one restores the saved disposition
 * exactly (sigaction flags, mask and handler). This is the only process-wide
 * state in loom, and it is only touched when the application asks for a
 * handler.
 *
 * Delivery goes through a self-pipe per loop, so the callback runs on the
 * loop's thread as a normal callback, never in signal context, and
 * loom_raise() works inside it (routed to the loop's default event
 * callback). Like the kernel's pending set, a signal that arrives several
 * times before the loop gets to it runs its callback once. A live handler
 * keeps the loop alive, as cl-async documents; unref it to change that.
 *
 * After fork(), the child must call loom_loop_fork() on the loop before its
 * handlers work again.
 */
#ifndef LOOM_SIGNAL_H
#define LOOM_SIGNAL_H

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*loom_signal_cb)(loom_signal_t *sig, int signo, void *data);

/* Installs cb as this loop's handler for `signo`: cb(sig, signo, data) runs
 * on the loop's thread after the signal arrives. `*out` (if `out` is not
 * NULL) receives the handler, owned by loom and valid until
 * loom_signal_free() or loom_loop_free(). Returns 0, LOOM_EEXIST if the loop
 * already has one for that signal, LOOM_EINVAL for a bad or uncatchable
 * signal (SIGKILL, SIGSTOP, or one the C library reserves), LOOM_ENOMEM, or
 * a system error (e.g. LOOM_EMFILE for the pipe). Loop thread only. */
LOOM_EXTERN int loom_signal_handler(loom_loop_t *loop, int signo, loom_signal_cb cb, void *data,
                                    loom_signal_t **out);

/* Frees one handler (cl-async's free-signal-handler), restoring the previous
 * disposition when no loop handles the signal any more. This is the
 * handler's one close path: it may be called from the handler's own
 * callback, the callback never runs again, and calling it twice in the same
 * iteration is harmless (the memory is released at the end of the
 * iteration). Loop thread only. */
LOOM_EXTERN void loom_signal_free(loom_signal_t *sig);

/* Frees every signal handler of the loop (cl-async's clear-signal-handlers),
 * as loom_signal_free() does for each. loom_loop_free() does this too.
 * Loop thread only. */
LOOM_EXTERN void loom_signal_clear(loom_loop_t *loop);

/* The loop the handler belongs to. */
LOOM_EXTERN loom_loop_t *loom_signal_loop(const loom_signal_t *sig);

/* An unref'd handler does not keep the loop alive (it still runs while the
 * loop runs for other reasons); ref undoes that. Both are idempotent. Loop
 * thread only. */
LOOM_EXTERN void loom_signal_unref(loom_signal_t *sig);
LOOM_EXTERN void loom_signal_ref(loom_signal_t *sig);

#ifdef __cplusplus
}
#endif
#endif
