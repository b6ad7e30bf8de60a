/* core/signal.c - signal handlers: cl-async's signal-handler.
 *
 * The only global state in loom lives here, because signal dispositions are
 * process-wide. It has two parts:
 *
 *  - g_sig[signo], under g_lock: how many handlers (over all loops) the
 *    signal has, and the disposition saved when the first one was installed,
 *    which is restored exactly when the last one is freed;
 *  - a list of slots, one per loop that uses signals, read lock-free by the
 *    async-signal-safe handler. A slot holds the write end of its loop's
 *    self-pipe, the set of signals the loop wants and the set caught but not
 *    yet dispatched. Slots are recycled while any loop uses signals; the
 *    list is as long as the largest number of loops that used signals at
 *    the same time. When the last one lets go, the whole list is unpublished
 *    and freed once no handler is walking it (g_walkers counts the handlers
 *    inside the walk), so loom leaves nothing behind.
 *
 * The handler sets the signal's bit in the pending set of every slot that
 * wants it and writes one byte into that slot's pipe. The loop watches the
 * read end with an internal watcher, drains it, takes the pending set and
 * runs the callbacks on its own thread. Because the pending set is a bit
 * mask, a full pipe loses no signal; like the kernel's own pending set, a
 * signal raised several times before the loop gets to it runs its callback
 * once.
 *
 * Closing a pipe that a handler on another thread may be writing to would let
 * that write land on a recycled fd. A slot therefore has a `busy` count that
 * the handler holds while it uses the fd: the owner stores -1 into `wfd`, then
 * waits for `busy` to drop to zero before closing (both sides use sequentially
 * consistent atomics, so one of them sees the other).
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

#if ATOMIC_INT_LOCK_FREE != 2 || ATOMIC_POINTER_LOCK_FREE != 2
#error "the signal handler needs lock-free atomic ints and pointers"
#endif

#define LOOM__SIG_WORDS ((NSIG + 31) / 32)

typedef struct loom__sigslot loom__sigslot;
struct loom__sigslot {
    loom__sigslot *next; /* fixed once the slot is published */
    atomic_int wfd;      /* the loop's pipe write end, or -1 */
    atomic_uint busy;    /* handlers using wfd right now */
    atomic_uint want[LOOM__SIG_WORDS];
    atomic_uint pending[LOOM__SIG_WORDS];
    bool used; /* owned by a loop; under g_lock */
};

typedef struct loom__signal_state {
    loom_loop_t *loop;
    loom__sigslot *slot;
    int rfd, wfd;  /* the self-pipe, or -1 after a failed fork */
    bool watching; /* io is registered */
    loom__io io;
    unsigned count; /* handlers in `handlers` */
    loom_signal_t *handlers[NSIG];
} loom__signal_state;

struct loom_signal {
    loom__handle h;
    loom__signal_state *st;
    int signo;
    loom_signal_cb cb;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static _Atomic(loom__sigslot *) g_slots;
static atomic_uint g_walkers; /* handlers walking g_slots right now */
static struct {
    unsigned count; /* handlers over all loops */
    struct sigaction saved;
} g_sig[NSIG];

static inline unsigned sig_word(int signo)
{
    return (unsigned)signo / 32;
}
static inline unsigned sig_bit(int signo)
{
    return 1u << ((unsigned)signo % 32);
}

/* The process-wide handler. Async-signal-safe: lock-free atomics and write()
 * only, and errno is preserved. */
static void loom__signal_catch(int signo)
{
    int saved_errno = errno;
    unsigned w = sig_word(signo), bit = sig_bit(signo);
    unsigned char byte = (unsigned char)signo;

    /* Counted before the list is read: whoever frees the list stores NULL
     * first and then waits for this count (both sequentially consistent, so
     * one of them sees the other). */
    atomic_fetch_add(&g_walkers, 1);
    for (loom__sigslot *s = atomic_load(&g_slots); s != NULL; s = s->next) {
        if (!(atomic_load(&s->want[w]) & bit))
            continue;
        atomic_fetch_add(&s->busy, 1);
        /* The bit is set even without a pipe (in a child between fork()
         * and loom_loop_fork(), which then wakes the loop for it). */
        atomic_fetch_or(&s->pending[w], bit);
        int fd = atomic_load(&s->wfd);
        /* A full pipe already wakes the loop, and the bit is set. */
        if (fd >= 0)
            (void)!write(fd, &byte, 1);
        atomic_fetch_sub(&s->busy, 1);
    }
    atomic_fetch_sub(&g_walkers, 1);
    errno = saved_errno;
}

/* fork() while another thread holds g_lock would leave the child's copy locked
 * forever, so the lock is taken across fork. */
static void loom__signal_atfork_prepare(void)
{
    pthread_mutex_lock(&g_lock);
}
static void loom__signal_atfork_parent(void)
{
    pthread_mutex_unlock(&g_lock);
}
/* In the child every inherited pipe is shared with the parent, so a signal
 * must not write to any of them: it only sets pending bits until
 * loom_loop_fork() gives the loop a pipe of its own. The child has one
 * thread, so no handler can be using a slot, and a busy count copied from a
 * handler running on another thread at fork time is stale. */
static void loom__signal_atfork_child(void)
{
    for (loom__sigslot *s = atomic_load(&g_slots); s != NULL; s = s->next) {
        atomic_store(&s->wfd, -1);
        atomic_store(&s->busy, 0);
    }
    atomic_store(&g_walkers, 0);
    pthread_mutex_unlock(&g_lock);
}
static void loom__signal_once(void)
{
    (void)pthread_atfork(loom__signal_atfork_prepare, loom__signal_atfork_parent,
                         loom__signal_atfork_child);
}

/* Detaches the slot's write end, waiting out any handler still using it. */
static void slot_detach_fd(loom__sigslot *s)
{
    atomic_store(&s->wfd, -1);
    while (atomic_load(&s->busy) != 0)
        sched_yield();
}

/* Takes a free slot or publishes a new one. Called with g_lock held. */
static loom__sigslot *slot_acquire(int wfd)
{
    loom__sigslot *s;
    for (s = atomic_load(&g_slots); s != NULL; s = s->next)
        if (!s->used)
            break;
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return NULL;
        atomic_init(&s->wfd, -1);
        s->next = atomic_load(&g_slots);
        atomic_store(&g_slots, s);
    }
    for (unsigned i = 0; i < LOOM__SIG_WORDS; i++) {
        atomic_store(&s->want[i], 0);
        atomic_store(&s->pending[i], 0);
    }
    s->used = true;
    atomic_store(&s->wfd, wfd);
    return s;
}

/* Called with g_lock held; the slot no longer wants any signal. When no
 * slot is used any more, the list is unpublished and freed: a handler still
 * running (on another thread, or for a signal whose disposition was just
 * restored) holds g_walkers, and is waited out. */
static void slot_release(loom__sigslot *s)
{
    slot_detach_fd(s);
    s->used = false;
    for (loom__sigslot *t = atomic_load(&g_slots); t != NULL; t = t->next)
        if (t->used)
            return;
    loom__sigslot *list = atomic_exchange(&g_slots, NULL);
    while (atomic_load(&g_walkers) != 0)
        sched_yield();
    while (list != NULL) {
        loom__sigslot *next = list->next;
        free(list);
        list = next;
    }
}

static void on_pipe(loom__io *w, unsigned events);

static int state_open_pipe(loom__signal_state *st)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0)
        return loom__err(errno);
    st->rfd = fds[0];
    st->wfd = fds[1];
    return 0;
}

static void state_close_pipe(loom__signal_state *st)
{
    if (st->rfd >= 0)
        close(st->rfd);
    if (st->wfd >= 0)
        close(st->wfd);
    st->rfd = st->wfd = -1;
}

static int state_watch(loom__signal_state *st)
{
    int r = loom__io_init(st->loop, &st->io, st->rfd, on_pipe);
    if (r != 0)
        return r;
    r = loom__io_set(st->loop, &st->io, LOOM_READABLE);
    if (r != 0) {
        loom__io_deinit(st->loop, &st->io);
        return r;
    }
    st->watching = true;
    return 0;
}

static void state_unwatch(loom__signal_state *st)
{
    if (st->watching)
        loom__io_deinit(st->loop, &st->io);
    st->watching = false;
}

/* Creates the loop's signal state on first use: pipe, watcher and slot. */
static int state_get(loom_loop_t *loop, loom__signal_state **out)
{
    loom__signal_state *st = loop->signals;
    int r;

    if (st != NULL) {
        *out = st;
        return 0;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL)
        return LOOM_ENOMEM;
    st->loop = loop;
    r = state_open_pipe(st);
    if (r != 0)
        goto fail_pipe;
    r = state_watch(st);
    if (r != 0)
        goto fail_watch;
    pthread_mutex_lock(&g_lock);
    st->slot = slot_acquire(st->wfd);
    pthread_mutex_unlock(&g_lock);
    if (st->slot == NULL) {
        r = LOOM_ENOMEM;
        goto fail_slot;
    }
    loop->signals = st;
    *out = st;
    return 0;

fail_slot:
    state_unwatch(st);
fail_watch:
    state_close_pipe(st);
fail_pipe:
    free(st);
    return r;
}

/* Runs the callbacks for every signal caught since the last time. */
static void on_pipe(loom__io *w, unsigned events)
{
    loom__signal_state *st = LOOM__CONTAINER_OF(w, loom__signal_state, io);
    loom_loop_t *loop = st->loop;
    unsigned char buf[64];
    (void)events;

    while (read(st->rfd, buf, sizeof buf) > 0)
        ;
    for (unsigned i = 0; i < LOOM__SIG_WORDS; i++) {
        unsigned bits = atomic_exchange(&st->slot->pending[i], 0);
        while (bits != 0) {
            int signo = (int)(i * 32 + (unsigned)__builtin_ctz(bits));
            bits &= bits - 1;
            /* Looked up each time: a callback may free or replace handlers. */
            loom_signal_t *sig = signo < NSIG ? st->handlers[signo] : NULL;
            if (sig == NULL || loom__handle_closing(&sig->h))
                continue;
            loom__op_scope scope;
            loom__op_enter(loop, &scope, NULL, NULL, sig);
            sig->cb(sig, signo, sig->h.data);
            loom__op_leave(loop, &scope);
        }
    }
}

static void signal_free_mem(loom__handle *h)
{
    free(LOOM__CONTAINER_OF(h, loom_signal_t, h));
}

int loom_signal_handler(loom_loop_t *loop, int signo, loom_signal_cb cb, void *data,
                        loom_signal_t **out)
{
    loom__signal_state *st;
    loom_signal_t *sig;
    int r;

    if (loop == NULL || cb == NULL || signo <= 0 || signo >= NSIG || signo == SIGKILL ||
        signo == SIGSTOP)
        return LOOM_EINVAL;
    if (loop->signals != NULL && ((loom__signal_state *)loop->signals)->handlers[signo] != NULL)
        return LOOM_EEXIST;
    pthread_once(&g_once, loom__signal_once);

    r = state_get(loop, &st);
    if (r != 0)
        return r;
    sig = calloc(1, sizeof *sig);
    if (sig == NULL)
        return LOOM_ENOMEM;
    sig->st = st;
    sig->signo = signo;
    sig->cb = cb;

    pthread_mutex_lock(&g_lock);
    if (g_sig[signo].count == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = loom__signal_catch;
        sa.sa_flags = SA_RESTART;
        sigfillset(&sa.sa_mask);
        if (sigaction(signo, &sa, &g_sig[signo].saved) != 0) {
            r = errno == EINVAL ? LOOM_EINVAL : loom__err(errno);
            pthread_mutex_unlock(&g_lock);
            free(sig);
            return r;
        }
    }
    g_sig[signo].count++;
    atomic_fetch_or(&st->slot->want[sig_word(signo)], sig_bit(signo));
    pthread_mutex_unlock(&g_lock);

    st->handlers[signo] = sig;
    st->count++;
    loop->stats.signals++;
    loom__handle_init(loop, &sig->h, LOOM__T_SIGNAL, signal_free_mem, false);
    sig->h.data = data;
    loom__handle_start(&sig->h);
    if (out != NULL)
        *out = sig;
    return 0;
}

/* Removes sig from the table and the process, restoring the disposition
 * when it was the last handler for its signal. Leaves the handle alone. */
static void signal_detach(loom_signal_t *sig)
{
    loom__signal_state *st = sig->st;
    int signo = sig->signo;

    st->handlers[signo] = NULL;
    st->count--;
    sig->h.loop->stats.signals--;
    pthread_mutex_lock(&g_lock);
    atomic_fetch_and(&st->slot->want[sig_word(signo)], ~sig_bit(signo));
    if (--g_sig[signo].count == 0)
        (void)sigaction(signo, &g_sig[signo].saved, NULL);
    pthread_mutex_unlock(&g_lock);
}

void loom_signal_free(loom_signal_t *sig)
{
    if (sig == NULL || loom__handle_closing(&sig->h))
        return;
    signal_detach(sig);
    loom__handle_stop(&sig->h);
    loom__handle_close(&sig->h);
}

void loom_signal_clear(loom_loop_t *loop)
{
    loom__signal_state *st = loop != NULL ? loop->signals : NULL;
    if (st == NULL)
        return;
    for (int signo = 1; signo < NSIG && st->count > 0; signo++)
        if (st->handlers[signo] != NULL)
            loom_signal_free(st->handlers[signo]);
}

void loom_signal_unref(loom_signal_t *sig)
{
    if (sig != NULL && !loom__handle_closing(&sig->h))
        loom__handle_unref(&sig->h);
}

loom_loop_t *loom_signal_loop(const loom_signal_t *sig)
{
    return sig->h.loop;
}

void loom_signal_ref(loom_signal_t *sig)
{
    if (sig != NULL && !loom__handle_closing(&sig->h))
        loom__handle_ref(&sig->h);
}

void loom__signal_loop_free(loom_loop_t *loop)
{
    loom__signal_state *st = loop->signals;
    if (st == NULL)
        return;
    loom_signal_clear(loop);
    pthread_mutex_lock(&g_lock);
    slot_release(st->slot);
    pthread_mutex_unlock(&g_lock);
    state_unwatch(st);
    state_close_pipe(st);
    free(st);
    loop->signals = NULL;
}

int loom__signal_loop_fork(loom_loop_t *loop)
{
    loom__signal_state *st = loop->signals;
    int r;

    if (st == NULL)
        return 0;
    /* The inherited pipe is shared with the parent's loop (the fork handler
     * has already detached it from the slot): give the child its own.
     * Detaching again makes a mistaken call in the parent safe too. */
    slot_detach_fd(st->slot);
    state_unwatch(st);
    state_close_pipe(st);
    r = state_open_pipe(st);
    if (r != 0)
        return r;
    r = state_watch(st);
    if (r != 0) {
        state_close_pipe(st);
        return r;
    }
    atomic_store(&st->slot->wfd, st->wfd);
    /* A signal caught between fork() and now only set its pending bit. */
    for (unsigned i = 0; i < LOOM__SIG_WORDS; i++)
        if (atomic_load(&st->slot->pending[i]) != 0) {
            (void)!write(st->wfd, "", 1);
            break;
        }
    return 0;
}
