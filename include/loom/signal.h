/* loom/signal.h - signal handlers, cl-async's signal-handler.
 *
 * A loop has at most one handler per signal number. The first handler for a
 * signal in the process saves its disposition; freeing the last one restores
 * it exactly (sigaction flags, mask and handler). Delivery goes through a
 * self-pipe per loop, so the callback runs on the loop's thread as a normal
 * callback. A live handler keeps the loop alive, as cl-async documents;
 * unref it to change that.
 */
#ifndef LOOM_SIGNAL_H
#define LOOM_SIGNAL_H

#include "loom/common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*loom_signal_cb)(loom_signal_t *sig, int signo, void *data);

/* Installs cb as this loop's handler for `signo`. Returns 0, LOOM_EEXIST if
 * the loop already has one for that signal, LOOM_EINVAL for a bad or
 * uncatchable signal, or a system error. Loop thread only. */
LOOM_EXTERN int loom_signal_handler(loom_loop_t *loop, int signo, loom_signal_cb cb, void *data,
                                    loom_signal_t **out);

/* Frees one handler (cl-async's free-signal-handler), restoring the previous
 * disposition when no loop handles the signal any more. Harmless twice. */
LOOM_EXTERN void loom_signal_free(loom_signal_t *sig);

/* Frees every signal handler of the loop (cl-async's clear-signal-handlers). */
LOOM_EXTERN void loom_signal_clear(loom_loop_t *loop);

/* An unref'd handler does not keep the loop alive. */
LOOM_EXTERN void loom_signal_unref(loom_signal_t *sig);
LOOM_EXTERN void loom_signal_ref(loom_signal_t *sig);

#ifdef __cplusplus
}
#endif
#endif
