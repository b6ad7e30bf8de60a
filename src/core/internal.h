/* core/internal.h - the loop's insides, shared by the core, the backends and
 * the net and http modules. Not installed. Internal non-static names are
 * loom__*.
 */
#ifndef LOOM_CORE_INTERNAL_H
#define LOOM_CORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loom.h"
#include "loom_config.h"

#define LOOM__CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))
#define LOOM__INLINE                          inline __attribute__((always_inline))
#define LOOM__LIKELY(x)                       __builtin_expect(!!(x), 1)
#define LOOM__UNLIKELY(x)                     __builtin_expect(!!(x), 0)

/* --- Intrusive circular doubly-linked list ------------------------------ */
typedef struct loom__queue {
    struct loom__queue *next, *prev;
} loom__queue;

static inline void loom__queue_init(loom__queue *q)
{
    q->next = q->prev = q;
}
static inline bool loom__queue_empty(const loom__queue *q)
{
    return q->next == q;
}
static inline void loom__queue_insert_tail(loom__queue *h, loom__queue *n)
{
    n->next = h;
    n->prev = h->prev;
    h->prev->next = n;
    h->prev = n;
}
static inline void loom__queue_remove(loom__queue *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = n;
}
/* Moves every element of `from` to the tail of `to`, leaving `from` empty. */
static inline void loom__queue_splice_tail(loom__queue *to, loom__queue *from)
{
    if (loom__queue_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    loom__queue_init(from);
}

/* --- Slab: fixed-size objects without a malloc per object ---------------
 * Objects are carved from 64 KiB chunks and recycled through a free list.
 * All chunks are released when the slab is destroyed (loop free). In ASan
 * builds, and under valgrind when built with LOOM_VALGRIND, a freed object is
 * poisoned and quarantined (FIFO) before reuse, so use after close is
 * reported at the faulty call (see slab.c). */
typedef struct loom__slab {
    size_t size;       /* object size, rounded up to 8 */
    void *free;        /* free list */
    void *chunks;      /* singly-linked list of chunks */
    char *bump, *end;  /* unused space in the newest chunk */
    void **quarantine; /* checked builds: ring of freed objects not yet reusable */
    unsigned q_head, q_len;
    bool checked; /* valgrind builds: running under valgrind */
} loom__slab;

void loom__slab_init(loom__slab *s, size_t size);
void *loom__slab_alloc(loom__slab *s); /* zeroed, or NULL */
void loom__slab_free(loom__slab *s, void *p);
/* Calls fn on every object carved so far, in no useful order. Freed objects
 * are skipped in checked builds and visited otherwise, so fn must recognise
 * them (e.g. by a type field the free function zeroes) and never write to
 * them. O(objects ever allocated). */
void loom__slab_foreach(loom__slab *s, void (*fn)(void *obj, void *arg), void *arg);
void loom__slab_destroy(loom__slab *s);

/* --- Block cache: a loop's small freed malloc blocks, by size ------------
 * For objects made and freed at a high rate in varying sizes (HTTP/2's
 * per-request blocks): see bcache.c. Blocks are ordinary malloc blocks,
 * so free() and loom__bc_free() both accept either. At most LOOM__BC_MAX
 * is cached per loop. Loop thread only. */
#define LOOM__BC_CLASSES 65 /* malloc chunks up to 1 KiB, in 16-byte steps */
/* A busy HTTP/2 loop frees a whole iteration's requests at its end (80
 * connections with 10 requests each: about 1,000 blocks of 0.5 KiB). */
#define LOOM__BC_MAX (1024u * 1024u)
typedef struct loom__bcache {
    void *head[LOOM__BC_CLASSES]; /* free blocks of chunk size 16 * k */
    size_t bytes;                 /* cached */
    bool off;                     /* checked builds: malloc and free only */
    bool exact;                   /* malloc's blocks are glibc's chunks: sized frees trust n */
} loom__bcache;

void loom__bc_init(loom__bcache *bc);
void *loom__bc_alloc(loom__bcache *bc, size_t n);  /* malloc(n) */
void *loom__bc_calloc(loom__bcache *bc, size_t n); /* calloc(1, n) */
void *loom__bc_realloc(loom__bcache *bc, void *p, size_t n);
void loom__bc_free(loom__bcache *bc, void *p);
/* The same, for a caller that knows the block's size: `n` is the size it
 * was allocated (or last grown) with, or less. No malloc_usable_size(). */
void loom__bc_free_sized(loom__bcache *bc, void *p, size_t n);
/* realloc for a block of `old` bytes (its allocated size, or less) whose
 * first `old` bytes are kept. */
void *loom__bc_realloc_sized(loom__bcache *bc, void *p, size_t old, size_t n);
void loom__bc_destroy(loom__bcache *bc);

/* --- Handles: the common head of every loom object -----------------------
 * The one close path: loom__handle_close() marks the handle CLOSING, stops
 * it keeping the loop alive, and queues it; at the end of the iteration the
 * loop calls its free_fn, which returns the memory. Until then every API call
 * on it returns LOOM_ECLOSED and no callback runs on it. */
enum {
    LOOM__H_ACTIVE = 1u << 0,  /* started: counted in loop->active_refs if REF */
    LOOM__H_REF = 1u << 1,     /* keeps the loop alive while active */
    LOOM__H_CLOSING = 1u << 2, /* closed by the user, waiting to be freed */
    LOOM__H_INTERNAL = 1u << 3 /* loom's own (wakeup, signal pipe): not in live count */
};

typedef struct loom__handle loom__handle;
typedef void (*loom__free_fn)(loom__handle *h);

struct loom__handle {
    loom_loop_t *loop;
    void *data;
    uint32_t flags;
    uint16_t type;     /* LOOM__T_* */
    uint16_t free_idx; /* its free function: loop->free_fns[free_idx] */
    loom__handle *closing_next;
};

/* Distinct free functions a loop can know (each module has a few). Keeping
 * an index instead of a pointer saves 8 bytes in every handle, which is 8
 * bytes per idle connection. */
#define LOOM__MAX_FREE_FNS 32

enum {
    LOOM__T_TIMER = 1,
    LOOM__T_IDLE,
    LOOM__T_IO,
    LOOM__T_SIGNAL,
    LOOM__T_SOCKET,
    LOOM__T_SERVER,
    LOOM__T_DNS,
    LOOM__T_HTTP,
    LOOM__T_OTHER
};

/* Initialises h; counts it as live unless `internal`. */
void loom__handle_init(loom_loop_t *loop, loom__handle *h, uint32_t type, loom__free_fn free_fn,
                       bool internal);
void loom__handle_start(loom__handle *h); /* mark active; ref'd handles keep the loop alive */
void loom__handle_stop(loom__handle *h);
void loom__handle_ref(loom__handle *h);
void loom__handle_unref(loom__handle *h);
/* Makes h part of the object that owns it: it no longer counts in
 * loom_loop_live() nor keeps the loop alive by itself. Idempotent. */
void loom__handle_own(loom__handle *h);
/* Takes h out of the live count for a caller that frees it at once itself
 * instead of through loom__handle_close(). */
void loom__handle_forget(loom__handle *h);
/* --- Bytes that outlive a read -------------------------------------------------
 * One growable heap block, NULL while nothing is kept (a pointer field costs
 * an owner 8 bytes). data[off..len) are the kept bytes; `aux` is the owner's
 * (the HTTP server keeps its parser's resume point there). Bounds are the
 * owner's: it checks loom__bytes_size() before it appends. core/bytes.c. */
typedef struct loom__bytes {
    size_t off, len, cap;
    size_t aux;
    char data[];
} loom__bytes;
static inline size_t loom__bytes_size(const loom__bytes *b)
{
    return b ? b->len - b->off : 0;
}
static inline char *loom__bytes_data(loom__bytes *b)
{
    return b ? b->data + b->off : NULL;
}
/* Makes room for `more` bytes after the kept ones (moving them to the front
 * or growing the block). Returns 0 or LOOM_ENOMEM (the block is unchanged). */
int loom__bytes_reserve(loom__bytes **b, size_t more);
/* Appends n bytes. Returns 0 or LOOM_ENOMEM (nothing appended). */
int loom__bytes_append(loom__bytes **b, const void *p, size_t n);
/* Drops the first n kept bytes (all of them resets aux too). */
void loom__bytes_consume(loom__bytes **b, size_t n);
/* Frees the block if it keeps nothing, or shrinks one far larger than what
 * it keeps. Call after consuming. */
void loom__bytes_trim(loom__bytes **b);
void loom__bytes_free(loom__bytes **b);

/* A module's per-loop state is torn down by a "sentinel": an internal handle
 * (not live, not keeping the loop alive) whose data is `state` and whose free
 * function `fn` frees the state and then the handle itself. The module closes
 * it at loop free after closing its own objects; the closing list is FIFO, so
 * `fn` runs after every one of them has been freed. Returns NULL on ENOMEM. */
loom__handle *loom__sentinel_new(loom_loop_t *loop, void *state, loom__free_fn fn);
/* Queues h for freeing at the end of the iteration. Idempotent. */
void loom__handle_close(loom__handle *h);
static inline bool loom__handle_closing(const loom__handle *h)
{
    return (h->flags & LOOM__H_CLOSING) != 0;
}

/* --- Watchers ------------------------------------------------------------
 * Internal readiness watcher, embedded in sockets, servers, DNS and the
 * loop's own fds. `bio` must stay first: backends see only it. */
typedef struct loom__io loom__io;
typedef void (*loom__io_cb)(loom__io *w, unsigned events);
struct loom__io {
    loom_backend_io_t bio;
    loom__io_cb cb;
};

/* Sets up w on fd; the backend's private area is allocated here when the
 * backend asks for one. Returns 0 or LOOM_ENOMEM. */
int loom__io_init(loom_loop_t *loop, loom__io *w, int fd, loom__io_cb cb);
/* Changes the watched set (0 removes). Returns 0 or a LOOM_E* code. */
int loom__io_set(loom_loop_t *loop, loom__io *w, unsigned events);
/* Removes the watcher and frees its backend area. The fd stays open. */
void loom__io_deinit(loom_loop_t *loop, loom__io *w);

/* --- Timers: hierarchical wheel, see timer.c -----------------------------
 * Level 0 has 4096 one-millisecond slots (a two-level bitmap finds the next
 * one); levels 1..9 have 64 slots, each 64 times wider than the level below.
 * 12 + 9 * 6 = 66 bits: every uint64 deadline fits. */
#define LOOM__WHEEL_L0_BITS  12
#define LOOM__WHEEL_L0_SLOTS (1u << LOOM__WHEEL_L0_BITS)
#define LOOM__WHEEL_BITS     6
#define LOOM__WHEEL_SLOTS    (1u << LOOM__WHEEL_BITS)
#define LOOM__WHEEL_LEVELS   10 /* level 0 plus 9 levels of 64 */

struct loom_timer {
    loom__handle h;
    loom__queue node; /* wheel slot, due list, or self when stopped */
    uint64_t deadline;
    uint64_t repeat;
    loom_timer_cb cb;
    uint16_t slot;         /* level-0 index, or 4096 + (level - 1) * 64 + index, or LOOM__SLOT_* */
    uint8_t oneshot_close; /* loom_delay(): close after firing */
};

typedef struct loom__wheel {
    uint64_t cur;                                /* every slot up to cur is processed */
    uint64_t l0_summary;                         /* bit w: l0_bits[w] != 0 */
    uint64_t l0_bits[LOOM__WHEEL_L0_SLOTS / 64]; /* bit per non-empty level-0 slot */
    uint64_t occupied[LOOM__WHEEL_LEVELS];       /* levels 1..9: bit per non-empty slot */
    loom__queue ready;                           /* deadline <= cur: run next timer phase */
    loom__queue l0[LOOM__WHEEL_L0_SLOTS];
    loom__queue slots[LOOM__WHEEL_LEVELS][LOOM__WHEEL_SLOTS]; /* [0] unused */
} loom__wheel;

void loom__wheel_init(loom__wheel *w, uint64_t now);
/* Runs every timer due at loop->now. */
void loom__timers_run(loom_loop_t *loop);
/* Milliseconds until the next timer needs attention (-1: none). */
int64_t loom__timers_next(loom_loop_t *loop);

/* --- Deferred callbacks ---------------------------------------------------
 * Work queued to run later in this iteration ("pending" phase), e.g. a
 * numeric DNS answer, or an event that must not be delivered from inside the
 * API call that caused it. The node is embedded in the owner. */
typedef struct loom__pending loom__pending;
struct loom__pending {
    loom__queue node;
    void (*fn)(loom__pending *p);
};
void loom__pending_queue(loom_loop_t *loop, loom__pending *p);
void loom__pending_cancel(loom__pending *p); /* harmless if not queued */

/* --- Events --------------------------------------------------------------
 * Delivers an event: to `cb` if set, else the loop default, else it ends
 * loom_run() (errors) or is logged (info). Runs the callback as a "current
 * operation" so loom_raise() inside it routes to `cb`. */
void loom__event_emit(loom_loop_t *loop, loom_event_cb cb, void *cb_data, loom_event_kind_t kind,
                      int code, const char *msg, void *object);

/* Brackets a user callback of an operation, so that loom_raise() from inside
 * routes to the operation's event callback. Use as:
 *     loom__op_scope s; loom__op_enter(loop, &s, on_event, data, obj);
 *     user_cb(...);
 *     loom__op_leave(loop, &s);
 * Cost: a few stores, and a branch in leave. */
typedef struct loom__op_scope {
    loom_event_cb on_event;
    void *data;
    void *object;
    int kind; /* 0: an operation's callback; 1: an event callback; 2: the default handler */
    struct loom__op_scope *prev;
} loom__op_scope;
void loom__op_enter(loom_loop_t *loop, loom__op_scope *s, loom_event_cb on_event, void *data,
                    void *object);
void loom__op_leave(loom_loop_t *loop, loom__op_scope *s);

/* --- Signals and pool hooks (signal.c, work.c) --------------------------- */
void loom__signal_loop_free(loom_loop_t *loop);
int loom__signal_loop_fork(loom_loop_t *loop);
void loom__work_loop_free(loom_loop_t *loop);
/* In a child after fork(): new workers for the pool (loom_loop_fork()). */
void loom__work_loop_fork(loom_loop_t *loop);
/* Delivers finished pool jobs (done_fn on the loop thread); called by the
 * wakeup handler. A cheap no-op when the loop has no pool. */
void loom__work_drain(loom_loop_t *loop);

/* --- The loop -------------------------------------------------------------- */
typedef struct loom__post loom__post;

struct loom_loop {
    const loom_backend_t *backend;
    void *backend_priv;
    uint64_t now;    /* ms, cached once per iteration */
    uint64_t now_ns; /* ns at the last update */
    uint32_t active_refs;
    uint32_t stop_flag;
    int run_result; /* an unhandled error code ends loom_run */
    bool in_run;
    bool freeing;
    size_t live;

    loom__wheel *wheel;
    loom__slab timer_slab;
    loom__slab idle_slab;
    loom__bcache bc;       /* small freed blocks (bcache.c) */
    loom__queue idles;     /* active idle handles */
    loom__queue user_ios;  /* open application fd watchers (freed at loop free) */
    loom__queue pending;   /* deferred callbacks for this iteration */
    loom__handle *closing; /* handles to free at the end of the iteration */
    loom__free_fn free_fns[LOOM__MAX_FREE_FNS]; /* see loom__handle.free_idx */
    unsigned nfree_fns;
    unsigned free_hint; /* the index found last (handles come in runs of a kind) */
    loom__handle *closing_tail;

    /* Cross-thread posts. */
    pthread_mutex_t post_lock;
    loom__post *post_head, *post_tail;
    atomic_uint post_count;
    atomic_bool wakeup_pending;
    atomic_bool stop_async;
    int wakeup_fd; /* eventfd, or pipe read end */
    int wakeup_wfd;
    loom__io wakeup_io;

    /* Events and application errors. */
    loom_event_cb on_event;
    loom_fatal_cb on_fatal;
    void *event_data;
    loom_log_cb on_log;
    int log_level;
    void *log_data;
    loom__op_scope *op; /* innermost running operation callback */
    loom__queue raised; /* application errors waiting for delivery */

    /* Signals (signal.c). */
    void *signals; /* loom__signal_state * */
    /* Worker pool (work.c). */
    void *pool; /* loom__pool * */
    unsigned pool_threads;

    /* Net (net/). */
    void *dns;     /* loom__dns_state *, created on first lookup */
    char *scratch; /* per-loop read buffer */
    void *net;     /* loom__net *: sockets and servers (net/net_internal.h) */
    size_t scratch_size;

    /* Per-module state owned by the net and http layers, freed through
     * these hooks at loop free (NULL if unused). */
    void (*net_free)(loom_loop_t *loop);
    void (*http_free)(loom_loop_t *loop);
    /* DNS (net/dns.c): call after net_free (sockets may cancel their
     * lookups there), before the closing list is drained and before the
     * backend and the slabs are destroyed. */
    void (*dns_free)(loom_loop_t *loop);
    void (*dns_fork)(loom_loop_t *loop); /* in a child: drop the parent's channels */
    void *http;

    /* Child processes and streams (src/proc): per-loop state and its hooks
     * for loom_loop_free() (after net and http) and loom_loop_fork() (in
     * the child, after the backend was made again). NULL if unused. */
    void *proc;
    void (*proc_free)(loom_loop_t *loop);
    void (*proc_fork)(loom_loop_t *loop);

    loom_stats_t stats;
    void *user_data;
    void *foreign;

    /* File-system watching (src/fs/watch.c): the loop's inotify state and
     * its hook for loom_loop_free(). NULL if unused. */
    void *fs;
    void (*fs_free)(loom_loop_t *loop);
};

#define LOOM__SCRATCH_SIZE (64 * 1024)

/* Updates loop->now from CLOCK_MONOTONIC. */
void loom__update_time(loom_loop_t *loop);
/* Wakes the loop from any thread (coalesced). */
void loom__wakeup(loom_loop_t *loop);
/* Re-evaluates a foreign backend's timer; no-op for owning backends. Call
 * after anything that may make the next deadline earlier. */
void loom__kick(loom_loop_t *loop);

/* The loop's backend: `name`, or the best built-in one (backend.c). When a
 * plugin cannot be had, `why` (size bytes) receives the paths searched. */
const loom_backend_t *loom__backend_select(const char *name, int *err, char *why, size_t size);

/* Built-in backends. */
extern const loom_backend_t loom__backend_epoll;
extern const loom_backend_t loom__backend_poll;

/* Error helpers. */
static inline int loom__err(int errnum)
{
    return loom_err_from_errno(errnum);
}

/* Makes a table indexed by fd (`tab`, *n entries of `size` bytes) hold entry
 * `fd`, doubling it from 64; new entries are zeroed. Returns the table (the
 * same or moved; *n updated), or NULL on ENOMEM (`tab` is then unchanged).
 * For the backends' per-fd tables; inline, so that backends built as
 * plugins can use it. */
static inline void *loom__fd_table_fit(void *tab, size_t *n, size_t size, size_t fd)
{
    if (fd < *n)
        return tab;
    size_t m = *n ? *n : 64;
    while (m <= fd)
        m *= 2;
    char *t = realloc(tab, m * size);
    if (t == NULL)
        return NULL;
    memset(t + *n * size, 0, (m - *n) * size);
    *n = m;
    return t;
}

#endif
